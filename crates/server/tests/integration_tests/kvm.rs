//! Real hosts: `zhengyun agent`s (in this process, their VMs real QEMU processes under
//! TCG) join with one-time tokens, and instances on them boot the zy-busybox template to
//! its ready marker, stop, start, reboot, grow, take volumes, survive an agent restart,
//! live-migrate with a counting process inside, and leave nothing on disk when deleted.
//! The agent refuses callers without the control plane's certificate and answers bad
//! requests with clear 4xx errors.
//!
//! Needs QEMU and the template (`cargo xtask template`; `ZY_TEMPLATE_DIR`). Without QEMU
//! the tests skip with a message, unless `ZY_REQUIRE_QEMU` is set (as `cargo xtask test`
//! does): then they fail.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zy_model::role::Role;

/// Under TCG on a busy 2-core machine a boot takes a few seconds; leave room.
const BOOT: Duration = Duration::from_secs(90);

fn template_dir() -> Option<PathBuf> {
    let required = std::env::var_os("ZY_REQUIRE_QEMU").is_some();
    let qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let dir = std::env::var_os("ZY_TEMPLATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/zy-template"));
    if qemu && dir.join("template.json").exists() {
        return Some(dir);
    }
    assert!(
        !required,
        "ZY_REQUIRE_QEMU is set but QEMU or the template ({}) is missing: run cargo xtask template",
        dir.display()
    );
    eprintln!("SKIPPED: QEMU or the guest template is missing (cargo xtask template)");
    None
}

struct Kvm {
    admin: Session,
    member: Session,
    project: String,
    zone: String,
    template: PathBuf,
    url: String,
    dirs: Vec<PathBuf>,
}

impl Drop for Kvm {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

async fn kvm_cloud(ts: &TestServer, template: PathBuf) -> Kvm {
    let admin = ts.platform_admin().await;
    let (st, prov) = admin
        .post(
            "/v1/providers",
            json!({ "name": "本机 KVM", "kind": "kvm" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{prov}");
    let (st, zone) = admin
        .post(
            "/v1/zones",
            json!({ "provider_id": prov["id"], "region": "本机", "name": "一区" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{zone}");
    admin
        .post(
            "/v1/storage-pools",
            json!({ "zone_id": zone["id"], "name": "本机磁盘", "capacity_gib": 100 }),
        )
        .await;
    admin
        .post(
            "/v1/flavors",
            json!({ "name": "1C128M", "vcpus": 1, "memory_mib": 128 }),
        )
        .await;
    let (st, img) = admin
        .post(
            "/v1/images",
            json!({ "name": "zy-busybox", "os": "Linux", "min_disk_gib": 1, "providers": [prov["id"]] }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{img}");
    let d = department(&admin, "宜宾市卫计委", "WJW").await;
    let project = project(&admin, &d, "全民健康信息平台").await;
    let member = ts.new_user(&admin, "wjw.ops", Some(&d)).await;
    ts.grant(&admin, &member, Role::DeptMember, Some(&d), Some(&project))
        .await;
    Kvm {
        admin,
        member,
        project,
        zone: zone["id"].as_str().expect("zone").to_string(),
        template,
        url: ts.url.clone(),
        dirs: Vec::new(),
    }
}

impl Kvm {
    /// A short data dir (QMP socket paths are limited to about 100 bytes).
    fn agent_dir(&mut self) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "zya-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        ));
        self.dirs.push(d.clone());
        d
    }

    fn config(&self, dir: &Path, token: Option<String>, name: &str) -> zy_agent::AgentConfig {
        zy_agent::AgentConfig {
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            advertise: None,
            server: Some(self.url.clone()),
            join_token: token,
            name: Some(name.into()),
            qemu_bin: "qemu-system-x86_64".into(),
            templates: vec![self.template.clone()],
            accel: Some(zy_qemu::Accel::Tcg),
            netns: None,
            underlay: None,
        }
    }

    /// A new host: a join token, then an agent that joins with it.
    async fn join(&mut self, name: &str) -> (zy_agent::Agent, PathBuf) {
        let (st, t) = self
            .admin
            .post(&format!("/v1/zones/{}/join-tokens", self.zone), json!({}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{t}");
        let token = t["token"].as_str().expect("token").to_string();
        let dir = self.agent_dir();
        let agent = zy_agent::start(self.config(&dir, Some(token.clone()), name))
            .await
            .expect("agent joins");
        // The token was for one join only.
        let other = self.agent_dir();
        let again = zy_agent::start(self.config(&other, Some(token), "again")).await;
        let err = again.err().expect("a used token is refused");
        assert!(err.contains("401"), "{err}");
        (agent, dir)
    }

    async fn create(&self, name: &str, user_data: &str) -> String {
        let (st, v) = self
            .member
            .post(
                "/v1/instances",
                json!({ "project_id": self.project, "name": name, "flavor": "1C128M", "image": "zy-busybox", "user_data": user_data }),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
        v["items"][0]["id"].as_str().expect("id").to_string()
    }

    async fn instance(&self, id: &str) -> Value {
        self.member.get(&format!("/v1/instances/{id}")).await.1
    }

    async fn wait_state(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + BOOT;
        loop {
            let i = self.instance(id).await;
            if i["state"] == state {
                return i;
            }
            assert!(i["state"] != "error", "instance failed: {i}");
            assert!(
                Instant::now() < deadline,
                "instance never became {state}: {i}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn console(&self, id: &str) -> String {
        let (_, v) = self
            .member
            .get(&format!("/v1/instances/{id}/console"))
            .await;
        v["output"].as_str().unwrap_or_default().to_string()
    }

    /// Waits until the serial console shows `needle` (`times` times); returns the log.
    async fn wait_console(&self, id: &str, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + BOOT;
        loop {
            let log = self.console(id).await;
            if log.matches(needle).count() >= times {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the console never showed {needle:?} {times}×:\n{log}"
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

/// The highest `count N` line in a log.
fn last_count(log: &str) -> Option<u64> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("count ")?.trim().parse().ok())
        .max()
}

/// Keeps the guest's one vCPU busy for 30 s after boot (shell builtins only), then says so.
const BURN: &str = "read s _ </proc/uptime; end=$(( ${s%.*} + 30 )); while :; do read u _ </proc/uptime; [ ${u%.*} -ge $end ] && break; done; echo burn-done\n";
const COUNTER: &str = "i=0; while true; do echo \"count $i\"; i=$((i+1)); sleep 1; done\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_vm_lives_its_whole_life_on_an_agent_host() {
    let Some(template) = template_dir() else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let mut k = kvm_cloud(&ts, template).await;
    let (agent, agent_dir) = k.join("host-a").await;
    let host_id = agent.state.host_id.to_string();

    // The host is in the inventory with what the agent measured.
    let (_, hosts) = k.admin.get("/v1/hosts").await;
    let host = hosts["items"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["id"] == host_id.as_str()))
        .cloned()
        .expect("joined host listed");
    assert!(host["vcpus"].as_u64().unwrap_or(0) >= 1, "{host}");

    // Create → ready marker with its hostname, user data running.
    let began = Instant::now();
    let id = k.create("web-01", COUNTER).await;
    k.wait_state(&id, "running").await;
    let log = k
        .wait_console(&id, "ZHENGYUN-READY hostname=web-01", 1)
        .await;
    eprintln!("create → ready marker: {:?}", began.elapsed());
    assert!(log.contains("disk_bytes=1073741824"), "{log}");
    k.wait_console(&id, "count 1", 1).await;

    // The heartbeat reports the VM; metrics come from QEMU.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, agents) = k.admin.get("/v1/agents").await;
        let a = &agents["items"][0];
        assert!(
            a["host_name"].as_str().is_some_and(|n| !n.is_empty()),
            "{a}"
        );
        let vms = a["report"]["vms"].as_array().cloned().unwrap_or_default();
        if a["alive"] == true
            && vms
                .iter()
                .any(|v| v["id"] == id.as_str() && v["state"] == "running")
        {
            assert_eq!(a["accel"], "tcg");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat with the VM: {agents}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (st, m) = k.member.get(&format!("/v1/instances/{id}/metrics")).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert!(m["metrics"]["cpu_time_ms"].as_u64().unwrap_or(0) > 0, "{m}");
    assert_eq!(m["metrics"]["memory_mib"], 128, "{m}");

    // A guest that burns its CPU for a while raises the alert its department set, which
    // resolves once the guest is quiet again; the host reports its own figures.
    let burn = k.create("burn-01", BURN).await;
    let vm = k.wait_state(&burn, "running").await;
    let dept = vm["department_id"]
        .as_str()
        .expect("department")
        .to_string();
    let da = ts.new_user(&k.admin, "wjw.admin", Some(&dept)).await;
    ts.grant(&k.admin, &da, Role::DeptAdmin, Some(&dept), None)
        .await;
    let rule = json!({ "name": "CPU 过高", "kind": "threshold", "scope": "instance", "id": burn, "series": "cpu", "op": "gt", "threshold": 40.0, "for_secs": 4 });
    let (st, r) = da.post("/v1/alert-rules", rule).await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let rule = r["id"].as_str().expect("rule").to_string();
    let alert_state = async |state: &str| {
        let (_, h) = da.get("/v1/alerts/history").await;
        h["items"].as_array().is_some_and(|a| {
            a.iter()
                .any(|e| e["rule_id"] == rule.as_str() && e["state"] == state)
        })
    };
    let deadline = Instant::now() + BOOT;
    while !alert_state("firing").await {
        assert!(Instant::now() < deadline, "the CPU alert never fired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    k.wait_console(&burn, "burn-done", 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !alert_state("resolved").await {
        assert!(Instant::now() < deadline, "the CPU alert never resolved");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (st, q) = k
        .admin
        .get(&format!(
            "/v1/metrics/query?scope=host&id={host_id}&series=cpu,mem,disk_used&step=10"
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{q}");
    let last = |k: usize| {
        q["series"][k]["values"]
            .as_array()
            .and_then(|p| p.iter().rev().find_map(Value::as_f64))
    };
    assert!(
        last(0).is_some_and(|c| c > 0.0 && c <= 100.0),
        "host CPU: {q}"
    );
    assert!(
        last(1).is_some_and(|m| m > 0.0 && m <= 100.0),
        "host memory: {q}"
    );
    assert!(
        last(2).is_some_and(|d| d > 0.0 && d <= 100.0),
        "host disk: {q}"
    );
    let (st, v) = k.member.delete(&format!("/v1/instances/{burn}")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");

    // Volumes hot-plug into the running guest and out again.
    let (st, vol) = k
        .member
        .post(
            "/v1/volumes",
            json!({ "project_id": k.project, "name": "数据盘", "size_gib": 1 }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{vol}");
    let vol = vol["id"].as_str().expect("volume").to_string();
    let (st, v) = k
        .member
        .post(
            &format!("/v1/volumes/{vol}/attach"),
            json!({ "instance_id": id }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    k.wait_console(&id, "ZY-BLOCK add vdb", 1).await;
    let (st, v) = k
        .member
        .post(&format!("/v1/volumes/{vol}/detach"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    k.wait_console(&id, "ZY-BLOCK remove vdb", 1).await;

    // Reboot: a second boot.
    k.act(&id, "reboot", json!({})).await;
    k.wait_console(&id, "boot=2", 1).await;

    // Stop (ACPI power-off), grow the disk, start: the guest sees the new size.
    k.act(&id, "stop", json!({})).await;
    k.wait_state(&id, "stopped").await;
    let vm_dir = agent_dir.join("vms").join(&id);
    assert!(
        !vm_dir.join("qemu.pid").exists() || {
            // A stopped VM has no live QEMU.
            let st = agent.state.hv.status(id.parse().expect("uuid")).await;
            st == zy_qemu::VmStatus::Stopped
        }
    );
    k.act(&id, "resize", json!({ "flavor": "1C128M", "disk_gib": 2 }))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, ev) = k.member.get(&format!("/v1/instances/{id}/events")).await;
        if ev.to_string().contains("resized") {
            break;
        }
        assert!(Instant::now() < deadline, "never resized: {ev}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    k.act(&id, "start", json!({})).await;
    k.wait_state(&id, "running").await;
    k.wait_console(&id, "disk_bytes=2147483648", 1).await;

    // Restarting the agent does not stop the VM: the new agent adopts it.
    let uuid: uuid::Uuid = id.parse().expect("uuid");
    let pid_before = match agent.state.hv.status(uuid).await {
        zy_qemu::VmStatus::Running { pid } => pid,
        other => panic!("VM not running before the agent restart: {other:?}"),
    };
    agent.stop().await;
    let agent = zy_agent::start(k.config(&agent_dir, None, "host-a"))
        .await
        .expect("agent restarts without a token");
    assert_eq!(
        agent.state.hv.status(uuid).await,
        zy_qemu::VmStatus::Running { pid: pid_before },
        "the VM kept running through the agent restart"
    );
    assert_eq!(agent.state.host_id.to_string(), host_id);

    // A guest that dies (QEMU killed) is restarted by the agent and recorded as a crash.
    let boots = k
        .console(&id)
        .await
        .matches("ZHENGYUN-READY hostname=web-01")
        .count();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid_before.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + BOOT;
    loop {
        let (_, ev) = k.member.get(&format!("/v1/instances/{id}/events")).await;
        let restarted = matches!(agent.state.hv.status(uuid).await, zy_qemu::VmStatus::Running { pid } if pid != pid_before);
        if restarted && ev.to_string().contains("died unexpectedly") {
            break;
        }
        assert!(Instant::now() < deadline, "the crash was not handled: {ev}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    k.wait_console(&id, "ZHENGYUN-READY hostname=web-01", boots + 1)
        .await;

    // A guest that powers itself off (here: the power button pressed behind the platform's
    // back) is recorded as stopped, and starts again on request.
    let report = agent
        .state
        .hv
        .stop(uuid, Duration::from_secs(30))
        .await
        .expect("power off");
    assert!(report.graceful, "{report:?}");
    k.wait_state(&id, "stopped").await;
    let (_, ev) = k.member.get(&format!("/v1/instances/{id}/events")).await;
    assert!(ev.to_string().contains("powered itself off"), "{ev}");
    let boots = k
        .console(&id)
        .await
        .matches("ZHENGYUN-READY hostname=web-01")
        .count();
    k.act(&id, "start", json!({})).await;
    k.wait_state(&id, "running").await;
    k.wait_console(&id, "ZHENGYUN-READY hostname=web-01", boots + 1)
        .await;

    // Bad calls to the agent: no certificate → no connection; with the control plane's
    // certificate, unknown instances and malformed bodies get clear 4xx errors.
    let addr = agent.addr;
    let plain = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    assert!(
        plain
            .get(format!("https://{addr}/v1/host"))
            .send()
            .await
            .is_err(),
        "a client without the control plane's certificate must not get through"
    );
    let pki = ts
        .server
        .as_ref()
        .expect("server")
        .state
        .compute
        .pki
        .get()
        .expect("pki");
    let name = zy_pki::agent_dns_name(&host_id);
    let cp = reqwest::Client::builder()
        .use_preconfigured_tls(pki.tls.clone())
        .resolve(&name, addr)
        .build()
        .expect("client");
    let base = format!("https://{name}:{}", addr.port());
    let r = cp
        .get(format!("{base}/v1/instances/{}", uuid::Uuid::new_v4()))
        .send()
        .await
        .expect("agent answers");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "status of an unknown VM is 'missing'"
    );
    assert_eq!(r.json::<Value>().await.expect("json")["state"], "missing");
    let r = cp
        .post(format!(
            "{base}/v1/instances/{}/reboot",
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .expect("agent answers");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], "not_found");
    let r = cp
        .put(format!("{base}/v1/instances/{id}"))
        .header("content-type", "application/json")
        .body("{\"spec\": 3")
        .send()
        .await
        .expect("agent answers");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], "invalid");
    let r = cp
        .get(format!("{base}/v1/instances/not-a-uuid"))
        .send()
        .await
        .expect("agent answers");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Delete: the VM and every file derived from its disks are gone.
    let (st, v) = k.member.delete(&format!("/v1/instances/{id}")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    k.wait_state(&id, "deleted").await;
    assert!(!vm_dir.exists(), "{} still exists", vm_dir.display());
    let (st, report) = k.admin.get("/v1/admin/check").await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_vm_released_to_the_recycle_bin_is_purged_leaving_no_files() {
    let Some(template) = template_dir() else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let mut k = kvm_cloud(&ts, template).await;
    let (agent, agent_dir) = k.join("host-bin").await;
    let id = k.create("bin-01", "").await;
    k.wait_state(&id, "running").await;
    // Booted (a guest still booting ignores the ACPI power button until QEMU is told to quit).
    k.wait_console(&id, "ZHENGYUN-READY hostname=bin-01", 1)
        .await;
    let vm_dir = agent_dir.join("vms").join(&id);
    assert!(vm_dir.exists(), "{}", vm_dir.display());
    // The recycle bin keeps it for 20 s: released, stopped with its disk, then purged.
    let (st, b) = k
        .admin
        .put(
            "/v1/system/lease-settings",
            json!({ "reminder_offsets_secs": [86400], "grace_secs": 86400, "retention_secs": 20 }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, v) = k
        .member
        .post(&format!("/v1/instances/{id}/release"), json!({}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    k.wait_state(&id, "stopped").await;
    assert!(vm_dir.join("root.qcow2").exists(), "the bin keeps the disk");
    k.wait_state(&id, "deleted").await;
    assert!(!vm_dir.exists(), "{} still exists", vm_dir.display());
    let (st, report) = k.admin.get("/v1/admin/check").await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_migration_moves_a_running_guest_and_its_claims() {
    let Some(template) = template_dir() else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let mut k = kvm_cloud(&ts, template).await;
    let (a, a_dir) = k.join("host-a").await;
    let (b, b_dir) = k.join("host-b").await;
    let id = k.create("counter", COUNTER).await;
    let placed = k.wait_state(&id, "running").await;
    k.wait_console(&id, "count 3", 1).await;
    let (source, target, target_dir) = if placed["host_id"] == a.state.host_id.to_string().as_str()
    {
        (a.state.host_id, b.state.host_id, b_dir.clone())
    } else {
        (b.state.host_id, a.state.host_id, a_dir.clone())
    };
    let before = last_count(&k.console(&id).await).expect("counting");

    let (st, m) = k
        .admin
        .post(
            &format!("/v1/instances/{id}/migrate"),
            json!({ "target_host_id": target.to_string() }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{m}");
    assert_eq!(m["state"], "running");
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let (_, list) = k
            .member
            .get(&format!("/v1/instances/{id}/migrations"))
            .await;
        let m = list["items"][0].clone();
        if m["state"] != "running" {
            break m;
        }
        assert!(Instant::now() < deadline, "migration never ended: {m}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(done["state"], "completed", "{done}");
    let downtime = done["downtime_ms"].as_u64().expect("downtime");
    eprintln!(
        "live migration: downtime {downtime} ms, total {} ms",
        done["total_ms"]
    );
    let i = k.wait_state(&id, "running").await;
    assert_eq!(i["host_id"], target.to_string().as_str(), "{i}");
    // People read host names: the instance's and both ends of the migration.
    let (_, hosts) = k.admin.get("/v1/hosts").await;
    let name_of = |host: &serde_json::Value| {
        hosts["items"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["id"] == *host))
            .map(|h| h["name"].clone())
            .expect("listed host")
    };
    assert_eq!(i["host_name"], name_of(&i["host_id"]), "{i}");
    assert_eq!(done["source_host_name"], name_of(&done["source_host_id"]));
    assert_eq!(done["target_host_name"], name_of(&done["target_host_id"]));
    // The counter goes on where it was, on the target.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = k.console(&id).await;
        if let Some(after) = last_count(&log) {
            if after > before + 1 {
                assert!(!log.contains("boot=2"), "the guest rebooted: {log}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the counter did not go on after {before}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(target_dir.join("vms").join(&id).exists());
    // The claims moved: nothing on the source any more, the instance on the target.
    let (_, hosts) = k.admin.get("/v1/hosts").await;
    let used = |h: uuid::Uuid| {
        hosts["items"]
            .as_array()
            .and_then(|hs| hs.iter().find(|x| x["id"] == h.to_string().as_str()))
            .map(|x| x["used_memory_mib"].as_u64().unwrap_or(99))
            .expect("host")
    };
    assert_eq!(used(source), 0);
    assert_eq!(used(target), 128);
    let (_, report) = k.admin.get("/v1/admin/check").await;
    assert_eq!(report["ok"], true, "{report}");

    // A migration whose target fails to prepare is undone by its saga: the guest stays
    // where it runs and the target's claim goes back. Without a target the scheduler
    // chooses, with the filters of a create: here the only other host.
    ts.server
        .as_ref()
        .expect("server")
        .state
        .compute
        .saga_hooks
        .fail_once("instance_migrate", "prepare_target");
    let wait_migration = |mid: String| {
        let member = k.member.clone();
        let id = id.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                let (_, list) = member.get(&format!("/v1/instances/{id}/migrations")).await;
                let m = list["items"]
                    .as_array()
                    .and_then(|l| l.iter().find(|m| m["id"] == mid.as_str()).cloned())
                    .unwrap_or_default();
                if m["state"] != "running" {
                    return m;
                }
                assert!(Instant::now() < deadline, "migration never ended: {m}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let (st, m) = k
        .admin
        .post(&format!("/v1/instances/{id}/migrate"), json!({}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{m}");
    assert_eq!(m["target_host_id"], source.to_string().as_str(), "{m}");
    let failed = wait_migration(m["id"].as_str().expect("id").to_string()).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let i = k.wait_state(&id, "running").await;
    assert_eq!(i["host_id"], target.to_string().as_str(), "stayed: {i}");
    let (_, hosts) = k.admin.get("/v1/hosts").await;
    let used = |h: uuid::Uuid| {
        hosts["items"]
            .as_array()
            .and_then(|hs| hs.iter().find(|x| x["id"] == h.to_string().as_str()))
            .map(|x| x["used_memory_mib"].as_u64().unwrap_or(99))
            .expect("host")
    };
    assert_eq!((used(source), used(target)), (0, 128), "claims as before");
    let (_, report) = k.admin.get("/v1/admin/check").await;
    assert_eq!(report["ok"], true, "{report}");
    // And back for real, chosen by the scheduler.
    let (st, m) = k
        .admin
        .post(&format!("/v1/instances/{id}/migrate"), json!({}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{m}");
    let back = wait_migration(m["id"].as_str().expect("id").to_string()).await;
    assert_eq!(back["state"], "completed", "{back}");
    let i = k.wait_state(&id, "running").await;
    assert_eq!(i["host_id"], source.to_string().as_str(), "{i}");
    let (_, report) = k.admin.get("/v1/admin/check").await;
    assert_eq!(report["ok"], true, "{report}");

    let (st, _) = k.member.delete(&format!("/v1/instances/{id}")).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    k.wait_state(&id, "deleted").await;
    assert!(!target_dir.join("vms").join(&id).exists());
    a.stop().await;
    b.stop().await;
}

/// Hosts on this machine with a QEMU process of the instance (its id is in the command
/// line; its `-pidfile` is in the host's data dir). A QEMU that is daemonising shows as
/// several processes of one host for a moment: that is one copy.
fn qemu_copies(id: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let hosts: std::collections::BTreeSet<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if !(args.first()?.contains("qemu-system")
                && args.iter().any(|a| a == &format!("zy-{id}")))
            {
                return None;
            }
            let at = args.iter().position(|a| a == "-pidfile")?;
            args.get(at + 1).cloned()
        })
        .collect();
    hosts.len()
}

/// Kills the QEMU processes an agent started (its VMs' pid files).
fn kill_guests(agent_dir: &Path) {
    let Ok(vms) = std::fs::read_dir(agent_dir.join("vms")) else {
        return;
    };
    for vm in vms.flatten() {
        if let Some(pid) = std::fs::read_to_string(vm.path().join("qemu.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

impl Kvm {
    /// Waits until HA has restarted the instance on a host other than `from`, sampling the
    /// QEMU processes on the machine all along: never two copies at once.
    async fn wait_recovered(&self, id: &str, from: &str) -> (Value, Duration) {
        let began = Instant::now();
        let deadline = began + Duration::from_secs(180);
        loop {
            let copies = qemu_copies(id);
            if copies > 1 {
                let ps = std::process::Command::new("ps")
                    .args(["-eo", "pid,ppid,stat,etimes,args"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let mine: Vec<&str> = ps.lines().filter(|l| l.contains(id)).collect();
                panic!(
                    "{copies} QEMU processes run instance {id} at once:\n{}",
                    mine.join("\n")
                );
            }
            let i = self.instance(id).await;
            if i["state"] == "running" && i["host_id"] != from {
                return (i, began.elapsed());
            }
            assert!(
                i["state"] != "error" && i["state"] != "lost",
                "instance not recovered: {i}"
            );
            assert!(Instant::now() < deadline, "never recovered: {i}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn recovery(&self, id: &str) -> Value {
        let (st, r) = self
            .admin
            .get(&format!("/v1/ha/recoveries?instance_id={id}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{r}");
        r["items"][0].clone()
    }
}

/// The trial of issue 14 on real VMs: three agents share a directory as a zone's shared
/// storage. (1) A host dies with its guests (agent and QEMU killed): its shared-storage
/// guest runs again on another host. (2) A host is cut off from the control plane but
/// stays alive: its agent fences the guest when its lease runs out, and only then does the
/// control plane restart it elsewhere — at no moment do two QEMU processes run it. (3) The
/// cut-off host returns: its stale guest is removed, it is enabled again, and putting the
/// guest's host into maintenance live-migrates the guest there without a disk copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ha_restarts_shared_storage_guests_elsewhere_and_never_twice() {
    let Some(template) = template_dir() else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let mut k = kvm_cloud(&ts, template).await;
    let shared = k.agent_dir();
    std::fs::create_dir_all(&shared).expect("shared dir");
    let (st, p) = k
        .admin
        .post(
            "/v1/storage-pools",
            json!({ "zone_id": k.zone, "name": "共享存储", "capacity_gib": 100, "kind": "shared", "path": shared.to_string_lossy() }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let (a, a_dir) = k.join("host-a").await;
    let (b, b_dir) = k.join("host-b").await;
    let (c, c_dir) = k.join("host-c").await;
    let dirs: std::collections::HashMap<String, (PathBuf, String)> =
        [(&a, &a_dir, "a"), (&b, &b_dir, "b"), (&c, &c_dir, "c")]
            .into_iter()
            .map(|(ag, d, n)| (ag.state.host_id.to_string(), (d.clone(), n.to_string())))
            .collect();
    let mut agents = vec![Some(a), Some(b), Some(c)];

    let id = k.create("ha-counter", COUNTER).await;
    let placed = k.wait_state(&id, "running").await;
    assert!(
        placed["root_pool_id"].is_string(),
        "on shared storage: {placed}"
    );
    k.wait_console(&id, "count 2", 1).await;
    let disk = shared.join("disks").join(&id).join("root.qcow2");
    assert!(disk.exists(), "the root disk is on the shared storage");

    // (1) The first host dies: agent gone, its QEMU killed.
    let h1 = placed["host_id"].as_str().expect("host").to_string();
    let (h1_dir, _) = dirs[&h1].clone();
    let i1 = agents
        .iter()
        .position(|a| {
            a.as_ref()
                .is_some_and(|a| a.state.host_id.to_string() == h1)
        })
        .expect("agent of h1");
    agents[i1].take().expect("agent").stop().await;
    kill_guests(&h1_dir);
    let (back, took) = k.wait_recovered(&id, &h1).await;
    k.wait_console(&id, "count 1", 1).await;
    let r = k.recovery(&id).await;
    eprintln!("host killed → running elsewhere: {took:?}; recovery: {r}");
    assert_eq!(r["outcome"], "restarted", "{r}");
    assert_eq!(r["host_id"], h1.as_str());
    assert!(r["recovery_secs"].as_f64().is_some_and(|s| s < 60.0), "{r}");

    // (2) The second host is cut off from the control plane, alive, its guest running.
    let h2 = back["host_id"].as_str().expect("host").to_string();
    let (h2_dir, _) = dirs[&h2].clone();
    let h2_address: String = sqlx::query_scalar("SELECT address FROM agents WHERE host_id = $1")
        .bind(&h2)
        .fetch_one(ts.store().pool())
        .await
        .expect("address");
    sqlx::query("UPDATE agents SET address = '127.0.0.1:9' WHERE host_id = $1")
        .bind(&h2)
        .execute(ts.store().pool())
        .await
        .expect("partition");
    let (again, took) = k.wait_recovered(&id, &h2).await;
    let r = k.recovery(&id).await;
    eprintln!("host cut off → running elsewhere: {took:?}; recovery: {r}");
    assert_eq!(r["host_id"], h2.as_str(), "{r}");
    assert_eq!(r["outcome"], "restarted", "{r}");
    let vm_h2 = h2_dir.join("vms").join(&id);
    assert!(
        std::fs::read_to_string(vm_h2.join("qemu.pid")).is_err(),
        "the cut-off host fenced its copy"
    );
    k.wait_console(&id, "count 1", 1).await;

    // (3) The partition heals: the stale guest goes, the host can be enabled again.
    sqlx::query("UPDATE agents SET address = $1 WHERE host_id = $2")
        .bind(&h2_address)
        .bind(&h2)
        .execute(ts.store().pool())
        .await
        .expect("heal");
    let deadline = Instant::now() + Duration::from_secs(60);
    while vm_h2.exists() {
        assert!(
            Instant::now() < deadline,
            "the stale guest was never removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(disk.exists(), "the shared disk stays");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = k
            .admin
            .patch(&format!("/v1/hosts/{h2}"), json!({ "state": "enabled" }))
            .await;
        if st == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cannot enable the returned host: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Maintenance on the guest's host empties it by live migration (shared disk: no copy).
    let h3 = again["host_id"].as_str().expect("host").to_string();
    let (st, e) = k
        .admin
        .post(&format!("/v1/hosts/{h3}/evacuate"), json!({}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{e}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let evac = loop {
        let (_, e) = k.admin.get(&format!("/v1/hosts/{h3}/evacuation")).await;
        if e["state"] != "running" {
            break e;
        }
        // (A live migration has two QEMU processes for a moment: the target's waits
        // paused for the hand-over.)
        assert!(Instant::now() < deadline, "evacuation never ended: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(evac["state"], "empty", "{evac}");
    assert_eq!(evac["migrated"], 1, "{evac}");
    let moved = k.instance(&id).await;
    assert_eq!(moved["host_id"], h2.as_str(), "{moved}");
    assert_eq!(moved["state"], "running", "{moved}");
    let (_, ms) = k
        .member
        .get(&format!("/v1/instances/{id}/migrations"))
        .await;
    eprintln!("evacuation migration: {}", ms["items"][0]);

    // Deleted: nothing left on the shared storage either.
    let (st, v) = k.member.delete(&format!("/v1/instances/{id}")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while disk.exists() {
        assert!(
            Instant::now() < deadline,
            "the shared disk was never removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for a in agents.into_iter().flatten() {
        a.stop().await;
    }
}

// ---- Networks on real hosts (issue 16's data plane) -----------------------------------

/// The network namespaces, links and processes of one test run, removed when dropped
/// (after a failure too): every namespace whose name starts with the run's prefix (the two
/// hosts, the agents' DHCP namespaces inside them), with every process in it (QEMU,
/// dnsmasq) killed first. Interfaces, bridges and nftables tables go with their namespace.
struct NetBed {
    prefix: String,
}

impl NetBed {
    fn namespaces(&self) -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&self.prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for NetBed {
    fn drop(&mut self) {
        for ns in self.namespaces() {
            if let Ok(o) = std::process::Command::new("ip")
                .args(["netns", "pids", &ns])
                .output()
            {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", pid])
                        .status();
                }
            }
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &ns])
                .status();
        }
    }
}

fn sh(args: &[&str]) {
    let o = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn net_usable() -> bool {
    let ok = ["/usr/sbin/nft", "/usr/sbin/dnsmasq"]
        .iter()
        .all(|p| Path::new(p).exists())
        && std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        && std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("ZY_REQUIRE_QEMU").is_none(),
            "root, iproute2, nftables and dnsmasq are required for the network test"
        );
        eprintln!("SKIPPED: needs root, iproute2, nftables and dnsmasq");
    }
    ok
}

/// The guests serve HTTP on 8080 and 8081 and probe 10.77.0.2 and .3 every numbered
/// round: ping, then a TCP connection to each port (`nc`: busybox `wget` under TCG was
/// too slow to trust), one console line per target.
const PROBE: &str = r#"mkdir -p /tmp/www; echo zy > /tmp/www/index.html
httpd -p 8080 -h /tmp/www; httpd -p 8081 -h /tmp/www
n=0
while true; do
  n=$((n+1))
  for t in 10.77.0.2 10.77.0.3; do
    p=no; ping -c 1 -W 1 $t >/dev/null 2>&1 && p=ok
    a=no; echo | nc -w 3 $t 8080 >/dev/null 2>&1 && a=ok
    b=no; echo | nc -w 3 $t 8081 >/dev/null 2>&1 && b=ok
    echo "ZY-PROBE $n $t ping=$p tcp8080=$a tcp8081=$b"
  done
  sleep 1
done
"#;

impl Kvm {
    /// A host whose data plane and guests live in the network namespace `ns`, its VXLAN
    /// tunnels on `underlay`.
    async fn join_in(
        &mut self,
        name: &str,
        ns: &str,
        underlay: &str,
        dir: Option<PathBuf>,
    ) -> (zy_agent::Agent, PathBuf) {
        let (dir, token) = match dir {
            Some(d) => (d, None),
            None => {
                let (st, t) = self
                    .admin
                    .post(&format!("/v1/zones/{}/join-tokens", self.zone), json!({}))
                    .await;
                assert_eq!(st, StatusCode::CREATED, "{t}");
                (self.agent_dir(), t["token"].as_str().map(str::to_string))
            }
        };
        let mut cfg = self.config(&dir, token, name);
        cfg.netns = Some(ns.to_string());
        cfg.underlay = Some(underlay.parse().expect("underlay"));
        let agent = zy_agent::start(cfg).await.expect("agent starts");
        (agent, dir)
    }

    async fn create_in_group(&self, name: &str, group: Option<&str>) -> String {
        let mut body = json!({ "project_id": self.project, "name": name, "flavor": "1C128M", "image": "zy-busybox", "user_data": PROBE });
        if let Some(g) = group {
            body["group"] = json!({ "name": g, "policy": "anti_affinity" });
        }
        let (st, v) = self.member.post("/v1/instances", body).await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
        v["items"][0]["id"].as_str().expect("id").to_string()
    }

    /// A VPC of the project with the subnet 10.77.0.0/24 (the same in every VPC); returns
    /// the VPC and the subnet.
    async fn vpc_subnet(&self, name: &str) -> (String, String) {
        let (st, v) = self
            .admin
            .post(
                "/v1/vpcs",
                json!({ "project_id": self.project, "name": name }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let (st, sn) = self
            .admin
            .post(
                &format!("/v1/vpcs/{}/subnets", v["id"].as_str().expect("vpc")),
                json!({ "name": "s", "cidr": "10.77.0.0/24", "dhcp": true }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{sn}");
        (
            v["id"].as_str().expect("vpc").to_string(),
            sn["id"].as_str().expect("subnet").to_string(),
        )
    }

    async fn nic(&self, instance: &str, subnet: &str, sg: &str) -> String {
        let (st, n) = self
            .admin
            .post(
                &format!("/v1/instances/{instance}/nics"),
                json!({ "subnet_id": subnet, "security_group_ids": [sg] }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{n}");
        n["ip"].as_str().expect("ip").to_string()
    }
}

/// The probe results for `target` in a console log, of the rounds after `from`.
fn probes(log: &str, from: u64, target: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find("ZY-PROBE ")? + 9..];
            let mut w = rest.splitn(3, ' ');
            let round: u64 = w.next()?.parse().ok()?;
            (round > from && w.next()? == target).then(|| w.next().unwrap_or("").trim().to_string())
        })
        .collect()
}

/// The latest probe round in a console log.
fn last_round(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find("ZY-PROBE ")? + 9..];
            rest.split(' ').next()?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

impl Kvm {
    /// Waits until `id` probes `target` with exactly `want` twice in a row in rounds after
    /// `from`; returns how long it took.
    async fn wait_probe(&self, id: &str, from: u64, target: &str, want: &str) -> Duration {
        let began = Instant::now();
        let deadline = began + Duration::from_secs(120);
        loop {
            let log = self.console(id).await;
            let p = probes(&log, from, target);
            if p.len() >= 2 && p[p.len() - 2..].iter().all(|l| l == want) {
                return began.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{id} never probed {target} as {want:?}; its probes: {p:?}\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guests_on_two_hosts_share_a_vpc_across_vxlan_and_only_what_groups_allow_passes() {
    let Some(template) = template_dir() else {
        return;
    };
    if !net_usable() {
        return;
    }
    let prefix = format!("zq{:x}", std::process::id() & 0xfffff);
    let bed = NetBed {
        prefix: prefix.clone(),
    };
    // Two hosts joined by a wire: a namespace each, a veth pair as the underlay.
    let (n1, n2) = (format!("{prefix}a"), format!("{prefix}b"));
    for n in [&n1, &n2] {
        sh(&["ip", "netns", "add", n]);
        sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
    }
    sh(&[
        "ip", "-n", &n1, "link", "add", "ul", "type", "veth", "peer", "name", "ul", "netns", &n2,
    ]);
    for (n, a) in [(&n1, "10.254.0.1/24"), (&n2, "10.254.0.2/24")] {
        sh(&["ip", "-n", n, "addr", "add", a, "dev", "ul"]);
        sh(&["ip", "-n", n, "link", "set", "ul", "up"]);
    }

    // The external network (政务外网): a bridge in its own namespace with the gateway
    // 198.51.100.1, each host on it by the interface `ext` (hosts' addresses at the top of
    // the range, elastic IPs are handed out from the bottom).
    let nx = format!("{prefix}x");
    sh(&["ip", "netns", "add", &nx]);
    sh(&["ip", "-n", &nx, "link", "set", "lo", "up"]);
    sh(&["ip", "-n", &nx, "link", "add", "br0", "type", "bridge"]);
    sh(&[
        "ip",
        "-n",
        &nx,
        "addr",
        "add",
        "198.51.100.1/24",
        "dev",
        "br0",
    ]);
    sh(&["ip", "-n", &nx, "link", "set", "br0", "up"]);
    for (i, (n, a)) in [(&n1, "198.51.100.250/24"), (&n2, "198.51.100.251/24")]
        .into_iter()
        .enumerate()
    {
        let port = format!("e{i}");
        sh(&[
            "ip", "-n", n, "link", "add", "ext", "type", "veth", "peer", "name", &port, "netns",
            &nx,
        ]);
        sh(&["ip", "-n", &nx, "link", "set", &port, "master", "br0", "up"]);
        sh(&["ip", "-n", n, "addr", "add", a, "dev", "ext"]);
        sh(&["ip", "-n", n, "link", "set", "ext", "up"]);
    }

    let ts = TestServer::start(Db::Sqlite).await;
    let mut k = kvm_cloud(&ts, template).await;
    let (st, x) = k
        .admin
        .post(
            "/v1/external-networks",
            json!({ "zone_id": k.zone, "name": "政务外网", "cidr": "198.51.100.0/24", "host_interface": "ext" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{x}");
    let (a1, dir1) = k.join_in("net-a", &n1, "10.254.0.1", None).await;
    let (a2, _dir2) = k.join_in("net-b", &n2, "10.254.0.2", None).await;
    let by_host: std::collections::HashMap<String, &str> = [
        (a1.state.host_id.to_string(), n1.as_str()),
        (a2.state.host_id.to_string(), n2.as_str()),
    ]
    .into_iter()
    .collect();

    // Two VPCs with the same addresses; a group open to ping (and outbound) only.
    let (vpc1, s1) = k.vpc_subnet("业务网").await;
    let (_, s2) = k.vpc_subnet("隔离网").await;
    let (st, sg) = k
        .admin
        .post(
            "/v1/security-groups",
            json!({ "project_id": k.project, "name": "web" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sg}");
    let sg_id = sg["id"].as_str().expect("sg").to_string();
    let rules = |generation: i64, tcp: &[u16]| {
        // The VPC's two subnets (the second one is added near the end).
        let mut r = vec![json!({ "direction": "egress", "protocol": "any" })];
        for net in ["10.77.0.0/24", "10.78.0.0/24"] {
            r.push(json!({ "direction": "ingress", "protocol": "icmp", "remote_cidr": net }));
            for p in tcp {
                r.push(json!({ "direction": "ingress", "protocol": "tcp", "port_min": p, "remote_cidr": net }));
            }
        }
        json!({ "generation": generation, "rules": r })
    };
    let (st, b) = k
        .admin
        .put(&format!("/v1/security-groups/{sg_id}/rules"), rules(1, &[]))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // A and B never share a host; C is in the other VPC.
    let a = k.create_in_group("net-a", Some("spread")).await;
    let b = k.create_in_group("net-b", Some("spread")).await;
    let c = k.create_in_group("net-c", None).await;
    let mut hosts = Vec::new();
    for id in [&a, &b, &c] {
        let i = k.wait_state(id, "running").await;
        hosts.push(i["host_id"].as_str().expect("host").to_string());
    }
    assert_ne!(hosts[0], hosts[1], "A and B are on different hosts");
    // NICs by hot-plug into the running guests; addresses in creation order.
    assert_eq!(k.nic(&a, &s1, &sg_id).await, "10.77.0.2");
    assert_eq!(k.nic(&b, &s1, &sg_id).await, "10.77.0.3");
    assert_eq!(k.nic(&c, &s2, &sg_id).await, "10.77.0.2");
    for (id, ip) in [(&a, "10.77.0.2"), (&b, "10.77.0.3"), (&c, "10.77.0.2")] {
        k.wait_console(id, &format!("ip={ip}"), 1).await;
    }

    // Across hosts over VXLAN: ping passes, both TCP ports are dropped.
    let took = k
        .wait_probe(&a, 0, "10.77.0.3", "ping=ok tcp8080=no tcp8081=no")
        .await;
    eprintln!(
        "A (on {}) pings B (on {}) after {took:?}",
        by_host[&hosts[0]], by_host[&hosts[1]]
    );
    k.wait_probe(&b, 0, "10.77.0.2", "ping=ok tcp8080=no tcp8081=no")
        .await;
    // The other VPC reaches neither, though it uses the same addresses.
    let from = last_round(&k.console(&c).await);
    k.wait_probe(&c, from, "10.77.0.3", "ping=no tcp8080=no tcp8081=no")
        .await;
    let log = k.console(&c).await;
    assert!(
        probes(&log, from, "10.77.0.3")
            .iter()
            .all(|l| l == "ping=no tcp8080=no tcp8081=no"),
        "C reached into the other VPC: {:?}",
        probes(&log, from, "10.77.0.3")
    );

    // Opening TCP 8080 lets exactly that through, on both hosts, within seconds.
    let from_a = last_round(&k.console(&a).await);
    let from_b = last_round(&k.console(&b).await);
    let before = (
        a1.state.net.generation().await,
        a2.state.net.generation().await,
    );
    let changed = Instant::now();
    let (st, r) = k
        .admin
        .put(
            &format!("/v1/security-groups/{sg_id}/rules"),
            rules(2, &[8080]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    // Both hosts applied the new rule set within a second (the push, not the probe).
    loop {
        let now = (
            a1.state.net.generation().await,
            a2.state.net.generation().await,
        );
        if now.0 > before.0 && now.1 > before.1 {
            break;
        }
        if changed.elapsed() > Duration::from_secs(10) {
            let (_, tasks) = k.admin.get("/v1/system/tasks").await;
            panic!("the rule change never reached both hosts ({before:?} → {now:?}): {tasks}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = changed.elapsed();
    eprintln!("rule change → applied on both hosts: {took:?}");
    let took = k
        .wait_probe(&a, from_a, "10.77.0.3", "ping=ok tcp8080=ok tcp8081=no")
        .await;
    eprintln!("rule change → seen by A's probe: {took:?}");
    k.wait_probe(&b, from_b, "10.77.0.2", "ping=ok tcp8080=ok tcp8081=no")
        .await;

    // The drops were counted: the agent reports them per NIC.
    let report = a2.state.net.report().await;
    assert!(
        report
            .nics
            .iter()
            .any(|n| n.dropped_packets > 0 || n.rx_packets > 0),
        "{report:?}"
    );
    // Each guest's NIC traffic reaches its metrics (the collector sums its taps).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, q) = k
            .admin
            .get(&format!(
                "/v1/metrics/query?scope=instance&id={a}&series=net_rx&step=10"
            ))
            .await;
        assert_eq!(st, StatusCode::OK, "{q}");
        let rx = q["series"][0]["values"]
            .as_array()
            .and_then(|p| p.iter().rev().find_map(Value::as_f64));
        if rx.is_some_and(|r| r > 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no NIC traffic in A's metrics: {q}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // An agent restart leaves every guest's network working (and adopts it).
    a1.stop().await;
    let (a1, _) = k.join_in("net-a", &n1, "10.254.0.1", Some(dir1)).await;
    assert!(a1.state.net.generation().await > 0, "the state was adopted");
    let from_a = last_round(&k.console(&a).await);
    let from_b = last_round(&k.console(&b).await);
    k.wait_probe(&a, from_a, "10.77.0.3", "ping=ok tcp8080=ok tcp8081=no")
        .await;
    k.wait_probe(&b, from_b, "10.77.0.2", "ping=ok tcp8080=ok tcp8081=no")
        .await;

    // An elastic IP bound to A's NIC reaches A's port 8080 from the external network
    // (opened to it by the group), on A's host only; unbound, it answers no more.
    let (st, r) = k
        .admin
        .put(&format!("/v1/security-groups/{sg_id}/rules"), {
            let mut r = rules(3, &[8080]);
            r["rules"].as_array_mut().expect("rules").push(json!({
                    "direction": "ingress", "protocol": "tcp", "port_min": 8080,
                    "remote_cidr": "198.51.100.0/24" }));
            r
        })
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let (st, e) = k
        .admin
        .post(
            "/v1/elastic-ips",
            json!({ "project_id": k.project, "external_network_id": x["id"] }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    let (eip, address) = (
        e["id"].as_str().expect("eip").to_string(),
        e["address"].as_str().expect("address").to_string(),
    );
    let (_, nics) = k.admin.get(&format!("/v1/instances/{a}/nics")).await;
    let nic_a = nics[0]["id"].clone();
    let fetch = |timeout: &'static str| {
        let mut c = tokio::process::Command::new("ip");
        c.args(["netns", "exec", &nx, "/usr/bin/python3", "-c"])
            .arg("import sys, urllib.request as u\ntry: print(u.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode().strip())\nexcept Exception as e: print('ERR', e)")
            .arg(format!("http://{address}:8080/"))
            .arg(timeout);
        async move {
            let out = c.output().await.expect("python3");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    let before = a1.state.net.generation().await;
    let bound_at = Instant::now();
    let (st, bound) = k
        .admin
        .post(
            &format!("/v1/elastic-ips/{eip}/bind"),
            json!({ "nic_id": nic_a }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{bound}");
    assert_eq!(
        bound["host_id"].as_str(),
        Some(hosts[0].as_str()),
        "{bound}"
    );
    // Pushed to A's host (polled), then asked from the external side until A answers.
    let applied = loop {
        if a1.state.net.generation().await > before {
            break bound_at.elapsed();
        }
        assert!(
            bound_at.elapsed() < Duration::from_secs(10),
            "the binding never reached A's host"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    loop {
        if fetch("0.5").await == "zy" {
            break;
        }
        assert!(
            bound_at.elapsed() < Duration::from_secs(15),
            "the elastic IP never reached A: {}",
            fetch("2").await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "elastic IP bind (API) → applied on A's host: {applied:?}, A's port answering on it: {:?}",
        bound_at.elapsed()
    );
    let (st, unbound) = k
        .admin
        .post(&format!("/v1/elastic-ips/{eip}/unbind"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{unbound}");
    let unbound_at = Instant::now();
    loop {
        if fetch("0.5").await.starts_with("ERR") {
            break;
        }
        assert!(
            unbound_at.elapsed() < Duration::from_secs(15),
            "the unbound elastic IP still answers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Routing between the subnets of one VPC across hosts: D, on a second subnet of 业务网,
    // reaches A and B through its host's gateway — one of them is on the other host,
    // wherever D runs — and their answers find the way back (TCP needs both directions).
    let (st, sn2) = k
        .admin
        .post(
            &format!("/v1/vpcs/{vpc1}/subnets"),
            json!({ "name": "s2", "cidr": "10.78.0.0/24", "dhcp": true }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sn2}");
    let sn2 = sn2["id"].as_str().expect("subnet").to_string();
    let d = k.create_in_group("net-d", None).await;
    let host_d = k.wait_state(&d, "running").await["host_id"]
        .as_str()
        .expect("host")
        .to_string();
    assert_eq!(k.nic(&d, &sn2, &sg_id).await, "10.78.0.2");
    k.wait_console(&d, "ip=10.78.0.2", 1).await;
    let (far, near) = if host_d == hosts[0] {
        ("10.77.0.3", "10.77.0.2")
    } else {
        ("10.77.0.2", "10.77.0.3")
    };
    let took = k
        .wait_probe(&d, 0, far, "ping=ok tcp8080=ok tcp8081=no")
        .await;
    eprintln!(
        "D (10.78.0.2, on {}) reaches {far} on the other host across subnets after {took:?}",
        by_host[&host_d]
    );
    k.wait_probe(&d, 0, near, "ping=ok tcp8080=ok tcp8081=no")
        .await;

    for id in [&a, &b, &c, &d] {
        let (st, _) = k.member.delete(&format!("/v1/instances/{id}")).await;
        assert_eq!(st, StatusCode::ACCEPTED);
    }
    for id in [&a, &b, &c, &d] {
        k.wait_state(id, "deleted").await;
    }
    a1.state.net.teardown().await;
    a2.state.net.teardown().await;
    a1.stop().await;
    a2.stop().await;
    drop(bed);
}
