//! Vulnerability tracking (漏洞管理): scanner files imported (CSV or Nessus v2), findings
//! deduplicated on (address, port, vulnerability id), assigned to the owning department
//! through the one address lookup, given a repair deadline by severity, and tracked
//! open → fixing → fixed (the department) → verified by a re-scan that no longer reports
//! them; a re-scan that still reports a fixed one reopens it; the security admin may
//! accept a risk (with a reason). Overdue reminders go out from the `security_events` task.

use super::commit_audited;
use super::secev::{policy_of, scope, Resolver};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use std::collections::HashMap;
use zy_model::id::DepartmentId;
use zy_model::role::{Role, Scope};
use zy_model::scan::{self, ScanResult};
use zy_model::secev::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::secev::{self as repo, VulnFilter};

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVulnImport {
    /// A name for the file (shown with the import).
    pub source: String,
    /// `csv` or `nessus` (a Nessus v2 `.nessus` XML export).
    pub format: String,
    /// The file's text (UTF-8). CSV columns: `address`, `port`, `protocol`, `vuln_id`,
    /// `title`, `severity`, `cve`, `solution` (Chinese headers accepted; see
    /// docs/ARCHITECTURE.md).
    pub content: String,
}

fn conflict_retry() -> Error {
    Error::conflict(t!(
        "漏洞记录已被并发修改，请刷新后重试",
        "a finding was changed at the same time; reload and try again"
    ))
}

pub async fn import(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewVulnImport,
) -> Result<VulnImport, Error> {
    authorize(&actor.principal, Action::SecurityPolicyManage)?;
    let source = zy_model::validate::name("source", &b.source)?;
    let result: ScanResult = match b.format.as_str() {
        "csv" => scan::read_csv(&b.content)?,
        "nessus" => scan::read_nessus(&b.content)?,
        _ => {
            return Err(Error::validation(
                "format",
                t!("格式须为 csv 或 nessus", "format must be csv or nessus"),
            ))
        }
    };
    let mut tx = s.store.begin_write().await?;
    let rec = apply_scan(&mut tx, &result, source, &b.format, Timestamp::now()).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "import_vulnerabilities",
        "vulnerability_import",
        &rec.id.to_string(),
        serde_json::json!({
            "source": rec.source, "format": rec.format, "hosts": rec.hosts, "findings": rec.findings,
            "created": rec.created, "updated": rec.updated, "reopened": rec.reopened, "verified": rec.verified,
        }),
    )
    .await?;
    Ok(rec)
}

/// Applies one scanner file's result in the caller's transaction (new findings, seen
/// again, reopened, verified by absence) and records the import.
pub async fn apply_scan(
    tx: &mut zy_store::Tx,
    result: &ScanResult,
    source: String,
    format: &str,
    now: Timestamp,
) -> Result<VulnImport, Error> {
    let policy: SecurityPolicy = zy_store::settings::get(&mut **tx, super::secev::POLICY_KEY)
        .await?
        .unwrap_or_default();
    let resolver = Resolver::load(tx).await?;
    let addresses: Vec<String> = result.scanned.iter().map(|a| a.to_string()).collect();
    let mut known: HashMap<(String, u16, String), Vulnerability> =
        repo::on_addresses(tx, &addresses)
            .await?
            .into_iter()
            .map(|v| ((v.address.clone(), v.port, v.vuln_id.clone()), v))
            .collect();
    let mut rec = VulnImport {
        id: uuid::Uuid::now_v7(),
        source,
        format: format.to_string(),
        created_at: now,
        hosts: result.scanned.len() as i64,
        findings: result.findings.len() as i64,
        created: 0,
        updated: 0,
        reopened: 0,
        verified: 0,
        duplicates: result.duplicates as i64,
    };
    for f in &result.findings {
        let key = (f.address.to_string(), f.port, f.vuln_id.clone());
        let owner = resolver.resolve(f.address);
        let deadline = now.plus_secs(policy.deadline_days(f.severity) * 86_400);
        match known.remove(&key) {
            Some(mut v) => {
                v.last_seen = now;
                v.title = f.title.clone();
                v.severity = f.severity;
                v.cve = f.cve.clone();
                v.solution = f.solution.clone();
                v.protocol = f.protocol.clone();
                if let Some(o) = &owner {
                    v.department_id = Some(o.department_id);
                    v.provider_id = o.provider_id;
                }
                if matches!(v.state, VulnState::Fixed | VulnState::Verified) {
                    v.state = VulnState::Open;
                    v.fixed_at = None;
                    v.verified_at = None;
                    v.deadline = deadline;
                    rec.reopened += 1;
                } else {
                    rec.updated += 1;
                }
                if !repo::update_vuln(tx, &v).await? {
                    return Err(conflict_retry());
                }
            }
            None => {
                let v = Vulnerability {
                    id: uuid::Uuid::now_v7(),
                    address: key.0,
                    port: f.port,
                    protocol: f.protocol.clone(),
                    vuln_id: f.vuln_id.clone(),
                    title: f.title.clone(),
                    severity: f.severity,
                    cve: f.cve.clone(),
                    solution: f.solution.clone(),
                    state: VulnState::Open,
                    department_id: owner.as_ref().map(|o| o.department_id),
                    provider_id: owner.as_ref().and_then(|o| o.provider_id),
                    instance_id: owner.as_ref().and_then(|o| o.instance_id),
                    first_seen: now,
                    last_seen: now,
                    deadline,
                    fixed_at: None,
                    verified_at: None,
                    note: String::new(),
                    overdue: false,
                    generation: 1,
                };
                repo::insert_vuln(tx, &v).await?;
                rec.created += 1;
            }
        }
    }
    // What the re-scan of these hosts no longer reports is gone: verified.
    for (_, mut v) in known {
        if matches!(
            v.state,
            VulnState::Open | VulnState::Fixing | VulnState::Fixed
        ) {
            v.state = VulnState::Verified;
            v.verified_at = Some(now);
            v.fixed_at = v.fixed_at.or(Some(now));
            if !repo::update_vuln(tx, &v).await? {
                return Err(conflict_retry());
            }
            rec.verified += 1;
        }
    }
    repo::insert_import(tx, &rec).await?;
    Ok(rec)
}

pub struct VulnQuery {
    pub department_id: Option<DepartmentId>,
    pub filter: VulnFilter,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    q: VulnQuery,
) -> Result<zy_model::page::Page<Vulnerability>, Error> {
    let mut f = q.filter;
    f.departments = scope(actor, q.department_id)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::validation(
            "limit",
            t!(
                "每页条数须在 1 到 500 之间",
                "limit must be between 1 and 500"
            ),
        ));
    }
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<uuid::Uuid>().map_err(|_| {
            Error::validation("cursor", t!("分页游标无效", "the cursor is not valid"))
        })?),
    };
    if let Some(t) = &f.text {
        f.text = Some(zy_model::validate::search(t)?);
    }
    if let Some(a) = &f.address {
        let ip: std::net::IpAddr = a
            .trim()
            .parse()
            .map_err(|_| Error::validation("address", t!("IP 地址无效", "not an IP address")))?;
        f.address = Some(ip.to_string());
    }
    let mut items = repo::vulns(&s.store, &f, after, limit).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|v| v.id.to_string()))
        .flatten();
    Ok(zy_model::page::Page { items, next_cursor })
}

pub async fn counts(
    s: &AppState,
    actor: &Actor,
    by: &str,
    department: Option<DepartmentId>,
) -> Result<Vec<VulnCount>, Error> {
    let departments = scope(actor, department)?;
    let by_provider = match by {
        "department" => false,
        "provider" => true,
        _ => {
            return Err(Error::validation(
                "by",
                t!(
                    "分组须为 department 或 provider",
                    "by must be department or provider"
                ),
            ))
        }
    };
    repo::vuln_counts(&s.store, by_provider, departments.as_deref()).await
}

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VulnTransition {
    /// `fixing` or `fixed` (the department), `accepted` (the security admin, with a
    /// `note` saying why) or `open` (back from fixing by the department; back from fixed
    /// or accepted by the security admin). `verified` comes only from a re-scan.
    pub state: VulnState,
    /// A note on the fix, or the reason a risk is accepted (at most 500 characters).
    #[serde(default)]
    pub note: Option<String>,
}

pub async fn transition(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: uuid::Uuid,
    b: VulnTransition,
) -> Result<Vulnerability, Error> {
    let note = match b.note.as_deref().map(str::trim) {
        Some(n) if n.chars().count() > 500 => {
            return Err(Error::validation(
                "note",
                t!(
                    "说明不能超过 500 个字符",
                    "the note is at most 500 characters"
                ),
            ))
        }
        Some(n) => Some(n.replace('\0', "")),
        None => None,
    };
    let mut tx = s.store.begin_write().await?;
    let mut v = repo::get_vuln_in(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("vulnerability", id))?;
    match v.department_id {
        Some(d) => authorize(&actor.principal, Action::SecurityEventRead(d))?,
        None => authorize(&actor.principal, Action::SecurityEventReadAll)?,
    }
    let department_work = |v: &Vulnerability| match v.department_id {
        Some(d) => authorize(&actor.principal, Action::VulnerabilityWork(d)),
        None => authorize(&actor.principal, Action::SecurityPolicyManage),
    };
    match (v.state, b.state) {
        (_, VulnState::Fixing | VulnState::Fixed) | (VulnState::Fixing, VulnState::Open) => {
            department_work(&v)?
        }
        _ => authorize(&actor.principal, Action::SecurityPolicyManage)?,
    }
    if !transition_allowed(v.state, b.state) {
        return Err(Error::conflict(
            t!("漏洞当前状态为 {}，不能改为 {}" ; "the finding is {} and cannot become {}", v.state, b.state),
        )
        .with_details(serde_json::json!({ "reason": "state", "state": v.state })));
    }
    if b.state == VulnState::Accepted && note.as_deref().unwrap_or("").is_empty() {
        return Err(Error::validation(
            "note",
            t!("接受风险须说明理由", "say why the risk is accepted"),
        ));
    }
    let from = v.state;
    let now = Timestamp::now();
    v.state = b.state;
    match b.state {
        VulnState::Fixed => v.fixed_at = Some(now),
        VulnState::Open => {
            v.fixed_at = None;
            if from != VulnState::Fixing {
                let policy = policy_of(&s.store).await?;
                v.deadline = now.plus_secs(policy.deadline_days(v.severity) * 86_400);
            }
        }
        _ => {}
    }
    if let Some(n) = note {
        v.note = n;
    }
    if !repo::update_vuln(&mut tx, &v).await? {
        return Err(conflict_retry());
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_vulnerability_state",
        "vulnerability",
        &id.to_string(),
        serde_json::json!({ "from": from, "to": v.state, "note": v.note }),
    )
    .await?;
    v.generation += 1;
    v.overdue = repo::is_overdue(&v, now);
    Ok(v)
}

/// Sends one reminder per overdue finding and deadline (to the department's admins and
/// the security admins); how many went.
pub async fn remind_overdue(s: &AppState, now: Timestamp) -> Result<u32, Error> {
    let mut sent = 0;
    for v in repo::overdue_unreminded(&s.store, now, 200).await? {
        let mut tx = s.store.begin_write().await?;
        if !repo::mark_reminded(&mut tx, &v).await? {
            continue;
        }
        let mut to = crate::notify::holders(&mut tx, Role::SecurityAdmin, Scope::Platform).await?;
        let department = match v.department_id {
            Some(d) => {
                to.extend(
                    crate::notify::holders(&mut tx, Role::DeptAdmin, Scope::Department(d)).await?,
                );
                zy_store::departments::get(&mut *tx, d)
                    .await?
                    .map(|x| x.name)
                    .unwrap_or_default()
            }
            None => "未归属部门 / no department".to_string(),
        };
        let notice = crate::notify::Notice {
            kind: crate::notify::NoticeKind::VulnerabilityOverdue,
            to,
            params: serde_json::json!({
                "title": v.title,
                "address": format!("{}:{}", v.address, v.port),
                "department": department,
                "severity": v.severity.as_str(),
                "deadline": v.deadline.to_rfc3339(),
            }),
            link: Some("/security/vulnerabilities".into()),
            subject: Some(v.id),
        };
        crate::notify::enqueue(&mut tx, &notice).await?;
        super::commit_system(
            tx,
            "vulnerability_overdue",
            "vulnerability",
            &v.id.to_string(),
            serde_json::json!({ "deadline": v.deadline.to_rfc3339() }),
        )
        .await?;
        sent += 1;
    }
    Ok(sent)
}
