//! Client commands for API tokens, security settings and the audit log.

use crate::client::Client;
use crate::commands::{list_all, show_list};
use crate::output::{self, record};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Your tokens (or everyone's with --all, security admin).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Create a token; the secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        days: Option<u32>,
    },
    Revoke {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum SecurityCmd {
    /// Show the security settings.
    Show,
    /// Change settings: `zhengyun security set lockout_threshold=5 session_idle_minutes=30`
    /// (login rate limits: `login_attempts_per_address_per_minute=120
    /// login_attempts_per_account_per_minute=10`).
    Set { assignments: Vec<String> },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Recent records, newest first.
    List {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Check the hash chain; names the first altered, inserted or deleted record.
    /// With --database-url (or --data-dir) it reads the database directly, without a server.
    Verify {
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// SEQ:HASH printed by an earlier verify and kept outside the system: the log must
        /// still pass through it (catches a log rewritten and rehashed as a whole).
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Export to a file: CSV (default) or JSON Lines.
    Export {
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long, short)]
        output: std::path::PathBuf,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
    },
}

pub(crate) async fn token_cmd(c: &Client, t: TokenCmd, json: bool) -> Result<()> {
    let cols = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("前缀 prefix", "prefix"),
        ("用户 user", "user_id"),
        ("到期 expires", "expires_at"),
        ("最近使用 last used", "last_used_at"),
        ("吊销 revoked", "revoked_at"),
    ];
    match t {
        TokenCmd::List { all } => {
            let q = if all {
                vec![("all", "true".to_string())]
            } else {
                vec![]
            };
            show_list(&list_all(c, "/v1/tokens", q, true).await?, cols, json)
        }
        TokenCmd::Create { name, days } => {
            let r = c
                .post(
                    "/v1/tokens",
                    json!({ "name": name, "expires_in_days": days }),
                )
                .await?;
            if json {
                output::json(&r);
            } else {
                record(&r["token"], cols);
                println!(
                    "\n令牌（只显示这一次）/ token secret (shown once): {}",
                    crate::output::cell(&r["secret"])
                );
                println!("使用 use: ZHENGYUN_TOKEN=<secret> zhengyun …  或 or  Authorization: Bearer <secret>");
            }
        }
        TokenCmd::Revoke { id } => {
            c.delete(&format!("/v1/tokens/{id}")).await?;
            eprintln!("已吊销 revoked");
        }
    }
    Ok(())
}

pub(crate) async fn security(c: &Client, s: SecurityCmd, json: bool) -> Result<()> {
    let show = |v: &Value| {
        if json {
            output::json(v)
        } else if let Some(o) = v.as_object() {
            for (k, v) in o {
                println!("{k:<24} {}", crate::output::cell(v));
            }
        }
    };
    match s {
        SecurityCmd::Show => show(&c.get("/v1/security/settings", &[]).await?),
        SecurityCmd::Set { assignments } => {
            let mut cur = c.get("/v1/security/settings", &[]).await?;
            for a in assignments {
                let (k, v) = a
                    .split_once('=')
                    .with_context(|| format!("expected key=value, got {a}"))?;
                if cur.get(k).is_none() {
                    bail!("unknown setting {k}");
                }
                cur[k] = if k == "mfa_required_roles" {
                    json!(v.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>())
                } else {
                    json!(v
                        .parse::<u64>()
                        .with_context(|| format!("{k} must be a number"))?)
                };
            }
            show(&c.put("/v1/security/settings", cur).await?)
        }
    }
    Ok(())
}

pub(crate) async fn audit(c: &Client, a: AuditCmd, json: bool) -> Result<()> {
    match a {
        AuditCmd::List {
            actor,
            action,
            outcome,
            from,
            to,
            limit,
        } => {
            let mut q = vec![("limit", limit.to_string())];
            for (k, v) in [
                ("actor", actor),
                ("action", action),
                ("outcome", outcome),
                ("from", from),
                ("to", to),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let cols = &[
                ("序号 seq", "seq"),
                ("时间 time", "at"),
                ("操作人 actor", "actor_name"),
                ("来源 ip", "source_ip"),
                ("操作 action", "action"),
                ("对象 target", "target_id"),
                ("结果 outcome", "outcome"),
            ];
            show_list(&c.get("/v1/audit", &q).await?, cols, json);
        }
        AuditCmd::Verify {
            database_url,
            data_dir,
            anchor,
        } => {
            let anchor = match anchor {
                Some(a) => {
                    let (seq, hash) = a
                        .split_once(':')
                        .context("the anchor is SEQ:HASH, as printed by an earlier verify")?;
                    Some((
                        seq.parse::<i64>().context("the anchor's SEQ is a number")?,
                        hash.to_string(),
                    ))
                }
                None => None,
            };
            let report = if database_url.is_some() || data_dir.is_some() {
                let url = database_url.unwrap_or_else(|| {
                    format!(
                        "sqlite://{}",
                        data_dir.unwrap_or_default().join("zhengyun.db").display()
                    )
                });
                // Evidence is read as it is: read-only, never created or migrated.
                let store = zy_store::Store::open_read_only(&url, None)
                    .await
                    .map_err(|e| {
                        let said = format!("{} / {}", e.message.zh, e.message.en);
                        match e.internal {
                            Some(cause) => anyhow::anyhow!(cause).context(said),
                            None => anyhow::anyhow!(said),
                        }
                    })?;
                let out = zy_store::audit::verify(&store, anchor)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message.en))?;
                json!({ "ok": out.finding.is_none(), "checked": out.checked, "first_problem": out.finding, "head_seq": out.head_seq, "head_hash": out.head_hash })
            } else {
                let q: Vec<(&str, String)> = match anchor {
                    Some((seq, hash)) => {
                        vec![("anchor_seq", seq.to_string()), ("anchor_hash", hash)]
                    }
                    None => vec![],
                };
                c.get("/v1/audit/verify", &q).await?
            };
            if json {
                output::json(&report);
            } else if report["ok"].as_bool() == Some(true) {
                println!(
                    "审计日志完整 audit log intact: {} 条记录 records checked",
                    report["checked"]
                );
                println!(
                    "请在系统外记录此锚点 record this anchor outside the system: {}:{}",
                    report["head_seq"],
                    crate::output::cell(&report["head_hash"])
                );
            } else {
                let p = &report["first_problem"];
                println!(
                    "审计日志被篡改 AUDIT LOG TAMPERED: 第 {} 条记录 record {} — {} ({})",
                    p["seq"],
                    p["seq"],
                    crate::output::cell(&p["message"]),
                    crate::output::cell(&p["kind"])
                );
            }
            if report["ok"].as_bool() != Some(true) {
                std::process::exit(2);
            }
        }
        AuditCmd::Export {
            format,
            output,
            from,
            to,
            actor,
            action,
        } => {
            let mut q = vec![("format", format)];
            for (k, v) in [
                ("from", from),
                ("to", to),
                ("actor", actor),
                ("action", action),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let resp = c
                .send(reqwest::Method::GET, "/v1/audit/export", &q, None)
                .await?;
            let bytes = resp.bytes().await?;
            std::fs::write(&output, &bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "已导出 exported {} bytes to {}",
                bytes.len(),
                output.display()
            );
        }
    }
    Ok(())
}
