//! Demo data for security events and vulnerabilities: an address plan for the Yibin
//! bureaus (10.20+i.0.0/16 each, on the first provider's network), two weeks of a replayed
//! appliance log (firewall, WAF, IPS and antivirus lines in the formats the parser reads,
//! written through the same parse → map → batch path as the syslog receiver), and an
//! imported scan with findings in every state.

use super::secev::Resolver;
use zy_model::id::{DepartmentId, ProviderId};
use zy_model::secev::{AddressBlock, EventSource};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::secev::{self as repo, NewEvent};
use zy_store::Tx;

/// Loads the demo's security data in the caller's transaction.
pub async fn load(
    tx: &mut Tx,
    departments: &[(DepartmentId, String)],
    providers: &[ProviderId],
) -> Result<(), Error> {
    let now = Timestamp::now();
    for (i, (d, name)) in departments.iter().enumerate() {
        repo::insert_block(
            tx,
            &AddressBlock {
                id: uuid::Uuid::now_v7(),
                cidr: format!("10.{}.0.0/16", 20 + i),
                department_id: *d,
                department_name: name.clone(),
                provider_id: providers.first().copied(),
                description: format!("{name} 政务外网地址段 / e-government network block"),
                created_at: now,
            },
        )
        .await?;
    }
    let r = Resolver::load(tx).await?;
    let n = departments.len().max(1);
    let mut events = Vec::new();
    // A deterministic spread: 40 lines a day for 14 days.
    for k in 0..560usize {
        let day = (k / 40) as i64;
        let at = now.plus_secs(-(day * 86_400) - ((k * 797) % 80_000) as i64);
        let dept = k % n;
        let host = format!("10.{}.{}.{}", 20 + dept, (k * 7) % 16, 10 + k % 200);
        let attacker = format!("203.0.113.{}", (k * 13) % 250 + 1);
        let line = match k % 7 {
            0 | 1 => format!("<36>1 - fw-core-01 USG - POLICY - vsys=public, protocol=6, source-ip={attacker}, source-port={}, destination-ip={host}, destination-port={}, policy-name=deny-inbound, action=deny", 40_000 + k, [22, 3389, 445, 23][k % 4]),
            2 | 3 => format!("<131>Nov 30 10:16:02 waf-gw-02 WAF: 日志类型:WAF应用防护日志, 源IP:{attacker}, 源端口:{}, 目的IP:{host}, 目的端口:443, 攻击类型:{}, 严重级别:{}, 动作:拒绝", 50_000 + k, ["SQL注入", "跨站脚本", "Webshell上传"][k % 3], ["高", "中", "严重"][k % 3]),
            4 => format!("<134>Nov 30 12:00:00 ids01 CEF:0|Acme|Sentinel IPS|5.1|4012|Exploit attempt|{}|src={attacker} dst={host} spt=1025 dpt=80 proto=TCP act=blocked cat=/Intrusion/Exploit", 5 + k % 5),
            5 => format!("<134>Nov 30 11:00:00 hs-fw01 THREAT: src={attacker} dst={host} sport=5555 dport=22 proto=TCP threat_name=SSH brute force attempt level=high action=block"),
            _ => format!("<13>1 - av01 - - - - LEEF:1.0|Acme|AV Gateway|2.0|VirusFound|src={host}\tdst=198.51.100.{}\tsev=9\tcat=Trojan", k % 200),
        };
        let p = zy_model::syslog::parse(line.as_bytes(), at.0);
        let owner = p
            .dst_ip
            .and_then(|ip| r.resolve(ip))
            .or_else(|| p.src_ip.and_then(|ip| r.resolve(ip)));
        events.push(NewEvent {
            at: at.0,
            received_at: at.0,
            source: EventSource::Syslog,
            appliance: p.appliance.unwrap_or_else(|| "10.0.0.1".into()),
            format: p.format,
            category: p.category,
            severity: p.severity,
            action: p.action,
            src_ip: p.src_ip.map(|i| i.to_string()),
            src_port: p.src_port,
            dst_ip: p.dst_ip.map(|i| i.to_string()),
            dst_port: p.dst_port,
            protocol: p.protocol,
            rule: p.rule,
            count: 1,
            department_id: owner.as_ref().map(|o| o.department_id),
            provider_id: owner.as_ref().and_then(|o| o.provider_id),
            instance_id: None,
            message: p.message,
        });
    }
    repo::insert_events(tx, &events).await?;

    let mut csv = String::from("address,port,vuln_id,title,severity,cve,solution\n");
    let titles = [
        (
            "S2-045",
            "Apache Struts2 远程代码执行",
            "critical",
            "CVE-2017-5638",
            "升级 Struts2 至 2.5.33",
        ),
        (
            "WEAKPW",
            "SSH 弱口令",
            "high",
            "",
            "修改为强口令并启用双因素认证",
        ),
        ("TLS10", "启用了 TLS 1.0", "medium", "", "关闭 TLS 1.0/1.1"),
        (
            "OPENSSH-OLD",
            "OpenSSH 版本过旧",
            "high",
            "CVE-2023-38408",
            "升级 OpenSSH",
        ),
        ("MYSQL-OLD", "MySQL 版本过旧", "medium", "", "升级 MySQL"),
        (
            "HTTP-TRACE",
            "启用了 HTTP TRACE",
            "low",
            "",
            "关闭 TRACE 方法",
        ),
    ];
    for i in 0..(n * 3) {
        let (id, title, sev, cve, fix) = titles[i % titles.len()];
        let port = [8080, 22, 443, 22, 3306, 80][i % titles.len()];
        csv.push_str(&format!(
            "10.{}.1.{},{port},{id},{title},{sev},{cve},{fix}\n",
            20 + i % n,
            10 + i / n
        ));
    }
    let scan = zy_model::scan::read_csv(&csv)?;
    super::vulns::apply_scan(
        tx,
        &scan,
        "2026 年第四季度漏洞扫描.csv".into(),
        "csv",
        now.plus_secs(-20 * 86_400),
    )
    .await?;
    // The demo's history already reminded the departments of what is overdue.
    repo::mark_all_reminded(tx).await?;
    Ok(())
}
