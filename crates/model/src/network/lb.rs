//! Load balancers (负载均衡) as the API shows them: a virtual IP on a subnet, listeners
//! (TCP or HTTP on a port), each with its pool (algorithm, health check, members: an
//! instance NIC and a port), and the operating status of every member as the host last
//! reported it. [`validate_listeners`] is the pure check of a whole configuration; the
//! configuration is replaced whole, conditional on the load balancer's generation.

use crate::id::*;
use crate::time::Timestamp;
use crate::{t, Error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;

/// At most this many listeners per load balancer and members per listener.
pub const MAX_LISTENERS: usize = 10;
pub const MAX_MEMBERS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LbProtocol {
    /// Layer 4: connections are passed through.
    Tcp,
    /// Layer 7: HTTP requests are spread (each request may go elsewhere).
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LbAlgorithm {
    /// 轮询: in turn, by weight.
    RoundRobin,
    /// 最少连接: to the member with the fewest open connections.
    LeastConnections,
}

/// How members are checked: a TCP connect, or (with `http_path`) an HTTP GET expecting
/// `expected_status`. A member is marked down after `fall` failed checks in a row and up
/// again after `rise` passed ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Check by HTTP GET of this path (e.g. `/healthz`); absent: a TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    /// The status an HTTP check expects (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
    /// Milliseconds between checks, 500–60000 (default 2000).
    #[serde(default = "default_interval")]
    pub interval_ms: u32,
    /// Passed checks in a row before a member is up again, 1–10 (default 2).
    #[serde(default = "default_rise")]
    pub rise: u8,
    /// Failed checks in a row before a member is down, 1–10 (default 3).
    #[serde(default = "default_fall")]
    pub fall: u8,
}

fn default_interval() -> u32 {
    2000
}
fn default_rise() -> u8 {
    2
}
fn default_fall() -> u8 {
    3
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            http_path: None,
            expected_status: None,
            interval_ms: default_interval(),
            rise: default_rise(),
            fall: default_fall(),
        }
    }
}

/// A pool member: an instance's NIC (in the load balancer's VPC) and the port it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LbMember {
    pub nic_id: NicId,
    pub port: u16,
    /// Relative share of new connections/requests, 1–256 (default 1).
    #[serde(default = "default_weight")]
    pub weight: u16,
}

fn default_weight() -> u16 {
    1
}

/// A listener on the virtual IP with its pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LbListener {
    pub protocol: LbProtocol,
    /// The port on the virtual IP, 1–65535, one listener per port.
    pub port: u16,
    pub algorithm: LbAlgorithm,
    #[serde(default)]
    pub health_check: HealthCheck,
    #[serde(default)]
    pub members: Vec<LbMember>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LbState {
    /// The configuration is being applied on a host.
    Pending,
    /// The host runs the configuration of `applied_generation`.
    Active,
    /// The last change could not be applied (see `last_error`).
    Error,
    /// Being removed from its host.
    Deleting,
}

impl LbState {
    pub fn as_str(self) -> &'static str {
        match self {
            LbState::Pending => "pending",
            LbState::Active => "active",
            LbState::Error => "error",
            LbState::Deleting => "deleting",
        }
    }
    pub fn parse(s: &str) -> Option<LbState> {
        Some(match s {
            "pending" => LbState::Pending,
            "active" => LbState::Active,
            "error" => LbState::Error,
            "deleting" => LbState::Deleting,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberHealth {
    /// Passing its health checks: receives traffic.
    Up,
    /// Failing its health checks: receives no traffic.
    Down,
    /// Not checked yet (or the host has not reported).
    Unknown,
}

/// One member's operating status as the host last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberStatus {
    pub listener_port: u16,
    pub nic_id: NicId,
    pub address: String,
    pub port: u16,
    pub status: MemberHealth,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoadBalancer {
    pub id: LoadBalancerId,
    pub department_id: DepartmentId,
    pub project_id: ProjectId,
    pub vpc_id: VpcId,
    pub subnet_id: SubnetId,
    pub name: String,
    pub description: String,
    /// The virtual IP (an address of the subnet from the platform's IPAM).
    pub vip: String,
    pub listeners: Vec<LbListener>,
    pub state: LbState,
    /// The host running its HAProxy (chosen when first applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<HostId>,
    /// Whether that host belongs to a simulated provider (state only, no traffic).
    pub simulated: bool,
    /// The configuration generation the host runs (0: none yet).
    pub applied_generation: i64,
    pub members: Vec<MemberStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub generation: i64,
}

fn bad(field: &str, text: crate::Text) -> Error {
    Error::validation(field, text)
}

impl HealthCheck {
    fn validated(mut self, f: &dyn Fn(&str) -> String) -> Result<HealthCheck, Error> {
        if !(500..=60_000).contains(&self.interval_ms) {
            return Err(bad(
                &f("interval_ms"),
                t!("检查间隔须在 500 到 60000 毫秒之间（{}）" ; "the check interval must be 500–60000 ms (got {})", self.interval_ms),
            ));
        }
        for (n, v) in [("rise", self.rise), ("fall", self.fall)] {
            if !(1..=10).contains(&v) {
                return Err(bad(
                    &f(n),
                    t!("{} 须在 1 到 10 之间" ; "{} must be 1–10", n),
                ));
            }
        }
        match &self.http_path {
            Some(p) => {
                let ok = p.starts_with('/')
                    && p.len() <= 200
                    && p.bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
                if !ok {
                    return Err(bad(
                        &f("http_path"),
                        t!(
                            "HTTP 检查路径须以 / 开头，不超过 200 个字符，且不含空格、引号或控制字符",
                            "the HTTP check path starts with /, has at most 200 characters and no spaces, quotes or control characters"
                        ),
                    ));
                }
                let st = self.expected_status.unwrap_or(200);
                if !(100..=599).contains(&st) {
                    return Err(bad(
                        &f("expected_status"),
                        t!("期望的 HTTP 状态码须在 100 到 599 之间（{}）" ; "the expected HTTP status must be 100–599 (got {})", st),
                    ));
                }
                self.expected_status = Some(st);
            }
            None if self.expected_status.is_some() => {
                return Err(bad(
                    &f("expected_status"),
                    t!(
                        "只有 HTTP 检查（给出 http_path）才能指定期望状态码",
                        "expected_status needs an HTTP check (give http_path)"
                    ),
                ))
            }
            None => {}
        }
        Ok(self)
    }
}

/// Checks a whole configuration: ports 1–65535, one listener per port, at most
/// [`MAX_LISTENERS`] listeners and [`MAX_MEMBERS`] members each, weights 1–256, no member
/// twice in one pool, sane health checks. Whether member NICs are in the load balancer's
/// VPC is checked by the caller, which reads them.
pub fn validate_listeners(listeners: Vec<LbListener>) -> Result<Vec<LbListener>, Error> {
    if listeners.len() > MAX_LISTENERS {
        return Err(bad(
            "listeners",
            t!("一个负载均衡最多 {} 个监听器" ; "a load balancer has at most {} listeners", MAX_LISTENERS),
        ));
    }
    let mut ports = BTreeSet::new();
    let mut out = Vec::with_capacity(listeners.len());
    for (i, mut l) in listeners.into_iter().enumerate() {
        let f = |n: &str| format!("listeners[{i}].{n}");
        if l.port == 0 {
            return Err(bad(
                &f("port"),
                t!("端口须在 1 到 65535 之间", "ports are 1 to 65535"),
            ));
        }
        if !ports.insert(l.port) {
            return Err(bad(
                &f("port"),
                t!("端口 {} 已有监听器" ; "port {} already has a listener", l.port),
            ));
        }
        if l.members.len() > MAX_MEMBERS {
            return Err(bad(
                &f("members"),
                t!("一个监听器最多 {} 个成员" ; "a listener has at most {} members", MAX_MEMBERS),
            ));
        }
        l.health_check = l.health_check.validated(&f)?;
        let mut seen = BTreeSet::new();
        for (j, m) in l.members.iter().enumerate() {
            let mf = |n: &str| format!("listeners[{i}].members[{j}].{n}");
            if m.port == 0 {
                return Err(bad(
                    &mf("port"),
                    t!("端口须在 1 到 65535 之间", "ports are 1 to 65535"),
                ));
            }
            if !(1..=256).contains(&m.weight) {
                return Err(bad(
                    &mf("weight"),
                    t!("权重须在 1 到 256 之间（{}）" ; "the weight must be 1–256 (got {})", m.weight),
                ));
            }
            if !seen.insert((m.nic_id, m.port)) {
                return Err(bad(
                    &mf("nic_id"),
                    t!("网卡 {} 的端口 {} 在该监听器中重复" ; "NIC {} port {} is already a member of this listener", m.nic_id, m.port),
                ));
            }
        }
        out.push(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn listener(port: u16) -> LbListener {
        LbListener {
            protocol: LbProtocol::Http,
            port,
            algorithm: LbAlgorithm::RoundRobin,
            health_check: HealthCheck::default(),
            members: vec![LbMember {
                nic_id: NicId::new(),
                port: 8080,
                weight: 1,
            }],
        }
    }

    fn field_of(e: Error) -> String {
        e.details
            .as_ref()
            .and_then(|d| d.get("field"))
            .and_then(|f| f.as_str())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn a_second_listener_on_one_port_is_refused_by_field() {
        let e = validate_listeners(vec![listener(80), listener(80)]).expect_err("refused");
        assert_eq!(field_of(e), "listeners[1].port");
    }

    #[test]
    fn bad_health_checks_name_their_field() {
        let mut l = listener(80);
        l.health_check.interval_ms = 100;
        assert_eq!(
            field_of(validate_listeners(vec![l.clone()]).expect_err("refused")),
            "listeners[0].interval_ms"
        );
        l.health_check.interval_ms = 1000;
        l.health_check.fall = 0;
        assert_eq!(
            field_of(validate_listeners(vec![l.clone()]).expect_err("refused")),
            "listeners[0].fall"
        );
        l.health_check.fall = 2;
        l.health_check.http_path = Some("/a b".into());
        assert_eq!(
            field_of(validate_listeners(vec![l.clone()]).expect_err("refused")),
            "listeners[0].http_path"
        );
        l.health_check.http_path = None;
        l.health_check.expected_status = Some(200);
        assert_eq!(
            field_of(validate_listeners(vec![l.clone()]).expect_err("refused")),
            "listeners[0].expected_status"
        );
        l.health_check.http_path = Some("/healthz".into());
        l.health_check.expected_status = None;
        let ok = validate_listeners(vec![l]).expect("accepted");
        assert_eq!(ok[0].health_check.expected_status, Some(200));
    }

    #[test]
    fn members_need_a_port_a_weight_and_no_repeat() {
        let mut l = listener(80);
        l.members[0].weight = 0;
        assert_eq!(
            field_of(validate_listeners(vec![l.clone()]).expect_err("refused")),
            "listeners[0].members[0].weight"
        );
        l.members[0].weight = 1;
        l.members.push(l.members[0].clone());
        assert_eq!(
            field_of(validate_listeners(vec![l]).expect_err("refused")),
            "listeners[0].members[1].nic_id"
        );
    }

    proptest! {
        #[test]
        fn accepted_configurations_have_one_listener_per_nonzero_port(
            ports in proptest::collection::vec(0u16..6, 0..12),
            interval in 0u32..70_000,
            rise in 0u8..12,
        ) {
            let ls: Vec<LbListener> = ports
                .iter()
                .map(|&p| {
                    let mut l = listener(p);
                    l.health_check.interval_ms = interval;
                    l.health_check.rise = rise;
                    l
                })
                .collect();
            if let Ok(ok) = validate_listeners(ls) {
                let set: BTreeSet<u16> = ok.iter().map(|l| l.port).collect();
                prop_assert_eq!(set.len(), ok.len());
                prop_assert!(ok.len() <= MAX_LISTENERS);
                prop_assert!(!set.contains(&0));
                if !ok.is_empty() {
                    prop_assert!((500..=60_000).contains(&interval));
                    prop_assert!((1..=10).contains(&rise));
                }
            }
        }
    }
}
