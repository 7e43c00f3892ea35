//! The test SMTP server: Debian's `python3-aiosmtpd`, which the notification tests start on
//! a loopback port to receive real mail. Installed here the way QEMU and PostgreSQL are,
//! so a fresh machine runs those tests too (and `ZY_REQUIRE_SMTP=1` makes them fail rather
//! than skip when it is missing).

use std::process::Command;

/// The interpreter the tests use (Debian's, where apt installs the module).
const PYTHON: &str = "/usr/bin/python3";

fn present() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Makes sure aiosmtpd is importable by `/usr/bin/python3`, installing it with apt if not.
pub fn ensure() -> Result<(), String> {
    if present() {
        return Ok(());
    }
    eprintln!("python3-aiosmtpd is not installed: installing Debian's package");
    let ok = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !ok(Command::new("apt-get").args(["install", "-y", "-q", "python3-aiosmtpd"])) {
        let _ = ok(Command::new("apt-get").args(["update", "-q"]));
        if !ok(Command::new("apt-get").args(["install", "-y", "-q", "python3-aiosmtpd"])) {
            return Err("apt-get install python3-aiosmtpd failed (it needs root)".into());
        }
    }
    if present() {
        Ok(())
    } else {
        Err(format!(
            "{PYTHON} still cannot import aiosmtpd after installing it"
        ))
    }
}
