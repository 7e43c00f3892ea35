//! The client subcommands. Each one is a call (or a few) to the public API.

use crate::client::{load_config, save_config, Client, SavedConfig};
use crate::output::{self, record, table};
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

#[derive(Args)]
pub struct ListArgs {
    /// Items per page (1–1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// name, -name, created_at, -created_at
    #[arg(long)]
    sort: Option<String>,
    /// Substring of the name.
    #[arg(long, short)]
    q: Option<String>,
    /// Fetch every page.
    #[arg(long)]
    all: bool,
}

impl ListArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(c) = &self.cursor {
            q.push(("cursor", c.clone()));
        }
        if let Some(s) = &self.sort {
            q.push(("sort", s.clone()));
        }
        if let Some(s) = &self.q {
            q.push(("q", s.clone()));
        }
        q
    }
}

#[derive(Subcommand)]
pub enum DepartmentCmd {
    List(#[command(flatten)] ListArgs),
    Get {
        id: String,
    },
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        code: String,
        #[arg(long)]
        description: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum ProjectCmd {
    List {
        #[command(flatten)]
        list: ListArgs,
        #[arg(long)]
        department: Option<String>,
    },
    Get {
        id: String,
    },
    Create {
        #[arg(long)]
        department: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    List {
        #[command(flatten)]
        list: ListArgs,
        #[arg(long)]
        department: Option<String>,
    },
    /// Show an account (by id or user name).
    Get {
        user: String,
    },
    /// Create an account; prints its one-time password unless --password-stdin is given.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    Update {
        user: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        department: Option<String>,
    },
    Delete {
        user: String,
    },
    /// Lock an account (security admin); without --minutes until unlocked.
    Lock {
        user: String,
        #[arg(long)]
        minutes: Option<u32>,
    },
    Unlock {
        user: String,
    },
    /// Give the account a new one-time password (security admin).
    ResetPassword {
        user: String,
    },
    /// Remove the account's second factor (security admin).
    ResetMfa {
        user: String,
    },
}

#[derive(Subcommand)]
pub enum MembershipCmd {
    /// List grants: of a user, a department, a project, or all.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Grant a role: platform scope by default, or --department / --project.
    Grant {
        #[arg(long)]
        user: String,
        /// platform_admin, security_admin, auditor, supervisor, finance, provider_operator, dept_admin, dept_member
        #[arg(long)]
        role: String,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        project: Option<String>,
    },
    Revoke {
        id: String,
    },
}

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
    /// Change settings: `zhengyun security set lockout_threshold=5 session_idle_minutes=30`.
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

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

fn secret(label: &str, from_stdin: bool) -> Result<String> {
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
        Command::Provider(x) => crate::compute_cmds::provider(&c, x, json).await,
        Command::Zone(x) => crate::compute_cmds::zone(&c, x, json).await,
        Command::Host(x) => crate::compute_cmds::host(&c, x, json).await,
        Command::Flavor(x) => crate::compute_cmds::flavor(&c, x, json).await,
        Command::Image(x) => crate::compute_cmds::image(&c, x, json).await,
        Command::Quota(x) => crate::compute_cmds::quota(&c, x, json).await,
        Command::Instance(x) => crate::compute_cmds::instance(&c, x, json).await,
        Command::Volume(x) => crate::compute_cmds::volume(&c, x, json).await,
        Command::Pool(x) => crate::compute_cmds::pool(&c, x, json).await,
        Command::Admin(crate::AdminCmd::Check) => crate::compute_cmds::admin_check(&c, json).await,
        Command::Server(_) | Command::Openapi => unreachable_command(),
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

const DEPARTMENT_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("编码 code", "code"),
    ("创建 created", "created_at"),
];
const PROJECT_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("部门 department", "department_id"),
    ("创建 created", "created_at"),
];
const USER_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("用户名 username", "username"),
    ("姓名 name", "display_name"),
    ("部门 department", "department_id"),
    ("锁定至 locked", "locked_until"),
    ("双因素 mfa", "mfa_enabled"),
];
const USER_FIELDS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("用户名 username", "username"),
    ("姓名 name", "display_name"),
    ("部门 department", "department_id"),
    ("邮箱 email", "email"),
    ("电话 phone", "phone"),
    ("双因素 mfa", "mfa_enabled"),
    ("锁定至 locked until", "locked_until"),
    ("须改密码 must change password", "must_change_password"),
    ("密码修改于 password changed", "password_changed_at"),
];
const MEMBERSHIP_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("用户 user", "user_id"),
    ("角色 role", "role"),
    ("范围 scope", "scope_type"),
    ("部门 department", "department_id"),
    ("项目 project", "project_id"),
];

async fn list_all(
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

fn show_list(v: &Value, cols: &[(&str, &str)], json: bool) {
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

async fn department(
    c: &Client,
    d: DepartmentCmd,
    json: bool,
    print: impl Fn(&Value, &[(&str, &str)]),
) -> Result<()> {
    let fields = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("编码 code", "code"),
        ("说明 description", "description"),
        ("创建 created", "created_at"),
        ("版本 generation", "generation"),
    ];
    match d {
        DepartmentCmd::List(l) => show_list(
            &list_all(c, "/v1/departments", l.query(), l.all).await?,
            DEPARTMENT_COLS,
            json,
        ),
        DepartmentCmd::Get { id } => {
            print(&c.get(&format!("/v1/departments/{id}"), &[]).await?, fields)
        }
        DepartmentCmd::Create {
            name,
            code,
            description,
        } => print(
            &c.post(
                "/v1/departments",
                json!({ "name": name, "code": code, "description": description }),
            )
            .await?,
            fields,
        ),
        DepartmentCmd::Update {
            id,
            name,
            code,
            description,
        } => {
            let mut body = json!({});
            set(&mut body, "name", name);
            set(&mut body, "code", code);
            set(&mut body, "description", description);
            print(
                &c.patch(&format!("/v1/departments/{id}"), body).await?,
                fields,
            )
        }
        DepartmentCmd::Delete { id } => {
            c.delete(&format!("/v1/departments/{id}")).await?;
            eprintln!("已删除 deleted");
        }
    }
    Ok(())
}

fn set(body: &mut Value, key: &str, v: Option<String>) {
    if let Some(v) = v {
        body[key] = json!(v);
    }
}

async fn project(
    c: &Client,
    p: ProjectCmd,
    json: bool,
    print: impl Fn(&Value, &[(&str, &str)]),
) -> Result<()> {
    let fields = &[
        ("编号 id", "id"),
        ("名称 name", "name"),
        ("部门 department", "department_id"),
        ("说明 description", "description"),
        ("创建 created", "created_at"),
        ("版本 generation", "generation"),
    ];
    match p {
        ProjectCmd::List { list, department } => {
            let mut q = list.query();
            if let Some(d) = department {
                q.push(("department_id", d));
            }
            show_list(
                &list_all(c, "/v1/projects", q, list.all).await?,
                PROJECT_COLS,
                json,
            )
        }
        ProjectCmd::Get { id } => print(&c.get(&format!("/v1/projects/{id}"), &[]).await?, fields),
        ProjectCmd::Create {
            department,
            name,
            description,
        } => print(
            &c.post(
                "/v1/projects",
                json!({ "department_id": department, "name": name, "description": description }),
            )
            .await?,
            fields,
        ),
        ProjectCmd::Update {
            id,
            name,
            description,
        } => {
            let mut body = json!({});
            set(&mut body, "name", name);
            set(&mut body, "description", description);
            print(&c.patch(&format!("/v1/projects/{id}"), body).await?, fields)
        }
        ProjectCmd::Delete { id } => {
            c.delete(&format!("/v1/projects/{id}")).await?;
            eprintln!("已删除 deleted");
        }
    }
    Ok(())
}

/// Accepts a user id or a user name.
async fn user_id(c: &Client, user: &str) -> Result<String> {
    if uuid::Uuid::parse_str(user).is_ok() {
        return Ok(user.to_string());
    }
    let page = c
        .get(
            "/v1/users",
            &[("q", user.to_string()), ("limit", "1000".into())],
        )
        .await?;
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["username"].as_str() == Some(user))
        .and_then(|u| u["id"].as_str().map(str::to_string))
        .with_context(|| format!("找不到用户 no such user: {user}"))
}

async fn user(
    c: &Client,
    u: UserCmd,
    json: bool,
    print: impl Fn(&Value, &[(&str, &str)]),
) -> Result<()> {
    match u {
        UserCmd::List { list, department } => {
            let mut q = list.query();
            if let Some(d) = department {
                q.push(("department_id", d));
            }
            show_list(
                &list_all(c, "/v1/users", q, list.all).await?,
                USER_COLS,
                json,
            )
        }
        UserCmd::Get { user } => {
            let id = user_id(c, &user).await?;
            print(&c.get(&format!("/v1/users/{id}"), &[]).await?, USER_FIELDS)
        }
        UserCmd::Create {
            username,
            name,
            department,
            email,
            phone,
            password_stdin,
        } => {
            let mut body = json!({ "username": username, "display_name": name, "department_id": department, "email": email, "phone": phone });
            if password_stdin {
                body["password"] = json!(secret("初始密码 initial password: ", true)?);
            }
            let r = c.post("/v1/users", body).await?;
            if json {
                output::json(&r);
            } else {
                record(&r["user"], USER_FIELDS);
                if let Some(p) = r["initial_password"].as_str() {
                    println!("\n一次性密码（只显示这一次，首次登录须修改）/ one-time password (shown once): {p}");
                }
            }
        }
        UserCmd::Update {
            user,
            name,
            email,
            phone,
            department,
        } => {
            let id = user_id(c, &user).await?;
            let mut body = json!({});
            set(&mut body, "display_name", name);
            set(&mut body, "email", email);
            set(&mut body, "phone", phone);
            set(&mut body, "department_id", department);
            print(
                &c.patch(&format!("/v1/users/{id}"), body).await?,
                USER_FIELDS,
            )
        }
        UserCmd::Delete { user } => {
            let id = user_id(c, &user).await?;
            c.delete(&format!("/v1/users/{id}")).await?;
            eprintln!("已删除 deleted");
        }
        UserCmd::Lock { user, minutes } => {
            let id = user_id(c, &user).await?;
            print(
                &c.post(
                    &format!("/v1/users/{id}/lock"),
                    json!({ "minutes": minutes }),
                )
                .await?,
                USER_FIELDS,
            )
        }
        UserCmd::Unlock { user } => {
            let id = user_id(c, &user).await?;
            print(
                &c.post(&format!("/v1/users/{id}/unlock"), json!({})).await?,
                USER_FIELDS,
            )
        }
        UserCmd::ResetPassword { user } => {
            let id = user_id(c, &user).await?;
            let r = c
                .post(&format!("/v1/users/{id}/reset-password"), json!({}))
                .await?;
            if json {
                output::json(&r);
            } else {
                println!(
                    "新的一次性密码（只显示这一次）/ new one-time password (shown once): {}",
                    crate::output::cell(&r["initial_password"])
                );
            }
        }
        UserCmd::ResetMfa { user } => {
            let id = user_id(c, &user).await?;
            c.post(&format!("/v1/users/{id}/reset-mfa"), json!({}))
                .await?;
            eprintln!("已重置双因素认证 second factor reset");
        }
    }
    Ok(())
}

async fn membership(
    c: &Client,
    m: MembershipCmd,
    json: bool,
    print: impl Fn(&Value, &[(&str, &str)]),
) -> Result<()> {
    match m {
        MembershipCmd::List {
            user,
            department,
            project,
            limit,
        } => {
            let mut q = Vec::new();
            if let Some(u) = user {
                q.push(("user_id", user_id(c, &u).await?));
            }
            if let Some(d) = department {
                q.push(("department_id", d));
            }
            if let Some(p) = project {
                q.push(("project_id", p));
            }
            if let Some(l) = limit {
                q.push(("limit", l.to_string()));
            }
            show_list(&c.get("/v1/memberships", &q).await?, MEMBERSHIP_COLS, json)
        }
        MembershipCmd::Grant {
            user,
            role,
            department,
            project,
        } => {
            let uid = user_id(c, &user).await?;
            let scope = if project.is_some() {
                "project"
            } else if department.is_some() {
                "department"
            } else {
                "platform"
            };
            let body = json!({ "user_id": uid, "role": role, "scope_type": scope, "department_id": department, "project_id": project });
            let r = c.post("/v1/memberships", body).await?;
            print(
                &r,
                &[
                    ("编号 id", "id"),
                    ("用户 user", "user_id"),
                    ("角色 role", "role"),
                    ("范围 scope", "scope_type"),
                    ("部门 department", "department_id"),
                    ("项目 project", "project_id"),
                ],
            )
        }
        MembershipCmd::Revoke { id } => {
            c.delete(&format!("/v1/memberships/{id}")).await?;
            eprintln!("已撤销 revoked");
        }
    }
    Ok(())
}

async fn token_cmd(c: &Client, t: TokenCmd, json: bool) -> Result<()> {
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

async fn security(c: &Client, s: SecurityCmd, json: bool) -> Result<()> {
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

async fn audit(c: &Client, a: AuditCmd, json: bool) -> Result<()> {
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
        } => {
            let report = if database_url.is_some() || data_dir.is_some() {
                let url = database_url.unwrap_or_else(|| {
                    format!(
                        "sqlite://{}",
                        data_dir.unwrap_or_default().join("zhengyun.db").display()
                    )
                });
                let store = zy_store::Store::open(&url, None, 2).await.map_err(|e| {
                    anyhow::anyhow!("{}", e.message.en).context(e.internal.unwrap_or_default())
                })?;
                let out = zy_store::audit::verify(&store)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message.en))?;
                json!({ "ok": out.finding.is_none(), "checked": out.checked, "first_problem": out.finding })
            } else {
                c.get("/v1/audit/verify", &[]).await?
            };
            if json {
                output::json(&report);
            } else if report["ok"].as_bool() == Some(true) {
                println!(
                    "审计日志完整 audit log intact: {} 条记录 records checked",
                    report["checked"]
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
