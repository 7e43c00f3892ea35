//! `/v1/auth` and `/v1/me`: logging in and out, one's own account, password and second factor.

use crate::app::auth::{self as app, LoginInput};
use crate::auth::actor::{AnyActor, AuthKind, Restriction, CSRF_COOKIE, SESSION_COOKIE};
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zy_model::page::PageRequest;
use zy_model::tenancy::{Membership, User};
use zy_model::time::Timestamp;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The 6-digit code from the authenticator app, for accounts with a second factor.
    pub totp_code: Option<String>,
    /// A one-use recovery code, instead of `totp_code`.
    pub recovery_code: Option<String>,
    /// Return the session secret in the body for use as a bearer token (CLI, scripts)
    /// instead of only setting the HttpOnly cookie (browsers).
    #[serde(default)]
    pub bearer: bool,
}

/// What the account must do before anything else.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequiredAction {
    ChangePassword,
    EnrolMfa,
}

fn required(r: Option<Restriction>) -> Option<RequiredAction> {
    r.map(|r| match r {
        Restriction::PasswordChange => RequiredAction::ChangePassword,
        Restriction::MfaEnrolment => RequiredAction::EnrolMfa,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub user: User,
    /// Echo this in the `X-CSRF-Token` header on changes made with the session cookie.
    pub csrf_token: String,
    pub expires_at: Timestamp,
    /// Present when `bearer` was asked for: `Authorization: Bearer <session_token>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_action: Option<RequiredAction>,
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = "default", body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ctx: RequestContext,
    Json(b): Json<LoginRequest>,
) -> ApiResult<Response> {
    let out = app::login(
        &s,
        &ctx,
        LoginInput {
            username: b.username,
            password: b.password,
            totp_code: b.totp_code,
            recovery_code: b.recovery_code,
        },
    )
    .await?;
    let secure = if s.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let max_age = out.expires_at.secs_since(Timestamp::now()).max(0);
    let session_cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        out.session_secret
    );
    let csrf_cookie = format!(
        "{CSRF_COOKIE}={}; Path=/; SameSite=Strict; Max-Age={max_age}{secure}",
        out.csrf_token
    );
    let body = LoginResponse {
        user: out.user,
        csrf_token: out.csrf_token,
        expires_at: out.expires_at,
        session_token: b.bearer.then_some(out.session_secret),
        required_action: required(out.restriction),
    };
    let mut resp = axum::Json(body).into_response();
    for c in [session_cookie, csrf_cookie] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn logout(
    State(s): State<AppState>,
    ctx: RequestContext,
    AnyActor(actor): AnyActor,
) -> ApiResult<Response> {
    app::logout(&s, &ctx, &actor).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) =
            HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0; SameSite=Strict"))
        {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub memberships: Vec<Membership>,
    /// `session` or `token`.
    pub auth: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_action: Option<RequiredAction>,
}

#[utoipa::path(get, path = "/v1/me", tag = "auth",
    responses((status = 200, body = Me), (status = "default", body = ErrorBody)))]
pub async fn me(State(s): State<AppState>, AnyActor(actor): AnyActor) -> ApiResult<axum::Json<Me>> {
    let page = PageRequest::parse(Some(1000), None, Some("created_at"))?;
    let memberships = zy_store::memberships::list(
        &s.store,
        &page,
        zy_store::memberships::MembershipFilter::User(actor.user.id),
    )
    .await?
    .items;
    let auth = match actor.kind {
        AuthKind::Session { .. } => "session",
        AuthKind::Token { .. } => "token",
    };
    Ok(axum::Json(Me {
        user: actor.user,
        memberships,
        auth: auth.into(),
        required_action: required(actor.restriction),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[utoipa::path(post, path = "/v1/me/password", tag = "auth", request_body = ChangePassword,
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn change_password(
    State(s): State<AppState>,
    ctx: RequestContext,
    AnyActor(actor): AnyActor,
    Json(b): Json<ChangePassword>,
) -> ApiResult<StatusCode> {
    app::change_password(&s, &ctx, &actor, b.current_password, b.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaEnrolment {
    /// The TOTP secret in base32, for typing into an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
    /// The same URI as a QR code (SVG), for scanning.
    pub qr_svg: String,
}

#[utoipa::path(post, path = "/v1/me/mfa/enrol", tag = "auth",
    responses((status = 200, body = MfaEnrolment), (status = "default", body = ErrorBody)))]
pub async fn enrol_mfa(
    State(s): State<AppState>,
    ctx: RequestContext,
    AnyActor(actor): AnyActor,
) -> ApiResult<axum::Json<MfaEnrolment>> {
    if actor.restriction == Some(Restriction::PasswordChange) {
        // Password first: an account with a one-time password must not bind a factor yet.
        return Err(crate::error::ApiError(zy_model::Error::new(
            zy_model::ErrorCode::PasswordChangeRequired,
            zy_model::t!("请先修改密码", "change your password first"),
        )));
    }
    let e = app::mfa_enrol(&s, &ctx, &actor).await?;
    Ok(axum::Json(MfaEnrolment {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
        qr_svg: e.qr_svg,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmMfa {
    /// A current 6-digit code from the authenticator app.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten one-use recovery codes, shown this once. Keep them somewhere safe.
    pub recovery_codes: Vec<String>,
}

#[utoipa::path(post, path = "/v1/me/mfa/confirm", tag = "auth", request_body = ConfirmMfa,
    responses((status = 200, body = RecoveryCodes), (status = "default", body = ErrorBody)))]
pub async fn confirm_mfa(
    State(s): State<AppState>,
    ctx: RequestContext,
    AnyActor(actor): AnyActor,
    Json(b): Json<ConfirmMfa>,
) -> ApiResult<axum::Json<RecoveryCodes>> {
    let recovery_codes = app::mfa_confirm(&s, &ctx, &actor, &b.code).await?;
    Ok(axum::Json(RecoveryCodes { recovery_codes }))
}
