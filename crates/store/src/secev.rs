//! Security events, their pre-aggregated counts and alert rules, the address plan, and
//! vulnerability findings with their imports (migration 0012). Events are written in
//! batches with the counts upserted once per batch key, so intake keeps up with tens of
//! thousands of lines a second: on SQLite many rows per INSERT ([`insert_events`]), on
//! PostgreSQL by `COPY … FROM STDIN` on a native connection ([`copy_events`]).

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::Sql;
use crate::Store;
use std::collections::HashMap;
use zy_model::id::{DepartmentId, InstanceId, ProviderId};
use zy_model::secev::*;
use zy_model::time::Timestamp;
use zy_model::Error;

// ---------------------------------------------------------------- address plan

impl Decode for AddressBlock {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(AddressBlock {
            id: text(r, "id")?
                .parse()
                .map_err(|_| Error::internal("address_blocks.id"))?,
            cidr: text(r, "cidr")?,
            department_id: id(r, "department_id")?,
            department_name: opt_text(r, "department_name")?.unwrap_or_default(),
            provider_id: opt_id(r, "provider_id")?,
            description: text(r, "description")?,
            created_at: ts(r, "created_at")?,
        })
    }
}

const BLOCK_COLS: &str = "b.id, b.cidr, b.department_id, d.name AS department_name, b.provider_id, b.description, b.created_at FROM address_blocks b LEFT JOIN departments d ON d.id = b.department_id";

pub async fn blocks(store: &Store) -> Result<Vec<AddressBlock>, Error> {
    Sql::new(&format!("SELECT {BLOCK_COLS} ORDER BY b.cidr"))
        .fetch_all(store)
        .await
}

/// Every block, in the caller's transaction (the resolver loads the plan from here).
pub async fn blocks_in(tx: &mut Tx) -> Result<Vec<AddressBlock>, Error> {
    let rows = sqlx::query(&format!("SELECT {BLOCK_COLS}"))
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
    rows.iter().map(AddressBlock::decode).collect()
}

pub async fn insert_block(tx: &mut Tx, b: &AddressBlock) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO address_blocks (id, cidr, department_id, provider_id, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(b.id.to_string())
    .bind(&b.cidr)
    .bind(b.department_id.to_string())
    .bind(b.provider_id.map(|p| p.to_string()))
    .bind(&b.description)
    .bind(b.created_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Deletes a block; the deleted block, if it existed.
pub async fn delete_block(tx: &mut Tx, id: uuid::Uuid) -> Result<Option<AddressBlock>, Error> {
    let row = sqlx::query(&format!("SELECT {BLOCK_COLS} WHERE b.id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    let Some(row) = row else { return Ok(None) };
    let b = AddressBlock::decode(&row)?;
    sqlx::query("DELETE FROM address_blocks WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(Some(b))
}

/// The department, provider and project of a live instance (for events about it).
pub async fn instance_owner(
    tx: &mut Tx,
    id: InstanceId,
) -> Result<Option<(DepartmentId, Option<ProviderId>)>, Error> {
    let row = sqlx::query("SELECT department_id, provider_id FROM instances WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    row.map(|r| Ok((id_of(&r, "department_id")?, opt_id(&r, "provider_id")?)))
        .transpose()
}

fn id_of<T: std::str::FromStr<Err = Error>>(r: &sqlx::any::AnyRow, col: &str) -> Result<T, Error> {
    id(r, col)
}

// ---------------------------------------------------------------- events

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: i64,
    pub received_at: i64,
    pub source: EventSource,
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
    pub rule: Option<String>,
    pub count: i64,
    pub department_id: Option<DepartmentId>,
    pub provider_id: Option<ProviderId>,
    pub instance_id: Option<InstanceId>,
    pub message: String,
}

/// Rows per INSERT statement: 4,864 parameters, under both SQLite's (32,766) and
/// PostgreSQL's (65,535) limits; a batch of 4,096 events is 16 statements.
const ROWS_PER_INSERT: usize = 256;

const EVENT_COLS: &str = "at, received_at, source, appliance, format, category, severity, action, src_ip, src_port, dst_ip, dst_port, protocol, rule, count, department_id, provider_id, instance_id, message";

/// A multi-row INSERT of `rows` events. PostgreSQL gets numbered placeholders; SQLite gets
/// anonymous `?` ones, because sqlx binds a numbered SQLite parameter by asking SQLite its
/// name, a linear search over every parameter of the statement: 1,216 parameters cost
/// 740,000 name lookups per statement, most of the intake's time (docs/BENCHMARKS.md).
fn insert_sql(rows: usize, numbered: bool) -> String {
    let mut s = format!("INSERT INTO security_events ({EVENT_COLS}) VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..19 {
            if c > 0 {
                s.push_str(", ");
            }
            n += 1;
            if numbered {
                s.push('$');
                s.push_str(&n.to_string());
            } else {
                s.push('?');
            }
        }
        s.push(')');
    }
    s
}

/// The Asia/Shanghai date of a time in microseconds, `YYYY-MM-DD`.
pub fn day_of(micros: i64) -> String {
    Timestamp(micros).to_rfc3339()[..10].to_string()
}

/// Writes a batch of events and adds them to the day counts, in the caller's transaction.
pub async fn insert_events(tx: &mut Tx, events: &[NewEvent]) -> Result<(), Error> {
    let numbered = tx.backend_name() != "SQLite";
    let full = insert_sql(ROWS_PER_INSERT, numbered);
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let partial;
        let sql = if chunk.len() == ROWS_PER_INSERT {
            &full
        } else {
            partial = insert_sql(chunk.len(), numbered);
            &partial
        };
        let mut q = sqlx::query(sql);
        for e in chunk {
            q = q
                .bind(e.at)
                .bind(e.received_at)
                .bind(e.source.as_str())
                .bind(e.appliance.as_str())
                .bind(e.format.as_str())
                .bind(e.category.as_str())
                .bind(e.severity.as_str())
                .bind(e.action.as_str())
                .bind(e.src_ip.as_deref())
                .bind(e.src_port.map(i64::from))
                .bind(e.dst_ip.as_deref())
                .bind(e.dst_port.map(i64::from))
                .bind(e.protocol.as_deref())
                .bind(e.rule.as_deref())
                .bind(e.count)
                .bind(e.department_id.map(|d| d.to_string()))
                .bind(e.provider_id.map(|p| p.to_string()))
                .bind(e.instance_id.map(|i| i.to_string()))
                .bind(e.message.as_str());
        }
        q.execute(&mut **tx).await.map_err(db_error)?;
    }
    for (k, n) in day_counts(events) {
        sqlx::query(&format!("INSERT INTO security_event_counts ({COUNT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) {COUNT_CONFLICT}"))
            .bind(k.day)
            .bind(k.department_id)
            .bind(k.provider_id)
            .bind(k.category.as_str())
            .bind(k.severity.as_str())
            .bind(k.action.as_str())
            .bind(n)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

const COUNT_COLS: &str = "day, department_id, provider_id, category, severity, action, events";
const COUNT_CONFLICT: &str = "ON CONFLICT (day, department_id, provider_id, category, severity, action) DO UPDATE SET events = security_event_counts.events + excluded.events";

/// One row of `security_event_counts` ('' for no department or provider).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct CountKey {
    day: String,
    department_id: String,
    provider_id: String,
    category: Category,
    severity: Severity,
    action: EventAction,
}

/// What a batch adds to the day counts, in one order for every writer, so concurrent
/// batches on PostgreSQL never deadlock on the rows they upsert.
fn day_counts(events: &[NewEvent]) -> Vec<(CountKey, i64)> {
    let mut counts: HashMap<CountKey, i64> = HashMap::new();
    for e in events {
        let key = CountKey {
            day: day_of(e.at),
            department_id: e.department_id.map(|d| d.to_string()).unwrap_or_default(),
            provider_id: e.provider_id.map(|p| p.to_string()).unwrap_or_default(),
            category: e.category,
            severity: e.severity,
            action: e.action,
        };
        *counts.entry(key).or_default() += e.count;
    }
    let mut keys: Vec<_> = counts.into_iter().collect();
    keys.sort();
    keys
}

/// The COPY data of a batch is sent in pieces of about this size, so a batch of long
/// messages never needs a second copy of itself in memory.
const COPY_CHUNK: usize = 1 << 20;
/// Room for one more row past [`COPY_CHUNK`] before the buffer grows.
const MAX_ROW_GUESS: usize = 4 * 1024;

/// PostgreSQL: writes a batch of events and adds them to the day counts in one transaction
/// of its own, on the store's native connection: the events by `COPY … FROM STDIN` (text
/// format, see [`copy_row`]) instead of multi-row INSERTs through the `Any` driver, which
/// cost PostgreSQL three times the work (docs/BENCHMARKS.md), then the counts as one
/// upsert. Either both are committed or neither. On SQLite, use [`insert_events`].
pub async fn copy_events(store: &Store, events: &[NewEvent]) -> Result<(), Error> {
    let pool = store.native().ok_or_else(|| {
        Error::internal("copy_events needs PostgreSQL; SQLite writes with insert_events")
    })?;
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(db_error)?;
    let mut copy = tx
        .copy_in_raw(&format!("COPY security_events ({EVENT_COLS}) FROM STDIN"))
        .await
        .map_err(db_error)?;
    let mut buf = Vec::with_capacity(COPY_CHUNK + MAX_ROW_GUESS);
    for e in events {
        copy_row(&mut buf, e);
        if buf.len() >= COPY_CHUNK {
            copy.send(buf.as_slice()).await.map_err(db_error)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_slice()).await.map_err(db_error)?;
    }
    drop(buf);
    let copied = copy.finish().await.map_err(db_error)?;
    if copied != events.len() as u64 {
        return Err(Error::internal(format!(
            "COPY stored {copied} of {} security events",
            events.len()
        )));
    }
    let counts = day_counts(events);
    let mut cols: [Vec<&str>; 6] = Default::default();
    let mut ns = Vec::with_capacity(counts.len());
    for (k, n) in &counts {
        for (col, v) in cols.iter_mut().zip([
            k.day.as_str(),
            k.department_id.as_str(),
            k.provider_id.as_str(),
            k.category.as_str(),
            k.severity.as_str(),
            k.action.as_str(),
        ]) {
            col.push(v);
        }
        ns.push(*n);
    }
    let [days, departments, providers, categories, severities, actions] = cols;
    sqlx::query(&format!(
        "INSERT INTO security_event_counts ({COUNT_COLS}) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) {COUNT_CONFLICT}"
    ))
    .bind(days)
    .bind(departments)
    .bind(providers)
    .bind(categories)
    .bind(severities)
    .bind(actions)
    .bind(ns)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

/// One event as a line of `COPY … FROM STDIN` text format, columns as [`EVENT_COLS`]:
/// tab-separated, `\N` for NULL, a newline at the end.
fn copy_row(buf: &mut Vec<u8>, e: &NewEvent) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(buf, "{}\t{}\t", e.at, e.received_at);
    for s in [
        e.source.as_str(),
        e.appliance.as_str(),
        e.format.as_str(),
        e.category.as_str(),
        e.severity.as_str(),
        e.action.as_str(),
    ] {
        copy_text(buf, s);
        buf.push(b'\t');
    }
    copy_opt(buf, e.src_ip.as_deref());
    copy_int(buf, e.src_port.map(i64::from));
    copy_opt(buf, e.dst_ip.as_deref());
    copy_int(buf, e.dst_port.map(i64::from));
    copy_opt(buf, e.protocol.as_deref());
    copy_opt(buf, e.rule.as_deref());
    copy_int(buf, Some(e.count));
    for id in [
        e.department_id.map(|d| d.0),
        e.provider_id.map(|p| p.0),
        e.instance_id.map(|i| i.0),
    ] {
        match id {
            Some(u) => {
                let _ = write!(buf, "{u}\t");
            }
            None => buf.extend_from_slice(b"\\N\t"),
        }
    }
    copy_text(buf, &e.message);
    buf.push(b'\n');
}

fn copy_opt(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => copy_text(buf, s),
        None => buf.extend_from_slice(b"\\N"),
    }
    buf.push(b'\t');
}

fn copy_int(buf: &mut Vec<u8>, n: Option<i64>) {
    use std::io::Write;
    match n {
        Some(n) => {
            let _ = write!(buf, "{n}");
        }
        None => buf.extend_from_slice(b"\\N"),
    }
    buf.push(b'\t');
}

/// A text value in COPY's text format: a backslash, tab, newline and carriage return are
/// escaped (`\\`, `\t`, `\n`, `\r`), so the value is read back byte for byte whatever it
/// holds, `\.` and `\N` included. PostgreSQL cannot store NUL in text at all: it becomes
/// U+FFFD, as the intake's parser already makes it. The bytes of a multi-byte UTF-8
/// character are all ≥ 0x80, so scanning bytes never splits one.
fn copy_text(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => "\u{fffd}".as_bytes(),
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escaped);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

fn parse_enum<T>(v: String, f: impl Fn(&str) -> Option<T>, col: &str) -> Result<T, Error> {
    f(&v).ok_or_else(|| Error::internal(format!("column {col}: {v}")))
}

impl Decode for SecurityEvent {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let port = |c: &str| -> Result<Option<u16>, Error> {
            Ok(opt_int(r, c)?.and_then(|p| u16::try_from(p).ok()))
        };
        Ok(SecurityEvent {
            seq: int(r, "seq")?,
            at: ts(r, "at")?,
            received_at: ts(r, "received_at")?,
            source: parse_enum(text(r, "source")?, EventSource::parse, "source")?,
            appliance: text(r, "appliance")?,
            format: parse_enum(text(r, "format")?, EventFormat::parse, "format")?,
            category: parse_enum(text(r, "category")?, Category::parse, "category")?,
            severity: parse_enum(text(r, "severity")?, Severity::parse, "severity")?,
            action: parse_enum(text(r, "action")?, EventAction::parse, "action")?,
            src_ip: opt_text(r, "src_ip")?,
            src_port: port("src_port")?,
            dst_ip: opt_text(r, "dst_ip")?,
            dst_port: port("dst_port")?,
            protocol: opt_text(r, "protocol")?,
            rule: opt_text(r, "rule")?,
            count: int(r, "count")?,
            department_id: opt_id(r, "department_id")?,
            provider_id: opt_id(r, "provider_id")?,
            instance_id: opt_id(r, "instance_id")?,
            message: text(r, "message")?,
        })
    }
}

/// Filters of the event search. `departments: None` means every event.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub departments: Option<Vec<DepartmentId>>,
    pub category: Option<Category>,
    pub severity: Option<Severity>,
    pub action: Option<EventAction>,
    pub source: Option<EventSource>,
    /// Source or destination address.
    pub address: Option<String>,
    /// Substring of the raw message or the rule.
    pub text: Option<String>,
}

/// Newest first; `before` is the last `seq` of the previous page.
pub async fn search(
    store: &Store,
    f: &EventFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<SecurityEvent>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT seq, {EVENT_COLS} FROM security_events WHERE 1 = 1"
    ));
    if let Some(b) = before {
        sql.push(" AND seq < ").bind(crate::sql::Arg::I64(b));
    }
    if let Some(t) = f.from {
        sql.push(" AND at >= ").bind(crate::sql::Arg::I64(t.0));
    }
    if let Some(t) = f.to {
        sql.push(" AND at < ").bind(crate::sql::Arg::I64(t.0));
    }
    if let Some(ds) = &f.departments {
        sql.push(" AND ")
            .push_in("department_id", ds.iter().map(|d| d.to_string()));
    }
    if let Some(c) = f.category {
        sql.push(" AND category = ").bind_text(c.as_str());
    }
    if let Some(s) = f.severity {
        sql.push(" AND severity = ").bind_text(s.as_str());
    }
    if let Some(a) = f.action {
        sql.push(" AND action = ").bind_text(a.as_str());
    }
    if let Some(s) = f.source {
        sql.push(" AND source = ").bind_text(s.as_str());
    }
    if let Some(a) = &f.address {
        sql.push(" AND (src_ip = ")
            .bind_text(a.clone())
            .push(" OR dst_ip = ")
            .bind_text(a.clone())
            .push(")");
    }
    if let Some(t) = &f.text {
        sql.push(" AND (").push_contains("message", t).push(" OR ");
        sql.push_contains("COALESCE(rule, '')", t).push(")");
    }
    sql.push(&format!(" ORDER BY seq DESC LIMIT {}", limit + 1));
    sql.fetch_all(store).await
}

/// What the counts are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountBy {
    Day,
    Department,
    Provider,
    Category,
    Severity,
    Action,
}

impl CountBy {
    pub fn parse(s: &str) -> Option<CountBy> {
        Some(match s {
            "day" => CountBy::Day,
            "department" => CountBy::Department,
            "provider" => CountBy::Provider,
            "category" => CountBy::Category,
            "severity" => CountBy::Severity,
            "action" => CountBy::Action,
            _ => return None,
        })
    }
    fn col(self) -> &'static str {
        match self {
            CountBy::Day => "day",
            CountBy::Department => "department_id",
            CountBy::Provider => "provider_id",
            CountBy::Category => "category",
            CountBy::Severity => "severity",
            CountBy::Action => "action",
        }
    }
}

impl Decode for EventCount {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(EventCount {
            key: text(r, "k")?,
            events: int(r, "n")?,
        })
    }
}

/// Sums of the day counts between two days (inclusive, `YYYY-MM-DD`), grouped by `by`.
pub async fn counts(
    store: &Store,
    by: CountBy,
    from_day: &str,
    to_day: &str,
    departments: Option<&[DepartmentId]>,
    category: Option<Category>,
) -> Result<Vec<EventCount>, Error> {
    let col = by.col();
    let mut sql = Sql::new(&format!(
        "SELECT {col} AS k, CAST(SUM(events) AS BIGINT) AS n FROM security_event_counts WHERE day >= "
    ));
    sql.bind_text(from_day)
        .push(" AND day <= ")
        .bind_text(to_day);
    if let Some(ds) = departments {
        sql.push(" AND ")
            .push_in("department_id", ds.iter().map(|d| d.to_string()));
    }
    if let Some(c) = category {
        sql.push(" AND category = ").bind_text(c.as_str());
    }
    sql.push(&format!(" GROUP BY {col} ORDER BY {col}"));
    sql.fetch_all(store).await
}

/// Deletes up to `limit` events older than `before` and the day counts before its day;
/// how many events went.
pub async fn purge_events(tx: &mut Tx, before: Timestamp, limit: i64) -> Result<u64, Error> {
    let n = sqlx::query(
        "DELETE FROM security_events WHERE seq IN (SELECT seq FROM security_events WHERE at < $1 ORDER BY seq LIMIT $2)",
    )
    .bind(before.0)
    .bind(limit)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    sqlx::query("DELETE FROM security_event_counts WHERE day < $1")
        .bind(day_of(before.0))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(n)
}

// ---------------------------------------------------------------- alert rules

impl Decode for EventRule {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(EventRule {
            id: text(r, "id")?
                .parse()
                .map_err(|_| Error::internal("security_event_rules.id"))?,
            name: text(r, "name")?,
            department_id: opt_id(r, "department_id")?,
            category: opt_text(r, "category")?
                .map(|c| parse_enum(c, Category::parse, "category"))
                .transpose()?,
            min_severity: parse_enum(text(r, "min_severity")?, Severity::parse, "min_severity")?,
            threshold: int(r, "threshold")?,
            window_secs: int(r, "window_secs")?,
            last_fired_at: opt_ts(r, "last_fired_at")?,
            created_at: ts(r, "created_at")?,
            generation: int(r, "generation")?,
        })
    }
}

const RULE_COLS: &str = "id, name, department_id, category, min_severity, threshold, window_secs, last_fired_at, created_at, generation FROM security_event_rules";

pub async fn rules(store: &Store) -> Result<Vec<EventRule>, Error> {
    Sql::new(&format!("SELECT {RULE_COLS} ORDER BY name"))
        .fetch_all(store)
        .await
}

pub async fn insert_rule(tx: &mut Tx, r: &EventRule) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO security_event_rules (id, name, department_id, category, min_severity, threshold, window_secs, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.id.to_string())
    .bind(&r.name)
    .bind(r.department_id.map(|d| d.to_string()))
    .bind(r.category.map(|c| c.as_str()))
    .bind(r.min_severity.as_str())
    .bind(r.threshold)
    .bind(r.window_secs)
    .bind(r.created_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn delete_rule(tx: &mut Tx, id: uuid::Uuid) -> Result<bool, Error> {
    Ok(
        sqlx::query("DELETE FROM security_event_rules WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            == 1,
    )
}

/// Records that a rule fired, unless another pass already did (conditional on the
/// generation it read).
pub async fn mark_fired(
    tx: &mut Tx,
    id: uuid::Uuid,
    generation: i64,
    at: Timestamp,
) -> Result<bool, Error> {
    Ok(sqlx::query(
        "UPDATE security_event_rules SET last_fired_at = $1, generation = generation + 1 WHERE id = $2 AND generation = $3",
    )
    .bind(at.0)
    .bind(id.to_string())
    .bind(generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected()
        == 1)
}

/// Occurrences matching a rule since `since`.
pub async fn rule_matches(store: &Store, r: &EventRule, since: Timestamp) -> Result<i64, Error> {
    let sevs: Vec<String> = Severity::ALL
        .iter()
        .filter(|s| s.rank() <= r.min_severity.rank())
        .map(|s| s.as_str().to_string())
        .collect();
    let mut sql = Sql::new(
        "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n, '' AS k FROM security_events WHERE at >= ",
    );
    sql.bind(crate::sql::Arg::I64(since.0))
        .push(" AND ")
        .push_in("severity", sevs);
    if let Some(d) = r.department_id {
        sql.push(" AND department_id = ").bind_text(d.to_string());
    }
    if let Some(c) = r.category {
        sql.push(" AND category = ").bind_text(c.as_str());
    }
    let rows: Vec<EventCount> = sql.fetch_all(store).await?;
    Ok(rows.first().map(|c| c.events).unwrap_or(0))
}

// ---------------------------------------------------------------- vulnerabilities

const VULN_COLS: &str = "id, address, port, protocol, vuln_id, title, severity, cve, solution, state, department_id, provider_id, instance_id, first_seen, last_seen, deadline, fixed_at, verified_at, note, generation FROM vulnerabilities";

/// A finding as stored (the `overdue` flag is computed against `now` by the caller).
impl Decode for Vulnerability {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Vulnerability {
            id: text(r, "id")?
                .parse()
                .map_err(|_| Error::internal("vulnerabilities.id"))?,
            address: text(r, "address")?,
            port: u16::try_from(int(r, "port")?).unwrap_or(0),
            protocol: text(r, "protocol")?,
            vuln_id: text(r, "vuln_id")?,
            title: text(r, "title")?,
            severity: parse_enum(text(r, "severity")?, Severity::parse, "severity")?,
            cve: text(r, "cve")?,
            solution: text(r, "solution")?,
            state: parse_enum(text(r, "state")?, VulnState::parse, "state")?,
            department_id: opt_id(r, "department_id")?,
            provider_id: opt_id(r, "provider_id")?,
            instance_id: opt_id(r, "instance_id")?,
            first_seen: ts(r, "first_seen")?,
            last_seen: ts(r, "last_seen")?,
            deadline: ts(r, "deadline")?,
            fixed_at: opt_ts(r, "fixed_at")?,
            verified_at: opt_ts(r, "verified_at")?,
            note: text(r, "note")?,
            overdue: false,
            generation: int(r, "generation")?,
        })
    }
}

/// Is a finding past its deadline and not yet dealt with?
pub fn is_overdue(v: &Vulnerability, now: Timestamp) -> bool {
    matches!(v.state, VulnState::Open | VulnState::Fixing) && v.deadline < now
}

fn with_overdue(mut v: Vulnerability, now: Timestamp) -> Vulnerability {
    v.overdue = is_overdue(&v, now);
    v
}

/// Every finding on these addresses, in the caller's transaction (an import compares
/// against them).
pub async fn on_addresses(tx: &mut Tx, addresses: &[String]) -> Result<Vec<Vulnerability>, Error> {
    let mut out = Vec::new();
    for chunk in addresses.chunks(500) {
        let mut sql = Sql::new(&format!("SELECT {VULN_COLS} WHERE "));
        sql.push_in("address", chunk.iter().cloned());
        let rows = sql.query().fetch_all(&mut **tx).await.map_err(db_error)?;
        for r in &rows {
            out.push(Vulnerability::decode(r)?);
        }
    }
    Ok(out)
}

pub async fn get_vuln_in(tx: &mut Tx, id: uuid::Uuid) -> Result<Option<Vulnerability>, Error> {
    let row = sqlx::query(&format!("SELECT {VULN_COLS} WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    row.map(|r| Vulnerability::decode(&r).map(|v| with_overdue(v, Timestamp::now())))
        .transpose()
}

pub async fn insert_vuln(tx: &mut Tx, v: &Vulnerability) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO vulnerabilities (id, address, port, protocol, vuln_id, title, severity, cve, solution, state, department_id, provider_id, instance_id, first_seen, last_seen, deadline, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(v.id.to_string())
    .bind(&v.address)
    .bind(i64::from(v.port))
    .bind(&v.protocol)
    .bind(&v.vuln_id)
    .bind(&v.title)
    .bind(v.severity.as_str())
    .bind(&v.cve)
    .bind(&v.solution)
    .bind(v.state.as_str())
    .bind(v.department_id.map(|d| d.to_string()))
    .bind(v.provider_id.map(|p| p.to_string()))
    .bind(v.instance_id.map(|i| i.to_string()))
    .bind(v.first_seen.0)
    .bind(v.last_seen.0)
    .bind(v.deadline.0)
    .bind(&v.note)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Writes back a finding an import or a person changed, if nobody changed it since it was
/// read (its generation); whether it was written.
pub async fn update_vuln(tx: &mut Tx, v: &Vulnerability) -> Result<bool, Error> {
    Ok(sqlx::query(
        "UPDATE vulnerabilities SET title = $1, severity = $2, cve = $3, solution = $4, state = $5, department_id = $6, provider_id = $7, \
         last_seen = $8, deadline = $9, fixed_at = $10, verified_at = $11, note = $12, protocol = $13, generation = generation + 1 \
         WHERE id = $14 AND generation = $15",
    )
    .bind(&v.title)
    .bind(v.severity.as_str())
    .bind(&v.cve)
    .bind(&v.solution)
    .bind(v.state.as_str())
    .bind(v.department_id.map(|d| d.to_string()))
    .bind(v.provider_id.map(|p| p.to_string()))
    .bind(v.last_seen.0)
    .bind(v.deadline.0)
    .bind(v.fixed_at.map(|t| t.0))
    .bind(v.verified_at.map(|t| t.0))
    .bind(&v.note)
    .bind(&v.protocol)
    .bind(v.id.to_string())
    .bind(v.generation)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected()
        == 1)
}

/// Filters of the finding list. `departments: None` means every finding.
#[derive(Debug, Clone, Default)]
pub struct VulnFilter {
    pub departments: Option<Vec<DepartmentId>>,
    pub state: Option<VulnState>,
    pub severity: Option<Severity>,
    pub address: Option<String>,
    pub overdue_only: bool,
    pub text: Option<String>,
}

/// Ordered by id (creation order); `after` is the last id of the previous page.
pub async fn vulns(
    store: &Store,
    f: &VulnFilter,
    after: Option<uuid::Uuid>,
    limit: i64,
) -> Result<Vec<Vulnerability>, Error> {
    let now = Timestamp::now();
    let mut sql = Sql::new(&format!("SELECT {VULN_COLS} WHERE 1 = 1"));
    if let Some(a) = after {
        sql.push(" AND id > ").bind_text(a.to_string());
    }
    if let Some(ds) = &f.departments {
        sql.push(" AND ")
            .push_in("department_id", ds.iter().map(|d| d.to_string()));
    }
    if let Some(s) = f.state {
        sql.push(" AND state = ").bind_text(s.as_str());
    }
    if let Some(s) = f.severity {
        sql.push(" AND severity = ").bind_text(s.as_str());
    }
    if let Some(a) = &f.address {
        sql.push(" AND address = ").bind_text(a.clone());
    }
    if f.overdue_only {
        sql.push(" AND state IN ('open', 'fixing') AND deadline < ")
            .bind(crate::sql::Arg::I64(now.0));
    }
    if let Some(t) = &f.text {
        sql.push(" AND (").push_contains("title", t).push(" OR ");
        sql.push_contains("cve", t).push(")");
    }
    sql.push(&format!(" ORDER BY id LIMIT {}", limit + 1));
    let rows: Vec<Vulnerability> = sql.fetch_all(store).await?;
    Ok(rows.into_iter().map(|v| with_overdue(v, now)).collect())
}

impl Decode for VulnCount {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(VulnCount {
            key: opt_text(r, "k")?.unwrap_or_default(),
            open: int(r, "open")?,
            overdue: int(r, "overdue")?,
            fixed: int(r, "fixed")?,
            verified: int(r, "verified")?,
            fixed_within_deadline: int(r, "in_time")?,
            accepted: int(r, "accepted")?,
        })
    }
}

pub async fn vuln_counts(
    store: &Store,
    by_provider: bool,
    departments: Option<&[DepartmentId]>,
) -> Result<Vec<VulnCount>, Error> {
    let col = if by_provider {
        "provider_id"
    } else {
        "department_id"
    };
    let now = Timestamp::now().0;
    let mut sql = Sql::new(&format!(
        "SELECT {col} AS k, \
         CAST(SUM(CASE WHEN state IN ('open', 'fixing') THEN 1 ELSE 0 END) AS BIGINT) AS open, \
         CAST(SUM(CASE WHEN state IN ('open', 'fixing') AND deadline < {now} THEN 1 ELSE 0 END) AS BIGINT) AS overdue, \
         CAST(SUM(CASE WHEN state = 'fixed' THEN 1 ELSE 0 END) AS BIGINT) AS fixed, \
         CAST(SUM(CASE WHEN state = 'verified' THEN 1 ELSE 0 END) AS BIGINT) AS verified, \
         CAST(SUM(CASE WHEN state IN ('fixed', 'verified') AND COALESCE(fixed_at, verified_at) <= deadline THEN 1 ELSE 0 END) AS BIGINT) AS in_time, \
         CAST(SUM(CASE WHEN state = 'accepted' THEN 1 ELSE 0 END) AS BIGINT) AS accepted \
         FROM vulnerabilities WHERE 1 = 1"
    ));
    if let Some(ds) = departments {
        sql.push(" AND ")
            .push_in("department_id", ds.iter().map(|d| d.to_string()));
    }
    sql.push(&format!(" GROUP BY {col} ORDER BY {col}"));
    sql.fetch_all(store).await
}

/// Overdue findings not yet reminded of for their current deadline.
pub async fn overdue_unreminded(
    store: &Store,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<Vulnerability>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {VULN_COLS} WHERE state IN ('open', 'fixing') AND deadline < "
    ));
    sql.bind(crate::sql::Arg::I64(now.0)).push(&format!(
        " AND (reminded_deadline IS NULL OR reminded_deadline <> deadline) ORDER BY deadline LIMIT {limit}"
    ));
    let rows: Vec<Vulnerability> = sql.fetch_all(store).await?;
    Ok(rows.into_iter().map(|v| with_overdue(v, now)).collect())
}

/// Records the reminder for the finding's current deadline; false if another pass did.
pub async fn mark_reminded(tx: &mut Tx, v: &Vulnerability) -> Result<bool, Error> {
    Ok(sqlx::query(
        "UPDATE vulnerabilities SET reminded_deadline = deadline WHERE id = $1 AND deadline = $2 AND (reminded_deadline IS NULL OR reminded_deadline <> deadline)",
    )
    .bind(v.id.to_string())
    .bind(v.deadline.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected()
        == 1)
}

impl Decode for VulnImport {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(VulnImport {
            id: text(r, "id")?
                .parse()
                .map_err(|_| Error::internal("vulnerability_imports.id"))?,
            source: text(r, "source")?,
            format: text(r, "format")?,
            created_at: ts(r, "created_at")?,
            hosts: int(r, "hosts")?,
            findings: int(r, "findings")?,
            created: int(r, "created")?,
            updated: int(r, "updated")?,
            reopened: int(r, "reopened")?,
            verified: int(r, "verified")?,
            duplicates: int(r, "duplicates")?,
        })
    }
}

pub async fn insert_import(tx: &mut Tx, i: &VulnImport) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO vulnerability_imports (id, source, format, created_at, hosts, findings, created, updated, reopened, verified, duplicates) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(i.id.to_string())
    .bind(&i.source)
    .bind(&i.format)
    .bind(i.created_at.0)
    .bind(i.hosts)
    .bind(i.findings)
    .bind(i.created)
    .bind(i.updated)
    .bind(i.reopened)
    .bind(i.verified)
    .bind(i.duplicates)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Records every overdue finding's reminder as sent (demo data: its history already
/// reminded the departments, so a fresh demo does not fill their inboxes).
pub async fn mark_all_reminded(tx: &mut Tx) -> Result<(), Error> {
    sqlx::query("UPDATE vulnerabilities SET reminded_deadline = deadline")
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// COPY's text format read back: the inverse of [`copy_text`] for one field.
    fn unescape(field: &[u8]) -> String {
        let mut out = Vec::new();
        let mut it = field.iter();
        while let Some(&b) = it.next() {
            if b != b'\\' {
                out.push(b);
                continue;
            }
            match it.next() {
                Some(b't') => out.push(b'\t'),
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(b'\\') => out.push(b'\\'),
                other => panic!("unexpected escape {other:?} in {field:?}"),
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn copy_text_escapes_every_byte_the_text_format_reads_specially() {
        for s in [
            "",
            "plain",
            "\t",
            "a\tb\nc\rd\\e",
            "\\N",
            "\\.",
            "\\",
            "ends with \\",
            "中文\t日志\\类型",
            "'quotes' \"double\"",
        ] {
            let mut buf = Vec::new();
            copy_text(&mut buf, s);
            assert!(
                !buf.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0)),
                "{s:?} -> {buf:?}"
            );
            assert_eq!(unescape(&buf), s);
        }
        let mut buf = Vec::new();
        copy_text(&mut buf, "nul\0inside");
        assert_eq!(unescape(&buf), "nul\u{fffd}inside");
    }

    #[test]
    fn a_copy_row_is_one_line_of_every_column_with_nulls_marked() {
        let e = NewEvent {
            at: -5,
            received_at: 7,
            source: EventSource::Syslog,
            appliance: "fw\t01".into(),
            format: EventFormat::Cef,
            category: Category::Scan,
            severity: Severity::High,
            action: EventAction::Blocked,
            src_ip: Some("192.0.2.1".into()),
            src_port: None,
            dst_ip: None,
            dst_port: Some(443),
            protocol: None,
            rule: Some("r\\1".into()),
            count: 3,
            department_id: None,
            provider_id: None,
            instance_id: None,
            message: "line\nbreak".into(),
        };
        let mut buf = Vec::new();
        copy_row(&mut buf, &e);
        assert_eq!(buf.last(), Some(&b'\n'));
        let line = &buf[..buf.len() - 1];
        assert!(!line.contains(&b'\n'));
        let fields: Vec<&[u8]> = line.split(|b| *b == b'\t').collect();
        assert_eq!(fields.len(), EVENT_COLS.split(", ").count());
        let values: Vec<Option<String>> = fields
            .iter()
            .map(|f| (*f != b"\\N").then(|| unescape(f)))
            .collect();
        let want = [
            Some("-5"),
            Some("7"),
            Some("syslog"),
            Some("fw\t01"),
            Some("cef"),
            Some("scan"),
            Some("high"),
            Some("blocked"),
            Some("192.0.2.1"),
            None,
            None,
            Some("443"),
            None,
            Some("r\\1"),
            Some("3"),
            None,
            None,
            None,
            Some("line\nbreak"),
        ];
        assert_eq!(values, want.map(|v| v.map(str::to_string)));
    }
}
