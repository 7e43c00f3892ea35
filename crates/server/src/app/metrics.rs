//! Metrics history queries: who may read which entity's series, then the plan (resolution
//! and step, `zy_model::metrics::plan`), one read of the blocks and their evaluation.
//! A department's people read their instances, projects and department; the platform
//! admin and the supervisor read every host, zone and provider, a provider's operators
//! those of their own provider.

use crate::auth::actor::Actor;
use crate::state::AppState;
use uuid::Uuid;
use zy_model::id::*;
use zy_model::metrics::{self, Aggregate, MetricScope, MetricsResult, Series, SeriesValues};
use zy_model::role::Scope;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, provider_visibility, Action};

/// A query as the API received it (strings checked here, so every mistake gets a message).
pub struct Query {
    pub scope: String,
    pub id: String,
    pub series: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub step: Option<i64>,
    pub agg: Option<String>,
}

fn parse_series(s: Option<&str>) -> Result<Vec<Series>, Error> {
    let Some(s) = s.filter(|s| !s.trim().is_empty()) else {
        return Ok(vec![Series::Cpu]);
    };
    let mut out = Vec::new();
    for name in s.split(',') {
        let Some(x) = Series::parse(name.trim()) else {
            return Err(Error::validation(
                "series",
                t!(
                    "未知的指标 {}；可选：cpu、mem、mem_used、disk_read、disk_write、disk_used、net_rx、net_tx、up" ;
                    "unknown series {}; choose from cpu, mem, mem_used, disk_read, disk_write, disk_used, net_rx, net_tx, up",
                    name.chars().take(40).collect::<String>()
                ),
            ));
        };
        if !out.contains(&x) {
            out.push(x);
        }
    }
    Ok(out)
}

/// The policy scope of an entity: the provider of a host, zone or provider, the
/// department or project of the others; 404 when it does not exist.
pub async fn resolve(s: &AppState, scope: MetricScope, id: Uuid) -> Result<Option<Scope>, Error> {
    Ok(match scope {
        MetricScope::Host | MetricScope::Zone | MetricScope::Provider => {
            let provider =
                zy_store::inventory::provider_of(s.store.pool(), scope.as_str(), &id.to_string())
                    .await?
                    .ok_or_else(|| Error::not_found(scope.as_str(), id))?;
            Some(Scope::Provider(provider))
        }
        MetricScope::Department => {
            let d = DepartmentId(id);
            if zy_store::departments::get(s.store.pool(), d)
                .await?
                .is_none()
            {
                return Err(Error::not_found("department", id));
            }
            Some(Scope::Department(d))
        }
        MetricScope::Project => {
            let pr = zy_store::projects::get(s.store.pool(), ProjectId(id))
                .await?
                .ok_or_else(|| Error::not_found("project", id))?;
            Some(Scope::Project(pr.department_id, pr.id))
        }
        MetricScope::Instance => {
            let row = zy_store::instances::get(s.store.pool(), InstanceId(id))
                .await?
                .ok_or_else(|| Error::not_found("instance", id))?;
            Some(Scope::Project(
                row.instance.department_id,
                row.instance.project_id,
            ))
        }
    })
}

/// The department a policy scope belongs to.
pub fn department_of(scope: Option<Scope>) -> Option<DepartmentId> {
    match scope {
        Some(Scope::Department(d)) | Some(Scope::Project(d, _)) => Some(d),
        _ => None,
    }
}

/// Parses the scope name and the id (UUID) of a query or a rule.
pub fn parse_target(scope: &str, id: &str) -> Result<(MetricScope, Uuid), Error> {
    let scope = MetricScope::parse(scope).ok_or_else(|| {
        Error::validation(
            "scope",
            t!(
                "范围须为 instance、host、project、department、zone 或 provider",
                "scope must be instance, host, project, department, zone or provider"
            ),
        )
    })?;
    let id: Uuid = id.trim().parse().map_err(|_| {
        Error::validation(
            "id",
            t!("id 须为对象的 UUID", "id must be the object's UUID"),
        )
    })?;
    Ok((scope, id))
}

/// Checks that the caller may read `scope`/`id` and that it exists. The infrastructure is
/// refused before it is looked up to those who read no provider's (nobody else learns
/// which hosts exist).
async fn authorize_target(
    s: &AppState,
    actor: &Actor,
    scope: MetricScope,
    id: Uuid,
) -> Result<(), Error> {
    if matches!(
        scope,
        MetricScope::Host | MetricScope::Zone | MetricScope::Provider
    ) {
        let readable = provider_visibility(&actor.principal, |pv| {
            Action::MetricsRead(pv.map(Scope::Provider))
        });
        if !readable.is_any() {
            authorize(&actor.principal, Action::MetricsRead(None))?;
        }
    }
    if let MetricScope::Department = scope {
        authorize(
            &actor.principal,
            Action::MetricsRead(Some(Scope::Department(DepartmentId(id)))),
        )?;
    }
    let resolved = resolve(s, scope, id).await?;
    authorize(&actor.principal, Action::MetricsRead(resolved))
}

pub async fn query(s: &AppState, actor: &Actor, q: Query) -> Result<MetricsResult, Error> {
    let (scope, id) = parse_target(&q.scope, &q.id)?;
    let series = parse_series(q.series.as_deref())?;
    let agg = match q.agg.as_deref() {
        None | Some("") => Aggregate::Avg,
        Some(a) => Aggregate::parse(a).ok_or_else(|| {
            Error::validation(
                "agg",
                t!("agg 须为 avg、min 或 max", "agg must be avg, min or max"),
            )
        })?,
    };
    let now = Timestamp::now().0 / 1_000_000;
    let to = q.to.map_or(now, |t| t.0.div_euclid(1_000_000));
    let from = q.from.map_or(to - 3600, |t| t.0.div_euclid(1_000_000));
    let plan = metrics::plan(now, from, to, q.step)?;
    authorize_target(s, actor, scope, id).await?;
    let blocks = zy_store::metrics::read_blocks(
        &s.store,
        scope.as_str(),
        &id.to_string(),
        plan.res,
        plan.res.block_start(plan.from),
        plan.res.block_start(plan.to),
    )
    .await?;
    let data: Vec<Vec<u8>> = blocks.into_iter().map(|(_, d)| d).collect();
    let (timestamps, values) = metrics::evaluate(&plan, &data, &series, agg);
    Ok(MetricsResult {
        scope,
        id: id.to_string(),
        resolution: plan.res,
        step: plan.step,
        from: plan.from,
        to: plan.to,
        agg,
        timestamps,
        series: series
            .iter()
            .zip(values)
            .map(|(s, values)| SeriesValues {
                series: *s,
                unit: s.unit().to_string(),
                values,
            })
            .collect(),
    })
}

/// The latest figures of every host and instance in the Prometheus text exposition format
/// (version 0.0.4), for an existing Prometheus or VictoriaMetrics to scrape with an API
/// token of the platform admin or the supervisor (it spans every provider, so a
/// provider's operators read their own hosts through `/v1/metrics/query`). Instances carry
/// their department, project, host, zone and provider as labels (ids, so a renamed object
/// keeps its series). Only the replica that collects has figures; the others answer with
/// the headers alone, so scrape every replica (or the collecting one).
pub async fn prometheus(s: &AppState, actor: &Actor) -> Result<String, Error> {
    authorize(&actor.principal, Action::MetricsRead(None))?;
    let (at, latest) = s.compute.metrics_latest.get();
    let owners: std::collections::HashMap<String, zy_store::ha::Placed> =
        zy_store::ha::placed(&s.store)
            .await?
            .into_iter()
            .map(|p| (p.id.to_string(), p))
            .collect();
    let rows = zy_store::instances::labels(&s.store).await?;
    Ok(render_prometheus(at, &latest, &owners, &rows))
}

/// Labels of an instance for the exposition: (department, project, zone, provider).
pub type InstanceLabels = std::collections::HashMap<String, [String; 4]>;

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text (pure, so it is tested without a server).
pub fn render_prometheus(
    at: i64,
    latest: &crate::monitoring::Latest,
    placed: &std::collections::HashMap<String, zy_store::ha::Placed>,
    labels: &InstanceLabels,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP zhengyun_metrics_collected_seconds When the figures below were taken (Unix time).\n# TYPE zhengyun_metrics_collected_seconds gauge\nzhengyun_metrics_collected_seconds {at}"
    );
    for scope in ["host", "instance"] {
        for series in Series::ALL {
            let name = format!("zhengyun_{scope}_{}", series.as_str());
            let _ = writeln!(
                out,
                "# HELP {name} {scope} {} ({}).\n# TYPE {name} gauge",
                series.as_str(),
                series.unit()
            );
            let mut keys: Vec<&(&'static str, String)> =
                latest.keys().filter(|(s, _)| *s == scope).collect();
            keys.sort();
            for key in keys {
                let Some(Some(v)) = latest.get(key).map(|vs| vs[series as usize]) else {
                    continue;
                };
                let id = &key.1;
                let mut l = format!("{scope}_id=\"{}\"", escape(id));
                if scope == "instance" {
                    if let Some(p) = placed.get(id) {
                        let _ = write!(
                            l,
                            ",instance_name=\"{}\",host_id=\"{}\"",
                            escape(&p.name),
                            p.host_id
                        );
                    }
                    if let Some([d, pr, z, pv]) = labels.get(id) {
                        let _ = write!(
                            l,
                            ",department_id=\"{}\",project_id=\"{}\",zone_id=\"{}\",provider_id=\"{}\"",
                            escape(d),
                            escape(pr),
                            escape(z),
                            escape(pv)
                        );
                    }
                }
                let _ = writeln!(out, "{name}{{{l}}} {v}");
            }
        }
    }
    out
}

/// The remote-write settings as the API shows them (never the token).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RemoteWriteView {
    pub enabled: bool,
    pub url: String,
    pub has_token: bool,
}

pub async fn remote_write_settings(s: &AppState, actor: &Actor) -> Result<RemoteWriteView, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let c: crate::monitoring::remote_write::Stored = zy_store::settings::get(
        s.store.pool(),
        crate::monitoring::remote_write::SETTINGS_KEY,
    )
    .await?
    .unwrap_or_default();
    Ok(RemoteWriteView {
        enabled: c.enabled,
        url: c.url,
        has_token: c.bearer_sealed.is_some(),
    })
}

/// Sets where the collector sends each reading (remote write). `bearer_token`: `None`
/// keeps the stored one, an empty string removes it.
pub async fn set_remote_write(
    s: &AppState,
    ctx: &crate::context::RequestContext,
    actor: &Actor,
    enabled: bool,
    url: &str,
    bearer_token: Option<&str>,
) -> Result<RemoteWriteView, Error> {
    use crate::monitoring::remote_write as rw;
    authorize(&actor.principal, Action::InventoryManage)?;
    if enabled || !url.is_empty() {
        rw::check_url(url)?;
    }
    if bearer_token.is_some_and(|b| b.len() > 4096) {
        return Err(Error::validation(
            "bearer_token",
            t!(
                "令牌过长（至多 4096 个字符）",
                "the token is too long (at most 4,096 characters)"
            ),
        ));
    }
    let mut tx = s.store.begin_write().await?;
    let old: rw::Stored = zy_store::settings::get(&mut *tx, rw::SETTINGS_KEY)
        .await?
        .unwrap_or_default();
    let bearer_sealed = match bearer_token {
        None => old.bearer_sealed,
        Some("") => None,
        Some(b) => Some(s.sealer.seal(b)?),
    };
    let stored = rw::Stored {
        enabled,
        url: url.to_string(),
        bearer_sealed,
    };
    zy_store::settings::put(&mut tx, rw::SETTINGS_KEY, &stored).await?;
    super::commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_remote_write",
        "settings",
        rw::SETTINGS_KEY,
        serde_json::json!({ "enabled": enabled, "url": url, "token_changed": bearer_token.is_some() }),
    )
    .await?;
    remote_write_settings(s, actor).await
}
