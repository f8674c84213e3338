//! Loading a compiled seccomp filter (seccomp(2) has no wrapper in nix).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// What loading a filter gave back.
#[derive(Debug)]
pub enum Loaded {
    Filter,
    /// With SECCOMP_FILTER_FLAG_NEW_LISTENER: the user-notification fd.
    Listener(OwnedFd),
    /// With TSYNC: this thread could not be synchronised.
    TsyncFailed(i64),
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) for the calling thread.
/// Needs no_new_privs or CAP_SYS_ADMIN. Makes one system call and does not
/// allocate, so it is fine in a freshly forked child.
pub fn set_mode_filter(insns: &[libc::sock_filter], flags: libc::c_ulong) -> io::Result<Loaded> {
    let prog = libc::sock_fprog {
        len: insns.len() as libc::c_ushort,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at `insns`, which outlives the call; the kernel
    // copies the program and never writes through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new descriptor that
        // nothing else owns.
        return Ok(Loaded::Listener(unsafe {
            OwnedFd::from_raw_fd(rc as libc::c_int)
        }));
    }
    if rc > 0 {
        return Ok(Loaded::TsyncFailed(rc));
    }
    Ok(Loaded::Filter)
}

/// Whether the kernel knows every `SECCOMP_FILTER_FLAG_*` bit in `flags`:
/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, NULL)` checks the flags before
/// it reads the program, so EFAULT means "known" and EINVAL "unknown".
/// Nothing is loaded either way.
pub fn flags_known(flags: libc::c_ulong) -> bool {
    // SAFETY: the kernel fault-checks the NULL program; the call cannot
    // succeed and writes nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
}
