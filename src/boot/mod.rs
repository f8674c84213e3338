//! `husk boot`: the sandbox process. One per pod. It owns the containers'
//! processes (it is the parent of every one of them), answers the control
//! socket, reaps, and exits with the root container's exit status so that a
//! subreaper waiting on its pid (conmon, containerd's shim) sees the
//! container's status.
//!
//! Single-threaded: one poll loop over the listening socket, a signalfd, and
//! nothing else. Requests are short; `Wait` requests are parked until the
//! process they wait for exits.

pub mod init;
pub mod namespaces;
pub mod process;
pub mod rootfs;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::cgroups::CgroupPath;
use crate::config::{Config, FileAccess};
use crate::control::{wire, CreateContainer, ExecProcess, ExitStatus, Request, Response};
use crate::error::{errno_text, Error, Result};
use crate::sys::process::{fork_into, Forked};
use husk_oci::gofer::GoferRequest;
use husk_oci::hooks::{self, Stage};
use husk_oci::state::OciState;

use self::init::{InitArgs, MountSource, Sync};
use self::namespaces::NsPlan;

/// How many exit statuses of exec'd processes to remember for late `WaitPid`
/// calls.
const KEEP_EXITS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    Exited(ExitStatus),
}

struct Ctr {
    /// What hooks and seccomp agents are told about the container.
    hook_state: OciState,
    seccomp: Option<crate::seccomp::Prepared>,
    /// linux.personality, which exec'd processes get too.
    personality: Option<oci_spec::runtime::LinuxPersonality>,
    init: Pid,
    pidfd: OwnedFd,
    sync: Option<UnixStream>,
    phase: Phase,
    cgroup: CgroupPath,
    waiters: Vec<Waiter>,
}

struct ExecProc {
    pidfd: OwnedFd,
    waiters: Vec<Waiter>,
}

/// A parked `WaitPid` connection.
struct Waiter {
    conn: UnixStream,
    kill_on_close: bool,
}

pub struct Boot {
    cfg: Config,
    listener: UnixListener,
    sigfd: SignalFd,
    containers: HashMap<String, Ctr>,
    root_id: Option<String>,
    execs: HashMap<i32, ExecProc>,
    exits: VecDeque<(i32, ExitStatus)>,
    /// When set, exit with this status once nothing is left to answer.
    exiting: Option<ExitStatus>,
}

/// Entry point of `husk boot`.
pub fn main(cfg: Config, listener: OwnedFd) -> Result<i32> {
    // Our own session: a caller's terminal signals must not reach the
    // sandbox; `run` forwards what it receives.
    let _ = nix::unistd::setsid();
    // Until the root container exists, boot lives only as long as the
    // `husk create` that started it: a create killed half-way leaves no
    // sandbox waiting forever.
    crate::sys::process::set_parent_death_signal(Signal::SIGKILL)
        .map_err(|e| Error::Sandbox(format!("set parent death signal: {e}")))?;
    if nix::unistd::getppid().as_raw() == 1 {
        return Ok(1);
    }
    crate::sys::process::set_child_subreaper()
        .map_err(|e| Error::Sandbox(format!("become subreaper: {e}")))?;
    let _ = nix::unistd::chdir("/");
    crate::posture::boot_start(
        &cfg.seccomp_cache_dir(),
        cfg.seccomp_baseline == crate::config::OnOff::On,
    )?;

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in husk_oci::signals::FORWARD {
        mask.add(*s);
    }
    mask.add(Signal::SIGPIPE);
    mask.thread_block()
        .map_err(|e| Error::Sandbox(format!("block signals: {e}")))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::Sandbox(format!("signalfd: {e}")))?;

    let listener = UnixListener::from(listener);
    let mut boot = Boot {
        cfg,
        listener,
        sigfd,
        containers: HashMap::new(),
        root_id: None,
        execs: HashMap::new(),
        exits: VecDeque::new(),
        exiting: None,
    };
    boot.serve()
}

impl Boot {
    fn serve(&mut self) -> Result<i32> {
        loop {
            if let Some(st) = self.exiting {
                if self.containers.values().all(|c| c.waiters.is_empty()) {
                    return Ok(st.0);
                }
            }
            let mut fds = vec![
                libc::pollfd {
                    fd: self.listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.sigfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // Waiters that stand in for a process: watch for them going away.
            let mut watched = Vec::new();
            for (pid, ep) in &self.execs {
                for w in ep.waiters.iter().filter(|w| w.kill_on_close) {
                    fds.push(libc::pollfd {
                        fd: w.conn.as_raw_fd(),
                        events: libc::POLLIN | libc::POLLRDHUP,
                        revents: 0,
                    });
                    watched.push(*pid);
                }
            }
            for c in self.containers.values() {
                if matches!(c.phase, Phase::Exited(_)) {
                    continue;
                }
                for w in c.waiters.iter().filter(|w| w.kill_on_close) {
                    fds.push(libc::pollfd {
                        fd: w.conn.as_raw_fd(),
                        events: libc::POLLIN | libc::POLLRDHUP,
                        revents: 0,
                    });
                    watched.push(c.init.as_raw());
                }
            }
            crate::sys::poll(&mut fds, -1).map_err(|e| Error::Sandbox(format!("poll: {e}")))?;
            if fds[1].revents != 0 {
                self.handle_signals();
            }
            for (pfd, pid) in fds[2..].iter().zip(watched) {
                if pfd.revents == 0 {
                    continue;
                }
                tracing::debug!("waiter of process {pid} went away; killing it");
                // The process dies (once thawed, if its container is paused);
                // the waiter's connection is done with either way.
                let gone = |w: &Waiter| w.conn.as_raw_fd() == pfd.fd;
                if let Some(ep) = self.execs.get_mut(&pid) {
                    let _ = crate::sys::process::pidfd_send_signal(ep.pidfd.as_fd(), libc::SIGKILL);
                    ep.waiters.retain(|w| !gone(w));
                } else if let Some(c) = self
                    .containers
                    .values_mut()
                    .find(|c| c.init.as_raw() == pid)
                {
                    let _ = crate::sys::process::pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
                    c.waiters.retain(|w| !gone(w));
                }
            }
            if fds[0].revents != 0 && self.exiting.is_none() {
                match self.listener.accept() {
                    Ok((conn, _)) => {
                        self.handle_conn(conn);
                        // Going idle: give back what the request touched.
                        crate::sys::memory::trim_idle();
                    }
                    Err(e) => tracing::warn!("accept: {e}"),
                }
            }
        }
    }

    fn handle_signals(&mut self) {
        let mut reap = false;
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                reap = true;
            } else if let Some(root) = self.root_id.as_ref().and_then(|r| self.containers.get(r)) {
                if root.phase == Phase::Running {
                    let _ = crate::sys::process::pidfd_send_signal(root.pidfd.as_fd(), signo);
                }
            }
        }
        if reap {
            self.reap();
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(ws) => {
                    let Some(pid) = ws.pid() else { continue };
                    let Some(st) = ExitStatus::from_wait(ws) else {
                        continue;
                    };
                    self.on_exit(pid, st);
                }
            }
        }
    }

    fn on_exit(&mut self, pid: Pid, st: ExitStatus) {
        let cid = self
            .containers
            .iter()
            .find(|(_, c)| c.init == pid && !matches!(c.phase, Phase::Exited(_)))
            .map(|(id, _)| id.clone());
        if let Some(cid) = cid {
            tracing::debug!("container {cid} init {pid} exited: {}", st.0);
            let c = self.containers.get_mut(&cid).expect("present");
            c.phase = Phase::Exited(st);
            c.sync = None;
            for w in c.waiters.drain(..) {
                let _ = wire::send(&w.conn, &Response::Exited { status: st }, &[]);
            }
            if self.root_id.as_deref() == Some(cid.as_str()) {
                self.shut_down(st);
            }
            return;
        }
        if let Some(ep) = self.execs.remove(&pid.as_raw()) {
            for w in ep.waiters {
                let _ = wire::send(&w.conn, &Response::Exited { status: st }, &[]);
            }
            if self.exits.len() >= KEEP_EXITS {
                self.exits.pop_front();
            }
            self.exits.push_back((pid.as_raw(), st));
        }
    }

    /// The root container is gone: so is the pod. Kill what is left, answer
    /// everyone waiting, and exit with the root's status.
    fn shut_down(&mut self, st: ExitStatus) {
        for (id, c) in self.containers.iter() {
            if !matches!(c.phase, Phase::Exited(_)) {
                tracing::debug!("pod exits: killing container {id}");
                // A frozen process cannot die.
                let _ = c.cgroup.thaw();
                let _ = crate::sys::process::pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
                let _ = c.cgroup.signal_all(Signal::SIGKILL);
            }
        }
        // Wait for them so their waiters get real statuses.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self
            .containers
            .values()
            .any(|c| !matches!(c.phase, Phase::Exited(_)))
            && std::time::Instant::now() < deadline
        {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(2)),
                Ok(ws) => {
                    if let (Some(pid), Some(s)) = (ws.pid(), ExitStatus::from_wait(ws)) {
                        self.on_exit_no_shutdown(pid, s);
                    }
                }
                Err(_) => break,
            }
        }
        for ep in self.execs.values_mut() {
            for w in ep.waiters.drain(..) {
                let _ = wire::send(
                    &w.conn,
                    &Response::Exited {
                        status: ExitStatus(137),
                    },
                    &[],
                );
            }
        }
        self.exiting = Some(st);
    }

    fn on_exit_no_shutdown(&mut self, pid: Pid, st: ExitStatus) {
        if let Some(c) = self.containers.values_mut().find(|c| c.init == pid) {
            c.phase = Phase::Exited(st);
            for w in c.waiters.drain(..) {
                let _ = wire::send(&w.conn, &Response::Exited { status: st }, &[]);
            }
        }
    }

    fn handle_conn(&mut self, conn: UnixStream) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let (req, fds) = match wire::recv::<Request, _>(&conn) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("bad request: {e}");
                return;
            }
        };
        let _ = conn.set_read_timeout(None);
        tracing::debug!("request: {}", request_name(&req));
        let reply = match req {
            Request::Wait { id, kill_on_close } => match self.containers.get_mut(&id) {
                Some(c) => match c.phase {
                    Phase::Exited(status) => Response::Exited { status },
                    _ => {
                        c.waiters.push(Waiter {
                            conn,
                            kill_on_close,
                        });
                        return;
                    }
                },
                None => not_found(&id),
            },
            Request::WaitPid { pid, kill_on_close } => {
                if let Some(ep) = self.execs.get_mut(&pid) {
                    ep.waiters.push(Waiter {
                        conn,
                        kill_on_close,
                    });
                    return;
                }
                match self.exits.iter().find(|(p, _)| *p == pid) {
                    Some((_, status)) => Response::Exited { status: *status },
                    None => Response::Error {
                        message: format!("no process {pid} was started in this sandbox"),
                    },
                }
            }
            Request::Destroy { id } => match self.destroy(&id) {
                Ok(true) => {
                    // Answer when the init has been reaped.
                    if let Some(c) = self.containers.get_mut(&id) {
                        c.waiters.push(Waiter {
                            conn,
                            kill_on_close: false,
                        });
                    }
                    self.reap();
                    return;
                }
                Ok(false) => Response::Ok,
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            },
            other => self
                .dispatch(other, fds)
                .unwrap_or_else(|e| Response::Error {
                    message: e.to_string(),
                }),
        };
        if let Err(e) = wire::send(&conn, &reply, &[]) {
            tracing::debug!("reply: {e}");
        }
    }

    fn dispatch(&mut self, req: Request, fds: Vec<OwnedFd>) -> Result<Response> {
        let mut fds: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
        match req {
            Request::Create(c) => {
                let (pid, start_time) = self.create(*c, &mut fds)?;
                Ok(Response::Created { pid, start_time })
            }
            Request::Start { id } => {
                self.start(&id)?;
                Ok(Response::Ok)
            }
            Request::Signal { id, signal, all } => {
                let c = self.live(&id)?;
                let sig = Signal::try_from(signal)
                    .map_err(|_| Error::Invalid(format!("unknown signal {signal}")))?;
                if all {
                    c.cgroup
                        .signal_all(sig)
                        .map_err(|e| Error::Sandbox(e.to_string()))?;
                }
                match kill(c.init, sig) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => {
                        return Err(Error::Sandbox(format!(
                            "signal container {id:?}: {}",
                            errno_text(&e.into())
                        )))
                    }
                }
                Ok(Response::Ok)
            }
            Request::Exec(e) => {
                let (pid, start_time) = self.exec(*e, &mut fds)?;
                Ok(Response::Exec { pid, start_time })
            }
            Request::Processes { id } => {
                let c = self.get(&id)?;
                let pids = c.cgroup.pids().map_err(|e| Error::Sandbox(e.to_string()))?;
                Ok(Response::Pids { pids })
            }
            Request::Pause { id } => {
                self.live(&id)?
                    .cgroup
                    .freeze()
                    .map_err(|e| Error::Sandbox(e.to_string()))?;
                Ok(Response::Ok)
            }
            Request::Resume { id } => {
                self.live(&id)?
                    .cgroup
                    .thaw()
                    .map_err(|e| Error::Sandbox(e.to_string()))?;
                Ok(Response::Ok)
            }
            Request::Stats { id } => {
                let st = self
                    .get(&id)?
                    .cgroup
                    .stats()
                    .map_err(|e| Error::Sandbox(e.to_string()))?;
                let v = serde_json::to_value(st).map_err(|e| Error::Invalid(e.to_string()))?;
                Ok(Response::Stats { stats: Box::new(v) })
            }
            Request::Update { id, resources } => {
                self.live(&id)?
                    .cgroup
                    .apply(&resources)
                    .map_err(|e| Error::Sandbox(e.to_string()))?;
                Ok(Response::Ok)
            }
            Request::Wait { .. } | Request::WaitPid { .. } | Request::Destroy { .. } => {
                unreachable!("handled in handle_conn")
            }
        }
    }

    fn get(&self, id: &str) -> Result<&Ctr> {
        self.containers
            .get(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn live(&self, id: &str) -> Result<&Ctr> {
        let c = self.get(id)?;
        if matches!(c.phase, Phase::Exited(_)) {
            return Err(Error::BadState {
                id: id.to_string(),
                op: "signal",
                status: "stopped".into(),
            });
        }
        Ok(c)
    }

    /// Kill a container's processes. Returns whether its init is still to be
    /// reaped.
    fn destroy(&mut self, id: &str) -> Result<bool> {
        let c = self.get(id)?;
        if matches!(c.phase, Phase::Exited(_)) {
            if self.root_id.as_deref() != Some(id) {
                self.containers.remove(id);
            }
            return Ok(false);
        }
        let _ = c.cgroup.thaw();
        let _ = kill(c.init, Signal::SIGKILL);
        let _ = c.cgroup.signal_all(Signal::SIGKILL);
        Ok(true)
    }

    fn create(&mut self, req: CreateContainer, fds: &mut [Option<OwnedFd>]) -> Result<(i32, u64)> {
        if self.containers.contains_key(&req.id) {
            return Err(Error::Exists(req.id));
        }
        let is_root = self.root_id.is_none();
        if let Some(p) = req.spec.process().as_ref() {
            if is_root {
                // From now on the sandbox holds only what it and its
                // containers may need.
                let names = crate::posture::cap_names(p);
                crate::posture::boot_restrict(&crate::posture::boot_keeps(&names))?;
            } else if let Some(missing) = crate::posture::missing_caps(p) {
                return Err(Error::Spec(format!(
                    "process.capabilities: {missing} not available in sandbox {:?} (its root container did not have them)",
                    self.root_id.as_deref().unwrap_or_default()
                )));
            }
        }
        let take = |fds: &mut [Option<OwnedFd>], i: usize| -> Result<OwnedFd> {
            wire::take_fd(fds, i).map_err(|e| Error::Sandbox(e.to_string()))
        };
        let stdio = match req.fds.stdio {
            Some([a, b, c]) => Some([take(fds, a)?, take(fds, b)?, take(fds, c)?]),
            None => None,
        };
        let console = req.fds.console_socket.map(|i| take(fds, i)).transpose()?;
        let mut preserved = Vec::new();
        for i in &req.fds.preserved {
            preserved.push(take(fds, *i)?);
        }
        let mut ns = NsPlan::from_spec(&req.spec, self.cfg.network)?;
        if let Some(root) = self.root_id.as_ref().and_then(|r| self.containers.get(r)) {
            if matches!(root.phase, Phase::Exited(_)) {
                return Err(Error::Sandbox(format!(
                    "sandbox {:?} is not running",
                    self.root_id.as_deref().unwrap_or_default()
                )));
            }
            ns.join_pod(root.init.as_raw());
        }
        let mounts = match (self.cfg.file_access, req.fds.gofer) {
            (FileAccess::Proxy, Some(i)) => MountSource::Gofer(take(fds, i)?),
            // Direct file access: the sandbox resolves host paths itself,
            // before the init enters the container's user namespace.
            _ => MountSource::Prepared(crate::gofer::prepare(&GoferRequest::for_spec(
                &req.bundle,
                &req.spec,
                ns.new_user,
                self.cfg.overlay,
            ))?),
        };
        let (parent_sock, child_sock) = UnixStream::pair()
            .map_err(|e| Error::Sandbox(format!("socketpair: {}", errno_text(&e))))?;

        let spec = req.spec;
        let cgroup = req.cgroup;
        // Entering a pid namespace by path only affects our future children.
        let restore_pidns = match &ns.pid_path {
            Some(p) => Some(enter_pidns_for_children(p)?),
            None => None,
        };
        let forked = fork_into(ns.clone_flags, None);
        // Only the parent goes back; the child lives in the new namespace.
        if !matches!(forked, Ok(Forked::Child)) {
            restore_pidns_for_children(restore_pidns, &forked)?;
        }
        let (pid, pidfd) = match forked {
            Err(e) => {
                return Err(Error::Sandbox(format!(
                    "create namespaces: {}",
                    errno_text(&e)
                )))
            }
            Ok(Forked::Child) => {
                drop(parent_sock);
                close_inherited(&self.listener, &self.sigfd);
                init::child_main(InitArgs {
                    id: &req.id,
                    cfg: &self.cfg,
                    spec: &spec,
                    cgroup: &cgroup,
                    ns: &ns,
                    hook_state: &req.hook_state,
                    sync: child_sock,
                    stdio,
                    console,
                    mounts,
                    preserved,
                    seccomp: req.seccomp.clone(),
                })
            }
            Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        };
        drop(child_sock);
        drop(stdio);
        drop(console);
        drop(mounts);
        drop(preserved);
        // An init that stops answering must not wedge the sandbox.
        let _ = parent_sock.set_read_timeout(Some(SYNC_TIMEOUT));
        let result = self.finish_create(
            &req.id,
            pid,
            &parent_sock,
            &ns,
            &spec,
            &cgroup,
            &req.hook_state,
        );
        if let Err(e) = result {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(e);
        }
        let start_time = crate::sys::process::start_time(pid.as_raw()).unwrap_or(0);
        self.containers.insert(
            req.id.clone(),
            Ctr {
                hook_state: req.hook_state,
                seccomp: req.seccomp,
                personality: spec.linux().as_ref().and_then(|l| l.personality().clone()),
                init: pid,
                pidfd,
                sync: Some(parent_sock),
                phase: Phase::Created,
                cgroup,
                waiters: Vec::new(),
            },
        );
        if is_root {
            // The sandbox outlives its creator from now on.
            let _ = nix::sys::prctl::set_pdeathsig(None);
            self.root_id = Some(req.id);
            // The container owns our stdio now; hold none of it, so its
            // readers see end-of-file when the container's processes exit.
            crate::sys::process::stdio_to_null();
        }
        Ok((pid.as_raw(), start_time))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_create(
        &self,
        id: &str,
        pid: Pid,
        sock: &UnixStream,
        ns: &NsPlan,
        spec: &Spec,
        cgroup: &CgroupPath,
        hook_state: &OciState,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        if ns.new_user {
            write_id_maps(pid, spec)?;
        }
        cgroup
            .add_pid(pid.as_raw())
            .map_err(|e| Error::Sandbox(e.to_string()))?;
        let t_join = t0.elapsed();
        if let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            cgroup
                .apply(res)
                .map_err(|e| Error::Sandbox(e.to_string()))?;
        }
        let t_apply = t0.elapsed();
        init::send(sock, &Sync::Go)?;
        loop {
            match init::recv(sock)? {
                Some(Sync::Ready) => {
                    tracing::debug!(
                        "container {id}: cgroup joined after {t_join:?}, resources at {t_apply:?}, init ready at {:?}",
                        t0.elapsed()
                    );
                    return Ok(());
                }
                Some(Sync::RunHooks) => {
                    let mut st = hook_state.clone();
                    st.pid = pid.as_raw();
                    st.status = "creating".into();
                    let hooks = spec.hooks().as_ref();
                    let r = hooks::run(hooks, Stage::Prestart, &st)
                        .and_then(|_| hooks::run(hooks, Stage::CreateRuntime, &st));
                    match r {
                        Ok(()) => init::send(sock, &Sync::HooksDone)?,
                        Err(e) => {
                            let _ = init::send(
                                sock,
                                &Sync::Error {
                                    message: e.to_string(),
                                },
                            );
                            return Err(e);
                        }
                    }
                }
                Some(Sync::Error { message }) => return Err(Error::Sandbox(message)),
                Some(other) => {
                    return Err(Error::Sandbox(format!(
                        "container {id:?}: unexpected message from init: {other:?}"
                    )))
                }
                None => {
                    return Err(Error::Sandbox(format!(
                        "container {id:?}: init exited while being set up"
                    )))
                }
            }
        }
    }

    fn start(&mut self, id: &str) -> Result<()> {
        let c = self
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if c.phase != Phase::Created {
            return Err(Error::BadState {
                id: id.to_string(),
                op: "start",
                status: match c.phase {
                    Phase::Running => "running".into(),
                    _ => "stopped".into(),
                },
            });
        }
        let sock = c
            .sync
            .take()
            .ok_or_else(|| Error::Sandbox(format!("container {id:?} lost its init")))?;
        init::send(&sock, &Sync::Start)?;
        let mut st = c.hook_state.clone();
        st.pid = c.init.as_raw();
        st.status = "created".into();
        match await_exec(&sock, c.init, c.seccomp.as_ref(), &st) {
            Ok(()) => {
                c.phase = Phase::Running;
                Ok(())
            }
            Err(e) => {
                // A start that failed leaves nothing running.
                let _ = crate::sys::process::pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
                Err(e)
            }
        }
    }

    fn exec(&mut self, req: ExecProcess, fds: &mut [Option<OwnedFd>]) -> Result<(i32, u64)> {
        let c = self.live(&req.id)?;
        if let Some(missing) = crate::posture::missing_caps(&req.process) {
            return Err(Error::Spec(format!(
                "process.capabilities: {missing} not available in this sandbox (its root container did not have them)"
            )));
        }
        let take = |fds: &mut [Option<OwnedFd>], i: usize| -> Result<OwnedFd> {
            wire::take_fd(fds, i).map_err(|e| Error::Sandbox(e.to_string()))
        };
        let stdio = [
            take(fds, req.stdio[0])?,
            take(fds, req.stdio[1])?,
            take(fds, req.stdio[2])?,
        ];
        let console = req.console_socket.map(|i| take(fds, i)).transpose()?;
        let mut preserved = Vec::new();
        for i in &req.preserved {
            preserved.push(take(fds, *i)?);
        }
        let init_pid = c.init.as_raw();
        // Which namespaces to enter: those of the init that differ from
        // ours. Unreadable ones are an error, never "the same as ours".
        let flags = namespaces_to_enter(init_pid)?;
        let init_fd = c
            .pidfd
            .try_clone()
            .map_err(|e| Error::Sandbox(format!("exec: {}", errno_text(&e))))?;
        let (parent_sock, child_sock) = UnixStream::pair()
            .map_err(|e| Error::Sandbox(format!("socketpair: {}", errno_text(&e))))?;
        let own_pidns = if flags.contains(CloneFlags::CLONE_NEWPID) {
            let own = std::fs::File::open("/proc/self/ns/pid")
                .map_err(|e| Error::Sandbox(format!("open own pid namespace: {e}")))?;
            // Through the init's pidfd: fails if the init is gone.
            nix::sched::setns(init_fd.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|e| {
                Error::Sandbox(format!(
                    "enter pid namespace of container {:?}: {}",
                    req.id,
                    errno_text(&e.into())
                ))
            })?;
            Some(own)
        } else {
            None
        };
        let forked = fork_into(0, None);
        // Only the parent goes back; the child lives in the container's one.
        if !matches!(forked, Ok(Forked::Child)) {
            restore_pidns_for_children(own_pidns, &forked)?;
        }
        let cgroup = c.cgroup.clone();
        let seccomp = c.seccomp.clone();
        let personality = c.personality.clone();
        let mut agent_state = c.hook_state.clone();
        agent_state.status = "running".into();
        let (pid, pidfd) = match forked {
            Err(e) => return Err(Error::Sandbox(format!("fork: {}", errno_text(&e)))),
            Ok(Forked::Child) => {
                drop(parent_sock);
                close_inherited(&self.listener, &self.sigfd);
                init::exec_child_main(init::ExecArgs {
                    cfg: &self.cfg,
                    process: &req.process,
                    init_pid,
                    sync: child_sock,
                    stdio,
                    console,
                    preserved,
                    cgroup: &cgroup,
                    init_fd,
                    ns_flags: flags - CloneFlags::CLONE_NEWPID,
                    seccomp: seccomp.clone(),
                    personality: personality.clone(),
                    apparmor: crate::spec::apparmor_enabled(),
                })
            }
            Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        };
        drop(child_sock);
        drop(init_fd);
        drop(stdio);
        drop(console);
        drop(preserved);
        agent_state.pid = pid.as_raw();
        if let Err(e) = await_exec(&parent_sock, pid, seccomp.as_ref(), &agent_state) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(e);
        }
        let start_time = crate::sys::process::start_time(pid.as_raw()).unwrap_or(0);
        self.execs.insert(
            pid.as_raw(),
            ExecProc {
                pidfd,
                waiters: Vec::new(),
            },
        );
        Ok((pid.as_raw(), start_time))
    }
}

/// A sync message and any descriptors that came with it; `None` at end of
/// stream.
fn recv_with_fds(sock: &UnixStream) -> Result<(Option<Sync>, Vec<OwnedFd>)> {
    match wire::recv::<Sync, _>(sock) {
        Ok((m, fds)) => Ok((Some(m), fds)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok((None, Vec::new())),
        Err(e) => Err(Error::Sandbox(format!(
            "sync with process: {}",
            errno_text(&e)
        ))),
    }
}

/// Follow a process from Start (or its fork, for exec) to its execve: it
/// says `Exec` just before the last steps, then the close-on-exec socket
/// closes. End-of-stream without `Exec` means it died on the way.
fn await_exec(
    sock: &UnixStream,
    pid: Pid,
    seccomp: Option<&crate::seccomp::Prepared>,
    agent_state: &OciState,
) -> Result<()> {
    // A process that stops answering must not wedge the sandbox.
    let _ = sock.set_read_timeout(Some(SYNC_TIMEOUT));
    let mut announced = false;
    loop {
        match recv_with_fds(sock)? {
            (None, _) if announced => return Ok(()),
            (None, _) => {
                return Err(Error::Sandbox(format!(
                    "the container process (pid {pid}) died before it could exec"
                )))
            }
            (Some(Sync::Exec), _) => announced = true,
            (Some(Sync::SeccompNotify), fds) => give_notify_fd(seccomp, fds, pid, agent_state)?,
            (Some(Sync::Error { message }), _) => return Err(Error::Sandbox(message)),
            (Some(other), _) => {
                return Err(Error::Sandbox(format!(
                    "unexpected message from the container process: {other:?}"
                )))
            }
        }
    }
}

/// How long a container process may take between two steps of its setup
/// before boot gives up on it (hooks have their own, shorter, timeouts).
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);

/// Hand a seccomp user-notification fd to the profile's listener.
fn give_notify_fd(
    plan: Option<&crate::seccomp::Prepared>,
    fds: Vec<OwnedFd>,
    pid: Pid,
    state: &OciState,
) -> Result<()> {
    let fd = fds
        .into_iter()
        .next()
        .ok_or_else(|| Error::Sandbox("seccomp notify: no descriptor came".into()))?;
    let plan = plan.ok_or_else(|| Error::Sandbox("seccomp notify without a profile".into()))?;
    let path = plan.listener_path().ok_or_else(|| {
        Error::Spec("linux.seccomp.listenerPath is required for SCMP_ACT_NOTIFY".into())
    })?;
    let st = serde_json::to_value(state).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::seccomp::send_to_listener(path, plan.listener_metadata(), fd.as_fd(), pid.as_raw(), st)
        .map_err(|e| Error::Sandbox(e.to_string()))
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::Create(_) => "Create",
        Request::Start { .. } => "Start",
        Request::Signal { .. } => "Signal",
        Request::Wait { .. } => "Wait",
        Request::WaitPid { .. } => "WaitPid",
        Request::Exec(_) => "Exec",
        Request::Processes { .. } => "Processes",
        Request::Pause { .. } => "Pause",
        Request::Resume { .. } => "Resume",
        Request::Stats { .. } => "Stats",
        Request::Update { .. } => "Update",
        Request::Destroy { .. } => "Destroy",
    }
}

fn not_found(id: &str) -> Response {
    Response::Error {
        message: Error::NotFound(id.to_string()).to_string(),
    }
}

/// In a forked child: drop boot's own descriptors right away.
fn close_inherited(listener: &UnixListener, sigfd: &SignalFd) {
    let _ = nix::unistd::close(listener.as_raw_fd());
    let _ = nix::unistd::close(sigfd.as_raw_fd());
}

/// Point our future children back at our own pid namespace after a fork into
/// a container's. If that fails, kill the child just made and fail.
fn restore_pidns_for_children(
    own: Option<std::fs::File>,
    forked: &std::io::Result<Forked>,
) -> Result<()> {
    let Some(own) = own else { return Ok(()) };
    if let Err(e) = nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWPID) {
        if let Ok(Forked::Parent { pid, .. }) = forked {
            let _ = kill(*pid, Signal::SIGKILL);
            let _ = waitpid(*pid, None);
        }
        return Err(Error::Sandbox(format!("restore pid namespace: {e}")));
    }
    Ok(())
}

/// setns into the pid namespace at `path` for our future children; returns
/// our own pid namespace to go back to.
fn enter_pidns_for_children(path: &Path) -> Result<std::fs::File> {
    let own = std::fs::File::open("/proc/self/ns/pid")
        .map_err(|e| Error::Sandbox(format!("open own pid namespace: {e}")))?;
    namespaces::join(CloneFlags::CLONE_NEWPID, path)?;
    Ok(own)
}

/// The namespaces of `pid` that differ from ours. A namespace that cannot
/// be read is an error: skipping it would leave the process in ours.
fn namespaces_to_enter(pid: i32) -> Result<CloneFlags> {
    use std::os::unix::fs::MetadataExt;
    let kinds: &[(&str, CloneFlags)] = &[
        ("user", CloneFlags::CLONE_NEWUSER),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut flags = CloneFlags::empty();
    for (name, flag) in kinds {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        let a = std::fs::metadata(&theirs).map_err(|e| {
            Error::Sandbox(format!(
                "namespaces of the container's init (pid {pid}): {}",
                errno_text(&e)
            ))
        })?;
        let Ok(b) = std::fs::metadata(&ours) else {
            // This kernel lacks the namespace type.
            continue;
        };
        if a.ino() != b.ino() || a.dev() != b.dev() {
            flags |= *flag;
        }
    }
    Ok(flags)
}

/// Write the spec's uid/gid mappings for the child's new user namespace.
fn write_id_maps(pid: Pid, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let fmt = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
        maps.into_iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    let uid = fmt(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = fmt(linux.and_then(|l| l.gid_mappings().as_ref()));
    let p = pid.as_raw();
    if uid.is_empty() || gid.is_empty() {
        return Err(Error::Spec(
            "linux.uidMappings and linux.gidMappings are required with a new user namespace".into(),
        ));
    }
    let write = |file: &str, text: &str, field: &str| -> Result<()> {
        std::fs::write(format!("/proc/{p}/{file}"), text).map_err(|e| {
            Error::Sandbox(format!(
                "{field}: write {}: {}",
                text.trim().replace('\n', ", "),
                errno_text(&e)
            ))
        })
    };
    write("uid_map", &uid, "linux.uidMappings")?;
    // Only a privileged writer may keep setgroups(2) allowed.
    if !nix::unistd::geteuid().is_root() {
        let _ = std::fs::write(format!("/proc/{p}/setgroups"), "deny");
    }
    write("gid_map", &gid, "linux.gidMappings")?;
    Ok(())
}
