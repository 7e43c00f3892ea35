//! The one error type of the QEMU layer. Callers (the agent, the `kvm` driver) care about
//! one question first — retry, give up, or treat as absent — which [`Error::kind`] answers.

use std::time::Duration;

/// What a caller should do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying: QEMU was busy, slow or briefly unreachable.
    Transient,
    /// Retrying will not help: a bad template, a bad spec, an impossible request.
    Permanent,
    /// The VM, disk, volume or template does not exist.
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found")]
    NotFound { what: String },

    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },

    #[error("QMP command {command} failed: {class}: {desc}")]
    Qmp {
        command: String,
        class: String,
        desc: String,
    },

    #[error("QMP connection to {socket}")]
    QmpIo {
        socket: String,
        #[source]
        source: std::io::Error,
    },

    #[error("QMP protocol error: {0}")]
    QmpProtocol(String),

    #[error("template {name} refused: {reason}")]
    BadTemplate { name: String, reason: String },

    #[error("invalid VM spec: {0}")]
    BadSpec(String),

    #[error("VM {0} is not running")]
    NotRunning(uuid::Uuid),

    #[error("{command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether to retry, give up or treat the thing as absent.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Timeout { .. } | Error::QmpIo { .. } | Error::Io { .. } => ErrorKind::Transient,
            Error::Qmp { class, .. } if class == "DeviceNotActive" => ErrorKind::Transient,
            Error::Qmp { class, .. } if class == "DeviceNotFound" => ErrorKind::NotFound,
            Error::Command { stderr, .. } if stderr.contains("lock") => ErrorKind::Transient,
            Error::Qmp { .. }
            | Error::QmpProtocol(_)
            | Error::BadTemplate { .. }
            | Error::BadSpec(_)
            | Error::NotRunning(_)
            | Error::Command { .. } => ErrorKind::Permanent,
        }
    }

    /// Shorthand for [`ErrorKind::Transient`].
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            return Error::NotFound { what: what.into() };
        }
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
