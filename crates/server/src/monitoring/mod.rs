//! Monitoring (issue 14 items 1–2): the collector task that measures every host and
//! instance through the compute drivers and writes the embedded time-series store
//! (`collector.rs`; layout in `zy_model::metrics`, table in `zy_store::metrics`; the query
//! is `app/metrics.rs`), and the alert evaluator (`alerts.rs`). The latest figures of the
//! last pass are kept in memory for the Prometheus exposition.

pub mod alerts;
pub mod availability;
pub mod collector;
pub mod demo;
pub mod openstack;
pub mod remote_write;

use std::collections::HashMap;
use std::sync::RwLock;
use zy_model::metrics::Series;

/// One point of every series of an entity (plain units: %, MiB, bytes/s, 0/1).
pub type Values = [Option<f64>; Series::COUNT];

/// The figures of every entity of one pass, by (scope, entity id).
pub type Latest = HashMap<(&'static str, String), Values>;

/// The last pass's figures on the replica that collects (empty elsewhere).
#[derive(Default)]
pub struct LatestFigures(RwLock<(i64, std::sync::Arc<Latest>)>);

impl LatestFigures {
    pub fn replace(&self, at: i64, latest: Latest) {
        if let Ok(mut g) = self.0.write() {
            *g = (at, std::sync::Arc::new(latest));
        }
    }

    /// When the figures were taken (epoch seconds; 0 before the first pass) and the figures.
    pub fn get(&self) -> (i64, std::sync::Arc<Latest>) {
        self.0
            .read()
            .map(|g| (g.0, g.1.clone()))
            .unwrap_or_default()
    }
}
