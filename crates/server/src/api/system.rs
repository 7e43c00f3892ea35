//! Operational endpoints: liveness, readiness (the database answers) and Prometheus metrics.

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use zy_model::{t, Error};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[utoipa::path(get, path = "/healthz", tag = "system", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, body = Health), (status = "default", body = ErrorBody)))]
pub async fn readyz(State(s): State<AppState>) -> ApiResult<axum::Json<Health>> {
    if s.store.ping().await {
        Ok(axum::Json(Health {
            status: "ready".into(),
        }))
    } else {
        Err(ApiError(Error::unavailable(t!(
            "数据库不可用",
            "the database is unavailable"
        ))))
    }
}

#[utoipa::path(get, path = "/metrics", tag = "system", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    let uptime = s
        .metrics
        .started
        .get()
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0);
    let pool = s.store.pool();
    let extra = [
        (
            "zhengyun_uptime_seconds",
            "Seconds since the server started.",
            uptime,
        ),
        (
            "zhengyun_db_connections",
            "Open database connections.",
            pool.size() as f64,
        ),
        (
            "zhengyun_db_connections_idle",
            "Idle database connections.",
            pool.num_idle() as f64,
        ),
        (
            "zhengyun_password_hashes_in_use",
            "Password hashes running or queued (bounded by the hash gate).",
            s.hashing.in_use() as f64,
        ),
        (
            "zhengyun_login_limiter_keys",
            "Source addresses and account names the login rate limits remember.",
            (s.login_by_address.len() + s.login_by_account.len()) as f64,
        ),
        (
            "zhengyun_refused_attempts_pending",
            "Refused attempts counted but not yet written as an audit summary.",
            s.refusals.pending() as f64,
        ),
    ];
    let mut resp = s.metrics.render(&extra).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The background tasks of every replica that reported in the last ten minutes.
#[utoipa::path(get, path = "/v1/system/tasks", tag = "system",
    responses((status = 200, body = super::List<zy_model::ops::TaskStatus>), (status = "default", body = ErrorBody)))]
pub async fn list_tasks(
    State(s): State<AppState>,
    actor: crate::auth::actor::Actor,
) -> ApiResult<axum::Json<super::List<zy_model::ops::TaskStatus>>> {
    zy_policy::authorize(&actor.principal, zy_policy::Action::AdminCheck).map_err(ApiError)?;
    let since = zy_model::time::Timestamp::now().plus_secs(-600);
    Ok(axum::Json(super::List {
        items: zy_store::tasks::list(&s.store, since).await?,
    }))
}

/// Sagas still running or undoing (newest first, at most 500).
#[utoipa::path(get, path = "/v1/system/sagas", tag = "system",
    responses((status = 200, body = super::List<zy_model::ops::Saga>), (status = "default", body = ErrorBody)))]
pub async fn list_sagas(
    State(s): State<AppState>,
    actor: crate::auth::actor::Actor,
) -> ApiResult<axum::Json<super::List<zy_model::ops::Saga>>> {
    zy_policy::authorize(&actor.principal, zy_policy::Action::AdminCheck).map_err(ApiError)?;
    let rows = zy_store::sagas::active(&s.store, 500).await?;
    Ok(axum::Json(super::List {
        items: rows.iter().map(crate::saga::view).collect(),
    }))
}
