//! A populated platform for tests that call every operation: two departments with a
//! project each, a session for every role (a department admin and member at home, and
//! the same two roles in the other department), a simulated provider with room for
//! hundreds of instances, a `kvm` provider for join tokens, and [`World::request`], which
//! builds a well-formed request for any OpenAPI operation as a given caller — creating a
//! fresh object first where the operation consumes one, so the order of calls never
//! matters. Used by `authz.rs` (who gets which status), the audit-coverage check and
//! `hostile.rs` (valid bodies to mutate).

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use zy_model::role::Role;

/// The callers, in the table's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    PlatformAdmin,
    SecurityAdmin,
    Auditor,
    Supervisor,
    Finance,
    ProviderOperator,
    DeptAdmin,
    DeptMember,
    Anonymous,
    /// A department admin of the other department, acting on this department's objects.
    OtherDeptAdmin,
    /// A department member of the other department, acting on this department's objects.
    OtherDeptMember,
}

impl Caller {
    pub const TABLE_COLUMNS: [Caller; 9] = [
        Caller::PlatformAdmin,
        Caller::SecurityAdmin,
        Caller::Auditor,
        Caller::Supervisor,
        Caller::Finance,
        Caller::ProviderOperator,
        Caller::DeptAdmin,
        Caller::DeptMember,
        Caller::Anonymous,
    ];

    /// The role a caller holds (none for anonymous).
    pub fn role(self) -> Option<Role> {
        Some(match self {
            Caller::PlatformAdmin => Role::PlatformAdmin,
            Caller::SecurityAdmin => Role::SecurityAdmin,
            Caller::Auditor => Role::Auditor,
            Caller::Supervisor => Role::Supervisor,
            Caller::Finance => Role::Finance,
            Caller::ProviderOperator => Role::ProviderOperator,
            Caller::DeptAdmin | Caller::OtherDeptAdmin => Role::DeptAdmin,
            Caller::DeptMember | Caller::OtherDeptMember => Role::DeptMember,
            Caller::Anonymous => return None,
        })
    }

    /// The same role in the home department, for the other-department callers.
    pub fn at_home(self) -> Caller {
        match self {
            Caller::OtherDeptAdmin => Caller::DeptAdmin,
            Caller::OtherDeptMember => Caller::DeptMember,
            c => c,
        }
    }
}

/// One request to send: method, path (with query), body, and the session to send it with
/// when the operation needs one of its own (logging out, changing one's password).
pub struct Req {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub session: Option<Session>,
}

fn req(method: Method, path: impl Into<String>, body: Option<Value>) -> Req {
    Req {
        method,
        path: path.into(),
        body,
        session: None,
    }
}

pub struct World<'a> {
    pub ts: &'a TestServer,
    pub admin: Session,
    pub sec: Session,
    pub aud: Session,
    callers: Vec<(Caller, Session)>,
    /// The home department, its project, an ordinary account at home, and a member whose
    /// API tokens the token administration is tried on.
    pub d: String,
    pub p: String,
    pub u: String,
    token_owner: Session,
    pub provider: String,
    pub openstack_provider: String,
    pub openstack_url: String,
    pub zone: String,
    pub host: String,
    pub kvm_zone: String,
    /// A running instance and a volume of the home project, for the read operations.
    pub instance: String,
    pub volume: String,
    n: AtomicU32,
    months: AtomicU32,
}

impl<'a> World<'a> {
    pub async fn new(ts: &'a TestServer) -> World<'a> {
        let admin = ts.platform_admin().await;
        let sec = ts.admin("secadmin").await;
        let aud = ts.admin("auditor").await;
        let d = department(&admin, "宜宾市卫计委", "WJW").await;
        let p = project(&admin, &d, "全民健康信息平台").await;
        let d2 = department(&admin, "宜宾市公安局", "GAJ").await;
        project(&admin, &d2, "天网").await;
        let mut callers = vec![
            (Caller::PlatformAdmin, admin.clone()),
            (Caller::SecurityAdmin, sec.clone()),
            (Caller::Auditor, aud.clone()),
        ];
        for (c, name) in [
            (Caller::Supervisor, "jianguan"),
            (Caller::Finance, "caizheng"),
            (Caller::ProviderOperator, "yunwei"),
        ] {
            let s = ts.new_user(&admin, name, None).await;
            // The operator is granted on the world's provider once it exists.
            if c != Caller::ProviderOperator {
                ts.grant(&admin, &s, c.role().expect("role"), None, None)
                    .await;
            }
            callers.push((c, s));
        }
        for (c, name, dept) in [
            (Caller::DeptAdmin, "wjw.boss", &d),
            (Caller::DeptMember, "wjw.staff", &d),
            (Caller::OtherDeptAdmin, "gaj.boss", &d2),
            (Caller::OtherDeptMember, "gaj.staff", &d2),
        ] {
            let s = ts.new_user(&admin, name, Some(dept)).await;
            ts.grant(&admin, &s, c.role().expect("role"), Some(dept), None)
                .await;
            callers.push((c, s));
        }
        callers.push((Caller::Anonymous, ts.anonymous()));
        let target = ts.new_user(&admin, "target.user", Some(&d)).await;
        let token_owner = ts.new_user(&admin, "token.owner", Some(&d)).await;

        let ok = |st: StatusCode, b: &Value| assert!(st.is_success(), "fixture: {st} {b}");
        let (st, prov) = admin
            .post(
                "/v1/providers",
                json!({ "name": "测试云", "kind": "sim", "sim": { "failure_probability": 0.0, "latency_min_ms": 0, "latency_max_ms": 0 } }),
            )
            .await;
        ok(st, &prov);
        let provider = prov["id"].as_str().expect("provider").to_string();
        let operator = callers
            .iter()
            .find(|(c, _)| *c == Caller::ProviderOperator)
            .map(|(_, s)| s.clone())
            .expect("operator");
        ts.grant_provider(&admin, &operator, &provider).await;
        let (st, zone) = admin
            .post(
                "/v1/zones",
                json!({ "provider_id": provider, "region": "宜宾", "name": "一区" }),
            )
            .await;
        ok(st, &zone);
        let zone = zone["id"].as_str().expect("zone").to_string();
        let (st, hosts) = admin.post("/v1/hosts", json!({ "zone_id": zone, "name_prefix": "h", "count": 2, "vcpus": 512, "memory_mib": 4194304, "disk_gib": 200000 })).await;
        ok(st, &hosts);
        let host = hosts["items"][0]["id"].as_str().expect("host").to_string();
        for body in [
            json!({ "name": "1C2G", "vcpus": 1, "memory_mib": 2048 }),
            json!({ "name": "2C4G", "vcpus": 2, "memory_mib": 4096 }),
        ] {
            let (st, b) = admin.post("/v1/flavors", body).await;
            ok(st, &b);
        }
        let (st, b) = admin
            .post(
                "/v1/images",
                json!({ "name": "CentOS-7.9", "os": "Linux", "min_disk_gib": 20 }),
            )
            .await;
        ok(st, &b);
        let (st, b) = admin
            .post(
                "/v1/storage-pools",
                json!({ "zone_id": zone, "name": "ceph", "capacity_gib": 1000000 }),
            )
            .await;
        ok(st, &b);
        let (st, kvm) = admin
            .post("/v1/providers", json!({ "name": "本机", "kind": "kvm" }))
            .await;
        ok(st, &kvm);
        let (st, kz) = admin
            .post(
                "/v1/zones",
                json!({ "provider_id": kvm["id"], "region": "宜宾", "name": "机房" }),
            )
            .await;
        ok(st, &kz);
        // An OpenStack provider whose cloud is a loopback stub of Keystone and Nova (the
        // real bed is for the openstack tests; the table only needs a provider that answers).
        let stub = openstack_stub().await;
        let (st, osp) = admin
            .post(
                "/v1/providers",
                json!({ "name": "OpenStack 云", "kind": "openstack", "openstack": openstack_settings_mapped(&stub, &d, &p) }),
            )
            .await;
        ok(st, &osp);
        // A zone for its (capacity-less) hypervisor, so servers found there can be adopted.
        let (st, oz) = admin
            .post(
                "/v1/zones",
                json!({ "provider_id": osp["id"], "region": "宜宾", "name": "OpenStack 区" }),
            )
            .await;
        ok(st, &oz);
        let mut w = World {
            openstack_provider: osp["id"].as_str().expect("provider").to_string(),
            openstack_url: stub,
            ts,
            admin,
            sec,
            aud,
            callers,
            d,
            p,
            u: target.user_id.clone(),
            token_owner,
            provider,
            zone,
            host,
            kvm_zone: kz["id"].as_str().expect("zone").to_string(),
            instance: String::new(),
            volume: String::new(),
            n: AtomicU32::new(0),
            months: AtomicU32::new(0),
        };
        w.instance = w.instance_in("running").await;
        w.volume = w.volume().await;
        w
    }

    pub fn session(&self, c: Caller) -> &Session {
        &self
            .callers
            .iter()
            .find(|(x, _)| *x == c)
            .expect("every caller has a session")
            .1
    }

    /// A host of its own in a new zone (nothing of the world runs there).
    pub async fn spare_host(&self) -> String {
        let n = self.fresh();
        let (st, z) = self.admin.post("/v1/zones", json!({ "provider_id": self.provider, "region": "宜宾", "name": format!("备用区{n}") })).await;
        assert_eq!(st, StatusCode::CREATED, "{z}");
        let (st, h) = self.admin.post("/v1/hosts", json!({ "zone_id": z["id"], "name_prefix": format!("s{n}"), "vcpus": 8, "memory_mib": 16384, "disk_gib": 500 })).await;
        assert_eq!(st, StatusCode::CREATED, "{h}");
        h["items"][0]["id"].as_str().expect("host id").to_string()
    }

    /// A new zone (spread) with two hosts and one small running instance on each: a
    /// consolidation plan for it moves one instance and frees one host.
    pub async fn consolidation_zone(&self) -> String {
        let n = self.fresh();
        let (st, z) = self.admin.post("/v1/zones", json!({ "provider_id": self.provider, "region": "宜宾", "name": format!("整合区{n}"), "strategy": "spread" })).await;
        assert_eq!(st, StatusCode::CREATED, "{z}");
        let zone = z["id"].as_str().expect("zone id").to_string();
        let (st, h) = self.admin.post("/v1/hosts", json!({ "zone_id": zone, "name_prefix": format!("c{n}"), "count": 2, "vcpus": 8, "memory_mib": 16384, "disk_gib": 500 })).await;
        assert_eq!(st, StatusCode::CREATED, "{h}");
        let body = json!({ "project_id": self.p, "zone_id": zone, "name": format!("cz{n}"), "flavor": "1C2G", "image": "CentOS-7.9", "count": 2, "start": true });
        let (st, b) = self.admin.post("/v1/instances", body).await;
        assert_eq!(st, StatusCode::ACCEPTED, "{b}");
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in b["items"].as_array().expect("items") {
            let id = i["id"].as_str().expect("id");
            loop {
                let (_, i) = self.admin.get(&format!("/v1/instances/{id}")).await;
                if i["state"] == "running" {
                    break;
                }
                assert!(Instant::now() < deadline && i["state"] != "error", "{i}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        zone
    }

    pub fn fresh(&self) -> u32 {
        self.n.fetch_add(1, Ordering::SeqCst)
    }

    /// A month nobody has closed yet (January 2001 onwards; the months of 2000 stay open).
    pub fn fresh_month(&self) -> String {
        let m = self.months.fetch_add(1, Ordering::SeqCst) % 1188;
        format!("{}-{:02}", 2001 + m / 12, m % 12 + 1)
    }

    /// A month no one has closed yet, closed now by finance (every department gets a bill).
    pub async fn closed_month(&self) -> String {
        let month = self.fresh_month();
        let (st, b) = self
            .session(Caller::Finance)
            .post(&format!("/v1/billing/months/{month}/close"), json!({}))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        month
    }

    /// A closed month whose home-department bill its admin has confirmed.
    pub async fn confirmed_month(&self) -> String {
        let m = self.closed_month().await;
        let (st, b) = self
            .session(Caller::DeptAdmin)
            .post(&format!("/v1/bills/{m}/{}/confirm", self.d), json!({}))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        m
    }

    /// A price version of the world's provider that has not taken effect.
    pub async fn future_price_version(&self) -> String {
        let (st, b) = self
            .admin
            .post("/v1/price-versions", self.price_version_body())
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("price version id").to_string()
    }

    fn price_version_body(&self) -> Value {
        let n = self.fresh();
        json!({
            "provider_id": self.provider,
            "effective_from": format!("2090-01-01T00:{:02}:{:02}+08:00", (n / 60) % 60, n % 60),
            "rates": { "vcpu_hour": "0.0600", "memory_gib_hour": "0.0250", "gpu_hour": "4.5", "disk_gib_month": "0.35", "volume_gib_month": "0.5",
                       "flavors": [{ "flavor": "2C4G", "per_hour": "0.2" }], "stopped_compute_permille": 0, "discount_permille": 50,
                       "department_discounts": [{ "department_id": self.d, "permille": 100 }] },
            "note": "测试价格"
        })
    }

    /// A new volume of the home project.
    pub async fn volume(&self) -> String {
        let n = self.fresh();
        let (st, b) = self
            .admin
            .post(
                "/v1/volumes",
                json!({ "project_id": self.p, "name": format!("vol{n}"), "size_gib": 10 }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("volume id").to_string()
    }

    /// An open idle finding about a new volume of the home project (written as the idle
    /// task would, so reclaiming it deletes the volume).
    pub async fn idle_finding(&self) -> String {
        let v = self.volume().await;
        let id = uuid::Uuid::now_v7().to_string();
        let now = zy_model::time::Timestamp::now().0;
        crate::common::sql(
            self.ts,
            &format!(
                "INSERT INTO idle_findings (id, kind, resource_type, resource_id, resource_name, department_id, project_id, \
                 recommendation, evidence, disk_gib, state, detected_at, updated_at) VALUES \
                 ('{id}', 'unattached', 'volume', '{v}', 'vol', '{}', '{}', 'release', '{{}}', 10, 'open', {now}, {now})",
                self.d, self.p
            ),
        )
        .await;
        id
    }

    /// A stored operations report of the current month.
    pub async fn ops_report(&self) -> String {
        let month = zy_server::app::billing::month_of(zy_model::time::Timestamp::now());
        let (st, b) = self
            .session(Caller::Supervisor)
            .post("/v1/supervision/reports", json!({ "month": month }))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("report id").to_string()
    }

    /// A new VPC of the home project with one subnet: (vpc id, subnet id).
    pub async fn vpc(&self) -> (String, String) {
        let n = self.fresh();
        let (st, v) = self
            .admin
            .post(
                "/v1/vpcs",
                json!({ "project_id": self.p, "name": format!("net{n}") }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let vpc = v["id"].as_str().expect("vpc id").to_string();
        let (st, sn) = self
            .admin
            .post(
                &format!("/v1/vpcs/{vpc}/subnets"),
                json!({ "name": "sn", "cidr": "10.1.0.0/24" }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{sn}");
        (vpc, sn["id"].as_str().expect("subnet id").to_string())
    }

    /// A new NIC of the home instance on a new VPC.
    pub async fn nic(&self) -> String {
        let (_, sn) = self.vpc().await;
        let (st, b) = self
            .admin
            .post(
                &format!("/v1/instances/{}/nics", self.instance),
                json!({ "subnet_id": sn }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("nic id").to_string()
    }

    /// A new load balancer of the home project (an HTTP listener on port 80 with the home
    /// instance's NIC as member), once its host runs it.
    pub async fn load_balancer(&self) -> String {
        let n = self.fresh();
        let (_, sn) = self.vpc().await;
        let (st, nic) = self
            .admin
            .post(
                &format!("/v1/instances/{}/nics", self.instance),
                json!({ "subnet_id": sn }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{nic}");
        let (st, b) = self
            .admin
            .post(
                "/v1/load-balancers",
                json!({ "project_id": self.p, "subnet_id": sn, "name": format!("lb{n}"), "listeners": [
                    { "protocol": "http", "port": 80, "algorithm": "round_robin",
                      "members": [{ "nic_id": nic["id"], "port": 8080 }] }] }),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{b}");
        let id = b["id"].as_str().expect("lb id").to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, lb) = self.admin.get(&format!("/v1/load-balancers/{id}")).await;
            if lb["state"] == "active" {
                return id;
            }
            assert!(std::time::Instant::now() < deadline, "never active: {lb}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A new security group of the home project.
    pub async fn security_group(&self) -> String {
        let n = self.fresh();
        let (st, b) = self
            .admin
            .post(
                "/v1/security-groups",
                json!({ "project_id": self.p, "name": format!("sg{n}") }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("group id").to_string()
    }

    /// A new external network of the test zone.
    pub async fn external_network(&self) -> String {
        let n = self.fresh();
        let (st, b) = self
            .admin
            .post("/v1/external-networks", json!({ "zone_id": self.zone, "name": format!("政务外网{n}"), "cidr": "198.18.0.0/24", "host_interface": "br-ext" }))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("external network id").to_string()
    }

    /// A new elastic IP of the home project, bound to a new NIC when `bound`.
    pub async fn elastic_ip(&self, bound: bool) -> String {
        let x = self.external_network().await;
        let (st, b) = self
            .admin
            .post(
                "/v1/elastic-ips",
                json!({ "project_id": self.p, "external_network_id": x }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let id = b["id"].as_str().expect("eip id").to_string();
        if bound {
            let nic = self.nic().await;
            let (st, b) = self
                .admin
                .post(
                    &format!("/v1/elastic-ips/{id}/bind"),
                    json!({ "nic_id": nic }),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{b}");
        }
        id
    }

    /// A new instance of the home project, once it has reached `state` ("running" or
    /// "stopped").
    /// A new open drift item of the OpenStack provider (a server that appeared in the stub
    /// since the last synchronisation).
    pub async fn drift_item(&self) -> String {
        let (st, b) = self
            .admin
            .post(
                &format!("/v1/providers/{}/openstack/sync", self.openstack_provider),
                json!({}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let (st, b) = self
            .admin
            .get(&format!(
                "/v1/providers/{}/openstack/drift",
                self.openstack_provider
            ))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        b["items"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["change"] == "appeared"))
            .and_then(|d| d["id"].as_str())
            .unwrap_or_else(|| panic!("no open drift item: {b}"))
            .to_string()
    }

    pub async fn instance_in(&self, state: &str) -> String {
        let n = self.fresh();
        let body = json!({ "project_id": self.p, "zone_id": self.zone, "name": format!("vm{n}"), "flavor": "1C2G", "image": "CentOS-7.9", "start": state == "running" });
        let (st, b) = self.admin.post("/v1/instances", body).await;
        assert_eq!(st, StatusCode::ACCEPTED, "{b}");
        let id = b["items"][0]["id"]
            .as_str()
            .expect("instance id")
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, i) = self.admin.get(&format!("/v1/instances/{id}")).await;
            if i["state"] == state {
                return id;
            }
            assert!(
                Instant::now() < deadline && i["state"] != "error",
                "instance never became {state}: {i}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new request of the home project written by the home member, in `state`: a
    /// draft, pending at the department admin's step, or (set directly in the database,
    /// as a delivery would leave it) delivered or with a reported problem. Returns its id
    /// and generation.
    pub async fn request_in(&self, state: &str) -> (String, i64) {
        let n = self.fresh();
        let member = self.session(Caller::DeptMember);
        let body = json!({ "project_id": self.p, "kind": "new", "title": format!("申请{n}"), "purpose": "测试", "items": [{ "type": "instances", "name": format!("rq{n}"), "flavor": "1C2G", "image": "CentOS-7.9", "count": 1 }] });
        let (st, b) = member.post("/v1/requests", body).await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let id = b["id"].as_str().expect("request id").to_string();
        if state != "draft" {
            let (st, b) = member
                .post(&format!("/v1/requests/{id}/submit"), json!({}))
                .await;
            assert_eq!(st, StatusCode::OK, "{b}");
        }
        if state == "delivered" || state == "problem" {
            sql(
                self.ts,
                // Delivered by the world's provider, as a real delivery records it.
                &format!(
                    "UPDATE resource_requests SET state = '{state}', provider_id = '{}' WHERE id = '{id}'",
                    self.provider
                ),
            )
            .await;
        }
        let (_, b) = member.get(&format!("/v1/requests/{id}")).await;
        (id, b["generation"].as_i64().unwrap_or(1))
    }

    /// A new stopped instance of the home project, released to the recycle bin.
    pub async fn recycled_instance(&self) -> String {
        let id = self.instance_in("stopped").await;
        let (st, b) = self
            .admin
            .post(&format!("/v1/instances/{id}/release"), json!({}))
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{b}");
        id
    }

    /// A new volume attached to a new running instance.
    async fn attached_volume(&self) -> String {
        let v = self.volume().await;
        let i = self.instance_in("running").await;
        let (st, b) = self
            .admin
            .post(
                &format!("/v1/volumes/{v}/attach"),
                json!({ "instance_id": i }),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        v
    }

    /// A new notice in `s`'s own inbox (enqueued as any capability would); its id.
    pub async fn notice_for(&self, s: &Session) -> String {
        let user: zy_model::id::UserId = s.user_id.parse().expect("user id");
        let mut tx = self.ts.store().begin_write().await.expect("tx");
        zy_server::notify::enqueue(
            &mut tx,
            &zy_server::notify::Notice {
                kind: zy_server::notify::NoticeKind::Restored,
                to: vec![user],
                params: json!({ "resource": "云主机", "name": "vm-1" }),
                link: None,
                subject: None,
            },
        )
        .await
        .expect("enqueue");
        tx.commit().await.expect("commit");
        let (id,): (String,) = sqlx::query_as(
            "SELECT id FROM notifications WHERE user_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(user.to_string())
        .fetch_one(self.ts.store().pool())
        .await
        .expect("notice");
        id
    }

    /// A new webhook subscription of the home department (disabled: nothing is sent).
    /// A threshold rule over the home department's instances.
    pub fn alert_rule_body(&self) -> Value {
        let n = self.fresh();
        json!({ "name": format!("CPU 过高{n}"), "kind": "threshold", "scope": "department", "id": self.d, "series": "cpu", "op": "gt", "threshold": 90.0, "for_secs": 600 })
    }

    async fn alert_rule(&self) -> String {
        let (st, b) = self
            .admin
            .post("/v1/alert-rules", self.alert_rule_body())
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("rule id").to_string()
    }

    /// A general ticket of the home department to the simulated provider.
    pub fn ticket_body(&self) -> Value {
        let n = self.fresh();
        json!({ "kind": "fault", "priority": "l2", "title": format!("无法访问{n}"), "description": "业务系统打不开", "department_id": self.d, "provider_id": self.provider })
    }

    /// A fresh ticket of the home department, brought to `state` (open, accepted,
    /// resolved) by its department admin and the provider operator.
    pub async fn ticket_in(&self, state: &str) -> String {
        let (st, b) = self
            .session(Caller::DeptAdmin)
            .post("/v1/tickets", self.ticket_body())
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let id = b["id"].as_str().expect("ticket id").to_string();
        let po = self.session(Caller::ProviderOperator);
        for (step, until) in [("accept", "open"), ("resolve", "accepted")] {
            if state == until {
                break;
            }
            let (st, b) = po
                .post(&format!("/v1/tickets/{id}/{step}"), json!({}))
                .await;
            assert_eq!(st, StatusCode::OK, "{b}");
        }
        id
    }

    async fn inspection_plan(&self) -> String {
        let n = self.fresh();
        let (st, b) = self
            .admin
            .post(
                "/v1/inspection-plans",
                json!({ "name": format!("巡检{n}"), "checks": ["capacity"] }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("plan id").to_string()
    }

    async fn inspection_run(&self) -> String {
        let plan = self.inspection_plan().await;
        let (st, b) = self
            .admin
            .raw(
                Method::POST,
                &format!("/v1/inspection-plans/{plan}/run"),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("run id").to_string()
    }

    /// A silence of the home project's alerts for an hour.
    pub fn silence_body(&self) -> Value {
        let ends = zy_model::time::Timestamp::now().plus_secs(3600);
        json!({ "scope": "project", "id": self.p, "ends_at": ends, "reason": "计划内维护" })
    }

    async fn silence(&self) -> String {
        let (st, b) = self
            .admin
            .post("/v1/alert-silences", self.silence_body())
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("silence id").to_string()
    }

    async fn webhook(&self) -> String {
        let n = self.fresh();
        let (st, b) = self.admin.post("/v1/webhooks", json!({ "name": format!("钩子{n}"), "url": "http://127.0.0.1:9/x", "department_id": self.d })).await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let id = b["webhook"]["id"].as_str().expect("webhook id").to_string();
        let (st, b) = self
            .admin
            .patch(&format!("/v1/webhooks/{id}"), json!({ "enabled": false }))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        id
    }

    /// A fresh address-plan block of the home department (by the security admin): its id
    /// and CIDR.
    pub async fn address_block(&self) -> (String, String) {
        let n = self.fresh();
        let cidr = format!("10.{}.{}.0/24", 100 + n / 256 % 100, n % 256);
        let (st, b) = self
            .sec
            .post(
                "/v1/address-plan",
                json!({ "cidr": cidr, "department_id": self.d }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        (b["id"].as_str().expect("block id").to_string(), cidr)
    }

    async fn event_rule(&self) -> String {
        let n = self.fresh();
        let (st, b) = self.sec.post("/v1/security-event-rules", json!({ "name": format!("规则{n}"), "min_severity": "critical", "threshold": 1000, "window_minutes": 1 })).await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["id"].as_str().expect("rule id").to_string()
    }

    /// A fresh open finding of the home department (an address-plan block and an import).
    async fn vulnerability(&self) -> String {
        let (_, cidr) = self.address_block().await;
        let addr = cidr.replace(".0/24", ".7");
        let csv = format!(
            "address,port,vuln_id,title,severity\n{addr},443,TLS-1,TLS 1.0 enabled,medium\n"
        );
        let (st, b) = self
            .sec
            .post(
                "/v1/vulnerability-imports",
                json!({ "source": "scan.csv", "format": "csv", "content": csv }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let (st, b) = self
            .sec
            .get(&format!("/v1/vulnerabilities?address={addr}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        b["items"][0]["id"]
            .as_str()
            .expect("finding id")
            .to_string()
    }

    /// A new ordinary account of the home department (never logged in).
    async fn account(&self) -> String {
        let n = self.fresh();
        let (st, b) = self.admin.post("/v1/users", json!({ "username": format!("fresh.user{n}"), "display_name": "新账号", "department_id": self.d })).await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        b["user"]["id"].as_str().expect("user id").to_string()
    }

    /// A new account holding `caller`'s role where `caller` holds it, signed in with its
    /// password changed; with `enrolled` its second factor is enrolled too (the three
    /// admins cannot act before).
    async fn account_like(&self, caller: Caller, enrolled: bool) -> Session {
        let n = self.fresh();
        let role = caller.role().expect("a role");
        let dept = matches!(caller, Caller::DeptAdmin | Caller::DeptMember).then_some(&self.d);
        let s = self
            .ts
            .new_user(
                &self.admin,
                &format!("like.{}{n}", role.as_str().replace('_', "-")),
                dept.map(String::as_str),
            )
            .await;
        let granter = match role {
            Role::SecurityAdmin => &self.sec,
            Role::Auditor => &self.aud,
            _ => &self.admin,
        };
        if role == Role::ProviderOperator {
            self.ts.grant_provider(granter, &s, &self.provider).await;
        } else {
            self.ts
                .grant(granter, &s, role, dept.map(String::as_str), None)
                .await;
        }
        if enrolled {
            enrol(&s).await;
        }
        s
    }

    /// A well-formed request for `op` as `caller`. Objects the operation consumes are made
    /// fresh for this call; everything is about the home department.
    pub async fn request(&self, op: &str, caller: Caller) -> Req {
        let n = self.fresh();
        let (d, p, u) = (&self.d, &self.p, &self.u);
        let i = &self.instance;
        let own = |r: Req, s: Session| Req {
            session: (caller != Caller::Anonymous).then_some(s),
            ..r
        };
        match op {
            "login" => {
                let name = format!("login.user{n}");
                self.ts.new_user(&self.admin, &name, Some(d)).await;
                req(Method::POST, "/v1/auth/login", Some(json!({ "username": name, "password": USER_PASSWORD, "bearer": true })))
            }
            "logout" | "change_password" | "enrol_mfa" | "confirm_mfa" => {
                if caller == Caller::Anonymous {
                    let body = match op {
                        "change_password" => Some(json!({ "current_password": USER_PASSWORD, "new_password": format!("Another#Pass{n}") })),
                        "confirm_mfa" => Some(json!({ "code": "123456" })),
                        _ => None,
                    };
                    let path = match op {
                        "logout" => "/v1/auth/logout",
                        "change_password" => "/v1/me/password",
                        "enrol_mfa" => "/v1/me/mfa/enrol",
                        _ => "/v1/me/mfa/confirm",
                    };
                    return req(Method::POST, path, body);
                }
                // About oneself: a department role elsewhere is the same as at home.
                let caller = caller.at_home();
                let admin = caller.role().is_some_and(Role::is_separated_admin);
                match op {
                    "logout" => {
                        let s = self.account_like(caller, admin).await;
                        own(req(Method::POST, "/v1/auth/logout", None), s)
                    }
                    "change_password" => {
                        let s = self.account_like(caller, admin).await;
                        let body = json!({ "current_password": USER_PASSWORD, "new_password": format!("Another#Pass{n}") });
                        own(req(Method::POST, "/v1/me/password", Some(body)), s)
                    }
                    "enrol_mfa" => {
                        let s = self.account_like(caller, false).await;
                        own(req(Method::POST, "/v1/me/mfa/enrol", None), s)
                    }
                    _ => {
                        let s = self.account_like(caller, false).await;
                        let (st, e) = s.post("/v1/me/mfa/enrol", json!({})).await;
                        assert_eq!(st, StatusCode::OK, "{e}");
                        let secret = zy_model::totp::base32_decode(e["secret"].as_str().expect("secret")).expect("base32");
                        let code = zy_model::totp::code_at(&secret, chrono::Utc::now().timestamp());
                        own(req(Method::POST, "/v1/me/mfa/confirm", Some(json!({ "code": code }))), s)
                    }
                }
            }
            "healthz" => req(Method::GET, "/healthz", None),
            "readyz" => req(Method::GET, "/readyz", None),
            "metrics" => req(Method::GET, "/metrics", None),
            "me" => req(Method::GET, "/v1/me", None),
            "list_departments" => req(Method::GET, "/v1/departments", None),
            "create_department" => req(Method::POST, "/v1/departments", Some(json!({ "name": format!("部门{n}"), "code": format!("D{n}") }))),
            "get_department" => req(Method::GET, format!("/v1/departments/{d}"), None),
            "update_department" => req(Method::PATCH, format!("/v1/departments/{d}"), Some(json!({ "description": format!("v{n}") }))),
            "delete_department" => {
                let d2 = department(&self.admin, &format!("待删部门{n}"), &format!("X{n}")).await;
                req(Method::DELETE, format!("/v1/departments/{d2}"), None)
            }
            "list_projects" => req(Method::GET, "/v1/projects", None),
            "create_project" => req(Method::POST, "/v1/projects", Some(json!({ "department_id": d, "name": format!("项目{n}") }))),
            "get_project" => req(Method::GET, format!("/v1/projects/{p}"), None),
            "update_project" => req(Method::PATCH, format!("/v1/projects/{p}"), Some(json!({ "description": format!("v{n}") }))),
            "delete_project" => {
                let p2 = project(&self.admin, d, &format!("待删项目{n}")).await;
                req(Method::DELETE, format!("/v1/projects/{p2}"), None)
            }
            "list_users" => req(Method::GET, "/v1/users", None),
            "create_user" => req(Method::POST, "/v1/users", Some(json!({ "username": format!("new.user{n}"), "display_name": "新用户", "department_id": d }))),
            "get_user" => req(Method::GET, format!("/v1/users/{u}"), None),
            "update_user" => req(Method::PATCH, format!("/v1/users/{u}"), Some(json!({ "phone": "0831-1234567" }))),
            "delete_user" => req(Method::DELETE, format!("/v1/users/{}", self.account().await), None),
            "list_memberships" => req(Method::GET, format!("/v1/memberships?department_id={d}"), None),
            "grant_membership" => {
                let body = json!({ "user_id": self.account().await, "role": "dept_member", "scope_type": "department", "department_id": d });
                req(Method::POST, "/v1/memberships", Some(body))
            }
            "revoke_membership" => {
                let (st, m) = self.admin.post("/v1/memberships", json!({ "user_id": self.account().await, "role": "dept_member", "scope_type": "project", "project_id": p })).await;
                assert_eq!(st, StatusCode::CREATED, "{m}");
                req(Method::DELETE, format!("/v1/memberships/{}", m["id"].as_str().expect("id")), None)
            }
            "list_tokens" => req(Method::GET, "/v1/tokens", None),
            "create_token" => req(Method::POST, "/v1/tokens", Some(json!({ "name": format!("令牌{n}") }))),
            "revoke_token" => {
                // Someone else's token: token administration, not revoking one's own.
                let (st, t) = self.token_owner.post("/v1/tokens", json!({ "name": format!("成员令牌{n}") })).await;
                assert_eq!(st, StatusCode::CREATED, "{t}");
                req(Method::DELETE, format!("/v1/tokens/{}", t["token"]["id"].as_str().expect("id")), None)
            }
            "lock_user" => req(Method::POST, format!("/v1/users/{}/lock", self.account().await), Some(json!({ "minutes": 1 }))),
            "unlock_user" => req(Method::POST, format!("/v1/users/{}/unlock", self.account().await), None),
            "reset_user_password" => req(Method::POST, format!("/v1/users/{}/reset-password", self.account().await), None),
            "reset_user_mfa" => {
                let s = self.account_like(Caller::DeptMember, true).await;
                req(Method::POST, format!("/v1/users/{}/reset-mfa", s.user_id), None)
            }
            "get_security_settings" => req(Method::GET, "/v1/security/settings", None),
            "update_security_settings" => req(Method::PUT, "/v1/security/settings", Some(serde_json::to_value(zy_model::security::SecuritySettings::default()).expect("settings"))),
            "list_audit" => req(Method::GET, "/v1/audit", None),
            "verify_audit" => req(Method::GET, "/v1/audit/verify", None),
            "export_audit" => req(Method::GET, "/v1/audit/export", None),
            "purge_audit" => req(Method::POST, "/v1/audit/purge", Some(json!({ "before": "2020-01-01T00:00:00+08:00" }))),
            "list_providers" => req(Method::GET, "/v1/providers", None),
            "create_provider" => req(Method::POST, "/v1/providers", Some(json!({ "name": format!("模拟云{n}"), "kind": "sim" }))),
            "get_openstack_settings" => req(Method::GET, format!("/v1/providers/{}/openstack", self.openstack_provider), None),
            "put_openstack_settings" => req(Method::PUT, format!("/v1/providers/{}/openstack", self.openstack_provider), Some(openstack_settings_mapped(&self.openstack_url, &self.d, &self.p))),
            "openstack_drift" => req(Method::GET, format!("/v1/providers/{}/openstack/drift?state=all", self.openstack_provider), None),
            "adopt_openstack_drift" => req(Method::POST, format!("/v1/providers/{}/openstack/drift/{}/adopt", self.openstack_provider, self.drift_item().await), None),
            "dismiss_openstack_drift" => req(Method::POST, format!("/v1/providers/{}/openstack/drift/{}/dismiss", self.openstack_provider, self.drift_item().await), Some(json!({ "reason": "测试用云主机，无需纳管" }))),
            "sync_openstack" => req(Method::POST, format!("/v1/providers/{}/openstack/sync", self.openstack_provider), None),
            "update_provider" => req(Method::PATCH, format!("/v1/providers/{}", self.provider), Some(json!({ "sim": { "failure_probability": 0.0, "latency_min_ms": 0, "latency_max_ms": 0 } }))),
            "list_zones" => req(Method::GET, "/v1/zones", None),
            "create_zone" => req(Method::POST, "/v1/zones", Some(json!({ "provider_id": self.provider, "region": "宜宾", "name": format!("区{n}") }))),
            "update_zone" => req(Method::PATCH, format!("/v1/zones/{}", self.zone), Some(json!({ "strategy": "pack" }))),
            "list_hosts" => req(Method::GET, "/v1/hosts", None),
            // Hosts in a zone of their own, so instances never land on them.
            "create_hosts" => {
                let (st, z) = self.admin.post("/v1/zones", json!({ "provider_id": self.provider, "region": "宜宾", "name": format!("新区{n}") })).await;
                assert_eq!(st, StatusCode::CREATED, "{z}");
                req(Method::POST, "/v1/hosts", Some(json!({ "zone_id": z["id"], "name_prefix": format!("h{n}"), "vcpus": 8, "memory_mib": 16384, "disk_gib": 500 })))
            }
            "update_host" => req(Method::PATCH, format!("/v1/hosts/{}", self.host), Some(json!({ "state": "enabled" }))),
            "list_flavors" => req(Method::GET, "/v1/flavors", None),
            "create_flavor" => req(Method::POST, "/v1/flavors", Some(json!({ "name": format!("F{n}"), "vcpus": 1, "memory_mib": 1024 }))),
            "list_images" => req(Method::GET, "/v1/images", None),
            "create_image" => req(Method::POST, "/v1/images", Some(json!({ "name": format!("img{n}"), "os": "Linux", "min_disk_gib": 20 }))),
            "get_quota" => req(Method::GET, format!("/v1/quotas?department_id={d}"), None),
            "set_quota" => req(Method::PUT, "/v1/quotas", Some(json!({ "project_id": p, "limits": { "instances": 500, "vcpus": 2000, "memory_mib": 8388608, "disk_gib": 204800, "volumes": 1000 } }))),
            "list_instances" => req(Method::GET, "/v1/instances", None),
            "create_instances" => req(Method::POST, "/v1/instances", Some(json!({ "project_id": p, "zone_id": self.zone, "name": format!("new{n}"), "flavor": "1C2G", "image": "CentOS-7.9" }))),
            "get_instance" => req(Method::GET, format!("/v1/instances/{i}"), None),
            "delete_instance" => req(Method::DELETE, format!("/v1/instances/{}", self.instance_in("running").await), None),
            "start_instance" => req(Method::POST, format!("/v1/instances/{}/start", self.instance_in("stopped").await), None),
            "stop_instance" => req(Method::POST, format!("/v1/instances/{}/stop", self.instance_in("running").await), None),
            "reboot_instance" => req(Method::POST, format!("/v1/instances/{}/reboot", self.instance_in("running").await), None),
            "resize_instance" => req(Method::POST, format!("/v1/instances/{}/resize", self.instance_in("stopped").await), Some(json!({ "flavor": "2C4G" }))),
            "instance_events" => req(Method::GET, format!("/v1/instances/{i}/events"), None),
            "instance_console" => req(Method::GET, format!("/v1/instances/{i}/console"), None),
            "instance_metrics" => req(Method::GET, format!("/v1/instances/{i}/metrics"), None),
            "instance_migrations" => req(Method::GET, format!("/v1/instances/{i}/migrations"), None),
            // The simulated provider does not live-migrate: a well-formed request for a
            // running instance is refused with 409 (the kvm tests migrate for real).
            "migrate_instance" => req(Method::POST, format!("/v1/instances/{i}/migrate"), Some(json!({}))),
            "admin_check" => req(Method::GET, "/v1/admin/check", None),
            "set_instance_lease" => {
                let end = chrono::Utc::now() + chrono::Duration::days(30);
                req(Method::PUT, format!("/v1/instances/{}/lease", self.instance_in("stopped").await), Some(json!({ "lease_end": end.to_rfc3339() })))
            }
            "release_instance" => req(Method::POST, format!("/v1/instances/{}/release", self.instance_in("running").await), Some(json!({ "reason": "项目结束" }))),
            "restore_instance" => req(Method::POST, format!("/v1/instances/{}/restore", self.recycled_instance().await), Some(json!({}))),
            "list_recoveries" => req(Method::GET, "/v1/ha/recoveries", None),
            "set_instance_ha" => req(Method::PUT, format!("/v1/instances/{i}/ha"), Some(json!({ "ha_policy": "leave_stopped" }))),
            "list_host_groups" => req(Method::GET, "/v1/host-groups", None),
            "put_host_group" => req(Method::PUT, format!("/v1/host-groups/g{n}"), Some(json!({ "ha_policy": "restart", "hosts": [self.host] }))),
            "delete_host_group" => {
                let (st, b) = self.admin.put(&format!("/v1/host-groups/d{n}"), json!({ "ha_policy": "leave_stopped", "hosts": [] })).await;
                assert_eq!(st, StatusCode::OK, "{b}");
                req(Method::DELETE, format!("/v1/host-groups/d{n}"), None)
            }
            "evacuate_host" => req(Method::POST, format!("/v1/hosts/{}/evacuate", self.spare_host().await), None),
            "get_evacuation" => {
                let h = self.spare_host().await;
                let (st, b) = self.admin.post(&format!("/v1/hosts/{h}/evacuate"), json!({})).await;
                assert_eq!(st, StatusCode::ACCEPTED, "{b}");
                req(Method::GET, format!("/v1/hosts/{h}/evacuation"), None)
            }
            "propose_consolidation" => req(Method::POST, "/v1/consolidation/plans", Some(json!({ "zone_id": self.zone }))),
            "list_consolidation_plans" => req(Method::GET, "/v1/consolidation/plans", None),
            "get_consolidation_plan" => {
                let (st, b) = self.admin.post("/v1/consolidation/plans", json!({ "zone_id": self.zone })).await;
                assert_eq!(st, StatusCode::CREATED, "{b}");
                req(Method::GET, format!("/v1/consolidation/plans/{}", b["id"].as_str().expect("plan id")), None)
            }
            "approve_consolidation_plan" => {
                let zone = self.consolidation_zone().await;
                let (st, b) = self.admin.post("/v1/consolidation/plans", json!({ "zone_id": zone })).await;
                assert_eq!(st, StatusCode::CREATED, "{b}");
                assert_eq!(b["moves"].as_array().map(|m| m.len()), Some(1), "{b}");
                req(Method::POST, format!("/v1/consolidation/plans/{}/approve", b["id"].as_str().expect("plan id")), Some(json!({ "generation": b["generation"] })))
            }
            "stop_consolidation_plan" => {
                let (st, b) = self.admin.post("/v1/consolidation/plans", json!({ "zone_id": self.zone })).await;
                assert_eq!(st, StatusCode::CREATED, "{b}");
                req(Method::POST, format!("/v1/consolidation/plans/{}/stop", b["id"].as_str().expect("plan id")), None)
            }
            "release_volume" => req(Method::POST, format!("/v1/volumes/{}/release", self.volume().await), Some(json!({ "reason": "不再需要" }))),
            "restore_volume" => {
                let v = self.volume().await;
                let (st, b) = self.admin.post(&format!("/v1/volumes/{v}/release"), json!({})).await;
                assert_eq!(st, StatusCode::OK, "{b}");
                req(Method::POST, format!("/v1/volumes/{v}/restore"), None)
            }
            "get_lease_settings" => req(Method::GET, "/v1/system/lease-settings", None),
            "update_lease_settings" => req(Method::PUT, "/v1/system/lease-settings", Some(serde_json::to_value(zy_model::lease::LeaseSettings::default()).expect("settings"))),
            "instance_sagas" => req(Method::GET, format!("/v1/instances/{i}/sagas"), None),
            "list_tasks" => req(Method::GET, "/v1/system/tasks", None),
            "list_sagas" => req(Method::GET, "/v1/system/sagas", None),
            "create_join_token" => req(Method::POST, format!("/v1/zones/{}/join-tokens", self.kvm_zone), Some(json!({ "valid_hours": 1 }))),
            "list_join_tokens" => req(Method::GET, "/v1/join-tokens", None),
            "join_agent" => {
                let (st, t) = self.admin.post(&format!("/v1/zones/{}/join-tokens", self.kvm_zone), json!({})).await;
                assert_eq!(st, StatusCode::CREATED, "{t}");
                let (csr, _key) = zy_pki::new_csr(&format!("agent{n}")).expect("csr");
                let body = json!({ "token": t["token"], "csr_pem": csr, "name": format!("kvm{n}"), "address": "127.0.0.1:9", "capacity": { "vcpus": 2, "memory_mib": 4096, "disk_gib": 10, "disk_free_gib": 5, "accel": "tcg", "qemu_version": "" } });
                req(Method::POST, "/v1/agents/join", Some(body))
            }
            "list_agents" => req(Method::GET, "/v1/agents", None),
            "list_storage_pools" => req(Method::GET, "/v1/storage-pools", None),
            "create_storage_pool" => req(Method::POST, "/v1/storage-pools", Some(json!({ "zone_id": self.zone, "name": format!("池{n}"), "capacity_gib": 1000 }))),
            "list_volumes" => req(Method::GET, "/v1/volumes", None),
            "create_volume" => req(Method::POST, "/v1/volumes", Some(json!({ "project_id": p, "name": format!("盘{n}"), "size_gib": 10 }))),
            "get_volume" => req(Method::GET, format!("/v1/volumes/{}", self.volume), None),
            "delete_volume" => req(Method::DELETE, format!("/v1/volumes/{}", self.volume().await), None),
            "attach_volume" => {
                let v = self.volume().await;
                let body = json!({ "instance_id": self.instance_in("running").await });
                req(Method::POST, format!("/v1/volumes/{v}/attach"), Some(body))
            }
            "detach_volume" => req(Method::POST, format!("/v1/volumes/{}/detach", self.attached_volume().await), None),
            "extend_volume" => req(Method::POST, format!("/v1/volumes/{}/extend", self.volume().await), Some(json!({ "size_gib": 20 }))),
            "list_vpcs" => req(Method::GET, "/v1/vpcs", None),
            "create_vpc" => req(Method::POST, "/v1/vpcs", Some(json!({ "project_id": p, "name": format!("网络{n}") }))),
            "get_vpc" => req(Method::GET, format!("/v1/vpcs/{}", self.vpc().await.0), None),
            "update_vpc" => req(Method::PATCH, format!("/v1/vpcs/{}", self.vpc().await.0), Some(json!({ "outbound": false }))),
            "delete_vpc" => req(Method::DELETE, format!("/v1/vpcs/{}", self.vpc().await.0), None),
            "create_subnet" => req(Method::POST, format!("/v1/vpcs/{}/subnets", self.vpc().await.0), Some(json!({ "name": format!("子网{n}"), "cidr": "10.2.0.0/24", "dns_servers": ["10.2.0.2"] }))),
            "delete_subnet" => req(Method::DELETE, format!("/v1/subnets/{}", self.vpc().await.1), None),
            "list_nics" => req(Method::GET, format!("/v1/instances/{}/nics", self.instance), None),
            "create_nic" => req(Method::POST, format!("/v1/instances/{}/nics", self.instance), Some(json!({ "subnet_id": self.vpc().await.1, "ip": "10.1.0.9" }))),
            "delete_nic" => req(Method::DELETE, format!("/v1/nics/{}", self.nic().await), None),
            "set_nic_security_groups" => req(Method::PUT, format!("/v1/nics/{}/security-groups", self.nic().await), Some(json!({ "security_group_ids": [self.security_group().await] }))),
            "list_security_groups" => req(Method::GET, "/v1/security-groups", None),
            "create_security_group" => req(Method::POST, "/v1/security-groups", Some(json!({ "project_id": p, "name": format!("安全组{n}") }))),
            "get_security_group" => req(Method::GET, format!("/v1/security-groups/{}", self.security_group().await), None),
            "delete_security_group" => req(Method::DELETE, format!("/v1/security-groups/{}", self.security_group().await), None),
            "set_security_group_rules" => req(Method::PUT, format!("/v1/security-groups/{}/rules", self.security_group().await), Some(json!({ "generation": 1, "rules": [{ "direction": "ingress", "protocol": "tcp", "port_min": 8080 }] }))),
            "list_external_networks" => req(Method::GET, "/v1/external-networks", None),
            "create_external_network" => req(Method::POST, "/v1/external-networks", Some(json!({ "zone_id": self.zone, "name": format!("外网{n}"), "cidr": "198.19.0.0/24", "host_interface": "br-ext" }))),
            "list_elastic_ips" => req(Method::GET, "/v1/elastic-ips", None),
            "allocate_elastic_ip" => req(Method::POST, "/v1/elastic-ips", Some(json!({ "project_id": p, "external_network_id": self.external_network().await }))),
            "bind_elastic_ip" => req(Method::POST, format!("/v1/elastic-ips/{}/bind", self.elastic_ip(false).await), Some(json!({ "nic_id": self.nic().await }))),
            "unbind_elastic_ip" => req(Method::POST, format!("/v1/elastic-ips/{}/unbind", self.elastic_ip(true).await), None),
            "release_elastic_ip" => req(Method::DELETE, format!("/v1/elastic-ips/{}", self.elastic_ip(false).await), None),
            "host_firewall" => req(Method::GET, format!("/v1/hosts/{}/firewall", self.host), None),
            "list_load_balancers" => req(Method::GET, "/v1/load-balancers", None),
            "create_load_balancer" => req(Method::POST, "/v1/load-balancers", Some(json!({ "project_id": p, "subnet_id": self.vpc().await.1, "name": format!("负载均衡{n}"), "listeners": [{ "protocol": "http", "port": 80, "algorithm": "round_robin" }] }))),
            "get_load_balancer" => req(Method::GET, format!("/v1/load-balancers/{}", self.load_balancer().await), None),
            "delete_load_balancer" => req(Method::DELETE, format!("/v1/load-balancers/{}", self.load_balancer().await), None),
            "set_load_balancer_listeners" => req(Method::PUT, format!("/v1/load-balancers/{}/listeners", self.load_balancer().await), Some(json!({ "listeners": [{ "protocol": "tcp", "port": 443, "algorithm": "least_connections" }] }))),
            "list_requests" => req(Method::GET, "/v1/requests?view=all", None),
            "create_request" => req(Method::POST, "/v1/requests", Some(json!({ "project_id": p, "kind": "new", "title": format!("申请{n}"), "purpose": "测试", "items": [{ "type": "volume", "name": format!("rv{n}"), "size_gib": 10 }] }))),
            "get_request" => req(Method::GET, format!("/v1/requests/{}", self.request_in("draft").await.0), None),
            "update_request" => {
                let (id, g) = self.request_in("draft").await;
                req(Method::PUT, format!("/v1/requests/{id}"), Some(json!({ "project_id": p, "kind": "new", "title": format!("改{n}"), "purpose": "测试", "items": [{ "type": "volume", "name": format!("rv{n}"), "size_gib": 20 }], "generation": g })))
            }
            "delete_request" => req(Method::DELETE, format!("/v1/requests/{}", self.request_in("draft").await.0), None),
            "submit_request" => req(Method::POST, format!("/v1/requests/{}/submit", self.request_in("draft").await.0), Some(json!({}))),
            "withdraw_request" => req(Method::POST, format!("/v1/requests/{}/withdraw", self.request_in("pending").await.0), None),
            "copy_request" => req(Method::POST, format!("/v1/requests/{}/copy", self.request_in("draft").await.0), None),
            "approve_request" => req(Method::POST, format!("/v1/requests/{}/approve", self.request_in("pending").await.0), Some(json!({ "step": 0 }))),
            "reject_request" => req(Method::POST, format!("/v1/requests/{}/reject", self.request_in("pending").await.0), Some(json!({ "reason": "不需要" }))),
            "return_request" => req(Method::POST, format!("/v1/requests/{}/return", self.request_in("pending").await.0), Some(json!({ "reason": "补充材料" }))),
            "accept_request" => req(Method::POST, format!("/v1/requests/{}/accept", self.request_in("delivered").await.0), None),
            "report_problem" => req(Method::POST, format!("/v1/requests/{}/problem", self.request_in("delivered").await.0), Some(json!({ "reason": "无法登录" }))),
            "redeliver_request" => req(Method::POST, format!("/v1/requests/{}/redeliver", self.request_in("problem").await.0), Some(json!({ "reason": "已重置密码" }))),
            "list_approval_chains" => req(Method::GET, "/v1/approval-chains", None),
            "set_approval_chain" => req(Method::PUT, "/v1/approval-chains", Some(json!({ "department_id": d, "kind": "release", "steps": [{ "name": "部门审核", "role": "dept_admin", "scope": "department", "deadline_hours": 24 }] }))),
            "delete_approval_chain" => {
                let (st, b) = self.admin.put("/v1/approval-chains", json!({ "department_id": d, "kind": "change", "steps": [{ "name": "部门审核", "role": "dept_admin", "scope": "department", "deadline_hours": 24 }] })).await;
                assert_eq!(st, StatusCode::OK, "{b}");
                req(Method::DELETE, format!("/v1/approval-chains/{d}/change"), None)
            }
            "set_requests_only" => req(Method::PUT, format!("/v1/departments/{d}/requests-only"), Some(json!({ "enabled": false }))),
            "list_notifications" => req(Method::GET, "/v1/me/notifications?unread=true", None),
            "unread_notifications" => req(Method::GET, "/v1/me/notifications/unread-count", None),
            "read_notification" => {
                let id = match caller {
                    Caller::Anonymous => uuid::Uuid::now_v7().to_string(),
                    c => self.notice_for(self.session(c)).await,
                };
                req(Method::POST, format!("/v1/me/notifications/{id}/read"), None)
            }
            "read_all_notifications" => req(Method::POST, "/v1/me/notifications/read-all", None),
            "get_notification_preferences" => req(Method::GET, "/v1/me/notification-preferences", None),
            "update_notification_preferences" => req(Method::PUT, "/v1/me/notification-preferences", Some(json!({ "language": "zh-CN", "email_off": ["approval_reminder"] }))),
            "get_mail_settings" => req(Method::GET, "/v1/notify/mail", None),
            "update_mail_settings" => req(Method::PUT, "/v1/notify/mail", Some(json!({ "enabled": false, "host": "127.0.0.1", "port": 2525, "from": "noreply@zhengyun.local", "security": "none" }))),
            "list_mail_deliveries" => req(Method::GET, "/v1/notify/mail/deliveries", None),
            "list_webhooks" => req(Method::GET, format!("/v1/webhooks?department_id={d}"), None),
            "create_webhook" => req(Method::POST, "/v1/webhooks", Some(json!({ "name": format!("OA 待办{n}"), "url": "http://127.0.0.1:9/hooks/zhengyun", "kinds": ["approval_needed"], "department_id": d }))),
            "update_webhook" => req(Method::PATCH, format!("/v1/webhooks/{}", self.webhook().await), Some(json!({ "enabled": false }))),
            "delete_webhook" => req(Method::DELETE, format!("/v1/webhooks/{}", self.webhook().await), None),
            "list_webhook_deliveries" => req(Method::GET, format!("/v1/webhooks/{}/deliveries", self.webhook().await), None),
            "list_alert_rules" => req(Method::GET, "/v1/alert-rules", None),
            "create_alert_rule" => req(Method::POST, "/v1/alert-rules", Some(self.alert_rule_body())),
            "delete_alert_rule" => req(Method::DELETE, format!("/v1/alert-rules/{}", self.alert_rule().await), None),
            "list_alerts" => req(Method::GET, "/v1/alerts", None),
            "list_tickets" => req(Method::GET, "/v1/tickets", None),
            "open_ticket" => req(Method::POST, "/v1/tickets", Some(self.ticket_body())),
            "get_ticket" => req(Method::GET, format!("/v1/tickets/{}", self.ticket_in("open").await), None),
            "accept_ticket" => req(Method::POST, format!("/v1/tickets/{}/accept", self.ticket_in("open").await), Some(json!({ "note": "已受理" }))),
            "resolve_ticket" => req(Method::POST, format!("/v1/tickets/{}/resolve", self.ticket_in("accepted").await), Some(json!({ "note": "已修复" }))),
            "reopen_ticket" => req(Method::POST, format!("/v1/tickets/{}/reopen", self.ticket_in("resolved").await), Some(json!({ "note": "问题仍在" }))),
            "comment_ticket" => req(Method::POST, format!("/v1/tickets/{}/comments", self.ticket_in("open").await), Some(json!({ "note": "补充说明" }))),
            "close_ticket" => req(Method::POST, format!("/v1/tickets/{}/close", self.ticket_in("resolved").await), Some(json!({ "rating": 5 }))),
            "get_ticket_settings" => req(Method::GET, "/v1/ticket-settings", None),
            "set_ticket_settings" => req(Method::PUT, "/v1/ticket-settings", Some(serde_json::to_value(zy_model::operations::TicketSettings::default()).expect("json"))),
            "list_inspection_plans" => req(Method::GET, "/v1/inspection-plans", None),
            "create_inspection_plan" => req(Method::POST, "/v1/inspection-plans", Some(json!({ "name": format!("容量巡检{n}"), "checks": ["capacity"], "hour": 3 }))),
            "delete_inspection_plan" => req(Method::DELETE, format!("/v1/inspection-plans/{}", self.inspection_plan().await), None),
            "run_inspection_plan" => req(Method::POST, format!("/v1/inspection-plans/{}/run", self.inspection_plan().await), None),
            "list_inspection_runs" => req(Method::GET, "/v1/inspection-runs", None),
            "get_inspection_run" => req(Method::GET, format!("/v1/inspection-runs/{}", self.inspection_run().await), None),
            "list_sla_scores" => req(Method::GET, "/v1/sla/scores", None),
            "compute_sla_scores" => req(Method::POST, "/v1/sla/scores/2026-11/compute", None),
            "get_sla_policy" => req(Method::GET, "/v1/sla/policy", None),
            "set_sla_policy" => req(Method::PUT, "/v1/sla/policy", Some(serde_json::to_value(zy_model::operations::SlaPolicy::default()).expect("json"))),
            "list_alert_history" => req(Method::GET, "/v1/alerts/history", None),
            "list_silences" => req(Method::GET, "/v1/alert-silences", None),
            "create_silence" => req(Method::POST, "/v1/alert-silences", Some(self.silence_body())),
            "delete_silence" => req(Method::DELETE, format!("/v1/alert-silences/{}", self.silence().await), None),
            "get_remote_write" => req(Method::GET, "/v1/metrics/remote-write", None),
            "set_remote_write" => req(Method::PUT, "/v1/metrics/remote-write", Some(json!({ "enabled": false, "url": "http://127.0.0.1:9/api/v1/write" }))),
            "prometheus_metrics" => req(Method::GET, "/v1/metrics/prometheus", None),
            "query_metrics" => req(Method::GET, format!("/v1/metrics/query?scope=instance&id={i}&series=cpu,up"), None),
            "usage_report" => req(Method::GET, format!("/v1/usage?department_id={d}"), None),
            "list_price_versions" => req(Method::GET, "/v1/price-versions", None),
            "create_price_version" => req(Method::POST, "/v1/price-versions", Some(self.price_version_body())),
            "withdraw_price_version" => req(Method::DELETE, format!("/v1/price-versions/{}", self.future_price_version().await), None),
            "list_billing_months" => req(Method::GET, "/v1/billing/months", None),
            "close_month" => req(Method::POST, format!("/v1/billing/months/{}/close", self.fresh_month()), None),
            "set_billing_clock" => {
                let to = zy_model::time::Timestamp::now().plus_secs(3600 + 60 * i64::from(n));
                req(Method::POST, "/v1/billing/clock", Some(json!({ "to": to })))
            }
            "list_bills" => req(Method::GET, format!("/v1/bills?department_id={d}"), None),
            "get_bill" => req(Method::GET, format!("/v1/bills/2000-01/{d}"), None),
            "export_bill" => req(Method::GET, format!("/v1/bills/2000-01/{d}/export"), None),
            "adjust_bill" => req(Method::POST, format!("/v1/bills/{}/{d}/adjustments", self.closed_month().await), Some(json!({ "amount": -1250, "reason": "宕机补偿 / outage credit" }))),
            "confirm_bill" => req(Method::POST, format!("/v1/bills/{}/{d}/confirm", self.closed_month().await), None),
            "pay_bill" => req(Method::POST, format!("/v1/bills/{}/{d}/pay", self.confirmed_month().await), None),
            "list_provider_bills" => req(Method::GET, "/v1/provider-bills", None),
            "get_budget" => req(Method::GET, format!("/v1/budgets/{d}"), None),
            "set_budget" => req(Method::PUT, format!("/v1/budgets/{d}"), Some(json!({ "monthly": 5_000_000 }))),
            "list_reconciliations" => req(Method::GET, "/v1/reconciliations", None),
            "create_reconciliation" => req(Method::POST, "/v1/reconciliations", Some(json!({
                "provider_id": self.provider, "month": "2000-01", "source": "invoice.csv",
                "csv": "resource_id,hours,amount\nabc,720,12.50\n"
            }))),
            "list_address_blocks" => req(Method::GET, "/v1/address-plan", None),
            "create_address_block" => req(Method::POST, "/v1/address-plan", Some(json!({ "cidr": format!("172.{}.{}.0/24", 16 + n / 256 % 16, n % 256), "department_id": d, "description": "政务外网 / e-government network" }))),
            "delete_address_block" => req(Method::DELETE, format!("/v1/address-plan/{}", self.address_block().await.0), None),
            "list_security_events" => req(Method::GET, format!("/v1/security-events?department_id={d}"), None),
            "security_event_counts" => req(Method::GET, format!("/v1/security-events/counts?by=category&department_id={d}"), None),
            "syslog_intake" => req(Method::GET, "/v1/security-events/intake", None),
            "get_security_policy" => req(Method::GET, "/v1/security-policy", None),
            "update_security_policy" => req(Method::PUT, "/v1/security-policy", Some(json!({ "event_retention_days": 180, "deadline_days_critical": 7, "deadline_days_high": 15, "deadline_days_medium": 30, "deadline_days_low": 90 }))),
            "list_security_event_rules" => req(Method::GET, "/v1/security-event-rules", None),
            "create_security_event_rule" => req(Method::POST, "/v1/security-event-rules", Some(json!({ "name": format!("高危事件{n}"), "department_id": d, "min_severity": "high", "threshold": 100, "window_minutes": 10 }))),
            "delete_security_event_rule" => req(Method::DELETE, format!("/v1/security-event-rules/{}", self.event_rule().await), None),
            "list_vulnerabilities" => req(Method::GET, format!("/v1/vulnerabilities?department_id={d}"), None),
            "vulnerability_counts" => req(Method::GET, format!("/v1/vulnerabilities/counts?by=department&department_id={d}"), None),
            "import_vulnerabilities" => req(Method::POST, "/v1/vulnerability-imports", Some(json!({ "source": "scan.csv", "format": "csv", "content": format!("address,port,vuln_id,title,severity\n198.18.{}.{},22,SSH-1,弱口令,high\n", n / 256 % 256, n % 256) }))),
            "set_vulnerability_state" => req(Method::POST, format!("/v1/vulnerabilities/{}/state", self.vulnerability().await), Some(json!({ "state": "fixing", "note": "已安排升级 / upgrade scheduled" }))),
            "get_indicators" => req(Method::GET, format!("/v1/supervision/indicators?scope=department&id={d}"), None),
            "compare_providers" => req(Method::GET, "/v1/supervision/providers", None),
            "rank_departments" => req(Method::GET, "/v1/supervision/departments?sort=spend", None),
            "indicator_trends" => req(Method::GET, format!("/v1/supervision/trends?scope=department&id={d}&months=3"), None),
            "supervision_dashboard" => req(Method::GET, "/v1/supervision/dashboard", None),
            "refresh_indicators" => req(Method::POST, "/v1/supervision/refresh", None),
            "list_ops_reports" => req(Method::GET, "/v1/supervision/reports", None),
            "create_ops_report" => req(Method::POST, "/v1/supervision/reports", Some(json!({ "month": zy_server::app::billing::month_of(zy_model::time::Timestamp::now()) }))),
            "download_ops_report" => req(Method::GET, format!("/v1/supervision/reports/{}/pdf", self.ops_report().await), None),
            "list_idle_resources" => req(Method::GET, "/v1/idle-resources?state=all", None),
            "reclaimed_capacity" => req(Method::GET, "/v1/idle-resources/reclaimed", None),
            "reclaim_idle_resource" => req(Method::POST, format!("/v1/idle-resources/{}/reclaim", self.idle_finding().await), Some(json!({}))),
            "dismiss_idle_resource" => req(Method::POST, format!("/v1/idle-resources/{}/dismiss", self.idle_finding().await), Some(json!({ "reason": "年底扩容备用 / reserved for the year-end peak" }))),
            "get_idle_settings" => req(Method::GET, "/v1/idle-settings", None),
            "update_idle_settings" => req(Method::PUT, "/v1/idle-settings", Some(json!({ "cpu_p95_percent": 5.0, "cpu_window_days": 14, "stopped_days": 30, "unattached_days": 30 }))),
            other => panic!("operation {other} has no request in world.rs: add one to World::request (and a row to authz.rs's TABLE)"),
        }
    }

    /// Sends `r` as `caller` (or with the request's own session); returns the status, the
    /// body and the request id the server gave it.
    pub async fn send(&self, caller: Caller, r: Req) -> (StatusCode, Value, String) {
        let s = r.session.as_ref().unwrap_or_else(|| self.session(caller));
        let mut rq = self
            .ts
            .http
            .request(r.method, format!("{}{}", self.ts.url, r.path));
        if let Some(b) = &s.bearer {
            rq = rq.bearer_auth(b);
        }
        if let Some(body) = r.body {
            rq = rq.json(&body);
        }
        let resp = rq.send().await.expect("request sent");
        let st = resp.status();
        let rid = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if st.is_client_error() || st.is_server_error() {
            assert_error_body(st, &v);
        }
        (st, v, rid)
    }
}

/// Settings of an OpenStack provider whose Keystone is at `url`.
pub fn openstack_settings(url: &str) -> Value {
    json!({ "auth_url": url, "credential": { "type": "application_credential", "id": "zy", "secret": "stub-secret" } })
}

/// The same, with the stub's project mapped to department `d` and project `p`.
pub fn openstack_settings_mapped(url: &str, d: &str, p: &str) -> Value {
    let mut v = openstack_settings(url);
    v["projects"] =
        json!([{ "openstack_project": "stub-project", "department_id": d, "project_id": p }]);
    v
}

/// A loopback stub of Keystone and Nova: a token with a catalogue (for the secret
/// `stub-secret` only; any other is refused as Keystone does), Nova's version document, no
/// hypervisors. Returns Keystone's URL.
pub async fn openstack_stub() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let b = base.clone();
    // The servers made "outside zhengyun": one more each time the project's servers are
    // listed, so each synchronisation finds a new one to adopt or dismiss.
    let outside: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let server = |id: &str| {
        json!({"id": id, "name": format!("outside-{}", &id[..8]), "status": "ACTIVE",
               "tenant_id": "stub-project", "metadata": {},
               "flavor": {"vcpus": 1, "ram": 512, "disk": 1, "original_name": "m1.tiny"},
               "OS-EXT-SRV-ATTR:hypervisor_hostname": "stub-hv"})
    };
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let base = b.clone();
            let outside = outside.clone();
            tokio::spawn(async move {
                let Some(text) = read_request(&mut s).await else {
                    return;
                };
                let line = text.lines().next().unwrap_or_default().to_string();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body) = if path.starts_with("/v3/auth/tokens")
                    && !text.contains("stub-secret")
                {
                    (
                        401,
                        "",
                        json!({"error": {"code": 401, "title": "Unauthorized",
                            "message": "The request you have made requires authentication."}}),
                    )
                } else if path.starts_with("/v3/auth/tokens") {
                    let body = json!({"token": {"expires_at": "2099-01-01T00:00:00Z",
                        "project": {"id": "stub-project"},
                        "catalog": [{"type": "compute", "endpoints": [
                            {"interface": "public", "region_id": "RegionOne", "url": format!("{base}/compute")}]}]}});
                    (201, "X-Subject-Token: stub-token\r\n", body)
                } else if path == "/compute" || path == "/compute/" {
                    (
                        200,
                        "",
                        json!({"version": {"version": "2.79", "min_version": "2.1"}}),
                    )
                } else if path.starts_with("/compute/os-hypervisors") {
                    // One hypervisor without capacity: nothing is ever scheduled there.
                    (
                        200,
                        "",
                        json!({"hypervisors": [{"id": "1", "hypervisor_hostname": "stub-hv", "state": "up",
                            "vcpus": 0, "memory_mb": 0, "local_gb": 0, "service": {"host": "stub-hv"}}]}),
                    )
                } else if path.starts_with("/compute/os-availability-zone") {
                    (200, "", json!({"availabilityZoneInfo": []}))
                } else if path.starts_with("/compute/servers/detail?limit=") {
                    let mut ids = outside.lock().expect("stub");
                    ids.push(uuid::Uuid::new_v4().to_string());
                    (
                        200,
                        "",
                        json!({"servers": ids.iter().map(|i| server(i)).collect::<Vec<_>>()}),
                    )
                } else if let Some(id) = path
                    .strip_prefix("/compute/servers/")
                    .filter(|id| outside.lock().expect("stub").iter().any(|o| o == id))
                {
                    (200, "", json!({"server": server(id)}))
                } else if path.starts_with("/compute/servers") {
                    (200, "", json!({"servers": []}))
                } else {
                    (
                        404,
                        "",
                        json!({"itemNotFound": {"message": "not in the stub", "code": 404}}),
                    )
                };
                answer(&mut s, status, extra, &body).await;
            });
        }
    });
    format!("{base}/v3")
}

/// Reads one HTTP request from a stub's connection: the headers, then as much body as
/// Content-Length says; `None` when the client went away first.
pub async fn read_request(s: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(text);
            }
        }
    }
}

/// A stub's JSON answer (`extra`: more header lines, each ending in CRLF); the connection
/// closes after it.
pub async fn answer(s: &mut tokio::net::TcpStream, status: u16, extra: &str, body: &Value) {
    use tokio::io::AsyncWriteExt;
    let body = body.to_string();
    let _ = s
        .write_all(
            format!(
                "HTTP/1.1 {status} Stub\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await;
}
