//! Supervision (监管): indicators with their inputs (`/v1/supervision/indicators`),
//! providers side by side, departments ranked, trends, the dashboard's one answer, the
//! monthly operations reports (`/v1/supervision/reports`), and idle resources
//! (`/v1/idle-resources`, `/v1/idle-settings`).

use super::List;
use crate::app::supervision::{self as app, dashboard, idle, report};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use zy_model::supervision::*;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IndicatorParams {
    /// `provider` or `department`.
    pub scope: String,
    /// The provider's or department's id.
    pub id: String,
    /// `YYYY-MM` (default: the current month).
    pub period: Option<String>,
}

#[utoipa::path(get, path = "/v1/supervision/indicators", tag = "supervision", params(IndicatorParams),
    responses((status = 200, body = IndicatorSet), (status = "default", body = ErrorBody)))]
pub async fn get_indicators(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<IndicatorParams>,
) -> ApiResult<axum::Json<IndicatorSet>> {
    Ok(axum::Json(
        app::indicators(&s, &actor, &q.scope, &q.id, q.period.as_deref()).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodParams {
    /// `YYYY-MM` (default: the current month).
    pub period: Option<String>,
}

#[utoipa::path(get, path = "/v1/supervision/providers", tag = "supervision", params(PeriodParams),
    responses((status = 200, body = List<IndicatorSet>), (status = "default", body = ErrorBody)))]
pub async fn compare_providers(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<PeriodParams>,
) -> ApiResult<axum::Json<List<IndicatorSet>>> {
    Ok(axum::Json(List {
        items: app::providers(&s, &actor, q.period.as_deref()).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RankParams {
    /// `YYYY-MM` (default: the current month).
    pub period: Option<String>,
    /// A department indicator's name to rank by, highest first (default
    /// `cpu_utilisation`; e.g. `spend`).
    pub sort: Option<String>,
}

#[utoipa::path(get, path = "/v1/supervision/departments", tag = "supervision", params(RankParams),
    responses((status = 200, body = List<IndicatorSet>), (status = "default", body = ErrorBody)))]
pub async fn rank_departments(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<RankParams>,
) -> ApiResult<axum::Json<List<IndicatorSet>>> {
    Ok(axum::Json(List {
        items: app::departments(&s, &actor, q.period.as_deref(), q.sort.as_deref()).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendParams {
    /// `provider` or `department`.
    pub scope: String,
    pub id: String,
    /// How many months up to the current one, 1–24 (default 6).
    pub months: Option<i64>,
}

#[utoipa::path(get, path = "/v1/supervision/trends", tag = "supervision", params(TrendParams),
    responses((status = 200, body = List<app::TrendPoint>), (status = "default", body = ErrorBody)))]
pub async fn indicator_trends(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<TrendParams>,
) -> ApiResult<axum::Json<List<app::TrendPoint>>> {
    Ok(axum::Json(List {
        items: app::trends(&s, &actor, &q.scope, &q.id, q.months).await?,
    }))
}

#[utoipa::path(get, path = "/v1/supervision/dashboard", tag = "supervision", params(PeriodParams),
    responses((status = 200, body = dashboard::Dashboard), (status = "default", body = ErrorBody)))]
pub async fn supervision_dashboard(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<PeriodParams>,
) -> ApiResult<axum::Json<dashboard::Dashboard>> {
    Ok(axum::Json(
        dashboard::dashboard(&s, &actor, q.period.as_deref()).await?,
    ))
}

/// How many indicator sets were computed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Refreshed {
    pub sets: usize,
}

#[utoipa::path(post, path = "/v1/supervision/refresh", tag = "supervision",
    responses((status = 200, body = Refreshed), (status = "default", body = ErrorBody)))]
pub async fn refresh_indicators(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
) -> ApiResult<axum::Json<Refreshed>> {
    Ok(axum::Json(Refreshed {
        sets: app::refresh(&s, &ctx, &actor).await?,
    }))
}

#[utoipa::path(get, path = "/v1/supervision/reports", tag = "supervision",
    responses((status = 200, body = List<OpsReport>), (status = "default", body = ErrorBody)))]
pub async fn list_ops_reports(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<OpsReport>>> {
    Ok(axum::Json(List {
        items: report::list(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/supervision/reports", tag = "supervision", request_body = report::NewReport,
    responses((status = 201, body = OpsReport), (status = "default", body = ErrorBody)))]
pub async fn create_ops_report(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<report::NewReport>,
) -> ApiResult<(StatusCode, axum::Json<OpsReport>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(report::create(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(get, path = "/v1/supervision/reports/{id}/{format}", tag = "supervision",
    params(("id" = String, Path), ("format" = String, Path, description = "pdf or xlsx")),
    responses((status = 200, description = "The PDF or the XLSX workbook", content_type = "application/pdf"), (status = "default", body = ErrorBody)))]
pub async fn download_ops_report(
    State(s): State<AppState>,
    actor: Actor,
    Path((id, format)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (name, ctype, body) = report::file(&s, &actor, &id, &format).await?;
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IdleParams {
    /// `open`, `reclaiming`, `reclaimed`, `dismissed`, `cleared` or `all` (default: open
    /// and reclaiming).
    pub state: Option<String>,
}

#[utoipa::path(get, path = "/v1/idle-resources", tag = "supervision", params(IdleParams),
    responses((status = 200, body = List<IdleFinding>), (status = "default", body = ErrorBody)))]
pub async fn list_idle_resources(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<IdleParams>,
) -> ApiResult<axum::Json<List<IdleFinding>>> {
    Ok(axum::Json(List {
        items: idle::list(&s, &actor, q.state.as_deref()).await?,
    }))
}

#[utoipa::path(post, path = "/v1/idle-resources/{id}/reclaim", tag = "supervision", params(("id" = String, Path)),
    request_body = idle::ReclaimBody,
    responses((status = 200, body = IdleFinding), (status = "default", body = ErrorBody)))]
pub async fn reclaim_idle_resource(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
    Json(b): Json<idle::ReclaimBody>,
) -> ApiResult<axum::Json<IdleFinding>> {
    Ok(axum::Json(idle::reclaim(&s, &ctx, &actor, &id, b).await?))
}

#[utoipa::path(post, path = "/v1/idle-resources/{id}/dismiss", tag = "supervision", params(("id" = String, Path)),
    request_body = idle::DismissBody,
    responses((status = 200, body = IdleFinding), (status = "default", body = ErrorBody)))]
pub async fn dismiss_idle_resource(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
    Json(b): Json<idle::DismissBody>,
) -> ApiResult<axum::Json<IdleFinding>> {
    Ok(axum::Json(idle::dismiss(&s, &ctx, &actor, &id, b).await?))
}

#[utoipa::path(get, path = "/v1/idle-resources/reclaimed", tag = "supervision",
    responses((status = 200, body = List<ReclaimedCapacity>), (status = "default", body = ErrorBody)))]
pub async fn reclaimed_capacity(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<ReclaimedCapacity>>> {
    Ok(axum::Json(List {
        items: idle::reclaimed(&s, &actor).await?,
    }))
}

#[utoipa::path(get, path = "/v1/idle-settings", tag = "supervision",
    responses((status = 200, body = IdleSettings), (status = "default", body = ErrorBody)))]
pub async fn get_idle_settings(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<IdleSettings>> {
    Ok(axum::Json(idle::get_settings(&s, &actor).await?))
}

#[utoipa::path(put, path = "/v1/idle-settings", tag = "supervision", request_body = IdleSettings,
    responses((status = 200, body = IdleSettings), (status = "default", body = ErrorBody)))]
pub async fn update_idle_settings(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<IdleSettings>,
) -> ApiResult<axum::Json<IdleSettings>> {
    Ok(axum::Json(idle::put_settings(&s, &ctx, &actor, b).await?))
}
