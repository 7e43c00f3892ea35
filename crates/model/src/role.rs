//! Roles (DESIGN.md §2) and the scopes they are held at.

use crate::id::{DepartmentId, ProjectId, ProviderId};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 系统管理员: providers, pools, hosts, catalogue, departments, users.
    PlatformAdmin,
    /// 安全管理员: security policy, accounts' locks, security events.
    SecurityAdmin,
    /// 审计管理员: reads and verifies the audit log; nothing else.
    Auditor,
    /// 监管: approvals, dashboards, bills, SLA scores (read across the platform).
    Supervisor,
    /// 财政: reads and exports bills.
    Finance,
    /// 云服务商运维: its own provider's hosts and tickets.
    ProviderOperator,
    /// 部门管理员: its department's users, projects, approvals, bills.
    DeptAdmin,
    /// 部门用户: requests and operates its projects' resources.
    DeptMember,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::PlatformAdmin,
        Role::SecurityAdmin,
        Role::Auditor,
        Role::Supervisor,
        Role::Finance,
        Role::ProviderOperator,
        Role::DeptAdmin,
        Role::DeptMember,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::SecurityAdmin => "security_admin",
            Role::Auditor => "auditor",
            Role::Supervisor => "supervisor",
            Role::Finance => "finance",
            Role::ProviderOperator => "provider_operator",
            Role::DeptAdmin => "dept_admin",
            Role::DeptMember => "dept_member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn zh_name(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "系统管理员",
            Role::SecurityAdmin => "安全管理员",
            Role::Auditor => "审计管理员",
            Role::Supervisor => "监管",
            Role::Finance => "财政",
            Role::ProviderOperator => "云服务商运维",
            Role::DeptAdmin => "部门管理员",
            Role::DeptMember => "部门用户",
        }
    }

    /// The three separated admin roles (三员分立): at most one of them per account.
    pub fn is_separated_admin(self) -> bool {
        matches!(
            self,
            Role::PlatformAdmin | Role::SecurityAdmin | Role::Auditor
        )
    }

    /// Which kind of scope a role is held at.
    pub fn scope_kind(self) -> ScopeKind {
        match self {
            Role::PlatformAdmin
            | Role::SecurityAdmin
            | Role::Auditor
            | Role::Supervisor
            | Role::Finance => ScopeKind::Platform,
            // An operator works for one contracted provider and sees only its cloud.
            Role::ProviderOperator => ScopeKind::Provider,
            Role::DeptAdmin => ScopeKind::Department,
            Role::DeptMember => ScopeKind::DepartmentOrProject,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Platform,
    Provider,
    Department,
    DepartmentOrProject,
}

/// Where a role is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Platform,
    Department(DepartmentId),
    /// A project, with the department it belongs to (so scope checks need no lookup).
    Project(DepartmentId, ProjectId),
    /// One provider cloud: where its operators' grants are held.
    Provider(ProviderId),
}

impl Scope {
    pub fn kind_str(&self) -> &'static str {
        match self {
            Scope::Platform => "platform",
            Scope::Department(_) => "department",
            Scope::Project(..) => "project",
            Scope::Provider(_) => "provider",
        }
    }

    /// True when `self` contains `other` (platform ⊇ department ⊇ project; platform ⊇
    /// provider). A provider scope holds no department's resources.
    pub fn contains(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Platform, _) => true,
            (Scope::Department(d), Scope::Department(o)) => d == o,
            (Scope::Department(d), Scope::Project(o, _)) => d == o,
            (Scope::Project(_, p), Scope::Project(_, o)) => p == o,
            (Scope::Provider(p), Scope::Provider(o)) => p == o,
            _ => false,
        }
    }

    pub fn fits(&self, role: Role) -> bool {
        matches!(
            (role.scope_kind(), self),
            (ScopeKind::Platform, Scope::Platform)
                | (ScopeKind::Provider, Scope::Provider(_))
                | (ScopeKind::Department, Scope::Department(_))
                | (
                    ScopeKind::DepartmentOrProject,
                    Scope::Department(_) | Scope::Project(..)
                )
        )
    }
}

/// A role held at a scope: what a membership row grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn scopes_nest_platform_department_project() {
        let d = DepartmentId::new();
        let p = ProjectId::new();
        assert!(Scope::Platform.contains(&Scope::Project(d, p)));
        assert!(Scope::Department(d).contains(&Scope::Project(d, p)));
        assert!(!Scope::Department(DepartmentId::new()).contains(&Scope::Project(d, p)));
        assert!(!Scope::Project(d, p).contains(&Scope::Department(d)));
    }

    #[test]
    fn provider_operators_are_held_at_one_provider_only() {
        let pv = ProviderId::new();
        assert!(Scope::Provider(pv).fits(Role::ProviderOperator));
        assert!(!Scope::Platform.fits(Role::ProviderOperator));
        assert!(!Scope::Provider(pv).fits(Role::Supervisor));
        assert!(Scope::Platform.contains(&Scope::Provider(pv)));
        assert!(!Scope::Provider(pv).contains(&Scope::Provider(ProviderId::new())));
        assert!(!Scope::Provider(pv).contains(&Scope::Department(DepartmentId::new())));
    }
}
