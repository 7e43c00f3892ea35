//! Real hosts: join tokens, joining, the agents list, live migration and guest metrics.
//!
//! Joining: the platform admin creates a one-time token for a zone of a `kvm` provider;
//! `zhengyun agent --join-token …` sends it with a CSR and its measured capacity; the
//! token is consumed, the host created and the agent's certificate signed in one audited
//! transaction. From then on the control plane calls the agent over mutual TLS only.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::auth::secrets;
use crate::compute::sagas::instance::{demand, place_request};
use crate::context::RequestContext;
use crate::state::AppState;
use zy_compute::agent::{JoinRequest, JoinResponse, VmMetrics};
use zy_model::agents::*;
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, Action};
use zy_store::agents::{self as store_agents, AgentRow};
use zy_store::instances;

/// Join tokens last a day unless asked otherwise, at most a week.
pub const DEFAULT_TOKEN_HOURS: u32 = 24;
pub const MAX_TOKEN_HOURS: u32 = 24 * 7;
/// Agent certificates are renewed by joining again; a year keeps that rare.
const AGENT_CERT_DAYS: i64 = 365;

async fn kvm_zone(s: &AppState, zone: ZoneId) -> Result<Zone, Error> {
    let z = zy_store::inventory::zones(&s.store)
        .await?
        .into_iter()
        .find(|z| z.id == zone)
        .ok_or_else(|| Error::not_found("zone", zone))?;
    let kvm = zy_store::inventory::providers(&s.store)
        .await?
        .iter()
        .any(|(p, _)| p.id == z.provider_id && p.kind == "kvm");
    if !kvm {
        return Err(Error::validation(
            "zone_id",
            t!(
                "只有 KVM 类型云服务商的可用区可以接入宿主机",
                "hosts can only join zones of a kvm provider"
            ),
        ));
    }
    Ok(z)
}

pub async fn create_join_token(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    zone: ZoneId,
    hours: Option<u32>,
) -> Result<(JoinToken, String), Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let hours = hours.unwrap_or(DEFAULT_TOKEN_HOURS);
    if !(1..=MAX_TOKEN_HOURS).contains(&hours) {
        return Err(Error::validation(
            "valid_hours",
            t!("有效期须在 1 到 {} 小时之间" ; "valid_hours must be 1 to {}", MAX_TOKEN_HOURS),
        ));
    }
    kvm_zone(s, zone).await?;
    let mut tx = s.store.begin_write().await?;
    let (t, secret) =
        issue_join_token(&mut tx, zone, hours, &actor.principal.user_id.to_string()).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_join_token",
        "join_token",
        &t.id.to_string(),
        serde_json::json!({ "zone_id": zone, "valid_hours": hours }),
    )
    .await?;
    Ok((t, secret))
}

/// Inserts a new one-time token (its SHA-256 only); the secret is returned to show once.
pub async fn issue_join_token(
    tx: &mut zy_store::Tx,
    zone: ZoneId,
    hours: u32,
    created_by: &str,
) -> Result<(JoinToken, String), Error> {
    let secret = secrets::random_string("zyj_");
    let now = Timestamp::now();
    let t = JoinToken {
        id: JoinTokenId::new(),
        zone_id: zone,
        created_at: now,
        expires_at: now.plus_secs(hours as i64 * 3600),
        used_at: None,
        host_id: None,
    };
    store_agents::insert_join_token(tx, &t, &secrets::sha256_hex(&secret), created_by).await?;
    Ok((t, secret))
}

pub async fn list_join_tokens(s: &AppState, actor: &Actor) -> Result<Vec<JoinToken>, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    store_agents::join_tokens(&s.store).await
}

fn bad_join() -> Error {
    Error::new(
        zy_model::error::ErrorCode::Unauthenticated,
        t!(
            "接入令牌无效、已使用或已过期；请平台管理员重新签发",
            "the join token is invalid, used or expired; ask the platform admin for a new one"
        ),
    )
}

pub async fn join(
    s: &AppState,
    ctx: &RequestContext,
    req: JoinRequest,
) -> Result<JoinResponse, Error> {
    // The token first: a caller without a valid one gets no CSR parsing, no signing, no
    // address resolution and no write; its refusal is summarised in the audit log.
    let token_hash = secrets::sha256_hex(&req.token);
    if req.token.len() > 200
        || !store_agents::join_token_usable(&s.store, &token_hash, Timestamp::now()).await?
    {
        s.refusals
            .count(&ctx.source_ip, "join_agent", "unauthenticated", None);
        ctx.mark_audited();
        return Err(bad_join());
    }
    if req.csr_pem.len() > 16 * 1024 {
        return Err(Error::validation(
            "csr_pem",
            t!(
                "证书签名请求过长",
                "the certificate signing request is too long"
            ),
        ));
    }
    let name = validate::name("name", &req.name)?;
    let Some(addr) = crate::compute::monitor::resolve(&req.address).await else {
        return Err(Error::validation(
            "address",
            t!(
                "agent 地址须为 主机:端口，且能被解析",
                "address must be host:port and resolvable"
            ),
        ));
    };
    let c = &req.capacity;
    if c.vcpus == 0
        || c.vcpus > 4096
        || c.memory_mib < 256
        || c.memory_mib > 64 << 20
        || c.disk_gib == 0
    {
        return Err(Error::validation(
            "capacity",
            t!("宿主机容量不合理", "the host's capacity is implausible"),
        ));
    }
    let pki = s.compute.pki.get().ok_or_else(|| {
        Error::unavailable(t!("平台证书尚未就绪", "the platform CA is not ready"))
    })?;
    let host_id = HostId::new();
    // Sign before touching the database: a bad CSR must not burn the token.
    let cert_pem = zy_pki::sign_agent_csr(
        &pki.agent_ca,
        &req.csr_pem,
        &host_id.to_string(),
        AGENT_CERT_DAYS,
    )
    .map_err(|e| {
        Error::validation(
            "csr_pem",
            t!(
                "证书签名请求无效",
                "the certificate signing request is invalid"
            ),
        )
        .with_internal(e.to_string())
    })?;
    let now = Timestamp::now();
    let mut tx = s.store.begin_write().await?;
    let Some(zone) = store_agents::consume_join_token(&mut tx, &token_hash, host_id, now).await?
    else {
        return Err(bad_join());
    };
    let z = zy_store::inventory::zones(&s.store)
        .await?
        .into_iter()
        .find(|x| x.id == zone)
        .ok_or_else(|| Error::not_found("zone", zone))?;
    // Real hosts: modest CPU overcommit, none for memory (guests must never be swapped).
    let host = Host {
        id: host_id,
        zone_id: zone,
        provider_id: z.provider_id,
        name,
        vcpus: c.vcpus,
        memory_mib: c.memory_mib,
        disk_gib: c.disk_gib,
        gpus: 0,
        cpu_ratio_permille: 4000,
        mem_ratio_permille: 1000,
        state: HostState::Enabled,
        used_vcpus: 0,
        used_memory_mib: 0,
        used_disk_gib: 0,
        used_gpus: 0,
        created_at: now,
        generation: 1,
        ha_state: HostHaState::Ok,
        group_id: None,
    };
    zy_store::inventory::insert_hosts(&mut tx, std::slice::from_ref(&host)).await?;
    let agent = AgentRow {
        host_id,
        host_name: host.name.clone(),
        address: addr.to_string(),
        cert_pem: cert_pem.clone(),
        accel: c.accel.clone(),
        joined_at: now,
        last_seen: now,
        report: "{}".into(),
    };
    store_agents::insert_agent(&mut tx, &agent).await?;
    commit_audited(
        tx,
        ctx,
        None,
        "join_host",
        "host",
        &host_id.to_string(),
        serde_json::json!({ "name": host.name, "zone_id": zone, "address": agent.address, "accel": c.accel, "vcpus": c.vcpus, "memory_mib": c.memory_mib }),
    )
    .await?;
    if let Some(row) = zy_store::inventory::host(s.store.pool(), host_id).await? {
        s.compute.placement.upsert(&[row]);
    }
    crate::compute::monitor::register(&s.compute, &agent).await?;
    tracing::info!(host = %host_id, address = %agent.address, "a host agent joined");
    Ok(JoinResponse {
        host_id: host_id.0,
        cert_pem,
        client_ca_pem: pki.client_ca_pem.clone(),
    })
}

pub async fn list_agents(s: &AppState, actor: &Actor) -> Result<Vec<Agent>, Error> {
    let v = super::inventory::infra_visibility(actor)?;
    let hosts = super::inventory::visible_hosts(s, &v).await?;
    let now = Timestamp::now();
    Ok(store_agents::agents(&s.store)
        .await?
        .into_iter()
        .filter(|a| hosts.as_ref().is_none_or(|h| h.contains(&a.host_id)))
        .map(|a| Agent {
            host_id: a.host_id,
            host_name: a.host_name,
            alive: now.0 - a.last_seen.0 < crate::compute::monitor::ALIVE_SECS * 1_000_000,
            address: a.address,
            accel: a.accel,
            joined_at: a.joined_at,
            last_seen: a.last_seen,
            report: serde_json::from_str(&a.report).unwrap_or_default(),
        })
        .collect())
}

pub async fn metrics(
    s: &AppState,
    actor: &Actor,
    id: InstanceId,
) -> Result<Option<VmMetrics>, Error> {
    let i = super::instances::get(s, actor, id).await?;
    let (Some(host), Some(provider), InstanceState::Running) = (i.host_id, i.provider_id, i.state)
    else {
        return Ok(None);
    };
    let driver = s.compute.drivers.get(provider)?;
    driver.metrics(id.0, host.0).await.map_err(|e| {
        Error::unavailable(t!(
            "暂时无法读取监控数据",
            "metrics are not available right now"
        ))
        .with_internal(e.to_string())
    })
}

pub async fn migrations(
    s: &AppState,
    actor: &Actor,
    id: InstanceId,
) -> Result<Vec<Migration>, Error> {
    super::instances::get(s, actor, id).await?;
    store_agents::migrations_of(&s.store, id).await
}

/// Starts a live migration of a running instance to `target` (or the host the scheduler
/// chooses among the others, with the same filters as a create). The target's capacity
/// and group slot are claimed, and the migration saga started, in one transaction with
/// the move to `migrating`; the saga does the rest (see `compute::sagas::migrate`).
pub async fn migrate(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: InstanceId,
    target: Option<HostId>,
) -> Result<Migration, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    begin_migration(s, Some((ctx, actor)), id, target).await
}

/// Starts a live migration: for the platform admin's request (`by` the caller), or for a
/// maintenance evacuation or a consolidation plan (`by` none: the system, audited as such).
pub async fn begin_migration(
    s: &AppState,
    by: Option<(&RequestContext, &Actor)>,
    id: InstanceId,
    target: Option<HostId>,
) -> Result<Migration, Error> {
    let row = instances::get(s.store.pool(), id)
        .await?
        .filter(|r| r.instance.state != InstanceState::Deleted)
        .ok_or_else(|| Error::not_found("instance", id))?;
    let i = &row.instance;
    if i.state != InstanceState::Running || i.desired != InstanceState::Running {
        return Err(Error::conflict(t!(
            "只有运行中的云主机可以热迁移（当前状态：{}）" ; "only a running instance can be live-migrated (it is {})",
            i.state.as_str()
        )));
    }
    let (Some(source), Some(provider)) = (i.host_id, i.provider_id) else {
        return Err(Error::conflict(t!(
            "云主机尚未分配宿主机",
            "the instance has no host"
        )));
    };
    let driver = s.compute.drivers.get(provider)?;
    if !driver.live_migration() {
        return Err(Error::conflict(t!(
            "该云服务商不支持热迁移",
            "this provider does not support live migration"
        )));
    }
    if let Some(t) = target {
        let hosts = zy_store::inventory::hosts(&s.store, Some(provider)).await?;
        if !hosts.iter().any(|h| h.host.id == t) {
            return Err(Error::validation(
                "target_host_id",
                t!(
                    "目标宿主机不属于该云服务商",
                    "the target host is not one of this provider's"
                ),
            ));
        }
        if t == source {
            return Err(Error::validation(
                "target_host_id",
                t!(
                    "目标宿主机与当前宿主机相同",
                    "the target is the host the instance is on"
                ),
            ));
        }
    }
    let mut req = place_request(&s.compute, &s.store, &row).await?;
    // A live migration never leaves its provider.
    req.providers = Some(vec![provider]);
    let meta = s.compute.placement.propose_move(&req, source, target)?;
    let unbook = || s.compute.placement.unbook(meta.id, &req);
    let m = Migration {
        id: MigrationId::new(),
        instance_id: id,
        source_host_id: source,
        target_host_id: meta.id,
        source_host_name: None,
        target_host_name: None,
        state: MigrationState::Running,
        downtime_ms: None,
        total_ms: None,
        error: None,
        created_by: by
            .map(|(_, a)| a.principal.user_id.to_string())
            .unwrap_or_else(|| "system".into()),
        created_at: Timestamp::now(),
        finished_at: None,
    };
    let result = async {
        let mut tx = s.store.begin_write_for(&id.to_string()).await?;
        if !zy_store::inventory::claim_capacity(&mut tx, meta.id, demand(i)).await? {
            return Err(Error::conflict(t!(
                "目标宿主机容量不足或不可用",
                "the target host lacks capacity or is not enabled"
            )));
        }
        if let Some((g, GroupPolicy::AntiAffinity)) = req.group {
            if !instances::take_anti_affinity_slot(&mut tx, g, meta.id, id).await? {
                return Err(Error::conflict(t!(
                    "目标宿主机上已有同一反亲和主机组的云主机",
                    "the target host already runs a member of the instance's anti-affinity group"
                )));
            }
        }
        if !instances::transition(
            &mut tx,
            id,
            InstanceState::Running,
            InstanceState::Migrating,
            &format!("live migration to host {}", meta.id),
        )
        .await?
        {
            return Err(Error::conflict(t!(
                "云主机状态已变化，请重试",
                "the instance changed meanwhile; try again"
            )));
        }
        store_agents::insert_migration(&mut tx, &m).await?;
        let params = crate::compute::sagas::migrate::MigrateParams {
            migration_id: m.id,
            instance_id: id,
            source_host_id: source,
            target_host_id: meta.id,
            target_zone_id: meta.zone,
        };
        let Some(saga_id) = crate::saga::start(
            &mut tx,
            &crate::compute::sagas::migrate::MIGRATE,
            &id.to_string(),
            &params,
        )
        .await?
        else {
            return Err(super::instances::busy_with_saga());
        };
        let detail = serde_json::json!({ "migration_id": m.id, "source_host_id": source, "target_host_id": meta.id, "saga_id": saga_id });
        match by {
            Some((ctx, actor)) => {
                commit_audited(
                    tx,
                    ctx,
                    Some(actor),
                    "migrate_instance",
                    "instance",
                    &id.to_string(),
                    detail,
                )
                .await
            }
            None => {
                super::commit_system(tx, "migrate_instance", "instance", &id.to_string(), detail)
                    .await
            }
        }
    }
    .await;
    if let Err(e) = result {
        unbook();
        return Err(e);
    }
    if let Ok(Some(h)) = zy_store::inventory::host(s.store.pool(), meta.id).await {
        s.compute.placement.upsert(&[h]);
    }
    s.compute.wake.notify_one();
    Ok(m)
}
