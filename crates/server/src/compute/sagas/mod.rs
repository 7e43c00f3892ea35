//! The compute sagas, run by the one saga engine (`crate::saga`): instances (create,
//! start, stop, reboot, resize, delete), volumes (attach, detach, extend, delete) and live
//! migration, recovery after a host failure; load balancers (apply, delete).

pub mod instance;
pub mod lb;
pub mod migrate;
pub mod recover;
pub mod volume;

use crate::saga::SagaDef;

/// Every compute saga, for the engine's registry.
pub static ALL: &[&dyn SagaDef] = &[
    &instance::CREATE,
    &instance::START,
    &instance::STOP,
    &instance::REBOOT,
    &instance::RESIZE,
    &instance::DELETE,
    &volume::ATTACH,
    &volume::DETACH,
    &volume::EXTEND,
    &volume::DELETE,
    &migrate::MIGRATE,
    &recover::RECOVER,
    &lb::APPLY,
    &lb::DELETE,
];
