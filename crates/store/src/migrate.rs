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
    // Versions are numbered per feature branch and merged later: the list may have gaps,
    // and a database may have a later version applied before an earlier one appears
    // (see `pending`).
    Migration {
        version: 5,
        name: "requests",
        sqlite: include_str!("../migrations/sqlite/0005_requests.sql"),
        postgres: include_str!("../migrations/postgres/0005_requests.sql"),
    },
    Migration {
        version: 6,
        name: "notifications",
        sqlite: include_str!("../migrations/sqlite/0006_notifications.sql"),
        postgres: include_str!("../migrations/postgres/0006_notifications.sql"),
    },
    Migration {
        version: 7,
        name: "leases_recycle",
        sqlite: include_str!("../migrations/sqlite/0007_leases_recycle.sql"),
        postgres: include_str!("../migrations/postgres/0007_leases_recycle.sql"),
    },
    Migration {
        version: 8,
        name: "billing",
        sqlite: include_str!("../migrations/sqlite/0008_billing.sql"),
        postgres: include_str!("../migrations/postgres/0008_billing.sql"),
    },
    Migration {
        version: 9,
        name: "ha",
        sqlite: include_str!("../migrations/sqlite/0009_ha.sql"),
        postgres: include_str!("../migrations/postgres/0009_ha.sql"),
    },
    Migration {
        version: 10,
        name: "metrics",
        sqlite: include_str!("../migrations/sqlite/0010_metrics.sql"),
        postgres: include_str!("../migrations/postgres/0010_metrics.sql"),
    },
    Migration {
        version: 11,
        name: "networks",
        sqlite: include_str!("../migrations/sqlite/0011_networks.sql"),
        postgres: include_str!("../migrations/postgres/0011_networks.sql"),
    },
    Migration {
        version: 12,
        name: "security_events",
        sqlite: include_str!("../migrations/sqlite/0012_security_events.sql"),
        postgres: include_str!("../migrations/postgres/0012_security_events.sql"),
    },
    Migration {
        version: 13,
        name: "adoption",
        sqlite: include_str!("../migrations/sqlite/0013_adoption.sql"),
        postgres: include_str!("../migrations/postgres/0013_adoption.sql"),
    },
    Migration {
        version: 14,
        name: "net_dataplane",
        sqlite: include_str!("../migrations/sqlite/0014_net_dataplane.sql"),
        postgres: include_str!("../migrations/postgres/0014_net_dataplane.sql"),
    },
    Migration {
        version: 15,
        name: "load_balancers",
        sqlite: include_str!("../migrations/sqlite/0015_load_balancers.sql"),
        postgres: include_str!("../migrations/postgres/0015_load_balancers.sql"),
    },
    Migration {
        version: 16,
        name: "operations",
        sqlite: include_str!("../migrations/sqlite/0016_operations.sql"),
        postgres: include_str!("../migrations/postgres/0016_operations.sql"),
    },
    Migration {
        version: 17,
        name: "supervision",
        sqlite: include_str!("../migrations/sqlite/0017_supervision.sql"),
        postgres: include_str!("../migrations/postgres/0017_supervision.sql"),
    },
    Migration {
        version: 20,
        name: "availability",
        sqlite: include_str!("../migrations/sqlite/0020_availability.sql"),
        postgres: include_str!("../migrations/postgres/0020_availability.sql"),
    },
    Migration {
        version: 21,
        name: "provider_scope",
        sqlite: include_str!("../migrations/sqlite/0021_provider_scope.sql"),
        postgres: include_str!("../migrations/postgres/0021_provider_scope.sql"),
    },
    Migration {
        version: 22,
        name: "vpc_outbound",
        sqlite: include_str!("../migrations/sqlite/0022_vpc_outbound.sql"),
        postgres: include_str!("../migrations/postgres/0022_vpc_outbound.sql"),
    },
    Migration {
        version: 23,
        name: "provider_readings",
        sqlite: include_str!("../migrations/sqlite/0023_provider_readings.sql"),
        postgres: include_str!("../migrations/postgres/0023_provider_readings.sql"),
    },
];

/// The newest schema version this binary knows.
pub const LATEST: i64 = 23;

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
    let known: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    let todo = pending(&applied, &known);
    for m in MIGRATIONS.iter().filter(|m| todo.contains(&m.version)) {
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

/// The versions still to apply, in order: every known version not applied yet — not only
/// those above the highest applied, so a version merged in below one already applied (the
/// numbers have gaps while features are built in parallel) is applied too.
fn pending(applied: &[i64], known: &[i64]) -> Vec<i64> {
    let mut todo: Vec<i64> = known
        .iter()
        .copied()
        .filter(|v| !applied.contains(v))
        .collect();
    todo.sort_unstable();
    todo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_listed_in_order_without_duplicates() {
        let v: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        assert_eq!(v.last().copied(), Some(LATEST));
    }

    #[test]
    fn a_gap_in_the_numbers_is_accepted_and_filled_later() {
        // A fresh database gets everything, gaps and all.
        assert_eq!(pending(&[], &[1, 2, 3, 4, 6]), vec![1, 2, 3, 4, 6]);
        // Migrated to 6 with 5 missing; a later binary knowing 5 applies it.
        assert_eq!(
            pending(&[1, 2, 3, 4, 6], &[1, 2, 3, 4, 5, 6, 7]),
            vec![5, 7]
        );
        assert!(pending(&[1, 2, 3, 4, 6], &[1, 2, 3, 4, 6]).is_empty());
    }
}
