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
    Migration {
        version: 8,
        name: "billing",
        sqlite: include_str!("../migrations/sqlite/0008_billing.sql"),
        postgres: include_str!("../migrations/postgres/0008_billing.sql"),
    },
];

/// The newest schema version this binary knows.
pub const LATEST: i64 = 8;

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

/// The migrations not yet applied, in order. Versions are numbered with gaps (features
/// developed side by side take numbers in advance), so a database at version 8 may still
/// lack 5–7: every missing version is applied, not only those above the highest.
fn pending(applied: &[i64]) -> impl Iterator<Item = &'static Migration> + '_ {
    MIGRATIONS
        .iter()
        .filter(move |m| !applied.contains(&m.version))
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
    for m in pending(&applied) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_a_gap_in_the_numbers_is_accepted() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions.last().copied(), Some(LATEST));
        // A fresh database gets everything; one that has 1–4 gets the rest even though
        // the numbers jump.
        assert_eq!(pending(&[]).count(), MIGRATIONS.len());
        let rest: Vec<i64> = pending(&[1, 2, 3, 4]).map(|m| m.version).collect();
        assert_eq!(rest, vec![8]);
        // A database that has a later number but lacks an earlier one (merged branches)
        // still gets the earlier one.
        let missing: Vec<i64> = pending(&[1, 2, 3, 8]).map(|m| m.version).collect();
        assert_eq!(missing, vec![4]);
    }
}
