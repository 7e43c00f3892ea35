//! Mapping database errors to the one error type, in one place: which constraint means
//! which conflict, and what the user is told about it.

use zy_model::{t, Error, Text};

/// Converts a database error. Unique and foreign-key violations become 409 conflicts with
/// a message naming what clashed; a lost connection becomes 503; the rest are internal.
pub fn db_error(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(ref d) = e {
        let msg = d.message().to_string();
        // PostgreSQL names the constraint; SQLite names the columns ("UNIQUE constraint
        // failed: departments.name"). Match either.
        let key = d
            .constraint()
            .map(str::to_string)
            .unwrap_or_else(|| msg.clone());
        if let Some(text) = conflict_text(&key) {
            return Error::conflict(text).with_internal(msg);
        }
        if d.is_foreign_key_violation() {
            return Error::conflict(t!(
                "所引用的对象不存在或仍被其他对象使用",
                "a referenced object does not exist or is still in use by others"
            ))
            .with_internal(msg);
        }
        if d.is_unique_violation() {
            return Error::conflict(t!(
                "同名对象已存在",
                "an object with that name already exists"
            ))
            .with_internal(msg);
        }
        if let Some(e) = contention(d.code().as_deref(), &msg) {
            return e;
        }
        // PostgreSQL refuses NUL in text ("invalid byte sequence for encoding UTF8: 0x00"):
        // the client sent it, so it is the client's error, never a 500.
        if d.code().as_deref() == Some("22021") {
            return Error::invalid(t!(
                "输入含有无法保存的字符（如 NUL），请删除后重试",
                "the input holds a character that cannot be stored (such as NUL); remove it and try again"
            ))
            .with_internal(msg);
        }
        if msg.contains("append-only") || msg.contains("cannot be deleted") {
            return Error::forbidden(t!(
                "审计日志只能追加，180 天内的记录不可删除",
                "the audit log is append-only and records younger than 180 days cannot be deleted"
            ))
            .with_internal(msg);
        }
        return Error::internal(msg);
    }
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::unavailable(t!(
                "数据库暂时不可用，请稍后重试",
                "the database is unavailable; please try again shortly"
            ))
            .with_retry_after(2)
            .with_internal(e.to_string())
        }
        other => Error::internal(other.to_string()),
    }
}

/// Write contention is the server being busy, never a server fault: SQLite's "database is
/// locked" (after `busy_timeout`) and PostgreSQL's lock and statement timeouts become 503
/// with `Retry-After`; a PostgreSQL serialisation failure or deadlock means a concurrent
/// change won, 409.
fn contention(code: Option<&str>, msg: &str) -> Option<Error> {
    let busy = || {
        Error::unavailable(t!(
            "数据库繁忙，请稍后重试",
            "the database is busy; please try again shortly"
        ))
        .with_retry_after(1)
        .with_internal(msg.to_string())
    };
    match code {
        // SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
        Some("5" | "6" | "261" | "262" | "517" | "773") => Some(busy()),
        Some("55P03" | "57014") => Some(busy()),
        Some("40001" | "40P01") => Some(
            Error::conflict(t!(
                "并发的修改已先完成，请刷新后重试",
                "a concurrent change won; reload and try again"
            ))
            .with_internal(msg.to_string()),
        ),
        _ if msg.contains("database is locked") || msg.contains("database table is locked") => {
            Some(busy())
        }
        _ => None,
    }
}

fn conflict_text(key: &str) -> Option<Text> {
    let has = |a: &str, b: &str| key.contains(a) || key.contains(b);
    Some(
        if has("vpcs_department_name_key", "vpcs.department_id, vpcs.name") {
            t!(
                "该部门已有同名的虚拟私有网络",
                "this department already has a VPC with this name"
            )
        } else if has("vpcs_vni_key", "vpcs.vni") {
            t!(
                "VXLAN 编号被并发占用，请重试",
                "the VXLAN number was taken meanwhile; please try again"
            )
        } else if has("subnets_vpc_name_key", "subnets.vpc_id, subnets.name") {
            t!(
                "该网络已有同名子网",
                "this VPC already has a subnet with this name"
            )
        } else if has("nics_subnet_ip_key", "nics.subnet_id, nics.ip_num") {
            t!("该 IP 地址已被占用", "that IP address is already in use")
        } else if has("nics_instance_idx_key", "nics.instance_id, nics.idx") {
            t!(
                "云主机的网卡被同时修改，请重试",
                "the instance's NICs changed meanwhile; please try again"
            )
        } else if has("nics_mac_key", "nics.mac") {
            t!(
                "MAC 地址冲突，请重试",
                "the MAC address clashed; please try again"
            )
        } else if has(
            "security_groups_project_name_key",
            "security_groups.project_id, security_groups.name",
        ) {
            t!(
                "该项目已有同名安全组",
                "this project already has a security group with this name"
            )
        } else if has("external_networks_name_key", "external_networks.name") {
            t!(
                "已有同名外部网络",
                "an external network with this name already exists"
            )
        } else if has(
            "elastic_ips_address_key",
            "elastic_ips.external_network_id, elastic_ips.ip_num",
        ) {
            t!(
                "该弹性IP地址已被占用",
                "that elastic IP address is already taken"
            )
        } else if has(
            "load_balancers_project_name_key",
            "load_balancers.project_id, load_balancers.name",
        ) {
            t!(
                "该项目已有同名负载均衡",
                "this project already has a load balancer with this name"
            )
        } else if has("elastic_ips_nic_key", "elastic_ips.nic_id") {
            t!("该网卡已绑定弹性IP", "that NIC already has an elastic IP")
        } else if has("departments_name_key", "departments.name") {
            t!("已有同名部门", "a department with this name already exists")
        } else if has("departments_code_key", "departments.code") {
            t!(
                "已有相同编码的部门",
                "a department with this code already exists"
            )
        } else if has(
            "projects_department_name_key",
            "projects.department_id, projects.name",
        ) {
            t!(
                "该部门下已有同名项目",
                "this department already has a project with this name"
            )
        } else if has("users_username_key", "users.username") {
            t!("用户名已被使用", "this username is already taken")
        } else if has("memberships_user_role_scope_key", "memberships.user_id") {
            t!(
                "该用户已在此范围持有该角色",
                "the user already holds this role at this scope"
            )
        } else if has(
            "api_tokens_user_name_key",
            "api_tokens.user_id, api_tokens.name",
        ) {
            t!(
                "您已有同名的 API 令牌",
                "you already have an API token with this name"
            )
        } else if has(
            "price_versions_provider_from_key",
            "price_versions.provider_id, price_versions.effective_from",
        ) {
            t!(
                "该云服务商已有同一生效时间的价格版本",
                "this provider already has a price version taking effect at that instant"
            )
        } else if has("billing_months_pkey", "billing_months.month") {
            t!("该月已经月结", "this month is already closed")
        } else if has("address_blocks_cidr_key", "address_blocks.cidr") {
            t!(
                "地址规划中已有该网段",
                "this CIDR block is already in the address plan"
            )
        } else if has("security_event_rules_name_key", "security_event_rules.name") {
            t!(
                "已有同名告警规则",
                "an alert rule with this name already exists"
            )
        } else {
            return None;
        },
    )
}

#[cfg(test)]
mod tests {
    use super::contention;
    use zy_model::ErrorCode;

    #[test]
    fn write_contention_is_never_a_server_fault() {
        for (code, msg) in [
            (Some("5"), "database is locked"),
            (Some("517"), "database is locked"),
            (None, "database is locked"),
            (Some("55P03"), "canceling statement due to lock timeout"),
        ] {
            let e = contention(code, msg).expect("busy");
            assert_eq!(e.code, ErrorCode::Unavailable);
            assert_eq!(e.retry_after(), Some(1));
        }
        let e = contention(Some("40001"), "could not serialize access").expect("conflict");
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(contention(Some("23505"), "duplicate key").is_none());
    }
}
