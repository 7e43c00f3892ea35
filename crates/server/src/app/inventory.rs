//! Inventory use cases: providers (with their simulated-provider settings), zones, hosts
//! (created in bulk, state changes), flavors and images. The platform admin changes them;
//! oversight roles read them; everyone signed in reads the catalogue.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::compute::drivers::SimSettings;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, provider_visibility, Action, ProviderVisibility};
use zy_store::inventory;

#[allow(clippy::too_many_arguments)]
pub async fn create_provider(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    name: &str,
    kind: &str,
    description: &str,
    sim: Option<SimSettings>,
    openstack: Option<crate::compute::openstack::OpenStackSettings>,
) -> Result<Provider, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    if kind != "sim" && kind != "kvm" && kind != "openstack" {
        return Err(Error::validation(
            "kind",
            t!(
                "云服务商类型须为 sim（模拟）、kvm（由 zhengyun agent 接入的宿主机）或 openstack（现有的 OpenStack 云）",
                "kind must be sim (simulated), kvm (hosts joined by zhengyun agent) or openstack (an existing OpenStack cloud)"
            ),
        ));
    }
    if (kind == "openstack") != openstack.is_some() {
        return Err(Error::validation(
            "openstack",
            t!(
                "OpenStack 云服务商须提供 openstack 设置，其他类型不能提供",
                "an openstack provider needs the openstack settings, and other kinds take none"
            ),
        ));
    }
    let simulated = kind == "sim";
    if !simulated && sim.is_some() {
        return Err(Error::validation(
            "sim",
            t!(
                "只有模拟云服务商有模拟设置",
                "only simulated providers take simulation settings"
            ),
        ));
    }
    let settings = sim.unwrap_or_default();
    settings.validate()?;
    // An OpenStack provider is checked against the cloud before anything is stored
    // (outside any transaction), and its secret is sealed.
    let os_config = match &openstack {
        Some(o) => {
            o.validate()?;
            super::openstack::check_reachable(o).await?;
            Some(
                serde_json::to_string(&o.sealed(&s.sealer)?)
                    .map_err(|e| Error::internal(e.to_string()))?,
            )
        }
        None => None,
    };
    let p = Provider {
        id: ProviderId::new(),
        name: validate::name("name", name)?,
        kind: kind.into(),
        simulated,
        description: validate::description("description", description)?,
        created_at: Timestamp::now(),
        generation: 1,
    };
    let config = match os_config {
        Some(c) => c,
        None => serde_json::to_string(&settings).map_err(|e| Error::internal(e.to_string()))?,
    };
    let mut tx = s.store.begin_write().await?;
    inventory::insert_provider(&mut tx, &p, &config).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_provider",
        "provider",
        &p.id.to_string(),
        serde_json::json!({ "name": p.name, "kind": p.kind }),
    )
    .await?;
    s.compute
        .drivers
        .install(p.id, &p.kind, &config, &s.compute.kvm, &s.sealer);
    Ok(p)
}

/// Providers are part of the catalogue: members choose one when creating instances.
pub async fn list_providers(s: &AppState, actor: &Actor) -> Result<Vec<Provider>, Error> {
    authorize(&actor.principal, Action::CatalogueRead)?;
    Ok(inventory::providers(&s.store)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect())
}

pub async fn update_sim(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ProviderId,
    settings: SimSettings,
) -> Result<Provider, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    settings.validate()?;
    let p = inventory::providers(&s.store)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.id == id)
        .ok_or_else(|| Error::not_found("provider", id))?;
    if p.kind != "sim" {
        return Err(Error::validation(
            "sim",
            t!(
                "只有模拟云服务商有模拟设置",
                "only simulated providers take simulation settings"
            ),
        ));
    }
    let config = serde_json::to_string(&settings).map_err(|e| Error::internal(e.to_string()))?;
    let mut tx = s.store.begin_write().await?;
    inventory::set_provider_config(&mut tx, id, &config).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_provider",
        "provider",
        &id.to_string(),
        serde_json::to_value(&settings).unwrap_or_default(),
    )
    .await?;
    s.compute.drivers.install_sim(id, &settings);
    Ok(p)
}

pub async fn create_zone(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    provider: ProviderId,
    region: &str,
    name: &str,
    strategy: Strategy,
) -> Result<Zone, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    if !inventory::providers(&s.store)
        .await?
        .iter()
        .any(|(p, _)| p.id == provider)
    {
        return Err(Error::not_found("provider", provider));
    }
    let z = Zone {
        id: ZoneId::new(),
        provider_id: provider,
        region: validate::name("region", region)?,
        name: validate::name("name", name)?,
        strategy,
        created_at: Timestamp::now(),
    };
    let mut tx = s.store.begin_write().await?;
    inventory::insert_zone(&mut tx, &z).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_zone",
        "zone",
        &z.id.to_string(),
        serde_json::json!({ "name": z.name, "provider_id": provider }),
    )
    .await?;
    s.compute.placement.set_zone_strategy(z.id, strategy);
    Ok(z)
}

pub async fn set_zone_strategy(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ZoneId,
    strategy: Strategy,
) -> Result<Zone, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let mut tx = s.store.begin_write().await?;
    inventory::set_zone_strategy(&mut tx, id, strategy).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_zone",
        "zone",
        &id.to_string(),
        serde_json::json!({ "strategy": strategy }),
    )
    .await?;
    s.compute.placement.set_zone_strategy(id, strategy);
    inventory::zones(&s.store)
        .await?
        .into_iter()
        .find(|z| z.id == id)
        .ok_or_else(|| Error::not_found("zone", id))
}

pub async fn list_zones(s: &AppState, actor: &Actor) -> Result<Vec<Zone>, Error> {
    authorize(&actor.principal, Action::CatalogueRead)?;
    inventory::zones(&s.store).await
}

/// The size of hosts being added.
pub struct HostShape {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
    pub cpu_ratio_permille: u32,
    pub mem_ratio_permille: u32,
}

pub async fn create_hosts(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    zone: ZoneId,
    prefix: &str,
    count: u32,
    shape: HostShape,
) -> Result<Vec<Host>, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let z = inventory::zones(&s.store)
        .await?
        .into_iter()
        .find(|z| z.id == zone)
        .ok_or_else(|| Error::not_found("zone", zone))?;
    if !(1..=2000).contains(&count) {
        return Err(Error::validation(
            "count",
            t!(
                "一次添加 1 到 2000 台宿主机",
                "add 1 to 2000 hosts at a time"
            ),
        ));
    }
    let bad = |f: &str| Error::validation(f, t!("{} 超出合理范围" ; "{} is out of range", f));
    if !(1..=1024).contains(&shape.vcpus) {
        return Err(bad("vcpus"));
    }
    if !(1024..=64 * 1024 * 1024).contains(&shape.memory_mib) {
        return Err(bad("memory_mib"));
    }
    if !(1..=1024 * 1024).contains(&shape.disk_gib) {
        return Err(bad("disk_gib"));
    }
    if shape.gpus > 64 {
        return Err(bad("gpus"));
    }
    if !(1000..=16000).contains(&shape.cpu_ratio_permille) {
        return Err(bad("cpu_ratio_permille"));
    }
    if !(1000..=4000).contains(&shape.mem_ratio_permille) {
        return Err(bad("mem_ratio_permille"));
    }
    let prefix = validate::batch_name("name_prefix", prefix, if count > 1 { 5 } else { 0 })?;
    let now = Timestamp::now();
    let hosts: Vec<Host> = (1..=count)
        .map(|n| Host {
            id: HostId::new(),
            zone_id: z.id,
            provider_id: z.provider_id,
            name: if count == 1 {
                prefix.clone()
            } else {
                format!("{prefix}-{n:04}")
            },
            vcpus: shape.vcpus,
            memory_mib: shape.memory_mib,
            disk_gib: shape.disk_gib,
            gpus: shape.gpus,
            cpu_ratio_permille: shape.cpu_ratio_permille,
            mem_ratio_permille: shape.mem_ratio_permille,
            state: HostState::Enabled,
            used_vcpus: 0,
            used_memory_mib: 0,
            used_disk_gib: 0,
            used_gpus: 0,
            created_at: now,
            generation: 1,
            ha_state: HostHaState::Ok,
            group_id: None,
        })
        .collect();
    let mut tx = s.store.begin_write().await?;
    inventory::insert_hosts(&mut tx, &hosts).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_hosts",
        "zone",
        &zone.to_string(),
        serde_json::json!({ "count": count, "prefix": prefix }),
    )
    .await?;
    let rows = inventory::hosts(&s.store, Some(z.provider_id)).await?;
    s.compute.placement.upsert(&rows);
    Ok(hosts)
}

/// Whose infrastructure the caller reads: every provider's, or the ones it operates for
/// (403 when none).
pub fn infra_visibility(actor: &Actor) -> Result<ProviderVisibility, Error> {
    let v = provider_visibility(&actor.principal, Action::InventoryRead);
    if !v.is_any() {
        authorize(&actor.principal, Action::InventoryRead(None))?;
    }
    Ok(v)
}

/// The hosts of the providers `v` lets the caller see (`None`: all of them).
pub async fn visible_hosts(
    s: &AppState,
    v: &ProviderVisibility,
) -> Result<Option<std::collections::HashSet<HostId>>, Error> {
    let Some(providers) = v.filter() else {
        return Ok(None);
    };
    let mut out = std::collections::HashSet::new();
    for p in providers {
        out.extend(
            inventory::hosts(&s.store, Some(*p))
                .await?
                .iter()
                .map(|h| h.host.id),
        );
    }
    Ok(Some(out))
}

/// Reads one host's infrastructure records: 404 for a host that does not exist, 403 for
/// another provider's.
pub async fn authorize_host(s: &AppState, actor: &Actor, id: HostId) -> Result<Host, Error> {
    infra_visibility(actor)?;
    let h = inventory::host(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("host", id))?;
    authorize(
        &actor.principal,
        Action::InventoryRead(Some(h.host.provider_id)),
    )?;
    Ok(h.host)
}

pub async fn list_hosts(
    s: &AppState,
    actor: &Actor,
    provider: Option<ProviderId>,
) -> Result<Vec<Host>, Error> {
    let v = infra_visibility(actor)?;
    if let Some(p) = provider {
        authorize(&actor.principal, Action::InventoryRead(Some(p)))?;
    }
    Ok(inventory::hosts(&s.store, provider)
        .await?
        .into_iter()
        .map(|h| h.host)
        .filter(|h| v.includes(h.provider_id))
        .collect())
}

pub async fn set_host_state(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: HostId,
    state: HostState,
) -> Result<Host, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    let before = inventory::host(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("host", id))?;
    let sim = s.compute.drivers.sim(before.host.provider_id);
    if state == HostState::Enabled && before.host.ha_state != HostHaState::Ok && sim.is_none() {
        return Err(Error::conflict(t!(
            "该宿主机因故障被隔离，尚未重新连通；其上可能仍有旧的云主机副本，暂不能启用",
            "the host was fenced after a failure and has not been heard from since (it may still hold old guests): it cannot be enabled yet"
        )));
    }
    // A real host back from a failure runs shared-storage guests only once its agent holds
    // a lease again (else it would fence what is moved onto it).
    if state == HostState::Enabled && before.host.state == HostState::Down && sim.is_none() {
        let leased = zy_store::agents::agents(&s.store)
            .await?
            .into_iter()
            .find(|a| a.host_id == id)
            .and_then(|a| serde_json::from_str::<zy_compute::agent::HostReport>(&a.report).ok())
            .is_some_and(|r| r.lease_left_ms.is_some_and(|l| l > 0));
        if !leased {
            return Err(Error::conflict(t!(
                "该宿主机的代理尚未重新取得控制面租约，请几秒后重试",
                "the host's agent has not renewed its lease with the control plane yet; try again in a few seconds"
            )));
        }
    }
    let mut tx = s.store.begin_write().await?;
    inventory::set_host_state(&mut tx, id, state).await?;
    // Maintenance empties the host by live migration where the provider can do it.
    let live_migration = s
        .compute
        .drivers
        .get(before.host.provider_id)
        .is_ok_and(|d| d.live_migration());
    if state == HostState::Maintenance && live_migration {
        zy_store::ha::start_evacuation(&mut tx, id, Some(&actor.principal.user_id.to_string()))
            .await?;
    } else if state != HostState::Maintenance {
        super::ha::cancel_evacuation_in(&mut tx, id).await?;
    }
    if state == HostState::Enabled && sim.is_some() {
        // A simulated machine set down and enabled again restarts empty: nothing of it
        // can run twice, so its HA state is cleared at once.
        zy_store::ha::clear_ha(&mut tx, id).await?;
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_host",
        "host",
        &id.to_string(),
        serde_json::json!({ "state": state }),
    )
    .await?;
    s.compute.placement.set_state(id, state);
    // A simulated host set down fails its simulated machine (to rehearse a host failure),
    // and comes back empty when enabled.
    if let Some(sim) = sim {
        match state {
            HostState::Down => sim.kill_host(id.0),
            HostState::Enabled if before.host.state == HostState::Down => sim.revive_host(id.0),
            _ => {}
        }
    }
    let h = inventory::host(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("host", id))?;
    Ok(h.host)
}

pub async fn create_flavor(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    name: &str,
    vcpus: u32,
    memory_mib: u64,
    gpus: u32,
) -> Result<Flavor, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    if !(1..=256).contains(&vcpus) || !(64..=4 * 1024 * 1024).contains(&memory_mib) || gpus > 16 {
        return Err(Error::validation(
            "vcpus",
            t!(
                "规格须为 1–256 vCPU、64 MiB–4 TiB 内存、最多 16 块 GPU",
                "a flavor has 1–256 vCPU, 64 MiB–4 TiB memory and at most 16 GPUs"
            ),
        ));
    }
    let f = Flavor {
        id: FlavorId::new(),
        name: validate::name("name", name)?,
        vcpus,
        memory_mib,
        gpus,
        created_at: Timestamp::now(),
    };
    let mut tx = s.store.begin_write().await?;
    inventory::insert_flavor(&mut tx, &f).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_flavor",
        "flavor",
        &f.id.to_string(),
        serde_json::json!({ "name": f.name }),
    )
    .await?;
    Ok(f)
}

pub async fn list_flavors(s: &AppState, actor: &Actor) -> Result<Vec<Flavor>, Error> {
    authorize(&actor.principal, Action::CatalogueRead)?;
    inventory::flavors(&s.store).await
}

pub async fn create_image(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    name: &str,
    os: &str,
    min_disk_gib: u64,
    providers: Vec<ProviderId>,
) -> Result<Image, Error> {
    authorize(&actor.principal, Action::InventoryManage)?;
    if !(1..=65536).contains(&min_disk_gib) {
        return Err(Error::validation(
            "min_disk_gib",
            t!(
                "最小磁盘须在 1 到 65536 GiB 之间",
                "min_disk_gib must be between 1 and 65536"
            ),
        ));
    }
    let known = inventory::providers(&s.store).await?;
    if let Some(p) = providers
        .iter()
        .find(|p| !known.iter().any(|(k, _)| k.id == **p))
    {
        return Err(Error::not_found("provider", p));
    }
    let i = Image {
        id: ImageId::new(),
        name: validate::name("name", name)?,
        os: validate::name("os", os)?,
        min_disk_gib,
        providers,
        created_at: Timestamp::now(),
    };
    let mut tx = s.store.begin_write().await?;
    inventory::insert_image(&mut tx, &i).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_image",
        "image",
        &i.id.to_string(),
        serde_json::json!({ "name": i.name }),
    )
    .await?;
    Ok(i)
}

pub async fn list_images(s: &AppState, actor: &Actor) -> Result<Vec<Image>, Error> {
    authorize(&actor.principal, Action::CatalogueRead)?;
    inventory::images(&s.store).await
}
