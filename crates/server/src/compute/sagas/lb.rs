//! Load balancer sagas (负载均衡). `load_balancer_apply` brings a load balancer's host to
//! its current configuration: `place` picks the host (where most member instances run,
//! else the enabled host with the fewest load balancers, among providers that run them),
//! `apply` renders the configuration with the members' addresses, has the host run it
//! and records the generation applied and each member's health. Undo of a first apply
//! removes it from the host; undo of a change puts the previous listeners back and
//! applies them. `load_balancer_delete` (forward-only) removes it from its host, then
//! its row and its virtual IP.

use crate::saga::{Cx, SagaDef, StepError, StepResult};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use zy_compute::agent::*;
use zy_model::compute::HostState;
use zy_model::id::*;
use zy_model::network::lb::*;
use zy_model::network::Cidr;
use zy_model::Error;
use zy_store::load_balancers as db;
use zy_store::sagas::SagaState;
use zy_store::Tx;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Apply {
    pub lb_id: LoadBalancerId,
    /// The listeners before this change; `None` when the load balancer is new.
    pub previous: Option<Vec<LbListener>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Remove {
    pub lb_id: LoadBalancerId,
}

pub struct ApplyLb;
pub static APPLY: ApplyLb = ApplyLb;
pub struct DeleteLb;
pub static DELETE: DeleteLb = DeleteLb;

async fn load(cx: &Cx, id: LoadBalancerId) -> Result<Option<db::LbRow>, StepError> {
    Ok(db::get(cx.store.pool(), id).await?)
}

/// Provider kinds whose driver runs load balancers.
fn runs_lbs(kind: &str) -> bool {
    matches!(kind, "kvm" | "sim")
}

async fn place(cx: &mut Cx) -> StepResult {
    let p: Apply = cx.params()?;
    let Some(row) = load(cx, p.lb_id).await? else {
        return Err(StepError::Fail(format!(
            "load balancer {} is gone",
            p.lb_id
        )));
    };
    if row.lb.host_id.is_some() {
        return Ok(());
    }
    let hosts = zy_store::inventory::hosts(&cx.store, None).await?;
    let usable = |h: &zy_model::compute::Host| {
        h.state == HostState::Enabled
            && cx
                .compute
                .drivers
                .get(h.provider_id)
                .is_ok_and(|d| runs_lbs(d.kind()))
    };
    let nics: Vec<NicId> = row
        .lb
        .listeners
        .iter()
        .flat_map(|l| l.members.iter().map(|m| m.nic_id))
        .collect();
    let mut chosen = None;
    for h in db::member_hosts(&cx.store, &nics).await? {
        if hosts.iter().any(|r| r.host.id == h && usable(&r.host)) {
            chosen = Some(h);
            break;
        }
    }
    if chosen.is_none() {
        let mut best: Option<(i64, HostId)> = None;
        for r in hosts.iter().filter(|r| usable(&r.host)) {
            let n = db::count_on(&cx.store, r.host.id).await?;
            if best.is_none_or(|(b, _)| n < b) {
                best = Some((n, r.host.id));
            }
        }
        chosen = best.map(|(_, h)| h);
    }
    let Some(host) = chosen else {
        return Err(StepError::Fail(
            "没有可运行负载均衡的宿主机 / no enabled host can run load balancers".into(),
        ));
    };
    let simulated = hosts
        .iter()
        .find(|r| r.host.id == host)
        .and_then(|r| cx.compute.drivers.get(r.host.provider_id).ok())
        .is_some_and(|d| d.simulated());
    let mut tx = cx.begin().await?;
    db::place(&mut tx, p.lb_id, host, simulated).await?;
    cx.commit(tx).await
}

/// What the host needs: the configuration with every member's current address (members
/// whose NIC is gone are left out), and how to name members back.
type Names = HashMap<(u16, String), (NicId, String, u16)>;

async fn render(
    store: &zy_store::Store,
    lb: &LoadBalancer,
    listeners: &[LbListener],
) -> Result<(LbSpecWire, Names), StepError> {
    let pool = store.pool();
    let vpc = zy_store::networks::get_vpc(pool, lb.vpc_id)
        .await?
        .ok_or_else(|| StepError::Fail(format!("VPC {} is gone", lb.vpc_id)))?;
    let sn = zy_store::networks::get_subnet(pool, lb.subnet_id)
        .await?
        .ok_or_else(|| StepError::Fail(format!("subnet {} is gone", lb.subnet_id)))?;
    let cidr =
        Cidr::parse("cidr", &sn.cidr).map_err(|e| StepError::Fail(e.message.en.to_string()))?;
    let mut names = HashMap::new();
    let mut out = Vec::with_capacity(listeners.len());
    for l in listeners {
        let mut members = Vec::new();
        for (j, m) in l.members.iter().enumerate() {
            let Some(nic) = zy_store::networks::get_nic(pool, m.nic_id).await? else {
                continue;
            };
            let name = format!("m{j}");
            names.insert((l.port, name.clone()), (m.nic_id, nic.ip.clone(), m.port));
            members.push(LbMemberWire {
                name,
                address: nic.ip,
                port: m.port,
                weight: m.weight,
            });
        }
        let hc = &l.health_check;
        out.push(LbListenerWire {
            mode: match l.protocol {
                LbProtocol::Tcp => LbMode::Tcp,
                LbProtocol::Http => LbMode::Http,
            },
            port: l.port,
            balance: match l.algorithm {
                LbAlgorithm::RoundRobin => LbBalance::RoundRobin,
                LbAlgorithm::LeastConnections => LbBalance::LeastConn,
            },
            http_check: hc.http_path.clone().map(|path| HttpCheckWire {
                path,
                status: hc.expected_status.unwrap_or(200),
            }),
            interval_ms: hc.interval_ms,
            rise: hc.rise,
            fall: hc.fall,
            members,
        });
    }
    let spec = LbSpecWire {
        vni: u32::try_from(vpc.vni).unwrap_or(0),
        vip: lb.vip.clone(),
        prefix: cidr.prefix,
        gateway: sn.gateway,
        listeners: out,
    };
    Ok((spec, names))
}

/// The members' status from a host's report, in configuration order.
pub fn statuses(
    listeners: &[LbListener],
    names: &Names,
    report: Option<&LbReport>,
) -> Vec<MemberStatus> {
    let mut out = Vec::new();
    for l in listeners {
        for j in 0..l.members.len() {
            let key = (l.port, format!("m{j}"));
            let Some((nic, ip, port)) = names.get(&key) else {
                continue;
            };
            let health = report
                .and_then(|r| {
                    r.members
                        .iter()
                        .find(|m| m.listener_port == l.port && m.name == key.1)
                })
                .map(|m| match m.health {
                    LbMemberHealth::Up => MemberHealth::Up,
                    LbMemberHealth::Down => MemberHealth::Down,
                    LbMemberHealth::Unknown => MemberHealth::Unknown,
                })
                .unwrap_or(MemberHealth::Unknown);
            out.push(MemberStatus {
                listener_port: l.port,
                nic_id: *nic,
                address: ip.clone(),
                port: *port,
                status: health,
            });
        }
    }
    out
}

async fn driver_of(
    cx: &Cx,
    host: HostId,
) -> Result<std::sync::Arc<dyn zy_compute::ComputeDriver>, StepError> {
    let h = zy_store::inventory::host(cx.store.pool(), host)
        .await?
        .ok_or_else(|| StepError::Fail(format!("host {host} is gone")))?;
    Ok(cx.compute.drivers.get(h.host.provider_id)?)
}

/// Has the host run `listeners` and records the result as generation `generation`.
async fn push(
    cx: &mut Cx,
    lb: &LoadBalancer,
    listeners: &[LbListener],
    generation: i64,
) -> StepResult {
    let host = lb
        .host_id
        .ok_or_else(|| StepError::Fail("the load balancer has no host".into()))?;
    let (spec, names) = render(&cx.store, lb, listeners).await?;
    let d = driver_of(cx, host).await?;
    let report = d
        .ensure_load_balancer(lb.id.0, host.0, &spec)
        .await
        .map_err(StepError::from)
        .map_err(|e| {
            e.with_context("宿主机未能运行负载均衡 / the host could not run the load balancer")
        })?;
    let members = statuses(listeners, &names, Some(&report));
    let mut tx = cx.begin().await?;
    db::applied(&mut tx, lb.id, generation, &members).await?;
    cx.commit(tx).await
}

async fn apply(cx: &mut Cx) -> StepResult {
    let p: Apply = cx.params()?;
    let Some(row) = load(cx, p.lb_id).await? else {
        return Err(StepError::Fail(format!(
            "load balancer {} is gone",
            p.lb_id
        )));
    };
    let lb = row.lb;
    if lb.state == LbState::Deleting {
        return Ok(());
    }
    let listeners = lb.listeners.clone();
    push(cx, &lb, &listeners, lb.generation).await
}

async fn undo_apply(cx: &mut Cx) -> StepResult {
    let p: Apply = cx.params()?;
    let Some(row) = load(cx, p.lb_id).await? else {
        return Ok(());
    };
    let lb = row.lb;
    let Some(host) = lb.host_id else {
        return Ok(());
    };
    match p.previous {
        None => {
            driver_of(cx, host)
                .await?
                .delete_load_balancer(lb.id.0, host.0)
                .await?;
            let mut tx = cx.begin().await?;
            db::forget_applied(&mut tx, lb.id).await?;
            cx.commit(tx).await
        }
        Some(prev) if lb.state != LbState::Deleting => {
            let mut tx = cx.begin().await?;
            let generation = db::restore_listeners(&mut tx, lb.id, &prev).await?;
            tx.commit().await.map_err(zy_store::db_error)?;
            push(cx, &lb, &prev, generation).await
        }
        Some(_) => Ok(()),
    }
}

impl SagaDef for ApplyLb {
    fn kind(&self) -> &'static str {
        "load_balancer_apply"
    }
    fn steps(&self) -> &'static [&'static str] {
        &["place", "apply"]
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            match step {
                0 => place(cx).await,
                1 => apply(cx).await,
                _ => Err(StepError::Fail(format!("no step {step}"))),
            }
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            match step {
                0 => {
                    let p: Apply = cx.params()?;
                    let mut tx = cx.begin().await?;
                    db::unplace(&mut tx, p.lb_id).await?;
                    cx.commit(tx).await
                }
                1 => undo_apply(cx).await,
                _ => Ok(()),
            }
        })
    }
    fn finished<'a>(
        &'a self,
        cx: &'a Cx,
        tx: &'a mut Tx,
        outcome: SagaState,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if outcome != SagaState::Undone {
                return Ok(());
            }
            let p: Apply =
                serde_json::from_str(&cx.row.params).map_err(|e| Error::internal(e.to_string()))?;
            let why = cx
                .row
                .error
                .clone()
                .unwrap_or_else(|| "apply failed".into());
            let note = match p.previous {
                None => format!("创建失败，已撤销 / could not be created and was rolled back: {why}"),
                Some(_) => format!(
                    "修改未生效，已恢复原配置 / the change was not applied; the previous configuration is back: {why}"
                ),
            };
            db::failed(tx, p.lb_id, p.previous.is_none(), &note).await
        })
    }
}

async fn remove_from_host(cx: &mut Cx) -> StepResult {
    let p: Remove = cx.params()?;
    let Some(row) = load(cx, p.lb_id).await? else {
        return Ok(());
    };
    if let Some(host) = row.lb.host_id {
        driver_of(cx, host)
            .await?
            .delete_load_balancer(p.lb_id.0, host.0)
            .await?;
    }
    Ok(())
}

async fn forget(cx: &mut Cx) -> StepResult {
    let p: Remove = cx.params()?;
    let Some(row) = load(cx, p.lb_id).await? else {
        return Ok(());
    };
    let mut tx = cx.begin().await?;
    db::delete(&mut tx, p.lb_id, row.vip_nic_id).await?;
    cx.commit(tx).await
}

impl SagaDef for DeleteLb {
    fn kind(&self) -> &'static str {
        "load_balancer_delete"
    }
    fn steps(&self) -> &'static [&'static str] {
        &["remove_from_host", "forget"]
    }
    fn forward_only(&self) -> bool {
        true
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            match step {
                0 => remove_from_host(cx).await,
                1 => forget(cx).await,
                _ => Err(StepError::Fail(format!("no step {step}"))),
            }
        })
    }
    fn undo<'a>(&'a self, _cx: &'a mut Cx, _step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async { Ok(()) })
    }
}

/// The health poll (`load_balancer_health`, one replica): asks each placed load balancer's
/// host for its members' health (HAProxy's `show stat` on real hosts) and records it for
/// the applied generation, so a member failing its checks shows `down` within a period.
pub struct HealthPoll {
    pub c: std::sync::Arc<crate::compute::Compute>,
    pub store: zy_store::Store,
}

impl crate::tasks::Task for HealthPoll {
    fn name(&self) -> &'static str {
        "load_balancer_health"
    }
    fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let (mut polled, mut changed, mut unreachable) = (0, 0, 0);
            for lb in db::placed(&self.store).await? {
                let Some(host) = lb.host_id.filter(|_| lb.applied_generation > 0) else {
                    continue;
                };
                let Some(h) = zy_store::inventory::host(self.store.pool(), host).await? else {
                    continue;
                };
                let Ok(d) = self.c.drivers.get(h.host.provider_id) else {
                    continue;
                };
                polled += 1;
                let report = match d.load_balancer_status(lb.id.0, host.0).await {
                    Ok(r) => r,
                    Err(_) => {
                        unreachable += 1;
                        None
                    }
                };
                // The listeners of the applied generation are the current ones when it is
                // active; otherwise a saga is on its way and records the health itself.
                if lb.applied_generation != lb.generation {
                    continue;
                }
                let Ok((_, names)) = render(&self.store, &lb, &lb.listeners).await else {
                    continue;
                };
                let members = statuses(&lb.listeners, &names, report.as_ref());
                if members != lb.members {
                    let mut tx = self.store.begin_write_for(&lb.id.to_string()).await?;
                    if db::set_member_status(&mut tx, lb.id, lb.applied_generation, &members)
                        .await?
                    {
                        changed += 1;
                    }
                    tx.commit().await.map_err(zy_store::db_error)?;
                }
            }
            Ok(
                serde_json::json!({ "polled": polled, "changed": changed, "unreachable": unreachable }),
            )
        })
    }
}
