//! API tokens for scripts: shown once, stored as SHA-256, expiring, revocable. Tokens are
//! long random secrets, so a fast hash is enough and no password hash runs per request.

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::{finish_page, Sql};
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::id::{TokenId, UserId};
use zy_model::page::{Page, PageRequest};
use zy_model::tenancy::ApiToken;
use zy_model::time::Timestamp;
use zy_model::Error;

const COLS: &str = "id, user_id, name, prefix, created_at, expires_at, last_used_at, revoked_at";

impl Decode for ApiToken {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(ApiToken {
            id: id(r, "id")?,
            user_id: id(r, "user_id")?,
            name: text(r, "name")?,
            prefix: text(r, "prefix")?,
            created_at: ts(r, "created_at")?,
            expires_at: ts(r, "expires_at")?,
            last_used_at: opt_ts(r, "last_used_at")?,
            revoked_at: opt_ts(r, "revoked_at")?,
        })
    }
}

pub async fn insert(tx: &mut Tx, t: &ApiToken, secret_hash: &str) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, name, prefix, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.id.to_string())
    .bind(t.user_id.to_string())
    .bind(&t.name)
    .bind(&t.prefix)
    .bind(secret_hash)
    .bind(t.created_at.0)
    .bind(t.expires_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_by_hash<'c>(
    e: impl Executor<'c, Database = Any>,
    secret_hash: &str,
) -> Result<Option<ApiToken>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLS} FROM api_tokens WHERE secret_hash = $1"
    ))
    .bind(secret_hash)
    .fetch_optional(e)
    .await
    .map_err(db_error)?;
    row.as_ref().map(ApiToken::decode).transpose()
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: TokenId,
) -> Result<Option<ApiToken>, Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM api_tokens WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    row.as_ref().map(ApiToken::decode).transpose()
}

pub async fn list(
    store: &Store,
    page: &PageRequest,
    user: Option<UserId>,
) -> Result<Page<ApiToken>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM api_tokens WHERE 1 = 1"));
    if let Some(u) = user {
        sql.push(" AND user_id = ").bind_text(u.to_string());
    }
    sql.push_page(page, "name", "created_at", "id");
    let items: Vec<ApiToken> = sql.fetch_all(store).await?;
    Ok(finish_page(page, items, |t| {
        (t.name.clone(), t.created_at.0, t.id.to_string())
    }))
}

pub async fn revoke(tx: &mut Tx, id: TokenId) -> Result<bool, Error> {
    let n =
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(Timestamp::now().0)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    Ok(n == 1)
}

pub async fn touch<'c>(
    e: impl Executor<'c, Database = Any>,
    id: TokenId,
    now: Timestamp,
) -> Result<(), Error> {
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(now.0)
        .bind(id.to_string())
        .execute(e)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn revoke_all_for_user(tx: &mut Tx, user: UserId) -> Result<u64, Error> {
    let n = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(Timestamp::now().0)
    .bind(user.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n)
}
