//! A small QMP client: one connection to a VM's monitor socket, the greeting and
//! `qmp_capabilities` handshake, commands matched to their replies by id, and events kept
//! in order until someone waits for them. Every read has a deadline. QEMU serves one QMP
//! client per socket at a time, so callers hold a connection only for one operation.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// How long a command may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One open QMP session.
pub struct Qmp {
    socket: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Bytes of a line not yet complete (reads are resumed after a timeout).
    partial: Vec<u8>,
    events: VecDeque<Value>,
    next_id: u64,
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Self> {
        let name = socket.display().to_string();
        let stream = tokio::time::timeout(timeout, UnixStream::connect(socket))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("QMP connection to {name}"),
                after: timeout,
            })?
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    Error::not_found(format!("QMP socket {name}"))
                } else {
                    Error::QmpIo {
                        socket: name.clone(),
                        source,
                    }
                }
            })?;
        let (r, w) = stream.into_split();
        let mut qmp = Qmp {
            socket: name,
            reader: BufReader::new(r),
            writer: w,
            partial: Vec::new(),
            events: VecDeque::new(),
            next_id: 1,
        };
        let deadline = Instant::now() + timeout;
        let greeting = qmp.read_message(deadline).await?;
        if greeting.get("QMP").is_none() {
            return Err(Error::QmpProtocol(format!(
                "unexpected greeting {greeting}"
            )));
        }
        qmp.execute_with("qmp_capabilities", None, timeout).await?;
        Ok(qmp)
    }

    /// Runs a command with the default timeout and returns its `return` value.
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.execute_with(command, arguments, DEFAULT_TIMEOUT).await
    }

    /// Runs a command, waiting at most `timeout` for its reply. Events that arrive in
    /// the meantime are kept for [`Qmp::wait_event`].
    pub async fn execute_with(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        tracing::trace!(socket = %self.socket, %line, "QMP send");
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(|source| self.io_error(source))?;
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.read_message(deadline).await.map_err(|e| match e {
                Error::Timeout { .. } => Error::Timeout {
                    what: format!("QMP {command}"),
                    after: timeout,
                },
                other => other,
            })?;
            if m.get("event").is_some() {
                self.events.push_back(m);
                continue;
            }
            if m.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(r) = m.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = m.get("error") {
                return Err(Error::Qmp {
                    command: command.to_string(),
                    class: e["class"].as_str().unwrap_or("Unknown").to_string(),
                    desc: e["desc"].as_str().unwrap_or_default().to_string(),
                });
            }
            return Err(Error::QmpProtocol(format!("reply without result: {m}")));
        }
    }

    /// Waits for the first event named `name` for which `matches` holds; earlier events
    /// of other kinds stay queued.
    pub async fn wait_event(
        &mut self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let is = |e: &Value| e["event"].as_str() == Some(name) && matches(&e["data"]);
        if let Some(pos) = self.events.iter().position(is) {
            if let Some(e) = self.events.remove(pos) {
                return Ok(e);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.read_message(deadline).await.map_err(|e| match e {
                Error::Timeout { .. } => Error::Timeout {
                    what: format!("QMP event {name}"),
                    after: timeout,
                },
                other => other,
            })?;
            if is(&m) {
                return Ok(m);
            }
            if m.get("event").is_some() {
                self.events.push_back(m);
            }
        }
    }

    async fn read_message(&mut self, deadline: Instant) -> Result<Value> {
        loop {
            let read =
                tokio::time::timeout_at(deadline, self.reader.read_until(b'\n', &mut self.partial))
                    .await;
            let n = match read {
                Err(_) => {
                    return Err(Error::Timeout {
                        what: "QMP message".into(),
                        after: Duration::ZERO,
                    })
                }
                Ok(r) => r.map_err(|source| self.io_error(source))?,
            };
            if n == 0 && !self.partial.ends_with(b"\n") {
                return Err(self.io_error(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "QEMU closed the monitor",
                )));
            }
            let line = std::mem::take(&mut self.partial);
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            tracing::trace!(socket = %self.socket, line = %text.trim(), "QMP recv");
            return serde_json::from_str(text.trim())
                .map_err(|e| Error::QmpProtocol(format!("bad JSON from QEMU ({e}): {text}")));
        }
    }

    fn io_error(&self, source: std::io::Error) -> Error {
        Error::QmpIo {
            socket: self.socket.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::UnixListener;

    /// A fake QEMU monitor: greets, accepts capabilities, then answers `query-status`
    /// with an event first and `device_del` with an error.
    async fn fake_monitor(path: std::path::PathBuf) {
        let l = UnixListener::bind(&path).expect("bind");
        let (s, _) = l.accept().await.expect("accept");
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
            .await
            .expect("greet");
        while let Ok(Some(line)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&line).expect("json");
            let id = v["id"].clone();
            let reply = match v["execute"].as_str() {
                Some("query-status") => format!(
                    "{{\"event\": \"DEVICE_DELETED\", \"data\": {{\"device\": \"d1\"}}}}\n{}\n",
                    json!({ "return": { "status": "running" }, "id": id })
                ),
                Some("device_del") => format!(
                    "{}\n",
                    json!({ "error": { "class": "DeviceNotFound", "desc": "no d2" }, "id": id })
                ),
                _ => format!("{}\n", json!({ "return": {}, "id": id })),
            };
            w.write_all(reply.as_bytes()).await.expect("reply");
        }
    }

    #[tokio::test]
    async fn commands_get_their_replies_and_events_wait_for_whoever_asks() {
        let dir = std::env::temp_dir().join(format!("zy-qmp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let sock = dir.join("qmp.sock");
        let server = tokio::spawn(fake_monitor(sock.clone()));
        let mut q = loop {
            match Qmp::connect(&sock, Duration::from_secs(5)).await {
                Ok(q) => break q,
                Err(Error::NotFound { .. }) | Err(Error::QmpIo { .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e}"),
            }
        };
        let st = q.execute("query-status", None).await.expect("status");
        assert_eq!(st["status"], "running");
        let e = q
            .wait_event("DEVICE_DELETED", Duration::from_secs(1), |d| {
                d["device"] == "d1"
            })
            .await
            .expect("queued event");
        assert_eq!(e["data"]["device"], "d1");
        let err = q
            .execute("device_del", Some(json!({ "id": "d2" })))
            .await
            .expect_err("error reply");
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        let err = q
            .wait_event("NEVER", Duration::from_millis(100), |_| true)
            .await
            .expect_err("timeout");
        assert!(err.is_transient(), "{err}");
        drop(q);
        server.abort();
        let _ = std::fs::remove_dir_all(dir);
    }
}
