//! Notifications (issue 12 item 7): the one entry point every capability calls when
//! something happened that people must hear about, and how it reaches them.
//!
//! - [`enqueue`] runs **in the caller's transaction**: it appends the notice to each
//!   recipient's inbox and writes one outbox row per e-mail (recipients with an address who
//!   did not turn that kind off, when the platform's mail settings are enabled) and per
//!   matching webhook subscription. So a notice exists exactly when the change that caused
//!   it commits; a rollback leaves nothing.
//! - The `notification_delivery` task (`delivery.rs`) sends the outbox outside any
//!   transaction, with retries and exponential backoff, and records each attempt.
//! - [`holders`] resolves recipients by role and scope.
//!
//! Templates (zh-CN and English per kind, with their parameters) live in
//! `zy_model::notice`; the inbox renders in the reader's language at read time.

pub mod delivery;
pub mod mail;
pub mod smtp;
pub mod webhook;

use serde_json::json;
use zy_model::id::{DeliveryId, NotificationId, UserId};
use zy_model::notice::render;
pub use zy_model::notice::NoticeKind;
use zy_model::role::{Role, Scope};
use zy_model::text::Lang;
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::notifications::{self as repo, DeliveryRow, NotificationRow};
use zy_store::Tx;

/// Something that happened, addressed to people.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Resolved recipients (duplicates are removed).
    pub to: Vec<UserId>,
    /// Template parameters (see the table in `zy_model::notice`), e.g.
    /// `{"request": "…", "title": "…", "days": 3}`; missing ones render as "—".
    pub params: serde_json::Value,
    /// Console path to open, e.g. `/requests/<id>`.
    pub link: Option<String>,
    /// The object it is about (request, instance, bill…).
    pub subject: Option<uuid::Uuid>,
}

/// Longest stored `params` (bytes of JSON); larger parameter sets are refused as a bug of
/// the caller rather than stored a million times.
const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// Appends the notice to each recipient's inbox and queues its e-mail / webhook
/// deliveries, in the caller's transaction.
pub async fn enqueue(tx: &mut Tx, notice: &Notice) -> Result<(), Error> {
    let mut to = notice.to.clone();
    to.sort_unstable();
    to.dedup();
    if to.is_empty() {
        return Ok(());
    }
    let params =
        serde_json::to_string(&notice.params).map_err(|e| Error::internal(e.to_string()))?;
    if params.len() > MAX_PARAMS_BYTES {
        return Err(Error::internal(format!(
            "notice {} has {} bytes of parameters",
            notice.kind,
            params.len()
        )));
    }
    let now = Timestamp::now();
    let rows: Vec<NotificationRow> = to
        .iter()
        .map(|user| NotificationRow {
            id: NotificationId::new(),
            user_id: *user,
            kind: notice.kind.as_str().to_string(),
            params: params.clone(),
            link: notice.link.clone(),
            subject_id: notice.subject.map(|s| s.to_string()),
            created_at: now,
            read_at: None,
        })
        .collect();
    repo::insert_notifications(tx, &rows).await?;

    let recipients = repo::recipients(tx, &to).await?;
    let mail_on = mail::load_tx(tx).await?.is_some_and(|m| m.enabled);
    if mail_on {
        for r in &recipients {
            let Some(address) = &r.email else { continue };
            if r.prefs.email_off.iter().any(|k| k == notice.kind.as_str()) {
                continue;
            }
            let lang = lang_of(&r.prefs.language);
            let text = render(notice.kind, &notice.params, lang);
            let payload = json!({
                "to": address,
                "subject": text.subject,
                "body": mail_body(&text.body, notice.link.as_deref(), lang),
            });
            repo::insert_delivery(
                tx,
                &outbox_row("email", notice.kind, Some(r.user_id), None, payload, now),
            )
            .await?;
        }
    }

    let mut departments: Vec<_> = recipients.iter().filter_map(|r| r.department_id).collect();
    departments.sort_unstable();
    departments.dedup();
    let hooks = repo::webhooks_for(tx, &departments).await?;
    if !hooks.is_empty() {
        let zh = render(notice.kind, &notice.params, Lang::Zh);
        let en = render(notice.kind, &notice.params, Lang::En);
        let event = uuid::Uuid::now_v7();
        for w in hooks {
            if !w.kinds.is_empty() && !w.kinds.iter().any(|k| k == notice.kind.as_str()) {
                continue;
            }
            let body = json!({
                "id": event,
                "kind": notice.kind,
                "occurred_at": now,
                "subject_id": notice.subject,
                "link": notice.link,
                "params": notice.params,
                "zh": {"subject": zh.subject, "body": zh.body},
                "en": {"subject": en.subject, "body": en.body},
            });
            repo::insert_delivery(
                tx,
                &outbox_row("webhook", notice.kind, None, Some(w.id), body, now),
            )
            .await?;
        }
    }
    Ok(())
}

/// Users holding `role` at `scope` (a grant there or at a scope containing it; for a
/// department, also grants on its projects), for resolving recipients.
pub async fn holders(tx: &mut Tx, role: Role, scope: Scope) -> Result<Vec<UserId>, Error> {
    repo::holders(tx, role, scope).await
}

/// `zh-CN` (the default) or `en`.
pub fn lang_of(tag: &str) -> Lang {
    if tag == "en" {
        Lang::En
    } else {
        Lang::Zh
    }
}

fn mail_body(body: &str, link: Option<&str>, lang: Lang) -> String {
    let footer = match lang {
        Lang::Zh => "—— 政云平台（此邮件由系统自动发送，请勿回复）",
        Lang::En => "-- zhengyun (sent automatically; please do not reply)",
    };
    match link {
        Some(l) => {
            let open = match lang {
                Lang::Zh => "在控制台打开",
                Lang::En => "Open in the console",
            };
            format!("{body}\n\n{open}: {l}\n\n{footer}\n")
        }
        None => format!("{body}\n\n{footer}\n"),
    }
}

fn outbox_row(
    channel: &str,
    kind: NoticeKind,
    user_id: Option<UserId>,
    webhook_id: Option<zy_model::id::WebhookId>,
    payload: serde_json::Value,
    now: Timestamp,
) -> DeliveryRow {
    DeliveryRow {
        id: DeliveryId::new(),
        channel: channel.to_string(),
        kind: kind.as_str().to_string(),
        user_id,
        webhook_id,
        payload: payload.to_string(),
        state: "pending".to_string(),
        attempts: 0,
        next_at: now,
        last_status: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}
