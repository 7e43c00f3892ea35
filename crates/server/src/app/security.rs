//! The security admin's work: locking and unlocking accounts, resetting passwords and
//! second factors, and the security settings. Never anyone's own account.

use super::commit_audited;
use crate::app::users::{load, target};
use crate::auth::actor::Actor;
use crate::auth::secrets;
use crate::context::RequestContext;
use crate::state::{AppState, SECURITY_SETTINGS_KEY};
use zy_model::id::UserId;
use zy_model::security::SecuritySettings;
use zy_model::tenancy::User;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::{sessions, tokens, users};

/// Locks an account for `minutes`, or until unlocked when `None`; ends its sessions.
pub async fn lock(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: UserId,
    minutes: Option<u32>,
) -> Result<User, Error> {
    let r = load(s, id).await?;
    authorize(&actor.principal, Action::UserSecurity(target(&r)))?;
    if minutes.is_some_and(|m| m == 0 || m > 525_600) {
        return Err(Error::validation(
            "minutes",
            t!(
                "锁定时长须在 1 到 525600 分钟之间",
                "minutes must be between 1 and 525600"
            ),
        ));
    }
    // "Until unlocked" is stored as a lock a century long.
    let until =
        Timestamp::now().plus_secs(minutes.map(|m| m as i64 * 60).unwrap_or(100 * 365 * 86_400));
    let mut tx = s.store.begin_write().await?;
    let u = users::set_lock(&mut tx, id, Some(until)).await?;
    let ended = sessions::revoke_all_for_user(&mut tx, id, None).await?;
    let detail = serde_json::json!({ "username": u.username, "locked_until": until, "sessions_ended": ended });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "lock_user",
        "user",
        &id.to_string(),
        detail,
    )
    .await?;
    Ok(u)
}

pub async fn unlock(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: UserId,
) -> Result<User, Error> {
    let r = load(s, id).await?;
    authorize(&actor.principal, Action::UserSecurity(target(&r)))?;
    let mut tx = s.store.begin_write().await?;
    let u = users::set_lock(&mut tx, id, None).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "unlock_user",
        "user",
        &id.to_string(),
        serde_json::json!({ "username": u.username }),
    )
    .await?;
    Ok(u)
}

/// Gives the account a new one-time password, ending its sessions and tokens.
pub async fn reset_password(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: UserId,
) -> Result<String, Error> {
    let r = load(s, id).await?;
    authorize(&actor.principal, Action::UserSecurity(target(&r)))?;
    let otp = secrets::one_time_password();
    let hash = s.hashing.hash(otp.clone()).await?;
    let mut tx = s.store.begin_write().await?;
    users::set_password(&mut tx, id, &hash, true).await?;
    users::set_lock(&mut tx, id, None).await?;
    let ended = sessions::revoke_all_for_user(&mut tx, id, None).await?;
    let revoked = tokens::revoke_all_for_user(&mut tx, id).await?;
    let detail = serde_json::json!({ "username": r.user.username, "sessions_ended": ended, "tokens_revoked": revoked });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "reset_user_password",
        "user",
        &id.to_string(),
        detail,
    )
    .await?;
    Ok(otp)
}

/// Removes the account's second factor (lost phone); it must enrol again if its role needs one.
pub async fn reset_mfa(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: UserId,
) -> Result<(), Error> {
    let r = load(s, id).await?;
    authorize(&actor.principal, Action::UserSecurity(target(&r)))?;
    let mut tx = s.store.begin_write().await?;
    users::set_totp(&mut tx, id, None, false).await?;
    users::replace_recovery_codes(&mut tx, id, &[]).await?;
    let ended = sessions::revoke_all_for_user(&mut tx, id, None).await?;
    let revoked = tokens::revoke_all_for_user(&mut tx, id).await?;
    let detail = serde_json::json!({ "username": r.user.username, "sessions_ended": ended, "tokens_revoked": revoked });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "reset_user_mfa",
        "user",
        &id.to_string(),
        detail,
    )
    .await
}

pub async fn get_settings(s: &AppState, actor: &Actor) -> Result<SecuritySettings, Error> {
    authorize(&actor.principal, Action::SecuritySettingsRead)?;
    s.settings().await
}

pub async fn put_settings(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    new: SecuritySettings,
) -> Result<SecuritySettings, Error> {
    authorize(&actor.principal, Action::SecuritySettingsUpdate)?;
    new.validate()?;
    let old = s.settings().await?;
    let mut tx = s.store.begin_write().await?;
    zy_store::settings::put(&mut tx, SECURITY_SETTINGS_KEY, &new).await?;
    let detail = serde_json::json!({ "before": old, "after": new });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_security_settings",
        "settings",
        SECURITY_SETTINGS_KEY,
        detail,
    )
    .await?;
    s.set_settings(new.clone());
    Ok(new)
}
