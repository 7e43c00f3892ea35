//! Notifications: `/v1/me/notifications…` (one's own inbox and preferences),
//! `/v1/notify/mail…` (the platform's mail settings and e-mail log) and `/v1/webhooks…`.

use crate::app::notifications::{self as app, *};
use crate::auth::actor::Actor;
use crate::context::RequestContext;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use zy_model::id::{DepartmentId, NotificationId, WebhookId};
use zy_model::page::Page;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListInbox {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// Only unread notices.
    pub unread: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWebhooks {
    /// Only this department's subscriptions.
    #[param(value_type = Option<String>, format = Uuid)]
    pub department_id: Option<DepartmentId>,
}

#[utoipa::path(get, path = "/v1/me/notifications", tag = "notifications", params(ListInbox),
    responses((status = 200, body = Page<InboxItem>), (status = "default", body = ErrorBody)))]
pub async fn list_notifications(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Query(q): Query<ListInbox>,
) -> ApiResult<axum::Json<Page<InboxItem>>> {
    Ok(axum::Json(
        app::inbox(
            &s,
            &actor,
            ctx.lang,
            q.unread.unwrap_or(false),
            q.limit,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/v1/me/notifications/unread-count", tag = "notifications",
    responses((status = 200, body = UnreadCount), (status = "default", body = ErrorBody)))]
pub async fn unread_notifications(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<UnreadCount>> {
    Ok(axum::Json(app::unread_count(&s, &actor).await?))
}

#[utoipa::path(post, path = "/v1/me/notifications/{id}/read", tag = "notifications", params(("id" = NotificationId, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn read_notification(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<NotificationId>,
) -> ApiResult<StatusCode> {
    app::mark_read(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/me/notifications/read-all", tag = "notifications",
    responses((status = 200, body = MarkedRead), (status = "default", body = ErrorBody)))]
pub async fn read_all_notifications(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
) -> ApiResult<axum::Json<MarkedRead>> {
    Ok(axum::Json(app::mark_all_read(&s, &ctx, &actor).await?))
}

#[utoipa::path(get, path = "/v1/me/notification-preferences", tag = "notifications",
    responses((status = 200, body = Preferences), (status = "default", body = ErrorBody)))]
pub async fn get_notification_preferences(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<Preferences>> {
    Ok(axum::Json(app::preferences(&s, &actor).await?))
}

#[utoipa::path(put, path = "/v1/me/notification-preferences", tag = "notifications", request_body = UpdatePreferences,
    responses((status = 200, body = Preferences), (status = "default", body = ErrorBody)))]
pub async fn update_notification_preferences(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<UpdatePreferences>,
) -> ApiResult<axum::Json<Preferences>> {
    Ok(axum::Json(
        app::update_preferences(&s, &ctx, &actor, b).await?,
    ))
}

#[utoipa::path(get, path = "/v1/notify/mail", tag = "notifications",
    responses((status = 200, body = MailSettings), (status = "default", body = ErrorBody)))]
pub async fn get_mail_settings(
    State(s): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<MailSettings>> {
    Ok(axum::Json(app::mail_settings(&s, &actor).await?))
}

#[utoipa::path(put, path = "/v1/notify/mail", tag = "notifications", request_body = UpdateMailSettings,
    responses((status = 200, body = MailSettings), (status = "default", body = ErrorBody)))]
pub async fn update_mail_settings(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<UpdateMailSettings>,
) -> ApiResult<axum::Json<MailSettings>> {
    Ok(axum::Json(
        app::update_mail_settings(&s, &ctx, &actor, b).await?,
    ))
}

#[utoipa::path(get, path = "/v1/notify/mail/deliveries", tag = "notifications", params(ListDeliveries),
    responses((status = 200, body = Page<Delivery>), (status = "default", body = ErrorBody)))]
pub async fn list_mail_deliveries(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListDeliveries>,
) -> ApiResult<axum::Json<Page<Delivery>>> {
    Ok(axum::Json(
        app::mail_deliveries(&s, &actor, q.limit, q.cursor.as_deref()).await?,
    ))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "notifications", params(ListWebhooks),
    responses((status = 200, body = Vec<Webhook>), (status = "default", body = ErrorBody)))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ListWebhooks>,
) -> ApiResult<axum::Json<Vec<Webhook>>> {
    Ok(axum::Json(
        app::list_webhooks(&s, &actor, q.department_id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "notifications", request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook), (status = "default", body = ErrorBody)))]
pub async fn create_webhook(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Json(b): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, axum::Json<CreatedWebhook>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(app::create_webhook(&s, &ctx, &actor, b).await?),
    ))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "notifications", params(("id" = WebhookId, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = Webhook), (status = "default", body = ErrorBody)))]
pub async fn update_webhook(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<WebhookId>,
    Json(b): Json<UpdateWebhook>,
) -> ApiResult<axum::Json<Webhook>> {
    Ok(axum::Json(
        app::update_webhook(&s, &ctx, &actor, id, b).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "notifications", params(("id" = WebhookId, Path)),
    responses((status = 204), (status = "default", body = ErrorBody)))]
pub async fn delete_webhook(
    State(s): State<AppState>,
    ctx: RequestContext,
    actor: Actor,
    Path(id): Path<WebhookId>,
) -> ApiResult<StatusCode> {
    app::delete_webhook(&s, &ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "notifications", params(("id" = WebhookId, Path), ListDeliveries),
    responses((status = 200, body = Page<Delivery>), (status = "default", body = ErrorBody)))]
pub async fn list_webhook_deliveries(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<WebhookId>,
    Query(q): Query<ListDeliveries>,
) -> ApiResult<axum::Json<Page<Delivery>>> {
    Ok(axum::Json(
        app::webhook_deliveries(&s, &actor, id, q.limit, q.cursor.as_deref()).await?,
    ))
}
