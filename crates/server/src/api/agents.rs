//! `/v1/agents`, `/v1/zones/{id}/join-tokens`, `/v1/join-tokens`: real hosts joining the
//! platform; `/v1/instances/{id}/migrate|migrations|metrics`: live migration and guest
//! metrics.

use super::List;
use crate::app::agents as ag;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zy_compute::agent::{JoinRequest, JoinResponse, VmMetrics};
use zy_model::agents::*;
use zy_model::id::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    /// How long the token can be used (1–168 hours, default 24).
    pub valid_hours: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedJoinToken {
    /// The secret to give `zhengyun agent --join-token`; shown only now.
    pub token: String,
    pub join_token: JoinToken,
}

#[utoipa::path(post, path = "/v1/zones/{id}/join-tokens", tag = "compute", params(("id" = ZoneId, Path)), request_body = CreateJoinToken, responses((status = 201, body = CreatedJoinToken), (status = "default", body = ErrorBody)))]
pub async fn create_join_token(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ZoneId>,
    Json(b): Json<CreateJoinToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedJoinToken>)> {
    let (join_token, token) = ag::create_join_token(&s, &ctx, &actor, id, b.valid_hours).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedJoinToken { token, join_token }),
    ))
}

#[utoipa::path(get, path = "/v1/join-tokens", tag = "compute", responses((status = 200, body = List<JoinToken>), (status = "default", body = ErrorBody)))]
pub async fn list_join_tokens(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<JoinToken>>> {
    Ok(axum::Json(List {
        items: ag::list_join_tokens(&s, &actor).await?,
    }))
}

/// Called by `zhengyun agent` with a one-time join token (no session).
#[utoipa::path(post, path = "/v1/agents/join", tag = "compute", request_body = JoinRequest, responses((status = 201, body = JoinResponse), (status = "default", body = ErrorBody)))]
pub async fn join_agent(
    State(s): State<AppState>,
    ctx: RequestContext,
    Json(b): Json<JoinRequest>,
) -> ApiResult<(StatusCode, axum::Json<JoinResponse>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(ag::join(&s, &ctx, b).await?),
    ))
}

#[utoipa::path(get, path = "/v1/agents", tag = "compute", responses((status = 200, body = List<Agent>), (status = "default", body = ErrorBody)))]
pub async fn list_agents(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<Agent>>> {
    Ok(axum::Json(List {
        items: ag::list_agents(&s, &actor).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateInstance {
    /// The host to move to; the emptiest other enabled host of the provider if absent.
    pub target_host_id: Option<HostId>,
}

#[utoipa::path(post, path = "/v1/instances/{id}/migrate", tag = "compute", params(("id" = InstanceId, Path)), request_body = MigrateInstance, responses((status = 202, body = Migration), (status = "default", body = ErrorBody)))]
pub async fn migrate_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Json(b): Json<MigrateInstance>,
) -> ApiResult<(StatusCode, axum::Json<Migration>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ag::migrate(&s, &ctx, &actor, id, b.target_host_id).await?),
    ))
}

#[utoipa::path(get, path = "/v1/instances/{id}/migrations", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 200, body = List<Migration>), (status = "default", body = ErrorBody)))]
pub async fn instance_migrations(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<List<Migration>>> {
    Ok(axum::Json(List {
        items: ag::migrations(&s, &actor, id).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceMetrics {
    /// Absent when the instance is not running or its provider does not measure.
    pub metrics: Option<VmMetrics>,
}

#[utoipa::path(get, path = "/v1/instances/{id}/metrics", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 200, body = InstanceMetrics), (status = "default", body = ErrorBody)))]
pub async fn instance_metrics(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<InstanceMetrics>> {
    Ok(axum::Json(InstanceMetrics {
        metrics: ag::metrics(&s, &actor, id).await?,
    }))
}
