//! Compute orchestration: the provider drivers, the in-memory scheduler view, the
//! compute sagas (run by the one saga engine in `crate::saga`; the instance reconciler
//! task starts the saga each instance needs), the host monitor and the invariant check.
//!
//! The database is the truth. The scheduler view is a per-replica cache of host usage
//! that only proposes a host; the claim itself is a conditional update in the database.

pub mod check;
pub mod drivers;
pub mod ha;
pub mod kvm;
pub mod monitor;
pub mod openstack;
pub mod openstack_poll;
pub mod openstack_update;
pub mod pki;
pub mod placement;
pub mod sagas;

use std::sync::Arc;

/// The compute side of the server state.
pub struct Compute {
    pub drivers: drivers::Drivers,
    pub placement: placement::Placement,
    /// Identifies this replica in work leases.
    pub owner: String,
    /// Wakes the saga executor when new work arrives.
    pub wake: Arc<tokio::sync::Notify>,
    /// Wakes the push of the hosts' network state (`app::dataplane`) after a change.
    pub net_wake: Arc<tokio::sync::Notify>,
    /// Sagas this replica runs right now (see `saga::run`).
    pub running_sagas: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Test hooks of the saga engine (every step twice, a failure at a chosen step).
    pub saga_hooks: crate::saga::Hooks,
    /// Which providers carry each image (read on every placement; images rarely change).
    pub image_carriers: std::sync::RwLock<
        std::collections::HashMap<zy_model::id::ImageId, Vec<zy_model::id::ProviderId>>,
    >,
    /// The one driver behind every `kvm` provider (agents are keyed by host).
    pub kvm: Arc<kvm::KvmDriver>,
    /// The platform CAs, loaded at start.
    pub pki: std::sync::OnceLock<pki::Pki>,
    /// The metrics collector's last figures (on the replica that collects).
    pub metrics_latest: crate::monitoring::LatestFigures,
}

impl Compute {
    pub fn new() -> Arc<Compute> {
        Arc::new(Compute {
            drivers: drivers::Drivers::default(),
            placement: placement::Placement::default(),
            owner: format!("replica-{}", uuid::Uuid::new_v4().simple()),
            wake: Arc::new(tokio::sync::Notify::new()),
            net_wake: Arc::new(tokio::sync::Notify::new()),
            running_sagas: Default::default(),
            saga_hooks: Default::default(),
            image_carriers: Default::default(),
            metrics_latest: Default::default(),
            kvm: kvm::KvmDriver::new(),
            pki: std::sync::OnceLock::new(),
        })
    }
}
