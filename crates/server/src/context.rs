//! What every request carries besides its body: the request id, the client's address and
//! language, and (once authenticated) who is acting. The audit log is written from this.

use crate::auth::actor::Actor;
use std::sync::{Arc, Mutex};
use zy_model::audit::{AuditEntry, Outcome};
use zy_model::id::RequestId;
use zy_model::text::Lang;
use zy_model::time::Timestamp;

/// Set by the outer middleware for every request.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: RequestId,
    pub source_ip: String,
    pub lang: Lang,
    /// Filled in by authentication, read back by the failure auditor.
    pub actor: Arc<Mutex<Option<ActorSummary>>>,
    /// Set when the handler wrote its own audit record, so no second one is added.
    pub audited: Arc<std::sync::atomic::AtomicBool>,
}

/// Who acted, as the audit log names them.
#[derive(Clone, Debug)]
pub struct ActorSummary {
    pub user_id: Option<String>,
    pub name: String,
    pub roles: String,
}

impl RequestContext {
    pub fn new(source_ip: String, lang: Lang) -> Self {
        RequestContext {
            request_id: RequestId::new(),
            source_ip,
            lang,
            actor: Arc::new(Mutex::new(None)),
            audited: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    pub fn set_actor(&self, a: ActorSummary) {
        if let Ok(mut g) = self.actor.lock() {
            *g = Some(a);
        }
    }

    pub fn actor_summary(&self) -> Option<ActorSummary> {
        self.actor.lock().ok().and_then(|g| g.clone())
    }

    pub fn mark_audited(&self) {
        self.audited
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn was_audited(&self) -> bool {
        self.audited.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// An audit entry for an action by `actor` (or the anonymous caller).
    pub fn entry(
        &self,
        actor: Option<&Actor>,
        action: &str,
        target_type: &str,
        target_id: &str,
        outcome: Outcome,
        detail: serde_json::Value,
    ) -> AuditEntry {
        let summary = actor.map(Actor::summary).or_else(|| self.actor_summary());
        AuditEntry {
            at: Timestamp::now(),
            actor_id: summary.as_ref().and_then(|s| s.user_id.clone()),
            actor_name: summary
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_else(|| "anonymous".into()),
            actor_roles: summary.map(|s| s.roles).unwrap_or_default(),
            source_ip: self.source_ip.clone(),
            action: action.to_string(),
            target_type: target_type.to_string(),
            target_id: target_id.to_string(),
            outcome,
            request_id: self.request_id.to_string(),
            detail: detail.to_string(),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestContext {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| {
                crate::error::ApiError(zy_model::Error::internal("request context missing"))
            })
    }
}
