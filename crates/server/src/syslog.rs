//! The syslog receiver of the security-event intake (安全事件接收): UDP datagrams and TCP
//! streams (RFC 6587 octet counting or newline framing) from firewalls, WAFs and IDSs, off
//! unless `--syslog-udp` / `--syslog-tcp` name an address.
//!
//! Pipeline: the sockets push raw lines into one bounded queue ([`QUEUE_BOUND`] lines by
//! default, `--syslog-queue`). A parser takes whatever has queued (up to [`BATCH`] lines)
//! and parses it (`zy_model::syslog`) on a blocking thread; a writer maps each event to its
//! owner through the address plan and writes the batch and its day counts in one
//! transaction (`app::secev::write_batch`). The two stages overlap: the next batch is
//! parsed while the previous one is written, with at most one parsed batch waiting between
//! them. A full queue drops UDP lines and counts them (`dropped`); a TCP sender waits
//! instead (its stream is flow-controlled), so nothing sent over TCP is dropped. Memory is
//! bounded by the queue: at most its bound of lines of at most [`MAX_LINE`] bytes each, plus
//! three batches in flight (one being parsed, one waiting, one being written).
//!
//! The sockets and the writer are started with the server like its HTTP listener; the
//! periodic work on events (retention, alert rules) is a background task
//! (`app::secev::SecurityTask`).

use crate::app::secev as app;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_store::Store;

/// Lines the queue holds before UDP lines are dropped (the default of `--syslog-queue`).
pub const QUEUE_BOUND: usize = 65_536;
/// Longest line kept (bytes); longer ones are cut (TCP) or truncated by the datagram.
pub const MAX_LINE: usize = 16 * 1024;
/// Most lines written in one transaction.
pub const BATCH: usize = 4_096;
/// Most TCP connections at once.
const MAX_TCP: usize = 256;

/// Counters of the intake, read by `GET /v1/security-events/intake`.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub written: AtomicU64,
    pub batches: AtomicU64,
    pub write_errors: AtomicU64,
    pub lost_on_error: AtomicU64,
    pub tcp_connections: AtomicU64,
    pub tcp_refused: AtomicU64,
    pub queued: AtomicU64,
    bound: AtomicU64,
    udp: std::sync::OnceLock<SocketAddr>,
    tcp: std::sync::OnceLock<SocketAddr>,
}

/// What the intake has done since the server started.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IntakeStatus {
    /// Listening UDP and TCP addresses (`null`: off).
    pub udp: Option<String>,
    pub tcp: Option<String>,
    /// Lines received.
    pub received: u64,
    /// Lines dropped because the queue was full (UDP only).
    pub dropped: u64,
    /// Lines written as events.
    pub written: u64,
    /// Lines waiting in the queue now, and the queue's bound.
    pub queued: u64,
    pub queue_bound: u64,
    pub batches: u64,
    /// Failed batch writes (retried) and lines given up after five failures.
    pub write_errors: u64,
    pub lost_on_error: u64,
    pub tcp_connections: u64,
    /// TCP connections refused because 256 were open.
    pub tcp_refused: u64,
}

impl Stats {
    pub fn status(&self) -> IntakeStatus {
        IntakeStatus {
            udp: self.udp.get().map(|a| a.to_string()),
            tcp: self.tcp.get().map(|a| a.to_string()),
            received: self.received.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            written: self.written.load(Relaxed),
            queued: self.queued.load(Relaxed),
            queue_bound: self.bound.load(Relaxed),
            batches: self.batches.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            lost_on_error: self.lost_on_error.load(Relaxed),
            tcp_connections: self.tcp_connections.load(Relaxed),
            tcp_refused: self.tcp_refused.load(Relaxed),
        }
    }

    /// The bound UDP address (port 0 in the configuration picks one).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.get().copied()
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.get().copied()
    }
}

/// A received line.
pub struct Raw {
    pub bytes: Vec<u8>,
    pub peer: IpAddr,
    pub received_at: i64,
}

/// The running receiver; dropping it stops it.
pub struct Intake {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Intake {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

impl Intake {
    pub async fn stop(mut self) {
        let hs = std::mem::take(&mut self.handles);
        for h in &hs {
            h.abort();
        }
        for h in hs {
            let _ = h.await;
        }
    }
}

fn bind_error(addr: SocketAddr, e: std::io::Error) -> Error {
    Error::unavailable(t!("无法监听 syslog 地址 {}" ; "cannot listen for syslog on {}", addr))
        .with_internal(e.to_string())
}

/// Starts listening where configured; `None` if neither address is set.
pub async fn start(
    store: Store,
    stats: Arc<Stats>,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    queue_bound: usize,
) -> Result<Option<Intake>, Error> {
    if udp.is_none() && tcp.is_none() {
        return Ok(None);
    }
    let bound = queue_bound.clamp(1, 1 << 20);
    stats.bound.store(bound as u64, Relaxed);
    let (tx, rx) = mpsc::channel::<Raw>(bound);
    let mut handles = Vec::new();
    if let Some(addr) = udp {
        let sock = udp_socket(addr).map_err(|e| bind_error(addr, e))?;
        let local = sock.local_addr().map_err(|e| bind_error(addr, e))?;
        let _ = stats.udp.set(local);
        handles.push(tokio::spawn(udp_loop(sock, tx.clone(), stats.clone())));
    }
    if let Some(addr) = tcp {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| bind_error(addr, e))?;
        let local = l.local_addr().map_err(|e| bind_error(addr, e))?;
        let _ = stats.tcp.set(local);
        handles.push(tokio::spawn(tcp_accept(l, tx.clone(), stats.clone())));
    }
    drop(tx);
    let (parsed_tx, parsed_rx) = mpsc::channel::<app::Parsed>(1);
    handles.push(tokio::spawn(parser(rx, parsed_tx, stats.clone())));
    handles.push(tokio::spawn(writer(store, parsed_rx, stats)));
    tracing::info!(?udp, ?tcp, "syslog intake listening");
    Ok(Some(Intake { handles }))
}

/// Kernel receive buffer asked for the UDP socket: lines arriving while the receiver
/// waits for a core wait here instead of being dropped by the kernel (which the intake
/// cannot count). Linux caps it at `net.core.rmem_max`.
const UDP_RECV_BUFFER: usize = 8 << 20;

fn udp_socket(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = sock.set_recv_buffer_size(UDP_RECV_BUFFER) {
        tracing::warn!(error = %e, "cannot enlarge the syslog UDP receive buffer");
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(sock.into())
}

async fn udp_loop(sock: tokio::net::UdpSocket, tx: mpsc::Sender<Raw>, stats: Arc<Stats>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "syslog UDP receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.received.fetch_add(1, Relaxed);
        let raw = Raw {
            bytes: buf[..n.min(MAX_LINE)].to_vec(),
            peer: peer.ip(),
            received_at: Timestamp::now().0,
        };
        match tx.try_send(raw) {
            Ok(()) => {
                stats.queued.fetch_add(1, Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                stats.dropped.fetch_add(1, Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn tcp_accept(l: tokio::net::TcpListener, tx: mpsc::Sender<Raw>, stats: Arc<Stats>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(MAX_TCP));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (sock, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "syslog TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            stats.tcp_refused.fetch_add(1, Relaxed);
            continue;
        };
        stats.tcp_connections.fetch_add(1, Relaxed);
        let (tx, stats) = (tx.clone(), stats.clone());
        // Connection tasks live in this set: aborting the accept loop (on stop) drops the
        // set, which aborts every connection too.
        conns.spawn(async move {
            let _permit = permit;
            if let Err(e) = tcp_conn(sock, peer.ip(), tx, stats).await {
                tracing::debug!(%peer, error = %e, "syslog TCP connection ended");
            }
        });
    }
}

/// Reads frames until the peer closes: RFC 6587 octet counting (`LEN SP MSG`) when a frame
/// starts with a digit, otherwise one line per frame.
async fn tcp_conn(
    sock: tokio::net::TcpStream,
    peer: IpAddr,
    tx: mpsc::Sender<Raw>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(64 * 1024, sock);
    let mut line = Vec::with_capacity(1024);
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        let first = buf[0];
        line.clear();
        if first.is_ascii_digit() {
            // Octet counting: digits, a space, then exactly that many bytes.
            let mut len: usize = 0;
            loop {
                let b = r.read_u8().await?;
                if b == b' ' {
                    break;
                }
                if !b.is_ascii_digit() || len > 10_000_000 {
                    return Err(std::io::Error::other("bad octet count"));
                }
                len = len * 10 + usize::from(b - b'0');
            }
            let keep = len.min(MAX_LINE);
            line.resize(keep, 0);
            r.read_exact(&mut line).await?;
            if len > keep {
                let mut rest = (&mut r).take((len - keep) as u64);
                tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
            }
        } else {
            // Newline framing; a longer line is cut at MAX_LINE and the rest skipped.
            let mut limited = (&mut r).take(MAX_LINE as u64);
            let n = limited.read_until(b'\n', &mut line).await?;
            if n == 0 {
                return Ok(());
            }
            if line.last() != Some(&b'\n') && n == MAX_LINE {
                let mut skip = Vec::new();
                loop {
                    skip.clear();
                    let m = (&mut r)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut skip)
                        .await?;
                    if m == 0 || skip.last() == Some(&b'\n') {
                        break;
                    }
                }
            }
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        stats.received.fetch_add(1, Relaxed);
        let raw = Raw {
            // An exact-size copy; `line` keeps its capacity for the next frame.
            bytes: line.clone(),
            peer,
            received_at: Timestamp::now().0,
        };
        if tx.send(raw).await.is_err() {
            return Ok(());
        }
        stats.queued.fetch_add(1, Relaxed);
    }
}

/// Takes what has queued (at least one line, at most [`BATCH`]), parses it on a blocking
/// thread (the runtime's workers keep reading the sockets) and hands it to the writer,
/// waiting while the writer still has a parsed batch waiting.
async fn parser(mut rx: mpsc::Receiver<Raw>, out: mpsc::Sender<app::Parsed>, stats: Arc<Stats>) {
    let mut batch: Vec<Raw> = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        stats.queued.fetch_sub(batch.len() as u64, Relaxed);
        let parsed = tokio::task::spawn_blocking(move || {
            let parsed = app::parse_batch(&batch);
            batch.clear();
            (batch, parsed)
        })
        .await;
        let parsed = match parsed {
            Ok((b, parsed)) => {
                batch = b;
                parsed
            }
            Err(e) => {
                tracing::error!(error = %e, "the syslog parser stopped");
                return;
            }
        };
        if out.send(parsed).await.is_err() {
            return;
        }
    }
}

/// Writes each parsed batch in one transaction, retrying a failed write five times.
async fn writer(store: Store, mut rx: mpsc::Receiver<app::Parsed>, stats: Arc<Stats>) {
    while let Some(mut events) = rx.recv().await {
        let mut tries = 0;
        loop {
            match app::write_batch(&store, &mut events).await {
                Ok(()) => {
                    stats.written.fetch_add(events.len() as u64, Relaxed);
                    stats.batches.fetch_add(1, Relaxed);
                    break;
                }
                Err(e) => {
                    stats.write_errors.fetch_add(1, Relaxed);
                    tries += 1;
                    tracing::warn!(error = %e, internal = ?e.internal, lines = events.len(), tries, "cannot write a batch of security events");
                    if tries >= 5 {
                        stats.lost_on_error.fetch_add(events.len() as u64, Relaxed);
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
                }
            }
        }
    }
}
