//! The container layer: state on disk, the status machine, locking, the
//! container's cgroup (made, limited, frozen, read and removed from the
//! host), signals, hooks that run in the runtime's namespace, pid files and
//! pod membership. It drives the sandbox layer for everything that happens
//! inside the sandbox, and never touches a container's namespaces or
//! mounts itself.

mod create;
pub mod lock;
mod ops;
pub mod state;
#[cfg(test)]
mod tests;
pub mod userns;

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Process, Spec};

use crate::cgroups::CgroupPath;
use crate::config::Config;
use crate::control::{ExecProcess, PROTOCOL};
use crate::error::{errno_text, Error, IoContext, Result};
use crate::sandbox::namespaces::has_new_userns;
use crate::sandbox::{self, Event, Sandbox};
use crate::sys::process::{pidfd_open, pidfd_pid, pidfd_send_signal};
use husk_oci::hooks::{self, Stage};

use self::create::{make_state_dir, CreateGuard, CreateRequest};
use self::lock::DirLock;
use self::ops::Ops;
use self::state::{OciState, ProcRef, SandboxRef, State, Status};

/// Container ids: runc's rule, ^[\w+.-]+$, and never "." or "..".
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// The annotation that turns husk's seccomp baseline off for one container.
pub const BASELINE_ANNOTATION: &str = "dev.husk.seccomp-baseline";
/// The annotation that turns the container's /proc views off.
pub const PROC_VIEWS_ANNOTATION: &str = "dev.husk.proc-views";

/// Where the pty master of a terminal process goes.
#[derive(Debug)]
pub enum Console {
    /// The caller's console socket (`--console-socket`).
    Path(PathBuf),
    /// An already connected socket (husk's own tty proxy for `run -t`).
    Fd(OwnedFd),
}

impl Console {
    fn connect(self) -> Result<OwnedFd> {
        match self {
            Console::Fd(fd) => Ok(fd),
            Console::Path(p) => connect_console(&p),
        }
    }
}

/// Options of `create` (and `run`).
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console: Option<Console>,
    pub preserve_fds: u32,
    /// The bundle's spec, when the caller has already loaded it.
    pub spec: Option<Spec>,
}

/// Options of `exec`.
#[derive(Debug)]
pub struct ExecOptions {
    pub process: Process,
    pub console: Option<Console>,
    pub preserve_fds: u32,
    /// Run even if the container is paused (the process freezes with it).
    pub ignore_paused: bool,
    /// A sub-cgroup of the container's to run in (`exec --cgroup`).
    pub sub_cgroup: Option<CgroupPath>,
}

/// A container with its state directory locked.
pub struct Container {
    pub state: State,
    lock: DirLock,
    dir: PathBuf,
    cfg: Config,
}

/// What `create` leaves behind for `run` to wait on.
pub struct Created {
    pub container: Container,
    /// The boot process when this create started a sandbox (our child).
    pub boot_child: Option<crate::sys::spawn::ChildProc>,
}

/// A process started by `exec`.
pub struct Execed {
    /// Its pid as this host sees it.
    pub pid: i32,
    pub pidfd: OwnedFd,
    token: u64,
    sandbox: Sandbox,
    cgroup: CgroupPath,
}

impl Execed {
    /// A connection on which the sandbox answers when the process exits.
    pub fn wait_conn(&self) -> Result<std::os::unix::net::UnixStream> {
        self.sandbox.wait_exec_conn(self.token, false)
    }

    /// A stand-in process for a pid file (see `sandbox::waiter`); returns
    /// its pid.
    pub fn stand_in(self) -> Result<i32> {
        let conn = self.sandbox.wait_exec_conn(self.token, true)?;
        sandbox::waiter::spawn(sandbox::waiter::StandIn {
            conn,
            target: self.pidfd,
            sandbox_pidns: sandbox_pidns(&self.sandbox),
            cgroup: &self.cgroup,
        })
    }
}

/// boot's pidfd, when its pid namespace is not ours: stand-ins go there.
fn sandbox_pidns(sb: &Sandbox) -> Option<OwnedFd> {
    // A user other than root cannot enter a pid namespace of the sandbox's
    // user namespace and come back: its stand-ins stay in ours.
    if !sb.own_pid_namespace() || sandbox::unprivileged() {
        return None;
    }
    let fd = pidfd_open(Pid::from_raw(sb.boot.pid)).ok()?;
    sb.boot.is_alive().then_some(fd)
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// A process's pid in our pid namespace, from its pidfd.
fn host_pid(pidfd: &OwnedFd) -> Result<ProcRef> {
    let pid = pidfd_pid(pidfd.as_fd())
        .map_err(|e| Error::os("pid of the container process", e))?
        .ok_or_else(|| Error::Sandbox("the container process exited at once".into()))?;
    ProcRef::of(pid).ok_or_else(|| Error::Sandbox("the container process exited at once".into()))
}

/// The root directory, made with the modes husk wants whatever the umask.
fn make_root_dir(root: &Path) -> Result<()> {
    make_root_dir_at(root).map_err(|e| match e {
        Error::Io { what, err }
            if crate::config::rootless()
                && matches!(
                    err.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::EROFS)
                ) =>
        {
            Error::Privilege(format!(
                "{what}: {}; a user other than root keeps state under $XDG_RUNTIME_DIR/husk (set XDG_RUNTIME_DIR to a directory of yours, or pass --root)",
                errno_text(&err)
            ))
        }
        e => e,
    })
}

fn make_root_dir_at(root: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o711).create(root) {
        Ok(()) => {
            std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o711))
                .with_ctx(|| format!("set mode of {}", root.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(root)
                .with_ctx(|| format!("create root directory {}", root.display()))?;
            make_root_dir_at(root)
        }
        Err(e) => Err(e).with_ctx(|| format!("create root directory {}", root.display())),
    }
}

impl Container {
    /// Lock and load an existing container.
    pub fn load(cfg: &Config, id: &str) -> Result<Self> {
        validate_id(id)?;
        let dir = cfg.container_dir(id);
        let lock = DirLock::acquire(&dir, id)?;
        let state = match State::read(lock.fd(), id) {
            Err(Error::NotFound(_)) => {
                // A directory without a state file is what a create killed
                // before its first write leaves behind (or a delete, after
                // its last). Nothing can be in it yet; remove it.
                let _ = remove_state_dir(&dir);
                return Err(Error::NotFound(id.to_string()));
            }
            other => other?,
        };
        Ok(Container {
            state,
            lock,
            dir,
            cfg: cfg.clone(),
        })
    }

    /// Read a container's state without locking (for `state` and `list`).
    pub fn read(cfg: &Config, id: &str) -> Result<State> {
        validate_id(id)?;
        let fd = lock::open_dir(&cfg.container_dir(id), id)?;
        State::read(std::os::fd::AsFd::as_fd(&fd), id)
    }

    /// All of husk's containers under the root directory. Entries that are
    /// not husk's (runc's, in a root Docker shares between runtimes) are
    /// passed over in silence.
    pub fn list(cfg: &Config) -> Result<Vec<State>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&cfg.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_ctx(|| format!("read {}", cfg.root.display())),
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(id) = name.to_str() else { continue };
            if validate_id(id).is_err() {
                continue;
            }
            match Self::read(cfg, id) {
                Ok(st) if st.runtime == state::RUNTIME_NAME => out.push(st),
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) if is_husks(&ent.path()) => tracing::warn!("skipping {id}: {e}"),
                Err(_) => {}
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn status(&self) -> Status {
        self.state.current_status()
    }

    pub fn save(&self) -> Result<()> {
        self.state.write(self.lock.fd())
    }

    fn sandbox(&self) -> Option<Sandbox> {
        let s = self.state.sandbox.as_ref()?;
        Some(Sandbox {
            id: s.id.clone(),
            boot: s.boot,
            dir: self.dir.parent().unwrap_or(Path::new("/")).join(&s.id),
        })
    }

    fn live_sandbox(&self, op: &'static str) -> Result<Sandbox> {
        let st = self.status();
        match self.sandbox() {
            Some(sb) if st != Status::Stopped && st != Status::Creating => Ok(sb),
            _ => Err(Error::BadState {
                id: self.state.id.clone(),
                op,
                status: st.to_string(),
            }),
        }
    }

    /// `create`: everything up to a container whose init waits for `start`.
    /// On failure nothing is left behind: processes, cgroup, state directory.
    pub fn create(cfg: &Config, opts: CreateOptions) -> Result<Created> {
        Self::create_with(&mut ops::Real, cfg, opts)
    }

    /// `create` through `ops`. The steps shared by every container, then
    /// the root's (a new sandbox) or a member's (its pod's), then the
    /// request to boot. Everything made is recorded in a guard that undoes
    /// it, in reverse, if a later step fails.
    pub(crate) fn create_with(
        ops: &mut dyn Ops,
        cfg: &Config,
        mut opts: CreateOptions,
    ) -> Result<Created> {
        let mut req = CreateRequest::read(cfg, &mut opts)?;
        let console = match opts.console.take() {
            Some(c) => Some(c.connect()?),
            None => None,
        };
        let (dir, lock) = make_state_dir(cfg, &opts.id)?;
        let mut g = CreateGuard::new(ops, dir.clone());
        let mut state = g.begin(cfg, &opts.id, &mut req, &lock)?;
        let mut sent = g.prepare(cfg, &opts.id, &req, &mut state, &lock)?;
        let sandbox = match req.pod.take() {
            None => g.launch_root(cfg, &opts.id, &req, &mut sent)?,
            Some(pod) => g.join_pod(cfg, &opts.id, &req, pod, &mut sent)?,
        };
        state.sandbox = Some(SandboxRef {
            id: sandbox.id.clone(),
            boot: sandbox.boot,
            protocol: PROTOCOL,
        });
        state.write(lock.fd())?;
        g.late_gofer(cfg, &opts.id, &sandbox, &mut sent)?;
        let init = g.build(
            cfg,
            &opts,
            req,
            &sandbox,
            sent,
            console.as_ref(),
            &mut state,
            &lock,
        )?;
        drop(console);
        if let Some(m) = g.mounts.take() {
            m.reap(Duration::from_secs(5));
        }
        state.init = Some(init);
        state.status = Status::Created;
        state.creator = None;
        state.write(lock.fd())?;
        if let Some(pf) = &opts.pid_file {
            // The root container's pid file names boot, which exits with
            // its status; a pod member gets a stand-in for its init.
            let pid = if state.is_root {
                sandbox.boot.pid
            } else {
                let target = pidfd_open(Pid::from_raw(init.pid))
                    .map_err(|e| Error::os("pidfd of the container's init", e))?;
                let conn = sandbox.wait_conn(&opts.id, true)?;
                sandbox::waiter::spawn(sandbox::waiter::StandIn {
                    conn,
                    target,
                    sandbox_pidns: sandbox_pidns(&sandbox),
                    cgroup: &state.cgroup,
                })?
            };
            state::write_file_atomic(pf, pid.to_string().as_bytes())?;
        }
        let boot_child = g.sandbox.take().and_then(|(_, c)| c);
        g.armed = false;
        drop(g);
        Ok(Created {
            container: Container {
                state,
                lock,
                dir,
                cfg: cfg.clone(),
            },
            boot_child,
        })
    }

    /// `start`: release the init to exec the program; poststart hooks after
    /// (a failing one is a warning, as the runtime spec says).
    pub fn start(&mut self) -> Result<()> {
        let st = self.status();
        if st != Status::Created {
            return Err(Error::BadState {
                id: self.state.id.clone(),
                op: "start",
                status: st.to_string(),
            });
        }
        let sb = self.live_sandbox("start")?;
        let listener = self.listener();
        let oci = self.state.oci_state();
        sb.start(&self.state.id, &mut |ev| match ev {
            Event::SeccompListener(fd) => give_to_listener(listener.as_ref(), fd, oci.clone()),
            _ => Ok(()),
        })?;
        self.state.status = Status::Running;
        self.save()?;
        let mut oci = self.state.oci_state();
        oci.status = Status::Running.to_string();
        hooks::run_logged(self.state.hooks.as_ref(), Stage::Poststart, &oci);
        Ok(())
    }

    /// The spec's seccomp listener, if its profile has one.
    fn listener(&self) -> Option<(PathBuf, String)> {
        self.state.seccomp_listener.clone()
    }

    /// `kill`: send a signal to the init (or every process with `all`),
    /// from the host: this works on a paused container too, whose sandbox
    /// may be frozen with it.
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let st = self.status();
        if st == Status::Stopped && all {
            // As runc: --all signals whatever is left in the cgroup, which
            // for a stopped container is usually nothing (`kill --all ID 0`
            // is how scripts ask "can this still be signalled?").
            if let Ok(sig) = nix::sys::signal::Signal::try_from(signal) {
                let _ = self.state.cgroup.signal_all(sig);
            }
            return Ok(());
        }
        if st == Status::Stopped || st == Status::Creating {
            // runc's words, which containerd's shim matches to tell "already
            // exited" from a failure.
            return Err(Error::Invalid(format!(
                "container not running (container {:?} is {st})",
                self.state.id
            )));
        }
        if signal == 0 {
            // As kill(2): only whether it could be signalled.
            return Ok(());
        }
        let sig = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| Error::Invalid(format!("unknown signal {signal}")))?;
        if all {
            if sig == nix::sys::signal::Signal::SIGKILL && !self.state.cgroup.is_empty() {
                // Everything in the cgroup, husk's own stand-ins and (for
                // the root container) boot included: they stand for what
                // dies here.
                self.state.cgroup.signal_all(sig)?;
            } else {
                for pid in self.processes()? {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
                }
            }
        }
        self.signal_init(signal)
    }

    fn signal_init(&self, signal: i32) -> Result<()> {
        let Some(init) = self.state.init else {
            return Ok(());
        };
        let Ok(fd) = pidfd_open(Pid::from_raw(init.pid)) else {
            return Ok(());
        };
        // The pidfd pins the process: check it is still the init.
        if !init.is_alive() {
            return Ok(());
        }
        match pidfd_send_signal(fd.as_fd(), signal) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(Error::Sandbox(format!(
                "signal container {:?}: {}",
                self.state.id,
                errno_text(&e)
            ))),
        }
    }

    /// A connection on which the sandbox answers when the init exits.
    pub fn wait_conn(&self) -> Result<std::os::unix::net::UnixStream> {
        self.live_sandbox("wait for")?
            .wait_conn(&self.state.id, false)
    }

    /// `exec`: run another process in the container, as a child of the
    /// sandbox.
    pub fn exec(&self, opts: ExecOptions) -> Result<Execed> {
        let st = self.status();
        match st {
            Status::Created | Status::Running => {}
            Status::Paused if opts.ignore_paused && !self.state.is_root => {}
            Status::Paused if opts.ignore_paused => {
                return Err(Error::Invalid(format!(
                    "cannot exec in container {:?} while it is paused: its sandbox is paused with it (resume it first)",
                    self.state.id
                )))
            }
            Status::Paused => {
                return Err(Error::Invalid(
                    "cannot exec in a paused container (use --ignore-paused to override)".into(),
                ))
            }
            _ => {
                return Err(Error::BadState {
                    id: self.state.id.clone(),
                    op: "exec in",
                    status: st.to_string(),
                })
            }
        }
        if opts.process.terminal() == Some(true) && opts.console.is_none() {
            return Err(Error::Invalid(
                "a terminal was requested but there is no console socket".into(),
            ));
        }
        let sb = self.live_sandbox("exec in")?;
        let console = match opts.console {
            Some(c) => Some(c.connect()?),
            None => None,
        };
        let mut fds: Vec<RawFd> = vec![0, 1, 2];
        let console_socket = console.as_ref().map(|c| {
            fds.push(c.as_raw_fd());
            fds.len() - 1
        });
        let mut preserved = Vec::new();
        for i in 0..opts.preserve_fds {
            preserved.push(fds.len());
            fds.push(3 + i as RawFd);
        }
        let mut keep = Vec::new();
        let mut cgroup_procs = Vec::new();
        let mut cgroup2 = None;
        let cgroup = match &opts.sub_cgroup {
            Some(sub) => {
                let join = sandbox::cgroup_join(sub)?;
                let mut add = |fd: OwnedFd| {
                    fds.push(fd.as_raw_fd());
                    keep.push(fd);
                    fds.len() - 1
                };
                for fd in join.tasks {
                    cgroup_procs.push(add(fd));
                }
                if let Some(v2) = join.v2 {
                    cgroup2 = Some([add(v2.dir), add(v2.procs)]);
                }
                sub.clone()
            }
            None => self.state.cgroup.clone(),
        };
        let req = ExecProcess {
            id: self.state.id.clone(),
            process: Box::new(opts.process),
            stdio: [0, 1, 2],
            console_socket,
            preserved,
            cgroup_procs,
            cgroup2,
        };
        let listener = self.listener();
        let mut oci = self.state.oci_state();
        let mut pid = 0;
        let (token, pidfd) = sb.exec(req, &fds, &mut |ev| match ev {
            Event::Forked(fd) => {
                // A process that is gone already (it ran that fast) has no
                // pid left to tell; its exit status is still to come.
                pid = host_pid(fd).map(|p| p.pid).unwrap_or(0);
                Ok(())
            }
            Event::SeccompListener(fd) => {
                oci.pid = pid;
                give_to_listener(listener.as_ref(), fd, oci.clone())
            }
            Event::RunHooks => Ok(()),
        })?;
        drop(keep);
        Ok(Execed {
            pid,
            pidfd,
            token,
            sandbox: sb,
            cgroup,
        })
    }

    /// The host pids of the container's processes: its cgroup's, without
    /// husk's own (boot, stand-ins). Read from the host, so it works while
    /// the container (and its sandbox) is frozen.
    pub fn processes(&self) -> Result<Vec<i32>> {
        let st = self.status();
        if st == Status::Stopped || st == Status::Creating {
            return Ok(Vec::new());
        }
        if self.state.cgroup.is_empty() {
            // Rootless without a cgroup of its own: the processes of the
            // container's pid namespace.
            return Ok(self.pid_namespace_processes());
        }
        let mut pids = self.state.cgroup.pids()?;
        if let Some(sb) = &self.state.sandbox {
            let boot = sb.boot;
            let sandbox_pidns = ns_inode(boot.pid, "pid");
            pids.retain(|&p| {
                if p == boot.pid && boot.is_alive() {
                    return false;
                }
                !(is_stand_in(p) && ns_inode(p, "pid") == sandbox_pidns)
            });
        }
        Ok(pids)
    }

    /// Every process in the pid namespace of the container's init (when
    /// that is not ours), found through /proc: what a container without a
    /// cgroup (rootless) has for a process list.
    fn pid_namespace_processes(&self) -> Vec<i32> {
        let Some(init) = self.state.init.filter(|i| i.is_alive()) else {
            return Vec::new();
        };
        let theirs = ns_inode(init.pid, "pid");
        if theirs.is_none() || theirs == ns_inode(std::process::id() as i32, "pid") {
            return vec![init.pid];
        }
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&p| ns_inode(p, "pid") == theirs)
            .collect();
        pids.sort_unstable();
        pids
    }

    pub fn pause(&mut self) -> Result<()> {
        self.set_paused(true)
    }

    pub fn resume(&mut self) -> Result<()> {
        self.set_paused(false)
    }

    /// Freezes (or thaws) the container's cgroup from the host; only from
    /// running (or paused). A root container's sandbox is in its cgroup and
    /// freezes with it; every command that must work on a paused container
    /// does without it.
    fn set_paused(&mut self, pause: bool) -> Result<()> {
        let (op, from, to) = if pause {
            ("pause", Status::Running, Status::Paused)
        } else {
            ("resume", Status::Paused, Status::Running)
        };
        let st = self.status();
        if st != from {
            return Err(Error::BadState {
                id: self.state.id.clone(),
                op,
                status: st.to_string(),
            });
        }
        if pause {
            self.state.cgroup.freeze()?;
        } else {
            self.state.cgroup.thaw()?;
        }
        self.state.status = to;
        self.save()
    }

    pub fn stats(&self) -> Result<crate::cgroups::Stats> {
        let st = self.status();
        if st == Status::Stopped || st == Status::Creating {
            return Err(Error::BadState {
                id: self.state.id.clone(),
                op: "read stats of",
                status: st.to_string(),
            });
        }
        Ok(self.state.cgroup.stats()?)
    }

    /// OOM kills recorded in the container's cgroup.
    pub fn oom_kills(&self) -> u64 {
        self.state.cgroup.oom_kills()
    }

    pub fn update(&self, resources: LinuxResources) -> Result<()> {
        let st = self.status();
        if st == Status::Stopped || st == Status::Creating {
            return Err(Error::BadState {
                id: self.state.id.clone(),
                op: "update",
                status: st.to_string(),
            });
        }
        Ok(self.state.cgroup.apply(&resources)?)
    }

    /// `delete`: refuse a live container unless forced (a created one may
    /// go, as with runc); stop it; run poststop hooks; remove cgroup and
    /// state.
    pub fn delete(self, force: bool) -> Result<()> {
        self.delete_with(&mut ops::Real, force)
    }

    pub(crate) fn delete_with(self, ops: &mut dyn Ops, force: bool) -> Result<()> {
        let st = self.status();
        if self.state.is_root {
            let members = pod_members(&self.cfg, &self.state.id)?;
            if !members.is_empty() && !force {
                return Err(Error::Invalid(format!(
                    "cannot delete container {:?}: it is the sandbox of {} (delete them first, or use --force)",
                    self.state.id,
                    members.join(", ")
                )));
            }
        }
        match st {
            Status::Running | Status::Paused if !force => {
                return Err(Error::Invalid(format!(
                    "cannot delete container {:?} that is not stopped: {st} (use --force)",
                    self.state.id
                )))
            }
            _ => {}
        }
        // A frozen process cannot die, and a frozen sandbox cannot answer.
        if st == Status::Paused || self.state.cgroup.is_frozen() {
            let _ = self.state.cgroup.thaw();
        }
        if let Some(sb) = self.sandbox() {
            if ops.boot_alive(&sb) {
                if let Err(e) = ops.destroy_in(&sb, &self.state.id) {
                    tracing::debug!("destroy through sandbox failed: {e}; killing it");
                }
                if self.state.is_root {
                    ops.stop_boot(&sb, None, Duration::from_secs(5));
                }
            }
        }
        if let Err(e) = ops.remove_cgroup(&self.state.cgroup, true) {
            return Err(Error::Sandbox(format!(
                "delete container {:?}: {e}",
                self.state.id
            )));
        }
        let mut oci = self.state.oci_state();
        oci.status = Status::Stopped.to_string();
        oci.pid = 0;
        hooks::run_logged(self.state.hooks.as_ref(), Stage::Poststop, &oci);
        if !self.state.is_root {
            if let Some(sb) = &self.state.sandbox {
                remove_member(&self.cfg, &sb.id, &self.state.id);
            }
        }
        remove_state_dir(&self.dir)?;
        if self.state.is_root {
            if let Some(base) = self.state.userns_base {
                userns::release(base);
            }
        }
        drop(self.lock);
        Ok(())
    }

    pub fn oci_state(&self) -> OciState {
        self.state.oci_state()
    }
}

/// `delete --force` of a container whose state cannot be read: find what
/// it left (its cgroups: recorded ones if the file is ours but cut off,
/// else the ones its id implies; its sandbox, by the peer of its control
/// socket), kill its processes, remove what it made, and say what could
/// not be done. A state file someone else wrote is never believed.
pub fn salvage(cfg: &Config, id: &str) -> Result<()> {
    validate_id(id)?;
    let dir = cfg.container_dir(id);
    let lock = DirLock::acquire(&dir, id)?;
    let mut left = Vec::new();
    let ours = |meta: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0
    };
    // Whatever part of the record survived, if it is ours.
    let path = dir.join(state::STATE_FILE);
    let recorded: Option<CgroupPath> = std::fs::symlink_metadata(&path)
        .ok()
        .filter(|m| m.is_file() && ours(m))
        .and_then(|_| std::fs::read(&path).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v["cgroup"].clone()).ok());
    let cgroup = match recorded {
        Some(c) if !c.dirs.is_empty() => c,
        _ => {
            // The default place, /husk/<id>: only husk makes those.
            let mut c = crate::cgroups::resolve(None, id)?;
            for d in &mut c.dirs {
                d.created = true;
            }
            c
        }
    };
    // A sandbox of its own: boot is the listener of its socket.
    let sock = dir.join(sandbox::SOCKET_NAME);
    if std::fs::symlink_metadata(&sock).is_ok_and(|m| ours(&m)) {
        if let Ok(conn) = std::os::unix::net::UnixStream::connect(&sock) {
            let peer =
                nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials);
            if let Ok(cred) = peer {
                if let Some(p) = ProcRef::of(cred.pid()) {
                    sandbox::kill_and_wait(p, Duration::from_secs(5));
                }
            }
        }
    }
    let _ = cgroup.thaw();
    if let Err(e) = cgroup.signal_all(nix::sys::signal::Signal::SIGKILL) {
        left.push(format!("processes: {e}"));
    }
    if let Err(e) = cgroup.destroy() {
        left.push(format!("cgroup: {e}"));
    }
    remove_state_dir(&dir)?;
    drop(lock);
    if !left.is_empty() {
        return Err(Error::Sandbox(format!(
            "container {id:?}: could not clean up: {}",
            left.join("; ")
        )));
    }
    Ok(())
}

/// Whether a directory of the root holds husk's state (a state file that
/// says so), as opposed to another runtime's.
fn is_husks(dir: &Path) -> bool {
    std::fs::read(dir.join(state::STATE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["runtime"] == state::RUNTIME_NAME)
}

/// A husk stand-in (its name; callers check its pid namespace too).
fn is_stand_in(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "husk-wait")
}

fn ns_inode(pid: i32, kind: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

/// A create whose boot died: say how it died.
fn explain_sandbox_death(
    e: Error,
    sandbox: Option<&mut (Sandbox, Option<crate::sys::spawn::ChildProc>)>,
) -> Error {
    if !matches!(e, Error::SandboxGone(_)) {
        return e;
    }
    if let Some((_, Some(child))) = sandbox {
        if child.wait_timeout(1000) {
            if let Some(why) = child.startup_error() {
                return Error::Sandbox(format!("start husk boot: {why}"));
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Error::Sandbox(format!(
                    "husk boot exited (status {}) while creating the container",
                    crate::sys::spawn::exit_code(st)
                ));
            }
        }
    }
    e
}

/// The running sandbox `sandbox_id` for a pod member, with its lock held
/// shared.
fn pod_sandbox(cfg: &Config, sandbox_id: &str) -> Result<(Sandbox, DirLock, Option<u32>)> {
    validate_id(sandbox_id).map_err(|_| {
        Error::Spec(format!(
            "annotations name an invalid sandbox id {sandbox_id:?}"
        ))
    })?;
    let dir = cfg.container_dir(sandbox_id);
    let missing = || Error::Invalid(format!("sandbox {sandbox_id:?} does not exist"));
    let lock = match DirLock::acquire_shared(&dir, sandbox_id) {
        Ok(l) => l,
        Err(Error::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(e),
    };
    let st = match State::read(lock.fd(), sandbox_id) {
        Ok(s) => s,
        Err(Error::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(e),
    };
    if !st.is_root {
        return Err(Error::Invalid(format!(
            "container {sandbox_id:?} is not a sandbox (it belongs to sandbox {:?})",
            st.sandbox.as_ref().map(|s| s.id.as_str()).unwrap_or("?")
        )));
    }
    let status = st.current_status();
    let sb = match (&st.sandbox, status) {
        (Some(sb), Status::Created | Status::Running) if sb.boot.is_alive() => sb.clone(),
        (Some(_), Status::Paused) => {
            return Err(Error::Invalid(format!(
                "sandbox {sandbox_id:?} is paused (resume it first)"
            )))
        }
        _ => {
            return Err(Error::Invalid(format!(
                "sandbox {sandbox_id:?} is not running (it is {status})"
            )))
        }
    };
    if sb.protocol != PROTOCOL {
        return Err(Error::Invalid(format!(
            "sandbox {sandbox_id:?} was started by another version of husk (protocol {}, this one speaks {PROTOCOL})",
            sb.protocol
        )));
    }
    Ok((
        Sandbox {
            id: sb.id,
            boot: sb.boot,
            dir,
        },
        lock,
        st.userns_base,
    ))
}

/// The pod members of sandbox `id` (other containers whose sandbox it is).
/// Pod members are recorded as empty files in their sandbox's state
/// directory, so finding them costs nothing per other container.
const MEMBERS: &str = "members";

fn member_marker(cfg: &Config, sandbox_id: &str, id: &str) -> PathBuf {
    cfg.container_dir(sandbox_id).join(MEMBERS).join(id)
}

fn add_member(cfg: &Config, sandbox_id: &str, id: &str) -> Result<()> {
    let m = member_marker(cfg, sandbox_id, id);
    if let Some(dir) = m.parent() {
        std::fs::create_dir_all(dir).with_ctx(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&m, b"").with_ctx(|| format!("write {}", m.display()))
}

fn remove_member(cfg: &Config, sandbox_id: &str, id: &str) {
    let _ = std::fs::remove_file(member_marker(cfg, sandbox_id, id));
}

/// The pod members of sandbox `id` that still exist.
fn pod_members(cfg: &Config, id: &str) -> Result<Vec<String>> {
    let dir = cfg.container_dir(id).join(MEMBERS);
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_ctx(|| format!("read {}", dir.display())),
    };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        match Container::read(cfg, &name) {
            Ok(st) if st.sandbox.as_ref().is_some_and(|s| s.id == id) => out.push(name),
            _ => remove_member(cfg, id, &name),
        }
    }
    out.sort();
    Ok(out)
}

fn remove_state_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_ctx(|| format!("remove {}", dir.display())),
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().ctx("get current directory")?;
    Ok(cwd.join(p))
}

/// Whether the container's /proc views are on (they are unless its
/// annotation says "off").
fn proc_views_on(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(PROC_VIEWS_ANNOTATION))
        .is_none_or(|v| v != "off")
}

/// /dev/fuse, opened in boot's user namespace (a FUSE filesystem belongs to
/// the user namespace its device descriptor was opened in).
fn open_fuse_for(sandbox: &Sandbox) -> std::io::Result<OwnedFd> {
    let path = Path::new("/dev/fuse");
    let theirs = format!("/proc/{}/ns/user", sandbox.boot.pid);
    let same = |a: &str, b: &str| {
        use std::os::unix::fs::MetadataExt;
        matches!((std::fs::metadata(a), std::fs::metadata(b)),
            (Ok(x), Ok(y)) if x.ino() == y.ino() && x.dev() == y.dev())
    };
    if same(&theirs, "/proc/self/ns/user") {
        return crate::sys::fd::open(path, libc::O_RDWR, 0);
    }
    // A child enters the user namespace (which it can never leave), opens
    // the device there and hands it back.
    let ns = std::fs::File::open(&theirs)?;
    let (ours, child_end) = std::os::unix::net::UnixStream::pair()?;
    let child = crate::sys::process::fork_run(|| {
        let r = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWUSER)
            .map_err(std::io::Error::from)
            .and_then(|_| crate::sys::fd::open(path, libc::O_RDWR, 0))
            .and_then(|fd| {
                crate::sys::fdpass::send_with_fds(child_end.as_fd(), b"f", &[fd.as_raw_fd()])
            });
        // The reason, as the exit code.
        match r {
            Ok(()) => 0,
            Err(e) => e
                .raw_os_error()
                .filter(|n| (1..126).contains(n))
                .unwrap_or(125),
        }
    })?;
    drop(child_end);
    let mut buf = [0u8; 1];
    let got = crate::sys::fdpass::recv_with_fds(ours.as_fd(), &mut buf);
    let status = nix::sys::wait::waitpid(child, None);
    match got {
        Ok((1, mut fds)) if !fds.is_empty() => Ok(fds.remove(0)),
        Ok(_) => Err(match status {
            Ok(nix::sys::wait::WaitStatus::Exited(_, n)) if (1..125).contains(&n) => {
                std::io::Error::from_raw_os_error(n)
            }
            _ => std::io::Error::other("could not open it in the sandbox's user namespace"),
        }),
        Err(e) => Err(e),
    }
}

/// Whether husk's seccomp baseline applies to this container: on unless
/// `--seccomp-baseline=off` or the container's annotation says "off".
fn baseline_on(cfg: &Config, spec: &Spec) -> bool {
    let ann = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(BASELINE_ANNOTATION))
        .map(String::as_str);
    cfg.seccomp_baseline == crate::config::OnOff::On && ann != Some("off")
}

/// The seccomp filters for this container: the spec's profile (or, when it
/// has none, husk's default profile) and husk's baseline, compiled once and
/// cached.
fn seccomp_plan(
    cfg: &Config,
    spec: &Spec,
    baseline: bool,
) -> Result<Option<crate::seccomp::Prepared>> {
    use oci_spec::runtime::Capability;
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref());
    let has = |set: Option<&std::collections::HashSet<Capability>>| {
        set.is_some_and(|s| s.contains(&Capability::SysAdmin))
    };
    let ctx = crate::seccomp::BaselineContext {
        enabled: baseline,
        // boot loads the always-denied rules on itself (when the baseline
        // is on for the pod's root container); every process of the
        // container inherits them.
        always_inherited: baseline,
        has_cap_sys_admin: caps
            .is_some_and(|c| has(c.bounding().as_ref()) || has(c.effective().as_ref())),
        has_user_namespace: has_new_userns(spec),
    };
    if profile.is_none() && !ctx.enabled {
        return Ok(None);
    }
    let dir = cfg.seccomp_cache_dir();
    let plan = match profile {
        // No profile in the spec: husk's default profile (Docker's
        // semantics, for this container's capabilities) stands in for it.
        None => crate::seccomp::prepare_cached_default(&dir, spec.process().as_ref(), &ctx)?,
        Some(p) => crate::seccomp::prepare_cached(&dir, Some(p), &ctx)?,
    };
    Ok(Some(plan))
}

/// boot's own filter: the part of husk's baseline that holds for every
/// container, privileged or not (every container process inherits it).
fn boot_seccomp(cfg: &Config) -> Result<crate::seccomp::Prepared> {
    let ctx = crate::seccomp::BaselineContext {
        enabled: true,
        has_cap_sys_admin: true,
        has_user_namespace: true,
        always_inherited: false,
    };
    Ok(crate::seccomp::prepare_cached(
        &cfg.seccomp_cache_dir(),
        None,
        &ctx,
    )?)
}

/// One line on what a rootless container gets of its cgroup: every
/// hierarchy the user may not write was left out (see cgroups::resolve).
fn note_rootless_cgroup(cgroup: &CgroupPath, asked: Option<&Path>) {
    if !cgroup.is_empty() {
        let dirs: Vec<String> = cgroup
            .dirs
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        tracing::debug!("rootless: cgroup {}", dirs.join(", "));
        return;
    }
    let why = format!(
        "uid {} has no cgroup it may write (no delegated cgroup)",
        nix::unistd::geteuid()
    );
    match asked.filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => tracing::warn!(
            "rootless: linux.cgroupsPath {}: not used, {why}: the container runs in husk's own cgroup, without limits",
            p.display()
        ),
        None => tracing::debug!(
            "rootless: no cgroup for the container, {why}: it runs in husk's own cgroup, without limits"
        ),
    }
}

/// What a root container needs when husk runs as a user other than root:
/// a user namespace of its own, whose maps the user may write (itself, or
/// through newuidmap/newgidmap). Checked before anything is made.
fn check_unprivileged(spec: &Spec) -> Result<()> {
    if !has_new_userns(spec) {
        return Err(Error::Privilege(format!(
            "linux.namespaces: running as uid {} (not root), the container needs a user namespace of its own (husk spec --rootless writes one)",
            nix::unistd::geteuid()
        )));
    }
    let (uid_map, gid_map) = id_maps_of(spec)?;
    sandbox::idmap::check(&uid_map, &gid_map)
}

/// The spec's uid_map and gid_map lines for a new user namespace.
fn id_maps_of(spec: &Spec) -> Result<(String, String)> {
    let linux = spec.linux().as_ref();
    let fmt = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
        maps.into_iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    let uid = fmt(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = fmt(linux.and_then(|l| l.gid_mappings().as_ref()));
    if uid.is_empty() || gid.is_empty() {
        return Err(Error::Spec(
            "linux.uidMappings and linux.gidMappings are required with a new user namespace".into(),
        ));
    }
    Ok((uid, gid))
}

/// A detached copy of the host's mount tree (for createContainer hooks),
/// private so that nothing done in it reaches the host.
fn host_tree() -> Result<OwnedFd> {
    use crate::sys::mount::{
        mount_setattr, open_tree, Attrs, AT_RECURSIVE, MS_PRIVATE, OPEN_TREE_CLONE,
    };
    let tree = open_tree(None, Path::new("/"), OPEN_TREE_CLONE | AT_RECURSIVE)
        .map_err(|e| Error::os("copy the host's mounts for createContainer hooks", e))?;
    mount_setattr(
        tree.as_fd(),
        true,
        &Attrs {
            propagation: MS_PRIVATE,
            ..Default::default()
        },
    )
    .map_err(|e| Error::os("copy the host's mounts for createContainer hooks", e))?;
    Ok(tree)
}

/// Hand a seccomp user-notification descriptor to the profile's listener
/// (a host path: only the host side can reach it).
fn give_to_listener(
    listener: Option<&(PathBuf, String)>,
    fd: OwnedFd,
    state: OciState,
) -> Result<()> {
    let (path, metadata) = listener.ok_or_else(|| {
        Error::Spec("linux.seccomp.listenerPath is required for SCMP_ACT_NOTIFY".into())
    })?;
    let pid = state.pid;
    let st = serde_json::to_value(state).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::seccomp::send_to_listener(path, metadata, fd.as_fd(), pid, st)?;
    Ok(())
}

/// Connect to the caller's console socket (host path, resolved here in the
/// CLI, never in the sandbox).
fn connect_console(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        Error::Invalid(format!(
            "console socket {}: {}",
            path.display(),
            errno_text(&e)
        ))
    })?;
    Ok(OwnedFd::from(s))
}
