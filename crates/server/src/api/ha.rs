//! High availability, maintenance evacuation and consolidation:
//! `GET /v1/ha/recoveries`, `PUT /v1/instances/{id}/ha`, `/v1/host-groups[/{name}]`,
//! `POST /v1/hosts/{id}/evacuate`, `GET /v1/hosts/{id}/evacuation`, and the consolidation
//! plans under `/v1/consolidation/plans`.

use super::List;
use crate::app::ha;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zy_model::compute::{HaPolicy, Instance};
use zy_model::ha::*;
use zy_model::id::*;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecoveryFilter {
    /// Only the recoveries after this host's failures.
    pub host_id: Option<HostId>,
    /// Only this instance's recoveries.
    pub instance_id: Option<InstanceId>,
    /// At most this many, newest first (1–1000, default 200).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/ha/recoveries", tag = "compute", params(RecoveryFilter),
    responses((status = 200, body = List<HaRecovery>), (status = "default", body = ErrorBody)))]
pub async fn list_recoveries(
    State(s): State<AppState>,
    actor: Actor,
    Query(f): Query<RecoveryFilter>,
) -> ApiResult<axum::Json<List<HaRecovery>>> {
    Ok(axum::Json(List {
        items: ha::recoveries(&s, &actor, f.host_id, f.instance_id, f.limit).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetInstanceHa {
    /// `restart` (default for new instances, through `inherit`), `leave_stopped`, or
    /// `inherit` (the host group's policy).
    pub ha_policy: HaPolicy,
    /// Restart order after a host failure, 0–100 (higher first); platform admin only.
    pub priority: Option<i32>,
}

#[utoipa::path(put, path = "/v1/instances/{id}/ha", tag = "compute", params(("id" = InstanceId, Path)), request_body = SetInstanceHa,
    responses((status = 200, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn set_instance_ha(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Json(b): Json<SetInstanceHa>,
) -> ApiResult<axum::Json<Instance>> {
    Ok(axum::Json(
        ha::set_instance_ha(&s, &ctx, &actor, id, b.ha_policy, b.priority).await?,
    ))
}

#[utoipa::path(get, path = "/v1/host-groups", tag = "compute",
    responses((status = 200, body = List<HostGroup>), (status = "default", body = ErrorBody)))]
pub async fn list_host_groups(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<HostGroup>>> {
    Ok(axum::Json(List {
        items: ha::host_groups(&s, &actor).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutHostGroup {
    /// `restart` or `leave_stopped`: what HA does with the group's hosts' instances whose
    /// own policy is `inherit`.
    pub ha_policy: HaPolicy,
    /// The group's hosts (each leaves any other group).
    pub hosts: Vec<HostId>,
}

#[utoipa::path(put, path = "/v1/host-groups/{name}", tag = "compute", params(("name" = String, Path)), request_body = PutHostGroup,
    responses((status = 200, body = HostGroup), (status = "default", body = ErrorBody)))]
pub async fn put_host_group(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(name): Path<String>,
    Json(b): Json<PutHostGroup>,
) -> ApiResult<axum::Json<HostGroup>> {
    Ok(axum::Json(
        ha::put_host_group(&s, &ctx, &actor, &name, b.ha_policy, &b.hosts).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/host-groups/{name}", tag = "compute", params(("name" = String, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_host_group(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ha::delete_host_group(&s, &ctx, &actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/hosts/{id}/evacuate", tag = "compute", params(("id" = HostId, Path)),
    responses((status = 202, body = Evacuation), (status = "default", body = ErrorBody)))]
pub async fn evacuate_host(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<HostId>,
) -> ApiResult<(StatusCode, axum::Json<Evacuation>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ha::evacuate(&s, &ctx, &actor, id).await?),
    ))
}

#[utoipa::path(get, path = "/v1/hosts/{id}/evacuation", tag = "compute", params(("id" = HostId, Path)),
    responses((status = 200, body = Evacuation), (status = "default", body = ErrorBody)))]
pub async fn get_evacuation(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<HostId>,
) -> ApiResult<axum::Json<Evacuation>> {
    Ok(axum::Json(ha::evacuation(&s, &actor, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeConsolidation {
    /// Ceiling of allocated vCPU and memory on the hosts that receive instances, in ‰
    /// (500–1000; default 800, the seeds' 60–80 % target).
    pub ceiling_permille: Option<u32>,
    /// Only this zone's hosts (default: every zone of every provider that live-migrates).
    pub zone_id: Option<ZoneId>,
}

#[utoipa::path(post, path = "/v1/consolidation/plans", tag = "compute", request_body = ProposeConsolidation,
    responses((status = 201, body = ConsolidationPlan), (status = "default", body = ErrorBody)))]
pub async fn propose_consolidation(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<ProposeConsolidation>,
) -> ApiResult<(StatusCode, axum::Json<ConsolidationPlan>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(
            crate::app::consolidation::propose(&s, &ctx, &actor, b.ceiling_permille, b.zone_id)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/v1/consolidation/plans", tag = "compute",
    responses((status = 200, body = List<ConsolidationPlan>), (status = "default", body = ErrorBody)))]
pub async fn list_consolidation_plans(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<ConsolidationPlan>>> {
    Ok(axum::Json(List {
        items: crate::app::consolidation::list(&s, &actor).await?,
    }))
}

#[utoipa::path(get, path = "/v1/consolidation/plans/{id}", tag = "compute", params(("id" = ConsolidationPlanId, Path)),
    responses((status = 200, body = ConsolidationPlan), (status = "default", body = ErrorBody)))]
pub async fn get_consolidation_plan(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<ConsolidationPlanId>,
) -> ApiResult<axum::Json<ConsolidationPlan>> {
    Ok(axum::Json(
        crate::app::consolidation::get(&s, &actor, id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovePlan {
    /// The plan's `generation` as the approver saw it.
    pub generation: i64,
}

#[utoipa::path(post, path = "/v1/consolidation/plans/{id}/approve", tag = "compute", params(("id" = ConsolidationPlanId, Path)), request_body = ApprovePlan,
    responses((status = 200, body = ConsolidationPlan), (status = "default", body = ErrorBody)))]
pub async fn approve_consolidation_plan(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ConsolidationPlanId>,
    Json(b): Json<ApprovePlan>,
) -> ApiResult<axum::Json<ConsolidationPlan>> {
    Ok(axum::Json(
        crate::app::consolidation::approve(&s, &ctx, &actor, id, b.generation).await?,
    ))
}

#[utoipa::path(post, path = "/v1/consolidation/plans/{id}/stop", tag = "compute", params(("id" = ConsolidationPlanId, Path)),
    responses((status = 200, body = ConsolidationPlan), (status = "default", body = ErrorBody)))]
pub async fn stop_consolidation_plan(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ConsolidationPlanId>,
) -> ApiResult<axum::Json<ConsolidationPlan>> {
    Ok(axum::Json(
        crate::app::consolidation::stop(&s, &ctx, &actor, id).await?,
    ))
}
