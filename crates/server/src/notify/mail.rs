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
}

/// The settings, read in a transaction (as `enqueue` does).
pub async fn load_tx(tx: &mut Tx) -> Result<Option<StoredMail>, Error> {
    zy_store::settings::get(&mut **tx, KEY).await
}

pub async fn load(store: &Store) -> Result<Option<StoredMail>, Error> {
    zy_store::settings::get(store.pool(), KEY).await
}
