//! The few places where husk makes raw system calls. Everything outside this
//! module uses the safe functions here or the `nix` crate.

pub mod bpf;
pub mod fdpass;
pub mod memory;
pub mod mount;
pub mod process;
pub mod sched;
pub mod spawn;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

/// Make `fd` (a terminal) the controlling terminal of the calling process.
pub fn set_controlling_terminal(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Write `data` to a /proc file, refusing anything that is not on procfs
/// (a container could have mounted or linked something over the path) and
/// not following symlinks on the way (but for /proc/self itself).
pub fn proc_write(path: &str, data: &[u8]) -> io::Result<()> {
    let (base, rel) = match path.strip_prefix("/proc/self/") {
        Some(rest) => ("/proc/self", rest),
        None => (
            "/proc",
            path.strip_prefix("/proc/")
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?,
        ),
    };
    let dir = std::fs::File::open(base)?;
    let check = |f: &dyn std::os::fd::AsFd| -> io::Result<()> {
        let st = nix::sys::statfs::fstatfs(f)?;
        if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(io::Error::other(format!("{path} is not on procfs")));
        }
        Ok(())
    };
    check(&dir)?;
    let fd = mount::openat2(
        Some(std::os::fd::AsFd::as_fd(&dir)),
        Path::new(rel),
        libc::O_WRONLY,
        0,
        mount::RESOLVE_BENEATH | mount::RESOLVE_NO_SYMLINKS | mount::RESOLVE_NO_XDEV,
    )?;
    check(&fd)?;
    let mut f = std::fs::File::from(fd);
    std::io::Write::write_all(&mut f, data)
}
