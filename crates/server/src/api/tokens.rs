//! `/v1/tokens`: API tokens for scripts.

use crate::app::tokens as app;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zy_model::id::{TokenId, UserId};
use zy_model::page::Page;
use zy_model::tenancy::ApiToken;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTokens {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    /// Another user's tokens (security admin only).
    #[param(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<UserId>,
    /// Everyone's tokens (security admin only).
    pub all: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, e.g. `备份脚本`.
    pub name: String,
    /// Lifetime in days (default 90, at most the security settings' `token_max_days`).
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: ApiToken,
    /// The secret, shown this once: use it as `Authorization: Bearer <secret>`.
    pub secret: String,
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(ListTokens),
    responses((status = 200, body = Page<ApiToken>), (status = "default", body = ErrorBody)))]
pub async fn list_tokens(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListTokens>,
) -> ApiResult<axum::Json<Page<ApiToken>>> {
    let page = zy_model::page::PageRequest::parse(q.limit, q.cursor.as_deref(), q.sort.as_deref())?;
    Ok(axum::Json(
        app::list(&s, &actor, &page, q.user_id, q.all.unwrap_or(false)).await?,
    ))
}

#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = "default", body = ErrorBody)))]
pub async fn create_token(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let (token, secret) = app::create(&s, &ctx, &actor, &b.name, b.expires_in_days).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken { token, secret }),
    ))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = TokenId, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn revoke_token(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<TokenId>,
) -> ApiResult<StatusCode> {
    app::revoke(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
