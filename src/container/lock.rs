//! Exclusive locks on a container's state directory, with flock(2) on the
//! directory itself: the lock goes away with the directory, and a waiter that
//! wins the lock after a delete finds no state file and reports "does not
//! exist".

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, IoContext, Result};

/// An open state directory, locked exclusively until dropped.
#[derive(Debug)]
pub struct DirLock {
    lock: Flock<File>,
}

impl DirLock {
    /// Open `dir` and wait for its exclusive lock. A missing directory is
    /// `NotFound(id)`.
    pub fn acquire(dir: &Path, id: &str) -> Result<Self> {
        Self::lock(dir, id, FlockArg::LockExclusive)
    }

    /// A shared lock: held by pod members being created, so that the
    /// sandbox's exclusive lock (its deletion) waits for them.
    pub fn acquire_shared(dir: &Path, id: &str) -> Result<Self> {
        Self::lock(dir, id, FlockArg::LockShared)
    }

    fn lock(dir: &Path, id: &str, how: FlockArg) -> Result<Self> {
        let mut file = File::from(open_dir(dir, id)?);
        loop {
            match Flock::lock(file, how) {
                Ok(lock) => return Ok(DirLock { lock }),
                Err((f, nix::errno::Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(e).with_ctx(|| format!("lock container {id:?}")),
            }
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.lock.as_fd()
    }
}

/// Open a state directory without locking it (for readers).
pub fn open_dir(dir: &Path, id: &str) -> Result<OwnedFd> {
    match open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        // SAFETY: open returned a new descriptor that we now own.
        Ok(fd) => Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }),
        Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => {
            Err(Error::NotFound(id.to_string()))
        }
        Err(e) => Err(e).with_ctx(|| format!("open state of container {id:?}")),
    }
}
