//! Server configuration, filled from the command line or by tests.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; defaults to a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// PostgreSQL schema to use (tests give each test its own).
    pub pg_schema: Option<String>,
    pub data_dir: PathBuf,
    /// Load the demo data set (the Yibin bureaus) on first start.
    pub demo: bool,
    /// Mark cookies `Secure` (set when served behind HTTPS).
    pub secure_cookies: bool,
    /// Database connections in the pool.
    pub max_connections: u32,
    /// How long a replica holds an instance it works on before another may take over.
    pub lease_secs: i64,
    /// The key that seals TOTP seeds; default `<data dir>/secret.key`, created at first start.
    pub secret_key_file: Option<PathBuf>,
    /// Longest an API request may take before it is answered 503 with `Retry-After`.
    pub request_timeout: std::time::Duration,
    /// How often overdue reviews and deliveries are looked for (tests shorten it).
    pub request_timer_secs: u64,
    /// Let finance move the metering clock forward (`POST /v1/billing/clock`): for tests
    /// and trials of billing with back-dated months, never for production.
    pub test_clock: bool,
    /// Seconds between two readings of every host's figures (metrics history; 10 s).
    pub metrics_interval_secs: u64,
    /// Seconds between two writes of the metrics blocks in progress (60 s; tests: 0,
    /// every reading).
    pub metrics_flush_secs: u64,
    /// Seconds between two readings of the OpenStack providers' instances (Nova
    /// diagnostics, the `openstack_metrics` task; 60 s).
    pub openstack_metrics_secs: u64,
    /// Where the syslog receiver of security events listens for UDP and TCP (off when
    /// `None`; port 0 picks a free port).
    pub syslog_udp: Option<SocketAddr>,
    pub syslog_tcp: Option<SocketAddr>,
    /// Lines the syslog queue holds before UDP lines are dropped (default 65,536).
    pub syslog_queue: usize,
}

impl Config {
    pub fn secret_key_file(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("zhengyun.db").display()))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            pg_schema: None,
            data_dir: PathBuf::from("data"),
            demo: false,
            secure_cookies: false,
            max_connections: 16,
            lease_secs: 30,
            secret_key_file: None,
            request_timeout: std::time::Duration::from_secs(30),
            request_timer_secs: 30,
            test_clock: false,
            metrics_interval_secs: 10,
            metrics_flush_secs: 60,
            openstack_metrics_secs: 60,
            syslog_udp: None,
            syslog_tcp: None,
            syslog_queue: crate::syslog::QUEUE_BOUND,
        }
    }
}
