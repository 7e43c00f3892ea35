//! The syslog parser of the security-event intake: one line (an RFC 5424 or RFC 3164
//! message, or a bare body) in, one normalised event out. Bodies in the common appliance
//! formats are understood — `key=value` / `键:值` pairs as Chinese firewalls and WAFs emit
//! them, ArcSight CEF and QRadar LEEF — and anything else is kept as category `other`
//! with its raw text. Pure and total: arbitrary bytes never panic (a property test says so).

use crate::secev::{Category, EventAction, EventFormat, Severity};
use chrono::{Datelike, TimeZone};
use std::net::IpAddr;

/// Longest raw message kept (characters); the rest is cut.
pub const MAX_MESSAGE_CHARS: usize = 2048;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Event time in microseconds since the epoch, when the line carried one.
    pub at: Option<i64>,
    /// The sending appliance's name (syslog HOSTNAME, or a device field of the body).
    pub appliance: Option<String>,
    pub format: EventFormat,
    pub category: Category,
    pub severity: Severity,
    pub action: EventAction,
    pub src_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<IpAddr>,
    pub dst_port: Option<u16>,
    pub protocol: Option<String>,
    pub rule: Option<String>,
    /// The raw line (lossy UTF-8, at most [`MAX_MESSAGE_CHARS`]).
    pub message: String,
}

/// Parses one syslog message. `now` (microseconds) supplies the year RFC 3164 omits.
pub fn parse(raw: &[u8], now: i64) -> Parsed {
    let text = String::from_utf8_lossy(raw);
    let line = text.trim_matches(|c: char| c == '\n' || c == '\r' || c == '\0' || c == ' ');
    let message: String = line.chars().take(MAX_MESSAGE_CHARS).collect();
    let h = header(line, now);
    let mut f = Fields::default();
    let body = h.body.trim_start_matches('\u{feff}');
    let format = if let Some(i) = body.find("CEF:") {
        cef(&body[i + 4..], &mut f);
        EventFormat::Cef
    } else if let Some(i) = body.find("LEEF:") {
        leef(&body[i + 5..], &mut f);
        EventFormat::Leef
    } else {
        for (k, v) in &h.sd {
            f.take(k, v);
        }
        let pairs = kv_pairs(body);
        for (k, v) in &pairs {
            f.take(k, v);
        }
        if pairs.len() >= 2 || f.known >= 2 {
            EventFormat::Kv
        } else {
            EventFormat::Unknown
        }
    };
    let known = format != EventFormat::Unknown;
    let action = match &f.action {
        Some(a) => action_of(a).unwrap_or(EventAction::Allowed),
        None if known && has_any(&body.to_lowercase(), DENY_WORDS) => EventAction::Blocked,
        None => EventAction::Allowed,
    };
    let category = if known {
        let mut hint = f.category.clone().unwrap_or_default();
        for x in [&f.rule, &f.name].into_iter().flatten() {
            hint.push(' ');
            hint.push_str(x);
        }
        if hint.trim().is_empty() {
            hint = body.to_string();
        }
        category_of(&hint.to_lowercase()).unwrap_or(if action == EventAction::Blocked {
            Category::PolicyDeny
        } else {
            Category::Other
        })
    } else {
        Category::Other
    };
    let severity = f
        .severity
        .as_deref()
        .and_then(severity_of)
        .or(h.pri.map(|p| Severity::from_syslog(p & 7)))
        .unwrap_or(Severity::Low);
    Parsed {
        at: f.at.or(h.at),
        appliance: h.host.map(clip_field).or(f.device.clone()),
        format,
        category,
        severity,
        action,
        src_ip: f.src_ip,
        src_port: f.src_port,
        dst_ip: f.dst_ip,
        dst_port: f.dst_port,
        protocol: f.protocol.clone(),
        rule: f.rule.clone().or(f.name.clone()),
        message,
    }
}

fn clip_field(s: &str) -> String {
    s.chars().take(128).collect()
}

// --- syslog header ----------------------------------------------------------------------

struct Header<'a> {
    pri: Option<u8>,
    at: Option<i64>,
    host: Option<&'a str>,
    body: &'a str,
    /// RFC 5424 structured-data parameters.
    sd: Vec<(String, String)>,
}

fn token(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn header(line: &str, now: i64) -> Header<'_> {
    let mut h = Header {
        pri: None,
        at: None,
        host: None,
        body: line,
        sd: Vec::new(),
    };
    let Some(rest) = line.strip_prefix('<') else {
        return h;
    };
    let Some(end) = rest.find('>').filter(|&e| (1..=3).contains(&e)) else {
        return h;
    };
    let Some(pri) = rest[..end]
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 191 && rest[..end].bytes().all(|b| b.is_ascii_digit()))
    else {
        return h;
    };
    h.pri = Some(pri);
    let rest = &rest[end + 1..];
    if let Some(r) = rest.strip_prefix("1 ") {
        // RFC 5424: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]
        let (ts, r) = token(r);
        let (host, r) = token(r);
        let (_app, r) = token(r);
        let (_proc, r) = token(r);
        let (_msgid, r) = token(r);
        h.at = chrono::DateTime::parse_from_rfc3339(ts)
            .ok()
            .map(|d| d.timestamp_micros());
        h.host = (host != "-" && !host.is_empty()).then_some(host);
        let (sd, msg) = structured_data(r);
        h.sd = sd;
        h.body = msg;
        return h;
    }
    // RFC 3164: "Mmm dd hh:mm:ss HOST MSG", or an RFC 3339 time in its place.
    let (at, r) = bsd_time(rest, now);
    if at.is_some() {
        h.at = at;
        let (host, r2) = token(r);
        if !host.is_empty() && !host.ends_with(':') && !host.contains('=') && !r2.is_empty() {
            h.host = Some(host);
            h.body = r2;
        } else {
            h.body = r;
        }
    } else {
        h.body = rest;
    }
    h
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn bsd_time(s: &str, now: i64) -> (Option<i64>, &str) {
    let (tok, rest) = token(s);
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(tok) {
        return (Some(d.timestamp_micros()), rest);
    }
    let b = s.as_bytes();
    if b.len() < 15 || !b[..15].is_ascii() {
        return (None, s);
    }
    let Some(month) = MONTHS.iter().position(|m| s.starts_with(m)) else {
        return (None, s);
    };
    let day: Option<u32> = s[4..6].trim().parse().ok();
    let hms: Vec<Option<u32>> = s[7..15].split(':').map(|x| x.parse().ok()).collect();
    let (Some(day), [Some(hh), Some(mm), Some(ss)]) = (day, hms.as_slice()) else {
        return (None, s);
    };
    let tz = crate::time::shanghai();
    let year = tz
        .timestamp_micros(now)
        .single()
        .map(|d| d.year())
        .unwrap_or(2000);
    let at = |y: i32| {
        tz.with_ymd_and_hms(y, month as u32 + 1, day, *hh, *mm, *ss)
            .single()
            .map(|d| d.timestamp_micros())
    };
    let mut t = at(year);
    // A December line read on the 1st of January belongs to last year.
    if t.is_some_and(|t| t > now + 86_400_000_000) {
        t = at(year - 1);
    }
    let rest = s[15..].trim_start_matches(' ');
    (t, rest)
}

/// Parses RFC 5424 STRUCTURED-DATA ("-" or `[id k="v" …]…`) and returns its parameters
/// and the message after it.
fn structured_data(s: &str) -> (Vec<(String, String)>, &str) {
    let mut out = Vec::new();
    if let Some(r) = s.strip_prefix('-') {
        return (out, r.strip_prefix(' ').unwrap_or(r));
    }
    let mut chars = s.char_indices().peekable();
    let mut end = 0;
    while let Some(&(i, '[')) = chars.peek() {
        chars.next();
        end = i + 1;
        // id
        let mut name = String::new();
        let mut value = String::new();
        let mut in_value = false;
        let mut in_id = true;
        let mut closed = false;
        while let Some((j, c)) = chars.next() {
            end = j + c.len_utf8();
            if in_value {
                match c {
                    '\\' => {
                        if let Some((k, n)) = chars.next() {
                            end = k + n.len_utf8();
                            value.push(n);
                        }
                    }
                    '"' => {
                        in_value = false;
                        if out.len() < 64 {
                            out.push((std::mem::take(&mut name), std::mem::take(&mut value)));
                        }
                        name.clear();
                    }
                    c => value.push(c),
                }
                continue;
            }
            match c {
                ']' => {
                    closed = true;
                    break;
                }
                ' ' => {
                    in_id = false;
                    name.clear();
                }
                '=' if !in_id => {
                    if let Some(&(k, '"')) = chars.peek() {
                        end = k + 1;
                        chars.next();
                        in_value = true;
                    }
                }
                c if !in_id => name.push(c),
                _ => {}
            }
        }
        if !closed {
            return (out, "");
        }
    }
    let rest = &s[end.min(s.len())..];
    (out, rest.strip_prefix(' ').unwrap_or(rest))
}

// --- bodies -----------------------------------------------------------------------------

/// What the body said, under normalised names.
#[derive(Default)]
struct Fields {
    at: Option<i64>,
    device: Option<String>,
    category: Option<String>,
    name: Option<String>,
    rule: Option<String>,
    severity: Option<String>,
    action: Option<String>,
    src_ip: Option<IpAddr>,
    src_port: Option<u16>,
    dst_ip: Option<IpAddr>,
    dst_port: Option<u16>,
    protocol: Option<String>,
    /// How many keys were recognised.
    known: usize,
}

fn set<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
    if slot.is_none() && v.is_some() {
        *slot = v;
        true
    } else {
        false
    }
}

fn ip(v: &str) -> Option<IpAddr> {
    v.trim().trim_matches(|c| c == '[' || c == ']').parse().ok()
}

fn port(v: &str) -> Option<u16> {
    v.trim().parse().ok()
}

fn protocol(v: &str) -> Option<String> {
    let v = v.trim().to_lowercase();
    let p = match v.as_str() {
        "" => return None,
        "6" => "tcp",
        "17" => "udp",
        "1" => "icmp",
        "58" => "icmpv6",
        other => other,
    };
    Some(p.chars().take(16).collect())
}

impl Fields {
    /// Takes one key/value pair if its key is one of the known names.
    fn take(&mut self, key: &str, value: &str) {
        let v = value.trim();
        if v.is_empty() || v == "-" {
            return;
        }
        let k: String = key
            .trim()
            .chars()
            .filter(|c| *c != '_' && *c != '-' && *c != '.')
            .flat_map(char::to_lowercase)
            .collect();
        let text = || Some(clip_field(v));
        let hit = match k.as_str() {
            "src" | "srcip" | "sip" | "sourceip" | "srcaddr" | "sourceaddress" | "源ip"
            | "源地址" | "攻击源" | "攻击者ip" | "attacker" | "srcipaddr" => {
                set(&mut self.src_ip, ip(v))
            }
            "dst" | "dstip" | "dip" | "destinationip" | "destip" | "dstaddr"
            | "destinationaddress" | "目的ip" | "目的地址" | "目标ip" | "受害者ip" | "victim"
            | "dstipaddr" => set(&mut self.dst_ip, ip(v)),
            "spt" | "sport" | "srcport" | "sourceport" | "源端口" => {
                set(&mut self.src_port, port(v))
            }
            "dpt" | "dport" | "dstport" | "destinationport" | "destport" | "目的端口"
            | "目标端口" => set(&mut self.dst_port, port(v)),
            "proto" | "protocol" | "协议" | "transport" => set(&mut self.protocol, protocol(v)),
            "act" | "action" | "动作" | "处理动作" | "处置动作" | "处理结果" | "policyaction"
            | "result" => set(&mut self.action, text()),
            "cat" | "category" | "攻击类型" | "日志类型" | "事件类型" | "威胁类型"
            | "eventtype" | "threattype" | "attacktype" | "subtype" | "logtype" | "type" => {
                set(&mut self.category, text())
            }
            "sev" | "severity" | "level" | "级别" | "严重级别" | "危险级别" | "威胁等级"
            | "风险等级" | "risk" | "risklevel" | "threatlevel" => {
                set(&mut self.severity, text())
            }
            "rule" | "rulename" | "policy" | "policyname" | "signature" | "sig" | "sigid"
            | "规则" | "规则名称" | "策略名称" | "事件名称" | "攻击名称" | "威胁名称"
            | "attackname" | "threatname" | "eventname" | "name" | "msg" => {
                set(&mut self.rule, text())
            }
            "devname" | "device" | "dvchost" | "设备名称" | "hostname" | "devicename" => {
                set(&mut self.device, text())
            }
            "rt" => set(
                &mut self.at,
                v.parse::<i64>()
                    .ok()
                    .filter(|ms| *ms > 0 && *ms < 32_503_680_000_000)
                    .map(|ms| ms * 1000),
            ),
            _ => false,
        };
        if hit {
            self.known += 1;
        }
    }
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '.'
}

fn is_cjk(c: char) -> bool {
    ('\u{2e80}'..='\u{9fff}').contains(&c) || ('\u{f900}'..='\u{faff}').contains(&c)
}

/// The next `key=` (any key) or `键:` / `键：` (keys with Chinese characters only, so
/// times and IPv6 addresses are not split) at or after `from`: (key start, key end,
/// value start).
fn next_key(s: &str, from: usize) -> Option<(usize, usize, usize)> {
    let mut idx = from;
    for (i, c) in s[from..].char_indices() {
        let i = i + from;
        if i < idx {
            continue;
        }
        if c != '=' && c != ':' && c != '：' {
            continue;
        }
        if c == '=' && i > 0 && s.as_bytes()[i - 1] == b'\\' {
            continue;
        }
        let mut start = i;
        let mut n = 0;
        for (j, k) in s[..i].char_indices().rev() {
            if !is_key_char(k) || n >= 40 {
                break;
            }
            start = j;
            n += 1;
        }
        if start < from || n == 0 {
            idx = i + c.len_utf8();
            continue;
        }
        let key = &s[start..i];
        let first_ok = key.chars().next().is_some_and(|k| !k.is_ascii_digit());
        let ok = first_ok && (c == '=' || key.chars().any(is_cjk));
        if ok {
            return Some((start, i, i + c.len_utf8()));
        }
        idx = i + c.len_utf8();
    }
    None
}

/// `key=value` pairs; a value runs to the next key (so values may hold spaces), or is
/// quoted. At most 128 pairs.
fn kv_pairs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = next_key(s, 0);
    while let Some((ks, ke, vs)) = cur {
        if out.len() >= 128 {
            break;
        }
        let key = &s[ks..ke];
        let rest = &s[vs..];
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            out.push((key.to_string(), q[..end].to_string()));
            let after = vs + 1 + end + usize::from(end < q.len());
            cur = if after < s.len() {
                next_key(s, after)
            } else {
                None
            };
            continue;
        }
        let next = next_key(s, vs);
        let end = next.map(|(n, _, _)| n).unwrap_or(s.len());
        let v = s[vs..end].trim_end_matches(|c: char| {
            c.is_whitespace() || c == ',' || c == ';' || c == '，' || c == '；'
        });
        let v = v.trim();
        out.push((key.to_string(), v.replace("\\=", "=")));
        cur = next;
    }
    out
}

/// Splits `s` on `|` not escaped with `\`, at most `n` parts (the last holds the rest).
fn split_pipes(s: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        if out.len() + 1 == n {
            out.push(s[i..].to_string());
            return out;
        }
        match c {
            '\\' => {
                if let Some((_, n)) = it.next() {
                    cur.push(n);
                }
            }
            '|' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// `CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension`
fn cef(s: &str, f: &mut Fields) {
    let parts = split_pipes(s, 8);
    let get = |i: usize| parts.get(i).map(String::as_str).unwrap_or("");
    if !get(2).is_empty() {
        f.device = Some(clip_field(format!("{} {}", get(1), get(2)).trim()));
    }
    if !get(5).is_empty() {
        f.name = Some(clip_field(get(5)));
    }
    if !get(6).is_empty() {
        f.severity = Some(clip_field(get(6)));
    }
    for (k, v) in kv_pairs(get(7)) {
        f.take(&k, &v);
    }
    if f.category.is_none() && !get(2).is_empty() {
        f.category = Some(clip_field(get(2)));
    }
}

/// `LEEF:1.0|Vendor|Product|Version|EventID|attrs` (tab-separated), or LEEF 2.0 with a
/// sixth header field naming the delimiter.
fn leef(s: &str, f: &mut Fields) {
    let v2 = s.starts_with("2.0|");
    let parts = split_pipes(s, if v2 { 7 } else { 6 });
    let get = |i: usize| parts.get(i).map(String::as_str).unwrap_or("");
    if !get(2).is_empty() {
        f.device = Some(clip_field(&format!("{} {}", get(1), get(2))));
    }
    if !get(4).is_empty() {
        f.name = Some(clip_field(get(4)));
    }
    let (delim, attrs) = if v2 {
        let d = get(5);
        let d = match d {
            "" | "\t" => '\t',
            x if x.starts_with("x") || x.starts_with("0x") => {
                u32::from_str_radix(x.trim_start_matches("0x").trim_start_matches('x'), 16)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\t')
            }
            x => x.chars().next().unwrap_or('\t'),
        };
        (d, get(6))
    } else {
        ('\t', get(5))
    };
    if attrs.contains(delim) {
        for a in attrs.split(delim) {
            if let Some((k, v)) = a.split_once('=') {
                f.take(k, v);
            }
        }
    } else {
        for (k, v) in kv_pairs(attrs) {
            f.take(&k, &v);
        }
    }
    if f.category.is_none() && !get(2).is_empty() {
        f.category = Some(clip_field(get(2)));
    }
}

// --- normalisation ----------------------------------------------------------------------

const DENY_WORDS: &[&str] = &[
    "deny", "denied", "drop", "block", "reject", "拒绝", "阻断", "丢弃", "拦截", "阻止",
];
const ALLOW_WORDS: &[&str] = &[
    "permit", "allow", "accept", "pass", "alert", "log", "允许", "放行", "告警", "记录",
];

fn has_any(s: &str, words: &[&str]) -> bool {
    words.iter().any(|w| s.contains(w))
}

fn action_of(v: &str) -> Option<EventAction> {
    let v = v.to_lowercase();
    if has_any(&v, DENY_WORDS) {
        Some(EventAction::Blocked)
    } else if has_any(&v, ALLOW_WORDS) {
        Some(EventAction::Allowed)
    } else {
        None
    }
}

/// The category a hint (category field, rule and event names; lowercase) points at.
fn category_of(hint: &str) -> Option<Category> {
    const RULES: &[(Category, &[&str])] = &[
        (
            Category::Virus,
            &[
                "virus",
                "malware",
                "trojan",
                "ransom",
                "病毒",
                "木马",
                "恶意软件",
                "蠕虫",
            ],
        ),
        (
            Category::WebAttack,
            &[
                "waf",
                "sql",
                "xss",
                "webshell",
                "web",
                "injection",
                "注入",
                "跨站",
                "网页篡改",
                "目录遍历",
            ],
        ),
        (
            Category::BruteForce,
            &[
                "brute",
                "暴力",
                "爆破",
                "password guess",
                "弱口令",
                "login fail",
            ],
        ),
        (Category::Scan, &["scan", "扫描", "probe", "探测", "sweep"]),
        (
            Category::Intrusion,
            &[
                "ips",
                "ids",
                "intrusion",
                "exploit",
                "入侵",
                "漏洞利用",
                "溢出",
                "backdoor",
                "后门",
            ],
        ),
        (
            Category::Attack,
            &["attack", "ddos", "flood", "攻击", "dos"],
        ),
        (
            Category::PolicyDeny,
            &["policy", "acl", "deny", "策略", "访问控制", "拒绝"],
        ),
    ];
    RULES
        .iter()
        .find(|(_, words)| has_any(hint, words))
        .map(|(c, _)| *c)
}

fn severity_of(v: &str) -> Option<Severity> {
    let v = v.trim().to_lowercase();
    if let Ok(n) = v.parse::<u8>() {
        // CEF and LEEF: 0–10.
        return Some(match n {
            0..=3 => Severity::Low,
            4..=6 => Severity::Medium,
            7..=8 => Severity::High,
            _ => Severity::Critical,
        });
    }
    let table: &[(Severity, &[&str])] = &[
        (
            Severity::Critical,
            &[
                "critical",
                "crit",
                "very-high",
                "emerg",
                "alert",
                "严重",
                "紧急",
                "致命",
            ],
        ),
        (Severity::High, &["high", "高", "err"]),
        (Severity::Medium, &["medium", "middle", "med", "warn", "中"]),
        (Severity::Low, &["low", "notice", "低"]),
        (
            Severity::Info,
            &["info", "information", "debug", "信息", "提示"],
        ),
    ];
    table
        .iter()
        .find(|(_, words)| words.iter().any(|w| v.contains(w)))
        .map(|(s, _)| *s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_100_000_000_000; // 2026-12-01

    fn p(s: &str) -> Parsed {
        parse(s.as_bytes(), NOW)
    }

    #[test]
    fn rfc5424_with_structured_data_and_kv_body() {
        let e = p(
            r#"<36>1 2026-11-30T10:15:00+08:00 fw-core-01 USG - POLICY [meta sequenceId="7" note="a \"q\" b"] vsys=public, protocol=6, source-ip=203.0.113.9, source-port=51234, destination-ip=10.20.1.15, destination-port=3389, policy-name=deny-rdp, action=deny"#,
        );
        assert_eq!(
            e.at,
            chrono::DateTime::parse_from_rfc3339("2026-11-30T10:15:00+08:00")
                .ok()
                .map(|d| d.timestamp_micros())
        );
        assert_eq!(e.appliance.as_deref(), Some("fw-core-01"));
        assert_eq!(e.format, EventFormat::Kv);
        assert_eq!(e.action, EventAction::Blocked);
        assert_eq!(e.category, Category::PolicyDeny);
        assert_eq!(e.src_ip, "203.0.113.9".parse().ok());
        assert_eq!(e.dst_ip, "10.20.1.15".parse().ok());
        assert_eq!(e.dst_port, Some(3389));
        assert_eq!(e.protocol.as_deref(), Some("tcp"));
        assert_eq!(e.rule.as_deref(), Some("deny-rdp"));
        assert_eq!(e.severity, Severity::Medium, "PRI 36 is warning");
    }

    #[test]
    fn rfc3164_with_chinese_keys_and_spaces_in_values() {
        let e = p("<131>Nov 30 10:16:02 waf-gw-02 WAF: 日志类型:WAF应用防护日志, 源IP:198.51.100.7, 源端口:40022, 目的IP:10.30.0.8, 目的端口:443, 攻击类型:SQL注入, 严重级别:高, 动作:拒绝, 规则名称:union select 检测");
        assert_eq!(e.appliance.as_deref(), Some("waf-gw-02"));
        assert_eq!(e.format, EventFormat::Kv);
        assert_eq!(e.category, Category::WebAttack);
        assert_eq!(e.severity, Severity::High);
        assert_eq!(e.action, EventAction::Blocked);
        assert_eq!(e.src_ip, "198.51.100.7".parse().ok());
        assert_eq!(e.dst_ip, "10.30.0.8".parse().ok());
        assert_eq!(e.dst_port, Some(443));
        assert_eq!(e.rule.as_deref(), Some("union select 检测"));
        let at = e.at.expect("time");
        let d = crate::time::shanghai()
            .timestamp_micros(at)
            .single()
            .expect("t");
        use chrono::Timelike;
        assert_eq!((d.month(), d.day(), d.hour(), d.year()), (11, 30, 10, 2026));
    }

    #[test]
    fn hillstone_style_space_separated_pairs() {
        let e = p("<134>Nov 30 11:00:00 hs-fw01 THREAT: src=192.0.2.44 dst=10.20.5.6 sport=5555 dport=22 proto=TCP threat_name=SSH brute force attempt level=critical action=block");
        assert_eq!(e.category, Category::BruteForce);
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(e.action, EventAction::Blocked);
        assert_eq!(e.protocol.as_deref(), Some("tcp"));
        assert_eq!(e.rule.as_deref(), Some("SSH brute force attempt"));
    }

    #[test]
    fn cef_with_escapes_and_extension() {
        let e = p(
            r"<134>Nov 30 12:00:00 ids01 CEF:0|Acme|Sentinel IPS|5.1|4012|Exploit attempt on a\|b|8|src=203.0.113.5 dst=10.40.0.9 spt=1025 dpt=80 proto=TCP act=blocked cat=/Intrusion/Exploit msg=has spaces here",
        );
        assert_eq!(e.format, EventFormat::Cef);
        assert_eq!(e.severity, Severity::High);
        assert_eq!(e.category, Category::Intrusion);
        assert_eq!(e.action, EventAction::Blocked);
        assert_eq!(e.dst_ip, "10.40.0.9".parse().ok());
        assert_eq!(e.dst_port, Some(80));
        assert_eq!(e.rule.as_deref(), Some("has spaces here"));
    }

    #[test]
    fn leef_tab_separated() {
        let e = p("<13>1 2026-11-30T12:00:00Z av01 - - - - LEEF:1.0|Acme|AV Gateway|2.0|VirusFound|src=10.20.9.9\tdst=198.51.100.1\tsev=9\tcat=Trojan\tproto=17");
        assert_eq!(e.format, EventFormat::Leef);
        assert_eq!(e.category, Category::Virus);
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(e.protocol.as_deref(), Some("udp"));
        assert_eq!(e.src_ip, "10.20.9.9".parse().ok());
        assert_eq!(e.rule.as_deref(), Some("VirusFound"));
    }

    #[test]
    fn unknown_bodies_are_other_with_their_raw_text() {
        let e = p("<30>Nov 30 12:00:00 box systemd[1]: Started the thing at 10:00:00.");
        assert_eq!(e.format, EventFormat::Unknown);
        assert_eq!(e.category, Category::Other);
        assert_eq!(e.severity, Severity::Low);
        assert!(e.message.contains("Started the thing"));
        let bare = p("just some words");
        assert_eq!(bare.category, Category::Other);
        assert_eq!(bare.appliance, None);
        assert_eq!(bare.at, None);
    }

    #[test]
    fn december_lines_read_in_january_are_last_year() {
        let jan2 = chrono::DateTime::parse_from_rfc3339("2027-01-02T00:00:00+08:00")
            .unwrap()
            .timestamp_micros();
        let e = parse(b"<13>Dec 31 23:59:00 h x=1 y=2", jan2);
        let d = crate::time::shanghai()
            .timestamp_micros(e.at.unwrap())
            .single()
            .unwrap();
        assert_eq!(d.year(), 2026);
    }

    #[test]
    fn long_lines_are_cut() {
        let line = format!("<13>{}", "x".repeat(10_000));
        assert_eq!(p(&line).message.chars().count(), MAX_MESSAGE_CHARS);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse(&b, NOW);
        }

        #[test]
        fn never_panics_on_syslog_like_text(s in "<[0-9]{1,3}>(1 )?[A-Za-z0-9:\\-\\[\\]\"=,;：| 源目的IP\\\\CEF:LEEF:\t]{0,200}") {
            let _ = parse(s.as_bytes(), NOW);
        }
    }
}
