//! Typed ids. Every id passed between layers is one of these newtypes over a UUIDv7
//! (time-ordered, so keyset paging by id follows creation order), never a bare string.

use std::fmt;
use std::str::FromStr;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7())
            }
            /// The resource name used in errors and audit targets.
            pub const KIND: &'static str = $what;
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map($name).map_err(|_| {
                    let (zh, en) = crate::error::what_names($what);
                    crate::Error::invalid(crate::Text::new(
                        format!("{zh}编号格式不正确：应为 UUID"),
                        format!("{en} id is malformed: expected a UUID"),
                    ))
                })
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                        utoipa::openapi::schema::KnownFormat::Uuid,
                    )))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

typed_id!(
    /// A department (委办局).
    DepartmentId, "department");
typed_id!(
    /// A project (业务系统).
    ProjectId, "project");
typed_id!(UserId, "user");
typed_id!(MembershipId, "membership");
typed_id!(TokenId, "token");
typed_id!(SessionId, "session");
typed_id!(
    /// The request id carried in responses, logs and audit records.
    RequestId, "request");
typed_id!(
    /// A cloud service provider (云服务商).
    ProviderId, "provider");
typed_id!(
    /// A zone (资源池/可用区) of a provider.
    ZoneId, "zone");
typed_id!(
    /// A host (宿主机).
    HostId, "host");
typed_id!(StoragePoolId, "storage_pool");
typed_id!(
    /// A group of hosts sharing an HA policy (主机组).
    HostGroupId, "host_group");
typed_id!(
    /// One instance's recovery after its host failed.
    HaRecoveryId, "ha_recovery");
typed_id!(
    /// A maintenance evacuation of a host.
    EvacuationId, "evacuation");
typed_id!(
    /// A consolidation plan (资源整合方案).
    ConsolidationPlanId, "consolidation_plan");
typed_id!(
    /// A flavor (规格).
    FlavorId, "flavor");
typed_id!(
    /// An image or application template (镜像/应用模板).
    ImageId, "image");
typed_id!(
    /// An instance (云主机).
    InstanceId, "instance");
typed_id!(
    /// A volume (云硬盘).
    VolumeId, "volume");
typed_id!(ServerGroupId, "server_group");
typed_id!(EventId, "event");
typed_id!(
    /// A one-time token a host agent joins with.
    JoinTokenId, "join_token");
typed_id!(
    /// A live migration of an instance between hosts.
    MigrationId, "migration");
typed_id!(
    /// A resource request (资源申请): new resources, a change, or a release.
    ResourceRequestId, "resource_request");
typed_id!(
    /// An approval chain (审批流程) of a department and request kind.
    ApprovalChainId, "approval_chain");

typed_id!(
    /// One notice in one user's inbox.
    NotificationId, "notification");
typed_id!(
    /// A webhook subscription.
    WebhookId, "webhook");
typed_id!(
    /// One e-mail or webhook call in the outbox.
    DeliveryId, "delivery");
typed_id!(
    /// A version of a provider's price list (价格目录).
    PriceVersionId, "price_version");
typed_id!(
    /// An adjustment line on a closed bill.
    AdjustmentId, "adjustment");
typed_id!(
    /// A virtual private network (虚拟私有网络, VPC).
    VpcId, "vpc");
typed_id!(
    /// A subnet (子网) of a VPC.
    SubnetId, "subnet");
typed_id!(
    /// A network interface (网卡) of an instance on a subnet.
    NicId, "nic");
typed_id!(
    /// A security group (安全组).
    SecurityGroupId, "security_group");
typed_id!(
    /// An external network (外部网络, e.g. 政务外网) of a zone.
    ExternalNetworkId, "external_network");
typed_id!(
    /// An elastic IP (弹性IP) on an external network.
    ElasticIpId, "elastic_ip");
typed_id!(
    /// One item of an OpenStack provider's drift history (a server or volume that
    /// appeared, changed or disappeared outside zhengyun).
    DriftItemId, "drift_item");
typed_id!(
    /// A load balancer (负载均衡) with its virtual IP on a subnet.
    LoadBalancerId, "load_balancer");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_reject_garbage() {
        let id = ProjectId::new();
        assert_eq!(id.to_string().parse::<ProjectId>().ok(), Some(id));
        let err = "../../etc/passwd"
            .parse::<ProjectId>()
            .err()
            .map(|e| e.code);
        assert_eq!(err, Some(crate::ErrorCode::InvalidRequest));
    }

    #[test]
    fn ids_are_ordered_by_creation() {
        let a = UserId::new();
        let b = UserId::new();
        assert!(a < b);
    }
}
