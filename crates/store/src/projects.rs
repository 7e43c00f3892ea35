//! Projects (业务系统), each inside one department.

use crate::db::Tx;
use crate::departments::{count, stale_or_missing};
use crate::error::db_error;
use crate::rows::*;
use crate::sql::{finish_page, Filter, Sql};
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::id::{DepartmentId, ProjectId};
use zy_model::page::{Page, PageRequest};
use zy_model::tenancy::Project;
use zy_model::time::Timestamp;
use zy_model::{t, Error};

const COLS: &str = "id, department_id, name, description, created_at, updated_at, generation";

impl Decode for Project {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Project {
            id: id(r, "id")?,
            department_id: id(r, "department_id")?,
            name: text(r, "name")?,
            description: text(r, "description")?,
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
            generation: int(r, "generation")?,
        })
    }
}

pub async fn insert(tx: &mut Tx, p: &Project) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO projects (id, department_id, name, description, created_at, updated_at, generation) VALUES ($1, $2, $3, $4, $5, $6, 1)",
    )
    .bind(p.id.to_string())
    .bind(p.department_id.to_string())
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.created_at.0)
    .bind(p.updated_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: ProjectId,
) -> Result<Option<Project>, Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM projects WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    row.as_ref().map(Project::decode).transpose()
}

/// Which projects a list may return.
#[derive(Debug, Clone)]
pub enum ProjectScope<'a> {
    All,
    /// Projects in these departments, plus these individual projects.
    Some {
        departments: &'a [DepartmentId],
        projects: &'a [ProjectId],
    },
}

pub async fn list(
    store: &Store,
    page: &PageRequest,
    scope: ProjectScope<'_>,
    department: Option<DepartmentId>,
    filter: &Filter,
) -> Result<Page<Project>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM projects WHERE 1 = 1"));
    if let ProjectScope::Some {
        departments,
        projects,
    } = scope
    {
        sql.push_visible("id", Some(departments), Some(projects));
    }
    if let Some(d) = department {
        sql.push(" AND department_id = ").bind_text(d.to_string());
    }
    if let Some(q) = &filter.q {
        sql.push(" AND ").push_contains("name", q);
    }
    sql.push_page(page, "name", "created_at", "id");
    let items: Vec<Project> = sql.fetch_all(store).await?;
    Ok(finish_page(page, items, |p| {
        (p.name.clone(), p.created_at.0, p.id.to_string())
    }))
}

pub async fn update(
    tx: &mut Tx,
    id: ProjectId,
    expected_generation: Option<i64>,
    name: &str,
    description: &str,
) -> Result<Project, Error> {
    let row = sqlx::query(&format!(
        "UPDATE projects SET name = $1, description = $2, updated_at = $3, generation = generation + 1 \
         WHERE id = $4 AND ($5 < 0 OR generation = $5) RETURNING {COLS}"
    ))
    .bind(name)
    .bind(description)
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(expected_generation.unwrap_or(-1))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    match row {
        Some(r) => Project::decode(&r),
        None => Err(stale_or_missing(tx, "projects", "project", &id.to_string()).await),
    }
}

/// Deletes a project that has no role grants left.
/// Deletes a project that holds nothing live any more.
///
/// Refused with a 409 naming what is left (instances not yet deleted, volumes, role grants).
/// Instances that are already deleted do not hold the project: their rows, events and
/// migrations, the project's server groups, its networks (VPCs and subnets, security groups,
/// elastic IPs: no NIC is left once its instances are deleted) and its quota row go with it,
/// in the same transaction. The audit log keeps the history (who created and deleted each of them).
/// Returns how many deleted instances' rows went with the project.
pub async fn delete(tx: &mut Tx, id: ProjectId) -> Result<u64, Error> {
    let sid = id.to_string();
    let instances = count(
        tx,
        "SELECT COUNT(*) FROM instances WHERE project_id = $1 AND state <> 'deleted'",
        &sid,
    )
    .await?;
    let volumes = count(
        tx,
        "SELECT COUNT(*) FROM volumes WHERE project_id = $1",
        &sid,
    )
    .await?;
    let grants = count(
        tx,
        "SELECT COUNT(*) FROM memberships WHERE project_id = $1",
        &sid,
    )
    .await?;
    if instances + volumes + grants > 0 {
        return Err(Error::conflict(t!(
            "项目仍有 {} 台未删除的云主机、{} 块云硬盘、{} 条角色授权，请先删除或撤销后再删除项目" ;
            "the project still has {} instances not deleted, {} volumes and {} role grants; delete or revoke them first",
            instances, volumes, grants
        ))
        .with_details(serde_json::json!({
            "instances": instances,
            "volumes": volumes,
            "memberships": grants,
        })));
    }
    const DELETED: &str = "SELECT id FROM instances WHERE project_id = $1 AND state = 'deleted'";
    let removed = count(
        tx,
        "SELECT COUNT(*) FROM instances WHERE project_id = $1 AND state = 'deleted'",
        &sid,
    )
    .await?;
    for sql in [
        format!("DELETE FROM migrations WHERE instance_id IN ({DELETED})"),
        format!("DELETE FROM instance_events WHERE instance_id IN ({DELETED})"),
        format!("DELETE FROM anti_affinity_slots WHERE instance_id IN ({DELETED})"),
        "DELETE FROM instances WHERE project_id = $1 AND state = 'deleted'".to_string(),
        "DELETE FROM server_groups WHERE project_id = $1".to_string(),
        "DELETE FROM elastic_ips WHERE project_id = $1".to_string(),
        "DELETE FROM security_rules WHERE group_id IN (SELECT id FROM security_groups WHERE project_id = $1)".to_string(),
        "DELETE FROM security_groups WHERE project_id = $1".to_string(),
        "DELETE FROM subnets WHERE vpc_id IN (SELECT id FROM vpcs WHERE project_id = $1)".to_string(),
        "DELETE FROM vpcs WHERE project_id = $1".to_string(),
        "DELETE FROM quotas WHERE scope_type = 'project' AND scope_id = $1".to_string(),
    ] {
        sqlx::query(&sql)
            .bind(&sid)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    let n = sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(&sid)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("project", id));
    }
    Ok(removed as u64)
}

pub async fn count_all<'c>(e: impl Executor<'c, Database = Any>) -> Result<i64, Error> {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM projects")
        .fetch_one(e)
        .await
        .map_err(db_error)
}
