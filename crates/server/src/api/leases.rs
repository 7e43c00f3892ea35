//! Leases (使用期限) and the recycle bin (回收站): `PUT /v1/instances/{id}/lease`,
//! `POST /v1/instances/{id}/release` and `…/restore`, and the platform's lease settings
//! at `/v1/system/lease-settings`; `POST /v1/volumes/{id}/release` and `…/restore`. The
//! recycle bin itself is the instance (and volume) list with `recycled=true`.

use crate::app::leases;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use zy_model::compute::Instance;
use zy_model::compute::Volume;
use zy_model::id::{InstanceId, VolumeId};
use zy_model::lease::LeaseSettings;
use zy_model::time::Timestamp;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLease {
    /// The new end (RFC 3339, in the future, at most 10 years away); `null` removes the
    /// lease. Setting it again (an extension) sends the reminders again and lets an
    /// instance stopped at the end be started.
    pub lease_end: Option<Timestamp>,
}

#[utoipa::path(put, path = "/v1/instances/{id}/lease", tag = "compute", params(("id" = InstanceId, Path)), request_body = SetLease,
    responses((status = 200, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn set_instance_lease(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Json(b): Json<SetLease>,
) -> ApiResult<axum::Json<Instance>> {
    Ok(axum::Json(
        leases::put_lease(&s, &ctx, &actor, id, b.lease_end).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseInstance {
    /// Why (at most 200 characters), shown in the recycle bin and the instance's events.
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/v1/instances/{id}/release", tag = "compute", params(("id" = InstanceId, Path)), request_body = ReleaseInstance,
    responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn release_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Json(b): Json<ReleaseInstance>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(leases::release_one(&s, &ctx, &actor, id, b.reason).await?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreInstance {
    /// The restored instance's lease end (in the future); absent or `null`: no lease.
    pub lease_end: Option<Timestamp>,
}

#[utoipa::path(post, path = "/v1/instances/{id}/restore", tag = "compute", params(("id" = InstanceId, Path)), request_body = RestoreInstance,
    responses((status = 200, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn restore_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Json(b): Json<RestoreInstance>,
) -> ApiResult<axum::Json<Instance>> {
    Ok(axum::Json(
        leases::restore(&s, &ctx, &actor, id, b.lease_end).await?,
    ))
}

#[utoipa::path(get, path = "/v1/system/lease-settings", tag = "system",
    responses((status = 200, body = LeaseSettings), (status = "default", body = ErrorBody)))]
pub async fn get_lease_settings(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<LeaseSettings>> {
    Ok(axum::Json(leases::get_settings(&s, &actor).await?))
}

#[utoipa::path(put, path = "/v1/system/lease-settings", tag = "system", request_body = LeaseSettings,
    responses((status = 200, body = LeaseSettings), (status = "default", body = ErrorBody)))]
pub async fn update_lease_settings(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<LeaseSettings>,
) -> ApiResult<axum::Json<LeaseSettings>> {
    Ok(axum::Json(leases::put_settings(&s, &ctx, &actor, b).await?))
}

#[utoipa::path(post, path = "/v1/volumes/{id}/release", tag = "compute", params(("id" = VolumeId, Path)), request_body = ReleaseInstance,
    responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn release_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
    Json(b): Json<ReleaseInstance>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        leases::release_volume(&s, &ctx, &actor, id, b.reason).await?,
    ))
}

#[utoipa::path(post, path = "/v1/volumes/{id}/restore", tag = "compute", params(("id" = VolumeId, Path)),
    responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn restore_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        leases::restore_volume(&s, &ctx, &actor, id).await?,
    ))
}
