//! The demo data set, modelled on the Yibin (宜宾) e-government cloud in the seed texts:
//! the bureaus that moved onto the cloud first, each with a business system or two, and
//! users of every role. Loaded by `zhengyun server --demo` once, when no department exists.
//!
//! Demo accounts share one documented password and need not change it; the three admins
//! are the real bootstrap accounts with one-time passwords.

pub mod openstack;

use crate::auth::password;
use zy_model::audit::{AuditEntry, Outcome};
use zy_model::id::{DepartmentId, ProjectId, UserId};
use zy_model::role::{Role, Scope};
use zy_model::tenancy::{Department, Membership, Project, User};
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::{departments, memberships, projects, users, Store, Tx};

/// The password of every demo account (not of the three admins).
pub const DEMO_PASSWORD: &str = "Yibin@2026demo";

/// (name, code, login prefix, projects)
pub const DEPARTMENTS: &[(&str, &str, &str, &[&str])] = &[
    (
        "宜宾市卫生和计划生育委员会",
        "WJW",
        "wjw",
        &["全民健康信息平台", "预约挂号服务系统"],
    ),
    (
        "宜宾市安全生产监督管理局",
        "AJJ",
        "ajj",
        &["安全生产监管执法系统"],
    ),
    (
        "宜宾市人力资源和社会保障局",
        "RSJ",
        "rsj",
        &["社会保障卡服务平台", "就业创业服务系统"],
    ),
    (
        "宜宾市公安局",
        "GAJ",
        "gaj",
        &["治安综合管理平台", "出入境预约系统"],
    ),
    (
        "宜宾市工商行政管理局",
        "GSJ",
        "gsj",
        &["企业信用信息公示系统"],
    ),
    ("宜宾广播电视大学", "DD", "dd", &["远程教学平台"]),
    (
        "宜宾市信息公开电子政务办",
        "ZWB",
        "zwb",
        &["政务云监管平台", "政府门户网站"],
    ),
];

/// The demo's real provider: this machine, run by a local `zhengyun agent`.
pub const LOCAL_KVM_PROVIDER: &str = "本机 KVM";
pub const LOCAL_KVM_ZONE: &str = "本机一区";
/// The guest template `cargo xtask template` builds, as the demo catalogue names it.
pub const LOCAL_TEMPLATE: &str = "zy-busybox";

/// A one-time join token for the demo's local agent (issued by the server itself, and
/// audited as such).
pub async fn local_join_token(store: &Store) -> Result<String, Error> {
    let providers = zy_store::inventory::providers(store).await?;
    let Some((p, _)) = providers.iter().find(|(p, _)| p.name == LOCAL_KVM_PROVIDER) else {
        return Err(Error::not_found("provider", LOCAL_KVM_PROVIDER));
    };
    let zone = zy_store::inventory::zones(store)
        .await?
        .into_iter()
        .find(|z| z.provider_id == p.id)
        .ok_or_else(|| Error::not_found("zone", LOCAL_KVM_ZONE))?;
    let now = Timestamp::now();
    let mut tx = store.begin_write().await?;
    let (t, secret) = crate::app::agents::issue_join_token(&mut tx, zone.id, 1, "system").await?;
    zy_store::audit::append(
        &mut tx,
        zy_model::audit::AuditEntry {
            at: now,
            actor_id: None,
            actor_name: "system".into(),
            actor_roles: String::new(),
            source_ip: "local".into(),
            action: "create_join_token".into(),
            target_type: "join_token".into(),
            target_id: t.id.to_string(),
            outcome: zy_model::audit::Outcome::Success,
            request_id: String::new(),
            detail: serde_json::json!({ "zone_id": zone.id, "for": "the demo's local agent" })
                .to_string(),
        },
    )
    .await?;
    tx.commit().await.map_err(zy_store::db_error)?;
    Ok(secret)
}

/// Loads the demo data unless departments already exist. Returns whether it loaded.
pub async fn load(store: &Store) -> Result<bool, Error> {
    let any = departments::list(
        store,
        &zy_model::page::PageRequest::parse(Some(1), None, None)?,
        None,
        &Default::default(),
    )
    .await?;
    if !any.items.is_empty() {
        return Ok(false);
    }
    let hash = password::hash(DEMO_PASSWORD.to_string()).await?;
    let mut tx = store.begin_write().await?;
    let now = Timestamp::now();
    let mut n = 0u32;
    // The first bureau's admin and member, who find notices in their inboxes.
    let mut wjw: Option<(UserId, UserId)> = None;
    let mut billed = Vec::new();
    let mut all_departments = Vec::new();
    for (name, code, prefix, projs) in DEPARTMENTS {
        let d = Department {
            id: DepartmentId::new(),
            name: (*name).into(),
            code: (*code).into(),
            description: "演示数据（宜宾市电子政务云）/ demo data".into(),
            requests_only: false,
            created_at: now,
            updated_at: now,
            generation: 1,
        };
        departments::insert(&mut tx, &d).await?;
        all_departments.push((d.id, d.name.clone()));
        let mut first_project = None;
        for p in projs.iter() {
            let pr = Project {
                id: ProjectId::new(),
                department_id: d.id,
                name: (*p).into(),
                description: String::new(),
                created_at: now,
                updated_at: now,
                generation: 1,
            };
            projects::insert(&mut tx, &pr).await?;
            first_project.get_or_insert(pr.id);
        }
        let admin = user(
            &mut tx,
            &format!("{prefix}.admin"),
            &format!("{name}管理员"),
            Some(d.id),
            &hash,
        )
        .await?;
        grant(&mut tx, admin, Role::DeptAdmin, Scope::Department(d.id)).await?;
        let member = user(
            &mut tx,
            &format!("{prefix}.user"),
            &format!("{name}业务员"),
            Some(d.id),
            &hash,
        )
        .await?;
        grant(&mut tx, member, Role::DeptMember, Scope::Department(d.id)).await?;
        wjw.get_or_insert((admin, member));
        if let Some(p) = first_project {
            let dev = user(
                &mut tx,
                &format!("{prefix}.dev"),
                &format!("{name}项目开发"),
                Some(d.id),
                &hash,
            )
            .await?;
            grant(&mut tx, dev, Role::DeptMember, Scope::Project(d.id, p)).await?;
            if n == 0 {
                requests(&mut tx, d.id, p, member).await?;
            }
        }
        if let Some(p) = first_project {
            billed.push((d.id, p));
            crate::app::networks::demo(&mut tx, d.id, p).await?;
        }
        n += 1;
    }
    let mut supervisor = None;
    for (username, display, role) in [
        ("jianguan", "监管人员（大数据局）", Role::Supervisor),
        ("caizheng", "财政局审核员", Role::Finance),
    ] {
        let u = user(&mut tx, username, display, None, &hash).await?;
        grant(&mut tx, u, role, Scope::Platform).await?;
        if role == Role::Supervisor {
            supervisor = Some(u);
        }
    }
    if let Some((admin, member)) = wjw {
        notices(&mut tx, admin, member, supervisor).await?;
    }
    let providers = compute(&mut tx).await?;
    // Each provider's operators work for it alone: they see its hosts, tickets,
    // deliveries, bills and SLA scores, and nothing of the other provider.
    for ((username, display), provider) in
        [("inspur.ops", "浪潮云运维"), ("ctyun.ops", "天翼云运维")]
            .into_iter()
            .zip(&providers)
    {
        let u = user(&mut tx, username, display, None, &hash).await?;
        grant(
            &mut tx,
            u,
            Role::ProviderOperator,
            Scope::Provider(*provider),
        )
        .await?;
    }
    crate::app::billing::demo::load(&mut tx, &billed, &providers).await?;
    let depts: Vec<DepartmentId> = billed.iter().map(|(d, _)| *d).collect();
    crate::monitoring::demo::load(&mut tx, &depts, &providers).await?;
    crate::app::secev_demo::load(&mut tx, &all_departments, &providers).await?;
    crate::app::operations_demo::load(&mut tx, &depts, &providers).await?;
    zy_store::audit::append(
        &mut tx,
        AuditEntry {
            at: now,
            actor_id: None,
            actor_name: "system".into(),
            actor_roles: String::new(),
            source_ip: "local".into(),
            action: "load_demo_data".into(),
            target_type: "platform".into(),
            target_id: String::new(),
            outcome: Outcome::Success,
            request_id: String::new(),
            detail: serde_json::json!({ "departments": n }).to_string(),
        },
    )
    .await?;
    tx.commit().await.map_err(zy_store::db_error)?;
    Ok(true)
}

/// Requests of the first department's member, waiting at each point of the flow: one
/// pending at the department admin's review, one returned for changes, one draft.
async fn requests(
    tx: &mut Tx,
    department: DepartmentId,
    project: ProjectId,
    member: UserId,
) -> Result<(), Error> {
    use zy_model::requests::*;
    use zy_store::requests as rq;
    let now = Timestamp::now();
    let lease = Some(now.plus_secs(365 * 86_400));
    for (title, purpose, count, state) in [
        (
            "全民健康信息平台扩容",
            "门诊量增长，应用服务器由 2 台扩至 4 台",
            2u32,
            "pending",
        ),
        (
            "健康档案查询服务",
            "新建居民健康档案对外查询服务",
            1,
            "returned",
        ),
        ("数据交换前置机", "与省平台数据交换", 1, "draft"),
    ] {
        let r = ResourceRequest {
            id: zy_model::id::ResourceRequestId::new(),
            department_id: department,
            project_id: project,
            kind: RequestKind::New,
            title: title.into(),
            purpose: purpose.into(),
            mlps_level: Some(3),
            lease_end: lease,
            items: vec![
                RequestItem::Instances {
                    name: "his-app".into(),
                    flavor: "4C8G".into(),
                    image: "CentOS-7.9".into(),
                    count,
                    disk_gib: None,
                },
                RequestItem::Volume {
                    name: "his-data".into(),
                    size_gib: 200,
                },
            ],
            state: RequestState::Draft,
            steps: Vec::new(),
            current_step: 0,
            step_due: None,
            provider_id: None,
            zone_id: None,
            estimated_monthly_fen: None,
            totals: RequestTotals {
                instances: count as i64,
                vcpus: 4 * count as i64,
                memory_mib: 8192 * count as i64,
                disk_gib: 40 * count as i64,
                volumes: 1,
                volume_gib: 200,
            },
            requester_id: member,
            requester_name: String::new(),
            delivered: Vec::new(),
            note: None,
            delivery_due: None,
            submitted_at: None,
            created_at: now,
            updated_at: now,
            generation: 1,
        };
        rq::insert(tx, &r).await?;
        rq::add_event(tx, r.id, "draft", Some(member), None, None).await?;
        if state == "draft" {
            continue;
        }
        rq::submit(tx, r.id, 1, &default_steps(), None).await?;
        rq::add_event(tx, r.id, "submit", Some(member), None, None).await?;
        if state == "returned" {
            let why = "请补充等保测评报告编号 / add the MLPS assessment report number";
            rq::decide(
                tx,
                r.id,
                Some(0),
                RequestState::Returned,
                (None, None),
                None,
                Some(why),
            )
            .await?;
            rq::add_event(tx, r.id, "return", None, Some("部门审核"), Some(why)).await?;
        }
    }
    Ok(())
}

/// A few notices in the demo users' inboxes, as the approval, lease and budget work would
/// leave them.
async fn notices(
    tx: &mut Tx,
    admin: UserId,
    member: UserId,
    supervisor: Option<UserId>,
) -> Result<(), Error> {
    use crate::notify::{enqueue, Notice, NoticeKind};
    use serde_json::json;
    let request = json!({
        "request": "REQ-2026-0001", "title": "全民健康信息平台扩容 4 台云主机",
        "department": "宜宾市卫生和计划生育委员会", "step": "部门审批", "deadline": "2026-12-04 18:00",
    });
    let all: [(NoticeKind, Vec<UserId>, serde_json::Value); 4] = [
        (NoticeKind::ApprovalNeeded, vec![admin], request.clone()),
        (
            NoticeKind::RequestApproved,
            vec![member],
            json!({ "request": "REQ-2026-0000", "title": "预约挂号服务系统数据库云硬盘", "approver": "卫计委管理员" }),
        ),
        (
            NoticeKind::LeaseEnding,
            vec![member, admin],
            json!({ "resource": "云主机", "name": "hosp-web-01", "days": 3, "expires_at": "2026-12-03 00:00" }),
        ),
        (
            NoticeKind::BudgetThreshold,
            supervisor.into_iter().chain([admin]).collect(),
            json!({ "department": "宜宾市卫生和计划生育委员会", "budget": "2026 年度云资源预算", "percent": 82, "spent_fen": 41_000_000, "limit_fen": 50_000_000 }),
        ),
    ];
    for (kind, to, params) in all {
        enqueue(
            tx,
            &Notice {
                kind,
                to,
                params,
                link: None,
                subject: None,
            },
        )
        .await?;
    }
    Ok(())
}

async fn user(
    tx: &mut Tx,
    username: &str,
    display: &str,
    department: Option<DepartmentId>,
    hash: &str,
) -> Result<UserId, Error> {
    let now = Timestamp::now();
    let u = User {
        id: UserId::new(),
        username: username.into(),
        display_name: display.into(),
        email: None,
        phone: None,
        department_id: department,
        mfa_enabled: false,
        locked_until: None,
        must_change_password: false,
        password_changed_at: now,
        created_at: now,
        updated_at: now,
        generation: 1,
    };
    users::insert(tx, &u, hash).await?;
    Ok(u.id)
}

async fn grant(tx: &mut Tx, user: UserId, role: Role, scope: Scope) -> Result<(), Error> {
    let m = Membership::new(user, role, scope, None);
    memberships::insert(tx, &m, &scope).await
}

/// Two simulated providers sized like the seeds' clouds, with zones, the seeds' flavors
/// and a few government images. Labelled as simulated everywhere.
async fn compute(tx: &mut Tx) -> Result<Vec<zy_model::id::ProviderId>, Error> {
    use zy_model::compute::*;
    use zy_model::id::*;
    let now = Timestamp::now();
    let mut provider_ids = Vec::new();
    for (name, zone, hosts) in [
        ("浪潮云（模拟）", "宜宾一区", 200u32),
        ("天翼云（模拟）", "宜宾二区", 100u32),
    ] {
        let p = Provider {
            id: ProviderId::new(),
            name: name.into(),
            kind: "sim".into(),
            simulated: true,
            description:
                "模拟云服务商（演示与规模测试）/ simulated provider for demos and scale tests"
                    .into(),
            created_at: now,
            generation: 1,
        };
        zy_store::inventory::insert_provider(tx, &p, "{}").await?;
        let z = Zone {
            id: ZoneId::new(),
            provider_id: p.id,
            region: "宜宾".into(),
            name: zone.into(),
            strategy: Strategy::Pack,
            created_at: now,
        };
        zy_store::inventory::insert_zone(tx, &z).await?;
        // The zone's external network (政务外网), documentation addresses: its VPCs go out
        // through it and elastic IPs come from it.
        let cidr = if hosts == 200 {
            "198.51.100.0/24"
        } else {
            "203.0.113.0/24"
        };
        let c = zy_model::network::Cidr::parse("cidr", cidr)?;
        let x = zy_model::network::ExternalNetwork {
            id: ExternalNetworkId::new(),
            zone_id: z.id,
            name: format!("政务外网（{zone}）"),
            cidr: c.to_string(),
            gateway: zy_model::network::ip_text(c.default_gateway()),
            host_interface: "br-ext".into(),
            created_at: now,
        };
        zy_store::networks::insert_external(tx, &x, c).await?;
        let hs: Vec<Host> = (1..=hosts)
            .map(|n| Host {
                id: HostId::new(),
                zone_id: z.id,
                provider_id: p.id,
                name: format!(
                    "{}-host-{n:04}",
                    if hosts == 200 { "inspur" } else { "ctyun" }
                ),
                vcpus: 64,
                memory_mib: 512 * 1024,
                disk_gib: 8 * 1024,
                gpus: if n % 50 == 0 { 4 } else { 0 },
                cpu_ratio_permille: 4000,
                mem_ratio_permille: 1000,
                state: HostState::Enabled,
                used_vcpus: 0,
                used_memory_mib: 0,
                used_disk_gib: 0,
                used_gpus: 0,
                created_at: now,
                generation: 1,
                ha_state: HostHaState::Ok,
                group_id: None,
            })
            .collect();
        zy_store::inventory::insert_hosts(tx, &hs).await?;
        let pool = StoragePool {
            id: StoragePoolId::new(),
            zone_id: z.id,
            name: format!("{zone}-ceph"),
            capacity_gib: 500 * 1024,
            used_gib: 0,
            created_at: now,
            // Shared by every host of the zone (simulated): HA restarts its instances
            // elsewhere when a host fails.
            kind: PoolKind::Shared,
            path: Some(format!("/mnt/zhengyun/{zone}-ceph")),
        };
        zy_store::inventory::insert_pool(tx, &pool).await?;
        provider_ids.push(p.id);
    }
    // Real virtual machines on this very machine, through `zhengyun agent`; its host
    // appears when the local agent joins (`zhengyun server --demo --local-agent …`).
    let local = Provider {
        id: ProviderId::new(),
        name: LOCAL_KVM_PROVIDER.into(),
        kind: "kvm".into(),
        simulated: false,
        description: "本机 QEMU/KVM 宿主机（由 zhengyun agent 接入）/ this machine's QEMU/KVM host, joined by zhengyun agent".into(),
        created_at: now,
        generation: 1,
    };
    zy_store::inventory::insert_provider(tx, &local, "{}").await?;
    let local_zone = Zone {
        id: ZoneId::new(),
        provider_id: local.id,
        region: "本机".into(),
        name: LOCAL_KVM_ZONE.into(),
        strategy: Strategy::Spread,
        created_at: now,
    };
    zy_store::inventory::insert_zone(tx, &local_zone).await?;
    zy_store::inventory::insert_pool(
        tx,
        &StoragePool {
            id: StoragePoolId::new(),
            zone_id: local_zone.id,
            name: "本机磁盘".into(),
            capacity_gib: 200,
            used_gib: 0,
            created_at: now,
            kind: PoolKind::Local,
            path: None,
        },
    )
    .await?;
    let sims = provider_ids.clone();
    zy_store::inventory::insert_flavor(
        tx,
        &Flavor {
            id: FlavorId::new(),
            name: "1C128M".into(),
            vcpus: 1,
            memory_mib: 128,
            gpus: 0,
            created_at: now,
        },
    )
    .await?;
    zy_store::inventory::insert_image(
        tx,
        &Image {
            id: ImageId::new(),
            name: LOCAL_TEMPLATE.into(),
            os: "Linux (busybox)".into(),
            min_disk_gib: 1,
            providers: vec![local.id],
            created_at: now,
        },
    )
    .await?;
    for (name, c, g, gpu) in [
        ("1C2G", 1, 2, 0),
        ("2C4G", 2, 4, 0),
        ("4C8G", 4, 8, 0),
        ("4C16G", 4, 16, 0),
        ("8C16G", 8, 16, 0),
        ("8C32G", 8, 32, 0),
        ("16C32G", 16, 32, 0),
        ("16C64G", 16, 64, 0),
        ("8C32G-1GPU", 8, 32, 1),
    ] {
        let f = Flavor {
            id: FlavorId::new(),
            name: name.into(),
            vcpus: c,
            memory_mib: g * 1024,
            gpus: gpu,
            created_at: now,
        };
        zy_store::inventory::insert_flavor(tx, &f).await?;
    }
    for (name, os, disk, only_first) in [
        ("CentOS-7.9", "Linux", 40, false),
        ("Kylin-V10", "Linux", 40, false),
        ("UOS-20", "Linux", 50, false),
        ("Windows-Server-2019", "Windows", 80, true),
    ] {
        let i = Image {
            id: ImageId::new(),
            name: name.into(),
            os: os.into(),
            min_disk_gib: disk,
            providers: if only_first {
                vec![sims[0]]
            } else {
                sims.clone()
            },
            created_at: now,
        };
        zy_store::inventory::insert_image(tx, &i).await?;
    }
    Ok([sims, vec![local.id]].concat())
}

/// The demo's leases and recycle bin (公安局 · 治安综合管理平台): an instance whose lease
/// ends in two days (its reminder shows on the first pass of the lease manager) and one
/// already released to the recycle bin. Made through the same use cases as the API, as
/// the department's admin, once, right after the demo data is loaded.
pub async fn lease_examples(s: &crate::state::AppState) -> Result<(), Error> {
    use crate::app::{instances, leases};
    let Some(admin) = users::get_by_username(s.store.pool(), "gaj.admin").await? else {
        return Ok(());
    };
    let page = zy_model::page::PageRequest::parse(Some(10), None, None)?;
    let filter = zy_store::Filter {
        q: Some("治安综合管理平台".into()),
    };
    let found = projects::list(&s.store, &page, projects::ProjectScope::All, None, &filter).await?;
    let Some(project) = found.items.first() else {
        return Ok(());
    };
    let grants = memberships::grants_for_user(s.store.pool(), admin.user.id).await?;
    let actor = crate::auth::actor::Actor {
        principal: zy_policy::Principal {
            user_id: admin.user.id,
            grants,
        },
        user: admin.user,
        kind: crate::auth::actor::AuthKind::Token {
            id: zy_model::id::TokenId::new(),
        },
        restriction: None,
        admin_role: None,
    };
    let ctx = crate::context::RequestContext::new("local".into(), zy_model::text::Lang::Zh);
    supervision_examples(s, &ctx, &actor, project.id).await?;
    let new = |name: &str, lease_end: Option<Timestamp>| instances::NewInstances {
        project_id: project.id,
        name: name.into(),
        flavor: "2C4G".into(),
        image: "CentOS-7.9".into(),
        disk_gib: None,
        zone_id: None,
        provider_id: None,
        count: 1,
        group: None,
        start: true,
        user_data: String::new(),
        lease_end,
        nics: Vec::new(),
    };
    instances::create(
        s,
        &ctx,
        &actor,
        new(
            "临时数据比对-2",
            Some(Timestamp::now().plus_secs(2 * 86_400)),
        ),
    )
    .await?;
    let old = instances::create(s, &ctx, &actor, new("旧版报表服务", None)).await?;
    for i in old {
        let ctx = crate::context::RequestContext::new("local".into(), zy_model::text::Lang::Zh);
        leases::release_one(
            s,
            &ctx,
            &actor,
            i.id,
            Some("系统已迁移到新版 / replaced by the new version".into()),
        )
        .await?;
    }
    Ok(())
}

/// The demo's idle resources (闲置资源), labelled simulated data: an instance with 15 days
/// of back-dated hourly CPU at 1–3 % (flagged by the supervision task's pass once it runs)
/// and a data volume detached 45 days ago (flagged on the first pass).
async fn supervision_examples(
    s: &crate::state::AppState,
    ctx: &crate::context::RequestContext,
    actor: &crate::auth::actor::Actor,
    project: ProjectId,
) -> Result<(), Error> {
    use zy_model::metrics::{Block, Resolution, RollupAcc, Series};
    let quiet = crate::app::instances::create(
        s,
        ctx,
        actor,
        crate::app::instances::NewInstances {
            project_id: project,
            name: "历史档案查询（闲置）".into(),
            flavor: "4C8G".into(),
            image: "CentOS-7.9".into(),
            disk_gib: None,
            zone_id: None,
            provider_id: None,
            count: 1,
            group: None,
            start: true,
            user_data: String::new(),
            lease_end: None,
            nics: Vec::new(),
        },
    )
    .await?;
    let today = Resolution::Hour.block_start(Timestamp::now().0 / 1_000_000);
    let mut rows = Vec::new();
    for i in &quiet {
        for day in 1..=15 {
            let start = today - day * 86_400;
            let mut block = Block::new(Resolution::Hour.columns());
            for h in 0..24 {
                let t = start + h * 3600;
                let mut acc = RollupAcc::new(t);
                let v: Vec<Option<i64>> = Series::ALL
                    .iter()
                    .map(|x| match x {
                        Series::Cpu => zy_model::metrics::fixed(1.0 + ((t / 3600) % 3) as f64),
                        Series::Mem => zy_model::metrics::fixed(22.0),
                        Series::Up => Some(100),
                        _ => None,
                    })
                    .collect();
                acc.add_raw(&v);
                block.push(t, &acc.columns());
            }
            rows.push(zy_store::metrics::BlockRow {
                scope: "instance",
                entity: i.id.to_string(),
                res: Resolution::Hour,
                block_start: start,
                data: block.encode(),
            });
        }
    }
    zy_store::metrics::write_blocks(&s.store, &rows).await?;
    let v = crate::app::volumes::create(s, ctx, actor, project, "旧版备份盘", 200, None).await?;
    let mut tx = s.store.begin_write().await?;
    zy_store::supervision::backdate_volume(
        &mut tx,
        &v.id.to_string(),
        Timestamp::now().plus_secs(-45 * 86_400),
    )
    .await?;
    tx.commit().await.map_err(zy_store::db_error)?;
    Ok(())
}
