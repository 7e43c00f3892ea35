//! The one authorisation decision. Deny by default: [`authorize`] allows an [`Action`] on a
//! target only when a rule below says so for one of the principal's grants. The three
//! separated admins (三员分立) never overlap: the platform admin manages resources and
//! accounts but never the audit log; the security admin manages locks, passwords, second
//! factors and security settings but no resources; the auditor only reads and verifies
//! the audit log.
//!
//! Pure: no IO, no async. The server resolves the target's department or project first,
//! then asks here.

use zy_model::id::{DepartmentId, ProjectId, ProviderId, UserId};
use zy_model::role::{Grant, Role, Scope};
use zy_model::{t, Error, Text};

/// Who is asking: the user and every role they hold where.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: UserId,
    pub grants: Vec<Grant>,
}

/// An account an action is about, with what the policy needs to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserTarget {
    pub id: UserId,
    pub department_id: Option<DepartmentId>,
    /// The separated admin role the account holds, if any.
    pub admin_role: Option<Role>,
}

/// Everything the API can do that needs a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    DepartmentRead(DepartmentId),
    DepartmentCreate,
    DepartmentUpdate(DepartmentId),
    DepartmentDelete(DepartmentId),
    ProjectRead(DepartmentId, ProjectId),
    ProjectCreate(DepartmentId),
    ProjectUpdate(DepartmentId, ProjectId),
    ProjectDelete(DepartmentId, ProjectId),
    /// List users of one department, or of all when `None`.
    UserList(Option<DepartmentId>),
    UserRead(UserTarget),
    /// Create an account whose home department is the given one.
    UserCreate(Option<DepartmentId>),
    UserUpdate(UserTarget),
    UserDelete(UserTarget),
    /// Lock, unlock, reset the password or the second factor of an account.
    UserSecurity(UserTarget),
    /// List memberships held at or under a scope.
    MembershipList(Scope),
    MembershipGrant(Role, Scope, UserTarget),
    MembershipRevoke(Role, Scope, UserTarget),
    /// See and revoke every user's API tokens, not only one's own.
    TokenAdminister,
    SecuritySettingsRead,
    SecuritySettingsUpdate,
    AuditRead,
    /// Providers, zones, hosts, storage pools, flavors and images: change.
    InventoryManage,
    /// Providers' zones, hosts, storage pools, agents and HA records: read (operations and
    /// oversight). `None`: every provider's (the platform admin, the supervisor);
    /// `Some(p)`: one provider's, which its own operators read too.
    InventoryRead(Option<ProviderId>),
    /// Providers, zones, flavors and images: every signed-in role but the auditor chooses
    /// from them.
    CatalogueRead,
    QuotaRead(Scope),
    QuotaSet(Scope),
    InstanceRead(DepartmentId, ProjectId),
    /// Create, start, stop, reboot, resize and delete instances in a project.
    InstanceOperate(DepartmentId, ProjectId),
    /// Set or extend an instance's lease (使用期限) and restore it from the recycle bin
    /// (回收站): the department's admin decides how long its resources live.
    InstanceLease(DepartmentId, ProjectId),
    /// Read and change the lease settings (reminders, grace period, recycle-bin retention).
    LeaseSettingsManage,
    /// Run the invariant check over the whole platform.
    AdminCheck,
    /// List requests (each list then shows only what the caller may read).
    RequestList,
    /// Read a project's resource requests and their timelines; the operators of the
    /// provider a request is delivered by (`Some`) read it too.
    RequestRead(DepartmentId, ProjectId, Option<ProviderId>),
    /// Draft, submit, withdraw and copy requests for a project.
    RequestCreate(DepartmentId, ProjectId),
    /// Decide an approval step held by `Role` at `Scope` (approve, reject, return).
    RequestDecide(Role, Scope),
    /// Accept a delivery, or report a problem with it, for the requesting project.
    RequestAccept(DepartmentId, ProjectId),
    /// Deliver approved requests (the providers' side): `Some(p)` those delivered by
    /// provider `p` (its operators, the platform admin); `None` every provider's, and
    /// requests no provider has taken yet (the platform admin).
    RequestDeliver(Option<ProviderId>),
    /// Read the approval chains that apply to a department (`None`: all of them).
    ApprovalChainRead(Option<DepartmentId>),
    /// Set or remove approval chains and which departments take resources only through
    /// requests.
    ApprovalChainSet,
    /// The platform's mail (SMTP) settings and the e-mail delivery log.
    NotifyMailManage,
    /// Webhook subscriptions (and their delivery logs) of a department, or platform-wide
    /// ones when `None`.
    WebhookManage(Option<DepartmentId>),
    /// Read one department's usage, bills and budget (draft and closed).
    BillRead(DepartmentId),
    /// Read every department's bills and the platform's months.
    BillReadAll,
    /// Confirm a department's closed bill (the department agrees with it).
    BillConfirm(DepartmentId),
    /// Close months, adjust and mark bills paid, set budgets, import providers' invoices
    /// for reconciliation, move the test clock (where enabled): finance.
    BillingManage,
    /// Read what the city owes providers and the reconciliations with their invoices:
    /// `None` every provider's, `Some(p)` one provider's (its operators read their own).
    ProviderBillRead(Option<ProviderId>),
    /// Add and withdraw price-list versions.
    PriceListManage,
    /// Read a project's networks (VPCs, subnets, NICs, security groups, elastic IPs), or a
    /// department's shared VPCs when the project is `None`. The security admin reads every
    /// one (platform-wide oversight of security policy).
    NetworkRead(DepartmentId, Option<ProjectId>),
    /// Create, change and delete a project's networks and security groups, or a
    /// department's shared VPCs when the project is `None` (its department admin).
    NetworkOperate(DepartmentId, Option<ProjectId>),
    /// Read measured figures (metrics history): `None` for the whole infrastructure (every
    /// host, zone and provider), `Some(Scope::Provider(p))` for one provider's hosts and
    /// zones, `Some(scope)` for a department, a project or an instance of it.
    MetricsRead(Option<Scope>),
    /// See alert rules, alerts and silences (each caller only those of its departments,
    /// unless it reads the infrastructure).
    AlertRead,
    /// Set alert rules and silences: `None` for the whole infrastructure,
    /// `Some(Scope::Provider(p))` for one provider's hosts, `Some(scope)` for a
    /// department's resources.
    AlertManage(Option<Scope>),
    /// Read the platform's security policy: the address plan (地址规划), event retention,
    /// repair deadlines, alert rules and the syslog intake's counters.
    SecurityPolicyRead,
    /// Change that policy, import scanner results, accept a finding's risk or reopen it:
    /// the security admin.
    SecurityPolicyManage,
    /// Read every department's security events and vulnerability findings.
    SecurityEventReadAll,
    /// Read one department's security events and findings.
    SecurityEventRead(DepartmentId),
    /// Work a department's findings: mark them being fixed or fixed.
    VulnerabilityWork(DepartmentId),
    /// List tickets (工单); each list then shows only what the caller may read.
    TicketRead,
    /// Read (and comment on) one ticket: of a department (`Some(d)`) or about the
    /// infrastructure (`None`), assigned to a provider (`Some(p)`) or not yet (`None`).
    TicketView(Option<DepartmentId>, Option<ProviderId>),
    /// Open a ticket for a department (its people), or about the infrastructure when
    /// `None` (the platform admin).
    TicketOpen(Option<DepartmentId>),
    /// Accept and resolve a ticket assigned to provider `p`: its operators (and the
    /// platform admin, who alone works tickets no provider is assigned to).
    TicketWork(Option<ProviderId>),
    /// Confirm and rate, or reopen, a department's resolved ticket (`None`: an
    /// infrastructure ticket, the platform admin).
    TicketConfirm(Option<DepartmentId>),
    /// Set the response and resolution deadlines of each priority.
    TicketSettingsManage,
    /// See inspection (巡检) plans, runs and results.
    InspectionRead,
    /// Add, remove and run inspection plans: the platform admin's (`false`), or the
    /// auditor's audit-chain plans (`true`).
    InspectionManage(bool),
    /// Read providers' monthly SLA scores (服务质量考核): `None` every provider's,
    /// `Some(p)` one provider's (its operators read their own).
    SlaRead(Option<ProviderId>),
    /// Compute SLA scores (which writes the credit onto the provider's bill) and set the
    /// weights and credit bands: the supervisor.
    SlaManage,
    /// Read supervision indicators, the dashboard (监管大屏) and idle resources: `None`
    /// for every provider and department, `Some(d)` for one department's.
    SupervisionRead(Option<DepartmentId>),
    /// Recompute the indicators now and generate operations reports (运维报告).
    SupervisionManage,
    /// Read the monthly operations reports: `None` the platform's and every provider's,
    /// `Some(p)` provider `p`'s (its operators read their own).
    ProviderReportRead(Option<ProviderId>),
    /// Turn a department's idle resource into a release or change request, or dismiss it.
    IdleReclaim(DepartmentId),
    /// Set the idle thresholds.
    IdleSettingsManage,
}

/// Which departments and projects a principal may list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    All,
    Some {
        departments: Vec<DepartmentId>,
        projects: Vec<ProjectId>,
    },
}

/// Which provider clouds a principal may list for an action: all of them, or the ones it
/// operates for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderVisibility {
    All,
    Some(Vec<ProviderId>),
}

impl ProviderVisibility {
    pub fn includes(&self, p: ProviderId) -> bool {
        match self {
            ProviderVisibility::All => true,
            ProviderVisibility::Some(v) => v.contains(&p),
        }
    }
    /// `includes` for a provider id kept as text (an unreadable id: only with `All`).
    pub fn includes_str(&self, p: &str) -> bool {
        match self {
            ProviderVisibility::All => true,
            ProviderVisibility::Some(v) => p.parse().is_ok_and(|p| v.contains(&p)),
        }
    }
    /// True when it lets the principal see at least one provider.
    pub fn is_any(&self) -> bool {
        match self {
            ProviderVisibility::All => true,
            ProviderVisibility::Some(v) => !v.is_empty(),
        }
    }
    /// The providers to filter a list by: `None` for all.
    pub fn filter(&self) -> Option<&[ProviderId]> {
        match self {
            ProviderVisibility::All => None,
            ProviderVisibility::Some(v) => Some(v),
        }
    }
}

impl Visibility {
    pub fn is_empty(&self) -> bool {
        matches!(self, Visibility::Some { departments, projects } if departments.is_empty() && projects.is_empty())
    }
}

impl Principal {
    fn holds(&self, role: Role, at: &Scope) -> bool {
        self.grants
            .iter()
            .any(|g| g.role == role && g.scope.contains(at))
    }
    /// Holds provider operator for provider `pv` (or `None`: no provider, so nobody).
    fn operates(&self, pv: Option<ProviderId>) -> bool {
        pv.is_some_and(|pv| self.holds(Role::ProviderOperator, &Scope::Provider(pv)))
    }
    fn holds_anywhere(&self, role: Role) -> bool {
        self.grants.iter().any(|g| g.role == role)
    }
    /// Roles that see every department and project read-only.
    fn reads_all_tenancy(&self) -> bool {
        [Role::PlatformAdmin, Role::Supervisor, Role::Finance]
            .into_iter()
            .any(|r| self.holds_anywhere(r))
    }
    pub fn is_self(&self, u: &UserTarget) -> bool {
        self.user_id == u.id
    }
}

fn deny(reason: Text) -> Result<(), Error> {
    Err(Error::forbidden(reason))
}

fn no_role() -> Text {
    t!(
        "您的角色无权执行此操作",
        "Your role does not allow this operation"
    )
}

/// Whether holding `granter` lets one grant `granted` (at a scope the granter holds).
/// Only administering roles grant at all; the separated admins appoint only their own
/// kind, and nobody else appoints them.
pub fn dominates(granter: Role, granted: Role) -> bool {
    use Role::*;
    match granter {
        PlatformAdmin => matches!(
            granted,
            PlatformAdmin | Supervisor | Finance | ProviderOperator | DeptAdmin | DeptMember
        ),
        SecurityAdmin => granted == SecurityAdmin,
        Auditor => granted == Auditor,
        DeptAdmin => matches!(granted, DeptAdmin | DeptMember),
        Supervisor | Finance | ProviderOperator | DeptMember => false,
    }
}

/// The decision. `Ok(())` allows; `Err` is a 403 with a reason a person can act on.
pub fn authorize(p: &Principal, action: Action) -> Result<(), Error> {
    use Action::*;
    let platform = Scope::Platform;
    let allowed = match action {
        DepartmentRead(d) => {
            p.reads_all_tenancy()
                || p.holds(Role::DeptAdmin, &Scope::Department(d))
                || member_of_department(p, d)
        }
        DepartmentCreate | DepartmentUpdate(_) | DepartmentDelete(_) => {
            p.holds(Role::PlatformAdmin, &platform)
        }
        ProjectRead(d, pr) => {
            p.reads_all_tenancy()
                || p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
                || p.holds(Role::DeptMember, &Scope::Project(d, pr))
        }
        ProjectCreate(d) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Department(d))
        }
        ProjectUpdate(d, pr) | ProjectDelete(d, pr) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
        }
        UserList(None) => {
            p.holds(Role::PlatformAdmin, &platform) || p.holds(Role::SecurityAdmin, &platform)
        }
        UserList(Some(d)) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::SecurityAdmin, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Department(d))
        }
        UserRead(u) => {
            p.is_self(&u)
                || p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::SecurityAdmin, &platform)
                || manages_account(p, &u)
        }
        UserCreate(d) => {
            p.holds(Role::PlatformAdmin, &platform)
                || d.is_some_and(|d| p.holds(Role::DeptAdmin, &Scope::Department(d)))
        }
        UserUpdate(u) => {
            if u.admin_role.is_some_and(|r| r != Role::PlatformAdmin) {
                // Only the same kind of admin may edit a security admin's or auditor's account.
                p.is_self(&u) || u.admin_role.is_some_and(|r| p.holds(r, &platform))
            } else {
                p.is_self(&u) || p.holds(Role::PlatformAdmin, &platform) || manages_account(p, &u)
            }
        }
        UserDelete(u) => {
            if p.is_self(&u) {
                return deny(t!(
                    "不能删除自己的账号",
                    "You cannot delete your own account"
                ));
            }
            match u.admin_role {
                Some(r) => p.holds(r, &platform),
                None => p.holds(Role::PlatformAdmin, &platform) || manages_account(p, &u),
            }
        }
        UserSecurity(u) => {
            if p.is_self(&u) {
                return deny(t!("不能对自己的账号执行安全管理操作，请联系另一位安全管理员", "You cannot do security administration on your own account; ask another security admin"));
            }
            p.holds(Role::SecurityAdmin, &platform)
        }
        MembershipList(scope) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::SecurityAdmin, &platform)
                || (scope != Scope::Platform && p.holds(Role::DeptAdmin, &scope))
        }
        MembershipGrant(role, scope, u) | MembershipRevoke(role, scope, u) => {
            if p.is_self(&u) {
                return deny(t!(
                    "不能修改自己的角色，请由其他管理员操作",
                    "You cannot change your own roles; ask another administrator"
                ));
            }
            if !scope.fits(role) {
                return Err(Error::validation(
                    "scope_type",
                    t!("角色 {} 不能授予在该范围" ; "role {} cannot be held at that scope", role.as_str()),
                ));
            }
            let ok = p
                .grants
                .iter()
                .any(|g| dominates(g.role, role) && g.scope.contains(&scope));
            if !ok {
                return deny(t!(
                    "您不能授予或撤销自己未持有的角色或范围（{}）" ;
                    "You cannot grant or revoke a role or scope you do not hold yourself ({})",
                    role.as_str()
                ));
            }
            true
        }
        TokenAdminister | SecuritySettingsRead | SecuritySettingsUpdate => {
            p.holds(Role::SecurityAdmin, &platform)
        }
        AuditRead => p.holds(Role::Auditor, &platform),
        InventoryManage | AdminCheck | NotifyMailManage | LeaseSettingsManage => {
            p.holds(Role::PlatformAdmin, &platform)
        }
        WebhookManage(d) => {
            p.holds(Role::PlatformAdmin, &platform)
                || d.is_some_and(|d| p.holds(Role::DeptAdmin, &Scope::Department(d)))
        }
        InventoryRead(pv) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::Supervisor, &platform)
                || p.operates(pv)
        }
        // Every role that works with resources chooses from the catalogue; the auditor
        // reads the audit log and nothing else (三员分立).
        CatalogueRead => p.grants.iter().any(|g| g.role != Role::Auditor),
        QuotaRead(scope) => {
            p.reads_all_tenancy()
                || p.holds(Role::DeptAdmin, &scope)
                || p.holds(Role::DeptMember, &scope)
                || matches!(scope, Scope::Department(d) if member_of_department(p, d))
        }
        QuotaSet(scope) => match scope {
            Scope::Platform | Scope::Provider(_) => false,
            Scope::Department(_) => p.holds(Role::PlatformAdmin, &platform),
            Scope::Project(..) => {
                p.holds(Role::PlatformAdmin, &platform) || p.holds(Role::DeptAdmin, &scope)
            }
        },
        InstanceRead(d, pr) => {
            p.reads_all_tenancy()
                || p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
                || p.holds(Role::DeptMember, &Scope::Project(d, pr))
        }
        RequestList => p
            .grants
            .iter()
            .any(|g| !matches!(g.role, Role::SecurityAdmin | Role::Auditor)),
        RequestRead(d, pr, pv) => {
            p.reads_all_tenancy()
                || p.operates(pv)
                || p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
                || p.holds(Role::DeptMember, &Scope::Project(d, pr))
        }
        RequestCreate(d, pr) | RequestAccept(d, pr) => {
            p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
                || p.holds(Role::DeptMember, &Scope::Project(d, pr))
        }
        RequestDecide(role, scope) => {
            matches!(role, Role::DeptAdmin | Role::Supervisor | Role::Finance)
                && scope.fits(role)
                && p.holds(role, &scope)
        }
        RequestDeliver(pv) => p.holds(Role::PlatformAdmin, &platform) || p.operates(pv),
        ApprovalChainRead(None) => {
            p.holds(Role::PlatformAdmin, &platform) || p.holds(Role::Supervisor, &platform)
        }
        ApprovalChainRead(Some(d)) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::Supervisor, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Department(d))
        }
        ApprovalChainSet => p.holds(Role::PlatformAdmin, &platform),
        InstanceOperate(d, pr) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
                || p.holds(Role::DeptMember, &Scope::Project(d, pr))
        }
        InstanceLease(d, pr) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
        }
        BillRead(d) => {
            p.holds(Role::Finance, &platform)
                || p.holds(Role::Supervisor, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Department(d))
        }
        BillReadAll => p.holds(Role::Finance, &platform) || p.holds(Role::Supervisor, &platform),
        BillConfirm(d) => p.holds(Role::DeptAdmin, &Scope::Department(d)),
        BillingManage => p.holds(Role::Finance, &platform),
        ProviderBillRead(pv) => {
            p.holds(Role::Finance, &platform)
                || p.holds(Role::Supervisor, &platform)
                || p.operates(pv)
        }
        PriceListManage => {
            p.holds(Role::Finance, &platform) || p.holds(Role::PlatformAdmin, &platform)
        }
        NetworkRead(d, pr) => {
            p.reads_all_tenancy()
                || p.holds(Role::SecurityAdmin, &platform)
                || match pr {
                    Some(pr) => {
                        p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
                            || p.holds(Role::DeptMember, &Scope::Project(d, pr))
                    }
                    None => member_of_department(p, d),
                }
        }
        NetworkOperate(d, pr) => {
            p.holds(Role::PlatformAdmin, &platform)
                || match pr {
                    Some(pr) => {
                        p.holds(Role::DeptAdmin, &Scope::Project(d, pr))
                            || p.holds(Role::DeptMember, &Scope::Project(d, pr))
                    }
                    None => p.holds(Role::DeptAdmin, &Scope::Department(d)),
                }
        }
        MetricsRead(None) => {
            p.holds(Role::PlatformAdmin, &platform) || p.holds(Role::Supervisor, &platform)
        }
        MetricsRead(Some(Scope::Provider(pv))) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::Supervisor, &platform)
                || p.operates(Some(pv))
        }
        AlertRead => p.grants.iter().any(|g| {
            matches!(
                g.role,
                Role::PlatformAdmin
                    | Role::Supervisor
                    | Role::ProviderOperator
                    | Role::DeptAdmin
                    | Role::DeptMember
            )
        }),
        AlertManage(None) => p.holds(Role::PlatformAdmin, &platform),
        AlertManage(Some(Scope::Provider(pv))) => {
            p.holds(Role::PlatformAdmin, &platform) || p.operates(Some(pv))
        }
        AlertManage(Some(scope)) => {
            p.holds(Role::PlatformAdmin, &platform)
                || (scope != platform && p.holds(Role::DeptAdmin, &scope))
        }
        MetricsRead(Some(scope)) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::Supervisor, &platform)
                || (scope != platform
                    && (p.holds(Role::DeptAdmin, &scope) || p.holds(Role::DeptMember, &scope)))
        }
        SecurityPolicyRead => [Role::SecurityAdmin, Role::PlatformAdmin, Role::Supervisor]
            .into_iter()
            .any(|r| p.holds(r, &platform)),
        SecurityPolicyManage => p.holds(Role::SecurityAdmin, &platform),
        SecurityEventReadAll => {
            p.holds(Role::SecurityAdmin, &platform) || p.holds(Role::Supervisor, &platform)
        }
        SecurityEventRead(d) => {
            p.holds(Role::SecurityAdmin, &platform)
                || p.holds(Role::Supervisor, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Department(d))
        }
        VulnerabilityWork(d) => p.holds(Role::DeptAdmin, &Scope::Department(d)),
        TicketRead => p.grants.iter().any(|g| {
            matches!(
                g.role,
                Role::PlatformAdmin
                    | Role::Supervisor
                    | Role::ProviderOperator
                    | Role::DeptAdmin
                    | Role::DeptMember
            )
        }),
        TicketView(d, pv) => {
            p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::Supervisor, &platform)
                || p.operates(pv)
                || d.is_some_and(|d| member_of_department(p, d))
        }
        TicketOpen(Some(d)) | TicketConfirm(Some(d)) => member_of_department(p, d),
        TicketOpen(None) | TicketConfirm(None) | TicketSettingsManage => {
            p.holds(Role::PlatformAdmin, &platform)
        }
        TicketWork(pv) => p.holds(Role::PlatformAdmin, &platform) || p.operates(pv),
        // Inspections check the platform itself (agents, certificates, invariants, the
        // audit chain): every operator reads them, as the people who repair what fails.
        InspectionRead => {
            [Role::PlatformAdmin, Role::Supervisor, Role::Auditor]
                .into_iter()
                .any(|r| p.holds(r, &platform))
                || p.holds_anywhere(Role::ProviderOperator)
        }
        InspectionManage(auditor) => {
            if auditor {
                p.holds(Role::Auditor, &platform)
            } else {
                p.holds(Role::PlatformAdmin, &platform)
            }
        }
        SlaRead(pv) => {
            [Role::PlatformAdmin, Role::Supervisor, Role::Finance]
                .into_iter()
                .any(|r| p.holds(r, &platform))
                || p.operates(pv)
        }
        SlaManage => p.holds(Role::Supervisor, &platform),
        SupervisionRead(None) => {
            p.holds(Role::Supervisor, &platform) || p.holds(Role::PlatformAdmin, &platform)
        }
        SupervisionRead(Some(d)) => {
            p.holds(Role::Supervisor, &platform)
                || p.holds(Role::PlatformAdmin, &platform)
                || p.holds(Role::DeptAdmin, &Scope::Department(d))
        }
        SupervisionManage => p.holds(Role::Supervisor, &platform),
        ProviderReportRead(pv) => {
            p.holds(Role::Supervisor, &platform)
                || p.holds(Role::PlatformAdmin, &platform)
                || p.operates(pv)
        }
        IdleReclaim(d) => p.holds(Role::DeptAdmin, &Scope::Department(d)),
        IdleSettingsManage => p.holds(Role::PlatformAdmin, &platform),
    };
    if allowed {
        Ok(())
    } else {
        deny(no_role())
    }
}

fn member_of_department(p: &Principal, d: DepartmentId) -> bool {
    p.grants.iter().any(|g| {
        matches!(g.role, Role::DeptAdmin | Role::DeptMember)
            && matches!(g.scope, Scope::Department(x) | Scope::Project(x, _) if x == d)
    })
}

/// A department admin manages the ordinary accounts whose home is their department.
fn manages_account(p: &Principal, u: &UserTarget) -> bool {
    u.admin_role.is_none()
        && u.department_id
            .is_some_and(|d| p.holds(Role::DeptAdmin, &Scope::Department(d)))
}

/// Which departments and projects `p` may list.
pub fn tenancy_visibility(p: &Principal) -> Visibility {
    if p.reads_all_tenancy() {
        return Visibility::All;
    }
    let mut departments = Vec::new();
    let mut projects = Vec::new();
    for g in &p.grants {
        match (g.role, g.scope) {
            (Role::DeptAdmin | Role::DeptMember, Scope::Department(d)) => departments.push(d),
            (Role::DeptAdmin | Role::DeptMember, Scope::Project(_, pr)) => projects.push(pr),
            _ => {}
        }
    }
    departments.sort();
    departments.dedup();
    projects.sort();
    projects.dedup();
    Visibility::Some {
        departments,
        projects,
    }
}

/// Departments a principal may see even if they only hold a project in it (for listing
/// departments: a project member sees the name of its department).
pub fn visible_departments(p: &Principal) -> Visibility {
    if p.reads_all_tenancy() {
        return Visibility::All;
    }
    let mut departments: Vec<DepartmentId> = p
        .grants
        .iter()
        .filter(|g| matches!(g.role, Role::DeptAdmin | Role::DeptMember))
        .filter_map(|g| match g.scope {
            Scope::Department(d) | Scope::Project(d, _) => Some(d),
            Scope::Platform | Scope::Provider(_) => None,
        })
        .collect();
    departments.sort();
    departments.dedup();
    Visibility::Some {
        departments,
        projects: Vec::new(),
    }
}

/// Which providers `p` may list for a provider-parameterised action: all when it is
/// allowed for every provider (`action(None)`), otherwise the providers it operates for
/// where `action(Some(provider))` is allowed.
pub fn provider_visibility(
    p: &Principal,
    action: impl Fn(Option<ProviderId>) -> Action,
) -> ProviderVisibility {
    if authorize(p, action(None)).is_ok() {
        return ProviderVisibility::All;
    }
    let mut v: Vec<ProviderId> = p
        .grants
        .iter()
        .filter_map(|g| match g.scope {
            Scope::Provider(pv) => Some(pv),
            _ => None,
        })
        .filter(|pv| authorize(p, action(Some(*pv))).is_ok())
        .collect();
    v.sort();
    v.dedup();
    ProviderVisibility::Some(v)
}

/// Refuses a grant that would give one account two of the three separated admin roles.
pub fn check_separation(existing: &[Role], new_role: Role) -> Result<(), Error> {
    if new_role.is_separated_admin() {
        if let Some(other) = existing
            .iter()
            .find(|r| r.is_separated_admin() && **r != new_role)
        {
            return Err(Error::conflict(t!(
                "三员分立：该账号已是{}，不能再授予{}" ;
                "Separation of duties: the account is already {} and cannot also be {}",
                other.zh_name(),
                new_role.zh_name()
            ))
            .with_details(separation_details(other.as_str(), new_role.as_str())));
        }
    }
    Ok(())
}

fn separation_details(held: &str, requested: &str) -> zy_model::error::DetailsValue {
    zy_model::error::details(&[("held_role", held), ("requested_role", requested)])
}

#[cfg(test)]
mod tests;
