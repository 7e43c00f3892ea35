//! A throwaway PostgreSQL for tests: uses `ZHENGYUN_TEST_PG_URL` when set; otherwise
//! installs Debian's `postgresql` if its binaries are missing, creates a cluster in a
//! temporary directory (trust auth, loopback only, fsync off) on a free port, and stops
//! and removes it when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    pub url: String,
    dir: Option<PathBuf>,
    bin: PathBuf,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = as_postgres(
                &self.bin.join("pg_ctl"),
                &["-D", &dir.to_string_lossy(), "-m", "immediate", "stop"],
            )
            .output();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root; run its tools as the `postgres` user then.
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn find_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn install() -> Result<(), String> {
    eprintln!("PostgreSQL is not installed: installing Debian's postgresql package");
    if !is_root() {
        return Err(
            "PostgreSQL is missing and installing it needs root (apt-get install postgresql)"
                .into(),
        );
    }
    let ok = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !ok(Command::new("apt-get").args(["update", "-q"]))
        || !ok(Command::new("apt-get").args(["install", "-y", "-q", "postgresql"]))
    {
        return Err("apt-get install postgresql failed".into());
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

pub fn ensure() -> Result<Postgres, String> {
    if let Ok(url) = std::env::var("ZHENGYUN_TEST_PG_URL") {
        if !url.is_empty() {
            return Ok(Postgres {
                url,
                dir: None,
                bin: PathBuf::new(),
            });
        }
    }
    let bin = match find_bindir() {
        Some(b) => b,
        None => {
            install()?;
            find_bindir().ok_or("PostgreSQL binaries not found after installing")?
        }
    };
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("zhengyun-pg-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if is_root() {
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
    }
    let d = dir.to_string_lossy().to_string();
    let out = as_postgres(
        &bin.join("initdb"),
        &[
            "-D",
            &d,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    )
    .output()
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let opts = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400");
    let log = format!("{d}/postgres.log");
    let out = as_postgres(
        &bin.join("pg_ctl"),
        &["-D", &d, "-o", &opts, "-l", &log, "-w", "start"],
    )
    .output()
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!(
            "pg_ctl start failed: {}{log}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    eprintln!("started a throwaway PostgreSQL at {url}");
    Ok(Postgres {
        url,
        dir: Some(dir),
        bin,
    })
}
