//! The `alert_evaluator` task (one replica, every metrics interval): for each rule, the
//! instances or hosts it covers, their recent raw points (or crash events) read from the
//! database, and the state each one is in — nothing, pending, firing. Transitions are
//! conditional statements (`zy_store::alerts::to_firing` …) committed with the history
//! entry and the notices, so an evaluator on a second replica, or a pass repeated after a
//! crash, never fires or resolves an alert twice. Silenced alerts are recorded but
//! nobody is told.
//!
//! Reading from the database (not the collector's memory) keeps the evaluator correct on
//! whichever replica runs it; the figures lag by at most the collector's write period.

use crate::notify::{self, Notice, NoticeKind};
use crate::state::AppState;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::time::Duration;
use zy_model::alerts::*;
use zy_model::id::UserId;
use zy_model::metrics::{Block, Resolution, SCALE};
use zy_model::role::{Role, Scope};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::metrics::{MeteredHost, MeteredInstance};
use zy_store::Tx;

pub fn task(s: AppState) -> std::sync::Arc<dyn crate::tasks::Task> {
    std::sync::Arc::new(Evaluator(s))
}

pub struct Evaluator(AppState);

impl crate::tasks::Task for Evaluator {
    fn name(&self) -> &'static str {
        "alert_evaluator"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(self.0.config.metrics_interval_secs.max(1))
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(pass(&self.0))
    }
}

/// Called in the transaction that records a firing or resolved (not silenced) alert, so
/// a ticket opened here exists exactly when the alert does (`app::tickets::on_alert`:
/// rules with `open_ticket` open one, a resolved alert notes it on the ticket).
pub async fn supervision_ticket_seam(
    s: &AppState,
    tx: &mut Tx,
    rule: &AlertRule,
    event: &AlertEvent,
) -> Result<(), Error> {
    crate::app::tickets::on_alert(tx, &s.store, rule, event).await
}

/// One instance or host a rule may cover, with everything it belongs to (for scopes and
/// silences).
struct Target {
    kind: AlertTarget,
    id: String,
    name: String,
    chain: Vec<(&'static str, String)>,
}

fn targets(hosts: &[MeteredHost], instances: &[MeteredInstance]) -> Vec<Target> {
    let mut out = Vec::with_capacity(hosts.len() + instances.len());
    for i in instances {
        out.push(Target {
            kind: AlertTarget::Instance,
            id: i.id.clone(),
            name: i.name.clone(),
            chain: vec![
                ("instance", i.id.clone()),
                ("project", i.project_id.clone()),
                ("department", i.department_id.clone()),
                ("host", i.host_id.clone()),
                ("zone", i.zone_id.clone()),
                ("provider", i.provider_id.clone()),
            ],
        });
    }
    for h in hosts {
        out.push(Target {
            kind: AlertTarget::Host,
            id: h.id.clone(),
            name: h.name.clone(),
            chain: vec![
                ("host", h.id.clone()),
                ("zone", h.zone_id.clone()),
                ("provider", h.provider_id.clone()),
            ],
        });
    }
    out
}

fn covers(chain: &[(&'static str, String)], scope: &str, id: &str) -> bool {
    chain.iter().any(|(s, e)| *s == scope && e == id)
}

/// What a rule says about one target now: (since, value, firing), or nothing.
type Verdict = Option<(i64, f64, bool)>;

async fn pass(s: &AppState) -> Result<serde_json::Value, Error> {
    let rules = zy_store::alerts::rules(&s.store, None).await?;
    if rules.is_empty() {
        return Ok(serde_json::json!({ "rules": 0 }));
    }
    let now = Timestamp::now();
    let now_s = now.0 / 1_000_000;
    let interval = i64::try_from(s.config.metrics_interval_secs.max(1)).unwrap_or(10);
    let fresh = i64::try_from(s.config.metrics_flush_secs).unwrap_or(60) + 3 * interval;
    let (hosts, instances) = zy_store::metrics::metered(&s.store).await?;
    let all = targets(&hosts, &instances);
    let silences: Vec<_> = zy_store::alerts::silences(&s.store, now)
        .await?
        .into_iter()
        .filter(|x| x.starts_at.0 <= now.0)
        .collect();
    let crashes = if rules.iter().any(|r| r.kind == AlertKind::Crashes) {
        zy_store::alerts::crashes_since(&s.store, now.plus_secs(-3600)).await?
    } else {
        HashMap::new()
    };
    let (mut fired, mut resolved) = (0, 0);
    for rule in &rules {
        let covered: Vec<&Target> = all
            .iter()
            .filter(|t| {
                t.kind == rule.target && covers(&t.chain, rule.scope.as_str(), &rule.entity_id)
            })
            .collect();
        let verdicts: HashMap<&str, Verdict> = match rule.kind {
            AlertKind::Crashes => covered
                .iter()
                .map(|t| {
                    let n = crashes.get(&t.id).copied().unwrap_or(0);
                    let v = (n >= rule.crash_count.unwrap_or(i64::MAX))
                        .then_some((now_s, n as f64, true));
                    (t.id.as_str(), v)
                })
                .collect(),
            AlertKind::Threshold => {
                threshold_verdicts(s, rule, &covered, now_s, fresh, interval).await?
            }
        };
        let states = zy_store::alerts::states_of(&s.store, &rule.id).await?;
        for t in &covered {
            let verdict = verdicts.get(t.id.as_str()).copied().flatten();
            let had = states.get(&t.id).map(String::as_str);
            // Nothing to do: no alert and none held; firing and already firing; pending
            // (or firing) and already held.
            let unchanged = matches!(
                (verdict, had),
                (None, None)
                    | (Some((_, _, true)), Some("firing"))
                    | (Some((_, _, false)), Some(_))
            );
            if unchanged {
                continue;
            }
            let silenced = silences
                .iter()
                .any(|x| covers(&t.chain, x.scope.as_str(), &x.entity_id));
            let (f, r) = transition(s, rule, t, verdict, silenced, now).await?;
            fired += f;
            resolved += r;
        }
    }
    Ok(serde_json::json!({
        "rules": rules.len(), "targets": all.len(), "fired": fired, "resolved": resolved,
    }))
}

async fn threshold_verdicts<'a>(
    s: &AppState,
    rule: &AlertRule,
    covered: &[&'a Target],
    now_s: i64,
    fresh: i64,
    interval: i64,
) -> Result<HashMap<&'a str, Verdict>, Error> {
    let (Some(series), Some(threshold)) = (rule.series, rule.threshold) else {
        return Ok(HashMap::new());
    };
    let op = rule.op.unwrap_or(AlertOp::Gt);
    let from = now_s - rule.for_secs - fresh - interval;
    let ids: Vec<String> = covered.iter().map(|t| t.id.clone()).collect();
    let blocks = zy_store::metrics::read_blocks_many(
        &s.store,
        rule.target.as_str(),
        &ids,
        Resolution::Raw,
        Resolution::Raw.block_start(from),
        Resolution::Raw.block_start(now_s),
    )
    .await?;
    let mut points: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    for (entity, data) in blocks {
        let Ok(b) = Block::decode(&data) else {
            continue;
        };
        let Some(col) = b.cols.get(series.index()) else {
            continue;
        };
        let p = points.entry(entity).or_default();
        for (t, v) in b.ts.iter().zip(col) {
            if let (true, Some(v)) = (*t >= from, v) {
                p.push((*t, *v as f64 / SCALE));
            }
        }
    }
    Ok(covered
        .iter()
        .map(|t| {
            let v = points
                .get(&t.id)
                .and_then(|p| threshold_state(p, op, threshold, rule.for_secs, now_s, fresh));
            (t.id.as_str(), v)
        })
        .collect())
}

/// Applies one change of state in its own transaction; returns (fired, resolved).
async fn transition(
    s: &AppState,
    rule: &AlertRule,
    t: &Target,
    verdict: Verdict,
    silenced: bool,
    now: Timestamp,
) -> Result<(u32, u32), Error> {
    let mut tx = s.store.begin_write().await?;
    let event = |state: &str, value: Option<f64>| AlertEvent {
        id: uuid::Uuid::now_v7().to_string(),
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        department_id: rule.department_id.clone(),
        target: t.kind,
        target_id: t.id.clone(),
        target_name: t.name.clone(),
        state: state.to_string(),
        value,
        at: now,
        silenced,
    };
    let mut out = (0, 0);
    match verdict {
        Some((since, value, true)) => {
            let since = Timestamp(since * 1_000_000);
            if zy_store::alerts::to_firing(&mut tx, &rule.id, &t.id, &t.name, since, value).await? {
                let e = event("firing", Some(value));
                zy_store::alerts::insert_event(&mut tx, &e).await?;
                if !silenced {
                    announce(&mut tx, rule, &e, NoticeKind::AlertFiring).await?;
                    supervision_ticket_seam(s, &mut tx, rule, &e).await?;
                }
                out.0 = 1;
            }
        }
        Some((since, value, false)) => {
            let since = Timestamp(since * 1_000_000);
            zy_store::alerts::to_pending(&mut tx, &rule.id, &t.id, &t.name, since, value).await?;
        }
        None => {
            if zy_store::alerts::clear(&mut tx, &rule.id, &t.id)
                .await?
                .as_deref()
                == Some("firing")
            {
                let e = event("resolved", None);
                zy_store::alerts::insert_event(&mut tx, &e).await?;
                if !silenced {
                    announce(&mut tx, rule, &e, NoticeKind::AlertResolved).await?;
                    supervision_ticket_seam(s, &mut tx, rule, &e).await?;
                }
                out.1 = 1;
            }
        }
    }
    tx.commit().await.map_err(zy_store::db_error)?;
    Ok(out)
}

/// The rule's department admins, or for the infrastructure the platform admins and the
/// operators of the provider it is about.
async fn announce(
    tx: &mut Tx,
    rule: &AlertRule,
    e: &AlertEvent,
    kind: NoticeKind,
) -> Result<(), Error> {
    let mut to: Vec<UserId> = Vec::new();
    match rule.department_id.as_deref().and_then(|d| d.parse().ok()) {
        Some(d) => to.extend(notify::holders(tx, Role::DeptAdmin, Scope::Department(d)).await?),
        None => {
            to.extend(notify::holders(tx, Role::PlatformAdmin, Scope::Platform).await?);
            let provider =
                zy_store::inventory::provider_of(&mut **tx, rule.scope.as_str(), &rule.entity_id)
                    .await?;
            if let Some(p) = provider {
                to.extend(notify::holders(tx, Role::ProviderOperator, Scope::Provider(p)).await?);
            }
        }
    }
    let value = e.value.map(|v| format!("{v:.2}"));
    notify::enqueue(
        tx,
        &Notice {
            kind,
            to,
            params: serde_json::json!({ "rule": rule.name, "target": e.target_name, "value": value }),
            link: Some("/alerts".into()),
            subject: e.target_id.parse().ok(),
        },
    )
    .await
}
