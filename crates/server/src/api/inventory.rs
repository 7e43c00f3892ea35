//! `/v1/providers`, `/v1/zones`, `/v1/hosts`, `/v1/storage-pools`, `/v1/flavors`, `/v1/images`:
//! the inventory the platform admin manages and the catalogue everyone chooses from.

use super::List;
use crate::app::inventory as inv;
use crate::auth::actor::Actor;
use crate::compute::drivers::SimSettings;
use crate::compute::openstack::{OpenStackSettings, OpenStackSettingsView};
use crate::compute::openstack_update::OpenStackSettingsUpdate;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zy_model::compute::*;
use zy_model::id::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    /// e.g. 浪潮云
    pub name: String,
    /// `sim` (simulated provider), `kvm` (real hosts joined by `zhengyun agent`) or
    /// `openstack` (an existing OpenStack cloud driven through its APIs).
    pub kind: String,
    pub description: Option<String>,
    pub sim: Option<SimSettings>,
    /// Connection, credentials (sealed at rest, never returned) and mappings of an
    /// `openstack` provider.
    pub openstack: Option<OpenStackSettings>,
}

#[utoipa::path(get, path = "/v1/providers", tag = "compute", responses((status = 200, body = List<Provider>), (status = "default", body = ErrorBody)))]
pub async fn list_providers(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<Provider>>> {
    Ok(axum::Json(List {
        items: inv::list_providers(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/providers", tag = "compute", request_body = CreateProvider, responses((status = 201, body = Provider), (status = "default", body = ErrorBody)))]
pub async fn create_provider(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateProvider>,
) -> ApiResult<(StatusCode, axum::Json<Provider>)> {
    let p = inv::create_provider(
        &s,
        &ctx,
        &actor,
        &b.name,
        &b.kind,
        b.description.as_deref().unwrap_or(""),
        b.sim,
        b.openstack,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(p)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProvider {
    /// Failure injection and latency of a simulated provider.
    pub sim: SimSettings,
}

#[utoipa::path(patch, path = "/v1/providers/{id}", tag = "compute", params(("id" = ProviderId, Path)), request_body = UpdateProvider, responses((status = 200, body = Provider), (status = "default", body = ErrorBody)))]
pub async fn update_provider(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ProviderId>,
    Json(b): Json<UpdateProvider>,
) -> ApiResult<axum::Json<Provider>> {
    Ok(axum::Json(
        inv::update_sim(&s, &ctx, &actor, id, b.sim).await?,
    ))
}

#[utoipa::path(get, path = "/v1/providers/{id}/openstack", tag = "compute", params(("id" = ProviderId, Path)), responses((status = 200, body = OpenStackSettingsView), (status = "default", body = ErrorBody)))]
pub async fn get_openstack_settings(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<ProviderId>,
) -> ApiResult<axum::Json<OpenStackSettingsView>> {
    Ok(axum::Json(
        crate::app::openstack::settings(&s, &actor, id).await?,
    ))
}

/// Replaces the connection, credentials and mappings of an OpenStack provider (checked
/// against the cloud first). The secret may be left out to keep the stored one, unless the
/// Keystone URL, the credential's type or identity, or the TLS trust changed (422 on
/// `openstack.credential.secret`).
#[utoipa::path(put, path = "/v1/providers/{id}/openstack", tag = "compute", params(("id" = ProviderId, Path)), request_body = OpenStackSettingsUpdate, responses((status = 200, body = OpenStackSettingsView), (status = "default", body = ErrorBody)))]
pub async fn put_openstack_settings(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ProviderId>,
    Json(b): Json<OpenStackSettingsUpdate>,
) -> ApiResult<axum::Json<OpenStackSettingsView>> {
    Ok(axum::Json(
        crate::app::openstack::update_settings(&s, &ctx, &actor, id, b).await?,
    ))
}

/// Reads the OpenStack provider's hypervisors now and shows them as its hosts.
#[utoipa::path(post, path = "/v1/providers/{id}/openstack/sync", tag = "compute", params(("id" = ProviderId, Path)), responses((status = 200, body = crate::app::openstack::SyncReport), (status = "default", body = ErrorBody)))]
pub async fn sync_openstack(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ProviderId>,
) -> ApiResult<axum::Json<crate::app::openstack::SyncReport>> {
    Ok(axum::Json(
        crate::app::openstack::sync_now(&s, &ctx, &actor, id).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DriftParams {
    /// `open` (default), `adopted`, `dismissed`, `resolved` or `all`.
    pub state: Option<String>,
}

/// The drift history of an OpenStack provider: servers and Cinder volumes that appeared,
/// changed (size, power state, attachment) or disappeared there without going through
/// zhengyun, as the synchronisation recorded them (newest first).
#[utoipa::path(get, path = "/v1/providers/{id}/openstack/drift", tag = "compute", params(("id" = ProviderId, Path), DriftParams), responses((status = 200, body = List<DriftRecord>), (status = "default", body = ErrorBody)))]
pub async fn openstack_drift(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<ProviderId>,
    Query(q): Query<DriftParams>,
) -> ApiResult<axum::Json<List<DriftRecord>>> {
    Ok(axum::Json(List {
        items: crate::app::openstack::list_drift(&s, &actor, id, q.state.as_deref()).await?,
    }))
}

/// Adopts (纳管) a server or volume that appeared in the provider cloud: it becomes an
/// instance (or volume) of the mapped department and project, counted against their quota
/// and metered from now. The answer is the instance or the volume.
#[utoipa::path(post, path = "/v1/providers/{id}/openstack/drift/{item}/adopt", tag = "compute", params(("id" = ProviderId, Path), ("item" = DriftItemId, Path)), responses((status = 200, body = crate::app::openstack::Adopted), (status = "default", body = ErrorBody)))]
pub async fn adopt_openstack_drift(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path((id, item)): Path<(ProviderId, DriftItemId)>,
) -> ApiResult<axum::Json<crate::app::openstack::Adopted>> {
    Ok(axum::Json(
        crate::app::openstack::adopt_item(&s, &ctx, &actor, id, item).await?,
    ))
}

/// Dismisses a drift item with a reason; it stays dismissed.
#[utoipa::path(post, path = "/v1/providers/{id}/openstack/drift/{item}/dismiss", tag = "compute", params(("id" = ProviderId, Path), ("item" = DriftItemId, Path)), request_body = crate::app::openstack::DismissBody, responses((status = 200, body = DriftRecord), (status = "default", body = ErrorBody)))]
pub async fn dismiss_openstack_drift(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path((id, item)): Path<(ProviderId, DriftItemId)>,
    Json(b): Json<crate::app::openstack::DismissBody>,
) -> ApiResult<axum::Json<DriftRecord>> {
    Ok(axum::Json(
        crate::app::openstack::dismiss_item(&s, &ctx, &actor, id, item, b).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateZone {
    pub provider_id: ProviderId,
    /// e.g. 宜宾
    pub region: String,
    pub name: String,
    /// `pack` (default) or `spread`.
    pub strategy: Option<Strategy>,
}

#[utoipa::path(get, path = "/v1/zones", tag = "compute", responses((status = 200, body = List<Zone>), (status = "default", body = ErrorBody)))]
pub async fn list_zones(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<Zone>>> {
    Ok(axum::Json(List {
        items: inv::list_zones(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/zones", tag = "compute", request_body = CreateZone, responses((status = 201, body = Zone), (status = "default", body = ErrorBody)))]
pub async fn create_zone(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateZone>,
) -> ApiResult<(StatusCode, axum::Json<Zone>)> {
    let z = inv::create_zone(
        &s,
        &ctx,
        &actor,
        b.provider_id,
        &b.region,
        &b.name,
        b.strategy.unwrap_or(Strategy::Pack),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(z)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateZone {
    /// `pack` fills the fullest host (utilisation), `spread` the emptiest.
    pub strategy: Strategy,
}

#[utoipa::path(patch, path = "/v1/zones/{id}", tag = "compute", params(("id" = ZoneId, Path)), request_body = UpdateZone,
    responses((status = 200, body = Zone), (status = "default", body = ErrorBody)))]
pub async fn update_zone(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ZoneId>,
    Json(b): Json<UpdateZone>,
) -> ApiResult<axum::Json<Zone>> {
    Ok(axum::Json(
        inv::set_zone_strategy(&s, &ctx, &actor, id, b.strategy).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHosts {
    pub zone_id: ZoneId,
    /// The host's name, or the prefix of `count` names (`prefix-0001` …).
    pub name_prefix: String,
    pub count: Option<u32>,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: Option<u32>,
    /// vCPU overcommit in permille (default 4000 = 4.0×).
    pub cpu_ratio_permille: Option<u32>,
    /// Memory overcommit in permille (default 1000 = none).
    pub mem_ratio_permille: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HostFilter {
    #[param(value_type = Option<String>, format = Uuid)]
    pub provider_id: Option<ProviderId>,
}

#[utoipa::path(get, path = "/v1/hosts", tag = "compute", params(HostFilter), responses((status = 200, body = List<Host>), (status = "default", body = ErrorBody)))]
pub async fn list_hosts(
    State(s): State<AppState>,
    actor: Actor,
    Query(f): Query<HostFilter>,
) -> ApiResult<axum::Json<List<Host>>> {
    Ok(axum::Json(List {
        items: inv::list_hosts(&s, &actor, f.provider_id).await?,
    }))
}

#[utoipa::path(post, path = "/v1/hosts", tag = "compute", request_body = CreateHosts, responses((status = 201, body = List<Host>), (status = "default", body = ErrorBody)))]
pub async fn create_hosts(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateHosts>,
) -> ApiResult<(StatusCode, axum::Json<List<Host>>)> {
    let shape = inv::HostShape {
        vcpus: b.vcpus,
        memory_mib: b.memory_mib,
        disk_gib: b.disk_gib,
        gpus: b.gpus.unwrap_or(0),
        cpu_ratio_permille: b.cpu_ratio_permille.unwrap_or(4000),
        mem_ratio_permille: b.mem_ratio_permille.unwrap_or(1000),
    };
    let hosts = inv::create_hosts(
        &s,
        &ctx,
        &actor,
        b.zone_id,
        &b.name_prefix,
        b.count.unwrap_or(1),
        shape,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(List { items: hosts })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateHost {
    pub state: HostState,
}

#[utoipa::path(patch, path = "/v1/hosts/{id}", tag = "compute", params(("id" = HostId, Path)), request_body = UpdateHost, responses((status = 200, body = Host), (status = "default", body = ErrorBody)))]
pub async fn update_host(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<HostId>,
    Json(b): Json<UpdateHost>,
) -> ApiResult<axum::Json<Host>> {
    Ok(axum::Json(
        inv::set_host_state(&s, &ctx, &actor, id, b.state).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFlavor {
    /// e.g. `4C8G`
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[schema(minimum = 1, maximum = 256)]
    pub vcpus: u32,
    #[schema(minimum = 256, maximum = 4194304)]
    pub memory_mib: u64,
    pub gpus: Option<u32>,
}

#[utoipa::path(get, path = "/v1/flavors", tag = "compute", responses((status = 200, body = List<Flavor>), (status = "default", body = ErrorBody)))]
pub async fn list_flavors(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<Flavor>>> {
    Ok(axum::Json(List {
        items: inv::list_flavors(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/flavors", tag = "compute", request_body = CreateFlavor, responses((status = 201, body = Flavor), (status = "default", body = ErrorBody)))]
pub async fn create_flavor(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateFlavor>,
) -> ApiResult<(StatusCode, axum::Json<Flavor>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(
            inv::create_flavor(
                &s,
                &ctx,
                &actor,
                &b.name,
                b.vcpus,
                b.memory_mib,
                b.gpus.unwrap_or(0),
            )
            .await?,
        ),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImage {
    /// e.g. `CentOS-7.9`
    pub name: String,
    #[schema(min_length = 1, max_length = 64)]
    pub os: String,
    #[schema(minimum = 1, maximum = 65536)]
    pub min_disk_gib: u64,
    /// Providers that carry it; omit for all.
    pub providers: Option<Vec<ProviderId>>,
}

#[utoipa::path(get, path = "/v1/images", tag = "compute", responses((status = 200, body = List<Image>), (status = "default", body = ErrorBody)))]
pub async fn list_images(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<Image>>> {
    Ok(axum::Json(List {
        items: inv::list_images(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/images", tag = "compute", request_body = CreateImage, responses((status = 201, body = Image), (status = "default", body = ErrorBody)))]
pub async fn create_image(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateImage>,
) -> ApiResult<(StatusCode, axum::Json<Image>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(
            inv::create_image(
                &s,
                &ctx,
                &actor,
                &b.name,
                &b.os,
                b.min_disk_gib,
                b.providers.unwrap_or_default(),
            )
            .await?,
        ),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStoragePool {
    pub zone_id: ZoneId,
    pub name: String,
    pub capacity_gib: u64,
    /// `local` (default) or `shared`: a directory mounted at `path` on every host of the
    /// zone; the zone's new instances keep their root disk there (HA restart, live
    /// migration without a disk copy). One shared pool per zone.
    #[serde(default)]
    pub kind: Option<zy_model::compute::PoolKind>,
    /// For a shared pool: the absolute mount path, the same on every host.
    #[serde(default)]
    pub path: Option<String>,
}

#[utoipa::path(get, path = "/v1/storage-pools", tag = "compute", responses((status = 200, body = List<StoragePool>), (status = "default", body = ErrorBody)))]
pub async fn list_storage_pools(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<StoragePool>>> {
    Ok(axum::Json(List {
        items: crate::app::volumes::list_pools(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/storage-pools", tag = "compute", request_body = CreateStoragePool, responses((status = 201, body = StoragePool), (status = "default", body = ErrorBody)))]
pub async fn create_storage_pool(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateStoragePool>,
) -> ApiResult<(StatusCode, axum::Json<StoragePool>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(
            crate::app::volumes::create_pool(
                &s,
                &ctx,
                &actor,
                b.zone_id,
                &b.name,
                b.capacity_gib,
                (
                    b.kind.unwrap_or(zy_model::compute::PoolKind::Local),
                    b.path.as_deref(),
                ),
            )
            .await?,
        ),
    ))
}
