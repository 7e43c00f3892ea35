//! The configuration text (golden), the stats parser, what validation refuses, HAProxy's
//! own check of the text, and a real run: HAProxy in a namespace on a bridge in front of
//! two members (namespaces with a small HTTP server each) spreading requests, dropping a
//! member that fails its check and taking it back, a TCP listener, adoption by a new
//! agent and a clean delete.

use super::*;
use std::process::Stdio;
use std::time::Instant;

const GOLDEN: &str = include_str!("golden.cfg");

fn sample() -> LbSpecWire {
    LbSpecWire {
        vni: 4242,
        vip: "10.0.1.5".into(),
        prefix: 24,
        gateway: "10.0.1.1".into(),
        listeners: vec![
            LbListenerWire {
                mode: LbMode::Http,
                port: 80,
                balance: LbBalance::RoundRobin,
                http_check: Some(HttpCheckWire {
                    path: "/healthz".into(),
                    status: 200,
                }),
                interval_ms: 2000,
                rise: 2,
                fall: 3,
                members: vec![
                    LbMemberWire {
                        name: "m0".into(),
                        address: "10.0.1.11".into(),
                        port: 8080,
                        weight: 1,
                    },
                    LbMemberWire {
                        name: "m1".into(),
                        address: "10.0.1.12".into(),
                        port: 8080,
                        weight: 3,
                    },
                ],
            },
            LbListenerWire {
                mode: LbMode::Tcp,
                port: 5432,
                balance: LbBalance::LeastConn,
                http_check: None,
                interval_ms: 500,
                rise: 1,
                fall: 2,
                members: vec![LbMemberWire {
                    name: "m0".into(),
                    address: "10.0.1.21".into(),
                    port: 5432,
                    weight: 1,
                }],
            },
        ],
    }
}

fn id() -> Uuid {
    Uuid::parse_str("01890a5d-ac96-774b-bcce-b302099a8057").expect("uuid")
}

#[test]
fn the_configuration_text_is_exactly_the_golden_one() {
    let got = render(id(), &sample(), Path::new("/var/lib/zy/lb/x/stats.sock"));
    crate::test_util::golden("lb/golden.cfg", &got, GOLDEN);
    assert_eq!(ns_name(id()), "zl01890a5dac");
    assert_eq!(veth_names(id()).0, "zlh01890a5dac");
    assert!(veth_names(Uuid::new_v4()).1.len() <= 15);
    assert_eq!(bridge_name(16_777_215), "zb16777215");
}

#[test]
fn show_stat_gives_each_members_health() {
    let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
fe_80,FRONTEND,,,0,1,20000,3,0,0,0,0,0,,,,,OPEN,\n\
be_80,m0,0,0,0,1,,2,0,0,,0,,0,0,0,0,UP,1\n\
be_80,m1,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN 1/2,1\n\
be_80,BACKEND,0,0,0,1,2000,3,0,0,0,0,,0,0,0,0,UP,2\n\
be_5432,m0,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1\n\
be_5433,m1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/3,1\n";
    let got = parse_stat(csv);
    let h: Vec<(u16, &str, LbMemberHealth)> = got
        .iter()
        .map(|m| (m.listener_port, m.name.as_str(), m.health))
        .collect();
    assert_eq!(
        h,
        vec![
            (80, "m0", LbMemberHealth::Up),
            (80, "m1", LbMemberHealth::Down),
            (5432, "m0", LbMemberHealth::Unknown),
            (5433, "m1", LbMemberHealth::Up),
        ]
    );
    assert!(parse_stat("").is_empty());
    assert!(parse_stat("garbage\nbe_80,m0").is_empty());
}

#[test]
fn nothing_a_caller_sends_can_add_a_directive() {
    let mut s = sample();
    s.listeners[0].members[0].name = "m0 check\n    server evil".into();
    assert!(validate(&s).is_err());
    let mut s = sample();
    s.listeners[0].http_check = Some(HttpCheckWire {
        path: "/x\nglobal".into(),
        status: 200,
    });
    assert!(validate(&s).is_err());
    let mut s = sample();
    s.listeners[0].members[0].address = "10.0.0.1:80 check".into();
    assert!(validate(&s).is_err());
    let mut s = sample();
    s.listeners[1].port = 80;
    assert!(validate(&s).is_err(), "two listeners on one port");
    assert!(validate(&sample()).is_ok());
}

fn haproxy() -> Option<PathBuf> {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn required() -> bool {
    std::env::var_os("ZY_REQUIRE_HAPROXY").is_some()
}

/// HAProxy itself accepts the text (`haproxy -c`). Needs Debian's haproxy (installed by
/// `cargo xtask test`); elsewhere skipped unless `ZY_REQUIRE_HAPROXY` is set.
#[test]
fn haproxy_accepts_the_rendered_configuration() {
    let Some(bin) = haproxy() else {
        assert!(!required(), "haproxy is required but missing");
        eprintln!("haproxy is not installed: skipped");
        return;
    };
    let dir = std::env::temp_dir().join(format!("zy-lb-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, render(id(), &sample(), &dir.join("stats.sock"))).expect("write");
    let out = std::process::Command::new(bin)
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .expect("run haproxy -c");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "haproxy -c rejected the configuration:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- the real run ----------------------------------------------------------------------

use crate::test_util::sh;

/// Everything the run made, removed even when it fails.
struct Bed {
    tag: String,
    vni: u32,
    dir: PathBuf,
    lb: Uuid,
    servers: Vec<Option<tokio::process::Child>>,
}

impl Bed {
    fn ns(&self, which: &str) -> String {
        format!("zlt{}{which}", self.tag)
    }

    /// A namespace on the bridge with `addr`.
    fn attach(&self, which: &str, addr: &str) {
        let ns = self.ns(which);
        let host = format!("{ns}h");
        assert!(sh(&["ip", "netns", "add", &ns]), "netns add {ns}");
        assert!(sh(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns
        ]));
        assert!(sh(&[
            "ip",
            "link",
            "set",
            &host,
            "master",
            &bridge_name(self.vni),
            "up"
        ]));
        assert!(sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]));
        assert!(sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]));
        assert!(sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0"
        ]));
    }

    /// `python3 -m http.server` in member `which` (0 or 1), answering its own letter.
    fn serve(&mut self, which: usize) {
        let letter = ["a", "b"][which];
        let root = self.dir.join(format!("www-{letter}"));
        std::fs::create_dir_all(&root).expect("www");
        std::fs::write(root.join("index.html"), letter.to_uppercase()).expect("index");
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.ns(letter), "/usr/bin/python3"])
            .args(["-m", "http.server", "8080", "--bind"])
            .arg(format!("10.77.1.{}", 11 + which))
            .arg("--directory")
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start http.server");
        self.servers[which] = Some(child);
    }

    async fn stop_server(&mut self, which: usize) {
        if let Some(mut c) = self.servers[which].take() {
            let _ = c.kill().await;
        }
    }

    /// `n` requests to the virtual IP from the client namespace, one connection each: the
    /// bodies (`ERR …` for a failed request).
    async fn fetch(&self, port: u16, n: usize) -> Vec<String> {
        self.fetch_from(&format!("http://10.77.1.5:{port}/"), n)
            .await
    }

    /// Until both members' servers answer directly (Python starts slowly on a busy machine,
    /// and HAProxy counts a new member up until its first check fails).
    async fn wait_servers(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (ip, want) in [("10.77.1.11", "A"), ("10.77.1.12", "B")] {
            loop {
                let got = self.fetch_from(&format!("http://{ip}:8080/"), 1).await;
                if got.first().map(String::as_str) == Some(want) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "member {ip} never answered: {got:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn fetch_from(&self, url: &str, n: usize) -> Vec<String> {
        let script = r#"
import sys, urllib.request
for i in range(int(sys.argv[2])):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())
    except Exception as e:
        print("ERR", repr(e))
"#;
        let out = tokio::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("c"),
                "/usr/bin/python3",
                "-c",
                script,
            ])
            .arg(url)
            .arg(n.to_string())
            .output()
            .await
            .expect("client");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for c in self.servers.iter_mut().flatten() {
            let _ = c.start_kill();
        }
        if let Ok(pid) =
            std::fs::read_to_string(self.dir.join(format!("lb/{}/haproxy.pid", self.lb)))
        {
            sh(&["kill", "-KILL", pid.trim()]);
        }
        for w in ["a", "b", "c"] {
            sh(&["ip", "link", "del", &format!("{}h", self.ns(w))]);
            sh(&["ip", "netns", "del", &self.ns(w)]);
        }
        sh(&["ip", "link", "del", &veth_names(self.lb).0]);
        sh(&["ip", "netns", "del", &ns_name(self.lb)]);
        sh(&["ip", "link", "del", &bridge_name(self.vni)]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spec(vni: u32) -> LbSpecWire {
    let members = |p| {
        (0..2)
            .map(|i| LbMemberWire {
                name: format!("m{i}"),
                address: format!("10.77.1.{}", 11 + i),
                port: p,
                weight: 1,
            })
            .collect()
    };
    LbSpecWire {
        vni,
        vip: "10.77.1.5".into(),
        prefix: 24,
        gateway: "10.77.1.1".into(),
        listeners: vec![
            LbListenerWire {
                mode: LbMode::Http,
                port: 80,
                balance: LbBalance::RoundRobin,
                http_check: Some(HttpCheckWire {
                    path: "/".into(),
                    status: 200,
                }),
                interval_ms: 300,
                rise: 1,
                fall: 2,
                members: members(8080),
            },
            LbListenerWire {
                mode: LbMode::Tcp,
                port: 9000,
                balance: LbBalance::LeastConn,
                http_check: None,
                interval_ms: 300,
                rise: 1,
                fall: 2,
                members: members(8080),
            },
        ],
    }
}

/// Polls the members' health until `want` holds for listener 80 (m0, m1), or fails.
async fn wait_health(lbs: &Lbs, id: Uuid, want: [LbMemberHealth; 2]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(Some(r)) = lbs.status(id).await {
            let got: Vec<LbMemberHealth> = ["m0", "m1"]
                .iter()
                .map(|n| {
                    r.members
                        .iter()
                        .find(|m| m.listener_port == 80 && m.name == *n)
                        .map_or(LbMemberHealth::Unknown, |m| m.health)
                })
                .collect();
            if got == want {
                return;
            }
            last = Some(r);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("members never reached {want:?}: {last:?}");
}

fn count(bodies: &[String], what: &str) -> usize {
    bodies.iter().filter(|b| *b == what).count()
}

fn may_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if haproxy().is_none() || !root || !Path::new("/usr/bin/python3").exists() {
        assert!(!required(), "haproxy, root and python3 are required");
        eprintln!("needs root, haproxy and python3: skipped");
        return false;
    }
    true
}

/// A bridge with two members serving HTTP and a client namespace, unique to this run.
fn bed() -> Bed {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let salt = (std::process::id() ^ nanos) & 0xf_ffff;
    let mut bed = Bed {
        tag: format!("{salt:05x}"),
        vni: 0xf0_0000 + salt,
        dir: std::env::temp_dir().join(format!("zy-lb-{salt:05x}")),
        lb: Uuid::new_v4(),
        servers: vec![None, None],
    };
    let br = bridge_name(bed.vni);
    assert!(sh(&["ip", "link", "add", &br, "type", "bridge"]));
    assert!(sh(&["ip", "link", "set", &br, "up"]));
    bed.attach("a", "10.77.1.11");
    bed.attach("b", "10.77.1.12");
    bed.attach("c", "10.77.1.20");
    bed.serve(0);
    bed.serve(1);

    bed
}

/// The real thing, through the agent's own code ([`Lbs`]): needs root, iproute2,
/// python3 and haproxy; skipped elsewhere unless `ZY_REQUIRE_HAPROXY` is set.
#[tokio::test]
async fn haproxy_in_a_namespace_spreads_requests_and_drops_a_failing_member() {
    if !may_run() {
        return;
    }
    let mut bed = bed();
    let lbs = Lbs::new(&bed.dir);
    let id = bed.lb;
    let spec = spec(bed.vni);
    bed.wait_servers().await;
    lbs.ensure(id, &spec).await.expect("ensure");
    let cfg = std::fs::read_to_string(bed.dir.join(format!("lb/{id}/haproxy.cfg"))).expect("cfg");
    assert!(cfg.contains("balance leastconn") && cfg.contains("balance roundrobin"));
    wait_health(&lbs, id, [LbMemberHealth::Up; 2]).await;

    // Round robin: ten requests, five each.
    let got = bed.fetch(80, 10).await;
    assert_eq!((count(&got, "A"), count(&got, "B")), (5, 5), "{got:?}");

    // B's server stops: it fails its checks and gets nothing more.
    bed.stop_server(1).await;
    wait_health(&lbs, id, [LbMemberHealth::Up, LbMemberHealth::Down]).await;
    let got = bed.fetch(80, 6).await;
    assert_eq!(count(&got, "A"), 6, "only A answers: {got:?}");

    // Back again: it passes its check and shares the load.
    bed.serve(1);
    bed.wait_servers().await;
    wait_health(&lbs, id, [LbMemberHealth::Up; 2]).await;
    // (HAProxy lets a returning member catch up first, so the split is uneven for a while.)
    let got = bed.fetch(80, 10).await;
    assert!(count(&got, "A") >= 1 && count(&got, "B") >= 1, "{got:?}");
    assert!(got.iter().all(|b| b == "A" || b == "B"), "{got:?}");

    // The TCP listener (least connections) passes connections through.
    let got = bed.fetch(9000, 6).await;
    assert_eq!(count(&got, "A") + count(&got, "B"), 6, "{got:?}");

    // A restarted agent finds it running and leaves it be; the same spec changes nothing.
    let pid = lbs.pid(id).expect("running");
    let again = Lbs::new(&bed.dir);
    assert_eq!(again.adopt().await, 1);
    again.ensure(id, &spec).await.expect("ensure again");
    assert_eq!(again.pid(id), Some(pid), "not restarted");
    // A change reloads the same master gracefully.
    let mut changed = spec.clone();
    changed.listeners[0].members[1].weight = 3;
    again.ensure(id, &changed).await.expect("reload");
    assert_eq!(again.pid(id), Some(pid), "reloaded, not restarted");
    // The old worker may still take a connection or two while it hands over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = bed.fetch(80, 8).await;
        if (count(&got, "A"), count(&got, "B")) == (2, 6) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "weights 1:3 never applied: {got:?}"
        );
    }

    again.delete(id).await.expect("delete");
    again.delete(id).await.expect("delete twice");
    assert!(!alive(pid), "HAProxy stopped");
    assert!(!Path::new("/run/netns").join(ns_name(id)).exists());
    assert_eq!(again.status(id).await.expect("status"), None);
}

/// Timings for docs/BENCHMARKS.md (not run in CI): `cargo test -p zy-agent --lib
/// lb::tests::apply_timings -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn apply_timings() {
    if !may_run() {
        return;
    }
    let bed = bed();
    let lbs = Lbs::new(&bed.dir);
    let spec = spec(bed.vni);
    let (mut first, mut same, mut reload) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..10u16 {
        let t = Instant::now();
        lbs.ensure(bed.lb, &spec).await.expect("ensure");
        first.push(t.elapsed());
        let t = Instant::now();
        lbs.ensure(bed.lb, &spec).await.expect("same");
        same.push(t.elapsed());
        let mut changed = spec.clone();
        changed.listeners[0].members[1].weight = 2 + i;
        let t = Instant::now();
        lbs.ensure(bed.lb, &changed).await.expect("reload");
        reload.push(t.elapsed());
        lbs.delete(bed.lb).await.expect("delete");
    }
    for (what, mut v) in [
        ("new (namespace + start)", first),
        ("unchanged", same),
        ("changed (reload)", reload),
    ] {
        v.sort();
        println!(
            "{what}: median {:?}, max {:?}",
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
}
