//! The HTTP API under `/v1`: thin handlers (parse, authenticate, call one application
//! function, shape the answer), declared with utoipa so the OpenAPI document is generated
//! from this code. [`router`] assembles them with the operational endpoints.

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod departments;
pub mod ha;
pub mod instances;
pub mod inventory;
pub mod leases;
pub mod load_balancers;
pub mod memberships;
pub mod metrics;
pub mod networks;
pub mod notifications;
pub mod operations;
pub mod projects;
pub mod requests;
pub mod secev;
pub mod security;
pub mod supervision;
pub mod system;
pub mod tokens;
pub mod users;
pub mod volumes;

use crate::error::{ErrorBody, ErrorDetail};
use crate::state::AppState;
use serde::Deserialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zy_model::page::PageRequest;
use zy_model::Error;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "zhengyun 政云 API",
        description = "政务云管理平台 API — the zhengyun government cloud platform. Errors always use the body `{ \"error\": { \"code\", \"message\", \"request_id\", \"details\" } }`; messages follow `Accept-Language` (zh-CN by default, en).",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody, ErrorDetail, zy_model::ErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "登录、会话与双因素认证 / login, sessions, second factor"),
        (name = "departments", description = "部门（委办局）/ departments"),
        (name = "projects", description = "项目（业务系统）/ projects"),
        (name = "users", description = "用户 / users"),
        (name = "memberships", description = "角色授权 / role grants"),
        (name = "tokens", description = "API 令牌 / API tokens"),
        (name = "security", description = "安全管理：账号安全、地址规划、安全事件、漏洞管理 / security administration, address plan, security events, vulnerabilities"),
        (name = "audit", description = "审计日志 / audit log"),
        (name = "compute", description = "计算资源：云服务商、可用区、宿主机、规格、镜像、配额、云主机 / compute"),
        (name = "requests", description = "资源申请、审批、交付与验收 / resource requests, approvals, delivery and acceptance"),
        (name = "notifications", description = "通知：站内信、偏好、邮件与 Webhook / notifications: inbox, preferences, e-mail and webhooks"),
        (name = "billing", description = "计量、计费与账单：价格目录、月结、调整、对账、预算 / metering, rating and billing"),
        (name = "load-balancers", description = "负载均衡：监听器、后端池、成员与健康检查 / load balancers: listeners, pools, members and health checks"),
        (name = "networks", description = "虚拟网络：VPC、子网、网卡、安全组、外部网络与弹性IP / virtual networks, security groups and elastic IPs"),
        (name = "metrics", description = "监控与告警：指标历史、告警规则、告警与静默 / monitoring: metrics history, alert rules, alerts and silences"),
        (name = "operations", description = "运维：工单、巡检、服务质量考核 / operations: tickets, inspections, provider SLA scores"),
        (name = "supervision", description = "监管：指标、监管大屏、闲置资源与运维报告 / supervision: indicators, dashboard, idle resources and operations reports"),
        (name = "system", description = "运行状态与后台任务 / health, metrics, background tasks and sagas"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::actor::SESSION_COOKIE,
            ))),
        );
    }
}

/// Every route with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::enrol_mfa))
        .routes(routes!(auth::confirm_mfa))
        .routes(routes!(
            departments::list_departments,
            departments::create_department
        ))
        .routes(routes!(
            departments::get_department,
            departments::update_department,
            departments::delete_department
        ))
        .routes(routes!(projects::list_projects, projects::create_project))
        .routes(routes!(
            projects::get_project,
            projects::update_project,
            projects::delete_project
        ))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(
            memberships::list_memberships,
            memberships::grant_membership
        ))
        .routes(routes!(memberships::revoke_membership))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(security::lock_user))
        .routes(routes!(security::unlock_user))
        .routes(routes!(security::reset_user_password))
        .routes(routes!(security::reset_user_mfa))
        .routes(routes!(
            security::get_security_settings,
            security::update_security_settings
        ))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::verify_audit))
        .routes(routes!(audit::export_audit))
        .routes(routes!(audit::purge_audit))
        .routes(routes!(
            inventory::list_providers,
            inventory::create_provider
        ))
        .routes(routes!(inventory::update_provider))
        .routes(routes!(
            inventory::get_openstack_settings,
            inventory::put_openstack_settings
        ))
        .routes(routes!(inventory::sync_openstack))
        .routes(routes!(inventory::openstack_drift))
        .routes(routes!(inventory::adopt_openstack_drift))
        .routes(routes!(inventory::dismiss_openstack_drift))
        .routes(routes!(inventory::list_zones, inventory::create_zone))
        .routes(routes!(inventory::update_zone))
        .routes(routes!(inventory::list_hosts, inventory::create_hosts))
        .routes(routes!(inventory::update_host))
        .routes(routes!(inventory::list_flavors, inventory::create_flavor))
        .routes(routes!(inventory::list_images, inventory::create_image))
        .routes(routes!(instances::get_quota, instances::set_quota))
        .routes(routes!(
            instances::list_instances,
            instances::create_instances
        ))
        .routes(routes!(instances::get_instance, instances::delete_instance))
        .routes(routes!(instances::start_instance))
        .routes(routes!(instances::stop_instance))
        .routes(routes!(instances::reboot_instance))
        .routes(routes!(instances::resize_instance))
        .routes(routes!(instances::instance_events))
        .routes(routes!(instances::instance_console))
        .routes(routes!(instances::admin_check))
        .routes(routes!(instances::instance_sagas))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(notifications::unread_notifications))
        .routes(routes!(notifications::read_notification))
        .routes(routes!(notifications::read_all_notifications))
        .routes(routes!(
            notifications::get_notification_preferences,
            notifications::update_notification_preferences
        ))
        .routes(routes!(
            notifications::get_mail_settings,
            notifications::update_mail_settings
        ))
        .routes(routes!(notifications::list_mail_deliveries))
        .routes(routes!(
            notifications::list_webhooks,
            notifications::create_webhook
        ))
        .routes(routes!(
            notifications::update_webhook,
            notifications::delete_webhook
        ))
        .routes(routes!(notifications::list_webhook_deliveries))
        .routes(routes!(leases::set_instance_lease))
        .routes(routes!(leases::release_instance))
        .routes(routes!(leases::restore_instance))
        .routes(routes!(leases::release_volume))
        .routes(routes!(leases::restore_volume))
        .routes(routes!(
            leases::get_lease_settings,
            leases::update_lease_settings
        ))
        .routes(routes!(ha::list_recoveries))
        .routes(routes!(ha::set_instance_ha))
        .routes(routes!(ha::list_host_groups))
        .routes(routes!(ha::put_host_group, ha::delete_host_group))
        .routes(routes!(ha::evacuate_host))
        .routes(routes!(ha::get_evacuation))
        .routes(routes!(
            ha::propose_consolidation,
            ha::list_consolidation_plans
        ))
        .routes(routes!(ha::get_consolidation_plan))
        .routes(routes!(ha::approve_consolidation_plan))
        .routes(routes!(ha::stop_consolidation_plan))
        .routes(routes!(system::list_tasks))
        .routes(routes!(system::list_sagas))
        .routes(routes!(agents::create_join_token))
        .routes(routes!(agents::list_join_tokens))
        .routes(routes!(agents::join_agent))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::migrate_instance))
        .routes(routes!(agents::instance_migrations))
        .routes(routes!(agents::instance_metrics))
        .routes(routes!(
            inventory::list_storage_pools,
            inventory::create_storage_pool
        ))
        .routes(routes!(volumes::list_volumes, volumes::create_volume))
        .routes(routes!(volumes::get_volume, volumes::delete_volume))
        .routes(routes!(volumes::attach_volume))
        .routes(routes!(volumes::detach_volume))
        .routes(routes!(volumes::extend_volume))
        .routes(routes!(
            load_balancers::list_load_balancers,
            load_balancers::create_load_balancer
        ))
        .routes(routes!(
            load_balancers::get_load_balancer,
            load_balancers::delete_load_balancer
        ))
        .routes(routes!(load_balancers::set_load_balancer_listeners))
        .routes(routes!(networks::list_vpcs, networks::create_vpc))
        .routes(routes!(
            networks::get_vpc,
            networks::update_vpc,
            networks::delete_vpc
        ))
        .routes(routes!(networks::create_subnet))
        .routes(routes!(networks::delete_subnet))
        .routes(routes!(networks::list_nics, networks::create_nic))
        .routes(routes!(networks::delete_nic))
        .routes(routes!(networks::set_nic_security_groups))
        .routes(routes!(
            networks::list_security_groups,
            networks::create_security_group
        ))
        .routes(routes!(
            networks::get_security_group,
            networks::delete_security_group
        ))
        .routes(routes!(networks::set_security_group_rules))
        .routes(routes!(
            networks::list_external_networks,
            networks::create_external_network
        ))
        .routes(routes!(
            networks::list_elastic_ips,
            networks::allocate_elastic_ip
        ))
        .routes(routes!(networks::bind_elastic_ip))
        .routes(routes!(networks::unbind_elastic_ip))
        .routes(routes!(networks::release_elastic_ip))
        .routes(routes!(networks::host_firewall))
        .routes(routes!(requests::list_requests, requests::create_request))
        .routes(routes!(
            requests::get_request,
            requests::update_request,
            requests::delete_request
        ))
        .routes(routes!(requests::submit_request))
        .routes(routes!(requests::withdraw_request))
        .routes(routes!(requests::copy_request))
        .routes(routes!(requests::approve_request))
        .routes(routes!(requests::reject_request))
        .routes(routes!(requests::return_request))
        .routes(routes!(requests::accept_request))
        .routes(routes!(requests::report_problem))
        .routes(routes!(requests::redeliver_request))
        .routes(routes!(
            requests::list_approval_chains,
            requests::set_approval_chain
        ))
        .routes(routes!(requests::delete_approval_chain))
        .routes(routes!(requests::set_requests_only))
        .routes(routes!(metrics::query_metrics))
        .routes(routes!(metrics::prometheus_metrics))
        .routes(routes!(
            metrics::get_remote_write,
            metrics::set_remote_write
        ))
        .routes(routes!(alerts::list_alert_rules, alerts::create_alert_rule))
        .routes(routes!(alerts::delete_alert_rule))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::list_alert_history))
        .routes(routes!(alerts::list_silences, alerts::create_silence))
        .routes(routes!(alerts::delete_silence))
        .routes(routes!(operations::list_tickets, operations::open_ticket))
        .routes(routes!(operations::get_ticket))
        .routes(routes!(operations::accept_ticket))
        .routes(routes!(operations::resolve_ticket))
        .routes(routes!(operations::reopen_ticket))
        .routes(routes!(operations::comment_ticket))
        .routes(routes!(operations::close_ticket))
        .routes(routes!(
            operations::get_ticket_settings,
            operations::set_ticket_settings
        ))
        .routes(routes!(
            operations::list_inspection_plans,
            operations::create_inspection_plan
        ))
        .routes(routes!(operations::delete_inspection_plan))
        .routes(routes!(operations::run_inspection_plan))
        .routes(routes!(operations::list_inspection_runs))
        .routes(routes!(operations::get_inspection_run))
        .routes(routes!(operations::list_sla_scores))
        .routes(routes!(operations::compute_sla_scores))
        .routes(routes!(
            operations::get_sla_policy,
            operations::set_sla_policy
        ))
        .routes(routes!(billing::usage_report))
        .routes(routes!(
            billing::list_price_versions,
            billing::create_price_version
        ))
        .routes(routes!(billing::withdraw_price_version))
        .routes(routes!(billing::list_billing_months))
        .routes(routes!(billing::close_month))
        .routes(routes!(billing::set_billing_clock))
        .routes(routes!(billing::list_bills))
        .routes(routes!(billing::get_bill))
        .routes(routes!(billing::export_bill))
        .routes(routes!(billing::adjust_bill))
        .routes(routes!(billing::confirm_bill))
        .routes(routes!(billing::pay_bill))
        .routes(routes!(billing::list_provider_bills))
        .routes(routes!(billing::get_budget, billing::set_budget))
        .routes(routes!(
            billing::list_reconciliations,
            billing::create_reconciliation
        ))
        .routes(routes!(
            secev::list_address_blocks,
            secev::create_address_block
        ))
        .routes(routes!(secev::delete_address_block))
        .routes(routes!(secev::list_security_events))
        .routes(routes!(secev::security_event_counts))
        .routes(routes!(secev::syslog_intake))
        .routes(routes!(
            secev::get_security_policy,
            secev::update_security_policy
        ))
        .routes(routes!(
            secev::list_security_event_rules,
            secev::create_security_event_rule
        ))
        .routes(routes!(secev::delete_security_event_rule))
        .routes(routes!(secev::list_vulnerabilities))
        .routes(routes!(secev::vulnerability_counts))
        .routes(routes!(secev::import_vulnerabilities))
        .routes(routes!(secev::set_vulnerability_state))
        .routes(routes!(supervision::get_indicators))
        .routes(routes!(supervision::compare_providers))
        .routes(routes!(supervision::rank_departments))
        .routes(routes!(supervision::indicator_trends))
        .routes(routes!(supervision::supervision_dashboard))
        .routes(routes!(supervision::refresh_indicators))
        .routes(routes!(
            supervision::list_ops_reports,
            supervision::create_ops_report
        ))
        .routes(routes!(supervision::download_ops_report))
        .routes(routes!(supervision::list_idle_resources))
        .routes(routes!(supervision::reclaimed_capacity))
        .routes(routes!(supervision::reclaim_idle_resource))
        .routes(routes!(supervision::dismiss_idle_resource))
        .routes(routes!(
            supervision::get_idle_settings,
            supervision::update_idle_settings
        ))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
}

/// The OpenAPI document, as checked in at `openapi/zhengyun.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// A list returned whole (small collections: providers, zones, flavors, …).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
}

/// Paging parameters every list takes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Items per page, 1–1000 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `name`, `-name`, `created_at` or `-created_at`.
    pub sort: Option<String>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
}

impl ListParams {
    pub fn page(&self) -> Result<PageRequest, Error> {
        PageRequest::parse(self.limit, self.cursor.as_deref(), self.sort.as_deref())
    }
    pub fn filter(&self) -> Result<zy_store::Filter, Error> {
        Ok(zy_store::Filter {
            q: self
                .q
                .as_deref()
                .map(zy_model::validate::search)
                .transpose()?,
        })
    }
}
