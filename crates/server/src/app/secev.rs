//! Security events (安全事件): the address plan (地址规划) and the one address lookup
//! ([`resolve_address`] / [`Resolver`]), writing the syslog receiver's batches, the
//! networks' security-group drops ([`record_local_drops`]), search and counts, alert
//! rules, the security policy (retention, repair deadlines), and the `security_events`
//! task (retention, alert rules, overdue vulnerability reminders).

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use crate::syslog::Raw;
use futures_util::future::BoxFuture;
use std::net::IpAddr;
use std::time::Duration;
use zy_model::id::{DepartmentId, HostId, InstanceId, ProviderId};
use zy_model::role::{Role, Scope};
use zy_model::secev::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::secev::{self as repo, CountBy, EventFilter, NewEvent};
use zy_store::{Backend, Store, Tx};

/// The settings key of the [`SecurityPolicy`].
pub const POLICY_KEY: &str = "security_policy";

// --- the one address lookup ------------------------------------------------------------

/// Who owns which address, loaded once per batch of events.
///
/// Most specific match wins: an instance NIC, then an elastic IP, then the address plan's
/// longest prefix.
#[derive(Debug, Default, Clone)]
pub struct Resolver {
    plan: AddressPlan,
    /// Elastic IPs and instance NIC addresses (`zy_store::networks::address_owners`).
    nics: std::collections::HashMap<u32, zy_model::network::AddressOwner>,
}

impl Resolver {
    pub async fn load(tx: &mut Tx) -> Result<Resolver, Error> {
        let blocks = repo::blocks_in(tx).await?;
        let plan = AddressPlan::new(blocks.into_iter().filter_map(|b| {
            Cidr::parse(&b.cidr)
                .ok()
                .map(|c| (c, b.department_id, b.provider_id))
        }));
        let nics = zy_store::networks::address_owners(tx).await?;
        Ok(Resolver { plan, nics })
    }

    /// [`Resolver::resolve`] without the `via` text: the intake's per-event lookup.
    fn owner_ids(
        &self,
        ip: IpAddr,
    ) -> Option<(DepartmentId, Option<ProviderId>, Option<InstanceId>)> {
        if let IpAddr::V4(v4) = ip {
            if let Some(o) = self.nics.get(&u32::from(v4)) {
                return Some((o.department_id, o.provider_id, Some(o.instance_id)));
            }
        }
        self.plan.lookup(ip).map(|(d, p)| (d, p, None))
    }

    pub fn resolve(&self, ip: IpAddr) -> Option<AddressOwner> {
        if let IpAddr::V4(v4) = ip {
            if let Some(o) = self.nics.get(&u32::from(v4)) {
                return Some(AddressOwner {
                    department_id: o.department_id,
                    provider_id: o.provider_id,
                    instance_id: Some(o.instance_id),
                    via: o.via.clone(),
                });
            }
        }
        self.plan.lookup(ip).map(|(d, p)| AddressOwner {
            department_id: d,
            provider_id: p,
            instance_id: None,
            via: "address_plan".into(),
        })
    }
}

/// Who owns `ip`, in the caller's transaction: the one function every feature asks.
pub async fn resolve_address(tx: &mut Tx, ip: IpAddr) -> Result<Option<AddressOwner>, Error> {
    Ok(Resolver::load(tx).await?.resolve(ip))
}

// --- intake ------------------------------------------------------------------------------

/// A parsed batch waiting for its owners: the events as they will be stored, and the
/// destination and source address each is mapped by.
pub struct Parsed {
    events: Vec<NewEvent>,
    addrs: Vec<(Option<IpAddr>, Option<IpAddr>)>,
}

impl Parsed {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Maps each event to its owner — by its destination, or by its source when the
    /// destination is not ours (outbound traffic). Owners are set again on every call, so
    /// a failed batch can be retried with a fresh plan.
    fn assign_owners(&mut self, r: &Resolver) {
        for (e, (dst, src)) in self.events.iter_mut().zip(&self.addrs) {
            let owner = dst
                .and_then(|ip| r.owner_ids(ip))
                .or_else(|| src.and_then(|ip| r.owner_ids(ip)));
            e.department_id = owner.map(|o| o.0);
            e.provider_id = owner.and_then(|o| o.1);
            e.instance_id = owner.and_then(|o| o.2);
        }
    }
}

/// Parses a batch of received lines into the events to store (outside any transaction, so
/// the receiver parses the next batch while the previous one is written).
pub fn parse_batch(raw: &[Raw]) -> Parsed {
    let mut events = Vec::with_capacity(raw.len());
    let mut addrs = Vec::with_capacity(raw.len());
    for r in raw {
        let e = zy_model::syslog::parse(&r.bytes, r.received_at);
        let at =
            e.at.filter(|at| (r.received_at - at).abs() < 366 * 86_400 * 1_000_000)
                .unwrap_or(r.received_at);
        addrs.push((e.dst_ip, e.src_ip));
        events.push(NewEvent {
            at,
            received_at: r.received_at,
            source: EventSource::Syslog,
            appliance: clean(e.appliance.unwrap_or_else(|| r.peer.to_string())),
            format: e.format,
            category: e.category,
            severity: e.severity,
            action: e.action,
            src_ip: e.src_ip.map(|i| i.to_string()),
            src_port: e.src_port,
            dst_ip: e.dst_ip.map(|i| i.to_string()),
            dst_port: e.dst_port,
            protocol: e.protocol.map(clean),
            rule: e.rule.map(clean),
            count: 1,
            department_id: None,
            provider_id: None,
            instance_id: None,
            message: clean(e.message),
        });
    }
    Parsed { events, addrs }
}

/// PostgreSQL refuses NUL in text.
fn clean(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s
    }
}

/// Maps a batch to its owners and writes it with its day counts in one transaction.
///
/// SQLite reads the plan and writes in one write transaction. PostgreSQL reads the plan
/// first, then writes the events by `COPY` and the counts in one transaction on a native
/// connection (`repo::copy_events`), several times cheaper for the database than
/// INSERTs through the `Any` driver; under PostgreSQL's read committed the plan read in
/// the same transaction was no more current than one read just before.
pub async fn write_batch(store: &Store, batch: &mut Parsed) -> Result<(), Error> {
    if batch.is_empty() {
        return Ok(());
    }
    match store.backend() {
        Backend::Sqlite => {
            let mut tx = store.begin_write().await?;
            let r = Resolver::load(&mut tx).await?;
            batch.assign_owners(&r);
            repo::insert_events(&mut tx, &batch.events).await?;
            tx.commit().await.map_err(zy_store::db_error)
        }
        Backend::Postgres => {
            // A plain transaction on PostgreSQL (no writer slot), only read.
            let mut tx = store.begin_write().await?;
            let r = Resolver::load(&mut tx).await?;
            tx.rollback().await.map_err(zy_store::db_error)?;
            batch.assign_owners(&r);
            repo::copy_events(store, &batch.events).await
        }
    }
}

/// Security-group drops counted on one of our hosts during `[from, to)`, recorded as one
/// event of source `security_group` (category `policy_deny`, action `blocked`) carrying
/// `count`, in the caller's transaction and added to the day counts. The networks part
/// calls this from its drop-counter collection; `nic` names the interface (at most 64
/// characters are kept).
pub async fn record_local_drops(
    tx: &mut Tx,
    host: HostId,
    instance: Option<InstanceId>,
    nic: &str,
    count: i64,
    from: Timestamp,
    to: Timestamp,
) -> Result<(), Error> {
    if count <= 0 {
        return Ok(());
    }
    let owner = match instance {
        Some(i) => repo::instance_owner(tx, i).await?,
        None => None,
    };
    let nic: String = clean(nic.to_string()).chars().take(64).collect();
    let message = format!(
        "安全组在宿主机 {host} 的网卡 {nic} 上丢弃 {count} 个数据包（{} 至 {}）/ security groups dropped {count} packets on NIC {nic} of host {host} ({} to {})",
        from.to_rfc3339(),
        to.to_rfc3339(),
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    let e = NewEvent {
        at: to.0,
        received_at: Timestamp::now().0,
        source: EventSource::SecurityGroup,
        appliance: host.to_string(),
        format: EventFormat::Kv,
        category: Category::PolicyDeny,
        severity: Severity::Low,
        action: EventAction::Blocked,
        src_ip: None,
        src_port: None,
        dst_ip: None,
        dst_port: None,
        protocol: None,
        rule: Some(format!("security_group:{nic}")),
        count,
        department_id: owner.map(|o| o.0),
        provider_id: owner.and_then(|o| o.1),
        instance_id: instance.filter(|_| owner.is_some()),
        message,
    };
    repo::insert_events(tx, &[e]).await
}

// --- who sees what -----------------------------------------------------------------------

/// The departments whose events and findings `actor` may see: `None` for all; with
/// `department` the caller asks for one. A department admin without a department given
/// sees their own departments.
pub fn scope(
    actor: &Actor,
    department: Option<DepartmentId>,
) -> Result<Option<Vec<DepartmentId>>, Error> {
    if let Some(d) = department {
        authorize(&actor.principal, Action::SecurityEventRead(d))?;
        return Ok(Some(vec![d]));
    }
    if authorize(&actor.principal, Action::SecurityEventReadAll).is_ok() {
        return Ok(None);
    }
    let mine: Vec<DepartmentId> = actor
        .principal
        .grants
        .iter()
        .filter_map(|g| match (g.role, g.scope) {
            (Role::DeptAdmin, Scope::Department(d)) => Some(d),
            _ => None,
        })
        .collect();
    if mine.is_empty() {
        authorize(&actor.principal, Action::SecurityEventReadAll)?;
    }
    Ok(Some(mine))
}

// --- address plan ------------------------------------------------------------------------

pub async fn list_blocks(s: &AppState, actor: &Actor) -> Result<Vec<AddressBlock>, Error> {
    authorize(&actor.principal, Action::SecurityPolicyRead)?;
    repo::blocks(&s.store).await
}

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAddressBlock {
    /// `10.20.0.0/16` (host bits zero). Blocks may nest — the most specific wins — but the
    /// same block cannot be entered twice.
    pub cidr: String,
    pub department_id: DepartmentId,
    pub provider_id: Option<ProviderId>,
    #[serde(default)]
    pub description: String,
}

pub async fn create_block(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewAddressBlock,
) -> Result<AddressBlock, Error> {
    authorize(&actor.principal, Action::SecurityPolicyManage)?;
    let c = Cidr::parse(&b.cidr)?;
    let min = if c.addr.is_ipv4() { 8 } else { 16 };
    if c.prefix < min {
        return Err(Error::validation(
            "cidr",
            t!("网段 {} 过大：IPv4 前缀至少 /8，IPv6 至少 /16" ; "the block {} is too large: at least /8 for IPv4 and /16 for IPv6", c),
        ));
    }
    let description = zy_model::validate::description("description", &b.description)?;
    let mut tx = s.store.begin_write().await?;
    let dept = zy_store::departments::get(&mut *tx, b.department_id)
        .await?
        .ok_or_else(|| Error::not_found("department", b.department_id))?;
    if let Some(p) = b.provider_id {
        let known = zy_store::inventory::providers(&s.store).await?;
        if !known.iter().any(|(x, _)| x.id == p) {
            return Err(Error::not_found("provider", p));
        }
    }
    let block = AddressBlock {
        id: uuid::Uuid::now_v7(),
        cidr: c.to_string(),
        department_id: b.department_id,
        department_name: dept.name,
        provider_id: b.provider_id,
        description,
        created_at: Timestamp::now(),
    };
    repo::insert_block(&mut tx, &block).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_address_block",
        "address_block",
        &block.id.to_string(),
        serde_json::json!({ "cidr": block.cidr, "department_id": block.department_id, "provider_id": block.provider_id }),
    )
    .await?;
    Ok(block)
}

pub async fn delete_block(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: uuid::Uuid,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::SecurityPolicyManage)?;
    let mut tx = s.store.begin_write().await?;
    let b = repo::delete_block(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("address_block", id))?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_address_block",
        "address_block",
        &id.to_string(),
        serde_json::json!({ "cidr": b.cidr, "department_id": b.department_id }),
    )
    .await
}

// --- events ------------------------------------------------------------------------------

/// Most events one page holds.
pub const MAX_PAGE: i64 = 500;

pub struct EventQuery {
    pub department_id: Option<DepartmentId>,
    pub filter: EventFilter,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn search(
    s: &AppState,
    actor: &Actor,
    q: EventQuery,
) -> Result<zy_model::page::Page<SecurityEvent>, Error> {
    let mut f = q.filter;
    f.departments = scope(actor, q.department_id)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::validation(
            "limit",
            t!(
                "每页条数须在 1 到 500 之间",
                "limit must be between 1 and 500"
            ),
        ));
    }
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            Error::validation("cursor", t!("分页游标无效", "the cursor is not valid"))
        })?),
    };
    if let Some(t) = &f.text {
        f.text = Some(zy_model::validate::search(t)?);
    }
    if let Some(a) = &f.address {
        let ip: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| Error::validation("address", t!("IP 地址无效", "not an IP address")))?;
        f.address = Some(ip.to_string());
    }
    let mut items = repo::search(&s.store, &f, before, limit).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(zy_model::page::Page { items, next_cursor })
}

/// Event counts between two days (inclusive, `YYYY-MM-DD`, at most 400 days apart),
/// grouped by `by` (`day`, `department`, `provider`, `category`, `severity`, `action`).
pub async fn counts(
    s: &AppState,
    actor: &Actor,
    by: &str,
    from: Option<String>,
    to: Option<String>,
    department: Option<DepartmentId>,
    category: Option<Category>,
) -> Result<Vec<EventCount>, Error> {
    let departments = scope(actor, department)?;
    let by = CountBy::parse(by).ok_or_else(|| {
        Error::validation(
            "by",
            t!(
                "分组须为 day、department、provider、category、severity 或 action",
                "by must be day, department, provider, category, severity or action"
            ),
        )
    })?;
    let today = repo::day_of(Timestamp::now().0);
    let to = to.unwrap_or(today);
    let from = match from {
        Some(f) => f,
        None => repo::day_of(Timestamp::now().plus_secs(-29 * 86_400).0),
    };
    let parse = |field: &str, d: &str| {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
            Error::validation(
                field,
                t!("日期须形如 2026-11-30", "a date looks like 2026-11-30"),
            )
        })
    };
    let (a, b) = (parse("from", &from)?, parse("to", &to)?);
    if b < a || (b - a).num_days() > 400 {
        return Err(Error::validation(
            "from",
            t!(
                "起止日期须有序且相隔不超过 400 天",
                "from must not be after to, and at most 400 days before it"
            ),
        ));
    }
    repo::counts(
        &s.store,
        by,
        &a.format("%Y-%m-%d").to_string(),
        &b.format("%Y-%m-%d").to_string(),
        departments.as_deref(),
        category,
    )
    .await
}

pub fn intake_status(s: &AppState, actor: &Actor) -> Result<crate::syslog::IntakeStatus, Error> {
    authorize(&actor.principal, Action::SecurityPolicyRead)?;
    Ok(s.syslog.status())
}

// --- policy ------------------------------------------------------------------------------

pub async fn policy_of(store: &Store) -> Result<SecurityPolicy, Error> {
    Ok(zy_store::settings::get(store.pool(), POLICY_KEY)
        .await?
        .unwrap_or_default())
}

pub async fn get_policy(s: &AppState, actor: &Actor) -> Result<SecurityPolicy, Error> {
    authorize(&actor.principal, Action::SecurityPolicyRead)?;
    policy_of(&s.store).await
}

pub async fn put_policy(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    p: SecurityPolicy,
) -> Result<SecurityPolicy, Error> {
    authorize(&actor.principal, Action::SecurityPolicyManage)?;
    p.check()?;
    let mut tx = s.store.begin_write().await?;
    zy_store::settings::put(&mut tx, POLICY_KEY, &p).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_security_policy",
        "setting",
        POLICY_KEY,
        serde_json::to_value(&p).unwrap_or_default(),
    )
    .await?;
    Ok(p)
}

// --- alert rules -------------------------------------------------------------------------

pub async fn list_rules(s: &AppState, actor: &Actor) -> Result<Vec<EventRule>, Error> {
    authorize(&actor.principal, Action::SecurityPolicyRead)?;
    repo::rules(&s.store).await
}

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEventRule {
    pub name: String,
    /// Only this department's events; absent: every event.
    pub department_id: Option<DepartmentId>,
    pub category: Option<Category>,
    pub min_severity: Severity,
    /// 1–1,000,000 events…
    pub threshold: i64,
    /// …within 1–1440 minutes.
    pub window_minutes: i64,
}

pub async fn create_rule(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewEventRule,
) -> Result<EventRule, Error> {
    authorize(&actor.principal, Action::SecurityPolicyManage)?;
    let name = zy_model::validate::name("name", &b.name)?;
    if !(1..=1_000_000).contains(&b.threshold) {
        return Err(Error::validation(
            "threshold",
            t!(
                "阈值须在 1 到 1000000 之间",
                "threshold must be between 1 and 1,000,000"
            ),
        ));
    }
    if !(1..=1440).contains(&b.window_minutes) {
        return Err(Error::validation(
            "window_minutes",
            t!(
                "时间窗口须在 1 到 1440 分钟之间",
                "the window must be between 1 and 1440 minutes"
            ),
        ));
    }
    let mut tx = s.store.begin_write().await?;
    if let Some(d) = b.department_id {
        zy_store::departments::get(&mut *tx, d)
            .await?
            .ok_or_else(|| Error::not_found("department", d))?;
    }
    let r = EventRule {
        id: uuid::Uuid::now_v7(),
        name,
        department_id: b.department_id,
        category: b.category,
        min_severity: b.min_severity,
        threshold: b.threshold,
        window_secs: b.window_minutes * 60,
        last_fired_at: None,
        created_at: Timestamp::now(),
        generation: 1,
    };
    repo::insert_rule(&mut tx, &r).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_security_event_rule",
        "security_event_rule",
        &r.id.to_string(),
        serde_json::json!({ "name": r.name, "threshold": r.threshold, "window_secs": r.window_secs, "min_severity": r.min_severity }),
    )
    .await?;
    Ok(r)
}

pub async fn delete_rule(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: uuid::Uuid,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::SecurityPolicyManage)?;
    let mut tx = s.store.begin_write().await?;
    if !repo::delete_rule(&mut tx, id).await? {
        return Err(Error::not_found("security_event_rule", id));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_security_event_rule",
        "security_event_rule",
        &id.to_string(),
        serde_json::json!({}),
    )
    .await
}

// --- the periodic task -------------------------------------------------------------------

/// The `security_events` task (one replica, every 5 s): fires alert rules, reminds of
/// overdue vulnerabilities, and drops events past the retention.
pub struct SecurityTask(pub AppState);

pub fn task(s: AppState) -> std::sync::Arc<dyn crate::tasks::Task> {
    std::sync::Arc::new(SecurityTask(s))
}

impl crate::tasks::Task for SecurityTask {
    fn name(&self) -> &'static str {
        "security_events"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(5)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let s = &self.0;
            let now = Timestamp::now();
            let fired = fire_rules(s, now).await?;
            let reminded = super::vulns::remind_overdue(s, now).await?;
            let policy = policy_of(&s.store).await?;
            let cutoff = now.plus_secs(-policy.event_retention_days * 86_400);
            let mut tx = s.store.begin_write().await?;
            let purged = repo::purge_events(&mut tx, cutoff, 10_000).await?;
            tx.commit().await.map_err(zy_store::db_error)?;
            Ok(
                serde_json::json!({ "alerts": fired, "overdue_reminders": reminded, "purged": purged }),
            )
        })
    }
}

async fn fire_rules(s: &AppState, now: Timestamp) -> Result<u32, Error> {
    let mut fired = 0;
    for r in repo::rules(&s.store).await? {
        let since = now.plus_secs(-r.window_secs);
        // One alert per window: the window starts after the last alert.
        let since = match r.last_fired_at {
            Some(l) if l > since => l,
            _ => since,
        };
        let n = repo::rule_matches(&s.store, &r, since).await?;
        if n < r.threshold {
            continue;
        }
        let mut tx = s.store.begin_write().await?;
        if !repo::mark_fired(&mut tx, r.id, r.generation, now).await? {
            continue;
        }
        let mut to = crate::notify::holders(&mut tx, Role::SecurityAdmin, Scope::Platform).await?;
        let department = match r.department_id {
            Some(d) => {
                to.extend(
                    crate::notify::holders(&mut tx, Role::DeptAdmin, Scope::Department(d)).await?,
                );
                zy_store::departments::get(&mut *tx, d)
                    .await?
                    .map(|x| x.name)
                    .unwrap_or_default()
            }
            None => "全平台 / the platform".to_string(),
        };
        let notice = crate::notify::Notice {
            kind: crate::notify::NoticeKind::SecurityAlert,
            to,
            params: serde_json::json!({
                "rule": r.name,
                "department": department,
                "events": n,
                "minutes": r.window_secs / 60,
                "severity": r.min_severity.as_str(),
            }),
            link: Some("/security/events".into()),
            subject: Some(r.id),
        };
        crate::notify::enqueue(&mut tx, &notice).await?;
        super::commit_system(
            tx,
            "security_alert",
            "security_event_rule",
            &r.id.to_string(),
            serde_json::json!({ "events": n, "since": since.to_rfc3339() }),
        )
        .await?;
        fired += 1;
    }
    Ok(fired)
}
