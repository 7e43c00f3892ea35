//! Projects (业务系统): created and changed by the platform admin or the department's
//! admin, read by members of the project or its department and by oversight roles.

use super::{commit_audited, patched};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::id::{DepartmentId, ProjectId};
use zy_model::page::{Page, PageRequest};
use zy_model::tenancy::Project;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, tenancy_visibility, Action, Visibility};
use zy_store::projects::{self, ProjectScope};
use zy_store::{departments, Filter};

pub struct NewProject {
    pub department_id: DepartmentId,
    pub name: String,
    pub description: Option<String>,
}

pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub generation: Option<i64>,
}

pub async fn create(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    input: NewProject,
) -> Result<Project, Error> {
    authorize(&actor.principal, Action::ProjectCreate(input.department_id))?;
    departments::get(s.store.pool(), input.department_id)
        .await?
        .ok_or_else(|| Error::not_found("department", input.department_id))?;
    let now = Timestamp::now();
    let p = Project {
        id: ProjectId::new(),
        department_id: input.department_id,
        name: validate::name("name", &input.name)?,
        description: validate::description(
            "description",
            input.description.as_deref().unwrap_or(""),
        )?,
        created_at: now,
        updated_at: now,
        generation: 1,
    };
    let mut tx = s.store.begin_write().await?;
    projects::insert(&mut tx, &p).await?;
    let detail = serde_json::json!({ "name": p.name, "department_id": p.department_id });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_project",
        "project",
        &p.id.to_string(),
        detail,
    )
    .await?;
    Ok(p)
}

pub async fn get(s: &AppState, actor: &Actor, id: ProjectId) -> Result<Project, Error> {
    let p = projects::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("project", id))?;
    authorize(&actor.principal, Action::ProjectRead(p.department_id, id))?;
    Ok(p)
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    page: &PageRequest,
    department: Option<DepartmentId>,
    filter: &Filter,
) -> Result<Page<Project>, Error> {
    match tenancy_visibility(&actor.principal) {
        Visibility::All => {
            projects::list(&s.store, page, ProjectScope::All, department, filter).await
        }
        v if v.is_empty() => Err(Error::forbidden(t!(
            "您的角色无权查看项目",
            "Your role may not see projects"
        ))),
        Visibility::Some {
            departments,
            projects: ps,
        } => {
            projects::list(
                &s.store,
                page,
                ProjectScope::Some {
                    departments: &departments,
                    projects: &ps,
                },
                department,
                filter,
            )
            .await
        }
    }
}

pub async fn update(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ProjectId,
    p: ProjectPatch,
) -> Result<Project, Error> {
    let old = projects::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("project", id))?;
    authorize(
        &actor.principal,
        Action::ProjectUpdate(old.department_id, id),
    )?;
    let name = validate::name("name", &patched(p.name, &old.name))?;
    let description =
        validate::description("description", &patched(p.description, &old.description))?;
    let mut tx = s.store.begin_write().await?;
    let np = projects::update(&mut tx, id, p.generation, &name, &description).await?;
    let detail = serde_json::json!({ "name": [old.name, np.name], "generation": np.generation });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_project",
        "project",
        &id.to_string(),
        detail,
    )
    .await?;
    Ok(np)
}

pub async fn delete(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: ProjectId,
) -> Result<(), Error> {
    let old = projects::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("project", id))?;
    authorize(
        &actor.principal,
        Action::ProjectDelete(old.department_id, id),
    )?;
    let mut tx = s.store.begin_write().await?;
    let removed = projects::delete(&mut tx, id).await?;
    let detail = serde_json::json!({
        "name": old.name,
        "department_id": old.department_id,
        "deleted_instances_removed": removed,
    });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_project",
        "project",
        &id.to_string(),
        detail,
    )
    .await
}
