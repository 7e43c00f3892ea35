//! Metrics history: `GET /v1/metrics/query` (one entity's series over a range, at a step,
//! combined by an aggregate) and `GET /v1/metrics/prometheus` (the latest figures of every
//! host and instance in the Prometheus text format, for an existing Prometheus or
//! VictoriaMetrics to scrape).

use crate::app::metrics;
use crate::auth::actor::Actor;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use zy_model::metrics::MetricsResult;
use zy_model::time::Timestamp;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `instance`, `host`, `project`, `department`, `zone` or `provider`.
    pub scope: String,
    /// The entity's id (UUID).
    pub id: String,
    /// Comma-separated: `cpu`, `mem`, `mem_used`, `disk_read`, `disk_write`, `disk_used`,
    /// `net_rx`, `net_tx`, `up` (default `cpu`).
    pub series: Option<String>,
    /// Start (RFC 3339); default one hour before `to`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// End (RFC 3339); default now. At most 400 days after `from`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// Seconds per point (10 s – 31 days); default about 240 points. At most 2000 points.
    pub step: Option<i64>,
    /// `avg` (default), `min` or `max` of the points in each step.
    pub agg: Option<String>,
}

#[utoipa::path(get, path = "/v1/metrics/query", tag = "metrics", params(MetricsQuery),
    responses((status = 200, body = MetricsResult), (status = "default", body = ErrorBody)))]
pub async fn query_metrics(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<axum::Json<MetricsResult>> {
    Ok(axum::Json(
        metrics::query(
            &s,
            &actor,
            metrics::Query {
                scope: q.scope,
                id: q.id,
                series: q.series,
                from: q.from,
                to: q.to,
                step: q.step,
                agg: q.agg,
            },
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/v1/metrics/prometheus", tag = "metrics",
    responses((status = 200, description = "Prometheus text exposition (0.0.4) of the latest figures of every host and instance, with department, project, zone and provider labels", content_type = "text/plain"), (status = "default", body = ErrorBody)))]
pub async fn prometheus_metrics(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let text = metrics::prometheus(&s, &actor).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/metrics/remote-write", tag = "metrics",
    responses((status = 200, body = metrics::RemoteWriteView), (status = "default", body = ErrorBody)))]
pub async fn get_remote_write(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<metrics::RemoteWriteView>> {
    Ok(axum::Json(
        metrics::remote_write_settings(&s, &actor).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRemoteWrite {
    /// Send every reading (every 10 s) to `url`.
    pub enabled: bool,
    /// The receiver, e.g. `http://vm.example.gov.cn:8428/api/v1/write` (VictoriaMetrics) or
    /// a Prometheus's `/api/v1/write`.
    pub url: String,
    /// Sent as `Authorization: Bearer …`; absent keeps the stored one, `""` removes it.
    /// Sealed at rest and never returned.
    pub bearer_token: Option<String>,
}

#[utoipa::path(put, path = "/v1/metrics/remote-write", tag = "metrics", request_body = SetRemoteWrite,
    responses((status = 200, body = metrics::RemoteWriteView), (status = "default", body = ErrorBody)))]
pub async fn set_remote_write(
    State(s): State<AppState>,
    ctx: crate::context::RequestContext,
    actor: Actor,
    crate::extract::Json(b): crate::extract::Json<SetRemoteWrite>,
) -> ApiResult<axum::Json<metrics::RemoteWriteView>> {
    Ok(axum::Json(
        metrics::set_remote_write(
            &s,
            &ctx,
            &actor,
            b.enabled,
            &b.url,
            b.bearer_token.as_deref(),
        )
        .await?,
    ))
}
