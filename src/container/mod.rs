//! The container layer: state on disk, the status machine, locking, hooks
//! that run in the runtime's namespace, pid files, and pod membership. It
//! drives the sandbox layer and never touches namespaces or mounts itself.

pub mod lock;
pub mod state;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oci_spec::runtime::{LinuxResources, Process, Spec};

use crate::cgroups::{self, CgroupPath};
use crate::config::{Config, FileAccess};
use crate::control::{CreateContainer, CreateFds, ExecProcess, ExitStatus};
use crate::error::{errno_text, Error, IoContext, Result};
use crate::sandbox::{self, Gofer, Launched, Sandbox};
use crate::spec::{self, PodRole};
use husk_oci::gofer::GoferRequest;
use husk_oci::hooks;

use self::hooks::Stage;
use self::lock::DirLock;
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

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
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

    /// All containers under the root directory.
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
                Ok(st) => out.push(st),
                Err(Error::NotFound(_)) => {}
                Err(e) => tracing::warn!("skipping {id}: {e}"),
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
    pub fn create(cfg: &Config, mut opts: CreateOptions) -> Result<Created> {
        validate_id(&opts.id)?;
        let bundle = absolute(&opts.bundle)?;
        if !bundle.is_dir() {
            return Err(Error::Spec(format!(
                "bundle {}: {}",
                bundle.display(),
                if bundle.exists() {
                    "not a directory"
                } else {
                    "no such file or directory"
                }
            )));
        }
        let mut spec = match opts.spec.take() {
            Some(s) => s,
            None => spec::load(&bundle)?,
        };
        spec::add_default_device_rules(&mut spec);
        let role = spec::pod_role(&spec)?;
        // A pod member joins a running sandbox; hold its lock shared so the
        // sandbox is not deleted under us.
        let pod = match &role {
            PodRole::Root => None,
            PodRole::Sub { sandbox_id } => Some(pod_sandbox(cfg, sandbox_id)?),
        };
        if spec.process().as_ref().and_then(|p| p.terminal()) == Some(true)
            && opts.console.is_none()
        {
            return Err(Error::Spec(
                "process.terminal is true but no --console-socket was given".into(),
            ));
        }
        let console = match opts.console.take() {
            Some(c) => Some(c.connect()?),
            None => None,
        };

        std::fs::create_dir_all(&cfg.root)
            .with_ctx(|| format!("create root directory {}", cfg.root.display()))?;
        let dir = cfg.container_dir(&opts.id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(opts.id.clone()))
            }
            Err(e) => return Err(e).with_ctx(|| format!("create {}", dir.display())),
        }
        // The lock is taken before the guard exists, so the guard's cleanup
        // (dropped first) still runs under it.
        let lock = match DirLock::acquire(&dir, &opts.id) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let mut guard = CreateGuard {
            dir: dir.clone(),
            cgroup: None,
            sandbox: None,
            gofer: None,
            member_of: None,
            member: None,
            armed: true,
        };
        let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        let cgroup = cgroups::resolve(cgroups_path.as_deref(), &opts.id, cfg.systemd_cgroup)
            .map_err(|e| Error::Sandbox(e.to_string()))?;
        let rootfs = spec::rootfs_path(&bundle, &spec);
        let mut state = State {
            id: opts.id.clone(),
            bundle: bundle.clone(),
            rootfs,
            created: now_rfc3339(),
            owner_uid: nix::unistd::geteuid().as_raw(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            status: Status::Creating,
            init: None,
            sandbox: None,
            cgroup: CgroupPath::default(),
            hooks: spec.hooks().clone(),
            is_root: matches!(role, PodRole::Root),
            process: spec.process().clone(),
            creator: ProcRef::of(nix::unistd::getpid().as_raw()),
        };
        // A state from the first moment: if this command is killed, the
        // container reads as stopped and `delete` cleans up after it.
        state.write(lock.fd())?;

        let gofer = if cfg.file_access == FileAccess::Proxy {
            let userns = has_new_userns(&spec);
            let req = GoferRequest::for_spec(&bundle, &spec, userns, cfg.overlay);
            Some(Gofer::spawn(cfg, &opts.id, &req)?)
        } else {
            None
        };
        let gofer_fd = gofer.as_ref().map(|g| g.sandbox_end.as_raw_fd());
        guard.gofer = gofer;

        let sandbox = match &pod {
            None => {
                let Launched {
                    sandbox,
                    child: boot_child,
                } = Sandbox::launch(cfg, &opts.id, &dir)?;
                guard.sandbox = Some((sandbox.clone(), Some(boot_child)));
                sandbox
            }
            Some((sandbox, _)) => sandbox.clone(),
        };
        state.sandbox = Some(SandboxRef {
            id: sandbox.id.clone(),
            boot: sandbox.boot,
        });

        // The cgroup and the seccomp filters are made here, while boot and
        // the gofer start.
        let seccomp = seccomp_plan(cfg, &spec)?;
        let mut cgroup = cgroup;
        cgroup.create().map_err(|e| Error::Sandbox(e.to_string()))?;
        guard.cgroup = Some(cgroup.clone());
        if let Some(rules) = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().as_ref())
        {
            cgroup
                .attach_device_filter(rules)
                .map_err(|e| Error::Spec(e.to_string()))?;
        }
        state.cgroup = cgroup.clone();
        state.write(lock.fd())?;

        let mut fds: Vec<RawFd> = Vec::new();
        let mut cfds = CreateFds::default();
        if pod.is_some() {
            // The root container inherits boot's stdio; a pod member's comes
            // along with the request.
            cfds.stdio = Some([0, 1, 2]);
            fds.extend([0, 1, 2]);
        }
        if let Some(fd) = gofer_fd {
            cfds.gofer = Some(fds.len());
            fds.push(fd);
        }
        if let Some(c) = &console {
            cfds.console_socket = Some(fds.len());
            fds.push(c.as_raw_fd());
        }
        for i in 0..opts.preserve_fds {
            cfds.preserved.push(fds.len());
            fds.push(3 + i as RawFd);
        }
        let hook_state = OciState {
            oci_version: state::OCI_VERSION.into(),
            id: state.id.clone(),
            status: "creating".into(),
            pid: 0,
            bundle: state.bundle.clone(),
            rootfs: state.rootfs.clone(),
            created: state.created.clone(),
            owner: state.owner_name(),
            annotations: state.annotations.clone(),
        };
        let req = CreateContainer {
            id: opts.id.clone(),
            bundle: bundle.clone(),
            spec: Box::new(spec),
            cgroup,
            fds: cfds,
            hook_state,
            seccomp,
        };
        if pod.is_some() {
            add_member(cfg, &sandbox.id, &opts.id)?;
            guard.member_of = Some((cfg.clone(), sandbox.id.clone()));
        }
        let init = match sandbox.create(req, &fds) {
            Ok(p) => {
                if pod.is_some() {
                    // From here, undoing means asking the pod's boot too.
                    guard.member = Some((sandbox.clone(), opts.id.clone()));
                }
                p
            }
            Err(e) => {
                // A boot that died says nothing more; its exit status helps.
                if matches!(&e, Error::Sandbox(m) if m.contains("exited before answering")) {
                    if let Some((_, Some(child))) = guard.sandbox.as_mut() {
                        if let Ok(Some(st)) = child.try_wait() {
                            return Err(Error::Sandbox(format!(
                                "husk boot exited ({st:?}) while creating the container"
                            )));
                        }
                    }
                }
                return Err(e);
            }
        };
        drop(console);
        if let Some(g) = guard.gofer.take() {
            g.reap(Duration::from_secs(5));
        }
        state.init = Some(init);
        state.status = Status::Created;
        state.write(lock.fd())?;
        if let Some(pf) = &opts.pid_file {
            // The root container's pid file names boot, which exits with its
            // status; a pod member gets a waiter standing in for its init.
            let pid = match &pod {
                None => sandbox.boot.pid,
                Some(_) => {
                    let conn = sandbox.wait_conn(&opts.id, true)?;
                    crate::sandbox::waiter::spawn(conn, nix::unistd::Pid::from_raw(init.pid))?
                }
            };
            state::write_file_atomic(pf, pid.to_string().as_bytes())?;
        }
        let boot_child = guard.sandbox.take().and_then(|(_, c)| c);
        guard.armed = false;
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

    /// `start`: release the init to exec the program; poststart hooks after.
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
        sb.start(&self.state.id)?;
        self.state.status = Status::Running;
        self.save()?;
        hooks::run_logged(
            self.state.hooks.as_ref(),
            Stage::Poststart,
            &self.state.oci_state(),
        );
        Ok(())
    }

    /// `kill`: send a signal to the init (or every process with `all`).
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let st = self.status();
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
        let sb = self.live_sandbox("kill")?;
        sb.signal(&self.state.id, signal, all)
    }

    /// A connection on which the sandbox answers when the init exits.
    pub fn wait_conn(&self) -> Result<std::os::unix::net::UnixStream> {
        self.live_sandbox("wait for")?
            .wait_conn(&self.state.id, false)
    }

    /// Wait for the container's init to exit (through the sandbox).
    pub fn wait(&self) -> Result<ExitStatus> {
        let sb = self.live_sandbox("wait")?;
        sb.wait(&self.state.id)
    }

    /// `exec`: run another process in the container. Returns the process
    /// (a child of the sandbox) and the sandbox that watches it.
    pub fn exec(&self, opts: ExecOptions) -> Result<(ProcRef, Sandbox)> {
        let st = self.status();
        if st != Status::Running {
            return Err(Error::BadState {
                id: self.state.id.clone(),
                op: "exec in",
                status: st.to_string(),
            });
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
        let req = ExecProcess {
            id: self.state.id.clone(),
            process: Box::new(opts.process),
            stdio: [0, 1, 2],
            console_socket,
            preserved,
        };
        let p = sb.exec(req, &fds)?;
        Ok((p, sb))
    }

    /// The host pids of the container's processes.
    pub fn processes(&self) -> Result<Vec<i32>> {
        let sb = self.live_sandbox("list processes of")?;
        sb.processes(&self.state.id)
    }

    pub fn pause(&mut self) -> Result<()> {
        self.set_paused(true)
    }

    pub fn resume(&mut self) -> Result<()> {
        self.set_paused(false)
    }

    /// Freezes (or thaws) the container through its sandbox; only from
    /// running (or paused).
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
        let sandbox = self.live_sandbox(op)?;
        if pause {
            sandbox.pause(&self.state.id)?;
        } else {
            sandbox.resume(&self.state.id)?;
        }
        self.state.status = to;
        self.save()
    }

    pub fn stats(&self) -> Result<serde_json::Value> {
        self.live_sandbox("read stats of")?.stats(&self.state.id)
    }

    /// OOM kills recorded in the container's cgroup.
    pub fn oom_kills(&self) -> u64 {
        self.state.cgroup.oom_kills()
    }

    pub fn update(&self, resources: LinuxResources) -> Result<()> {
        self.live_sandbox("update")?
            .update(&self.state.id, resources)
    }

    /// `delete`: refuse a live container unless forced (a created one may
    /// go, as with runc); stop it; run poststop hooks; remove cgroup and
    /// state.
    pub fn delete(self, force: bool) -> Result<()> {
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
        if let Some(sb) = self.sandbox() {
            if sb.is_running() {
                if let Err(e) = sb.destroy(&self.state.id) {
                    tracing::debug!("destroy through sandbox failed: {e}; killing it");
                }
                if self.state.is_root && !sb.wait_boot_exit(Duration::from_secs(5)) {
                    sb.kill_boot();
                }
            }
        }
        let _ = self.state.cgroup.thaw();
        if let Err(e) = self.state.cgroup.destroy() {
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
        drop(self.lock);
        Ok(())
    }

    pub fn oci_state(&self) -> OciState {
        self.state.oci_state()
    }
}

/// The running sandbox `sandbox_id` for a pod member, with its lock held
/// shared.
fn pod_sandbox(cfg: &Config, sandbox_id: &str) -> Result<(Sandbox, DirLock)> {
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
        (Some(sb), Status::Created | Status::Running | Status::Paused) if sb.boot.is_alive() => {
            sb.clone()
        }
        _ => {
            return Err(Error::Invalid(format!(
                "sandbox {sandbox_id:?} is not running (it is {status})"
            )))
        }
    };
    Ok((
        Sandbox {
            id: sb.id,
            boot: sb.boot,
            dir,
        },
        lock,
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

/// Undo a half-made create.
struct CreateGuard {
    dir: PathBuf,
    cgroup: Option<CgroupPath>,
    sandbox: Option<(Sandbox, Option<crate::sys::spawn::ChildProc>)>,
    gofer: Option<Gofer>,
    /// The sandbox this pod member was recorded in.
    member_of: Option<(Config, String)>,
    /// A pod member the pod's boot has built (to destroy there).
    member: Option<(Sandbox, String)>,
    armed: bool,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some((sb, id)) = self.member.take() {
            if let Err(e) = sb.destroy(&id) {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Some((cfg, sandbox)) = self.member_of.take() {
            let id = self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            remove_member(&cfg, &sandbox, &id);
        }
        if let Some(g) = self.gofer.take() {
            g.kill();
        }
        if let Some((sb, child)) = self.sandbox.take() {
            sandbox::kill_and_wait(sb.boot, Duration::from_secs(5));
            if let Some(mut c) = child {
                c.kill();
                let _ = c.wait();
            }
        }
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Err(e) = remove_state_dir(&self.dir) {
            tracing::warn!("cleanup: {e}");
        }
    }
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

/// The seccomp filters for this container: the spec's profile and husk's
/// baseline, compiled once and cached under the root directory.
fn seccomp_plan(cfg: &Config, spec: &Spec) -> Result<Option<crate::seccomp::Prepared>> {
    use oci_spec::runtime::{Capability, LinuxNamespaceType};
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref());
    let has = |set: Option<&std::collections::HashSet<Capability>>| {
        set.is_some_and(|s| s.contains(&Capability::SysAdmin))
    };
    let baseline = cfg.seccomp_baseline == crate::config::OnOff::On;
    let ctx = crate::seccomp::BaselineContext {
        enabled: baseline,
        // boot loads the always-denied rules on itself; every process of
        // the container inherits them.
        always_inherited: baseline,
        has_cap_sys_admin: caps
            .is_some_and(|c| has(c.bounding().as_ref()) || has(c.effective().as_ref())),
        has_user_namespace: spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User)),
    };
    if profile.is_none() && !ctx.enabled {
        return Ok(None);
    }
    let plan = crate::seccomp::prepare_cached(&cfg.seccomp_cache_dir(), profile, &ctx)
        .map_err(|e| Error::Spec(e.to_string()))?;
    Ok(Some(plan))
}

fn has_new_userns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::User && n.path().is_none()
            })
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-DEF_1.2+x", "7abaf1363f88"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
