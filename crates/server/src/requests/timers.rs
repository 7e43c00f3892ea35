//! `request_timers` (singleton): reminds the reviewers of a step that is past its deadline
//! and the providers' operators of a delivery past its deadline, once each — the reminder
//! is recorded with a conditional update, so a restart or a second replica never sends it
//! twice.

use crate::state::AppState;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use zy_model::time::Timestamp;
use zy_model::Error;
use zy_store::requests as store;

pub fn task(s: AppState) -> Arc<dyn crate::tasks::Task> {
    Arc::new(RequestTimers(s))
}

struct RequestTimers(AppState);

impl crate::tasks::Task for RequestTimers {
    fn name(&self) -> &'static str {
        "request_timers"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(self.0.config.request_timer_secs.max(1))
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let s = &self.0;
            let (steps, deliveries) = store::overdue(&s.store, Timestamp::now()).await?;
            let (mut reviews, mut late) = (0, 0);
            for r in steps {
                let mut tx = s.store.begin_write_for(&r.id.to_string()).await?;
                if store::mark_reminded(&mut tx, r.id, false, r.current_step).await? {
                    let step = r.steps.get(r.current_step as usize).cloned();
                    store::add_event(
                        &mut tx,
                        r.id,
                        "remind",
                        None,
                        step.as_ref().map(|s| s.name.as_str()),
                        None,
                    )
                    .await?;
                    if let Some(step) = &step {
                        super::notify::approval_overdue(&mut tx, &r, step).await?;
                    }
                    reviews += 1;
                }
                tx.commit().await.map_err(zy_store::db_error)?;
            }
            for r in deliveries {
                let mut tx = s.store.begin_write_for(&r.id.to_string()).await?;
                if store::mark_reminded(&mut tx, r.id, true, 0).await? {
                    store::add_event(&mut tx, r.id, "delivery_overdue", None, None, None).await?;
                    super::notify::delivery_needed(&mut tx, &r).await?;
                    late += 1;
                }
                tx.commit().await.map_err(zy_store::db_error)?;
            }
            Ok(serde_json::json!({ "reviews_reminded": reviews, "deliveries_reminded": late }))
        })
    }
}
