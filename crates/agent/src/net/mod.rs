//! The host's data plane: the VPCs, NICs and security-group rule set the control plane
//! wants here ([`NetworkState`]), made real with what the kernel and Debian already have —
//! a Linux bridge per VPC, a VXLAN device joining it to the same VPC on the other hosts
//! (unicast head-end replication: one all-zero FDB entry per peer, no multicast), dnsmasq
//! in a namespace per VPC serving DHCP with the platform's fixed addresses, a tap per NIC
//! and the nftables rule set loaded atomically.
//!
//! Every apply is an "ensure": it reads what the kernel has (links, FDB entries,
//! addresses, the dnsmasq pid file), changes only what differs and removes what is no
//! longer wanted, so repeating it is harmless and an agent restarting adopts what is
//! there (the last applied state is kept in `<data dir>/net/state.json` and applied again
//! at start). Nothing here touches a running guest except through QEMU's hot-plug.
//!
//! The VPC's DHCP namespace also holds each subnet's gateway address, with the same MAC
//! on every host; its port on the bridge and the VXLAN port are both *isolated* bridge
//! ports, so each host's DHCP server and gateway answer only the guests on that host.
//! It routes between the VPC's subnets: on its own host through the bridge, to the other
//! hosts over the VPC's transit link ([`transit`]).
//!
//! With [`DataPlane::new`]'s `netns` set, everything lives in that network namespace
//! (and QEMU is started inside it): two agents on one machine are then two hosts whose
//! namespaces a veth pair joins like a wire (the tests).
//!
//! Outbound access and elastic IPs are [`nat`]'s; the conntrack zone of each VPC's bridged
//! traffic and the flush of an elastic IP's flows are [`conntrack`]'s.

pub mod conntrack;
pub mod names;
pub mod nat;
pub mod transit;

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;
use zy_compute::agent::{NetworkReport, NetworkState, NicCounters, NicWire, VpcWire};

/// The UDP port of the VXLAN tunnels (IANA).
pub const VXLAN_PORT: &str = "4789";
/// Bytes VXLAN adds to each frame on an IPv4 underlay; guests are told the smaller MTU.
const VXLAN_OVERHEAD: u32 = 50;
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The push is older than what was applied (the control plane's answer: 409).
    #[error("network generation {got} is older than the applied {applied}")]
    Stale { got: i64, applied: i64 },
    #[error("invalid network state: {0}")]
    Invalid(String),
    #[error("{0}")]
    Command(String),
}

pub struct DataPlane {
    /// The namespace everything lives in (`None`: the host's own).
    netns: Option<String>,
    /// This host's tunnel address.
    underlay: Option<Ipv4Addr>,
    /// Prefix of the DHCP namespaces' names (the agent's namespace, when it has one).
    prefix: String,
    dir: PathBuf,
    applied: tokio::sync::Mutex<NetworkState>,
}

impl DataPlane {
    pub fn new(data_dir: &Path, netns: Option<String>, underlay: Option<Ipv4Addr>) -> Self {
        let dir = data_dir.join("net");
        let prefix = netns.as_ref().map(|n| format!("{n}-")).unwrap_or_default();
        let applied = std::fs::read(dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        DataPlane {
            netns,
            underlay,
            prefix,
            dir,
            applied: tokio::sync::Mutex::new(applied),
        }
    }

    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    pub fn underlay(&self) -> Option<Ipv4Addr> {
        self.underlay
    }

    /// The NICs of one instance in the applied state, in their order on the instance.
    pub async fn nics_of(&self, instance: uuid::Uuid) -> Vec<NicWire> {
        let mut v: Vec<NicWire> = self
            .applied
            .lock()
            .await
            .nics
            .iter()
            .filter(|n| n.instance_id == instance)
            .cloned()
            .collect();
        v.sort_by_key(|n| (n.index, n.id));
        v
    }

    pub async fn generation(&self) -> i64 {
        self.applied.lock().await.generation
    }

    /// Applies the state kept from before a restart (adoption).
    pub async fn adopt(&self) -> Result<(), NetError> {
        let st = self.applied.lock().await.clone();
        if st.generation == 0 {
            return Ok(());
        }
        self.apply(st).await.map(|_| ())
    }

    /// Brings the host to `want`; refuses a generation older than the applied one.
    pub async fn apply(&self, want: NetworkState) -> Result<NetworkReport, NetError> {
        validate(&want)?;
        nat::validate(&want)?;
        let mut applied = self.applied.lock().await;
        if want.generation < applied.generation {
            return Err(NetError::Stale {
                got: want.generation,
                applied: applied.generation,
            });
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| NetError::Command(format!("cannot create {}: {e}", self.dir.display())))?;
        self.prepare().await;
        let links = self.links().await?;
        let wanted_vnis: BTreeSet<u32> = want.vpcs.iter().map(|v| v.vni).collect();
        for v in &want.vpcs {
            self.ensure_vpc(v, &links).await?;
        }
        let wanted_taps: BTreeMap<String, &NicWire> =
            want.nics.iter().map(|n| (names::tap(n.id), n)).collect();
        for (tap, n) in &wanted_taps {
            let br = names::bridge(n.vni);
            if !links.contains_key(tap) {
                self.ip(&["tuntap", "add", tap, "mode", "tap"]).await?;
            }
            if links.get(tap).and_then(|l| l.master.as_deref()) != Some(br.as_str()) {
                self.ip(&["link", "set", tap, "master", &br]).await?;
            }
            self.ip(&["link", "set", tap, "up"]).await?;
        }
        // The rule set before removals: a NIC going away is dropped from it first.
        self.load_ruleset(&want.ruleset).await?;
        self.ensure_zones(&want).await?;
        self.ensure_nat(&want, applied.external.as_ref()).await?;
        self.flush_eips(&applied, &want).await;
        for name in links.keys() {
            let gone = if name.starts_with("zt") {
                !wanted_taps.contains_key(name)
            } else if name.starts_with("zr") {
                // A transit device lives in its VPC's namespace: here it is a leftover.
                true
            } else {
                ["zb", "zx", "zv", "ze"]
                    .iter()
                    .any(|p| names::vni_of(name, p).is_some_and(|vni| !wanted_vnis.contains(&vni)))
            };
            if gone && name.starts_with("zt") {
                // Gone once QEMU lets go of it (after the hot-unplug).
                self.ip(&["tuntap", "del", "dev", name, "mode", "tap"])
                    .await
                    .ok();
            } else if gone {
                self.ip(&["link", "del", name]).await.ok();
            }
        }
        for vni in self.ns_vnis().await {
            if !wanted_vnis.contains(&vni) {
                self.stop_ns(vni).await;
            }
        }
        let bytes = serde_json::to_vec(&want).map_err(|e| NetError::Invalid(e.to_string()))?;
        let tmp = self.dir.join("state.json.tmp");
        tokio::fs::write(&tmp, &bytes)
            .await
            .and(tokio::fs::rename(&tmp, self.dir.join("state.json")).await)
            .map_err(|e| NetError::Command(format!("cannot keep the network state: {e}")))?;
        *applied = want;
        let nics = applied.nics.clone();
        drop(applied);
        Ok(NetworkReport {
            generation: self.generation().await,
            nics: self.counters(&nics).await,
        })
    }

    /// The applied generation and the NICs' counters.
    pub async fn report(&self) -> NetworkReport {
        let st = self.applied.lock().await.clone();
        NetworkReport {
            generation: st.generation,
            nics: self.counters(&st.nics).await,
        }
    }

    /// Bridged IPv4 through nftables' `inet` hooks (`br_netfilter`), once per apply (cheap).
    async fn prepare(&self) {
        let _ = run("modprobe", &["br_netfilter"]).await;
        let _ = self
            .exec("sysctl", &["-qw", "net.bridge.bridge-nf-call-iptables=1"])
            .await;
    }

    async fn ensure_vpc(
        &self,
        v: &VpcWire,
        links: &BTreeMap<String, Link>,
    ) -> Result<(), NetError> {
        let (br, vx) = (names::bridge(v.vni), names::vxlan(v.vni));
        if !links.contains_key(&br) {
            self.ip(&["link", "add", &br, "type", "bridge"]).await?;
        }
        self.ip(&["link", "set", &br, "up"]).await?;
        if let Some(local) = self.underlay {
            if !links.contains_key(&vx) {
                let vni = v.vni.to_string();
                let local = local.to_string();
                self.ip(&[
                    "link", "add", &vx, "type", "vxlan", "id", &vni, "local", &local, "dstport",
                    VXLAN_PORT,
                ])
                .await?;
            }
            if links.get(&vx).and_then(|l| l.master.as_deref()) != Some(br.as_str()) {
                self.ip(&["link", "set", &vx, "master", &br]).await?;
            }
            self.ip(&["link", "set", &vx, "up"]).await?;
            self.bridge(&["link", "set", "dev", &vx, "isolated", "on"])
                .await?;
            self.ensure_peers(&vx, &v.peers).await?;
        }
        // The namespace serves DHCP, routes between the subnets (to the other hosts over
        // the transit link) and routes the VPC out (its uplink: `nat`).
        let dhcp = v.subnets.iter().any(|s| s.dhcp);
        if !dhcp && !routes(v) {
            self.stop_ns(v.vni).await;
            return Ok(());
        }
        self.ensure_ns(v, links).await?;
        if dhcp {
            self.ensure_dhcp(v).await?;
        } else {
            self.stop_dhcp(v.vni).await;
        }
        self.ensure_transit(v).await
    }

    /// One all-zero FDB entry per peer (broadcast, unknown unicast and multicast go to
    /// each), nothing else of ours.
    async fn ensure_peers(&self, vx: &str, peers: &[String]) -> Result<(), NetError> {
        #[derive(Deserialize)]
        struct Fdb {
            mac: String,
            #[serde(default)]
            dst: Option<String>,
        }
        let out = self.bridge(&["-j", "fdb", "show", "dev", vx]).await?;
        let have: BTreeSet<String> = serde_json::from_str::<Vec<Fdb>>(&out)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.mac == "00:00:00:00:00:00")
            .filter_map(|f| f.dst)
            .collect();
        let want: BTreeSet<String> = peers.iter().cloned().collect();
        for p in want.difference(&have) {
            self.bridge(&["fdb", "append", "00:00:00:00:00:00", "dev", vx, "dst", p])
                .await?;
        }
        for p in have.difference(&want) {
            self.bridge(&["fdb", "del", "00:00:00:00:00:00", "dev", vx, "dst", p])
                .await
                .ok();
        }
        Ok(())
    }

    /// The VPC's namespace on the bridge, holding the gateway addresses of its DHCP
    /// subnets (of all its subnets when it routes them out).
    async fn ensure_ns(&self, v: &VpcWire, links: &BTreeMap<String, Link>) -> Result<(), NetError> {
        let vni = v.vni;
        let ns = names::dhcp_ns(&self.prefix, vni);
        let (port, inside, br) = (
            names::dhcp_port(vni),
            names::dhcp_inside(vni),
            names::bridge(vni),
        );
        if !Path::new("/run/netns").join(&ns).exists() {
            run("ip", &["netns", "add", &ns]).await?;
        }
        if !links.contains_key(&port) {
            // A half-made pair from an interrupted apply: its other end went with it.
            self.ip(&[
                "link", "add", &port, "type", "veth", "peer", "name", &inside, "netns", &ns,
            ])
            .await?;
        }
        self.ip(&["link", "set", &port, "master", &br]).await?;
        self.ip(&["link", "set", &port, "up"]).await?;
        self.bridge(&["link", "set", "dev", &port, "isolated", "on"])
            .await?;
        let mac = names::gateway_mac(vni);
        run("ip", &["-n", &ns, "link", "set", "lo", "up"]).await?;
        run("ip", &["-n", &ns, "link", "set", &inside, "address", &mac]).await?;
        run("ip", &["-n", &ns, "link", "set", &inside, "up"]).await?;
        // The gateway addresses of the DHCP subnets (all when routing), nothing else.
        let want: BTreeSet<String> = v
            .subnets
            .iter()
            .filter(|s| s.dhcp || routes(v))
            .filter_map(|s| {
                let prefix = s.cidr.split_once('/')?.1;
                Some(format!("{}/{prefix}", s.gateway))
            })
            .collect();
        let have = addresses(&ns, &inside).await;
        for a in want.difference(&have) {
            run("ip", &["-n", &ns, "addr", "add", a, "dev", &inside]).await?;
        }
        for a in have.difference(&want) {
            run("ip", &["-n", &ns, "addr", "del", a, "dev", &inside])
                .await
                .ok();
        }
        if routes(v) {
            // No ICMP redirects: the subnets share the one interface, and a guest told to
            // reach another subnet directly would bypass the namespace (and its NAT).
            // (Sent when `all` or the interface says so: both are turned off.)
            let redirects = format!("net.ipv4.conf.{inside}.send_redirects=0");
            sysctl_in(
                &ns,
                &[
                    "net.ipv4.ip_forward=1",
                    "net.ipv4.conf.all.send_redirects=0",
                    &redirects,
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// dnsmasq in the VPC's namespace (made by [`Self::ensure_ns`]).
    async fn ensure_dhcp(&self, v: &VpcWire) -> Result<(), NetError> {
        let vni = v.vni;
        let ns = names::dhcp_ns(&self.prefix, vni);
        let inside = names::dhcp_inside(vni);
        // The configuration and the fixed addresses.
        let mtu = 1500 - VXLAN_OVERHEAD;
        let conf_path = self.dir.join(format!("zd{vni}.conf"));
        let hosts_path = self.dir.join(format!("zd{vni}.hosts"));
        let pid_path = self.dir.join(format!("zd{vni}.pid"));
        let mut conf = format!(
            "# zhengyun: DHCP of VNI {vni} (written by the agent)\n\
             port=0\nno-resolv\nno-hosts\nbind-interfaces\ninterface={inside}\n\
             leasefile-ro\ndhcp-authoritative\ndhcp-hostsfile={}\npid-file={}\n\
             dhcp-option=option:mtu,{mtu}\n",
            hosts_path.display(),
            pid_path.display()
        );
        for (i, s) in v.subnets.iter().filter(|s| s.dhcp).enumerate() {
            let Some((net, prefix)) = s.cidr.split_once('/') else {
                continue;
            };
            let prefix: u32 = prefix.parse().unwrap_or(24);
            let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0));
            conf.push_str(&format!(
                "dhcp-range=set:s{i},{net},static,{mask},12h\ndhcp-option=tag:s{i},option:router,{}\n",
                s.gateway
            ));
            if !s.dns_servers.is_empty() {
                conf.push_str(&format!(
                    "dhcp-option=tag:s{i},option:dns-server,{}\n",
                    s.dns_servers.join(",")
                ));
            }
        }
        let mut hosts = String::new();
        for s in v.subnets.iter().filter(|s| s.dhcp) {
            for h in &s.hosts {
                hosts.push_str(&format!("{},{}\n", h.mac, h.ip));
            }
        }
        let conf_changed = write_if_changed(&conf_path, &conf).await?;
        let hosts_changed = write_if_changed(&hosts_path, &hosts).await?;
        match dnsmasq_pid(&pid_path, &conf_path).await {
            Some(pid) if !conf_changed => {
                if hosts_changed {
                    // dnsmasq reads its hosts file again on SIGHUP.
                    run("kill", &["-HUP", &pid.to_string()]).await?;
                }
            }
            running => {
                if let Some(pid) = running {
                    run("kill", &[&pid.to_string()]).await.ok();
                    wait_gone(pid).await;
                }
                let conf_arg = format!("--conf-file={}", conf_path.display());
                run("ip", &["netns", "exec", &ns, "dnsmasq", &conf_arg]).await?;
            }
        }
        Ok(())
    }

    /// Stops the VPC's dnsmasq (the namespace stays).
    async fn stop_dhcp(&self, vni: u32) {
        let pid_path = self.dir.join(format!("zd{vni}.pid"));
        let conf_path = self.dir.join(format!("zd{vni}.conf"));
        if let Some(pid) = dnsmasq_pid(&pid_path, &conf_path).await {
            run("kill", &[&pid.to_string()]).await.ok();
            wait_gone(pid).await;
        }
        for f in [
            &pid_path,
            &conf_path,
            &self.dir.join(format!("zd{vni}.hosts")),
        ] {
            let _ = tokio::fs::remove_file(f).await;
        }
    }

    /// Stops the VPC's dnsmasq and removes its namespace (with the uplink's inner end).
    async fn stop_ns(&self, vni: u32) {
        self.stop_dhcp(vni).await;
        let _ = tokio::fs::remove_file(self.dir.join(format!("zd{vni}.nat.nft"))).await;
        let ns = names::dhcp_ns(&self.prefix, vni);
        if Path::new("/run/netns").join(&ns).exists() {
            run("ip", &["netns", "del", &ns]).await.ok();
        }
    }

    /// The VNIs that have a namespace or a DHCP configuration of ours on this host.
    async fn ns_vnis(&self) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        let own = format!("{}zd", self.prefix);
        if let Ok(mut rd) = tokio::fs::read_dir("/run/netns").await {
            while let Ok(Some(e)) = rd.next_entry().await {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(vni) = n.strip_prefix(&own).and_then(|v| v.parse().ok()) {
                    out.insert(vni);
                }
            }
        }
        if let Ok(mut rd) = tokio::fs::read_dir(&self.dir).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(vni) = n
                    .strip_prefix("zd")
                    .and_then(|r| r.strip_suffix(".conf"))
                    .and_then(|v| v.parse().ok())
                {
                    out.insert(vni);
                }
            }
        }
        out
    }

    async fn load_ruleset(&self, ruleset: &str) -> Result<(), NetError> {
        if ruleset.trim().is_empty() {
            return Ok(());
        }
        let path = self.dir.join("ruleset.nft");
        tokio::fs::write(&path, ruleset)
            .await
            .map_err(|e| NetError::Command(format!("cannot write the rule set: {e}")))?;
        let p = path.to_string_lossy().into_owned();
        self.exec("nft", &["-f", &p]).await.map(|_| ())
    }

    /// Removes everything this data plane made (tests and decommissioning).
    pub async fn teardown(&self) {
        let generation = self.generation().await;
        let _ = self
            .apply(NetworkState {
                generation,
                ..Default::default()
            })
            .await;
        let _ = self
            .exec("nft", &["delete", "table", "inet", "zhengyun"])
            .await;
        let _ = self
            .exec("nft", &["delete", "table", "bridge", "zhengyun"])
            .await;
    }

    async fn counters(&self, nics: &[NicWire]) -> Vec<NicCounters> {
        let drops = self.drop_counters().await;
        let mut out = Vec::with_capacity(nics.len());
        for n in nics {
            let tap = names::tap(n.id);
            let tag = &tap[2..];
            let stat = |f: &'static str| {
                let tap = tap.clone();
                async move { self.stat(&tap, f).await }
            };
            // The tap's rx is what the guest sent; the guest's view is the other way round.
            out.push(NicCounters {
                id: n.id,
                instance_id: n.instance_id,
                dropped_packets: drops.get(tag).copied().unwrap_or(0),
                rx_bytes: stat("tx_bytes").await,
                tx_bytes: stat("rx_bytes").await,
                rx_packets: stat("tx_packets").await,
                tx_packets: stat("rx_packets").await,
            });
        }
        out
    }

    async fn stat(&self, link: &str, field: &str) -> u64 {
        let path = format!("/sys/class/net/{link}/statistics/{field}");
        let text = match &self.netns {
            // /sys shows the reader's namespace: read it from inside.
            Some(_) => self.exec("cat", &[&path]).await.unwrap_or_default(),
            None => tokio::fs::read_to_string(&path).await.unwrap_or_default(),
        };
        text.trim().parse().unwrap_or(0)
    }

    /// `drop_<tag>` counters of the rule set, by tag.
    async fn drop_counters(&self) -> BTreeMap<String, u64> {
        let out = self
            .exec(
                "nft",
                &["-j", "list", "counters", "table", "inet", "zhengyun"],
            )
            .await
            .unwrap_or_default();
        parse_counters(&out)
    }

    async fn links(&self) -> Result<BTreeMap<String, Link>, NetError> {
        let out = self.ip(&["-j", "link", "show"]).await?;
        let v: Vec<Link> = serde_json::from_str(&out)
            .map_err(|e| NetError::Command(format!("ip -j link show: {e}")))?;
        Ok(v.into_iter()
            .filter(|l| {
                ["zb", "zx", "zv", "ze", "zt", "zr"]
                    .iter()
                    .any(|p| l.ifname.starts_with(p))
            })
            .map(|l| (l.ifname.clone(), l))
            .collect())
    }

    async fn ip(&self, args: &[&str]) -> Result<String, NetError> {
        let mut a: Vec<&str> = Vec::new();
        if let Some(ns) = &self.netns {
            a.extend(["-n", ns.as_str()]);
        }
        a.extend(args);
        run("ip", &a).await
    }

    async fn bridge(&self, args: &[&str]) -> Result<String, NetError> {
        let mut a: Vec<&str> = Vec::new();
        if let Some(ns) = &self.netns {
            a.extend(["-n", ns.as_str()]);
        }
        a.extend(args);
        run("bridge", &a).await
    }

    /// A program run inside the data plane's namespace.
    async fn exec(&self, program: &str, args: &[&str]) -> Result<String, NetError> {
        match &self.netns {
            Some(ns) => {
                let mut a = vec!["netns", "exec", ns.as_str(), program];
                a.extend(args);
                run("ip", &a).await
            }
            None => run(program, args).await,
        }
    }
}

/// Whether the VPC's namespace routes (and so holds every subnet's gateway): out through
/// its uplink, to its NICs on other hosts, or between its subnets here.
fn routes(v: &VpcWire) -> bool {
    v.nat.is_some() || !v.remote.is_empty() || v.subnets.len() > 1
}

#[derive(Debug, Deserialize)]
struct Link {
    ifname: String,
    #[serde(default)]
    master: Option<String>,
}

fn validate(st: &NetworkState) -> Result<(), NetError> {
    let mut vnis = BTreeSet::new();
    for v in &st.vpcs {
        if v.vni == 0 || v.vni > names::MAX_VPC_VNI || !vnis.insert(v.vni) {
            return Err(NetError::Invalid(format!(
                "VNI {} is out of range or repeated",
                v.vni
            )));
        }
        for p in &v.peers {
            p.parse::<Ipv4Addr>()
                .map_err(|_| NetError::Invalid(format!("peer {p:?} is not an IPv4 address")))?;
        }
        for r in &v.remote {
            if r.ip.parse::<Ipv4Addr>().is_err() || r.host.parse::<Ipv4Addr>().is_err() {
                return Err(NetError::Invalid(format!(
                    "remote NIC {:?} on {:?} is malformed",
                    r.ip, r.host
                )));
            }
        }
        for s in &v.subnets {
            let ok = s.cidr.split_once('/').is_some_and(|(a, p)| {
                a.parse::<Ipv4Addr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 32)
            }) && s.gateway.parse::<Ipv4Addr>().is_ok()
                && s.dns_servers.iter().all(|d| d.parse::<Ipv4Addr>().is_ok())
                && s.hosts
                    .iter()
                    .all(|h| h.ip.parse::<Ipv4Addr>().is_ok() && valid_mac(&h.mac));
            if !ok {
                return Err(NetError::Invalid(format!("subnet {} is malformed", s.cidr)));
            }
        }
    }
    for n in &st.nics {
        if !vnis.contains(&n.vni) || !valid_mac(&n.mac) {
            return Err(NetError::Invalid(format!(
                "NIC {} names VNI {} without its VPC, or a malformed MAC",
                n.id, n.vni
            )));
        }
    }
    Ok(())
}

fn valid_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `nft -j list counters` output → packets of each `drop_<tag>` counter.
pub fn parse_counters(json: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return out;
    };
    for item in v["nftables"].as_array().into_iter().flatten() {
        let c = &item["counter"];
        if let (Some(name), Some(packets)) = (c["name"].as_str(), c["packets"].as_u64()) {
            if let Some(tag) = name.strip_prefix("drop_") {
                out.insert(tag.to_string(), packets);
            }
        }
    }
    out
}

async fn addresses(ns: &str, dev: &str) -> BTreeSet<String> {
    #[derive(Deserialize)]
    struct Addr {
        family: String,
        local: String,
        prefixlen: u8,
    }
    #[derive(Deserialize)]
    struct Dev {
        addr_info: Vec<Addr>,
    }
    let out = run("ip", &["-n", ns, "-j", "addr", "show", "dev", dev])
        .await
        .unwrap_or_default();
    serde_json::from_str::<Vec<Dev>>(&out)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|d| d.addr_info)
        .filter(|a| a.family == "inet")
        .map(|a| format!("{}/{}", a.local, a.prefixlen))
        .collect()
}

/// Kernel settings (`key=value`) inside namespace `ns`.
async fn sysctl_in(ns: &str, settings: &[&str]) -> Result<(), NetError> {
    let mut a = vec!["netns", "exec", ns, "sysctl", "-qw"];
    a.extend(settings);
    run("ip", &a).await.map(|_| ())
}

async fn write_if_changed(path: &Path, text: &str) -> Result<bool, NetError> {
    if tokio::fs::read_to_string(path).await.ok().as_deref() == Some(text) {
        return Ok(false);
    }
    tokio::fs::write(path, text)
        .await
        .map_err(|e| NetError::Command(format!("cannot write {}: {e}", path.display())))?;
    Ok(true)
}

/// The pid of the dnsmasq serving `conf`, when it runs.
async fn dnsmasq_pid(pid_file: &Path, conf: &Path) -> Option<u32> {
    let pid: u32 = tokio::fs::read_to_string(pid_file)
        .await
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("dnsmasq") && cmdline.contains(&*conf.to_string_lossy())).then_some(pid)
}

async fn wait_gone(pid: u32) {
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    run_codes(program, args, &[0]).await
}

/// [`run`] taking the exit codes in `ok` as success (tools that exit 1 for "nothing
/// matched" or "no answer").
async fn run_codes(program: &str, args: &[&str], ok: &[i32]) -> Result<String, NetError> {
    let out = tokio::time::timeout(
        TOOL_TIMEOUT,
        Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| NetError::Command(format!("{program} {} timed out", args.join(" "))))?
    .map_err(|e| NetError::Command(format!("cannot run {program}: {e}")))?;
    if !out.status.code().is_some_and(|c| ok.contains(&c)) {
        return Err(NetError::Command(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counters_are_read_from_nft_json() {
        let j = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"counter": {"family": "inet", "name": "drop_0123456789a", "table": "zhengyun", "handle": 3, "packets": 7, "bytes": 420}},
            {"counter": {"family": "inet", "name": "other", "table": "zhengyun", "handle": 4, "packets": 1, "bytes": 1}}]}"#;
        let c = parse_counters(j);
        assert_eq!(c.get("0123456789a"), Some(&7));
        assert_eq!(c.len(), 1);
        assert!(parse_counters("not json").is_empty());
    }

    #[test]
    fn malformed_states_are_refused_before_touching_the_kernel() {
        let nic = |vni| NicWire {
            id: uuid::Uuid::now_v7(),
            instance_id: uuid::Uuid::now_v7(),
            vni,
            mac: "fa:16:5a:00:00:01".into(),
            ip: "10.0.0.2".into(),
            index: 0,
        };
        let vpc = |vni| VpcWire {
            vni,
            peers: vec!["192.0.2.1".into()],
            subnets: vec![],
            nat: None,
            remote: vec![],
        };
        let ok = NetworkState {
            generation: 1,
            vpcs: vec![vpc(4096)],
            nics: vec![nic(4096)],
            ruleset: String::new(),
            external: None,
        };
        assert!(validate(&ok).is_ok());
        let mut bad = ok.clone();
        bad.nics = vec![nic(4097)];
        assert!(validate(&bad).is_err());
        let mut bad = ok.clone();
        bad.vpcs.push(vpc(4096));
        assert!(validate(&bad).is_err());
        let mut bad = ok.clone();
        bad.vpcs[0].peers = vec!["host; rm -rf /".into()];
        assert!(validate(&bad).is_err());
        let mut bad = ok.clone();
        bad.vpcs[0].remote = vec![zy_compute::agent::RemoteNicWire {
            ip: "10.0.1.2".into(),
            host: "192.0.2.2 dev lo".into(),
        }];
        assert!(validate(&bad).is_err());
        let mut bad = ok.clone();
        bad.vpcs[0].vni = names::transit_vni(4096);
        assert!(validate(&bad).is_err(), "a VPC on a transit link's VNI");
        let mut bad = ok;
        bad.nics[0].mac = "zz".into();
        assert!(validate(&bad).is_err());
    }
}
