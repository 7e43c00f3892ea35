//! Platform settings stored as JSON under a key (the security settings live here).

use crate::db::Tx;
use crate::error::db_error;
use serde::{de::DeserializeOwned, Serialize};
use sqlx::{Any, Executor};
use zy_model::time::Timestamp;
use zy_model::Error;

pub async fn get<'c, T: DeserializeOwned>(
    e: impl Executor<'c, Database = Any>,
    key: &str,
) -> Result<Option<T>, Error> {
    let v: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    v.map(|s| {
        serde_json::from_str(&s).map_err(|err| Error::internal(format!("setting {key}: {err}")))
    })
    .transpose()
}

pub async fn put<T: Serialize>(tx: &mut Tx, key: &str, value: &T) -> Result<(), Error> {
    let json = serde_json::to_string(value).map_err(|e| Error::internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at, generation) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, generation = settings.generation + 1",
    )
    .bind(key)
    .bind(json)
    .bind(Timestamp::now().0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Stores `value` under `key` unless something is there already (several replicas starting
/// at once: the first one's value wins and everyone reads it back).
pub async fn put_if_absent<T: Serialize>(
    store: &crate::Store,
    key: &str,
    value: &T,
) -> Result<(), Error> {
    let json = serde_json::to_string(value).map_err(|e| Error::internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at, generation) VALUES ($1, $2, $3, 1) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(json)
    .bind(Timestamp::now().0)
    .execute(store.pool())
    .await
    .map_err(db_error)?;
    Ok(())
}
