//! Provider SLA scores (服务质量考核), monthly per provider: availability measured at
//! minute level, ticket timeliness, inspection results and satisfaction, combined by the
//! weighted formula of `SlaPolicy` (set by the supervisor); the availability credit goes
//! onto the provider's bill of that month as its `sla` adjustment line (recomputing
//! replaces the line, never adds a second one).
//!
//! Availability (documented in ARCHITECTURE.md): service minutes are the minutes the
//! provider's instances were billed as running (the usage ledger, `running_secs / 60` per
//! instance); down minutes are, per instance, every minute touched by an HA recovery from
//! the instance's last sign of life (or the failure's detection) to its restart (or the
//! period's end when it never restarted) and every minute the metrics collector found it
//! unreachable for most of its readings (`monitoring::availability`), overlapping
//! intervals merged, at most the instance's service minutes.
//!
//! Read function for the supervision indicators: [`month_score`].

use super::billing::{clock, month_bounds, month_of, rate_period};
use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use zy_model::billing::ResourceKind;
use zy_model::operations::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::billing::UsageFilter;
use zy_store::operations as store;
use zy_store::{Store, Tx};

pub const POLICY_KEY: &str = "sla_policy";
pub const ADJUSTMENT_SOURCE: &str = "sla";
const MINUTE_US: i64 = 60_000_000;

pub async fn policy(s: &Store) -> Result<SlaPolicy, Error> {
    Ok(zy_store::settings::get(s.pool(), POLICY_KEY)
        .await?
        .unwrap_or_default())
}

/// Minutes touched by the intervals (µs, half-open), merged, clipped to [from, to).
pub fn touched_minutes(intervals: &mut [(i64, i64)], from: i64, to: i64) -> i64 {
    let mut mins: Vec<(i64, i64)> = intervals
        .iter()
        .map(|(a, b)| ((*a).max(from), (*b).min(to)))
        .filter(|(a, b)| a < b)
        .map(|(a, b)| {
            (
                a.div_euclid(MINUTE_US),
                (b + MINUTE_US - 1).div_euclid(MINUTE_US),
            )
        })
        .collect();
    mins.sort();
    let mut total = 0;
    let mut cur: Option<(i64, i64)> = None;
    for (a, b) in mins {
        match cur {
            Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((a, b)) = cur {
        total += b - a;
    }
    total
}

/// A provider's score of a month as of now (the metering clock), with its inputs;
/// nothing is written.
pub async fn month_score(
    st: &Store,
    provider_id: &str,
    provider_name: &str,
    month: &str,
) -> Result<SlaScore, Error> {
    let (from, to) = month_bounds(month)?;
    let now = clock(st).await?;
    let end = Timestamp(to.0.min(now.0).max(from.0));
    // Only this provider's resources are rated (a province has many providers).
    let filter = UsageFilter {
        provider_id: provider_id.parse().ok(),
        ..UsageFilter::default()
    };
    let lines = rate_period(st, &filter, from, end).await?;
    let mine: Vec<_> = lines
        .iter()
        .filter(|l| l.provider_id.map(|p| p.to_string()).as_deref() == Some(provider_id))
        .collect();
    let mut service_by: HashMap<&str, i64> = HashMap::new();
    for l in mine.iter().filter(|l| l.kind == ResourceKind::Instance) {
        *service_by.entry(l.resource_id.as_str()).or_default() += l.running_secs / 60;
    }
    let service_minutes: i64 = service_by.values().sum();
    let fee_fen: i64 = if zy_store::billing::month_closed(st.pool(), month).await? {
        zy_store::billing::provider_totals(st, month)
            .await?
            .into_iter()
            .filter(|(p, _, _)| p.as_deref() == Some(provider_id))
            .map(|(_, _, f)| f)
            .sum()
    } else {
        mine.iter().map(|l| l.amount.0).sum()
    };
    let mut by_instance: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for (i, a, b) in store::outages(st, provider_id, from, end).await? {
        by_instance.entry(i).or_default().push((a, b));
    }
    // Minutes monitoring found the instance unreachable (seconds in the table).
    let secs = |us: i64| us.div_euclid(1_000_000);
    for d in
        zy_store::metrics::down_minutes(st, provider_id, secs(from.0), secs(end.0) + 60).await?
    {
        let at = d.minute * 1_000_000;
        by_instance
            .entry(d.instance_id)
            .or_default()
            .push((at, at + MINUTE_US));
    }
    let down_minutes: i64 = by_instance
        .iter_mut()
        .map(|(i, ivs)| {
            touched_minutes(ivs, from.0, end.0).min(*service_by.get(i.as_str()).unwrap_or(&0))
        })
        .sum();
    let tickets = super::tickets::provider_ticket_stats(st, provider_id, from, to).await?;
    let inspections =
        super::inspections::provider_inspection_stats(st, provider_id, from, to).await?;
    let pol = policy(st).await?;
    let ppm = availability_ppm(service_minutes, down_minutes);
    let parts = part_scores(ppm, &tickets, &inspections);
    let pct = credit_pct(&pol.bands, ppm);
    Ok(SlaScore {
        month: month.to_string(),
        provider_id: provider_id.to_string(),
        provider_name: provider_name.to_string(),
        service_minutes,
        down_minutes,
        availability_ppm: ppm,
        tickets,
        inspections,
        parts,
        weights: pol.weights,
        score: (weighted_score(pol.weights, parts) * 100.0).round() / 100.0,
        fee_fen,
        credit_pct: pct,
        credit_fen: credit_fen(fee_fen, pct),
        computed_at: now,
    })
}

/// Computes every provider's score of a month and writes scores and credit lines in one
/// transaction (returned uncommitted, for the caller to audit or commit).
async fn write_month(s: &AppState, month: &str, by: &str) -> Result<(Tx, Vec<SlaScore>), Error> {
    let mut scores = Vec::new();
    for (id, name) in store::provider_names(&s.store).await? {
        scores.push(month_score(&s.store, &id, &name, month).await?);
    }
    let mut tx = s.store.begin_write().await?;
    for sc in &scores {
        store::put_score(&mut tx, sc).await?;
        let reason = format!(
            "服务质量考核：可用性 {:.4}%，扣减 {}% / SLA credit: availability {:.4} %, {} % off",
            sc.availability_ppm as f64 / 10_000.0,
            sc.credit_pct,
            sc.availability_ppm as f64 / 10_000.0,
            sc.credit_pct
        );
        store::put_provider_adjustment(
            &mut tx,
            month,
            &sc.provider_id,
            ADJUSTMENT_SOURCE,
            -sc.credit_fen,
            &reason,
            sc.computed_at,
            by,
        )
        .await?;
    }
    Ok((tx, scores))
}

fn check_month(month: &str) -> Result<(), Error> {
    month_bounds(month).map(|_| ())
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    month: Option<String>,
) -> Result<Vec<SlaScore>, Error> {
    let visible = zy_policy::provider_visibility(&actor.principal, Action::SlaRead);
    if !visible.is_any() {
        authorize(&actor.principal, Action::SlaRead(None))?;
    }
    if let Some(m) = &month {
        check_month(m)?;
    }
    Ok(store::scores(&s.store, month.as_deref())
        .await?
        .into_iter()
        .filter(|x| visible.includes_str(&x.provider_id))
        .collect())
}

pub async fn compute(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    month: &str,
) -> Result<Vec<SlaScore>, Error> {
    authorize(&actor.principal, Action::SlaManage)?;
    let (from, _) = month_bounds(month)?;
    if from > clock(&s.store).await? {
        return Err(Error::validation(
            "month",
            t!(
                "该月尚未开始，无法考核",
                "that month has not begun; there is nothing to score"
            ),
        ));
    }
    let (tx, scores) = write_month(s, month, &actor.user.username).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "compute_sla_scores",
        "sla_month",
        month,
        serde_json::json!({
            "scores": scores.iter().map(|x| serde_json::json!({ "provider": x.provider_id, "score": x.score, "credit_fen": x.credit_fen })).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok(scores)
}

/// The weights and bands every provider is scored by: readable by whoever reads any
/// provider's score.
pub async fn get_policy(s: &AppState, actor: &Actor) -> Result<SlaPolicy, Error> {
    if !zy_policy::provider_visibility(&actor.principal, Action::SlaRead).is_any() {
        authorize(&actor.principal, Action::SlaRead(None))?;
    }
    policy(&s.store).await
}

pub async fn set_policy(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: SlaPolicy,
) -> Result<SlaPolicy, Error> {
    authorize(&actor.principal, Action::SlaManage)?;
    b.validate()?;
    let mut b = b;
    b.bands.sort_by_key(|x| std::cmp::Reverse(x.below_ppm));
    let mut tx = s.store.begin_write().await?;
    zy_store::settings::put(&mut tx, POLICY_KEY, &b).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_sla_policy",
        "settings",
        POLICY_KEY,
        serde_json::to_value(&b).unwrap_or_default(),
    )
    .await?;
    Ok(b)
}

pub fn scorer(s: AppState) -> Arc<dyn crate::tasks::Task> {
    Arc::new(SlaScorer(s))
}

/// `sla_scorer` (singleton, every 10 minutes): once a month is over, scores it (if it has
/// no scores yet) and writes the credit lines. The supervisor recomputes on demand.
struct SlaScorer(AppState);

impl crate::tasks::Task for SlaScorer {
    fn name(&self) -> &'static str {
        "sla_scorer"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(600)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let s = &self.0;
            let now = clock(&s.store).await?;
            let (this_from, _) = month_bounds(&month_of(now))?;
            let last = month_of(Timestamp(this_from.0 - 1));
            if !store::scores(&s.store, Some(&last)).await?.is_empty() {
                return Ok(serde_json::json!({ "month": last, "scored": 0 }));
            }
            let (tx, scores) = write_month(s, &last, "system").await?;
            tx.commit().await.map_err(zy_store::db_error)?;
            Ok(serde_json::json!({ "month": last, "scored": scores.len() }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_touched_are_merged_and_clipped() {
        let m = MINUTE_US;
        // 30 s inside one minute counts that minute; overlapping intervals count once.
        assert_eq!(
            touched_minutes(&mut [(10_000_000, 40_000_000)], 0, 100 * m),
            1
        );
        assert_eq!(
            touched_minutes(&mut [(0, 5 * m), (3 * m, 7 * m + 1)], 0, 100 * m),
            8
        );
        // Clipped to the period.
        assert_eq!(touched_minutes(&mut [(-5 * m, 2 * m)], 0, 100 * m), 2);
        assert_eq!(touched_minutes(&mut [(99 * m, 200 * m)], 0, 100 * m), 1);
        assert_eq!(touched_minutes(&mut [], 0, 100 * m), 0);
    }
}
