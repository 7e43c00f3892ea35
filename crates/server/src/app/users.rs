//! User accounts: created by the platform admin (anyone) or a department admin (their own
//! department's staff). New accounts get a one-time password that must be changed at first
//! login, unless the creator sets one, which must also be changed.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::auth::secrets;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::id::{DepartmentId, UserId};
use zy_model::page::{Page, PageRequest};
use zy_model::tenancy::User;
use zy_model::time::Timestamp;
use zy_model::{validate, Error};
use zy_policy::{authorize, Action, UserTarget};
use zy_store::users::{self, ProfileChange, UserRecord};
use zy_store::{departments, Filter};

pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub department_id: Option<DepartmentId>,
    pub password: Option<String>,
}

pub struct UserPatch {
    pub display_name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub department_id: Option<Option<DepartmentId>>,
    pub generation: Option<i64>,
}

pub fn target(r: &UserRecord) -> UserTarget {
    UserTarget {
        id: r.user.id,
        department_id: r.user.department_id,
        admin_role: r.admin_role,
    }
}

pub async fn load(s: &AppState, id: UserId) -> Result<UserRecord, Error> {
    users::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("user", id))
}

fn opt(
    field: &str,
    v: Option<String>,
    check: fn(&str) -> Result<String, Error>,
) -> Result<Option<String>, Error> {
    let _ = field;
    match v {
        Some(x) if !x.trim().is_empty() => check(&x).map(Some),
        _ => Ok(None),
    }
}

/// Creates an account; returns it and the one-time password when the server chose it.
pub async fn create(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    input: NewUser,
) -> Result<(User, Option<String>), Error> {
    authorize(&actor.principal, Action::UserCreate(input.department_id))?;
    let username = validate::username(&input.username)?;
    let display_name = validate::name("display_name", &input.display_name)?;
    let email = opt("email", input.email, validate::email)?;
    let phone = opt("phone", input.phone, validate::phone)?;
    if let Some(d) = input.department_id {
        departments::get(s.store.pool(), d)
            .await?
            .ok_or_else(|| Error::not_found("department", d))?;
    }
    let settings = s.settings().await?;
    let (password, generated) = match input.password {
        Some(p) => {
            settings.check_password(&p, &username)?;
            (p, None)
        }
        None => {
            let p = secrets::one_time_password();
            (p.clone(), Some(p))
        }
    };
    let hash = s.hashing.hash(password).await?;
    let now = Timestamp::now();
    let u = User {
        id: UserId::new(),
        username,
        display_name,
        email,
        phone,
        department_id: input.department_id,
        mfa_enabled: false,
        locked_until: None,
        must_change_password: true,
        password_changed_at: now,
        created_at: now,
        updated_at: now,
        generation: 1,
    };
    let mut tx = s.store.begin_write().await?;
    users::insert(&mut tx, &u, &hash).await?;
    let detail = serde_json::json!({ "username": u.username, "department_id": u.department_id });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_user",
        "user",
        &u.id.to_string(),
        detail,
    )
    .await?;
    Ok((u, generated))
}

pub async fn get(s: &AppState, actor: &Actor, id: UserId) -> Result<User, Error> {
    let r = load(s, id).await?;
    authorize(&actor.principal, Action::UserRead(target(&r)))?;
    Ok(r.user)
}

pub async fn list(
    s: &AppState,
    actor: &Actor,
    page: &PageRequest,
    department: Option<DepartmentId>,
    filter: &Filter,
) -> Result<Page<User>, Error> {
    if let Some(d) = department {
        authorize(&actor.principal, Action::UserList(Some(d)))?;
        return users::list(&s.store, page, Some(&[d]), filter).await;
    }
    if authorize(&actor.principal, Action::UserList(None)).is_ok() {
        return users::list(&s.store, page, None, filter).await;
    }
    // Without a filter, a department admin sees the people of the departments they run.
    let mine: Vec<DepartmentId> = actor
        .principal
        .grants
        .iter()
        .filter_map(|g| match (g.role, g.scope) {
            (zy_model::role::Role::DeptAdmin, zy_model::role::Scope::Department(d)) => Some(d),
            _ => None,
        })
        .collect();
    if mine.is_empty() {
        authorize(&actor.principal, Action::UserList(None))?;
    }
    users::list(&s.store, page, Some(&mine), filter).await
}

pub async fn update(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: UserId,
    p: UserPatch,
) -> Result<User, Error> {
    let r = load(s, id).await?;
    authorize(&actor.principal, Action::UserUpdate(target(&r)))?;
    let new_department = match p.department_id {
        Some(d) if d != r.user.department_id => {
            // Moving someone needs authority over the department they move to.
            authorize(&actor.principal, Action::UserCreate(d))?;
            if actor.principal.user_id == id {
                authorize(&actor.principal, Action::UserList(None))?;
            }
            if let Some(d) = d {
                departments::get(s.store.pool(), d)
                    .await?
                    .ok_or_else(|| Error::not_found("department", d))?;
            }
            d
        }
        _ => r.user.department_id,
    };
    let change = ProfileChange {
        display_name: validate::name(
            "display_name",
            p.display_name.as_deref().unwrap_or(&r.user.display_name),
        )?,
        email: match p.email {
            Some(v) => opt("email", v, validate::email)?,
            None => r.user.email.clone(),
        },
        phone: match p.phone {
            Some(v) => opt("phone", v, validate::phone)?,
            None => r.user.phone.clone(),
        },
        department_id: new_department,
    };
    let mut tx = s.store.begin_write().await?;
    let u = users::update_profile(&mut tx, id, p.generation, &change).await?;
    let detail = serde_json::json!({ "display_name": u.display_name, "department_id": u.department_id, "generation": u.generation });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_user",
        "user",
        &id.to_string(),
        detail,
    )
    .await?;
    Ok(u)
}

pub async fn delete(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: UserId,
) -> Result<(), Error> {
    let r = load(s, id).await?;
    authorize(&actor.principal, Action::UserDelete(target(&r)))?;
    let mut tx = s.store.begin_write().await?;
    users::delete(&mut tx, id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_user",
        "user",
        &id.to_string(),
        serde_json::json!({ "username": r.user.username }),
    )
    .await
}
