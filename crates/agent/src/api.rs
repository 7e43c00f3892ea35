//! The agent's HTTP API (served only over mutual TLS, see [`crate::tls`]). Every call is
//! idempotent, so the control plane's reconciler can repeat any of them after a crash.
//! The routes and bodies are documented with the wire types in `zy_compute::agent`.

use crate::AgentState;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use zy_compute::agent::*;

/// How long a guest gets to power off on the ACPI button before QEMU is ended.
pub const GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// Deleting does not wait for the guest: its disks go anyway.
const DELETE_STOP: Duration = Duration::from_secs(3);

pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn not_found(what: String) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found on this host"),
        )
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
}

impl From<zy_qemu::Error> for ApiError {
    fn from(e: zy_qemu::Error) -> Self {
        let (status, code) = match e.kind() {
            zy_qemu::ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            zy_qemu::ErrorKind::Permanent => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            zy_qemu::ErrorKind::Transient => (StatusCode::SERVICE_UNAVAILABLE, "transient"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::lb::LbError> for ApiError {
    fn from(e: crate::lb::LbError) -> Self {
        match e {
            crate::lb::LbError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            crate::lb::LbError::Transient(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "transient", m)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(AgentError {
                code: self.code.to_string(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// JSON bodies whose errors come back in the agent's error body.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| Body(v))
            .map_err(|e: JsonRejection| {
                ApiError::invalid(format!("malformed request body: {}", e.body_text()))
            })
    }
}

/// A path of one or two UUIDs, with a clear error for anything else.
pub struct Ids<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Ids(v))
            .map_err(|e: PathRejection| ApiError::invalid(format!("bad path: {}", e.body_text())))
    }
}

pub fn router(state: Arc<AgentState>) -> Router {
    Router::new()
        .route("/v1/host", get(host))
        .route("/v1/host/lease", post(lease))
        .route("/v1/network", put(put_network).get(get_network))
        .route(
            "/v1/instances/{id}",
            put(ensure).get(status).delete(delete_instance),
        )
        .route(
            "/v1/instances/{id}/disk",
            put(create_disk).delete(remove_disk),
        )
        .route("/v1/instances/{id}/reboot", post(reboot))
        .route("/v1/instances/{id}/resize", post(resize))
        .route("/v1/instances/{id}/console", get(console))
        .route("/v1/instances/{id}/metrics", get(metrics))
        .route(
            "/v1/instances/{id}/volumes/{vol}",
            put(attach).delete(detach),
        )
        .route(
            "/v1/instances/{id}/incoming",
            post(incoming).delete(remove_everything),
        )
        .route("/v1/instances/{id}/incoming/finish", post(finish_incoming))
        .route("/v1/instances/{id}/migrate", post(migrate))
        .route(
            "/v1/load-balancers/{id}",
            put(ensure_lb).get(lb_status).delete(delete_lb),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such agent API route",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid",
                "method not allowed on this route",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .with_state(state)
}

pub fn vm_spec(id: Uuid, s: &VmSpecWire) -> zy_qemu::VmSpec {
    zy_qemu::VmSpec {
        id,
        hostname: s.hostname.clone(),
        vcpus: s.vcpus,
        memory_mib: s.memory_mib,
        disk_gib: s.disk_gib,
        template: s.template.clone(),
        user_data: (!s.user_data.is_empty()).then(|| s.user_data.clone()),
        forward_port: None,
        restart_on_crash: s.restart_on_crash,
        shared_dir: s.shared_dir.as_ref().map(std::path::PathBuf::from),
        nics: Vec::new(),
    }
}

pub fn report(id: Uuid, st: zy_qemu::VmStatus, crashes: u32) -> VmReport {
    let (state, pid) = match st {
        zy_qemu::VmStatus::Running { pid } => (VmState::Running, Some(pid)),
        zy_qemu::VmStatus::Stopped => (VmState::Stopped, None),
        zy_qemu::VmStatus::Crashed { pid } => (VmState::Crashed, Some(pid)),
        zy_qemu::VmStatus::Missing => (VmState::Missing, None),
    };
    VmReport {
        id,
        state,
        pid,
        crashes,
    }
}

async fn host(State(s): State<Arc<AgentState>>) -> ApiResult<axum::Json<HostReport>> {
    Ok(axum::Json(s.host_report().await?))
}

async fn lease(
    State(s): State<Arc<AgentState>>,
    Body(b): Body<FenceLease>,
) -> ApiResult<axum::Json<HostReport>> {
    s.fence.grant(b).map_err(ApiError::invalid)?;
    Ok(axum::Json(s.host_report().await?))
}

/// Brings the host's data plane to the pushed state, then every VM's NICs to it.
async fn put_network(
    State(s): State<Arc<AgentState>>,
    Body(b): Body<NetworkState>,
) -> ApiResult<axum::Json<NetworkReport>> {
    let report = s.net.apply(b).await.map_err(|e| match e {
        crate::net::NetError::Stale { .. } => {
            ApiError::new(StatusCode::CONFLICT, "stale", e.to_string())
        }
        crate::net::NetError::Invalid(m) => ApiError::invalid(m),
        crate::net::NetError::Command(m) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "transient", m)
        }
    })?;
    s.sync_nics().await?;
    Ok(axum::Json(report))
}

async fn get_network(State(s): State<Arc<AgentState>>) -> ApiResult<axum::Json<NetworkReport>> {
    Ok(axum::Json(s.net.report().await))
}

/// Removes the VM and its root disk — on shared storage too, which only the instance's
/// deletion does (a prepared incoming migration is abandoned with `DELETE …/incoming`,
/// which leaves a shared disk alone).
async fn remove_disk(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
    q: Result<axum::extract::Query<SharedDir>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let q = q.map_err(|e| ApiError::invalid(e.body_text()))?;
    let shared = match s.hv.spec(id).await {
        Ok(spec) => spec.shared_dir,
        Err(_) => None,
    }
    .or(q.0.shared_dir.map(std::path::PathBuf::from));
    s.forget(id);
    s.hv.delete(id).await?;
    if let Some(dir) = shared {
        if !dir.is_absolute() {
            return Err(ApiError::invalid("shared_dir must be an absolute path"));
        }
        s.hv.delete_shared_disk(id, &dir).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedDir {
    shared_dir: Option<String>,
}

async fn create_disk(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
    Body(b): Body<DiskRequest>,
) -> ApiResult<StatusCode> {
    s.hv.create_disk(&s.spec_of(id, &b.spec).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the VM and everything of it: its disk (`DELETE …/disk`) or a prepared
/// incoming migration that is abandoned (`DELETE …/incoming`).
async fn remove_everything(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
) -> ApiResult<StatusCode> {
    s.forget(id);
    s.hv.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn ensure(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
    Body(b): Body<EnsureRequest>,
) -> ApiResult<StatusCode> {
    let spec = s.spec_of(id, &b.spec).await;
    match b.state {
        WantedPower::Running => {
            if s.hv.status(id).await == zy_qemu::VmStatus::Missing {
                return Err(ApiError::not_found(format!("the disk of instance {id}")));
            }
            if spec.shared_dir.is_some() && !s.fence.may_run_shared() {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "fenced",
                    "this host's lease with the control plane ran out: it runs no shared-storage guest until the lease is renewed",
                ));
            }
            s.hv.start(&spec).await?;
        }
        WantedPower::Stopped => {
            if s.hv.status(id).await == zy_qemu::VmStatus::Missing {
                return Err(ApiError::not_found(format!("instance {id}")));
            }
            s.hv.stop(id, GRACEFUL_STOP).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn status(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
) -> ApiResult<axum::Json<VmReport>> {
    let st = s.hv.status(id).await;
    Ok(axum::Json(report(id, st, s.crashes_of(id))))
}

async fn delete_instance(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
) -> ApiResult<StatusCode> {
    if s.hv.status(id).await != zy_qemu::VmStatus::Missing {
        s.hv.stop(id, DELETE_STOP).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn reboot(State(s): State<Arc<AgentState>>, Ids(id): Ids<Uuid>) -> ApiResult<StatusCode> {
    s.hv.reboot(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resize(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
    Body(b): Body<EnsureRequest>,
) -> ApiResult<StatusCode> {
    let current = s.hv.spec(id).await?;
    if matches!(s.hv.status(id).await, zy_qemu::VmStatus::Running { .. }) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "stop the instance before resizing it",
        ));
    }
    if b.spec.disk_gib < current.disk_gib {
        return Err(ApiError::invalid("disks only grow"));
    }
    if b.spec.disk_gib > current.disk_gib {
        s.hv.resize_disk(id, b.spec.disk_gib).await?;
    }
    // vCPU and memory are the spec the next start uses.
    s.hv.update_spec(&s.spec_of(id, &b.spec).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Lines {
    lines: Option<usize>,
}

async fn console(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
    q: Result<axum::extract::Query<Lines>, QueryRejection>,
) -> ApiResult<String> {
    let q = q.map_err(|e| ApiError::invalid(e.body_text()))?;
    let lines = q.lines.unwrap_or(200).clamp(1, 10_000);
    Ok(s.hv.console_log(id, lines).await?)
}

async fn metrics(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
) -> ApiResult<axum::Json<VmMetrics>> {
    let m = s.hv.metrics(id).await?;
    let sum = |f: fn(&zy_qemu::BlockStats) -> u64| m.block.iter().map(f).sum::<u64>();
    Ok(axum::Json(VmMetrics {
        cpu_time_ms: m.cpu_time_ms,
        memory_rss_mib: m.rss_bytes >> 20,
        memory_mib: m.memory_bytes >> 20,
        disk_used_bytes: m.disk_allocated_bytes,
        disk_read_bytes: sum(|b| b.rd_bytes),
        disk_write_bytes: sum(|b| b.wr_bytes),
        disk_read_ops: sum(|b| b.rd_operations),
        disk_write_ops: sum(|b| b.wr_operations),
    }))
}

async fn attach(
    State(s): State<Arc<AgentState>>,
    Ids((id, vol)): Ids<(Uuid, Uuid)>,
    Body(b): Body<VolumeRequest>,
) -> ApiResult<StatusCode> {
    if b.size_gib == 0 || b.size_gib > 65_536 {
        return Err(ApiError::invalid("size_gib must be 1–65536"));
    }
    s.hv.attach_volume(id, vol, b.size_gib).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn detach(
    State(s): State<Arc<AgentState>>,
    Ids((id, vol)): Ids<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    s.hv.detach_volume(id, vol).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn incoming(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
    Body(b): Body<EnsureRequest>,
) -> ApiResult<axum::Json<IncomingEndpoint>> {
    let ep = s.hv.prepare_incoming(&s.spec_of(id, &b.spec).await).await?;
    Ok(axum::Json(IncomingEndpoint {
        host: s.migration_host.clone(),
        migrate_port: ep.migrate_port,
        nbd_port: ep.nbd_port,
    }))
}

async fn finish_incoming(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
) -> ApiResult<StatusCode> {
    s.hv.finish_incoming(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn migrate(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
    Body(b): Body<MigrateRequest>,
) -> ApiResult<axum::Json<MigrationReport>> {
    let r =
        s.hv.migrate_out(
            id,
            zy_qemu::IncomingEndpoint {
                migrate_port: b.migrate_port,
                nbd_port: b.nbd_port,
            },
        )
        .await?;
    s.forget(id);
    Ok(axum::Json(MigrationReport {
        downtime_ms: r.downtime_ms,
        total_ms: r.total_ms,
        bytes: r.ram_bytes + r.disk_bytes,
    }))
}

async fn ensure_lb(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
    Body(b): Body<LbSpecWire>,
) -> ApiResult<axum::Json<LbReport>> {
    Ok(axum::Json(s.lbs.ensure(id, &b).await?))
}

async fn lb_status(
    State(s): State<Arc<AgentState>>,
    Ids(id): Ids<Uuid>,
) -> ApiResult<axum::Json<LbReport>> {
    match s.lbs.status(id).await? {
        Some(r) => Ok(axum::Json(r)),
        None => Err(ApiError::not_found(format!("load balancer {id}"))),
    }
}

async fn delete_lb(State(s): State<Arc<AgentState>>, Ids(id): Ids<Uuid>) -> ApiResult<StatusCode> {
    s.lbs.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
