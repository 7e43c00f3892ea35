//! Security administration: account locks, password and second-factor resets, settings.

use crate::app::security as app;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zy_model::id::UserId;
use zy_model::security::SecuritySettings;
use zy_model::tenancy::User;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockUser {
    /// Minutes to lock for; omit to lock until unlocked.
    pub minutes: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordReset {
    /// The new one-time password, shown this once; it must be changed at next login.
    pub initial_password: String,
}

#[utoipa::path(post, path = "/v1/users/{id}/lock", tag = "security", params(("id" = UserId, Path)), request_body = LockUser,
    responses((status = 200, body = User), (status = "default", body = ErrorBody)))]
pub async fn lock_user(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<UserId>,
    Json(b): Json<LockUser>,
) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(
        app::lock(&s, &ctx, &actor, id, b.minutes).await?,
    ))
}

#[utoipa::path(post, path = "/v1/users/{id}/unlock", tag = "security", params(("id" = UserId, Path)),
    responses((status = 200, body = User), (status = "default", body = ErrorBody)))]
pub async fn unlock_user(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<UserId>,
) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(app::unlock(&s, &ctx, &actor, id).await?))
}

#[utoipa::path(post, path = "/v1/users/{id}/reset-password", tag = "security", params(("id" = UserId, Path)),
    responses((status = 200, body = PasswordReset), (status = "default", body = ErrorBody)))]
pub async fn reset_user_password(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<UserId>,
) -> ApiResult<axum::Json<PasswordReset>> {
    let initial_password = app::reset_password(&s, &ctx, &actor, id).await?;
    Ok(axum::Json(PasswordReset { initial_password }))
}

#[utoipa::path(post, path = "/v1/users/{id}/reset-mfa", tag = "security", params(("id" = UserId, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn reset_user_mfa(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<UserId>,
) -> ApiResult<StatusCode> {
    app::reset_mfa(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/security/settings", tag = "security",
    responses((status = 200, body = SecuritySettings), (status = "default", body = ErrorBody)))]
pub async fn get_security_settings(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<SecuritySettings>> {
    Ok(axum::Json(app::get_settings(&s, &actor).await?))
}

#[utoipa::path(put, path = "/v1/security/settings", tag = "security", request_body = SecuritySettings,
    responses((status = 200, body = SecuritySettings), (status = "default", body = ErrorBody)))]
pub async fn update_security_settings(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<SecuritySettings>,
) -> ApiResult<axum::Json<SecuritySettings>> {
    Ok(axum::Json(app::put_settings(&s, &ctx, &actor, b).await?))
}
