//! Owning raw descriptors safely: the ones a helper inherits by number, and
//! the ones calls without an owned-fd API (fcntl, openat) return.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Mutex;

static CLAIMED: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

/// Take ownership of a descriptor this process inherited by number (a
/// helper's `--listen-fd 3`). Each number can be claimed once, and only if
/// it is open; claiming it twice is an error, so two owners never exist.
pub fn claim_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)?;
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    if !claimed.get_or_insert_with(HashSet::new).insert(fd) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("descriptor {fd} was already claimed"),
        ));
    }
    // SAFETY: the descriptor is open (F_GETFD succeeded), was inherited
    // across exec (nothing in this process created an owner for it), and is
    // claimed at most once (checked above).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec duplicate of `fd` at the lowest number >= `min`.
pub fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    let n = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min))?;
    // SAFETY: fcntl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// openat(2) relative to `dir`, close-on-exec.
pub fn openat(dir: BorrowedFd<'_>, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = crate::path_cstr(path)?;
    // SAFETY: `c` is a valid C string that outlives the call.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// open(2) of an absolute or relative path, close-on-exec.
pub fn open(path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = crate::path_cstr(path)?;
    // SAFETY: `c` is a valid C string that outlives the call.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A descriptor number as a borrowed descriptor, if it is open in this
/// process (for stdio, which nothing in Rust owns).
pub fn borrow_stdio(fd: RawFd) -> Option<BorrowedFd<'static>> {
    if !(0..=2).contains(&fd) {
        return None;
    }
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).ok()?;
    // SAFETY: 0, 1 and 2 are owned by the process for its whole life and
    // are open (checked); they are never closed by husk while borrowed.
    Some(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// A close-on-exec duplicate of `fd` at exactly `target` (replacing what
/// was there).
pub fn dup_to(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<OwnedFd> {
    let n = nix::unistd::dup3(fd.as_raw_fd(), target, nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: dup3 made `target` a descriptor we now own (whatever was
    // there before was closed by it; callers use a number they reserve).
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The parent of the pid (or user) namespace `ns` (ioctl NS_GET_PARENT).
pub fn ns_parent(ns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // _IO(0xb7, 0x2) from <linux/nsfs.h>; libc does not export it.
    const NS_GET_PARENT: libc::c_ulong = 0xb702;
    // SAFETY: NS_GET_PARENT takes no argument and returns a new descriptor.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_PARENT) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
