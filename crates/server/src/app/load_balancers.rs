//! Load balancer use cases (负载均衡). A load balancer lives in a project, with its virtual
//! IP from the platform's IPAM on a subnet the project may use; its listeners (each with
//! its pool, algorithm, health check and members) are replaced whole, conditional on the
//! generation. Every change is one audited transaction that also starts the saga that
//! applies it on a host (`load_balancer_apply` / `load_balancer_delete`), so the request
//! never waits for a host. Permissions are those of the other network objects.

use super::commit_audited;
use super::networks::{may, project, visibility};
use crate::auth::actor::Actor;
use crate::compute::sagas::lb as sagas;
use crate::context::RequestContext;
use crate::state::AppState;
use serde_json::json;
use zy_model::id::*;
use zy_model::network::lb::*;
use zy_model::network::*;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, Action};
use zy_store::load_balancers as db;
use zy_store::networks as net;

pub async fn list(
    s: &AppState,
    actor: &Actor,
    project_id: Option<ProjectId>,
) -> Result<Vec<LoadBalancer>, Error> {
    let vis = visibility(actor)?;
    if let Some(p) = project_id {
        project(s, p).await?;
    }
    let (d, p) = match &vis {
        Some((d, p)) => (Some(d.as_slice()), Some(p.as_slice())),
        None => (None, None),
    };
    db::list(&s.store, d, p, project_id).await
}

async fn load(
    s: &AppState,
    actor: &Actor,
    id: LoadBalancerId,
    write: bool,
) -> Result<db::LbRow, Error> {
    let r = db::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("load_balancer", id))?;
    may(actor, r.lb.department_id, Some(r.lb.project_id), write)?;
    Ok(r)
}

pub async fn get(s: &AppState, actor: &Actor, id: LoadBalancerId) -> Result<LoadBalancer, Error> {
    Ok(load(s, actor, id, false).await?.lb)
}

/// Validates the listeners and checks that every member NIC is in `vpc`.
async fn checked(
    s: &AppState,
    vpc: VpcId,
    listeners: Vec<LbListener>,
) -> Result<Vec<LbListener>, Error> {
    let listeners = validate_listeners(listeners)?;
    for (i, l) in listeners.iter().enumerate() {
        for (j, m) in l.members.iter().enumerate() {
            let field = format!("listeners[{i}].members[{j}].nic_id");
            let nic = net::get_nic(s.store.pool(), m.nic_id).await?;
            let inst = match &nic {
                Some(n) => zy_store::instances::get(s.store.pool(), n.instance_id).await?,
                None => None,
            };
            match (nic, inst) {
                (Some(n), Some(_)) if n.vpc_id == vpc => {}
                (Some(_), Some(_)) => {
                    return Err(Error::validation(
                        &field,
                        t!("网卡 {} 不在负载均衡所在的网络中" ; "NIC {} is not in the load balancer's VPC", m.nic_id),
                    ))
                }
                _ => {
                    return Err(Error::validation(
                        &field,
                        t!("网卡 {} 不存在或不是云主机的网卡" ; "NIC {} does not exist or is not an instance's NIC", m.nic_id),
                    ))
                }
            }
        }
    }
    Ok(listeners)
}

pub struct NewLoadBalancer {
    pub project_id: ProjectId,
    pub subnet_id: SubnetId,
    pub name: String,
    pub description: String,
    pub vip: Option<String>,
    pub listeners: Vec<LbListener>,
}

/// Creates a load balancer: its virtual IP is taken and the apply saga started in one
/// transaction; the answer is the load balancer `pending`.
pub async fn create(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewLoadBalancer,
) -> Result<LoadBalancer, Error> {
    let pr = project(s, b.project_id).await?;
    authorize(
        &actor.principal,
        Action::NetworkOperate(pr.department_id, Some(pr.id)),
    )?;
    let name = validate::name("name", &b.name)?;
    let description = validate::description("description", &b.description)?;
    let sn = net::get_subnet(s.store.pool(), b.subnet_id)
        .await?
        .ok_or_else(|| {
            Error::validation(
                "subnet_id",
                t!("子网 {} 不存在" ; "subnet {} does not exist", b.subnet_id),
            )
        })?;
    let vpc = net::get_vpc(s.store.pool(), sn.vpc_id)
        .await?
        .ok_or_else(|| Error::not_found("vpc", sn.vpc_id))?;
    if vpc.department_id != pr.department_id || vpc.project_id.is_some_and(|p| p != pr.id) {
        return Err(Error::validation(
            "subnet_id",
            t!(
                "该子网所在的网络不属于此项目或其部门",
                "the subnet's VPC belongs neither to this project nor its department"
            ),
        ));
    }
    let listeners = checked(s, vpc.id, b.listeners).await?;
    let id = LoadBalancerId::new();
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let addr = super::networks::allocate_address(&mut tx, &sn, "vip", b.vip.as_deref()).await?;
    let lb = fresh(id, &vpc, pr.id, &sn, name, description, addr, listeners);
    let saga = insert_with_vip(&mut tx, &lb, addr).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_load_balancer",
        "load_balancer",
        &id.to_string(),
        json!({ "name": lb.name, "vip": lb.vip, "subnet_id": sn.id, "listeners": lb.listeners.len(), "saga_id": saga }),
    )
    .await?;
    s.compute.wake.notify_one();
    Ok(lb)
}

fn busy(name: &str) -> Error {
    Error::conflict(t!(
        "负载均衡 {} 正在变更中，请稍后重试" ;
        "load balancer {} is being changed; try again in a moment", name
    ))
    .with_details(json!({ "reason": "busy" }))
}

/// Replaces the listeners (with their pools and members) when the load balancer is still
/// at `generation` (when given), and starts applying them.
pub async fn set_listeners(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: LoadBalancerId,
    generation: Option<i64>,
    listeners: Vec<LbListener>,
) -> Result<LoadBalancer, Error> {
    let r = load(s, actor, id, true).await?;
    let listeners = checked(s, r.lb.vpc_id, listeners).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let cur = db::get(&mut *tx, id)
        .await?
        .ok_or_else(|| Error::not_found("load_balancer", id))?
        .lb;
    if cur.state == LbState::Deleting {
        return Err(Error::conflict(t!(
            "负载均衡 {} 正在删除" ; "load balancer {} is being deleted", cur.name
        )));
    }
    let expected = generation.unwrap_or(cur.generation);
    if !db::replace_listeners(&mut tx, id, expected, &listeners).await? {
        return Err(Error::conflict(t!(
            "负载均衡 {} 已被他人修改，请刷新后重试" ;
            "load balancer {} was changed meanwhile; reload and try again", cur.name
        ))
        .with_details(json!({ "reason": "generation_mismatch", "generation": cur.generation })));
    }
    let Some(saga) = crate::saga::start(
        &mut tx,
        &sagas::APPLY,
        &id.to_string(),
        &sagas::Apply {
            lb_id: id,
            previous: Some(cur.listeners.clone()),
        },
    )
    .await?
    else {
        return Err(busy(&cur.name));
    };
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_load_balancer_listeners",
        "load_balancer",
        &id.to_string(),
        json!({ "name": cur.name, "listeners": listeners, "saga_id": saga }),
    )
    .await?;
    s.compute.wake.notify_one();
    get(s, actor, id).await
}

/// Deletes a load balancer: marked `deleting` and removed from its host by a saga, which
/// then frees the virtual IP.
pub async fn delete(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: LoadBalancerId,
) -> Result<(), Error> {
    let r = load(s, actor, id, true).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !db::mark_deleting(&mut tx, id).await? {
        return Ok(());
    }
    let Some(saga) = crate::saga::start(
        &mut tx,
        &sagas::DELETE,
        &id.to_string(),
        &sagas::Remove { lb_id: id },
    )
    .await?
    else {
        return Err(busy(&r.lb.name));
    };
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_load_balancer",
        "load_balancer",
        &id.to_string(),
        json!({ "name": r.lb.name, "vip": r.lb.vip, "saga_id": saga }),
    )
    .await?;
    s.compute.wake.notify_one();
    Ok(())
}

/// Demo data: a load balancer on the web subnet (virtual IP .10, HTTP on port 80, round
/// robin, checked by GET /healthz); its apply saga places it on a simulated host.
pub(crate) async fn demo(
    tx: &mut zy_store::Tx,
    vpc: &Vpc,
    p: ProjectId,
    sn: &Subnet,
) -> Result<(), Error> {
    let addr = Cidr::parse("cidr", &sn.cidr)?.first() + 10;
    let listeners = vec![LbListener {
        protocol: LbProtocol::Http,
        port: 80,
        algorithm: LbAlgorithm::RoundRobin,
        health_check: HealthCheck {
            http_path: Some("/healthz".into()),
            expected_status: Some(200),
            ..HealthCheck::default()
        },
        members: Vec::new(),
    }];
    let lb = fresh(
        LoadBalancerId::new(),
        vpc,
        p,
        sn,
        "门户网站负载均衡".into(),
        "演示数据 / demo data".into(),
        addr,
        listeners,
    );
    insert_with_vip(tx, &lb, addr).await?;
    Ok(())
}

/// A new load balancer, `pending` until its first apply.
#[allow(clippy::too_many_arguments)]
fn fresh(
    id: LoadBalancerId,
    vpc: &Vpc,
    project: ProjectId,
    sn: &Subnet,
    name: String,
    description: String,
    addr: u32,
    listeners: Vec<LbListener>,
) -> LoadBalancer {
    let now = Timestamp::now();
    LoadBalancer {
        id,
        department_id: vpc.department_id,
        project_id: project,
        vpc_id: vpc.id,
        subnet_id: sn.id,
        name,
        description,
        vip: ip_text(addr),
        listeners,
        state: LbState::Pending,
        host_id: None,
        simulated: false,
        applied_generation: 0,
        members: Vec::new(),
        last_error: None,
        created_at: now,
        updated_at: now,
        generation: 1,
    }
}

/// Inserts the load balancer with the NIC row holding its virtual IP `addr`, and starts
/// the saga that applies it (its id).
async fn insert_with_vip(
    tx: &mut zy_store::Tx,
    lb: &LoadBalancer,
    addr: u32,
) -> Result<Option<String>, Error> {
    let vip_nic = NicId::new();
    net::insert_nic(
        tx,
        &Nic {
            id: vip_nic,
            instance_id: InstanceId(lb.id.0),
            subnet_id: lb.subnet_id,
            vpc_id: lb.vpc_id,
            department_id: lb.department_id,
            project_id: lb.project_id,
            index: 0,
            mac: mac_for(vip_nic),
            ip: ip_text(addr),
            security_group_ids: Vec::new(),
            created_at: lb.created_at,
        },
        addr,
    )
    .await?;
    db::insert(tx, lb, vip_nic).await?;
    crate::saga::start(
        tx,
        &sagas::APPLY,
        &lb.id.to_string(),
        &sagas::Apply {
            lb_id: lb.id,
            previous: None,
        },
    )
    .await
}
