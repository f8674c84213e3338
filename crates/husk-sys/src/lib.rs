//! The few places where husk makes raw system calls, behind safe functions.
//! This is the only crate of husk allowed `unsafe`; every other crate has
//! `#![forbid(unsafe_code)]` and uses the functions here or `nix`.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bpf;
pub mod clock;
pub mod fd;
pub mod fdpass;
pub mod ids;
pub mod memory;
pub mod mount;
pub mod process;
pub mod sched;
pub mod seccomp;
pub mod spawn;
pub mod tty;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Go-style lower-case description of an OS error ("no such file or
/// directory"), which is what runc prints and clients match on. The one
/// way husk renders OS errors.
pub fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = nix::errno::Errno::from_raw(n).desc().to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
        None => e.to_string(),
    }
}

pub(crate) fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in string"))
}

pub(crate) fn path_cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))
}

/// Bring the loopback interface of the current network namespace up.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: we own the new socket.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the flags member of the union is the one SIOCGIFFLAGS filled.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Write `data` to `rel` (e.g. "self/oom_score_adj", "sys/net/...") under
/// the procfs mount `proc`, refusing anything that is not on procfs and
/// following no symlink but `self` on the way.
pub fn proc_write_at(proc: std::os::fd::BorrowedFd<'_>, rel: &str, data: &[u8]) -> io::Result<()> {
    let check = |f: &dyn std::os::fd::AsFd| -> io::Result<()> {
        let st = nix::sys::statfs::fstatfs(f)?;
        if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(io::Error::other(format!("{rel} is not on procfs")));
        }
        Ok(())
    };
    check(&proc)?;
    let (dir, rest) = match rel.strip_prefix("self/") {
        Some(rest) => (
            fd::openat(proc, Path::new("self"), libc::O_PATH | libc::O_DIRECTORY, 0)?,
            rest,
        ),
        None => (proc.try_clone_to_owned()?, rel),
    };
    let fd = mount::openat2(
        Some(std::os::fd::AsFd::as_fd(&dir)),
        Path::new(rest),
        libc::O_WRONLY,
        0,
        mount::RESOLVE_BENEATH | mount::RESOLVE_NO_SYMLINKS | mount::RESOLVE_NO_XDEV,
    )?;
    check(&fd)?;
    let mut f = std::fs::File::from(fd);
    std::io::Write::write_all(&mut f, data)
}

/// [`proc_write_at`] through this process's `/proc`.
pub fn proc_write(path: &str, data: &[u8]) -> io::Result<()> {
    let rel = path
        .strip_prefix("/proc/")
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let proc = std::fs::File::open("/proc")?;
    proc_write_at(std::os::fd::AsFd::as_fd(&proc), rel, data)
}

/// setdomainname(2) (nix has no wrapper).
pub fn set_domainname(name: &str) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: setdomainname reads `len` bytes from a valid buffer.
    if unsafe { libc::setdomainname(c.as_ptr(), name.len()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setrlimit(2) for a resource given as its `RLIMIT_*` number (nix's enum
/// lacks some of the ones the OCI spec names).
pub fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the rlimit we pass.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// poll(2) over `fds`, retrying on EINTR; `timeout_ms` < 0 waits forever.
/// Returns how many entries have events.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: the slice is a valid array of pollfd for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// A pollfd entry for `fd` and `events`.
pub fn pollfd(fd: std::os::fd::RawFd, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}
