//! The API benchmark behind `cargo xtask bench-api`: starts a release `zhengyun server`
//! with demo data (SQLite in a temporary data dir, or a fresh schema in PostgreSQL),
//! seeds projects through the API, then drives authenticated `GET /v1/projects?limit=100`
//! with wrk from a second process and reports requests/s and latency percentiles.
//!
//! `--login-flood N`: N concurrent logins (unknown users, then wrong passwords, then right
//! ones, from 64 loopback source addresses) while a signed-in department member keeps
//! listing instances; reports status codes, the server's peak memory and the member's
//! latencies (see `login_flood`).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    server_bin: String,
    database_url: Option<String>,
    projects: usize,
    connections: usize,
    threads: usize,
    duration: u64,
    paths: Vec<String>,
    server_args: Vec<String>,
    /// Run the end-to-end create benchmark with this many instances instead of the list one.
    creates: Option<usize>,
    /// With `--creates`: kill -9 the server this long after the last create was accepted,
    /// start it again on the same database, and wait for every saga to finish or undo.
    kill_after_ms: Option<u64>,
    /// Real VMs on the local agent: boot this many one after another (create → ready marker).
    kvm_boots: Option<usize>,
    /// Real VMs on the local agent: run this many 128 MiB guests at once.
    kvm_concurrent: Option<usize>,
    /// Resource requests: submit this many, approve each through the two default steps
    /// by concurrent reviewers, and wait until all are delivered on the simulated provider.
    requests: Option<usize>,
    /// Login flood: this many concurrent logins per phase.
    login_flood: Option<usize>,
    /// HA: this many instances on one simulated host that fails; time until all run
    /// elsewhere.
    ha: Option<usize>,
    /// Login flood: distinct loopback source addresses (127.1.0.x) the logins come from.
    sources: usize,
    /// OpenStack (the bed of `cargo xtask openstack up`, its env loaded): adopt this many
    /// servers created directly in it, then `os_creates` creates through zhengyun and as
    /// many directly through Nova's API.
    openstack: Option<usize>,
    os_creates: usize,
    /// OpenStack: keep the servers to adopt between runs (made once, slowly, as the bed's
    /// fake node fills) — only the missing ones are created and none are deleted.
    os_reuse: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        server_bin: "target/release/zhengyun".into(),
        database_url: None,
        projects: 10_000,
        connections: 64,
        threads: 2,
        duration: 20,
        paths: Vec::new(),
        server_args: Vec::new(),
        creates: None,
        kill_after_ms: None,
        kvm_boots: None,
        kvm_concurrent: None,
        login_flood: None,
        requests: None,
        ha: None,
        sources: 64,
        openstack: None,
        os_creates: 100,
        os_reuse: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--server-bin" => a.server_bin = v()?,
            "--database-url" => a.database_url = Some(v()?),
            "--projects" => a.projects = v()?.parse()?,
            "--connections" => a.connections = v()?.parse()?,
            "--threads" => a.threads = v()?.parse()?,
            "--duration" => a.duration = v()?.parse()?,
            // Extra paths to load after the main one, for comparison (e.g. /healthz, /v1/me).
            "--also" => a.paths.push(v()?),
            "--creates" => a.creates = Some(v()?.parse()?),
            "--kill-after-ms" => a.kill_after_ms = Some(v()?.parse()?),
            "--kvm-boots" => a.kvm_boots = Some(v()?.parse()?),
            "--kvm-concurrent" => a.kvm_concurrent = Some(v()?.parse()?),
            "--login-flood" => a.login_flood = Some(v()?.parse()?),
            "--requests" => a.requests = Some(v()?.parse()?),
            "--ha" => a.ha = Some(v()?.parse()?),
            "--openstack" => a.openstack = Some(v()?.parse()?),
            "--os-creates" => a.os_creates = v()?.parse()?,
            "--os-reuse" => a.os_reuse = true,
            "--sources" => a.sources = v()?.parse::<usize>()?.clamp(1, 250),
            // Extra arguments for `zhengyun server`, e.g. --max-connections 4.
            "--server-arg" => a.server_args.push(v()?),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one wrk run reported.
struct Wrk {
    text: String,
    rps: String,
    non2xx: String,
}

impl Wrk {
    /// A latency percentile line (`50%`, `99%` …) of `--latency`.
    fn pct(&self, p: &str) -> String {
        self.text
            .lines()
            .find_map(|l| l.trim().strip_prefix(p).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    }
}

/// Loads `url` with wrk for the configured time, threads and connections.
fn wrk(a: &Args, token: &str, url: &str) -> Result<Wrk> {
    let out = Command::new("wrk")
        .args([
            "-t",
            &a.threads.to_string(),
            "-c",
            &a.connections.to_string(),
            "-d",
            &format!("{}s", a.duration),
            "--latency",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}"), url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(str::trim)
        .unwrap_or("?")
        .to_string();
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map(str::trim)
        .unwrap_or("none")
        .to_string();
    Ok(Wrk { text, rps, non2xx })
}

async fn ensure_wrk() -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("installing wrk (Debian package) for the load generator");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-q", "wrk"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?
        .success()
        || (Command::new("apt-get")
            .args(["update", "-q"])
            .status()?
            .success()
            && Command::new("apt-get")
                .args(["install", "-y", "-q", "wrk"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()?
                .success());
    if !ok {
        bail!("cannot install wrk");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = parse_args()?;
    if a.login_flood.is_none()
        && a.creates.is_none()
        && a.requests.is_none()
        && a.ha.is_none()
        && a.openstack.is_none()
    {
        ensure_wrk().await?;
    }
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("zy-bench-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(&a.server_bin);
    cmd.args([
        "server",
        "--demo",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(&dir);
    let backend = match &a.database_url {
        Some(url) => {
            cmd.args([
                "--database-url",
                url,
                "--database-schema",
                &format!("bench_{port}"),
            ]);
            "PostgreSQL"
        }
        None => "SQLite",
    };
    cmd.args(&a.server_args);
    if a.kvm_boots.is_some() || a.kvm_concurrent.is_some() {
        cmd.arg("--local-agent-template").arg("target/zy-template");
    }
    if let Ok(pidfile) = std::env::var("ZY_BENCH_PIDFILE") {
        // Lets a profiler attach to the server while the load runs.
        cmd.env("ZY_BENCH_PIDFILE", pidfile);
    }
    cmd.env("ZHENGYUN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("starting the server")?;
    let server_pid = child.id();
    // The first start prints the admins' one-time passwords; the create benchmark needs
    // the platform admin to raise the quota.
    let stdout = child.stdout.take().context("server stdout")?;
    let admin_otp = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    {
        let admin_otp = admin_otp.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.split_whitespace().next() == Some("admin") {
                    if let (Ok(mut g), Some(otp)) =
                        (admin_otp.lock(), line.split_whitespace().last())
                    {
                        *g = Some(otp.to_string());
                    }
                }
            }
        });
    }
    let mut server = Child(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await?;
    let login = |user: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r: Value = http
                .post(format!("{base}/v1/auth/login"))
                .json(&json!({ "username": user, "password": zy_server::demo::DEMO_PASSWORD, "bearer": true }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let session = r["session_token"]
                .as_str()
                .context("no session")?
                .to_string();
            let t: Value = http
                .post(format!("{base}/v1/tokens"))
                .bearer_auth(&session)
                .json(&json!({ "name": "bench" }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(t["secret"].as_str().context("no token")?.to_string())
        }
    };
    if a.kvm_boots.is_some() || a.kvm_concurrent.is_some() {
        let member = login("wjw.admin").await?;
        let otp = printed_otp(&admin_otp).await?;
        let r = kvm_bench(&http, &base, &member, &otp, a.kvm_boots, a.kvm_concurrent).await;
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(n) = a.login_flood {
        let r = login_flood(&base, backend, server_pid, n, a.sources).await;
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(n) = a.openstack {
        let otp = printed_otp(&admin_otp).await?;
        let admin = platform_admin(&http, &base, &otp).await?;
        let member = login("wjw.user").await?;
        let r = bench_openstack(&http, &base, backend, &admin, &member, n, &a).await;
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(n) = a.requests {
        let otp = printed_otp(&admin_otp).await?;
        let admin = platform_admin(&http, &base, &otp).await?;
        let (member, lead, sup) = (
            login("wjw.user").await?,
            login("wjw.admin").await?,
            login("jianguan").await?,
        );
        let r = bench_requests(&http, &base, backend, &admin, n, [member, lead, sup]).await;
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(n) = a.ha {
        let otp = printed_otp(&admin_otp).await?;
        let admin = platform_admin(&http, &base, &otp).await?;
        let member = login("wjw.admin").await?;
        let r = bench_ha(&http, &base, backend, &admin, &member, n).await;
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(n) = a.creates {
        let otp = printed_otp(&admin_otp).await?;
        let member = login("wjw.admin").await?;
        let crash = a.kill_after_ms.map(|ms| Crash {
            after: Duration::from_millis(ms),
            cmd: &mut cmd,
            server: &mut server,
        });
        return bench_creates(&http, &base, backend, &otp, n, member, crash).await;
    }
    let dept_admin = login("wjw.admin").await?;
    let reader = login("jianguan").await?;
    let dept: Value = http
        .get(format!("{base}/v1/departments?q=WJW"))
        .bearer_auth(&dept_admin)
        .send()
        .await?
        .json()
        .await?;
    let dept_id = dept["items"][0]["id"]
        .as_str()
        .context("no WJW department")?
        .to_string();

    // Seed through the API: every project is a real, audited write.
    let seed_start = Instant::now();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..a.projects {
        let (http, base, tok, dept_id, sem) = (
            http.clone(),
            base.clone(),
            dept_admin.clone(),
            dept_id.clone(),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await?;
            http.post(format!("{base}/v1/projects"))
                .bearer_auth(&tok)
                .json(&json!({ "department_id": dept_id, "name": format!("业务系统-{i:05}") }))
                .send()
                .await?
                .error_for_status()?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seed_secs = seed_start.elapsed().as_secs_f64();

    let url = format!("{base}/v1/projects?limit=100");
    let page: Value = http
        .get(&url)
        .bearer_auth(&reader)
        .send()
        .await?
        .json()
        .await?;
    let n = page["items"].as_array().map(Vec::len).unwrap_or(0);
    if n != 100 {
        bail!("expected a 100-item page, got {n}");
    }
    let w = wrk(&a, &reader, &url)?;
    println!("{}", w.text);
    println!(
        "RESULT backend={backend} projects={} seed_creates_per_s={:.0} list_page=100 connections={} rps={} p50={} p90={} p99={} non2xx={}",
        a.projects,
        a.projects as f64 / seed_secs,
        a.connections,
        w.rps,
        w.pct("50%"),
        w.pct("90%"),
        w.pct("99%"),
        w.non2xx,
    );
    for p in &a.paths {
        let w = wrk(&a, &reader, &format!("{base}{p}"))?;
        println!("ALSO path={p} rps={} p99={}", w.rps, w.pct("99%"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Submits `n` instances in batches of 100 (4 requests in flight) and measures until every
/// one is running: the whole path of API, quota, scheduler, reconciler and (simulated,
/// zero-latency) provider.
/// Polls `/readyz` until the server answers, for at most a minute.
async fn wait_ready(http: &reqwest::Client, base: &str) -> Result<()> {
    let started = Instant::now();
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the server did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A kill -9 in the middle of the creates, and the restart on the same database.
struct Crash<'a> {
    after: Duration,
    cmd: &'a mut Command,
    server: &'a mut Child,
}

impl Crash<'_> {
    async fn kill_and_restart(&mut self, http: &reqwest::Client, base: &str) -> Result<()> {
        tokio::time::sleep(self.after).await;
        // SIGKILL: no shutdown, no flush; whatever the sagas were doing is cut off.
        self.server.0.kill().context("kill -9 the server")?;
        let _ = self.server.0.wait();
        self.cmd.stdout(Stdio::null());
        self.server.0 = self.cmd.spawn().context("restarting the server")?;
        wait_ready(http, base).await
    }
}

async fn bench_creates(
    http: &reqwest::Client,
    base: &str,
    backend: &str,
    otp: &str,
    n: usize,
    member: String,
    mut crash: Option<Crash<'_>>,
) -> Result<()> {
    let admin = platform_admin(http, base, otp).await?;
    let (project, dept) = first_project(http, base, &member).await?;
    raise_quotas(http, base, &admin, &dept, &project).await?;
    let started = Instant::now();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    for b in 0..n.div_ceil(100) {
        let count = (n - b * 100).min(100);
        let (http, base, member, project, sem) = (
            http.clone(),
            base.to_string(),
            member.clone(),
            project.clone(),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await?;
            http.post(format!("{base}/v1/instances"))
                .bearer_auth(&member)
                .json(&json!({ "project_id": project, "name": format!("bench{b:03}"), "flavor": "1C2G", "image": "CentOS-7.9", "count": count }))
                .send()
                .await?
                .error_for_status()?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let submitted = started.elapsed().as_secs_f64();
    if let Some(c) = crash.as_mut() {
        c.kill_and_restart(http, base).await?;
    }
    let (mut running, mut failed);
    loop {
        running = 0;
        failed = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/v1/instances?project_id={project}&limit=1000");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = http
                .get(&url)
                .bearer_auth(&member)
                .send()
                .await?
                .json()
                .await?;
            for i in page["items"].as_array().into_iter().flatten() {
                match i["state"].as_str() {
                    Some("running") => running += 1,
                    Some("error") => failed += 1,
                    _ => {}
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        if running + failed >= n {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {running} of {n} running after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = started.elapsed().as_secs_f64();
    // After a crash, wait for the last sagas to end before checking.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut active = 0;
    while crash.is_some() && Instant::now() < deadline {
        let sagas = get_json(http, &format!("{base}/v1/system/sagas"), &admin).await?;
        active = sagas["items"].as_array().map(Vec::len).unwrap_or(0);
        if active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let check: Value = http
        .get(format!("{base}/v1/admin/check"))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let killed = crash
        .as_ref()
        .map(|c| {
            format!(
                " killed_after_ms={} sagas_active_after={active}",
                c.after.as_millis()
            )
        })
        .unwrap_or_default();
    println!(
        "RESULT backend={backend} creates={n} running={running} failed={failed} submit_s={submitted:.2} total_s={total:.2} creates_per_s={:.0}{killed} admin_check_ok={}",
        running as f64 / total,
        check["ok"]
    );
    if check["ok"] != true {
        println!("CHECK {check}");
    }
    Ok(())
}

/// The admin's one-time password from the server's first-start output (read by another
/// thread, which may still be on its way to that line when the server is ready).
async fn printed_otp(otp: &std::sync::Mutex<Option<String>>) -> Result<String> {
    for _ in 0..100 {
        if let Some(p) = otp.lock().ok().and_then(|g| g.clone()) {
            return Ok(p);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no admin one-time password printed")
}

/// The platform admin's session: the one-time password changed and TOTP enrolled.
async fn platform_admin(http: &reqwest::Client, base: &str, otp: &str) -> Result<String> {
    let r: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": otp, "bearer": true }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let admin = r["session_token"].as_str().context("session")?.to_string();
    http.post(format!("{base}/v1/me/password"))
        .bearer_auth(&admin)
        .json(&json!({ "current_password": otp, "new_password": "Bench#Pass2026" }))
        .send()
        .await?
        .error_for_status()?;
    let e: Value = http
        .post(format!("{base}/v1/me/mfa/enrol"))
        .bearer_auth(&admin)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let secret =
        zy_model::totp::base32_decode(e["secret"].as_str().context("secret")?).context("b32")?;
    let code = zy_model::totp::code_at(&secret, chrono::Utc::now().timestamp());
    http.post(format!("{base}/v1/me/mfa/confirm"))
        .bearer_auth(&admin)
        .json(&json!({ "code": code }))
        .send()
        .await?
        .error_for_status()?;
    Ok(admin)
}

/// The first project the caller sees, with its department.
async fn first_project(http: &reqwest::Client, base: &str, tok: &str) -> Result<(String, String)> {
    let projects = get_json(http, &format!("{base}/v1/projects?limit=1"), tok).await?;
    let p = &projects["items"][0];
    Ok((
        p["id"].as_str().context("project")?.to_string(),
        p["department_id"]
            .as_str()
            .context("department")?
            .to_string(),
    ))
}

/// Quotas large enough that the benchmark measures the work, not the refusals.
async fn raise_quotas(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    dept: &str,
    project: &str,
) -> Result<()> {
    let big = json!({ "instances": 100000, "vcpus": 1000000, "memory_mib": 1_000_000_000_000i64, "disk_gib": 1_000_000_000i64, "volumes": 100000 });
    for scope in [
        json!({ "department_id": dept, "limits": big }),
        json!({ "project_id": project, "limits": big }),
    ] {
        http.put(format!("{base}/v1/quotas"))
            .bearer_auth(admin)
            .json(&scope)
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(())
}

/// Runs `f` over `ids` with `width` at a time; returns each call's latency in ms.
async fn each<F, Fut>(ids: &[String], width: usize, f: F) -> Result<Vec<f64>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(width));
    let mut tasks = Vec::new();
    for id in ids {
        let (sem, fut) = (sem.clone(), f(id.clone()));
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await?;
            let t = Instant::now();
            fut.await?;
            anyhow::Ok(t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// `--requests N`: N requests (one 1C2G instance each) submitted by a department member,
/// approved by the department admin and the supervisor with 8 approvals in flight each,
/// delivered on the simulated providers; reports requests/s from the first submit to the
/// last delivery, the approval endpoint's latency, and the invariant check.
async fn bench_requests(
    http: &reqwest::Client,
    base: &str,
    backend: &str,
    admin: &str,
    n: usize,
    [member, lead, sup]: [String; 3],
) -> Result<()> {
    let (project, dept) = first_project(http, base, &member).await?;
    raise_quotas(http, base, admin, &dept, &project).await?;
    let started = Instant::now();
    let ids: Vec<String> = (0..n).map(|k| format!("{k}")).collect();
    let created = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let submit = {
        let (http, base, member, project, created) = (
            http.clone(),
            base.to_string(),
            member.clone(),
            project.clone(),
            created.clone(),
        );
        move |k: String| {
            let (http, base, member, project, created) = (
                http.clone(),
                base.clone(),
                member.clone(),
                project.clone(),
                created.clone(),
            );
            async move {
                let body = json!({ "project_id": project, "kind": "new", "title": format!("bench{k}"), "purpose": "benchmark", "items": [{ "type": "instances", "name": format!("rq{k}"), "flavor": "1C2G", "image": "CentOS-7.9", "count": 1 }] });
                let r =
                    post_retrying(&http, &format!("{base}/v1/requests"), &member, &body).await?;
                let id = r["id"].as_str().context("id")?.to_string();
                let submit = format!("{base}/v1/requests/{id}/submit");
                post_retrying(&http, &submit, &member, &json!({})).await?;
                if let Ok(mut g) = created.lock() {
                    g.push(id);
                }
                anyhow::Ok(())
            }
        }
    };
    each(&ids, 16, submit).await?;
    let submitted = started.elapsed().as_secs_f64();
    let ids = created.lock().map(|g| g.clone()).unwrap_or_default();
    let mut latencies = Vec::new();
    for reviewer in [&lead, &sup] {
        let approve = {
            let (http, base, tok) = (http.clone(), base.to_string(), reviewer.clone());
            move |id: String| {
                let (http, base, tok) = (http.clone(), base.clone(), tok.clone());
                async move {
                    let url = format!("{base}/v1/requests/{id}/approve");
                    post_retrying(&http, &url, &tok, &json!({})).await?;
                    anyhow::Ok(())
                }
            }
        };
        latencies.extend(each(&ids, 8, approve).await?);
    }
    let approved = started.elapsed().as_secs_f64();
    let (mut delivered, mut failed);
    loop {
        let d = get_json(
            http,
            &format!("{base}/v1/requests?view=mine&state=delivered&limit=1000"),
            &member,
        )
        .await?;
        let f = get_json(
            http,
            &format!("{base}/v1/requests?view=mine&state=failed&limit=1000"),
            &member,
        )
        .await?;
        delivered = count_all(http, base, &member, "delivered", d).await?;
        failed = count_all(http, base, &member, "failed", f).await?;
        if delivered + failed >= n {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("only {delivered} of {n} delivered after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = started.elapsed().as_secs_f64();
    let check = get_json(http, &format!("{base}/v1/admin/check"), admin).await?;
    let p50 = percentile(&mut latencies, 0.5);
    let p99 = percentile(&mut latencies, 0.99);
    println!(
        "RESULT backend={backend} requests={n} delivered={delivered} failed={failed} submit_s={submitted:.2} approved_s={approved:.2} total_s={total:.2} requests_per_s={:.1} approve_p50_ms={p50:.1} approve_p99_ms={p99:.1} busy_retries={} admin_check_ok={}",
        delivered as f64 / total,
        RETRIES.load(std::sync::atomic::Ordering::Relaxed),
        check["ok"]
    );
    Ok(())
}

/// Times a request was answered 429/503 and sent again after its `Retry-After`.
static RETRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// POSTs `body`, sending it again after `Retry-After` while the server says it is busy
/// (429/503), as a well-behaved client does.
async fn post_retrying(
    http: &reqwest::Client,
    url: &str,
    tok: &str,
    body: &Value,
) -> Result<Value> {
    for _ in 0..20 {
        let r = http.post(url).bearer_auth(tok).json(body).send().await?;
        let st = r.status();
        if st == reqwest::StatusCode::SERVICE_UNAVAILABLE
            || st == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            let wait = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        return Ok(r.error_for_status()?.json().await?);
    }
    bail!("{url}: still busy after 20 tries")
}

/// Counts every request of the member's in `state`, following the cursor from `first`.
async fn count_all(
    http: &reqwest::Client,
    base: &str,
    tok: &str,
    state: &str,
    first: Value,
) -> Result<usize> {
    let mut page = first;
    let mut n = 0;
    loop {
        n += page["items"].as_array().map(Vec::len).unwrap_or(0);
        let Some(c) = page["next_cursor"].as_str().map(str::to_string) else {
            return Ok(n);
        };
        page = get_json(
            http,
            &format!("{base}/v1/requests?view=mine&state={state}&limit=1000&cursor={c}"),
            tok,
        )
        .await?;
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn get_json(http: &reqwest::Client, url: &str, tok: &str) -> Result<Value> {
    Ok(http.get(url).bearer_auth(tok).send().await?.json().await?)
}

/// Real VMs on the demo's local agent ("本机 KVM"): sequential boots split into the
/// platform's part (API accepted → QEMU process started, i.e. the instance is `running`)
/// and the guest's (→ ready marker on the serial console); then many guests at once.
async fn kvm_bench(
    http: &reqwest::Client,
    base: &str,
    member: &str,
    _otp: &str,
    boots: Option<usize>,
    concurrent: Option<usize>,
) -> Result<()> {
    // The local agent joins a moment after the server is ready.
    let started = Instant::now();
    loop {
        let hosts = get_json(http, &format!("{base}/v1/instances?limit=1"), member).await?;
        if hosts.get("items").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("no answer from the server");
        }
    }
    let projects = get_json(http, &format!("{base}/v1/projects?limit=1"), member).await?;
    let project = projects["items"][0]["id"]
        .as_str()
        .context("project")?
        .to_string();
    let create = |name: String, count: usize| {
        let (http, base, member, project) = (
            http.clone(),
            base.to_string(),
            member.to_string(),
            project.clone(),
        );
        async move {
            let mut tries = 0;
            loop {
                let r = http
                    .post(format!("{base}/v1/instances"))
                    .bearer_auth(&member)
                    .json(&json!({ "project_id": project, "name": name, "flavor": "1C128M", "image": "zy-busybox", "count": count }))
                    .send()
                    .await?;
                let st = r.status();
                let v: Value = r.json().await?;
                if st.is_success() {
                    let ids: Vec<String> = v["items"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|i| i["id"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    return anyhow::Ok(ids);
                }
                // The local host appears when its agent has joined.
                tries += 1;
                if tries > 100 {
                    bail!("cannot create on the local KVM host: {v}");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let wait = |id: String, marker: bool| {
        let (http, base, member) = (http.clone(), base.to_string(), member.to_string());
        async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                if marker {
                    let c = get_json(&http, &format!("{base}/v1/instances/{id}/console"), &member)
                        .await?;
                    if c["output"]
                        .as_str()
                        .unwrap_or("")
                        .contains("ZHENGYUN-READY")
                    {
                        return anyhow::Ok(Instant::now());
                    }
                } else {
                    let i = get_json(&http, &format!("{base}/v1/instances/{id}"), &member).await?;
                    if i["state"] == "running" {
                        return anyhow::Ok(Instant::now());
                    }
                    if i["state"] == "error" {
                        bail!("instance failed: {i}");
                    }
                }
                if Instant::now() > deadline {
                    bail!("instance {id} not ready in 300 s");
                }
                tokio::time::sleep(Duration::from_millis(if marker { 50 } else { 5 })).await;
            }
        }
    };
    let delete = |id: String| {
        let (http, base, member) = (http.clone(), base.to_string(), member.to_string());
        async move {
            http.delete(format!("{base}/v1/instances/{id}"))
                .bearer_auth(&member)
                .send()
                .await?;
            loop {
                let i = get_json(&http, &format!("{base}/v1/instances/{id}"), &member).await?;
                if i["state"] == "deleted" || i["error"]["code"] == "not_found" {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // One warm-up boot (template verification, first QEMU start); it also waits for
    // the local agent, which joins a moment after the server is ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ids = create("warmup".into(), 1).await?;
        let placed = wait(ids[0].clone(), false).await;
        if placed.is_ok() {
            wait(ids[0].clone(), true).await?;
            delete(ids[0].clone()).await?;
            break;
        }
        delete(ids[0].clone()).await?;
        if Instant::now() > deadline {
            bail!("the local KVM host never took an instance: {placed:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(n) = boots {
        let (mut platform, mut guest, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..n {
            let t0 = Instant::now();
            let ids = create(format!("boot-{k:02}"), 1).await?;
            let accepted = Instant::now();
            let running = wait(ids[0].clone(), false).await?;
            let ready = wait(ids[0].clone(), true).await?;
            platform.push((running - accepted).as_secs_f64() * 1000.0);
            guest.push((ready - running).as_secs_f64() * 1000.0);
            total.push((ready - t0).as_secs_f64() * 1000.0);
            delete(ids[0].clone()).await?;
        }
        println!(
            "RESULT kvm_boots={n} platform_ms p50={:.0} p95={:.0} guest_ms p50={:.0} p95={:.0} end_to_end_ms p50={:.0} p95={:.0}",
            percentile(&mut platform.clone(), 0.5),
            percentile(&mut platform, 0.95),
            percentile(&mut guest.clone(), 0.5),
            percentile(&mut guest, 0.95),
            percentile(&mut total.clone(), 0.5),
            percentile(&mut total, 0.95),
        );
    }
    if let Some(n) = concurrent {
        let t0 = Instant::now();
        let ids = create("many".into(), n).await?;
        let waits: Vec<_> = ids
            .iter()
            .map(|id| tokio::spawn(wait(id.clone(), true)))
            .collect();
        // Meanwhile, how quickly does the API answer a member's instance list?
        let mut lat = Vec::new();
        let mut all_ready = false;
        while !all_ready {
            let t = Instant::now();
            get_json(http, &format!("{base}/v1/instances?limit=100"), member).await?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            all_ready = waits.iter().all(|w| w.is_finished());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for w in waits {
            w.await??;
        }
        let all = t0.elapsed().as_secs_f64();
        let mut lat_p99 = lat.clone();
        println!(
            "RESULT kvm_concurrent={n} all_ready_s={all:.1} api_list_ms p50={:.0} p99={:.0} max={:.0}",
            percentile(&mut lat, 0.5),
            percentile(&mut lat_p99, 0.99),
            lat.iter().cloned().fold(0.0, f64::max),
        );
        for id in ids {
            delete(id).await?;
        }
    }
    Ok(())
}

/// The server's resident memory now and its peak (`VmRSS`, `VmHWM` in KiB).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One phase of the flood: `n` logins at once, each from one of the source clients.
/// `retry` makes a refused (429/503) login wait its `Retry-After` and try again, as a
/// well-behaved client (the console) does, until `deadline`.
async fn flood_phase(
    base: &str,
    clients: &[reqwest::Client],
    n: usize,
    credentials: &dyn Fn(usize) -> (String, String),
    retry: bool,
) -> (std::collections::BTreeMap<u16, usize>, usize, f64) {
    let start = tokio::sync::Barrier::new(n);
    let start = std::sync::Arc::new(start);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(300);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let http = clients[i % clients.len()].clone();
            let (user, password) = credentials(i);
            let url = format!("{base}/v1/auth/login");
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut statuses = Vec::new();
                loop {
                    let r = http
                        .post(&url)
                        .json(&json!({ "username": user, "password": password, "bearer": true }))
                        .send()
                        .await;
                    let (st, wait) = match r {
                        Ok(r) => {
                            let wait = r
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok());
                            (r.status().as_u16(), wait)
                        }
                        Err(_) => (0, None),
                    };
                    statuses.push(st);
                    match wait {
                        Some(secs) if retry && Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_secs(secs)).await
                        }
                        _ => return statuses,
                    }
                }
            })
        })
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    let mut signed_in = 0;
    for t in tasks {
        let statuses = t.await.unwrap_or_default();
        if statuses.last() == Some(&200) {
            signed_in += 1;
        }
        for st in statuses {
            *counts.entry(st).or_default() += 1;
        }
    }
    (counts, signed_in, t0.elapsed().as_secs_f64())
}

/// The login flood: a department member signs in and lists instances without pause while
/// `n` concurrent logins arrive three times — unknown users, known users with wrong
/// passwords, then known users with the right one (retrying after `Retry-After`). The
/// server's memory is sampled from /proc throughout.
async fn login_flood(base: &str, backend: &str, pid: u32, n: usize, sources: usize) -> Result<()> {
    let clients: Vec<reqwest::Client> = (0..sources)
        .map(|k| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 1, 0, (k + 1) as u8]))
                .timeout(Duration::from_secs(120))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let http = reqwest::Client::new();
    let r: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "username": "wjw.user", "password": zy_server::demo::DEMO_PASSWORD, "bearer": true }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let member = r["session_token"].as_str().context("session")?.to_string();
    let list = format!("{base}/v1/instances?limit=100");
    http.get(&list)
        .bearer_auth(&member)
        .send()
        .await?
        .error_for_status()?;
    let (rss_before, _) = rss_kib(pid);

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                max = max.max(rss_kib(pid).0);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            max
        })
    };
    let lister = {
        let (done, http, member, list) = (done.clone(), http.clone(), member.clone(), list.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let st = match http.get(&list).bearer_auth(&member).send().await {
                    Ok(r) => {
                        let st = r.status().as_u16();
                        let _ = r.bytes().await;
                        st
                    }
                    Err(_) => 0,
                };
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                *statuses.entry(st).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (lat, statuses)
        })
    };

    let others: Vec<&str> = zy_server::demo::DEPARTMENTS
        .iter()
        .map(|d| d.2)
        .filter(|p| *p != "wjw")
        .collect();
    let pw = zy_server::demo::DEMO_PASSWORD.to_string();
    let wrong_pw = "Wrong#Pass2026".to_string();
    type Credentials<'a> = Box<dyn Fn(usize) -> (String, String) + 'a>;
    let phases: [(&str, Credentials, bool); 3] = [
        (
            "unknown_users",
            Box::new(|i| (format!("flood-{i:05}"), wrong_pw.clone())),
            false,
        ),
        (
            "wrong_passwords",
            Box::new(|i| {
                (
                    format!("{}.admin", others[i % others.len()]),
                    wrong_pw.clone(),
                )
            }),
            false,
        ),
        (
            "right_passwords",
            Box::new(|i| (format!("{}.user", others[i % others.len()]), pw.clone())),
            true,
        ),
    ];
    let mut results = Vec::new();
    for (name, credentials, retry) in &phases {
        results.push((
            *name,
            flood_phase(base, &clients, n, credentials, *retry).await,
        ));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let max_rss = sampler.await.unwrap_or(0);
    let (mut lat, member_statuses) = lister.await.unwrap_or_default();
    let (_, hwm) = rss_kib(pid);

    let mut all = std::collections::BTreeMap::<u16, usize>::new();
    for (name, (counts, signed_in, secs)) in &results {
        println!(
            "PHASE {name} logins={n} took_s={secs:.1} signed_in={signed_in} statuses={counts:?}"
        );
        for (k, v) in counts {
            *all.entry(*k).or_default() += v;
        }
    }
    let fivexx: usize = all
        .iter()
        .filter(|(k, _)| **k >= 500 || **k == 0)
        .map(|(_, v)| v)
        .sum();
    let member_bad: usize = member_statuses
        .iter()
        .filter(|(k, _)| **k != 200)
        .map(|(_, v)| v)
        .sum();
    let mut lat99 = lat.clone();
    println!(
        "RESULT backend={backend} login_flood={n} sources={sources} responses={all:?} server_errors_or_failed={fivexx} rss_before_mib={} rss_max_mib={} vm_hwm_mib={} member_lists={} member_non200={member_bad} member_p50_ms={:.1} member_p99_ms={:.1} member_max_ms={:.1}",
        rss_before / 1024,
        max_rss / 1024,
        hwm / 1024,
        lat.len(),
        percentile(&mut lat, 0.5),
        percentile(&mut lat99, 0.99),
        lat.iter().cloned().fold(0.0, f64::max),
    );
    Ok(())
}

/// `--ha N`: a zone of the simulated 浪潮云 with shared storage and two large hosts; N
/// instances packed on the first; the host fails (set down); reports the time from the
/// failure until every instance runs on the other host, and each recovery's own time.
async fn bench_ha(
    http: &reqwest::Client,
    base: &str,
    backend: &str,
    admin: &str,
    member: &str,
    n: usize,
) -> Result<()> {
    let send = |m: reqwest::Method, path: String, body: Value| {
        let (http, base, admin) = (http.clone(), base.to_string(), admin.to_string());
        async move {
            let r = http
                .request(m, format!("{base}{path}"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await?;
            let st = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if !st.is_success() {
                bail!("{path}: {st} {v}");
            }
            anyhow::Ok(v)
        }
    };
    let providers = get_json(http, &format!("{base}/v1/providers"), admin).await?;
    let provider = providers["items"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["kind"] == "sim"))
        .and_then(|p| p["id"].as_str())
        .context("no simulated provider")?
        .to_string();
    let zone = send(reqwest::Method::POST, "/v1/zones".into(), json!({ "provider_id": provider, "region": "压测", "name": "高可用压测区", "strategy": "pack" })).await?;
    let zone = zone["id"].as_str().context("zone")?.to_string();
    send(reqwest::Method::POST, "/v1/storage-pools".into(), json!({ "zone_id": zone, "name": "ha-bench-shared", "capacity_gib": 10_000_000, "kind": "shared", "path": "/mnt/zhengyun/ha-bench" })).await?;
    let hosts = send(reqwest::Method::POST, "/v1/hosts".into(), json!({ "zone_id": zone, "name_prefix": "hab", "count": 2, "vcpus": 512, "memory_mib": 4 * 1024 * 1024, "disk_gib": 1_000_000 })).await?;
    let host_ids: Vec<String> = hosts["items"]
        .as_array()
        .context("hosts")?
        .iter()
        .filter_map(|h| h["id"].as_str().map(str::to_string))
        .collect();
    let (project, dept) = first_project(http, base, member).await?;
    raise_quotas(http, base, admin, &dept, &project).await?;
    let mut ids = Vec::new();
    let mut left = n;
    let mut k = 0;
    while left > 0 {
        let c = left.min(100);
        let body = json!({ "project_id": project, "zone_id": zone, "name": format!("ha{k}"), "flavor": "1C2G", "image": "CentOS-7.9", "count": c });
        let v = post_retrying(http, &format!("{base}/v1/instances"), member, &body).await?;
        for i in v["items"].as_array().context("items")? {
            ids.push(i["id"].as_str().context("id")?.to_string());
        }
        left -= c;
        k += 1;
    }
    // All running (packed onto the first host).
    let deadline = Instant::now() + Duration::from_secs(600);
    let on = |st: &str| format!("{base}/v1/instances?project_id={project}&state={st}&limit=1000");
    loop {
        let running = count_instances(http, &on("running"), member).await?;
        if running >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {running} of {n} instances running");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failed = host_ids.first().context("host")?.clone();
    let began = Instant::now();
    send(
        reqwest::Method::PATCH,
        format!("/v1/hosts/{failed}"),
        json!({ "state": "down" }),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let all = loop {
        let r = get_json(
            http,
            &format!("{base}/v1/ha/recoveries?host_id={failed}&limit=1000"),
            admin,
        )
        .await?;
        let items = r["items"].as_array().cloned().unwrap_or_default();
        let done = items.iter().filter(|i| i["outcome"] == "restarted").count();
        if done >= n {
            break items;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} recovered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = began.elapsed().as_secs_f64();
    let mut secs: Vec<f64> = all
        .iter()
        .filter_map(|r| r["recovery_secs"].as_f64())
        .collect();
    let check = get_json(http, &format!("{base}/v1/admin/check"), admin).await?;
    println!(
        "HA on {backend}: host with {n} instances set down → all running on the other host in {wall:.1} s; per instance (detection → running) p50 {:.1} s, p95 {:.1} s, max {:.1} s; admin check: {}",
        percentile(&mut secs, 0.5),
        percentile(&mut secs, 0.95),
        percentile(&mut secs, 1.0),
        if check["ok"] == true { "clean".to_string() } else { check.to_string() }
    );
    let _ = ids;
    Ok(())
}

async fn count_instances(http: &reqwest::Client, first: &str, tok: &str) -> Result<usize> {
    let mut n = 0;
    let mut url = first.to_string();
    loop {
        let page = get_json(http, &url, tok).await?;
        n += page["items"].as_array().map(Vec::len).unwrap_or(0);
        let Some(c) = page["next_cursor"].as_str() else {
            return Ok(n);
        };
        url = format!("{first}&cursor={c}");
    }
}

/// Nova of the OpenStack bed, straight through its API (as the `openstack` client does).
struct BedNova {
    http: reqwest::Client,
    token: String,
    compute: String,
    glance: String,
    project: String,
}

impl BedNova {
    async fn login(http: &reqwest::Client) -> Result<(BedNova, Value)> {
        let v = |k: &str| {
            std::env::var(k)
                .with_context(|| format!("{k} is not set: eval \"$(cargo xtask openstack env)\""))
        };
        let (auth, user, password) = (
            v("ZY_OPENSTACK_AUTH_URL")?,
            v("ZY_OPENSTACK_USERNAME").unwrap_or_else(|_| "admin".into()),
            v("ZY_OPENSTACK_PASSWORD")?,
        );
        let project = v("ZY_OPENSTACK_TEST_PROJECT").unwrap_or_else(|_| "zhengyun".into());
        let r = http
            .post(format!("{auth}/auth/tokens"))
            .json(
                &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}),
            )
            .send()
            .await?
            .error_for_status()?;
        let token = r.headers()["X-Subject-Token"].to_str()?.to_string();
        let t: Value = r.json().await?;
        let endpoint = |kind: &str| {
            t["token"]["catalog"]
                .as_array()
                .and_then(|c| c.iter().find(|s| s["type"] == kind))
                .and_then(|s| {
                    s["endpoints"]
                        .as_array()?
                        .iter()
                        .find(|e| e["interface"] == "public")
                })
                .and_then(|e| e["url"].as_str())
                .map(|u| u.trim_end_matches('/').to_string())
                .with_context(|| format!("no {kind} endpoint"))
        };
        let (compute, glance) = (endpoint("compute")?, endpoint("image")?);
        let settings = json!({ "auth_url": auth, "region": "RegionOne",
            "credential": { "type": "password", "username": user, "password": password, "project": project } });
        Ok((
            BedNova {
                http: http.clone(),
                token,
                compute,
                glance,
                project: t["token"]["project"]["id"]
                    .as_str()
                    .context("project")?
                    .to_string(),
            },
            settings,
        ))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.compute))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "compute 2.79");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await?;
        let st = r.status();
        let text = r.text().await?;
        if !st.is_success() {
            bail!("Nova {path}: {st} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Servers whose name starts with `prefix`: (id, status, task state).
    async fn servers(&self, prefix: &str) -> Result<Vec<(String, String, bool)>> {
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let v = self
                .call(
                    reqwest::Method::GET,
                    &format!("/servers/detail?limit=1000&name=^{prefix}{marker}"),
                    None,
                )
                .await?;
            let page = v["servers"].as_array().cloned().unwrap_or_default();
            for sv in &page {
                out.push((
                    sv["id"].as_str().unwrap_or_default().to_string(),
                    sv["status"].as_str().unwrap_or_default().to_string(),
                    sv["OS-EXT-STS:task_state"].is_null(),
                ));
            }
            match page.last().and_then(|l| l["id"].as_str()) {
                Some(id) if page.len() == 1000 => marker = format!("&marker={id}"),
                _ => return Ok(out),
            }
        }
    }

    /// Waits until `n` servers named `prefix…` are ACTIVE and settled.
    async fn wait_active(&self, prefix: &str, n: usize, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.servers(prefix).await?;
            let active = s
                .iter()
                .filter(|(_, st, settled)| st == "ACTIVE" && *settled)
                .count();
            if active >= n {
                return Ok(());
            }
            if let Some((id, _, _)) = s.iter().find(|(_, st, _)| st == "ERROR") {
                bail!("server {id} ({prefix}) went to ERROR");
            }
            if Instant::now() > deadline {
                bail!("{active}/{n} servers {prefix}… ACTIVE after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn delete_all(&self, prefix: &str) -> Result<usize> {
        let ids: Vec<String> = self
            .servers(prefix)
            .await?
            .into_iter()
            .map(|s| s.0)
            .collect();
        let n = ids.len();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = Vec::new();
        for id in ids {
            let (sem, http, url, tok) = (
                sem.clone(),
                self.http.clone(),
                format!("{}/servers/{id}", self.compute),
                self.token.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await?;
                http.delete(url).header("X-Auth-Token", tok).send().await?;
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        // Nova deletes in the background, and on the bed each delete keeps nova-compute's
        // resource tracker and placement busy for seconds: a phase started before the last
        // one's deletes finished would be measured against a bed still cleaning up.
        let deadline = Instant::now() + Duration::from_secs(1800);
        while !self.servers(prefix).await?.is_empty() {
            if Instant::now() > deadline {
                bail!("servers {prefix}… still not deleted after 30 minutes");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(n)
    }
}

/// `--openstack N`: against the bed (`cargo xtask openstack up`, env loaded). Creates N
/// servers directly in Nova (multi-create, 50 per call), registers the bed as an
/// `openstack` provider with its project mapped to the member's project, and times the
/// synchronisation that adopts them all (mode `auto`). Then `os_creates` servers through
/// zhengyun (one API call, count = M) and, in the same run, M through Nova's API directly
/// (one POST each, 8 at a time — the driver's own limit towards a provider), each until
/// every server is ACTIVE; reports both and zhengyun's overhead.
async fn bench_openstack(
    http: &reqwest::Client,
    base: &str,
    backend: &str,
    admin: &str,
    member: &str,
    n: usize,
    a: &Args,
) -> Result<()> {
    let (creates, reuse) = (a.os_creates, a.os_reuse);
    let (nova, mut settings) = BedNova::login(http).await?;
    let (project, dept) = first_project(http, base, member).await?;
    raise_quotas(http, base, admin, &dept, &project).await?;
    let flavors = nova.call(reqwest::Method::GET, "/flavors", None).await?;
    let tiny = flavors["flavors"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "m1.tiny"))
        .and_then(|f| f["id"].as_str())
        .context("m1.tiny")?
        .to_string();
    // The bed's image, from Glance.
    let images: Value = nova
        .http
        .get(format!("{}/v2/images", nova.glance))
        .header("X-Auth-Token", &nova.token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let image = images["images"][0]["id"]
        .as_str()
        .context("the bed has no image")?
        .to_string();
    for prefix in ["zyb-adopt-", "zyb-direct-", "zyb-zy-"] {
        if !(reuse && prefix == "zyb-adopt-") {
            nova.delete_all(prefix).await?;
        }
    }
    // 1. N servers made directly in the provider.
    let t = Instant::now();
    let mut made = if reuse {
        nova.servers("zyb-adopt-").await?.len().min(n)
    } else {
        0
    };
    while made < n {
        let k = (n - made).min(50);
        nova.call(
            reqwest::Method::POST,
            "/servers",
            Some(json!({"server": {"name": format!("zyb-adopt-{made:05}"), "flavorRef": tiny, "imageRef": image,
                "networks": "none", "min_count": k, "max_count": k}})),
        )
        .await?;
        made += k;
    }
    nova.wait_active("zyb-adopt-", n, Duration::from_secs(1800))
        .await?;
    println!(
        "{n} servers created directly (multi-create, 50 per call) and ACTIVE in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // 2. The provider, mapped, adopting automatically.
    settings["projects"] = json!([{ "openstack_project": nova.project, "department_id": dept, "project_id": project }]);
    settings["adoption"] = json!("auto");
    settings["images"] = json!([{ "image": "bench-cirros", "openstack_image": image }]);
    let p: Value = http
        .post(format!("{base}/v1/providers"))
        .bearer_auth(admin)
        .json(&json!({ "name": "OpenStack 基准", "kind": "openstack", "openstack": settings }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let provider = p["id"].as_str().context("provider")?.to_string();
    http.post(format!("{base}/v1/zones"))
        .bearer_auth(admin)
        .json(&json!({ "provider_id": provider, "region": "宜宾", "name": "OpenStack 基准区" }))
        .send()
        .await?
        .error_for_status()?;
    for body in [json!({ "name": "bench-1C512M", "vcpus": 1, "memory_mib": 512 })] {
        http.post(format!("{base}/v1/flavors"))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
    }
    http.post(format!("{base}/v1/images"))
        .bearer_auth(admin)
        .json(&json!({ "name": "bench-cirros", "os": "Linux", "min_disk_gib": 1, "providers": [provider] }))
        .send()
        .await?
        .error_for_status()?;
    let t = Instant::now();
    let sync_url = format!("{base}/v1/providers/{provider}/openstack/sync");
    let adopted_url = format!("{base}/v1/providers/{provider}/openstack/drift?state=adopted");
    loop {
        // One synchronisation adopts everything; should the request time out first, the
        // next call picks up the rest.
        let r = http
            .post(&sync_url)
            .bearer_auth(admin)
            .json(&json!({}))
            .send()
            .await?;
        let st = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let adopted = get_json(http, &adopted_url, admin).await?["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|d| d["name"].as_str().unwrap_or("").starts_with("zyb-adopt-"))
                    .count()
            })
            .unwrap_or(0);
        println!(
            "  sync {st}: {v} → {adopted} adopted after {:.1} s",
            t.elapsed().as_secs_f64()
        );
        if adopted >= n {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("only {adopted}/{n} adopted after 10 minutes");
        }
    }
    let adopt_secs = t.elapsed().as_secs_f64();
    println!(
        "ADOPT {n} servers ({backend}): {adopt_secs:.1} s ({:.0} per second)",
        n as f64 / adopt_secs
    );
    let q = get_json(
        http,
        &format!("{base}/v1/quotas?project_id={project}"),
        admin,
    )
    .await?;
    println!("  project quota used: {}", q["used"]);
    if !reuse {
        nova.delete_all("zyb-adopt-").await?;
    }
    if creates == 0 {
        return Ok(());
    }

    // 3. M creates directly through Nova's API, then M through zhengyun.
    let t = Instant::now();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for k in 0..creates {
        let (sem, http, url, tok, body) = (
            sem.clone(),
            nova.http.clone(),
            format!("{}/servers", nova.compute),
            nova.token.clone(),
            json!({"server": {"name": format!("zyb-direct-{k:04}"), "flavorRef": tiny, "imageRef": image, "networks": "none"}}),
        );
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await?;
            http.post(url)
                .header("X-Auth-Token", tok)
                .header("OpenStack-API-Version", "compute 2.79")
                .json(&body)
                .send()
                .await?
                .error_for_status()?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    nova.wait_active("zyb-direct-", creates, Duration::from_secs(1800))
        .await?;
    let direct = t.elapsed().as_secs_f64();
    println!("DIRECT {creates} creates through Nova's API → ACTIVE: {direct:.1} s");
    nova.delete_all("zyb-direct-").await?;

    let t = Instant::now();
    let v: Value = http
        .post(format!("{base}/v1/instances"))
        .bearer_auth(member)
        .json(&json!({ "project_id": project, "name": "zyb-zy", "flavor": "bench-1C512M", "image": "bench-cirros",
            "count": creates, "provider_id": provider }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ids: Vec<String> = v["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(1800);
    // One listing per look, as a console page would poll (a GET per instance would load
    // the server the benchmark measures).
    let listing = format!("{base}/v1/instances?project_id={project}&q=zyb-zy&limit=1000");
    loop {
        let page = get_json(http, &listing, member).await?;
        let mut running = 0;
        for i in page["items"].as_array().into_iter().flatten() {
            if !ids.iter().any(|id| i["id"] == id.as_str()) {
                continue;
            }
            match i["state"].as_str() {
                Some("running") => running += 1,
                Some("error") => bail!("instance {} failed: {i}", i["id"]),
                _ => {}
            }
        }
        if running == ids.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("{running}/{} running after 30 minutes", ids.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let zy = t.elapsed().as_secs_f64();
    println!("ZHENGYUN {creates} creates (one request, count {creates}) → running: {zy:.1} s");
    println!(
        "OVERHEAD: {:+.1} % (zhengyun {zy:.1} s vs Nova's API {direct:.1} s)",
        (zy - direct) / direct * 100.0
    );
    nova.delete_all("zyb-zy-").await?;
    Ok(())
}
