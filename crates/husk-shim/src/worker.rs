//! The worker: a single-threaded child of the shim that makes containers
//! and runs processes in them through husk's container layer.
//!
//! husk forks (boot, the gofer, clone3 into namespaces) only from a
//! single-threaded process: a fork copies one thread, and any lock another
//! thread held at that moment (the allocator's) would stay locked in the
//! child for ever. The shim's ttrpc server is threaded, so the shim forks
//! this worker first thing, while it still has one thread, and hands it
//! every request that forks: `Create` (mount the rootfs, start boot and the
//! gofer, or join the pod's boot) and `Exec`. Everything else (start, kill,
//! pause, stats, delete) does not fork and runs on the server's threads.
//!
//! The worker plays the CLI: the process's stdio arrives with the request
//! and is installed as the worker's own 0, 1 and 2 for the duration of the
//! call, exactly where `husk create` and `husk exec` take it from. It is the
//! parent of each pod's boot and a subreaper, and reaps between requests.
//! It dies with the shim (parent-death signal) and exits when the shim
//! closes its socket.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;

use husk::cgroups::CgroupPath;
use husk::container::{Console, Container, CreateOptions, ExecOptions};
use husk::control::{wire, ErrorKind};
use husk::error::Error;
use husk_sys::process::{exit_now, fork_into, pidfd_open, Forked};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::config::ShimConfig;
use crate::mount::{mount_rootfs, unmount_all, RootMount};

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Descriptors: stdin, stdout, stderr, then the console socket if
    /// `terminal`.
    Create(Box<CreateReq>),
    /// Descriptors as for `Create`.
    Exec(Box<ExecReq>),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreateReq {
    pub id: String,
    pub bundle: PathBuf,
    pub namespace: String,
    pub config: ShimConfig,
    pub binary: PathBuf,
    pub rootfs: Vec<RootMount>,
    pub terminal: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExecReq {
    pub id: String,
    pub namespace: String,
    pub config: ShimConfig,
    pub binary: PathBuf,
    pub process: Box<oci_spec::runtime::Process>,
    pub terminal: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// Descriptors: the Wait connection, the init's pidfd.
    Created {
        pid: i32,
        is_root: bool,
        cgroup: CgroupPath,
        mounted: bool,
    },
    /// Descriptors: the WaitExec connection, the process's pidfd.
    Execed {
        pid: i32,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// How long the worker must have been idle before it trims its memory.
const TRIM_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// The shim's end of the worker.
pub struct Worker {
    sock: Mutex<UnixStream>,
}

/// Fork the worker. Must be called while the process has one thread
/// (husk's fork refuses otherwise).
pub fn spawn() -> std::io::Result<Worker> {
    let (ours, theirs) = UnixStream::pair()?;
    let parent = nix::unistd::getpid();
    match fork_into(0, None)? {
        Forked::Child => {
            drop(ours);
            let code = serve(theirs, parent);
            exit_now(code)
        }
        Forked::Parent { .. } => {
            drop(theirs);
            Ok(Worker {
                sock: Mutex::new(ours),
            })
        }
    }
}

impl Worker {
    /// One request and its answer (requests are taken one at a time).
    pub fn call(&self, req: &Request, fds: &[RawFd]) -> Result<(Response, Vec<OwnedFd>), String> {
        let sock = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        let t = std::time::Instant::now();
        wire::send(&*sock, req, fds).map_err(|e| format!("husk shim worker: send: {e}"))?;
        let r = wire::recv::<Response, _>(&*sock).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "husk shim worker exited".to_string()
            } else {
                format!("husk shim worker: receive: {e}")
            }
        });
        log::debug!(
            "worker {}: {:.3} ms",
            match req {
                Request::Create(_) => "create",
                Request::Exec(_) => "exec",
            },
            t.elapsed().as_secs_f64() * 1e3
        );
        r
    }
}

fn serve(sock: UnixStream, parent: Pid) -> i32 {
    let _ = husk_sys::process::set_parent_death_signal(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        return 0;
    }
    // Hold none of the shim's stdio: `start` reads the daemon's stdout
    // until every writer is gone.
    let _ = husk_sys::process::keep_null_device();
    husk_sys::process::stdio_to_null();
    let _ = husk_sys::process::set_child_subreaper();
    let _ = nix::sys::prctl::set_name(c"husk-shim-work");
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if mask.thread_block().is_err() {
        return 1;
    }
    let Ok(sigfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        return 1;
    };
    // Memory is given back once requests stop coming (a pod's containers
    // come one after another: its code stays in until then).
    let mut trim_at: Option<std::time::Instant> = None;
    loop {
        let mut fds = [
            husk_sys::pollfd(sock.as_raw_fd(), libc::POLLIN),
            husk_sys::pollfd(sigfd.as_raw_fd(), libc::POLLIN),
        ];
        let timeout = trim_at.map_or(-1, |t| {
            t.saturating_duration_since(std::time::Instant::now())
                .as_millis()
                .clamp(1, 1000) as i32
        });
        if husk_sys::poll(&mut fds, timeout).is_err() {
            return 1;
        }
        if fds[1].revents != 0 {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            reap();
        }
        if fds[0].revents == 0 {
            if trim_at.is_some_and(|t| std::time::Instant::now() >= t) {
                trim_at = None;
                husk_sys::memory::trim_idle();
            }
            continue;
        }
        let (req, fds) = match wire::recv::<Request, _>(&sock) {
            Ok(r) => r,
            Err(_) => return 0,
        };
        let (resp, out) = match handle(req, fds) {
            Ok(r) => r,
            Err(e) => (
                Response::Error {
                    kind: e.kind(),
                    message: e.to_string(),
                },
                Vec::new(),
            ),
        };
        let raw: Vec<RawFd> = out.iter().map(|f| f.as_raw_fd()).collect();
        if wire::send(&sock, &resp, &raw).is_err() {
            return 0;
        }
        drop(out);
        reap();
        trim_at = Some(std::time::Instant::now() + TRIM_AFTER);
    }
}

/// Reap every child that has exited (boot of a pod that is gone, orphans).
fn reap() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// The request's stdio as our own 0, 1 and 2 until dropped.
struct Stdio;

impl Stdio {
    fn install(fds: &[OwnedFd]) -> Result<Stdio, Error> {
        for (i, fd) in fds.iter().take(3).enumerate() {
            nix::unistd::dup2(fd.as_raw_fd(), i as RawFd)
                .map_err(|e| Error::Sandbox(format!("stdio: {e}")))?;
        }
        Ok(Stdio)
    }
}

impl Drop for Stdio {
    fn drop(&mut self) {
        husk_sys::process::stdio_to_null();
    }
}

fn handle(req: Request, mut fds: Vec<OwnedFd>) -> Result<(Response, Vec<OwnedFd>), Error> {
    let (binary, terminal) = match &req {
        Request::Create(c) => (&c.binary, c.terminal),
        Request::Exec(e) => (&e.binary, e.terminal),
    };
    husk::sandbox::set_husk_binary(binary)?;
    if fds.len() != 3 + usize::from(terminal) {
        return Err(Error::Invalid(format!(
            "husk shim worker: {} descriptors for a request that needs {}",
            fds.len(),
            3 + usize::from(terminal)
        )));
    }
    let console = terminal.then(|| Console::Fd(fds.remove(3)));
    match req {
        Request::Create(c) => create(*c, fds, console),
        Request::Exec(e) => exec(*e, fds, console),
    }
}

fn create(
    req: CreateReq,
    stdio: Vec<OwnedFd>,
    console: Option<Console>,
) -> Result<(Response, Vec<OwnedFd>), Error> {
    let cfg = req
        .config
        .husk_config(&req.namespace)
        .map_err(Error::Invalid)?;
    let rootfs = req.bundle.join("rootfs");
    let mounted = !req.rootfs.is_empty();
    if mounted {
        mount_rootfs(&req.rootfs, &rootfs).map_err(|e| Error::Sandbox(format!("rootfs: {e}")))?;
    }
    let unmount = || {
        if mounted {
            if let Err(e) = unmount_all(&rootfs) {
                log::warn!("{}: {e}", req.id);
            }
        }
    };
    let created = {
        let _stdio = Stdio::install(&stdio)?;
        Container::create(
            &cfg,
            CreateOptions {
                id: req.id.clone(),
                bundle: req.bundle.clone(),
                console,
                ..Default::default()
            },
        )
    };
    drop(stdio);
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            unmount();
            return Err(e);
        }
    };
    // boot (for a new pod) is our child; reaped once it exits.
    drop(created.boot_child);
    let c = created.container;
    let answer = (|| {
        let init = c
            .state
            .init
            .filter(|p| p.is_alive())
            .ok_or_else(|| Error::Sandbox("the container's init exited at once".into()))?;
        let pidfd = pidfd_open(Pid::from_raw(init.pid))
            .map_err(|e| Error::Sandbox(format!("pidfd of the container's init: {e}")))?;
        let wait = c.wait_conn()?;
        Ok((
            Response::Created {
                pid: init.pid,
                is_root: c.state.is_root,
                cgroup: c.state.cgroup.clone(),
                mounted,
            },
            vec![OwnedFd::from(wait), pidfd],
        ))
    })();
    if answer.is_err() {
        let _ = c.delete(true);
        unmount();
    }
    answer
}

fn exec(
    req: ExecReq,
    stdio: Vec<OwnedFd>,
    console: Option<Console>,
) -> Result<(Response, Vec<OwnedFd>), Error> {
    let cfg = req
        .config
        .husk_config(&req.namespace)
        .map_err(Error::Invalid)?;
    let c = Container::load(&cfg, &req.id)?;
    let execed = {
        let _stdio = Stdio::install(&stdio)?;
        c.exec(ExecOptions {
            process: *req.process,
            console,
            preserve_fds: 0,
            ignore_paused: false,
            sub_cgroup: None,
        })
    };
    drop(stdio);
    // Other requests may lock the container while the process runs.
    drop(c);
    let execed = execed?;
    let wait = execed.wait_conn()?;
    let pid = execed.pid;
    let pidfd = execed
        .pidfd
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::Sandbox(format!("pidfd: {e}")))?;
    Ok((Response::Execed { pid }, vec![OwnedFd::from(wait), pidfd]))
}
