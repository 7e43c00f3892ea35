//! The machinery behind resource requests: the delivery saga that turns a final approval
//! into running resources (or rolls them back), the reminders for overdue reviews and
//! deliveries, and who is told what. The use cases themselves are in `app/requests.rs`.

pub mod delivery;
pub mod notify;
pub mod timers;
