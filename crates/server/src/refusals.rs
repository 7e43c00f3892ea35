//! Attempts refused before any real work — rate-limited or hash-queue-full logins, agent
//! joins with a bad token, changes refused because the server was busy — are still audited
//! (MLPS), but not one database write each: a flood would then queue every other writer
//! behind the audit chain. They are counted here, per source address and action, and
//! [`Refusals::flush`] writes one summarising audit record per source and action, in one
//! transaction, every [`FLUSH_EVERY`] and when the server stops. A flush that cannot write
//! puts its counts back, so nothing is lost while the server runs normally.
//!
//! Attempts that reach the password check are audited one by one, as before.

use crate::state::AppState;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;
use zy_model::audit::{AuditEntry, Outcome};
use zy_model::id::RequestId;
use zy_model::time::Timestamp;
use zy_model::Error;

pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// Sources remembered between flushes; the rest are counted under one "other" source.
const MAX_SOURCES: usize = 10_000;
/// Names (user names) remembered per source, as examples in the record.
const MAX_NAMES: usize = 20;

#[derive(Debug, Clone)]
struct Summary {
    count: u64,
    first: Timestamp,
    last: Timestamp,
    codes: BTreeMap<String, u64>,
    names: BTreeSet<String>,
    more_names: bool,
}

#[derive(Default)]
pub struct Refusals {
    table: Mutex<BTreeMap<(String, String), Summary>>,
}

impl Refusals {
    /// Counts one refused attempt of `action` from `source` (`name`: the user name tried).
    pub fn count(&self, source: &str, action: &str, code: &str, name: Option<&str>) {
        let now = Timestamp::now();
        let Ok(mut t) = self.table.lock() else { return };
        let mut key = (source.to_string(), action.to_string());
        if !t.contains_key(&key) && t.len() >= MAX_SOURCES {
            key.0 = "other".into();
        }
        let s = t.entry(key).or_insert_with(|| Summary {
            count: 0,
            first: now,
            last: now,
            codes: BTreeMap::new(),
            names: BTreeSet::new(),
            more_names: false,
        });
        s.count += 1;
        s.last = now;
        *s.codes.entry(code.to_string()).or_default() += 1;
        if let Some(n) = name {
            let n = zy_model::validate::clip(n, 64);
            if s.names.len() < MAX_NAMES {
                s.names.insert(n);
            } else if !s.names.contains(&n) {
                s.more_names = true;
            }
        }
    }

    pub fn pending(&self) -> u64 {
        self.table
            .lock()
            .map(|t| t.values().map(|s| s.count).sum())
            .unwrap_or(0)
    }

    /// Writes one record per source and action counted since the last flush.
    pub async fn flush(&self, s: &AppState) -> Result<usize, Error> {
        let taken = match self.table.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return Ok(0),
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let n = taken.len();
        match write(s, &taken).await {
            Ok(()) => Ok(n),
            Err(e) => {
                self.put_back(taken);
                Err(e)
            }
        }
    }

    fn put_back(&self, old: BTreeMap<(String, String), Summary>) {
        let Ok(mut t) = self.table.lock() else { return };
        for (k, o) in old {
            match t.get_mut(&k) {
                None => {
                    t.insert(k, o);
                }
                Some(s) => {
                    s.count += o.count;
                    s.first = o.first;
                    for (c, n) in o.codes {
                        *s.codes.entry(c).or_default() += n;
                    }
                    for n in o.names {
                        if s.names.len() < MAX_NAMES {
                            s.names.insert(n);
                        }
                    }
                    s.more_names |= o.more_names;
                }
            }
        }
    }
}

async fn write(s: &AppState, taken: &BTreeMap<(String, String), Summary>) -> Result<(), Error> {
    let mut tx = s.store.begin_write().await?;
    for ((source, action), sum) in taken {
        let detail = serde_json::json!({
            "summary": true,
            "attempts": sum.count,
            "first_at": sum.first,
            "last_at": sum.last,
            "codes": sum.codes,
            "names": sum.names,
            "more_names": sum.more_names,
        });
        let entry = AuditEntry {
            at: Timestamp::now(),
            actor_id: None,
            actor_name: "anonymous".into(),
            actor_roles: String::new(),
            source_ip: source.clone(),
            action: action.clone(),
            target_type: "refused_attempts".into(),
            target_id: String::new(),
            outcome: Outcome::Failure,
            request_id: RequestId::new().to_string(),
            detail: detail.to_string(),
        };
        zy_store::audit::append(&mut tx, entry).await?;
    }
    tx.commit().await.map_err(zy_store::db_error)
}

/// The background task that writes the summaries every [`FLUSH_EVERY`] on each replica
/// (the server flushes once more when it stops).
pub fn task(s: AppState) -> std::sync::Arc<dyn crate::tasks::Task> {
    std::sync::Arc::new(FlushRefusals(s))
}

struct FlushRefusals(AppState);

impl crate::tasks::Task for FlushRefusals {
    fn name(&self) -> &'static str {
        "refused_attempts_audit"
    }
    fn period(&self) -> Duration {
        FLUSH_EVERY
    }
    fn activate(&self) -> futures_util::future::BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let written = self.0.refusals.flush(&self.0).await?;
            Ok(
                serde_json::json!({ "records_written": written, "pending": self.0.refusals.pending() }),
            )
        })
    }
}
