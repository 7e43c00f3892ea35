//! Security events (安全事件) and vulnerability tracking (漏洞管理): the normalised event
//! the syslog receiver stores, its categories, severities and actions; the address plan's
//! CIDR blocks (地址规划) and the longest-prefix lookup over them; the vulnerability
//! finding's states and deadlines. Pure: the syslog parser is in [`crate::syslog`], the
//! scanner-file parsers in [`crate::scan`].

use crate::id::{DepartmentId, InstanceId, ProviderId};
use crate::time::Timestamp;
use crate::{t, Error};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $v),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|x| x.as_str() == s)
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// What kind of security event.
    Category {
        /// 攻击 (DoS, floods, generic attacks).
        Attack = "attack",
        /// 入侵 (IPS/IDS signatures, exploits).
        Intrusion = "intrusion",
        /// 病毒 / 木马.
        Virus = "virus",
        /// Web 攻击 (WAF: injection, XSS, web shells).
        WebAttack = "web_attack",
        /// 扫描探测.
        Scan = "scan",
        /// 暴力破解.
        BruteForce = "brute_force",
        /// 策略拒绝 (firewall and security-group denies).
        PolicyDeny = "policy_deny",
        Other = "other",
    }
);

str_enum!(
    /// How serious (events and vulnerabilities share the scale).
    Severity {
        Critical = "critical",
        High = "high",
        Medium = "medium",
        Low = "low",
        Info = "info",
    }
);

str_enum!(
    /// What the appliance did with the traffic.
    EventAction {
        Blocked = "blocked",
        Allowed = "allowed",
    }
);

str_enum!(
    /// Where an event came from.
    EventSource {
        /// An appliance's syslog.
        Syslog = "syslog",
        /// Security-group drops counted on our own hosts.
        SecurityGroup = "security_group",
    }
);

str_enum!(
    /// The message format the parser recognised.
    EventFormat {
        /// `key=value` / `键:值` pairs (Chinese firewalls and WAFs).
        Kv = "kv",
        /// ArcSight Common Event Format.
        Cef = "cef",
        /// IBM QRadar Log Event Extended Format.
        Leef = "leef",
        /// Nothing recognised: kept as `other` with its raw text.
        Unknown = "unknown",
    }
);

str_enum!(
    /// A vulnerability finding's state (open → fixing → fixed → verified; accepted risk).
    VulnState {
        /// 待处理.
        Open = "open",
        /// 修复中.
        Fixing = "fixing",
        /// 已修复（部门确认，待复扫）.
        Fixed = "fixed",
        /// 已验证（复扫不再发现）.
        Verified = "verified",
        /// 风险接受（安全管理员，附理由）.
        Accepted = "accepted",
    }
);

impl Severity {
    /// Severity of a syslog priority's severity field (0 emergency … 7 debug).
    pub fn from_syslog(sev: u8) -> Severity {
        match sev {
            0..=2 => Severity::Critical,
            3 => Severity::High,
            4 => Severity::Medium,
            5 | 6 => Severity::Low,
            _ => Severity::Info,
        }
    }

    /// 0 (critical) … 4 (info), for "at least this severe" comparisons.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Critical => 0,
            Severity::High => 1,
            Severity::Medium => 2,
            Severity::Low => 3,
            Severity::Info => 4,
        }
    }
}

/// Who owns an address: the result of the one lookup (`app::secev::resolve_address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddressOwner {
    pub department_id: DepartmentId,
    pub provider_id: Option<ProviderId>,
    pub instance_id: Option<InstanceId>,
    /// How it was found: `address_plan` (later also `nic`, `elastic_ip`).
    pub via: String,
}

/// A CIDR block, normalised (host bits zero; IPv4 kept as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// An address as a 128-bit number (IPv4 as `::ffff:a.b.c.d`), so both families share one
/// ordering.
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6),
        },
    }
}

/// Whether an [`ip_key`] number is an IPv4 address.
fn is_v4_key(k: u128) -> bool {
    k >> 32 == 0xffff
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x::/n` (a bare address is a /32 or /128). Host bits must be
    /// zero, so a typo does not silently claim a neighbour's block.
    pub fn parse(s: &str) -> Result<Cidr, Error> {
        let s = s.trim();
        let bad = || {
            Error::validation(
                "cidr",
                t!("“{}”不是有效的网段，应形如 10.20.0.0/16" ; "\"{}\" is not a valid CIDR block; write it like 10.20.0.0/16", crate::validate::clip(s, 60)),
            )
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        let c = Cidr { addr, prefix };
        let net = c.network();
        if net != addr {
            return Err(Error::validation(
                "cidr",
                t!("“{}”的主机位不为零，网段应写作 {}/{}" ; "\"{}\" has host bits set; the block is {}/{}", s, net, prefix),
            ));
        }
        Ok(c)
    }

    fn mask_bits(&self) -> u32 {
        if self.addr.is_ipv4() {
            u32::from(self.prefix) + 96
        } else {
            u32::from(self.prefix)
        }
    }

    /// The first and last address, as [`ip_key`] numbers.
    pub fn range(&self) -> (u128, u128) {
        let bits = self.mask_bits();
        let k = ip_key(self.addr);
        let host = if bits >= 128 { 0 } else { u128::MAX >> bits };
        (k & !host, k | host)
    }

    fn network(&self) -> IpAddr {
        let (lo, _) = self.range();
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(lo as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(lo)),
        }
    }

    /// Whether `ip` is in the block. Families never mix: an IPv6 block does not claim
    /// IPv4 addresses through the mapped range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if is_v4_key(ip_key(ip)) != self.addr.is_ipv4() {
            return false;
        }
        let (lo, hi) = self.range();
        let k = ip_key(ip);
        lo <= k && k <= hi
    }

    /// Whether two blocks share any address (then one contains the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let (a, b) = self.range();
        let (c, d) = other.range();
        a <= d && c <= b
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One block of the address plan (地址规划): a CIDR assigned to a department, optionally
/// with the provider (and zone) whose network it is in.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddressBlock {
    pub id: uuid::Uuid,
    pub cidr: String,
    pub department_id: DepartmentId,
    pub department_name: String,
    pub provider_id: Option<ProviderId>,
    pub description: String,
    pub created_at: Timestamp,
}

/// The address plan in memory, for many lookups: most specific (longest prefix) wins.
#[derive(Debug, Clone, Default)]
pub struct AddressPlan {
    /// (first, last, prefix bits over 128, IPv4?, department, provider), sorted by prefix
    /// length descending so the first match is the most specific.
    blocks: Vec<(u128, u128, u32, bool, DepartmentId, Option<ProviderId>)>,
}

impl AddressPlan {
    pub fn new(blocks: impl IntoIterator<Item = (Cidr, DepartmentId, Option<ProviderId>)>) -> Self {
        let mut v: Vec<_> = blocks
            .into_iter()
            .map(|(c, d, p)| {
                let (lo, hi) = c.range();
                (lo, hi, c.mask_bits(), c.addr.is_ipv4(), d, p)
            })
            .collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.2));
        AddressPlan { blocks: v }
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<(DepartmentId, Option<ProviderId>)> {
        let k = ip_key(ip);
        let v4 = is_v4_key(k);
        self.blocks
            .iter()
            .find(|(lo, hi, _, f, ..)| *f == v4 && *lo <= k && k <= *hi)
            .map(|(_, _, _, _, d, p)| (*d, *p))
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

/// A stored security event.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecurityEvent {
    /// Increasing number (the cursor of the event list).
    pub seq: i64,
    /// When it happened (the appliance's time, or when received if it sent none).
    pub at: Timestamp,
    pub received_at: Timestamp,
    pub source: EventSource,
    /// The appliance (syslog host name, or the sender's address) or our host.
    pub appliance: String,
    pub format: EventFormat,
    pub category: Category,
    pub severity: Severity,
    pub action: EventAction,
    pub src_ip: Option<String>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<String>,
    pub dst_port: Option<u16>,
    pub protocol: Option<String>,
    /// Rule, signature or attack name.
    pub rule: Option<String>,
    /// How many occurrences this row stands for (security-group drops are summed per
    /// window; syslog lines are 1).
    pub count: i64,
    pub department_id: Option<DepartmentId>,
    pub provider_id: Option<ProviderId>,
    pub instance_id: Option<InstanceId>,
    /// The raw line as received (at most 2,048 characters).
    pub message: String,
}

/// One bucket of the pre-aggregated counters.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventCount {
    /// The grouping key's value (a day `YYYY-MM-DD`, a category, a department id, …;
    /// empty for events of no known department or provider).
    pub key: String,
    pub events: i64,
}

/// The security policy the security admin keeps: retention of events and the repair
/// deadlines of vulnerabilities by severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityPolicy {
    /// Days security events are kept (7–3650; default 180).
    pub event_retention_days: i64,
    /// Days to repair a finding of each severity (1–365).
    pub deadline_days_critical: i64,
    pub deadline_days_high: i64,
    pub deadline_days_medium: i64,
    pub deadline_days_low: i64,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        SecurityPolicy {
            event_retention_days: 180,
            deadline_days_critical: 7,
            deadline_days_high: 15,
            deadline_days_medium: 30,
            deadline_days_low: 90,
        }
    }
}

impl SecurityPolicy {
    pub fn check(&self) -> Result<(), Error> {
        if !(7..=3650).contains(&self.event_retention_days) {
            return Err(Error::validation(
                "event_retention_days",
                t!(
                    "安全事件保留天数须在 7 到 3650 之间",
                    "events are kept between 7 and 3650 days"
                ),
            ));
        }
        for (f, v) in [
            ("deadline_days_critical", self.deadline_days_critical),
            ("deadline_days_high", self.deadline_days_high),
            ("deadline_days_medium", self.deadline_days_medium),
            ("deadline_days_low", self.deadline_days_low),
        ] {
            if !(1..=365).contains(&v) {
                return Err(Error::validation(
                    f,
                    t!(
                        "整改期限须在 1 到 365 天之间",
                        "a repair deadline is between 1 and 365 days"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Days to repair a finding of `s` (informational findings get the low deadline).
    pub fn deadline_days(&self, s: Severity) -> i64 {
        match s {
            Severity::Critical => self.deadline_days_critical,
            Severity::High => self.deadline_days_high,
            Severity::Medium => self.deadline_days_medium,
            Severity::Low | Severity::Info => self.deadline_days_low,
        }
    }
}

/// A vulnerability finding: one (address, port, vulnerability id).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Vulnerability {
    pub id: uuid::Uuid,
    pub address: String,
    /// 0 for host-level findings.
    pub port: u16,
    pub protocol: String,
    /// The scanner's id of the vulnerability (plugin id, NVT OID, or a CVE).
    pub vuln_id: String,
    pub title: String,
    pub severity: Severity,
    pub cve: String,
    pub solution: String,
    pub state: VulnState,
    pub department_id: Option<DepartmentId>,
    pub provider_id: Option<ProviderId>,
    pub instance_id: Option<InstanceId>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub deadline: Timestamp,
    pub fixed_at: Option<Timestamp>,
    pub verified_at: Option<Timestamp>,
    /// Why the risk was accepted, or the department's note on its fix.
    pub note: String,
    pub overdue: bool,
    pub generation: i64,
}

/// An alert rule on events.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventRule {
    pub id: uuid::Uuid,
    pub name: String,
    /// Only this department's events (`null`: every event).
    pub department_id: Option<DepartmentId>,
    /// Only this category (`null`: any).
    pub category: Option<Category>,
    /// Counts events of this severity or worse.
    pub min_severity: Severity,
    /// Fires when at least this many events arrive…
    pub threshold: i64,
    /// …within this many seconds.
    pub window_secs: i64,
    pub last_fired_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub generation: i64,
}

/// Counts of findings per department or provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VulnCount {
    /// The department or provider id (empty: no known owner).
    pub key: String,
    /// Open or being fixed.
    pub open: i64,
    /// Open or being fixed, past the deadline.
    pub overdue: i64,
    /// Claimed fixed, waiting for a re-scan.
    pub fixed: i64,
    /// Confirmed by a re-scan.
    pub verified: i64,
    /// Fixed (claimed or confirmed) on or before the deadline.
    pub fixed_within_deadline: i64,
    pub accepted: i64,
}

/// One imported scanner file.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VulnImport {
    pub id: uuid::Uuid,
    pub source: String,
    /// `csv` or `nessus`.
    pub format: String,
    pub created_at: Timestamp,
    /// Hosts the file scanned.
    pub hosts: i64,
    /// Findings in the file (after folding duplicates).
    pub findings: i64,
    /// New findings.
    pub created: i64,
    /// Known findings seen again (last seen updated).
    pub updated: i64,
    /// Findings claimed fixed or verified that the scan still reports, reopened.
    pub reopened: i64,
    /// Findings on scanned hosts the scan no longer reports, verified.
    pub verified: i64,
    /// Rows of the same finding folded into one.
    pub duplicates: i64,
}

/// The state change a caller asks for; who may ask for which is decided in the app layer.
pub fn transition_allowed(from: VulnState, to: VulnState) -> bool {
    use VulnState::*;
    matches!(
        (from, to),
        (Open, Fixing)
            | (Open, Fixed)
            | (Fixing, Fixed)
            | (Fixing, Open)
            | (Open | Fixing | Fixed, Accepted)
            | (Accepted, Open)
            | (Fixed, Open)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d() -> DepartmentId {
        DepartmentId::new()
    }

    #[test]
    fn cidrs_parse_normalise_and_refuse_host_bits() {
        assert_eq!(
            Cidr::parse("10.20.0.0/16").unwrap().to_string(),
            "10.20.0.0/16"
        );
        assert_eq!(Cidr::parse("10.20.3.4").unwrap().prefix, 32);
        assert_eq!(Cidr::parse("fd00::/8").unwrap().prefix, 8);
        for bad in [
            "10.20.1.0/16",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "",
            "::/129",
            "10.0.0.0/08a",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(Cidr::parse("0.0.0.0/0").is_ok());
    }

    #[test]
    fn the_most_specific_block_wins() {
        let (a, b) = (d(), d());
        let plan = AddressPlan::new([
            (Cidr::parse("10.0.0.0/8").unwrap(), a, None),
            (Cidr::parse("10.20.0.0/16").unwrap(), b, None),
        ]);
        assert_eq!(
            plan.lookup("10.20.1.1".parse().unwrap()).map(|x| x.0),
            Some(b)
        );
        assert_eq!(
            plan.lookup("10.21.1.1".parse().unwrap()).map(|x| x.0),
            Some(a)
        );
        assert_eq!(plan.lookup("11.0.0.1".parse().unwrap()), None);
        assert_eq!(
            plan.lookup("::ffff:10.20.0.9".parse().unwrap())
                .map(|x| x.0),
            Some(b)
        );
    }

    #[test]
    fn ipv6_blocks_do_not_swallow_ipv4() {
        let a = d();
        let plan = AddressPlan::new([(Cidr::parse("::/0").unwrap(), a, None)]);
        assert!(!Cidr::parse("::/0")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
        assert_eq!(plan.lookup("10.0.0.1".parse().unwrap()), None);
        assert!(plan.lookup("2001:db8::1".parse().unwrap()).is_some());
    }

    #[test]
    fn overlaps_are_nesting_or_nothing() {
        let a = Cidr::parse("10.0.0.0/8").unwrap();
        let b = Cidr::parse("10.1.0.0/16").unwrap();
        let c = Cidr::parse("11.0.0.0/8").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn vulnerability_transitions() {
        use VulnState::*;
        assert!(transition_allowed(Open, Fixing));
        assert!(transition_allowed(Fixing, Fixed));
        assert!(
            !transition_allowed(Fixed, Verified),
            "only a re-scan verifies"
        );
        assert!(
            !transition_allowed(Verified, Open),
            "only a re-scan reopens"
        );
        assert!(transition_allowed(Fixed, Accepted));
    }

    proptest::proptest! {
        #[test]
        fn cidr_parsing_never_panics(s in "\\PC{0,40}") {
            let _ = Cidr::parse(&s);
        }

        #[test]
        fn a_block_contains_exactly_its_range(a in proptest::prelude::any::<u32>(), p in 0u8..=32, x in proptest::prelude::any::<u32>()) {
            let net = if p == 0 { 0 } else { a & (u32::MAX << (32 - p)) };
            let c = Cidr::parse(&format!("{}/{}", std::net::Ipv4Addr::from(net), p)).unwrap();
            let inside = p == 0 || (x & (u32::MAX << (32 - p))) == net;
            proptest::prop_assert_eq!(c.contains(IpAddr::V4(x.into())), inside);
        }
    }
}
