//! Authentication: password hashing, secrets for sessions and tokens, and the extractor
//! that turns a request's credentials into an [`actor::Actor`].

pub mod actor;
pub mod cache;
pub mod limiter;
pub mod password;
pub mod seal;
pub mod secrets;
