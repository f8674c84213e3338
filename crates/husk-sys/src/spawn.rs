//! Starting husk's own helper processes (boot, gofer) from a read-only,
//! detached mount of the husk binary.
//!
//! A process's /proc/<pid>/exe refers to the mount its program was executed
//! through. Executed from a detached clone of the binary with
//! MOUNT_ATTR_RDONLY, the sandbox (and every container process forked from
//! it, until it execs the user's program) has an exe that cannot be opened
//! for writing, even by someone who kept an O_PATH handle to it: the
//! CVE-2019-5736 class of attack ("#!/proc/self/exe" images) finds a
//! read-only file. This costs two system calls, and the page cache stays
//! shared with the binary on disk.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::mount::{
    mount_setattr, open_tree, Attrs, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    OPEN_TREE_CLONE,
};
use super::process::{close_fds_except, exit_now, pidfd_open, pidfd_send_signal, pidfd_wait_exit};

/// What the child's standard streams are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// The caller's own.
    Inherit,
    /// /dev/null.
    Null,
}

/// A child process we started, with a pidfd for race-free signalling.
#[derive(Debug)]
pub struct ChildProc {
    pub pid: Pid,
    pidfd: OwnedFd,
    status: Option<WaitStatus>,
}

/// Open a read-only detached mount of the running husk binary.
pub fn sealed_self() -> io::Result<OwnedFd> {
    let fd = open_tree(None, Path::new("/proc/self/exe"), OPEN_TREE_CLONE)?;
    mount_setattr(
        fd.as_fd(),
        false,
        &Attrs {
            set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            ..Default::default()
        },
    )?;
    Ok(fd)
}

fn cstring(s: impl AsRef<std::ffi::OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}

/// fork, then execveat the husk binary behind `exe` with `argv`, keeping
/// descriptor `keep` (which must not be close-on-exec) and the chosen stdio.
pub fn spawn_husk(
    exe: &OwnedFd,
    argv: &[String],
    keep: RawFd,
    stdin: Stdio,
    stdout: Stdio,
) -> io::Result<ChildProc> {
    let argv_c: Vec<CString> = argv.iter().map(cstring).collect::<io::Result<_>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(kv)
        })
        .collect::<io::Result<_>>()?;
    let mut env_p: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_p.push(std::ptr::null());
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;

    // SAFETY: the CLI is single-threaded; the child only rearranges
    // descriptors and execs (or exits).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // The caller may have signals blocked (run, exec); the helper
            // starts with a clean mask.
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            );
            if stdin == Stdio::Null {
                // SAFETY: dup2 on descriptors we hold.
                unsafe { libc::dup2(null.as_raw_fd(), 0) };
            }
            if stdout == Stdio::Null {
                // SAFETY: as above.
                unsafe { libc::dup2(null.as_raw_fd(), 1) };
            }
            close_fds_except(&[keep, exe.as_raw_fd()]);
            // SAFETY: argv/envp are NUL-terminated arrays of valid C
            // strings that live until execveat replaces this process.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    exe.as_raw_fd(),
                    c"".as_ptr(),
                    argv_p.as_ptr(),
                    env_p.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            };
            exit_now(127)
        }
        pid => {
            let pid = Pid::from_raw(pid);
            let pidfd = pidfd_open(pid)?;
            Ok(ChildProc {
                pid,
                pidfd,
                status: None,
            })
        }
    }
}

impl ChildProc {
    pub fn id(&self) -> i32 {
        self.pid.as_raw()
    }

    pub fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    fn record(&mut self, ws: WaitStatus) -> Option<WaitStatus> {
        match ws {
            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                self.status = Some(ws);
                Some(ws)
            }
            _ => None,
        }
    }

    /// Wait for the child to exit.
    pub fn wait(&mut self) -> io::Result<WaitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        loop {
            match waitpid(self.pid, None) {
                Ok(ws) => {
                    if let Some(s) = self.record(ws) {
                        return Ok(s);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The exit status if the child has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<WaitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(ws) => Ok(self.record(ws)),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait at most `ms` milliseconds; whether the child has exited.
    pub fn wait_timeout(&mut self, ms: i32) -> bool {
        if self.status.is_some() {
            return true;
        }
        let _ = pidfd_wait_exit(self.pidfd.as_fd(), ms);
        matches!(self.try_wait(), Ok(Some(_)))
    }

    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        }
    }
}

/// The shell-style code of a wait status: the exit code or 128+signal.
pub fn exit_code(ws: WaitStatus) -> i32 {
    match ws {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 255,
    }
}
