//! User accounts, including what login needs: the password hash, failed-login counter and
//! lock, and the second factor. Counters and locks change by conditional updates, so two
//! replicas counting failures for one account never lose a count.

use crate::db::Tx;
use crate::departments::{count, stale_or_missing};
use crate::error::db_error;
use crate::rows::*;
use crate::sql::{finish_page, Filter, Sql};
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::id::{DepartmentId, UserId};
use zy_model::page::{Page, PageRequest};
use zy_model::role::Role;
use zy_model::tenancy::User;
use zy_model::time::Timestamp;
use zy_model::{t, Error};

const COLS: &str = "id, username, display_name, email, phone, department_id, password_hash, password_changed_at, \
    must_change_password, failed_logins, locked_until, totp_secret, totp_enabled, totp_last_step, admin_role, \
    created_at, updated_at, generation";

/// An account as stored, with its secrets; never sent to a client as is.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: String,
    pub failed_logins: i64,
    pub totp_secret: Option<String>,
    pub totp_last_step: i64,
    pub admin_role: Option<Role>,
}

impl Decode for UserRecord {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        let user = User {
            id: id(r, "id")?,
            username: text(r, "username")?,
            display_name: text(r, "display_name")?,
            email: opt_text(r, "email")?,
            phone: opt_text(r, "phone")?,
            department_id: opt_id(r, "department_id")?,
            mfa_enabled: int(r, "totp_enabled")? != 0,
            locked_until: opt_ts(r, "locked_until")?,
            must_change_password: int(r, "must_change_password")? != 0,
            password_changed_at: ts(r, "password_changed_at")?,
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
            generation: int(r, "generation")?,
        };
        Ok(UserRecord {
            user,
            password_hash: text(r, "password_hash")?,
            failed_logins: int(r, "failed_logins")?,
            totp_secret: opt_text(r, "totp_secret")?,
            totp_last_step: int(r, "totp_last_step")?,
            admin_role: opt_text(r, "admin_role")?.and_then(|s| Role::parse(&s)),
        })
    }
}

pub async fn insert(tx: &mut Tx, u: &User, password_hash: &str) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO users (id, username, display_name, email, phone, department_id, password_hash, password_changed_at, \
         must_change_password, created_at, updated_at, generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)",
    )
    .bind(u.id.to_string())
    .bind(&u.username)
    .bind(&u.display_name)
    .bind(u.email.clone())
    .bind(u.phone.clone())
    .bind(u.department_id.map(|d| d.to_string()))
    .bind(password_hash)
    .bind(u.password_changed_at.0)
    .bind(i64::from(u.must_change_password))
    .bind(u.created_at.0)
    .bind(u.updated_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get<'c>(
    e: impl Executor<'c, Database = Any>,
    id: UserId,
) -> Result<Option<UserRecord>, Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM users WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    row.as_ref().map(UserRecord::decode).transpose()
}

pub async fn get_by_username<'c>(
    e: impl Executor<'c, Database = Any>,
    username: &str,
) -> Result<Option<UserRecord>, Error> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM users WHERE username = $1"))
        .bind(username)
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    row.as_ref().map(UserRecord::decode).transpose()
}

pub async fn list(
    store: &Store,
    page: &PageRequest,
    departments: Option<&[DepartmentId]>,
    filter: &Filter,
) -> Result<Page<User>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLS} FROM users WHERE 1 = 1"));
    if let Some(ds) = departments {
        sql.push(" AND ")
            .push_in("department_id", ds.iter().map(|d| d.to_string()));
    }
    if let Some(q) = &filter.q {
        sql.push(" AND (")
            .push_contains("username", q)
            .push(" OR ")
            .push_contains("display_name", q)
            .push(")");
    }
    sql.push_page(page, "username", "created_at", "id");
    let rows: Vec<UserRecord> = sql.fetch_all(store).await?;
    let items: Vec<_> = rows.into_iter().map(|r| r.user).collect();
    Ok(finish_page(page, items, |u| {
        (u.username.clone(), u.created_at.0, u.id.to_string())
    }))
}

/// Profile fields a user or an admin may change.
#[derive(Debug, Clone)]
pub struct ProfileChange {
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub department_id: Option<DepartmentId>,
}

pub async fn update_profile(
    tx: &mut Tx,
    id: UserId,
    expected_generation: Option<i64>,
    c: &ProfileChange,
) -> Result<User, Error> {
    let row = sqlx::query(&format!(
        "UPDATE users SET display_name = $1, email = $2, phone = $3, department_id = $4, updated_at = $5, generation = generation + 1 \
         WHERE id = $6 AND ($7 < 0 OR generation = $7) RETURNING {COLS}"
    ))
    .bind(&c.display_name)
    .bind(c.email.clone())
    .bind(c.phone.clone())
    .bind(c.department_id.map(|d| d.to_string()))
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(expected_generation.unwrap_or(-1))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    match row {
        Some(r) => Ok(UserRecord::decode(&r)?.user),
        None => Err(stale_or_missing(tx, "users", "user", &id.to_string()).await),
    }
}

/// Deletes an account with its sessions, tokens and recovery codes; refuses while it holds roles.
pub async fn delete(tx: &mut Tx, id: UserId) -> Result<(), Error> {
    let sid = id.to_string();
    let grants = count(
        tx,
        "SELECT COUNT(*) FROM memberships WHERE user_id = $1",
        &sid,
    )
    .await?;
    if grants > 0 {
        return Err(Error::conflict(t!(
            "该用户仍持有 {} 个角色，请先撤销后再删除账号" ;
            "the user still holds {} roles; revoke them before deleting the account",
            grants
        ))
        .with_details(serde_json::json!({ "memberships": grants })));
    }
    for table in ["sessions", "api_tokens", "recovery_codes"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(&sid)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    let n = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&sid)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found("user", id));
    }
    Ok(())
}

/// Counts a failed login atomically; locks the account when the count reaches `threshold`.
/// Returns the count after this failure and the lock end, if now locked.
pub async fn record_failed_login(
    tx: &mut Tx,
    id: UserId,
    threshold: u32,
    lock_until: Timestamp,
) -> Result<(i64, Option<Timestamp>), Error> {
    let row = sqlx::query(
        "UPDATE users SET failed_logins = failed_logins + 1, \
         locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END \
         WHERE id = $3 RETURNING failed_logins, locked_until",
    )
    .bind(threshold as i64)
    .bind(lock_until.0)
    .bind(id.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok((int(&row, "failed_logins")?, opt_ts(&row, "locked_until")?))
}

pub async fn record_successful_login(tx: &mut Tx, id: UserId) -> Result<(), Error> {
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Locks (`Some(until)`) or unlocks (`None`) an account; unlocking also clears the count.
pub async fn set_lock(tx: &mut Tx, id: UserId, until: Option<Timestamp>) -> Result<User, Error> {
    let row = sqlx::query(&format!(
        "UPDATE users SET locked_until = $1, failed_logins = 0, updated_at = $2, generation = generation + 1 WHERE id = $3 RETURNING {COLS}"
    ))
    .bind(until.map(|t| t.0))
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(|r| UserRecord::decode(r).map(|u| u.user))
        .transpose()?
        .ok_or_else(|| Error::not_found("user", id))
}

pub async fn set_password(
    tx: &mut Tx,
    id: UserId,
    hash: &str,
    must_change: bool,
) -> Result<(), Error> {
    let n = sqlx::query(
        "UPDATE users SET password_hash = $1, password_changed_at = $2, must_change_password = $3, updated_at = $2, generation = generation + 1 WHERE id = $4",
    )
    .bind(hash)
    .bind(Timestamp::now().0)
    .bind(i64::from(must_change))
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    if n == 0 {
        return Err(Error::not_found("user", id));
    }
    Ok(())
}

/// Stores a pending (not yet confirmed) or confirmed TOTP secret; `None` removes the factor.
pub async fn set_totp(
    tx: &mut Tx,
    id: UserId,
    secret: Option<&str>,
    enabled: bool,
) -> Result<(), Error> {
    sqlx::query("UPDATE users SET totp_secret = $1, totp_enabled = $2, totp_last_step = 0, updated_at = $3, generation = generation + 1 WHERE id = $4")
        .bind(secret.map(str::to_string))
        .bind(i64::from(enabled))
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Consumes a TOTP time step: succeeds only if no code of this or a later step was used,
/// so one code cannot be replayed, even against another replica.
pub async fn use_totp_step(tx: &mut Tx, id: UserId, step: i64) -> Result<bool, Error> {
    let n =
        sqlx::query("UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1")
            .bind(step)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    Ok(n == 1)
}

/// Records which separated admin role the account holds, refusing a second one. Decided by
/// the database: the update only applies when no other admin role is recorded.
pub async fn claim_admin_role(tx: &mut Tx, id: UserId, role: Role) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE users SET admin_role = $1 WHERE id = $2 AND (admin_role IS NULL OR admin_role = $1)")
        .bind(role.as_str())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Clears the admin role marker once no membership with it remains.
pub async fn release_admin_role(tx: &mut Tx, id: UserId, role: Role) -> Result<(), Error> {
    sqlx::query(
        "UPDATE users SET admin_role = NULL WHERE id = $1 AND admin_role = $2 \
         AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1 AND role = $2)",
    )
    .bind(id.to_string())
    .bind(role.as_str())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn count_all<'c>(e: impl Executor<'c, Database = Any>) -> Result<i64, Error> {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
        .fetch_one(e)
        .await
        .map_err(db_error)
}

/// Replaces an account's recovery codes with new ones (stored hashed).
pub async fn replace_recovery_codes(
    tx: &mut Tx,
    id: UserId,
    hashes: &[String],
) -> Result<(), Error> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    for h in hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(id.to_string())
            .bind(h)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Uses a recovery code once: true if it existed and was unused.
pub async fn use_recovery_code(tx: &mut Tx, id: UserId, hash: &str) -> Result<bool, Error> {
    let n = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .bind(hash)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}
