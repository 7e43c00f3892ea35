//! The request pipeline around every handler.
//!
//! `outer` (first in, last out): assigns the request id, reads the client's address and
//! language, catches panics, renders every error into the one JSON body, adds
//! `x-request-id`, records metrics and the access log.
//!
//! `audit_failures` (after routing, so it knows the operation): appends an audit record
//! for every mutating call that failed and did not record itself. Fail-closed: if that
//! record cannot be written the client gets 503, not a silent gap.

use crate::context::RequestContext;
use crate::error::{error_for_status, ErrorBody, ErrorDetail, RenderError};
use crate::state::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Instant;
use zy_model::audit::Outcome;
use zy_model::text::Lang;
use zy_model::{Error, ErrorCode};

/// The matched route template, passed outwards for metrics labels.
#[derive(Clone)]
struct RouteLabel(String);

pub async fn outer(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let lang = Lang::from_accept_language(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let ctx = RequestContext::new(ip, lang);
    req.extensions_mut().insert(ctx.clone());
    let method = req.method().clone();
    let uri_path = req.uri().path().to_string();
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);

    let handled = AssertUnwindSafe(next.run(req)).catch_unwind();
    let mut resp = match tokio::time::timeout(s.config.request_timeout, handled).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => {
            tracing::error!(request_id = %ctx.request_id, "handler panicked");
            crate::error::ApiError(Error::internal("handler panicked")).into_response()
        }
        Err(_) => {
            // The handler is dropped: an open transaction rolls back, nothing half-written.
            if mutating {
                s.refusals.count(
                    &ctx.source_ip,
                    &format!("{method} {uri_path}"),
                    "timeout",
                    None,
                );
            }
            crate::error::ApiError(timed_out(s.config.request_timeout)).into_response()
        }
    };

    if mutating && resp.status() != StatusCode::TOO_MANY_REQUESTS {
        // Whatever this change was (a revocation, a lock, a role), no cached caller may
        // outlive it on this replica.
        s.auth_cache.clear();
    }
    let status = resp.status();
    if let Some(RenderError(err)) = resp.extensions_mut().remove::<RenderError>() {
        resp = render(&ctx, &err, resp);
    } else if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
        let err = error_for_status(status);
        resp = render(&ctx, &err, resp);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id.to_string()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "unmatched".into());
    let took = started.elapsed();
    s.metrics
        .observe(method_label(&method), &route, resp.status().as_u16(), took);
    tracing::info!(
        request_id = %ctx.request_id,
        method = %method,
        path = %uri_path,
        status = resp.status().as_u16(),
        micros = took.as_micros() as u64,
        "request"
    );
    resp
}

fn timed_out(limit: std::time::Duration) -> Error {
    Error::unavailable(zy_model::t!(
        "请求处理超时（{} 秒），请稍后重试" ;
        "the request took longer than {} seconds; please try again shortly",
        limit.as_secs()
    ))
    .with_retry_after(5)
    .with_internal("request timed out")
}

/// Metrics labels are bounded: methods outside the standard set share one label (routes are
/// route templates, or "unmatched").
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn is_json(r: &Response) -> bool {
    r.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn render(ctx: &RequestContext, err: &Error, old: Response) -> Response {
    if err.code == ErrorCode::Internal || err.code == ErrorCode::Unavailable {
        tracing::error!(request_id = %ctx.request_id, code = err.code.as_str(), internal = err.internal.as_deref().unwrap_or(""), "request failed");
    } else if let Some(i) = &err.internal {
        tracing::debug!(request_id = %ctx.request_id, code = err.code.as_str(), internal = %i, "request refused");
    }
    let body = ErrorBody {
        error: ErrorDetail {
            code: err.code,
            message: err.message.get(ctx.lang).to_string(),
            request_id: ctx.request_id.to_string(),
            details: err.details.clone(),
        },
    };
    let status =
        StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (mut parts, _) = old.into_parts();
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = err.retry_after() {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Ok(lang) = HeaderValue::from_str(match ctx.lang {
        Lang::Zh => "zh-CN",
        Lang::En => "en",
    }) {
        parts.headers.insert(header::CONTENT_LANGUAGE, lang);
    }
    let json = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(json))
}

pub async fn audit_failures(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let ctx = req.extensions().get::<RequestContext>().cloned();
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(RouteLabel(route.clone()));
    let mutating = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let failed = resp.status().is_client_error() || resp.status().is_server_error();
    let Some(ctx) = ctx else { return resp };
    if !mutating || !failed || ctx.was_audited() {
        return resp;
    }
    let action = s
        .operations
        .get(&(method.to_string(), route.clone()))
        .cloned()
        .unwrap_or_else(|| format!("{method} {route}"));
    let code = resp
        .extensions()
        .get::<RenderError>()
        .map(|e| e.0.code)
        .unwrap_or(ErrorCode::InvalidRequest);
    if matches!(code, ErrorCode::Unavailable | ErrorCode::RateLimited) {
        // Refused because the server is busy: nothing changed, and writing a record now
        // would wait behind the very writers that made it busy. Summarised instead.
        s.refusals
            .count(&ctx.source_ip, &action, code.as_str(), None);
        return resp;
    }
    let outcome = if code == ErrorCode::Forbidden {
        Outcome::Denied
    } else {
        Outcome::Failure
    };
    let (target_type, target_id) = target_of(&path);
    let entry = ctx.entry(
        None,
        &action,
        &target_type,
        &target_id,
        outcome,
        serde_json::json!({ "code": code.as_str(), "status": resp.status().as_u16() }),
    );
    let written = async {
        let mut tx = s.store.begin_write().await?;
        zy_store::audit::append(&mut tx, entry).await?;
        tx.commit().await.map_err(zy_store::db_error)
    }
    .await;
    if let Err(e) = written {
        return crate::error::ApiError(crate::app::audit_unavailable(e)).into_response();
    }
    resp
}

/// `/v1/departments/<id>/…` → ("department", "<id>").
fn target_of(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches("/v1/").split('/');
    let kind = parts.next().unwrap_or("").trim_end_matches('s').to_string();
    let id = parts
        .next()
        .filter(|p| p.len() <= 64)
        .unwrap_or("")
        .to_string();
    (kind, id)
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use zy_model::ErrorCode;

    #[test]
    fn metric_labels_fold_unknown_methods() {
        assert_eq!(super::method_label(&Method::GET), "GET");
        assert_eq!(super::method_label(&Method::DELETE), "DELETE");
        let odd = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(super::method_label(&odd), "other");
        assert_eq!(super::method_label(&Method::CONNECT), "other");
    }

    #[test]
    fn a_timed_out_request_is_503_with_retry_after() {
        let e = super::timed_out(std::time::Duration::from_secs(30));
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(e.code.http_status(), 503);
        assert_eq!(e.retry_after(), Some(5));
        assert!(e.message.en.contains("30 seconds"));
    }
    #[test]
    fn targets_come_from_the_path() {
        assert_eq!(
            super::target_of("/v1/departments/abc"),
            ("department".into(), "abc".into())
        );
        assert_eq!(
            super::target_of("/v1/projects"),
            ("project".into(), "".into())
        );
    }
}
