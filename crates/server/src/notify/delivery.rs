//! The `notification_delivery` task: sends the outbox (`notification_deliveries`) outside
//! any transaction. Runs on every replica; each pass claims due rows with a lease (one
//! conditional statement, so a row goes to one replica), sends them concurrently, and
//! records each attempt conditional on still holding the lease. A failed attempt is
//! retried with exponential backoff (1 s, 2 s, 4 s … at most 10 min) up to
//! [`MAX_ATTEMPTS`]; a permanent refusal (an SMTP 5xx, an unusable address) fails at once.
//! A replica killed mid-send leaves its rows to whichever replica claims them after the
//! lease (on SQLite, at the next start): a mail may then go out twice, never zero times.

use super::{mail, smtp, webhook};
use crate::state::AppState;
use crate::tasks::Task;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::notifications::{self as repo, DeliveryRow};

/// Attempts before a delivery is given up as failed.
pub const MAX_ATTEMPTS: i64 = 10;
/// Rows claimed per pass, and passes per activation at most.
const BATCH: u32 = 64;
const PASSES: usize = 32;
/// How long a claim lasts; a send never takes longer (SMTP steps and calls have deadlines).
const LEASE_SECS: i64 = 120;

/// The wait before attempt `attempts + 1`, after `attempts` failures (1 s doubling, at
/// most 10 min).
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) - 1;
    Duration::from_secs((1u64 << exp).min(600))
}

pub fn task(state: AppState) -> Arc<dyn Task> {
    Arc::new(Delivery {
        http: webhook::client().ok(),
        state,
    })
}

struct Delivery {
    state: AppState,
    http: Option<reqwest::Client>,
}

/// One attempt's outcome.
struct Attempt {
    ok: bool,
    transient: bool,
    status: Option<i64>,
    error: Option<String>,
}

impl Attempt {
    fn permanent(error: impl Into<String>) -> Attempt {
        Attempt {
            ok: false,
            transient: false,
            status: None,
            error: Some(error.into()),
        }
    }
    fn transient(error: impl Into<String>) -> Attempt {
        Attempt {
            ok: false,
            transient: true,
            status: None,
            error: Some(error.into()),
        }
    }
}

impl Task for Delivery {
    fn name(&self) -> &'static str {
        "notification_delivery"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let (mut sent, mut retried, mut failed) = (0, 0, 0);
            // Passes until nothing is due, so a burst is not held back by the period.
            for _ in 0..PASSES {
                let (s, r, f, claimed) = self.pass().await?;
                sent += s;
                retried += r;
                failed += f;
                if claimed < BATCH as usize {
                    break;
                }
            }
            Ok(serde_json::json!({ "sent": sent, "retried": retried, "failed": failed }))
        })
    }
}

impl Delivery {
    /// Claims one batch, sends it, records the outcomes: (sent, retried, failed, claimed).
    async fn pass(&self) -> Result<(usize, usize, usize, usize), Error> {
        let store = &self.state.store;
        let owner = &self.state.compute.owner;
        let now = Timestamp::now();
        let rows =
            repo::claim_deliveries(store, owner, now, now.plus_secs(LEASE_SECS), BATCH).await?;
        let claimed = rows.len();
        if rows.is_empty() {
            return Ok((0, 0, 0, 0));
        }
        let relay = if rows.iter().any(|r| r.channel == "email") {
            Some(self.relay().await)
        } else {
            None
        };
        let mut set = tokio::task::JoinSet::new();
        for row in rows {
            let this = self.state.clone();
            let http = self.http.clone();
            let relay = relay.clone();
            set.spawn(async move {
                let a = match row.channel.as_str() {
                    "email" => send_mail(&row, relay.flatten()).await,
                    "webhook" => call_webhook(&this, http.as_ref(), &row).await,
                    other => Attempt::permanent(format!("unknown channel {other}")),
                };
                (row, a)
            });
        }
        let (mut sent, mut retried, mut failed) = (0, 0, 0);
        while let Some(done) = set.join_next().await {
            let Ok((row, a)) = done else { continue };
            let retry_at = (!a.ok && a.transient && row.attempts + 1 < MAX_ATTEMPTS)
                .then(|| Timestamp::now().plus_secs(backoff(row.attempts + 1).as_secs() as i64));
            match (a.ok, retry_at) {
                (true, _) => sent += 1,
                (false, Some(_)) => retried += 1,
                (false, None) => failed += 1,
            }
            if !a.ok {
                tracing::warn!(delivery = %row.id, channel = %row.channel, attempts = row.attempts + 1,
                    error = a.error.as_deref().unwrap_or(""), "notification delivery failed");
            }
            repo::record_attempt(
                store,
                row.id,
                owner,
                a.ok,
                a.status,
                a.error.as_deref(),
                retry_at,
            )
            .await?;
        }
        Ok((sent, retried, failed, claimed))
    }

    /// The relay from the mail settings (password opened here, never logged), or why not.
    async fn relay(&self) -> Option<Result<(smtp::Relay, String), String>> {
        let m = match mail::load(&self.state.store).await {
            Ok(Some(m)) if m.enabled => m,
            Ok(_) => return Some(Err("mail is not configured or is turned off".into())),
            Err(e) => return Some(Err(format!("cannot read the mail settings: {e}"))),
        };
        let password = match &m.password {
            Some(p) => match self.state.sealer.open(p) {
                Ok(p) => Some(p),
                Err(_) => {
                    return Some(Err(
                        "the relay password cannot be opened with this server's key".into(),
                    ))
                }
            },
            None => None,
        };
        let extra_roots = match m.ca_pem.as_deref().map(mail::parse_ca_pem) {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Some(Err(format!("the relay's CA certificate: {e}"))),
            None => Vec::new(),
        };
        Some(Ok((
            smtp::Relay {
                host: m.host,
                port: m.port,
                starttls: m.security == mail::MailSecurity::Starttls,
                credentials: m.username.zip(password),
                extra_roots,
            },
            m.from,
        )))
    }
}

async fn send_mail(
    row: &DeliveryRow,
    relay: Option<Result<(smtp::Relay, String), String>>,
) -> Attempt {
    let (relay, from) = match relay {
        Some(Ok(r)) => r,
        // Settings may come back: try again later.
        Some(Err(e)) => return Attempt::transient(e),
        None => return Attempt::transient("the mail settings were not read"),
    };
    let p: serde_json::Value = match serde_json::from_str(&row.payload) {
        Ok(p) => p,
        Err(_) => return Attempt::permanent("the stored e-mail is not readable"),
    };
    let field = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let mail = smtp::Mail {
        from,
        to: field("to"),
        subject: field("subject"),
        body: field("body"),
    };
    match smtp::send(&relay, &mail).await {
        Ok(()) => Attempt {
            ok: true,
            transient: false,
            status: Some(250),
            error: None,
        },
        Err(e) => Attempt {
            ok: false,
            transient: e.transient,
            status: e.code.map(i64::from),
            error: Some(e.message),
        },
    }
}

async fn call_webhook(s: &AppState, http: Option<&reqwest::Client>, row: &DeliveryRow) -> Attempt {
    let Some(http) = http else {
        return Attempt::transient("the webhook client could not be built");
    };
    let Some(id) = row.webhook_id else {
        return Attempt::permanent("the delivery names no webhook");
    };
    let w = match repo::get_webhook(s.store.pool(), id).await {
        Ok(Some(w)) => w,
        Ok(None) => return Attempt::permanent("the webhook was deleted"),
        Err(e) => return Attempt::transient(format!("cannot read the webhook: {e}")),
    };
    if !w.enabled {
        return Attempt::permanent("the webhook is disabled");
    }
    let secret = match s.sealer.open(&w.secret) {
        Ok(s) => s,
        Err(_) => {
            return Attempt::permanent("the webhook secret cannot be opened with this server's key")
        }
    };
    let r = webhook::call(
        http,
        &w.url,
        &secret,
        &row.kind,
        &row.id.to_string(),
        &row.payload,
    )
    .await;
    Attempt {
        ok: r.ok(),
        transient: true,
        status: r.status.map(i64::from),
        error: r.error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_ten_minutes() {
        let waits: Vec<u64> = (1..=12).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(backoff(i64::MAX).as_secs(), 600);
        assert_eq!(backoff(0).as_secs(), 1);
    }
}
