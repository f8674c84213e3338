//! The library's error type. Every variant renders as one line that names
//! what was wrong; the CLI prints it as is.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {0:?}: it must match ^[\\w+.-]+$")]
    InvalidId(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("{0}")]
    Spec(String),
    #[error("cannot {op} container {id:?}: {}", state_words(status))]
    BadState {
        id: String,
        op: &'static str,
        status: String,
    },
    // Not marked as the error's source: the message already carries it,
    // and clients would see it twice.
    #[error("{what}: {}", errno_text(.err))]
    Io { what: String, err: io::Error },
    /// Something the sandbox (boot, the gofer, a container's init) failed
    /// to do; the message says what.
    #[error("{0}")]
    Sandbox(String),
    #[error("{0}")]
    Invalid(String),
    /// Something the caller lacks the privilege for (a rootless caller
    /// without subordinate ids, without a cgroup of its own); the message
    /// names the privilege.
    #[error("{0}")]
    Privilege(String),
    /// An error answer from boot, with its kind.
    #[error("{message}")]
    Remote {
        kind: crate::control::ErrorKind,
        message: String,
    },
    /// boot closed the connection without answering (it died).
    #[error("sandbox {0:?} exited before answering")]
    SandboxGone(String),
    #[error(transparent)]
    Cgroup(#[from] husk_cgroups::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] husk_seccomp::SeccompError),
}

impl Error {
    /// An OS error while doing `what` (rendered "what: no such file or
    /// directory", the way runc prints them).
    pub fn os(what: impl std::fmt::Display, err: impl Into<io::Error>) -> Error {
        Error::Io {
            what: what.to_string(),
            err: err.into(),
        }
    }

    /// What kind of failure this is, as the control protocol carries it.
    pub fn kind(&self) -> crate::control::ErrorKind {
        use crate::control::ErrorKind as K;
        match self {
            Error::InvalidId(_) | Error::Spec(_) | Error::Invalid(_) => K::Invalid,
            Error::NotFound(_) => K::NotFound,
            Error::Privilege(_) => K::Refused,
            Error::Exists(_) => K::Exists,
            Error::BadState { .. } => K::BadState,
            Error::Remote { kind, .. } => *kind,
            Error::Seccomp(husk_seccomp::SeccompError::Spec { .. }) => K::Invalid,
            Error::Cgroup(husk_cgroups::CgroupError::Unsupported { .. })
            | Error::Cgroup(husk_cgroups::CgroupError::InvalidPath { .. }) => K::Invalid,
            Error::Io { .. }
            | Error::Sandbox(_)
            | Error::SandboxGone(_)
            | Error::Cgroup(_)
            | Error::Seccomp(_) => K::Sandbox,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach "what we were doing" to an io::Error.
pub trait IoContext<T> {
    fn ctx<S: Into<String>>(self, what: S) -> Result<T>;
    fn with_ctx<S: Into<String>, F: FnOnce() -> S>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx<S: Into<String>>(self, what: S) -> Result<T> {
        self.map_err(|err| Error::Io {
            what: what.into(),
            err,
        })
    }
    fn with_ctx<S: Into<String>, F: FnOnce() -> S>(self, f: F) -> Result<T> {
        self.map_err(|err| Error::Io {
            what: f().into(),
            err,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, what: S) -> Result<T> {
        self.map_err(|e| Error::Io {
            what: what.into(),
            err: e.into(),
        })
    }
    fn with_ctx<S: Into<String>, F: FnOnce() -> S>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::Io {
            what: f().into(),
            err: e.into(),
        })
    }
}

pub use husk_sys::errno_text;

/// "it is paused"; for a stopped container also runc's words, which
/// clients match ("container not running").
fn state_words(status: &str) -> String {
    if status == "stopped" {
        "container not running (it is stopped)".into()
    } else {
        format!("it is {status}")
    }
}
