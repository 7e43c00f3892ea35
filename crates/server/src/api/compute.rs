//! Compute endpoints: providers, zones, hosts, flavors, images, quotas, instances and the
//! invariant check.

use crate::app::{instances as inst, inventory as inv, quotas};
use crate::auth::actor::Actor;
use crate::compute::check::CheckReport;
use crate::compute::drivers::SimSettings;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zy_model::compute::*;
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};

#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    /// e.g. 浪潮云
    pub name: String,
    /// `sim` (simulated provider).
    pub kind: String,
    pub description: Option<String>,
    pub sim: Option<SimSettings>,
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuotaScope {
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
}

#[utoipa::path(get, path = "/v1/quotas", tag = "compute", params(QuotaScope), responses((status = 200, body = Quota), (status = "default", body = ErrorBody)))]
pub async fn get_quota(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<QuotaScope>,
) -> ApiResult<axum::Json<Quota>> {
    Ok(axum::Json(
        quotas::get(&s, &actor, q.department_id, q.project_id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuota {
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub limits: QuotaLimits,
}

#[utoipa::path(put, path = "/v1/quotas", tag = "compute", request_body = SetQuota, responses((status = 200, body = Quota), (status = "default", body = ErrorBody)))]
pub async fn set_quota(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<SetQuota>,
) -> ApiResult<axum::Json<Quota>> {
    Ok(axum::Json(
        quotas::set(&s, &ctx, &actor, b.department_id, b.project_id, b.limits).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The group's name in the project; created on first use.
    pub name: String,
    pub policy: GroupPolicy,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstances {
    pub project_id: ProjectId,
    /// Name, or prefix when `count` > 1 (`name-001` …).
    pub name: String,
    /// Flavor name or id, e.g. `2C4G`.
    pub flavor: String,
    /// Image name or id.
    pub image: String,
    /// Root disk size; defaults to the image's minimum.
    pub disk_gib: Option<u64>,
    pub zone_id: Option<ZoneId>,
    pub provider_id: Option<ProviderId>,
    /// How many (1–500, default 1).
    #[schema(minimum = 1, maximum = 500)]
    pub count: Option<u32>,
    pub group: Option<GroupSpec>,
    /// Start after creation (default true).
    pub start: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListInstances {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    /// Include deleted instances.
    pub deleted: Option<bool>,
}

#[utoipa::path(get, path = "/v1/instances", tag = "compute", params(ListInstances), responses((status = 200, body = Page<Instance>), (status = "default", body = ErrorBody)))]
pub async fn list_instances(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListInstances>,
) -> ApiResult<axum::Json<Page<Instance>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref(), q.sort.as_deref())?;
    Ok(axum::Json(
        inst::list(&s, &actor, &page, q.project_id, q.deleted.unwrap_or(false)).await?,
    ))
}

#[utoipa::path(post, path = "/v1/instances", tag = "compute", request_body = CreateInstances, responses((status = 202, body = List<Instance>), (status = "default", body = ErrorBody)))]
pub async fn create_instances(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateInstances>,
) -> ApiResult<(StatusCode, axum::Json<List<Instance>>)> {
    let n = inst::NewInstances {
        project_id: b.project_id,
        name: b.name,
        flavor: b.flavor,
        image: b.image,
        disk_gib: b.disk_gib,
        zone_id: b.zone_id,
        provider_id: b.provider_id,
        count: b.count.unwrap_or(1),
        group: b.group.map(|g| (g.name, g.policy)),
        start: b.start.unwrap_or(true),
    };
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(List {
            items: inst::create(&s, &ctx, &actor, n).await?,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/instances/{id}", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 200, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn get_instance(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<Instance>> {
    Ok(axum::Json(inst::get(&s, &actor, id).await?))
}

#[utoipa::path(delete, path = "/v1/instances/{id}", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn delete_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::act(&s, &ctx, &actor, id, "delete").await?),
    ))
}

#[utoipa::path(post, path = "/v1/instances/{id}/start", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn start_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::act(&s, &ctx, &actor, id, "start").await?),
    ))
}

#[utoipa::path(post, path = "/v1/instances/{id}/stop", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn stop_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::act(&s, &ctx, &actor, id, "stop").await?),
    ))
}

#[utoipa::path(post, path = "/v1/instances/{id}/reboot", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn reboot_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::act(&s, &ctx, &actor, id, "reboot").await?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeInstance {
    pub flavor: String,
    pub disk_gib: Option<u64>,
}

#[utoipa::path(post, path = "/v1/instances/{id}/resize", tag = "compute", params(("id" = InstanceId, Path)), request_body = ResizeInstance, responses((status = 202, body = Instance), (status = "default", body = ErrorBody)))]
pub async fn resize_instance(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Json(b): Json<ResizeInstance>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(inst::resize(&s, &ctx, &actor, id, &b.flavor, b.disk_gib).await?),
    ))
}

#[utoipa::path(get, path = "/v1/instances/{id}/events", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 200, body = List<InstanceEvent>), (status = "default", body = ErrorBody)))]
pub async fn instance_events(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<List<InstanceEvent>>> {
    Ok(axum::Json(List {
        items: inst::events(&s, &actor, id).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleLog {
    pub output: String,
}

#[utoipa::path(get, path = "/v1/instances/{id}/console", tag = "compute", params(("id" = InstanceId, Path)), responses((status = 200, body = ConsoleLog), (status = "default", body = ErrorBody)))]
pub async fn instance_console(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<ConsoleLog>> {
    Ok(axum::Json(ConsoleLog {
        output: inst::console(&s, &actor, id).await?,
    }))
}

#[utoipa::path(get, path = "/v1/admin/check", tag = "compute", responses((status = 200, body = CheckReport), (status = "default", body = ErrorBody)))]
pub async fn admin_check(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<CheckReport>> {
    zy_policy::authorize(&actor.principal, zy_policy::Action::AdminCheck).map_err(ApiError)?;
    Ok(axum::Json(
        crate::compute::check::run(&s.compute, &s.store).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStoragePool {
    pub zone_id: ZoneId,
    pub name: String,
    pub capacity_gib: u64,
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
            crate::app::volumes::create_pool(&s, &ctx, &actor, b.zone_id, &b.name, b.capacity_gib)
                .await?,
        ),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    pub project_id: ProjectId,
    pub name: String,
    pub size_gib: u64,
    /// The pool to take space from; default: the one with most free space.
    pub pool_id: Option<StoragePoolId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListVolumes {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
}

#[utoipa::path(get, path = "/v1/volumes", tag = "compute", params(ListVolumes), responses((status = 200, body = Page<Volume>), (status = "default", body = ErrorBody)))]
pub async fn list_volumes(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListVolumes>,
) -> ApiResult<axum::Json<Page<Volume>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref(), q.sort.as_deref())?;
    Ok(axum::Json(
        crate::app::volumes::list(&s, &actor, &page, q.project_id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/volumes", tag = "compute", request_body = CreateVolume, responses((status = 201, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn create_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateVolume>,
) -> ApiResult<(StatusCode, axum::Json<Volume>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(
            crate::app::volumes::create(
                &s,
                &ctx,
                &actor,
                b.project_id,
                &b.name,
                b.size_gib,
                b.pool_id,
            )
            .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/v1/volumes/{id}", tag = "compute", params(("id" = VolumeId, Path)), responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn get_volume(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<VolumeId>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(crate::app::volumes::get(&s, &actor, id).await?))
}

#[utoipa::path(delete, path = "/v1/volumes/{id}", tag = "compute", params(("id" = VolumeId, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
) -> ApiResult<StatusCode> {
    crate::app::volumes::delete(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachVolume {
    pub instance_id: InstanceId,
}

#[utoipa::path(post, path = "/v1/volumes/{id}/attach", tag = "compute", params(("id" = VolumeId, Path)), request_body = AttachVolume, responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn attach_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
    Json(b): Json<AttachVolume>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        crate::app::volumes::attach(&s, &ctx, &actor, id, b.instance_id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/volumes/{id}/detach", tag = "compute", params(("id" = VolumeId, Path)), responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn detach_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        crate::app::volumes::detach(&s, &ctx, &actor, id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendVolume {
    pub size_gib: u64,
}

#[utoipa::path(post, path = "/v1/volumes/{id}/extend", tag = "compute", params(("id" = VolumeId, Path)), request_body = ExtendVolume, responses((status = 200, body = Volume), (status = "default", body = ErrorBody)))]
pub async fn extend_volume(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VolumeId>,
    Json(b): Json<ExtendVolume>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        crate::app::volumes::extend(&s, &ctx, &actor, id, b.size_gib).await?,
    ))
}
