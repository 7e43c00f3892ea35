//! The body of `PUT /v1/providers/{id}/openstack` and the one rule it adds to
//! [`OpenStackSettings`]: the secret (application credential secret or password) may be
//! left out to keep the stored one. The stored secret is sealed and never returned, so
//! without this an admin who only changes a mapping or the adoption mode would have to type
//! it again. It is kept only while it would go to the same Keystone, over TLS trusted no
//! less, for the same identity it was given for; any change there needs the secret again,
//! so a stored secret can never be redirected to another endpoint or account.
//!
//! Separate from `openstack.rs` (the driver) because it is the settings API's input, not
//! something the driver uses.

use serde::{Deserialize, Serialize};
use zy_model::{Error, Text};

use super::openstack::{
    default_domain, default_region, yes, AdoptionMode, FlavorMapping, ImageMapping,
    OpenStackCredential, OpenStackSettings, ProjectMapping, ZoneMapping,
};

/// The credential as a settings update gives it: as `OpenStackCredential`, but the secret
/// may be left out to keep the stored one (only for the same credential: see
/// `OpenStackSettingsUpdate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpenStackCredentialUpdate {
    /// A Keystone application credential; leave `secret` out to keep the stored one.
    ApplicationCredential {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// A user's password, scoped to a project; leave `password` out to keep the stored one.
    Password {
        username: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        #[serde(default = "default_domain")]
        user_domain: String,
        project: String,
        #[serde(default = "default_domain")]
        project_domain: String,
    },
}

impl OpenStackCredentialUpdate {
    /// The secret the update gives, if any.
    pub fn secret(&self) -> Option<&str> {
        match self {
            OpenStackCredentialUpdate::ApplicationCredential { secret, .. } => secret.as_deref(),
            OpenStackCredentialUpdate::Password { password, .. } => password.as_deref(),
        }
    }

    fn with_secret(self, secret: String) -> OpenStackCredential {
        match self {
            OpenStackCredentialUpdate::ApplicationCredential { id, .. } => {
                OpenStackCredential::ApplicationCredential { id, secret }
            }
            OpenStackCredentialUpdate::Password {
                username,
                user_domain,
                project,
                project_domain,
                ..
            } => OpenStackCredential::Password {
                username,
                password: secret,
                user_domain,
                project,
                project_domain,
            },
        }
    }
}

/// New settings of an `openstack` provider: the same fields as `OpenStackSettings`, with
/// the credential's secret optional. Left out, the stored secret is kept — refused (422 on
/// `openstack.credential.secret`) if the Keystone URL, the credential type, the
/// application credential id, the user name, user domain, project or project domain
/// changed, TLS verification was turned off or a new CA certificate is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenStackSettingsUpdate {
    /// Keystone v3, e.g. `https://keystone.example.gov.cn:5000/v3`.
    pub auth_url: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub credential: OpenStackCredentialUpdate,
    /// Verify the provider's TLS certificate (on unless turned off on purpose).
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// A CA certificate (PEM) to trust besides the system's; left out, none is kept.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The Neutron network new servers get a port on; none when empty.
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub images: Vec<ImageMapping>,
    #[serde(default)]
    pub flavors: Vec<FlavorMapping>,
    #[serde(default)]
    pub projects: Vec<ProjectMapping>,
    #[serde(default)]
    pub zones: Vec<ZoneMapping>,
    #[serde(default)]
    pub adoption: AdoptionMode,
}

/// What changed in the way the secret would be used, so that the stored one may not be
/// kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityChange {
    AuthUrl,
    CredentialType,
    ApplicationCredentialId,
    UserName,
    UserDomain,
    Project,
    ProjectDomain,
    TlsVerificationOff,
    NewCaCertificate,
}

impl IdentityChange {
    /// What changed, in words (zh-CN, en).
    fn words(self) -> (&'static str, &'static str) {
        match self {
            IdentityChange::AuthUrl => ("Keystone 地址已修改", "the Keystone URL changed"),
            IdentityChange::CredentialType => ("凭据类型已修改", "the credential type changed"),
            IdentityChange::ApplicationCredentialId => (
                "应用凭据 ID 已修改",
                "the application credential ID changed",
            ),
            IdentityChange::UserName => ("用户名已修改", "the user name changed"),
            IdentityChange::UserDomain => ("用户所属域已修改", "the user domain changed"),
            IdentityChange::Project => ("项目已修改", "the project changed"),
            IdentityChange::ProjectDomain => ("项目所属域已修改", "the project domain changed"),
            IdentityChange::TlsVerificationOff => {
                ("TLS 证书校验已关闭", "TLS verification was turned off")
            }
            IdentityChange::NewCaCertificate => {
                ("提供了新的 CA 证书", "a new CA certificate was given")
            }
        }
    }

    /// The refusal: the secret must be typed again.
    pub fn refusal(self) -> Error {
        let (zh, en) = self.words();
        Error::validation(
            "openstack.credential.secret",
            Text::new(
                format!(
                    "{zh}，请重新填写密钥（应用凭据密钥或密码）后再保存：已保存的密钥只会用于填写它时的地址和身份"
                ),
                format!(
                    "{en}, so please enter the secret (application credential secret or password) again before saving: the stored secret is only ever used with the address and identity it was entered for"
                ),
            ),
        )
    }
}

impl OpenStackSettingsUpdate {
    /// Why the stored secret may not be kept with this update, if it may not: the first
    /// change in where or as whom the secret would be presented. Pure; `stored` is the
    /// stored form (only its non-secret fields are read).
    pub fn identity_change(&self, stored: &OpenStackSettings) -> Option<IdentityChange> {
        if self.auth_url != stored.auth_url {
            return Some(IdentityChange::AuthUrl);
        }
        match (&self.credential, &stored.credential) {
            (
                OpenStackCredentialUpdate::ApplicationCredential { id, .. },
                OpenStackCredential::ApplicationCredential { id: old, .. },
            ) => {
                if id != old {
                    return Some(IdentityChange::ApplicationCredentialId);
                }
            }
            (
                OpenStackCredentialUpdate::Password {
                    username,
                    user_domain,
                    project,
                    project_domain,
                    ..
                },
                OpenStackCredential::Password {
                    username: old_username,
                    user_domain: old_user_domain,
                    project: old_project,
                    project_domain: old_project_domain,
                    ..
                },
            ) => {
                if username != old_username {
                    return Some(IdentityChange::UserName);
                }
                if user_domain != old_user_domain {
                    return Some(IdentityChange::UserDomain);
                }
                if project != old_project {
                    return Some(IdentityChange::Project);
                }
                if project_domain != old_project_domain {
                    return Some(IdentityChange::ProjectDomain);
                }
            }
            _ => return Some(IdentityChange::CredentialType),
        }
        if stored.verify_tls && !self.verify_tls {
            return Some(IdentityChange::TlsVerificationOff);
        }
        if self.ca_pem.is_some() && self.ca_pem != stored.ca_pem {
            return Some(IdentityChange::NewCaCertificate);
        }
        None
    }

    /// The settings to store. With a secret, `stored_secret` is not called; without one,
    /// the stored secret is kept (read, in clear, by `stored_secret`) if
    /// [`Self::identity_change`] finds nothing, else the update is refused.
    pub fn resolve(
        self,
        stored: impl FnOnce() -> Result<OpenStackSettings, Error>,
        stored_secret: impl FnOnce(&OpenStackSettings) -> Result<String, Error>,
    ) -> Result<Resolved, Error> {
        let (secret, kept) = match self.credential.secret() {
            Some(s) => (s.to_owned(), false),
            None => {
                let stored = stored()?;
                if let Some(change) = self.identity_change(&stored) {
                    return Err(change.refusal());
                }
                (stored_secret(&stored)?, true)
            }
        };
        let settings = OpenStackSettings {
            auth_url: self.auth_url,
            region: self.region,
            credential: self.credential.with_secret(secret),
            verify_tls: self.verify_tls,
            ca_pem: self.ca_pem,
            network: self.network,
            images: self.images,
            flavors: self.flavors,
            projects: self.projects,
            zones: self.zones,
            adoption: self.adoption,
        };
        Ok(Resolved {
            settings,
            secret_kept: kept,
        })
    }
}

/// An update resolved against the stored settings.
#[derive(Debug)]
pub struct Resolved {
    /// The complete settings, secret in clear (to check and seal, never to show).
    pub settings: OpenStackSettings,
    /// Whether the stored secret was kept.
    pub secret_kept: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn mapping() -> ProjectMapping {
        ProjectMapping {
            openstack_project: "p".into(),
            department_id: Uuid::nil(),
            project_id: Uuid::nil(),
        }
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn stored_app() -> OpenStackSettings {
        serde_json::from_value(json!({
            "auth_url": "https://keystone.example.gov.cn:5000/v3",
            "credential": {"type": "application_credential", "id": "ac-1", "secret": "sealed:xyz"},
            "ca_pem": CA,
        }))
        .expect("settings")
    }

    fn stored_password() -> OpenStackSettings {
        serde_json::from_value(json!({
            "auth_url": "https://keystone.example.gov.cn:5000/v3",
            "credential": {"type": "password", "username": "zy", "password": "sealed:xyz",
                           "user_domain": "gov", "project": "cloud", "project_domain": "gov"},
            "verify_tls": false,
        }))
        .expect("settings")
    }

    fn update(v: serde_json::Value) -> OpenStackSettingsUpdate {
        serde_json::from_value(v).expect("update")
    }

    /// The update of `stored_app` that changes only what `change` says, without secret.
    fn app(change: serde_json::Value) -> OpenStackSettingsUpdate {
        let mut v = json!({
            "auth_url": "https://keystone.example.gov.cn:5000/v3",
            "credential": {"type": "application_credential", "id": "ac-1"},
            "ca_pem": CA,
        });
        for (k, x) in change.as_object().expect("object") {
            v[k] = x.clone();
        }
        update(v)
    }

    fn password(change: serde_json::Value) -> OpenStackSettingsUpdate {
        let mut cred = json!({"type": "password", "username": "zy", "user_domain": "gov",
                              "project": "cloud", "project_domain": "gov"});
        for (k, x) in change.as_object().expect("object") {
            cred[k] = x.clone();
        }
        update(json!({
            "auth_url": "https://keystone.example.gov.cn:5000/v3",
            "credential": cred,
            "verify_tls": false,
        }))
    }

    fn resolve(u: OpenStackSettingsUpdate, stored: OpenStackSettings) -> Result<Resolved, Error> {
        u.resolve(move || Ok(stored), |_| Ok("the-stored-secret".into()))
    }

    #[test]
    fn the_stored_secret_is_kept_when_only_other_settings_change() {
        let u = app(json!({
            "region": "RegionTwo", "network": "net-1", "adoption": "auto",
            "projects": [mapping()],
            "flavors": [{"vcpus": 2, "memory_mib": 4096, "openstack_flavor": "m1.medium"}],
            // TLS verification turned on is stricter: fine.
            "verify_tls": true,
        }));
        assert_eq!(u.identity_change(&stored_app()), None);
        let r = resolve(u, stored_app()).expect("kept");
        assert!(r.secret_kept);
        assert_eq!(r.settings.credential.secret(), "the-stored-secret");
        assert_eq!(r.settings.adoption, AdoptionMode::Auto);
        assert_eq!(r.settings.region, "RegionTwo");
        assert_eq!(r.settings.projects, vec![mapping()]);

        // The same CA again, or none any more (only the system's CAs: stricter), is fine.
        assert_eq!(app(json!({})).identity_change(&stored_app()), None);
        assert_eq!(
            app(json!({"ca_pem": null})).identity_change(&stored_app()),
            None
        );
        // Password: the same user, domains and project.
        let r = resolve(password(json!({})), stored_password()).expect("kept");
        assert!(r.secret_kept);
        assert_eq!(r.settings.credential.secret(), "the-stored-secret");
    }

    #[test]
    fn the_stored_secret_is_refused_for_another_endpoint_or_identity() {
        let cases = [
            (
                app(json!({"auth_url": "https://evil.example.com:5000/v3"})),
                stored_app(),
                IdentityChange::AuthUrl,
            ),
            (
                app(json!({"credential": {"type": "application_credential", "id": "ac-2"}})),
                stored_app(),
                IdentityChange::ApplicationCredentialId,
            ),
            (
                app(
                    json!({"credential": {"type": "password", "username": "ac-1", "project": "cloud"}}),
                ),
                stored_app(),
                IdentityChange::CredentialType,
            ),
            (
                update(
                    json!({"auth_url": "https://keystone.example.gov.cn:5000/v3",
                              "credential": {"type": "application_credential", "id": "zy"},
                              "verify_tls": false}),
                ),
                stored_password(),
                IdentityChange::CredentialType,
            ),
            (
                password(json!({"username": "admin"})),
                stored_password(),
                IdentityChange::UserName,
            ),
            (
                password(json!({"user_domain": "Default"})),
                stored_password(),
                IdentityChange::UserDomain,
            ),
            (
                password(json!({"project": "admin"})),
                stored_password(),
                IdentityChange::Project,
            ),
            (
                password(json!({"project_domain": "Default"})),
                stored_password(),
                IdentityChange::ProjectDomain,
            ),
            (
                app(json!({"verify_tls": false})),
                stored_app(),
                IdentityChange::TlsVerificationOff,
            ),
            (
                app(json!({"ca_pem": CA.replace("MIIB", "MIIC")})),
                stored_app(),
                IdentityChange::NewCaCertificate,
            ),
            (
                // A CA where there was none.
                {
                    let mut u = password(json!({}));
                    u.ca_pem = Some(CA.into());
                    u
                },
                stored_password(),
                IdentityChange::NewCaCertificate,
            ),
        ];
        for (u, stored, change) in cases {
            assert_eq!(u.identity_change(&stored), Some(change), "{u:?}");
            let mut opened = false;
            let e = u
                .resolve(
                    || Ok(stored),
                    |_| {
                        opened = true;
                        Ok("the-stored-secret".into())
                    },
                )
                .expect_err("refused");
            assert!(
                !opened,
                "the stored secret is not even opened for {change:?}"
            );
            assert_eq!(e.code, zy_model::ErrorCode::ValidationFailed);
            assert_eq!(
                e.details,
                Some(json!({"field": "openstack.credential.secret"})),
                "{change:?}"
            );
            assert!(
                e.message.en.contains("enter the secret"),
                "{}",
                e.message.en
            );
            assert!(e.message.zh.contains("重新填写密钥"), "{}", e.message.zh);
        }
    }

    #[test]
    fn a_given_secret_is_used_whatever_changed_and_the_stored_one_is_not_read() {
        let mut u =
            app(json!({"auth_url": "https://other.example.gov.cn/v3", "verify_tls": false}));
        u.credential = OpenStackCredentialUpdate::ApplicationCredential {
            id: "ac-9".into(),
            secret: Some("new-secret".into()),
        };
        let r = u
            .resolve(
                || panic!("the stored settings are not read"),
                |_| panic!("the stored secret is not read"),
            )
            .expect("given");
        assert!(!r.secret_kept);
        assert_eq!(r.settings.credential.secret(), "new-secret");
        assert_eq!(r.settings.auth_url, "https://other.example.gov.cn/v3");
    }
}
