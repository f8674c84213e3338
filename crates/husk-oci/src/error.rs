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
    #[error("cannot {op} container {id:?}: it is {status}")]
    BadState {
        id: String,
        op: &'static str,
        status: String,
    },
    // Not marked as the error's source: the message already carries it,
    // and clients would see it twice.
    #[error("{what}: {}", errno_text(.err))]
    Io { what: String, err: io::Error },
    /// A message from the sandbox (boot or gofer), passed on verbatim.
    #[error("{0}")]
    Sandbox(String),
    #[error("{0}")]
    Invalid(String),
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
