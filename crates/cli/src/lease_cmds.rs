//! Client commands for leases (使用期限) and the recycle bin (回收站): `instance lease |
//! release | restore`, `volume release | restore`, `recycle-bin list` and `admin
//! lease-settings`.

use crate::client::Client;
use crate::compute_cmds::{items, project_id};
use crate::output::{self, record, table};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// A lease end given on the command line: `--end <RFC 3339>` or `--days N` from now.
#[derive(Args, Debug, Clone, Default)]
pub struct LeaseEnd {
    /// The end as RFC 3339, e.g. 2026-12-31T18:00:00+08:00.
    #[arg(long, conflicts_with = "days")]
    pub end: Option<String>,
    /// The end N days from now.
    #[arg(long)]
    pub days: Option<u32>,
}

impl LeaseEnd {
    fn value(&self) -> Result<Value> {
        Ok(match (&self.end, self.days) {
            (Some(e), _) => json!(e),
            (None, Some(d)) => {
                json!((chrono::Utc::now() + chrono::Duration::days(d as i64)).to_rfc3339())
            }
            (None, None) => Value::Null,
        })
    }
}

#[derive(Subcommand)]
pub enum RecycleBinCmd {
    /// Instances in the recycle bin: when they were released, why, and when they are
    /// deleted for good.
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        department: Option<String>,
    },
}

/// `admin lease-settings`: shows the settings; with any option, changes them.
#[derive(Args)]
pub struct LeaseSettingsArgs {
    /// Reminders before the end, e.g. `7d,3d,1d` (units d, h, m, s; plain numbers are
    /// seconds).
    #[arg(long)]
    pub reminders: Option<String>,
    /// From the end (stopped) to the release to the recycle bin, e.g. `7d`.
    #[arg(long)]
    pub grace: Option<String>,
    /// How long the recycle bin keeps an instance, e.g. `7d`.
    #[arg(long)]
    pub retention: Option<String>,
}

/// `7d`, `12h`, `30m`, `45s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("时长格式不对 bad duration: {s} (e.g. 7d, 12h, 30m, 45s)"))?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => bail!("时长单位只能是 d/h/m/s the unit must be d, h, m or s: {s}"),
    };
    n.checked_mul(mult)
        .ok_or_else(|| anyhow::anyhow!("时长太长 duration too long: {s}"))
}

pub async fn lease(c: &Client, id: &str, end: &LeaseEnd, clear: bool, json: bool) -> Result<()> {
    let value = end.value()?;
    if value.is_null() && !clear {
        bail!("请给出 --end、--days 或 --clear / give --end, --days or --clear");
    }
    let v = c
        .put(
            &format!("/v1/instances/{id}/lease"),
            json!({ "lease_end": value }),
        )
        .await?;
    show_instance(&v, json);
    Ok(())
}

pub async fn release(c: &Client, id: &str, reason: Option<String>, json: bool) -> Result<()> {
    let v = c
        .post(
            &format!("/v1/instances/{id}/release"),
            json!({ "reason": reason }),
        )
        .await?;
    show_instance(&v, json);
    Ok(())
}

pub async fn restore(c: &Client, id: &str, end: &LeaseEnd, json: bool) -> Result<()> {
    let v = c
        .post(
            &format!("/v1/instances/{id}/restore"),
            json!({ "lease_end": end.value()? }),
        )
        .await?;
    show_instance(&v, json);
    Ok(())
}

pub async fn release_volume(
    c: &Client,
    id: &str,
    reason: Option<String>,
    json: bool,
) -> Result<()> {
    let v = c
        .post(
            &format!("/v1/volumes/{id}/release"),
            json!({ "reason": reason }),
        )
        .await?;
    show_volume(&v, json);
    Ok(())
}

pub async fn restore_volume(c: &Client, id: &str, json: bool) -> Result<()> {
    let v = c
        .post(&format!("/v1/volumes/{id}/restore"), json!({}))
        .await?;
    show_volume(&v, json);
    Ok(())
}

fn show_volume(v: &Value, json: bool) {
    if json {
        output::json(v)
    } else {
        record(v, BIN_VOLUME_COLS)
    }
}

const BIN_VOLUME_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("容量 GiB", "size_gib"),
    ("移入回收站 recycled at", "recycled_at"),
    ("彻底删除 purge at", "purge_at"),
    ("原因 reason", "recycle_reason"),
];

fn show_instance(v: &Value, json: bool) {
    if json {
        output::json(v)
    } else {
        record(v, LEASE_FIELDS)
    }
}

/// The lease and recycle-bin fields of an instance, as `instance get` shows them too.
pub const LEASE_FIELDS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("状态 state", "state"),
    ("使用期限 lease end", "lease_end"),
    ("期限已到 lease ended", "lease_ended"),
    ("移入回收站 recycled at", "recycled_at"),
    ("彻底删除 purge at", "purge_at"),
    ("原因 reason", "recycle_reason"),
];

pub async fn recycle_bin(c: &Client, cmd: RecycleBinCmd, json: bool) -> Result<()> {
    let RecycleBinCmd::List {
        project,
        department,
    } = cmd;
    let mut q = vec![
        ("limit", "1000".to_string()),
        ("recycled", "true".to_string()),
    ];
    if let Some(p) = project {
        q.push(("project_id", project_id(c, &p).await?));
    }
    if let Some(d) = department {
        q.push(("department_id", d));
    }
    let v = c.get("/v1/instances", &q).await?;
    let vq: Vec<(&str, String)> = q
        .iter()
        .filter(|(k, _)| *k != "department_id")
        .cloned()
        .collect();
    let vols = c.get("/v1/volumes", &vq).await?;
    if json {
        output::json(&json!({ "instances": v["items"], "volumes": vols["items"] }));
    } else {
        table(
            items(&v),
            &[
                ("编号 id", "id"),
                ("名称 name", "name"),
                ("规格 flavor", "flavor_name"),
                ("状态 state", "state"),
                ("移入回收站 recycled at", "recycled_at"),
                ("彻底删除 purge at", "purge_at"),
                ("原因 reason", "recycle_reason"),
            ],
        );
        if !items(&vols).is_empty() {
            println!();
            table(items(&vols), BIN_VOLUME_COLS);
        }
    }
    Ok(())
}

pub async fn lease_settings(c: &Client, a: LeaseSettingsArgs, json: bool) -> Result<()> {
    let mut v = c.get("/v1/system/lease-settings", &[]).await?;
    let change = a.reminders.is_some() || a.grace.is_some() || a.retention.is_some();
    if change {
        if let Some(r) = &a.reminders {
            let offsets = r
                .split(',')
                .filter(|x| !x.trim().is_empty())
                .map(parse_duration)
                .collect::<Result<Vec<i64>>>()?;
            v["reminder_offsets_secs"] = json!(offsets);
        }
        if let Some(g) = &a.grace {
            v["grace_secs"] = json!(parse_duration(g)?);
        }
        if let Some(r) = &a.retention {
            v["retention_secs"] = json!(parse_duration(r)?);
        }
        v = c.put("/v1/system/lease-settings", v).await?;
    }
    if json {
        output::json(&v);
        return Ok(());
    }
    let days = |x: &Value| zy_model::lease::human(x.as_i64().unwrap_or(0));
    let reminders: Vec<String> = v["reminder_offsets_secs"]
        .as_array()
        .map(|a| a.iter().map(days).collect())
        .unwrap_or_default();
    println!(
        "到期前提醒 reminders before the end: {}",
        reminders.join(", ")
    );
    println!("宽限期 grace period: {}", days(&v["grace_secs"]));
    println!(
        "回收站保留 recycle-bin retention: {}",
        days(&v["retention_secs"])
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_take_days_hours_minutes_and_seconds() {
        assert_eq!(parse_duration("7d").ok(), Some(604_800));
        assert_eq!(parse_duration("12h").ok(), Some(43_200));
        assert_eq!(parse_duration("30m").ok(), Some(1_800));
        assert_eq!(parse_duration(" 45 ").ok(), Some(45));
        assert_eq!(parse_duration("45s").ok(), Some(45));
        for bad in ["", "d", "7w", "-1d", "99999999999999999999d", "1.5d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
