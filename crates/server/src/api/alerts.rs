//! Alerts (告警): rules (`/v1/alert-rules`), what is pending or firing now (`/v1/alerts`),
//! the history of fired and resolved alerts (`/v1/alerts/history`) and silences
//! (`/v1/alert-silences`).

use super::List;
use crate::app::alerts;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use zy_model::alerts::*;

#[utoipa::path(get, path = "/v1/alert-rules", tag = "metrics",
    responses((status = 200, body = List<AlertRule>), (status = "default", body = ErrorBody)))]
pub async fn list_alert_rules(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<AlertRule>>> {
    Ok(axum::Json(List {
        items: alerts::list_rules(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/alert-rules", tag = "metrics", request_body = NewAlertRule,
    responses((status = 201, body = AlertRule), (status = "default", body = ErrorBody)))]
pub async fn create_alert_rule(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewAlertRule>,
) -> ApiResult<(StatusCode, axum::Json<AlertRule>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(alerts::create_rule(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/alert-rules/{id}", tag = "metrics", params(("id" = String, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_alert_rule(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    alerts::delete_rule(&s, &ctx, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/alerts", tag = "metrics",
    responses((status = 200, body = List<ActiveAlert>), (status = "default", body = ErrorBody)))]
pub async fn list_alerts(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<ActiveAlert>>> {
    Ok(axum::Json(List {
        items: alerts::active(&s, &actor).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Newest entries, 1–1000 (default 200).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/alerts/history", tag = "metrics", params(HistoryParams),
    responses((status = 200, body = List<AlertEvent>), (status = "default", body = ErrorBody)))]
pub async fn list_alert_history(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<HistoryParams>,
) -> ApiResult<axum::Json<List<AlertEvent>>> {
    Ok(axum::Json(List {
        items: alerts::history(&s, &actor, q.limit).await?,
    }))
}

#[utoipa::path(get, path = "/v1/alert-silences", tag = "metrics",
    responses((status = 200, body = List<Silence>), (status = "default", body = ErrorBody)))]
pub async fn list_silences(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<Silence>>> {
    Ok(axum::Json(List {
        items: alerts::list_silences(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/alert-silences", tag = "metrics", request_body = NewSilence,
    responses((status = 201, body = Silence), (status = "default", body = ErrorBody)))]
pub async fn create_silence(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewSilence>,
) -> ApiResult<(StatusCode, axum::Json<Silence>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(alerts::create_silence(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/alert-silences/{id}", tag = "metrics", params(("id" = String, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_silence(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    alerts::delete_silence(&s, &ctx, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
