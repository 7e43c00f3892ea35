//! `cargo xtask openstack up|down|status|env`: the OpenStack test bed, a minimal real
//! OpenStack control plane on loopback (docs/OPENSTACK_TESTBED.md).
//!
//! This module installs what the bed needs — Debian's `rabbitmq-server` and `postgresql`,
//! and a virtual environment with the pinned release (`xtask/openstack/requirements.txt`)
//! cached outside the repository under `~/.cache/zhengyun/openstack-<hash of the pins>` —
//! and then hands over to `xtask/openstack/bed.py`, run by that environment's Python, which
//! writes the configuration, starts the services and creates the fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run};

const REQUIREMENTS: &str = "xtask/openstack/requirements.txt";
const ZYBIND: &str = "xtask/openstack/zybind";

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf29ce484222325;

/// The cached virtual environment for the pinned release.
pub fn venv() -> Result<PathBuf, String> {
    let pins = std::fs::read(root().join(REQUIREMENTS))
        .map_err(|e| format!("cannot read {REQUIREMENTS}: {e}"))?;
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    Ok(PathBuf::from(home).join(format!(
        ".cache/zhengyun/openstack-{:016x}",
        fnv(&pins, FNV_OFFSET)
    )))
}

/// The bed's state directory (configuration, databases, logs, PIDs).
pub fn state_dir() -> PathBuf {
    root().join("target/openstack-bed")
}

fn zybind_stamp() -> u64 {
    let mut h = FNV_OFFSET;
    for f in ["zybind.py", "pyproject.toml"] {
        h = fnv(
            &std::fs::read(root().join(ZYBIND).join(f)).unwrap_or_default(),
            h,
        );
    }
    h
}

/// Installs the Debian packages and the virtual environment if they are missing; quick
/// when everything is present.
pub fn ensure() -> Result<PathBuf, String> {
    let mut missing = Vec::new();
    if !Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() {
        missing.push("rabbitmq-server");
    }
    if !Path::new("/usr/lib/postgresql").exists() {
        missing.push("postgresql");
    }
    if !Path::new("/usr/lib/python3.11/venv").exists()
        && !Command::new("/usr/bin/python3")
            .args(["-c", "import ensurepip"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    {
        missing.push("python3-venv");
    }
    if !Path::new("/usr/include/python3.11/Python.h").exists() {
        missing.push("python3-dev");
    }
    if Command::new("gcc").arg("--version").output().is_err() {
        missing.push("gcc");
    }
    if !missing.is_empty() && !crate::web::apt_install(&missing) {
        return Err(format!("cannot install {missing:?} (apt-get needs root)"));
    }
    let venv = venv()?;
    let python = venv.join("bin/python");
    if !venv.join(".complete").exists() {
        eprintln!(
            "creating the OpenStack virtual environment {} (once per pinned release; 2–3 min)",
            venv.display()
        );
        let _ = std::fs::remove_dir_all(&venv);
        if let Some(parent) = venv.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut c = Command::new("/usr/bin/python3");
        c.args(["-m", "venv"]).arg(&venv);
        if !run(c) {
            return Err("python3 -m venv failed".into());
        }
        // A current pip builds wheels for sdists (uWSGI) and keeps them in its cache, so
        // the next environment does not compile uWSGI again.
        let mut c = Command::new(&python);
        c.args(["-m", "pip", "install", "-q", "--upgrade", "pip", "wheel"]);
        if !run(c) {
            return Err("cannot upgrade pip in the virtual environment".into());
        }
        let mut c = Command::new(&python);
        c.args(["-m", "pip", "install", "-q", "-r"])
            .arg(root().join(REQUIREMENTS));
        if !run(c) {
            return Err("pip install of the pinned OpenStack release failed".into());
        }
        std::fs::write(venv.join(".complete"), b"").map_err(|e| e.to_string())?;
    }
    let stamp = venv.join(format!(".zybind-{:016x}", zybind_stamp()));
    if !stamp.exists() {
        let mut c = Command::new(&python);
        c.args([
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--force-reinstall",
        ])
        .arg(root().join(ZYBIND));
        if !run(c) {
            return Err("cannot install the zybind mechanism driver".into());
        }
        std::fs::write(&stamp, b"").map_err(|e| e.to_string())?;
    }
    Ok(venv)
}

fn bed(venv: &Path, cmd: &str) -> Command {
    let mut c = Command::new(venv.join("bin/python"));
    c.arg(root().join("xtask/openstack/bed.py"))
        .arg(cmd)
        .arg(state_dir());
    c
}

/// Starts the bed from empty data (anything left from an earlier run is stopped and
/// removed first).
pub fn up_fresh() -> Result<(), String> {
    let venv = ensure()?;
    let _ = run(bed(&venv, "down"));
    let _ = std::fs::remove_dir_all(state_dir());
    if run(bed(&venv, "up")) {
        Ok(())
    } else {
        Err(format!(
            "the OpenStack test bed did not start (logs in {})",
            state_dir().join("log").display()
        ))
    }
}

pub fn down() -> bool {
    match venv() {
        Ok(v) if v.join("bin/python").exists() => run(bed(&v, "down")),
        _ => true,
    }
}

/// The variables the tests read (`ZY_OPENSTACK_*`, and `OS_*` for the `openstack` client).
pub fn env_vars() -> Vec<(String, String)> {
    std::fs::read_to_string(state_dir().join("env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whether the bed's Keystone answers on its loopback port (its env file names it).
pub fn reachable() -> bool {
    let vars = env_vars();
    let Some((_, url)) = vars.iter().find(|(k, _)| k == "ZY_OPENSTACK_AUTH_URL") else {
        return false;
    };
    let Some(addr) = url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    else {
        return false;
    };
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
}

/// The bed started in the background for `cargo xtask test`; stopped when dropped (also
/// when the tests fail or lint stops the run early — after waiting for the start to end,
/// so nothing it spawns is left behind).
pub struct Background {
    start: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Background {
    pub fn start() -> Background {
        Background {
            start: Some(std::thread::spawn(up_fresh)),
        }
    }

    /// Waits until the bed is ready.
    pub fn ready(&mut self) -> Result<(), String> {
        match self.start.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err("the bed's start panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.ready();
        down();
    }
}

pub fn main(args: &[String]) -> bool {
    match args.first().map(String::as_str) {
        Some("up") => {
            let fresh = args.iter().any(|a| a == "--fresh");
            let venv = match ensure() {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("{e}");
                    return false;
                }
            };
            if fresh {
                let _ = run(bed(&venv, "down"));
                let _ = std::fs::remove_dir_all(state_dir());
            }
            run(bed(&venv, "up"))
        }
        Some("down") => down(),
        // Benchmarks only: more fake hypervisors beside the bed's one (see bed.py).
        Some("add-computes") => match (venv(), args.get(1).and_then(|n| n.parse::<u32>().ok())) {
            (Ok(v), Some(n)) => {
                let mut c = bed(&v, "add-computes");
                c.arg(n.to_string());
                run(c)
            }
            (Err(e), _) => {
                eprintln!("{e}");
                false
            }
            (_, None) => {
                eprintln!("usage: cargo xtask openstack add-computes N");
                false
            }
        },
        Some("status") => match venv() {
            Ok(v) => run(bed(&v, "status")),
            Err(e) => {
                eprintln!("{e}");
                false
            }
        },
        Some("env") => {
            let vars = env_vars();
            if vars.is_empty() {
                eprintln!("the bed has not been started: cargo xtask openstack up");
                return false;
            }
            for (k, v) in vars {
                println!("export {k}={v}");
            }
            true
        }
        _ => {
            eprintln!("usage: cargo xtask openstack <up [--fresh] | down | status | env | add-computes N>");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(super::fnv(b"", super::FNV_OFFSET), 0xcbf29ce484222325);
        assert_eq!(super::fnv(b"a", super::FNV_OFFSET), 0xaf63dc4c8601ec8c);
    }
}
