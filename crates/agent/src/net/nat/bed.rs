//! The namespaces of the real runs: a "host" namespace running the data plane with an
//! "external" namespace on its external interface (TEST-NET-2, 198.51.100.0/24, the
//! external namespace being its gateway) and guest namespaces on the VPCs' bridges, plus
//! the small Python TCP servers and clients the runs probe with.

use super::*;
use crate::net::DataPlane;
use crate::test_util::sh;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use zy_compute::agent::{EipWire, SubnetWire, VpcWire};

/// Everything the run made, removed even when it fails.
pub struct Bed {
    /// Names of this run's namespaces start with it (unique to a test and a process).
    prefix: String,
    dir: PathBuf,
    servers: Vec<tokio::process::Child>,
    flows: Vec<tokio::process::Child>,
    /// Namespaces made through [`Bed::add_ns`] (or named by `made`), deleted on drop.
    made: Vec<String>,
}

pub const VNI_A: u32 = 7301;
pub const VNI_B: u32 = 7302;
pub const EIP: &str = "198.51.100.10";
pub const HOST_EXT: &str = "198.51.100.2";
pub const GATEWAY: &str = "198.51.100.1";

impl Bed {
    /// The host and the external network, the host's address on it [`HOST_EXT`];
    /// `prefix` (3 letters) keeps the namespaces of concurrent tests apart.
    pub fn new(prefix: &str) -> Bed {
        let bed = Bed::empty(prefix);
        let (h, x) = (bed.host(), bed.ns("x"));
        assert!(sh(&["ip", "netns", "add", &h]));
        assert!(sh(&["ip", "netns", "add", &x]));
        assert!(sh(&[
            "ip", "-n", &h, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns",
            &x
        ]));
        let host_cidr = format!("{HOST_EXT}/24");
        let gw_cidr = format!("{GATEWAY}/24");
        for (ns, dev, addr) in [
            (&h, "ext0", host_cidr.as_str()),
            (&x, "eth0", gw_cidr.as_str()),
        ] {
            assert!(sh(&["ip", "-n", ns, "link", "set", "lo", "up"]));
            assert!(sh(&["ip", "-n", ns, "link", "set", dev, "up"]));
            assert!(sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]));
        }
        bed
    }

    /// No namespace yet: the run makes its own with [`Bed::add_ns`].
    pub fn empty(prefix: &str) -> Bed {
        let tag = format!("{prefix}{:x}", std::process::id() % 0xfff);
        Bed {
            dir: std::env::temp_dir().join(format!("zy-nat-{tag}")),
            prefix: tag,
            servers: vec![],
            flows: vec![],
            made: vec![],
        }
    }

    /// A new namespace `which` with its loopback up, deleted with the bed.
    pub fn add_ns(&mut self, which: &str) -> String {
        let ns = self.ns(which);
        assert!(sh(&["ip", "netns", "add", &ns]), "{ns}");
        assert!(sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]));
        self.made.push(ns.clone());
        ns
    }

    /// A namespace made by someone else (a data plane) that the bed deletes if it is
    /// left behind.
    pub fn made(&mut self, ns: String) {
        self.made.push(ns);
    }

    /// The bed's scratch directory (`sub` in it).
    pub fn dir(&self, sub: &str) -> PathBuf {
        self.dir.join(sub)
    }

    pub fn ns(&self, which: &str) -> String {
        format!("{}{which}", self.prefix)
    }

    /// The namespace of VPC `vni` on the host.
    pub fn vpc_ns(&self, vni: u32) -> String {
        names::dhcp_ns(&format!("{}-", self.host()), vni)
    }

    pub fn host(&self) -> String {
        self.ns("h")
    }

    pub fn plane(&self) -> DataPlane {
        DataPlane::new(&self.dir, Some(self.host()), None)
    }

    /// A guest namespace on VPC `vni`'s bridge with `addr`/24 and the gateway 10.0.0.1.
    pub fn attach(&self, which: &str, vni: u32, addr: &str) {
        self.attach_to(&self.host(), which, vni, addr, "10.0.0.1");
    }

    /// A guest namespace `which` on VPC `vni`'s bridge in host namespace `h`, with
    /// `addr`/24 and the default route via `gateway`.
    pub fn attach_to(&self, h: &str, which: &str, vni: u32, addr: &str, gateway: &str) {
        let ns = self.ns(which);
        let port = format!("zq{which}");
        let cidr = format!("{addr}/24");
        assert!(sh(&["ip", "netns", "add", &ns]));
        assert!(sh(&[
            "ip", "-n", h, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &ns
        ]));
        let br = names::bridge(vni);
        assert!(sh(&[
            "ip", "-n", h, "link", "set", &port, "master", &br, "up"
        ]));
        for a in [
            vec!["link", "set", "lo", "up"],
            vec!["link", "set", "eth0", "up"],
            vec!["addr", "add", &cidr, "dev", "eth0"],
            vec!["route", "add", "default", "via", gateway],
        ] {
            let mut c = vec!["ip", "-n", ns.as_str()];
            c.extend(a);
            assert!(sh(&c), "{c:?}");
        }
    }

    /// A TCP server in `ns` on `addr:port` answering each connection with the peer's
    /// address (what the other side sees as the source).
    pub fn serve(&mut self, ns: &str, addr: &str, port: u16) {
        let script = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
while True:
    c, a = s.accept()
    c.sendall((a[0] + "\n").encode())
    c.close()
"#;
        let child = python(ns, script, &[addr, &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the TCP server");
        self.servers.push(child);
    }

    /// What a TCP server at `addr:port` tells a client in `ns` (`ERR …` when it fails).
    pub async fn ask(&self, ns: &str, addr: &str, port: u16, timeout_s: f32) -> String {
        let script = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(s.recv(100).decode().strip())
except Exception as e:
    print("ERR", repr(e))
"#;
        let o = python(
            ns,
            script,
            &[addr, &port.to_string(), &timeout_s.to_string()],
        )
        .output()
        .await
        .expect("client");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Asks until the answer is `want` (servers start slowly on a busy machine).
    pub async fn ask_until(&self, ns: &str, addr: &str, port: u16, want: &str) -> Duration {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(30);
        loop {
            let got = self.ask(ns, addr, port, 0.5).await;
            if got == want {
                return t0.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{ns} → {addr}:{port}: wanted {want}, got {got}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    /// A TCP server in `ns` on `addr:port` echoing each line it receives, prefixed with
    /// `name` (which guest answered), on connections kept open.
    pub fn serve_echo(&mut self, ns: &str, addr: &str, port: u16, name: &str) {
        let script = r#"
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
def echo(c):
    f = c.makefile("rwb")
    for line in f:
        f.write(sys.argv[3].encode() + b" " + line)
        f.flush()
while True:
    c, a = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
"#;
        let child = python(ns, script, &[addr, &port.to_string(), name])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the echo server");
        self.servers.push(child);
    }

    /// A TCP connection from `ns` to an echo server at `addr:port`, kept open (retried
    /// until the server is up).
    pub async fn connect(&mut self, ns: &str, addr: &str, port: u16) -> Flow {
        let script = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
    f = s.makefile("rwb")
    print("CONNECTED", flush=True)
except Exception as e:
    print("ERR", repr(e), flush=True)
    sys.exit()
for cmd in sys.stdin:
    try:
        f.write(cmd.encode())
        f.flush()
        r = f.readline().decode().strip()
        print(r if r else "ERR closed", flush=True)
    except Exception as e:
        print("ERR", repr(e), flush=True)
"#;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut child = python(ns, script, &[addr, &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start the client");
            let stdin = child.stdin.take().expect("stdin");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let first = lines.next_line().await.ok().flatten().unwrap_or_default();
            if first == "CONNECTED" {
                self.flows.push(child);
                return Flow { stdin, lines };
            }
            assert!(
                Instant::now() < deadline,
                "{ns} → {addr}:{port}: cannot connect: {first}"
            );
            let _ = child.wait().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One open TCP connection of [`Bed::connect`].
pub struct Flow {
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Flow {
    /// Sends a line; the echo (`ERR …` when the connection failed or nothing came back
    /// within 2 s).
    pub async fn say(&mut self, line: &str) -> String {
        if self
            .stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .is_err()
        {
            return "ERR client gone".into();
        }
        let _ = self.stdin.flush().await;
        match tokio::time::timeout(Duration::from_secs(2), self.lines.next_line()).await {
            Ok(Ok(Some(l))) => l,
            Ok(_) => "ERR client gone".into(),
            Err(_) => "ERR no answer".into(),
        }
    }
}

/// A Python script run in `ns` with `args` (no input, errors discarded, killed with its
/// handle).
fn python(ns: &str, script: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("ip");
    c.args(["netns", "exec", ns, "/usr/bin/python3", "-c", script])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    c
}

/// The standard output of a command (empty when it cannot run).
pub fn out(args: &[&str]) -> String {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

pub fn nat(eips: &[(&str, &str)]) -> NatWire {
    NatWire {
        eips: eips
            .iter()
            .map(|(e, i)| EipWire {
                eip: (*e).into(),
                ip: (*i).into(),
            })
            .collect(),
        masquerade: true,
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.start_kill();
        }
        for f in &mut self.flows {
            let _ = f.start_kill();
        }
        for w in ["h", "x", "a", "b", "c", "d", "e"] {
            sh(&["ip", "netns", "del", &self.ns(w)]);
        }
        for ns in &self.made {
            sh(&["ip", "netns", "del", ns]);
        }
        for vni in [VNI_A, VNI_B] {
            sh(&["ip", "netns", "del", &self.vpc_ns(vni)]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn vpc(vni: u32, eips: &[(&str, &str)]) -> VpcWire {
    VpcWire {
        vni,
        peers: vec![],
        subnets: vec![SubnetWire {
            cidr: "10.0.0.0/24".into(),
            gateway: "10.0.0.1".into(),
            dns_servers: vec![],
            dhcp: false,
            hosts: vec![],
        }],
        nat: Some(nat(eips)),
        remote: vec![],
    }
}

pub fn state(generation: i64, eips: &[(&str, &str)]) -> NetworkState {
    NetworkState {
        generation,
        vpcs: vec![vpc(VNI_A, eips), vpc(VNI_B, &[])],
        external: Some(ExternalWire {
            host_interface: "ext0".into(),
            cidr: "198.51.100.0/24".into(),
            gateway: GATEWAY.into(),
        }),
        ..Default::default()
    }
}
