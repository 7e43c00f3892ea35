//! Every [`Action`] classified: for each variant, which roles held at which scope may do it
//! to a target in department `d` / project `pr` / provider `pv` (and, for accounts, an
//! ordinary account whose home is `d`). [`expected`] is one exhaustive `match` with one arm per variant and no
//! wildcard, so a new action does not compile until someone decides who may do it; the
//! arms are counted by the macro and [`samples`] must hold an instance of each, so a new
//! variant without a sample fails the test too.

use super::*;

/// Where a one-grant principal holds its role, relative to the target in `d` / `pr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// The platform roles, held at platform scope.
    Pa,
    Sec,
    Aud,
    Sup,
    Fin,
    /// provider_operator of the target's provider.
    Po,
    /// provider_operator of another provider.
    PoOther,
    /// dept_admin of the target's department.
    Da,
    /// dept_admin of another department.
    DaOther,
    /// dept_member of the target's department (department scope).
    Dm,
    /// dept_member of the target's project only.
    DmProject,
    /// dept_member of a sibling project in the same department.
    DmSibling,
    /// dept_member of another department (department scope).
    DmOther,
    /// dept_member of a project in another department.
    DmOtherProject,
}
use Holder::*;

const EVERYONE: &[Holder] = &[
    Pa,
    Sec,
    Aud,
    Sup,
    Fin,
    Po,
    PoOther,
    Da,
    DaOther,
    Dm,
    DmProject,
    DmSibling,
    DmOther,
    DmOtherProject,
];
const NOBODY: &[Holder] = &[];

pub(super) struct Fixture {
    pub d: DepartmentId,
    pub pr: ProjectId,
    pub pv: ProviderId,
    pub u: UserTarget,
}

impl Fixture {
    fn new() -> Fixture {
        let d = DepartmentId::new();
        Fixture {
            d,
            pr: ProjectId::new(),
            pv: ProviderId::new(),
            u: ordinary(Some(d)),
        }
    }

    /// A principal holding exactly one grant, placed as `h` says.
    fn principal(&self, h: Holder) -> Principal {
        let other_d = DepartmentId::new();
        let (role, scope) = match h {
            Pa => (Role::PlatformAdmin, Scope::Platform),
            Sec => (Role::SecurityAdmin, Scope::Platform),
            Aud => (Role::Auditor, Scope::Platform),
            Sup => (Role::Supervisor, Scope::Platform),
            Fin => (Role::Finance, Scope::Platform),
            Po => (Role::ProviderOperator, Scope::Provider(self.pv)),
            PoOther => (Role::ProviderOperator, Scope::Provider(ProviderId::new())),
            Da => (Role::DeptAdmin, Scope::Department(self.d)),
            DaOther => (Role::DeptAdmin, Scope::Department(other_d)),
            Dm => (Role::DeptMember, Scope::Department(self.d)),
            DmProject => (Role::DeptMember, Scope::Project(self.d, self.pr)),
            DmSibling => (Role::DeptMember, Scope::Project(self.d, ProjectId::new())),
            DmOther => (Role::DeptMember, Scope::Department(other_d)),
            DmOtherProject => (Role::DeptMember, Scope::Project(other_d, ProjectId::new())),
        };
        assert!(scope.fits(role), "{h:?} is a scope {role} can be held at");
        principal(&[(role, scope)])
    }
}

/// Builds the exhaustive match and counts its arms (write one arm per variant, no `|`).
macro_rules! classify {
    ($action:expr; $($pat:pat => $rule:expr,)*) => {{
        const ARMS: usize = [$(stringify!($pat)),*].len();
        let rule: Vec<Holder> = match $action { $($pat => $rule.to_vec(),)* };
        (ARMS, rule)
    }};
}

/// Who may do `a` (to the fixture's target), and how many variants `Action` has.
fn expected(f: &Fixture, a: Action) -> (usize, Vec<Holder>) {
    use Action::*;
    let tenancy_readers = [Pa, Sup, Fin];
    classify! { a;
        DepartmentRead(_) => [&tenancy_readers[..], &[Da, Dm, DmProject, DmSibling]].concat(),
        DepartmentCreate => [Pa],
        DepartmentUpdate(_) => [Pa],
        DepartmentDelete(_) => [Pa],
        ProjectRead(..) => [Pa, Sup, Fin, Da, Dm, DmProject],
        ProjectCreate(_) => [Pa, Da],
        ProjectUpdate(..) => [Pa, Da],
        ProjectDelete(..) => [Pa, Da],
        UserList(scope) => match scope {
            None => &[Pa, Sec][..],
            Some(_) => &[Pa, Sec, Da][..],
        },
        UserRead(_) => [Pa, Sec, Da],
        UserCreate(_) => [Pa, Da],
        UserUpdate(u) => match u.admin_role {
            // Only the same kind of admin edits a separated admin's account.
            Some(Role::PlatformAdmin) => &[Pa][..],
            Some(Role::SecurityAdmin) => &[Sec][..],
            Some(Role::Auditor) => &[Aud][..],
            _ => &[Pa, Da][..],
        },
        UserDelete(u) => match u.admin_role {
            Some(Role::PlatformAdmin) => &[Pa][..],
            Some(Role::SecurityAdmin) => &[Sec][..],
            Some(Role::Auditor) => &[Aud][..],
            _ => &[Pa, Da][..],
        },
        UserSecurity(_) => [Sec],
        MembershipList(scope) => match scope {
            Scope::Platform | Scope::Provider(_) => &[Pa, Sec][..],
            _ => &[Pa, Sec, Da][..],
        },
        MembershipGrant(role, scope, _) => grantable(f, role, scope),
        MembershipRevoke(role, scope, _) => grantable(f, role, scope),
        TokenAdminister => [Sec],
        SecuritySettingsRead => [Sec],
        SecuritySettingsUpdate => [Sec],
        AuditRead => [Aud],
        InventoryManage => [Pa],
        InventoryRead(pv) => match pv {
            None => &[Pa, Sup][..],
            Some(_) => &[Pa, Sup, Po][..],
        },
        CatalogueRead => [Pa, Sec, Sup, Fin, Po, PoOther, Da, DaOther, Dm, DmProject, DmSibling, DmOther, DmOtherProject],
        QuotaRead(scope) => match scope {
            Scope::Platform => &tenancy_readers[..],
            Scope::Department(_) => &[Pa, Sup, Fin, Da, Dm, DmProject, DmSibling][..],
            Scope::Project(..) => &[Pa, Sup, Fin, Da, Dm, DmProject][..],
            Scope::Provider(_) => &tenancy_readers[..],
        },
        QuotaSet(scope) => match scope {
            Scope::Platform | Scope::Provider(_) => NOBODY,
            Scope::Department(_) => &[Pa][..],
            Scope::Project(..) => &[Pa, Da][..],
        },
        InstanceRead(..) => [Pa, Sup, Fin, Da, Dm, DmProject],
        InstanceOperate(..) => [Pa, Da, Dm, DmProject],
        InstanceLease(..) => [Pa, Da],
        LeaseSettingsManage => [Pa],
        AdminCheck => [Pa],
        RequestList => [Pa, Sup, Fin, Po, PoOther, Da, DaOther, Dm, DmProject, DmSibling, DmOther, DmOtherProject],
        RequestRead(_, _, pv) => match pv {
            None => &[Pa, Sup, Fin, Da, Dm, DmProject][..],
            Some(_) => &[Pa, Sup, Fin, Po, Da, Dm, DmProject][..],
        },
        RequestCreate(..) => [Da, Dm, DmProject],
        RequestDecide(role, scope) => match (role, scope) {
            // Each step is decided by exactly the role it names, where it names it.
            (Role::DeptAdmin, Scope::Department(_)) => &[Da][..],
            (Role::Supervisor, Scope::Platform) => &[Sup][..],
            (Role::Finance, Scope::Platform) => &[Fin][..],
            _ => NOBODY,
        },
        RequestAccept(..) => [Da, Dm, DmProject],
        RequestDeliver(pv) => match pv {
            None => &[Pa][..],
            Some(_) => &[Pa, Po][..],
        },
        ApprovalChainRead(d) => match d {
            None => &[Pa, Sup][..],
            Some(_) => &[Pa, Sup, Da][..],
        },
        ApprovalChainSet => [Pa],
        NotifyMailManage => [Pa],
        WebhookManage(d) => match d {
            None => &[Pa][..],
            Some(_) => &[Pa, Da][..],
        },
        BillRead(_) => [Sup, Fin, Da],
        BillReadAll => [Sup, Fin],
        BillConfirm(_) => [Da],
        BillingManage => [Fin],
        ProviderBillRead(pv) => match pv {
            None => &[Sup, Fin][..],
            Some(_) => &[Sup, Fin, Po][..],
        },
        PriceListManage => [Pa, Fin],
        NetworkRead(_, pr) => match pr {
            Some(_) => &[Pa, Sec, Sup, Fin, Da, Dm, DmProject][..],
            None => &[Pa, Sec, Sup, Fin, Da, Dm, DmProject, DmSibling][..],
        },
        NetworkOperate(_, pr) => match pr {
            Some(_) => &[Pa, Da, Dm, DmProject][..],
            None => &[Pa, Da][..],
        },
        MetricsRead(scope) => match scope {
            None => &[Pa, Sup][..],
            Some(Scope::Platform) => &[Pa, Sup][..],
            Some(Scope::Provider(_)) => &[Pa, Sup, Po][..],
            Some(Scope::Department(_)) => &[Pa, Sup, Da, Dm][..],
            Some(Scope::Project(..)) => &[Pa, Sup, Da, Dm, DmProject][..],
        },
        AlertRead => [Pa, Sup, Po, PoOther, Da, DaOther, Dm, DmProject, DmSibling, DmOther, DmOtherProject],
        AlertManage(scope) => match scope {
            None => &[Pa][..],
            Some(Scope::Platform) => &[Pa][..],
            Some(Scope::Provider(_)) => &[Pa, Po][..],
            Some(_) => &[Pa, Da][..],
        },
        SecurityPolicyRead => [Pa, Sec, Sup],
        SecurityPolicyManage => [Sec],
        SecurityEventReadAll => [Sec, Sup],
        SecurityEventRead(_) => [Sec, Sup, Da],
        VulnerabilityWork(_) => [Da],
        TicketRead => [Pa, Sup, Po, PoOther, Da, DaOther, Dm, DmProject, DmSibling, DmOther, DmOtherProject],
        TicketView(d, pv) => match (d, pv) {
            (Some(_), Some(_)) => &[Pa, Sup, Po, Da, Dm, DmProject, DmSibling][..],
            (Some(_), None) => &[Pa, Sup, Da, Dm, DmProject, DmSibling][..],
            (None, Some(_)) => &[Pa, Sup, Po][..],
            (None, None) => &[Pa, Sup][..],
        },
        TicketOpen(d) => match d {
            Some(_) => &[Da, Dm, DmProject, DmSibling][..],
            None => &[Pa][..],
        },
        TicketConfirm(d) => match d {
            Some(_) => &[Da, Dm, DmProject, DmSibling][..],
            None => &[Pa][..],
        },
        TicketWork(pv) => match pv {
            None => &[Pa][..],
            Some(_) => &[Pa, Po][..],
        },
        TicketSettingsManage => [Pa],
        InspectionRead => [Pa, Aud, Sup, Po, PoOther],
        InspectionManage(auditor) => if auditor { &[Aud][..] } else { &[Pa][..] },
        SlaRead(pv) => match pv {
            None => &[Pa, Sup, Fin][..],
            Some(_) => &[Pa, Sup, Fin, Po][..],
        },
        SlaManage => [Sup],
        SupervisionRead(d) => match d {
            None => &[Pa, Sup][..],
            Some(_) => &[Pa, Sup, Da][..],
        },
        SupervisionManage => [Sup],
        ProviderReportRead(pv) => match pv {
            None => &[Pa, Sup][..],
            Some(_) => &[Pa, Sup, Po][..],
        },
        IdleReclaim(_) => [Da],
        IdleSettingsManage => [Pa],
    }
}

/// Who may grant or revoke `role` at `scope` (in the fixture's department): the platform
/// admin appoints platform roles and department roles, each separated admin only its own
/// kind, a department admin only department roles inside its department; a role never
/// at a scope it cannot be held at.
fn grantable(f: &Fixture, role: Role, scope: Scope) -> Vec<Holder> {
    if !scope.fits(role) {
        return Vec::new();
    }
    let in_fixture = match scope {
        Scope::Platform => true,
        Scope::Department(d) => d == f.d,
        Scope::Project(d, p) => d == f.d && p == f.pr,
        Scope::Provider(p) => p == f.pv,
    };
    assert!(in_fixture, "samples grant inside the fixture's department");
    match role {
        Role::PlatformAdmin | Role::Supervisor | Role::Finance | Role::ProviderOperator => {
            vec![Pa]
        }
        Role::SecurityAdmin => vec![Sec],
        Role::Auditor => vec![Aud],
        Role::DeptAdmin | Role::DeptMember => vec![Pa, Da],
    }
}

/// At least one instance of every variant (several where the decision depends on the
/// arguments), all about the fixture's department, project and account.
pub(super) fn samples(f: &Fixture) -> Vec<Action> {
    use Action::*;
    let (d, pr, pv, u) = (f.d, f.pr, f.pv, f.u);
    let admin = |r: Role| UserTarget {
        id: UserId::new(),
        department_id: None,
        admin_role: Some(r),
    };
    let dept = Scope::Department(d);
    let proj = Scope::Project(d, pr);
    let prov = Scope::Provider(pv);
    let mut v = vec![
        DepartmentRead(d),
        DepartmentCreate,
        DepartmentUpdate(d),
        DepartmentDelete(d),
        ProjectRead(d, pr),
        ProjectCreate(d),
        ProjectUpdate(d, pr),
        ProjectDelete(d, pr),
        UserList(None),
        UserList(Some(d)),
        UserRead(u),
        UserCreate(Some(d)),
        UserUpdate(u),
        UserDelete(u),
        UserSecurity(u),
        MembershipList(Scope::Platform),
        MembershipList(dept),
        MembershipList(proj),
        MembershipList(prov),
        TokenAdminister,
        SecuritySettingsRead,
        SecuritySettingsUpdate,
        AuditRead,
        InventoryManage,
        InventoryRead(None),
        InventoryRead(Some(pv)),
        CatalogueRead,
        QuotaRead(Scope::Platform),
        QuotaRead(dept),
        QuotaRead(proj),
        QuotaRead(prov),
        QuotaSet(Scope::Platform),
        QuotaSet(prov),
        QuotaSet(dept),
        QuotaSet(proj),
        InstanceRead(d, pr),
        InstanceOperate(d, pr),
        InstanceLease(d, pr),
        LeaseSettingsManage,
        AdminCheck,
        RequestList,
        RequestRead(d, pr, None),
        RequestRead(d, pr, Some(pv)),
        RequestCreate(d, pr),
        RequestAccept(d, pr),
        RequestDeliver(None),
        RequestDeliver(Some(pv)),
        ApprovalChainRead(None),
        ApprovalChainRead(Some(d)),
        ApprovalChainSet,
        NotifyMailManage,
        WebhookManage(None),
        WebhookManage(Some(d)),
        BillRead(d),
        BillReadAll,
        BillConfirm(d),
        BillingManage,
        ProviderBillRead(None),
        ProviderBillRead(Some(pv)),
        PriceListManage,
        NetworkRead(d, Some(pr)),
        NetworkRead(d, None),
        NetworkOperate(d, Some(pr)),
        NetworkOperate(d, None),
        MetricsRead(None),
        MetricsRead(Some(Scope::Platform)),
        MetricsRead(Some(dept)),
        MetricsRead(Some(proj)),
        MetricsRead(Some(prov)),
        AlertRead,
        AlertManage(None),
        AlertManage(Some(Scope::Platform)),
        AlertManage(Some(dept)),
        AlertManage(Some(proj)),
        AlertManage(Some(prov)),
        SecurityPolicyRead,
        SecurityPolicyManage,
        SecurityEventReadAll,
        SecurityEventRead(d),
        VulnerabilityWork(d),
        TicketRead,
        TicketView(Some(d), None),
        TicketView(Some(d), Some(pv)),
        TicketView(None, None),
        TicketView(None, Some(pv)),
        TicketOpen(Some(d)),
        TicketOpen(None),
        TicketWork(None),
        TicketWork(Some(pv)),
        TicketConfirm(Some(d)),
        TicketConfirm(None),
        TicketSettingsManage,
        InspectionRead,
        InspectionManage(false),
        InspectionManage(true),
        SlaRead(None),
        SlaRead(Some(pv)),
        SlaManage,
        SupervisionRead(None),
        SupervisionRead(Some(d)),
        SupervisionManage,
        ProviderReportRead(None),
        ProviderReportRead(Some(pv)),
        IdleReclaim(d),
        IdleSettingsManage,
    ];
    for r in Role::ALL {
        for s in [Scope::Platform, dept, proj] {
            v.push(RequestDecide(r, s));
        }
    }
    for r in [Role::PlatformAdmin, Role::SecurityAdmin, Role::Auditor] {
        v.push(UserUpdate(admin(r)));
        v.push(UserDelete(admin(r)));
    }
    for r in Role::ALL {
        for s in [Scope::Platform, dept, proj, prov] {
            v.push(MembershipGrant(r, s, u));
            v.push(MembershipRevoke(r, s, u));
        }
    }
    v
}

#[test]
fn every_action_allows_exactly_its_classified_holders() {
    let f = Fixture::new();
    let actions = samples(&f);
    let mut variants: Vec<std::mem::Discriminant<Action>> =
        actions.iter().map(std::mem::discriminant).collect();
    variants.sort_by_key(|v| format!("{v:?}"));
    variants.dedup();
    let (arms, _) = expected(&f, Action::AdminCheck);
    assert_eq!(
        variants.len(),
        arms,
        "samples() must hold at least one instance of every Action variant"
    );
    let principals: Vec<(Holder, Principal)> =
        EVERYONE.iter().map(|h| (*h, f.principal(*h))).collect();
    let mut wrong = Vec::new();
    for a in actions {
        let (_, allowed) = expected(&f, a);
        for (h, p) in &principals {
            let got = authorize(p, a).is_ok();
            if got != allowed.contains(h) {
                wrong.push(format!(
                    "{a:?} by {h:?}: {} but classified {}",
                    if got { "allowed" } else { "denied" },
                    if got { "denied" } else { "allowed" }
                ));
            }
        }
        assert!(
            authorize(&principal(&[]), a).is_err(),
            "{a:?} allowed without any grant"
        );
    }
    assert!(
        wrong.is_empty(),
        "the policy differs from the classification:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_department_role_elsewhere_gets_nothing_but_the_catalogue() {
    let f = Fixture::new();
    for a in samples(&f) {
        let (_, allowed) = expected(&f, a);
        for h in [DaOther, DmOther, DmOtherProject, PoOther] {
            // Listing requests and alerts is open to every working role; the list itself
            // shows only what the caller may read (tested in the server's authz table).
            assert_eq!(
                allowed.contains(&h),
                matches!(
                    a,
                    Action::CatalogueRead
                        | Action::RequestList
                        | Action::AlertRead
                        | Action::TicketRead
                ) || (h == PoOther
                    // An operator of any provider reads the platform's inspections.
                    && matches!(a, Action::InspectionRead)),
                "{a:?} by {h:?}"
            );
        }
    }
}
