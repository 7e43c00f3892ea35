//! `/v1/audit`: the auditor's view of the audit log.

use crate::app::audit as app;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zy_model::audit::{AuditRecord, Outcome, TamperFinding};
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_store::audit::AuditQuery;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Records per page, 1–1000 (default 50). Newest first.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// The acting user's login name.
    pub actor: Option<String>,
    /// The operation, e.g. `create_department`, `login`.
    pub action: Option<String>,
    #[param(value_type = Option<Outcome>)]
    pub outcome: Option<Outcome>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// RFC 3339 time, inclusive.
    pub from: Option<String>,
    /// RFC 3339 time, exclusive.
    pub to: Option<String>,
    /// Export format: `csv` (default) or `jsonl`. Only for the export.
    pub format: Option<String>,
}

fn parse_time(field: &str, v: &Option<String>) -> Result<Option<Timestamp>, Error> {
    v.as_deref()
        .map(|s| {
            Timestamp::parse_rfc3339(s).ok_or_else(|| {
                Error::invalid(t!("{} 须为 RFC 3339 时间，如 2026-11-24T08:00:00+08:00" ; "{} must be an RFC 3339 time such as 2026-11-24T08:00:00+08:00", field))
            })
        })
        .transpose()
}

impl AuditFilter {
    fn query(&self) -> Result<AuditQuery, Error> {
        let clip = |v: &Option<String>| -> Result<Option<String>, Error> {
            match v {
                Some(s) if s.chars().count() > 128 => {
                    Err(Error::invalid(t!("过滤条件过长", "filter value too long")))
                }
                other => Ok(other.clone()),
            }
        };
        let before_seq = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::invalid(t!(
                    "分页游标无效，请从第一页重新获取",
                    "The page cursor is not valid; start again from the first page"
                ))
            })?),
        };
        Ok(AuditQuery {
            actor: clip(&self.actor)?,
            action: clip(&self.action)?,
            outcome: self.outcome,
            target_type: clip(&self.target_type)?,
            target_id: clip(&self.target_id)?,
            from: parse_time("from", &self.from)?,
            to: parse_time("to", &self.to)?,
            before_seq,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditFilter),
    responses((status = 200, body = AuditPage), (status = "default", body = ErrorBody)))]
pub async fn list_audit(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Query(f): Query<AuditFilter>,
) -> ApiResult<axum::Json<AuditPage>> {
    let limit = zy_model::page::PageRequest::parse(f.limit, None, None)?.limit;
    let (items, next) = app::list(&s, &ctx, &actor, &f.query()?, limit).await?;
    Ok(axum::Json(AuditPage {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyReport {
    /// True when the whole chain is intact.
    pub ok: bool,
    /// Records examined.
    pub checked: u64,
    /// The first altered, inserted or deleted record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_problem: Option<TamperFinding>,
    /// The chain's last record now. Write `head_seq:head_hash` down outside the system
    /// (a report, a signed mail) and pass it as the anchor later: a log rewritten and
    /// rehashed as a whole no longer passes through it.
    pub head_seq: i64,
    pub head_hash: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// A head recorded earlier: its sequence number…
    pub anchor_seq: Option<i64>,
    /// …and its hash.
    pub anchor_hash: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyParams),
    responses((status = 200, body = VerifyReport), (status = "default", body = ErrorBody)))]
pub async fn verify_audit(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Query(q): Query<VerifyParams>,
) -> ApiResult<axum::Json<VerifyReport>> {
    let anchor = match (q.anchor_seq, q.anchor_hash) {
        (None, None) => None,
        (Some(seq), Some(hash))
            if seq > 0 && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some((seq, hash.to_ascii_lowercase()))
        }
        _ => {
            return Err(ApiError(Error::invalid(t!(
            "锚点须同时给出 anchor_seq（正整数）与 anchor_hash（64 位十六进制）",
            "an anchor needs both anchor_seq (a positive integer) and anchor_hash (64 hex digits)"
        ))))
        }
    };
    let out = app::verify(&s, &ctx, &actor, anchor).await?;
    Ok(axum::Json(VerifyReport {
        ok: out.finding.is_none(),
        checked: out.checked,
        first_problem: out.finding,
        head_seq: out.head_seq,
        head_hash: out.head_hash,
    }))
}

/// One CSV field, quoted when needed (RFC 4180).
fn csv_field(s: &str) -> String {
    // A leading = + - @ would be run as a formula by spreadsheet programs.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_row(r: &AuditRecord) -> String {
    let cols = [
        r.seq.to_string(),
        r.at.to_rfc3339(),
        r.actor_name.clone(),
        r.actor_roles.clone(),
        r.source_ip.clone(),
        r.action.clone(),
        r.target_type.clone(),
        r.target_id.clone(),
        r.outcome.as_str().to_string(),
        r.request_id.clone(),
        r.detail.clone(),
        r.prev_hash.clone(),
        r.hash.clone(),
    ];
    let mut line = cols
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

const CSV_HEADER: &str = "序号 seq,时间 time,操作人 actor,角色 roles,来源IP source_ip,操作 action,对象类型 target_type,对象 target_id,结果 outcome,请求编号 request_id,详情 detail,前一哈希 prev_hash,哈希 hash\r\n";

#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(AuditFilter),
    responses((status = 200, description = "CSV (UTF-8 with BOM) or JSON Lines", content_type = "text/csv"), (status = "default", body = ErrorBody)))]
pub async fn export_audit(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Query(f): Query<AuditFilter>,
) -> ApiResult<Response> {
    let format = f.format.clone().unwrap_or_else(|| "csv".into());
    if format != "csv" && format != "jsonl" {
        return Err(ApiError(Error::invalid(t!(
            "format 须为 csv 或 jsonl",
            "format must be csv or jsonl"
        ))));
    }
    let q = f.query()?;
    app::begin_export(&s, &ctx, &actor, &format).await?;
    // Stream in batches so a large log never sits in memory whole.
    let store = s.store.clone();
    let jsonl = format == "jsonl";
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    tokio::spawn(async move {
        if !jsonl {
            // The BOM makes spreadsheet programs read the Chinese header as UTF-8.
            let _ = tx.send(Ok(format!("\u{feff}{CSV_HEADER}"))).await;
        }
        let mut after = i64::MIN;
        loop {
            let batch = match zy_store::audit::batch_after(&store, &q, after, 1000).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let Some(last) = batch.last() else { return };
            after = last.seq;
            let mut chunk = String::new();
            for r in &batch {
                if jsonl {
                    chunk.push_str(&serde_json::to_string(r).unwrap_or_default());
                    chunk.push('\n');
                } else {
                    chunk.push_str(&csv_row(r));
                }
            }
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    let (ctype, ext) = if jsonl {
        ("application/x-ndjson; charset=utf-8", "jsonl")
    } else {
        ("text/csv; charset=utf-8", "csv")
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"zhengyun-audit.{ext}\""))
    {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeAudit {
    /// Delete records older than this RFC 3339 time; at least 180 days ago.
    pub before: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeResult {
    pub deleted: u64,
}

#[utoipa::path(post, path = "/v1/audit/purge", tag = "audit", request_body = PurgeAudit,
    responses((status = 200, body = PurgeResult), (status = "default", body = ErrorBody)))]
pub async fn purge_audit(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<PurgeAudit>,
) -> ApiResult<axum::Json<PurgeResult>> {
    let before = parse_time("before", &Some(b.before))?
        .ok_or_else(|| ApiError(Error::invalid(t!("缺少 before", "before is required"))))?;
    Ok(axum::Json(PurgeResult {
        deleted: app::purge(&s, &ctx, &actor, before).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_field("市卫计委"), "市卫计委");
    }
}
