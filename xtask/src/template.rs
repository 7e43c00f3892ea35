//! `cargo xtask template [--out DIR] [--force]`: builds the `zy-busybox` guest template
//! that the QEMU layer (`crates/qemu`) boots: Debian's cloud kernel, an initramfs with a
//! static busybox, the few kernel modules a virtio guest needs and our own `/init`, and a
//! small ext4 root disk as qcow2. Nothing is installed into the host but the tools the
//! build needs (apt packages); the kernel and busybox packages are only downloaded and
//! unpacked. A build whose inputs did not change is skipped.
//!
//! The guest's contract with the platform (what `zy_qemu` relies on):
//! - hostname from fw_cfg `opt/zhengyun/hostname` (or `zy.hostname=` on the command line);
//! - user data from fw_cfg `opt/zhengyun/user-data`, a shell script run in the background;
//! - on the serial console: `ZHENGYUN-READY hostname=<name> disk_bytes=<n> boot=<count>`
//!   once booted, `ZY-BLOCK add|remove|resize <dev> …` when virtio disks change, and
//!   `ZHENGYUN-POWEROFF` when the ACPI power button is pressed, after which it powers off.
//! - DHCP on every NIC, hot-plugged ones included (checked every second), and
//!   `ZY-NET <interface> ip=<address>` on the console once it has a lease.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the guest's files change in a way the stamp below cannot see.
const BUILDER_VERSION: &str = "zy-busybox/1";
const TEMPLATE_NAME: &str = "zy-busybox";
/// Virtual size of the root disk in GiB (the smallest `disk_gib` an instance can have).
const ROOT_DISK_GIB: u64 = 1;
/// Modules the guest loads (with their dependencies, resolved from each module's
/// `.modinfo`). Everything else it needs (ext4, serial, PCI hot-plug) is built in.
const WANTED_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "qemu_fw_cfg",
    "button",
    "evdev",
];

const INIT: &str = r#"#!/bin/sh
# zhengyun guest init (template zy-busybox). Runs as PID 1 from the initramfs.
export PATH=/bin
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /run /tmp /data
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/zy-modules); do insmod /lib/modules/$m.ko 2>/dev/null; done

fwcfg() { f=/sys/firmware/qemu_fw_cfg/by_name/opt/zhengyun/$1/raw; [ -r "$f" ] && cat "$f"; }

h=$(fwcfg hostname)
if [ -z "$h" ]; then
  for a in $(cat /proc/cmdline); do case "$a" in zy.hostname=*) h=${a#zy.hostname=};; esac; done
fi
[ -n "$h" ] || h=zy-guest
hostname "$h"
echo "$h" > /etc/hostname

# The root disk: wait a little for the virtio disk, mount it, count boots on it.
i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
disk=0; boot=0
if [ -b /dev/vda ]; then
  disk=$(( $(cat /sys/block/vda/size) * 512 ))
  if mount -t ext4 /dev/vda /data 2>/dev/null; then
    boot=$(( $(cat /data/boot-count 2>/dev/null || echo 0) + 1 ))
    echo $boot > /data/boot-count
    sync
  fi
fi

# ACPI power button -> clean power-off.
mkdir -p /etc/acpi
cat > /etc/acpi/PWRF <<'EOF'
#!/bin/sh
exec >/dev/console 2>&1
echo "ZHENGYUN-POWEROFF hostname=$(hostname)"
sync
umount /data 2>/dev/null
poweroff -f
EOF
chmod +x /etc/acpi/PWRF
echo "PWRF PWRF" > /etc/acpid.conf
acpid -c /etc/acpi -a /etc/acpid.conf -l /dev/null

# Report virtio disks as they come, go and change size.
mkdir -p /run/blk
blkscan() {
  for p in /sys/block/vd*; do
    [ -e "$p" ] || continue
    d=${p##*/}; s=$(( $(cat $p/size) * 512 ))
    if [ ! -f /run/blk/$d ]; then echo "ZY-BLOCK add $d bytes=$s"
    elif [ "$(cat /run/blk/$d)" != "$s" ]; then echo "ZY-BLOCK resize $d bytes=$s"; fi
    echo $s > /run/blk/$d
  done
  for f in /run/blk/*; do
    [ -e "$f" ] || continue
    d=${f##*/}
    [ -e /sys/block/$d ] || { echo "ZY-BLOCK remove $d"; rm -f $f; }
  done
}
blkscan

# DHCP on every NIC, also on those hot-plugged later (user-mode network or a VPC's).
cat > /etc/udhcpc.script <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev $interface
    ip addr add $ip/${mask:-24} dev $interface
    [ -n "$mtu" ] && ip link set dev $interface mtu $mtu
    [ -n "$router" ] && ip route replace default via ${router%% *} dev $interface
    echo "ZY-NET $interface ip=$ip"
    ;;
esac
EOF
chmod +x /etc/udhcpc.script
echo "ZHENGYUN-READY hostname=$h disk_bytes=$disk boot=$boot"

ip link set lo up
mkdir -p /run/net
netscan() {
  for p in /sys/class/net/eth*; do
    [ -e "$p" ] || continue
    d=${p##*/}
    [ -f /run/net/$d ] && continue
    : > /run/net/$d
    ip link set $d up
    udhcpc -i $d -s /etc/udhcpc.script -t 10 -T 1 -A 1 -b -O mtu >/dev/console 2>&1
  done
  for f in /run/net/*; do
    [ -e "$f" ] || continue
    [ -e /sys/class/net/${f##*/} ] || rm -f $f
  done
}
netscan

if fwcfg user-data > /run/user-data; then
  echo "ZY-USERDATA started"
  sh /run/user-data </dev/null >/dev/console 2>&1 &
fi

while :; do blkscan; netscan; sleep 1; done
"#;

/// `cargo xtask template` entry point.
pub fn run(args: &[String]) -> bool {
    let mut out = crate::root().join("target/zy-template");
    let mut force = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => match it.next() {
                Some(d) => out = PathBuf::from(d),
                None => {
                    eprintln!("--out needs a directory");
                    return false;
                }
            },
            "--force" => force = true,
            other => {
                eprintln!(
                    "unknown argument {other}; usage: cargo xtask template [--out DIR] [--force]"
                );
                return false;
            }
        }
    }
    let started = Instant::now();
    match build(&out, force) {
        Ok(built) => {
            eprintln!(
                "template {TEMPLATE_NAME} {} in {}: {:.1} s",
                if built { "built" } else { "up to date" },
                out.display(),
                started.elapsed().as_secs_f64()
            );
            true
        }
        Err(e) => {
            eprintln!("template build failed: {e}");
            false
        }
    }
}

type Res<T> = Result<T, String>;

fn io<T>(what: impl std::fmt::Display, r: std::io::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Runs a command and returns its standard output, or an error with its standard error.
fn output(c: &mut Command) -> Res<String> {
    let o = c.output().map_err(|e| format!("cannot run {c:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{c:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs the Debian packages that provide the missing tools. Two passes: installing
/// qemu-system-x86 may replace a newer qemu-utils by nothing, so look again afterwards.
fn ensure_tools() -> Res<()> {
    let needed = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("mke2fs", "e2fsprogs"),
        ("dpkg-deb", "dpkg"),
        ("sha256sum", "coreutils"),
    ];
    let mut updated = false;
    for _ in 0..2 {
        let missing: Vec<&str> = needed
            .iter()
            .filter(|(bin, _)| !have(bin))
            .map(|(_, pkg)| *pkg)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        eprintln!("installing {}", missing.join(" "));
        if !updated {
            output(Command::new("apt-get").args(["update", "-q"]))?;
            updated = true;
        }
        let install = || {
            output(
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "--no-install-recommends"])
                    .args(&missing)
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
        };
        if let Err(e) = install() {
            // A previous install may have left half-upgraded packages; repair and retry.
            eprintln!("{e}; repairing apt's state and retrying");
            output(
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "-f"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
            install()?;
        }
    }
    match needed.iter().find(|(bin, _)| !have(bin)) {
        Some((bin, pkg)) => Err(format!("{bin} still missing after installing {pkg}")),
        None => Ok(()),
    }
}

/// The concrete kernel package behind `linux-image-cloud-amd64` and the candidate
/// versions of it and of busybox-static, asking apt (updating its lists once if empty).
fn packages() -> Res<(String, String, String)> {
    let resolve = || -> Res<(String, String, String)> {
        let deps = output(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
        let kernel = deps
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-"))
            .map(str::to_string)
            .ok_or("linux-image-cloud-amd64 has no linux-image dependency")?;
        let kver = candidate(&kernel)?;
        let bver = candidate("busybox-static")?;
        let id = format!("{kernel}={kver}");
        Ok((kernel, id, format!("busybox-static={bver}")))
    };
    match resolve() {
        Ok(r) => Ok(r),
        Err(_) => {
            output(Command::new("apt-get").args(["update", "-q"]))?;
            resolve()
        }
    }
}

fn candidate(pkg: &str) -> Res<String> {
    let p = output(Command::new("apt-cache").args(["policy", pkg]))?;
    p.lines()
        .filter_map(|l| l.trim().strip_prefix("Candidate: "))
        .find(|v| *v != "(none)")
        .map(str::to_string)
        .ok_or_else(|| format!("apt knows no candidate for {pkg}"))
}

fn build(out: &Path, force: bool) -> Res<bool> {
    ensure_tools()?;
    let (kernel_pkg, kernel_id, busybox_id) = packages()?;
    let stamp = format!(
        "{BUILDER_VERSION}\n{kernel_id}\n{busybox_id}\n{}\n{INIT}",
        WANTED_MODULES.join(",")
    );
    let stamp_path = out.join(".stamp");
    let files = ["vmlinuz", "initrd.img", "root.qcow2", "template.json"];
    if !force
        && fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str())
        && files.iter().all(|f| out.join(f).is_file())
    {
        return Ok(false);
    }

    let work = out.join(".work");
    let _ = fs::remove_dir_all(&work);
    io("create work dir", fs::create_dir_all(work.join("debs")))?;
    // apt's download sandbox user must be able to write here.
    let _ = Command::new("chmod")
        .arg("777")
        .arg(work.join("debs"))
        .status();
    eprintln!("downloading {kernel_id} {busybox_id}");
    output(
        Command::new("apt-get")
            .current_dir(work.join("debs"))
            .args(["download", "-q", &kernel_id, &busybox_id]),
    )?;
    for entry in io("list debs", fs::read_dir(work.join("debs")))? {
        let p = io("list debs", entry)?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let dest = if name.starts_with("linux-image") {
            work.join("kernel")
        } else {
            work.join("busybox")
        };
        output(Command::new("dpkg-deb").arg("-x").arg(&p).arg(&dest))?;
    }
    let kver = kernel_pkg.trim_start_matches("linux-image-").to_string();
    let modroot = work.join("kernel/lib/modules").join(&kver);

    // Kernel.
    let vmlinuz = work.join("kernel/boot").join(format!("vmlinuz-{kver}"));
    io("create output dir", fs::create_dir_all(out))?;
    io("copy kernel", fs::copy(&vmlinuz, out.join("vmlinuz")))?;

    // Initramfs.
    let modules = resolve_modules(&modroot)?;
    let mut cpio = Cpio::default();
    for d in [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib/modules",
        "proc",
        "sys",
        "run",
        "tmp",
        "data",
    ] {
        cpio.dir(d);
    }
    cpio.char_dev("dev/console", 5, 1);
    let busybox = io("read busybox", fs::read(work.join("busybox/bin/busybox")))?;
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.symlink("bin/sh", "busybox");
    cpio.file("init", 0o755, INIT.as_bytes());
    let mut order = String::new();
    for (name, path) in &modules {
        let data = io(format!("read {}", path.display()), fs::read(path))?;
        cpio.file(&format!("lib/modules/{name}.ko"), 0o644, &data);
        order.push_str(name);
        order.push('\n');
    }
    cpio.file("etc/zy-modules", 0o644, order.as_bytes());
    cpio.file(
        "etc/zy-template",
        0o644,
        format!("{TEMPLATE_NAME} {kernel_id} {busybox_id}\n").as_bytes(),
    );
    io(
        "write initrd",
        fs::write(out.join("initrd.img"), cpio.finish()),
    )?;

    // Root disk: ext4 filled from a directory, then qcow2.
    let rootdir = work.join("rootfs");
    io("create rootfs", fs::create_dir_all(rootdir.join("etc")))?;
    io(
        "write rootfs",
        fs::write(
            rootdir.join("etc/zy-template"),
            format!("{TEMPLATE_NAME} root disk\n"),
        ),
    )?;
    io("write rootfs", fs::write(rootdir.join("boot-count"), "0\n"))?;
    let raw = work.join("root.raw");
    {
        let f = io("create raw disk", fs::File::create(&raw))?;
        io("size raw disk", f.set_len(ROOT_DISK_GIB << 30))?;
    }
    output(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", "zy-root", "-d"])
            .arg(&rootdir)
            .arg(&raw),
    )?;
    let qcow = out.join("root.qcow2");
    let _ = fs::remove_file(&qcow);
    output(
        Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow),
    )?;

    // Manifest with each file's SHA-256.
    let mut entries = Vec::new();
    for f in ["vmlinuz", "initrd.img", "root.qcow2"] {
        let p = out.join(f);
        let sum = output(Command::new("sha256sum").arg(&p))?;
        let sum = sum
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let bytes = io("stat output", fs::metadata(&p))?.len();
        entries.push(format!(
            "    {{ \"name\": \"{f}\", \"sha256\": \"{sum}\", \"bytes\": {bytes} }}"
        ));
    }
    let manifest = format!(
        "{{\n  \"name\": \"{TEMPLATE_NAME}\",\n  \"kernel\": \"{kernel_id}\",\n  \"busybox\": \"{busybox_id}\",\n  \"disk_gib\": {ROOT_DISK_GIB},\n  \"ready_marker\": \"ZHENGYUN-READY\",\n  \"files\": [\n{}\n  ]\n}}\n",
        entries.join(",\n")
    );
    io(
        "write manifest",
        fs::write(out.join("template.json"), manifest),
    )?;
    io("write stamp", fs::write(&stamp_path, stamp))?;
    let _ = fs::remove_dir_all(&work);
    Ok(true)
}

/// The wanted modules and their dependencies, dependencies first, read from the
/// `depends=` field of each module's `.modinfo` (the package ships no modules.dep).
fn resolve_modules(modroot: &Path) -> Res<Vec<(String, PathBuf)>> {
    let mut index = BTreeMap::new();
    let mut stack = vec![modroot.join("kernel")];
    while let Some(dir) = stack.pop() {
        for e in io(format!("read {}", dir.display()), fs::read_dir(&dir))? {
            let p = io("read modules", e)?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                index.insert(stem.replace('-', "_"), p);
            }
        }
    }
    let mut ordered: Vec<(String, PathBuf)> = Vec::new();
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        ordered: &mut Vec<(String, PathBuf)>,
        depth: usize,
    ) -> Res<()> {
        if ordered.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        if depth > 32 {
            return Err(format!("module dependency loop at {name}"));
        }
        let path = index
            .get(name)
            .ok_or_else(|| format!("kernel has no module {name}"))?;
        let data = io(format!("read {}", path.display()), fs::read(path))?;
        for dep in modinfo_depends(&data) {
            visit(&dep, index, ordered, depth + 1)?;
        }
        ordered.push((name.to_string(), path.clone()));
        Ok(())
    }
    for m in WANTED_MODULES {
        visit(m, &index, &mut ordered, 0)?;
    }
    Ok(ordered)
}

fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    let mut i = 0;
    while i + key.len() <= ko.len() {
        if &ko[i..i + key.len()] == key && (i == 0 || ko[i - 1] == 0) {
            let rest = &ko[i + key.len()..];
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            return String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect();
        }
        i += 1;
    }
    Vec::new()
}

/// A cpio archive in the "newc" format the kernel unpacks as initramfs.
#[derive(Default)]
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            namesize,
            0
        );
        self.buf.extend_from_slice(header.as_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
    }

    fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, (major, minor), &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        // The kernel reads the archive in 512-byte blocks.
        while !self.buf.len().is_multiple_of(512) {
            self.buf.push(0);
        }
        self.buf
    }
}
