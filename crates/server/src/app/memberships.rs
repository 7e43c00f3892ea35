//! Granting and revoking roles. Nobody grants a role or scope they do not hold (see
//! `zy_policy::dominates`), nobody changes their own roles, one account holds at most one
//! of the three separated admin roles (decided in the database), and the last holder of a
//! separated admin role cannot be removed, so the platform is never left without one.

use super::commit_audited;
use crate::app::users::{load, target};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::id::{DepartmentId, MembershipId, ProjectId, ProviderId, UserId};
use zy_model::page::{Page, PageRequest};
use zy_model::role::{Role, Scope};
use zy_model::tenancy::{Membership, ScopeType};
use zy_model::{t, Error};
use zy_policy::{authorize, check_separation, Action};
use zy_store::memberships::{self, MembershipFilter};
use zy_store::{departments, projects};

pub struct NewMembership {
    pub user_id: UserId,
    pub role: Role,
    pub scope_type: ScopeType,
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub provider_id: Option<ProviderId>,
}

/// Turns the request's scope fields into a scope, checking that what it names exists.
async fn resolve_scope(
    s: &AppState,
    st: ScopeType,
    d: Option<DepartmentId>,
    p: Option<ProjectId>,
    pv: Option<ProviderId>,
) -> Result<Scope, Error> {
    if pv.is_some() != (st == ScopeType::Provider) {
        return Err(Error::validation(
            "provider_id",
            t!(
                "只有 provider 范围带 provider_id（云服务商运维按云服务商授权）",
                "provider_id goes with the provider scope only (provider operators are granted per provider)"
            ),
        ));
    }
    match (st, d, p) {
        (ScopeType::Platform, None, None) => Ok(Scope::Platform),
        (ScopeType::Provider, None, None) => {
            let pv = pv.expect("checked above");
            zy_store::inventory::provider_name(s.store.pool(), pv)
                .await?
                .ok_or_else(|| Error::not_found("provider", pv))?;
            Ok(Scope::Provider(pv))
        }
        (ScopeType::Department, Some(d), None) => {
            departments::get(s.store.pool(), d).await?.ok_or_else(|| Error::not_found("department", d))?;
            Ok(Scope::Department(d))
        }
        (ScopeType::Project, _, Some(p)) => {
            let pr = projects::get(s.store.pool(), p).await?.ok_or_else(|| Error::not_found("project", p))?;
            if d.is_some_and(|d| d != pr.department_id) {
                return Err(Error::validation("department_id", t!("项目不属于该部门", "the project does not belong to that department")));
            }
            Ok(Scope::Project(pr.department_id, p))
        }
        _ => Err(Error::validation(
            "scope_type",
            t!(
                "范围不完整：platform 不带编号，department 需 department_id，project 需 project_id，provider 需 provider_id",
                "incomplete scope: platform takes no id, department needs department_id, project needs project_id, provider needs provider_id"
            ),
        )),
    }
}

pub async fn grant(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    input: NewMembership,
) -> Result<Membership, Error> {
    let scope = resolve_scope(
        s,
        input.scope_type,
        input.department_id,
        input.project_id,
        input.provider_id,
    )
    .await?;
    if !scope.fits(input.role) {
        return Err(Error::validation(
            "scope_type",
            match input.role.scope_kind() {
                zy_model::role::ScopeKind::Provider => t!(
                    "云服务商运维须授权到某个云服务商（scope_type=provider 与 provider_id）",
                    "a provider operator is granted on one provider (scope_type=provider with provider_id)"
                ),
                zy_model::role::ScopeKind::Platform => t!(
                    "该角色只能在平台范围授予",
                    "this role is granted at platform scope only"
                ),
                _ => t!(
                    "该角色只能授予到部门或项目",
                    "this role is granted on a department or project"
                ),
            },
        ));
    }
    let user = load(s, input.user_id).await?;
    authorize(
        &actor.principal,
        Action::MembershipGrant(input.role, scope, target(&user)),
    )?;
    let existing = memberships::roles_of(s.store.pool(), input.user_id).await?;
    check_separation(&existing, input.role)?;
    let m = Membership::new(input.user_id, input.role, scope, Some(actor.user.id));
    let mut tx = s.store.begin_write().await?;
    if input.role.is_separated_admin()
        && !zy_store::users::claim_admin_role(&mut tx, input.user_id, input.role).await?
    {
        // Another replica granted a different admin role meanwhile.
        return Err(Error::conflict(t!(
            "三员分立：该账号已持有另一管理员角色",
            "Separation of duties: the account already holds another admin role"
        )));
    }
    memberships::insert(&mut tx, &m, &scope).await?;
    let detail = serde_json::json!({ "user_id": m.user_id, "username": user.user.username, "role": m.role, "scope": scope_text(&scope) });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "grant_membership",
        "membership",
        &m.id.to_string(),
        detail,
    )
    .await?;
    Ok(m)
}

pub async fn revoke(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: MembershipId,
) -> Result<(), Error> {
    let m = memberships::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("membership", id))?;
    let scope =
        memberships::scope_of(&m).ok_or_else(|| Error::internal("membership without scope"))?;
    let user = load(s, m.user_id).await?;
    authorize(
        &actor.principal,
        Action::MembershipRevoke(m.role, scope, target(&user)),
    )?;
    let mut tx = s.store.begin_write().await?;
    if m.role.is_separated_admin() {
        zy_store::serialize_writers(&mut tx).await?;
        let holders = zy_store::memberships::count_role(&mut tx, m.role).await?;
        if holders <= 1 {
            return Err(Error::conflict(t!(
                "不能撤销最后一位{}，请先任命另一位" ;
                "cannot revoke the last {}; appoint another one first",
                m.role.zh_name()
            )));
        }
    }
    memberships::delete(&mut tx, id).await?;
    if m.role.is_separated_admin() {
        zy_store::users::release_admin_role(&mut tx, m.user_id, m.role).await?;
    }
    let detail = serde_json::json!({ "user_id": m.user_id, "username": user.user.username, "role": m.role, "scope": scope_text(&scope) });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "revoke_membership",
        "membership",
        &id.to_string(),
        detail,
    )
    .await
}

pub struct MembershipQuery {
    pub user_id: Option<UserId>,
    pub department_id: Option<DepartmentId>,
    pub project_id: Option<ProjectId>,
    pub provider_id: Option<ProviderId>,
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    page: &PageRequest,
    q: MembershipQuery,
) -> Result<Page<Membership>, Error> {
    if let Some(pv) = q.provider_id {
        if q.user_id.is_some() || q.department_id.is_some() || q.project_id.is_some() {
            return Err(Error::invalid(t!(
                "user_id、department_id、project_id、provider_id 只能选一个",
                "give at most one of user_id, department_id, project_id, provider_id"
            )));
        }
        authorize(
            &actor.principal,
            Action::MembershipList(Scope::Provider(pv)),
        )?;
        return memberships::list(&s.store, page, MembershipFilter::Provider(pv)).await;
    }
    let filter = match (q.user_id, q.department_id, q.project_id) {
        (Some(u), None, None) => {
            if u != actor.user.id {
                let r = load(s, u).await?;
                let allowed = authorize(&actor.principal, Action::MembershipList(Scope::Platform))
                    .is_ok()
                    || r.user.department_id.is_some_and(|d| {
                        authorize(
                            &actor.principal,
                            Action::MembershipList(Scope::Department(d)),
                        )
                        .is_ok()
                    });
                if !allowed {
                    authorize(&actor.principal, Action::MembershipList(Scope::Platform))?;
                }
            }
            MembershipFilter::User(u)
        }
        (None, Some(d), None) => {
            authorize(
                &actor.principal,
                Action::MembershipList(Scope::Department(d)),
            )?;
            MembershipFilter::Department(d)
        }
        (None, _, Some(p)) => {
            let pr = projects::get(s.store.pool(), p)
                .await?
                .ok_or_else(|| Error::not_found("project", p))?;
            authorize(
                &actor.principal,
                Action::MembershipList(Scope::Project(pr.department_id, p)),
            )?;
            MembershipFilter::Project(p)
        }
        (None, None, None) => {
            authorize(&actor.principal, Action::MembershipList(Scope::Platform))?;
            MembershipFilter::All
        }
        _ => {
            return Err(Error::invalid(t!(
                "user_id、department_id、project_id 只能选一个",
                "give at most one of user_id, department_id, project_id"
            )))
        }
    };
    memberships::list(&s.store, page, filter).await
}

fn scope_text(s: &Scope) -> String {
    match s {
        Scope::Platform => "platform".into(),
        Scope::Department(d) => format!("department:{d}"),
        Scope::Project(_, p) => format!("project:{p}"),
        Scope::Provider(p) => format!("provider:{p}"),
    }
}
