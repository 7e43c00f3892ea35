//! An `openstack` provider against a real OpenStack control plane: the test bed of
//! `cargo xtask openstack up` (Keystone, Placement, Nova with the fake virt driver, Glance,
//! Neutron, Cinder on loopback), whose endpoint and credentials arrive as `ZY_OPENSTACK_*`
//! variables. Without them the bed tests skip with a message, unless `ZY_REQUIRE_OPENSTACK`
//! is set (as `cargo xtask test` does): then they fail.
//!
//! The error tests (wrong credentials, an unreachable endpoint, a provider answering 500)
//! need no bed: they run against a closed port and a loopback stub.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use zy_model::role::Role;

pub(crate) struct Bed {
    auth_url: String,
    user: String,
    password: String,
    project: String,
    network: String,
    python: String,
    script: String,
    dir: String,
}

pub(crate) fn bed() -> Option<Bed> {
    let v = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    match (
        v("ZY_OPENSTACK_AUTH_URL"),
        v("ZY_OPENSTACK_PASSWORD"),
        v("ZY_OPENSTACK_NETWORK_ID"),
    ) {
        (Some(auth_url), Some(password), Some(network)) => Some(Bed {
            auth_url,
            user: v("ZY_OPENSTACK_USERNAME").unwrap_or_else(|| "admin".into()),
            password,
            project: v("ZY_OPENSTACK_TEST_PROJECT").unwrap_or_else(|| "zhengyun".into()),
            network,
            python: v("ZY_OPENSTACK_PYTHON").unwrap_or_default(),
            script: v("ZY_OPENSTACK_BED_SCRIPT").unwrap_or_default(),
            dir: v("ZY_OPENSTACK_BED").unwrap_or_default(),
        }),
        _ => {
            assert!(
                std::env::var_os("ZY_REQUIRE_OPENSTACK").is_none(),
                "ZY_REQUIRE_OPENSTACK is set but the bed's variables are missing: run cargo xtask openstack up"
            );
            eprintln!("SKIPPED: no OpenStack test bed (cargo xtask openstack up, then its env)");
            None
        }
    }
}

impl Bed {
    pub(crate) fn settings(&self) -> Value {
        json!({
            "auth_url": self.auth_url,
            "region": "RegionOne",
            "credential": { "type": "password", "username": self.user, "password": self.password,
                            "project": self.project },
            "network": self.network,
        })
    }

    fn service(&self, what: &str, name: &str) {
        let st = std::process::Command::new(&self.python)
            .arg(&self.script)
            .arg(what)
            .arg(&self.dir)
            .arg(name)
            .status()
            .expect("run the bed script");
        assert!(st.success(), "{what} {name}");
    }
}

/// The provider's own view, straight from its APIs (not through zhengyun).
pub(crate) struct Nova {
    pub(crate) http: reqwest::Client,
    pub(crate) token: String,
    compute: String,
    /// Cinder's endpoint.
    pub(crate) volume: String,
    /// The id of the project the bed's credential is scoped to.
    pub(crate) project_id: String,
}

impl Nova {
    pub(crate) async fn login(b: &Bed) -> Nova {
        let http = reqwest::Client::new();
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": b.user, "domain": {"name": "Default"}, "password": b.password}}},
            "scope": {"project": {"name": b.project, "domain": {"name": "Default"}}}}});
        let r = http
            .post(format!("{}/auth/tokens", b.auth_url))
            .json(&body)
            .send()
            .await
            .expect("keystone");
        let token = r.headers()["X-Subject-Token"]
            .to_str()
            .expect("token")
            .to_string();
        let v: Value = r.json().await.expect("token body");
        let endpoint = |kind: &str| {
            v["token"]["catalog"]
                .as_array()
                .expect("catalog")
                .iter()
                .find(|s| s["type"] == kind)
                .and_then(|s| {
                    s["endpoints"]
                        .as_array()?
                        .iter()
                        .find(|e| e["interface"] == "public")
                })
                .and_then(|e| e["url"].as_str())
                .map(|u| u.trim_end_matches('/').to_string())
        };
        let compute = endpoint("compute").expect("compute endpoint");
        let volume = endpoint("volumev3")
            .or_else(|| endpoint("block-storage"))
            .unwrap_or_default();
        let project_id = v["token"]["project"]["id"]
            .as_str()
            .expect("project id")
            .to_string();
        Nova {
            http,
            token,
            compute,
            volume,
            project_id,
        }
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(format!("{}{path}", self.compute))
            .header("X-Auth-Token", &self.token)
            .send()
            .await
            .expect("nova")
            .status()
    }

    /// Creates a server directly (not through zhengyun) and waits for it to be ACTIVE;
    /// returns its id.
    async fn create_outside(&self, name: &str, flavor: &str, image: &Value) -> String {
        let r = self
            .http
            .post(format!("{}/servers", self.compute))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "compute 2.79")
            .json(&json!({"server": {"name": name, "flavorRef": flavor,
                "imageRef": image, "networks": "none"}}))
            .send()
            .await
            .expect("nova");
        assert!(r.status().is_success(), "{}", r.status());
        let v: Value = r.json().await.expect("json");
        let id = v["server"]["id"].as_str().expect("server id").to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.get(&format!("/servers/{id}")).await;
            if s["server"]["status"] == "ACTIVE" && s["server"]["OS-EXT-STS:task_state"].is_null() {
                return id;
            }
            assert!(Instant::now() < deadline, "{name} never ACTIVE: {s}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        for _ in 0..60 {
            if let Ok(r) = self
                .http
                .get(format!("{}{path}", self.compute))
                .header("X-Auth-Token", &self.token)
                .header("OpenStack-API-Version", "compute 2.79")
                .send()
                .await
            {
                if r.status().is_success() {
                    return r.json().await.expect("json");
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("Nova does not answer {path}");
    }

    async fn post(&self, path: &str, body: Value) -> StatusCode {
        self.http
            .post(format!("{}{path}", self.compute))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "compute 2.79")
            .json(&body)
            .send()
            .await
            .expect("nova")
            .status()
    }

    /// The servers that carry a zhengyun instance's marker.
    pub(crate) async fn servers_of(&self, instance: &str) -> Vec<Value> {
        let v = self.get("/servers/detail").await;
        v["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .filter(|s| s["metadata"]["zhengyun_instance_id"] == instance)
            .cloned()
            .collect()
    }

    async fn wait_status(&self, instance: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.servers_of(instance).await;
            if s.len() == 1 && s[0]["status"] == status {
                return s[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "server of {instance} never {status}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

pub(crate) struct Cloud {
    pub(crate) admin: Session,
    pub(crate) member: Session,
    pub(crate) supervisor: Session,
    pub(crate) department: String,
    pub(crate) project: String,
    pub(crate) provider: String,
}

pub(crate) async fn cloud(ts: &TestServer, b: &Bed) -> Cloud {
    let admin = ts.platform_admin().await;
    let (st, prov) = admin
        .post(
            "/v1/providers",
            json!({ "name": "浪潮云（OpenStack）", "kind": "openstack", "openstack": b.settings() }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{prov}");
    let provider = prov["id"].as_str().expect("id").to_string();
    // The secret is never returned.
    let (st, view) = admin
        .get(&format!("/v1/providers/{provider}/openstack"))
        .await;
    assert_eq!(st, StatusCode::OK, "{view}");
    assert!(!view.to_string().contains(&b.password), "{view}");
    assert_eq!(view["credential_type"], "password");
    // Nova's hypervisors become the provider's (read-only) hosts.
    let sync = zone_and_sync(&admin, &provider, "nova 可用区").await;
    assert!(sync["hypervisors"].as_u64().unwrap_or(0) >= 1, "{sync}");
    let (_, hosts) = admin.get("/v1/hosts").await;
    assert!(
        hosts["items"]
            .as_array()
            .expect("hosts")
            .iter()
            .any(|h| h["provider_id"] == provider.as_str()
                && h["name"].as_str().unwrap_or("").contains("OpenStack")),
        "{hosts}"
    );
    for (name, vcpus, mem) in [("1C512M", 1, 512), ("1C2G", 1, 2048)] {
        let (st, f) = admin
            .post(
                "/v1/flavors",
                json!({ "name": name, "vcpus": vcpus, "memory_mib": mem }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{f}");
    }
    let (st, img) = admin
        .post(
            "/v1/images",
            json!({ "name": "cirros", "os": "Linux", "min_disk_gib": 1, "providers": [provider] }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{img}");
    let d = department(&admin, "宜宾市大数据局", "DSJ").await;
    let project = project(&admin, &d, "政务服务平台").await;
    let member = ts.new_user(&admin, "dsj.ops", Some(&d)).await;
    ts.grant(&admin, &member, Role::DeptMember, Some(&d), Some(&project))
        .await;
    let supervisor = ts.new_user(&admin, "jianguan", None).await;
    ts.grant(&admin, &supervisor, Role::Supervisor, None, None)
        .await;
    Cloud {
        admin,
        member,
        supervisor,
        department: d,
        project,
        provider,
    }
}

/// Gives the provider a zone named `zone` and synchronises it now (its hypervisors become
/// hosts; in mode `auto` servers are adopted); returns the synchronisation's report.
pub(crate) async fn zone_and_sync(admin: &Session, provider: &str, zone: &str) -> Value {
    let (st, z) = admin
        .post(
            "/v1/zones",
            json!({ "provider_id": provider, "region": "宜宾", "name": zone }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{z}");
    let (st, sync) = admin
        .post(
            &format!("/v1/providers/{provider}/openstack/sync"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    sync
}

impl Cloud {
    pub(crate) async fn create(&self, name: &str, count: u32) -> Vec<String> {
        let (st, v) = self
            .member
            .post(
                "/v1/instances",
                json!({ "project_id": self.project, "name": name, "flavor": "1C512M",
                        "image": "cirros", "count": count, "provider_id": self.provider }),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_string())
            .collect()
    }

    pub(crate) async fn instance(&self, id: &str) -> Value {
        self.member.get(&format!("/v1/instances/{id}")).await.1
    }

    /// Waits until the instance is in one of `states`; returns it.
    pub(crate) async fn wait_for(&self, id: &str, states: &[&str], limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let i = self.instance(id).await;
            if states.iter().any(|s| i["state"] == *s) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "instance never became {states:?}: {i}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn act(&self, id: &str, what: &str, body: Value) {
        let (st, v) = self
            .member
            .post(&format!("/v1/instances/{id}/{what}"), body)
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{what}: {v}");
    }
}

/// Create, stop, start, resize and delete through zhengyun; after each, the provider's own
/// API shows exactly what zhengyun shows. Then nova-api is killed in the middle of a batch
/// of creates and restarted: the batch ends consistent, with no duplicate servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openstack_provider_runs_instances_through_nova() {
    let Some(b) = bed() else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let c = cloud(&ts, &b).await;
    let nova = Nova::login(&b).await;
    let long = Duration::from_secs(90);

    let began = Instant::now();
    let id = c.create("web-01", 1).await.remove(0);
    let i = c.wait_for(&id, &["running"], long).await;
    eprintln!("create through zhengyun → running: {:?}", began.elapsed());
    assert_eq!(i["provider_id"], c.provider.as_str(), "{i}");
    let server = nova.wait_status(&id, "ACTIVE").await;
    assert_eq!(server["flavor"]["original_name"], "m1.tiny", "{server}");
    assert!(
        server["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("web-01-zy-"),
        "{server}"
    );

    c.act(&id, "stop", json!({})).await;
    c.wait_for(&id, &["stopped"], long).await;
    nova.wait_status(&id, "SHUTOFF").await;

    // Resize (with Nova's confirm) while stopped: the server gets the flavor of 1 vCPU
    // and 2 GiB.
    c.act(&id, "resize", json!({ "flavor": "1C2G" })).await;
    let deadline = Instant::now() + long;
    loop {
        let s = nova.servers_of(&id).await;
        if s.len() == 1
            && s[0]["flavor"]["original_name"] == "m1.small"
            && s[0]["status"] == "SHUTOFF"
        {
            break;
        }
        assert!(Instant::now() < deadline, "never resized: {s:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = Instant::now() + long;
    loop {
        let i = c.instance(&id).await;
        if i["memory_mib"] == 2048 && i["state"] == "stopped" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "zhengyun never showed the resize: {i}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    c.act(&id, "start", json!({})).await;
    c.wait_for(&id, &["running"], long).await;
    nova.wait_status(&id, "ACTIVE").await;

    let (st, v) = c.member.delete(&format!("/v1/instances/{id}")).await;
    assert!(st.is_success(), "{st} {v}");
    c.wait_for(&id, &["deleted", "recycled"], long).await;
    let deadline = Instant::now() + long;
    while !nova.servers_of(&id).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the server outlived its instance"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // nova-api dies in the middle of a batch of creates and comes back.
    let batch = c.create("batch", 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.service("stop-service", "nova-api");
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.service("start-service", "nova-api");
    for id in &batch {
        let i = c
            .wait_for(
                id,
                &["running", "error", "deleted"],
                Duration::from_secs(180),
            )
            .await;
        // Consistent: a running instance has exactly one server; a failed one none left.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let servers = nova.servers_of(id).await;
            let ok = if i["state"] == "running" {
                servers.len() == 1
            } else {
                servers.is_empty()
            };
            if ok {
                break;
            }
            assert!(
                servers.len() <= 1,
                "duplicate servers for {id}: {servers:?}"
            );
            assert!(
                Instant::now() < deadline,
                "instance {i} and servers {servers:?} disagree"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    adoption_and_drift(&b, &c, &nova, &server, &batch).await;

    // Settings that do not reach the provider are refused and the stored ones kept.
    let mut bad = b.settings();
    bad["auth_url"] = json!("http://127.0.0.1:1/v3");
    let (st, v) = c
        .admin
        .put(&format!("/v1/providers/{}/openstack", c.provider), bad)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, view) = c
        .admin
        .get(&format!("/v1/providers/{}/openstack", c.provider))
        .await;
    assert_eq!(view["auth_url"], b.auth_url.as_str(), "{view}");
}

/// Servers and drift made directly in the provider (not through zhengyun): flagged,
/// announced, adopted by hand (mode `flag`) and automatically (mode `auto`), counted in
/// quota and metered, operated through zhengyun afterwards; a dismissed item stays
/// dismissed; a server deleted outside is flagged as disappeared.
async fn adoption_and_drift(b: &Bed, c: &Cloud, nova: &Nova, server: &Value, batch: &[String]) {
    let long = Duration::from_secs(90);
    let flavors = nova.get("/flavors").await;
    let tiny = flavors["flavors"]
        .as_array()
        .expect("flavors")
        .iter()
        .find(|f| f["name"] == "m1.tiny")
        .and_then(|f| f["id"].as_str())
        .expect("m1.tiny")
        .to_string();
    let image = server["image"]["id"].clone();
    // Map the credential's project to the department's project; adoption by hand.
    let mut settings = b.settings();
    settings["projects"] = json!([{ "openstack_project": nova.project_id,
        "department_id": c.department, "project_id": c.project }]);
    settings["adoption"] = json!("flag");
    let (st, v) = c
        .admin
        .put(
            &format!("/v1/providers/{}/openstack", c.provider),
            settings.clone(),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    let outside = nova.create_outside("made-outside", &tiny, &image).await;
    let ignored = nova
        .create_outside("made-outside-ignored", &tiny, &image)
        .await;
    let (_, list) = c.member.get("/v1/instances").await;
    assert!(
        !list.to_string().contains("made-outside"),
        "an unadopted server is not shown as the department's: {list}"
    );
    // One of zhengyun's servers stopped behind its back, another deleted behind its back.
    let stopped_outside = &batch[0];
    let sid = nova.servers_of(stopped_outside).await[0]["id"]
        .as_str()
        .expect("server id")
        .to_string();
    let st = nova
        .post(&format!("/servers/{sid}/action"), json!({"os-stop": null}))
        .await;
    assert!(st.is_success(), "{st}");
    nova.wait_status(stopped_outside, "SHUTOFF").await;
    let deleted_outside = &batch[1];
    let did = nova.servers_of(deleted_outside).await[0]["id"]
        .as_str()
        .expect("server id")
        .to_string();
    assert!(nova.delete(&format!("/servers/{did}")).await.is_success());
    let deadline = Instant::now() + long;
    while !nova.servers_of(deleted_outside).await.is_empty() {
        assert!(Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let drift_url = format!("/v1/providers/{}/openstack/drift", c.provider);
    let sync_url = format!("/v1/providers/{}/openstack/sync", c.provider);
    let (st, sync) = c.admin.post(&sync_url, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    assert_eq!(sync["adopted"], 0, "mode flag adopts nothing: {sync}");
    let (st, drift) = c.admin.get(&drift_url).await;
    assert_eq!(st, StatusCode::OK, "{drift}");
    let items = drift["items"].as_array().expect("items").clone();
    let item = |change: &str, pred: &dyn Fn(&Value) -> bool| {
        items
            .iter()
            .find(|d| d["change"] == change && d["state"] == "open" && pred(d))
            .cloned()
            .unwrap_or_else(|| panic!("no open {change} item: {drift}"))
    };
    let appeared = item("appeared", &|d| d["external_id"] == outside.as_str());
    assert_eq!(appeared["name"], "made-outside", "{appeared}");
    assert_eq!(
        appeared["department_id"],
        c.department.as_str(),
        "{appeared}"
    );
    let to_dismiss = item("appeared", &|d| d["external_id"] == ignored.as_str());
    let changed = item("changed", &|d| d["instance_id"] == stopped_outside.as_str());
    assert!(
        changed["detail"].as_str().unwrap_or("").contains("SHUTOFF"),
        "{changed}"
    );
    item("disappeared", &|d| {
        d["instance_id"] == deleted_outside.as_str()
    });
    let (_, events) = c
        .member
        .get(&format!("/v1/instances/{deleted_outside}/events"))
        .await;
    assert!(
        events.to_string().contains("no longer has its server"),
        "{events}"
    );
    // Instances zhengyun runs and Nova agrees on are not drift.
    assert!(
        !items.iter().any(|d| d["instance_id"] == batch[2].as_str()),
        "{drift}"
    );
    // The supervisors (and the platform admins) heard of it once. (A notice may also
    // list servers left in the bed by earlier runs; this run's disappeared instance is in
    // exactly one.)
    let announced = |inbox: &Value| inbox.to_string().matches("batch-002 (disappeared)").count();
    let (_, inbox) = c.supervisor.get("/v1/me/notifications").await;
    assert_eq!(announced(&inbox), 1, "{inbox}");
    let (st, again) = c.admin.post(&sync_url, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!(again["drift_new"], 0, "{again}");
    let (_, inbox) = c.supervisor.get("/v1/me/notifications").await;
    assert_eq!(announced(&inbox), 1, "announced once: {inbox}");

    // Adopted by hand: the department's instance, counted in quota, metered.
    let quota_url = format!("/v1/quotas?project_id={}", c.project);
    let (_, before) = c.admin.get(&quota_url).await;
    let (st, adopted) = c
        .admin
        .post(
            &format!("{drift_url}/{}/adopt", appeared["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{adopted}");
    assert_eq!(adopted["id"], outside.as_str(), "{adopted}");
    assert_eq!(adopted["origin"], "adopted", "{adopted}");
    assert_eq!(adopted["project_id"], c.project.as_str(), "{adopted}");
    assert_eq!(adopted["state"], "running", "{adopted}");
    let (_, after) = c.admin.get(&quota_url).await;
    assert_eq!(
        after["used"]["instances"].as_i64().unwrap_or(0),
        before["used"]["instances"].as_i64().unwrap_or(0) + 1,
        "{before} {after}"
    );
    // Metered from the moment of adoption (a line once a second has passed).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (st, usage) = c
            .supervisor
            .get(&format!("/v1/usage?resource_id={outside}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{usage}");
        let items = usage["items"].as_array().cloned().unwrap_or_default();
        if let Some(line) = items.first() {
            assert_eq!(line["project_id"], c.project.as_str(), "{usage}");
            assert!(line["running_secs"].as_i64().unwrap_or(0) >= 1, "{usage}");
            break;
        }
        assert!(Instant::now() < deadline, "never metered: {usage}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (st, twice) = c
        .admin
        .post(
            &format!("{drift_url}/{}/adopt", appeared["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "adopted once only: {twice}");
    // Operated through zhengyun like its own: stop, then delete.
    c.act(&outside, "stop", json!({})).await;
    c.wait_for(&outside, &["stopped"], long).await;
    let s = nova.get(&format!("/servers/{outside}")).await;
    assert_eq!(s["server"]["status"], "SHUTOFF", "{s}");

    // Dismissed stays dismissed.
    let (st, v) = c
        .admin
        .post(
            &format!(
                "{drift_url}/{}/dismiss",
                to_dismiss["id"].as_str().expect("id")
            ),
            json!({ "reason": "供应商测试用机，不纳管" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = c.admin.post(&sync_url, json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let (_, all) = c.admin.get(&format!("{drift_url}?state=all")).await;
    let state_of = |id: &Value| {
        all["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|d| d["id"] == *id)
            .map(|d| d["state"].clone())
    };
    assert_eq!(
        state_of(&to_dismiss["id"]),
        Some(json!("dismissed")),
        "{all}"
    );
    assert_eq!(state_of(&appeared["id"]), Some(json!("adopted")), "{all}");

    // Mode auto: the next server made outside is adopted by the synchronisation.
    settings["adoption"] = json!("auto");
    let (st, v) = c
        .admin
        .put(&format!("/v1/providers/{}/openstack", c.provider), settings)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let auto = nova
        .create_outside("made-outside-auto", &tiny, &image)
        .await;
    let (st, sync) = c.admin.post(&sync_url, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    // (Servers left in the bed by earlier runs are adopted too; the periodic
    // synchronisation may have been first.)
    let i = c.instance(&auto).await;
    assert_eq!(i["origin"], "adopted", "{i}");
    assert_eq!(i["department_id"], c.department.as_str(), "{i}");
    // Deleted through zhengyun: the provider's server goes too.
    let (st, v) = c.member.delete(&format!("/v1/instances/{auto}")).await;
    assert!(st.is_success(), "{st} {v}");
    c.wait_for(&auto, &["deleted", "recycled"], long).await;
    // Leave the bed as found (its fake hypervisor's capacity is finite).
    let (st, v) = c.member.delete(&format!("/v1/instances/{outside}")).await;
    assert!(st.is_success(), "{st} {v}");
    assert!(nova
        .delete(&format!("/servers/{ignored}"))
        .await
        .is_success());
}

/// A stub that answers every request with `status` (a provider failing on the server side).
async fn stub(status: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let body = r#"{"error": {"message": "database is on fire", "code": 500}}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} Oops\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}/v3")
}

async fn openstack_errors_are_clear_and_change_nothing(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let (_, before) = admin.get("/v1/providers").await;
    let settings = |url: &str, password: &str| {
        json!({ "name": "出错的云", "kind": "openstack", "openstack": {
            "auth_url": url,
            "credential": {"type": "password", "username": "admin", "password": password, "project": "admin"}}})
    };
    // A bed, if there is one, refuses a wrong password; otherwise a closed port stands in.
    let wrong = match bed() {
        Some(b) => (b.auth_url.clone(), "Keystone refused"),
        None => ("http://127.0.0.1:1/v3".to_string(), "unreachable"),
    };
    let failing = stub(500).await;
    for (url, expect) in [
        (wrong.0.as_str(), wrong.1),
        ("http://127.0.0.1:1/v3", "unreachable"),
        (failing.as_str(), "database is on fire"),
    ] {
        let (st, v) = admin
            .post("/v1/providers", settings(url, "not-the-password"))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {v}");
        assert_error_body(st, &v);
        assert!(v.to_string().contains(expect), "{url}: {v}");
        assert!(!v.to_string().contains("not-the-password"), "{v}");
    }
    // Malformed settings are refused before any call.
    for bad in [
        json!({ "name": "x", "kind": "openstack" }),
        json!({ "name": "x", "kind": "sim", "openstack": {"auth_url": "http://127.0.0.1:1/v3",
            "credential": {"type": "application_credential", "id": "a", "secret": "b"}}}),
        json!({ "name": "x", "kind": "openstack", "openstack": {"auth_url": "ftp://x",
            "credential": {"type": "application_credential", "id": "a", "secret": "b"}}}),
    ] {
        let (st, v) = admin.post("/v1/providers", bad.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (_, after) = admin.get("/v1/providers").await;
    assert_eq!(before, after, "nothing was stored");

    // A provider that answers is stored with its secret sealed: not in the database, not
    // in the audit record, not in any answer.
    let keystone = crate::world::openstack_stub().await;
    let (st, p) = admin
        .post(
            "/v1/providers",
            json!({ "name": "封存测试云", "kind": "openstack",
                    "openstack": crate::world::openstack_settings(&keystone) }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().expect("id");
    let stored = zy_store::inventory::providers(ts.store())
        .await
        .expect("providers")
        .into_iter()
        .find(|(p, _)| p.id.to_string() == id)
        .map(|(_, config)| config)
        .expect("stored");
    assert!(stored.contains(&keystone), "{stored}");
    assert!(
        !stored.contains("stub-secret"),
        "the secret is sealed: {stored}"
    );
    let (_, view) = admin.get(&format!("/v1/providers/{id}/openstack")).await;
    assert_eq!(view["credential_type"], "application_credential", "{view}");
    assert!(!view.to_string().contains("stub-secret"), "{view}");
    let (_, audit) = ts.admin("auditor").await.get("/v1/audit?limit=200").await;
    assert!(!audit.to_string().contains("stub-secret"), "{audit}");
    // The stored, sealed settings still work: a restart installs the driver from them.
    let (st, sync) = admin
        .post(&format!("/v1/providers/{id}/openstack/sync"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{sync}");
}
crate::both_databases!(openstack_errors_are_clear_and_change_nothing);

/// The settings form need not repeat the secret: an update without it keeps the stored one
/// (which still opens Keystone afterwards), but only for the same Keystone and identity —
/// changing the URL without the secret is refused, and nothing is sent to the new URL.
async fn openstack_settings_keep_the_stored_secret_only_for_the_same_endpoint(db: Db) {
    let ts = TestServer::start(db).await;
    let admin = ts.platform_admin().await;
    let keystone = crate::world::openstack_stub().await;
    let (st, p) = admin
        .post(
            "/v1/providers",
            json!({ "name": "保留密钥测试云", "kind": "openstack",
                    "openstack": crate::world::openstack_settings(&keystone) }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().expect("id").to_string();
    let path = format!("/v1/providers/{id}/openstack");
    let d = department(&admin, "保留密钥测试局", "BLMY").await;
    let pr = project(&admin, &d, "纳管项目").await;
    let mapped = json!([{ "openstack_project": "stub-project",
                          "department_id": d, "project_id": pr }]);

    // The stub tells secrets apart: a wrong one is refused by "Keystone".
    let (st, v) = admin
        .put(
            &path,
            json!({ "auth_url": keystone, "adoption": "auto",
                    "credential": {"type": "application_credential", "id": "zy", "secret": "wrong-secret"}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("Keystone refused"), "{v}");

    // Only the adoption mode and a mapping change: the stored secret is kept and works.
    let (st, view) = admin
        .put(
            &path,
            json!({ "auth_url": keystone, "adoption": "auto", "projects": mapped,
                    "credential": {"type": "application_credential", "id": "zy"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{view}");
    assert_eq!(view["adoption"], "auto", "{view}");
    assert_eq!(view["projects"][0]["openstack_project"], "stub-project");
    assert_eq!(view["credential_id"], "zy", "{view}");
    // The driver installed from the re-sealed settings authenticates with the kept secret.
    let (st, sync) = admin.post(&format!("{path}/sync"), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    let stored = zy_store::inventory::providers(ts.store())
        .await
        .expect("providers")
        .into_iter()
        .find(|(p, _)| p.id.to_string() == id)
        .map(|(_, config)| config)
        .expect("stored");
    assert!(!stored.contains("stub-secret"), "still sealed: {stored}");

    // Another Keystone without the secret: refused before anything is sent there.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other = format!("http://{}/v3", elsewhere.local_addr().expect("addr"));
    let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = called.clone();
    tokio::spawn(async move {
        while elsewhere.accept().await.is_ok() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let (_, before) = admin.get(&path).await;
    let (st, v) = admin
        .put(
            &path,
            json!({ "auth_url": other, "adoption": "flag",
                    "credential": {"type": "application_credential", "id": "zy"}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error_body(st, &v);
    assert_eq!(v["error"]["code"], "validation_failed", "{v}");
    assert_eq!(
        v["error"]["details"]["field"], "openstack.credential.secret",
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Keystone"),
        "the message says what changed: {v}"
    );
    assert!(
        !called.load(std::sync::atomic::Ordering::SeqCst),
        "nothing was sent to the new endpoint"
    );
    let (_, after) = admin.get(&path).await;
    assert_eq!(before, after, "the settings did not change");

    // Audited as before, with whether the secret was kept; the secret itself nowhere.
    let (_, audit) = ts
        .admin("auditor")
        .await
        .get("/v1/audit?action=put_openstack_settings&limit=50")
        .await;
    let items = audit["items"].as_array().expect("items");
    assert!(
        items.iter().any(|r| r["outcome"] == "success"
            && r["target_id"] == id.as_str()
            && r["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("\"secret_kept\":true")),
        "{audit}"
    );
    assert!(
        items.iter().any(|r| r["outcome"] == "failure"),
        "the refusal is audited too: {audit}"
    );
    assert!(!audit.to_string().contains("stub-secret"), "{audit}");
}
crate::both_databases!(openstack_settings_keep_the_stored_secret_only_for_the_same_endpoint);

/// The demo's OpenStack provider (`zhengyun server --demo --demo-openstack <env file>`):
/// the bed registered once, mapped to 卫计委's 全民健康信息平台, and usable at once — a demo
/// member creates an instance on it through zhengyun and Nova builds the server, and
/// releases it again.
#[tokio::test]
async fn the_demo_registers_the_openstack_bed_and_a_member_uses_it() {
    let Some(b) = bed() else {
        return;
    };
    let ts = TestServer::start_with(Db::Sqlite, true).await;
    let state = &ts.server.as_ref().expect("running").state;
    let env: std::collections::HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("ZY_OPENSTACK_"))
        .collect();
    let id = zy_server::demo::openstack::register(state, &env)
        .await
        .expect("registered")
        .expect("a new provider");
    // Once: a second start finds it by name.
    assert!(zy_server::demo::openstack::register(state, &env)
        .await
        .expect("second call")
        .is_none());
    let admin = ts.platform_admin().await;
    let (st, view) = admin.get(&format!("/v1/providers/{id}/openstack")).await;
    assert_eq!(st, StatusCode::OK, "{view}");
    assert!(!view.to_string().contains(&b.password), "{view}");
    assert_eq!(view["adoption"], "flag", "{view}");
    assert_eq!(view["zones"][0]["availability_zone"], "nova", "{view}");
    let (st, sync) = admin
        .post(&format!("/v1/providers/{id}/openstack/sync"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    assert!(sync["hypervisors"].as_u64().unwrap_or(0) >= 1, "{sync}");

    let member = ts
        .login("wjw.user", zy_server::demo::DEMO_PASSWORD)
        .await
        .expect("demo member");
    let project = view["projects"][0]["project_id"]
        .as_str()
        .expect("mapped project")
        .to_string();
    let (_, p) = member.get(&format!("/v1/projects/{project}")).await;
    assert_eq!(p["name"], "全民健康信息平台", "{p}");
    let (st, v) = member
        .post(
            "/v1/instances",
            json!({ "project_id": project, "name": "demo-os", "flavor": "1C512M",
                    "image": "cirros", "provider_id": id.to_string() }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let iid = v["items"][0]["id"].as_str().expect("id").to_string();
    let nova = Nova::login(&b).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, i) = member.get(&format!("/v1/instances/{iid}")).await;
        if i["state"] == "running" {
            break;
        }
        assert_ne!(i["state"], "error", "{i}");
        assert!(Instant::now() < deadline, "never running: {i}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let server = nova.wait_status(&iid, "ACTIVE").await;
    assert_eq!(server["flavor"]["original_name"], "m1.tiny", "{server}");
    // A member's delete releases it to the demo department's recycle bin: stopped in Nova.
    let (st, v) = member.delete(&format!("/v1/instances/{iid}")).await;
    assert!(st.is_success(), "{st} {v}");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, i) = member.get(&format!("/v1/instances/{iid}")).await;
        if i["state"] == "deleted" || i["state"] == "recycled" || i["recycled_at"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "never released: {i}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A provider connected without zones gets one zone per availability zone of its
/// hypervisors at the first synchronisation (Nova's `nova` here), its hypervisors as hosts
/// in it; synchronising again makes no second one.
#[tokio::test]
async fn a_provider_without_zones_gets_one_per_availability_zone() {
    let Some(b) = bed() else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let admin = ts.platform_admin().await;
    let (st, prov) = admin
        .post(
            "/v1/providers",
            json!({ "name": "未建可用区的 OpenStack", "kind": "openstack", "openstack": b.settings() }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{prov}");
    let provider = prov["id"].as_str().expect("id").to_string();
    for round in 0..2 {
        let (st, sync) = admin
            .post(
                &format!("/v1/providers/{provider}/openstack/sync"),
                json!({}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{sync}");
        if round == 0 {
            assert!(sync["hosts_added"].as_u64().unwrap_or(0) >= 1, "{sync}");
        }
        let (_, zones) = admin.get("/v1/zones").await;
        let mine: Vec<&Value> = zones["items"]
            .as_array()
            .expect("zones")
            .iter()
            .filter(|z| z["provider_id"] == provider.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "round {round}: {zones}");
        assert_eq!(mine[0]["name"], "nova", "{zones}");
        let (_, hosts) = admin.get("/v1/hosts").await;
        assert!(
            hosts["items"]
                .as_array()
                .expect("hosts")
                .iter()
                .any(|h| h["provider_id"] == provider.as_str() && h["zone_id"] == mine[0]["id"]),
            "{hosts}"
        );
    }
}
