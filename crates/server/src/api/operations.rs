//! Operations (运维): tickets (`/v1/tickets`, deadlines at `/v1/ticket-settings`),
//! inspections (`/v1/inspection-plans`, `/v1/inspection-runs`) and provider SLA scores
//! (`/v1/sla/scores`, weights and credit bands at `/v1/sla/policy`).

use super::List;
use crate::app::tickets::{ListQuery, StepKind};
use crate::app::{inspections, sla, tickets};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use zy_model::operations::*;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TicketParams {
    /// open, accepted, resolved or closed.
    pub state: Option<String>,
    pub provider_id: Option<String>,
    /// Newest tickets, 1–1000 (default 200).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/tickets", tag = "operations", params(TicketParams),
    responses((status = 200, body = List<Ticket>), (status = "default", body = ErrorBody)))]
pub async fn list_tickets(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<TicketParams>,
) -> ApiResult<axum::Json<List<Ticket>>> {
    Ok(axum::Json(List {
        items: tickets::list(
            &s,
            &actor,
            ListQuery {
                state: q.state,
                provider_id: q.provider_id,
                limit: q.limit,
            },
        )
        .await?,
    }))
}

#[utoipa::path(post, path = "/v1/tickets", tag = "operations", request_body = NewTicket,
    responses((status = 201, body = Ticket), (status = "default", body = ErrorBody)))]
pub async fn open_ticket(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewTicket>,
) -> ApiResult<(StatusCode, axum::Json<Ticket>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(tickets::open(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(get, path = "/v1/tickets/{id}", tag = "operations", params(("id" = String, Path)),
    responses((status = 200, body = TicketDetail), (status = "default", body = ErrorBody)))]
pub async fn get_ticket(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TicketDetail>> {
    Ok(axum::Json(tickets::get(&s, &actor, &id).await?))
}

async fn step(
    s: AppState,
    ctx: RequestContext,
    actor: Actor,
    id: String,
    kind: StepKind,
    b: TicketStep,
) -> ApiResult<axum::Json<TicketDetail>> {
    Ok(axum::Json(
        tickets::step(&s, &ctx, &actor, &id, kind, b).await?,
    ))
}

/// The provider's operator accepts the ticket (its response).
#[utoipa::path(post, path = "/v1/tickets/{id}/accept", tag = "operations", params(("id" = String, Path)),
    request_body = TicketStep,
    responses((status = 200, body = TicketDetail), (status = "default", body = ErrorBody)))]
pub async fn accept_ticket(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
    Json(b): Json<TicketStep>,
) -> ApiResult<axum::Json<TicketDetail>> {
    step(s, ctx, actor, id, StepKind::Accept, b).await
}

#[utoipa::path(post, path = "/v1/tickets/{id}/resolve", tag = "operations", params(("id" = String, Path)),
    request_body = TicketStep,
    responses((status = 200, body = TicketDetail), (status = "default", body = ErrorBody)))]
pub async fn resolve_ticket(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
    Json(b): Json<TicketStep>,
) -> ApiResult<axum::Json<TicketDetail>> {
    step(s, ctx, actor, id, StepKind::Resolve, b).await
}

/// The department sends a resolved ticket back (a note is required).
#[utoipa::path(post, path = "/v1/tickets/{id}/reopen", tag = "operations", params(("id" = String, Path)),
    request_body = TicketStep,
    responses((status = 200, body = TicketDetail), (status = "default", body = ErrorBody)))]
pub async fn reopen_ticket(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
    Json(b): Json<TicketStep>,
) -> ApiResult<axum::Json<TicketDetail>> {
    step(s, ctx, actor, id, StepKind::Reopen, b).await
}

#[utoipa::path(post, path = "/v1/tickets/{id}/comments", tag = "operations", params(("id" = String, Path)),
    request_body = TicketStep,
    responses((status = 200, body = TicketDetail), (status = "default", body = ErrorBody)))]
pub async fn comment_ticket(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
    Json(b): Json<TicketStep>,
) -> ApiResult<axum::Json<TicketDetail>> {
    step(s, ctx, actor, id, StepKind::Comment, b).await
}

/// The department confirms the resolution and rates the service (1–5).
#[utoipa::path(post, path = "/v1/tickets/{id}/close", tag = "operations", params(("id" = String, Path)),
    request_body = TicketClose,
    responses((status = 200, body = TicketDetail), (status = "default", body = ErrorBody)))]
pub async fn close_ticket(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
    Json(b): Json<TicketClose>,
) -> ApiResult<axum::Json<TicketDetail>> {
    Ok(axum::Json(tickets::close(&s, &ctx, &actor, &id, b).await?))
}

#[utoipa::path(get, path = "/v1/ticket-settings", tag = "operations",
    responses((status = 200, body = TicketSettings), (status = "default", body = ErrorBody)))]
pub async fn get_ticket_settings(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<TicketSettings>> {
    Ok(axum::Json(tickets::get_settings(&s, &actor).await?))
}

#[utoipa::path(put, path = "/v1/ticket-settings", tag = "operations", request_body = TicketSettings,
    responses((status = 200, body = TicketSettings), (status = "default", body = ErrorBody)))]
pub async fn set_ticket_settings(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<TicketSettings>,
) -> ApiResult<axum::Json<TicketSettings>> {
    Ok(axum::Json(
        tickets::set_settings(&s, &ctx, &actor, b).await?,
    ))
}

// ---------------------------------------------------------------- inspections

#[utoipa::path(get, path = "/v1/inspection-plans", tag = "operations",
    responses((status = 200, body = List<InspectionPlan>), (status = "default", body = ErrorBody)))]
pub async fn list_inspection_plans(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<InspectionPlan>>> {
    Ok(axum::Json(List {
        items: inspections::plans(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/inspection-plans", tag = "operations", request_body = NewInspectionPlan,
    responses((status = 201, body = InspectionPlan), (status = "default", body = ErrorBody)))]
pub async fn create_inspection_plan(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewInspectionPlan>,
) -> ApiResult<(StatusCode, axum::Json<InspectionPlan>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(inspections::create_plan(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/inspection-plans/{id}", tag = "operations", params(("id" = String, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_inspection_plan(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    inspections::delete_plan(&s, &ctx, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs the plan's checks now and records the run (failed checks open tickets).
#[utoipa::path(post, path = "/v1/inspection-plans/{id}/run", tag = "operations", params(("id" = String, Path)),
    responses((status = 201, body = InspectionRun), (status = "default", body = ErrorBody)))]
pub async fn run_inspection_plan(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<InspectionRun>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(inspections::run_now(&s, &ctx, &actor, &id).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Newest runs, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/inspection-runs", tag = "operations", params(RunParams),
    responses((status = 200, body = List<InspectionRun>), (status = "default", body = ErrorBody)))]
pub async fn list_inspection_runs(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<RunParams>,
) -> ApiResult<axum::Json<List<InspectionRun>>> {
    Ok(axum::Json(List {
        items: inspections::runs(&s, &actor, q.limit).await?,
    }))
}

#[utoipa::path(get, path = "/v1/inspection-runs/{id}", tag = "operations", params(("id" = String, Path)),
    responses((status = 200, body = InspectionRun), (status = "default", body = ErrorBody)))]
pub async fn get_inspection_run(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<InspectionRun>> {
    Ok(axum::Json(inspections::run(&s, &actor, &id).await?))
}

// ---------------------------------------------------------------- SLA scores

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScoreParams {
    /// YYYY-MM; all stored months when absent.
    pub month: Option<String>,
}

#[utoipa::path(get, path = "/v1/sla/scores", tag = "operations", params(ScoreParams),
    responses((status = 200, body = List<SlaScore>), (status = "default", body = ErrorBody)))]
pub async fn list_sla_scores(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ScoreParams>,
) -> ApiResult<axum::Json<List<SlaScore>>> {
    Ok(axum::Json(List {
        items: sla::list(&s, &actor, q.month).await?,
    }))
}

/// Computes every provider's score of the month as of now and writes (replaces) the
/// credit line on each provider's bill of that month.
#[utoipa::path(post, path = "/v1/sla/scores/{month}/compute", tag = "operations", params(("month" = String, Path)),
    responses((status = 200, body = List<SlaScore>), (status = "default", body = ErrorBody)))]
pub async fn compute_sla_scores(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(month): Path<String>,
) -> ApiResult<axum::Json<List<SlaScore>>> {
    Ok(axum::Json(List {
        items: sla::compute(&s, &ctx, &actor, &month).await?,
    }))
}

#[utoipa::path(get, path = "/v1/sla/policy", tag = "operations",
    responses((status = 200, body = SlaPolicy), (status = "default", body = ErrorBody)))]
pub async fn get_sla_policy(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<SlaPolicy>> {
    Ok(axum::Json(sla::get_policy(&s, &actor).await?))
}

#[utoipa::path(put, path = "/v1/sla/policy", tag = "operations", request_body = SlaPolicy,
    responses((status = 200, body = SlaPolicy), (status = "default", body = ErrorBody)))]
pub async fn set_sla_policy(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<SlaPolicy>,
) -> ApiResult<axum::Json<SlaPolicy>> {
    Ok(axum::Json(sla::set_policy(&s, &ctx, &actor, b).await?))
}
