//! Client commands for notifications: `zhengyun inbox …` (one's own notices and
//! preferences) and `zhengyun notify …` (the platform's mail settings, webhooks and their
//! delivery logs).

use crate::client::Client;
use crate::commands::{list_all, show_list};
use crate::output::{self, record};
use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum InboxCmd {
    /// Your notices, unread first.
    List {
        /// Only unread ones.
        #[arg(long)]
        unread: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// How many notices are unread.
    Count,
    /// Mark one notice read.
    Read { id: String },
    /// Mark every notice read.
    ReadAll,
    /// Your preferences: the e-mail language and the kinds not e-mailed.
    Prefs,
    /// Change preferences: `--language en`, `--email-off lease_ending,purged` (an empty
    /// value e-mails every kind again).
    SetPrefs {
        #[arg(long)]
        language: Option<String>,
        #[arg(long)]
        email_off: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum NotifyCmd {
    /// Show the platform's mail settings (platform admin).
    Mail,
    /// Set the mail settings: `--host smtp.example.gov.cn --port 25 --from noreply@… [--starttls]
    /// [--username u --password p] [--disable]`.
    SetMail {
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 25)]
        port: u16,
        #[arg(long)]
        from: String,
        #[arg(long)]
        starttls: bool,
        #[arg(long)]
        username: Option<String>,
        /// The relay password (absent keeps the stored one; empty removes it).
        #[arg(long, env = "ZHENGYUN_SMTP_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// PEM file of the internal CA that signed the relay's certificate (STARTTLS).
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        #[arg(long)]
        disable: bool,
    },
    /// The e-mail delivery log, newest first (platform admin).
    Mails {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Webhook subscriptions you manage.
    Webhooks {
        #[arg(long)]
        department: Option<String>,
    },
    /// Subscribe a URL; the signing secret is printed once.
    AddWebhook {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        /// Comma-separated kinds (default: every kind).
        #[arg(long)]
        kinds: Option<String>,
        /// The department whose notices to send (default: every notice, platform admin).
        #[arg(long)]
        department: Option<String>,
    },
    /// Turn a webhook on or off.
    EnableWebhook {
        id: String,
        #[arg(long)]
        off: bool,
    },
    RemoveWebhook {
        id: String,
    },
    /// A webhook's delivery log, newest first.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

const INBOX_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("已读 read", "read"),
    ("时间 at", "created_at"),
    ("标题 title", "title"),
];

const DELIVERY_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("类型 kind", "kind"),
    ("收件人 to", "to"),
    ("状态 state", "state"),
    ("次数 attempts", "attempts"),
    ("结果 status", "last_status"),
    ("错误 error", "last_error"),
    ("更新 updated", "updated_at"),
];

const WEBHOOK_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("URL", "url"),
    ("类型 kinds", "kinds"),
    ("部门 department", "department_id"),
    ("启用 enabled", "enabled"),
];

fn kinds(list: &str) -> Value {
    Value::Array(
        list.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| Value::String(k.to_string()))
            .collect(),
    )
}

pub(crate) async fn inbox(c: &Client, cmd: InboxCmd, json: bool) -> Result<()> {
    match cmd {
        InboxCmd::List {
            unread,
            limit,
            cursor,
        } => {
            let mut q = vec![("limit", limit.to_string())];
            if unread {
                q.push(("unread", "true".into()));
            }
            if let Some(cur) = cursor {
                q.push(("cursor", cur));
            }
            let page = list_all(c, "/v1/me/notifications", q, false).await?;
            if json {
                output::json(&page);
                return Ok(());
            }
            show_list(&page, INBOX_COLS, false);
            for it in page["items"].as_array().into_iter().flatten() {
                if it["read"] == false {
                    println!(
                        "\n● {}\n  {}",
                        output::cell(&it["title"]),
                        output::cell(&it["body"])
                    );
                }
            }
            Ok(())
        }
        InboxCmd::Count => {
            let r = c.get("/v1/me/notifications/unread-count", &[]).await?;
            if json {
                output::json(&r);
            } else {
                println!("未读 unread: {}", output::cell(&r["unread"]));
            }
            Ok(())
        }
        InboxCmd::Read { id } => {
            c.post(&format!("/v1/me/notifications/{id}/read"), json!({}))
                .await?;
            if !json {
                println!("已读 marked read: {id}");
            }
            Ok(())
        }
        InboxCmd::ReadAll => {
            let r = c.post("/v1/me/notifications/read-all", json!({})).await?;
            if json {
                output::json(&r);
            } else {
                println!("已标记已读 marked read: {}", output::cell(&r["marked"]));
            }
            Ok(())
        }
        InboxCmd::Prefs => {
            let r = c.get("/v1/me/notification-preferences", &[]).await?;
            prefs(&r, json);
            Ok(())
        }
        InboxCmd::SetPrefs {
            language,
            email_off,
        } => {
            if language.is_none() && email_off.is_none() {
                bail!("nothing to change: give --language and/or --email-off");
            }
            let mut body = json!({});
            if let Some(l) = language {
                body["language"] = json!(l);
            }
            if let Some(k) = email_off {
                body["email_off"] = kinds(&k);
            }
            let r = c.put("/v1/me/notification-preferences", body).await?;
            prefs(&r, json);
            Ok(())
        }
    }
}

fn prefs(r: &Value, json: bool) {
    if json {
        output::json(r);
        return;
    }
    record(
        r,
        &[
            ("邮件语言 language", "language"),
            ("不发邮件的类型 email off", "email_off"),
        ],
    );
}

pub(crate) async fn notify(c: &Client, cmd: NotifyCmd, json: bool) -> Result<()> {
    let mail_cols = &[
        ("启用 enabled", "enabled"),
        ("服务器 host", "host"),
        ("端口 port", "port"),
        ("发件人 from", "from"),
        ("加密 security", "security"),
        ("用户名 username", "username"),
        ("已存密码 password set", "password_set"),
    ];
    match cmd {
        NotifyCmd::Mail => {
            let r = c.get("/v1/notify/mail", &[]).await?;
            output::one(&r, mail_cols, json);
        }
        NotifyCmd::SetMail {
            host,
            port,
            from,
            starttls,
            username,
            password,
            ca_file,
            disable,
        } => {
            let ca_pem = match ca_file {
                Some(f) => Some(
                    std::fs::read_to_string(&f)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?,
                ),
                None => None,
            };
            let mut body = json!({
                "enabled": !disable, "host": host, "port": port, "from": from,
                "security": if starttls { "starttls" } else { "none" }, "username": username,
                "ca_pem": ca_pem,
            });
            if let Some(p) = password {
                body["password"] = json!(p);
            }
            let r = c.put("/v1/notify/mail", body).await?;
            output::one(&r, mail_cols, json);
        }
        NotifyCmd::Mails { limit } => {
            let page = list_all(
                c,
                "/v1/notify/mail/deliveries",
                vec![("limit", limit.to_string())],
                false,
            )
            .await?;
            show_list(&page, DELIVERY_COLS, json);
        }
        NotifyCmd::Webhooks { department } => {
            let q: Vec<(&str, String)> = department
                .map(|d| vec![("department_id", d)])
                .unwrap_or_default();
            let r = c.get("/v1/webhooks", &q).await?;
            if json {
                output::json(&r);
            } else {
                output::table(r.as_array().map(Vec::as_slice).unwrap_or(&[]), WEBHOOK_COLS);
            }
        }
        NotifyCmd::AddWebhook {
            name,
            url,
            kinds: k,
            department,
        } => {
            let body = json!({
                "name": name, "url": url, "department_id": department,
                "kinds": k.map(|k| kinds(&k)).unwrap_or(json!([])),
            });
            let r = c.post("/v1/webhooks", body).await?;
            if json {
                output::json(&r);
            } else {
                record(&r["webhook"], WEBHOOK_COLS);
                println!(
                    "\n签名密钥（只显示这一次）/ signing secret (shown once): {}",
                    output::cell(&r["secret"])
                );
                println!("校验 verify: X-Zhengyun-Signature = sha256=HMAC-SHA256(secret, \"<X-Zhengyun-Timestamp>.<body>\")");
            }
        }
        NotifyCmd::EnableWebhook { id, off } => {
            let r = c
                .patch(&format!("/v1/webhooks/{id}"), json!({ "enabled": !off }))
                .await?;
            output::one(&r, WEBHOOK_COLS, json);
        }
        NotifyCmd::RemoveWebhook { id } => {
            c.delete(&format!("/v1/webhooks/{id}")).await?;
            if !json {
                println!("已删除 removed: {id}");
            }
        }
        NotifyCmd::Deliveries { id, limit } => {
            let page = list_all(
                c,
                &format!("/v1/webhooks/{id}/deliveries"),
                vec![("limit", limit.to_string())],
                false,
            )
            .await?;
            show_list(&page, DELIVERY_COLS, json);
        }
    }
    Ok(())
}
