//! One compute driver per provider. Simulated providers get an in-process `SimProvider`
//! configured from the provider's settings; tests may swap in their own driver.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use zy_compute::ComputeDriver;
use zy_model::id::ProviderId;
use zy_model::{t, Error};

/// Settings of a simulated provider, stored as the provider's `config` JSON.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    /// Probability (0–1) that creating a disk or starting an instance fails.
    #[serde(default)]
    pub failure_probability: f64,
    /// Extra delay per driver call, in milliseconds (minimum and maximum).
    #[serde(default)]
    pub latency_min_ms: u64,
    #[serde(default)]
    pub latency_max_ms: u64,
}

impl SimSettings {
    pub fn validate(&self) -> Result<(), Error> {
        if !(0.0..=1.0).contains(&self.failure_probability) || self.failure_probability.is_nan() {
            return Err(Error::validation(
                "failure_probability",
                t!(
                    "故障概率须在 0 到 1 之间",
                    "failure_probability must be between 0 and 1"
                ),
            ));
        }
        // The simulator waits max(min, max), so both are bounded (an unbounded minimum
        // made every driver call wait for ever).
        if self.latency_min_ms > 60_000 || self.latency_max_ms > 60_000 {
            let field = if self.latency_min_ms > 60_000 {
                "latency_min_ms"
            } else {
                "latency_max_ms"
            };
            return Err(Error::validation(
                field,
                t!("延迟须在 0 到 60000 毫秒之间", "latency must be 0–60000 ms"),
            ));
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Drivers {
    by_provider: RwLock<HashMap<ProviderId, Arc<dyn ComputeDriver>>>,
    sims: RwLock<HashMap<ProviderId, Arc<zy_sim::SimProvider>>>,
    openstack: RwLock<HashMap<ProviderId, Arc<super::openstack::OpenStackDriver>>>,
}

impl Drivers {
    pub fn get(&self, p: ProviderId) -> Result<Arc<dyn ComputeDriver>, Error> {
        self.by_provider
            .read()
            .ok()
            .and_then(|m| m.get(&p).cloned())
            .ok_or_else(|| {
                Error::unavailable(
                    t!("云服务商 {} 没有可用的驱动" ; "provider {} has no driver", p),
                )
            })
    }

    /// The simulated provider behind `p`, if it is one (for failure injection and checks).
    pub fn sim(&self, p: ProviderId) -> Option<Arc<zy_sim::SimProvider>> {
        self.sims.read().ok().and_then(|m| m.get(&p).cloned())
    }

    pub fn all_sims(&self) -> Vec<(ProviderId, Arc<zy_sim::SimProvider>)> {
        self.sims
            .read()
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }

    /// Installs (or reconfigures) the simulated provider for `p`. The simulated machines
    /// live once per process, shared by every server in it (as a real provider is shared
    /// by every replica); separate processes each simulate their own.
    pub fn install_sim(&self, p: ProviderId, settings: &SimSettings) {
        let existing = self
            .sim(p)
            .or_else(|| process_sims().lock().ok().and_then(|m| m.get(&p).cloned()));
        let sim = match existing {
            Some(s) => {
                s.set_create_failure_p(settings.failure_probability);
                s
            }
            None => {
                let seed = p.0.as_u128() as u64;
                Arc::new(zy_sim::SimProvider::new(zy_sim::SimConfig {
                    seed,
                    latency_min: std::time::Duration::from_millis(settings.latency_min_ms),
                    latency_max: std::time::Duration::from_millis(
                        settings.latency_max_ms.max(settings.latency_min_ms),
                    ),
                    create_failure_p: settings.failure_probability,
                }))
            }
        };
        if let Ok(mut m) = self.sims.write() {
            m.insert(p, sim.clone());
        }
        if let Ok(mut m) = process_sims().lock() {
            m.insert(p, sim.clone());
        }
        self.set(p, sim);
    }

    /// Installs the driver a provider of `kind` needs (`config` is its stored settings).
    pub fn install(
        &self,
        p: ProviderId,
        kind: &str,
        config: &str,
        kvm: &Arc<super::kvm::KvmDriver>,
        sealer: &crate::auth::seal::Sealer,
    ) {
        match kind {
            "sim" => {
                let settings: SimSettings = serde_json::from_str(config).unwrap_or_default();
                self.install_sim(p, &settings);
            }
            "kvm" => self.set(p, kvm.clone()),
            "openstack" => match openstack_driver(config, sealer) {
                Ok(d) => {
                    if let Ok(mut m) = self.openstack.write() {
                        m.insert(p, d.clone());
                    }
                    self.set(p, d)
                }
                Err(e) => {
                    tracing::warn!(provider = %p, error = %e, "cannot set up the OpenStack driver")
                }
            },
            other => {
                tracing::warn!(provider = %p, kind = other, "no driver for this provider kind")
            }
        }
    }

    /// Replaces the driver for `p` (tests wrap the simulator to inject faults).
    pub fn set(&self, p: ProviderId, d: Arc<dyn ComputeDriver>) {
        if let Ok(mut m) = self.by_provider.write() {
            m.insert(p, d);
        }
    }
}

/// The driver of an `openstack` provider from its stored settings (secret sealed).
pub fn openstack_driver(
    config: &str,
    sealer: &crate::auth::seal::Sealer,
) -> Result<Arc<super::openstack::OpenStackDriver>, String> {
    let stored: super::openstack::OpenStackSettings =
        serde_json::from_str(config).map_err(|e| e.to_string())?;
    let settings = stored
        .opened(sealer)
        .map_err(|e| e.message.en.to_string())?;
    Ok(Arc::new(super::openstack::OpenStackDriver::new(settings)?))
}

/// The OpenStack drivers installed, for the inventory and reconciliation tasks.
impl Drivers {
    pub fn openstack(&self, p: ProviderId) -> Option<Arc<super::openstack::OpenStackDriver>> {
        self.openstack.read().ok().and_then(|m| m.get(&p).cloned())
    }
}

fn process_sims() -> &'static std::sync::Mutex<HashMap<ProviderId, Arc<zy_sim::SimProvider>>> {
    static SIMS: std::sync::OnceLock<
        std::sync::Mutex<HashMap<ProviderId, Arc<zy_sim::SimProvider>>>,
    > = std::sync::OnceLock::new();
    SIMS.get_or_init(Default::default)
}
