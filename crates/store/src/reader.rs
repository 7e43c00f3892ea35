//! A read path for SQLite that runs a whole query on one blocking thread and hands back
//! all its rows at once. sqlx's SQLite driver passes every row between its worker thread
//! and the async task separately; for 100-row pages those thread switches cost more than
//! the query (measured in docs/BENCHMARKS.md). Writes and transactions stay on sqlx.

use crate::rows::Value;
use crate::sql::Arg;
use rusqlite::types::ValueRef;
use rusqlite::OpenFlags;
use std::sync::{Arc, Mutex};
use zy_model::{t, Error};

/// Read-only SQLite connections to the same file, reused across queries.
pub struct ReaderPool {
    path: String,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// One permit per read in flight; [`ReaderPool::close`] takes them all, so it returns
    /// only once every connection is closed. A read's blocking thread outlives a caller
    /// that gave up waiting (a stopped task, a timed-out request), so this is the only
    /// way to know it has finished.
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// More reads than this at once never happen (the blocking pool is smaller).
const MAX_IN_FLIGHT: u32 = 4096;

const MAX_IDLE: usize = 8;

/// A row copied out of SQLite.
pub struct PlainRow {
    cols: Arc<[String]>,
    vals: Vec<Value>,
}

impl PlainRow {
    pub(crate) fn value(&self, col: &str) -> Result<&Value, Error> {
        self.cols
            .iter()
            .position(|c| c == col)
            .and_then(|i| self.vals.get(i))
            .ok_or_else(|| Error::internal(format!("no column {col}")))
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::I64(v) => v.to_sql(),
            Arg::Text(v) => v.to_sql(),
            Arg::OptText(v) => v.to_sql(),
        }
    }
}

impl ReaderPool {
    pub fn new(path: String) -> Arc<ReaderPool> {
        Arc::new(ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT as usize)),
        })
    }

    /// Refuses new reads, waits for the reads in flight and closes every connection, so
    /// the database file is left alone once this returns (SQLite folds its write-ahead
    /// log into the file when the last connection closes).
    pub async fn close(&self) {
        if let Ok(all) = self.in_flight.acquire_many(MAX_IN_FLIGHT).await {
            self.in_flight.close();
            drop(all);
        }
        if let Ok(mut g) = self.idle.lock() {
            g.clear();
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let c = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        c.execute_batch(
            "PRAGMA cache_size = -32000; PRAGMA mmap_size = 268435456; PRAGMA query_only = ON;",
        )?;
        Ok(c)
    }

    /// Runs `sql` with `args` and returns every row.
    pub async fn fetch_all(
        self: &Arc<Self>,
        sql: String,
        args: Vec<Arg>,
    ) -> Result<Vec<PlainRow>, Error> {
        let pool = self.clone();
        let permit =
            self.in_flight.clone().acquire_owned().await.map_err(|_| {
                Error::unavailable(t!("服务正在停止", "the service is shutting down"))
            })?;
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().ok().and_then(|mut g| g.pop()) {
                Some(c) => c,
                None => pool.open().map_err(internal)?,
            };
            let rows = run(&conn, &sql, &args);
            let surplus = match pool.idle.lock() {
                Ok(mut g) if g.len() < MAX_IDLE => {
                    g.push(conn);
                    None
                }
                _ => Some(conn),
            };
            // A connection beyond the idle limit closes before the permit goes back, so
            // `close` never returns while one is still open.
            drop(surplus);
            drop(permit);
            rows
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
    }
}

fn internal(e: rusqlite::Error) -> Error {
    Error::internal(format!("sqlite read: {e}"))
}

fn run(conn: &rusqlite::Connection, sql: &str, args: &[Arg]) -> Result<Vec<PlainRow>, Error> {
    let mut stmt = conn.prepare_cached(sql).map_err(internal)?;
    let cols: Arc<[String]> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let n = cols.len();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args.iter()))
        .map_err(internal)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(internal)? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(match r.get_ref(i).map_err(internal)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Real(v) => Value::Int(v as i64),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Value::Text(String::from_utf8_lossy(t).into_owned())
                }
            });
        }
        out.push(PlainRow {
            cols: cols.clone(),
            vals,
        });
    }
    Ok(out)
}
