//! The zhengyun domain model: typed ids, the domain types shared by the API, the store and
//! the CLI, input validation, error codes, paging and the audit hash chain.
//!
//! This crate does no IO and knows nothing of HTTP or SQL, so every other crate can depend
//! on it and its rules can be tested on their own.

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod billing;
pub mod compute;
pub mod error;
pub mod ha;
pub mod id;
pub mod lease;
pub mod metrics;
pub mod money;
pub mod network;
pub mod notice;
pub mod operations;
pub mod ops;
pub mod page;
pub mod requests;
pub mod role;
pub mod scan;
pub mod secev;
pub mod security;
pub mod supervision;
pub mod syslog;
pub mod tenancy;
pub mod text;
pub mod time;
pub mod totp;
pub mod validate;

pub use error::{Error, ErrorCode};
pub use money::Money;
pub use text::Text;
