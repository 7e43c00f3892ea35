//! The API benchmark behind `cargo xtask bench-api`: starts a release `zhengyun server`
//! with demo data (SQLite in a temporary data dir, or a fresh schema in PostgreSQL),
//! seeds projects through the API, then drives authenticated `GET /v1/projects?limit=100`
//! with wrk from a second process and reports requests/s and latency percentiles.

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
    ensure_wrk().await?;
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
    if let Ok(pidfile) = std::env::var("ZY_BENCH_PIDFILE") {
        // Lets a profiler attach to the server while the load runs.
        cmd.env("ZY_BENCH_PIDFILE", pidfile);
    }
    cmd.env("ZHENGYUN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let _server = Child(cmd.spawn().context("starting the server")?);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        .args(["-H", &format!("Authorization: Bearer {reader}"), &url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(str::trim)
        .unwrap_or("?")
        .to_string();
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map(str::trim)
        .unwrap_or("none")
        .to_string();
    println!("{text}");
    println!(
        "RESULT backend={backend} projects={} seed_creates_per_s={:.0} list_page=100 connections={} rps={rps} p50={} p90={} p99={} non2xx={non2xx}",
        a.projects,
        a.projects as f64 / seed_secs,
        a.connections,
        pct("50%"),
        pct("90%"),
        pct("99%"),
    );
    for p in &a.paths {
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
            .args([
                "-H",
                &format!("Authorization: Bearer {reader}"),
                &format!("{base}{p}"),
            ])
            .output()
            .context("running wrk")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let rps = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .map(str::trim)
            .unwrap_or("?")
            .to_string();
        let p99 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("99%").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        println!("ALSO path={p} rps={rps} p99={p99}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
