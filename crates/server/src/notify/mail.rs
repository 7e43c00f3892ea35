//! The platform's mail settings (SMTP relay), set by the platform admin and stored in the
//! `settings` table under [`KEY`]; the relay password is sealed with the server's key and
//! never returned or logged.

use serde::{Deserialize, Serialize};
use zy_model::Error;
use zy_store::{Store, Tx};

pub const KEY: &str = "notify_mail";

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailSecurity {
    /// Plain SMTP (a relay on the same host or network segment).
    None,
    /// `STARTTLS` required; the relay's certificate is checked against the system's roots.
    Starttls,
}

/// The settings as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredMail {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub from: String,
    pub security: MailSecurity,
    pub username: Option<String>,
    /// Sealed (`auth::seal`).
    pub password: Option<String>,
    /// PEM of the CA that signed the relay's certificate (an internal CA), trusted for
    /// STARTTLS besides the system's roots.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

/// The certificates in a PEM text; an error when there are none or one is malformed.
pub fn parse_ca_pem(pem: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> =
        rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err("no certificate in the PEM text".into()),
        Err(e) => Err(format!("the PEM text is not readable: {e}")),
    }
}

/// The settings, read in a transaction (as `enqueue` does).
pub async fn load_tx(tx: &mut Tx) -> Result<Option<StoredMail>, Error> {
    zy_store::settings::get(&mut **tx, KEY).await
}

pub async fn load(store: &Store) -> Result<Option<StoredMail>, Error> {
    zy_store::settings::get(store.pool(), KEY).await
}
