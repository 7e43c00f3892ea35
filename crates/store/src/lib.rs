//! Persistence for zhengyun over SQLite (default, one file in the data dir, WAL) and
//! PostgreSQL (for several server replicas). One set of repositories speaks SQL both
//! databases understand; versioned migrations for each are applied at start-up.
//!
//! Concurrency is decided here, in the database: unique constraints, conditional updates
//! on `generation`, and row locks taken by `UPDATE … RETURNING`. Nothing relies on an
//! in-process lock for correctness, so replicas sharing one PostgreSQL stay correct.

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod billing;
mod db;
pub mod departments;
pub mod drift;
mod error;
pub mod ha;
pub mod instances;
pub mod inventory;
pub mod leases;
pub mod load_balancers;
pub mod memberships;
pub mod metrics;
mod migrate;
pub mod networks;
pub mod notifications;
pub mod operations;
pub mod projects;
pub mod quotas;
mod reader;
pub mod requests;
mod rows;
pub mod sagas;
pub mod secev;
pub mod sessions;
pub mod settings;
mod sql;
pub mod supervision;
pub mod tasks;
pub mod tokens;
pub mod users;
pub mod volumes;

pub use db::{serialize_writers, Backend, Store, Tx};
pub use error::db_error;
pub use sql::Filter;
