//! Who is calling. [`Actor`] authenticates a request from its bearer secret (API token or
//! CLI session) or its session cookie (with a CSRF check on changes), loads the account and
//! its roles, and refuses accounts that must first change their password or enrol a second
//! factor. [`AnyActor`] admits those too, for the few endpoints that let them do so.

use crate::auth::secrets::{constant_time_eq, sha256_hex, TOKEN_PREFIX};
use crate::context::{ActorSummary, RequestContext};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use zy_model::id::{SessionId, TokenId};
use zy_model::role::{Grant, Role};
use zy_model::security::SecuritySettings;
use zy_model::tenancy::User;
use zy_model::time::Timestamp;
use zy_model::{t, Error, ErrorCode};
use zy_policy::{Principal, UserTarget};

pub const SESSION_COOKIE: &str = "zy_session";
pub const CSRF_COOKIE: &str = "zy_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Session { id: SessionId, via_cookie: bool },
    Token { id: TokenId },
}

/// What an account must do before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    PasswordChange,
    MfaEnrolment,
}

#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub principal: Principal,
    pub kind: AuthKind,
    pub restriction: Option<Restriction>,
    pub admin_role: Option<Role>,
}

impl Actor {
    pub fn summary(&self) -> ActorSummary {
        ActorSummary {
            user_id: Some(self.user.id.to_string()),
            name: self.user.username.clone(),
            roles: roles_text(&self.principal.grants),
        }
    }

    pub fn as_target(&self) -> UserTarget {
        UserTarget {
            id: self.user.id,
            department_id: self.user.department_id,
            admin_role: self.admin_role,
        }
    }
}

/// `role@scope` list for audit records.
pub fn roles_text(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(|g| match g.scope {
            zy_model::role::Scope::Platform => g.role.as_str().to_string(),
            zy_model::role::Scope::Department(d) => format!("{}@department:{d}", g.role),
            zy_model::role::Scope::Project(_, p) => format!("{}@project:{p}", g.role),
            zy_model::role::Scope::Provider(p) => format!("{}@provider:{p}", g.role),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// An authenticated caller who may still have to change a password or enrol a factor.
pub struct AnyActor(pub Actor);

impl FromRequestParts<AppState> for AnyActor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state)
            .await
            .map(AnyActor)
            .map_err(ApiError)
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let a = authenticate(parts, state).await.map_err(ApiError)?;
        match a.restriction {
            None => Ok(a),
            Some(Restriction::PasswordChange) => Err(ApiError(Error::new(
                ErrorCode::PasswordChangeRequired,
                t!(
                    "请先修改密码（首次登录、密码已重置或已过期）",
                    "You must change your password first (first login, reset or expired password)"
                ),
            ))),
            Some(Restriction::MfaEnrolment) => Err(ApiError(Error::new(
                ErrorCode::MfaEnrolmentRequired,
                t!(
                    "您的角色要求启用双因素认证，请先完成绑定",
                    "Your role requires a second factor; enrol one first"
                ),
            ))),
        }
    }
}

fn bearer_or_cookie(parts: &Parts) -> Option<(String, bool)> {
    if let Some(v) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some((v[7..].trim().to_string(), false));
        }
    }
    cookie(parts, SESSION_COOKIE).map(|c| (c, true))
}

pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

fn expired(msg_zh: &'static str, msg_en: &'static str) -> Error {
    Error::new(
        ErrorCode::Unauthenticated,
        zy_model::Text::new(msg_zh, msg_en),
    )
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Actor, Error> {
    let ctx = parts.extensions.get::<RequestContext>().cloned();
    let (secret, via_cookie) = bearer_or_cookie(parts).ok_or_else(Error::unauthenticated)?;
    if secret.len() > 256 {
        return Err(Error::unauthenticated());
    }
    let hash = sha256_hex(&secret);
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(hit) = state.auth_cache.get(&hash, via_cookie) {
        if via_cookie && unsafe_method {
            check_csrf(parts, hit.csrf.as_deref().unwrap_or(""))?;
        }
        if let Some(ctx) = &ctx {
            ctx.set_actor(hit.actor.summary());
        }
        return Ok(hit.actor);
    }
    let now = Timestamp::now();
    let mut csrf = None;
    let settings = state.settings().await?;
    let store = &state.store;

    let (user_id, kind) = if secret.starts_with(TOKEN_PREFIX) && !via_cookie {
        let tok = zy_store::tokens::get_by_hash(store.pool(), &hash)
            .await?
            .ok_or_else(Error::unauthenticated)?;
        if tok.revoked_at.is_some() {
            return Err(expired(
                "API 令牌已被吊销",
                "the API token has been revoked",
            ));
        }
        if tok.expires_at <= now {
            return Err(expired(
                "API 令牌已过期，请重新创建",
                "the API token has expired; create a new one",
            ));
        }
        // Recording use at most once a minute keeps token checks read-only on hot paths.
        if tok.last_used_at.is_none_or(|t| now.secs_since(t) >= 60) {
            let (store, id) = (store.clone(), tok.id);
            background_touch(async move { zy_store::tokens::touch(store.pool(), id, now).await });
        }
        (tok.user_id, AuthKind::Token { id: tok.id })
    } else {
        let s = zy_store::sessions::get_by_hash(store.pool(), &hash)
            .await?
            .ok_or_else(Error::unauthenticated)?;
        if s.revoked {
            return Err(expired(
                "会话已结束，请重新登录",
                "the session has ended; please log in again",
            ));
        }
        if s.expires_at <= now {
            return Err(expired(
                "会话已达最长时限，请重新登录",
                "the session reached its maximum age; please log in again",
            ));
        }
        if now.secs_since(s.last_seen_at) >= settings.session_idle_minutes as i64 * 60 {
            return Err(expired(
                "会话因长时间无操作已过期，请重新登录",
                "the session expired after inactivity; please log in again",
            ));
        }
        if via_cookie && unsafe_method {
            check_csrf(parts, &s.csrf_token)?;
        }
        csrf = Some(s.csrf_token.clone());
        if now.secs_since(s.last_seen_at) >= 30 {
            let (store, id) = (store.clone(), s.id);
            background_touch(async move { zy_store::sessions::touch(store.pool(), id, now).await });
        }
        (
            s.user_id,
            AuthKind::Session {
                id: s.id,
                via_cookie,
            },
        )
    };

    let rec = zy_store::users::get(store.pool(), user_id)
        .await?
        .ok_or_else(Error::unauthenticated)?;
    if rec.user.locked_until.is_some_and(|t| t > now) {
        return Err(Error::new(
            ErrorCode::AccountLocked,
            t!(
                "账号已被锁定，请联系安全管理员",
                "the account is locked; contact the security admin"
            ),
        ));
    }
    let grants = zy_store::memberships::grants_for_user(store.pool(), user_id).await?;
    let restriction = restriction_for(&rec.user, &grants, &settings, now);
    let actor = Actor {
        principal: Principal { user_id, grants },
        user: rec.user,
        kind,
        restriction,
        admin_role: rec.admin_role,
    };
    if let Some(ctx) = ctx {
        ctx.set_actor(actor.summary());
    }
    state.auth_cache.put(hash, via_cookie, actor.clone(), csrf);
    Ok(actor)
}

fn check_csrf(parts: &Parts, expected: &str) -> Result<(), Error> {
    let header = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if expected.is_empty() || !constant_time_eq(header, expected) {
        return Err(Error::new(
            ErrorCode::CsrfFailed,
            t!(
                "缺少或错误的 CSRF 令牌（请求头 X-CSRF-Token），请刷新页面后重试",
                "missing or wrong CSRF token (X-CSRF-Token header); reload the page and try again"
            ),
        ));
    }
    Ok(())
}

/// Whether an account must change its password or enrol a second factor before working.
pub fn restriction_for(
    user: &User,
    grants: &[Grant],
    s: &SecuritySettings,
    now: Timestamp,
) -> Option<Restriction> {
    let expired = s.password_max_age_days > 0
        && now.secs_since(user.password_changed_at) >= s.password_max_age_days as i64 * 86_400;
    if user.must_change_password || expired {
        return Some(Restriction::PasswordChange);
    }
    if !user.mfa_enabled
        && grants
            .iter()
            .any(|g| s.mfa_required_roles.contains(&g.role))
    {
        return Some(Restriction::MfaEnrolment);
    }
    None
}

/// Records use of a session or token without making the request wait for the database's
/// write lock (which a login flood may hold for a while); a lost touch is retried by the
/// next request, and the idle limit is minutes, the touch interval seconds.
fn background_touch<T>(work: impl std::future::Future<Output = Result<T, Error>> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(e) = work.await {
            tracing::debug!(error = %e, "could not record the use of a credential");
        }
    });
}
