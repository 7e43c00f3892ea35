//! Idle and zombie resources (闲置资源): the detection pass of the `supervision` task
//! (running instances whose hourly CPU p95 stayed below the threshold over the window,
//! instances stopped and volumes detached for longer than their thresholds), each with a
//! recommendation and the capacity and monthly cost it frees; the department's one-step
//! reclaim (a submitted release or change request; a volume deleted into the recycle
//! bin), dismissal with a reason, and the capacity reclaimed per month and department.

use super::visible;
use crate::app::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use std::collections::{HashMap, HashSet};
use zy_model::id::{DepartmentId, InstanceId, ProjectId, ProviderId, VolumeId};
use zy_model::metrics::{Acc, Block, Resolution, Series, SCALE};
use zy_model::requests::{RequestItem, RequestKind};
use zy_model::supervision::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_rating::EstimateItem;
use zy_store::supervision::{self as repo, Candidate};
use zy_store::Store;

const SETTINGS_KEY: &str = "idle_settings";

pub async fn settings_of(store: &Store) -> Result<IdleSettings, Error> {
    Ok(zy_store::settings::get(store.pool(), SETTINGS_KEY)
        .await?
        .unwrap_or_default())
}

pub async fn get_settings(s: &AppState, actor: &Actor) -> Result<IdleSettings, Error> {
    visible(actor)?;
    settings_of(&s.store).await
}

pub async fn put_settings(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: IdleSettings,
) -> Result<IdleSettings, Error> {
    authorize(&actor.principal, Action::IdleSettingsManage)?;
    b.validate()?;
    let mut tx = s.store.begin_write().await?;
    zy_store::settings::put(&mut tx, SETTINGS_KEY, &b).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_idle_settings",
        "setting",
        SETTINGS_KEY,
        serde_json::to_value(b).unwrap_or_default(),
    )
    .await?;
    Ok(b)
}

/// Hourly mean CPU (%) per instance over `[from, to)` seconds.
async fn hourly_cpu(
    store: &Store,
    ids: &[String],
    from: i64,
    to: i64,
) -> Result<HashMap<String, Vec<f64>>, Error> {
    let blocks = zy_store::metrics::read_blocks_many(
        store,
        "instance",
        ids,
        Resolution::Hour,
        Resolution::Hour.block_start(from),
        Resolution::Hour.block_start(to),
    )
    .await?;
    let mut out: HashMap<String, Vec<f64>> = HashMap::new();
    for (entity, data) in blocks {
        let Ok(b) = Block::decode(&data) else {
            continue;
        };
        for (k, &t) in b.ts.iter().enumerate() {
            if t >= from && t < to {
                if let Some(avg) = Acc::from_rollup(&b, Series::Cpu.index(), k).avg() {
                    out.entry(entity.clone()).or_default().push(avg / SCALE);
                }
            }
        }
    }
    Ok(out)
}

/// Prices per provider, loaded once per pass.
struct Prices(HashMap<String, Option<zy_model::billing::Rates>>);

impl Prices {
    async fn monthly(
        &mut self,
        store: &Store,
        provider: Option<&str>,
        items: &[EstimateItem],
    ) -> Result<Option<i64>, Error> {
        let Some(p) = provider else { return Ok(None) };
        if !self.0.contains_key(p) {
            let rates = match p.parse() {
                Ok(id) => {
                    crate::app::billing::prices::rates_in_force(store, ProviderId(id)).await?
                }
                Err(_) => None,
            };
            self.0.insert(p.to_string(), rates);
        }
        Ok(self.0[p]
            .as_ref()
            .map(|r| zy_rating::estimate_monthly(r, items).fen()))
    }
}

fn instance_item(flavor: &str, vcpus: i64, memory_mib: i64, disk_gib: i64) -> EstimateItem {
    EstimateItem::Instance {
        flavor: flavor.into(),
        vcpus: vcpus.max(0) as u32,
        memory_mib: memory_mib.max(0) as u64,
        disk_gib: disk_gib.max(0) as u64,
        gpus: 0,
        count: 1,
    }
}

/// The largest flavor with at most half the vCPUs and no more memory (a downsize that
/// still fits an instance whose p95 is under the threshold).
pub fn smaller_flavor(
    flavors: &[(String, i64, i64)],
    vcpus: i64,
    memory_mib: i64,
) -> Option<&(String, i64, i64)> {
    flavors
        .iter()
        .filter(|(_, v, m)| *v >= 1 && *v * 2 <= vcpus && *m <= memory_mib)
        .max_by_key(|(_, v, m)| (*v, *m))
}

fn base(c: &Candidate, kind: IdleKind, resource_type: &str, now: Timestamp) -> IdleFinding {
    IdleFinding {
        id: uuid::Uuid::now_v7().to_string(),
        kind,
        resource_type: resource_type.into(),
        resource_id: c.id.clone(),
        resource_name: c.name.clone(),
        department_id: c.department_id.clone(),
        project_id: c.project_id.clone(),
        provider_id: c.provider_id.clone(),
        recommendation: Recommendation::Release,
        target_flavor: None,
        evidence: serde_json::Value::Null,
        vcpus: c.vcpus,
        memory_mib: c.memory_mib,
        disk_gib: c.disk_gib,
        monthly_fen: None,
        state: IdleState::Open,
        request_id: None,
        reason: None,
        decided_by: None,
        detected_at: now,
        updated_at: now,
        reclaimed_at: None,
        generation: 1,
    }
}

/// One detection pass at `now`: records what is idle, clears what is not any more and
/// settles reclaims whose resource is gone or resized.
pub async fn detect(store: &Store, now: Timestamp) -> Result<serde_json::Value, Error> {
    let cfg = settings_of(store).await?;
    let now_s = now.0.div_euclid(1_000_000);
    let mut prices = Prices(HashMap::new());
    let flavors = repo::flavors(store).await?;
    let mut found: Vec<IdleFinding> = Vec::new();

    let running = repo::running_instances(store).await?;
    let from = now_s - cfg.cpu_window_days * 86_400;
    let mut cpu = HashMap::new();
    for chunk in running.chunks(2000) {
        let ids: Vec<String> = chunk.iter().map(|c| c.id.clone()).collect();
        cpu.extend(hourly_cpu(store, &ids, from, now_s).await?);
    }
    for c in &running {
        let Some(hours) = cpu.get(&c.id) else {
            continue;
        };
        let Some(p95) = cfg.low_cpu(hours) else {
            continue;
        };
        let mut f = base(c, IdleKind::LowCpu, "instance", now);
        f.evidence = serde_json::json!({
            "cpu_p95_percent": round2(p95),
            "hours_measured": hours.len(),
            "window_days": cfg.cpu_window_days,
            "threshold_percent": cfg.cpu_p95_percent,
        });
        let whole = instance_item(&c.flavor_name, c.vcpus, c.memory_mib, c.disk_gib);
        let now_cost = prices
            .monthly(store, c.provider_id.as_deref(), &[whole])
            .await?;
        match smaller_flavor(&flavors, c.vcpus, c.memory_mib) {
            Some((name, v, m)) => {
                f.recommendation = Recommendation::Downsize;
                f.target_flavor = Some(name.clone());
                f.vcpus = c.vcpus - v;
                f.memory_mib = c.memory_mib - m;
                f.disk_gib = 0;
                let after = prices
                    .monthly(
                        store,
                        c.provider_id.as_deref(),
                        &[instance_item(name, *v, *m, c.disk_gib)],
                    )
                    .await?;
                f.monthly_fen = now_cost.zip(after).map(|(a, b)| (a - b).max(0));
            }
            None => f.monthly_fen = now_cost,
        }
        found.push(f);
    }

    let stopped_before = now.plus_secs(-cfg.stopped_days * 86_400);
    for c in repo::stopped_instances(store, stopped_before).await? {
        let mut f = base(&c, IdleKind::Stopped, "instance", now);
        f.evidence = serde_json::json!({
            "stopped_since": Timestamp(c.since),
            "threshold_days": cfg.stopped_days,
        });
        // A stopped instance costs its disk.
        f.monthly_fen = prices
            .monthly(
                store,
                c.provider_id.as_deref(),
                &[EstimateItem::Volume {
                    size_gib: c.disk_gib.max(0) as u64,
                    count: 1,
                }],
            )
            .await?;
        found.push(f);
    }

    let detached_before = now.plus_secs(-cfg.unattached_days * 86_400);
    for c in repo::unattached_volumes(store, detached_before).await? {
        let mut f = base(&c, IdleKind::Unattached, "volume", now);
        f.evidence = serde_json::json!({
            "unattached_since": Timestamp(c.since),
            "threshold_days": cfg.unattached_days,
        });
        f.monthly_fen = prices
            .monthly(
                store,
                c.provider_id.as_deref(),
                &[EstimateItem::Volume {
                    size_gib: c.disk_gib.max(0) as u64,
                    count: 1,
                }],
            )
            .await?;
        found.push(f);
    }

    let mut new = 0;
    let mut tx = store.begin_write().await?;
    for f in &found {
        if repo::upsert_finding(&mut tx, f).await? {
            new += 1;
        }
    }
    let mut cleared = 0;
    for kind in [IdleKind::LowCpu, IdleKind::Stopped, IdleKind::Unattached] {
        let holding: HashSet<String> = found
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.resource_id.clone())
            .collect();
        cleared += repo::clear_findings(&mut tx, kind, &holding, now).await?;
    }
    let reclaimed = repo::settle_reclaims(&mut tx, now).await?;
    tx.commit().await.map_err(zy_store::db_error)?;
    Ok(serde_json::json!({
        "idle": found.len(),
        "new": new,
        "cleared": cleared,
        "reclaimed": reclaimed,
    }))
}

fn parse_states(state: Option<&str>) -> Result<Vec<IdleState>, Error> {
    match state.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(vec![IdleState::Open, IdleState::Reclaiming]),
        Some("all") => Ok(IdleState::ALL.to_vec()),
        Some(x) => IdleState::parse(x).map(|s| vec![s]).ok_or_else(|| {
            Error::validation(
                "state",
                t!(
                    "state 须为 open、reclaiming、reclaimed、dismissed、cleared 或 all",
                    "state must be open, reclaiming, reclaimed, dismissed, cleared or all"
                ),
            )
        }),
    }
}

/// `GET /v1/idle-resources`: what the caller may see (a department admin: their
/// departments'), open and reclaiming ones unless `state` says otherwise.
pub async fn list(
    s: &AppState,
    actor: &Actor,
    state: Option<&str>,
) -> Result<Vec<IdleFinding>, Error> {
    let ds = visible(actor)?;
    let states = parse_states(state)?;
    repo::findings(&s.store, ds.as_deref(), &states).await
}

/// A finding the caller may act on, read in the write transaction.
async fn load_for_decision(
    s: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<(zy_store::Tx, IdleFinding), Error> {
    let parsed: uuid::Uuid = id
        .parse()
        .map_err(|_| Error::not_found("idle_finding", id.chars().take(40).collect::<String>()))?;
    let mut tx = s.store.begin_write_for(&parsed.to_string()).await?;
    let f = repo::get_finding(&mut tx, &parsed.to_string())
        .await?
        .ok_or_else(|| Error::not_found("idle_finding", parsed))?;
    let d: DepartmentId = DepartmentId(
        f.department_id
            .parse()
            .map_err(|_| Error::internal("idle finding without a department"))?,
    );
    authorize(&actor.principal, Action::IdleReclaim(d))?;
    if f.state != IdleState::Open {
        return Err(Error::conflict(t!(
            "该闲置资源已处理（{}），不能再次处理" ;
            "this idle resource has been handled already ({})",
            f.state.as_str()
        )));
    }
    Ok((tx, f))
}

/// Optional generation of a decision.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReclaimBody {
    /// The finding's generation as the caller saw it (409 when it moved meanwhile).
    #[serde(default)]
    pub generation: Option<i64>,
}

/// `POST /v1/idle-resources/{id}/reclaim`: turns the recommendation into a submitted
/// release or change request (an instance) or deletes the volume into the recycle bin.
pub async fn reclaim(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
    b: ReclaimBody,
) -> Result<IdleFinding, Error> {
    let (tx, f) = load_for_decision(s, actor, id).await?;
    drop(tx);
    let generation = b.generation.unwrap_or(f.generation);
    let now = Timestamp::now();
    let who = actor.user.username.clone();
    if f.resource_type == "volume" {
        let vid: uuid::Uuid = f
            .resource_id
            .parse()
            .map_err(|_| Error::internal("bad volume id"))?;
        // Claim first, so two clicks delete once.
        let mut tx = s.store.begin_write_for(&f.id).await?;
        if !repo::decide_finding(
            &mut tx,
            &f.id,
            generation,
            repo::Decision {
                state: IdleState::Reclaiming,
                request_id: None,
                reason: None,
                by: &who,
                now,
            },
        )
        .await?
        {
            return Err(changed());
        }
        commit_audited(
            tx,
            ctx,
            Some(actor),
            "reclaim_idle_resource",
            "idle_finding",
            &f.id,
            serde_json::json!({ "volume": f.resource_id, "name": f.resource_name }),
        )
        .await?;
        if let Err(e) = crate::app::volumes::delete(s, ctx, actor, VolumeId(vid)).await {
            // Not deleted (attached meanwhile, gone …): the finding is open again.
            let mut tx = s.store.begin_write_for(&f.id).await?;
            repo::reopen_finding(&mut tx, &f.id, Timestamp::now()).await?;
            tx.commit().await.map_err(zy_store::db_error)?;
            return Err(e);
        }
    } else {
        let iid: uuid::Uuid = f
            .resource_id
            .parse()
            .map_err(|_| Error::internal("bad instance id"))?;
        let project: uuid::Uuid = f
            .project_id
            .parse()
            .map_err(|_| Error::internal("bad project id"))?;
        let (kind, item, title) = match (f.recommendation, &f.target_flavor) {
            (Recommendation::Downsize, Some(flavor)) => (
                RequestKind::Change,
                RequestItem::Resize {
                    instance_id: InstanceId(iid),
                    flavor: flavor.clone(),
                },
                format!("闲置资源降配：{} → {}", f.resource_name, flavor),
            ),
            _ => (
                RequestKind::Release,
                RequestItem::Release {
                    instance_id: InstanceId(iid),
                },
                format!("闲置资源释放：{}", f.resource_name),
            ),
        };
        let draft = crate::app::requests::Draft {
            project_id: ProjectId(project),
            kind,
            title: title.chars().take(64).collect(),
            purpose: format!(
                "由闲置资源检测生成（{}），证据：{}",
                f.kind.as_str(),
                f.evidence
            )
            .chars()
            .take(500)
            .collect(),
            mlps_level: None,
            lease_end: None,
            items: vec![item],
            provider_id: None,
            zone_id: None,
        };
        let r = crate::app::requests::create(s, ctx, actor, draft).await?;
        let mut tx = s.store.begin_write_for(&f.id).await?;
        let rid = r.id.to_string();
        if !repo::decide_finding(
            &mut tx,
            &f.id,
            generation,
            repo::Decision {
                state: IdleState::Reclaiming,
                request_id: Some(&rid),
                reason: None,
                by: &who,
                now,
            },
        )
        .await?
        {
            drop(tx);
            crate::app::requests::delete_draft(s, ctx, actor, r.id)
                .await
                .ok();
            return Err(changed());
        }
        commit_audited(
            tx,
            ctx,
            Some(actor),
            "reclaim_idle_resource",
            "idle_finding",
            &f.id,
            serde_json::json!({ "request": rid, "kind": kind.as_str(), "instance": f.resource_id }),
        )
        .await?;
        crate::app::requests::submit(s, ctx, actor, r.id, None).await?;
    }
    let mut tx = s.store.begin_write().await?;
    let out = repo::get_finding(&mut tx, &f.id)
        .await?
        .ok_or_else(|| Error::not_found("idle_finding", &f.id))?;
    tx.commit().await.map_err(zy_store::db_error)?;
    Ok(out)
}

fn changed() -> Error {
    Error::conflict(t!(
        "该闲置资源已被他人处理，请刷新后重试",
        "someone else handled this idle resource meanwhile; reload and try again"
    ))
}

/// Why a department keeps an idle resource.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissBody {
    /// 2–500 characters.
    pub reason: String,
    #[serde(default)]
    pub generation: Option<i64>,
}

/// `POST /v1/idle-resources/{id}/dismiss`.
pub async fn dismiss(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
    b: DismissBody,
) -> Result<IdleFinding, Error> {
    let reason = b.reason.trim();
    let n = reason.chars().count();
    if !(2..=500).contains(&n) {
        return Err(Error::validation(
            "reason",
            t!(
                "请写明保留理由（2 到 500 个字）",
                "give the reason for keeping it (2–500 characters)"
            ),
        ));
    }
    let (mut tx, f) = load_for_decision(s, actor, id).await?;
    if !repo::decide_finding(
        &mut tx,
        &f.id,
        b.generation.unwrap_or(f.generation),
        repo::Decision {
            state: IdleState::Dismissed,
            request_id: None,
            reason: Some(reason),
            by: &actor.user.username,
            now: Timestamp::now(),
        },
    )
    .await?
    {
        return Err(changed());
    }
    let out = repo::get_finding(&mut tx, &f.id)
        .await?
        .ok_or_else(|| Error::not_found("idle_finding", &f.id))?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "dismiss_idle_resource",
        "idle_finding",
        &f.id,
        serde_json::json!({ "reason": reason }),
    )
    .await?;
    Ok(out)
}

/// `GET /v1/idle-resources/reclaimed`: capacity reclaimed per month and department.
pub async fn reclaimed(s: &AppState, actor: &Actor) -> Result<Vec<ReclaimedCapacity>, Error> {
    let ds = visible(actor)?;
    let rows = repo::findings(&s.store, ds.as_deref(), &[IdleState::Reclaimed]).await?;
    Ok(summarise(&rows))
}

/// Sums reclaimed findings per (month, department), newest month first.
pub fn summarise(rows: &[IdleFinding]) -> Vec<ReclaimedCapacity> {
    let mut by: std::collections::BTreeMap<(String, String), ReclaimedCapacity> =
        Default::default();
    for f in rows {
        let Some(at) = f.reclaimed_at else { continue };
        let month = crate::app::billing::month_of(at);
        let e = by
            .entry((month.clone(), f.department_id.clone()))
            .or_insert_with(|| ReclaimedCapacity {
                month,
                department_id: f.department_id.clone(),
                findings: 0,
                vcpus: 0,
                memory_mib: 0,
                disk_gib: 0,
                monthly_fen: 0,
            });
        e.findings += 1;
        e.vcpus += f.vcpus;
        e.memory_mib += f.memory_mib;
        e.disk_gib += f.disk_gib;
        e.monthly_fen += f.monthly_fen.unwrap_or(0);
    }
    let mut out: Vec<ReclaimedCapacity> = by.into_values().collect();
    out.sort_by(|a, b| {
        b.month
            .cmp(&a.month)
            .then(a.department_id.cmp(&b.department_id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsize_takes_the_largest_flavor_with_half_the_vcpus() {
        let f = vec![
            ("1C1G".to_string(), 1, 1024),
            ("2C4G".to_string(), 2, 4096),
            ("4C8G".to_string(), 4, 8192),
            ("8C16G".to_string(), 8, 16384),
        ];
        assert_eq!(
            smaller_flavor(&f, 8, 16384).map(|x| x.0.as_str()),
            Some("4C8G")
        );
        assert_eq!(
            smaller_flavor(&f, 4, 4096).map(|x| x.0.as_str()),
            Some("2C4G")
        );
        assert_eq!(smaller_flavor(&f, 2, 512), None);
        assert_eq!(smaller_flavor(&f, 1, 1024), None);
    }
}
