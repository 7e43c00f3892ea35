//! Departments (委办局).

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::sql::{finish_page, Filter, Sql};
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::id::DepartmentId;
use zy_model::page::{Page, PageRequest};
use zy_model::tenancy::Department;
use zy_model::time::Timestamp;
use zy_model::{t, Error};

const COLS: &str = "id, name, code, description, requests_only, created_at, updated_at, generation";

impl Decode for Department {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(Department {
            id: id(r, "id")?,
            name: text(r, "name")?,
            code: text(r, "code")?,
            description: text(r, "description")?,
            requests_only: int(r, "requests_only")? != 0,
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
            generation: int(r, "generation")?,
        })
    }
}

pub async fn insert(tx: &mut Tx, d: &Department) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO departments (id, name, code, description, created_at, updated_at, generation) VALUES ($1, $2, $3, $4, $5, $6, 1)",
    )
    .bind(d.id.to_string())
    .bind(&d.name)
    .bind(&d.code)
    .bind(&d.description)
    .bind(d.created_at.0)
    .bind(d.updated_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: DepartmentId,
) -> Result<Option<Department>, Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM departments WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    row.as_ref().map(Department::decode).transpose()
}

/// Lists departments; `only` restricts to those ids (the caller's visible departments).
pub async fn list(
    store: &Store,
    page: &PageRequest,
    only: Option<&[DepartmentId]>,
    filter: &Filter,
) -> Result<Page<Department>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM departments WHERE 1 = 1"));
    if let Some(ids) = only {
        sql.push(" AND ")
            .push_in("id", ids.iter().map(|i| i.to_string()));
    }
    if let Some(q) = &filter.q {
        sql.push(" AND (")
            .push_contains("name", q)
            .push(" OR ")
            .push_contains("code", q)
            .push(")");
    }
    sql.push_page(page, "name", "created_at", "id");
    let items: Vec<Department> = sql.fetch_all(store).await?;
    Ok(finish_page(page, items, |d| {
        (d.name.clone(), d.created_at.0, d.id.to_string())
    }))
}

/// Changes a department if it is still at `expected_generation` (when given).
pub async fn update(
    tx: &mut Tx,
    id: DepartmentId,
    expected_generation: Option<i64>,
    name: &str,
    code: &str,
    description: &str,
) -> Result<Department, Error> {
    let row = sqlx::query(&format!(
        "UPDATE departments SET name = $1, code = $2, description = $3, updated_at = $4, generation = generation + 1 \
         WHERE id = $5 AND ($6 < 0 OR generation = $6) RETURNING {COLS}"
    ))
    .bind(name)
    .bind(code)
    .bind(description)
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(expected_generation.unwrap_or(-1))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    match row {
        Some(r) => Department::decode(&r),
        None => Err(stale_or_missing(tx, "departments", "department", &id.to_string()).await),
    }
}

/// Deletes a department that has no projects, users or role grants left.
pub async fn delete(tx: &mut Tx, id: DepartmentId) -> Result<(), Error> {
    let sid = id.to_string();
    let projects = count(
        tx,
        "SELECT COUNT(*) FROM projects WHERE department_id = $1",
        &sid,
    )
    .await?;
    let users = count(
        tx,
        "SELECT COUNT(*) FROM users WHERE department_id = $1",
        &sid,
    )
    .await?;
    let grants = count(
        tx,
        "SELECT COUNT(*) FROM memberships WHERE department_id = $1",
        &sid,
    )
    .await?;
    if projects + users + grants > 0 {
        return Err(Error::conflict(t!(
            "部门仍有 {} 个项目、{} 个用户、{} 条角色授权，请先删除或移出后再删除部门" ;
            "the department still has {} projects, {} users and {} role grants; remove them first",
            projects, users, grants
        ))
        .with_details(
            serde_json::json!({ "projects": projects, "users": users, "memberships": grants }),
        ));
    }
    let n = sqlx::query("DELETE FROM departments WHERE id = $1")
        .bind(&sid)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("department", id));
    }
    Ok(())
}

pub(crate) async fn count(tx: &mut Tx, sql: &str, arg: &str) -> Result<i64, Error> {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(arg)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)
}

/// After a conditional update changed nothing: was the row gone, or changed by someone else?
pub(crate) async fn stale_or_missing(tx: &mut Tx, table: &str, what: &str, id: &str) -> Error {
    match count(
        tx,
        &format!("SELECT COUNT(*) FROM {table} WHERE id = $1"),
        id,
    )
    .await
    {
        Ok(0) => Error::not_found(what, id),
        Ok(_) => Error::conflict(t!(
            "该对象已被他人修改，请刷新后重试",
            "this object was changed by someone else meanwhile; reload it and try again"
        ))
        .with_details(serde_json::json!({ "reason": "generation_mismatch" })),
        Err(e) => e,
    }
}
