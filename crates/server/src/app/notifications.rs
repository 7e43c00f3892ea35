//! Notifications as people use them: one's own inbox and preferences (every signed-in
//! account, only its own), the platform's mail settings (platform admin), and webhook
//! subscriptions with their delivery logs (a department admin for the department, the
//! platform admin for any department or platform-wide).

use super::commit_audited;
use crate::auth::actor::Actor;
use crate::auth::secrets::random_string;
use crate::context::RequestContext;
use crate::notify::{mail, smtp, webhook};
use crate::state::AppState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zy_model::id::{DeliveryId, DepartmentId, NotificationId, UserId, WebhookId};
use zy_model::notice::{render, NoticeKind};
use zy_model::page::Page;
use zy_model::role::{Role, Scope};
use zy_model::text::Lang;
use zy_model::time::Timestamp;
use zy_model::{t, validate, Error};
use zy_policy::{authorize, Action};
use zy_store::notifications::{self as repo, DeliveryRow, Prefs, WebhookRow};

/// One notice in the caller's inbox, rendered in the caller's language.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboxItem {
    pub id: NotificationId,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    /// Console path to open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The object it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<String>,
    pub created_at: Timestamp,
    pub read: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MarkedRead {
    /// How many notices were marked read.
    pub marked: u64,
}

/// The caller's notification preferences.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preferences {
    /// The language of e-mails: `zh-CN` (default) or `en`.
    pub language: String,
    /// Kinds not sent by e-mail (the inbox always gets every notice).
    pub email_off: Vec<NoticeKind>,
    /// Every kind there is, for a preferences page.
    pub kinds: Vec<NoticeKind>,
    /// Pass back to update only if nothing changed meanwhile (0: never saved).
    pub generation: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePreferences {
    /// `zh-CN` or `en`; absent keeps the current one.
    pub language: Option<String>,
    /// Kinds not to e-mail; absent keeps the current list.
    pub email_off: Option<Vec<NoticeKind>>,
    pub generation: Option<i64>,
}

/// The platform's mail settings as shown (the password never is).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailSettings {
    /// Whether notices are e-mailed at all.
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    /// The sender address, e.g. `noreply@zwy.example.gov.cn`.
    pub from: String,
    pub security: mail::MailSecurity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Whether a relay password is stored (sealed).
    pub password_set: bool,
    /// PEM of the CA that signed the relay's certificate, if one is trusted besides the
    /// system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMailSettings {
    pub enabled: bool,
    /// The relay's host name or address.
    pub host: String,
    pub port: u16,
    pub from: String,
    pub security: mail::MailSecurity,
    /// User name for AUTH PLAIN; absent or empty for none.
    pub username: Option<String>,
    /// The relay password: absent keeps the stored one, empty removes it.
    pub password: Option<String>,
    /// PEM of an internal CA that signed the relay's certificate (STARTTLS); absent or
    /// empty: the system's roots only.
    pub ca_pem: Option<String>,
}

/// A webhook subscription as shown (the secret only once, at creation).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: WebhookId,
    pub name: String,
    pub url: String,
    /// Kinds sent; empty means every kind.
    pub kinds: Vec<NoticeKind>,
    /// The department whose notices it gets; absent for a platform-wide subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_id: Option<DepartmentId>,
    pub enabled: bool,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<UserId>,
    pub updated_at: Timestamp,
    pub generation: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// What it is for, e.g. `卫健委 OA 待办`.
    pub name: String,
    /// `http://` or `https://` URL the JSON is POSTed to.
    pub url: String,
    /// Kinds to send; empty or absent for every kind.
    pub kinds: Option<Vec<NoticeKind>>,
    /// The department whose notices to send; absent for every notice (platform admin).
    pub department_id: Option<DepartmentId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    /// The signing secret, shown this once: verify `X-Zhengyun-Signature` with it.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub name: Option<String>,
    pub url: Option<String>,
    pub kinds: Option<Vec<NoticeKind>>,
    pub enabled: Option<bool>,
    pub generation: Option<i64>,
}

/// One e-mail or webhook call in a delivery log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    /// `email` or `webhook`.
    pub channel: String,
    pub kind: String,
    /// The recipient's address (e-mail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The subject (e-mail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<WebhookId>,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    /// The receiver's HTTP status or the relay's SMTP reply code of the last attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

// ---- Inbox ----

fn kind_of(s: &str) -> Result<NoticeKind, Error> {
    NoticeKind::parse(s).ok_or_else(|| Error::internal(format!("unknown notice kind {s}")))
}

/// The inbox cursor: the (read, id) of the last item.
fn encode_cursor(read: bool, id: NotificationId) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", i64::from(read), id))
}

fn decode_cursor(c: &str) -> Result<(i64, String), Error> {
    use base64::Engine;
    let bad = || {
        Error::invalid(t!(
            "分页游标无效或已过期，请从第一页重新获取",
            "The page cursor is not valid; start again from the first page"
        ))
    };
    if c.len() > 200 {
        return Err(bad());
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (read, id) = raw.split_once(':').ok_or_else(bad)?;
    let read: i64 = match read {
        "0" => 0,
        "1" => 1,
        _ => return Err(bad()),
    };
    let id: NotificationId = id.parse().map_err(|_| bad())?;
    Ok((read, id.to_string()))
}

pub fn limit_of(limit: Option<i64>) -> Result<u32, Error> {
    Ok(zy_model::page::PageRequest::parse(limit, None, None)?.limit)
}

pub async fn inbox(
    s: &AppState,
    actor: &Actor,
    lang: Lang,
    unread_only: bool,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<InboxItem>, Error> {
    let limit = limit_of(limit)?;
    let after = cursor
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()?;
    let mut rows = repo::inbox(&s.store, actor.user.id, unread_only, after, limit).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let kind = kind_of(&r.kind)?;
        let params: serde_json::Value = serde_json::from_str(&r.params).unwrap_or_default();
        let text = render(kind, &params, lang);
        items.push(InboxItem {
            id: r.id,
            kind,
            title: text.subject,
            body: text.body,
            link: r.link,
            subject_id: r.subject_id,
            created_at: r.created_at,
            read: r.read_at.is_some(),
            read_at: r.read_at,
        });
    }
    let next_cursor = if more {
        items.last().map(|i| encode_cursor(i.read, i.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub async fn unread_count(s: &AppState, actor: &Actor) -> Result<UnreadCount, Error> {
    Ok(UnreadCount {
        unread: repo::unread_count(s.store.pool(), actor.user.id).await?,
    })
}

pub async fn mark_read(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: NotificationId,
) -> Result<(), Error> {
    let mut tx = s.store.begin_write().await?;
    if !repo::mark_read(&mut tx, actor.user.id, id).await? {
        // Someone else's notice is as absent as one that does not exist.
        return Err(Error::not_found("notification", id));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "read_notification",
        "notification",
        &id.to_string(),
        serde_json::json!({}),
    )
    .await
}

pub async fn mark_all_read(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
) -> Result<MarkedRead, Error> {
    let mut tx = s.store.begin_write().await?;
    let marked = repo::mark_all_read(&mut tx, actor.user.id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "read_all_notifications",
        "user",
        &actor.user.id.to_string(),
        serde_json::json!({ "marked": marked }),
    )
    .await?;
    Ok(MarkedRead { marked })
}

// ---- Preferences ----

fn prefs_view(p: Prefs) -> Preferences {
    Preferences {
        language: p.language,
        email_off: p
            .email_off
            .iter()
            .filter_map(|k| NoticeKind::parse(k))
            .collect(),
        kinds: NoticeKind::ALL.to_vec(),
        generation: p.generation,
    }
}

pub async fn preferences(s: &AppState, actor: &Actor) -> Result<Preferences, Error> {
    Ok(prefs_view(
        repo::get_prefs(s.store.pool(), actor.user.id).await?,
    ))
}

pub async fn update_preferences(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: UpdatePreferences,
) -> Result<Preferences, Error> {
    if let Some(l) = &b.language {
        if l != "zh-CN" && l != "en" {
            return Err(Error::validation(
                "language",
                t!("语言须为 zh-CN 或 en", "language must be zh-CN or en"),
            ));
        }
    }
    let mut tx = s.store.begin_write().await?;
    let current = repo::get_prefs(&mut *tx, actor.user.id).await?;
    let mut off: Vec<String> = match &b.email_off {
        Some(kinds) => kinds.iter().map(|k| k.as_str().to_string()).collect(),
        None => current.email_off.clone(),
    };
    off.sort_unstable();
    off.dedup();
    let next = Prefs {
        language: b.language.clone().unwrap_or(current.language.clone()),
        email_off: off,
        generation: current.generation,
    };
    if !repo::put_prefs(&mut tx, actor.user.id, &next, b.generation).await? {
        return Err(changed_meanwhile());
    }
    let saved = repo::get_prefs(&mut *tx, actor.user.id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_notification_preferences",
        "user",
        &actor.user.id.to_string(),
        serde_json::json!({ "language": saved.language, "email_off": saved.email_off }),
    )
    .await?;
    Ok(prefs_view(saved))
}

fn changed_meanwhile() -> Error {
    Error::conflict(t!(
        "设置已被他人修改，请刷新后重试",
        "the settings were changed meanwhile; reload and try again"
    ))
}

// ---- Mail settings ----

fn mail_view(m: Option<mail::StoredMail>) -> MailSettings {
    match m {
        Some(m) => MailSettings {
            enabled: m.enabled,
            host: m.host,
            port: m.port,
            from: m.from,
            security: m.security,
            username: m.username,
            password_set: m.password.is_some(),
            ca_pem: m.ca_pem,
        },
        None => MailSettings {
            enabled: false,
            host: String::new(),
            port: 25,
            from: String::new(),
            security: mail::MailSecurity::None,
            username: None,
            password_set: false,
            ca_pem: None,
        },
    }
}

pub async fn mail_settings(s: &AppState, actor: &Actor) -> Result<MailSettings, Error> {
    authorize(&actor.principal, Action::NotifyMailManage)?;
    Ok(mail_view(mail::load(&s.store).await?))
}

pub async fn update_mail_settings(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: UpdateMailSettings,
) -> Result<MailSettings, Error> {
    authorize(&actor.principal, Action::NotifyMailManage)?;
    let host = b.host.trim().to_string();
    if host.is_empty()
        || host.len() > 253
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return Err(Error::validation(
            "host",
            t!(
                "邮件服务器须为主机名或 IP 地址，例如 smtp.example.gov.cn",
                "host must be a host name or an IP address, e.g. smtp.example.gov.cn"
            ),
        ));
    }
    if b.port == 0 {
        return Err(Error::validation(
            "port",
            t!(
                "端口须在 1 到 65535 之间",
                "port must be between 1 and 65535"
            ),
        ));
    }
    let from = b.from.trim().to_string();
    if smtp::check_address(&from).is_err() {
        return Err(Error::validation(
            "from",
            t!(
                "发件地址格式不正确，例如 noreply@example.gov.cn",
                "from must be an e-mail address, e.g. noreply@example.gov.cn"
            ),
        ));
    }
    let username = b
        .username
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    if username
        .as_ref()
        .is_some_and(|u| u.len() > 256 || u.chars().any(char::is_control))
    {
        return Err(Error::validation(
            "username",
            t!(
                "用户名过长或含控制字符",
                "username is too long or holds control characters"
            ),
        ));
    }
    if b.password
        .as_ref()
        .is_some_and(|p| p.len() > 256 || p.contains('\0'))
    {
        return Err(Error::validation(
            "password",
            t!(
                "密码过长或含非法字符",
                "password is too long or holds a NUL character"
            ),
        ));
    }
    let ca_pem = b
        .ca_pem
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    if let Some(p) = &ca_pem {
        if p.len() > 16 * 1024 || mail::parse_ca_pem(p).is_err() {
            return Err(Error::validation(
                "ca_pem",
                t!(
                    "CA 证书须为 PEM 格式（-----BEGIN CERTIFICATE-----），不超过 16 KiB",
                    "ca_pem must be PEM certificates (-----BEGIN CERTIFICATE-----), at most 16 KiB"
                ),
            ));
        }
    }
    let mut tx = s.store.begin_write().await?;
    let old = mail::load_tx(&mut tx).await?;
    let password = match b.password {
        None => old.and_then(|o| o.password),
        Some(p) if p.is_empty() => None,
        Some(p) => Some(s.sealer.seal(&p)?),
    };
    let stored = mail::StoredMail {
        enabled: b.enabled,
        host,
        port: b.port,
        from,
        security: b.security,
        username,
        password,
        ca_pem,
    };
    zy_store::settings::put(&mut tx, mail::KEY, &stored).await?;
    let view = mail_view(Some(stored));
    let detail = serde_json::json!({
        "enabled": view.enabled, "host": view.host, "port": view.port, "from": view.from,
        "security": view.security, "username": view.username, "password_set": view.password_set,
        "ca_pem_set": view.ca_pem.is_some(),
    });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_mail_settings",
        "settings",
        mail::KEY,
        detail,
    )
    .await?;
    Ok(view)
}

fn delivery_view(d: DeliveryRow) -> Delivery {
    let (to, subject) = if d.channel == "email" {
        let p: serde_json::Value = serde_json::from_str(&d.payload).unwrap_or_default();
        let f = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
        (f("to"), f("subject"))
    } else {
        (None, None)
    };
    Delivery {
        id: d.id,
        channel: d.channel,
        kind: d.kind,
        to,
        subject,
        webhook_id: d.webhook_id,
        next_attempt_at: (d.state == "pending").then_some(d.next_at),
        state: d.state,
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

fn delivery_page(limit: u32, mut rows: Vec<DeliveryRow>) -> Page<Delivery> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(delivery_view).collect(),
        next_cursor,
    }
}

fn delivery_cursor(c: Option<&str>) -> Result<Option<String>, Error> {
    c.filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<DeliveryId>().map(|d| d.to_string()).map_err(|_| {
                Error::invalid(t!(
                    "分页游标无效或已过期，请从第一页重新获取",
                    "The page cursor is not valid; start again from the first page"
                ))
            })
        })
        .transpose()
}

pub async fn mail_deliveries(
    s: &AppState,
    actor: &Actor,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<Delivery>, Error> {
    authorize(&actor.principal, Action::NotifyMailManage)?;
    let limit = limit_of(limit)?;
    let rows = repo::list_deliveries(&s.store, None, delivery_cursor(cursor)?, limit).await?;
    Ok(delivery_page(limit, rows))
}

// ---- Webhooks ----

fn webhook_view(w: WebhookRow) -> Webhook {
    Webhook {
        id: w.id,
        name: w.name,
        url: w.url,
        kinds: w
            .kinds
            .iter()
            .filter_map(|k| NoticeKind::parse(k))
            .collect(),
        department_id: w.department_id,
        enabled: w.enabled,
        created_at: w.created_at,
        created_by: w.created_by,
        updated_at: w.updated_at,
        generation: w.generation,
    }
}

fn kinds_of(kinds: Option<Vec<NoticeKind>>) -> Vec<String> {
    let mut k: Vec<String> = kinds
        .unwrap_or_default()
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    k.sort_unstable();
    k.dedup();
    k
}

/// Departments the caller administers (for listing their webhooks).
fn administered(actor: &Actor) -> Vec<DepartmentId> {
    let mut v: Vec<DepartmentId> = actor
        .principal
        .grants
        .iter()
        .filter(|g| g.role == Role::DeptAdmin)
        .filter_map(|g| match g.scope {
            Scope::Department(d) => Some(d),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

pub async fn list_webhooks(
    s: &AppState,
    actor: &Actor,
    department: Option<DepartmentId>,
) -> Result<Vec<Webhook>, Error> {
    let rows = match department {
        Some(d) => {
            authorize(&actor.principal, Action::WebhookManage(Some(d)))?;
            repo::list_webhooks(&s.store, Some(&[d])).await?
        }
        None => {
            if authorize(&actor.principal, Action::WebhookManage(None)).is_ok() {
                repo::list_webhooks(&s.store, None).await?
            } else {
                let mine = administered(actor);
                if mine.is_empty() {
                    authorize(&actor.principal, Action::WebhookManage(None))?;
                }
                repo::list_webhooks(&s.store, Some(&mine)).await?
            }
        }
    };
    Ok(rows.into_iter().map(webhook_view).collect())
}

/// Loads a webhook the caller may manage (404 when it does not exist).
async fn load_webhook(s: &AppState, actor: &Actor, id: WebhookId) -> Result<WebhookRow, Error> {
    let w = repo::get_webhook(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("webhook", id))?;
    authorize(&actor.principal, Action::WebhookManage(w.department_id))?;
    Ok(w)
}

pub async fn create_webhook(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: CreateWebhook,
) -> Result<CreatedWebhook, Error> {
    authorize(&actor.principal, Action::WebhookManage(b.department_id))?;
    let name = validate::name("name", &b.name)?;
    let url = webhook::check_url(&b.url)?;
    let secret = random_string("zwh_");
    let now = Timestamp::now();
    let row = WebhookRow {
        id: WebhookId::new(),
        name,
        url,
        kinds: kinds_of(b.kinds),
        department_id: b.department_id,
        secret: s.sealer.seal(&secret)?,
        enabled: true,
        created_at: now,
        created_by: Some(actor.user.id),
        updated_at: now,
        generation: 1,
    };
    let mut tx = s.store.begin_write().await?;
    if let Some(d) = b.department_id {
        if zy_store::departments::get(&mut *tx, d).await?.is_none() {
            return Err(Error::not_found("department", d));
        }
    }
    repo::insert_webhook(&mut tx, &row).await?;
    let detail = serde_json::json!({ "name": row.name, "url": row.url, "kinds": row.kinds, "department_id": row.department_id });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_webhook",
        "webhook",
        &row.id.to_string(),
        detail,
    )
    .await?;
    Ok(CreatedWebhook {
        webhook: webhook_view(row),
        secret,
    })
}

pub async fn update_webhook(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: WebhookId,
    b: UpdateWebhook,
) -> Result<Webhook, Error> {
    let old = load_webhook(s, actor, id).await?;
    let mut w = old.clone();
    if let Some(n) = &b.name {
        w.name = validate::name("name", n)?;
    }
    if let Some(u) = &b.url {
        w.url = webhook::check_url(u)?;
    }
    if b.kinds.is_some() {
        w.kinds = kinds_of(b.kinds);
    }
    if let Some(e) = b.enabled {
        w.enabled = e;
    }
    let mut tx = s.store.begin_write().await?;
    if !repo::update_webhook(&mut tx, &w, b.generation.unwrap_or(old.generation)).await? {
        return Err(changed_meanwhile());
    }
    let saved = repo::get_webhook(&mut *tx, id)
        .await?
        .ok_or_else(|| Error::not_found("webhook", id))?;
    let detail = serde_json::json!({ "name": saved.name, "url": saved.url, "kinds": saved.kinds, "enabled": saved.enabled });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_webhook",
        "webhook",
        &id.to_string(),
        detail,
    )
    .await?;
    Ok(webhook_view(saved))
}

pub async fn delete_webhook(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: WebhookId,
) -> Result<(), Error> {
    let w = load_webhook(s, actor, id).await?;
    let mut tx = s.store.begin_write().await?;
    if !repo::delete_webhook(&mut tx, id).await? {
        return Err(Error::not_found("webhook", id));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "delete_webhook",
        "webhook",
        &id.to_string(),
        serde_json::json!({ "name": w.name, "url": w.url }),
    )
    .await
}

pub async fn webhook_deliveries(
    s: &AppState,
    actor: &Actor,
    id: WebhookId,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<Delivery>, Error> {
    load_webhook(s, actor, id).await?;
    let limit = limit_of(limit)?;
    let rows = repo::list_deliveries(&s.store, Some(id), delivery_cursor(cursor)?, limit).await?;
    Ok(delivery_page(limit, rows))
}
