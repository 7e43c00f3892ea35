//! Memberships: a user holding a role at a scope (platform, department, project or provider).

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::{finish_page, Sql};
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::id::{DepartmentId, MembershipId, ProjectId, ProviderId, UserId};
use zy_model::page::{Page, PageRequest};
use zy_model::role::{Grant, Role, Scope};
use zy_model::tenancy::{Membership, ScopeType};
use zy_model::Error;

const COLS: &str =
    "id, user_id, role, scope_type, department_id, project_id, provider_id, created_at, created_by";

impl Decode for Membership {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let role = text(r, "role")?;
        let scope_type = match text(r, "scope_type")?.as_str() {
            "platform" => ScopeType::Platform,
            "department" => ScopeType::Department,
            "project" => ScopeType::Project,
            "provider" => ScopeType::Provider,
            other => return Err(Error::internal(format!("unknown scope_type {other}"))),
        };
        Ok(Membership {
            id: id(r, "id")?,
            user_id: id(r, "user_id")?,
            role: Role::parse(&role)
                .ok_or_else(|| Error::internal(format!("unknown role {role}")))?,
            scope_type,
            department_id: opt_id(r, "department_id")?,
            project_id: opt_id(r, "project_id")?,
            provider_id: opt_id(r, "provider_id")?,
            created_at: ts(r, "created_at")?,
            created_by: opt_id(r, "created_by")?,
        })
    }
}

/// The scope a membership row is held at.
pub fn scope_of(m: &Membership) -> Option<Scope> {
    match (m.scope_type, m.department_id, m.project_id) {
        (ScopeType::Provider, _, _) => m.provider_id.map(Scope::Provider),
        (ScopeType::Platform, _, _) => Some(Scope::Platform),
        (ScopeType::Department, Some(d), _) => Some(Scope::Department(d)),
        (ScopeType::Project, Some(d), Some(p)) => Some(Scope::Project(d, p)),
        _ => None,
    }
}

/// The scope's columns: its type, department, project, provider and the uniqueness key.
type ScopeColumns = (
    &'static str,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn scope_columns(scope: &Scope) -> ScopeColumns {
    match scope {
        Scope::Platform => ("platform", None, None, None, "platform".to_string()),
        Scope::Department(d) => ("department", Some(d.to_string()), None, None, d.to_string()),
        Scope::Project(d, p) => (
            "project",
            Some(d.to_string()),
            Some(p.to_string()),
            None,
            p.to_string(),
        ),
        Scope::Provider(p) => ("provider", None, None, Some(p.to_string()), p.to_string()),
    }
}

pub async fn insert(tx: &mut Tx, m: &Membership, scope: &Scope) -> Result<(), Error> {
    let (scope_type, dept, proj, provider, key) = scope_columns(scope);
    sqlx::query(
        "INSERT INTO memberships (id, user_id, role, scope_type, department_id, project_id, provider_id, scope_key, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(m.id.to_string())
    .bind(m.user_id.to_string())
    .bind(m.role.as_str())
    .bind(scope_type)
    .bind(dept)
    .bind(proj)
    .bind(provider)
    .bind(key)
    .bind(m.created_at.0)
    .bind(m.created_by.map(|u| u.to_string()))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: MembershipId,
) -> Result<Option<Membership>, Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM memberships WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    row.as_ref().map(Membership::decode).transpose()
}

pub async fn delete(tx: &mut Tx, id: MembershipId) -> Result<(), Error> {
    let n = sqlx::query("DELETE FROM memberships WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("membership", id));
    }
    Ok(())
}

/// Every role the user holds where; what authorisation decides on.
pub async fn grants_for_user<'c>(
    e: impl Executor<'c, Database = Any>,
    user: UserId,
) -> Result<Vec<Grant>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM memberships WHERE user_id = $1 ORDER BY created_at"
    ))
    .bind(user.to_string())
    .fetch_all(e)
    .await
    .map_err(db_error)?;
    let mut grants = Vec::with_capacity(rows.len());
    for r in &rows {
        let m = Membership::decode(r)?;
        if let Some(scope) = scope_of(&m) {
            grants.push(Grant {
                role: m.role,
                scope,
            });
        }
    }
    Ok(grants)
}

/// Which memberships to list.
#[derive(Debug, Clone, Copy)]
pub enum MembershipFilter {
    User(UserId),
    Department(DepartmentId),
    Project(ProjectId),
    Provider(ProviderId),
    Platform,
    All,
}

pub async fn list(
    store: &Store,
    page: &PageRequest,
    filter: MembershipFilter,
) -> Result<Page<Membership>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM memberships WHERE 1 = 1"));
    match filter {
        MembershipFilter::User(u) => sql.push(" AND user_id = ").bind_text(u.to_string()),
        MembershipFilter::Department(d) => {
            sql.push(" AND department_id = ").bind_text(d.to_string())
        }
        MembershipFilter::Project(p) => sql.push(" AND project_id = ").bind_text(p.to_string()),
        MembershipFilter::Provider(p) => sql.push(" AND provider_id = ").bind_text(p.to_string()),
        MembershipFilter::Platform => sql.push(" AND scope_type = 'platform'"),
        MembershipFilter::All => &mut sql,
    };
    // Memberships have no name: both sorts follow creation order.
    sql.push_page(page, "created_at", "created_at", "id");
    let items: Vec<Membership> = sql.fetch_all(store).await?;
    Ok(finish_page(page, items, |m| {
        (m.created_at.0.to_string(), m.created_at.0, m.id.to_string())
    }))
}

/// Roles the user holds (any scope), for the separation-of-duties check.
pub async fn roles_of<'c>(
    e: impl Executor<'c, Database = Any>,
    user: UserId,
) -> Result<Vec<Role>, Error> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT role FROM memberships WHERE user_id = $1")
        .bind(user.to_string())
        .fetch_all(e)
        .await
        .map_err(db_error)?;
    Ok(rows.iter().filter_map(|r| Role::parse(r)).collect())
}

/// How many accounts hold `role` (anywhere), counted inside the caller's transaction.
pub async fn count_role(tx: &mut crate::Tx, role: Role) -> Result<i64, Error> {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(DISTINCT user_id) FROM memberships WHERE role = $1")
        .bind(role.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)
}
