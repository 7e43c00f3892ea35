//! `/v1/load-balancers`: load balancers (负载均衡) with their listeners, pools, members and
//! health checks. Changes answer at once (202 for the ones a host must apply); the state
//! and each member's health follow as the host reports them.

use crate::app::load_balancers as app;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zy_model::id::*;
use zy_model::network::lb::*;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LbQuery {
    /// Only this project's load balancers.
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
}

#[utoipa::path(get, path = "/v1/load-balancers", tag = "load-balancers", params(LbQuery), responses((status = 200, body = Vec<LoadBalancer>), (status = "default", body = ErrorBody)))]
pub async fn list_load_balancers(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<LbQuery>,
) -> ApiResult<axum::Json<Vec<LoadBalancer>>> {
    Ok(axum::Json(app::list(&s, &actor, q.project_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLoadBalancer {
    pub project_id: ProjectId,
    /// The subnet of the virtual IP (of a VPC of the project or shared by its department).
    pub subnet_id: SubnetId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A fixed virtual IP of the subnet; default: the next free address.
    pub vip: Option<String>,
    #[serde(default)]
    pub listeners: Vec<LbListener>,
}

#[utoipa::path(post, path = "/v1/load-balancers", tag = "load-balancers", request_body = CreateLoadBalancer, responses((status = 202, body = LoadBalancer), (status = "default", body = ErrorBody)))]
pub async fn create_load_balancer(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateLoadBalancer>,
) -> ApiResult<(StatusCode, axum::Json<LoadBalancer>)> {
    let b = app::NewLoadBalancer {
        project_id: b.project_id,
        subnet_id: b.subnet_id,
        name: b.name,
        description: b.description,
        vip: b.vip,
        listeners: b.listeners,
    };
    let lb = app::create(&s, &ctx, &actor, b).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(lb)))
}

#[utoipa::path(get, path = "/v1/load-balancers/{id}", tag = "load-balancers", params(("id" = LoadBalancerId, Path)), responses((status = 200, body = LoadBalancer), (status = "default", body = ErrorBody)))]
pub async fn get_load_balancer(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<LoadBalancerId>,
) -> ApiResult<axum::Json<LoadBalancer>> {
    Ok(axum::Json(app::get(&s, &actor, id).await?))
}

#[utoipa::path(delete, path = "/v1/load-balancers/{id}", tag = "load-balancers", params(("id" = LoadBalancerId, Path)), responses((status = 202), (status = "default", body = ErrorBody)))]
pub async fn delete_load_balancer(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<LoadBalancerId>,
) -> ApiResult<StatusCode> {
    app::delete(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetListeners {
    /// The generation the change is based on (from the last read); a different current
    /// generation is a 409. Absent: whatever is current.
    pub generation: Option<i64>,
    pub listeners: Vec<LbListener>,
}

#[utoipa::path(put, path = "/v1/load-balancers/{id}/listeners", tag = "load-balancers", params(("id" = LoadBalancerId, Path)), request_body = SetListeners, responses((status = 202, body = LoadBalancer), (status = "default", body = ErrorBody)))]
pub async fn set_load_balancer_listeners(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<LoadBalancerId>,
    Json(b): Json<SetListeners>,
) -> ApiResult<(StatusCode, axum::Json<LoadBalancer>)> {
    let lb = app::set_listeners(&s, &ctx, &actor, id, b.generation, b.listeners).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(lb)))
}
