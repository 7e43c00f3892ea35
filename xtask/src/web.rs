//! The web console's part of `cargo xtask test` and `cargo xtask run`.
//!
//! `check` installs what the console's tests need (Debian's `chromium` and a CJK font
//! through apt when missing; never a browser download), `npm ci` in `web/`, type-checks,
//! fails when the API types drift from `openapi/zhengyun.json`, builds with Vite, prints
//! the bundle sizes, then starts the debug `zhengyun server --demo` on a free loopback port
//! with a temporary data directory and runs the Playwright end-to-end tests against it,
//! stopping the server afterwards. `build` is what `cargo xtask run` does first.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{root, run};

const CHROMIUM: &str = "/usr/bin/chromium";
/// A CJK font so that screenshots show Chinese text rather than boxes.
const CJK_FONT_PACKAGE: &str = "fonts-wqy-microhei";
const CJK_FONT_FILE: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

fn web_dir() -> PathBuf {
    root().join("web")
}

fn npm(args: &[&str]) -> Command {
    let mut c = Command::new("npm");
    c.current_dir(web_dir()).args(args);
    c
}

/// `npm ci` unless `node_modules` was installed from this very `package-lock.json`: a
/// successful install leaves a copy of the lock file in `node_modules` as its stamp.
fn install_node_modules() -> bool {
    let lock = std::fs::read(web_dir().join("package-lock.json")).ok();
    let stamp = web_dir().join("node_modules/.zy-installed-package-lock.json");
    if lock.is_some() && std::fs::read(&stamp).ok() == lock {
        return true;
    }
    if !run(npm(&["ci", "--no-audit", "--no-fund"])) {
        return false;
    }
    if let Some(lock) = lock {
        let _ = std::fs::write(&stamp, lock);
    }
    true
}

/// What `vite build` reads; `web/dist` is rebuilt only when one of these changed.
const BUILD_INPUTS: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

/// The newest modification time (ns since the epoch) and the number of the build's input
/// files: a file changed, added or removed changes one of them.
fn inputs_fingerprint() -> String {
    fn walk(p: &Path, newest: &mut u128, count: &mut u64) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), newest, count);
            }
        } else {
            *count += 1;
            let t = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            *newest = (*newest).max(t);
        }
    }
    let (mut newest, mut count) = (0, 0);
    for i in BUILD_INPUTS {
        walk(&web_dir().join(i), &mut newest, &mut count);
    }
    format!("{newest} {count}\n")
}

/// Builds the console into `web/dist` (for `cargo xtask run`); false if npm is missing or
/// the build fails, in which case the server shows how to build it.
///
/// Nothing is done when `web/dist` was built from the inputs as they are (a stamp in
/// `target/` records their fingerprint): rewriting `web/dist` would make the release
/// server, which embeds it, compile and link again.
pub fn build() -> bool {
    let stamp = root().join("target/zy-web-dist.stamp");
    let fingerprint = inputs_fingerprint();
    let built = web_dir().join("dist/index.html").exists()
        && std::fs::read_to_string(&stamp).ok().as_deref() == Some(fingerprint.as_str());
    if built {
        eprintln!("web/dist is up to date");
        return true;
    }
    if Command::new("npm").arg("--version").output().is_err() {
        eprintln!("npm not found: the console is not built (the API still runs)");
        return false;
    }
    let ok = install_node_modules() && run(npm(&["run", "build"]));
    if ok {
        let _ = std::fs::create_dir_all(root().join("target"));
        let _ = std::fs::write(&stamp, fingerprint);
    }
    ok
}

pub fn apt_install(packages: &[&str]) -> bool {
    eprintln!("installing {packages:?} with apt-get");
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    if !run(update) {
        return false;
    }
    let mut c = Command::new("apt-get");
    c.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(c)
}

fn ensure_browser() -> bool {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push("chromium");
    }
    if !Path::new(CJK_FONT_FILE).exists() {
        missing.push(CJK_FONT_PACKAGE);
    }
    if missing.is_empty() {
        return true;
    }
    apt_install(&missing) && Path::new(CHROMIUM).exists()
}

/// The demo server for the end-to-end tests; killed and its data removed when dropped.
struct DemoServer {
    child: Child,
    dir: PathBuf,
    base: String,
    /// The first start's one-time passwords: (`admin` | `secadmin` | `auditor`, password).
    admin_passwords: Vec<(String, String)>,
    /// Whether the server runs the demo's local agent (本机 KVM, real VMs).
    kvm: bool,
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.kvm {
            // The local agent's VMs are QEMU processes of their own; a test that failed
            // half-way may leave one. Their command lines name this run's unique data dir.
            let _ = Command::new("pkill")
                .arg("-f")
                .arg(self.dir.join("data/local-agent/"))
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Option<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

fn start_demo_server(bin: &Path) -> Result<DemoServer, String> {
    let port = free_port().ok_or("no free port")?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // Short: the local agent's QMP sockets live below it (Unix socket paths are short).
    let dir = std::env::temp_dir().join(format!("zyw-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{port}");
    // With QEMU and the guest template (built by `cargo xtask test` before the console's
    // checks), the demo also gets its real provider, so the console is tried on real VMs.
    let template = root().join("target/zy-template");
    let kvm = template.join("template.json").exists()
        && Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    let mut cmd = Command::new(bin);
    cmd.args(["server", "--demo", "--listen", &addr, "--data-dir"])
        .arg(dir.join("data"));
    if kvm {
        cmd.arg("--local-agent-template").arg(&template);
    }
    let mut child = cmd
        .env("ZHENGYUN_WEB_DIR", web_dir().join("dist"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    // The first start prints the admins' one-time passwords on stdout; read them, then
    // keep draining stdout so the server never blocks on a full pipe.
    let (tx, rx) = mpsc::channel::<String>();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut server = DemoServer {
        child,
        dir,
        base: format!("http://{addr}"),
        admin_passwords: Vec::new(),
        kvm,
    };
    let take = |server: &mut DemoServer, rx: &mpsc::Receiver<String>| {
        while let Ok(line) = rx.try_recv() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let (Some(name), Some(pw), 4..) = (words.first(), words.last(), words.len()) {
                if matches!(*name, "admin" | "secadmin" | "auditor") {
                    server
                        .admin_passwords
                        .push((name.to_string(), pw.to_string()));
                }
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        take(&mut server, &rx);
        if TcpStream::connect(&addr).is_ok() {
            // Give the reader a moment to pass on the lines printed before listening.
            std::thread::sleep(Duration::from_millis(200));
            take(&mut server, &rx);
            return Ok(server);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "the server exited ({status}); see {}",
                server.dir.join("server.log").display()
            ));
        }
        if Instant::now() > deadline {
            return Err("the server did not start listening within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Everything CI checks about the console; `cargo` builds the debug `zhengyun` binary.
pub fn check(cargo: Command) -> bool {
    let started = Instant::now();
    if Command::new("npm").arg("--version").output().is_err() {
        eprintln!("npm not found: the console cannot be checked");
        return false;
    }
    if !ensure_browser() {
        eprintln!("cannot install Debian's chromium for the console's end-to-end tests");
        return false;
    }
    if !(install_node_modules()
        && run(npm(&["run", "typecheck"]))
        && run(npm(&["run", "check:api"]))
        && run(npm(&["run", "build"]))
        && run(npm(&["run", "size"])))
    {
        return false;
    }
    if !run(cargo) {
        return false;
    }
    let bin = root().join("target/debug/zhengyun");
    let server = match start_demo_server(&bin) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the demo server for the console's tests: {e}");
            return false;
        }
    };
    let mut e2e = npm(&["run", "e2e"]);
    e2e.env("ZY_E2E_BASE", &server.base)
        .env("ZHENGYUN_WEB_DIR", web_dir().join("dist"));
    if server.kvm {
        e2e.env("ZY_E2E_KVM", "1");
    }
    // With the OpenStack bed up (it is, under `cargo xtask test`), the platform admin's
    // test also adopts a server made directly in it.
    if crate::openstack::reachable() {
        e2e.envs(crate::openstack::env_vars())
            .env("ZY_E2E_OPENSTACK", "1");
    }
    for (name, password) in &server.admin_passwords {
        e2e.env(
            format!("ZY_E2E_{}_PASSWORD", name.to_ascii_uppercase()),
            password,
        );
    }
    let ok = run(e2e);
    drop(server);
    eprintln!(
        "console checks took {:.0} s; screenshots in web/e2e/artifacts/",
        started.elapsed().as_secs_f64()
    );
    ok
}
