//! Logging in and out, changing one's password and enrolling a second factor.
//!
//! Login follows MLPS level 3: a wrong password counts towards a lock (5 in a row lock the
//! account for 15 minutes by default); a locked account is refused before its password is
//! even checked; accounts with a second factor must give a TOTP or recovery code; every
//! success and failure is audited.

use super::commit_audited;
use crate::auth::actor::{restriction_for, Actor, AuthKind, Restriction};
use crate::auth::{password, secrets};
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::audit::Outcome;
use zy_model::id::SessionId;
use zy_model::time::Timestamp;
use zy_model::{t, totp, Error, ErrorCode};
use zy_store::sessions::{self, SessionRecord};
use zy_store::{db_error, users};

pub struct LoginInput {
    pub username: String,
    pub password: String,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

pub struct LoginOutcome {
    pub session_secret: String,
    pub csrf_token: String,
    pub user: zy_model::tenancy::User,
    pub expires_at: Timestamp,
    pub restriction: Option<Restriction>,
}

/// Writes a login failure (and any counter change made in `tx`) and returns `err`.
async fn fail(
    mut tx: zy_store::Tx,
    ctx: &RequestContext,
    username: &str,
    user_id: Option<String>,
    err: Error,
) -> Error {
    let mut entry = ctx.entry(
        None,
        "login",
        "user",
        user_id.as_deref().unwrap_or(""),
        Outcome::Failure,
        serde_json::json!({ "code": err.code.as_str() }),
    );
    entry.actor_name = zy_model::validate::clip(&username.replace('\0', "\u{fffd}"), 64);
    entry.actor_id = user_id;
    if let Err(e) = zy_store::audit::append(&mut tx, entry).await {
        return super::audit_unavailable(e);
    }
    if let Err(e) = tx.commit().await {
        return db_error(e);
    }
    ctx.mark_audited();
    err
}

/// The account name as the per-account limit counts it: trimmed, lower-case, clipped.
fn account_key(username: &str) -> String {
    zy_model::validate::clip(&username.trim().to_lowercase(), 64)
}

/// A login refused before any password check is summarised in the audit log (see
/// `refusals.rs`) instead of being written on its own.
fn refused(s: &AppState, ctx: &RequestContext, username: &str, err: Error) -> Error {
    s.refusals
        .count(&ctx.source_ip, "login", err.code.as_str(), Some(username));
    ctx.mark_audited();
    err
}

/// The per-address and per-account login limits (security settings); 429 when spent.
fn throttle(
    s: &AppState,
    ctx: &RequestContext,
    settings: &zy_model::security::SecuritySettings,
    username: &str,
    account: &str,
) -> Result<(), Error> {
    let now = std::time::Instant::now();
    let limited = s
        .login_by_address
        .take(
            &ctx.source_ip,
            settings.login_attempts_per_address_per_minute,
            now,
        )
        .and_then(|()| {
            s.login_by_account
                .take(account, settings.login_attempts_per_account_per_minute, now)
        });
    let Err(secs) = limited else { return Ok(()) };
    let err = Error::rate_limited(
        t!(
            "登录尝试过于频繁，请 {} 秒后重试" ;
            "too many login attempts; try again in {} seconds",
            secs
        ),
        secs,
    )
    .with_details(serde_json::json!({ "retry_after_secs": secs }));
    Err(refused(s, ctx, username, err))
}

/// A login that got through gives its attempts back: only failures use up the limits.
fn give_back(s: &AppState, ctx: &RequestContext, account: &str) {
    s.login_by_address.give_back(&ctx.source_ip);
    s.login_by_account.give_back(account);
}

pub async fn login(
    s: &AppState,
    ctx: &RequestContext,
    input: LoginInput,
) -> Result<LoginOutcome, Error> {
    let settings = s.settings().await?;
    let account = account_key(&input.username);
    throttle(s, ctx, &settings, &input.username, &account)?;
    // A hashing slot before any database work: a flood beyond the bound is refused here.
    let slot = s
        .hashing
        .admit()
        .await
        .map_err(|e| refused(s, ctx, &input.username, e))?;
    let now = Timestamp::now();
    let bad_credentials = || {
        Error::new(
            ErrorCode::InvalidCredentials,
            t!("用户名或密码错误", "wrong user name or password"),
        )
    };
    // A name with a NUL cannot exist (PostgreSQL refuses it in text): unknown, without asking.
    let rec = if input.username.contains('\0') {
        None
    } else {
        users::get_by_username(s.store.pool(), input.username.trim()).await?
    };
    let Some(rec) = rec else {
        // Same work as a real check, so response times do not reveal which names exist.
        slot.verify(input.password, password::DUMMY_HASH.to_string())
            .await?;
        let tx = s.store.begin_write().await?;
        return Err(fail(tx, ctx, &input.username, None, bad_credentials()).await);
    };
    let uid = rec.user.id;
    let locked = |until: Timestamp| {
        Error::new(
            ErrorCode::AccountLocked,
            t!(
                "账号已锁定，请于 {} 后重试或联系安全管理员解锁" ;
                "the account is locked until {}; try again later or ask the security admin to unlock it",
                until.to_rfc3339()
            ),
        )
        .with_details(serde_json::json!({ "locked_until": until }))
    };
    if let Some(until) = rec.user.locked_until.filter(|t| *t > now) {
        drop(slot);
        let tx = s.store.begin_write().await?;
        return Err(fail(
            tx,
            ctx,
            &rec.user.username,
            Some(uid.to_string()),
            locked(until),
        )
        .await);
    }
    let password_ok = slot
        .verify(input.password, rec.password_hash.clone())
        .await?;

    let mut tx = s.store.begin_write().await?;
    let count_failure = |tx: zy_store::Tx, err: Error| async {
        let mut tx = tx;
        let lock_until = now.plus_secs(settings.lockout_minutes as i64 * 60);
        match users::record_failed_login(&mut tx, uid, settings.lockout_threshold, lock_until).await
        {
            Ok((n, Some(until))) if n >= settings.lockout_threshold as i64 => {
                let _ = sessions::revoke_all_for_user(&mut tx, uid, None).await;
                fail(
                    tx,
                    ctx,
                    &rec.user.username,
                    Some(uid.to_string()),
                    locked(until),
                )
                .await
            }
            Ok((n, _)) => {
                let left = settings.lockout_threshold as i64 - n;
                let err = err.with_details(serde_json::json!({ "remaining_attempts": left }));
                fail(tx, ctx, &rec.user.username, Some(uid.to_string()), err).await
            }
            Err(e) => e,
        }
    };
    if !password_ok {
        return Err(count_failure(tx, bad_credentials()).await);
    }
    if rec.user.mfa_enabled {
        let secret = match rec.totp_secret.as_deref() {
            Some(sealed) => s
                .sealer
                .open(sealed)
                .ok()
                .and_then(|b| totp::base32_decode(&b))
                .unwrap_or_default(),
            None => Vec::new(),
        };
        match (&input.totp_code, &input.recovery_code) {
            (Some(code), _) => {
                let step = totp::verify(&secret, code, now.0 / 1_000_000);
                let fresh = match step {
                    Some(step) => users::use_totp_step(&mut tx, uid, step).await?,
                    None => false,
                };
                if !fresh {
                    let err = Error::new(
                        ErrorCode::InvalidCredentials,
                        t!(
                            "动态验证码错误或已使用",
                            "the one-time code is wrong or was already used"
                        ),
                    );
                    return Err(count_failure(tx, err).await);
                }
            }
            (None, Some(code)) => {
                let hash = secrets::sha256_hex(&code.trim().to_ascii_lowercase());
                if !users::use_recovery_code(&mut tx, uid, &hash).await? {
                    let err = Error::new(
                        ErrorCode::InvalidCredentials,
                        t!(
                            "恢复码错误或已使用",
                            "the recovery code is wrong or was already used"
                        ),
                    );
                    return Err(count_failure(tx, err).await);
                }
            }
            (None, None) => {
                drop(tx);
                give_back(s, ctx, &account);
                return Err(Error::new(
                    ErrorCode::MfaRequired,
                    t!(
                        "请输入动态验证码（totp_code）或恢复码（recovery_code）",
                        "enter your one-time code (totp_code) or a recovery code (recovery_code)"
                    ),
                ));
            }
        }
    }
    users::record_successful_login(&mut tx, uid).await?;
    let session_secret = secrets::random_string(secrets::SESSION_PREFIX);
    let csrf_token = secrets::random_string("");
    let expires_at = now.plus_secs(settings.session_max_hours as i64 * 3600);
    let session = SessionRecord {
        id: SessionId::new(),
        user_id: uid,
        csrf_token: csrf_token.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at,
        revoked: false,
    };
    sessions::insert(
        &mut tx,
        &session,
        &secrets::sha256_hex(&session_secret),
        &ctx.source_ip,
    )
    .await?;
    let grants = zy_store::memberships::grants_for_user(&mut *tx, uid).await?;
    let restriction = restriction_for(&rec.user, &grants, &settings, now);
    ctx.set_actor(crate::context::ActorSummary {
        user_id: Some(uid.to_string()),
        name: rec.user.username.clone(),
        roles: crate::auth::actor::roles_text(&grants),
    });
    let detail = serde_json::json!({ "session_id": session.id, "mfa": rec.user.mfa_enabled });
    commit_audited(tx, ctx, None, "login", "user", &uid.to_string(), detail).await?;
    give_back(s, ctx, &account);
    Ok(LoginOutcome {
        session_secret,
        csrf_token,
        user: rec.user,
        expires_at,
        restriction,
    })
}

pub async fn logout(s: &AppState, ctx: &RequestContext, actor: &Actor) -> Result<(), Error> {
    let AuthKind::Session { id, .. } = actor.kind else {
        return Err(Error::invalid(t!(
            "API 令牌无需登出；如需停用请吊销令牌",
            "API tokens do not log out; revoke the token instead"
        )));
    };
    let mut tx = s.store.begin_write().await?;
    sessions::revoke(&mut tx, id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "logout",
        "session",
        &id.to_string(),
        serde_json::json!({}),
    )
    .await
}

pub async fn change_password(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    current: String,
    new: String,
) -> Result<(), Error> {
    let settings = s.settings().await?;
    let rec = users::get(s.store.pool(), actor.user.id)
        .await?
        .ok_or_else(Error::unauthenticated)?;
    if !s.hashing.verify(current, rec.password_hash.clone()).await? {
        return Err(Error::validation(
            "current_password",
            t!("当前密码不正确", "the current password is wrong"),
        ));
    }
    settings.check_password(&new, &rec.user.username)?;
    if s.hashing.verify(new.clone(), rec.password_hash).await? {
        return Err(Error::validation(
            "new_password",
            t!(
                "新密码不能与当前密码相同",
                "the new password must differ from the current one"
            ),
        ));
    }
    let hash = s.hashing.hash(new).await?;
    let keep = match actor.kind {
        AuthKind::Session { id, .. } => Some(id),
        AuthKind::Token { .. } => None,
    };
    let mut tx = s.store.begin_write().await?;
    users::set_password(&mut tx, actor.user.id, &hash, false).await?;
    let ended = sessions::revoke_all_for_user(&mut tx, actor.user.id, keep).await?;
    let detail = serde_json::json!({ "other_sessions_ended": ended });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "change_password",
        "user",
        &actor.user.id.to_string(),
        detail,
    )
    .await
}

pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// Starts TOTP enrolment: a new secret, pending until confirmed with a code from it.
pub async fn mfa_enrol(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
) -> Result<Enrolment, Error> {
    if actor.user.mfa_enabled {
        return Err(Error::conflict(t!(
            "已启用双因素认证；如需更换请联系安全管理员重置",
            "a second factor is already enrolled; ask the security admin to reset it to change it"
        )));
    }
    if !matches!(actor.kind, AuthKind::Session { .. }) {
        return Err(Error::forbidden(t!(
            "请在登录会话中绑定双因素认证",
            "enrol a second factor from a login session"
        )));
    }
    let secret = secrets::random_bytes::<20>();
    let b32 = totp::base32(&secret);
    let uri = totp::otpauth_uri("zhengyun 政云", &actor.user.username, &secret);
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build()
        })
        .map_err(|e| Error::internal(e.to_string()))?;
    let sealed = s.sealer.seal(&b32)?;
    let mut tx = s.store.begin_write().await?;
    users::set_totp(&mut tx, actor.user.id, Some(&sealed), false).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "enrol_mfa",
        "user",
        &actor.user.id.to_string(),
        serde_json::json!({ "stage": "started" }),
    )
    .await?;
    Ok(Enrolment {
        secret: b32,
        otpauth_uri: uri,
        qr_svg,
    })
}

/// Confirms enrolment with a code; returns ten recovery codes, shown this once.
pub async fn mfa_confirm(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    code: &str,
) -> Result<Vec<String>, Error> {
    let rec = users::get(s.store.pool(), actor.user.id)
        .await?
        .ok_or_else(Error::unauthenticated)?;
    if rec.user.mfa_enabled {
        return Err(Error::conflict(t!(
            "已启用双因素认证",
            "a second factor is already enrolled"
        )));
    }
    let opened = match rec.totp_secret.as_deref() {
        Some(sealed) => Some(s.sealer.open(sealed)?),
        None => None,
    };
    let Some(secret) = opened.as_deref().and_then(totp::base32_decode) else {
        return Err(Error::conflict(t!(
            "请先开始绑定（POST /v1/me/mfa/enrol）",
            "start enrolment first (POST /v1/me/mfa/enrol)"
        )));
    };
    let Some(step) = totp::verify(&secret, code, Timestamp::now().0 / 1_000_000) else {
        return Err(Error::validation(
            "code",
            t!(
                "动态验证码不正确，请检查手机时间后重试",
                "the code is wrong; check your phone's clock and try again"
            ),
        ));
    };
    let codes = secrets::recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| secrets::sha256_hex(c)).collect();
    let mut tx = s.store.begin_write().await?;
    users::set_totp(&mut tx, actor.user.id, rec.totp_secret.as_deref(), true).await?;
    users::use_totp_step(&mut tx, actor.user.id, step).await?;
    users::replace_recovery_codes(&mut tx, actor.user.id, &hashes).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "confirm_mfa",
        "user",
        &actor.user.id.to_string(),
        serde_json::json!({ "stage": "enabled" }),
    )
    .await?;
    Ok(codes)
}
