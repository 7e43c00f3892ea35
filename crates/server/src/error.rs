//! The HTTP side of the one error type. Handlers return [`ApiError`]; its response carries
//! the error in an extension, and the outer middleware (which knows the request id and the
//! client's language) writes the one JSON body:
//! `{ "error": { "code", "message", "request_id", "details" } }`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use zy_model::{Error, ErrorCode};

#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The error travelling from a handler to the renderer.
#[derive(Debug, Clone)]
pub struct RenderError(pub Arc<Error>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = status.into_response();
        resp.extensions_mut().insert(RenderError(Arc::new(self.0)));
        resp
    }
}

/// The error body as documented in OpenAPI.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// A message for people, in zh-CN or en following `Accept-Language`.
    pub message: String,
    pub request_id: String,
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// A generic error for a status produced outside our handlers (e.g. by axum itself).
pub fn error_for_status(status: StatusCode) -> Error {
    use zy_model::t;
    match status.as_u16() {
        404 => Error::new(
            ErrorCode::NotFound,
            t!("请求的地址不存在", "no such endpoint"),
        ),
        405 => Error::new(
            ErrorCode::MethodNotAllowed,
            t!(
                "该地址不支持此请求方法",
                "this endpoint does not support that method"
            ),
        ),
        413 => payload_too_large(),
        415 => Error::new(
            ErrorCode::UnsupportedMediaType,
            t!(
                "请求体须为 JSON（Content-Type: application/json）",
                "the request body must be JSON (Content-Type: application/json)"
            ),
        ),
        s if (400..500).contains(&s) => Error::invalid(t!("请求无效", "invalid request")),
        503 => Error::unavailable(t!(
            "服务暂时不可用，请稍后重试",
            "the service is unavailable; please try again shortly"
        )),
        _ => Error::internal(format!("status {status} without an error body")),
    }
}

pub fn payload_too_large() -> Error {
    use zy_model::t;
    Error::new(
        ErrorCode::PayloadTooLarge,
        t!(
            "请求体超过 1 MiB 上限",
            "the request body exceeds the 1 MiB limit"
        ),
    )
}
