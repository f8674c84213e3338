//! The new mount API (open_tree, fsopen, fsconfig, fsmount, move_mount,
//! mount_setattr) and openat2. These calls have no wrappers in nix yet, so they
//! are raw syscalls here, behind small safe functions that take and return
//! owned file descriptors.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::{cstr, path_cstr};

// Kernel ABI values, from libc (which has them as the uapi headers' types;
// the aliases below give them the widths the calls take).
pub const OPEN_TREE_CLONE: u32 = libc::OPEN_TREE_CLONE;
pub const OPEN_TREE_CLOEXEC: u32 = libc::OPEN_TREE_CLOEXEC;
pub const AT_RECURSIVE: u32 = libc::AT_RECURSIVE as u32;

pub const MOUNT_ATTR_RDONLY: u64 = libc::MOUNT_ATTR_RDONLY;
pub const MOUNT_ATTR_NOSUID: u64 = libc::MOUNT_ATTR_NOSUID;
pub const MOUNT_ATTR_NODEV: u64 = libc::MOUNT_ATTR_NODEV;
pub const MOUNT_ATTR_NOEXEC: u64 = libc::MOUNT_ATTR_NOEXEC;
pub const MOUNT_ATTR__ATIME: u64 = libc::MOUNT_ATTR__ATIME;
pub const MOUNT_ATTR_RELATIME: u64 = libc::MOUNT_ATTR_RELATIME;
pub const MOUNT_ATTR_NOATIME: u64 = libc::MOUNT_ATTR_NOATIME;
pub const MOUNT_ATTR_STRICTATIME: u64 = libc::MOUNT_ATTR_STRICTATIME;
pub const MOUNT_ATTR_NODIRATIME: u64 = libc::MOUNT_ATTR_NODIRATIME;
pub const MOUNT_ATTR_IDMAP: u64 = libc::MOUNT_ATTR_IDMAP;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = libc::MOUNT_ATTR_NOSYMFOLLOW;

pub const RESOLVE_NO_XDEV: u64 = libc::RESOLVE_NO_XDEV;
pub const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;
pub const RESOLVE_NO_SYMLINKS: u64 = libc::RESOLVE_NO_SYMLINKS;
pub const RESOLVE_BENEATH: u64 = libc::RESOLVE_BENEATH;
pub const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;

/// Propagation types for [`Attrs::propagation`] (MS_* values).
pub const MS_UNBINDABLE: u64 = libc::MS_UNBINDABLE;
pub const MS_PRIVATE: u64 = libc::MS_PRIVATE;
pub const MS_SLAVE: u64 = libc::MS_SLAVE;
pub const MS_SHARED: u64 = libc::MS_SHARED;

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(ret)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn dirfd(fd: Option<BorrowedFd<'_>>) -> RawFd {
    fd.map(|f| f.as_raw_fd()).unwrap_or(libc::AT_FDCWD)
}

/// openat2(2): open `path` relative to `dir` (or the cwd) with `resolve` flags.
pub fn openat2(
    dir: Option<BorrowedFd<'_>>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let p = path_cstr(path)?;
    // SAFETY: open_how is plain integers; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = mode as u64;
    how.resolve = resolve;
    loop {
        // SAFETY: `p` is a valid C string and `how` a correctly sized open_how
        // that both outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd(dir),
                p.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match owned(ret) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at `path`.
pub fn open_tree(dir: Option<BorrowedFd<'_>>, path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let p = path_cstr(path)?;
    let mut flags = flags | OPEN_TREE_CLOEXEC;
    if p.as_bytes().is_empty() {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    // SAFETY: `p` is a valid C string that outlives the call.
    owned(unsafe { libc::syscall(libc::SYS_open_tree, dirfd(dir), p.as_ptr(), flags) })
}

/// A filesystem context made by fsopen(2), configured and turned into a
/// detached mount.
pub struct FsContext {
    fd: OwnedFd,
    fstype: String,
}

impl FsContext {
    pub fn open(fstype: &str) -> io::Result<Self> {
        let t = cstr(fstype)?;
        // SAFETY: `t` is a valid C string that outlives the call.
        let fd =
            owned(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), libc::FSOPEN_CLOEXEC) })?;
        Ok(FsContext {
            fd,
            fstype: fstype.to_string(),
        })
    }

    fn config(&self, cmd: u32, key: Option<&CStr>, value: Option<&CStr>) -> io::Result<()> {
        // SAFETY: key and value are valid C strings (or null) that outlive the
        // call; aux is unused for these commands.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                cmd,
                key.map_or(std::ptr::null(), |k| k.as_ptr()),
                value.map_or(std::ptr::null(), |v| v.as_ptr()),
                0,
            )
        };
        check(ret)
            .map(|_| ())
            .map_err(|e| self.with_kernel_message(e))
    }

    pub fn set_flag(&self, key: &str) -> io::Result<()> {
        self.config(libc::FSCONFIG_SET_FLAG, Some(&cstr(key)?), None)
    }

    pub fn set_string(&self, key: &str, value: &str) -> io::Result<()> {
        self.config(
            libc::FSCONFIG_SET_STRING,
            Some(&cstr(key)?),
            Some(&cstr(value)?),
        )
    }

    /// Create the superblock and return a detached mount of it.
    pub fn mount(&self, attrs: u64) -> io::Result<OwnedFd> {
        self.config(libc::FSCONFIG_CMD_CREATE, None, None)?;
        // SAFETY: plain integer arguments.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.fd.as_raw_fd(),
                libc::FSMOUNT_CLOEXEC,
                attrs as libc::c_uint,
            )
        };
        owned(ret).map_err(|e| self.with_kernel_message(e))
    }

    /// The kernel queues a human readable reason on the context fd when a
    /// configuration step fails; fold it into the error.
    fn with_kernel_message(&self, err: io::Error) -> io::Error {
        let mut buf = [0u8; 256];
        let mut msgs = Vec::new();
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let s = String::from_utf8_lossy(&buf[..n]);
                    let s = s.trim_end_matches('\n');
                    // Lines look like "e tmpfs: Bad value for 'mode'".
                    msgs.push(s.get(2..).unwrap_or(s).to_string());
                }
                _ => break,
            }
        }
        if msgs.is_empty() {
            io::Error::new(
                err.kind(),
                format!("{} ({})", crate::errno_text(&err), self.fstype),
            )
        } else {
            io::Error::new(
                err.kind(),
                format!("{}: {}", crate::errno_text(&err), msgs.join("; ")),
            )
        }
    }
}

/// move_mount(2) of the detached or attached mount `from` onto the object
/// `to` refers to (an O_PATH descriptor of the mount point).
pub fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let empty = c"";
    // SAFETY: `empty` is a valid C string; the descriptors are borrowed for the
    // duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(|_| ())
}

/// move_mount(2) of `from` onto a path in the caller's mount namespace.
pub fn move_mount_to_path(from: BorrowedFd<'_>, to: &Path) -> io::Result<()> {
    let empty = c"";
    let p = path_cstr(to)?;
    // SAFETY: both strings are valid C strings that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(ret).map(|_| ())
}

/// Mount attribute changes for mount_setattr(2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub set: u64,
    pub clear: u64,
    pub propagation: u64,
    pub userns_fd: Option<RawFd>,
}

impl Attrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0 && self.propagation == 0 && self.userns_fd.is_none()
    }
}

/// mount_setattr(2) on the mount `fd` refers to.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attrs: &Attrs) -> io::Result<()> {
    let mut a = libc::mount_attr {
        attr_set: attrs.set,
        attr_clr: attrs.clear,
        propagation: attrs.propagation,
        userns_fd: 0,
    };
    if let Some(ns) = attrs.userns_fd {
        a.attr_set |= MOUNT_ATTR_IDMAP;
        a.userns_fd = ns as u64;
    }
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty = c"";
    // SAFETY: `a` is a correctly sized mount_attr and `empty` a valid C
    // string; both outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &mut a as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    check(ret).map(|_| ())
}

/// The path a descriptor refers to, through /proc/self/fd (for messages).
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| format!("fd {}", fd.as_raw_fd()))
}

/// "/proc/self/fd/N": lets path-based calls act on what a descriptor refers
/// to without resolving any path again.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in fd path")
}
