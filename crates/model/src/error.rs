//! The one error type. Every failure a client can see becomes an [`Error`] with a stable
//! machine code, a message a civil servant can act on (in zh-CN and en), optional details
//! and, separately, an internal message for logs that is never sent to the client.

use crate::text::Text;
use serde::Serialize;

/// Stable error codes; the HTTP status follows from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, unknown fields, wrong types, bad parameters.
    InvalidRequest,
    /// The request is well-formed but a value breaks a rule (length, format, range).
    ValidationFailed,
    /// No valid credentials were presented.
    Unauthenticated,
    /// Wrong user name or password (deliberately not saying which).
    InvalidCredentials,
    /// The account is locked after too many failed logins, or by a security admin.
    AccountLocked,
    /// A second factor is needed to finish logging in.
    MfaRequired,
    /// The session may only change its password or enrol a second factor now.
    PasswordChangeRequired,
    MfaEnrolmentRequired,
    /// The caller is authenticated but not allowed to do this.
    Forbidden,
    /// The CSRF token is missing or wrong for a cookie-authenticated change.
    CsrfFailed,
    NotFound,
    /// Name taken, object still has children, or a concurrent change won.
    Conflict,
    /// A quota would be exceeded.
    QuotaExceeded,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    /// Too many requests of this kind (login rate limits, password hashing busy); the
    /// `Retry-After` header says when to try again.
    RateLimited,
    /// The server cannot do this now (database down or busy, audit log cannot be written,
    /// request took too long); the `Retry-After` header says when to try again.
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest => 400,
            ValidationFailed => 422,
            Unauthenticated | InvalidCredentials | MfaRequired => 401,
            AccountLocked
            | PasswordChangeRequired
            | MfaEnrolmentRequired
            | Forbidden
            | CsrfFailed => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            Conflict | QuotaExceeded => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            RateLimited => 429,
            Unavailable => 503,
            Internal => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            ValidationFailed => "validation_failed",
            Unauthenticated => "unauthenticated",
            InvalidCredentials => "invalid_credentials",
            AccountLocked => "account_locked",
            MfaRequired => "mfa_required",
            PasswordChangeRequired => "password_change_required",
            MfaEnrolmentRequired => "mfa_enrolment_required",
            Forbidden => "forbidden",
            CsrfFailed => "csrf_failed",
            NotFound => "not_found",
            Conflict => "conflict",
            QuotaExceeded => "quota_exceeded",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            MethodNotAllowed => "method_not_allowed",
            RateLimited => "rate_limited",
            Unavailable => "unavailable",
            Internal => "internal",
        }
    }
}

/// A failure with everything needed to answer the client and to log it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {}", message.en)]
pub struct Error {
    pub code: ErrorCode,
    pub message: Text,
    pub details: Option<serde_json::Value>,
    /// For logs only; may name tables, constraints, file paths.
    pub internal: Option<String>,
    /// Seconds after which a retry may succeed, sent as `Retry-After` (429 and 503 always
    /// carry one; see [`Error::retry_after`]).
    pub retry_after_secs: Option<u32>,
}

impl Error {
    pub fn new(code: ErrorCode, message: Text) -> Self {
        Error {
            code,
            message,
            details: None,
            internal: None,
            retry_after_secs: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// The `Retry-After` to send: the error's own, or 1 s for any 429 or 503 without one.
    pub fn retry_after(&self) -> Option<u32> {
        match self.code {
            ErrorCode::RateLimited | ErrorCode::Unavailable => {
                Some(self.retry_after_secs.unwrap_or(1))
            }
            _ => self.retry_after_secs,
        }
    }

    /// Too many attempts; retry after `secs`.
    pub fn rate_limited(message: Text, secs: u32) -> Self {
        Self::new(ErrorCode::RateLimited, message).with_retry_after(secs)
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_internal(mut self, internal: impl Into<String>) -> Self {
        self.internal = Some(internal.into());
        self
    }

    pub fn invalid(message: Text) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// A field breaks a rule; `field` goes to `details.field` so forms can mark it.
    pub fn validation(field: &str, message: Text) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
            .with_details(serde_json::json!({ "field": field }))
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        let (zh, en) = what_names(what);
        Self::new(
            ErrorCode::NotFound,
            Text::new(
                format!("{zh} {id} 不存在或您无权查看"),
                format!("{en} {id} does not exist or you may not see it"),
            ),
        )
        .with_details(serde_json::json!({ "resource": what, "id": id.to_string() }))
    }

    pub fn conflict(message: Text) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn forbidden(message: Text) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorCode::Unauthenticated,
            Text::new(
                "未登录或登录已过期，请重新登录",
                "Not logged in or the session has expired; please log in again",
            ),
        )
    }

    pub fn unavailable(message: Text) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn internal(internal: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::Internal,
            Text::new("服务器内部错误，请联系平台管理员并提供请求编号", "Internal server error; please contact the platform administrator with the request id"),
        )
        .with_internal(internal)
    }
}

/// Chinese and English names of resources, for messages.
pub fn what_names(what: &str) -> (&'static str, &'static str) {
    match what {
        "department" => ("部门", "Department"),
        "project" => ("项目", "Project"),
        "user" => ("用户", "User"),
        "membership" => ("角色授权", "Membership"),
        "token" => ("API 令牌", "API token"),
        "session" => ("会话", "Session"),
        "audit_record" => ("审计记录", "Audit record"),
        "provider" => ("云服务商", "Provider"),
        "zone" => ("可用区", "Zone"),
        "host" => ("宿主机", "Host"),
        "storage_pool" => ("存储池", "Storage pool"),
        "flavor" => ("规格", "Flavor"),
        "image" => ("镜像", "Image"),
        "instance" => ("云主机", "Instance"),
        "volume" => ("云硬盘", "Volume"),
        "server_group" => ("主机组", "Server group"),
        "resource_request" => ("资源申请", "Request"),
        "approval_chain" => ("审批流程", "Approval chain"),
        "notification" => ("通知", "Notification"),
        "webhook" => ("Webhook 订阅", "Webhook"),
        "delivery" => ("投递记录", "Delivery"),
        "price_version" => ("价格版本", "Price version"),
        "bill" => ("账单", "Bill"),
        "budget" => ("预算", "Budget"),
        "reconciliation" => ("对账结果", "Reconciliation"),
        "vpc" => ("虚拟私有网络", "VPC"),
        "subnet" => ("子网", "Subnet"),
        "nic" => ("网卡", "Network interface"),
        "security_group" => ("安全组", "Security group"),
        "external_network" => ("外部网络", "External network"),
        "elastic_ip" => ("弹性IP", "Elastic IP"),
        "load_balancer" => ("负载均衡", "Load balancer"),
        "alert_rule" => ("告警规则", "Alert rule"),
        "alert_silence" => ("告警静默", "Silence"),
        "idle_finding" => ("闲置资源", "Idle resource"),
        "ops_report" => ("运维报告", "Operations report"),
        _ => ("对象", "Object"),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub type DetailsValue = serde_json::Value;

/// A flat `details` object from string pairs.
pub fn details(pairs: &[(&str, &str)]) -> DetailsValue {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_string(),
                serde_json::Value::String((*v).to_string()),
            )
        })
        .collect();
    serde_json::Value::Object(map)
}
