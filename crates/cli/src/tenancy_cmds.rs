//! Client commands for tenancy: departments, projects, users and role grants.

use crate::client::Client;
use crate::commands::{list_all, secret, show_list};
use crate::output::{self, record};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

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
    /// List grants: of a user, a department, a project, a provider, or all.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// A provider's operators (name or id).
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Grant a role: platform scope by default, or --department / --project, or --provider
    /// (a provider_operator works for one provider).
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
        /// The provider (name or id) a provider_operator works for.
        #[arg(long)]
        provider: Option<String>,
    },
    Revoke {
        id: String,
    },
}

pub(crate) const DEPARTMENT_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("编码 code", "code"),
    ("创建 created", "created_at"),
];

pub(crate) const PROJECT_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("名称 name", "name"),
    ("部门 department", "department_id"),
    ("创建 created", "created_at"),
];

pub(crate) const USER_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("用户名 username", "username"),
    ("姓名 name", "display_name"),
    ("部门 department", "department_id"),
    ("锁定至 locked", "locked_until"),
    ("双因素 mfa", "mfa_enabled"),
];

pub(crate) const USER_FIELDS: &[(&str, &str)] = &[
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

pub(crate) const MEMBERSHIP_COLS: &[(&str, &str)] = &[
    ("编号 id", "id"),
    ("用户 user", "user_id"),
    ("角色 role", "role"),
    ("范围 scope", "scope_type"),
    ("部门 department", "department_id"),
    ("项目 project", "project_id"),
    ("云服务商 provider", "provider_id"),
];

pub(crate) async fn department(
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

pub(crate) fn set(body: &mut Value, key: &str, v: Option<String>) {
    if let Some(v) = v {
        body[key] = json!(v);
    }
}

pub(crate) async fn project(
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
pub(crate) async fn user_id(c: &Client, user: &str) -> Result<String> {
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

pub(crate) async fn user(
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

pub(crate) async fn membership(
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
            provider,
            limit,
        } => {
            let mut q = Vec::new();
            if let Some(p) = provider {
                q.push((
                    "provider_id",
                    crate::compute_cmds::catalogue_id(c, "/v1/providers", "provider", &p).await?,
                ));
            }
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
            provider,
        } => {
            let uid = user_id(c, &user).await?;
            let provider = match provider {
                Some(p) => Some(
                    crate::compute_cmds::catalogue_id(c, "/v1/providers", "provider", &p).await?,
                ),
                None => None,
            };
            let scope = if provider.is_some() {
                "provider"
            } else if project.is_some() {
                "project"
            } else if department.is_some() {
                "department"
            } else {
                "platform"
            };
            let body = json!({ "user_id": uid, "role": role, "scope_type": scope, "department_id": department, "project_id": project, "provider_id": provider });
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
                    ("云服务商 provider", "provider_id"),
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
