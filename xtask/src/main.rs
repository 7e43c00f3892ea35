//! `cargo xtask …`: the project's automation, in Rust with no dependencies so it builds in
//! seconds on a fresh machine.
//!
//! - `cargo xtask test`    — everything CI checks: format, clippy, and every test on SQLite
//!   and on PostgreSQL (starting a throwaway PostgreSQL, installing it first if missing).
//! - `cargo xtask run`     — the product with demo data on http://127.0.0.1:8080.
//! - `cargo xtask openapi` — regenerate `openapi/zhengyun.json` from the code.
//! - `cargo xtask bench-api [--postgres]` — the API list benchmark (docs/BENCHMARKS.md).
//! - `cargo xtask template [--out DIR] [--force]` — the guest template for `crates/qemu`
//!   (kernel, initramfs, root disk) in `target/zy-template/`.
//! - `cargo xtask web`     — only the console's checks and end-to-end tests (`web.rs`).
//! - `cargo xtask openstack up|down|status|env` — the OpenStack test bed (`openstack.rs`).

mod openstack;
mod pg;
mod smtp;
mod template;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The workspace this xtask was run in. `cargo run` sets `CARGO_MANIFEST_DIR` at run time;
/// the compile-time value is only a fallback, since a build may be reused by another clone
/// that shares the target directory.
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    // `cargo xtask` runs us with xtask's package variables set. Build scripts that watch
    // them (ring's `rerun-if-env-changed=CARGO_PKG_NAME`, …) would see them change between
    // `cargo build` and `cargo xtask …` and rebuild, with everything above them, each time.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&k.as_ref())
        {
            c.env_remove(k.as_ref());
        }
    }
    c
}

/// Runs a command, echoing it; false if it failed.
fn run(mut c: Command) -> bool {
    eprintln!("+ {c:?}");
    match c.status() {
        Ok(s) => s.success(),
        Err(e) => {
            eprintln!("cannot run {c:?}: {e}");
            false
        }
    }
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn test(args: &[String]) -> bool {
    let lint = !args.iter().any(|a| a == "--no-lint");
    // The OpenStack test bed starts while the code is linted and compiled; the tests wait
    // for it. It is stopped when `_bed` is dropped, also when the tests fail.
    let mut bed = openstack::Background::start();
    if lint {
        if !run({
            let mut c = cargo();
            c.args(["fmt", "--all", "--", "--check"]);
            c
        }) {
            eprintln!("formatting differs: run `cargo fmt --all`");
            return false;
        }
        if !run({
            let mut c = cargo();
            c.args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]);
            c
        }) {
            return false;
        }
    }
    let pg = match pg::ensure() {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("cannot provide PostgreSQL for the tests: {e}");
            return false;
        }
    };
    // Real-VM tests need QEMU and the guest template: installed and built here, so a
    // fresh machine runs them too (and they fail rather than skip if anything is missing).
    if !template::run(&[]) {
        eprintln!("cannot build the guest template the real-VM tests need");
        return false;
    }
    // The notification tests send real mail to aiosmtpd on loopback.
    if let Err(e) = smtp::ensure() {
        eprintln!("cannot provide the test SMTP server: {e}");
        return false;
    }
    // The billing tests read exported PDFs with a real reader: poppler's pdftotext, with
    // poppler-data for the Chinese CID font's character collection.
    let poppler_ready = std::path::Path::new("/usr/share/poppler/cidToUnicode/Adobe-GB1").exists()
        && Command::new("pdftotext").arg("-v").output().is_ok();
    if !poppler_ready && !web::apt_install(&["poppler-utils", "poppler-data"]) {
        eprintln!("cannot install poppler-utils and poppler-data for the PDF export tests");
        return false;
    }
    // The network tests check and enforce nftables rule sets in network namespaces joined
    // by a bridge (nftables, iproute2; python3 serves the TCP ports probed); the agents'
    // data plane serves DHCP with dnsmasq (dnsmasq-base), flushes an elastic IP's flows
    // with conntrack and announces it with Habets' arping (iputils' cannot send from an
    // address the host does not own); the transit test pings between hosts' guests
    // (iputils-ping); iperf3 is the benchmarks'.
    let net_ready = [
        "/usr/sbin/nft",
        "/usr/bin/python3",
        "/usr/sbin/dnsmasq",
        "/usr/sbin/conntrack",
        "/usr/sbin/arping",
        "/usr/bin/ping",
        "/usr/bin/iperf3",
    ]
    .iter()
    .all(|p| std::path::Path::new(p).exists())
        && ["/usr/sbin/ip", "/sbin/ip"]
            .iter()
            .any(|p| std::path::Path::new(p).exists());
    if !net_ready
        && !web::apt_install(&[
            "nftables",
            "iproute2",
            "python3",
            "dnsmasq-base",
            "conntrack",
            "arping",
            "iputils-ping",
            "iperf3",
        ])
    {
        eprintln!(
            "cannot install nftables, iproute2, dnsmasq-base, conntrack, arping, iputils-ping and iperf3 \
             for the network tests"
        );
        return false;
    }
    // Remote write is tried against a real Prometheus on loopback.
    let prometheus_ready = Command::new("prometheus").arg("--version").output().is_ok();
    if !prometheus_ready && !web::apt_install(&["prometheus"]) {
        eprintln!("cannot install prometheus for the remote-write test");
        return false;
    }
    // The load balancer test runs real HAProxy (Debian's) in network namespaces.
    let haproxy_ready = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if !haproxy_ready && !web::apt_install(&["haproxy"]) {
        eprintln!("cannot install haproxy for the load balancer tests");
        return false;
    }
    if let Err(e) = bed.ready() {
        eprintln!("{e}");
        return false;
    }
    let mut c = cargo();
    c.envs(openstack::env_vars())
        .env("ZY_REQUIRE_OPENSTACK", "1");
    c.env("ZY_TEMPLATE_DIR", root().join("target/zy-template"))
        .env("ZY_REQUIRE_QEMU", "1")
        .env("ZY_REQUIRE_SMTP", "1")
        .env("ZY_REQUIRE_PDFTOTEXT", "1")
        .env("ZY_REQUIRE_NFT", "1")
        .env("ZY_REQUIRE_PROMETHEUS", "1")
        .env("ZY_REQUIRE_HAPROXY", "1");
    if has_nextest() {
        c.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        c.args(["test", "--workspace", "--no-fail-fast"]);
    }
    c.env("ZHENGYUN_TEST_PG_URL", &pg.url)
        .env("ZHENGYUN_TEST_REQUIRE_PG", "1");
    let ok = run(c);
    drop(pg);
    let web_ok = args.iter().any(|a| a == "--no-web") || web::check(debug_server_build());
    ok && web_ok
}

/// The debug server binary the console's end-to-end tests run against.
fn debug_server_build() -> Command {
    let mut c = cargo();
    c.args(["build", "-p", "zhengyun", "--bin", "zhengyun"]);
    c
}

fn openapi() -> bool {
    let out = cargo()
        .args(["run", "--quiet", "-p", "zhengyun", "--", "openapi"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = root().join("openapi");
            let _ = std::fs::create_dir_all(&dir);
            match std::fs::write(dir.join("zhengyun.json"), &o.stdout) {
                Ok(()) => {
                    eprintln!("wrote openapi/zhengyun.json");
                    true
                }
                Err(e) => {
                    eprintln!("cannot write openapi/zhengyun.json: {e}");
                    false
                }
            }
        }
        Ok(o) => {
            eprintln!("{}", String::from_utf8_lossy(&o.stderr));
            false
        }
        Err(e) => {
            eprintln!("cannot run cargo: {e}");
            false
        }
    }
}

fn run_product() -> bool {
    // The release binary embeds web/dist; without it the server says how to build it.
    let _ = web::build();
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "-p",
        "zhengyun",
        "--",
        "server",
        "--demo",
        "--listen",
        "127.0.0.1:8080",
        "--data-dir",
        "data",
        // Security events: firewalls and WAFs may send syslog here (loopback only).
        "--syslog-udp",
        "127.0.0.1:5514",
        "--syslog-tcp",
        "127.0.0.1:5514",
    ]);
    // With QEMU on the machine, the demo also gets a real provider: this machine, run by
    // a local agent ("本机 KVM").
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if qemu && template::run(&[]) {
        c.arg("--local-agent-template")
            .arg(root().join("target/zy-template"));
    } else {
        eprintln!("QEMU not installed: the demo runs with simulated providers only (apt-get install qemu-system-x86, then cargo xtask run)");
    }
    // With the OpenStack bed up (`cargo xtask openstack up`), the demo registers it as a
    // real provider cloud ("OpenStack 测试床").
    if openstack::reachable() {
        c.arg("--demo-openstack")
            .arg(root().join("target/openstack-bed/env"));
    }
    run(c)
}

fn bench_api(args: &[String]) -> bool {
    if !run({
        let mut c = cargo();
        c.args(["build", "--release", "-p", "zhengyun", "--bins"]);
        c
    }) {
        return false;
    }
    let postgres = args.iter().any(|a| a == "--postgres");
    let _pg;
    let mut c = Command::new(root().join("target/release/zy-bench"));
    c.current_dir(root())
        .arg("--server-bin")
        .arg(root().join("target/release/zhengyun"));
    if postgres {
        _pg = match pg::ensure() {
            Ok(pg) => pg,
            Err(e) => {
                eprintln!("cannot provide PostgreSQL: {e}");
                return false;
            }
        };
        c.arg("--database-url").arg(&_pg.url);
    }
    c.args(args.iter().filter(|a| *a != "--postgres"));
    run(c)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("openapi") => openapi(),
        Some("run") => run_product(),
        Some("web") => web::check(debug_server_build()),
        Some("bench-api") => bench_api(&args[1..]),
        Some("template") => template::run(&args[1..]),
        Some("openstack") => openstack::main(&args[1..]),
        Some("pg") => match pg::ensure() {
            // Starts a PostgreSQL and keeps it for manual use until Enter is pressed.
            Ok(pg) => {
                println!("ZHENGYUN_TEST_PG_URL={}", pg.url);
                let mut s = String::new();
                let _ = std::io::stdin().read_line(&mut s);
                true
            }
            Err(e) => {
                eprintln!("{e}");
                false
            }
        },
        _ => {
            eprintln!("usage: cargo xtask <test [--no-lint] [--no-web] | run | web | openapi | bench-api [--postgres] | template [--out DIR] [--force] | openstack up|down|status|env | pg>");
            false
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
