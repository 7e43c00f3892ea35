//! Departments (委办局): created, renamed and deleted by the platform admin, read by those
//! who work in or oversee them.

use super::{commit_audited, patched};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::id::DepartmentId;
use zy_model::page::{Page, PageRequest};
use zy_model::tenancy::Department;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, visible_departments, Action, Visibility};
use zy_store::{departments, Filter};

pub struct NewDepartment {
    pub name: String,
    pub code: String,
    pub description: Option<String>,
}

pub struct DepartmentPatch {
    pub name: Option<String>,
    pub code: Option<String>,
    pub description: Option<String>,
    pub generation: Option<i64>,
}

pub async fn create(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    input: NewDepartment,
) -> Result<Department, Error> {
    authorize(&actor.principal, Action::DepartmentCreate)?;
    let now = Timestamp::now();
    let d = Department {
        id: DepartmentId::new(),
        name: validate::name("name", &input.name)?,
        code: validate::code(&input.code)?,
        description: validate::description(
            "description",
            input.description.as_deref().unwrap_or(""),
        )?,
        requests_only: false,
        created_at: now,
        updated_at: now,
        generation: 1,
    };
    let mut tx = s.store.begin_write().await?;
    departments::insert(&mut tx, &d).await?;
    let detail = serde_json::json!({ "name": d.name, "code": d.code });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_department",
        "department",
        &d.id.to_string(),
        detail,
    )
    .await?;
    Ok(d)
}

pub async fn get(s: &AppState, actor: &Actor, id: DepartmentId) -> Result<Department, Error> {
    let d = departments::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("department", id))?;
    authorize(&actor.principal, Action::DepartmentRead(id))?;
    Ok(d)
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    page: &PageRequest,
    filter: &Filter,
) -> Result<Page<Department>, Error> {
    match visible_departments(&actor.principal) {
        Visibility::All => departments::list(&s.store, page, None, filter).await,
        v if v.is_empty() => Err(Error::forbidden(t!(
            "您的角色无权查看部门",
            "Your role may not see departments"
        ))),
        Visibility::Some {
            departments: ds, ..
        } => departments::list(&s.store, page, Some(&ds), filter).await,
    }
}

pub async fn update(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: DepartmentId,
    p: DepartmentPatch,
) -> Result<Department, Error> {
    authorize(&actor.principal, Action::DepartmentUpdate(id))?;
    let old = departments::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("department", id))?;
    let name = validate::name("name", &patched(p.name, &old.name))?;
    let code = validate::code(&patched(p.code, &old.code))?;
    let description =
        validate::description("description", &patched(p.description, &old.description))?;
    let mut tx = s.store.begin_write().await?;
    let d = departments::update(&mut tx, id, p.generation, &name, &code, &description).await?;
    let detail = serde_json::json!({ "name": [old.name, d.name], "code": [old.code, d.code], "generation": d.generation });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_department",
        "department",
        &id.to_string(),
        detail,
    )
    .await?;
    Ok(d)
}

pub async fn delete(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: DepartmentId,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::DepartmentDelete(id))?;
    let old = departments::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("department", id))?;
    let mut tx = s.store.begin_write().await?;
    departments::delete(&mut tx, id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_department",
        "department",
        &id.to_string(),
        serde_json::json!({ "name": old.name }),
    )
    .await
}
