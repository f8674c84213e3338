//! The sandbox layer as the CLI sees it: starting `husk boot` and
//! `husk gofer` (re-executing this binary), and the RPC client for a running
//! sandbox's control socket. Knows nothing of state files.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::control::{wire, CreateContainer, ExecProcess, ExitStatus, Request, Response};
use crate::error::{errno_text, Error, Result};
use crate::sys::process::{clear_cloexec, pidfd_open, pidfd_send_signal, pidfd_wait_exit};
use crate::sys::spawn::{sealed_self, spawn_husk, ChildProc, Stdio};
use husk_oci::gofer::GoferRequest;
use husk_oci::state::ProcRef;

pub mod waiter;

pub const SOCKET_NAME: &str = "sandbox.sock";

/// How long a short request may take before the sandbox is deemed stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or once running) sandbox: its id, its boot process and the
/// directory holding its control socket.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    pub boot: ProcRef,
    pub dir: PathBuf,
}

/// A freshly started boot process, still our child.
pub struct Launched {
    pub sandbox: Sandbox,
    pub child: ChildProc,
}

/// argv for a husk helper process: the global flags, then the command.
fn husk_argv(cfg: &Config, sub: &str, rest: &[&str]) -> Vec<String> {
    let mut v = vec!["husk".to_string()];
    v.extend(cfg.to_flags());
    v.push(sub.to_string());
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// The husk binary as a read-only detached mount (see sys::spawn).
fn exe() -> Result<OwnedFd> {
    sealed_self().map_err(|e| Error::Sandbox(format!("open husk binary: {}", errno_text(&e))))
}

/// Path for connect/bind that fits in sun_path: long state directories are
/// reached through an open descriptor of the directory.
fn socket_addr(dir: &Path) -> Result<(PathBuf, Option<OwnedFd>)> {
    let full = dir.join(SOCKET_NAME);
    if full.as_os_str().len() < 100 {
        return Ok((full, None));
    }
    let d = std::fs::File::open(dir)
        .map_err(|e| Error::Sandbox(format!("open {}: {}", dir.display(), errno_text(&e))))?;
    let fd = OwnedFd::from(d);
    let p = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_NAME}", fd.as_raw_fd()));
    Ok((p, Some(fd)))
}

impl Sandbox {
    /// Start `husk boot` for a new sandbox whose control socket lives in
    /// `dir`. The socket is bound here and handed to boot already listening,
    /// so requests can be queued before boot has even run.
    pub fn launch(cfg: &Config, id: &str, dir: &Path) -> Result<Launched> {
        let (addr, _keep) = socket_addr(dir)?;
        let _ = std::fs::remove_file(&addr);
        let listener = UnixListener::bind(&addr).map_err(|e| {
            Error::Sandbox(format!(
                "bind control socket {}: {}",
                dir.join(SOCKET_NAME).display(),
                errno_text(&e)
            ))
        })?;
        let fd = listener.as_raw_fd();
        clear_cloexec(fd).map_err(|e| Error::Sandbox(format!("control socket: {e}")))?;
        let argv = husk_argv(
            cfg,
            "boot",
            &["--sandbox-id", id, "--listen-fd", &fd.to_string()],
        );
        let child = spawn_husk(&exe()?, &argv, fd, Stdio::Inherit, Stdio::Inherit)
            .map_err(|e| Error::Sandbox(format!("start husk boot: {}", errno_text(&e))))?;
        drop(listener);
        let pid = child.id();
        let boot = ProcRef::of(pid)
            .ok_or_else(|| Error::Sandbox("husk boot exited as soon as it started".to_string()))?;
        Ok(Launched {
            sandbox: Sandbox {
                id: id.to_string(),
                boot,
                dir: dir.to_path_buf(),
            },
            child,
        })
    }

    pub fn is_running(&self) -> bool {
        self.boot.is_alive()
    }

    fn connect(&self) -> Result<UnixStream> {
        let (addr, _keep) = socket_addr(&self.dir)?;
        UnixStream::connect(&addr).map_err(|e| match e.raw_os_error() {
            Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => {
                Error::Sandbox(format!("sandbox {:?} is not running", self.id))
            }
            _ => Error::Sandbox(format!(
                "connect to sandbox {:?}: {}",
                self.id,
                errno_text(&e)
            )),
        })
    }

    /// One request, one response. A sandbox that does not answer in time
    /// (a stuck hook, a wedged process) is an error, not a hang; waiting
    /// for an exit has no limit.
    pub fn call(&self, req: &Request, fds: &[RawFd]) -> Result<Response> {
        let conn = self.connect()?;
        let limit = match req {
            Request::Wait { .. } | Request::WaitPid { .. } => None,
            // Building a container runs the spec's hooks, each with its own
            // timeout; leave them room.
            Request::Create(_) | Request::Start { .. } => Some(Duration::from_secs(600)),
            _ => Some(CALL_TIMEOUT),
        };
        let _ = conn.set_read_timeout(limit);
        self.call_on(&conn, req, fds)
    }

    fn call_on(&self, conn: &UnixStream, req: &Request, fds: &[RawFd]) -> Result<Response> {
        wire::send(conn, req, fds).map_err(|e| {
            Error::Sandbox(format!("send to sandbox {:?}: {}", self.id, errno_text(&e)))
        })?;
        match wire::recv::<Response, _>(conn) {
            Ok((Response::Error { message }, _)) => Err(Error::Sandbox(message)),
            Ok((r, _)) => Ok(r),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::Sandbox(
                format!("sandbox {:?} exited before answering", self.id),
            )),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Err(Error::Sandbox(format!(
                    "sandbox {:?} did not answer in time",
                    self.id
                )))
            }
            Err(e) => Err(Error::Sandbox(format!(
                "receive from sandbox {:?}: {}",
                self.id,
                errno_text(&e)
            ))),
        }
    }

    fn expect_ok(&self, req: &Request) -> Result<()> {
        match self.call(req, &[])? {
            Response::Ok => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub fn create(&self, req: CreateContainer, fds: &[RawFd]) -> Result<ProcRef> {
        match self.call(&Request::Create(Box::new(req)), fds)? {
            Response::Created { pid, start_time } => Ok(ProcRef { pid, start_time }),
            other => Err(unexpected(other)),
        }
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.expect_ok(&Request::Start { id: id.into() })
    }

    pub fn signal(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        self.expect_ok(&Request::Signal {
            id: id.into(),
            signal,
            all,
        })
    }

    pub fn wait(&self, id: &str) -> Result<ExitStatus> {
        match self.call(
            &Request::Wait {
                id: id.into(),
                kill_on_close: false,
            },
            &[],
        )? {
            Response::Exited { status } => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// Open a connection that will answer when container `id`'s init exits
    /// (for a pid-file waiter standing in for it).
    pub fn wait_conn(&self, id: &str, kill_on_close: bool) -> Result<UnixStream> {
        let conn = self.connect()?;
        wire::send(
            &conn,
            &Request::Wait {
                id: id.into(),
                kill_on_close,
            },
            &[],
        )
        .map_err(|e| Error::Sandbox(format!("send to sandbox: {}", errno_text(&e))))?;
        Ok(conn)
    }

    /// Open a connection that will answer when `pid` (an exec'd process)
    /// exits. Kept separate so a waiter process can hold it.
    pub fn wait_pid_conn(&self, pid: i32, kill_on_close: bool) -> Result<UnixStream> {
        let conn = self.connect()?;
        wire::send(&conn, &Request::WaitPid { pid, kill_on_close }, &[])
            .map_err(|e| Error::Sandbox(format!("send to sandbox: {}", errno_text(&e))))?;
        Ok(conn)
    }

    pub fn exec(&self, req: ExecProcess, fds: &[RawFd]) -> Result<ProcRef> {
        match self.call(&Request::Exec(Box::new(req)), fds)? {
            Response::Exec { pid, start_time } => Ok(ProcRef { pid, start_time }),
            other => Err(unexpected(other)),
        }
    }

    pub fn processes(&self, id: &str) -> Result<Vec<i32>> {
        match self.call(&Request::Processes { id: id.into() }, &[])? {
            Response::Pids { pids } => Ok(pids),
            other => Err(unexpected(other)),
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.expect_ok(&Request::Pause { id: id.into() })
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.expect_ok(&Request::Resume { id: id.into() })
    }

    pub fn stats(&self, id: &str) -> Result<serde_json::Value> {
        match self.call(&Request::Stats { id: id.into() }, &[])? {
            Response::Stats { stats } => Ok(*stats),
            other => Err(unexpected(other)),
        }
    }

    pub fn update(&self, id: &str, resources: oci_spec::runtime::LinuxResources) -> Result<()> {
        self.expect_ok(&Request::Update {
            id: id.into(),
            resources: Box::new(resources),
        })
    }

    /// Kill a container and wait until its init is reaped.
    pub fn destroy(&self, id: &str) -> Result<()> {
        match self.call(&Request::Destroy { id: id.into() }, &[]) {
            Ok(Response::Ok) | Ok(Response::Exited { .. }) => Ok(()),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(e),
        }
    }

    /// Kill the boot process itself (for cleanup when it cannot be asked).
    pub fn kill_boot(&self) {
        kill_and_wait(self.boot, Duration::from_secs(5));
    }

    /// Wait (bounded) for the boot process to exit.
    pub fn wait_boot_exit(&self, timeout: Duration) -> bool {
        match pidfd_open(nix::unistd::Pid::from_raw(self.boot.pid)) {
            Ok(fd) => {
                if !self.boot.is_alive() {
                    return true;
                }
                pidfd_wait_exit(fd.as_fd(), timeout.as_millis() as i32).unwrap_or(true)
            }
            Err(_) => true,
        }
    }
}

fn unexpected(r: Response) -> Error {
    Error::Sandbox(format!("unexpected answer from sandbox: {r:?}"))
}

/// SIGKILL a recorded process (if it is still that process) and wait for it
/// to go away.
pub fn kill_and_wait(p: ProcRef, timeout: Duration) {
    if !p.is_alive() {
        return;
    }
    if let Ok(fd) = pidfd_open(nix::unistd::Pid::from_raw(p.pid)) {
        // The pidfd pins the process; check it is still the one we recorded.
        if p.is_alive() {
            let _ = pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            let _ = pidfd_wait_exit(fd.as_fd(), timeout.as_millis() as i32);
        }
    }
}

/// A started gofer and the sandbox's end of its socket.
pub struct Gofer {
    pub child: ChildProc,
    pub sandbox_end: OwnedFd,
}

impl Gofer {
    /// Start `husk gofer` and queue its request, so it starts opening the
    /// rootfs while boot is still starting.
    pub fn spawn(cfg: &Config, id: &str, req: &GoferRequest) -> Result<Gofer> {
        let (ours, theirs) = UnixStream::pair()
            .map_err(|e| Error::Sandbox(format!("socketpair: {}", errno_text(&e))))?;
        let fd = theirs.as_raw_fd();
        clear_cloexec(fd).map_err(|e| Error::Sandbox(format!("gofer socket: {e}")))?;
        let argv = husk_argv(cfg, "gofer", &["--id", id, "--sock-fd", &fd.to_string()]);
        let child = spawn_husk(&exe()?, &argv, fd, Stdio::Null, Stdio::Null)
            .map_err(|e| Error::Sandbox(format!("start husk gofer: {}", errno_text(&e))))?;
        drop(theirs);
        wire::send(&ours, req, &[])
            .map_err(|e| Error::Sandbox(format!("send request to gofer: {}", errno_text(&e))))?;
        Ok(Gofer {
            child,
            sandbox_end: OwnedFd::from(ours),
        })
    }

    /// Reap the gofer (it exits once it has answered).
    pub fn reap(mut self, timeout: Duration) {
        if !self.child.wait_timeout(timeout.as_millis() as i32) {
            self.child.kill();
        }
        let _ = self.child.wait();
    }

    pub fn kill(mut self) {
        self.child.kill();
        let _ = self.child.wait();
    }
}
