//! The serial console of a simulated instance. Power changes are recorded as small
//! timestamped events and only rendered into text when someone reads the console: a
//! scale run starts tens of thousands of instances and almost never looks at them, so
//! no string formatting happens under the world's lock. Every rendered line starts with
//! `[sim]`, so nobody mistakes this output for a real guest's.

use std::collections::VecDeque;
use std::fmt::Write as _;
use uuid::Uuid;

/// Older events fall off, like a serial console's ring buffer; this bounds the memory a
/// long-lived instance that is rebooted often can take.
const KEPT_EVENTS: usize = 64;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    /// Captures the shape at boot time, so a later resize does not rewrite history.
    Boot {
        vcpus: u32,
        memory_mib: u64,
        gpus: u32,
        disk_gib: u64,
        volumes: usize,
    },
    PowerOff,
    Restart,
    VolumeAttached {
        volume_id: Uuid,
        size_gib: u64,
    },
    VolumeDetached {
        volume_id: Uuid,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// Seconds since the Unix epoch.
    at: u64,
    event: Event,
}

#[derive(Debug, Default)]
pub(crate) struct Console {
    entries: VecDeque<Entry>,
}

impl Console {
    pub(crate) fn record(&mut self, at: u64, event: Event) {
        if self.entries.len() == KEPT_EVENTS {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry { at, event });
    }

    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.entries.iter().copied().collect()
    }
}

/// The last `max_lines` lines of the console, each ending in a newline.
pub(crate) fn render(name: &str, image: &str, entries: &[Entry], max_lines: usize) -> String {
    let mut lines = Vec::new();
    for entry in entries {
        let stamp = rfc3339(entry.at);
        let mut line = |text: String| lines.push(format!("[sim] {stamp} {text}"));
        match entry.event {
            Event::Boot {
                vcpus,
                memory_mib,
                gpus,
                disk_gib,
                volumes,
            } => {
                let gpus = if gpus > 0 {
                    format!(", {gpus} GPU")
                } else {
                    String::new()
                };
                line(format!(
                    "zhengyun simulated provider: instance {name} booting \
                     ({vcpus} vCPU, {memory_mib} MiB{gpus})"
                ));
                line("Linux version 6.1.0-zhengyun-sim (simulated) #1 SMP PREEMPT_DYNAMIC".into());
                line("Command line: console=ttyS0,115200 root=/dev/vda1 ro".into());
                line(format!("smpboot: Allowing {vcpus} CPUs, 0 hotplug CPUs"));
                line(format!(
                    "virtio_blk virtio0: [vda] {disk_gib} GiB root disk cloned from image {image}"
                ));
                if volumes > 0 {
                    line(format!("virtio_blk: {volumes} data volume(s) attached"));
                }
                line("systemd[1]: Reached target multi-user.target - Multi-User System.".into());
                line(format!("{name} login:"));
            }
            Event::PowerOff => {
                line(format!(
                    "zhengyun simulated provider: instance {name} stopping"
                ));
                line("systemd-shutdown[1]: Syncing filesystems and block devices.".into());
                line("reboot: Power down".into());
            }
            Event::Restart => {
                line(format!(
                    "zhengyun simulated provider: instance {name} rebooting"
                ));
                line("reboot: Restarting system".into());
            }
            Event::VolumeAttached {
                volume_id,
                size_gib,
            } => line(format!(
                "virtio_blk: hot-plugged volume {volume_id} ({size_gib} GiB)"
            )),
            Event::VolumeDetached { volume_id } => {
                line(format!("virtio_blk: hot-unplugged volume {volume_id}"))
            }
        }
    }
    let skip = lines.len().saturating_sub(max_lines);
    lines[skip..].iter().fold(String::new(), |mut out, l| {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{l}");
        out
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC, from Unix seconds; avoids a date crate for one format.
fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (never negative here).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }
}
