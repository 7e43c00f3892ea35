//! Leases (使用期限) and the recycle bin (回收站) of instances.
//!
//! For other features (resource requests, approvals) three functions take the caller's
//! transaction, so a change decided elsewhere commits together with its own records:
//! [`set_lease`], [`release`] and [`restore_in`]. The caller opens the transaction with
//! `Store::begin_write` (or `begin_write_for` when it touches one instance), writes its
//! audit record and commits; then it may `s.compute.wake.notify_one()` (otherwise the
//! reconciler starts the stop within a second).
//!
//! The `lease_manager` task ([`LeaseManager`]) drives every lease: reminders before the
//! end, the stop at the end, the release after the grace period, and the purge after the
//! recycle-bin retention, each recorded by a conditional update (`store/src/leases.rs`).

use super::{commit_audited, commit_system};
use crate::auth::actor::Actor;
use crate::compute::sagas::instance::ensure_next;
use crate::context::RequestContext;
use crate::state::AppState;
use futures_util::future::BoxFuture;
use std::time::Duration;
use zy_model::compute::{Instance, InstanceState, Volume};
use zy_model::id::*;
use zy_model::lease::{self, LeaseProgress, LeaseSettings, LeaseStep};
use zy_model::time::Timestamp;
use zy_model::{t, Error};
use zy_policy::{authorize, Action};
use zy_store::instances::{self, InstanceRow};
use zy_store::{leases, Tx};

use zy_store::leases::{settings_in, SETTINGS_KEY as LEASE_SETTINGS_KEY};

/// Leases looked at and bin entries purged per transaction batch of one pass.
const BATCH: i64 = 200;

// --- notices -------------------------------------------------------------------------
//
// One function per notice. Today each records an instance event, so the instance's
// timeline shows it; the notification feature adds its delivery (in-app, mail) here, to
// the users these recipients resolve to (the project's members and the department's
// admins), in the same transaction.

/// Whom a notice is about and for: the instance and where it belongs.
#[derive(Debug, Clone)]
pub struct Recipients {
    pub instance_id: InstanceId,
    pub instance_name: String,
    pub department_id: DepartmentId,
    pub project_id: ProjectId,
    /// The instance's state when the notice was made (for the event log).
    pub state: InstanceState,
}

impl Recipients {
    pub fn of(i: &Instance) -> Recipients {
        Recipients {
            instance_id: i.id,
            instance_name: i.name.clone(),
            department_id: i.department_id,
            project_id: i.project_id,
            state: i.state,
        }
    }
}

async fn notice_event(tx: &mut Tx, r: &Recipients, to: &str, text: &str) -> Result<(), Error> {
    instances::event(tx, r.instance_id, r.state.as_str(), to, text).await
}

/// The lease ends in `left_secs` (a reminder; sent once per configured offset).
pub async fn notice_lease_ending(
    tx: &mut Tx,
    r: &Recipients,
    end: Timestamp,
    left_secs: i64,
) -> Result<(), Error> {
    let left = lease::human(left_secs);
    let (zh, en) = left.split_once(" / ").unwrap_or((&left, &left));
    let text = format!(
        "使用期限将于 {} 到期（还剩 {zh}），到期后云主机将被停止；如需继续使用请申请延期 / the lease ends at {} (in {en}); the instance will then be stopped — request an extension to keep it",
        end.to_rfc3339(), end.to_rfc3339()
    );
    notice_event(tx, r, "lease_ending", &text).await
}

/// The lease ended and the instance is being stopped; it is released after `grace_secs`.
pub async fn notice_lease_ended(
    tx: &mut Tx,
    r: &Recipients,
    release_at: Timestamp,
) -> Result<(), Error> {
    let text = format!(
        "使用期限已到期，云主机已停止；{} 将移入回收站 / the lease ended and the instance is stopped; it goes to the recycle bin at {}",
        release_at.to_rfc3339(), release_at.to_rfc3339()
    );
    notice_event(tx, r, "lease_ended", &text).await
}

/// The instance was released to the recycle bin and is purged at `purge_at`.
pub async fn notice_released(
    tx: &mut Tx,
    r: &Recipients,
    purge_at: Timestamp,
    reason: &str,
) -> Result<(), Error> {
    let text = format!(
        "已移入回收站（{}），{} 将被彻底删除，部门管理员可在此之前恢复 / released to the recycle bin ({}); deleted for good at {} unless a department admin restores it first",
        reason, purge_at.to_rfc3339(), reason, purge_at.to_rfc3339()
    );
    notice_event(tx, r, "recycled", &text).await
}

/// The instance was restored from the recycle bin (stopped).
pub async fn notice_restored(tx: &mut Tx, r: &Recipients) -> Result<(), Error> {
    notice_event(
        tx,
        r,
        "restored",
        "已从回收站恢复（已停止，可启动）/ restored from the recycle bin (stopped; it can be started)",
    )
    .await
}

/// The instance's retention in the recycle bin is over: it is being deleted for good.
pub async fn notice_purged(tx: &mut Tx, r: &Recipients) -> Result<(), Error> {
    notice_event(
        tx,
        r,
        "purging",
        "回收站保留期已满，云主机及其磁盘将被彻底删除 / the recycle-bin retention is over; the instance and its disks are being deleted for good",
    )
    .await
}

// --- functions for other features (caller's transaction) ------------------------------

async fn load_in(tx: &mut Tx, id: InstanceId) -> Result<InstanceRow, Error> {
    instances::get(&mut **tx, id)
        .await?
        .filter(|r| r.instance.state != InstanceState::Deleted)
        .ok_or_else(|| Error::not_found("instance", id))
}

fn in_bin(i: &Instance) -> Error {
    Error::conflict(t!(
        "云主机 {} 在回收站中，请先恢复" ; "the instance {} is in the recycle bin; restore it first",
        i.name
    ))
    .with_details(serde_json::json!({ "reason": "in_recycle_bin" }))
}

fn being_deleted(i: &Instance) -> Error {
    Error::conflict(t!(
        "云主机 {} 正在删除" ; "the instance {} is being deleted",
        i.name
    ))
    .with_details(serde_json::json!({ "reason": "being_deleted" }))
}

/// Sets (`Some`) or removes (`None`) the lease end of each instance, in the caller's
/// transaction. An extension resets what was pending: its reminders go out again, and an
/// instance stopped because its lease ended may be started again. Every instance must
/// exist and be outside the recycle bin, or nothing is changed (the error names the
/// first that is not). The caller validates `end` (see [`zy_model::lease::check_end`]) and
/// authorises; this records an event per instance.
pub async fn set_lease(
    tx: &mut Tx,
    ids: &[InstanceId],
    end: Option<Timestamp>,
) -> Result<Vec<Instance>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let r = load_in(tx, id).await?;
        let i = &r.instance;
        if i.recycled_at.is_some() {
            return Err(in_bin(i));
        }
        if !leases::set(tx, id, end).await? {
            return Err(being_deleted(i));
        }
        let text = match end {
            Some(e) => format!(
                "使用期限设为 {} / lease ends at {}",
                e.to_rfc3339(),
                e.to_rfc3339()
            ),
            None => "已取消使用期限 / lease removed".to_string(),
        };
        instances::event(tx, id, i.state.as_str(), i.state.as_str(), &text).await?;
        out.push(load_in(tx, id).await?.instance);
    }
    Ok(out)
}

/// Releases each instance to the recycle bin in the caller's transaction: stopped (the
/// stop saga starts now or when the running one ends), disks kept, quota still counted,
/// purged after the configured retention. Every instance must exist, not be in the bin
/// and not be being deleted, or the caller's transaction must be dropped (the error names
/// the first that fails).
pub async fn release(
    tx: &mut Tx,
    ids: &[InstanceId],
    reason: &str,
) -> Result<Vec<Instance>, Error> {
    let settings = settings_in(tx).await?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let r = load_in(tx, id).await?;
        let i = &r.instance;
        if i.recycled_at.is_some() {
            return Err(Error::conflict(t!(
                "云主机 {} 已在回收站中" ; "the instance {} is already in the recycle bin",
                i.name
            ))
            .with_details(serde_json::json!({ "reason": "in_recycle_bin" })));
        }
        let purge_at = Timestamp::now().plus_secs(settings.retention_secs);
        if !leases::release(tx, id, reason, purge_at, None).await? {
            return Err(being_deleted(i));
        }
        ensure_next(tx, id).await?;
        notice_released(tx, &Recipients::of(i), purge_at, reason).await?;
        out.push(load_in(tx, id).await?.instance);
    }
    Ok(out)
}

/// Brings one instance back from the recycle bin (stopped), in the caller's transaction,
/// with `lease_end` as its new lease (`None`: none — an ended lease is not kept, or the
/// instance would be stopped and released again at once).
pub async fn restore_in(
    tx: &mut Tx,
    id: InstanceId,
    lease_end: Option<Timestamp>,
) -> Result<Instance, Error> {
    let r = load_in(tx, id).await?;
    let i = &r.instance;
    if i.recycled_at.is_none() {
        return Err(Error::conflict(t!(
            "云主机 {} 不在回收站中" ; "the instance {} is not in the recycle bin",
            i.name
        ))
        .with_details(serde_json::json!({ "reason": "not_in_recycle_bin" })));
    }
    if !leases::restore(tx, id, lease_end).await? {
        return Err(being_deleted(i));
    }
    notice_restored(tx, &Recipients::of(i)).await?;
    Ok(load_in(tx, id).await?.instance)
}

// --- use cases of the API -------------------------------------------------------------

async fn seen(s: &AppState, id: InstanceId) -> Result<Instance, Error> {
    instances::get(s.store.pool(), id)
        .await?
        .filter(|r| r.instance.state != InstanceState::Deleted)
        .map(|r| r.instance)
        .ok_or_else(|| Error::not_found("instance", id))
}

/// The instance, once the caller is known to decide its lease (its department's admin or
/// the platform admin) and the requested end is acceptable.
async fn lease_decider(
    s: &AppState,
    actor: &Actor,
    id: InstanceId,
    end: Option<Timestamp>,
) -> Result<Instance, Error> {
    let i = seen(s, id).await?;
    authorize(
        &actor.principal,
        Action::InstanceLease(i.department_id, i.project_id),
    )?;
    if let Some(e) = end {
        lease::check_end("lease_end", e, Timestamp::now())?;
    }
    Ok(i)
}

/// `PUT /v1/instances/{id}/lease`: a department admin (or the platform admin) sets,
/// extends or removes the lease.
pub async fn put_lease(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: InstanceId,
    end: Option<Timestamp>,
) -> Result<Instance, Error> {
    let i = lease_decider(s, actor, id, end).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let out = set_lease(&mut tx, &[id], end).await?;
    let detail = serde_json::json!({ "name": i.name, "from": i.lease_end, "to": end });
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "set_instance_lease",
        "instance",
        &id.to_string(),
        detail,
    )
    .await?;
    out.into_iter()
        .next()
        .ok_or_else(|| Error::internal("set_lease returned nothing"))
}

/// `POST /v1/instances/{id}/release`: whoever may delete the instance may release it.
pub async fn release_one(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: InstanceId,
    reason: Option<String>,
) -> Result<Instance, Error> {
    let i = seen(s, id).await?;
    authorize(
        &actor.principal,
        Action::InstanceOperate(i.department_id, i.project_id),
    )?;
    let reason = release_reason(actor, reason)?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let out = release(&mut tx, &[id], &reason).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "release_instance",
        "instance",
        &id.to_string(),
        serde_json::json!({ "name": i.name, "reason": reason }),
    )
    .await?;
    s.compute.wake.notify_one();
    out.into_iter()
        .next()
        .ok_or_else(|| Error::internal("release returned nothing"))
}

/// The recorded reason of a release by `actor`: who, and what they wrote (validated).
fn release_reason(actor: &Actor, reason: Option<String>) -> Result<String, Error> {
    let reason = reason.map(|r| r.trim().to_string()).unwrap_or_default();
    if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(Error::validation(
            "reason",
            t!(
                "原因最多 200 个字符，且不能含控制字符",
                "the reason is at most 200 characters without control characters"
            ),
        ));
    }
    let who = actor.summary().name;
    Ok(if reason.is_empty() {
        format!("由 {who} 释放 / released by {who}")
    } else {
        format!("由 {who} 释放：{reason} / released by {who}: {reason}")
    })
}

/// `POST /v1/instances/{id}/restore`: a department admin (or the platform admin) brings
/// an instance back from the recycle bin.
pub async fn restore(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: InstanceId,
    lease_end: Option<Timestamp>,
) -> Result<Instance, Error> {
    let i = lease_decider(s, actor, id, lease_end).await?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let out = restore_in(&mut tx, id, lease_end).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "restore_instance",
        "instance",
        &id.to_string(),
        serde_json::json!({ "name": i.name, "lease_end": lease_end }),
    )
    .await?;
    Ok(out)
}

pub async fn get_settings(s: &AppState, actor: &Actor) -> Result<LeaseSettings, Error> {
    authorize(&actor.principal, Action::LeaseSettingsManage)?;
    leases::settings(&s.store).await
}

/// Changes the settings; every pending lease is looked at again under them on the next
/// pass (items already in the recycle bin keep the purge time they were told).
pub async fn put_settings(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    new: LeaseSettings,
) -> Result<LeaseSettings, Error> {
    authorize(&actor.principal, Action::LeaseSettingsManage)?;
    let new = new.validated()?;
    let mut tx = s.store.begin_write().await?;
    let old = settings_in(&mut tx).await?;
    zy_store::settings::put(&mut tx, LEASE_SETTINGS_KEY, &new).await?;
    let rechecked = leases::recheck_all(&mut tx).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "update_lease_settings",
        "settings",
        LEASE_SETTINGS_KEY,
        serde_json::json!({ "before": old, "after": new, "leases_rechecked": rechecked }),
    )
    .await?;
    Ok(new)
}

// --- volumes --------------------------------------------------------------------------

/// Releases detached volumes to the recycle bin in the caller's transaction (space and
/// quota kept, deleted for good after the retention). Every volume must exist, be
/// detached and not be in the bin, or the caller's transaction must be dropped.
pub async fn release_volumes(
    tx: &mut Tx,
    ids: &[VolumeId],
    reason: &str,
) -> Result<Vec<Volume>, Error> {
    let settings = settings_in(tx).await?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let v = zy_store::volumes::get_for_update(tx, id)
            .await?
            .ok_or_else(|| Error::not_found("volume", id))?;
        let purge_at = Timestamp::now().plus_secs(settings.retention_secs);
        if !leases::release_volume(tx, id, reason, purge_at).await? {
            return Err(if v.recycled_at.is_some() {
                Error::conflict(t!("云硬盘 {} 已在回收站中" ; "the volume {} is already in the recycle bin", v.name))
                    .with_details(serde_json::json!({ "reason": "in_recycle_bin" }))
            } else {
                Error::conflict(t!("云硬盘 {} 仍挂载在云主机上，请先卸载" ; "the volume {} is attached; detach it first", v.name))
                    .with_details(serde_json::json!({ "reason": "attached", "instance_id": v.instance_id }))
            });
        }
        out.push(
            zy_store::volumes::get_for_update(tx, id)
                .await?
                .ok_or_else(|| Error::not_found("volume", id))?,
        );
    }
    Ok(out)
}

/// `POST /v1/volumes/{id}/release`: whoever may delete the volume may release it.
pub async fn release_volume(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: VolumeId,
    reason: Option<String>,
) -> Result<Volume, Error> {
    let v = super::volumes::load(s, actor, id).await?;
    let reason = release_reason(actor, reason)?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    let out = release_volumes(&mut tx, &[id], &reason).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "release_volume",
        "volume",
        &id.to_string(),
        serde_json::json!({ "name": v.name, "reason": reason }),
    )
    .await?;
    out.into_iter()
        .next()
        .ok_or_else(|| Error::internal("release returned nothing"))
}

/// `POST /v1/volumes/{id}/restore`: a department admin (or the platform admin).
pub async fn restore_volume(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: VolumeId,
) -> Result<Volume, Error> {
    let v = zy_store::volumes::get(s.store.pool(), id)
        .await?
        .ok_or_else(|| Error::not_found("volume", id))?;
    authorize(
        &actor.principal,
        Action::InstanceLease(v.department_id, v.project_id),
    )?;
    let mut tx = s.store.begin_write_for(&id.to_string()).await?;
    if zy_store::sagas::active_for(&mut *tx, &id.to_string())
        .await?
        .is_some()
    {
        return Err(Error::conflict(t!(
            "云硬盘 {} 正在被删除" ; "the volume {} is being deleted",
            v.name
        ))
        .with_details(serde_json::json!({ "reason": "being_deleted" })));
    }
    if !leases::restore_volume(&mut tx, id).await? {
        return Err(Error::conflict(t!(
            "云硬盘 {} 不在回收站中" ; "the volume {} is not in the recycle bin",
            v.name
        ))
        .with_details(serde_json::json!({ "reason": "not_in_recycle_bin" })));
    }
    let out = zy_store::volumes::get_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| Error::not_found("volume", id))?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "restore_volume",
        "volume",
        &id.to_string(),
        serde_json::json!({ "name": v.name }),
    )
    .await?;
    Ok(out)
}

async fn purge_volume(s: &AppState, seen: &Volume, pass: &mut Pass) -> Result<(), Error> {
    let mut tx = s.store.begin_write_for(&seen.id.to_string()).await?;
    let Some(v) = zy_store::volumes::get_for_update(&mut tx, seen.id).await? else {
        return Ok(());
    };
    if v.recycled_at.is_none() || v.purge_at != seen.purge_at {
        pass.lost_races += 1;
        return Ok(());
    }
    // Through the delete saga (the provider's storage first, then the row, space and
    // quota). Busy with a saga (it cannot be attached while in the bin, so the purge's own
    // one, still going): the next pass looks again.
    let saga_id = match super::volumes::start_delete(&mut tx, &v).await {
        Ok(Some(id)) => id,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::warn!(volume = %v.id, error = %e, "recycle-bin purge of a volume postponed");
            return Ok(());
        }
    };
    pass.purged += 1;
    commit_system(
        tx,
        "purge_volume",
        "volume",
        &v.id.to_string(),
        serde_json::json!({ "name": v.name, "size_gib": v.size_gib, "recycled_at": v.recycled_at, "saga_id": saga_id }),
    )
    .await?;
    s.compute.wake.notify_one();
    Ok(())
}

// --- the background task ----------------------------------------------------------------

/// The `lease_manager` task (one replica, every second): applies [`lease::step`] to each
/// lease that is due and purges the recycle bin's expired entries through the delete saga.
pub struct LeaseManager(pub AppState);

pub fn task(s: AppState) -> std::sync::Arc<dyn crate::tasks::Task> {
    std::sync::Arc::new(LeaseManager(s))
}

#[derive(Default, serde::Serialize)]
struct Pass {
    reminded: u32,
    ended: u32,
    released: u32,
    purged: u32,
    rescheduled: u32,
    lost_races: u32,
}

impl crate::tasks::Task for LeaseManager {
    fn name(&self) -> &'static str {
        "lease_manager"
    }
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn singleton(&self) -> bool {
        true
    }
    fn activate(&self) -> BoxFuture<'_, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let s = &self.0;
            let settings = leases::settings(&s.store).await?;
            let mut pass = Pass::default();
            let now = Timestamp::now();
            for d in leases::due(&s.store, now, BATCH).await? {
                lease_step(s, &settings, &d, now, &mut pass).await?;
            }
            for r in leases::purge_due(&s.store, now, BATCH).await? {
                purge(s, &r, &mut pass).await?;
            }
            for v in leases::volumes_to_purge(&s.store, now, BATCH).await? {
                purge_volume(s, &v, &mut pass).await?;
            }
            if pass.ended + pass.released + pass.purged > 0 {
                s.compute.wake.notify_one();
            }
            serde_json::to_value(&pass).map_err(|e| Error::internal(e.to_string()))
        })
    }
}

async fn lease_step(
    s: &AppState,
    settings: &LeaseSettings,
    d: &leases::LeaseDue,
    now: Timestamp,
    pass: &mut Pass,
) -> Result<(), Error> {
    let i = &d.row.instance;
    let Some(end) = i.lease_end else {
        return Ok(());
    };
    let p = LeaseProgress {
        end,
        reminded: d.reminded,
        ended: i.lease_ended,
    };
    let who = Recipients::of(i);
    let mut tx = s.store.begin_write_for(&i.id.to_string()).await?;
    let (done, action, detail) = match lease::step(now, &p, settings) {
        LeaseStep::Remind(offset) => {
            let after = LeaseProgress {
                reminded: Some(offset),
                ..p
            };
            let ok = leases::record_reminder(
                &mut tx,
                i.id,
                end,
                offset,
                lease::next_at(&after, settings),
            )
            .await?;
            if ok {
                notice_lease_ending(&mut tx, &who, end, end.secs_since(now)).await?;
                pass.reminded += 1;
            }
            (
                ok,
                "remind_instance_lease",
                serde_json::json!({ "offset_secs": offset }),
            )
        }
        LeaseStep::End => {
            let release_at = end.plus_secs(settings.grace_secs);
            let ok = leases::record_end(&mut tx, i.id, end, release_at).await?;
            if ok {
                ensure_next(&mut tx, i.id).await?;
                notice_lease_ended(&mut tx, &who, release_at).await?;
                pass.ended += 1;
            }
            (
                ok,
                "end_instance_lease",
                serde_json::json!({ "release_at": release_at }),
            )
        }
        LeaseStep::Release => {
            let purge_at = now.plus_secs(settings.retention_secs);
            let reason = "使用期限到期 / the lease ended";
            let ok = leases::release(&mut tx, i.id, reason, purge_at, Some(end)).await?;
            if ok {
                ensure_next(&mut tx, i.id).await?;
                notice_released(&mut tx, &who, purge_at, reason).await?;
                pass.released += 1;
            }
            (
                ok,
                "release_instance",
                serde_json::json!({ "reason": "lease_ended", "purge_at": purge_at }),
            )
        }
        LeaseStep::Wait => {
            let ok = leases::set_next(&mut tx, i.id, end, d.next_at, lease::next_at(&p, settings))
                .await?;
            if ok {
                tx.commit().await.map_err(zy_store::db_error)?;
                pass.rescheduled += 1;
            } else {
                pass.lost_races += 1;
            }
            return Ok(());
        }
    };
    if !done {
        // Recorded meanwhile (another replica, a request extending the lease): nothing to do.
        pass.lost_races += 1;
        return Ok(());
    }
    let mut detail = detail;
    detail["name"] = serde_json::json!(i.name);
    detail["lease_end"] = serde_json::json!(end);
    commit_system(tx, action, "instance", &i.id.to_string(), detail).await
}

async fn purge(s: &AppState, r: &InstanceRow, pass: &mut Pass) -> Result<(), Error> {
    let i = &r.instance;
    let Some(purge_at) = i.purge_at else {
        return Ok(());
    };
    let mut tx = s.store.begin_write_for(&i.id.to_string()).await?;
    if !leases::mark_purge(&mut tx, i.id, purge_at).await? {
        pass.lost_races += 1;
        return Ok(());
    }
    ensure_next(&mut tx, i.id).await?;
    notice_purged(&mut tx, &Recipients::of(i)).await?;
    pass.purged += 1;
    commit_system(
        tx,
        "purge_instance",
        "instance",
        &i.id.to_string(),
        serde_json::json!({ "name": i.name, "recycled_at": i.recycled_at }),
    )
    .await
}
