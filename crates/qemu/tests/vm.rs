//! Real VMs under QEMU (TCG unless KVM proves usable): the `zy-busybox` template from
//! `cargo xtask template` (built on demand, or taken from `ZY_TEMPLATE_DIR`). Without
//! QEMU the tests skip with a message, unless `ZY_REQUIRE_QEMU` is set: then they fail.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use uuid::Uuid;
use zy_qemu::{Accel, ErrorKind, Hypervisor, Template, VmSpec, VmStatus};

const QEMU: &str = "qemu-system-x86_64";
/// Boot allowance under TCG on a loaded 2-core machine.
const BOOT: Duration = Duration::from_secs(90);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn have_qemu() -> bool {
    std::process::Command::new(QEMU)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The template directory, building it once per test binary if needed; None to skip.
fn template_dir() -> Option<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let required = std::env::var_os("ZY_REQUIRE_QEMU").is_some();
    if !have_qemu() {
        assert!(
            !required,
            "ZY_REQUIRE_QEMU is set but {QEMU} is missing (cargo xtask template installs it)"
        );
        eprintln!("SKIPPED: {QEMU} is not installed (set ZY_REQUIRE_QEMU=1 to fail instead)");
        return None;
    }
    let dir = DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("ZY_TEMPLATE_DIR") {
            return Ok(PathBuf::from(d));
        }
        let out = workspace().join("target/zy-template");
        // Test processes (nextest runs one per test) build the template one at a time.
        let _lock = BuildLock::take(&workspace().join("target/zy-template.lock"));
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .current_dir(workspace())
            .args(["run", "-q", "-p", "xtask", "--", "template", "--out"])
            .arg(&out)
            .status()
            .map_err(|e| format!("cannot run cargo xtask template: {e}"))?;
        if !status.success() {
            return Err(format!("cargo xtask template failed: {status}"));
        }
        Ok(out)
    });
    match dir {
        Ok(d) => Some(d.clone()),
        Err(e) => panic!("{e}"),
    }
}

/// A lock file held while the template is built (a stale one is taken over).
struct BuildLock(PathBuf);

impl BuildLock {
    fn take(path: &Path) -> BuildLock {
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return BuildLock(path.to_path_buf()),
                Err(_) if Instant::now() > deadline => {
                    let _ = std::fs::remove_file(path);
                }
                Err(_) => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(300));
                    if stale {
                        let _ = std::fs::remove_file(path);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh data dir with the template installed; removed when the test passes.
struct Host {
    dir: PathBuf,
    hv: Hypervisor,
}

impl Host {
    async fn new(template: &Path) -> Host {
        let dir = std::env::temp_dir().join(format!("zyq-{}", &Uuid::new_v4().to_string()[..8]));
        Template::install(&dir, template)
            .await
            .expect("install template");
        let hv = Hypervisor::new(&dir, Path::new(QEMU), Accel::Tcg).expect("hypervisor");
        Host { dir, hv }
    }

    async fn log(&self, id: Uuid) -> String {
        self.hv.console_log(id, 100_000).await.unwrap_or_default()
    }

    /// Polls the serial log until `pred` holds.
    async fn wait_log(&self, id: Uuid, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log(id).await;
            if pred(&log) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; console:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_count(&self, id: Uuid, needle: &str, n: usize, timeout: Duration) {
        self.wait_log(id, &format!("{n} × {needle:?}"), timeout, |l| {
            l.matches(needle).count() >= n
        })
        .await
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn spec(hostname: &str, user_data: Option<&str>) -> VmSpec {
    VmSpec {
        id: Uuid::new_v4(),
        hostname: hostname.into(),
        vcpus: 1,
        memory_mib: 128,
        disk_gib: 1,
        template: "zy-busybox".into(),
        user_data: user_data.map(str::to_string),
        forward_port: None,
        restart_on_crash: true,
        shared_dir: None,
        nics: vec![],
    }
}

fn ready(hostname: &str) -> String {
    format!("ZHENGYUN-READY hostname={hostname} ")
}

#[tokio::test]
async fn vm_boots_runs_user_data_reboots_stops_and_grows_its_disk() {
    let Some(t) = template_dir() else { return };
    let host = Host::new(&t).await;
    let s = spec("web-01", Some("echo USERDATA-RAN-$(hostname)\n"));
    host.hv.create_disk(&s).await.expect("create disk");
    host.hv
        .create_disk(&s)
        .await
        .expect("create disk is idempotent");

    let began = Instant::now();
    let r = host.hv.start(&s).await.expect("start");
    assert!(r.started);
    assert_eq!(host.hv.status(s.id).await, VmStatus::Running { pid: r.pid });
    assert!(!host.hv.start(&s).await.expect("start again").started);
    host.hv
        .wait_console(s.id, &ready("web-01"), 1, BOOT)
        .await
        .expect("ready marker");
    eprintln!("boot to ready marker: {:?}", began.elapsed());
    host.wait_count(s.id, "USERDATA-RAN-web-01", 1, BOOT).await;
    assert!(host.log(s.id).await.contains("disk_bytes=1073741824"));

    host.hv.reboot(s.id).await.expect("reboot");
    host.wait_count(s.id, &ready("web-01"), 2, BOOT).await;
    assert!(
        host.log(s.id).await.contains("boot=2"),
        "the disk persists across reboots"
    );

    let m = host.hv.metrics(s.id).await.expect("metrics");
    assert!(m.running && m.cpu_time_ms > 0 && m.rss_bytes > 0, "{m:?}");
    assert_eq!(m.memory_bytes, 128 << 20);
    assert!(
        m.block
            .iter()
            .any(|b| b.device == "root-disk" && b.rd_bytes > 0),
        "{m:?}"
    );

    let stop = host
        .hv
        .stop(s.id, Duration::from_secs(60))
        .await
        .expect("stop");
    eprintln!("ACPI stop: {stop:?}");
    assert!(stop.was_running && stop.graceful, "{stop:?}");
    assert!(host
        .log(s.id)
        .await
        .contains("ZHENGYUN-POWEROFF hostname=web-01"));
    assert_eq!(host.hv.status(s.id).await, VmStatus::Stopped);
    assert!(
        !host
            .hv
            .stop(s.id, Duration::from_secs(1))
            .await
            .expect("stop again")
            .was_running
    );

    // Grown while stopped: the guest sees 2 GiB at the next boot.
    host.hv.resize_disk(s.id, 2).await.expect("resize stopped");
    let err = host.hv.resize_disk(s.id, 1).await.expect_err("shrink");
    assert_eq!(err.kind(), ErrorKind::Permanent);
    host.hv
        .start(&host.hv.spec(s.id).await.expect("spec"))
        .await
        .expect("start");
    host.wait_count(s.id, &ready("web-01"), 3, BOOT).await;
    assert!(host
        .log(s.id)
        .await
        .contains("disk_bytes=2147483648 boot=3"));

    // Grown while running: block_resize, the guest notices at once.
    host.hv.resize_disk(s.id, 3).await.expect("resize running");
    host.wait_count(s.id, "ZY-BLOCK resize vda bytes=3221225472", 1, BOOT)
        .await;

    host.hv.delete(s.id).await.expect("delete");
    assert_eq!(host.hv.status(s.id).await, VmStatus::Missing);
    assert!(!host.dir.join("vms").join(s.id.to_string()).exists());
    host.hv.delete(s.id).await.expect("delete is idempotent");
    let left: Vec<_> = std::fs::read_dir(host.dir.join("vms"))
        .expect("vms")
        .collect();
    assert!(left.is_empty(), "nothing left: {left:?}");
}

#[tokio::test]
async fn volumes_hot_plug_and_unplug_and_survive_restarts() {
    let Some(t) = template_dir() else { return };
    let host = Host::new(&t).await;
    let mut s = spec("db-01", None);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    s.forward_port = Some((port, 22));
    host.hv.create_disk(&s).await.expect("create disk");
    host.hv.start(&s).await.expect("start");
    host.wait_count(s.id, &ready("db-01"), 1, BOOT).await;
    // User-mode networking: DHCP in the guest, the forwarded port on 127.0.0.1 only.
    host.wait_count(s.id, "ZY-NET eth0 ip=10.0.2.15", 1, BOOT)
        .await;
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("forwarded port listens");

    let vol = Uuid::new_v4();
    host.hv.attach_volume(s.id, vol, 2).await.expect("attach");
    host.hv
        .attach_volume(s.id, vol, 2)
        .await
        .expect("attach is idempotent");
    host.wait_count(s.id, "ZY-BLOCK add vdb bytes=2147483648", 1, BOOT)
        .await;
    assert_eq!(host.hv.volumes(s.id).await.expect("volumes").len(), 1);

    host.hv.detach_volume(s.id, vol).await.expect("detach");
    host.hv
        .detach_volume(s.id, vol)
        .await
        .expect("detach is idempotent");
    host.wait_count(s.id, "ZY-BLOCK remove vdb", 1, BOOT).await;
    assert!(host.hv.volumes(s.id).await.expect("volumes").is_empty());

    // Attached again, then the VM restarts: the volume is on the new command line.
    host.hv
        .attach_volume(s.id, vol, 2)
        .await
        .expect("attach again");
    host.wait_count(s.id, "ZY-BLOCK add vdb", 2, BOOT).await;
    host.hv
        .stop(s.id, Duration::from_secs(60))
        .await
        .expect("stop");
    // Attached while stopped: recorded, on the command line at the next start.
    let vol2 = Uuid::new_v4();
    host.hv
        .attach_volume(s.id, vol2, 1)
        .await
        .expect("attach stopped");
    host.hv.start(&s).await.expect("start");
    host.wait_count(s.id, &ready("db-01"), 2, BOOT).await;
    host.wait_count(s.id, "ZY-BLOCK add vdb", 3, BOOT).await;
    host.wait_count(s.id, "ZY-BLOCK add vdc bytes=1073741824", 1, BOOT)
        .await;
    host.hv
        .detach_volume(s.id, vol2)
        .await
        .expect("detach vol2");
    host.wait_count(s.id, "ZY-BLOCK remove vdc", 1, BOOT).await;

    let err = host
        .hv
        .delete_volume(s.id, vol)
        .await
        .expect_err("attached");
    assert_eq!(err.kind(), ErrorKind::Permanent);
    host.hv.detach_volume(s.id, vol).await.expect("detach");
    host.hv
        .delete_volume(s.id, vol)
        .await
        .expect("delete volume");
    assert!(!host
        .dir
        .join(format!("vms/{}/vol-{vol}.qcow2", s.id))
        .exists());
    host.hv.delete(s.id).await.expect("delete");
}

#[tokio::test]
async fn a_new_hypervisor_adopts_running_vms_and_reports_killed_ones() {
    let Some(t) = template_dir() else { return };
    let host = Host::new(&t).await;
    let s = spec("app-01", None);
    host.hv.create_disk(&s).await.expect("create disk");
    let pid = host.hv.start(&s).await.expect("start").pid;
    host.wait_count(s.id, &ready("app-01"), 1, BOOT).await;

    // The agent restarts: a new Hypervisor on the same data dir.
    let again = Hypervisor::new(&host.dir, Path::new(QEMU), Accel::Tcg).expect("hypervisor");
    let found = again.adopt().await.expect("adopt");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].spec, s);
    assert_eq!(found[0].status, VmStatus::Running { pid });
    assert!(found[0].responsive);

    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while again.status(s.id).await != (VmStatus::Crashed { pid }) {
        assert!(Instant::now() < deadline, "kill -9 not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let found = again.adopt().await.expect("adopt");
    assert_eq!(found[0].status, VmStatus::Crashed { pid });
    assert!(found[0].spec.restart_on_crash);

    // The caller's restart policy: start it again.
    let pid2 = again.start(&found[0].spec).await.expect("restart").pid;
    assert_ne!(pid, pid2);
    host.wait_count(s.id, &ready("app-01"), 2, BOOT).await;
    again.delete(s.id).await.expect("delete");
}

#[tokio::test]
async fn live_migration_moves_the_vm_and_its_disk_and_the_counter_goes_on() {
    let Some(t) = template_dir() else { return };
    let source = Host::new(&t).await;
    let target = Host::new(&t).await;
    let counter = "echo data-$(hostname) > /data/migrated; sync\n\
                   i=0; while :; do echo ZY-COUNT $i; i=$((i+1)); sleep 0.5; done\n";
    let s = spec("mig-01", Some(counter));
    source.hv.create_disk(&s).await.expect("create disk");
    source.hv.start(&s).await.expect("start");
    source.wait_count(s.id, "ZY-COUNT 3\n", 1, BOOT).await;

    let ep = target.hv.prepare_incoming(&s).await.expect("prepare");
    let report = source.hv.migrate_out(s.id, ep).await.expect("migrate");
    target.hv.finish_incoming(s.id).await.expect("finish");
    eprintln!("migration: {report:?}");
    assert!(report.ram_bytes > 0 && report.disk_bytes > 0, "{report:?}");
    assert_eq!(source.hv.status(s.id).await, VmStatus::Missing);
    assert!(!source.dir.join("vms").join(s.id.to_string()).exists());
    assert!(matches!(
        target.hv.status(s.id).await,
        VmStatus::Running { .. }
    ));

    // The counter continues on the target's own console from where it was.
    target.wait_count(s.id, "ZY-COUNT", 3, BOOT).await;
    let log = target.log(s.id).await;
    let counts: Vec<u64> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ZY-COUNT "))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert!(counts[0] > 3, "the guest did not start over: {counts:?}");
    assert!(counts.windows(2).all(|w| w[1] == w[0] + 1), "{counts:?}");
    assert!(
        !log.contains("ZHENGYUN-READY"),
        "the target did not boot anew:\n{log}"
    );

    // The disk came along: what the guest wrote reads back after a reboot on the target.
    target.hv.reboot(s.id).await.expect("reboot");
    target.wait_count(s.id, &ready("mig-01"), 1, BOOT).await;
    assert!(
        target.log(s.id).await.contains("boot=2"),
        "the boot counter on disk moved along"
    );
    target.hv.delete(s.id).await.expect("delete");
}

#[tokio::test]
async fn templates_are_verified_and_specs_validated_before_anything_runs() {
    let Some(t) = template_dir() else { return };
    let host = Host::new(&t).await;
    // A linked clone: the VM's disk points at the installed template and copies nothing.
    let s = spec("clone-01", None);
    host.hv.create_disk(&s).await.expect("create disk");
    let root = host.dir.join(format!("vms/{}/root.qcow2", s.id));
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&root)
        .output()
        .expect("qemu-img info");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(
        info["backing-filename"].as_str(),
        Some(
            host.dir
                .join("templates/zy-busybox/root.qcow2")
                .to_str()
                .expect("utf-8")
        )
    );
    assert!(std::fs::metadata(&root).expect("root").len() < 1 << 20);

    let mut bad = spec("Bad_Name", None);
    let err = host.hv.create_disk(&bad).await.expect_err("bad hostname");
    assert_eq!(err.kind(), ErrorKind::Permanent);
    bad.hostname = "ok".into();
    bad.template = "no-such-template".into();
    let err = host.hv.create_disk(&bad).await.expect_err("no template");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = host.hv.reboot(Uuid::new_v4()).await.expect_err("no VM");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // A tampered template is refused with a clear error.
    let copy = host.dir.join("tampered");
    std::fs::create_dir_all(&copy).expect("mkdir");
    for f in ["vmlinuz", "initrd.img", "root.qcow2", "template.json"] {
        std::fs::copy(t.join(f), copy.join(f)).expect("copy");
    }
    let mut initrd = std::fs::read(copy.join("initrd.img")).expect("read");
    initrd[100] ^= 0xff;
    std::fs::write(copy.join("initrd.img"), initrd).expect("write");
    let other = host.dir.join("other");
    let err = Template::install(&other, &copy)
        .await
        .expect_err("tampered");
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(
        err.to_string().contains("initrd.img does not match"),
        "{err}"
    );
    let cap = host.hv.host_capacity().await.expect("capacity");
    assert!(cap.cores >= 1 && cap.memory_bytes > 0 && cap.disk_total_bytes >= cap.disk_free_bytes);
    assert!(cap.disk_free_bytes > 0, "{cap:?}");
    host.hv.delete(s.id).await.expect("delete");
}

#[tokio::test]
async fn the_kvm_probe_answers_in_bounded_time() {
    let Some(t) = template_dir() else { return };
    let template = Template::open(&t).await.expect("template");
    let began = Instant::now();
    let accel = zy_qemu::probe_accel(Path::new(QEMU), &template, Duration::from_secs(5)).await;
    eprintln!("probe chose {accel:?} in {:?}", began.elapsed());
    assert!(began.elapsed() < Duration::from_secs(15));
    if !Path::new("/dev/kvm").exists() {
        assert_eq!(accel, Accel::Tcg);
    }
}
