//! Decoding rows into domain types, once per type.

use sqlx::any::AnyRow;
use sqlx::Row;
use std::str::FromStr;
use zy_model::time::Timestamp;
use zy_model::Error;

pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String, Error> {
    row.try_get::<String, _>(col)
        .map_err(|e| Error::internal(format!("column {col}: {e}")))
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, Error> {
    row.try_get::<Option<String>, _>(col)
        .map_err(|e| Error::internal(format!("column {col}: {e}")))
}

pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64, Error> {
    row.try_get::<i64, _>(col)
        .map_err(|e| Error::internal(format!("column {col}: {e}")))
}

pub(crate) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, Error> {
    row.try_get::<Option<i64>, _>(col)
        .map_err(|e| Error::internal(format!("column {col}: {e}")))
}

pub(crate) fn ts(row: &AnyRow, col: &str) -> Result<Timestamp, Error> {
    int(row, col).map(Timestamp)
}

pub(crate) fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>, Error> {
    opt_int(row, col).map(|v| v.map(Timestamp))
}

pub(crate) fn id<T: FromStr<Err = Error>>(row: &AnyRow, col: &str) -> Result<T, Error> {
    text(row, col)?
        .parse::<T>()
        .map_err(|e| Error::internal(format!("column {col}: {e}")))
}

pub(crate) fn opt_id<T: FromStr<Err = Error>>(row: &AnyRow, col: &str) -> Result<Option<T>, Error> {
    opt_text(row, col)?
        .map(|s| {
            s.parse::<T>()
                .map_err(|e| Error::internal(format!("column {col}: {e}")))
        })
        .transpose()
}
