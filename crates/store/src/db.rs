//! Opening the database: URL parsing, connection set-up (WAL, foreign keys, busy timeout
//! on SQLite; a schema search path on PostgreSQL), and transactions.
//!
//! Everything goes through sqlx's `Any` driver, so one SQL text serves both databases. On
//! PostgreSQL the store also keeps a small pool of native connections, opened on first
//! use with the same URL and schema, for what `Any` cannot express: `COPY … FROM STDIN`
//! for the syslog intake's batches (`secev::copy_events`).

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
    /// PostgreSQL only: native connections (see `native`).
    native: Option<sqlx::PgPool>,
}

/// Native PostgreSQL connections the store keeps besides the `Any` pool: the syslog
/// writer is their one user, so two are plenty.
const NATIVE_CONNECTIONS: u32 = 2;

/// A pool of native PostgreSQL connections to the database `url` names, set up as the
/// `Any` pool's (the schema's search path, read-only if the store is), that opens its
/// first connection when it is first used: most stores never need one.
fn native_pool(url: &str, schema: Option<&str>, read_only: bool) -> Result<sqlx::PgPool, Error> {
    use std::str::FromStr;
    let mut options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| {
        Error::invalid(t!("数据库地址无效", "the database URL is not valid"))
            .with_internal(e.to_string())
    })?;
    // Startup parameters: no round trip after connecting. The schema name was checked
    // (letters, digits, underscores) before this is called.
    if let Some(s) = schema {
        options = options.options([("search_path", s)]);
    }
    if read_only {
        options = options.options([("default_transaction_read_only", "on")]);
    }
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(NATIVE_CONNECTIONS)
        .min_connections(0)
        .idle_timeout(Some(Duration::from_secs(600)))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options))
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
        let store = Self::connect(url, pg_schema, max_connections, false).await?;
        crate::migrate::run(&store).await?;
        Ok(store)
    }

    /// Opens `url` for reading evidence (`zhengyun audit verify`): never creates, migrates
    /// or writes. SQLite opens the file with `mode=ro` and `query_only`; PostgreSQL runs every
    /// transaction read-only. Refuses a schema this binary cannot read, saying why.
    pub async fn open_read_only(url: &str, pg_schema: Option<&str>) -> Result<Store, Error> {
        let store = Self::connect(url, pg_schema, 2, true).await?;
        crate::migrate::check_readable(&store).await?;
        Ok(store)
    }

    async fn connect(
        url: &str,
        pg_schema: Option<&str>,
        max_connections: u32,
        read_only: bool,
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
            Backend::Sqlite if read_only => read_only_sqlite_url(url),
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
        // SQLite: every connection is opened here and kept for the life of the store (a
        // local file needs no recycling). A connection whose opening is abandoned half-way
        // (its caller cancelled) is dropped rather than closed, and closes on its own
        // thread whenever it gets there: after `close` has returned, touching the file of
        // a server that said it had stopped.
        let sqlite_rw = backend == Backend::Sqlite && !read_only;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(if sqlite_rw { max_connections } else { 1 })
            .idle_timeout((!sqlite_rw).then_some(Duration::from_secs(600)))
            .max_lifetime((!sqlite_rw).then_some(Duration::from_secs(1800)))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn: &mut AnyConnection, _meta| {
                let schema = schema.clone();
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite if read_only => {
                            conn.execute("PRAGMA query_only = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                        }
                        Backend::Postgres if read_only => {
                            conn.execute("SET default_transaction_read_only = on")
                                .await?;
                            if let Some(s) = schema {
                                conn.execute(format!("SET search_path TO {s}").as_str())
                                    .await?;
                            }
                        }
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
        if sqlite_rw {
            let mut all = Vec::with_capacity(max_connections as usize);
            for _ in 0..max_connections {
                all.push(pool.acquire().await.map_err(db_error)?);
            }
        }
        let reader = match backend {
            // The reader opens the plain path; evidence is read through the URL above.
            Backend::Sqlite if read_only => None,
            Backend::Sqlite => Some(crate::reader::ReaderPool::new(sqlite_path(&url))),
            Backend::Postgres => None,
        };
        let writers = match backend {
            Backend::Sqlite if !read_only => {
                Some(std::sync::Arc::new(tokio::sync::Semaphore::new(1)))
            }
            _ => None,
        };
        let native = match backend {
            Backend::Postgres => Some(native_pool(&url, pg_schema, read_only)?),
            Backend::Sqlite => None,
        };
        Ok(Store {
            pool,
            backend,
            reader,
            writers,
            native,
        })
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

    /// PostgreSQL only: the native connections, for what the `Any` driver cannot do.
    pub(crate) fn native(&self) -> Option<&sqlx::PgPool> {
        self.native.as_ref()
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

    /// Begins a write transaction that first takes the lock of one object (an instance, a
    /// volume) for the rest of the transaction. On PostgreSQL this is a transaction-level
    /// advisory lock, so every transaction that changes the object's intent or its sagas
    /// queues behind the others instead of deadlocking on rows taken in another order; on
    /// SQLite the write lock already serialises every writer.
    pub async fn begin_write_for(&self, object: &str) -> Result<Tx, Error> {
        match self.backend {
            Backend::Sqlite => self.begin_write().await,
            Backend::Postgres => {
                // One round trip: BEGIN and the lock as one simple query. The key is quoted
                // as a literal (ids are UUIDs; a quote would be doubled all the same).
                let key = object.replace('\'', "''");
                let inner = self
                    .pool
                    .begin_with(format!(
                        "BEGIN; SELECT pg_advisory_xact_lock(720534, hashtext('{key}'))"
                    ))
                    .await
                    .map_err(db_error)?;
                Ok(Tx { inner, _slot: None })
            }
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        if let Some(r) = &self.reader {
            r.close().await;
        }
        if let Some(n) = &self.native {
            n.close().await;
        }
        // sqlx's close can return with a connection left in its idle queue: one handed
        // back while the pool was closing, or one opened by its maintenance task. Such a
        // connection would close whenever the last clone of the pool goes away, and with
        // SQLite the last connection to close folds the write-ahead log into the file, so
        // the file would change after the server said it had stopped. Closing again
        // closes what is idle; the wait covers a connection still on its way back.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            self.pool.close().await;
            if self.pool.size() == 0 || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Reading evidence without leaving a trace: a database whose write-ahead log is absent or
/// empty is all in its file, read as `immutable` (no lock files, no `-wal`/`-shm` created).
/// With a non-empty log (a server running, or one that stopped without a checkpoint) the
/// log is part of the evidence: `mode=ro` reads it, and SQLite's shared-memory index (the
/// `-shm` file, which holds nothing persistent) is the one file it touches.
fn read_only_sqlite_url(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let wal = std::fs::metadata(format!("{}-wal", sqlite_path(base)))
        .map(|m| m.len())
        .unwrap_or(0);
    if wal > 0 {
        format!("{base}?mode=ro")
    } else {
        format!("{base}?mode=ro&immutable=1")
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
