//! Exclusive locks on a container's state directory, with flock(2) on the
//! directory itself: the lock goes away with the directory, and a waiter that
//! wins the lock after a delete finds no state file and reports "does not
//! exist".

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

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
    match crate::sys::fd::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Ok(fd) => Ok(fd),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            Err(Error::NotFound(id.to_string()))
        }
        Err(e) => Err(e).with_ctx(|| format!("open state of container {id:?}")),
    }
}
