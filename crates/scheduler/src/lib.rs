//! zhengyun's placement engine: given hosts with overcommit ratios and what they already
//! run, choose the host for each new instance. Packing (the default) keeps as few hosts
//! busy as possible; spreading, per zone, keeps instances apart. Zones, provider
//! allow-lists and (anti-)affinity groups are honoured exactly, and a refusal says which
//! filter ran out.
//!
//! Pure: no IO, no async, no clocks. The server mirrors its database rows into a
//! [`Scheduler`], asks [`Scheduler::place`], claims in the database, then records the claim
//! with [`Scheduler::claim`]. Decisions cost microseconds on 10,000 hosts (see
//! `benches/placement.rs`) because an index keeps the few partly used hosts apart from the
//! many empty or full ones.
//!
//! [`plan_consolidation`] is the other direction: from where instances run, the live
//! migrations that empty lightly used hosts, safe to execute one by one and to stop anywhere.

mod consolidate;
mod explain;
mod filter;
mod group;
mod host;
mod index;
mod request;
mod scheduler;

#[cfg(test)]
mod proptests;

pub use consolidate::{
    plan_consolidation, ConsolidationInput, InstanceId, Move, Occupancy, Plan, PlanHost,
    PlanInstance, Skip, Target, Utilisation,
};
pub use explain::{ClaimError, NoValidHost, Rejections, UnknownHost};
pub use filter::Filter;
pub use host::{Host, HostId, HostState, Usage};
pub use request::{GroupId, GroupPolicy, Request, Strategy};
pub use scheduler::Scheduler;
