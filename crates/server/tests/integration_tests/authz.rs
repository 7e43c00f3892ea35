//! Every operation × every role, against a checked-in table of the exact status a
//! well-formed request gets (DESIGN.md §2), plus what the same department role gets on
//! another department's objects. An operation in the OpenAPI document without a row fails
//! the test, and so does a row for an operation that no longer exists.
//!
//! The same run checks audit coverage: every mutating operation (POST, PUT, PATCH, DELETE
//! in the OpenAPI document) must succeed for at least one caller, each successful call
//! must leave a success record in the audit log, under its own request id, naming the
//! operation, and each refused one a denied or failure record.

use crate::both_databases;
use crate::common::*;
use crate::world::{Caller, World};
use reqwest::StatusCode;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What a department admin or member of *another* department gets when it sends the same
/// request about this department's objects. A role refused at home (403 in its own
/// column) gets that 403 elsewhere too; this says what a role allowed at home gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elsewhere {
    /// Refused with this status: 403 (the object exists, the role does not reach it) or
    /// 404 (its existence is not revealed).
    Refused(u16),
    /// A list: 200, without any of the other department's objects.
    Hidden,
    /// Not about a department's objects (oneself, the catalogue, public probes): the same
    /// status as at home.
    Same,
}
use Elsewhere::*;

const R403: Elsewhere = Refused(403);

/// The table. One row per OpenAPI operation id; the columns are the status a well-formed
/// request (fixtures in `world.rs`) gets from, in order:
///
///   platform_admin, security_admin, auditor, supervisor, finance, provider_operator,
///   dept_admin, dept_member (both of the object's department), anonymous,
///
/// and last what the same department roles get from another department (`Elsewhere`).
///
/// To add an endpoint: add its row here with the status each role must get, then add a
/// well-formed request for it to `World::request` in `world.rs` (creating a fresh object
/// there if the call consumes one). If it is a mutating operation, it must write an audit
/// record named after its operation id (or list the record's name in `AUDIT_NAMES`).
#[rustfmt::skip]
const TABLE: &[(&str, [u16; 9], Elsewhere)] = &[
    //                           PA   SEC  AUD  SUP  FIN  PO   DA   DM   anon
    ("healthz",                 [200, 200, 200, 200, 200, 200, 200, 200, 200], Same),
    ("readyz",                  [200, 200, 200, 200, 200, 200, 200, 200, 200], Same),
    ("metrics",                 [200, 200, 200, 200, 200, 200, 200, 200, 200], Same),
    ("login",                   [200, 200, 200, 200, 200, 200, 200, 200, 200], Same),
    ("logout",                  [204, 204, 204, 204, 204, 204, 204, 204, 401], Same),
    ("me",                      [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("change_password",         [204, 204, 204, 204, 204, 204, 204, 204, 401], Same),
    ("enrol_mfa",               [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("confirm_mfa",             [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("list_departments",        [200, 403, 403, 200, 200, 403, 200, 200, 401], Hidden),
    ("create_department",       [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("get_department",          [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("update_department",       [200, 403, 403, 403, 403, 403, 403, 403, 401], R403),
    ("delete_department",       [204, 403, 403, 403, 403, 403, 403, 403, 401], R403),
    ("list_projects",           [200, 403, 403, 200, 200, 403, 200, 200, 401], Hidden),
    ("create_project",          [201, 403, 403, 403, 403, 403, 201, 403, 401], R403),
    ("get_project",             [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("update_project",          [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("delete_project",          [204, 403, 403, 403, 403, 403, 204, 403, 401], R403),
    ("list_users",              [200, 200, 403, 403, 403, 403, 200, 403, 401], Hidden),
    ("create_user",             [201, 403, 403, 403, 403, 403, 201, 403, 401], R403),
    ("get_user",                [200, 200, 403, 403, 403, 403, 200, 403, 401], R403),
    ("update_user",             [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("delete_user",             [204, 403, 403, 403, 403, 403, 204, 403, 401], R403),
    ("list_memberships",        [200, 200, 403, 403, 403, 403, 200, 403, 401], R403),
    ("grant_membership",        [201, 403, 403, 403, 403, 403, 201, 403, 401], R403),
    ("revoke_membership",       [204, 403, 403, 403, 403, 403, 204, 403, 401], R403),
    ("list_tokens",             [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("create_token",            [201, 201, 201, 201, 201, 201, 201, 201, 401], Same),
    ("revoke_token",            [403, 204, 403, 403, 403, 403, 403, 403, 401], Same),
    ("lock_user",               [403, 200, 403, 403, 403, 403, 403, 403, 401], R403),
    ("unlock_user",             [403, 200, 403, 403, 403, 403, 403, 403, 401], R403),
    ("reset_user_password",     [403, 200, 403, 403, 403, 403, 403, 403, 401], R403),
    ("reset_user_mfa",          [403, 204, 403, 403, 403, 403, 403, 403, 401], R403),
    ("get_security_settings",   [403, 200, 403, 403, 403, 403, 403, 403, 401], Same),
    ("update_security_settings",[403, 200, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_audit",              [403, 403, 200, 403, 403, 403, 403, 403, 401], Same),
    ("verify_audit",            [403, 403, 200, 403, 403, 403, 403, 403, 401], Same),
    ("export_audit",            [403, 403, 200, 403, 403, 403, 403, 403, 401], Same),
    ("purge_audit",             [403, 403, 200, 403, 403, 403, 403, 403, 401], Same),
    ("list_providers",          [200, 200, 403, 200, 200, 200, 200, 200, 401], Same),
    ("create_provider",         [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("update_provider",         [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("get_openstack_settings",  [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("put_openstack_settings",  [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("sync_openstack",          [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("openstack_drift",         [200, 403, 403, 200, 403, 403, 403, 403, 401], Same),
    ("adopt_openstack_drift",   [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("dismiss_openstack_drift", [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_zones",              [200, 200, 403, 200, 200, 200, 200, 200, 401], Same),
    ("create_zone",             [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("update_zone",             [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_hosts",              [200, 403, 403, 200, 403, 200, 403, 403, 401], Same),
    ("create_hosts",            [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("update_host",             [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_flavors",            [200, 200, 403, 200, 200, 200, 200, 200, 401], Same),
    ("create_flavor",           [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_images",             [200, 200, 403, 200, 200, 200, 200, 200, 401], Same),
    ("create_image",            [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_storage_pools",      [200, 403, 403, 200, 403, 200, 403, 403, 401], Same),
    ("create_storage_pool",     [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("get_quota",               [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("set_quota",               [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("list_instances",          [200, 403, 403, 200, 200, 403, 200, 200, 401], Hidden),
    ("create_instances",        [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("get_instance",            [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("delete_instance",         [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("start_instance",          [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("stop_instance",           [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("reboot_instance",         [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("resize_instance",         [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("instance_events",         [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("instance_console",        [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("instance_metrics",        [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("instance_migrations",     [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("migrate_instance",        [202, 403, 403, 403, 403, 403, 403, 403, 401], R403),
    ("admin_check",             [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("instance_sagas",          [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("list_tasks",              [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_sagas",              [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("create_join_token",       [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_join_tokens",        [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    // Public: the one-time token is the credential.
    ("join_agent",              [201, 201, 201, 201, 201, 201, 201, 201, 201], Same),
    // High availability, maintenance evacuation and consolidation: the platform admin
    // acts, those who read the inventory read; an instance's HA policy is its operators'.
    ("list_recoveries",         [200, 403, 403, 200, 403, 200, 403, 403, 401], Same),
    ("set_instance_ha",         [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("list_host_groups",        [200, 403, 403, 200, 403, 200, 403, 403, 401], Same),
    ("put_host_group",          [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("delete_host_group",       [204, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("evacuate_host",           [202, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("get_evacuation",          [200, 403, 403, 200, 403, 200, 403, 403, 401], Same),
    ("propose_consolidation",   [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_consolidation_plans",[200, 403, 403, 200, 403, 403, 403, 403, 401], Same),
    ("get_consolidation_plan",  [200, 403, 403, 200, 403, 403, 403, 403, 401], Same),
    ("approve_consolidation_plan",[200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("stop_consolidation_plan", [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_agents",             [200, 403, 403, 200, 403, 200, 403, 403, 401], Same),
    ("list_volumes",            [200, 403, 403, 200, 200, 403, 200, 200, 401], Hidden),
    ("create_volume",           [201, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("get_volume",              [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("delete_volume",           [204, 403, 403, 403, 403, 403, 204, 204, 401], R403),
    ("attach_volume",           [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("detach_volume",           [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("extend_volume",           [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    // Virtual networks: read like instances (and by the security admin, who oversees
    // security policy platform-wide); changed by whoever operates the project.
    ("list_vpcs",               [200, 200, 403, 200, 200, 403, 200, 200, 401], Hidden),
    ("create_vpc",              [201, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("get_vpc",                 [200, 200, 403, 200, 200, 403, 200, 200, 401], R403),
    ("update_vpc",              [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("delete_vpc",              [204, 403, 403, 403, 403, 403, 204, 204, 401], R403),
    ("create_subnet",           [201, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("delete_subnet",           [204, 403, 403, 403, 403, 403, 204, 204, 401], R403),
    ("list_nics",               [200, 200, 403, 200, 200, 403, 200, 200, 401], R403),
    ("create_nic",              [201, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("delete_nic",              [204, 403, 403, 403, 403, 403, 204, 204, 401], R403),
    ("set_nic_security_groups", [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("list_security_groups",    [200, 200, 403, 200, 200, 403, 200, 200, 401], Hidden),
    ("create_security_group",   [201, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("get_security_group",      [200, 200, 403, 200, 200, 403, 200, 200, 401], R403),
    ("delete_security_group",   [204, 403, 403, 403, 403, 403, 204, 204, 401], R403),
    ("set_security_group_rules",[200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("list_external_networks",  [200, 200, 403, 200, 200, 200, 200, 200, 401], Same),
    ("create_external_network", [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_elastic_ips",        [200, 200, 403, 200, 200, 403, 200, 200, 401], Hidden),
    ("allocate_elastic_ip",     [201, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("bind_elastic_ip",         [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("unbind_elastic_ip",       [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("release_elastic_ip",      [204, 403, 403, 403, 403, 403, 204, 204, 401], R403),
    ("host_firewall",           [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    // Load balancers: like the other network objects of a project.
    ("list_load_balancers",     [200, 200, 403, 200, 200, 403, 200, 200, 401], Hidden),
    ("create_load_balancer",    [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("get_load_balancer",       [200, 200, 403, 200, 200, 403, 200, 200, 401], R403),
    ("delete_load_balancer",    [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("set_load_balancer_listeners", [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("list_requests",           [200, 403, 403, 200, 200, 200, 200, 200, 401], Hidden),
    ("create_request",          [403, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("get_request",             [200, 403, 403, 200, 200, 403, 200, 200, 401], R403),
    ("update_request",          [403, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("delete_request",          [403, 403, 403, 403, 403, 403, 204, 204, 401], R403),
    ("submit_request",          [403, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("withdraw_request",        [403, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("copy_request",            [403, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("approve_request",         [403, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("reject_request",          [403, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("return_request",          [403, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("accept_request",          [403, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("report_problem",          [403, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("redeliver_request",       [200, 403, 403, 403, 403, 200, 403, 403, 401], R403),
    ("list_approval_chains",    [200, 403, 403, 200, 403, 403, 403, 403, 401], R403),
    ("set_approval_chain",      [200, 403, 403, 403, 403, 403, 403, 403, 401], R403),
    ("delete_approval_chain",   [204, 403, 403, 403, 403, 403, 403, 403, 401], R403),
    ("set_requests_only",       [204, 403, 403, 403, 403, 403, 403, 403, 401], R403),
    // One's own inbox and preferences: every account, about itself only.
    ("list_notifications",      [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("unread_notifications",    [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("read_notification",       [204, 204, 204, 204, 204, 204, 204, 204, 401], Same),
    ("read_all_notifications",  [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("get_notification_preferences",    [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("update_notification_preferences", [200, 200, 200, 200, 200, 200, 200, 200, 401], Same),
    ("get_mail_settings",       [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("update_mail_settings",    [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_mail_deliveries",    [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    // A department's webhooks: its department admin and the platform admin.
    ("list_webhooks",           [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("create_webhook",          [201, 403, 403, 403, 403, 403, 201, 403, 401], R403),
    ("update_webhook",          [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("delete_webhook",          [204, 403, 403, 403, 403, 403, 204, 403, 401], R403),
    ("list_webhook_deliveries", [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    // Leases and the recycle bin: whoever may delete may release; the department admin
    // decides leases and restores.
    ("set_instance_lease",      [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("release_instance",        [202, 403, 403, 403, 403, 403, 202, 202, 401], R403),
    ("restore_instance",        [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("release_volume",          [200, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("restore_volume",          [200, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("get_lease_settings",      [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("update_lease_settings",   [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("get_remote_write",        [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("set_remote_write",        [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("prometheus_metrics",      [200, 403, 403, 200, 403, 403, 403, 403, 401], Same),
    ("query_metrics",           [200, 403, 403, 200, 403, 403, 200, 200, 401], R403),
    ("list_alert_rules",        [200, 403, 403, 200, 403, 200, 200, 200, 401], Hidden),
    ("create_alert_rule",       [201, 403, 403, 403, 403, 403, 201, 403, 401], R403),
    ("delete_alert_rule",       [204, 403, 403, 403, 403, 403, 204, 403, 401], R403),
    ("list_alerts",             [200, 403, 403, 200, 403, 200, 200, 200, 401], Hidden),
    ("list_alert_history",      [200, 403, 403, 200, 403, 200, 200, 200, 401], Hidden),
    ("list_silences",           [200, 403, 403, 200, 403, 200, 200, 200, 401], Hidden),
    ("create_silence",          [201, 403, 403, 403, 403, 403, 201, 403, 401], R403),
    ("delete_silence",          [204, 403, 403, 403, 403, 403, 204, 403, 401], R403),
    ("usage_report",            [403, 403, 403, 200, 200, 403, 200, 403, 401], R403),
    ("list_price_versions",     [200, 200, 403, 200, 200, 200, 200, 200, 401], Same),
    ("create_price_version",    [201, 403, 403, 403, 201, 403, 403, 403, 401], Same),
    ("withdraw_price_version",  [204, 403, 403, 403, 204, 403, 403, 403, 401], Same),
    ("list_billing_months",     [403, 403, 403, 200, 200, 403, 403, 403, 401], Same),
    ("close_month",             [403, 403, 403, 403, 200, 403, 403, 403, 401], Same),
    ("set_billing_clock",       [403, 403, 403, 403, 200, 403, 403, 403, 401], Same),
    ("list_bills",              [403, 403, 403, 200, 200, 403, 200, 403, 401], R403),
    ("get_bill",                [403, 403, 403, 200, 200, 403, 200, 403, 401], R403),
    ("export_bill",             [403, 403, 403, 200, 200, 403, 200, 403, 401], R403),
    ("adjust_bill",             [403, 403, 403, 403, 200, 403, 403, 403, 401], R403),
    ("confirm_bill",            [403, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("pay_bill",                [403, 403, 403, 403, 200, 403, 403, 403, 401], R403),
    ("list_provider_bills",     [403, 403, 403, 200, 200, 200, 403, 403, 401], Same),
    ("get_budget",              [403, 403, 403, 200, 200, 403, 200, 403, 401], R403),
    ("set_budget",              [403, 403, 403, 403, 200, 403, 403, 403, 401], R403),
    ("list_reconciliations",    [403, 403, 403, 200, 200, 200, 403, 403, 401], Same),
    ("create_reconciliation",   [403, 403, 403, 403, 201, 403, 403, 403, 401], Same),
    // Security events and vulnerabilities: the security admin keeps the policy and sees
    // everything; the supervisor reads everything; a department admin sees and works their
    // own department's events and findings; the platform admin reads the policy.
    ("list_address_blocks",     [200, 200, 403, 200, 403, 403, 403, 403, 401], Same),
    ("create_address_block",    [403, 201, 403, 403, 403, 403, 403, 403, 401], Same),
    ("delete_address_block",    [403, 204, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_security_events",    [403, 200, 403, 200, 403, 403, 200, 403, 401], R403),
    ("security_event_counts",   [403, 200, 403, 200, 403, 403, 200, 403, 401], R403),
    ("syslog_intake",           [200, 200, 403, 200, 403, 403, 403, 403, 401], Same),
    ("get_security_policy",     [200, 200, 403, 200, 403, 403, 403, 403, 401], Same),
    ("update_security_policy",  [403, 200, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_security_event_rules",  [200, 200, 403, 200, 403, 403, 403, 403, 401], Same),
    ("create_security_event_rule", [403, 201, 403, 403, 403, 403, 403, 403, 401], Same),
    ("delete_security_event_rule", [403, 204, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_vulnerabilities",    [403, 200, 403, 200, 403, 403, 200, 403, 401], R403),
    ("vulnerability_counts",    [403, 200, 403, 200, 403, 403, 200, 403, 401], R403),
    ("import_vulnerabilities",  [403, 201, 403, 403, 403, 403, 403, 403, 401], Same),
    ("set_vulnerability_state", [403, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("list_tickets",            [200, 403, 403, 200, 403, 200, 200, 200, 401], Hidden),
    ("open_ticket",             [403, 403, 403, 403, 403, 403, 201, 201, 401], R403),
    ("get_ticket",              [200, 403, 403, 200, 403, 200, 200, 200, 401], R403),
    ("accept_ticket",           [200, 403, 403, 403, 403, 200, 403, 403, 401], R403),
    ("resolve_ticket",          [200, 403, 403, 403, 403, 200, 403, 403, 401], R403),
    ("reopen_ticket",           [403, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("comment_ticket",          [200, 403, 403, 200, 403, 200, 200, 200, 401], R403),
    ("close_ticket",            [403, 403, 403, 403, 403, 403, 200, 200, 401], R403),
    ("get_ticket_settings",     [200, 403, 403, 200, 403, 200, 200, 200, 401], Same),
    ("set_ticket_settings",     [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_inspection_plans",   [200, 403, 200, 200, 403, 200, 403, 403, 401], Same),
    ("create_inspection_plan",  [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("delete_inspection_plan",  [204, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("run_inspection_plan",     [201, 403, 403, 403, 403, 403, 403, 403, 401], Same),
    ("list_inspection_runs",    [200, 403, 200, 200, 403, 200, 403, 403, 401], Same),
    ("get_inspection_run",      [200, 403, 200, 200, 403, 200, 403, 403, 401], Same),
    ("list_sla_scores",         [200, 403, 403, 200, 200, 200, 403, 403, 401], Same),
    ("compute_sla_scores",      [403, 403, 403, 200, 403, 403, 403, 403, 401], Same),
    ("get_sla_policy",          [200, 403, 403, 200, 200, 200, 403, 403, 401], Same),
    ("set_sla_policy",          [403, 403, 403, 200, 403, 403, 403, 403, 401], Same),
    // Supervision: the supervisor (and the platform admin) see every provider and
    // department; a department admin only their own department's figures and idle
    // resources, which only they reclaim or dismiss.
    ("get_indicators",          [200, 403, 403, 200, 403, 403, 200, 403, 401], R403),
    ("compare_providers",       [200, 403, 403, 200, 403, 403, 403, 403, 401], Same),
    ("rank_departments",        [200, 403, 403, 200, 403, 403, 200, 403, 401], Hidden),
    ("indicator_trends",        [200, 403, 403, 200, 403, 403, 200, 403, 401], R403),
    ("supervision_dashboard",   [200, 403, 403, 200, 403, 403, 200, 403, 401], Hidden),
    ("refresh_indicators",      [403, 403, 403, 200, 403, 403, 403, 403, 401], Same),
    ("list_ops_reports",        [200, 403, 403, 200, 403, 200, 403, 403, 401], Same),
    ("create_ops_report",       [403, 403, 403, 201, 403, 403, 403, 403, 401], Same),
    ("download_ops_report",     [200, 403, 403, 200, 403, 404, 403, 403, 401], Same),
    ("list_idle_resources",     [200, 403, 403, 200, 403, 403, 200, 403, 401], Hidden),
    ("reclaimed_capacity",      [200, 403, 403, 200, 403, 403, 200, 403, 401], Hidden),
    ("reclaim_idle_resource",   [403, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("dismiss_idle_resource",   [403, 403, 403, 403, 403, 403, 200, 403, 401], R403),
    ("get_idle_settings",       [200, 403, 403, 200, 403, 403, 200, 403, 401], Same),
    ("update_idle_settings",    [200, 403, 403, 403, 403, 403, 403, 403, 401], Same),
];

/// The first caller (in column order) the table lets call `op` successfully.
pub fn first_allowed(op: &str) -> Option<Caller> {
    let (_, cols, _) = TABLE.iter().find(|(o, ..)| *o == op)?;
    Caller::TABLE_COLUMNS
        .iter()
        .zip(cols)
        .find(|(_, st)| (200..300).contains(*st))
        .map(|(c, _)| *c)
}

/// Audit record names that differ from the operation id.
const AUDIT_NAMES: &[(&str, &str)] = &[("join_agent", "join_host")];

/// Mutating operations no caller can complete in this fixture, and why. An entry that
/// starts succeeding fails the test, so the list only shrinks.
const CANNOT_SUCCEED_HERE: &[(&str, &str)] = &[];

fn documented_operations() -> BTreeMap<String, String> {
    let doc = zy_server::api::openapi();
    let mut ops = BTreeMap::new();
    for item in doc.paths.paths.values() {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if let Some(id) = op.as_ref().and_then(|o| o.operation_id.clone()) {
                ops.insert(id, method.to_string());
            }
        }
    }
    ops
}

#[test]
fn the_table_covers_exactly_the_documented_operations() {
    let documented: BTreeSet<String> = documented_operations().into_keys().collect();
    let tabled: BTreeSet<String> = TABLE.iter().map(|(op, ..)| op.to_string()).collect();
    assert_eq!(tabled.len(), TABLE.len(), "an operation has two rows");
    let missing: Vec<_> = documented.difference(&tabled).collect();
    assert!(
        missing.is_empty(),
        "operations without a row in authz.rs's TABLE: {missing:?}"
    );
    let stale: Vec<_> = tabled.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "TABLE rows for operations that no longer exist: {stale:?}"
    );
    for (op, _, elsewhere) in TABLE {
        if let Refused(s) = elsewhere {
            assert!(
                *s == 403 || *s == 404,
                "{op}: another department is refused with 403 or 404"
            );
        }
    }
}

/// The status `caller` must get for a row.
fn expected(cols: &[u16; 9], elsewhere: Elsewhere, caller: Caller) -> (u16, bool) {
    let at = |c: Caller| {
        cols[Caller::TABLE_COLUMNS
            .iter()
            .position(|x| *x == c)
            .expect("column")]
    };
    if caller.at_home() == caller {
        return (at(caller), false);
    }
    let home = at(caller.at_home());
    match elsewhere {
        _ if home == 403 => (403, false),
        Refused(s) => (s, false),
        Hidden => (200, true),
        Same => (home, false),
    }
}

async fn every_operation_gives_each_role_the_status_in_the_table(db: Db) {
    let started = std::time::Instant::now();
    let ts = TestServer::start(db).await;
    let w = World::new(&ts).await;
    let documented = documented_operations();
    // Ids of the home department's objects, none of which may show in a list seen from the
    // other department.
    let home_ids = [&w.d, &w.p, &w.u, &w.instance, &w.volume];
    let mut wrong = Vec::new();
    let mut actual_table = String::new();
    let mut succeeded: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut refused: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut callers = Caller::TABLE_COLUMNS.to_vec();
    callers.extend([Caller::OtherDeptAdmin, Caller::OtherDeptMember]);
    for (op, cols, elsewhere) in TABLE {
        let mut got_row = Vec::new();
        for &caller in &callers {
            let r = w.request(op, caller).await;
            let (st, body, rid) = w.send(caller, r).await;
            let (want, hidden) = expected(cols, *elsewhere, caller);
            got_row.push(st.as_u16());
            if st.as_u16() != want {
                wrong.push(format!("{op} as {caller:?}: want {want}, got {st} {body}"));
            }
            if st == StatusCode::FORBIDDEN {
                assert_eq!(
                    body["error"]["code"], "forbidden",
                    "{op} as {caller:?}: refusals say forbidden"
                );
            }
            if hidden && st == StatusCode::OK {
                let text = body.to_string();
                if let Some(id) = home_ids.iter().find(|id| text.contains(id.as_str())) {
                    wrong.push(format!(
                        "{op} as {caller:?}: lists the other department's object {id}"
                    ));
                }
            }
            if documented.get(*op).is_some_and(|m| m != "GET") {
                if st.is_success() {
                    succeeded.entry(op).or_default().push(rid);
                } else if st.is_client_error() {
                    refused.entry(op).or_default().push(rid);
                }
            }
        }
        let _ = writeln!(
            actual_table,
            "    (\"{op}\", {:?}, other: {:?}),",
            &got_row[..9],
            &got_row[9..]
        );
    }
    assert!(
        wrong.is_empty(),
        "authorisation differs from the table:\n{}\n\nwhat the server answered:\n{actual_table}",
        wrong.join("\n")
    );
    audit_names_every_successful_change(&ts, &documented, &succeeded).await;
    audit_names_every_refused_change(&ts, &refused).await;
    eprintln!("authz table: {:?}", started.elapsed());
}
both_databases!(every_operation_gives_each_role_the_status_in_the_table);

/// Every mutating operation succeeded at least once, and each success left a success
/// record under its request id, named after the operation.
async fn audit_names_every_successful_change(
    ts: &TestServer,
    documented: &BTreeMap<String, String>,
    succeeded: &BTreeMap<&str, Vec<String>>,
) {
    let mut missing = Vec::new();
    for (op, method) in documented {
        if method == "GET" {
            continue;
        }
        let excused = CANNOT_SUCCEED_HERE.iter().any(|(o, _)| o == op);
        let Some(rids) = succeeded.get(op.as_str()) else {
            if !excused {
                missing.push(format!(
                    "{op}: no caller succeeded, so its auditing was not checked"
                ));
            }
            continue;
        };
        if excused {
            missing.push(format!(
                "{op} succeeded: remove it from CANNOT_SUCCEED_HERE"
            ));
        }
        let name = AUDIT_NAMES
            .iter()
            .find(|(o, _)| o == op)
            .map_or(op.as_str(), |(_, n)| n);
        for rid in rids {
            let rows = records(ts, rid).await;
            if !rows.iter().any(|(a, o)| a == name && o == "success") {
                missing.push(format!(
                    "{op} (request {rid}): no success record named {name}, found {rows:?}"
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "successful changes without their audit record:\n{}",
        missing.join("\n")
    );
}

/// Every refused attempt at a change (MLPS wants failed and denied attempts logged) left a
/// denied or failure record under its request id, named after the operation (or the name
/// the operation's own record uses).
async fn audit_names_every_refused_change(ts: &TestServer, refused: &BTreeMap<&str, Vec<String>>) {
    let mut missing = Vec::new();
    for (op, rids) in refused {
        let own = AUDIT_NAMES.iter().find(|(o, _)| o == op).map(|(_, n)| *n);
        for rid in rids {
            let rows = records(ts, rid).await;
            let named = |a: &String| a == op || Some(a.as_str()) == own;
            if !rows.iter().any(|(a, o)| named(a) && o != "success") {
                missing.push(format!(
                    "{op} (request {rid}): no failure record, found {rows:?}"
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "refused changes without their audit record:\n{}",
        missing.join("\n")
    );
}

/// The audit records (action, outcome) written for one request.
async fn records(ts: &TestServer, request_id: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT action, outcome FROM audit_log WHERE request_id = $1")
        .bind(request_id)
        .fetch_all(ts.store().pool())
        .await
        .expect("audit rows")
}
