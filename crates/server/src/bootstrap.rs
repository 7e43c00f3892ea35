//! First start: when there are no accounts, create the three separated admins (系统管理员
//! `admin`, 安全管理员 `secadmin`, 审计管理员 `auditor`), each with a one-time password
//! that is returned once (the CLI prints it) and must be changed at first login; their
//! roles require a second factor by default, enrolled right after.
//!
//! Creating all three at once keeps the rule that nobody grants a role they do not hold:
//! each admin can later appoint only more of their own kind.

use crate::auth::{password, secrets};
use zy_model::audit::{AuditEntry, Outcome};
use zy_model::id::UserId;
use zy_model::role::{Role, Scope};
use zy_model::tenancy::{Membership, User};
use zy_model::time::Timestamp;
use zy_model::{Error, ErrorCode};
use zy_store::{memberships, users, Store};

/// One-time passwords of the accounts created at first start.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub accounts: Vec<(String, Role, String)>,
}

const FIRST: [(&str, &str, Role); 3] = [
    ("admin", "系统管理员", Role::PlatformAdmin),
    ("secadmin", "安全管理员", Role::SecurityAdmin),
    ("auditor", "审计管理员", Role::Auditor),
];

pub async fn first_start(store: &Store) -> Result<Option<Credentials>, Error> {
    if users::count_all(store.pool()).await? > 0 {
        return Ok(None);
    }
    let mut prepared = Vec::new();
    for (username, display, role) in FIRST {
        let otp = secrets::one_time_password();
        prepared.push((
            username,
            display,
            role,
            password::hash(otp.clone()).await?,
            otp,
        ));
    }
    let mut tx = store.begin_write().await?;
    // Another replica may have bootstrapped between the count and here.
    if users::count_all(&mut *tx).await? > 0 {
        return Ok(None);
    }
    let now = Timestamp::now();
    let mut accounts = Vec::new();
    for (username, display, role, hash, otp) in prepared {
        let u = User {
            id: UserId::new(),
            username: username.into(),
            display_name: display.into(),
            email: None,
            phone: None,
            department_id: None,
            mfa_enabled: false,
            locked_until: None,
            must_change_password: true,
            password_changed_at: now,
            created_at: now,
            updated_at: now,
            generation: 1,
        };
        match users::insert(&mut tx, &u, &hash).await {
            Err(e) if e.code == ErrorCode::Conflict => return Ok(None),
            other => other?,
        }
        users::claim_admin_role(&mut tx, u.id, role).await?;
        let m = Membership::new(u.id, role, Scope::Platform, None);
        memberships::insert(&mut tx, &m, &Scope::Platform).await?;
        zy_store::audit::append(
            &mut tx,
            AuditEntry {
                at: now,
                actor_id: None,
                actor_name: "system".into(),
                actor_roles: String::new(),
                source_ip: "local".into(),
                action: "bootstrap_admin".into(),
                target_type: "user".into(),
                target_id: u.id.to_string(),
                outcome: Outcome::Success,
                request_id: String::new(),
                detail: serde_json::json!({ "username": username, "role": role }).to_string(),
            },
        )
        .await?;
        accounts.push((username.to_string(), role, otp));
    }
    tx.commit().await.map_err(zy_store::db_error)?;
    Ok(Some(Credentials { accounts }))
}
