//! `/v1/vpcs`, `/v1/subnets`, `/v1/instances/{id}/nics`, `/v1/nics`,
//! `/v1/security-groups`, `/v1/external-networks`, `/v1/elastic-ips`: virtual networks
//! (虚拟私有网络), security groups (安全组) and elastic IPs (弹性IP).

use crate::app::networks as app;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zy_model::id::*;
use zy_model::network::*;
use zy_policy::{authorize, Action};

type Created<T> = ApiResult<(StatusCode, axum::Json<T>)>;

fn created<T>(v: T) -> Created<T> {
    Ok((StatusCode::CREATED, axum::Json(v)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ByProject {
    /// Only this project's (VPCs: with its department's shared ones).
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
}

#[utoipa::path(get, path = "/v1/vpcs", tag = "networks", params(ByProject), responses((status = 200, body = Vec<Vpc>), (status = "default", body = ErrorBody)))]
pub async fn list_vpcs(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ByProject>,
) -> ApiResult<axum::Json<Vec<Vpc>>> {
    Ok(axum::Json(app::list_vpcs(&s, &actor, q.project_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVpc {
    /// The owning project; omit it (and give `department_id`) for a VPC shared by the
    /// whole department.
    pub project_id: Option<ProjectId>,
    pub department_id: Option<DepartmentId>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Outbound access (出网) through the zone's external network for NICs without an
    /// elastic IP (default true).
    pub outbound: Option<bool>,
}

#[utoipa::path(post, path = "/v1/vpcs", tag = "networks", request_body = CreateVpc, responses((status = 201, body = Vpc), (status = "default", body = ErrorBody)))]
pub async fn create_vpc(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateVpc>,
) -> Created<Vpc> {
    let b = app::NewVpc {
        department_id: b.department_id,
        project_id: b.project_id,
        name: b.name,
        description: b.description,
        outbound: b.outbound.unwrap_or(true),
    };
    created(app::create_vpc(&s, &ctx, &actor, b).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVpc {
    /// Outbound access (出网) for NICs without an elastic IP.
    pub outbound: Option<bool>,
    /// The generation read; when given, a VPC changed since is a 409.
    pub generation: Option<i64>,
}

#[utoipa::path(patch, path = "/v1/vpcs/{id}", tag = "networks", params(("id" = VpcId, Path)), request_body = UpdateVpc, responses((status = 200, body = Vpc), (status = "default", body = ErrorBody)))]
pub async fn update_vpc(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VpcId>,
    Json(b): Json<UpdateVpc>,
) -> ApiResult<axum::Json<Vpc>> {
    Ok(axum::Json(
        app::update_vpc(&s, &ctx, &actor, id, b.outbound, b.generation).await?,
    ))
}

#[utoipa::path(get, path = "/v1/vpcs/{id}", tag = "networks", params(("id" = VpcId, Path)), responses((status = 200, body = VpcDetail), (status = "default", body = ErrorBody)))]
pub async fn get_vpc(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<VpcId>,
) -> ApiResult<axum::Json<VpcDetail>> {
    Ok(axum::Json(app::get_vpc(&s, &actor, id).await?))
}

#[utoipa::path(delete, path = "/v1/vpcs/{id}", tag = "networks", params(("id" = VpcId, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_vpc(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VpcId>,
) -> ApiResult<StatusCode> {
    app::delete_vpc(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubnet {
    pub name: String,
    /// IPv4 CIDR from /8 to /29, e.g. `10.0.1.0/24`; must not overlap another subnet of the
    /// same VPC.
    pub cidr: String,
    /// Default: the first host address.
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// Serve DHCP on the subnet (default true).
    pub dhcp: Option<bool>,
}

#[utoipa::path(post, path = "/v1/vpcs/{id}/subnets", tag = "networks", params(("id" = VpcId, Path)), request_body = CreateSubnet, responses((status = 201, body = Subnet), (status = "default", body = ErrorBody)))]
pub async fn create_subnet(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<VpcId>,
    Json(b): Json<CreateSubnet>,
) -> Created<Subnet> {
    let b = app::NewSubnet {
        name: b.name,
        cidr: b.cidr,
        gateway: b.gateway,
        dns_servers: b.dns_servers,
        dhcp: b.dhcp,
    };
    created(app::create_subnet(&s, &ctx, &actor, id, b).await?)
}

#[utoipa::path(delete, path = "/v1/subnets/{id}", tag = "networks", params(("id" = SubnetId, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_subnet(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<SubnetId>,
) -> ApiResult<StatusCode> {
    app::delete_subnet(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/instances/{id}/nics", tag = "networks", params(("id" = InstanceId, Path)), responses((status = 200, body = Vec<Nic>), (status = "default", body = ErrorBody)))]
pub async fn list_nics(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<InstanceId>,
) -> ApiResult<axum::Json<Vec<Nic>>> {
    Ok(axum::Json(app::list_nics(&s, &actor, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNic {
    pub subnet_id: SubnetId,
    /// A fixed address of the subnet; default: the next free one.
    pub ip: Option<String>,
    #[serde(default)]
    pub security_group_ids: Vec<SecurityGroupId>,
}

#[utoipa::path(post, path = "/v1/instances/{id}/nics", tag = "networks", params(("id" = InstanceId, Path)), request_body = CreateNic, responses((status = 201, body = Nic), (status = "default", body = ErrorBody)))]
pub async fn create_nic(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<InstanceId>,
    Json(b): Json<CreateNic>,
) -> Created<Nic> {
    created(
        app::create_nic(
            &s,
            &ctx,
            &actor,
            id,
            b.subnet_id,
            b.ip.as_deref(),
            b.security_group_ids,
        )
        .await?,
    )
}

#[utoipa::path(delete, path = "/v1/nics/{id}", tag = "networks", params(("id" = NicId, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_nic(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<NicId>,
) -> ApiResult<StatusCode> {
    app::delete_nic(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetNicGroups {
    /// At most 5 groups of the NIC's project.
    pub security_group_ids: Vec<SecurityGroupId>,
}

#[utoipa::path(put, path = "/v1/nics/{id}/security-groups", tag = "networks", params(("id" = NicId, Path)), request_body = SetNicGroups, responses((status = 200, body = Nic), (status = "default", body = ErrorBody)))]
pub async fn set_nic_security_groups(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<NicId>,
    Json(b): Json<SetNicGroups>,
) -> ApiResult<axum::Json<Nic>> {
    Ok(axum::Json(
        app::set_nic_groups(&s, &ctx, &actor, id, b.security_group_ids).await?,
    ))
}

#[utoipa::path(get, path = "/v1/security-groups", tag = "networks", params(ByProject), responses((status = 200, body = Vec<SecurityGroup>), (status = "default", body = ErrorBody)))]
pub async fn list_security_groups(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ByProject>,
) -> ApiResult<axum::Json<Vec<SecurityGroup>>> {
    Ok(axum::Json(
        app::list_groups(&s, &actor, q.project_id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecurityGroup {
    pub project_id: ProjectId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Default: everything outbound allowed, nothing inbound.
    pub rules: Option<Vec<SecurityRule>>,
}

#[utoipa::path(post, path = "/v1/security-groups", tag = "networks", request_body = CreateSecurityGroup, responses((status = 201, body = SecurityGroup), (status = "default", body = ErrorBody)))]
pub async fn create_security_group(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateSecurityGroup>,
) -> Created<SecurityGroup> {
    created(
        app::create_group(
            &s,
            &ctx,
            &actor,
            b.project_id,
            &b.name,
            &b.description,
            b.rules,
        )
        .await?,
    )
}

#[utoipa::path(get, path = "/v1/security-groups/{id}", tag = "networks", params(("id" = SecurityGroupId, Path)), responses((status = 200, body = SecurityGroup), (status = "default", body = ErrorBody)))]
pub async fn get_security_group(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<SecurityGroupId>,
) -> ApiResult<axum::Json<SecurityGroup>> {
    Ok(axum::Json(app::get_group(&s, &actor, id).await?))
}

#[utoipa::path(delete, path = "/v1/security-groups/{id}", tag = "networks", params(("id" = SecurityGroupId, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_security_group(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<SecurityGroupId>,
) -> ApiResult<StatusCode> {
    app::delete_group(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRules {
    /// The group's generation as read; a change made meanwhile gives 409.
    pub generation: i64,
    /// The whole new rule list (at most 1000).
    pub rules: Vec<SecurityRule>,
}

#[utoipa::path(put, path = "/v1/security-groups/{id}/rules", tag = "networks", params(("id" = SecurityGroupId, Path)), request_body = SetRules, responses((status = 200, body = SecurityGroup), (status = "default", body = ErrorBody)))]
pub async fn set_security_group_rules(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<SecurityGroupId>,
    Json(b): Json<SetRules>,
) -> ApiResult<axum::Json<SecurityGroup>> {
    Ok(axum::Json(
        app::set_rules(&s, &ctx, &actor, id, b.generation, b.rules).await?,
    ))
}

#[utoipa::path(get, path = "/v1/external-networks", tag = "networks", responses((status = 200, body = Vec<ExternalNetwork>), (status = "default", body = ErrorBody)))]
pub async fn list_external_networks(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<Vec<ExternalNetwork>>> {
    Ok(axum::Json(app::list_external(&s, &actor).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExternalNetwork {
    pub zone_id: ZoneId,
    pub name: String,
    pub cidr: String,
    /// Default: the first host address.
    pub gateway: Option<String>,
    /// The host interface or bridge the network is reached on (≤ 15 characters).
    pub host_interface: String,
}

#[utoipa::path(post, path = "/v1/external-networks", tag = "networks", request_body = CreateExternalNetwork, responses((status = 201, body = ExternalNetwork), (status = "default", body = ErrorBody)))]
pub async fn create_external_network(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateExternalNetwork>,
) -> Created<ExternalNetwork> {
    created(
        app::create_external(
            &s,
            &ctx,
            &actor,
            app::NewExternal {
                zone: b.zone_id,
                name: &b.name,
                cidr: &b.cidr,
                gateway: b.gateway.as_deref(),
                host_interface: &b.host_interface,
            },
        )
        .await?,
    )
}

#[utoipa::path(get, path = "/v1/elastic-ips", tag = "networks", params(ByProject), responses((status = 200, body = Vec<ElasticIp>), (status = "default", body = ErrorBody)))]
pub async fn list_elastic_ips(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ByProject>,
) -> ApiResult<axum::Json<Vec<ElasticIp>>> {
    Ok(axum::Json(app::list_eips(&s, &actor, q.project_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateElasticIp {
    pub project_id: ProjectId,
    pub external_network_id: ExternalNetworkId,
}

#[utoipa::path(post, path = "/v1/elastic-ips", tag = "networks", request_body = AllocateElasticIp, responses((status = 201, body = ElasticIp), (status = "default", body = ErrorBody)))]
pub async fn allocate_elastic_ip(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<AllocateElasticIp>,
) -> Created<ElasticIp> {
    created(app::allocate_eip(&s, &ctx, &actor, b.project_id, b.external_network_id).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindElasticIp {
    pub nic_id: NicId,
}

#[utoipa::path(post, path = "/v1/elastic-ips/{id}/bind", tag = "networks", params(("id" = ElasticIpId, Path)), request_body = BindElasticIp, responses((status = 200, body = ElasticIp), (status = "default", body = ErrorBody)))]
pub async fn bind_elastic_ip(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ElasticIpId>,
    Json(b): Json<BindElasticIp>,
) -> ApiResult<axum::Json<ElasticIp>> {
    Ok(axum::Json(
        app::bind_eip(&s, &ctx, &actor, id, b.nic_id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/elastic-ips/{id}/unbind", tag = "networks", params(("id" = ElasticIpId, Path)), responses((status = 200, body = ElasticIp), (status = "default", body = ErrorBody)))]
pub async fn unbind_elastic_ip(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ElasticIpId>,
) -> ApiResult<axum::Json<ElasticIp>> {
    Ok(axum::Json(app::unbind_eip(&s, &ctx, &actor, id).await?))
}

#[utoipa::path(delete, path = "/v1/elastic-ips/{id}", tag = "networks", params(("id" = ElasticIpId, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn release_elastic_ip(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ElasticIpId>,
) -> ApiResult<StatusCode> {
    app::release_eip(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostFirewall {
    /// The nftables rule set (`nft -f` input) the host must enforce now.
    pub ruleset: String,
}

#[utoipa::path(get, path = "/v1/hosts/{id}/firewall", tag = "networks", params(("id" = HostId, Path)), responses((status = 200, body = HostFirewall), (status = "default", body = ErrorBody)))]
pub async fn host_firewall(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<HostId>,
) -> ApiResult<axum::Json<HostFirewall>> {
    authorize(&actor.principal, Action::InventoryManage)?;
    Ok(axum::Json(HostFirewall {
        ruleset: app::host_ruleset(&s.store, id).await?,
    }))
}
