//! `/v1/usage`, `/v1/price-versions`, `/v1/billing/*`, `/v1/bills/*`, `/v1/provider-bills`,
//! `/v1/budgets/*`, `/v1/reconciliations`: metering, rating and billing (计量计费).

use crate::app::billing::{self as app, *};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use zy_model::billing::*;
use zy_model::id::*;

use super::List;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// `YYYY-MM` (Asia/Shanghai); default: this month.
    pub month: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub provider_id: Option<ProviderId>,
    pub resource_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/usage", tag = "billing", params(UsageParams), responses((status = 200, body = List<BillLine>), (status = "default", body = ErrorBody)))]
pub async fn usage_report(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<UsageParams>,
) -> ApiResult<axum::Json<List<BillLine>>> {
    let items = app::usage(
        &s,
        &actor,
        UsageQuery {
            month: q.month,
            department_id: q.department_id,
            project_id: q.project_id,
            provider_id: q.provider_id,
            resource_id: q.resource_id,
        },
    )
    .await?;
    Ok(axum::Json(List { items }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProviderParam {
    #[param(value_type = Option<String>, format = Uuid)]
    pub provider_id: Option<ProviderId>,
}

#[utoipa::path(get, path = "/v1/price-versions", tag = "billing", params(ProviderParam), responses((status = 200, body = List<PriceVersion>), (status = "default", body = ErrorBody)))]
pub async fn list_price_versions(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ProviderParam>,
) -> ApiResult<axum::Json<List<PriceVersion>>> {
    Ok(axum::Json(List {
        items: app::list_versions(&s, &actor, q.provider_id).await?,
    }))
}

#[utoipa::path(post, path = "/v1/price-versions", tag = "billing", request_body = NewPriceVersion, responses((status = 201, body = PriceVersion), (status = "default", body = ErrorBody)))]
pub async fn create_price_version(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewPriceVersion>,
) -> ApiResult<(StatusCode, axum::Json<PriceVersion>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(app::create_version(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/price-versions/{id}", tag = "billing", params(("id" = PriceVersionId, Path)), responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn withdraw_price_version(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<PriceVersionId>,
) -> ApiResult<StatusCode> {
    app::withdraw_version(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/billing/months", tag = "billing", responses((status = 200, body = List<BillingMonth>), (status = "default", body = ErrorBody)))]
pub async fn list_billing_months(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<List<BillingMonth>>> {
    Ok(axum::Json(List {
        items: app::months(&s, &actor).await?,
    }))
}

#[utoipa::path(post, path = "/v1/billing/months/{month}/close", tag = "billing", params(("month" = String, Path, description = "YYYY-MM")), responses((status = 200, body = BillingMonth), (status = "default", body = ErrorBody)))]
pub async fn close_month(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(month): Path<String>,
) -> ApiResult<axum::Json<BillingMonth>> {
    Ok(axum::Json(
        app::close_month(&s, &ctx, &actor, &month).await?,
    ))
}

#[utoipa::path(post, path = "/v1/billing/clock", tag = "billing", request_body = SetClock, responses((status = 200, body = ClockStatus), (status = "default", body = ErrorBody)))]
pub async fn set_billing_clock(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<SetClock>,
) -> ApiResult<axum::Json<ClockStatus>> {
    Ok(axum::Json(app::set_clock(&s, &ctx, &actor, b).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BillsParams {
    /// `YYYY-MM`; default: this month (for one department: its closed months and the open
    /// months of the last six with usage, the current one always).
    pub month: Option<String>,
    /// One department's bills over the months (its trend); default: every department's.
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
}

#[utoipa::path(get, path = "/v1/bills", tag = "billing", params(BillsParams), responses((status = 200, body = List<BillSummary>), (status = "default", body = ErrorBody)))]
pub async fn list_bills(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<BillsParams>,
) -> ApiResult<axum::Json<List<BillSummary>>> {
    Ok(axum::Json(List {
        items: app::list_bills(&s, &actor, q.month, q.department_id).await?,
    }))
}

#[utoipa::path(get, path = "/v1/bills/{month}/{department_id}", tag = "billing", params(("month" = String, Path, description = "YYYY-MM"), ("department_id" = DepartmentId, Path)), responses((status = 200, body = Bill), (status = "default", body = ErrorBody)))]
pub async fn get_bill(
    State(s): State<AppState>,
    actor: Actor,
    Path((month, d)): Path<(String, DepartmentId)>,
) -> ApiResult<axum::Json<Bill>> {
    Ok(axum::Json(app::bill(&s, &actor, &month, d).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` (default, UTF-8 with BOM), `xlsx` or `pdf` (printable, A4, Chinese text).
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/v1/bills/{month}/{department_id}/export", tag = "billing", params(("month" = String, Path, description = "YYYY-MM"), ("department_id" = DepartmentId, Path), ExportParams),
    responses((status = 200, description = "CSV (UTF-8 with BOM), an XLSX workbook or a PDF", content_type = "text/csv"), (status = "default", body = ErrorBody)))]
pub async fn export_bill(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path((month, d)): Path<(String, DepartmentId)>,
    Query(q): Query<ExportParams>,
) -> ApiResult<Response> {
    let format = q.format.as_deref().unwrap_or("csv");
    if !["csv", "xlsx", "pdf"].contains(&format) {
        return Err(zy_model::Error::validation(
            "format",
            zy_model::t!(
                "format 须为 csv、xlsx 或 pdf",
                "format must be csv, xlsx or pdf"
            ),
        )
        .into());
    }
    let bill = app::bill_for_export(&s, &ctx, &actor, &month, d).await?;
    let (body, ctype, ext): (Vec<u8>, &'static str, &str) = if format == "pdf" {
        (app::bill_pdf(&bill), "application/pdf", "pdf")
    } else if format == "xlsx" {
        (
            app::bill_xlsx(&bill),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        )
    } else {
        (
            app::bill_csv(&bill).into_bytes(),
            "text/csv; charset=utf-8",
            "csv",
        )
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"zhengyun-bill-{month}-{d}.{ext}\""
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[utoipa::path(post, path = "/v1/bills/{month}/{department_id}/adjustments", tag = "billing", params(("month" = String, Path, description = "YYYY-MM"), ("department_id" = DepartmentId, Path)), request_body = NewAdjustment, responses((status = 200, body = Bill), (status = "default", body = ErrorBody)))]
pub async fn adjust_bill(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path((month, d)): Path<(String, DepartmentId)>,
    Json(b): Json<NewAdjustment>,
) -> ApiResult<axum::Json<Bill>> {
    Ok(axum::Json(
        app::adjust(&s, &ctx, &actor, &month, d, b).await?,
    ))
}

#[utoipa::path(post, path = "/v1/bills/{month}/{department_id}/confirm", tag = "billing", params(("month" = String, Path, description = "YYYY-MM"), ("department_id" = DepartmentId, Path)), responses((status = 200, body = Bill), (status = "default", body = ErrorBody)))]
pub async fn confirm_bill(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path((month, d)): Path<(String, DepartmentId)>,
) -> ApiResult<axum::Json<Bill>> {
    Ok(axum::Json(app::confirm(&s, &ctx, &actor, &month, d).await?))
}

#[utoipa::path(post, path = "/v1/bills/{month}/{department_id}/pay", tag = "billing", params(("month" = String, Path, description = "YYYY-MM"), ("department_id" = DepartmentId, Path)), responses((status = 200, body = Bill), (status = "default", body = ErrorBody)))]
pub async fn pay_bill(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path((month, d)): Path<(String, DepartmentId)>,
) -> ApiResult<axum::Json<Bill>> {
    Ok(axum::Json(app::pay(&s, &ctx, &actor, &month, d).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthParam {
    /// `YYYY-MM`; default: this month.
    pub month: Option<String>,
}

#[utoipa::path(get, path = "/v1/provider-bills", tag = "billing", params(MonthParam), responses((status = 200, body = List<ProviderBill>), (status = "default", body = ErrorBody)))]
pub async fn list_provider_bills(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<MonthParam>,
) -> ApiResult<axum::Json<List<ProviderBill>>> {
    Ok(axum::Json(List {
        items: app::provider_bills(&s, &actor, q.month).await?,
    }))
}

#[utoipa::path(get, path = "/v1/budgets/{department_id}", tag = "billing", params(("department_id" = DepartmentId, Path)), responses((status = 200, body = BudgetStatus), (status = "default", body = ErrorBody)))]
pub async fn get_budget(
    State(s): State<AppState>,
    actor: Actor,
    Path(d): Path<DepartmentId>,
) -> ApiResult<axum::Json<BudgetStatus>> {
    Ok(axum::Json(app::budget(&s, &actor, d).await?))
}

#[utoipa::path(put, path = "/v1/budgets/{department_id}", tag = "billing", params(("department_id" = DepartmentId, Path)), request_body = SetBudget, responses((status = 200, body = BudgetStatus), (status = "default", body = ErrorBody)))]
pub async fn set_budget(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(d): Path<DepartmentId>,
    Json(b): Json<SetBudget>,
) -> ApiResult<axum::Json<BudgetStatus>> {
    Ok(axum::Json(app::set_budget(&s, &ctx, &actor, d, b).await?))
}

#[utoipa::path(get, path = "/v1/reconciliations", tag = "billing", params(ProviderParam), responses((status = 200, body = List<Reconciliation>), (status = "default", body = ErrorBody)))]
pub async fn list_reconciliations(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ProviderParam>,
) -> ApiResult<axum::Json<List<Reconciliation>>> {
    Ok(axum::Json(List {
        items: app::reconciliations(&s, &actor, q.provider_id).await?,
    }))
}

#[utoipa::path(post, path = "/v1/reconciliations", tag = "billing", request_body = NewReconciliation, responses((status = 201, body = Reconciliation), (status = "default", body = ErrorBody)))]
pub async fn create_reconciliation(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<NewReconciliation>,
) -> ApiResult<(StatusCode, axum::Json<Reconciliation>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(app::reconcile(&s, &ctx, &actor, b).await?),
    ))
}
