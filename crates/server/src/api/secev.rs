//! Security events and vulnerabilities: `/v1/address-plan` (地址规划), `/v1/security-events`
//! (search, counts, the syslog intake's counters), `/v1/security-policy`,
//! `/v1/security-event-rules` (alert rules), `/v1/vulnerabilities` and
//! `/v1/vulnerability-imports` (漏洞管理).

use super::List;
use crate::app::secev::{self as app, EventQuery, NewAddressBlock, NewEventRule};
use crate::app::vulns::{self, NewVulnImport, VulnQuery, VulnTransition};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::syslog::IntakeStatus;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use zy_model::id::DepartmentId;
use zy_model::page::Page;
use zy_model::secev::*;
use zy_model::time::Timestamp;
use zy_store::secev::{EventFilter, VulnFilter};

#[utoipa::path(get, path = "/v1/address-plan", tag = "security",
    responses((status = 200, body = List<AddressBlock>), (status = "default", body = ErrorBody)))]
pub async fn list_address_blocks(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<AddressBlock>>> {
    Ok(axum::Json(List {
        items: app::list_blocks(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/address-plan", tag = "security", request_body = NewAddressBlock,
    responses((status = 201, body = AddressBlock), (status = "default", body = ErrorBody)))]
pub async fn create_address_block(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewAddressBlock>,
) -> ApiResult<(StatusCode, axum::Json<AddressBlock>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(app::create_block(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/address-plan/{id}", tag = "security", params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_address_block(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<uuid::Uuid>,
) -> ApiResult<StatusCode> {
    app::delete_block(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// One department (a department admin sees only their own; without it, all they may).
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
    /// From this time (RFC 3339), inclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Until this time (RFC 3339), exclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    #[param(inline)]
    pub category: Option<Category>,
    #[param(inline)]
    pub severity: Option<Severity>,
    #[param(inline)]
    pub action: Option<EventAction>,
    #[param(inline)]
    pub source: Option<EventSource>,
    /// Source or destination IP address.
    pub address: Option<String>,
    /// Substring of the raw message or the rule name.
    pub q: Option<String>,
    /// Events per page, 1–500 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/security-events", tag = "security", params(EventParams),
    responses((status = 200, body = Page<SecurityEvent>), (status = "default", body = ErrorBody)))]
pub async fn list_security_events(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<EventParams>,
) -> ApiResult<axum::Json<Page<SecurityEvent>>> {
    let query = EventQuery {
        department_id: q.department_id,
        filter: EventFilter {
            from: q.from,
            to: q.to,
            departments: None,
            category: q.category,
            severity: q.severity,
            action: q.action,
            source: q.source,
            address: q.address,
            text: q.q,
        },
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(axum::Json(app::search(&s, &actor, query).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CountParams {
    /// `day`, `department`, `provider`, `category`, `severity` or `action`.
    pub by: String,
    /// First day, `YYYY-MM-DD` (Asia/Shanghai; default 29 days before `to`).
    pub from: Option<String>,
    /// Last day, inclusive (default today).
    pub to: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
    #[param(inline)]
    pub category: Option<Category>,
}

#[utoipa::path(get, path = "/v1/security-events/counts", tag = "security", params(CountParams),
    responses((status = 200, body = List<EventCount>), (status = "default", body = ErrorBody)))]
pub async fn security_event_counts(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<CountParams>,
) -> ApiResult<axum::Json<List<EventCount>>> {
    Ok(axum::Json(List {
        items: app::counts(&s, &actor, &q.by, q.from, q.to, q.department_id, q.category).await?,
    }))
}

#[utoipa::path(get, path = "/v1/security-events/intake", tag = "security",
    responses((status = 200, body = IntakeStatus), (status = "default", body = ErrorBody)))]
pub async fn syslog_intake(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<IntakeStatus>> {
    Ok(axum::Json(app::intake_status(&s, &actor)?))
}

#[utoipa::path(get, path = "/v1/security-policy", tag = "security",
    responses((status = 200, body = SecurityPolicy), (status = "default", body = ErrorBody)))]
pub async fn get_security_policy(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<SecurityPolicy>> {
    Ok(axum::Json(app::get_policy(&s, &actor).await?))
}

#[utoipa::path(put, path = "/v1/security-policy", tag = "security", request_body = SecurityPolicy,
    responses((status = 200, body = SecurityPolicy), (status = "default", body = ErrorBody)))]
pub async fn update_security_policy(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<SecurityPolicy>,
) -> ApiResult<axum::Json<SecurityPolicy>> {
    Ok(axum::Json(app::put_policy(&s, &ctx, &actor, b).await?))
}

#[utoipa::path(get, path = "/v1/security-event-rules", tag = "security",
    responses((status = 200, body = List<EventRule>), (status = "default", body = ErrorBody)))]
pub async fn list_security_event_rules(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<EventRule>>> {
    Ok(axum::Json(List {
        items: app::list_rules(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/security-event-rules", tag = "security", request_body = NewEventRule,
    responses((status = 201, body = EventRule), (status = "default", body = ErrorBody)))]
pub async fn create_security_event_rule(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewEventRule>,
) -> ApiResult<(StatusCode, axum::Json<EventRule>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(app::create_rule(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/security-event-rules/{id}", tag = "security", params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_security_event_rule(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<uuid::Uuid>,
) -> ApiResult<StatusCode> {
    app::delete_rule(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VulnParams {
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
    #[param(inline)]
    pub state: Option<VulnState>,
    #[param(inline)]
    pub severity: Option<Severity>,
    /// The host's IP address.
    pub address: Option<String>,
    /// Only findings past their deadline and not yet fixed.
    pub overdue: Option<bool>,
    /// Substring of the title or the CVE.
    pub q: Option<String>,
    /// Findings per page, 1–500 (default 50).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/vulnerabilities", tag = "security", params(VulnParams),
    responses((status = 200, body = Page<Vulnerability>), (status = "default", body = ErrorBody)))]
pub async fn list_vulnerabilities(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<VulnParams>,
) -> ApiResult<axum::Json<Page<Vulnerability>>> {
    let query = VulnQuery {
        department_id: q.department_id,
        filter: VulnFilter {
            departments: None,
            state: q.state,
            severity: q.severity,
            address: q.address,
            overdue_only: q.overdue.unwrap_or(false),
            text: q.q,
        },
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(axum::Json(vulns::list(&s, &actor, query).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VulnCountParams {
    /// `department` or `provider`.
    pub by: String,
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
}

#[utoipa::path(get, path = "/v1/vulnerabilities/counts", tag = "security", params(VulnCountParams),
    responses((status = 200, body = List<VulnCount>), (status = "default", body = ErrorBody)))]
pub async fn vulnerability_counts(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<VulnCountParams>,
) -> ApiResult<axum::Json<List<VulnCount>>> {
    Ok(axum::Json(List {
        items: vulns::counts(&s, &actor, &q.by, q.department_id).await?,
    }))
}

#[utoipa::path(post, path = "/v1/vulnerability-imports", tag = "security", request_body = NewVulnImport,
    responses((status = 201, body = VulnImport), (status = "default", body = ErrorBody)))]
pub async fn import_vulnerabilities(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewVulnImport>,
) -> ApiResult<(StatusCode, axum::Json<VulnImport>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(vulns::import(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(post, path = "/v1/vulnerabilities/{id}/state", tag = "security", params(("id" = uuid::Uuid, Path)), request_body = VulnTransition,
    responses((status = 200, body = Vulnerability), (status = "default", body = ErrorBody)))]
pub async fn set_vulnerability_state(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<uuid::Uuid>,
    Json(b): Json<VulnTransition>,
) -> ApiResult<axum::Json<Vulnerability>> {
    Ok(axum::Json(
        vulns::transition(&s, &ctx, &actor, id, b).await?,
    ))
}
