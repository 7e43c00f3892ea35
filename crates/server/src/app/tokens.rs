//! API tokens for scripts. Only an interactive session can mint one (a leaked token cannot
//! mint more); the secret is shown once; tokens expire and can be revoked by their owner
//! or by the security admin.

use super::commit_audited;
use crate::auth::actor::{Actor, AuthKind};
use crate::auth::secrets::{random_string, sha256_hex, TOKEN_PREFIX};
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::id::{TokenId, UserId};
use zy_model::page::{Page, PageRequest};
use zy_model::tenancy::ApiToken;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, Action};
use zy_store::tokens;

pub async fn create(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<(ApiToken, String), Error> {
    if !matches!(actor.kind, AuthKind::Session { .. }) {
        return Err(Error::forbidden(t!(
            "API 令牌只能在登录会话中创建，不能用令牌创建令牌",
            "API tokens can only be created from a login session, not with another token"
        )));
    }
    let settings = s.settings().await?;
    let days = expires_in_days.unwrap_or(90.min(settings.token_max_days));
    if days == 0 || days > settings.token_max_days {
        return Err(Error::validation(
            "expires_in_days",
            t!("有效期须在 1 到 {} 天之间" ; "expires_in_days must be between 1 and {}", settings.token_max_days),
        ));
    }
    let secret = random_string(TOKEN_PREFIX);
    let now = Timestamp::now();
    let tok = ApiToken {
        id: TokenId::new(),
        user_id: actor.user.id,
        name: validate::name("name", name)?,
        prefix: secret.chars().take(10).collect(),
        created_at: now,
        expires_at: now.plus_secs(days as i64 * 86_400),
        last_used_at: None,
        revoked_at: None,
    };
    let mut tx = s.store.begin_write().await?;
    tokens::insert(&mut tx, &tok, &sha256_hex(&secret)).await?;
    let detail =
        serde_json::json!({ "name": tok.name, "prefix": tok.prefix, "expires_at": tok.expires_at });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_token",
        "token",
        &tok.id.to_string(),
        detail,
    )
    .await?;
    Ok((tok, secret))
}

/// The caller's own tokens, or another user's / everyone's for the security admin.
pub async fn list(
    s: &AppState,
    actor: &Actor,
    page: &PageRequest,
    user: Option<UserId>,
    all: bool,
) -> Result<Page<ApiToken>, Error> {
    let filter = if all {
        authorize(&actor.principal, Action::TokenAdminister)?;
        None
    } else {
        let u = user.unwrap_or(actor.user.id);
        if u != actor.user.id {
            authorize(&actor.principal, Action::TokenAdminister)?;
        }
        Some(u)
    };
    tokens::list(&s.store, page, filter).await
}

pub async fn revoke(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: TokenId,
) -> Result<(), Error> {
    let tok = tokens::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("token", id))?;
    if tok.user_id != actor.user.id {
        authorize(&actor.principal, Action::TokenAdminister)?;
    }
    let mut tx = s.store.begin_write().await?;
    if !tokens::revoke(&mut tx, id).await? {
        return Err(Error::conflict(t!(
            "该令牌已被吊销",
            "the token is already revoked"
        )));
    }
    let detail = serde_json::json!({ "name": tok.name, "owner": tok.user_id });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "revoke_token",
        "token",
        &id.to_string(),
        detail,
    )
    .await
}
