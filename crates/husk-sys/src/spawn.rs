//! Starting husk's own helper processes: boot from a read-only, detached
//! mount of the husk binary; the gofer as a plain fork.
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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::mount::{
    mount_setattr, open_tree, Attrs, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    OPEN_TREE_CLONE,
};
use super::process::{
    close_fds_except, exit_now, fork_into, pidfd_send_signal, pidfd_wait_exit, Forked,
};

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
    /// Read end of the child's startup-error pipe.
    startup: Option<OwnedFd>,
}

/// Open a read-only detached mount of the running husk binary.
pub fn sealed_self() -> io::Result<OwnedFd> {
    sealed(Path::new("/proc/self/exe"))
}

/// Open a read-only detached mount of the executable at `path` (for a
/// program other than husk that starts husk's helpers: the shim).
pub fn sealed(path: &Path) -> io::Result<OwnedFd> {
    let fd = open_tree(None, path, OPEN_TREE_CLONE)?;
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

/// The running husk binary as a path and an identity, for a child that
/// seals it in a mount namespace of its own ([`Exe::SealInChild`]).
#[derive(Debug, Clone)]
pub struct SelfImage {
    path: std::path::PathBuf,
    dev: u64,
    ino: u64,
}

/// Where the running husk binary is, and which file it is.
pub fn self_image() -> io::Result<SelfImage> {
    let path = std::fs::read_link("/proc/self/exe")?;
    let st = nix::sys::stat::stat("/proc/self/exe")?;
    Ok(SelfImage {
        path,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// The husk binary at `path`, and which file it is (for a program other
/// than husk that starts husk's helpers: the shim).
pub fn image_of(path: &Path) -> io::Result<SelfImage> {
    let st = nix::sys::stat::stat(path)?;
    Ok(SelfImage {
        path: path.to_path_buf(),
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

impl SelfImage {
    /// A read-only detached mount of the binary, made in the caller's
    /// mount namespace (which it must be privileged over), and checked to
    /// be the very file this process runs.
    fn seal(&self) -> io::Result<OwnedFd> {
        let fd = open_tree(None, &self.path, OPEN_TREE_CLONE)?;
        mount_setattr(
            fd.as_fd(),
            false,
            &Attrs {
                set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                ..Default::default()
            },
        )?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        if st.st_dev != self.dev || st.st_ino != self.ino {
            return Err(io::Error::other(format!(
                "{} is no longer the running husk binary",
                self.path.display()
            )));
        }
        Ok(fd)
    }
}

/// The program a helper runs: always the husk binary, from a read-only
/// detached mount.
#[derive(Clone, Copy)]
pub enum Exe<'a> {
    /// Sealed by the caller ([`sealed_self`]).
    Sealed(&'a OwnedFd),
    /// Sealed by the child once its setup has given it a mount namespace
    /// it is privileged over (a caller without the host's root cannot
    /// clone mounts in its own).
    SealInChild(&'a SelfImage),
}

fn cstring(s: impl AsRef<std::ffi::OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}

/// How to start a husk helper.
pub struct Spawn<'a> {
    /// Descriptors the helper keeps (besides stdio); they must not be
    /// close-on-exec.
    pub keep: &'a [RawFd],
    pub stdin: Stdio,
    pub stdout: Stdio,
    /// CLONE_NEW* flags: namespaces the helper is born into.
    pub clone_flags: u64,
    /// A cgroup v2 directory to be born into (CLONE_INTO_CGROUP).
    pub cgroup: Option<BorrowedFd<'a>>,
    /// Steps the child takes before it execs (joining namespaces and
    /// cgroups, dropping privileges). An error ends the child; its text is
    /// what [`ChildProc::startup_error`] reports.
    pub setup: Option<&'a mut dyn FnMut() -> Result<(), String>>,
}

impl Default for Spawn<'_> {
    fn default() -> Self {
        Spawn {
            keep: &[],
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            clone_flags: 0,
            cgroup: None,
            setup: None,
        }
    }
}

/// clone3 (into `how.clone_flags` and `how.cgroup`), run `how.setup` in the
/// child, then execveat the husk binary (see [`Exe`]) with `argv`, keeping
/// the descriptors in `how.keep` and the chosen stdio. Fails if the process
/// has more than one thread.
pub fn spawn_husk(exe: Exe<'_>, argv: &[String], how: Spawn<'_>) -> io::Result<ChildProc> {
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
    start_helper(how, |keep, err_w| {
        let fail = |msg: &str| -> ! {
            let _ = nix::unistd::write(&err_w, msg.as_bytes());
            exit_now(127)
        };
        let sealed_here;
        let exe = match exe {
            Exe::Sealed(fd) => fd,
            Exe::SealInChild(image) => match image.seal() {
                Ok(fd) => {
                    sealed_here = fd;
                    &sealed_here
                }
                Err(e) => fail(&format!(
                    "open husk binary {} as a read-only mount: {}",
                    image.path.display(),
                    crate::errno_text(&e)
                )),
            },
        };
        // The error pipe stays open (close-on-exec): a successful exec
        // closes it with nothing written.
        let mut keep_all = keep.to_vec();
        keep_all.push(exe.as_raw_fd());
        keep_all.push(err_w.as_raw_fd());
        close_fds_except(&keep_all);
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
        fail(&format!(
            "exec husk: {}",
            crate::errno_text(&io::Error::last_os_error())
        ))
    })
}

/// Fork (clone3 into `how.clone_flags` and `how.cgroup`) a helper that
/// runs `child` on a copy of this process, without exec'ing anything: no
/// second load of the binary, no second start-up. In the child the signal
/// mask is cleared, `how.setup` runs, stdin/stdout are set as asked, every
/// descriptor but stdio and `how.keep` is closed, and the process exits
/// with the code `child` returns. Fails if the process has more than one
/// thread.
pub fn fork_helper(how: Spawn<'_>, child: impl FnOnce() -> i32) -> io::Result<ChildProc> {
    start_helper(how, |keep, _err_w| {
        // The error pipe and /dev/null go with the rest.
        close_fds_except(keep);
        exit_now(child())
    })
}

/// What starting either kind of helper shares: clone3 as `how` says; in
/// the child a clean signal mask (the caller may have signals blocked),
/// `how.setup`, stdin/stdout as asked, then `rest` (which execs or exits)
/// with the descriptors to keep and the pipe on which to say why it failed. The parent gets the
/// child with that pipe's reading end ([`ChildProc::startup_error`]).
fn start_helper(how: Spawn<'_>, rest: impl FnOnce(&[RawFd], OwnedFd)) -> io::Result<ChildProc> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let Spawn {
        keep,
        stdin,
        stdout,
        clone_flags,
        cgroup,
        setup,
    } = how;
    match fork_into(clone_flags, cgroup)? {
        Forked::Child => {
            drop(err_r);
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            );
            if let Some(setup) = setup {
                if let Err(msg) = setup() {
                    let _ = nix::unistd::write(&err_w, msg.as_bytes());
                    exit_now(127)
                }
            }
            if stdin == Stdio::Null {
                let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
            }
            if stdout == Stdio::Null {
                let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
            }
            drop(null);
            rest(keep, err_w);
            // `rest` execs or exits; should it return, the child ends here.
            exit_now(127)
        }
        Forked::Parent { pid, pidfd } => {
            drop(err_w);
            Ok(ChildProc {
                pid,
                pidfd,
                status: None,
                startup: Some(err_r),
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

    /// Why the child could not start (its setup failed or exec did), once it
    /// has exited; `None` if it started or is still on the way.
    pub fn startup_error(&mut self) -> Option<String> {
        let fd = self.startup.take()?;
        let _ = nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut buf = [0u8; 512];
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(n) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Ok(_) => None,
            Err(_) => {
                self.startup = Some(fd);
                None
            }
        }
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
