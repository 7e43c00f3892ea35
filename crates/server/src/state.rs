//! The state shared by every request: the store, cached security settings, metrics and the
//! map from routes to operation names used by the audit log.

use crate::config::Config;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use zy_model::security::SecuritySettings;
use zy_model::Error;
use zy_store::Store;

pub const SECURITY_SETTINGS_KEY: &str = "security";

/// How long a replica trusts its cached settings before re-reading them.
const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// Keys each login rate limiter remembers (about 100 bytes each).
const LIMITER_KEYS: usize = 65_536;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub config: Config,
    pub metrics: Metrics,
    pub auth_cache: crate::auth::cache::AuthCache,
    pub compute: std::sync::Arc<crate::compute::Compute>,
    pub sealer: crate::auth::seal::Sealer,
    settings: RwLock<(SecuritySettings, Instant)>,
    /// Bounds concurrent password hashes (`auth/password.rs`).
    pub hashing: crate::auth::password::HashGate,
    /// Login attempts per source address and per account name (`auth/limiter.rs`).
    pub login_by_address: crate::auth::limiter::RateLimiter,
    pub login_by_account: crate::auth::limiter::RateLimiter,
    /// Refused attempts awaiting their summary audit record (`refusals.rs`).
    pub refusals: crate::refusals::Refusals,
    /// `(METHOD, /v1/path/{id})` → operation id, from the generated OpenAPI document.
    pub operations: HashMap<(String, String), String>,
    /// The syslog receiver's counters (`syslog.rs`).
    pub syslog: Arc<crate::syslog::Stats>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub async fn new(
        store: Store,
        config: Config,
        operations: HashMap<(String, String), String>,
    ) -> Result<Self, Error> {
        let settings = load_settings(&store).await?;
        let sealer = crate::auth::seal::Sealer::from_file(&config.secret_key_file())?;
        Ok(AppState(Arc::new(Inner {
            store,
            config,
            metrics: Metrics::default(),
            auth_cache: Default::default(),
            compute: crate::compute::Compute::new(),
            sealer,
            settings: RwLock::new((settings, Instant::now())),
            hashing: crate::auth::password::HashGate::for_this_machine(),
            login_by_address: crate::auth::limiter::RateLimiter::new(LIMITER_KEYS),
            login_by_account: crate::auth::limiter::RateLimiter::new(LIMITER_KEYS),
            refusals: Default::default(),
            operations,
            syslog: Default::default(),
        })))
    }

    /// The security settings, re-read from the database every few seconds so a change made
    /// through another replica takes effect here too.
    pub async fn settings(&self) -> Result<SecuritySettings, Error> {
        if let Ok(g) = self.settings.read() {
            if g.1.elapsed() < SETTINGS_TTL {
                return Ok(g.0.clone());
            }
        }
        let fresh = load_settings(&self.store).await?;
        self.set_settings(fresh.clone());
        Ok(fresh)
    }

    pub fn set_settings(&self, s: SecuritySettings) {
        if let Ok(mut g) = self.settings.write() {
            *g = (s, Instant::now());
        }
    }
}

async fn load_settings(store: &Store) -> Result<SecuritySettings, Error> {
    Ok(zy_store::settings::get(store.pool(), SECURITY_SETTINGS_KEY)
        .await?
        .unwrap_or_default())
}
