//! Quotas (配额): the platform admin sets a department's, the department admin (or the
//! platform admin) a project's; members read their own.

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::state::AppState;
use zy_model::compute::{Quota, QuotaLimits};
use zy_model::id::{DepartmentId, ProjectId};
use zy_model::role::Scope;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};

/// The scope a quota request names, resolved.
pub async fn scope(
    s: &AppState,
    department: Option<DepartmentId>,
    project: Option<ProjectId>,
) -> Result<(Scope, &'static str, String), Error> {
    match (department, project) {
        (Some(d), None) => {
            zy_store::departments::get(s.store.pool(), d)
                .await?
                .ok_or_else(|| Error::not_found("department", d))?;
            Ok((Scope::Department(d), "department", d.to_string()))
        }
        (None, Some(p)) => {
            let pr = zy_store::projects::get(s.store.pool(), p)
                .await?
                .ok_or_else(|| Error::not_found("project", p))?;
            Ok((
                Scope::Project(pr.department_id, p),
                "project",
                p.to_string(),
            ))
        }
        _ => Err(Error::invalid(t!(
            "请给出 department_id 或 project_id 之一",
            "give exactly one of department_id or project_id"
        ))),
    }
}

pub async fn get(
    s: &AppState,
    actor: &Actor,
    department: Option<DepartmentId>,
    project: Option<ProjectId>,
) -> Result<Quota, Error> {
    let (sc, kind, id) = scope(s, department, project).await?;
    authorize(&actor.principal, Action::QuotaRead(sc))?;
    let recycled = match sc {
        Scope::Department(d) => Some(zy_store::leases::recycled_usage(&s.store, d, None).await?),
        Scope::Project(d, p) => Some(zy_store::leases::recycled_usage(&s.store, d, Some(p)).await?),
        Scope::Platform | Scope::Provider(_) => None,
    };
    let mut q = zy_store::quotas::get(s.store.pool(), kind, &id)
        .await?
        .unwrap_or(Quota {
            scope_type: kind.into(),
            scope_id: id,
            limits: zy_store::quotas::DEFAULT_LIMITS,
            used: QuotaLimits {
                instances: 0,
                vcpus: 0,
                memory_mib: 0,
                disk_gib: 0,
                volumes: 0,
            },
            recycled: None,
        });
    q.recycled = recycled;
    Ok(q)
}

pub async fn set(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    department: Option<DepartmentId>,
    project: Option<ProjectId>,
    limits: QuotaLimits,
) -> Result<Quota, Error> {
    let (sc, kind, id) = scope(s, department, project).await?;
    authorize(&actor.principal, Action::QuotaSet(sc))?;
    for (f, v) in [
        ("instances", limits.instances),
        ("vcpus", limits.vcpus),
        ("memory_mib", limits.memory_mib),
        ("disk_gib", limits.disk_gib),
        ("volumes", limits.volumes),
    ] {
        if !(0..=1_000_000_000_000).contains(&v) {
            return Err(Error::validation(
                f,
                t!("配额 {} 须为非负整数" ; "quota {} must be a non-negative integer", f),
            ));
        }
    }
    let mut tx = s.store.begin_write().await?;
    zy_store::quotas::set_limits(&mut tx, kind, &id, &limits).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_quota",
        kind,
        &id,
        serde_json::to_value(&limits).unwrap_or_default(),
    )
    .await?;
    get(s, actor, department, project).await
}

/// Explains which quota a refused consumption would have exceeded.
pub async fn exceeded(
    s: &AppState,
    department: DepartmentId,
    project: ProjectId,
    want: &QuotaLimits,
) -> Error {
    let scopes = [
        ("department", department.to_string(), "部门", "department"),
        ("project", project.to_string(), "项目", "project"),
    ];
    for (kind, id, zh, en) in scopes {
        let Ok(Some(q)) = zy_store::quotas::get(s.store.pool(), kind, &id).await else {
            continue;
        };
        let checks = [
            (
                "instances",
                "云主机数量",
                q.used.instances,
                want.instances,
                q.limits.instances,
            ),
            ("vcpus", "vCPU", q.used.vcpus, want.vcpus, q.limits.vcpus),
            (
                "memory_mib",
                "内存 (MiB)",
                q.used.memory_mib,
                want.memory_mib,
                q.limits.memory_mib,
            ),
            (
                "disk_gib",
                "磁盘 (GiB)",
                q.used.disk_gib,
                want.disk_gib,
                q.limits.disk_gib,
            ),
            (
                "volumes",
                "云硬盘数量",
                q.used.volumes,
                want.volumes,
                q.limits.volumes,
            ),
        ];
        if let Some((res, res_zh, used, asked, limit)) = checks
            .into_iter()
            .find(|(_, _, u, w, l)| *w > 0 && u + w > *l)
        {
            return Error::new(
                zy_model::ErrorCode::QuotaExceeded,
                zy_model::Text::new(
                    format!("超出{zh}配额：{res_zh} 上限 {limit}，已用 {used}，本次申请 {asked}。请减少数量或申请提高配额"),
                    format!("{en} quota exceeded: {res} limit {limit}, used {used}, requested {asked}. Ask for less or request a higher quota"),
                ),
            )
            .with_details(serde_json::json!({ "scope_type": kind, "scope_id": id, "resource": res, "limit": limit, "used": used, "requested": asked }));
        }
    }
    Error::new(
        zy_model::ErrorCode::QuotaExceeded,
        t!("超出配额", "quota exceeded"),
    )
}
