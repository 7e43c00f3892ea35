//! `/v1/projects`: projects (业务系统).

use crate::app::projects::{self as app, NewProject, ProjectPatch};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zy_model::id::{DepartmentId, ProjectId};
use zy_model::page::Page;
use zy_model::tenancy::Project;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProjects {
    /// Items per page, 1–1000 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `name`, `-name`, `created_at` or `-created_at`.
    pub sort: Option<String>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// Only projects of this department.
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub department_id: DepartmentId,
    /// e.g. 全民健康信息平台
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    pub name: Option<String>,
    pub description: Option<String>,
    /// When given, the change applies only if the project is still at this generation.
    pub generation: Option<i64>,
}

#[utoipa::path(get, path = "/v1/projects", tag = "projects", params(ListProjects),
    responses((status = 200, body = Page<Project>), (status = "default", body = ErrorBody)))]
pub async fn list_projects(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListProjects>,
) -> ApiResult<axum::Json<Page<Project>>> {
    let params = super::ListParams {
        limit: q.limit,
        cursor: q.cursor,
        sort: q.sort,
        q: q.q,
    };
    Ok(axum::Json(
        app::list(
            &s,
            &actor,
            &params.page()?,
            q.department_id,
            &params.filter()?,
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/v1/projects", tag = "projects", request_body = CreateProject,
    responses((status = 201, body = Project), (status = "default", body = ErrorBody)))]
pub async fn create_project(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateProject>,
) -> ApiResult<(StatusCode, axum::Json<Project>)> {
    let p = app::create(
        &s,
        &ctx,
        &actor,
        NewProject {
            department_id: b.department_id,
            name: b.name,
            description: b.description,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(p)))
}

#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects", params(("id" = ProjectId, Path)),
    responses((status = 200, body = Project), (status = "default", body = ErrorBody)))]
pub async fn get_project(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<ProjectId>,
) -> ApiResult<axum::Json<Project>> {
    Ok(axum::Json(app::get(&s, &actor, id).await?))
}

#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "projects", params(("id" = ProjectId, Path)), request_body = UpdateProject,
    responses((status = 200, body = Project), (status = "default", body = ErrorBody)))]
pub async fn update_project(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ProjectId>,
    Json(b): Json<UpdateProject>,
) -> ApiResult<axum::Json<Project>> {
    let p = ProjectPatch {
        name: b.name,
        description: b.description,
        generation: b.generation,
    };
    Ok(axum::Json(app::update(&s, &ctx, &actor, id, p).await?))
}

#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "projects", params(("id" = ProjectId, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_project(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ProjectId>,
) -> ApiResult<StatusCode> {
    app::delete(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
