//! `/v1/departments`: departments (委办局).

use super::ListParams;
use crate::app::departments::{self as app, DepartmentPatch, NewDepartment};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use zy_model::id::DepartmentId;
use zy_model::page::Page;
use zy_model::tenancy::Department;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDepartment {
    /// e.g. 宜宾市卫生和计划生育委员会
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// Short code for reports and bills, e.g. `WJW`.
    #[schema(pattern = "^[A-Z0-9_-]{1,16}$")]
    pub code: String,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDepartment {
    pub name: Option<String>,
    pub code: Option<String>,
    pub description: Option<String>,
    /// When given, the change applies only if the department is still at this generation.
    pub generation: Option<i64>,
}

#[utoipa::path(get, path = "/v1/departments", tag = "departments", params(ListParams),
    responses((status = 200, body = Page<Department>), (status = "default", body = ErrorBody)))]
pub async fn list_departments(
    State(s): State<AppState>,
    actor: Actor,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Page<Department>>> {
    Ok(axum::Json(
        app::list(&s, &actor, &params.page()?, &params.filter()?).await?,
    ))
}

#[utoipa::path(post, path = "/v1/departments", tag = "departments", request_body = CreateDepartment,
    responses((status = 201, body = Department), (status = "default", body = ErrorBody)))]
pub async fn create_department(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateDepartment>,
) -> ApiResult<(StatusCode, axum::Json<Department>)> {
    let d = app::create(
        &s,
        &ctx,
        &actor,
        NewDepartment {
            name: b.name,
            code: b.code,
            description: b.description,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(d)))
}

#[utoipa::path(get, path = "/v1/departments/{id}", tag = "departments", params(("id" = DepartmentId, Path)),
    responses((status = 200, body = Department), (status = "default", body = ErrorBody)))]
pub async fn get_department(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<DepartmentId>,
) -> ApiResult<axum::Json<Department>> {
    Ok(axum::Json(app::get(&s, &actor, id).await?))
}

#[utoipa::path(patch, path = "/v1/departments/{id}", tag = "departments", params(("id" = DepartmentId, Path)), request_body = UpdateDepartment,
    responses((status = 200, body = Department), (status = "default", body = ErrorBody)))]
pub async fn update_department(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<DepartmentId>,
    Json(b): Json<UpdateDepartment>,
) -> ApiResult<axum::Json<Department>> {
    let p = DepartmentPatch {
        name: b.name,
        code: b.code,
        description: b.description,
        generation: b.generation,
    };
    Ok(axum::Json(app::update(&s, &ctx, &actor, id, p).await?))
}

#[utoipa::path(delete, path = "/v1/departments/{id}", tag = "departments", params(("id" = DepartmentId, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_department(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<DepartmentId>,
) -> ApiResult<StatusCode> {
    app::delete(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
