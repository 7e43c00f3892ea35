//! The server's integration tests: one binary, each module one area. Every test starts the
//! real server on a random port against a fresh database and runs twice: on SQLite and on
//! PostgreSQL (`ZHENGYUN_TEST_PG_URL`; `cargo xtask test` starts a throwaway one).

mod common;

mod audit;
mod auth;
mod authz;
mod billing;
mod compute;
mod faults;
mod hostile;
mod kvm;
mod leases;
mod load_balancers;
mod metrics;
mod networks;
mod notify;
mod openapi;
mod openstack;
mod openstack_metrics;
mod openstack_volumes;
mod operations;
mod requests;
mod sagas;
mod secev;
mod secev_storage;
mod supervision;
mod tenancy;
mod world;
