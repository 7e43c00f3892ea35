//! `/v1/instances` and `/v1/quotas`: instances (云主机) and the quotas they draw on, and
//! `/v1/admin/check`, the invariant check over both.

use super::List;
use crate::app::{instances as inst, quotas};
use crate::auth::actor::Actor;
use crate::compute::check::CheckReport;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuotaScope {
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
}

#[utoipa::path(get, path = "/v1/quotas", tag = "compute", params(QuotaScope), responses((status = 200, body = Quota), (status = "default", body = ErrorBody)))]
pub async fn get_quota(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<QuotaScope>,
) -> ApiResult<axum::Json<Quota>> {
    Ok(axum::Json(
        quotas::get(&s, &actor, q.department_id, q.project_id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuota {
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub limits: QuotaLimits,
}

#[utoipa::path(put, path = "/v1/quotas", tag = "compute", request_body = SetQuota, responses((status = 200, body = Quota), (status = "default", body = ErrorBody)))]
pub async fn set_quota(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<SetQuota>,
) -> ApiResult<axum::Json<Quota>> {
    Ok(axum::Json(
        quotas::set(&s, &ctx, &actor, b.department_id, b.project_id, b.limits).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The group's name in the project; created on first use.
    pub name: String,
    pub policy: GroupPolicy,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstances {
    pub project_id: ProjectId,
    /// Name, or prefix when `count` > 1 (`name-001` …).
    pub name: String,
    /// Flavor name or id, e.g. `2C4G`.
    pub flavor: String,
    /// Image name or id.
    pub image: String,
    /// Root disk size; defaults to the image's minimum.
    pub disk_gib: Option<u64>,
    pub zone_id: Option<ZoneId>,
    pub provider_id: Option<ProviderId>,
    /// How many (1–500, default 1).
    #[schema(minimum = 1, maximum = 500)]
    pub count: Option<u32>,
    pub group: Option<GroupSpec>,
    /// Start after creation (default true).
    pub start: Option<bool>,
    /// User data handed to the guest at boot (at most 16 KiB; our templates run it as a
    /// shell script).
    pub user_data: Option<String>,
    /// When the lease (使用期限) ends (RFC 3339, in the future): reminders before, stopped
    /// at the end, released to the recycle bin after the grace period. Absent: no lease.
    pub lease_end: Option<zy_model::time::Timestamp>,
    /// NICs on VPC subnets (at most 8), allocated with the instances (the same for each of
    /// a batch; a fixed `ip` only when creating one). More by hot-plug later.
    #[serde(default)]
    pub nics: Vec<super::networks::CreateNic>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListInstances {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
    /// Only instances in this state (`running`, `stopped`, `error`, …).
    pub state: Option<String>,
    /// Part of the name (case-insensitive).
    pub q: Option<String>,
    /// Include deleted instances.
    pub deleted: Option<bool>,
    /// `true`: only the recycle bin (回收站); `false` (default): only instances outside it.
    pub recycled: Option<bool>,
}

#[utoipa::path(get, path = "/v1/instances", tag = "compute", params(ListInstances), responses((status = 200, body = Page<Instance>), (status = "default", body = ErrorBody)))]
pub async fn list_instances(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListInstances>,
) -> ApiResult<axum::Json<Page<Instance>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref(), q.sort.as_deref())?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(st) => Some(InstanceState::parse(st).ok_or_else(|| {
            zy_model::Error::validation(
                "state",
                zy_model::t!("未知的云主机状态 {}" ; "unknown instance state {}", zy_model::validate::clip(st, 20)),
            )
        })?),
    };
    if q.q.as_deref().is_some_and(|x| x.chars().count() > 100) {
        return Err(zy_model::Error::validation(
            "q",
            zy_model::t!(
                "搜索词不能超过 100 个字符",
                "the search text is at most 100 characters"
            ),
        )
        .into());
    }
    let filter = zy_store::instances::InstanceFilter {
        project: q.project_id,
        department: q.department_id,
        state,
        q: q.q,
        include_deleted: q.deleted.unwrap_or(false),
        recycled: Some(q.recycled.unwrap_or(false)),
    };
    Ok(axum::Json(inst::list(&s, &actor, &page, &filter).await?))
}

#[utoipa::path(post, path = "/v1/instances", tag = "compute", request_body = CreateInstances, responses((status = 202, body = List<Instance>), (status = "default", body = ErrorBody)))]
pub async fn create_instances(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateInstances>,
) -> ApiResult<(StatusCode, axum::Json<List<Instance>>)> {
    let n = inst::NewInstances {
        project_id: b.project_id,
        name: b.name,
        flavor: b.flavor,
        image: b.image,
        disk_gib: b.disk_gib,
        zone_id: b.zone_id,
        provider_id: b.provider_id,
        count: b.count.unwrap_or(1),
        group: b.group.map(|g| (g.name, g.policy)),
        start: b.start.unwrap_or(true),
        user_data: b.user_data.unwrap_or_default(),
        lease_end: b.lease_end,
        nics: b
            .nics
            .into_iter()
            .map(|n| crate::app::networks::NicRequest {
                subnet_id: n.subnet_id,
                ip: n.ip,
                security_group_ids: n.security_group_ids,
            })
            .collect(),
    };
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(List {
            items: inst::create(&s, &ctx, &actor, n).await?,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/instances/{id}", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 200, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn get_instance(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<Instance>> {
    Ok(axum::Json(inst::get(&s, &actor, id).await?))
}

#[utoipa::path(delete, path = "/v1/instances/{id}", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn delete_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::act(&s, &ctx, &actor, id, "delete").await?),
    ))
}

#[utoipa::path(post, path = "/v1/instances/{id}/start", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn start_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::act(&s, &ctx, &actor, id, "start").await?),
    ))
}

#[utoipa::path(post, path = "/v1/instances/{id}/stop", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn stop_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::act(&s, &ctx, &actor, id, "stop").await?),
    ))
}

#[utoipa::path(post, path = "/v1/instances/{id}/reboot", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn reboot_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::act(&s, &ctx, &actor, id, "reboot").await?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeInstance {
    pub flavor: String,
    pub disk_gib: Option<u64>,
}

#[utoipa::path(post, path = "/v1/instances/{id}/resize", tag = "compute", params(("id" = InstanceId, Path)), request_body = ResizeInstance, responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn resize_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Json(b): Json<ResizeInstance>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::resize(&s, &ctx, &actor, id, &b.flavor, b.disk_gib).await?),
    ))
}

#[utoipa::path(get, path = "/v1/instances/{id}/events", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 200, body = List<InstanceEvent>), (status = "default", body = ErrorBody)))]
pub async fn instance_events(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<List<InstanceEvent>>> {
    Ok(axum::Json(List {
        items: inst::events(&s, &actor, id).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleLog {
    pub output: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsoleQuery {
    /// How many of the last lines (1–10000, default 200).
    #[param(minimum = 1, maximum = 10000)]
    pub lines: Option<usize>,
}

#[utoipa::path(get, path = "/v1/instances/{id}/console", tag = "compute", params(("id" = InstanceId, Path), ConsoleQuery), responses((status = 200, body = ConsoleLog), (status = "default", body = ErrorBody)))]
pub async fn instance_console(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Query(q): Query<ConsoleQuery>,
) -> ApiResult<axum::Json<ConsoleLog>> {
    let lines = q.lines.unwrap_or(200);
    if !(1..=10_000).contains(&lines) {
        return Err(zy_model::Error::validation(
            "lines",
            zy_model::t!("行数须在 1 到 10000 之间", "lines must be 1 to 10000"),
        )
        .into());
    }
    Ok(axum::Json(ConsoleLog {
        output: inst::console(&s, &actor, id, lines).await?,
    }))
}

#[utoipa::path(get, path = "/v1/admin/check", tag = "compute", responses((status = 200, body = CheckReport), (status = "default", body = ErrorBody)))]
pub async fn admin_check(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<CheckReport>> {
    zy_policy::authorize(&actor.principal, zy_policy::Action::AdminCheck).map_err(ApiError)?;
    Ok(axum::Json(
        crate::compute::check::run(&s.compute, &s.store).await?,
    ))
}

/// The sagas that changed this instance (newest first): what ran, how far, why it failed.
#[utoipa::path(get, path = "/v1/instances/{id}/sagas", tag = "compute", params(("id" = InstanceId, Path)),
    responses((status = 200, body = List<zy_model::ops::Saga>), (status = "default", body = ErrorBody)))]
pub async fn instance_sagas(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<List<zy_model::ops::Saga>>> {
    inst::get(&s, &actor, id).await?;
    let rows = zy_store::sagas::of_target(&s.store, &id.to_string(), 100).await?;
    Ok(axum::Json(List {
        items: rows.iter().map(crate::saga::view).collect(),
    }))
}
