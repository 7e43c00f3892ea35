//! The host monitor: every few seconds each replica asks every agent for its heartbeat
//! over mutual TLS (pulling keeps the agents free of any credential for the control plane
//! and the server free of a second listener), records it, keeps the `kvm` driver's
//! address book current, notes guests that died without being asked to, and records guests
//! that powered themselves off (seen stopped on two heartbeats in a row) as stopped.

use super::kvm::AgentClient;
use super::Compute;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;
use zy_compute::agent::{HostReport, VmState};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::agents::AgentRow;
use zy_store::Store;

pub const INTERVAL: Duration = Duration::from_secs(2);
/// An agent unheard of for this long is shown as not alive.
pub const ALIVE_SECS: i64 = 15;

/// Resolves `host:port` (an IP or a name) to a socket address.
pub async fn resolve(address: &str) -> Option<std::net::SocketAddr> {
    if let Ok(a) = address.parse() {
        return Some(a);
    }
    tokio::net::lookup_host(address).await.ok()?.next()
}

/// Makes sure the driver can dial this agent.
pub async fn register(c: &Compute, a: &AgentRow) -> Result<(), Error> {
    let Some(pki) = c.pki.get() else {
        return Ok(());
    };
    let addr = resolve(&a.address)
        .await
        .ok_or_else(|| Error::internal(format!("cannot resolve agent address {}", a.address)))?;
    let client = AgentClient::new(a.host_id.0, addr, &pki.tls).map_err(Error::internal)?;
    c.kvm.set_agent(a.host_id.0, client);
    Ok(())
}

/// What the monitor remembers between passes.
#[derive(Default)]
pub struct Memory {
    known: HashMap<Uuid, String>,
    /// Crash counts already turned into instance events, so each crash is told once.
    crashes: HashMap<Uuid, u32>,
    stopped_since: HashMap<Uuid, Timestamp>,
}

/// One pass over every agent; returns how many answered out of how many.
pub async fn poll(c: &Compute, store: &Store, m: &mut Memory) -> Result<(usize, usize), Error> {
    pass(c, store, &mut m.known, &mut m.crashes, &mut m.stopped_since).await
}

async fn pass(
    c: &Compute,
    store: &Store,
    known: &mut HashMap<Uuid, String>,
    crashes: &mut HashMap<Uuid, u32>,
    stopped_since: &mut HashMap<Uuid, Timestamp>,
) -> Result<(usize, usize), Error> {
    let polled_at = Timestamp::now();
    let mut answered = 0;
    let agents = zy_store::agents::agents(store).await?;
    for a in &agents {
        if known.get(&a.host_id.0) != Some(&a.address) {
            register(c, a).await?;
            known.insert(a.host_id.0, a.address.clone());
        }
    }
    // Only hosts whose HA state is `ok` get their self-fencing lease renewed: once a host
    // is declared failed, its lease is left to run out (see `compute::ha`).
    let leased = zy_store::ha::lease_allowed(store).await?;
    let leased = &leased;
    let polls = agents.iter().map(|a| async move {
        let r = match c.kvm.agent(a.host_id.0) {
            Ok(client) if leased.contains(&a.host_id) => {
                let lease = zy_compute::agent::FenceLease {
                    valid_ms: super::ha::LEASE.as_millis() as u64,
                    issued_at_ms: Timestamp::now().0 / 1000,
                };
                client
                    .heartbeat_with_lease(&lease, super::ha::HEARTBEAT_TIMEOUT)
                    .await
                    .ok()
            }
            Ok(client) => client
                .get::<HostReport>("/v1/host", super::ha::HEARTBEAT_TIMEOUT)
                .await
                .ok(),
            Err(_) => None,
        };
        (a, r)
    });
    for (a, report) in futures_util::future::join_all(polls).await {
        let Some(report) = report else { continue };
        answered += 1;
        let json = serde_json::to_string(&report).unwrap_or_default();
        zy_store::agents::heartbeat(
            store,
            a.host_id,
            &report.capacity.accel,
            &json,
            Timestamp::now(),
        )
        .await?;
        for vm in &report.vms {
            let seen = crashes.entry(vm.id).or_insert(vm.crashes);
            if vm.crashes > *seen {
                *seen = vm.crashes;
                note_crash(store, vm.id, a.host_id, vm.state).await;
            }
            if vm.state == VmState::Stopped {
                match stopped_since.get(&vm.id) {
                    None => {
                        stopped_since.insert(vm.id, polled_at);
                    }
                    Some(since) => note_power_off(store, vm.id, a.host_id, *since).await,
                }
            } else {
                stopped_since.remove(&vm.id);
            }
        }
    }
    Ok((answered, agents.len()))
}

async fn note_power_off(store: &Store, vm: Uuid, host: zy_model::id::HostId, since: Timestamp) {
    let r = async {
        // Most stopped VMs are stopped on purpose: read before taking the write lock.
        let id = zy_model::id::InstanceId(vm);
        match zy_store::instances::get(store.pool(), id).await? {
            Some(row)
                if row.instance.state == zy_model::compute::InstanceState::Running
                    && row.instance.host_id == Some(host) => {}
            _ => return Ok(()),
        }
        let mut tx = store.begin_write().await?;
        let changed = zy_store::instances::guest_powered_off(&mut tx, zy_model::id::InstanceId(vm), host, since).await?;
        tx.commit().await.map_err(zy_store::db_error)?;
        if changed {
            tracing::info!(instance = %vm, host = %host, "the guest powered itself off; recorded as stopped");
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot record a guest power-off");
    }
}

async fn note_crash(store: &Store, vm: Uuid, host: zy_model::id::HostId, state: VmState) {
    let id = zy_model::id::InstanceId(vm);
    let r = async {
        let Some(row) = zy_store::instances::get(store.pool(), id).await? else {
            return Ok::<_, Error>(());
        };
        let s = row.instance.state.as_str();
        let why = if state == VmState::Running {
            format!("the guest died unexpectedly on host {host} and was restarted")
        } else {
            format!("the guest died unexpectedly on host {host}")
        };
        tracing::warn!(instance = %vm, host = %host, "{why}");
        let mut tx = store.begin_write().await?;
        zy_store::instances::event(&mut tx, id, s, s, &why).await?;
        tx.commit().await.map_err(zy_store::db_error)?;
        Ok(())
    }
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot record a guest crash");
    }
}
