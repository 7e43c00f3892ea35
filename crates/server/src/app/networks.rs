//! Virtual network use cases (虚拟私有网络): VPCs of a project or shared by a department,
//! subnets (no overlap inside one VPC, decided under the VPC's lock), NICs with addresses
//! from the platform's own allocation (the unique `(subnet, address)` decides), security
//! groups and their rules (replaced whole, conditional on the group's generation),
//! external networks (platform admin) and elastic IPs. Every change is one audited
//! transaction. [`owner_of_address`] is the seam for security events and vulnerability
//! tracking.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use zy_model::compute::InstanceState;
use zy_model::id::*;
use zy_model::network::*;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, tenancy_visibility, Action, Visibility};
use zy_store::networks as db;
use zy_store::Store;

/// Lists: everything for the roles that read all tenancy and the security admin; else the
/// caller's departments and projects.
/// The departments and projects a caller sees; `None`: all.
pub(crate) type Visible = Option<(Vec<DepartmentId>, Vec<ProjectId>)>;

pub(crate) fn visibility(actor: &Actor) -> Result<Visible, Error> {
    let p = &actor.principal;
    let sec = p.grants.iter().any(|g| {
        g.role == zy_model::role::Role::SecurityAdmin && g.scope == zy_model::role::Scope::Platform
    });
    match tenancy_visibility(p) {
        Visibility::All => Ok(None),
        _ if sec => Ok(None),
        v if v.is_empty() => Err(Error::forbidden(t!(
            "您的角色无权查看网络",
            "Your role may not see networks"
        ))),
        Visibility::Some {
            departments,
            projects,
        } => Ok(Some((departments, projects))),
    }
}

/// Reading needs [`Action::NetworkRead`]; changing needs [`Action::NetworkOperate`] too.
pub(crate) fn may(
    actor: &Actor,
    d: DepartmentId,
    p: Option<ProjectId>,
    write: bool,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::NetworkRead(d, p))?;
    if write {
        authorize(&actor.principal, Action::NetworkOperate(d, p))?;
    }
    Ok(())
}

pub(crate) async fn project(
    s: &AppState,
    id: ProjectId,
) -> Result<zy_model::tenancy::Project, Error> {
    zy_store::projects::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("project", id))
}

// ---- VPCs ------------------------------------------------------------------------------

pub async fn list_vpcs(
    s: &AppState,
    actor: &Actor,
    project_id: Option<ProjectId>,
) -> Result<Vec<Vpc>, Error> {
    let vis = visibility(actor)?;
    let filter = match project_id {
        Some(p) => Some((project(s, p).await?.department_id, p)),
        None => None,
    };
    let (d, p) = match &vis {
        Some((d, p)) => (Some(d.as_slice()), Some(p.as_slice())),
        None => (None, None),
    };
    db::list_vpcs(&s.store, d, p, filter).await
}

pub struct NewVpc {
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub description: String,
    pub outbound: bool,
}

/// Creates a VPC of a project, or shared by a department when only `department_id` is
/// given.
pub async fn create_vpc(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewVpc,
) -> Result<Vpc, Error> {
    let NewVpc {
        department_id,
        project_id,
        name,
        description,
        outbound,
    } = b;
    let (d, p) = match (department_id, project_id) {
        (_, Some(p)) => {
            let pr = project(s, p).await?;
            if department_id.is_some_and(|d| d != pr.department_id) {
                return Err(Error::validation(
                    "department_id",
                    t!("项目不属于该部门", "the project does not belong to that department"),
                ));
            }
            (pr.department_id, Some(p))
        }
        (Some(d), None) => {
            zy_store::departments::get(s.store.pool(), d)
                .await?
                .ok_or_else(|| Error::not_found("department", d))?;
            (d, None)
        }
        (None, None) => {
            return Err(Error::validation(
                "project_id",
                t!(
                    "请指定项目（项目专用网络）或部门（部门共享网络）",
                    "give project_id (a project's VPC) or department_id (a VPC shared by the department)"
                ),
            ))
        }
    };
    authorize(&actor.principal, Action::NetworkOperate(d, p))?;
    let mut v = Vpc {
        id: VpcId::new(),
        department_id: d,
        project_id: p,
        name: validate::name("name", &name)?,
        description: validate::description("description", &description)?,
        vni: 0,
        outbound,
        created_at: Timestamp::now(),
        generation: 1,
    };
    let mut tx = s.store.begin_write().await?;
    db::insert_vpc(&mut tx, &mut v).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "create_vpc",
        "vpc",
        &v.id.to_string(),
        json!({ "name": v.name, "vni": v.vni, "project_id": p, "department_id": d, "outbound": v.outbound }),
    )
    .await?;
    Ok(v)
}

/// Switches a VPC's outbound access; the next push takes the masquerade off (or puts it
/// back) on every host of the VPC. Nothing to change is a 422.
pub async fn update_vpc(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: VpcId,
    outbound: Option<bool>,
    generation: Option<i64>,
) -> Result<Vpc, Error> {
    let v = load_vpc(s, actor, id, true).await?;
    let Some(outbound) = outbound else {
        return Err(Error::validation(
            "outbound",
            t!(
                "请指定要修改的内容（outbound）",
                "give what to change (outbound)"
            ),
        ));
    };
    if generation.is_some_and(|g| g != v.generation) {
        return Err(changed_meanwhile());
    }
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !db::set_vpc_outbound(&mut tx, id, v.generation, outbound).await? {
        return Err(changed_meanwhile());
    }
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "update_vpc",
        "vpc",
        &id.to_string(),
        json!({ "name": v.name, "outbound": { "from": v.outbound, "to": outbound } }),
    )
    .await?;
    Ok(Vpc {
        outbound,
        generation: v.generation + 1,
        ..v
    })
}

async fn load_vpc(s: &AppState, actor: &Actor, id: VpcId, write: bool) -> Result<Vpc, Error> {
    let v = db::get_vpc(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("vpc", id))?;
    may(actor, v.department_id, v.project_id, write)?;
    Ok(v)
}

pub async fn get_vpc(s: &AppState, actor: &Actor, id: VpcId) -> Result<VpcDetail, Error> {
    let vpc = load_vpc(s, actor, id, false).await?;
    let subnets = db::subnets_of(s.store.pool(), id).await?;
    Ok(VpcDetail { vpc, subnets })
}

pub async fn delete_vpc(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: VpcId,
) -> Result<(), Error> {
    let v = load_vpc(s, actor, id, true).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !db::delete_vpc(&mut tx, id).await? {
        return Err(Error::conflict(t!(
            "网络 {} 仍有网卡在使用，请先删除这些网卡" ;
            "VPC {} still has NICs; remove them first", v.name
        ))
        .with_details(json!({ "reason": "in_use" })));
    }
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "delete_vpc",
        "vpc",
        &id.to_string(),
        json!({ "name": v.name }),
    )
    .await
}

// ---- Subnets ---------------------------------------------------------------------------

pub struct NewSubnet {
    pub name: String,
    pub cidr: String,
    pub gateway: Option<String>,
    pub dns_servers: Vec<String>,
    pub dhcp: Option<bool>,
}

pub async fn create_subnet(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    vpc: VpcId,
    b: NewSubnet,
) -> Result<Subnet, Error> {
    load_vpc(s, actor, vpc, true).await?;
    let name = validate::name("name", &b.name)?;
    let cidr = Cidr::parse_subnet("cidr", &b.cidr)?;
    let gateway = match b.gateway.as_deref() {
        Some(g) => parse_ip("gateway", g)?,
        None => cidr.default_gateway(),
    };
    if !cidr.is_host(gateway) {
        return Err(Error::validation(
            "gateway",
            t!("网关 {} 不在子网 {} 的可用地址内" ; "gateway {} is not a host address of {}", ip_text(gateway), cidr),
        ));
    }
    if b.dns_servers.len() > 4 {
        return Err(Error::validation(
            "dns_servers",
            t!("最多 4 个 DNS 服务器", "at most 4 DNS servers"),
        ));
    }
    let dns = b
        .dns_servers
        .iter()
        .enumerate()
        .map(|(i, d)| parse_ip(&format!("dns_servers[{i}]"), d).map(ip_text))
        .collect::<Result<Vec<_>, _>>()?;
    let sn = Subnet {
        id: SubnetId::new(),
        vpc_id: vpc,
        name,
        cidr: cidr.to_string(),
        gateway: ip_text(gateway),
        dns_servers: dns,
        dhcp: b.dhcp.unwrap_or(true),
        created_at: Timestamp::now(),
    };
    // Under the VPC's lock, so two subnets created at once cannot both pass the check.
    let mut tx = s.store.begin_write_for(&vpc.to_string()).await?;
    for other in db::subnets_of(&mut *tx, vpc).await? {
        if let Ok(o) = Cidr::parse("cidr", &other.cidr) {
            if o.overlaps(cidr) {
                return Err(Error::validation(
                    "cidr",
                    t!("子网 {} 与同一网络中的子网 {}（{}）重叠" ; "subnet {} overlaps subnet {} ({}) of the same VPC", cidr, other.name, other.cidr),
                )
                .with_details(json!({ "field": "cidr", "reason": "overlap", "subnet_id": other.id })));
            }
        }
    }
    db::insert_subnet(&mut tx, &sn, cidr).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "create_subnet",
        "subnet",
        &sn.id.to_string(),
        json!({ "vpc_id": vpc, "name": sn.name, "cidr": sn.cidr }),
    )
    .await?;
    Ok(sn)
}

pub async fn delete_subnet(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: SubnetId,
) -> Result<(), Error> {
    let sn = db::get_subnet(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("subnet", id))?;
    load_vpc(s, actor, sn.vpc_id, true).await?;
    let mut tx = s.store.begin_write_for(&sn.vpc_id.to_string()).await?;
    if !db::delete_subnet(&mut tx, id).await? {
        return Err(Error::conflict(t!(
            "子网 {} 仍有网卡在使用，请先删除这些网卡" ;
            "subnet {} still has NICs; remove them first", sn.name
        ))
        .with_details(json!({ "reason": "in_use" })));
    }
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "delete_subnet",
        "subnet",
        &id.to_string(),
        json!({ "name": sn.name, "cidr": sn.cidr }),
    )
    .await
}

// ---- NICs ------------------------------------------------------------------------------

async fn load_instance(
    s: &AppState,
    actor: &Actor,
    id: InstanceId,
    write: bool,
) -> Result<zy_model::compute::Instance, Error> {
    let i = zy_store::instances::get(s.store.pool(), id)
        .await?
        .map(|r| r.instance)
        .filter(|i| i.state != InstanceState::Deleted)
        .ok_or_else(|| Error::not_found("instance", id))?;
    may(actor, i.department_id, Some(i.project_id), write)?;
    Ok(i)
}

pub async fn list_nics(
    s: &AppState,
    actor: &Actor,
    instance: InstanceId,
) -> Result<Vec<Nic>, Error> {
    load_instance(s, actor, instance, false).await?;
    db::nics_of_instance(&s.store, instance).await
}

/// The groups named for a NIC or a rule exist and belong to `project`; else a 422 naming
/// the field.
async fn check_groups(
    tx: &mut zy_store::Tx,
    project: ProjectId,
    field: &str,
    ids: &[SecurityGroupId],
) -> Result<(), Error> {
    let found = db::group_projects(tx, ids).await?;
    for (i, g) in ids.iter().enumerate() {
        if found.get(g) != Some(&project) {
            return Err(Error::validation(
                &format!("{field}[{i}]"),
                t!("安全组 {} 不存在或不属于本项目" ; "security group {} does not exist or is not of this project", g),
            ));
        }
    }
    Ok(())
}

/// A NIC asked for when instances are created (`nics[i]` of the create body).
#[derive(Debug, Clone)]
pub struct NicRequest {
    pub subnet_id: SubnetId,
    pub ip: Option<String>,
    pub security_group_ids: Vec<SecurityGroupId>,
}

/// At most this many NICs are asked for at creation (more by hot-plug later).
pub const MAX_CREATE_NICS: usize = 8;

/// Checks the NICs asked for at creation before anything is written: each subnet exists in
/// a VPC the project may use (its own or its department's shared one), a fixed address
/// only for a single instance, at most five groups each. Returns the subnets in order.
pub(crate) async fn check_create_nics(
    store: &Store,
    project: &zy_model::tenancy::Project,
    count: u32,
    nics: &[NicRequest],
) -> Result<Vec<Subnet>, Error> {
    if nics.len() > MAX_CREATE_NICS {
        return Err(Error::validation(
            "nics",
            t!("创建时最多指定 {} 块网卡" ; "at most {} NICs at creation", MAX_CREATE_NICS),
        ));
    }
    let mut out = Vec::with_capacity(nics.len());
    for (i, n) in nics.iter().enumerate() {
        let sn = db::get_subnet(store.pool(), n.subnet_id)
            .await?
            .ok_or_else(|| {
                Error::validation(
                    &format!("nics[{i}].subnet_id"),
                    t!("子网 {} 不存在" ; "subnet {} does not exist", n.subnet_id),
                )
            })?;
        let vpc = db::get_vpc(store.pool(), sn.vpc_id)
            .await?
            .ok_or_else(|| Error::not_found("vpc", sn.vpc_id))?;
        if vpc.department_id != project.department_id
            || vpc.project_id.is_some_and(|p| p != project.id)
        {
            return Err(Error::validation(
                &format!("nics[{i}].subnet_id"),
                t!(
                    "该子网所在的网络不属于本项目或本部门",
                    "the subnet's VPC belongs neither to this project nor its department"
                ),
            ));
        }
        if n.ip.is_some() && count > 1 {
            return Err(Error::validation(
                &format!("nics[{i}].ip"),
                t!(
                    "一次创建多台时不能指定固定地址",
                    "a fixed address is only for creating a single instance"
                ),
            ));
        }
        if n.security_group_ids.len() > 5 {
            return Err(Error::validation(
                &format!("nics[{i}].security_group_ids"),
                t!(
                    "一块网卡最多加入 5 个安全组",
                    "a NIC joins at most 5 security groups"
                ),
            ));
        }
        out.push(sn);
    }
    Ok(out)
}

/// Inserts the NICs asked for at creation for a new instance, in its create transaction:
/// addresses from the platform's IPAM ([`allocate_address`]), groups of the project.
pub(crate) async fn insert_create_nics(
    tx: &mut zy_store::Tx,
    instance: InstanceId,
    project: &zy_model::tenancy::Project,
    subnets: &[Subnet],
    nics: &[NicRequest],
) -> Result<(), Error> {
    for (i, (sn, n)) in subnets.iter().zip(nics).enumerate() {
        let addr = allocate_address(tx, sn, &format!("nics[{i}].ip"), n.ip.as_deref()).await?;
        let groups: Vec<SecurityGroupId> = n
            .security_group_ids
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        check_groups(
            tx,
            project.id,
            &format!("nics[{i}].security_group_ids"),
            &groups,
        )
        .await?;
        let id = NicId::new();
        let nic = Nic {
            id,
            instance_id: instance,
            subnet_id: sn.id,
            vpc_id: sn.vpc_id,
            department_id: project.department_id,
            project_id: project.id,
            index: i as i64,
            mac: mac_for(id),
            ip: ip_text(addr),
            security_group_ids: groups,
            created_at: Timestamp::now(),
        };
        db::insert_nic(tx, &nic, addr).await?;
    }
    Ok(())
}

/// Puts a NIC on `subnet` for an instance: a fixed address when asked (it must be a free
/// host address of the subnet, not the gateway) or the next free one.
pub async fn create_nic(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    instance: InstanceId,
    subnet: SubnetId,
    ip: Option<&str>,
    groups: Vec<SecurityGroupId>,
) -> Result<Nic, Error> {
    let inst = load_instance(s, actor, instance, true).await?;
    let sn = db::get_subnet(s.store.pool(), subnet)
        .await?
        .ok_or_else(|| {
            Error::validation(
                "subnet_id",
                t!("子网 {} 不存在" ; "subnet {} does not exist", subnet),
            )
        })?;
    let vpc = db::get_vpc(s.store.pool(), sn.vpc_id)
        .await?
        .ok_or_else(|| Error::not_found("vpc", sn.vpc_id))?;
    let usable = vpc.department_id == inst.department_id
        && vpc.project_id.is_none_or(|p| p == inst.project_id);
    if !usable {
        return Err(Error::validation(
            "subnet_id",
            t!(
                "该子网所在的网络不属于云主机的项目或部门",
                "the subnet's VPC belongs neither to the instance's project nor its department"
            ),
        ));
    }
    if groups.len() > 5 {
        return Err(Error::validation(
            "security_group_ids",
            t!(
                "一块网卡最多加入 5 个安全组",
                "a NIC joins at most 5 security groups"
            ),
        ));
    }
    let groups: Vec<SecurityGroupId> = groups
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut tx = s.store.begin_write_for(&instance.to_string()).await?;
    let addr = allocate_address(&mut tx, &sn, "ip", ip).await?;
    check_groups(&mut tx, inst.project_id, "security_group_ids", &groups).await?;
    let id = NicId::new();
    let n = Nic {
        id,
        instance_id: instance,
        subnet_id: subnet,
        vpc_id: sn.vpc_id,
        department_id: inst.department_id,
        project_id: inst.project_id,
        index: db::next_index(&mut tx, instance).await?,
        mac: mac_for(id),
        ip: ip_text(addr),
        security_group_ids: groups,
        created_at: Timestamp::now(),
    };
    db::insert_nic(&mut tx, &n, addr).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "create_nic",
        "nic",
        &id.to_string(),
        json!({ "instance_id": instance, "subnet_id": subnet, "ip": n.ip, "mac": n.mac }),
    )
    .await?;
    Ok(n)
}

/// An address of subnet `sn` for a new NIC or virtual IP, in the transaction that inserts
/// it: `requested` (named `field` in errors) when it is a free host address of the subnet
/// other than the gateway, else the lowest free one. The unique `(subnet, address)` still
/// decides between concurrent allocations.
pub(crate) async fn allocate_address(
    tx: &mut zy_store::Tx,
    sn: &Subnet,
    field: &str,
    requested: Option<&str>,
) -> Result<u32, Error> {
    let cidr = Cidr::parse("cidr", &sn.cidr)?;
    let gateway = parse_ip("gateway", &sn.gateway)?;
    let fixed = requested.map(|a| parse_ip(field, a)).transpose()?;
    if let Some(a) = fixed {
        if !cidr.is_host(a) || a == gateway {
            return Err(Error::validation(
                field,
                t!("地址 {} 不是子网 {} 中可分配的地址" ; "{} is not an assignable address of subnet {}", ip_text(a), cidr),
            ));
        }
    }
    let taken = db::taken_addresses(tx, sn.id).await?;
    match fixed {
        Some(a) if taken.contains(&a) => Err(Error::conflict(
            t!("地址 {} 已被占用" ; "address {} is already in use", ip_text(a)),
        )
        .with_details(json!({ "field": field, "reason": "address_taken" }))),
        Some(a) => Ok(a),
        None => next_free(cidr, gateway, &taken).ok_or_else(|| {
            Error::conflict(
                t!("子网 {} 的地址已分配完" ; "subnet {} has no free address left", sn.name),
            )
            .with_details(json!({ "reason": "subnet_full" }))
        }),
    }
}

async fn load_nic(s: &AppState, actor: &Actor, id: NicId) -> Result<Nic, Error> {
    let n = db::get_nic(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("nic", id))?;
    may(actor, n.department_id, Some(n.project_id), true)?;
    Ok(n)
}

pub async fn delete_nic(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: NicId,
) -> Result<(), Error> {
    let n = load_nic(s, actor, id).await?;
    let mut tx = s.store.begin_write_for(&n.instance_id.to_string()).await?;
    db::delete_nic(&mut tx, id).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "delete_nic",
        "nic",
        &id.to_string(),
        json!({ "instance_id": n.instance_id, "ip": n.ip }),
    )
    .await
}

pub async fn set_nic_groups(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: NicId,
    groups: Vec<SecurityGroupId>,
) -> Result<Nic, Error> {
    let n = load_nic(s, actor, id).await?;
    if groups.len() > 5 {
        return Err(Error::validation(
            "security_group_ids",
            t!(
                "一块网卡最多加入 5 个安全组",
                "a NIC joins at most 5 security groups"
            ),
        ));
    }
    let groups: Vec<SecurityGroupId> = groups
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut tx = s.store.begin_write_for(&n.instance_id.to_string()).await?;
    check_groups(&mut tx, n.project_id, "security_group_ids", &groups).await?;
    db::set_nic_groups(&mut tx, id, &groups).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "set_nic_security_groups",
        "nic",
        &id.to_string(),
        json!({ "security_group_ids": groups }),
    )
    .await?;
    Ok(Nic {
        security_group_ids: groups,
        ..n
    })
}

// ---- Security groups -------------------------------------------------------------------

pub async fn list_groups(
    s: &AppState,
    actor: &Actor,
    project_id: Option<ProjectId>,
) -> Result<Vec<SecurityGroup>, Error> {
    let vis = visibility(actor)?;
    let (d, p) = match &vis {
        Some((d, p)) => (Some(d.as_slice()), Some(p.as_slice())),
        None => (None, None),
    };
    db::list_groups(&s.store, d, p, project_id).await
}

/// Remote groups named by rules exist and belong to `project` (the group itself counts).
async fn check_remote_groups(
    tx: &mut zy_store::Tx,
    project: ProjectId,
    own: SecurityGroupId,
    rules: &[SecurityRule],
) -> Result<(), Error> {
    let ids: Vec<SecurityGroupId> = rules
        .iter()
        .filter_map(|r| r.remote_group_id)
        .filter(|g| *g != own)
        .collect();
    let found = db::group_projects(tx, &ids).await?;
    for (i, r) in rules.iter().enumerate() {
        if let Some(g) = r.remote_group_id {
            if g != own && found.get(&g) != Some(&project) {
                return Err(Error::validation(
                    &format!("rules[{i}].remote_group_id"),
                    t!("远端安全组 {} 不存在或不属于本项目" ; "remote group {} does not exist or is not of this project", g),
                ));
            }
        }
    }
    Ok(())
}

pub async fn create_group(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    project_id: ProjectId,
    name: &str,
    description: &str,
    rules: Option<Vec<SecurityRule>>,
) -> Result<SecurityGroup, Error> {
    let pr = project(s, project_id).await?;
    authorize(
        &actor.principal,
        Action::NetworkOperate(pr.department_id, Some(pr.id)),
    )?;
    let rules = validate_rules(rules.unwrap_or_else(default_rules))?;
    let now = Timestamp::now();
    let g = SecurityGroup {
        id: SecurityGroupId::new(),
        department_id: pr.department_id,
        project_id: pr.id,
        name: validate::name("name", name)?,
        description: validate::description("description", description)?,
        rules,
        created_at: now,
        updated_at: now,
        generation: 1,
    };
    let mut tx = s.store.begin_write().await?;
    check_remote_groups(&mut tx, pr.id, g.id, &g.rules).await?;
    db::insert_group(&mut tx, &g).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "create_security_group",
        "security_group",
        &g.id.to_string(),
        json!({ "name": g.name, "project_id": pr.id, "rules": g.rules.len() }),
    )
    .await?;
    Ok(g)
}

async fn load_group(
    s: &AppState,
    actor: &Actor,
    id: SecurityGroupId,
    write: bool,
) -> Result<SecurityGroup, Error> {
    let g = db::get_group(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("security_group", id))?;
    may(actor, g.department_id, Some(g.project_id), write)?;
    Ok(g)
}

pub async fn get_group(
    s: &AppState,
    actor: &Actor,
    id: SecurityGroupId,
) -> Result<SecurityGroup, Error> {
    load_group(s, actor, id, false).await
}

/// Replaces a group's rules when it still has `generation` (409 `changed_meanwhile`
/// otherwise).
pub async fn set_rules(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: SecurityGroupId,
    generation: i64,
    rules: Vec<SecurityRule>,
) -> Result<SecurityGroup, Error> {
    let g = load_group(s, actor, id, true).await?;
    let rules = validate_rules(rules)?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    check_remote_groups(&mut tx, g.project_id, id, &rules).await?;
    if !db::replace_rules(&mut tx, id, generation, &rules).await? {
        return Err(changed_meanwhile());
    }
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "set_security_group_rules",
        "security_group",
        &id.to_string(),
        json!({ "rules": rules, "generation": generation + 1 }),
    )
    .await?;
    load_group(s, actor, id, false).await
}

/// Commits an audited change of the networks and wakes the push of the hosts' network
/// state (`network_push`), so the change reaches the hosts within a second.
#[allow(clippy::too_many_arguments)]
async fn commit_net(
    s: &AppState,
    tx: zy_store::Tx,
    ctx: &RequestContext,
    actor: Option<&Actor>,
    action: &str,
    kind: &str,
    id: &str,
    details: serde_json::Value,
) -> Result<(), Error> {
    commit_audited(tx, ctx, actor, action, kind, id, details).await?;
    s.compute.net_wake.notify_one();
    Ok(())
}

fn changed_meanwhile() -> Error {
    Error::conflict(t!(
        "对象已被他人修改，请刷新后重试",
        "it was changed meanwhile; reload and try again"
    ))
    .with_details(json!({ "reason": "changed_meanwhile" }))
}

pub async fn delete_group(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: SecurityGroupId,
) -> Result<(), Error> {
    let g = load_group(s, actor, id, true).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let (nics, refs) = db::group_uses(&mut tx, id).await?;
    if nics > 0 || refs > 0 {
        return Err(Error::conflict(t!(
            "安全组 {} 仍被 {} 块网卡使用、被 {} 条其他安全组规则引用" ;
            "security group {} is still used by {} NICs and named by {} rules of other groups",
            g.name, nics, refs
        ))
        .with_details(json!({ "reason": "in_use", "nics": nics, "rules": refs })));
    }
    db::delete_group(&mut tx, id).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "delete_security_group",
        "security_group",
        &id.to_string(),
        json!({ "name": g.name }),
    )
    .await
}

// ---- External networks and elastic IPs --------------------------------------------------

pub async fn list_external(s: &AppState, actor: &Actor) -> Result<Vec<ExternalNetwork>, Error> {
    // Everyone who works with resources chooses an external network for elastic IPs.
    authorize(&actor.principal, Action::CatalogueRead)?;
    db::list_external(&s.store).await
}

pub struct NewExternal<'a> {
    pub zone: ZoneId,
    pub name: &'a str,
    pub cidr: &'a str,
    pub gateway: Option<&'a str>,
    pub host_interface: &'a str,
}

pub async fn create_external(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewExternal<'_>,
) -> Result<ExternalNetwork, Error> {
    let NewExternal {
        zone,
        name,
        cidr,
        gateway,
        host_interface,
    } = b;
    authorize(&actor.principal, Action::InventoryManage)?;
    zy_store::inventory::zones(&s.store)
        .await?
        .into_iter()
        .find(|z| z.id == zone)
        .ok_or_else(|| {
            Error::validation(
                "zone_id",
                t!("可用区 {} 不存在" ; "zone {} does not exist", zone),
            )
        })?;
    let c = Cidr::parse_subnet("cidr", cidr)?;
    let gw = match gateway {
        Some(g) => parse_ip("gateway", g)?,
        None => c.default_gateway(),
    };
    if !c.is_host(gw) {
        return Err(Error::validation(
            "gateway",
            t!("网关 {} 不在 {} 的可用地址内" ; "gateway {} is not a host address of {}", ip_text(gw), c),
        ));
    }
    let iface = host_interface.trim();
    let ok = !iface.is_empty()
        && iface.len() <= 15
        && iface
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok {
        return Err(Error::validation(
            "host_interface",
            t!(
                "宿主机网络接口名须为 1 到 15 个字母、数字、“-”、“_”或“.”",
                "host_interface must be 1 to 15 letters, digits, '-', '_' or '.'"
            ),
        ));
    }
    let x = ExternalNetwork {
        id: ExternalNetworkId::new(),
        zone_id: zone,
        name: validate::name("name", name)?,
        cidr: c.to_string(),
        gateway: ip_text(gw),
        host_interface: iface.to_string(),
        created_at: Timestamp::now(),
    };
    let mut tx = s.store.begin_write().await?;
    db::insert_external(&mut tx, &x, c).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "create_external_network",
        "external_network",
        &x.id.to_string(),
        json!({ "name": x.name, "cidr": x.cidr, "zone_id": zone }),
    )
    .await?;
    Ok(x)
}

pub async fn list_eips(
    s: &AppState,
    actor: &Actor,
    project_id: Option<ProjectId>,
) -> Result<Vec<ElasticIp>, Error> {
    let vis = visibility(actor)?;
    let (d, p) = match &vis {
        Some((d, p)) => (Some(d.as_slice()), Some(p.as_slice())),
        None => (None, None),
    };
    db::list_eips(&s.store, d, p, project_id).await
}

/// Allocates the next free address of an external network to a project.
/// Every IPv4 address the hosts' agents report as their own (last heartbeat).
async fn host_addresses(store: &Store) -> Result<BTreeSet<u32>, Error> {
    #[derive(serde::Deserialize)]
    struct Report {
        #[serde(default)]
        addresses: Vec<String>,
    }
    Ok(zy_store::agents::agents(store)
        .await?
        .iter()
        .filter_map(|a| serde_json::from_str::<Report>(&a.report).ok())
        .flat_map(|r| r.addresses)
        .filter_map(|a| a.parse::<Ipv4Addr>().ok().map(u32::from))
        .collect())
}

pub async fn allocate_eip(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    project_id: ProjectId,
    external: ExternalNetworkId,
) -> Result<ElasticIp, Error> {
    let pr = project(s, project_id).await?;
    authorize(
        &actor.principal,
        Action::NetworkOperate(pr.department_id, Some(pr.id)),
    )?;
    // The hosts' own addresses (their agents report them) are never handed out.
    let hosts = host_addresses(&s.store).await?;
    let mut tx = s.store.begin_write_for(&external.to_string()).await?;
    let x = db::get_external(&mut tx, external).await?.ok_or_else(|| {
        Error::validation(
            "external_network_id",
            t!("外部网络 {} 不存在" ; "external network {} does not exist", external),
        )
    })?;
    let c = Cidr::parse("cidr", &x.cidr)?;
    let gw = parse_ip("gateway", &x.gateway)?;
    let mut taken = db::taken_eips(&mut tx, external).await?;
    taken.extend(hosts.into_iter().filter(|a| c.contains(*a)));
    let ip = next_free(c, gw, &taken).ok_or_else(|| {
        Error::conflict(t!("外部网络 {} 的地址已分配完" ; "external network {} has no free address left", x.name))
            .with_details(json!({ "reason": "network_full" }))
    })?;
    let e = ElasticIp {
        id: ElasticIpId::new(),
        external_network_id: external,
        department_id: pr.department_id,
        project_id: pr.id,
        address: ip_text(ip),
        nic_id: None,
        instance_id: None,
        host_id: None,
        host_name: None,
        created_at: Timestamp::now(),
        generation: 1,
    };
    db::insert_eip(&mut tx, &e, ip).await?;
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "allocate_elastic_ip",
        "elastic_ip",
        &e.id.to_string(),
        json!({ "address": e.address, "project_id": pr.id }),
    )
    .await?;
    Ok(e)
}

async fn load_eip(s: &AppState, actor: &Actor, id: ElasticIpId) -> Result<ElasticIp, Error> {
    let e = db::get_eip(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("elastic_ip", id))?;
    may(actor, e.department_id, Some(e.project_id), true)?;
    Ok(e)
}

/// Binds an elastic IP to a NIC of the same project (1:1 NAT on the instance's host).
pub async fn bind_eip(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ElasticIpId,
    nic: NicId,
) -> Result<ElasticIp, Error> {
    let e = load_eip(s, actor, id).await?;
    let n = db::get_nic(s.store.pool(), nic).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if n.as_ref().is_none_or(|n| n.project_id != e.project_id) {
        return Err(Error::validation(
            "nic_id",
            t!("网卡 {} 不存在或不属于该弹性IP的项目" ; "NIC {} does not exist or is not of the elastic IP's project", nic),
        ));
    }
    if e.nic_id.is_some() {
        return Err(Error::conflict(t!(
            "弹性IP {} 已绑定，请先解绑" ;
            "elastic IP {} is already bound; unbind it first", e.address
        ))
        .with_details(json!({ "reason": "bound" })));
    }
    if !db::set_eip_nic(&mut tx, id, e.generation, Some(nic)).await? {
        return Err(changed_meanwhile());
    }
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "bind_elastic_ip",
        "elastic_ip",
        &id.to_string(),
        json!({ "address": e.address, "nic_id": nic }),
    )
    .await?;
    // Read again: where the binding is applied (the NIC's instance and its host).
    db::get_eip(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("elastic_ip", id))
}

pub async fn unbind_eip(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ElasticIpId,
) -> Result<ElasticIp, Error> {
    let e = load_eip(s, actor, id).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if e.nic_id.is_some() && !db::set_eip_nic(&mut tx, id, e.generation, None).await? {
        return Err(changed_meanwhile());
    }
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "unbind_elastic_ip",
        "elastic_ip",
        &id.to_string(),
        json!({ "address": e.address, "nic_id": e.nic_id }),
    )
    .await?;
    let generation = e.generation + i64::from(e.nic_id.is_some());
    Ok(ElasticIp {
        nic_id: None,
        instance_id: None,
        host_id: None,
        host_name: None,
        generation,
        ..e
    })
}

pub async fn release_eip(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ElasticIpId,
) -> Result<(), Error> {
    let e = load_eip(s, actor, id).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if !db::delete_eip(&mut tx, id).await? {
        return Err(Error::conflict(t!(
            "弹性IP {} 仍绑定在网卡上，请先解绑" ;
            "elastic IP {} is still bound; unbind it first", e.address
        ))
        .with_details(json!({ "reason": "bound" })));
    }
    commit_net(
        s,
        tx,
        ctx,
        Some(actor),
        "release_elastic_ip",
        "elastic_ip",
        &id.to_string(),
        json!({ "address": e.address }),
    )
    .await
}

// ---- Seams -----------------------------------------------------------------------------

/// Who holds an IPv4 address (the seam for security events and vulnerability tracking):
/// a bound elastic IP first, else the one NIC with that address; `None` when nobody or
/// when a private address is used in several VPCs (overlap across VPCs is allowed).
pub async fn owner_of_address(store: &Store, ip: Ipv4Addr) -> Result<Option<AddressOwner>, Error> {
    db::owner_of_address(store.pool(), u32::from(ip)).await
}

/// The nftables rule set a host must enforce now (what the agent is sent): every NIC of
/// the instances placed on it with its groups' rules, and the member sets of the groups
/// those rules name.
pub async fn host_ruleset(store: &Store, host: HostId) -> Result<String, Error> {
    Ok(nft::render(&db::host_firewall(store, host).await?))
}

// ---- Demo data -------------------------------------------------------------------------

/// A project's demo network: a VPC with a web and a database subnet, a `web` group open
/// on 80/443 and to ping, and a `db` group open on 3306 to the web group's members only.
pub(crate) async fn demo(
    tx: &mut zy_store::Tx,
    d: DepartmentId,
    p: ProjectId,
) -> Result<(), Error> {
    let now = Timestamp::now();
    let mut v = Vpc {
        id: VpcId::new(),
        department_id: d,
        project_id: Some(p),
        name: "业务网".into(),
        description: "演示数据 / demo data".into(),
        vni: 0,
        outbound: true,
        created_at: now,
        generation: 1,
    };
    db::insert_vpc(tx, &mut v).await?;
    let mut web_subnet = None;
    for (name, cidr) in [("web", "10.10.1.0/24"), ("db", "10.10.2.0/24")] {
        let c = Cidr::parse("cidr", cidr)?;
        let sn = Subnet {
            id: SubnetId::new(),
            vpc_id: v.id,
            name: name.into(),
            cidr: c.to_string(),
            gateway: ip_text(c.default_gateway()),
            dns_servers: vec!["10.10.0.2".into()],
            dhcp: true,
            created_at: now,
        };
        db::insert_subnet(tx, &sn, c).await?;
        if web_subnet.is_none() {
            web_subnet = Some(sn);
        }
    }
    if let Some(sn) = &web_subnet {
        super::load_balancers::demo(tx, &v, p, sn).await?;
    }
    let rule = |protocol, port: Option<u16>, remote_group_id| SecurityRule {
        direction: Direction::Ingress,
        protocol,
        port_min: port,
        port_max: port,
        remote_cidr: None,
        remote_group_id,
        description: String::new(),
    };
    let group = |name: &str, rules: Vec<SecurityRule>| SecurityGroup {
        id: SecurityGroupId::new(),
        department_id: d,
        project_id: p,
        name: name.into(),
        description: "演示数据 / demo data".into(),
        rules: default_rules().into_iter().chain(rules).collect(),
        created_at: now,
        updated_at: now,
        generation: 1,
    };
    let web = group(
        "web",
        vec![
            rule(Protocol::Tcp, Some(80), None),
            rule(Protocol::Tcp, Some(443), None),
            rule(Protocol::Icmp, None, None),
        ],
    );
    let dbg = group("db", vec![rule(Protocol::Tcp, Some(3306), Some(web.id))]);
    db::insert_group(tx, &web).await?;
    db::insert_group(tx, &dbg).await
}
