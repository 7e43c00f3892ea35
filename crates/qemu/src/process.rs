//! Small helpers around host processes: running tools (`qemu-img`), looking at
//! `/proc/<pid>`, signalling without `unsafe` (through `kill(1)`), polling with deadlines.

use std::ffi::OsStr;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Runs a tool to completion (at most `timeout`) and returns its standard output.
pub(crate) async fn run<I, S>(program: &str, args: I, timeout: Duration) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let shown = format!("{c:?}");
    let out = tokio::time::timeout(timeout, c.output())
        .await
        .map_err(|_| Error::Timeout {
            what: shown.clone(),
            after: timeout,
        })?
        .map_err(|e| Error::Command {
            command: shown.clone(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `pid` is a live (not zombie) process whose command line contains `tag`.
pub(crate) fn alive(pid: u32, tag: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("X");
    if state == "Z" || state == "X" {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(tag))
        .unwrap_or(false)
}

/// Sends SIGKILL.
pub(crate) async fn kill9(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
}

/// Polls `done` every 25 ms until it holds (true) or `timeout` passes (false).
pub(crate) async fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it soon after).
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("find a free port on 127.0.0.1", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("find a free port on 127.0.0.1", e))
}
