//! Login sessions (browser cookie or CLI bearer). Only a SHA-256 of the secret is stored.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use sqlx::{Any, Executor};
use zy_model::id::{SessionId, UserId};
use zy_model::time::Timestamp;
use zy_model::Error;

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked: bool,
}

pub async fn insert(
    tx: &mut Tx,
    s: &SessionRecord,
    secret_hash: &str,
    source_ip: &str,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, secret_hash, csrf_token, created_at, last_seen_at, expires_at, source_ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(s.id.to_string())
    .bind(s.user_id.to_string())
    .bind(secret_hash)
    .bind(&s.csrf_token)
    .bind(s.created_at.0)
    .bind(s.last_seen_at.0)
    .bind(s.expires_at.0)
    .bind(source_ip)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_by_hash<'c>(
    e: impl Executor<'c, Database = Any>,
    secret_hash: &str,
) -> Result<Option<SessionRecord>, Error> {
    let row = sqlx::query(
        "SELECT id, user_id, csrf_token, created_at, last_seen_at, expires_at, revoked_at FROM sessions WHERE secret_hash = $1",
    )
    .bind(secret_hash)
    .fetch_optional(e)
    .await
    .map_err(db_error)?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(SessionRecord {
        id: id(&r, "id")?,
        user_id: id(&r, "user_id")?,
        csrf_token: text(&r, "csrf_token")?,
        created_at: ts(&r, "created_at")?,
        last_seen_at: ts(&r, "last_seen_at")?,
        expires_at: ts(&r, "expires_at")?,
        revoked: opt_int(&r, "revoked_at")?.is_some(),
    }))
}

/// Marks the session as used now (the caller throttles how often).
pub async fn touch<'c>(
    e: impl Executor<'c, Database = Any>,
    id: SessionId,
    now: Timestamp,
) -> Result<(), Error> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1")
        .bind(now.0)
        .bind(id.to_string())
        .execute(e)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn revoke(tx: &mut Tx, id: SessionId) -> Result<(), Error> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Ends every session of a user except `keep` (after a password change, a lock, a reset).
pub async fn revoke_all_for_user(
    tx: &mut Tx,
    user: UserId,
    keep: Option<SessionId>,
) -> Result<u64, Error> {
    let n = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3")
        .bind(Timestamp::now().0)
        .bind(user.to_string())
        .bind(keep.map(|k| k.to_string()).unwrap_or_default())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n)
}
