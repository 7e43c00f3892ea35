//! `/v1/users`: accounts.

use crate::app::users::{self as app, NewUser, UserPatch};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use zy_model::id::{DepartmentId, UserId};
use zy_model::page::Page;
use zy_model::tenancy::User;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    /// Items per page, 1–1000 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `name` (user name), `-name`, `created_at` or `-created_at`.
    pub sort: Option<String>,
    /// Substring of the user name or display name.
    pub q: Option<String>,
    /// Only people whose home is this department.
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name: 3–32 of a–z, 0–9, `.`, `_`, `-`.
    #[schema(pattern = "^[a-z][a-z0-9._-]{2,31}$")]
    pub username: String,
    /// The person's name, e.g. 张伟
    #[schema(min_length = 1, max_length = 64)]
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The department the person works for.
    pub department_id: Option<DepartmentId>,
    /// An initial password (must still be changed at first login). Omit it to have the
    /// server generate a one-time password, returned once in the response.
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    pub user: User,
    /// The generated one-time password, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<String>,
}

/// Distinguishes an absent field (leave alone) from `null` (clear it).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub display_name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// Moves the person to another department; `null` makes them department-less.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<Option<DepartmentId>>,
    pub generation: Option<i64>,
}

#[utoipa::path(get, path = "/v1/users", tag = "users", params(ListUsers),
    responses((status = 200, body = Page<User>), (status = "default", body = ErrorBody)))]
pub async fn list_users(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListUsers>,
) -> ApiResult<axum::Json<Page<User>>> {
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

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = CreatedUser), (status = "default", body = ErrorBody)))]
pub async fn create_user(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateUser>,
) -> ApiResult<(StatusCode, axum::Json<CreatedUser>)> {
    let input = NewUser {
        username: b.username,
        display_name: b.display_name,
        email: b.email,
        phone: b.phone,
        department_id: b.department_id,
        password: b.password,
    };
    let (user, initial_password) = app::create(&s, &ctx, &actor, input).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedUser {
            user,
            initial_password,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = UserId, Path)),
    responses((status = 200, body = User), (status = "default", body = ErrorBody)))]
pub async fn get_user(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<UserId>,
) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(app::get(&s, &actor, id).await?))
}

#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", params(("id" = UserId, Path)), request_body = UpdateUser,
    responses((status = 200, body = User), (status = "default", body = ErrorBody)))]
pub async fn update_user(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<UserId>,
    Json(b): Json<UpdateUser>,
) -> ApiResult<axum::Json<User>> {
    let p = UserPatch {
        display_name: b.display_name,
        email: b.email,
        phone: b.phone,
        department_id: b.department_id,
        generation: b.generation,
    };
    Ok(axum::Json(app::update(&s, &ctx, &actor, id, p).await?))
}

#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = UserId, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_user(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<UserId>,
) -> ApiResult<StatusCode> {
    app::delete(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
