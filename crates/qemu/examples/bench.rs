//! The QEMU layer's benchmark (figures in docs/BENCHMARKS.md). Needs the template:
//! `cargo xtask template`, then
//!
//! ```text
//! cargo run --release -p zy-qemu --example bench -- boots 20      # create→started, create→ready, ACPI stop
//! cargo run --release -p zy-qemu --example bench -- migrate 5     # live migration downtime
//! cargo run --release -p zy-qemu --example bench -- density 40    # how many 128 MiB guests run at once
//! cargo run --release -p zy-qemu --example bench -- machines 5    # pc vs q35 vs microvm boot, raw QEMU
//! ```
//!
//! `ZY_TEMPLATE_DIR` overrides the template location (default `target/zy-template`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;
use zy_qemu::{Accel, Hypervisor, Template, VmSpec};

const QEMU: &str = "qemu-system-x86_64";

fn template_dir() -> PathBuf {
    std::env::var_os("ZY_TEMPLATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/zy-template"))
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
        restart_on_crash: false,
        shared_dir: None,
        nics: vec![],
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

fn summary(name: &str, v: &[f64]) {
    println!(
        "{name}: n={} p50={:.0} ms p95={:.0} ms min={:.0} ms max={:.0} ms",
        v.len(),
        pct(v, 50.0),
        pct(v, 95.0),
        pct(v, 0.0),
        pct(v, 100.0)
    );
}

async fn wait_marker(hv: &Hypervisor, id: Uuid, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if hv
            .console_log(id, 10_000)
            .await
            .map(|l| l.contains(needle))
            .unwrap_or(false)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn host(tag: &str) -> Result<(PathBuf, Hypervisor), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("zyb-{tag}-{}", &Uuid::new_v4().to_string()[..6]));
    Template::install(&dir, &template_dir()).await?;
    let hv = Hypervisor::new(&dir, Path::new(QEMU), Accel::Tcg)?;
    Ok((dir, hv))
}

async fn boots(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (dir, hv) = host("boots").await?;
    let (mut started, mut ready, mut stop) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let s = spec(&format!("bench-{i}"), None);
        let t0 = Instant::now();
        hv.create_disk(&s).await?;
        hv.start(&s).await?;
        started.push(t0.elapsed().as_secs_f64() * 1000.0);
        if !wait_marker(&hv, s.id, "ZHENGYUN-READY", Duration::from_secs(120)).await {
            return Err(format!("VM {i} did not boot").into());
        }
        ready.push(t0.elapsed().as_secs_f64() * 1000.0);
        let r = hv.stop(s.id, Duration::from_secs(60)).await?;
        if !r.graceful {
            eprintln!("VM {i}: ACPI stop was not graceful");
        }
        stop.push(r.elapsed_ms as f64);
        hv.delete(s.id).await?;
    }
    summary("create -> QEMU started", &started);
    summary("create -> ready marker", &ready);
    summary("ACPI stop (power button -> QEMU exited)", &stop);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

async fn migrate(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (da, a) = host("mig-a").await?;
    let (db, b) = host("mig-b").await?;
    let s = spec(
        "mig",
        Some("i=0; while :; do echo ZY-COUNT $i; i=$((i+1)); sleep 0.5; done\n"),
    );
    a.create_disk(&s).await?;
    a.start(&s).await?;
    if !wait_marker(&a, s.id, "ZY-COUNT 2", Duration::from_secs(120)).await {
        return Err("VM did not boot".into());
    }
    let (mut down, mut total) = (Vec::new(), Vec::new());
    let (mut from, mut to) = (&a, &b);
    for _ in 0..n {
        let ep = to.prepare_incoming(&s).await?;
        let r = from.migrate_out(s.id, ep).await?;
        to.finish_incoming(s.id).await?;
        println!("{r:?}");
        down.push(r.downtime_ms as f64);
        total.push(r.total_ms as f64);
        std::mem::swap(&mut from, &mut to);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    summary("migration downtime", &down);
    summary("migration total (mirror + RAM + cleanup)", &total);
    from.delete(s.id).await?;
    let _ = std::fs::remove_dir_all(da);
    let _ = std::fs::remove_dir_all(db);
    Ok(())
}

/// Starts 128 MiB guests one after another until `max`, a boot slower than 120 s, less
/// than 1 GiB of host memory available, a host that answers slowly (spawning `true`
/// takes over 1 s) or 10 minutes in all.
async fn density(max: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (dir, hv) = host("density").await?;
    let began = Instant::now();
    let mut ids = Vec::new();
    let mut why = "reached the maximum asked for";
    for i in 0..max {
        if began.elapsed() > Duration::from_secs(600) {
            why = "10 minutes passed";
            break;
        }
        let s = spec(&format!("dense-{i}"), None);
        let t0 = Instant::now();
        hv.create_disk(&s).await?;
        hv.start(&s).await?;
        ids.push(s.id);
        let booted = wait_marker(&hv, s.id, "ZHENGYUN-READY", Duration::from_secs(120)).await;
        let boot = t0.elapsed();
        let t1 = Instant::now();
        let _ = std::process::Command::new("true").status();
        let spawn = t1.elapsed();
        let cap = hv.host_capacity().await?;
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "guests={} boot={:.1}s spawn(true)={:.0}ms mem_available={} MiB load={}",
            i + 1,
            boot.as_secs_f64(),
            spawn.as_secs_f64() * 1000.0,
            cap.memory_available_bytes >> 20,
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
        if !booted {
            why = "the last guest did not boot within 120 s";
            break;
        }
        if cap.memory_available_bytes < 1 << 30 {
            why = "host memory available fell under 1 GiB";
            break;
        }
        if spawn > Duration::from_secs(1) {
            why = "the host answered slowly";
            break;
        }
    }
    let mut alive = 0;
    for id in &ids {
        if matches!(hv.status(*id).await, zy_qemu::VmStatus::Running { .. }) {
            alive += 1;
        }
    }
    println!(
        "density: {alive} guests of 128 MiB running at once ({why}); {:.0} s in all",
        began.elapsed().as_secs_f64()
    );
    for id in ids {
        hv.delete(id).await?;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// Raw QEMU boots of the template on three machine types, to choose one.
async fn machines(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let t = template_dir();
    let work =
        std::env::temp_dir().join(format!("zyb-machines-{}", &Uuid::new_v4().to_string()[..6]));
    std::fs::create_dir_all(&work)?;
    // q35 needs a pcie-root-port per hot-pluggable disk; the second q35 line has 8.
    let ports: Vec<String> = (1..=8)
        .flat_map(|i| {
            [
                "-device".to_string(),
                format!("pcie-root-port,id=rp{i},chassis={i},bus=pcie.0"),
            ]
        })
        .collect();
    for (label, extra) in [
        ("pc", Vec::new()),
        ("q35", Vec::new()),
        ("q35", ports),
        ("microvm", Vec::new()),
    ] {
        let machine = label;
        let label = if extra.is_empty() {
            label.to_string()
        } else {
            format!("{label} + 8 pcie-root-ports")
        };
        let (bus, net) = if machine == "microvm" {
            ("virtio-blk-device", "virtio-net-device")
        } else {
            ("virtio-blk-pci", "virtio-net-pci,romfile=")
        };
        let mut times = Vec::new();
        for i in 0..n {
            let disk = work.join(format!("{machine}-{}-{i}.qcow2", extra.len()));
            let serial = work.join(format!("{machine}-{}-{i}.log", extra.len()));
            std::process::Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                .arg(t.join("root.qcow2"))
                .arg(&disk)
                .status()?;
            let t0 = Instant::now();
            let mut child = std::process::Command::new(QEMU)
                .args([
                    "-machine",
                    machine,
                    "-accel",
                    "tcg",
                    "-nodefaults",
                    "-no-user-config",
                ])
                .args(["-display", "none", "-m", "128", "-smp", "1"])
                .arg("-kernel")
                .arg(t.join("vmlinuz"))
                .arg("-initrd")
                .arg(t.join("initrd.img"))
                .args([
                    "-append",
                    &format!("{} zy.hostname=m", zy_qemu::KERNEL_CMDLINE),
                ])
                .arg("-serial")
                .arg(format!("file:{}", serial.display()))
                .arg("-blockdev")
                .arg(format!(
                    "driver=qcow2,node-name=root,file.driver=file,file.filename={}",
                    disk.display()
                ))
                .args(["-device", &format!("{bus},drive=root")])
                .args([
                    "-netdev",
                    "user,id=n0,restrict=on",
                    "-device",
                    &format!("{net},netdev=n0"),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut ok = false;
            while Instant::now() < deadline {
                if std::fs::read_to_string(&serial)
                    .map(|l| l.contains("ZHENGYUN-READY"))
                    .unwrap_or(false)
                {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let el = t0.elapsed().as_secs_f64() * 1000.0;
            let _ = child.kill();
            let _ = child.wait();
            if ok {
                times.push(el);
            } else {
                println!("{label}: boot {i} did not reach the marker in 60 s");
            }
        }
        summary(&format!("-M {label}: spawn -> ready marker"), &times);
    }
    let _ = std::fs::remove_dir_all(work);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |d: usize| args.get(1).and_then(|v| v.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("boots") => boots(n(20)).await,
        Some("migrate") => migrate(n(5)).await,
        Some("density") => density(n(40)).await,
        Some("machines") => machines(n(5)).await,
        _ => Err("usage: bench <boots [N] | migrate [N] | density [MAX] | machines [N]>".into()),
    }
}
