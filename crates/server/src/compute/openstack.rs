//! The `openstack` compute driver: an existing provider cloud run on OpenStack (Inspur
//! InCloud OS, Huawei FusionSphere OpenStack, H3C CloudOS, EasyStack, upstream), driven
//! through its public APIs only — Keystone v3, Nova, Cinder, Glance and Neutron.
//!
//! - **Identity.** An application credential (preferred) or a password, scoped to one
//!   project; the token is cached and renewed five minutes before it expires, and a 401
//!   re-authenticates once. The endpoints come from the token's service catalogue (region,
//!   public interface).
//! - **Idempotency.** Every server zhengyun creates carries the instance id twice: in its
//!   name (`…-zy-<uuid>`) and in its metadata (`zhengyun_instance_id`). Before creating,
//!   the driver looks the marker up, so a create retried after a crash (of zhengyun or of
//!   nova-api) finds the server of the first attempt instead of making a second one.
//!   Volumes carry `zhengyun_volume_id` the same way.
//! - **Asynchronous tasks.** Nova and Cinder answer 202 and work in the background. The
//!   driver never waits: while a server builds, resizes or changes power state (or a
//!   volume attaches) it returns [`DriverError::InProgress`], which the saga engine turns
//!   into a wait, so no saga executor slot is held.
//! - **Microversion.** Nova is called with an explicit microversion: the newest the
//!   provider offers up to [`WANTED_MICROVERSION`], and at least [`MIN_MICROVERSION`]
//!   (flavor details embedded in servers).
//! - **Failures.** 4xx → permanent errors with the provider's own message; 500, 409 and
//!   429 → transient (retried a few times with backoff); an outage — refused connections,
//!   timeouts, 502/503/504 — makes the saga wait with backoff, uncounted, so work resumes
//!   when the provider is back and nothing is undone for it. A circuit breaker per provider
//!   opens after consecutive failures and a semaphore bounds concurrent calls, so an outage
//!   neither hammers the provider nor blocks zhengyun.
//! - **Placement.** zhengyun chooses the provider and availability zone; Nova's own
//!   scheduler chooses the hypervisor. The hypervisors are shown as the provider's hosts
//!   (read-only capacity), and the host the zhengyun scheduler books is only an account
//!   of capacity: the driver ignores it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;
use zy_compute::{ComputeDriver, DriverError, DriverFuture, InstanceSpec, PowerState};
use zy_model::{t, Error};

use super::openstack_poll::{Lookups, Seen};

/// The Nova microversion the driver asks for when the provider offers it.
pub const WANTED_MICROVERSION: (u32, u32) = (2, 79);
/// The oldest Nova microversion the driver works with (2.47: a server embeds its flavor).
pub const MIN_MICROVERSION: (u32, u32) = (2, 47);
/// The metadata key that marks a server or volume as zhengyun's.
pub const INSTANCE_MARKER: &str = "zhengyun_instance_id";
pub const VOLUME_MARKER: &str = "zhengyun_volume_id";

/// How an OpenStack provider authenticates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpenStackCredential {
    /// A Keystone application credential (preferred: scoped, revocable, no password).
    ApplicationCredential { id: String, secret: String },
    /// A user's password, scoped to a project.
    Password {
        username: String,
        password: String,
        #[serde(default = "default_domain")]
        user_domain: String,
        project: String,
        #[serde(default = "default_domain")]
        project_domain: String,
    },
}

pub(crate) fn default_domain() -> String {
    "Default".into()
}

impl OpenStackCredential {
    /// The secret part, which is sealed at rest and never returned.
    pub fn secret(&self) -> &str {
        match self {
            OpenStackCredential::ApplicationCredential { secret, .. } => secret,
            OpenStackCredential::Password { password, .. } => password,
        }
    }
    fn with_secret(mut self, s: String) -> Self {
        match &mut self {
            OpenStackCredential::ApplicationCredential { secret, .. } => *secret = s,
            OpenStackCredential::Password { password, .. } => *password = s,
        }
        self
    }
    fn kind(&self) -> &'static str {
        match self {
            OpenStackCredential::ApplicationCredential { .. } => "application_credential",
            OpenStackCredential::Password { .. } => "password",
        }
    }
}

/// A zhengyun image name and the Glance image it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageMapping {
    pub image: String,
    pub openstack_image: String,
}

/// A zhengyun flavor (by its size) and the Nova flavor it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorMapping {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub openstack_flavor: String,
}

/// An OpenStack project and the zhengyun department and project its resources belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectMapping {
    pub openstack_project: String,
    pub department_id: Uuid,
    pub project_id: Uuid,
}

/// A zhengyun zone and the availability zone it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneMapping {
    pub zone_id: Uuid,
    pub availability_zone: String,
}

/// What reconciliation does with a server or volume that appeared in a mapped project
/// without going through zhengyun.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdoptionMode {
    /// Flag it to the supervisor only.
    #[default]
    Flag,
    /// Adopt it (assign, count against quota, meter) and flag it.
    Auto,
}

/// The settings of an `openstack` provider, as the platform admin gives them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenStackSettings {
    /// Keystone v3, e.g. `https://keystone.example.gov.cn:5000/v3`.
    pub auth_url: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub credential: OpenStackCredential,
    /// Verify the provider's TLS certificate (on unless turned off on purpose).
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// A CA certificate (PEM) to trust besides the system's.
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

pub(crate) fn default_region() -> String {
    "RegionOne".into()
}
pub(crate) fn yes() -> bool {
    true
}

/// The settings as shown: everything but the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpenStackSettingsView {
    pub auth_url: String,
    pub region: String,
    /// `application_credential` or `password`.
    pub credential_type: String,
    /// The application credential id or the user name (not secret).
    pub credential_id: String,
    /// A password credential's user domain, project and project domain (none for an
    /// application credential), so a form can send them back unchanged and keep the
    /// stored secret.
    pub user_domain: Option<String>,
    pub project: Option<String>,
    pub project_domain: Option<String>,
    pub verify_tls: bool,
    pub has_ca_pem: bool,
    pub network: Option<String>,
    pub images: Vec<ImageMapping>,
    pub flavors: Vec<FlavorMapping>,
    pub projects: Vec<ProjectMapping>,
    pub zones: Vec<ZoneMapping>,
    pub adoption: AdoptionMode,
}

impl OpenStackSettings {
    pub fn view(&self) -> OpenStackSettingsView {
        OpenStackSettingsView {
            auth_url: self.auth_url.clone(),
            region: self.region.clone(),
            credential_type: self.credential.kind().into(),
            credential_id: match &self.credential {
                OpenStackCredential::ApplicationCredential { id, .. } => id.clone(),
                OpenStackCredential::Password { username, .. } => username.clone(),
            },
            user_domain: self.password_scope().map(|(d, _, _)| d.to_owned()),
            project: self.password_scope().map(|(_, p, _)| p.to_owned()),
            project_domain: self.password_scope().map(|(_, _, d)| d.to_owned()),
            verify_tls: self.verify_tls,
            has_ca_pem: self.ca_pem.is_some(),
            network: self.network.clone(),
            images: self.images.clone(),
            flavors: self.flavors.clone(),
            projects: self.projects.clone(),
            zones: self.zones.clone(),
            adoption: self.adoption,
        }
    }

    /// A password credential's user domain, project and project domain.
    fn password_scope(&self) -> Option<(&str, &str, &str)> {
        match &self.credential {
            OpenStackCredential::ApplicationCredential { .. } => None,
            OpenStackCredential::Password {
                user_domain,
                project,
                project_domain,
                ..
            } => Some((user_domain, project, project_domain)),
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        let url = self.auth_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() > 500
            || url.contains(char::is_whitespace)
        {
            return Err(Error::validation(
                "openstack.auth_url",
                t!(
                    "Keystone 地址须为 http:// 或 https:// 开头的 v3 地址，例如 https://keystone.example.gov.cn:5000/v3",
                    "auth_url must be a Keystone v3 URL starting with http:// or https://, e.g. https://keystone.example.gov.cn:5000/v3"
                ),
            ));
        }
        let short = |field: &str, v: &str| -> Result<(), Error> {
            if v.trim().is_empty() || v.len() > 255 || v.chars().any(char::is_control) {
                Err(Error::validation(
                    field,
                    t!("{} 须为 1 到 255 个字符" ; "{} must be 1–255 characters", field),
                ))
            } else {
                Ok(())
            }
        };
        short("openstack.region", &self.region)?;
        match &self.credential {
            OpenStackCredential::ApplicationCredential { id, secret } => {
                short("openstack.credential.id", id)?;
                short("openstack.credential.secret", secret)?;
            }
            OpenStackCredential::Password {
                username,
                password,
                user_domain,
                project,
                project_domain,
            } => {
                short("openstack.credential.username", username)?;
                short("openstack.credential.password", password)?;
                short("openstack.credential.user_domain", user_domain)?;
                short("openstack.credential.project", project)?;
                short("openstack.credential.project_domain", project_domain)?;
            }
        }
        if let Some(pem) = &self.ca_pem {
            if !pem.contains("-----BEGIN CERTIFICATE-----") || pem.len() > 64 * 1024 {
                return Err(Error::validation(
                    "openstack.ca_pem",
                    t!(
                        "CA 证书须为 PEM 格式（-----BEGIN CERTIFICATE-----），不超过 64 KiB",
                        "ca_pem must be a PEM certificate (-----BEGIN CERTIFICATE-----) of at most 64 KiB"
                    ),
                ));
            }
        }
        if let Some(n) = &self.network {
            short("openstack.network", n)?;
        }
        for m in &self.images {
            short("openstack.images.image", &m.image)?;
            short("openstack.images.openstack_image", &m.openstack_image)?;
        }
        for m in &self.flavors {
            short("openstack.flavors.openstack_flavor", &m.openstack_flavor)?;
        }
        for m in &self.projects {
            short("openstack.projects.openstack_project", &m.openstack_project)?;
        }
        for m in &self.zones {
            short("openstack.zones.availability_zone", &m.availability_zone)?;
        }
        if self.images.len() + self.flavors.len() + self.projects.len() + self.zones.len() > 1000 {
            return Err(Error::validation(
                "openstack",
                t!("映射最多 1000 条", "at most 1000 mappings"),
            ));
        }
        Ok(())
    }

    /// The stored form: the secret replaced by its sealed form.
    pub fn sealed(&self, sealer: &crate::auth::seal::Sealer) -> Result<OpenStackSettings, Error> {
        let mut s = self.clone();
        s.credential = s
            .credential
            .clone()
            .with_secret(sealer.seal(self.credential.secret())?);
        Ok(s)
    }

    /// The usable form of stored settings.
    pub fn opened(&self, sealer: &crate::auth::seal::Sealer) -> Result<OpenStackSettings, Error> {
        let mut s = self.clone();
        s.credential = s
            .credential
            .clone()
            .with_secret(sealer.open(self.credential.secret())?);
        Ok(s)
    }

    /// The mapped department and project of an OpenStack project.
    pub fn owner_of(&self, openstack_project: &str) -> Option<&ProjectMapping> {
        self.projects
            .iter()
            .find(|m| m.openstack_project == openstack_project)
    }
}

// --- pure parts ---------------------------------------------------------------------------

/// A service catalogue: service type → endpoint URL (public interface, our region).
pub fn parse_catalog(token: &Value, region: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(services) = token.pointer("/token/catalog").and_then(Value::as_array) else {
        return out;
    };
    for svc in services {
        let Some(kind) = svc.get("type").and_then(Value::as_str) else {
            continue;
        };
        let eps = svc
            .get("endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let pick = eps.iter().find(|e| {
            e.get("interface").and_then(Value::as_str) == Some("public")
                && (e.get("region_id").and_then(Value::as_str) == Some(region)
                    || e.get("region").and_then(Value::as_str) == Some(region))
        });
        if let Some(url) = pick.and_then(|e| e.get("url")).and_then(Value::as_str) {
            let key = match kind {
                // Older clouds register Cinder v3 as `volumev3`.
                "volumev3" | "volume" if !out.contains_key("block-storage") => "block-storage",
                other => other,
            };
            out.insert(key.to_string(), url.trim_end_matches('/').to_string());
        }
    }
    out
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The microversion to use, from what the provider's version document says (its
/// `min_version` and `version`): the newest up to `wanted`, refused below `required`.
pub fn negotiate(
    provider_min: &str,
    provider_max: &str,
    wanted: (u32, u32),
    required: (u32, u32),
) -> Result<(u32, u32), DriverError> {
    let max = parse_version(provider_max).unwrap_or((2, 1));
    let min = parse_version(provider_min).unwrap_or((2, 1));
    let chosen = wanted.min(max);
    if chosen < required || chosen < min {
        return Err(DriverError::Permanent(format!(
            "Nova offers microversions {}.{}–{}.{}; zhengyun needs at least {}.{}",
            min.0, min.1, max.0, max.1, required.0, required.1
        )));
    }
    Ok(chosen)
}

/// The message an OpenStack service put in its error body (`{"badRequest": {"message":
/// …}}`, `{"NeutronError": {…}}`, `{"error": {…}}`, …).
pub fn provider_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    if let Some(Value::Object(m)) = &parsed {
        for v in m.values() {
            if let Some(msg) = v.get("message").and_then(Value::as_str) {
                return msg.chars().take(500).collect();
            }
            if let Some(msg) = v.as_str() {
                return msg.chars().take(500).collect();
            }
        }
    }
    body.chars().take(300).collect()
}

/// Maps a provider answer that is not a success to a driver error.
pub fn classify(service: &str, status: u16, body: &str) -> DriverError {
    let msg = provider_message(body);
    let text = format!("OpenStack {service} answered {status}: {msg}");
    match status {
        // The provider (or its gateway) is down for the moment: wait for it.
        502..=504 => DriverError::InProgress(format!("{UNAVAILABLE}: {text}")),
        // Busy (a task in progress), over a rate limit, or the provider itself failing:
        // worth trying again.
        409 | 429 | 500..=599 => DriverError::Transient(text),
        _ => DriverError::Permanent(text),
    }
}

/// A circuit breaker: after `threshold` consecutive transient failures the provider is
/// not called for `cooldown`; then one call is let through to probe it.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold,
            cooldown,
            failures: 0,
            open_until: None,
        }
    }

    /// Whether a call may go out now.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.open_until {
            Some(t) if now < t => false,
            Some(_) => {
                // Half-open: this call probes; another failure opens it again at once.
                self.open_until = None;
                self.failures = self.threshold.saturating_sub(1);
                true
            }
            None => true,
        }
    }

    pub fn record(&mut self, ok: bool, now: Instant) {
        if ok {
            self.failures = 0;
            self.open_until = None;
        } else {
            self.failures += 1;
            if self.failures >= self.threshold {
                self.open_until = Some(now + self.cooldown);
            }
        }
    }

    pub fn is_open(&self, now: Instant) -> bool {
        matches!(self.open_until, Some(t) if now < t)
    }
}

/// The name a zhengyun instance gets in Nova: its own name made safe, and the marker.
pub fn server_name(name: &str, id: Uuid) -> String {
    let base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "vm" } else { base };
    format!("{base}-zy-{}", id.simple())
}

/// A server as the driver reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    pub task_state: Option<String>,
    pub project_id: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub flavor_name: String,
    pub marker: Option<Uuid>,
    pub fault: Option<String>,
    pub availability_zone: Option<String>,
    pub hypervisor: Option<String>,
    pub image_id: Option<String>,
}

pub fn parse_server(v: &Value) -> Option<Server> {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Some(Server {
        id: s("/id")?,
        name: s("/name").unwrap_or_default(),
        status: s("/status").unwrap_or_default(),
        task_state: s("/OS-EXT-STS:task_state"),
        project_id: s("/tenant_id").unwrap_or_default(),
        vcpus: n("/flavor/vcpus") as u32,
        memory_mib: n("/flavor/ram"),
        disk_gib: n("/flavor/disk"),
        flavor_name: s("/flavor/original_name").unwrap_or_default(),
        marker: s(&format!("/metadata/{INSTANCE_MARKER}")).and_then(|m| m.parse().ok()),
        fault: s("/fault/message"),
        availability_zone: s("/OS-EXT-AZ:availability_zone"),
        hypervisor: s("/OS-EXT-SRV-ATTR:hypervisor_hostname"),
        image_id: s("/image/id"),
    })
}

/// A Cinder volume as the driver reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CinderVolume {
    pub id: String,
    pub name: String,
    pub status: String,
    pub size_gib: u64,
    pub project_id: String,
    /// The servers it is attached to.
    pub attachments: Vec<String>,
    pub marker: Option<Uuid>,
    pub bootable: bool,
    pub availability_zone: Option<String>,
}

/// A volume of Cinder's `GET /volumes/detail` or `GET /volumes/{id}`; `project` is the
/// project it was listed in (the owner attribute is only shown to admins).
pub fn parse_volume(v: &Value, project: &str) -> Option<CinderVolume> {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    Some(CinderVolume {
        id: s("/id")?,
        name: s("/name").unwrap_or_default(),
        status: s("/status").unwrap_or_default(),
        size_gib: v.get("size").and_then(Value::as_u64).unwrap_or(0),
        project_id: s("/os-vol-tenant-attr:tenant_id").unwrap_or_else(|| project.to_string()),
        attachments: v
            .get("attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("server_id").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        marker: s(&format!("/metadata/{VOLUME_MARKER}")).and_then(|m| m.parse().ok()),
        bootable: s("/bootable").as_deref() == Some("true"),
        availability_zone: s("/availability_zone"),
    })
}

/// Where a server is on its way to the wanted power state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Done,
    /// Call this action (`os-start`, `os-stop`, `confirmResize`) and wait.
    Act(&'static str),
    Wait(String),
    Failed(String),
}

/// The next step for a server towards `want`.
pub fn next_step(s: &Server, want: PowerState) -> Step {
    if let Some(task) = &s.task_state {
        return Step::Wait(format!("Nova task {task} in progress"));
    }
    match (s.status.as_str(), want) {
        ("ERROR", _) => Step::Failed(format!(
            "the provider failed the server: {}",
            s.fault.clone().unwrap_or_else(|| "no reason given".into())
        )),
        ("VERIFY_RESIZE", _) => Step::Act("confirmResize"),
        ("ACTIVE", PowerState::Running) | ("SHUTOFF", PowerState::Stopped) => Step::Done,
        ("ACTIVE", PowerState::Stopped) => Step::Act("os-stop"),
        ("SHUTOFF", PowerState::Running) => Step::Act("os-start"),
        (other, _) => Step::Wait(format!("server is {other}")),
    }
}

// --- the client ----------------------------------------------------------------------------

struct Token {
    value: String,
    expires: Instant,
    catalog: HashMap<String, String>,
    project_id: String,
}

/// One provider's API client (identity, catalogue, microversion, breaker, limit).
pub struct OpenStackClient {
    pub settings: OpenStackSettings,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<Token>>,
    microversion: Mutex<Option<(u32, u32)>>,
    breaker: Mutex<Breaker>,
    /// At most this many calls to the provider at once (the rate limit towards it).
    limit: tokio::sync::Semaphore,
    lookups: Lookups,
    /// Nova's flavors and Glance's image ids by name, read at most once a minute: every
    /// create needs them and they change rarely.
    flavors: Mutex<Option<(Instant, Value)>>,
    images: Mutex<HashMap<String, (Instant, String)>>,
}

/// How long a read flavor list or image id is used before it is read again.
const CATALOGUE_TTL: Duration = Duration::from_secs(60);

/// The prefix of every "the provider is down" error: such errors make the saga wait (with
/// backoff, uncounted) rather than fail, so an outage delays work but never undoes it.
pub const UNAVAILABLE: &str = "OpenStack unavailable";

fn transport(e: reqwest::Error) -> DriverError {
    DriverError::InProgress(format!("{UNAVAILABLE}: {e}"))
}

fn is_outage(e: &DriverError) -> bool {
    match e {
        DriverError::Transient(_) => true,
        DriverError::InProgress(m) => m.starts_with(UNAVAILABLE),
        _ => false,
    }
}

impl OpenStackClient {
    pub fn new(settings: OpenStackSettings) -> Result<OpenStackClient, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(30))
            .use_rustls_tls()
            .tls_built_in_root_certs(false);
        for cert in rustls_native_certs::load_native_certs().certs {
            if let Ok(c) = reqwest::Certificate::from_der(cert.as_ref()) {
                b = b.add_root_certificate(c);
            }
        }
        if let Some(pem) = &settings.ca_pem {
            let c = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("the CA certificate cannot be read: {e}"))?;
            b = b.add_root_certificate(c);
        }
        if !settings.verify_tls {
            b = b.danger_accept_invalid_certs(true);
        }
        Ok(OpenStackClient {
            settings,
            http: b.build().map_err(|e| e.to_string())?,
            token: tokio::sync::Mutex::new(None),
            microversion: Mutex::new(None),
            breaker: Mutex::new(Breaker::new(5, Duration::from_secs(20))),
            limit: tokio::sync::Semaphore::new(8),
            lookups: Lookups::default(),
            flavors: Mutex::new(None),
            images: Mutex::new(HashMap::new()),
        })
    }

    fn auth_body(&self) -> Value {
        match &self.settings.credential {
            OpenStackCredential::ApplicationCredential { id, secret } => json!({"auth": {
                "identity": {"methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret}}}}),
            OpenStackCredential::Password {
                username,
                password,
                user_domain,
                project,
                project_domain,
            } => json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": username, "domain": {"name": user_domain}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"name": project_domain}}}}}),
        }
    }

    async fn authenticate(&self) -> Result<Token, DriverError> {
        let url = format!(
            "{}/auth/tokens",
            self.settings.auth_url.trim_end_matches('/')
        );
        let resp = self
            .http
            .post(&url)
            .json(&self.auth_body())
            .send()
            .await
            .map_err(|e| {
                DriverError::InProgress(format!("{UNAVAILABLE}: Keystone unreachable: {e}"))
            })?;
        let status = resp.status().as_u16();
        let header = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(transport)?;
        if status == 401 {
            return Err(DriverError::Permanent(format!(
                "Keystone refused the credentials: {}",
                provider_message(&body)
            )));
        }
        if !(200..300).contains(&status) {
            return Err(classify("identity", status, &body));
        }
        let value: Value = serde_json::from_str(&body).map_err(|e| {
            DriverError::Permanent(format!(
                "Keystone answered something else than a token: {e}"
            ))
        })?;
        let token = header.ok_or_else(|| {
            DriverError::Permanent("Keystone answered without X-Subject-Token".into())
        })?;
        let catalog = parse_catalog(&value, &self.settings.region);
        if !catalog.contains_key("compute") {
            return Err(DriverError::Permanent(format!(
                "the catalogue has no compute endpoint in region {}",
                self.settings.region
            )));
        }
        let expires = value
            .pointer("/token/expires_at")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| {
                let left = t.timestamp() - chrono::Utc::now().timestamp();
                Instant::now() + Duration::from_secs(left.max(0) as u64)
            })
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(600));
        Ok(Token {
            value: token,
            expires,
            catalog,
            project_id: value
                .pointer("/token/project/id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// A valid token (renewed five minutes before it expires) and the endpoint of `service`.
    async fn token_for(
        &self,
        service: &str,
        renew: bool,
    ) -> Result<(String, String, String), DriverError> {
        let mut guard = self.token.lock().await;
        let stale = match &*guard {
            Some(t) => renew || t.expires < Instant::now() + Duration::from_secs(300),
            None => true,
        };
        if stale {
            *guard = Some(self.authenticate().await?);
        }
        let t = guard.as_ref().expect("token set above");
        let base = t.catalog.get(service).cloned().ok_or_else(|| {
            DriverError::Permanent(format!(
                "the provider's catalogue has no {service} endpoint in region {}",
                self.settings.region
            ))
        })?;
        Ok((t.value.clone(), base, t.project_id.clone()))
    }

    /// The project the credentials are scoped to.
    pub async fn project_id(&self) -> Result<String, DriverError> {
        Ok(self.token_for("compute", false).await?.2)
    }

    async fn microversion(&self) -> Result<(u32, u32), DriverError> {
        if let Some(v) = *self.microversion.lock().expect("microversion lock") {
            return Ok(v);
        }
        let (_, base, _) = self.token_for("compute", false).await?;
        let resp = self.http.get(&base).send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            return Err(classify("compute", status, &body));
        }
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let min = v
            .pointer("/version/min_version")
            .and_then(Value::as_str)
            .unwrap_or("2.1");
        let max = v
            .pointer("/version/version")
            .and_then(Value::as_str)
            .unwrap_or("2.1");
        let chosen = negotiate(min, max, WANTED_MICROVERSION, MIN_MICROVERSION)?;
        *self.microversion.lock().expect("microversion lock") = Some(chosen);
        Ok(chosen)
    }

    /// One call: `ok` is the parsed body of a success (`Null` when empty).
    pub async fn call(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, DriverError> {
        self.guarded(service, method, path, body, None).await
    }

    /// A Cinder call at a given microversion (e.g. `3.42` to extend an attached volume);
    /// otherwise like [`Self::call`].
    pub async fn call_cinder_at(
        &self,
        version: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, DriverError> {
        self.guarded("block-storage", method, path, body, Some(version))
            .await
    }

    /// A call through the circuit breaker and the limit of calls at a time.
    async fn guarded(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        cinder_version: Option<&str>,
    ) -> Result<Value, DriverError> {
        if !self.breaker.lock().expect("breaker").allow(Instant::now()) {
            return Err(DriverError::InProgress(format!(
                "{UNAVAILABLE}: it failed repeatedly; calls are paused for a moment (circuit open)"
            )));
        }
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| DriverError::Transient("driver shutting down".into()))?;
        let r = self
            .call_inner(service, method, path, body, cinder_version)
            .await;
        let failed = r.as_ref().err().is_some_and(is_outage);
        self.breaker
            .lock()
            .expect("breaker")
            .record(!failed, Instant::now());
        r
    }

    async fn call_inner(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        cinder_version: Option<&str>,
    ) -> Result<Value, DriverError> {
        let version = if service == "compute" {
            Some(self.microversion().await?)
        } else {
            None
        };
        for attempt in 0..2 {
            let (token, base, _) = self.token_for(service, attempt > 0).await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{base}{path}"))
                .header("X-Auth-Token", token)
                .header("Accept", "application/json");
            if let Some((a, b)) = version {
                req = req.header("OpenStack-API-Version", format!("compute {a}.{b}"));
            }
            if let Some(v) = cinder_version {
                req = req.header("OpenStack-API-Version", format!("volume {v}"));
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(transport)?;
            if status == 401 && attempt == 0 {
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(classify(service, status, &text));
            }
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| {
                DriverError::Transient(format!("OpenStack {service} answered nonsense: {e}"))
            });
        }
        Err(DriverError::Permanent(
            "the provider refuses the credentials (401)".into(),
        ))
    }

    // --- Nova ----------------------------------------------------------------------------

    /// The server zhengyun made for `instance`, found by its marker. Lookups that wait at
    /// the same time share one request ([`super::openstack_poll`]).
    pub async fn find_server(&self, instance: Uuid) -> Result<Option<Server>, DriverError> {
        let seen = self
            .lookups
            .seen(instance, |wanted| self.look_up(wanted))
            .await?;
        if let Some(s) = seen.server_of(instance) {
            return Ok(Some(s));
        }
        // An adopted (纳管) server keeps its own name and has no marker: its zhengyun
        // instance id is the Nova server id itself (see `app::openstack::adopt`), and it
        // may live in another mapped project than the listed one.
        Ok(self
            .server(&instance.to_string())
            .await?
            .filter(|s| s.id == instance.to_string() && s.status != "DELETED"))
    }

    /// One round's request: the one server by its marker's name, or the credential's
    /// project listed once for several.
    async fn look_up(&self, wanted: Vec<Uuid>) -> Result<Seen, DriverError> {
        if let [one] = wanted[..] {
            let v = self
                .call(
                    "compute",
                    reqwest::Method::GET,
                    &format!("/servers/detail?name=zy-{}", one.simple()),
                    None,
                )
                .await?;
            let servers = v
                .get("servers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(parse_server)
                .collect();
            return Ok(Seen::new(servers));
        }
        let own = self.project_id().await?;
        Ok(Seen::new(self.list_servers(&own).await?))
    }

    /// One server by its Nova id; `None` when Nova has no such server.
    pub async fn server(&self, id: &str) -> Result<Option<Server>, DriverError> {
        if Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        match self
            .call(
                "compute",
                reqwest::Method::GET,
                &format!("/servers/{id}"),
                None,
            )
            .await
        {
            Ok(v) => Ok(v.get("server").and_then(parse_server)),
            Err(DriverError::Permanent(m)) if m.contains(" 404:") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every server of an OpenStack project (all pages).
    pub async fn list_servers(&self, project: &str) -> Result<Vec<Server>, DriverError> {
        self.list_all("compute", "servers", project, parse_server, |s| {
            s.id.clone()
        })
        .await
    }

    /// Every item of a project's `collection` at `service`, a page of 1,000 at a time,
    /// parsed; the next page starts after the last parsed item.
    async fn list_all<T>(
        &self,
        service: &str,
        collection: &str,
        project: &str,
        parse: impl Fn(&Value) -> Option<T>,
        id: impl Fn(&T) -> String,
    ) -> Result<Vec<T>, DriverError> {
        let own = self.project_id().await? == project;
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut path = format!("/{collection}/detail?limit=1000");
            if !own {
                path.push_str(&format!("&all_tenants=1&project_id={project}"));
            }
            if let Some(m) = &marker {
                path.push_str(&format!("&marker={m}"));
            }
            let v = self
                .call(service, reqwest::Method::GET, &path, None)
                .await?;
            let page: Vec<T> = v
                .get(collection)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(&parse)
                .collect();
            let n = page.len();
            marker = page.last().map(&id);
            out.extend(page);
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    async fn flavor_for(&self, spec: &InstanceSpec) -> Result<String, DriverError> {
        if let Some(m) = self
            .settings
            .flavors
            .iter()
            .find(|m| m.vcpus == spec.vcpus && m.memory_mib == spec.memory_mib)
        {
            return Ok(m.openstack_flavor.clone());
        }
        // No mapping: the smallest Nova flavor of exactly this CPU and memory whose disk
        // holds the requested root disk.
        let v = self.flavor_list().await?;
        v.get("flavors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| {
                f.get("vcpus").and_then(Value::as_u64) == Some(u64::from(spec.vcpus))
                    && f.get("ram").and_then(Value::as_u64) == Some(spec.memory_mib)
            })
            .min_by_key(|f| f.get("disk").and_then(Value::as_u64).unwrap_or(0))
            .and_then(|f| f.get("id").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| {
                DriverError::Permanent(format!(
                    "the provider has no flavor of {} vCPU and {} MiB, and none is mapped",
                    spec.vcpus, spec.memory_mib
                ))
            })
    }

    async fn flavor_list(&self) -> Result<Value, DriverError> {
        if let Some((at, v)) = &*self.flavors.lock().expect("flavor cache") {
            if at.elapsed() < CATALOGUE_TTL {
                return Ok(v.clone());
            }
        }
        let v = self
            .call("compute", reqwest::Method::GET, "/flavors/detail", None)
            .await?;
        *self.flavors.lock().expect("flavor cache") = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    async fn image_for(&self, image: &str) -> Result<String, DriverError> {
        if let Some(m) = self.settings.images.iter().find(|m| m.image == image) {
            return Ok(m.openstack_image.clone());
        }
        if let Some((at, id)) = self.images.lock().expect("image cache").get(image) {
            if at.elapsed() < CATALOGUE_TTL {
                return Ok(id.clone());
            }
        }
        let id = self.glance_image(image).await?;
        self.images
            .lock()
            .expect("image cache")
            .insert(image.to_string(), (Instant::now(), id.clone()));
        Ok(id)
    }

    async fn glance_image(&self, image: &str) -> Result<String, DriverError> {
        let v = self
            .call(
                "image",
                reqwest::Method::GET,
                &format!("/v2/images?name={}", urlencode(image)),
                None,
            )
            .await?;
        v.get("images")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|i| i.get("id").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| {
                DriverError::Permanent(format!(
                    "the provider's Glance has no image {image}, and none is mapped"
                ))
            })
    }

    async fn create_server(
        &self,
        spec: &InstanceSpec,
        az: Option<&str>,
    ) -> Result<(), DriverError> {
        let flavor = self.flavor_for(spec).await?;
        let image = self.image_for(&spec.image).await?;
        let mut server = json!({
            "name": server_name(&spec.name, spec.instance_id),
            "flavorRef": flavor,
            "imageRef": image,
            "metadata": {INSTANCE_MARKER: spec.instance_id.to_string()},
            "networks": match &self.settings.network {
                Some(n) => json!([{"uuid": n}]),
                None => json!("none"),
            },
        });
        if let Some(az) = az {
            server["availability_zone"] = json!(az);
        }
        if !spec.user_data.is_empty() {
            server["user_data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(spec.user_data.as_bytes()));
        }
        self.call(
            "compute",
            reqwest::Method::POST,
            "/servers",
            Some(&json!({ "server": server })),
        )
        .await?;
        Ok(())
    }

    async fn action(&self, server: &str, action: &str, arg: Value) -> Result<(), DriverError> {
        let mut body = serde_json::Map::new();
        body.insert(action.to_string(), arg);
        match self
            .call(
                "compute",
                reqwest::Method::POST,
                &format!("/servers/{server}/action"),
                Some(&Value::Object(body)),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Someone else's action is under way: wait for it.
            Err(DriverError::Transient(m)) if m.contains(" 409:") => {
                Err(DriverError::InProgress(m))
            }
            Err(e) => Err(e),
        }
    }

    /// The provider's hypervisors with their capacity (as Nova reports them up to
    /// microversion 2.87) and their availability zone.
    pub async fn hypervisors(&self) -> Result<Vec<Hypervisor>, DriverError> {
        let v = self
            .call(
                "compute",
                reqwest::Method::GET,
                "/os-hypervisors/detail",
                None,
            )
            .await?;
        let zones = self
            .call(
                "compute",
                reqwest::Method::GET,
                "/os-availability-zone/detail",
                None,
            )
            .await?;
        Ok(parse_hypervisors(&v, &zones))
    }

    // --- Cinder --------------------------------------------------------------------------

    /// Whether the provider's catalogue has `service` (e.g. `block-storage`).
    pub async fn has_service(&self, service: &str) -> Result<bool, DriverError> {
        self.token_for("compute", false).await?;
        let guard = self.token.lock().await;
        Ok(guard
            .as_ref()
            .is_some_and(|t| t.catalog.contains_key(service)))
    }

    /// The Cinder volume of zhengyun's volume `volume`: the one carrying its marker, else
    /// (an adopted volume, whose zhengyun id is the Cinder id) the one with that id.
    pub async fn find_volume(&self, volume: Uuid) -> Result<Option<CinderVolume>, DriverError> {
        let own = self.project_id().await?;
        let v = self
            .call(
                "block-storage",
                reqwest::Method::GET,
                &format!("/volumes/detail?name=zy-{}", volume.simple()),
                None,
            )
            .await?;
        let found = v
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| parse_volume(x, &own))
            .find(|x| x.marker == Some(volume));
        if found.is_some() {
            return Ok(found);
        }
        self.volume(&volume.to_string()).await
    }

    /// One volume by its Cinder id; `None` when Cinder has no such volume.
    pub async fn volume(&self, id: &str) -> Result<Option<CinderVolume>, DriverError> {
        if Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        let own = self.project_id().await?;
        match self
            .call(
                "block-storage",
                reqwest::Method::GET,
                &format!("/volumes/{id}"),
                None,
            )
            .await
        {
            Ok(v) => Ok(v
                .get("volume")
                .and_then(|x| parse_volume(x, &own))
                .filter(|x| x.status != "deleted")),
            Err(DriverError::Permanent(m)) if m.contains(" 404:") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every volume of an OpenStack project (all pages).
    pub async fn list_volumes(&self, project: &str) -> Result<Vec<CinderVolume>, DriverError> {
        self.list_all(
            "block-storage",
            "volumes",
            project,
            |x| parse_volume(x, project),
            |x| x.id.clone(),
        )
        .await
    }
}

/// A hypervisor of the provider (shown as one of its hosts, read-only).
#[derive(Debug, Clone, PartialEq)]
pub struct Hypervisor {
    pub id: String,
    pub name: String,
    pub state_up: bool,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub availability_zone: Option<String>,
}

/// Hypervisors from `os-hypervisors/detail`, each with its availability zone from
/// `os-availability-zone/detail` (matched by the compute service's host name).
pub fn parse_hypervisors(hypervisors: &Value, zones: &Value) -> Vec<Hypervisor> {
    let mut az_of: HashMap<String, String> = HashMap::new();
    for z in zones
        .get("availabilityZoneInfo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = z.get("zoneName").and_then(Value::as_str) else {
            continue;
        };
        if let Some(hosts) = z.get("hosts").and_then(Value::as_object) {
            for h in hosts.keys() {
                az_of.insert(h.clone(), name.to_string());
            }
        }
    }
    hypervisors
        .get("hypervisors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let host = h
                .pointer("/service/host")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Some(Hypervisor {
                id: match h.get("id")? {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                name: h
                    .get("hypervisor_hostname")
                    .and_then(Value::as_str)
                    .unwrap_or("hypervisor")
                    .to_string(),
                state_up: h.get("state").and_then(Value::as_str) != Some("down"),
                vcpus: h.get("vcpus").and_then(Value::as_u64).unwrap_or(0) as u32,
                memory_mib: h.get("memory_mb").and_then(Value::as_u64).unwrap_or(0),
                disk_gib: h.get("local_gb").and_then(Value::as_u64).unwrap_or(0),
                availability_zone: az_of.get(host).cloned(),
            })
        })
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// --- the driver ----------------------------------------------------------------------------

/// The driver of one `openstack` provider.
pub struct OpenStackDriver {
    pub client: OpenStackClient,
    /// The availability zone of each zhengyun host of this provider (from the zone
    /// mappings; filled when hosts are synchronised).
    pub host_zones: std::sync::RwLock<HashMap<Uuid, String>>,
}

impl OpenStackDriver {
    pub fn new(settings: OpenStackSettings) -> Result<OpenStackDriver, String> {
        Ok(OpenStackDriver {
            client: OpenStackClient::new(settings)?,
            host_zones: Default::default(),
        })
    }

    async fn converge(&self, spec: &InstanceSpec, want: PowerState) -> Result<(), DriverError> {
        let Some(server) = self.client.find_server(spec.instance_id).await? else {
            let az = self
                .host_zones
                .read()
                .ok()
                .and_then(|m| m.get(&spec.host_id).cloned());
            self.client.create_server(spec, az.as_deref()).await?;
            return Err(DriverError::InProgress(
                "server accepted by Nova; building".into(),
            ));
        };
        match next_step(&server, want) {
            Step::Done => Ok(()),
            Step::Act(a) => {
                self.client.action(&server.id, a, Value::Null).await?;
                Err(DriverError::InProgress(format!("{a} requested")))
            }
            Step::Wait(m) => Err(DriverError::InProgress(m)),
            Step::Failed(m) => Err(DriverError::Permanent(m)),
        }
    }
}

impl ComputeDriver for OpenStackDriver {
    fn kind(&self) -> &'static str {
        "openstack"
    }

    fn simulated(&self) -> bool {
        false
    }

    /// The root disk is Nova's (created with the server).
    fn create_disk<'a>(&'a self, _spec: &'a InstanceSpec) -> DriverFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn delete_disk(&self, _instance_id: Uuid, _host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn ensure_instance<'a>(
        &'a self,
        spec: &'a InstanceSpec,
        state: PowerState,
    ) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let want = if state == PowerState::Missing {
                PowerState::Running
            } else {
                state
            };
            self.converge(spec, want).await
        })
    }

    fn reboot(&self, instance_id: Uuid, _host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let s =
                self.client.find_server(instance_id).await?.ok_or_else(|| {
                    DriverError::Permanent("the provider has no such server".into())
                })?;
            if s.task_state.is_some() {
                return Err(DriverError::InProgress("Nova task in progress".into()));
            }
            self.client
                .action(&s.id, "reboot", json!({"type": "SOFT"}))
                .await
        })
    }

    fn resize<'a>(&'a self, spec: &'a InstanceSpec) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            let s = self
                .client
                .find_server(spec.instance_id)
                .await?
                .ok_or_else(|| DriverError::Permanent("the provider has no such server".into()))?;
            if s.task_state.is_some() {
                return Err(DriverError::InProgress("Nova task in progress".into()));
            }
            if s.status == "VERIFY_RESIZE" {
                match self
                    .client
                    .action(&s.id, "confirmResize", Value::Null)
                    .await
                {
                    // Nova confirms in the background and shows VERIFY_RESIZE (with no
                    // task state) until it is done; a second confirm meanwhile is refused
                    // with this 400, which says only that the first one is under way.
                    Ok(()) => {}
                    Err(DriverError::Permanent(m)) if m.contains("has not been resized") => {}
                    Err(e) => return Err(e),
                }
                return Err(DriverError::InProgress("resize being confirmed".into()));
            }
            if s.vcpus == spec.vcpus && s.memory_mib == spec.memory_mib {
                return Ok(());
            }
            let flavor = self.client.flavor_for(spec).await?;
            self.client
                .action(&s.id, "resize", json!({"flavorRef": flavor}))
                .await?;
            Err(DriverError::InProgress("resize requested".into()))
        })
    }

    fn delete_instance(&self, instance_id: Uuid, _host_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let Some(s) = self.client.find_server(instance_id).await? else {
                return Ok(());
            };
            if s.task_state.as_deref() != Some("deleting") {
                match self
                    .client
                    .call(
                        "compute",
                        reqwest::Method::DELETE,
                        &format!("/servers/{}", s.id),
                        None,
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(DriverError::Permanent(m)) if m.contains(" 404:") => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            Err(DriverError::InProgress("server being deleted".into()))
        })
    }

    fn status(&self, instance_id: Uuid, _host_id: Uuid) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            Ok(match self.client.find_server(instance_id).await? {
                None => PowerState::Missing,
                Some(s) => match s.status.as_str() {
                    "SHUTOFF" | "STOPPED" | "SUSPENDED" | "PAUSED" | "SHELVED"
                    | "SHELVED_OFFLOADED" | "ERROR" => PowerState::Stopped,
                    "DELETED" | "SOFT_DELETED" => PowerState::Missing,
                    _ => PowerState::Running,
                },
            })
        })
    }

    fn console_log(
        &self,
        instance_id: Uuid,
        _host_id: Uuid,
        max_lines: usize,
    ) -> DriverFuture<'_, String> {
        Box::pin(async move {
            let Some(s) = self.client.find_server(instance_id).await? else {
                return Ok(String::new());
            };
            let v = self
                .client
                .call(
                    "compute",
                    reqwest::Method::POST,
                    &format!("/servers/{}/action", s.id),
                    Some(&json!({"os-getConsoleOutput": {"length": max_lines}})),
                )
                .await?;
            Ok(v.get("output")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string())
        })
    }

    fn attach_volume(
        &self,
        volume_id: Uuid,
        size_gib: u64,
        instance_id: Uuid,
        _host_id: Uuid,
    ) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let server =
                self.client.find_server(instance_id).await?.ok_or_else(|| {
                    DriverError::Permanent("the provider has no such server".into())
                })?;
            let Some(found) = self.client.find_volume(volume_id).await? else {
                self.client
                    .call(
                        "block-storage",
                        reqwest::Method::POST,
                        "/volumes",
                        Some(&json!({"volume": {
                            "size": size_gib.max(1),
                            "name": format!("zy-{}", volume_id.simple()),
                            "metadata": {VOLUME_MARKER: volume_id.to_string()},
                        }})),
                    )
                    .await?;
                return Err(DriverError::InProgress("volume being created".into()));
            };
            let (id, status) = (found.id, found.status);
            if found.size_gib < size_gib && matches!(status.as_str(), "available" | "in-use") {
                // Extended in zhengyun (attached or not): Cinder grows it, and Nova tells
                // the guest when it is attached (3.42 is the first microversion that
                // extends an attached volume).
                self.client
                    .call_cinder_at(
                        "3.42",
                        reqwest::Method::POST,
                        &format!("/volumes/{id}/action"),
                        Some(&json!({"os-extend": {"new_size": size_gib}})),
                    )
                    .await?;
                return Err(DriverError::InProgress("volume being extended".into()));
            }
            if found.attachments.contains(&server.id) && status == "in-use" {
                return Ok(());
            }
            match status.as_str() {
                "available" => {
                    self.client
                        .call(
                            "compute",
                            reqwest::Method::POST,
                            &format!("/servers/{}/os-volume_attachments", server.id),
                            Some(&json!({"volumeAttachment": {"volumeId": id}})),
                        )
                        .await?;
                    Err(DriverError::InProgress("volume being attached".into()))
                }
                "error" | "error_attaching" => Err(DriverError::Permanent(format!(
                    "the provider's volume is in state {status}"
                ))),
                other => Err(DriverError::InProgress(format!("volume is {other}"))),
            }
        })
    }

    fn detach_volume(
        &self,
        volume_id: Uuid,
        instance_id: Uuid,
        _host_id: Uuid,
    ) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let Some(found) = self.client.find_volume(volume_id).await? else {
                return Ok(());
            };
            let (id, status) = (found.id, found.status);
            let Some(server) = self.client.find_server(instance_id).await? else {
                return Ok(());
            };
            if !found.attachments.contains(&server.id) {
                return if status == "detaching" {
                    Err(DriverError::InProgress("volume being detached".into()))
                } else {
                    Ok(())
                };
            }
            if status == "in-use" {
                self.client
                    .call(
                        "compute",
                        reqwest::Method::DELETE,
                        &format!("/servers/{}/os-volume_attachments/{id}", server.id),
                        None,
                    )
                    .await?;
            }
            Err(DriverError::InProgress("volume being detached".into()))
        })
    }

    /// Deletes the Cinder volume (zhengyun's volume is detached); one Cinder does not have
    /// is deleted already. A volume attached in the provider (outside zhengyun) is refused
    /// with the reason: detach it there.
    fn delete_volume(&self, volume_id: Uuid) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let Some(v) = self.client.find_volume(volume_id).await? else {
                return Ok(());
            };
            match v.status.as_str() {
                "deleting" => return Err(DriverError::InProgress("volume being deleted".into())),
                "in-use" | "attaching" | "reserved" => {
                    return Err(DriverError::Permanent(format!(
                        "the provider's volume {} is attached to server {} there; detach it in the provider first",
                        v.id,
                        v.attachments.join(", ")
                    )))
                }
                "available" | "error" | "error_restoring" | "error_extending" | "error_managing" => {}
                other => return Err(DriverError::InProgress(format!("volume is {other}"))),
            }
            match self
                .client
                .call(
                    "block-storage",
                    reqwest::Method::DELETE,
                    &format!("/volumes/{}", v.id),
                    None,
                )
                .await
            {
                Ok(_) => Err(DriverError::InProgress("volume being deleted".into())),
                Err(DriverError::Permanent(m)) if m.contains(" 404:") => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// The provider's hypervisors are its own business (and its own HA): zhengyun does not
    /// declare them dead.
    fn host_alive(&self, _host_id: Uuid) -> DriverFuture<'_, bool> {
        Box::pin(async { Ok(true) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_takes_the_public_endpoint_of_the_region() {
        let token = json!({"token": {"catalog": [
            {"type": "compute", "endpoints": [
                {"interface": "internal", "region_id": "RegionOne", "url": "http://internal:8774/v2.1"},
                {"interface": "public", "region_id": "RegionTwo", "url": "http://two:8774/v2.1"},
                {"interface": "public", "region_id": "RegionOne", "url": "http://one:8774/v2.1/"}]},
            {"type": "volumev3", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://one:8776/v3/abc"}]},
            {"type": "image", "endpoints": []}]}});
        let c = parse_catalog(&token, "RegionOne");
        assert_eq!(c["compute"], "http://one:8774/v2.1");
        assert_eq!(c["block-storage"], "http://one:8776/v3/abc");
        assert!(!c.contains_key("image"));
        assert!(parse_catalog(&json!({}), "RegionOne").is_empty());
    }

    #[test]
    fn microversion_is_the_newest_wanted_within_the_providers_range() {
        assert_eq!(negotiate("2.1", "2.104", (2, 79), (2, 47)), Ok((2, 79)));
        assert_eq!(negotiate("2.1", "2.60", (2, 79), (2, 47)), Ok((2, 60)));
        assert!(matches!(
            negotiate("2.1", "2.38", (2, 79), (2, 47)),
            Err(DriverError::Permanent(_))
        ));
        // A provider that no longer offers old versions but does offer ours.
        assert_eq!(negotiate("2.50", "2.90", (2, 79), (2, 47)), Ok((2, 79)));
        assert!(negotiate("2.80", "2.90", (2, 79), (2, 47)).is_err());
        // Nonsense in the version document: treated as the legacy 2.1.
        assert!(negotiate("", "garbage", (2, 79), (2, 47)).is_err());
    }

    #[test]
    fn errors_carry_the_providers_message_and_the_right_kind() {
        let e = classify(
            "compute",
            400,
            r#"{"badRequest": {"message": "Invalid flavorRef provided.", "code": 400}}"#,
        );
        assert_eq!(
            e,
            DriverError::Permanent(
                "OpenStack compute answered 400: Invalid flavorRef provided.".into()
            )
        );
        assert!(matches!(
            classify("network", 503, r#"{"NeutronError": {"message": "busy"}}"#),
            DriverError::InProgress(m) if m.ends_with("busy") && m.starts_with(UNAVAILABLE)
        ));
        assert!(matches!(
            classify("compute", 500, r#"{"computeFault": {"message": "boom"}}"#),
            DriverError::Transient(m) if m.ends_with("boom")
        ));
        assert!(matches!(
            classify(
                "compute",
                409,
                "{\"conflictingRequest\": {\"message\": \"task_state\"}}"
            ),
            DriverError::Transient(_)
        ));
        assert!(matches!(
            classify("compute", 429, ""),
            DriverError::Transient(_)
        ));
        assert!(
            matches!(classify("compute", 403, "<html>"), DriverError::Permanent(m) if m.contains("<html>"))
        );
        assert_eq!(
            provider_message(r#"{"error": {"message": "No", "code": 401}}"#),
            "No"
        );
    }

    #[test]
    fn breaker_opens_after_consecutive_failures_and_probes_after_the_cooldown() {
        let mut b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.allow(t0));
            b.record(false, t0);
        }
        assert!(b.allow(t0));
        b.record(true, t0);
        for _ in 0..3 {
            assert!(b.allow(t0));
            b.record(false, t0);
        }
        assert!(b.is_open(t0));
        assert!(!b.allow(t0 + Duration::from_secs(5)));
        // Half-open: one probe; its failure opens the breaker again at once.
        assert!(b.allow(t0 + Duration::from_secs(11)));
        b.record(false, t0 + Duration::from_secs(11));
        assert!(!b.allow(t0 + Duration::from_secs(12)));
        assert!(b.allow(t0 + Duration::from_secs(22)));
        b.record(true, t0 + Duration::from_secs(22));
        assert!(!b.is_open(t0 + Duration::from_secs(22)));
    }

    fn server(status: &str, task: Option<&str>) -> Server {
        Server {
            id: "s".into(),
            name: "n".into(),
            status: status.into(),
            task_state: task.map(str::to_string),
            project_id: "p".into(),
            vcpus: 1,
            memory_mib: 512,
            disk_gib: 1,
            flavor_name: "m1.tiny".into(),
            marker: None,
            fault: Some("No valid host".into()),
            availability_zone: None,
            hypervisor: None,
            image_id: None,
        }
    }

    #[test]
    fn power_state_steps_follow_novas_states() {
        use PowerState::*;
        assert_eq!(next_step(&server("ACTIVE", None), Running), Step::Done);
        assert_eq!(
            next_step(&server("ACTIVE", None), Stopped),
            Step::Act("os-stop")
        );
        assert_eq!(
            next_step(&server("SHUTOFF", None), Running),
            Step::Act("os-start")
        );
        assert!(matches!(
            next_step(&server("ACTIVE", Some("powering-off")), Stopped),
            Step::Wait(_)
        ));
        assert!(matches!(
            next_step(&server("BUILD", None), Running),
            Step::Wait(_)
        ));
        assert_eq!(
            next_step(&server("VERIFY_RESIZE", None), Running),
            Step::Act("confirmResize")
        );
        assert!(
            matches!(next_step(&server("ERROR", None), Running), Step::Failed(m) if m.contains("No valid host"))
        );
    }

    #[test]
    fn server_names_carry_the_marker_and_stay_ascii() {
        let id = Uuid::nil();
        assert_eq!(
            server_name("财政-web 01", id),
            format!("web-01-zy-{}", id.simple())
        );
        assert_eq!(server_name("测试", id), format!("vm-zy-{}", id.simple()));
        let v = json!({"id": "x", "status": "ACTIVE", "metadata": {INSTANCE_MARKER: id.to_string()},
            "flavor": {"vcpus": 2, "ram": 4096, "disk": 40, "original_name": "m1.medium"},
            "OS-EXT-STS:task_state": null});
        let s = parse_server(&v).expect("parsed");
        assert_eq!(
            (s.marker, s.vcpus, s.memory_mib, s.task_state),
            (Some(id), 2, 4096, None)
        );
    }

    #[test]
    fn volumes_carry_their_attachments_marker_and_listing_project() {
        let id = Uuid::from_u128(5);
        let v = json!({
            "id": "c0ffee00-0000-4000-8000-000000000001", "name": "data", "status": "in-use",
            "size": 20, "bootable": "false", "availability_zone": "nova",
            "attachments": [{"server_id": "srv-1", "device": "/dev/vdb"}],
            "metadata": {VOLUME_MARKER: id.to_string()},
        });
        let p = parse_volume(&v, "proj-a").expect("volume");
        assert_eq!(p.size_gib, 20);
        assert_eq!(p.attachments, vec!["srv-1".to_string()]);
        assert_eq!(p.marker, Some(id));
        assert_eq!(
            p.project_id, "proj-a",
            "the listing's project without the admin attribute"
        );
        assert!(!p.bootable);
        let mut owned = v.clone();
        owned["os-vol-tenant-attr:tenant_id"] = json!("proj-b");
        owned["bootable"] = json!("true");
        let p = parse_volume(&owned, "proj-a").expect("volume");
        assert_eq!(p.project_id, "proj-b");
        assert!(p.bootable);
        assert!(parse_volume(&json!({"name": "no id"}), "p").is_none());
    }

    #[test]
    fn hypervisors_get_their_availability_zone_from_the_compute_host() {
        let hv = json!({"hypervisors": [
            {"id": "u-1", "hypervisor_hostname": "node1", "state": "up", "vcpus": 64,
             "memory_mb": 262144, "local_gb": 2000, "service": {"host": "cmp1"}},
            {"id": 7, "hypervisor_hostname": "node2", "state": "down", "service": {"host": "cmp2"}}]});
        let zones = json!({"availabilityZoneInfo": [
            {"zoneName": "internal", "hosts": {"ctl": {}}},
            {"zoneName": "az-yibin", "hosts": {"cmp1": {}}}]});
        let h = parse_hypervisors(&hv, &zones);
        assert_eq!(h.len(), 2);
        assert_eq!(
            (h[0].vcpus, h[0].memory_mib, h[0].disk_gib),
            (64, 262144, 2000)
        );
        assert_eq!(h[0].availability_zone.as_deref(), Some("az-yibin"));
        assert_eq!(
            (
                h[1].id.as_str(),
                h[1].state_up,
                h[1].availability_zone.clone()
            ),
            ("7", false, None)
        );
    }

    #[test]
    fn settings_refuse_unknown_fields_and_bad_urls() {
        let ok = json!({"auth_url": "http://127.0.0.1:5000/v3",
            "credential": {"type": "application_credential", "id": "a", "secret": "s"}});
        let s: OpenStackSettings = serde_json::from_value(ok.clone()).expect("parses");
        assert!(s.validate().is_ok());
        assert!(s.verify_tls);
        let mut bad = ok.clone();
        bad["extra"] = json!(1);
        assert!(serde_json::from_value::<OpenStackSettings>(bad).is_err());
        let mut bad = s.clone();
        bad.auth_url = "ftp://x".into();
        assert!(bad.validate().is_err());
        let v = serde_json::to_string(&s.view()).expect("view");
        assert!(
            !v.contains("\"s\""),
            "the secret never appears in the view: {v}"
        );
    }
}
