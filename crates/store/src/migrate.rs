//! Forward-only, numbered migrations, one file per step and database, embedded in the
//! binary and applied at start-up. Several replicas starting at once take turns: on
//! PostgreSQL through an advisory lock, on SQLite through the write lock.

use crate::db::{Backend, Store};
use crate::error::db_error;
use sqlx::Executor;
use zy_model::Error;

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tenancy_identity_audit",
        sqlite: include_str!("../migrations/sqlite/0001_tenancy_identity_audit.sql"),
        postgres: include_str!("../migrations/postgres/0001_tenancy_identity_audit.sql"),
    },
    Migration {
        version: 2,
        name: "compute",
        sqlite: include_str!("../migrations/sqlite/0002_compute.sql"),
        postgres: include_str!("../migrations/postgres/0002_compute.sql"),
    },
    Migration {
        version: 3,
        name: "agents",
        sqlite: include_str!("../migrations/sqlite/0003_agents.sql"),
        postgres: include_str!("../migrations/postgres/0003_agents.sql"),
    },
    Migration {
        version: 4,
        name: "sagas_tasks",
        sqlite: include_str!("../migrations/sqlite/0004_sagas_tasks.sql"),
        postgres: include_str!("../migrations/postgres/0004_sagas_tasks.sql"),
    },
    // Versions are numbered across parallel lines of work: 5, 6 and 8 come from other
    // branches, so this list may have gaps until they are merged (see `pending`).
    Migration {
        version: 7,
        name: "leases_recycle",
        sqlite: include_str!("../migrations/sqlite/0007_leases_recycle.sql"),
        postgres: include_str!("../migrations/postgres/0007_leases_recycle.sql"),
    },
];

/// The newest schema version this binary knows.
pub const LATEST: i64 = 7;

/// The oldest schema version whose audit tables this binary reads as they are (the audit
/// log and its head have not changed since version 1).
pub const AUDIT_READABLE_SINCE: i64 = 1;

/// For a read-only open: the schema version, if this binary can read the audit log of it
/// without migrating anything; otherwise an error that says which version it found.
pub(crate) async fn check_readable(store: &Store) -> Result<i64, Error> {
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(store.pool())
        .await
        .map_err(|e| {
            Error::unavailable(zy_model::t!(
                "该数据库没有 zhengyun 的版本记录（不是 zhengyun 数据库，或早于任何版本），无法只读校验",
                "the database has no zhengyun schema version (not a zhengyun database, or older than any release); it cannot be read without migrating"
            ))
            .with_internal(e.to_string())
        })?;
    let current = current.unwrap_or(0);
    not_newer(current)?;
    if current < AUDIT_READABLE_SINCE {
        return Err(Error::unavailable(zy_model::t!(
            "数据库版本 {} 太旧（本程序只读校验 {} 到 {}），且只读校验不会升级它" ;
            "the database schema version {} is too old (this binary verifies {} to {} read-only) and a read-only verify never migrates it",
            current, AUDIT_READABLE_SINCE, LATEST
        )));
    }
    Ok(current)
}

/// A database written by a newer zhengyun is neither migrated nor read.
fn not_newer(current: i64) -> Result<(), Error> {
    if current > LATEST {
        return Err(Error::unavailable(zy_model::t!(
            "数据库版本 {} 比本程序（{}）新，请升级 zhengyun" ;
            "the database schema version {} is newer than this binary's ({}); upgrade zhengyun",
            current, LATEST
        )));
    }
    Ok(())
}

pub(crate) async fn run(store: &Store) -> Result<(), Error> {
    let mut tx = store.begin_write().await?;
    if store.backend() == Backend::Postgres {
        // One migrator at a time across replicas; released at commit.
        tx.execute("SELECT pg_advisory_xact_lock(7205340312)")
            .await
            .map_err(db_error)?;
    }
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(db_error)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    not_newer(applied.iter().copied().max().unwrap_or(0))?;
    for m in pending(MIGRATIONS, &applied) {
        let sql = match store.backend() {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        tx.execute(sql)
            .await
            .map_err(|e| db_error(e).with_internal(format!("migration {} failed", m.name)))?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(zy_model::time::Timestamp::now().0)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    tx.commit().await.map_err(db_error)?;
    Ok(())
}

/// The migrations not applied yet, in version order. Every missing version is applied, not
/// only those above the highest one: a database migrated by a build that had version 7 but
/// not yet 5 (numbers handed out to parallel branches) gets 5 when the merged build starts.
fn pending<'a>(all: &'a [Migration], applied: &[i64]) -> impl Iterator<Item = &'a Migration> {
    let applied = applied.to_vec();
    all.iter().filter(move |m| !applied.contains(&m.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(version: i64) -> Migration {
        Migration {
            version,
            name: "",
            sqlite: "",
            postgres: "",
        }
    }

    #[test]
    fn a_gap_left_by_a_later_version_is_filled_in() {
        let all = [m(1), m(2), m(5), m(6), m(7), m(8)];
        let got: Vec<i64> = pending(&all, &[1, 2, 7]).map(|m| m.version).collect();
        assert_eq!(got, vec![5, 6, 8]);
        assert_eq!(pending(&all, &[1, 2, 5, 6, 7, 8]).count(), 0);
        let fresh: Vec<i64> = pending(&all, &[]).map(|m| m.version).collect();
        assert_eq!(fresh, vec![1, 2, 5, 6, 7, 8]);
    }

    #[test]
    fn versions_are_listed_in_order_and_latest_is_the_highest() {
        let v: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        assert_eq!(v.last().copied(), Some(LATEST));
    }
}
