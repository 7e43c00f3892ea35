//! Virtual networks: VPCs, subnets, NICs with their addresses (the platform's IPAM:
//! `(subnet, address)` is unique, so an address is decided by the database), security groups
//! with their rules and members, external networks and elastic IPs; and the reads the data
//! plane and other capabilities need (a host's firewall, who owns an address).

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use sqlx::{Any, Executor, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use zy_model::id::*;
use zy_model::network::nft::{HostFirewall, NicFirewall};
use zy_model::network::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};

const VPC_COLS: &str =
    "id, department_id, project_id, name, description, vni, created_at, generation, outbound";
const SUBNET_COLS: &str =
    "id, vpc_id, name, cidr, gateway, dns_servers, dhcp, created_at, net_first, net_last";
const NIC_COLS: &str = "id, instance_id, subnet_id, vpc_id, department_id, project_id, idx, mac, ip, ip_num, created_at";
const SG_COLS: &str =
    "id, department_id, project_id, name, description, created_at, updated_at, generation";
const EXT_COLS: &str =
    "id, zone_id, name, cidr, gateway, host_interface, created_at, net_first, net_last";
const EIP_COLS: &str =
    "id, external_network_id, department_id, project_id, address, nic_id, created_at, generation";
/// An elastic IP with where its binding is applied (its NIC's instance and that
/// instance's host, or the host of the load balancer whose VIP it is).
const EIP_SELECT: &str = "SELECT * FROM (SELECT x.id, x.external_network_id, \
     x.department_id, x.project_id, x.address, x.ip_num, x.nic_id, x.created_at, x.generation, \
     CASE WHEN b.id IS NULL THEN n.instance_id END AS bound_instance, \
     h.id AS bound_host, h.name AS bound_host_name \
     FROM elastic_ips x LEFT JOIN nics n ON n.id = x.nic_id \
     LEFT JOIN load_balancers b ON b.vip_nic_id = n.id \
     LEFT JOIN instances i ON i.id = n.instance_id AND i.state <> 'deleted' \
     LEFT JOIN hosts h ON h.id = COALESCE(b.host_id, i.host_id)) e";

impl Decode for Vpc {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Vpc {
            id: id(r, "id")?,
            department_id: id(r, "department_id")?,
            project_id: opt_id(r, "project_id")?,
            name: text(r, "name")?,
            description: text(r, "description")?,
            vni: int(r, "vni")?,
            outbound: int(r, "outbound")? != 0,
            created_at: ts(r, "created_at")?,
            generation: int(r, "generation")?,
        })
    }
}

impl Decode for Subnet {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let dns = text(r, "dns_servers")?;
        Ok(Subnet {
            id: id(r, "id")?,
            vpc_id: id(r, "vpc_id")?,
            name: text(r, "name")?,
            cidr: text(r, "cidr")?,
            gateway: text(r, "gateway")?,
            dns_servers: dns
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            dhcp: int(r, "dhcp")? != 0,
            created_at: ts(r, "created_at")?,
        })
    }
}

impl Decode for Nic {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Nic {
            id: id(r, "id")?,
            instance_id: id(r, "instance_id")?,
            subnet_id: id(r, "subnet_id")?,
            vpc_id: id(r, "vpc_id")?,
            department_id: id(r, "department_id")?,
            project_id: id(r, "project_id")?,
            index: int(r, "idx")?,
            mac: text(r, "mac")?,
            ip: text(r, "ip")?,
            security_group_ids: Vec::new(),
            created_at: ts(r, "created_at")?,
        })
    }
}

impl Decode for SecurityGroup {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(SecurityGroup {
            id: id(r, "id")?,
            department_id: id(r, "department_id")?,
            project_id: id(r, "project_id")?,
            name: text(r, "name")?,
            description: text(r, "description")?,
            rules: Vec::new(),
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
            generation: int(r, "generation")?,
        })
    }
}

impl Decode for ExternalNetwork {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(ExternalNetwork {
            id: id(r, "id")?,
            zone_id: id(r, "zone_id")?,
            name: text(r, "name")?,
            cidr: text(r, "cidr")?,
            gateway: text(r, "gateway")?,
            host_interface: text(r, "host_interface")?,
            created_at: ts(r, "created_at")?,
        })
    }
}

impl Decode for ElasticIp {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(ElasticIp {
            id: id(r, "id")?,
            external_network_id: id(r, "external_network_id")?,
            department_id: id(r, "department_id")?,
            project_id: id(r, "project_id")?,
            address: text(r, "address")?,
            nic_id: opt_id(r, "nic_id")?,
            instance_id: opt_id(r, "bound_instance")?,
            host_id: opt_id(r, "bound_host")?,
            host_name: opt_text(r, "bound_host_name")?,
            created_at: ts(r, "created_at")?,
            generation: int(r, "generation")?,
        })
    }
}

fn decode_all<T: Decode>(rows: &[sqlx::any::AnyRow]) -> Result<Vec<T>, Error> {
    rows.iter().map(T::decode).collect()
}

// ---- VPCs ------------------------------------------------------------------------------

/// Inserts a VPC with the next free VXLAN number (from 4096 up to [`MAX_VPC_VNI`]); the number's unique
/// constraint settles a concurrent insert (409, retried by the caller).
pub async fn insert_vpc(tx: &mut Tx, v: &mut Vpc) -> Result<(), Error> {
    let vni: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(vni), 4095) + 1 FROM vpcs")
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    if vni > MAX_VPC_VNI {
        return Err(Error::conflict(t!(
            "VXLAN 编号已用尽（最大 {}），无法再创建私有网络" ;
            "no VXLAN number is left for a new VPC (the largest is {})",
            MAX_VPC_VNI
        )));
    }
    v.vni = vni;
    sqlx::query(&format!(
        "INSERT INTO vpcs ({VPC_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)"
    ))
    .bind(v.id.to_string())
    .bind(v.department_id.to_string())
    .bind(v.project_id.map(|p| p.to_string()))
    .bind(&v.name)
    .bind(&v.description)
    .bind(vni)
    .bind(v.created_at.0)
    .bind(i64::from(v.outbound))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Sets a VPC's outbound access, conditional on its generation (which it advances):
/// false when the VPC changed meanwhile (or is gone).
pub async fn set_vpc_outbound(
    tx: &mut Tx,
    id: VpcId,
    generation: i64,
    outbound: bool,
) -> Result<bool, Error> {
    let r = sqlx::query(
        "UPDATE vpcs SET outbound = $1, generation = generation + 1 \
         WHERE id = $2 AND generation = $3",
    )
    .bind(i64::from(outbound))
    .bind(id.to_string())
    .bind(generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(r.rows_affected() == 1)
}

pub async fn get_vpc<'c>(
    e: impl Executor<'c, Database = Any>,
    id: VpcId,
) -> Result<Option<Vpc>, Error> {
    let r = sqlx::query(&format!("SELECT {VPC_COLS} FROM vpcs WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(Vpc::decode).transpose()
}

/// VPCs visible to a caller (`None`: all), optionally of one project (with the
/// department's shared ones).
pub async fn list_vpcs(
    store: &Store,
    departments: Option<&[DepartmentId]>,
    projects: Option<&[ProjectId]>,
    project: Option<(DepartmentId, ProjectId)>,
) -> Result<Vec<Vpc>, Error> {
    let mut sql = Sql::new(&format!("SELECT {VPC_COLS} FROM vpcs WHERE 1 = 1"));
    sql.push_visible("project_id", departments, projects);
    if let Some((d, p)) = project {
        sql.push(" AND (project_id = ")
            .bind_text(p.to_string())
            .push(" OR (project_id IS NULL AND department_id = ")
            .bind_text(d.to_string())
            .push("))");
    }
    sql.push(" ORDER BY name, id LIMIT 1000");
    sql.fetch_all(store).await
}

/// Deletes a VPC and its subnets when no NIC uses it; false when one does.
pub async fn delete_vpc(tx: &mut Tx, id: VpcId) -> Result<bool, Error> {
    let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nics WHERE vpc_id = $1")
        .bind(id.to_string())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    if used > 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM subnets WHERE vpc_id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    sqlx::query("DELETE FROM vpcs WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(true)
}

// ---- Subnets ---------------------------------------------------------------------------

pub async fn insert_subnet(tx: &mut Tx, s: &Subnet, cidr: Cidr) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO subnets ({SUBNET_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(s.id.to_string())
    .bind(s.vpc_id.to_string())
    .bind(&s.name)
    .bind(&s.cidr)
    .bind(&s.gateway)
    .bind(s.dns_servers.join(","))
    .bind(i64::from(s.dhcp))
    .bind(s.created_at.0)
    .bind(i64::from(cidr.first()))
    .bind(i64::from(cidr.last()))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn subnets_of<'c>(
    e: impl Executor<'c, Database = Any>,
    vpc: VpcId,
) -> Result<Vec<Subnet>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {SUBNET_COLS} FROM subnets WHERE vpc_id = $1 ORDER BY net_first, id"
    ))
    .bind(vpc.to_string())
    .fetch_all(e)
    .await
    .map_err(db_error)?;
    decode_all(&rows)
}

pub async fn get_subnet<'c>(
    e: impl Executor<'c, Database = Any>,
    id: SubnetId,
) -> Result<Option<Subnet>, Error> {
    let r = sqlx::query(&format!("SELECT {SUBNET_COLS} FROM subnets WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(Subnet::decode).transpose()
}

/// Deletes a subnet no NIC uses; false when one does.
pub async fn delete_subnet(tx: &mut Tx, id: SubnetId) -> Result<bool, Error> {
    let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nics WHERE subnet_id = $1")
        .bind(id.to_string())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    if used > 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM subnets WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(true)
}

// ---- NICs ------------------------------------------------------------------------------

/// The addresses taken on a subnet.
pub async fn taken_addresses(tx: &mut Tx, subnet: SubnetId) -> Result<BTreeSet<u32>, Error> {
    let v: Vec<i64> = sqlx::query_scalar("SELECT ip_num FROM nics WHERE subnet_id = $1")
        .bind(subnet.to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(v.into_iter().map(|n| n as u32).collect())
}

/// The next interface position on an instance.
pub async fn next_index(tx: &mut Tx, instance: InstanceId) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(idx), -1) + 1 FROM nics WHERE instance_id = $1")
        .bind(instance.to_string())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)
}

/// Inserts a NIC holding `ip` (the unique `(subnet, address)` refuses a taken one: 409).
pub async fn insert_nic(tx: &mut Tx, n: &Nic, ip: u32) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO nics ({NIC_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(n.id.to_string())
    .bind(n.instance_id.to_string())
    .bind(n.subnet_id.to_string())
    .bind(n.vpc_id.to_string())
    .bind(n.department_id.to_string())
    .bind(n.project_id.to_string())
    .bind(n.index)
    .bind(&n.mac)
    .bind(&n.ip)
    .bind(i64::from(ip))
    .bind(n.created_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    set_nic_groups(tx, n.id, &n.security_group_ids).await
}

/// Replaces the groups of a NIC.
pub async fn set_nic_groups(
    tx: &mut Tx,
    nic: NicId,
    groups: &[SecurityGroupId],
) -> Result<(), Error> {
    sqlx::query("DELETE FROM nic_security_groups WHERE nic_id = $1")
        .bind(nic.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    for g in groups {
        sqlx::query("INSERT INTO nic_security_groups (nic_id, group_id) VALUES ($1, $2)")
            .bind(nic.to_string())
            .bind(g.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// The groups of each NIC in `ids`.
async fn groups_of_nics<'c>(
    e: impl Executor<'c, Database = Any>,
    ids: &[NicId],
) -> Result<BTreeMap<NicId, Vec<SecurityGroupId>>, Error> {
    let mut out: BTreeMap<NicId, Vec<SecurityGroupId>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new("SELECT nic_id, group_id FROM nic_security_groups WHERE ");
    sql.push_in("nic_id", ids.iter().map(|n| n.to_string()))
        .push(" ORDER BY group_id");
    for r in e.fetch_all(sql.query()).await.map_err(db_error)? {
        out.entry(id(&r, "nic_id")?)
            .or_default()
            .push(id(&r, "group_id")?);
    }
    Ok(out)
}

async fn with_groups<'c>(
    e: impl Executor<'c, Database = Any>,
    mut nics: Vec<Nic>,
) -> Result<Vec<Nic>, Error> {
    let ids: Vec<NicId> = nics.iter().map(|n| n.id).collect();
    let mut groups = groups_of_nics(e, &ids).await?;
    for n in &mut nics {
        n.security_group_ids = groups.remove(&n.id).unwrap_or_default();
    }
    Ok(nics)
}

pub async fn nics_of_instance(store: &Store, instance: InstanceId) -> Result<Vec<Nic>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {NIC_COLS} FROM nics WHERE instance_id = $1 ORDER BY idx"
    ))
    .bind(instance.to_string())
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    with_groups(store.pool(), decode_all(&rows)?).await
}

pub async fn get_nic<'c, E>(e: E, id: NicId) -> Result<Option<Nic>, Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let r = sqlx::query(&format!("SELECT {NIC_COLS} FROM nics WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    let Some(n) = r.as_ref().map(Nic::decode).transpose()? else {
        return Ok(None);
    };
    Ok(with_groups(e, vec![n]).await?.pop())
}

/// Removes a NIC (its address and group memberships go with it; an elastic IP bound to it
/// is unbound).
pub async fn delete_nic(tx: &mut Tx, id: NicId) -> Result<bool, Error> {
    sqlx::query("DELETE FROM nic_security_groups WHERE nic_id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    sqlx::query(
        "UPDATE elastic_ips SET nic_id = NULL, generation = generation + 1 WHERE nic_id = $1",
    )
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let n = sqlx::query("DELETE FROM nics WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Frees every NIC of an instance being deleted (the addresses return to their subnets).
pub async fn release_instance_nics(tx: &mut Tx, instance: InstanceId) -> Result<u64, Error> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM nics WHERE instance_id = $1")
        .bind(instance.to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
    let mut n = 0;
    for i in ids {
        if delete_nic(tx, NicId::from_str(&i)?).await? {
            n += 1;
        }
    }
    Ok(n)
}

// ---- Security groups -------------------------------------------------------------------

async fn insert_rules(
    tx: &mut Tx,
    g: SecurityGroupId,
    rules: &[SecurityRule],
) -> Result<(), Error> {
    for (i, r) in rules.iter().enumerate() {
        sqlx::query("INSERT INTO security_rules (group_id, position, direction, protocol, port_min, port_max, remote_cidr, remote_group_id, description) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(g.to_string())
            .bind(i as i64)
            .bind(r.direction.as_str())
            .bind(r.protocol.as_str())
            .bind(r.port_min.map(i64::from))
            .bind(r.port_max.map(i64::from))
            .bind(r.remote_cidr.clone())
            .bind(r.remote_group_id.map(|g| g.to_string()))
            .bind(&r.description)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

pub async fn insert_group(tx: &mut Tx, g: &SecurityGroup) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO security_groups ({SG_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $6, 1)"
    ))
    .bind(g.id.to_string())
    .bind(g.department_id.to_string())
    .bind(g.project_id.to_string())
    .bind(&g.name)
    .bind(&g.description)
    .bind(g.created_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    insert_rules(tx, g.id, &g.rules).await
}

fn decode_rule(r: &sqlx::any::AnyRow) -> Result<(SecurityGroupId, SecurityRule), Error> {
    let bad = |c: &str| Error::internal(format!("security_rules: bad {c}"));
    let port = |c: &str| -> Result<Option<u16>, Error> {
        opt_int(r, c)?
            .map(|p| u16::try_from(p).map_err(|_| bad(c)))
            .transpose()
    };
    Ok((
        id(r, "group_id")?,
        SecurityRule {
            direction: Direction::parse(&text(r, "direction")?).ok_or_else(|| bad("direction"))?,
            protocol: Protocol::parse(&text(r, "protocol")?).ok_or_else(|| bad("protocol"))?,
            port_min: port("port_min")?,
            port_max: port("port_max")?,
            remote_cidr: opt_text(r, "remote_cidr")?,
            remote_group_id: opt_id(r, "remote_group_id")?,
            description: text(r, "description")?,
        },
    ))
}

async fn rules_of<'c>(
    e: impl Executor<'c, Database = Any>,
    groups: &[SecurityGroupId],
) -> Result<BTreeMap<SecurityGroupId, Vec<SecurityRule>>, Error> {
    let mut out: BTreeMap<SecurityGroupId, Vec<SecurityRule>> = BTreeMap::new();
    if groups.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new("SELECT group_id, direction, protocol, port_min, port_max, remote_cidr, remote_group_id, description FROM security_rules WHERE ");
    sql.push_in("group_id", groups.iter().map(|g| g.to_string()))
        .push(" ORDER BY group_id, position");
    for r in e.fetch_all(sql.query()).await.map_err(db_error)? {
        let (g, rule) = decode_rule(&r)?;
        out.entry(g).or_default().push(rule);
    }
    Ok(out)
}

pub async fn get_group<'c, E>(e: E, id: SecurityGroupId) -> Result<Option<SecurityGroup>, Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let r = sqlx::query(&format!(
        "SELECT {SG_COLS} FROM security_groups WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(e)
    .await
    .map_err(db_error)?;
    let Some(mut g) = r.as_ref().map(SecurityGroup::decode).transpose()? else {
        return Ok(None);
    };
    g.rules = rules_of(e, &[id]).await?.remove(&id).unwrap_or_default();
    Ok(Some(g))
}

/// The groups of `ids` that exist, with their project (to check they may be used).
pub async fn group_projects(
    tx: &mut Tx,
    ids: &[SecurityGroupId],
) -> Result<BTreeMap<SecurityGroupId, ProjectId>, Error> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new("SELECT id, project_id FROM security_groups WHERE ");
    sql.push_in("id", ids.iter().map(|g| g.to_string()));
    for r in (&mut **tx).fetch_all(sql.query()).await.map_err(db_error)? {
        out.insert(id(&r, "id")?, id(&r, "project_id")?);
    }
    Ok(out)
}

pub async fn list_groups(
    store: &Store,
    departments: Option<&[DepartmentId]>,
    projects: Option<&[ProjectId]>,
    project: Option<ProjectId>,
) -> Result<Vec<SecurityGroup>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {SG_COLS} FROM security_groups WHERE 1 = 1"
    ));
    sql.push_visible("project_id", departments, projects);
    if let Some(p) = project {
        sql.push(" AND project_id = ").bind_text(p.to_string());
    }
    sql.push(" ORDER BY name, id LIMIT 1000");
    let mut groups: Vec<SecurityGroup> = sql.fetch_all(store).await?;
    let ids: Vec<SecurityGroupId> = groups.iter().map(|g| g.id).collect();
    let mut rules = rules_of(store.pool(), &ids).await?;
    for g in &mut groups {
        g.rules = rules.remove(&g.id).unwrap_or_default();
    }
    Ok(groups)
}

/// Replaces a group's rules if it still has `generation`; false when it changed meanwhile.
pub async fn replace_rules(
    tx: &mut Tx,
    g: SecurityGroupId,
    generation: i64,
    rules: &[SecurityRule],
) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE security_groups SET generation = generation + 1, updated_at = $1 WHERE id = $2 AND generation = $3")
        .bind(Timestamp::now().0)
        .bind(g.to_string())
        .bind(generation)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM security_rules WHERE group_id = $1")
        .bind(g.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    insert_rules(tx, g, rules).await?;
    Ok(true)
}

/// How many NICs use a group and how many other groups' rules name it.
pub async fn group_uses(tx: &mut Tx, g: SecurityGroupId) -> Result<(i64, i64), Error> {
    let nics: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM nic_security_groups WHERE group_id = $1")
            .bind(g.to_string())
            .fetch_one(&mut **tx)
            .await
            .map_err(db_error)?;
    let refs: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM security_rules WHERE remote_group_id = $1 AND group_id <> $1",
    )
    .bind(g.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok((nics, refs))
}

pub async fn delete_group(tx: &mut Tx, g: SecurityGroupId) -> Result<(), Error> {
    for q in [
        "DELETE FROM security_rules WHERE group_id = $1",
        "DELETE FROM security_groups WHERE id = $1",
    ] {
        sqlx::query(q)
            .bind(g.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

// ---- External networks and elastic IPs --------------------------------------------------

pub async fn insert_external(tx: &mut Tx, x: &ExternalNetwork, cidr: Cidr) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO external_networks ({EXT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(x.id.to_string())
    .bind(x.zone_id.to_string())
    .bind(&x.name)
    .bind(&x.cidr)
    .bind(&x.gateway)
    .bind(&x.host_interface)
    .bind(x.created_at.0)
    .bind(i64::from(cidr.first()))
    .bind(i64::from(cidr.last()))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn list_external(store: &Store) -> Result<Vec<ExternalNetwork>, Error> {
    Sql::new(&format!(
        "SELECT {EXT_COLS} FROM external_networks ORDER BY name, id"
    ))
    .fetch_all(store)
    .await
}

pub async fn get_external(
    tx: &mut Tx,
    id: ExternalNetworkId,
) -> Result<Option<ExternalNetwork>, Error> {
    let r = sqlx::query(&format!(
        "SELECT {EXT_COLS} FROM external_networks WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    r.as_ref().map(ExternalNetwork::decode).transpose()
}

pub async fn taken_eips(tx: &mut Tx, ext: ExternalNetworkId) -> Result<BTreeSet<u32>, Error> {
    let v: Vec<i64> =
        sqlx::query_scalar("SELECT ip_num FROM elastic_ips WHERE external_network_id = $1")
            .bind(ext.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)?;
    Ok(v.into_iter().map(|n| n as u32).collect())
}

pub async fn insert_eip(tx: &mut Tx, e: &ElasticIp, ip: u32) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO elastic_ips ({EIP_COLS}, ip_num) VALUES ($1, $2, $3, $4, $5, NULL, $6, 1, $7)"
    ))
    .bind(e.id.to_string())
    .bind(e.external_network_id.to_string())
    .bind(e.department_id.to_string())
    .bind(e.project_id.to_string())
    .bind(&e.address)
    .bind(e.created_at.0)
    .bind(i64::from(ip))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_eip<'c>(
    e: impl Executor<'c, Database = Any>,
    id: ElasticIpId,
) -> Result<Option<ElasticIp>, Error> {
    let r = sqlx::query(&format!("{EIP_SELECT} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(ElasticIp::decode).transpose()
}

pub async fn list_eips(
    store: &Store,
    departments: Option<&[DepartmentId]>,
    projects: Option<&[ProjectId]>,
    project: Option<ProjectId>,
) -> Result<Vec<ElasticIp>, Error> {
    let mut sql = Sql::new(&format!("{EIP_SELECT} WHERE 1 = 1"));
    sql.push_visible("project_id", departments, projects);
    if let Some(p) = project {
        sql.push(" AND project_id = ").bind_text(p.to_string());
    }
    sql.push(" ORDER BY ip_num, id LIMIT 1000");
    sql.fetch_all(store).await
}

/// Binds (`Some`) or unbinds (`None`) an elastic IP if it still has `generation`; false when
/// it changed meanwhile.
pub async fn set_eip_nic(
    tx: &mut Tx,
    id: ElasticIpId,
    generation: i64,
    nic: Option<NicId>,
) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE elastic_ips SET nic_id = $1, generation = generation + 1 WHERE id = $2 AND generation = $3")
        .bind(nic.map(|n| n.to_string()))
        .bind(id.to_string())
        .bind(generation)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

pub async fn delete_eip(tx: &mut Tx, id: ElasticIpId) -> Result<bool, Error> {
    let n = sqlx::query("DELETE FROM elastic_ips WHERE id = $1 AND nic_id IS NULL")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

// ---- Reads for the data plane and other capabilities -----------------------------------

/// Who holds an IPv4 address: an elastic IP bound to a NIC first (platform-wide unique per
/// external network), else the one NIC with that private address. A private address used
/// in several VPCs (overlapping CIDRs are allowed) is ambiguous and gives `None`.
pub async fn owner_of_address<'c, E>(e: E, ip: u32) -> Result<Option<AddressOwner>, Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let q =
        "SELECT n.instance_id, n.project_id, n.department_id, i.provider_id FROM elastic_ips x \
             JOIN nics n ON n.id = x.nic_id LEFT JOIN instances i ON i.id = n.instance_id \
             WHERE x.ip_num = $1 LIMIT 2";
    let eips = sqlx::query(q)
        .bind(i64::from(ip))
        .fetch_all(e)
        .await
        .map_err(db_error)?;
    let owner = |r: &sqlx::any::AnyRow, via: &str| -> Result<AddressOwner, Error> {
        Ok(AddressOwner {
            instance_id: id(r, "instance_id")?,
            project_id: id(r, "project_id")?,
            department_id: id(r, "department_id")?,
            provider_id: opt_id(r, "provider_id")?,
            via: via.to_string(),
        })
    };
    if eips.len() == 1 {
        return owner(&eips[0], "elastic_ip").map(Some);
    }
    let q = "SELECT n.instance_id, n.project_id, n.department_id, i.provider_id FROM nics n \
             LEFT JOIN instances i ON i.id = n.instance_id WHERE n.ip_num = $1 LIMIT 2";
    let nics = sqlx::query(q)
        .bind(i64::from(ip))
        .fetch_all(e)
        .await
        .map_err(db_error)?;
    if nics.len() == 1 {
        return owner(&nics[0], "nic").map(Some);
    }
    Ok(None)
}

/// Every address that names one instance, for resolving many addresses at once (security
/// events): bound elastic IPs, and NIC addresses used in exactly one VPC (an address used
/// in several VPCs names nobody). Keys are IPv4 addresses as numbers.
pub async fn address_owners(
    tx: &mut crate::Tx,
) -> Result<std::collections::HashMap<u32, AddressOwner>, Error> {
    let mut out = std::collections::HashMap::new();
    let owner = |r: &sqlx::any::AnyRow, via: &str| -> Result<(u32, AddressOwner), Error> {
        Ok((
            int(r, "ip_num")? as u32,
            AddressOwner {
                instance_id: id(r, "instance_id")?,
                project_id: id(r, "project_id")?,
                department_id: id(r, "department_id")?,
                provider_id: opt_id(r, "provider_id")?,
                via: via.to_string(),
            },
        ))
    };
    let nics = sqlx::query(
        "SELECT n.ip_num, n.instance_id, n.project_id, n.department_id, i.provider_id FROM nics n \
         LEFT JOIN instances i ON i.id = n.instance_id \
         WHERE n.ip_num IN (SELECT ip_num FROM nics GROUP BY ip_num HAVING COUNT(*) = 1)",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    for r in &nics {
        let (ip, o) = owner(r, "nic")?;
        out.insert(ip, o);
    }
    let eips = sqlx::query(
        "SELECT x.ip_num, n.instance_id, n.project_id, n.department_id, i.provider_id FROM elastic_ips x \
         JOIN nics n ON n.id = x.nic_id LEFT JOIN instances i ON i.id = n.instance_id",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    for r in &eips {
        let (ip, o) = owner(r, "elastic_ip")?;
        out.insert(ip, o);
    }
    Ok(out)
}

/// The firewall one host must enforce: every NIC of the instances placed on it, with the
/// rules of its groups, and the member addresses of every group those rules name (members
/// within the same VPC as the NIC that names it).
pub async fn host_firewall(store: &Store, host: HostId) -> Result<HostFirewall, Error> {
    let rows = sqlx::query(
        "SELECT n.id, n.mac, n.ip_num, v.vni FROM nics n JOIN instances i ON i.id = n.instance_id \
         JOIN vpcs v ON v.id = n.vpc_id \
         WHERE i.host_id = $1 ORDER BY n.id",
    )
    .bind(host.to_string())
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    let mut nics = Vec::with_capacity(rows.len());
    for r in &rows {
        nics.push(NicFirewall {
            nic: id(r, "id")?,
            vni: int(r, "vni")?,
            mac: text(r, "mac")?,
            ip: r.try_get::<i64, _>("ip_num").map_err(db_error)? as u32,
            rules: Vec::new(),
        });
    }
    let ids: Vec<NicId> = nics.iter().map(|n| n.nic).collect();
    let of_nic = groups_of_nics(store.pool(), &ids).await?;
    let all: BTreeSet<SecurityGroupId> = of_nic.values().flatten().copied().collect();
    let all: Vec<SecurityGroupId> = all.into_iter().collect();
    let rules = rules_of(store.pool(), &all).await?;
    let mut remote: BTreeSet<SecurityGroupId> = BTreeSet::new();
    for fw in &mut nics {
        for g in of_nic.get(&fw.nic).into_iter().flatten() {
            for r in rules.get(g).into_iter().flatten() {
                if let Some(rg) = r.remote_group_id {
                    remote.insert(rg);
                }
                fw.rules.push(r.clone());
            }
        }
    }
    let mut groups = BTreeMap::new();
    for g in remote {
        let v: Vec<i64> = sqlx::query_scalar(
            "SELECT n.ip_num FROM nic_security_groups m JOIN nics n ON n.id = m.nic_id WHERE m.group_id = $1",
        )
        .bind(g.to_string())
        .fetch_all(store.pool())
        .await
        .map_err(db_error)?;
        groups.insert(g, v.into_iter().map(|n| n as u32).collect());
    }
    Ok(HostFirewall { nics, groups })
}

// ---- Data plane (migration 0014) -------------------------------------------------------

/// A NIC with where its instance runs, for the hosts' data plane.
#[derive(Debug, Clone)]
pub struct PlacedNic {
    pub id: NicId,
    pub instance_id: InstanceId,
    pub vpc_id: VpcId,
    pub vni: i64,
    pub subnet_id: SubnetId,
    pub mac: String,
    pub ip: String,
    pub index: i64,
    /// The host its instance is placed on (none while unplaced or once deleted); for a
    /// load balancer's VIP, the host its HAProxy namespace is placed on.
    pub host_id: Option<HostId>,
    /// A load balancer's VIP (`instance_id` is the load balancer's id): no tap, the
    /// namespace is plugged into the bridge by the agent's load-balancer code.
    pub vip: bool,
    /// The VPC's outbound access.
    pub outbound: bool,
}

const PLACED_COLS: &str = "n.id, n.instance_id, n.vpc_id, v.vni, n.subnet_id, n.mac, n.ip, n.idx, \
     CASE WHEN b.id IS NOT NULL THEN b.host_id WHEN i.state = 'deleted' THEN NULL ELSE i.host_id END AS host_id, \
     CASE WHEN b.id IS NULL THEN 0 ELSE 1 END AS vip, v.outbound";

fn placed(r: &sqlx::any::AnyRow) -> Result<PlacedNic, Error> {
    Ok(PlacedNic {
        id: id(r, "id")?,
        instance_id: id(r, "instance_id")?,
        vpc_id: id(r, "vpc_id")?,
        vni: int(r, "vni")?,
        subnet_id: id(r, "subnet_id")?,
        mac: text(r, "mac")?,
        ip: text(r, "ip")?,
        index: int(r, "idx")?,
        host_id: opt_id(r, "host_id")?,
        vip: int(r, "vip")? != 0,
        outbound: int(r, "outbound")? != 0,
    })
}

/// Every NIC of the VPCs that have a NIC on `host` or a load balancer placed on it (the
/// host carries those VPCs; the other NICs give it the VXLAN peers and DHCP's fixed
/// addresses). A load balancer's VIP counts as placed on its load balancer's host.
pub async fn host_vpc_nics(store: &Store, host: HostId) -> Result<Vec<PlacedNic>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {PLACED_COLS} FROM nics n JOIN vpcs v ON v.id = n.vpc_id \
         LEFT JOIN instances i ON i.id = n.instance_id \
         LEFT JOIN load_balancers b ON b.vip_nic_id = n.id \
         WHERE n.vpc_id IN (SELECT m.vpc_id FROM nics m JOIN instances j ON j.id = m.instance_id \
                            WHERE j.host_id = $1 AND j.state <> 'deleted') \
            OR n.vpc_id IN (SELECT c.vpc_id FROM load_balancers c WHERE c.host_id = $2) \
         ORDER BY n.vpc_id, n.id"
    ))
    .bind(host.to_string())
    .bind(host.to_string())
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter().map(placed).collect()
}

/// What a host was last sent: (generation, digest, applied generation, pushed at µs).
pub async fn host_network(
    store: &Store,
    host: HostId,
) -> Result<Option<(i64, String, i64, i64)>, Error> {
    let r = sqlx::query(
        "SELECT generation, digest, applied, pushed_at FROM host_networks WHERE host_id = $1",
    )
    .bind(host.to_string())
    .fetch_optional(store.pool())
    .await
    .map_err(db_error)?;
    r.map(|r| {
        Ok((
            int(&r, "generation")?,
            text(&r, "digest")?,
            int(&r, "applied")?,
            int(&r, "pushed_at")?,
        ))
    })
    .transpose()
}

/// Moves a host's network generation from `from` (`None`: never sent) to `to` for a
/// state with `digest`; false when another pass got there first.
pub async fn advance_host_network(
    store: &Store,
    host: HostId,
    from: Option<i64>,
    to: i64,
    digest: &str,
    now: i64,
) -> Result<bool, Error> {
    let r = match from {
        None => sqlx::query(
            "INSERT INTO host_networks (host_id, generation, digest, applied, pushed_at) \
             VALUES ($1, $2, $3, 0, $4) ON CONFLICT (host_id) DO NOTHING",
        )
        .bind(host.to_string())
        .bind(to)
        .bind(digest)
        .bind(now)
        .execute(store.pool())
        .await
        .map_err(db_error)?,
        Some(g) => sqlx::query(
            "UPDATE host_networks SET generation = $1, digest = $2, pushed_at = $3 \
             WHERE host_id = $4 AND generation = $5",
        )
        .bind(to)
        .bind(digest)
        .bind(now)
        .bind(host.to_string())
        .bind(g)
        .execute(store.pool())
        .await
        .map_err(db_error)?,
    };
    Ok(r.rows_affected() == 1)
}

/// Records that the agent applied `generation` (never moving backwards).
pub async fn host_network_applied(
    store: &Store,
    host: HostId,
    generation: i64,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE host_networks SET applied = $1, pushed_at = $2 WHERE host_id = $3 AND applied < $1",
    )
    .bind(generation)
    .bind(now)
    .bind(host.to_string())
    .execute(store.pool())
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The external network a host's VPCs go out through: its zone's first (oldest) one.
pub async fn host_external(store: &Store, host: HostId) -> Result<Option<ExternalNetwork>, Error> {
    let r = sqlx::query(&format!(
        "SELECT {EXT_COLS} FROM external_networks \
         WHERE zone_id = (SELECT h.zone_id FROM hosts h WHERE h.id = $1) \
         ORDER BY created_at, id LIMIT 1"
    ))
    .bind(host.to_string())
    .fetch_optional(store.pool())
    .await
    .map_err(db_error)?;
    r.as_ref().map(ExternalNetwork::decode).transpose()
}

/// An elastic IP bound to a NIC placed on a host, as the host applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedEip {
    pub external_network_id: ExternalNetworkId,
    pub address: String,
    pub vni: i64,
    /// The NIC's private address.
    pub ip: String,
}

/// The elastic IPs bound to NICs that live on `host` (an instance placed there, or a load
/// balancer's VIP whose HAProxy runs there), by address.
pub async fn host_eips(store: &Store, host: HostId) -> Result<Vec<PlacedEip>, Error> {
    let rows = sqlx::query(
        "SELECT x.external_network_id, x.address, v.vni, n.ip FROM elastic_ips x \
         JOIN nics n ON n.id = x.nic_id JOIN vpcs v ON v.id = n.vpc_id \
         LEFT JOIN instances i ON i.id = n.instance_id \
         LEFT JOIN load_balancers b ON b.vip_nic_id = n.id \
         WHERE (b.id IS NOT NULL AND b.host_id = $1) \
            OR (b.id IS NULL AND i.host_id = $2 AND i.state <> 'deleted') \
         ORDER BY x.ip_num",
    )
    .bind(host.to_string())
    .bind(host.to_string())
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok(PlacedEip {
                external_network_id: id(r, "external_network_id")?,
                address: text(r, "address")?,
                vni: int(r, "vni")?,
                ip: text(r, "ip")?,
            })
        })
        .collect()
}
