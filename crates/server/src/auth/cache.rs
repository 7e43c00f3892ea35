//! A short-lived cache of authenticated callers, so the hot path of a busy API does not
//! read the token or session, the account and its roles from the database per request.
//!
//! Bounded staleness: an entry is trusted for [`TTL`] at most. This replica empties the
//! cache on every change it serves (any non-GET request), so revocations, locks and role
//! changes made here apply at once; those made through another replica apply within TTL.

use crate::auth::actor::Actor;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 20_000;

#[derive(Clone)]
pub struct Cached {
    pub actor: Actor,
    /// The session's CSRF token, checked on every cookie-authenticated change.
    pub csrf: Option<String>,
    at: Instant,
}

#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<(String, bool), Cached>>,
}

impl AuthCache {
    pub fn get(&self, secret_hash: &str, via_cookie: bool) -> Option<Cached> {
        let g = self.entries.lock().ok()?;
        let hit = g.get(&(secret_hash.to_string(), via_cookie))?;
        (hit.at.elapsed() < TTL).then(|| hit.clone())
    }

    pub fn put(&self, secret_hash: String, via_cookie: bool, actor: Actor, csrf: Option<String>) {
        if let Ok(mut g) = self.entries.lock() {
            if g.len() >= MAX_ENTRIES {
                g.retain(|_, v| v.at.elapsed() < TTL);
                if g.len() >= MAX_ENTRIES {
                    g.clear();
                }
            }
            g.insert(
                (secret_hash, via_cookie),
                Cached {
                    actor,
                    csrf,
                    at: Instant::now(),
                },
            );
        }
    }

    pub fn clear(&self) {
        if let Ok(mut g) = self.entries.lock() {
            g.clear();
        }
    }
}
