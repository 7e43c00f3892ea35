//! Decoding rows into domain types, once per type, whichever driver produced the row.

use sqlx::any::AnyRow;
use sqlx::Row;
use std::str::FromStr;
use zy_model::time::Timestamp;
use zy_model::Error;

/// A column value as the repositories need it.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// Builds a domain type from a row of either driver.
pub(crate) trait Decode: Sized {
    fn decode<R: Get>(r: &R) -> Result<Self, Error>;
}

/// Reading a column as a type, from sqlx's row or from a copied row.
pub(crate) trait Get {
    fn text(&self, col: &str) -> Result<String, Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, Error>;
    fn int(&self, col: &str) -> Result<i64, Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, Error>;
}

fn col_err(col: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("column {col}: {e}"))
}

impl Get for AnyRow {
    fn text(&self, col: &str) -> Result<String, Error> {
        self.try_get::<String, _>(col).map_err(|e| col_err(col, e))
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, Error> {
        self.try_get::<Option<String>, _>(col)
            .map_err(|e| col_err(col, e))
    }
    fn int(&self, col: &str) -> Result<i64, Error> {
        self.try_get::<i64, _>(col).map_err(|e| col_err(col, e))
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, Error> {
        self.try_get::<Option<i64>, _>(col)
            .map_err(|e| col_err(col, e))
    }
}

impl Get for crate::reader::PlainRow {
    fn text(&self, col: &str) -> Result<String, Error> {
        match self.value(col)? {
            Value::Text(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            Value::Null => Err(col_err(col, "unexpected NULL")),
        }
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, Error> {
        match self.value(col)? {
            Value::Null => Ok(None),
            _ => self.text(col).map(Some),
        }
    }
    fn int(&self, col: &str) -> Result<i64, Error> {
        match self.value(col)? {
            Value::Int(i) => Ok(*i),
            Value::Text(s) => s.parse().map_err(|e| col_err(col, e)),
            Value::Null => Err(col_err(col, "unexpected NULL")),
        }
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, Error> {
        match self.value(col)? {
            Value::Null => Ok(None),
            _ => self.int(col).map(Some),
        }
    }
}

pub(crate) fn text(row: &impl Get, col: &str) -> Result<String, Error> {
    row.text(col)
}

pub(crate) fn opt_text(row: &impl Get, col: &str) -> Result<Option<String>, Error> {
    row.opt_text(col)
}

pub(crate) fn int(row: &impl Get, col: &str) -> Result<i64, Error> {
    row.int(col)
}

pub(crate) fn opt_int(row: &impl Get, col: &str) -> Result<Option<i64>, Error> {
    row.opt_int(col)
}

pub(crate) fn ts(row: &impl Get, col: &str) -> Result<Timestamp, Error> {
    int(row, col).map(Timestamp)
}

pub(crate) fn opt_ts(row: &impl Get, col: &str) -> Result<Option<Timestamp>, Error> {
    opt_int(row, col).map(|v| v.map(Timestamp))
}

pub(crate) fn id<T: FromStr<Err = Error>>(row: &impl Get, col: &str) -> Result<T, Error> {
    text(row, col)?.parse::<T>().map_err(|e| col_err(col, e))
}

pub(crate) fn opt_id<T: FromStr<Err = Error>>(
    row: &impl Get,
    col: &str,
) -> Result<Option<T>, Error> {
    opt_text(row, col)?
        .map(|s| s.parse::<T>().map_err(|e| col_err(col, e)))
        .transpose()
}
