//! The sandbox layer as the host sees it: starting `husk boot` inside the
//! sandbox it will be (its namespaces and cgroups), starting the gofer, and
//! the client side of boot's control socket. Knows nothing of state files.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroups::{CgroupPath, JoinFds};
use crate::config::{Config, FileAccess};
use crate::control::{wire, CreateContainer, ExecProcess, ExitStatus, NsKind, Request, Response};
use crate::error::{errno_text, Error, Result};
use crate::sys::process::{clear_cloexec, pidfd_open, pidfd_send_signal, pidfd_wait_exit};
use crate::sys::spawn::{
    fork_helper, image_of, sealed, sealed_self, self_image, spawn_husk, ChildProc, Exe, SelfImage,
    Spawn, Stdio,
};
use husk_oci::gofer::GoferRequest;
use husk_oci::state::ProcRef;

pub mod idmap;
pub mod namespaces;
pub mod waiter;

use self::namespaces::BootBirth;

pub const SOCKET_NAME: &str = "sandbox.sock";

/// How long a short request may take before the sandbox is deemed stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long boot may take between two steps of a create, start or exec
/// (building a root filesystem, a hook run inside the container). boot
/// gives up on the process itself after 300 s.
const STEP_TIMEOUT: Duration = Duration::from_secs(330);

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
    pub child: Option<ChildProc>,
}

/// How to start a sandbox's boot.
pub struct BootPlan<'a> {
    pub birth: BootBirth,
    /// uid_map and gid_map for a new user namespace.
    pub id_maps: Option<(String, String)>,
    /// The root container's cgroup: boot is born into it.
    pub cgroup: &'a CgroupPath,
    /// boot's own seccomp filter (the part of husk's baseline every
    /// container inherits), loaded before it execs.
    pub seccomp: Option<crate::seccomp::Prepared>,
}

/// Something boot says during a create, start or exec.
pub enum Event<'a> {
    /// The process exists (its pidfd).
    Forked(&'a OwnedFd),
    /// Run the createRuntime and prestart hooks now.
    RunHooks,
    /// Hand this seccomp notify descriptor to the spec's listener.
    SeccompListener(OwnedFd),
}

/// argv for a husk helper process: the global flags, then the command.
fn husk_argv(cfg: &Config, sub: &str, rest: &[&str]) -> Vec<String> {
    let mut v = vec!["husk".to_string()];
    v.extend(cfg.to_flags());
    v.push(sub.to_string());
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// The husk binary helpers are started from, when it is not this process's
/// own executable (see [`set_husk_binary`]).
static HUSK_BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Start `husk boot` and `husk gofer` from the husk binary at `path`
/// instead of this process's own executable: for programs other than husk
/// that drive the container layer (the containerd shim). Set once per
/// process, before the first container is created; a second call with
/// another path fails.
pub fn set_husk_binary(path: &Path) -> Result<()> {
    let path = std::fs::canonicalize(path)
        .map_err(|e| Error::os(format_args!("husk binary {}", path.display()), e))?;
    let set = HUSK_BINARY.get_or_init(|| path.clone());
    if *set != path {
        return Err(Error::Invalid(format!(
            "husk binary is {} already (not {})",
            set.display(),
            path.display()
        )));
    }
    Ok(())
}

/// The husk binary that boot, the gofer and a container's init (until it
/// execs) run.
pub fn husk_binary() -> PathBuf {
    HUSK_BINARY
        .get()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// Whether process `pid` runs the husk binary (boot, a stand-in, an init
/// that has not exec'd yet); `None` if that cannot be told.
pub fn runs_husk(pid: i32) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    let ours = std::fs::metadata(husk_binary()).ok()?;
    Some(theirs.ino() == ours.ino() && theirs.dev() == ours.dev())
}

/// Whether husk runs as a user other than root (of any user namespace):
/// then it cannot mount, so boot is born in a user namespace of its own,
/// the gofer joins it, and each seals its own binary there.
pub fn unprivileged() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// The husk binary for a helper (see sys::spawn).
enum OwnExe {
    /// A read-only detached mount made here.
    Sealed(OwnedFd),
    /// Made by the helper in its own mount namespace.
    Image(SelfImage),
}

impl OwnExe {
    fn get(&self) -> Exe<'_> {
        match self {
            OwnExe::Sealed(fd) => Exe::Sealed(fd),
            OwnExe::Image(i) => Exe::SealInChild(i),
        }
    }
}

fn exe() -> Result<OwnExe> {
    let configured = HUSK_BINARY.get();
    if unprivileged() {
        match configured {
            Some(path) => image_of(path),
            None => self_image(),
        }
        .map(OwnExe::Image)
        .map_err(|e| Error::os("find husk binary", e))
    } else {
        match configured {
            Some(path) => sealed(path),
            None => sealed_self(),
        }
        .map(OwnExe::Sealed)
        .map_err(|e| Error::os("open husk binary", e))
    }
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

/// How a process joins `cg` (`husk_cgroups::JoinFds`: v1 `tasks` files,
/// the cgroup2 directory to be born into and its `cgroup.procs`), opened
/// here with the caller's credentials.
pub fn cgroup_join(cg: &CgroupPath) -> Result<JoinFds> {
    Ok(cg.join_fds()?)
}

impl Sandbox {
    /// Start `husk boot` for a new sandbox whose control socket lives in
    /// `dir`, born into the sandbox: its namespaces, its cgroups. The
    /// socket is bound here and handed to boot already listening, so
    /// requests can be queued before boot has even run.
    pub fn launch(cfg: &Config, id: &str, dir: &Path, plan: BootPlan<'_>) -> Result<Launched> {
        let (addr, _keep) = socket_addr(dir)?;
        let _ = std::fs::remove_file(&addr);
        let listener = UnixListener::bind(&addr).map_err(|e| {
            Error::Sandbox(format!(
                "bind control socket {}: {}",
                dir.join(SOCKET_NAME).display(),
                errno_text(&e)
            ))
        })?;
        // Only its creator may talk to the sandbox, whatever the umask.
        std::fs::set_permissions(
            dir.join(SOCKET_NAME),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .map_err(|e| Error::os("control socket mode", e))?;
        let fd = listener.as_raw_fd();
        clear_cloexec(fd).map_err(|e| Error::os("control socket", e))?;
        // "--flag=value": an id may start with '-' and must never be read
        // as a flag.
        let (log_fds, log_args) = crate::logging::InheritedLogs::open_for_child(cfg, "boot", id)
            .map_err(|e| Error::os("open log file for boot", e))?;
        let mut args = vec![format!("--sandbox-id={id}"), format!("--listen-fd={fd}")];
        args.extend(log_args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let argv = husk_argv(cfg, "boot", &args);
        // v1 hierarchies are joined by writing `tasks`, the v2 one by
        // being born into it.
        let join = cgroup_join(plan.cgroup)?;
        let v1_procs = join.tasks;
        let v2 = join.v2.map(|v| v.dir);
        let BootPlan {
            birth,
            id_maps,
            seccomp,
            ..
        } = plan;
        // A new user namespace gets its maps from us before boot execs (so
        // that it keeps its capabilities across exec as its root).
        let (maps_r, maps_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::os("pipe", e))?;
        // Entering a pid namespace moves our next child there; we come back
        // through a pidfd of ourselves.
        let own_pidns = match &birth.pid_join {
            Some(_) => Some(
                pidfd_open(nix::unistd::getpid())
                    .map_err(|e| Error::os("pidfd of ourselves", e))?,
            ),
            None => None,
        };
        if let Some(ns) = &birth.pid_join {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID).map_err(|e| {
                Error::Spec(format!(
                    "linux.namespaces: join pid namespace: {}",
                    errno_text(&e.into())
                ))
            })?;
        }
        let new_user = birth.new_user;
        let maps_w_raw = maps_w.as_raw_fd();
        let mut setup = || -> std::result::Result<(), String> {
            // Only our creator writes: if it dies, we read end-of-file.
            let _ = nix::unistd::close(maps_w_raw);
            if new_user {
                let mut b = [0u8; 1];
                match nix::unistd::read(maps_r.as_raw_fd(), &mut b) {
                    Ok(1) => {}
                    _ => return Err("user namespace maps were not written".into()),
                }
                nix::unistd::setresgid(0.into(), 0.into(), 0.into())
                    .map_err(|e| format!("setgid 0 in user namespace: {e}"))?;
                nix::unistd::setresuid(0.into(), 0.into(), 0.into())
                    .map_err(|e| format!("setuid 0 in user namespace: {e}"))?;
            }
            for (kind, fd) in &birth.joins {
                nix::sched::setns(
                    fd.as_fd(),
                    nix::sched::CloneFlags::from_bits_retain(kind.flag() as i32),
                )
                .map_err(|e| {
                    format!(
                        "join {} namespace (linux.namespaces): {}",
                        kind.spec_name(),
                        errno_text(&e.into())
                    )
                })?;
            }
            for fd in &v1_procs {
                nix::unistd::write(fd, b"0").map_err(|e| {
                    format!("join the container's cgroup: {}", errno_text(&e.into()))
                })?;
            }
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
                .map_err(|e| format!("create cgroup namespace: {}", errno_text(&e.into())))?;
            if let Some(plan) = seccomp.clone() {
                plan.install()
                    .map_err(|e| format!("boot seccomp filter: {e}"))?;
            }
            Ok(())
        };
        if unprivileged() && !new_user {
            return Err(Error::Privilege(
                "starting a sandbox as a user other than root takes a user namespace of its own"
                    .into(),
            ));
        }
        let spawned = spawn_husk(
            exe()?.get(),
            &argv,
            Spawn {
                keep: &std::iter::once(fd)
                    .chain(log_fds.iter().map(|f| f.as_raw_fd()))
                    .collect::<Vec<_>>(),
                stdin: Stdio::Inherit,
                stdout: Stdio::Inherit,
                clone_flags: birth.clone_flags,
                cgroup: v2.as_ref().map(|f| f.as_fd()),
                setup: Some(&mut setup),
            },
        );
        let mut child = spawned.map_err(|e| Error::os("start husk boot", e))?;
        if let Some(own) = &own_pidns {
            // Our own later children (waiters) belong in our pid namespace.
            if let Err(e) = nix::sched::setns(own.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID) {
                child.kill();
                let _ = child.wait();
                return Err(Error::os("restore pid namespace", e));
            }
        }
        drop(listener);
        drop(maps_r);
        if let Some((uid_map, gid_map)) = &id_maps {
            if let Err(e) = idmap::write(child.id(), uid_map, gid_map) {
                child.kill();
                let _ = child.wait();
                return Err(e);
            }
            let _ = nix::unistd::write(&maps_w, b"m");
        }
        drop(maps_w);
        let pid = child.id();
        let boot = ProcRef::of(pid).ok_or_else(|| {
            let why = child
                .startup_error()
                .unwrap_or_else(|| "it exited as soon as it started".into());
            Error::Sandbox(format!("start husk boot: {why}"))
        })?;
        Ok(Launched {
            sandbox: Sandbox {
                id: id.to_string(),
                boot,
                dir: dir.to_path_buf(),
            },
            child: Some(child),
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

    /// Send a request on a new connection.
    fn begin(&self, req: &Request, fds: &[RawFd]) -> Result<UnixStream> {
        let conn = self.connect()?;
        wire::send(&conn, req, fds).map_err(|e| {
            Error::Sandbox(format!("send to sandbox {:?}: {}", self.id, errno_text(&e)))
        })?;
        Ok(conn)
    }

    /// The next answer on `conn`, waiting at most `limit`.
    fn next(&self, conn: &UnixStream, limit: Duration) -> Result<(Response, Vec<OwnedFd>)> {
        let _ = conn.set_read_timeout(Some(limit));
        match wire::recv::<Response, _>(conn) {
            Ok((Response::Error { kind, message }, _)) => Err(Error::Remote { kind, message }),
            Ok(r) => Ok(r),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(Error::SandboxGone(self.id.clone()))
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Err(Error::Sandbox(format!(
                    "sandbox {:?} did not answer within {}s",
                    self.id,
                    limit.as_secs()
                )))
            }
            Err(e) => Err(Error::Sandbox(format!(
                "receive from sandbox {:?}: {}",
                self.id,
                errno_text(&e)
            ))),
        }
    }

    /// Follow a conversation (create, start, exec) to its end, passing
    /// boot's events to `on_event`. Returns the final answer and the
    /// process's pidfd (if boot forked one).
    fn converse(
        &self,
        conn: &UnixStream,
        on_event: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<(Response, Option<OwnedFd>)> {
        let mut pidfd = None;
        loop {
            let (resp, mut fds) = self.next(conn, STEP_TIMEOUT)?;
            match resp {
                Response::Forked => {
                    let fd = fds.pop().ok_or_else(|| {
                        Error::Sandbox("sandbox sent no pidfd for the new process".into())
                    })?;
                    on_event(Event::Forked(&fd))?;
                    pidfd = Some(fd);
                }
                Response::RunHooks => {
                    let error = on_event(Event::RunHooks).err().map(|e| e.to_string());
                    let failed = error.clone();
                    wire::send(conn, &Request::HooksDone { error }, &[])
                        .map_err(|e| Error::os("send to sandbox", e))?;
                    if let Some(m) = failed {
                        return Err(Error::Invalid(m));
                    }
                }
                Response::SeccompListener => {
                    if let Some(fd) = fds.pop() {
                        on_event(Event::SeccompListener(fd))?;
                    }
                }
                other => return Ok((other, pidfd)),
            }
        }
    }

    /// Build a container; returns its init's pidfd once it waits for start.
    pub fn create(
        &self,
        req: CreateContainer,
        fds: &[RawFd],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<OwnedFd> {
        let conn = self.begin(&Request::Create(Box::new(req)), fds)?;
        match self.converse(&conn, on_event)? {
            (Response::Created, Some(pidfd)) => Ok(pidfd),
            (other, _) => Err(unexpected(other)),
        }
    }

    pub fn start(&self, id: &str, on_event: &mut dyn FnMut(Event<'_>) -> Result<()>) -> Result<()> {
        let conn = self.begin(&Request::Start { id: id.into() }, &[])?;
        match self.converse(&conn, on_event)? {
            (Response::Started, _) => Ok(()),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Run a process in a container; returns boot's token for it and its
    /// pidfd once it has exec'd.
    pub fn exec(
        &self,
        req: ExecProcess,
        fds: &[RawFd],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<(u64, OwnedFd)> {
        let conn = self.begin(&Request::Exec(Box::new(req)), fds)?;
        match self.converse(&conn, on_event)? {
            (Response::Execed { token }, Some(pidfd)) => Ok((token, pidfd)),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// A connection on which boot answers `Exited` when container `id`'s
    /// init exits (held by a waiter or a `run`).
    pub fn wait_conn(&self, id: &str, kill_on_close: bool) -> Result<UnixStream> {
        self.begin(
            &Request::Wait {
                id: id.into(),
                kill_on_close,
            },
            &[],
        )
    }

    /// As [`wait_conn`](Self::wait_conn), for an exec'd process.
    pub fn wait_exec_conn(&self, token: u64, kill_on_close: bool) -> Result<UnixStream> {
        self.begin(
            &Request::WaitExec {
                token,
                kill_on_close,
            },
            &[],
        )
    }

    /// Kill a container's processes and wait until its init is reaped.
    pub fn destroy(&self, id: &str) -> Result<()> {
        let conn = self.begin(&Request::Destroy { id: id.into() }, &[])?;
        match self.next(&conn, CALL_TIMEOUT) {
            Ok((Response::Destroyed, _)) | Ok((Response::Exited { .. }, _)) => Ok(()),
            // The root's boot exits once it is done.
            Err(Error::SandboxGone(_)) => Ok(()),
            Ok((other, _)) => Err(unexpected(other)),
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

    /// Whether boot has a pid namespace of its own (then every process of
    /// the pod is visible from it, and none of the host's).
    pub fn own_pid_namespace(&self) -> bool {
        let a = std::fs::metadata(format!("/proc/{}/ns/pid", self.boot.pid));
        let b = std::fs::metadata("/proc/self/ns/pid");
        match (a, b) {
            (Ok(a), Ok(b)) => {
                use std::os::unix::fs::MetadataExt;
                a.ino() != b.ino() || a.dev() != b.dev()
            }
            _ => false,
        }
    }
}

/// Read the exit status a Wait/WaitExec connection carries (blocking);
/// `None` if boot went away without answering.
pub fn read_exit(conn: &UnixStream) -> Option<ExitStatus> {
    let _ = conn.set_read_timeout(None);
    match wire::recv::<Response, _>(conn) {
        Ok((Response::Exited { status }, _)) => Some(status),
        _ => None,
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

/// Where a container's mounts come from: a gofer process (proxy file
/// access), or this process itself (`--file-access=direct`).
pub struct Mounts {
    /// The socket boot reads the mounts from.
    pub sandbox_end: OwnedFd,
    gofer: Option<ChildProc>,
}

impl Mounts {
    /// Start the gofer on its request (it opens the rootfs while boot is
    /// still starting), or open everything here. `userns_of`: a process
    /// (boot) whose user namespace the gofer joins, with a mount namespace
    /// of its own there (how an unprivileged caller's gofer gets the right
    /// to clone mounts).
    pub fn open(cfg: &Config, req: &GoferRequest, userns_of: Option<i32>) -> Result<Mounts> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| Error::os("socketpair", e))?;
        if cfg.file_access == FileAccess::Direct {
            husk_oci::gofer::send(&ours, crate::gofer::prepare(req))
                .map_err(|e| Error::os("mounts", e))?;
            return Ok(Mounts {
                sandbox_end: OwnedFd::from(theirs),
                gofer: None,
            });
        }
        let userns = userns_of
            .map(|pid| {
                std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(|e| {
                    Error::Sandbox(format!(
                        "open the sandbox's user namespace for the gofer: {}",
                        errno_text(&e)
                    ))
                })
            })
            .transpose()?;
        let mut setup = || -> std::result::Result<(), String> {
            if let Some(ns) = &userns {
                join_as_root(ns.as_fd())?;
            }
            Ok(())
        };
        // Forked, not exec'd: the request is already in its memory. It
        // keeps only its end of the socket (and the log files).
        let keep: Vec<RawFd> = std::iter::once(theirs.as_raw_fd())
            .chain(crate::logging::log_fds().iter().copied())
            .collect();
        let child = fork_helper(
            Spawn {
                keep: &keep,
                stdin: Stdio::Null,
                stdout: Stdio::Null,
                setup: Some(&mut setup),
                ..Default::default()
            },
            || crate::gofer::forked_main(cfg, &theirs, req),
        )
        .map_err(|e| Error::os("start husk gofer", e))?;
        drop(theirs);
        Ok(Mounts {
            sandbox_end: OwnedFd::from(ours),
            gofer: Some(child),
        })
    }

    /// Mounts that arrive on `sandbox_end` from elsewhere (no gofer of
    /// ours to reap).
    pub fn from_socket(sandbox_end: OwnedFd) -> Mounts {
        Mounts {
            sandbox_end,
            gofer: None,
        }
    }

    /// Reap the gofer (it exits once it has answered).
    pub fn reap(mut self, timeout: Duration) {
        if let Some(mut g) = self.gofer.take() {
            if !g.wait_timeout(timeout.as_millis() as i32) {
                g.kill();
            }
            let _ = g.wait();
        }
    }

    /// Why the gofer could not start, if it could not (it has exited).
    pub fn startup_error(&mut self) -> Option<String> {
        let g = self.gofer.as_mut()?;
        if !g.wait_timeout(100) {
            return None;
        }
        g.startup_error()
    }

    pub fn kill(mut self) {
        if let Some(mut g) = self.gofer.take() {
            g.kill();
            let _ = g.wait();
        }
    }
}

/// Join the user namespace `ns` as its root, with a mount namespace of our
/// own in it (a child about to exec a husk helper).
fn join_as_root(ns: std::os::fd::BorrowedFd<'_>) -> std::result::Result<(), String> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWUSER).map_err(|e| {
        format!(
            "join the sandbox's user namespace: {}",
            errno_text(&e.into())
        )
    })?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("create a mount namespace: {}", errno_text(&e.into())))?;
    nix::unistd::setresgid(0.into(), 0.into(), 0.into()).map_err(|e| {
        format!(
            "setgid 0 in the sandbox's user namespace: {}",
            errno_text(&e.into())
        )
    })?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into()).map_err(|e| {
        format!(
            "setuid 0 in the sandbox's user namespace: {}",
            errno_text(&e.into())
        )
    })?;
    Ok(())
}

/// The deadline helper the CLI uses for bounded loops.
pub fn deadline_after(d: Duration) -> Instant {
    Instant::now() + d
}

/// Namespace kinds a stand-in for a container process enters: those that
/// tools look at through its /proc entry.
pub const STANDIN_NAMESPACES: [NsKind; 4] = [NsKind::Net, NsKind::Ipc, NsKind::Uts, NsKind::Mount];
