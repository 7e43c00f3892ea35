use super::*;
use proptest::prelude::*;

fn principal(grants: &[(Role, Scope)]) -> Principal {
    Principal {
        user_id: UserId::new(),
        grants: grants
            .iter()
            .map(|(role, scope)| Grant {
                role: *role,
                scope: *scope,
            })
            .collect(),
    }
}

fn ordinary(d: Option<DepartmentId>) -> UserTarget {
    UserTarget {
        id: UserId::new(),
        department_id: d,
        admin_role: None,
    }
}

/// One sample of every action (see `classification::samples`).
fn every_action(d: DepartmentId, pr: ProjectId, u: UserTarget) -> Vec<Action> {
    classification::samples(&classification::Fixture {
        d,
        pr,
        pv: ProviderId::new(),
        u,
    })
}

#[test]
fn the_auditor_can_only_read_the_audit_log() {
    let d = DepartmentId::new();
    let pr = ProjectId::new();
    let auditor = principal(&[(Role::Auditor, Scope::Platform)]);
    for a in every_action(d, pr, ordinary(Some(d))) {
        let allowed = authorize(&auditor, a).is_ok();
        let expected = matches!(
            a,
            Action::AuditRead
                // The auditor schedules audit-chain verification as an inspection plan
                // of its own and reads the inspection runs (issue 15).
                | Action::InspectionRead
                | Action::InspectionManage(true)
                | Action::MembershipGrant(Role::Auditor, Scope::Platform, _)
                | Action::MembershipRevoke(Role::Auditor, Scope::Platform, _)
        ) || matches!(
            a,
            // Only an auditor administers another auditor's account.
            Action::UserUpdate(t) | Action::UserDelete(t) if t.admin_role == Some(Role::Auditor)
        );
        assert_eq!(allowed, expected, "{a:?}");
    }
}

#[test]
fn the_platform_admin_never_touches_the_audit_log_or_security() {
    let admin = principal(&[(Role::PlatformAdmin, Scope::Platform)]);
    let u = ordinary(None);
    assert!(authorize(&admin, Action::AuditRead).is_err());
    assert!(authorize(&admin, Action::SecuritySettingsUpdate).is_err());
    assert!(authorize(&admin, Action::UserSecurity(u)).is_err());
    assert!(authorize(
        &admin,
        Action::MembershipGrant(Role::Auditor, Scope::Platform, u)
    )
    .is_err());
    assert!(authorize(
        &admin,
        Action::MembershipGrant(Role::SecurityAdmin, Scope::Platform, u)
    )
    .is_err());
    assert!(authorize(&admin, Action::DepartmentCreate).is_ok());
}

#[test]
fn the_security_admin_manages_accounts_but_no_resources() {
    let d = DepartmentId::new();
    let sec = principal(&[(Role::SecurityAdmin, Scope::Platform)]);
    assert!(authorize(&sec, Action::UserSecurity(ordinary(Some(d)))).is_ok());
    assert!(authorize(&sec, Action::SecuritySettingsUpdate).is_ok());
    assert!(authorize(&sec, Action::DepartmentCreate).is_err());
    assert!(authorize(&sec, Action::DepartmentRead(d)).is_err());
    assert!(authorize(&sec, Action::ProjectCreate(d)).is_err());
    assert!(authorize(&sec, Action::AuditRead).is_err());
}

#[test]
fn a_department_admin_stays_inside_its_department() {
    let d = DepartmentId::new();
    let other = DepartmentId::new();
    let pr = ProjectId::new();
    let da = principal(&[(Role::DeptAdmin, Scope::Department(d))]);
    assert!(authorize(&da, Action::ProjectCreate(d)).is_ok());
    assert!(authorize(&da, Action::ProjectCreate(other)).is_err());
    assert!(authorize(&da, Action::ProjectRead(other, pr)).is_err());
    assert!(authorize(
        &da,
        Action::MembershipGrant(Role::DeptMember, Scope::Project(d, pr), ordinary(Some(d)))
    )
    .is_ok());
    assert!(authorize(
        &da,
        Action::MembershipGrant(
            Role::DeptMember,
            Scope::Department(other),
            ordinary(Some(d))
        )
    )
    .is_err());
    assert!(authorize(
        &da,
        Action::MembershipGrant(Role::Supervisor, Scope::Platform, ordinary(Some(d)))
    )
    .is_err());
    assert!(authorize(&da, Action::DepartmentDelete(d)).is_err());
}

#[test]
fn a_project_member_sees_only_its_project() {
    let d = DepartmentId::new();
    let pr = ProjectId::new();
    let m = principal(&[(Role::DeptMember, Scope::Project(d, pr))]);
    assert!(authorize(&m, Action::ProjectRead(d, pr)).is_ok());
    assert!(authorize(&m, Action::ProjectRead(d, ProjectId::new())).is_err());
    assert!(authorize(&m, Action::ProjectUpdate(d, pr)).is_err());
    assert_eq!(
        tenancy_visibility(&m),
        Visibility::Some {
            departments: vec![],
            projects: vec![pr]
        }
    );
}

#[test]
fn nobody_changes_their_own_roles() {
    let admin = principal(&[(Role::PlatformAdmin, Scope::Platform)]);
    let me = UserTarget {
        id: admin.user_id,
        department_id: None,
        admin_role: Some(Role::PlatformAdmin),
    };
    assert!(authorize(
        &admin,
        Action::MembershipGrant(Role::Supervisor, Scope::Platform, me)
    )
    .is_err());
}

#[test]
fn one_account_never_holds_two_separated_admin_roles() {
    assert!(check_separation(&[Role::PlatformAdmin], Role::Auditor).is_err());
    assert!(check_separation(&[Role::SecurityAdmin], Role::PlatformAdmin).is_err());
    assert!(check_separation(&[Role::PlatformAdmin], Role::PlatformAdmin).is_ok());
    assert!(check_separation(&[Role::DeptAdmin], Role::Auditor).is_ok());
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

proptest! {
    /// Whatever a principal holds, anything it may grant is a role it holds at a scope
    /// containing the target scope, or one its held role dominates there.
    #[test]
    fn nobody_can_grant_beyond_what_they_hold(
        held in prop::collection::vec((arb_role(), 0u8..3), 0..4),
        role in arb_role(),
        scope_pick in 0u8..4,
    ) {
        let d = DepartmentId::new();
        let d2 = DepartmentId::new();
        let pr = ProjectId::new();
        let scope_of = |k: u8| match k { 0 => Scope::Platform, 1 => Scope::Department(d), 2 => Scope::Project(d, pr), _ => Scope::Department(d2) };
        let grants: Vec<(Role, Scope)> = held.iter().filter(|(r, k)| scope_of(*k).fits(*r)).map(|(r, k)| (*r, scope_of(*k))).collect();
        let p = principal(&grants);
        let scope = scope_of(scope_pick);
        if authorize(&p, Action::MembershipGrant(role, scope, ordinary(Some(d)))).is_ok() {
            prop_assert!(p.grants.iter().any(|g| dominates(g.role, role) && g.scope.contains(&scope)));
            prop_assert!(scope.fits(role));
        }
    }

    /// The decision is deny for a principal with no grants, for every action.
    #[test]
    fn no_grants_means_no_access(pick in 0usize..200) {
        let d = DepartmentId::new();
        let p = principal(&[]);
        let u = ordinary(Some(d));
        let actions = every_action(d, ProjectId::new(), u);
        let a = actions[pick % actions.len()];
        prop_assert!(authorize(&p, a).is_err());
    }
}

#[test]
fn members_and_overseers_grant_nothing() {
    let d = DepartmentId::new();
    for (role, scope) in [
        (Role::DeptMember, Scope::Department(d)),
        (Role::Supervisor, Scope::Platform),
        (Role::Finance, Scope::Platform),
    ] {
        let p = principal(&[(role, scope)]);
        for r in Role::ALL {
            assert!(
                authorize(&p, Action::MembershipGrant(r, scope, ordinary(Some(d)))).is_err(),
                "{role} granted {r}"
            );
        }
    }
}

mod classification;
