//! Notifications: inbox rows, per-user preferences, webhook subscriptions and the outbox of
//! e-mail and webhook deliveries (claimed with a lease by the delivery task, like sagas).

use crate::db::Tx;
use crate::error::db_error;
use crate::rows::*;
use crate::Store;
use sqlx::{Any, Executor};
use zy_model::id::{DeliveryId, DepartmentId, NotificationId, UserId, WebhookId};
use zy_model::role::{Role, Scope};
use zy_model::time::Timestamp;
use zy_model::Error;

/// One inbox row as stored (rendered by the server in the reader's language).
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub id: NotificationId,
    pub user_id: UserId,
    pub kind: String,
    pub params: String,
    pub link: Option<String>,
    pub subject_id: Option<String>,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
}

const N_COLS: &str = "id, user_id, kind, params, link, subject_id, created_at, read_at";

impl Decode for NotificationRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(NotificationRow {
            id: id(r, "id")?,
            user_id: id(r, "user_id")?,
            kind: text(r, "kind")?,
            params: text(r, "params")?,
            link: r.opt_text("link")?,
            subject_id: r.opt_text("subject_id")?,
            created_at: ts(r, "created_at")?,
            read_at: r.opt_int("read_at")?.map(Timestamp),
        })
    }
}

/// Inserts inbox rows, 100 to a statement (one round trip per 100 recipients).
pub async fn insert_notifications(tx: &mut Tx, rows: &[NotificationRow]) -> Result<(), Error> {
    for chunk in rows.chunks(100) {
        let mut sql = crate::sql::Sql::new(
            "INSERT INTO notifications (id, user_id, kind, params, link, subject_id, created_at, read) VALUES ",
        );
        for (i, n) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind_text(n.id.to_string())
                .push(", ")
                .bind_text(n.user_id.to_string())
                .push(", ")
                .bind_text(n.kind.clone())
                .push(", ")
                .bind_text(n.params.clone())
                .push(", ")
                .bind_opt_text(n.link.clone())
                .push(", ")
                .bind_opt_text(n.subject_id.clone())
                .push(", ")
                .bind(crate::sql::Arg::I64(n.created_at.0))
                .push(", 0)");
        }
        sql.query().execute(&mut **tx).await.map_err(db_error)?;
    }
    Ok(())
}

/// Users holding `role` at `scope`: a grant at the scope itself or at one containing it
/// (a platform grant holds everywhere, a department grant holds for its projects), and for
/// a department also the grants on its projects (a department's members include the
/// members of its projects; a provider's holders are the grants on that provider). Sorted,
/// without duplicates.
pub async fn holders(tx: &mut Tx, role: Role, scope: Scope) -> Result<Vec<UserId>, Error> {
    let mut q = String::from(
        "SELECT DISTINCT user_id FROM memberships WHERE role = $1 AND (scope_type = 'platform'",
    );
    let mut binds: Vec<String> = vec![role.as_str().to_string()];
    match scope {
        Scope::Platform => {}
        Scope::Department(d) => {
            q.push_str(" OR department_id = $2");
            binds.push(d.to_string());
        }
        Scope::Project(d, p) => {
            q.push_str(" OR (scope_type = 'department' AND department_id = $2) OR project_id = $3");
            binds.push(d.to_string());
            binds.push(p.to_string());
        }
        Scope::Provider(p) => {
            q.push_str(" OR provider_id = $2");
            binds.push(p.to_string());
        }
    }
    q.push_str(") ORDER BY user_id");
    let mut query = sqlx::query_scalar::<_, String>(&q);
    for b in &binds {
        query = query.bind(b.as_str());
    }
    let rows = query.fetch_all(&mut **tx).await.map_err(db_error)?;
    rows.iter()
        .map(|s| {
            s.parse::<UserId>()
                .map_err(|_| Error::internal(format!("bad user id {s}")))
        })
        .collect()
}

/// What e-mail delivery needs to know of a recipient.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub user_id: UserId,
    pub email: Option<String>,
    pub department_id: Option<DepartmentId>,
    pub prefs: Prefs,
}

/// A user's notification preferences (defaults when they never set any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    /// `zh-CN` or `en`.
    pub language: String,
    /// Kinds not sent by e-mail.
    pub email_off: Vec<String>,
    pub generation: i64,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            language: "zh-CN".into(),
            email_off: Vec::new(),
            generation: 0,
        }
    }
}

fn decode_prefs(language: Option<String>, off: Option<String>, generation: Option<i64>) -> Prefs {
    match (language, off) {
        (Some(language), Some(off)) => Prefs {
            language,
            email_off: serde_json::from_str(&off).unwrap_or_default(),
            generation: generation.unwrap_or(1),
        },
        _ => Prefs::default(),
    }
}

/// The recipients' addresses, departments and preferences, in the caller's transaction.
pub async fn recipients(tx: &mut Tx, users: &[UserId]) -> Result<Vec<Recipient>, Error> {
    let mut out = Vec::with_capacity(users.len());
    for chunk in users.chunks(200) {
        let mut sql = crate::sql::Sql::new(
            "SELECT u.id, u.email, u.department_id, p.language, p.email_off, p.generation \
             FROM users u LEFT JOIN notification_prefs p ON p.user_id = u.id WHERE ",
        );
        sql.push_in("u.id", chunk.iter().map(|u| u.to_string()))
            .push(" ORDER BY u.id");
        for r in sql.query().fetch_all(&mut **tx).await.map_err(db_error)? {
            out.push(Recipient {
                user_id: id(&r, "id")?,
                email: r.opt_text("email")?.filter(|e| !e.is_empty()),
                department_id: opt_id(&r, "department_id")?,
                prefs: decode_prefs(
                    r.opt_text("language")?,
                    r.opt_text("email_off")?,
                    r.opt_int("generation")?,
                ),
            });
        }
    }
    Ok(out)
}

pub async fn get_prefs<'c>(
    e: impl Executor<'c, Database = Any>,
    user: UserId,
) -> Result<Prefs, Error> {
    let r = sqlx::query(
        "SELECT language, email_off, generation FROM notification_prefs WHERE user_id = $1",
    )
    .bind(user.to_string())
    .fetch_optional(e)
    .await
    .map_err(db_error)?;
    Ok(match r {
        Some(r) => decode_prefs(
            Some(r.text("language")?),
            Some(r.text("email_off")?),
            Some(r.int("generation")?),
        ),
        None => Prefs::default(),
    })
}

/// Saves preferences; with `expected` generation, only if nobody changed them since
/// (`Ok(false)` otherwise). A user without a row has generation 0.
pub async fn put_prefs(
    tx: &mut Tx,
    user: UserId,
    prefs: &Prefs,
    expected: Option<i64>,
) -> Result<bool, Error> {
    let off =
        serde_json::to_string(&prefs.email_off).map_err(|e| Error::internal(e.to_string()))?;
    let now = Timestamp::now().0;
    let current = get_prefs(&mut **tx, user).await?;
    if let Some(g) = expected {
        if g != current.generation {
            return Ok(false);
        }
    }
    let n = if current.generation == 0 {
        sqlx::query(
            "INSERT INTO notification_prefs (user_id, language, email_off, updated_at, generation) \
             VALUES ($1, $2, $3, $4, 1) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user.to_string())
        .bind(&prefs.language)
        .bind(off)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected()
    } else {
        sqlx::query(
            "UPDATE notification_prefs SET language = $1, email_off = $2, updated_at = $3, generation = generation + 1 \
             WHERE user_id = $4 AND generation = $5",
        )
        .bind(&prefs.language)
        .bind(off)
        .bind(now)
        .bind(user.to_string())
        .bind(current.generation)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected()
    };
    Ok(n == 1)
}

/// The inbox, unread first, newest first within each; `after` is the (read, id) of the
/// last row of the previous page.
pub async fn inbox(
    store: &Store,
    user: UserId,
    unread_only: bool,
    after: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<NotificationRow>, Error> {
    let mut sql = crate::sql::Sql::new(&format!(
        "SELECT {N_COLS}, read FROM notifications WHERE user_id = "
    ));
    sql.bind_text(user.to_string());
    if unread_only {
        sql.push(" AND read = 0");
    }
    if let Some((read, id)) = after {
        // (read ASC, id DESC): rows after (r, i) have read > r, or read = r and id < i.
        sql.push(" AND (read > ")
            .bind(crate::sql::Arg::I64(read))
            .push(" OR (read = ")
            .bind(crate::sql::Arg::I64(read))
            .push(" AND id < ")
            .bind_text(id)
            .push("))");
    }
    sql.push(&format!(
        " ORDER BY read ASC, id DESC LIMIT {}",
        limit as i64 + 1
    ));
    sql.fetch_all(store).await
}

pub async fn unread_count<'c>(
    e: impl Executor<'c, Database = Any>,
    user: UserId,
) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read = 0")
        .bind(user.to_string())
        .fetch_one(e)
        .await
        .map_err(db_error)
}

/// Marks one of the user's notices read; false when it is not theirs (or does not exist).
/// Marking a read notice again is not an error.
pub async fn mark_read(tx: &mut Tx, user: UserId, id: NotificationId) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE notifications SET read = 1, read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3",
    )
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(user.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// Marks every unread notice of the user read; returns how many.
pub async fn mark_all_read(tx: &mut Tx, user: UserId) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE notifications SET read = 1, read_at = $1 WHERE user_id = $2 AND read = 0",
    )
    .bind(Timestamp::now().0)
    .bind(user.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected())
}

// ---- Webhooks ----

#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: WebhookId,
    pub name: String,
    pub url: String,
    pub kinds: Vec<String>,
    pub department_id: Option<DepartmentId>,
    /// Sealed.
    pub secret: String,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub created_by: Option<UserId>,
    pub updated_at: Timestamp,
    pub generation: i64,
}

const W_COLS: &str = "id, name, url, kinds, department_id, secret, enabled, created_at, created_by, updated_at, generation";

impl Decode for WebhookRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(WebhookRow {
            id: id(r, "id")?,
            name: text(r, "name")?,
            url: text(r, "url")?,
            kinds: serde_json::from_str(&text(r, "kinds")?).unwrap_or_default(),
            department_id: opt_id(r, "department_id")?,
            secret: text(r, "secret")?,
            enabled: r.int("enabled")? != 0,
            created_at: ts(r, "created_at")?,
            created_by: opt_id(r, "created_by")?,
            updated_at: ts(r, "updated_at")?,
            generation: r.int("generation")?,
        })
    }
}

fn scope_key(d: Option<DepartmentId>) -> String {
    d.map(|d| d.to_string())
        .unwrap_or_else(|| "platform".to_string())
}

pub async fn insert_webhook(tx: &mut Tx, w: &WebhookRow) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO webhooks ({W_COLS}, scope_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(w.id.to_string())
    .bind(&w.name)
    .bind(&w.url)
    .bind(serde_json::to_string(&w.kinds).map_err(|e| Error::internal(e.to_string()))?)
    .bind(w.department_id.map(|d| d.to_string()))
    .bind(&w.secret)
    .bind(i64::from(w.enabled))
    .bind(w.created_at.0)
    .bind(w.created_by.map(|u| u.to_string()))
    .bind(w.updated_at.0)
    .bind(w.generation)
    .bind(scope_key(w.department_id))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_webhook<'c>(
    e: impl Executor<'c, Database = Any>,
    id: WebhookId,
) -> Result<Option<WebhookRow>, Error> {
    let r = sqlx::query(&format!("SELECT {W_COLS} FROM webhooks WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(db_error)?;
    r.as_ref().map(WebhookRow::decode).transpose()
}

/// Webhooks visible to a caller: all (`None`), or those of the given departments.
pub async fn list_webhooks(
    store: &Store,
    departments: Option<&[DepartmentId]>,
) -> Result<Vec<WebhookRow>, Error> {
    let mut sql = crate::sql::Sql::new(&format!("SELECT {W_COLS} FROM webhooks WHERE "));
    match departments {
        None => sql.push("1 = 1"),
        Some(ds) => sql.push_in("department_id", ds.iter().map(|d| d.to_string())),
    };
    sql.push(" ORDER BY created_at, id LIMIT 1000");
    sql.fetch_all(store).await
}

/// Updates name, URL, kinds and enabled, conditional on the generation.
pub async fn update_webhook(tx: &mut Tx, w: &WebhookRow, expected: i64) -> Result<bool, Error> {
    let n = sqlx::query(
        "UPDATE webhooks SET name = $1, url = $2, kinds = $3, enabled = $4, updated_at = $5, generation = generation + 1 \
         WHERE id = $6 AND generation = $7",
    )
    .bind(&w.name)
    .bind(&w.url)
    .bind(serde_json::to_string(&w.kinds).map_err(|e| Error::internal(e.to_string()))?)
    .bind(i64::from(w.enabled))
    .bind(Timestamp::now().0)
    .bind(w.id.to_string())
    .bind(expected)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

pub async fn delete_webhook(tx: &mut Tx, id: WebhookId) -> Result<bool, Error> {
    let n = sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(n == 1)
}

/// Enabled webhooks that receive a notice for recipients in `departments`: platform-wide
/// ones and those of those departments (kinds filtered by the caller).
pub async fn webhooks_for(
    tx: &mut Tx,
    departments: &[DepartmentId],
) -> Result<Vec<WebhookRow>, Error> {
    let mut sql = crate::sql::Sql::new(&format!(
        "SELECT {W_COLS} FROM webhooks WHERE enabled = 1 AND (department_id IS NULL OR "
    ));
    sql.push_in("department_id", departments.iter().map(|d| d.to_string()))
        .push(") ORDER BY id");
    let rows = sql.query().fetch_all(&mut **tx).await.map_err(db_error)?;
    rows.iter().map(WebhookRow::decode).collect()
}

// ---- The outbox ----

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    /// `email` or `webhook`.
    pub channel: String,
    pub kind: String,
    pub user_id: Option<UserId>,
    pub webhook_id: Option<WebhookId>,
    pub payload: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_at: Timestamp,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const D_COLS: &str = "id, channel, kind, user_id, webhook_id, payload, state, attempts, next_at, last_status, last_error, created_at, updated_at";

impl Decode for DeliveryRow {
    fn decode<R: Get>(r: &R) -> Result<Self, Error> {
        Ok(DeliveryRow {
            id: id(r, "id")?,
            channel: text(r, "channel")?,
            kind: text(r, "kind")?,
            user_id: opt_id(r, "user_id")?,
            webhook_id: opt_id(r, "webhook_id")?,
            payload: text(r, "payload")?,
            state: text(r, "state")?,
            attempts: r.int("attempts")?,
            next_at: ts(r, "next_at")?,
            last_status: r.opt_int("last_status")?,
            last_error: r.opt_text("last_error")?,
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
        })
    }
}

pub async fn insert_delivery(tx: &mut Tx, d: &DeliveryRow) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO notification_deliveries ({D_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(d.id.to_string())
    .bind(&d.channel)
    .bind(&d.kind)
    .bind(d.user_id.map(|u| u.to_string()))
    .bind(d.webhook_id.map(|w| w.to_string()))
    .bind(&d.payload)
    .bind(&d.state)
    .bind(d.attempts)
    .bind(d.next_at.0)
    .bind(d.last_status)
    .bind(d.last_error.clone())
    .bind(d.created_at.0)
    .bind(d.updated_at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Claims due deliveries for `owner` until `lease_until` (one statement, so two replicas
/// never claim the same row; a crashed replica's rows come back when the lease runs out).
pub async fn claim_deliveries(
    store: &Store,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<DeliveryRow>, Error> {
    let rows = sqlx::query(&format!(
        "UPDATE notification_deliveries SET lease_owner = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM notification_deliveries WHERE state = 'pending' AND next_at <= $3 AND lease_until < $3 \
                      ORDER BY next_at LIMIT {limit}) \
         AND state = 'pending' AND lease_until < $3 RETURNING {D_COLS}"
    ))
    .bind(owner)
    .bind(lease_until.0)
    .bind(now.0)
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    rows.iter().map(DeliveryRow::decode).collect()
}

/// Records one attempt's outcome, if `owner` still holds the row: `sent`, or back to
/// `pending` at `retry_at`, or `failed` when `retry_at` is `None` after a failure.
pub async fn record_attempt(
    store: &Store,
    id: DeliveryId,
    owner: &str,
    ok: bool,
    status: Option<i64>,
    error: Option<&str>,
    retry_at: Option<Timestamp>,
) -> Result<bool, Error> {
    let state = match (ok, retry_at) {
        (true, _) => "sent",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    let n = sqlx::query(
        "UPDATE notification_deliveries SET state = $1, attempts = attempts + 1, next_at = $2, \
         last_status = $3, last_error = $4, updated_at = $5, lease_owner = NULL, lease_until = 0 \
         WHERE id = $6 AND lease_owner = $7 AND state = 'pending'",
    )
    .bind(state)
    .bind(retry_at.map(|t| t.0).unwrap_or(0))
    .bind(status)
    .bind(error.map(str::to_string))
    .bind(Timestamp::now().0)
    .bind(id.to_string())
    .bind(owner)
    .execute(store.pool())
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(n == 1)
}

/// The delivery log: a webhook's deliveries, or (None) every e-mail, newest first.
pub async fn list_deliveries(
    store: &Store,
    webhook: Option<WebhookId>,
    after: Option<String>,
    limit: u32,
) -> Result<Vec<DeliveryRow>, Error> {
    let mut sql = crate::sql::Sql::new(&format!(
        "SELECT {D_COLS} FROM notification_deliveries WHERE "
    ));
    match webhook {
        Some(w) => sql.push("webhook_id = ").bind_text(w.to_string()),
        None => sql.push("channel = 'email'"),
    };
    if let Some(a) = after {
        sql.push(" AND id < ").bind_text(a);
    }
    sql.push(&format!(" ORDER BY id DESC LIMIT {}", limit as i64 + 1));
    sql.fetch_all(store).await
}

/// Pending deliveries (for tests and the operator's view).
pub async fn count_pending(store: &Store) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM notification_deliveries WHERE state = 'pending'")
        .fetch_one(store.pool())
        .await
        .map_err(db_error)
}

/// Frees every delivery claim (SQLite at start: the claims belong to a process that is gone).
pub async fn release_delivery_leases(store: &Store) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE notification_deliveries SET lease_owner = NULL, lease_until = 0 WHERE state = 'pending' AND lease_until > 0",
    )
    .execute(store.pool())
    .await
    .map_err(db_error)?
    .rows_affected())
}
