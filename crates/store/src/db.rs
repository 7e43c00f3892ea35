//! Opening the database: URL parsing, connection set-up (WAL, foreign keys, busy timeout
//! on SQLite; a schema search path on PostgreSQL), and transactions.

use crate::error::db_error;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Executor};
use std::time::Duration;
use zy_model::{t, Error};

/// A write transaction. On SQLite it also holds this process's writer slot (see
/// [`Store::begin_write`]) until it is committed, rolled back or dropped. It dereferences to
/// the connection, so `&mut **tx` is an executor as with a plain sqlx transaction.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

/// How long a SQLite writer waits for its turn before the request gets 503 with
/// `Retry-After`, instead of piling up on the file lock until `busy_timeout` fails it.
const WRITER_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database handle the server shares between requests and background work.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the read path for lists (see `reader`).
    reader: Option<std::sync::Arc<crate::reader::ReaderPool>>,
    /// SQLite only: one writer at a time in this process, first come first served (tokio's
    /// semaphore is fair), taken before a pooled connection so waiting writers hold none.
    writers: Option<std::sync::Arc<tokio::sync::Semaphore>>,
}

impl Store {
    /// Opens `url` (`sqlite://path` or `postgres://…`), creating a SQLite file if needed,
    /// and applies pending migrations. `pg_schema` puts every table in that schema (used by
    /// tests to give each test a fresh database on one server).
    pub async fn open(
        url: &str,
        pg_schema: Option<&str>,
        max_connections: u32,
    ) -> Result<Store, Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::invalid(t!(
                "数据库地址须以 sqlite:// 或 postgres:// 开头",
                "the database URL must start with sqlite:// or postgres://"
            )));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        if let Some(s) = pg_schema {
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || s.is_empty() {
                return Err(Error::invalid(t!(
                    "数据库 schema 名称无效",
                    "invalid database schema name"
                )));
            }
        }
        let schema = pg_schema.map(str::to_string);
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn: &mut AnyConnection, _meta| {
                let schema = schema.clone();
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            // Reads come from a memory map and a larger page cache instead
                            // of a read() system call per page.
                            conn.execute("PRAGMA cache_size = -32000").await?;
                            conn.execute("PRAGMA mmap_size = 268435456").await?;
                            conn.execute("PRAGMA temp_store = MEMORY").await?;
                        }
                        Backend::Postgres => {
                            if let Some(s) = schema {
                                conn.execute(format!("CREATE SCHEMA IF NOT EXISTS {s}").as_str())
                                    .await?;
                                conn.execute(format!("SET search_path TO {s}").as_str())
                                    .await?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| {
                Error::unavailable(t!(
                    "无法连接数据库，请检查数据库地址与服务状态",
                    "cannot connect to the database; check its URL and that it is running"
                ))
                .with_internal(e.to_string())
            })?;
        let reader = match backend {
            Backend::Sqlite => Some(crate::reader::ReaderPool::new(sqlite_path(&url))),
            Backend::Postgres => None,
        };
        let writers = match backend {
            Backend::Sqlite => Some(std::sync::Arc::new(tokio::sync::Semaphore::new(1))),
            Backend::Postgres => None,
        };
        let store = Store {
            pool,
            backend,
            reader,
            writers,
        };
        crate::migrate::run(&store).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn reader(&self) -> Option<&std::sync::Arc<crate::reader::ReaderPool>> {
        self.reader.as_ref()
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction that will write. On SQLite it first waits (at most
    /// [`WRITER_WAIT`], in arrival order) for this process's single writer slot, then takes
    /// the write lock up front (`BEGIN IMMEDIATE`), so a read-then-write transaction never
    /// fails to upgrade. A writer that waited too long gets 503 with `Retry-After`.
    pub async fn begin_write(&self) -> Result<Tx, Error> {
        let slot = match &self.writers {
            Some(w) => match tokio::time::timeout(WRITER_WAIT, w.clone().acquire_owned()).await {
                Ok(Ok(permit)) => Some(permit),
                Ok(Err(_)) => return Err(busy("the writer slot is closed")),
                Err(_) => return Err(busy("waited too long for the writer slot")),
            },
            None => None,
        };
        let r = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        Ok(Tx {
            inner: r.map_err(db_error)?,
            _slot: slot,
        })
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn busy(internal: &str) -> Error {
    Error::unavailable(t!(
        "系统繁忙，请稍后重试",
        "the system is busy; please try again shortly"
    ))
    .with_retry_after(2)
    .with_internal(internal)
}

/// The file path in a `sqlite://path?options` URL.
fn sqlite_path(url: &str) -> String {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    rest.split('?').next().unwrap_or(rest).to_string()
}

/// Serialises the caller's transaction with every other writer until it commits, for
/// checks that count rows before changing them (e.g. "not the last auditor"). On
/// PostgreSQL this takes the audit head's row lock, which every audited change takes
/// anyway; on SQLite the write lock is already held.
pub async fn serialize_writers(tx: &mut Tx) -> Result<(), Error> {
    sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}
