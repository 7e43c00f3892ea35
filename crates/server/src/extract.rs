//! Extractors that turn every malformed input into the one error body with a clear 4xx:
//! JSON bodies (content type, size, syntax, types, unknown fields), path ids and query
//! strings. Axum's own rejections never reach a client.

use crate::error::{payload_too_large, ApiError};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use zy_model::{t, Error, ErrorCode};

/// A JSON request body. Request types use `deny_unknown_fields`, so typos are refused.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError(Error::new(
                ErrorCode::UnsupportedMediaType,
                t!(
                    "请求体须为 JSON（Content-Type: application/json）",
                    "the request body must be JSON (Content-Type: application/json)"
                ),
            )));
        }
        let bytes = read_limited(req).await?;
        parse_json(&bytes).map(Json).map_err(ApiError)
    }
}

/// Bodies past this are cut off at once; up to it, an oversized body is read and dropped so
/// the client, still sending, gets the 413 answer instead of a reset connection.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Reads the body up to [`crate::MAX_BODY_BYTES`]; a larger one is a 413.
async fn read_limited(req: Request) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(ApiError(payload_too_large()));
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let (mut total, mut too_big) = (0usize, false);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError(
                Error::invalid(t!("无法读取请求体", "could not read the request body"))
                    .with_internal(e.to_string()),
            )
        })?;
        total += chunk.len();
        if total > DRAIN_LIMIT {
            return Err(ApiError(payload_too_large()));
        }
        if total > crate::MAX_BODY_BYTES {
            too_big = true;
            buf = Vec::new();
        } else if !too_big {
            buf.extend_from_slice(&chunk);
        }
    }
    if too_big {
        return Err(ApiError(payload_too_large()));
    }
    Ok(Bytes::from(buf))
}

/// Parses a JSON body, explaining where and why it is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        let why = e.to_string();
        let (zh, en) = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => (
                "请求体不是有效的 JSON",
                "the request body is not valid JSON",
            ),
            _ => (
                "请求体字段不符合要求",
                "the request body does not match the expected fields",
            ),
        };
        Error::invalid(zy_model::Text::new(
            format!("{zh}：{why}"),
            format!("{en}: {why}"),
        ))
        .with_details(serde_json::json!({ "line": e.line(), "column": e.column() }))
    })
}

/// Path parameters (ids); a malformed id is a 400 naming the parameter.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| {
                ApiError(
                    Error::invalid(t!(
                        "地址中的编号格式不正确：应为 UUID",
                        "an id in the path is malformed: expected a UUID"
                    ))
                    .with_internal(e.body_text()),
                )
            })
    }
}

/// Query-string parameters; wrong types or unknown values are a 400 saying which.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                let why = e.body_text();
                let why = why.trim_start_matches("Failed to deserialize query string: ");
                ApiError(Error::invalid(zy_model::Text::new(
                    format!("查询参数无效：{why}"),
                    format!("invalid query parameters: {why}"),
                )))
            })
    }
}
