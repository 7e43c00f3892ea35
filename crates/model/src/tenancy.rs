//! Tenancy types as the API shows them: departments (委办局), projects (业务系统), users,
//! memberships (a role held at a scope), API tokens and sessions.

use crate::id::*;
use crate::role::{Role, Scope};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Department {
    pub id: DepartmentId,
    pub name: String,
    /// Short code used in reports and bills, e.g. `WJW`.
    pub code: String,
    pub description: String,
    /// Resources only through requests (资源申请): nothing is created directly, so
    /// nothing bypasses approval and quota.
    pub requests_only: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub generation: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub department_id: DepartmentId,
    pub name: String,
    pub description: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub generation: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The department the person works for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_id: Option<DepartmentId>,
    pub mfa_enabled: bool,
    /// Locked until this time after repeated failed logins or by a security admin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<Timestamp>,
    pub must_change_password: bool,
    pub password_changed_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub generation: i64,
}

/// The kind of scope a membership is held at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeType {
    Platform,
    Department,
    Project,
    Provider,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Membership {
    pub id: MembershipId,
    pub user_id: UserId,
    pub role: Role,
    pub scope_type: ScopeType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_id: Option<DepartmentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// The provider cloud a provider operator's grant is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
    pub created_at: Timestamp,
    pub created_by: Option<UserId>,
}

impl Membership {
    /// A new grant of `role` at `scope`, with the scope's columns filled in.
    pub fn new(user_id: UserId, role: Role, scope: Scope, created_by: Option<UserId>) -> Self {
        let (scope_type, department_id, project_id, provider_id) = match scope {
            Scope::Platform => (ScopeType::Platform, None, None, None),
            Scope::Department(d) => (ScopeType::Department, Some(d), None, None),
            Scope::Project(d, p) => (ScopeType::Project, Some(d), Some(p), None),
            Scope::Provider(pv) => (ScopeType::Provider, None, None, Some(pv)),
        };
        Membership {
            id: MembershipId::new(),
            user_id,
            role,
            scope_type,
            department_id,
            project_id,
            provider_id,
            created_at: Timestamp::now(),
            created_by,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    /// The first characters of the secret, to recognise it; the secret itself is never stored.
    pub prefix: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}
