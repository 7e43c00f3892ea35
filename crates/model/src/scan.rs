//! Scanner results for vulnerability tracking (漏洞管理): a CSV with a documented column
//! mapping, and Nessus's `.nessus` (v2) XML export, both read into the same findings. Pure
//! and bounded: a malformed file is a validation error naming the row or the problem, never
//! a panic (property tests feed arbitrary input). The XML reader is a small one for this
//! one document shape (elements, attributes, text, the five entities and numeric
//! references, comments, CDATA, no DTD), refusing anything deeper than 32 levels.

use crate::secev::Severity;
use crate::{t, Error};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Most findings one file may hold.
pub const MAX_FINDINGS: usize = 100_000;

/// One finding as the scanner reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub address: IpAddr,
    pub port: u16,
    pub protocol: String,
    pub vuln_id: String,
    pub title: String,
    pub severity: Severity,
    pub cve: String,
    pub solution: String,
}

/// What one file says: its findings (duplicates within the file folded) and every host it
/// scanned (also those with nothing found, which is what confirms a fix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    pub findings: Vec<Finding>,
    pub scanned: BTreeSet<IpAddr>,
    /// Rows of the same (address, port, vulnerability id) folded into one.
    pub duplicates: usize,
}

impl ScanResult {
    fn push(&mut self, f: Finding) -> Result<(), Error> {
        self.scanned.insert(f.address);
        if let Some(old) = self
            .findings
            .iter_mut()
            .find(|o| o.address == f.address && o.port == f.port && o.vuln_id == f.vuln_id)
        {
            self.duplicates += 1;
            if f.severity.rank() < old.severity.rank() {
                *old = f;
            }
            return Ok(());
        }
        if self.findings.len() >= MAX_FINDINGS {
            return Err(Error::validation(
                "file",
                t!(
                    "文件中的漏洞超过 100000 条",
                    "the file holds more than 100,000 findings"
                ),
            ));
        }
        self.findings.push(f);
        Ok(())
    }
}

fn clip(s: &str, n: usize) -> String {
    s.trim().chars().take(n).collect()
}

/// Severity words and numbers scanners use: `critical`/`严重`/`紧急`, `high`/`高`/`高危`,
/// `medium`/`中`/`中危`, `low`/`低`/`低危`, `info`/`信息`/`none`; Nessus 0–4; CVSS scores
/// (9.0+ critical, 7.0+ high, 4.0+ medium, above 0 low).
pub fn severity_word(v: &str) -> Option<Severity> {
    let v = v.trim().to_lowercase();
    let s = match v.as_str() {
        "critical" | "严重" | "紧急" | "超危" | "4" => Severity::Critical,
        "high" | "高" | "高危" | "3" => Severity::High,
        "medium" | "moderate" | "中" | "中危" | "2" => Severity::Medium,
        "low" | "低" | "低危" | "1" => Severity::Low,
        "info" | "informational" | "none" | "信息" | "0" => Severity::Info,
        other => {
            let score: f64 = other.parse().ok()?;
            if !(0.0..=10.0).contains(&score) {
                return None;
            }
            if score >= 9.0 {
                Severity::Critical
            } else if score >= 7.0 {
                Severity::High
            } else if score >= 4.0 {
                Severity::Medium
            } else if score > 0.0 {
                Severity::Low
            } else {
                Severity::Info
            }
        }
    };
    Some(s)
}

// --- CSV --------------------------------------------------------------------------------

/// Reads a CSV export. The header row names the columns, in any order (others ignored):
///
/// | column | also accepted | required |
/// |---|---|---|
/// | `address` | `ip`, `host`, `主机`, `IP地址` | yes |
/// | `port` | `端口` (empty or `general` = host-level, 0) | no |
/// | `protocol` | `协议` (default `tcp`) | no |
/// | `vuln_id` | `plugin_id`, `nvt_oid`, `id`, `漏洞编号` | yes (or `cve`) |
/// | `title` | `name`, `漏洞名称` | yes |
/// | `severity` | `risk`, `风险等级`, `危险级别`, or a CVSS score | yes |
/// | `cve` | `CVE` | no |
/// | `solution` | `修复建议`, `解决方案` | no |
pub fn read_csv(csv: &str) -> Result<ScanResult, Error> {
    let mut lines = csv
        .trim_start_matches('\u{feff}')
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| Error::validation("csv", t!("文件为空", "the file is empty")))?;
    let cols: Vec<String> = split_csv(header)
        .into_iter()
        .map(|c| c.trim().to_lowercase())
        .collect();
    let find = |names: &[&str]| cols.iter().position(|c| names.contains(&c.as_str()));
    let addr = find(&["address", "ip", "host", "主机", "ip地址"]);
    let port = find(&["port", "端口"]);
    let proto = find(&["protocol", "协议"]);
    let vid = find(&["vuln_id", "plugin_id", "nvt_oid", "id", "漏洞编号"]);
    let title = find(&["title", "name", "漏洞名称"]);
    let sev = find(&["severity", "risk", "风险等级", "危险级别"]);
    let cve = find(&["cve"]);
    let sol = find(&["solution", "修复建议", "解决方案"]);
    let (Some(addr), Some(title), Some(sev)) = (addr, title, sev) else {
        return Err(Error::validation(
            "csv",
            t!(
                "表头须包含 address（IP地址）、title（漏洞名称）、severity（风险等级）列，以及 vuln_id（漏洞编号）或 cve 列",
                "the header must name the columns address, title, severity, and vuln_id or cve"
            ),
        ));
    };
    if vid.is_none() && cve.is_none() {
        return Err(Error::validation(
            "csv",
            t!(
                "表头须包含 vuln_id（漏洞编号）或 cve 列",
                "the header must name a vuln_id or a cve column"
            ),
        ));
    }
    let mut out = ScanResult::default();
    for (n, line) in lines {
        let row = n + 1;
        let f = split_csv(line);
        let get = |i: Option<usize>| i.and_then(|i| f.get(i)).map(|s| s.trim()).unwrap_or("");
        let address: IpAddr = get(Some(addr)).parse().map_err(|_| {
            Error::validation(
                "csv",
                t!("第 {} 行：IP地址“{}”无效" ; "row {}: the address \"{}\" is not an IP address", row, clip(get(Some(addr)), 40)),
            )
        })?;
        let port = match get(port) {
            "" | "general" | "0" => 0,
            p => p.split('/').next().unwrap_or(p).parse::<u16>().map_err(|_| {
                Error::validation(
                    "csv",
                    t!("第 {} 行：端口“{}”无效" ; "row {}: the port \"{}\" is not 0–65535", row, clip(p, 20)),
                )
            })?,
        };
        let cve_v = clip(get(cve), 200);
        let vuln_id = match clip(get(vid), 128) {
            v if v.is_empty() => cve_v.split([',', ' ']).next().unwrap_or("").to_string(),
            v => v,
        };
        let title_v = clip(get(Some(title)), 300);
        if vuln_id.is_empty() || title_v.is_empty() {
            return Err(Error::validation(
                "csv",
                t!("第 {} 行：漏洞编号或名称缺失" ; "row {}: the vulnerability id or title is missing", row),
            ));
        }
        let severity = severity_word(get(Some(sev))).ok_or_else(|| {
            Error::validation(
                "csv",
                t!("第 {} 行：风险等级“{}”无法识别（critical/high/medium/low/info 或 CVSS 分值）" ; "row {}: the severity \"{}\" is not critical/high/medium/low/info or a CVSS score", row, clip(get(Some(sev)), 20)),
            )
        })?;
        let protocol = match clip(get(proto), 16).to_lowercase() {
            p if p.is_empty() => "tcp".to_string(),
            p => p,
        };
        out.push(Finding {
            address,
            port,
            protocol,
            vuln_id,
            title: title_v,
            severity,
            cve: cve_v,
            solution: clip(get(sol), 2000),
        })?;
    }
    Ok(out)
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

// --- XML --------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Tok {
    Open(String, Vec<(String, String)>, bool),
    Close(String),
    Text(String),
}

fn xml_error(what: &str) -> Error {
    Error::validation(
        "xml",
        t!("XML 文件格式错误：{}" ; "the XML file is malformed: {}", what),
    )
}

fn unescape(s: &str) -> Result<String, Error> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .filter(|e| *e <= 10)
            .ok_or_else(|| xml_error("&"))?;
        let ent = &after[..end];
        let c = match ent {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| xml_error(e))?,
            e if e.starts_with('#') => e[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| xml_error(e))?,
            e => return Err(xml_error(&format!("&{};", clip(e, 10)))),
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Tokenises the whole document.
fn tokens(doc: &str) -> Result<Vec<Tok>, Error> {
    let mut out = Vec::new();
    let mut rest = doc.trim_start_matches('\u{feff}');
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() {
                out.push(Tok::Text(unescape(rest)?));
            }
            break;
        };
        if lt > 0 {
            out.push(Tok::Text(unescape(&rest[..lt])?));
        }
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<!--") {
            let e = r.find("-->").ok_or_else(|| xml_error("<!--"))?;
            rest = &r[e + 3..];
        } else if let Some(r) = rest.strip_prefix("<![CDATA[") {
            let e = r.find("]]>").ok_or_else(|| xml_error("CDATA"))?;
            out.push(Tok::Text(r[..e].to_string()));
            rest = &r[e + 3..];
        } else if rest.starts_with("<?") {
            let e = rest.find("?>").ok_or_else(|| xml_error("<?"))?;
            rest = &rest[e + 2..];
        } else if rest.starts_with("<!") {
            return Err(xml_error("DOCTYPE"));
        } else if let Some(r) = rest.strip_prefix("</") {
            let e = r.find('>').ok_or_else(|| xml_error("</"))?;
            out.push(Tok::Close(r[..e].trim().to_string()));
            rest = &r[e + 1..];
        } else {
            let r = &rest[1..];
            // The end of the tag: the first '>' outside a quoted attribute value.
            let mut quote: Option<char> = None;
            let mut end = None;
            for (i, c) in r.char_indices() {
                match (c, quote) {
                    ('"' | '\'', None) => quote = Some(c),
                    (c, Some(q)) if c == q => quote = None,
                    ('>', None) => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| xml_error("<"))?;
            let mut body = &r[..end];
            let selfclosing = body.ends_with('/');
            if selfclosing {
                body = &body[..body.len() - 1];
            }
            let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
            let name = body[..name_end].to_string();
            if name.is_empty() {
                return Err(xml_error("<>"));
            }
            let mut attrs = Vec::new();
            let mut a = body[name_end..].trim_start();
            while !a.is_empty() {
                let eq = a.find('=').ok_or_else(|| xml_error(&name))?;
                let key = a[..eq].trim().to_string();
                let v = a[eq + 1..].trim_start();
                let q = v
                    .chars()
                    .next()
                    .filter(|c| *c == '"' || *c == '\'')
                    .ok_or_else(|| xml_error(&name))?;
                let close = v[1..].find(q).ok_or_else(|| xml_error(&name))?;
                attrs.push((key, unescape(&v[1..1 + close])?));
                a = v[close + 2..].trim_start();
            }
            out.push(Tok::Open(name, attrs, selfclosing));
            rest = &r[end + 1..];
        }
    }
    Ok(out)
}

/// Reads a Nessus v2 export (`<NessusClientData_v2><Report><ReportHost name=…>`). Each
/// `ReportItem` with severity 1–4 is a finding (0, informational, is not tracked); its
/// `pluginID` is the vulnerability id. A host's address is its `host-ip` property, else
/// its `name`. Every `ReportHost` counts as scanned.
pub fn read_nessus(doc: &str) -> Result<ScanResult, Error> {
    let toks = tokens(doc)?;
    let mut stack: Vec<String> = Vec::new();
    let mut out = ScanResult::default();
    let mut saw_root = false;
    // The current host: name, host-ip property, its items.
    let mut host_name = String::new();
    let mut host_ip: Option<String> = None;
    let mut in_tag: Option<String> = None;
    let mut items: Vec<Item> = Vec::new();
    let mut child: Option<String> = None;
    for tok in toks {
        match tok {
            Tok::Open(name, attrs, selfclosing) => {
                if stack.len() >= 32 {
                    return Err(xml_error("depth > 32"));
                }
                match name.as_str() {
                    "NessusClientData_v2" => saw_root = true,
                    "ReportHost" => {
                        host_name = attr(&attrs, "name");
                        host_ip = None;
                        items.clear();
                    }
                    "tag" if stack.last().map(String::as_str) == Some("HostProperties") => {
                        in_tag = Some(attr(&attrs, "name"));
                    }
                    "ReportItem" => items.push((attrs, Vec::new())),
                    other
                        if !selfclosing
                            && stack.last().map(String::as_str) == Some("ReportItem") =>
                    {
                        child = Some(other.to_string());
                    }
                    _ => {}
                }
                if !selfclosing {
                    stack.push(name);
                } else if name == "ReportHost" {
                    finish_host(&mut out, &host_name, host_ip.as_deref(), &items)?;
                }
            }
            Tok::Text(t) => {
                if let Some(tag) = &in_tag {
                    if tag == "host-ip" {
                        host_ip = Some(t.trim().to_string());
                    }
                } else if let (Some(c), Some(item)) = (&child, items.last_mut()) {
                    if item.1.len() < 64 {
                        item.1.push((c.clone(), t));
                    }
                }
            }
            Tok::Close(name) => {
                if stack.pop().as_deref() != Some(name.as_str()) {
                    return Err(xml_error(&format!("</{}>", clip(&name, 40))));
                }
                match name.as_str() {
                    "tag" => in_tag = None,
                    "ReportHost" => {
                        finish_host(&mut out, &host_name, host_ip.as_deref(), &items)?;
                        items.clear();
                    }
                    _ if stack.last().map(String::as_str) == Some("ReportItem") => child = None,
                    _ => {}
                }
            }
        }
    }
    if !stack.is_empty() {
        return Err(xml_error(&format!(
            "<{}>",
            clip(&stack[stack.len() - 1], 40)
        )));
    }
    if !saw_root {
        return Err(Error::validation(
            "xml",
            t!(
                "不是 Nessus v2 导出文件（缺少 NessusClientData_v2）",
                "not a Nessus v2 export (no NessusClientData_v2 element)"
            ),
        ));
    }
    Ok(out)
}

/// A `ReportItem`: its attributes and its child elements' texts.
type Item = (Vec<(String, String)>, Vec<(String, String)>);

fn attr(attrs: &[(String, String)], key: &str) -> String {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn finish_host(
    out: &mut ScanResult,
    name: &str,
    host_ip: Option<&str>,
    items: &[Item],
) -> Result<(), Error> {
    let text = host_ip.unwrap_or(name).trim();
    let address: IpAddr = text.parse().map_err(|_| {
        Error::validation(
            "xml",
            t!("主机“{}”没有 IP 地址（host-ip）" ; "the host \"{}\" has no IP address (host-ip)", clip(text, 60)),
        )
    })?;
    out.scanned.insert(address);
    for (attrs, children) in items {
        let sev = attr(attrs, "severity");
        let severity = severity_word(&sev).ok_or_else(|| {
            Error::validation(
                "xml",
                t!("ReportItem 的 severity“{}”无效" ; "a ReportItem has the invalid severity \"{}\"", clip(&sev, 10)),
            )
        })?;
        if severity == Severity::Info {
            continue;
        }
        let port = attr(attrs, "port").trim().parse::<u16>().map_err(|_| {
            Error::validation(
                "xml",
                t!("ReportItem 的端口无效", "a ReportItem has an invalid port"),
            )
        })?;
        let vuln_id = clip(&attr(attrs, "pluginID"), 128);
        if vuln_id.is_empty() {
            return Err(Error::validation(
                "xml",
                t!("ReportItem 缺少 pluginID", "a ReportItem has no pluginID"),
            ));
        }
        let kid = |k: &str| {
            children
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.trim())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let title = match clip(&attr(attrs, "pluginName"), 300) {
            t if t.is_empty() => vuln_id.clone(),
            t => t,
        };
        out.push(Finding {
            address,
            port,
            protocol: clip(&attr(attrs, "protocol"), 16).to_lowercase(),
            vuln_id,
            title,
            severity,
            cve: clip(&kid("cve"), 200),
            solution: clip(&kid("solution"), 2000),
        })?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub const NESSUS: &str = r#"<?xml version="1.0" ?>
<NessusClientData_v2>
<Policy><policyName>月度扫描</policyName></Policy>
<Report name="2026-11 宜宾政务外网" xmlns:cm="http://www.nessus.org/cm">
<ReportHost name="10.20.1.15"><HostProperties>
<tag name="host-ip">10.20.1.15</tag><tag name="operating-system">Linux</tag>
</HostProperties>
<ReportItem port="22" svc_name="ssh" protocol="tcp" severity="3" pluginID="90001" pluginName="OpenSSH &lt; 9.3 multiple flaws" pluginFamily="Misc.">
<cve>CVE-2023-0001</cve><cve>CVE-2023-0002</cve>
<solution><![CDATA[Upgrade OpenSSH to 9.3 or later.]]></solution>
<risk_factor>High</risk_factor>
</ReportItem>
<ReportItem port="0" svc_name="general" protocol="tcp" severity="0" pluginID="19506" pluginName="Scan information"/>
<ReportItem port="443" svc_name="www" protocol="tcp" severity="4" pluginID="90002" pluginName="TLS library RCE"><solution>Patch &amp; restart</solution></ReportItem>
</ReportHost>
<ReportHost name="web-02"><HostProperties><tag name="host-ip">10.20.1.16</tag></HostProperties></ReportHost>
</Report>
</NessusClientData_v2>"#;

    #[test]
    fn nessus_findings_hosts_and_entities() {
        let r = read_nessus(NESSUS).expect("parses");
        assert_eq!(r.findings.len(), 2, "informational items are not tracked");
        let ssh = &r.findings[0];
        assert_eq!(ssh.address, "10.20.1.15".parse::<IpAddr>().unwrap());
        assert_eq!((ssh.port, ssh.vuln_id.as_str()), (22, "90001"));
        assert_eq!(ssh.title, "OpenSSH < 9.3 multiple flaws");
        assert_eq!(ssh.severity, Severity::High);
        assert_eq!(ssh.cve, "CVE-2023-0001, CVE-2023-0002");
        assert_eq!(ssh.solution, "Upgrade OpenSSH to 9.3 or later.");
        assert_eq!(r.findings[1].severity, Severity::Critical);
        assert_eq!(r.findings[1].solution, "Patch & restart");
        assert_eq!(
            r.scanned.len(),
            2,
            "a host with no findings was scanned too"
        );
    }

    #[test]
    fn malformed_xml_is_a_validation_error() {
        for bad in [
            "",
            "<NessusClientData_v2>",
            "<a></b>",
            "<NessusClientData_v2><ReportHost name=\"not-an-ip\"></ReportHost></NessusClientData_v2>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]><x/>",
            "<NessusClientData_v2><ReportHost name=\"10.0.0.1\"><ReportItem port=\"x\" severity=\"3\" pluginID=\"1\"/></ReportHost></NessusClientData_v2>",
            "<x a=\"&bogus;\"/>",
        ] {
            let e = read_nessus(bad).expect_err(bad);
            assert_eq!(e.code, crate::ErrorCode::ValidationFailed, "{bad}");
        }
    }

    #[test]
    fn csv_columns_in_any_order_with_duplicates_folded() {
        let csv = "\u{feff}漏洞名称,IP地址,端口,风险等级,漏洞编号,CVE,修复建议\n\
                   Apache Struts2 远程代码执行,10.30.0.8,8080,严重,S2-045,CVE-2017-5638,升级 Struts2\n\
                   \"Weak, guessable password\",10.30.0.8,22/tcp,7.5,WEAKPW,,\"修改为强口令\"\n\
                   Apache Struts2 远程代码执行,10.30.0.8,8080,高危,S2-045,CVE-2017-5638,升级 Struts2\n";
        let r = read_csv(csv).expect("parses");
        assert_eq!(r.findings.len(), 2);
        assert_eq!(r.duplicates, 1);
        assert_eq!(
            r.findings[0].severity,
            Severity::Critical,
            "the worse of two duplicates is kept"
        );
        assert_eq!(r.findings[1].title, "Weak, guessable password");
        assert_eq!(r.findings[1].port, 22);
        assert_eq!(r.findings[1].severity, Severity::High);
    }

    #[test]
    fn bad_csv_rows_name_the_row() {
        let e =
            read_csv("address,title,severity,vuln_id\n10.0.0.1,x,high,1\n10.0.0.300,y,high,2\n")
                .unwrap_err();
        assert!(e.message.en.contains("row 3"), "{}", e.message.en);
        assert!(
            read_csv("address,title,vuln_id\n").is_err(),
            "no severity column"
        );
        assert!(read_csv("address,title,severity,vuln_id\n10.0.0.1,x,extreme,1\n").is_err());
        assert!(
            read_csv("address,title,severity,vuln_id\n10.0.0.1,x,high,1,\n10.0.0.1,,high,1\n")
                .is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn xml_reader_never_panics(s in "[<>/=\"'a-zA-Z0-9 &;#!\\[\\]?\\-]{0,300}") {
            let _ = read_nessus(&s);
        }

        #[test]
        fn nessus_with_damage_never_panics(cut in 0usize..1200, junk in "[<>&\"]{0,3}") {
            let cut = cut.min(NESSUS.len());
            let mut s: String = NESSUS.chars().take(cut).collect();
            s.push_str(&junk);
            let _ = read_nessus(&s);
        }

        #[test]
        fn csv_reader_never_panics(s in "\\PC{0,300}") {
            let _ = read_csv(&format!("address,title,severity,vuln_id\n{s}"));
        }
    }
}
