//! `/v1/requests`, `/v1/approval-chains`: resource requests (资源申请), their review
//! (审批), delivery (交付) and acceptance (验收), and how each department's requests are
//! reviewed.

use super::List;
use crate::app::requests::{self as app, ChainInput, Decision, Draft, ListKind, RequestDetail};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zy_model::id::*;
use zy_model::page::{Page, PageRequest};
use zy_model::requests::*;
use zy_model::time::Timestamp;
use zy_model::{t, Error};

/// A request as its requester writes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    pub project_id: ProjectId,
    pub kind: RequestKind,
    pub title: String,
    /// 用途.
    pub purpose: String,
    /// 等保级别 (1–4).
    pub mlps_level: Option<u8>,
    /// 使用期限 (RFC 3339).
    pub lease_end: Option<Timestamp>,
    pub items: Vec<RequestItem>,
    /// A provider and zone the requester prefers (the supervisor may choose others).
    pub provider_id: Option<ProviderId>,
    pub zone_id: Option<ZoneId>,
    /// For an edit: the generation the requester saw.
    pub generation: Option<i64>,
}

impl RequestBody {
    fn draft(self) -> (Draft, Option<i64>) {
        (
            Draft {
                project_id: self.project_id,
                kind: self.kind,
                title: self.title,
                purpose: self.purpose,
                mlps_level: self.mlps_level,
                lease_end: self.lease_end,
                items: self.items,
                provider_id: self.provider_id,
                zone_id: self.zone_id,
            },
            self.generation,
        )
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRequests {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `created_at` (default `-created_at`, newest first), `-created_at`, `name`, `-name`.
    pub sort: Option<String>,
    /// `mine` (default): my requests; `all`: every request I may read; `to_decide`: waiting
    /// for a step I decide (待我审批); `deliveries`: the providers' delivery list.
    pub view: Option<String>,
    pub state: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
}

#[utoipa::path(get, path = "/v1/requests", tag = "requests", params(ListRequests), responses((status = 200, body = Page<ResourceRequest>), (status = "default", body = ErrorBody)))]
pub async fn list_requests(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListRequests>,
) -> ApiResult<axum::Json<Page<ResourceRequest>>> {
    let page = PageRequest::parse(
        q.limit,
        q.cursor.as_deref(),
        Some(q.sort.as_deref().unwrap_or("-created_at")),
    )?;
    let kind = match q.view.as_deref().unwrap_or("mine") {
        "mine" => ListKind::Mine,
        "all" => ListKind::All,
        "to_decide" => ListKind::ToDecide,
        "deliveries" => ListKind::Deliveries,
        _ => {
            return Err(Error::validation(
                "view",
                t!(
                    "view 须为 mine、all、to_decide 或 deliveries",
                    "view is mine, all, to_decide or deliveries"
                ),
            )
            .into())
        }
    };
    let state = q
        .state
        .as_deref()
        .map(|st| {
            RequestState::parse(st).ok_or_else(|| {
                Error::validation("state", t!("未知的申请状态", "unknown request state"))
            })
        })
        .transpose()?;
    Ok(axum::Json(
        app::list(&s, &actor, &page, kind, state, q.department_id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/requests", tag = "requests", request_body = RequestBody, responses((status = 201, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn create_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<RequestBody>,
) -> ApiResult<(StatusCode, axum::Json<ResourceRequest>)> {
    let (d, _) = b.draft();
    Ok((
        StatusCode::CREATED,
        axum::Json(app::create(&s, &ctx, &actor, d).await?),
    ))
}

#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests", params(("id" = ResourceRequestId, Path)), responses((status = 200, body = RequestDetail), (status = "default", body = ErrorBody)))]
pub async fn get_request(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
) -> ApiResult<axum::Json<RequestDetail>> {
    Ok(axum::Json(app::get(&s, &actor, id).await?))
}

#[utoipa::path(put, path = "/v1/requests/{id}", tag = "requests", params(("id" = ResourceRequestId, Path)), request_body = RequestBody, responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn update_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
    Json(b): Json<RequestBody>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    let (d, generation) = b.draft();
    let generation = generation.ok_or_else(|| {
        Error::validation(
            "generation",
            t!(
                "修改申请须带上读取时的 generation",
                "an edit carries the generation it was based on"
            ),
        )
    })?;
    Ok(axum::Json(
        app::update(&s, &ctx, &actor, id, d, generation).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/requests/{id}", tag = "requests", params(("id" = ResourceRequestId, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
) -> ApiResult<StatusCode> {
    app::delete_draft(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The generation (or step) the caller saw, so a request that moved meanwhile is refused
/// rather than acted on blind.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    pub generation: Option<i64>,
}

#[utoipa::path(post, path = "/v1/requests/{id}/submit", tag = "requests", params(("id" = ResourceRequestId, Path)), request_body = SubmitBody, responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn submit_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
    Json(b): Json<SubmitBody>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    let g = b.generation;
    Ok(axum::Json(app::submit(&s, &ctx, &actor, id, g).await?))
}

#[utoipa::path(post, path = "/v1/requests/{id}/withdraw", tag = "requests", params(("id" = ResourceRequestId, Path)), responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn withdraw_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    Ok(axum::Json(app::withdraw(&s, &ctx, &actor, id).await?))
}

#[utoipa::path(post, path = "/v1/requests/{id}/copy", tag = "requests", params(("id" = ResourceRequestId, Path)), responses((status = 201, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn copy_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
) -> ApiResult<(StatusCode, axum::Json<ResourceRequest>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(app::copy(&s, &ctx, &actor, id).await?),
    ))
}

/// A reviewer's approval of the current step.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The step the reviewer looked at (index into `steps`).
    pub step: Option<u32>,
    /// Chosen by the supervisor: where the resources are delivered.
    pub provider_id: Option<ProviderId>,
    pub zone_id: Option<ZoneId>,
    pub comment: Option<String>,
}

#[utoipa::path(post, path = "/v1/requests/{id}/approve", tag = "requests", params(("id" = ResourceRequestId, Path)), request_body = ApproveBody, responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn approve_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
    Json(b): Json<ApproveBody>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    let d = Decision::Approve {
        provider_id: b.provider_id,
        zone_id: b.zone_id,
        comment: b.comment,
    };
    Ok(axum::Json(
        app::decide(&s, &ctx, &actor, id, b.step, d).await?,
    ))
}

/// A decision that needs a reason the requester will read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
    /// The step the reviewer looked at.
    pub step: Option<u32>,
}

#[utoipa::path(post, path = "/v1/requests/{id}/reject", tag = "requests", params(("id" = ResourceRequestId, Path)), request_body = ReasonBody, responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn reject_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
    Json(b): Json<ReasonBody>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    let d = Decision::Reject(Some(b.reason));
    Ok(axum::Json(
        app::decide(&s, &ctx, &actor, id, b.step, d).await?,
    ))
}

#[utoipa::path(post, path = "/v1/requests/{id}/return", tag = "requests", params(("id" = ResourceRequestId, Path)), request_body = ReasonBody, responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn return_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
    Json(b): Json<ReasonBody>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    let d = Decision::Return(Some(b.reason));
    Ok(axum::Json(
        app::decide(&s, &ctx, &actor, id, b.step, d).await?,
    ))
}

#[utoipa::path(post, path = "/v1/requests/{id}/accept", tag = "requests", params(("id" = ResourceRequestId, Path)), responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn accept_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    Ok(axum::Json(app::accept(&s, &ctx, &actor, id, None).await?))
}

/// What is wrong with a delivery, or what the provider did about it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub reason: String,
}

#[utoipa::path(post, path = "/v1/requests/{id}/problem", tag = "requests", params(("id" = ResourceRequestId, Path)), request_body = NoteBody, responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn report_problem(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
    Json(b): Json<NoteBody>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    Ok(axum::Json(
        app::accept(&s, &ctx, &actor, id, Some(b.reason)).await?,
    ))
}

#[utoipa::path(post, path = "/v1/requests/{id}/redeliver", tag = "requests", params(("id" = ResourceRequestId, Path)), request_body = NoteBody, responses((status = 200, body = ResourceRequest), (status = "default", body = ErrorBody)))]
pub async fn redeliver_request(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<ResourceRequestId>,
    Json(b): Json<NoteBody>,
) -> ApiResult<axum::Json<ResourceRequest>> {
    Ok(axum::Json(
        app::redeliver(&s, &ctx, &actor, id, Some(b.reason)).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChainQuery {
    /// The chains that apply to this department's requests (one per kind); without it,
    /// every chain configured.
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
}

#[utoipa::path(get, path = "/v1/approval-chains", tag = "requests", params(ChainQuery), responses((status = 200, body = List<ApprovalChain>), (status = "default", body = ErrorBody)))]
pub async fn list_approval_chains(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ChainQuery>,
) -> ApiResult<axum::Json<List<ApprovalChain>>> {
    Ok(axum::Json(List {
        items: app::chains(&s, &actor, q.department_id).await?,
    }))
}

/// How one department's (or, without a department, every department's default) requests
/// of one kind are reviewed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainBody {
    pub department_id: Option<DepartmentId>,
    pub kind: RequestKind,
    /// One to five steps.
    pub steps: Vec<ChainStep>,
    /// Approve without review at or below this many vCPUs.
    pub auto_max_vcpus: Option<u32>,
    /// …and at or below this many GiB of volumes.
    pub auto_max_volume_gib: Option<u64>,
}

#[utoipa::path(put, path = "/v1/approval-chains", tag = "requests", request_body = ChainBody, responses((status = 200, body = ApprovalChain), (status = "default", body = ErrorBody)))]
pub async fn set_approval_chain(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<ChainBody>,
) -> ApiResult<axum::Json<ApprovalChain>> {
    let c = ChainInput {
        department_id: b.department_id,
        kind: b.kind,
        steps: b.steps,
        auto_max_vcpus: b.auto_max_vcpus,
        auto_max_volume_gib: b.auto_max_volume_gib,
    };
    Ok(axum::Json(app::put_chain(&s, &ctx, &actor, c).await?))
}

#[utoipa::path(delete, path = "/v1/approval-chains/{scope}/{kind}", tag = "requests", params(("scope" = String, Path, description = "`platform` or a department id"), ("kind" = RequestKind, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_approval_chain(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path((scope, kind)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let department = if scope == "platform" {
        None
    } else {
        Some(scope.parse::<DepartmentId>()?)
    };
    let kind = RequestKind::parse(&kind).ok_or_else(|| {
        Error::validation(
            "kind",
            t!(
                "kind 须为 new、change 或 release",
                "kind is new, change or release"
            ),
        )
    })?;
    app::delete_chain(&s, &ctx, &actor, department, kind).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a department takes resources only through requests.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestsOnlyBody {
    pub enabled: bool,
}

#[utoipa::path(put, path = "/v1/departments/{id}/requests-only", tag = "requests", params(("id" = DepartmentId, Path)), request_body = RequestsOnlyBody, responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn set_requests_only(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<DepartmentId>,
    Json(b): Json<RequestsOnlyBody>,
) -> ApiResult<StatusCode> {
    app::set_requests_only(&s, &ctx, &actor, id, b.enabled).await?;
    Ok(StatusCode::NO_CONTENT)
}
