//! `/v1/volumes`: volumes (云硬盘).

use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    pub project_id: ProjectId,
    pub name: String,
    pub size_gib: u64,
    /// The pool to take space from; default: the one with most free space.
    pub pool_id: Option<StoragePoolId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListVolumes {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    /// `true`: only the recycle bin (回收站); `false` (default): only volumes outside it.
    pub recycled: Option<bool>,
}

#[utoipa::path(get, path = "/v1/volumes", tag = "compute", params(ListVolumes), responses((status = 200, body = Page<Volume>), (status = "default", body = ErrorBody)))]
pub async fn list_volumes(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListVolumes>,
) -> ApiResult<axum::Json<Page<Volume>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref(), q.sort.as_deref())?;
    Ok(axum::Json(
        crate::app::volumes::list(&s, &actor, &page, q.project_id, q.recycled.unwrap_or(false))
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/volumes", tag = "compute", request_body = CreateVolume, responses((status = 201, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn create_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateVolume>,
) -> ApiResult<(StatusCode, axum::Json<Volume>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(
            crate::app::volumes::create(
                &s,
                &ctx,
                &actor,
                b.project_id,
                &b.name,
                b.size_gib,
                b.pool_id,
            )
            .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/v1/volumes/{id}", tag = "compute", params(("id" = VolumeId, Path)), responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn get_volume(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<VolumeId>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(crate::app::volumes::get(&s, &actor, id).await?))
}

#[utoipa::path(delete, path = "/v1/volumes/{id}", tag = "compute", params(("id" = VolumeId, Path)), responses((status = 204, description = "deleted"), (status = 202, description = "being deleted (the provider is slow or refuses for now; the delete saga goes on)"), (status = "default", body = ErrorBody)))]
pub async fn delete_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
) -> ApiResult<StatusCode> {
    Ok(
        if crate::app::volumes::delete(&s, &ctx, &actor, id).await? {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::ACCEPTED
        },
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachVolume {
    pub instance_id: InstanceId,
}

#[utoipa::path(post, path = "/v1/volumes/{id}/attach", tag = "compute", params(("id" = VolumeId, Path)), request_body = AttachVolume, responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn attach_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
    Json(b): Json<AttachVolume>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        crate::app::volumes::attach(&s, &ctx, &actor, id, b.instance_id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/volumes/{id}/detach", tag = "compute", params(("id" = VolumeId, Path)), responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn detach_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        crate::app::volumes::detach(&s, &ctx, &actor, id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendVolume {
    pub size_gib: u64,
}

#[utoipa::path(post, path = "/v1/volumes/{id}/extend", tag = "compute", params(("id" = VolumeId, Path)), request_body = ExtendVolume, responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn extend_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
    Json(b): Json<ExtendVolume>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        crate::app::volumes::extend(&s, &ctx, &actor, id, b.size_gib).await?,
    ))
}
