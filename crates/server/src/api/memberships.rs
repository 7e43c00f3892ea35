//! `/v1/memberships`: who holds which role where.

use crate::app::memberships::{self as app, MembershipQuery, NewMembership};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zy_model::id::{DepartmentId, MembershipId, ProjectId, ProviderId, UserId};
use zy_model::page::Page;
use zy_model::role::Role;
use zy_model::tenancy::{Membership, ScopeType};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMemberships {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `created_at` or `-created_at`.
    pub sort: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<UserId>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    /// The grants held on one provider (its operators).
    #[param(value_type = Option<String>, format = Uuid)]
    pub provider_id: Option<ProviderId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantMembership {
    pub user_id: UserId,
    pub role: Role,
    pub scope_type: ScopeType,
    /// Required for `department` scope.
    pub department_id: Option<DepartmentId>,
    /// Required for `project` scope.
    pub project_id: Option<ProjectId>,
    /// Required for `provider` scope: the provider a `provider_operator` works for.
    pub provider_id: Option<ProviderId>,
}

#[utoipa::path(get, path = "/v1/memberships", tag = "memberships", params(ListMemberships),
    responses((status = 200, body = Page<Membership>), (status = "default", body = ErrorBody)))]
pub async fn list_memberships(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListMemberships>,
) -> ApiResult<axum::Json<Page<Membership>>> {
    let sort = q
        .sort
        .as_deref()
        .map(|s| if s.ends_with("name") { "created_at" } else { s });
    let page = zy_model::page::PageRequest::parse(
        q.limit,
        q.cursor.as_deref(),
        sort.or(Some("created_at")),
    )?;
    let query = MembershipQuery {
        user_id: q.user_id,
        department_id: q.department_id,
        project_id: q.project_id,
        provider_id: q.provider_id,
    };
    Ok(axum::Json(app::list(&s, &actor, &page, query).await?))
}

#[utoipa::path(post, path = "/v1/memberships", tag = "memberships", request_body = GrantMembership,
    responses((status = 201, body = Membership), (status = "default", body = ErrorBody)))]
pub async fn grant_membership(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<GrantMembership>,
) -> ApiResult<(StatusCode, axum::Json<Membership>)> {
    let input = NewMembership {
        user_id: b.user_id,
        role: b.role,
        scope_type: b.scope_type,
        department_id: b.department_id,
        project_id: b.project_id,
        provider_id: b.provider_id,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(app::grant(&s, &ctx, &actor, input).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/memberships/{id}", tag = "memberships", params(("id" = MembershipId, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn revoke_membership(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<MembershipId>,
) -> ApiResult<StatusCode> {
    app::revoke(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
