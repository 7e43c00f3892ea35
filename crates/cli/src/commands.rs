//! The client subcommands. Each one is a call (or a few) to the public API.

use crate::audit_cmds::{audit, security, token_cmd};
pub use crate::audit_cmds::{AuditCmd, SecurityCmd, TokenCmd};
use crate::client::{load_config, save_config, Client, SavedConfig};
use crate::output::{self, record, table};
use crate::tenancy_cmds::{department, membership, project, user, MEMBERSHIP_COLS, USER_FIELDS};
pub use crate::tenancy_cmds::{DepartmentCmd, MembershipCmd, ProjectCmd, UserCmd};
use crate::Command;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};

#[derive(Args)]
pub struct LoginArgs {
    /// Login name (asked for when omitted).
    #[arg(long, short)]
    username: Option<String>,
    /// Read the password from standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
    /// The 6-digit code from your authenticator app.
    #[arg(long)]
    totp: Option<String>,
    /// A one-use recovery code instead of --totp.
    #[arg(long)]
    recovery_code: Option<String>,
}

#[derive(Args)]
pub struct PasswordArgs {
    /// Read current and new password as two lines from standard input.
    #[arg(long)]
    stdin: bool,
}

#[derive(Subcommand)]
pub enum MfaCmd {
    /// Start enrolment: prints the secret and the otpauth URI (and saves the QR code as SVG).
    Enrol {
        /// Where to write the QR code.
        #[arg(long, default_value = "zhengyun-mfa.svg")]
        qr: std::path::PathBuf,
    },
    /// Finish enrolment with a code from the app; prints your recovery codes once.
    Confirm { code: String },
    /// Compute the current code for a base32 secret (like oathtool), for scripts and tests.
    Code {
        #[arg(long)]
        secret: String,
    },
}

pub(crate) fn prompt(label: &str) -> Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

pub(crate) fn secret(label: &str, from_stdin: bool) -> Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s)?;
        return Ok(s.trim_end_matches(['\r', '\n']).to_string());
    }
    rpassword::prompt_password(label).context("reading the password")
}

pub async fn run(
    server: Option<String>,
    token: Option<String>,
    json: bool,
    cmd: Command,
) -> Result<()> {
    let c = Client::new(server.clone(), token)?;
    let print = |v: &Value, fields: &[(&str, &str)]| {
        if json {
            output::json(v)
        } else {
            record(v, fields)
        }
    };
    match cmd {
        Command::Login(a) => login(server, a, json).await,
        Command::Logout => {
            let r = c.post("/v1/auth/logout", json!({})).await;
            let mut saved = load_config();
            saved.session_token = None;
            save_config(&saved)?;
            r?;
            eprintln!("已登出 logged out");
            Ok(())
        }
        Command::Me => {
            let me = c.get("/v1/me", &[]).await?;
            if json {
                output::json(&me);
            } else {
                record(&me["user"], USER_FIELDS);
                if let Some(a) = me["required_action"].as_str() {
                    println!("须先完成 required: {a}");
                }
                println!();
                table(
                    me["memberships"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                    MEMBERSHIP_COLS,
                );
            }
            Ok(())
        }
        Command::Password(a) => {
            let current = secret("当前密码 current password: ", a.stdin)?;
            let new = secret("新密码 new password: ", a.stdin)?;
            if !a.stdin && std::io::stdin().is_terminal() {
                let again = secret("再次输入 repeat: ", false)?;
                if again != new {
                    bail!("两次输入的新密码不一致 the new passwords differ");
                }
            }
            c.post(
                "/v1/me/password",
                json!({ "current_password": current, "new_password": new }),
            )
            .await?;
            eprintln!("密码已修改 password changed");
            Ok(())
        }
        Command::Mfa(m) => mfa(&c, m, json).await,
        Command::Department(d) => department(&c, d, json, print).await,
        Command::Project(p) => project(&c, p, json, print).await,
        Command::User(u) => user(&c, u, json, print).await,
        Command::Membership(m) => membership(&c, m, json, print).await,
        Command::Token(t) => token_cmd(&c, t, json).await,
        Command::Security(s) => security(&c, s, json).await,
        Command::Audit(a) => audit(&c, a, json).await,
        Command::Provider(x) => crate::inventory_cmds::provider(&c, x, json).await,
        Command::Zone(x) => crate::inventory_cmds::zone(&c, x, json).await,
        Command::Host(x) => crate::inventory_cmds::host(&c, x, json).await,
        Command::Flavor(x) => crate::inventory_cmds::flavor(&c, x, json).await,
        Command::Image(x) => crate::inventory_cmds::image(&c, x, json).await,
        Command::Quota(x) => crate::compute_cmds::quota(&c, x, json).await,
        Command::Instance(x) => crate::compute_cmds::instance(&c, x, json).await,
        Command::Volume(x) => crate::compute_cmds::volume(&c, x, json).await,
        Command::Vpc(x) => crate::network_cmds::vpc(&c, x, json).await,
        Command::Subnet(x) => crate::network_cmds::subnet(&c, x, json).await,
        Command::Nic(x) => crate::network_cmds::nic(&c, x, json).await,
        Command::Sg(x) => crate::network_cmds::sg(&c, x, json).await,
        Command::Eip(x) => crate::network_cmds::eip(&c, x, json).await,
        Command::Lb(x) => crate::lb_cmds::lb(&c, x, json).await,
        Command::Pool(x) => crate::inventory_cmds::pool(&c, x, json).await,
        Command::Request(x) => crate::request_cmds::request(&c, x, json).await,
        Command::ApprovalChain(x) => crate::request_cmds::chain(&c, x, json).await,
        Command::Inbox(x) => crate::notify_cmds::inbox(&c, x, json).await,
        Command::Notify(x) => crate::notify_cmds::notify(&c, x, json).await,
        Command::Bill(x) => crate::billing_cmds::bill(&c, x, json).await,
        Command::Metrics(x) => crate::metrics_cmds::metrics(&c, x, json).await,
        Command::Alert(x) => crate::metrics_cmds::alert(&c, x, json).await,
        Command::Ticket(x) => crate::ops_cmds::ticket(&c, x, json).await,
        Command::Inspection(x) => crate::ops_cmds::inspection(&c, x, json).await,
        Command::Sla(x) => crate::ops_cmds::sla(&c, x, json).await,
        Command::Supervision(x) => crate::supervision_cmds::supervision(&c, x, json).await,
        Command::Idle(x) => crate::supervision_cmds::idle(&c, x, json).await,
        Command::Price(x) => crate::billing_cmds::price(&c, x, json).await,
        Command::Usage {
            month,
            department,
            project,
            provider,
        } => crate::billing_cmds::usage(&c, month, department, project, provider, json).await,
        Command::Budget(x) => crate::billing_cmds::budget(&c, x, json).await,
        Command::Reconcile(x) => crate::billing_cmds::reconcile(&c, x, json).await,
        Command::Admin(crate::AdminCmd::Check) => crate::compute_cmds::admin_check(&c, json).await,
        Command::Admin(crate::AdminCmd::Tasks) => crate::compute_cmds::admin_tasks(&c, json).await,
        Command::Admin(crate::AdminCmd::Sagas) => crate::compute_cmds::admin_sagas(&c, json).await,
        Command::Admin(crate::AdminCmd::LeaseSettings(a)) => {
            crate::lease_cmds::lease_settings(&c, a, json).await
        }
        Command::RecycleBin(x) => crate::lease_cmds::recycle_bin(&c, x, json).await,
        Command::Ha(x) => crate::ha_cmds::ha(&c, x, json).await,
        Command::HostGroup(x) => crate::ha_cmds::host_group(&c, x, json).await,
        Command::Consolidation(x) => crate::ha_cmds::consolidation(&c, x, json).await,
        Command::AddressPlan(x) => crate::secev_cmds::address_plan(&c, x, json).await,
        Command::Secevent(x) => crate::secev_cmds::secevent(&c, x, json).await,
        Command::Vuln(x) => crate::secev_cmds::vuln(&c, x, json).await,
        Command::Server(_) | Command::Agent(_) | Command::Openapi => unreachable_command(),
    }
}

fn unreachable_command() -> Result<()> {
    bail!("internal: command handled elsewhere")
}

async fn login(server: Option<String>, a: LoginArgs, json: bool) -> Result<()> {
    let c = Client::new(server, None)?.with_bearer(None);
    let username = match a.username {
        Some(u) => u,
        None => prompt("用户名 username: ")?,
    };
    let password = secret("密码 password: ", a.password_stdin)?;
    let mut body = json!({ "username": username, "password": password, "bearer": true });
    if let Some(t) = a.totp {
        body["totp_code"] = json!(t);
    }
    if let Some(r) = a.recovery_code {
        body["recovery_code"] = json!(r);
    }
    let resp = c.post("/v1/auth/login", body).await?;
    let saved = SavedConfig {
        server: Some(c.server.clone()),
        session_token: resp["session_token"].as_str().map(str::to_string),
        username: Some(username.clone()),
    };
    save_config(&saved)?;
    if json {
        let mut shown = resp.clone();
        shown["session_token"] = Value::Null;
        output::json(&shown);
    } else {
        println!(
            "已登录 logged in: {} ({})",
            username,
            crate::output::cell(&resp["user"]["display_name"])
        );
        match resp["required_action"].as_str() {
            Some("change_password") => {
                println!("请先修改密码 you must change your password first: zhengyun password")
            }
            Some("enrol_mfa") => println!(
                "请先绑定双因素认证 you must enrol a second factor first: zhengyun mfa enrol"
            ),
            _ => {}
        }
    }
    Ok(())
}

async fn mfa(c: &Client, m: MfaCmd, json: bool) -> Result<()> {
    match m {
        MfaCmd::Enrol { qr } => {
            let r = c.post("/v1/me/mfa/enrol", json!({})).await?;
            std::fs::write(&qr, r["qr_svg"].as_str().unwrap_or(""))
                .with_context(|| format!("writing {}", qr.display()))?;
            if json {
                output::json(&r);
            } else {
                println!("密钥 secret:      {}", crate::output::cell(&r["secret"]));
                println!(
                    "otpauth URI:      {}",
                    crate::output::cell(&r["otpauth_uri"])
                );
                println!("二维码 QR code:   {}", qr.display());
                println!("用验证器 App 扫码后执行 then run: zhengyun mfa confirm <code>");
            }
        }
        MfaCmd::Confirm { code } => {
            let r = c
                .post("/v1/me/mfa/confirm", json!({ "code": code }))
                .await?;
            if json {
                output::json(&r);
            } else {
                println!("双因素认证已启用。恢复码（只显示这一次，请妥善保存）/ Second factor enabled. Recovery codes (shown once):");
                for code in r["recovery_codes"].as_array().into_iter().flatten() {
                    println!("  {}", crate::output::cell(code));
                }
            }
        }
        MfaCmd::Code { secret } => {
            let key = zy_model::totp::base32_decode(&secret).context("the secret is not base32")?;
            let now = chrono::Utc::now().timestamp();
            println!("{}", zy_model::totp::code_at(&key, now));
        }
    }
    Ok(())
}

pub(crate) async fn list_all(
    c: &Client,
    path: &str,
    mut q: Vec<(&'static str, String)>,
    all: bool,
) -> Result<Value> {
    let mut items = Vec::new();
    loop {
        let page = c.get(path, &q).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) if all => {
                q.retain(|(k, _)| *k != "cursor");
                q.push(("cursor", next.to_string()));
            }
            next => return Ok(json!({ "items": items, "next_cursor": next })),
        }
    }
}

pub(crate) fn show_list(v: &Value, cols: &[(&str, &str)], json: bool) {
    if json {
        output::json(v);
        return;
    }
    table(
        v["items"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        cols,
    );
    if let Some(n) = v["next_cursor"].as_str() {
        println!("（还有更多 more: --cursor {n}）");
    }
}
