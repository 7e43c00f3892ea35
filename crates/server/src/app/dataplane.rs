//! The hosts' data plane from the control plane's side: what each KVM host must carry
//! ([`host_state`]: the VPCs of the NICs placed on it, their VXLAN peers, DHCP's fixed
//! addresses, the VPC's NICs on the other hosts that its namespace routes to, the taps
//! and the nftables rule set; the zone's external network and each
//! VPC's outbound duties — masquerade, and the elastic IPs bound to NICs on the host) and
//! the `network_push` task that sends it to the agents. An elastic IP is sent only to the
//! host its NIC's instance runs on, so binding, unbinding and moving the instance (a
//! migration, an HA restart) move it with the next push.
//!
//! The push is idempotent and ordered by a generation per host (`host_networks`, advanced
//! by a conditional update when the state's digest changes), so an old push arriving late
//! never undoes a newer one: the agent refuses it. Every change of the networks wakes the
//! task (`Compute::net_wake`), and it runs every second anyway, which also makes the
//! network follow an instance that was placed, moved (migration, HA recovery) or deleted:
//! the state is computed from where the instances are now. A host that missed a push gets
//! it again on the next pass (its applied generation is behind), and an unchanged state is
//! re-sent every [`RESEND`] so a host whose agent lost its state converges. No agent is
//! ever called inside a transaction.
//!
//! The agents answer with each NIC's counters: the packets its security groups dropped
//! become security events (`secev::record_local_drops`, as deltas between two pushes).

use crate::compute::Compute;
use crate::tasks::Task;
use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;
use zy_compute::agent::{
    DhcpHost, EipWire, ExternalWire, HostReport, NatWire, NetworkReport, NetworkState, NicWire,
    RemoteNicWire, SubnetWire, VpcWire,
};
use zy_model::id::{HostId, InstanceId, NicId};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::networks as db;
use zy_store::Store;

/// An unchanged state is sent again this often.
pub const RESEND: Duration = Duration::from_secs(30);
const PUSH_TIMEOUT: Duration = Duration::from_secs(20);

/// The network state `host` must carry (generation 0: the caller sets it).
/// `underlays` maps hosts to their tunnel addresses.
pub async fn host_state(
    store: &Store,
    host: HostId,
    underlays: &HashMap<HostId, String>,
) -> Result<NetworkState, Error> {
    let nics = db::host_vpc_nics(store, host).await?;
    let mut by_vpc: BTreeMap<i64, Vec<&db::PlacedNic>> = BTreeMap::new();
    for n in &nics {
        by_vpc.entry(n.vni).or_default().push(n);
    }
    // Outbound access: every VPC with `outbound` on a host whose zone has an external
    // network, with the elastic IPs of that network bound to NICs here; a VPC without it
    // only for those elastic IPs (and not at all when none is bound here).
    let external = db::host_external(store, host).await?;
    let mut eips: BTreeMap<i64, Vec<EipWire>> = BTreeMap::new();
    if let Some(x) = &external {
        for e in db::host_eips(store, host).await? {
            if e.external_network_id == x.id {
                eips.entry(e.vni).or_default().push(EipWire {
                    eip: e.address,
                    ip: e.ip,
                });
            }
        }
    }
    let mut vpcs = Vec::new();
    for (vni, members) in &by_vpc {
        let Some(first) = members.first() else {
            continue;
        };
        let peers: BTreeSet<String> = members
            .iter()
            .filter_map(|n| n.host_id)
            .filter(|h| *h != host)
            .filter_map(|h| underlays.get(&h).cloned())
            .collect();
        let subnets = db::subnets_of(store.pool(), first.vpc_id)
            .await?
            .into_iter()
            .map(|s| SubnetWire {
                hosts: members
                    .iter()
                    .filter(|n| n.subnet_id == s.id)
                    .map(|n| DhcpHost {
                        mac: n.mac.clone(),
                        ip: n.ip.clone(),
                    })
                    .collect(),
                cidr: s.cidr,
                gateway: s.gateway,
                dns_servers: s.dns_servers,
                dhcp: s.dhcp,
            })
            .collect();
        // Every NIC (and VIP) of the VPC placed on another host with a known underlay:
        // this host's namespace routes to it over the transit link, so the other hosts'
        // states change with it and the push reaches each of them.
        let remote: BTreeSet<RemoteNicWire> = members
            .iter()
            .filter_map(|n| {
                let h = n.host_id.filter(|h| *h != host)?;
                Some(RemoteNicWire {
                    ip: n.ip.clone(),
                    host: underlays.get(&h)?.clone(),
                })
            })
            .collect();
        vpcs.push(VpcWire {
            vni: *vni as u32,
            peers: peers.into_iter().collect(),
            subnets,
            nat: external.as_ref().and_then(|_| {
                let eips = eips.remove(vni).unwrap_or_default();
                (first.outbound || !eips.is_empty()).then_some(NatWire {
                    eips,
                    masquerade: first.outbound,
                })
            }),
            remote: remote.into_iter().collect(),
        });
    }
    // A load balancer's VIP (`vip`) makes its host carry the VPC and a VXLAN peer of the
    // others (above), and keeps its address reserved in DHCP, but it is no tap: the
    // HAProxy namespace's veth is plugged into the bridge by the agent's `lb` module.
    let local = nics
        .iter()
        .filter(|n| n.host_id == Some(host) && !n.vip)
        .map(|n| NicWire {
            id: n.id.0,
            instance_id: n.instance_id.0,
            vni: n.vni as u32,
            mac: n.mac.clone(),
            ip: n.ip.clone(),
            index: n.index as u32,
        })
        .collect();
    Ok(NetworkState {
        generation: 0,
        vpcs,
        nics: local,
        ruleset: super::networks::host_ruleset(store, host).await?,
        external: external.map(|x| ExternalWire {
            host_interface: x.host_interface,
            cidr: x.cidr,
            gateway: x.gateway,
        }),
    })
}

/// A stable digest of a state (its generation aside).
fn digest(st: &NetworkState) -> String {
    use sha2::Digest;
    let mut st = st.clone();
    st.generation = 0;
    let bytes = serde_json::to_vec(&st).unwrap_or_default();
    let d = sha2::Sha256::digest(&bytes);
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The `network_push` task (one replica; every second or when woken).
pub struct NetworkPush {
    c: Arc<Compute>,
    store: Store,
    /// Last drop counter seen per NIC (security events are the deltas).
    drops: Mutex<HashMap<Uuid, (u64, Timestamp)>>,
}

pub fn task(c: Arc<Compute>, store: Store) -> Arc<dyn Task> {
    Arc::new(NetworkPush {
        c,
        store,
        drops: Default::default(),
    })
}

#[derive(Default, serde::Serialize)]
struct Pass {
    hosts: u32,
    pushed: u32,
    failed: u32,
    stale: u32,
}

impl Task for NetworkPush {
    fn name(&self) -> &'static str {
        "network_push"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn waker(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.c.net_wake.clone())
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let agents = zy_store::agents::agents(&self.store).await?;
            let underlays: HashMap<HostId, String> = agents
                .iter()
                .filter_map(|a| {
                    let r: HostReport = serde_json::from_str(&a.report).ok()?;
                    Some((a.host_id, r.underlay?))
                })
                .collect();
            let underlays = &underlays;
            let pushes = agents
                .iter()
                .map(|a| async move { (a.host_id, self.push(a.host_id, underlays).await) });
            let mut pass = Pass::default();
            for (host, r) in futures_util::future::join_all(pushes).await {
                pass.hosts += 1;
                match r {
                    Ok(Outcome::Pushed) => pass.pushed += 1,
                    Ok(Outcome::Unchanged) => {}
                    Ok(Outcome::Stale) => pass.stale += 1,
                    Err(e) => {
                        pass.failed += 1;
                        tracing::warn!(host = %host, error = %e, "cannot push the network state");
                    }
                }
            }
            serde_json::to_value(&pass).map_err(|e| Error::internal(e.to_string()))
        })
    }
}

enum Outcome {
    Pushed,
    Unchanged,
    Stale,
}

impl NetworkPush {
    async fn push(
        &self,
        host: HostId,
        underlays: &HashMap<HostId, String>,
    ) -> Result<Outcome, Error> {
        let Ok(agent) = self.c.kvm.agent(host.0) else {
            return Ok(Outcome::Unchanged);
        };
        let mut st = host_state(&self.store, host, underlays).await?;
        let d = digest(&st);
        let now = Timestamp::now();
        let sent = db::host_network(&self.store, host).await?;
        let generation = match &sent {
            None => {
                if !db::advance_host_network(&self.store, host, None, 1, &d, now.0).await? {
                    return Ok(Outcome::Unchanged);
                }
                1
            }
            Some((g, old, applied, pushed_at)) => {
                if *old != d {
                    if !db::advance_host_network(&self.store, host, Some(*g), g + 1, &d, now.0)
                        .await?
                    {
                        return Ok(Outcome::Unchanged);
                    }
                    g + 1
                } else if applied < g || now.0 - pushed_at >= RESEND.as_micros() as i64 {
                    *g
                } else {
                    return Ok(Outcome::Unchanged);
                }
            }
        };
        st.generation = generation;
        match agent
            .put_network(&st, PUSH_TIMEOUT)
            .await
            .map_err(|e| Error::internal(format!("agent of host {host}: {e}")))?
        {
            Ok(report) => {
                db::host_network_applied(&self.store, host, report.generation, now.0).await?;
                self.record_drops(host, &st, &report).await;
                Ok(Outcome::Pushed)
            }
            Err(applied) => {
                // The agent has a newer generation than ours (the database was restored, or
                // a lost race): continue after it, the next pass sends the state again.
                if applied >= generation {
                    db::advance_host_network(
                        &self.store,
                        host,
                        Some(generation),
                        applied + 1,
                        "",
                        now.0,
                    )
                    .await?;
                }
                Ok(Outcome::Stale)
            }
        }
    }

    async fn record_drops(&self, host: HostId, st: &NetworkState, report: &NetworkReport) {
        let now = Timestamp::now();
        let mut due = Vec::new();
        if let Ok(mut m) = self.drops.lock() {
            for c in &report.nics {
                let prev = m.insert(c.id, (c.dropped_packets, now));
                if let Some((before, since)) = prev {
                    // A reloaded rule set starts its counters again from zero.
                    let delta = if c.dropped_packets >= before {
                        c.dropped_packets - before
                    } else {
                        c.dropped_packets
                    };
                    if delta > 0 {
                        due.push((c.id, delta, since));
                    }
                }
            }
        }
        for (nic, delta, since) in due {
            let instance = st
                .nics
                .iter()
                .find(|n| n.id == nic)
                .map(|n| InstanceId(n.instance_id));
            let r = async {
                let mut tx = self.store.begin_write().await?;
                super::secev::record_local_drops(
                    &mut tx,
                    host,
                    instance,
                    &NicId(nic).to_string(),
                    delta as i64,
                    since,
                    now,
                )
                .await?;
                tx.commit().await.map_err(zy_store::db_error)
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot record security-group drops");
            }
        }
    }
}
