//! `request_delivery`: from a final approval to resources handed over. The approval's
//! transaction reserved the quota and inserted the instances and volumes with their own
//! create sagas (step `reserve`, done by the starter); this saga waits until every
//! instance has settled, then hands the request over for acceptance. If any instance
//! cannot be created, everything the request produced is released again and the request
//! ends `failed`, naming what went wrong and what was rolled back.

use crate::saga::{Cx, SagaDef, StepError, StepResult};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use zy_model::compute::InstanceState;
use zy_model::id::{InstanceId, ResourceRequestId, VolumeId};
use zy_model::requests::{RequestItem, RequestState, ResourceRequest};
use zy_model::Error;
use zy_store::sagas::SagaState;
use zy_store::{requests as store, Tx};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub request_id: ResourceRequestId,
}

pub struct Delivery;
pub static DELIVERY: Delivery = Delivery;

const RESERVE: usize = 0;
const AWAIT: usize = 1;
const HAND_OVER: usize = 2;

async fn request(cx: &Cx) -> Result<ResourceRequest, StepError> {
    let t: Target = cx.params()?;
    store::get(cx.store.pool(), t.request_id)
        .await?
        .ok_or_else(|| StepError::Fail(format!("request {} is gone", t.request_id)))
}

fn ids<T: std::str::FromStr>(r: &ResourceRequest, kind: &str) -> Vec<T> {
    r.delivered
        .iter()
        .filter(|d| d.kind == kind)
        .filter_map(|d| d.id.parse().ok())
        .collect()
}

/// Every instance created (or resized) and in the state it was asked for; a failed one
/// fails the delivery.
async fn await_resources(cx: &mut Cx) -> StepResult {
    let r = request(cx).await?;
    let mut waiting = 0;
    let watched = ids::<InstanceId>(&r, "instance")
        .into_iter()
        .chain(ids::<InstanceId>(&r, "resized"));
    for id in watched {
        let Some(row) = zy_store::instances::get(cx.store.pool(), id).await? else {
            return Err(StepError::Fail(format!("instance {id} is gone")));
        };
        let i = &row.instance;
        if i.state == InstanceState::Error || i.desired == InstanceState::Deleted {
            return Err(StepError::Fail(format!(
                "云主机 {} 创建失败 / instance {} could not be created: {}",
                i.name,
                i.name,
                i.last_error.clone().unwrap_or_default()
            )));
        }
        let busy = zy_store::sagas::active_for(cx.store.pool(), &id.to_string())
            .await?
            .is_some();
        if i.state != i.desired || busy {
            waiting += 1;
            continue;
        }
        let wanted = r.items.iter().find_map(|it| match it {
            RequestItem::Resize {
                instance_id,
                flavor,
            } if *instance_id == id => Some(flavor),
            _ => None,
        });
        if let Some(f) = wanted.filter(|f| **f != i.flavor_name && **f != i.flavor_id.to_string()) {
            return Err(StepError::Fail(format!(
                "云主机 {} 未能调整为 {f} / instance {} could not be resized to {f}: {}",
                i.name,
                i.name,
                i.last_error.clone().unwrap_or_default()
            )));
        }
    }
    if waiting > 0 {
        return Err(StepError::Wait(format!(
            "{waiting} instances still being created"
        )));
    }
    Ok(())
}

async fn hand_over(cx: &mut Cx) -> StepResult {
    let r = request(cx).await?;
    // A request that named no provider is the provider's that runs what was delivered:
    // its operators follow the request from now on (problems, redelivery).
    let mut runs_it = None;
    if r.provider_id.is_none() {
        for id in ids::<InstanceId>(&r, "instance") {
            if let Some(row) = zy_store::instances::get(cx.store.pool(), id).await? {
                if let Some(p) = row.instance.provider_id {
                    runs_it = Some(p);
                    break;
                }
            }
        }
    }
    let mut tx = cx.begin().await?;
    if let Some(p) = runs_it {
        store::set_provider_if_unset(&mut tx, r.id, p).await?;
    }
    if store::transition(
        &mut tx,
        r.id,
        &[RequestState::Delivering],
        RequestState::Delivered,
        None,
    )
    .await?
    {
        store::add_event(&mut tx, r.id, "delivered", None, None, None).await?;
        super::notify::delivered(&mut tx, &r).await?;
    }
    cx.commit(tx).await
}

/// Releases everything the request produced: instances it created are deleted through
/// their own (forward-only) delete sagas, volumes it created given back at once. Changes
/// to instances the department already had (a resize, a lease, a release) are not undone
/// here: a resize undoes itself when the host refuses it, and the others cannot fail.
async fn roll_back(cx: &mut Cx) -> StepResult {
    let r = request(cx).await?;
    for id in ids::<InstanceId>(&r, "instance") {
        let mut tx = cx.store.begin_write_for(&id.to_string()).await?;
        let Some(row) = zy_store::instances::get(&mut *tx, id).await? else {
            continue;
        };
        let i = &row.instance;
        if i.desired != InstanceState::Deleted {
            if !zy_store::instances::set_desired_if(
                &mut tx,
                id,
                i.generation,
                InstanceState::Deleted,
                false,
            )
            .await?
            {
                return Err(StepError::Retry(format!("instance {id} changed meanwhile")));
            }
            crate::compute::sagas::instance::ensure_next(&mut tx, id).await?;
        }
        tx.commit().await.map_err(zy_store::db_error)?;
    }
    for id in ids::<VolumeId>(&r, "volume") {
        let mut tx = cx.store.begin_write_for(&id.to_string()).await?;
        crate::app::volumes::remove_in(&mut tx, id).await?;
        tx.commit().await.map_err(zy_store::db_error)?;
    }
    cx.compute.wake.notify_one();
    Ok(())
}

impl SagaDef for Delivery {
    fn kind(&self) -> &'static str {
        "request_delivery"
    }
    fn steps(&self) -> &'static [&'static str] {
        &["reserve", "await_resources", "hand_over"]
    }
    fn done_by_starter(&self) -> usize {
        1
    }
    fn action<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            match step {
                // Done in the approval's transaction.
                RESERVE => Ok(()),
                AWAIT => await_resources(cx).await,
                HAND_OVER => hand_over(cx).await,
                _ => Err(StepError::Fail(format!("no step {step}"))),
            }
        })
    }
    fn undo<'a>(&'a self, cx: &'a mut Cx, step: usize) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            match step {
                RESERVE => roll_back(cx).await,
                // Only reached when the hand-over itself failed after its effects: take
                // the hand-over back so the request can end `failed`.
                HAND_OVER => {
                    let r = request(cx).await?;
                    let mut tx = cx.begin().await?;
                    store::transition(
                        &mut tx,
                        r.id,
                        &[RequestState::Delivered],
                        RequestState::Delivering,
                        None,
                    )
                    .await?;
                    cx.commit(tx).await
                }
                _ => Ok(()),
            }
        })
    }
    fn finished<'a>(
        &'a self,
        cx: &'a Cx,
        tx: &'a mut Tx,
        outcome: SagaState,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if outcome != SagaState::Undone {
                return Ok(());
            }
            let t: Target =
                serde_json::from_str(&cx.row.params).map_err(|e| Error::internal(e.to_string()))?;
            let reason = cx
                .row
                .error
                .clone()
                .unwrap_or_else(|| "delivery failed".into());
            let note = format!("交付失败，已回滚全部资源 / delivery failed and everything was rolled back: {reason}");
            if store::transition(
                tx,
                t.request_id,
                &[RequestState::Delivering],
                RequestState::Failed,
                Some(&note),
            )
            .await?
            {
                store::add_event(tx, t.request_id, "failed", None, None, Some(&note)).await?;
                if let Some(r) = store::get(&mut **tx, t.request_id).await? {
                    super::notify::failed(tx, &r, &note).await?;
                }
            }
            Ok(())
        })
    }
}
