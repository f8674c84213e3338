//! `husk boot`: the sandbox process, one per pod, living inside the pod
//! (see `setup`). It is the parent of every process of every container of
//! the pod: it forks each container's init and every exec'd process into
//! their namespaces, reaps them, and exits with the root container's exit
//! status, so that a subreaper waiting on its pid (conmon, containerd's
//! shim) sees the container's status. When boot is the first process of
//! the pod's pid namespace, its death takes every container with it.
//!
//! Single-threaded and never blocked by anyone: one poll loop over the
//! control socket, the accepted connections, each process's setup socket
//! and a signalfd. A container being built or started, a process being
//! exec'd, a connection being read are each a small state machine moved on
//! by the loop, with a deadline; a slow hook or a stuck client delays only
//! itself.

mod conn;
mod create;
mod exec;
pub mod init;
pub mod process;
pub mod rootfs;
mod setup;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroups::JoinFds;
use crate::config::Config;
use crate::control::{wire, ExitStatus, Response};
use crate::error::{Error, Result};
use crate::sys::process::pidfd_send_signal;

use self::conn::{Conn, ConnId};

/// How many exit statuses of exec'd processes to remember for late
/// `WaitExec` requests.
const KEEP_EXITS: usize = 1024;
/// How long a new sandbox waits for its root container's create request
/// (the `husk create` that started it may have been killed).
const FIRST_REQUEST: Duration = Duration::from_secs(60);
/// How long boot must have been idle before it gives back its memory
/// (`sys::memory::trim_idle`): requests that follow each other closely (a
/// create and its start, `run` of a short program) would otherwise fault
/// back in, each time, the code the previous one dropped.
const TRIM_AFTER: Duration = Duration::from_millis(200);
/// How long a container process may take from fork to Ready (or from Start
/// to its exec) before boot gives up on it. Hooks run by the container
/// layer have their own timeouts.
const SETUP_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Forked; building its root.
    Building,
    /// Waiting for Start.
    Created,
    /// Released; not yet exec'd.
    Starting,
    Running,
    Exited(ExitStatus),
}

/// The setup socket of a process that has not exec'd yet.
struct SyncChan {
    sock: UnixStream,
    reader: wire::FrameReader,
}

impl SyncChan {
    fn new(sock: UnixStream) -> std::io::Result<Self> {
        sock.set_nonblocking(true)?;
        Ok(SyncChan {
            sock,
            reader: wire::FrameReader::default(),
        })
    }
}

struct Ctr {
    /// What hooks and seccomp agents are told about the container.
    hook_state: husk_oci::state::OciState,
    seccomp: Option<crate::seccomp::Prepared>,
    /// linux.personality, which exec'd processes get too.
    personality: Option<oci_spec::runtime::LinuxPersonality>,
    apparmor: bool,
    init: Pid,
    pidfd: OwnedFd,
    phase: Phase,
    sync: Option<SyncChan>,
    /// The connection this container's create or start is talking to.
    conn: Option<ConnId>,
    deadline: Option<Instant>,
    /// The init announced its exec (during Start).
    announced: bool,
    /// The spec's seccomp profile notifies, and the init has not handed
    /// over its notify descriptor yet (it does when it loads the filter).
    notify_pending: bool,
    /// Namespaces of the init an exec'd process enters (setns flags), and
    /// whether that includes its pid namespace.
    enter: u64,
    enter_pid: bool,
    /// How a process joins the container's cgroup (pod members; empty for
    /// the root container, whose processes are in boot's cgroup).
    cgroup_join: JoinFds,
    /// The rootfs directory of a container without a mount namespace of
    /// its own: exec'd processes chroot into it.
    root_dir: Option<OwnedFd>,
    /// Connections parked in Wait.
    waiters: Vec<ConnId>,
    /// A pod member being destroyed: forgotten once reaped, so its id may
    /// be used again in the pod.
    destroyed: bool,
    /// The FUSE server of the container's /proc views.
    views: Option<husk_procviews::Server>,
    /// Its connection, until the init sends the cgroup filesystems to
    /// serve from.
    views_pending: Option<OwnedFd>,
}

struct ExecProc {
    ctr: String,
    pid: Pid,
    pidfd: OwnedFd,
    sync: Option<SyncChan>,
    conn: Option<ConnId>,
    deadline: Option<Instant>,
    announced: bool,
    running: bool,
    waiters: Vec<ConnId>,
}

pub struct Boot {
    cfg: Config,
    listener: UnixListener,
    sigfd: SignalFd,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    containers: HashMap<String, Ctr>,
    root_id: Option<String>,
    procs: HashMap<u64, ExecProc>,
    next_token: u64,
    exits: VecDeque<(u64, ExitStatus)>,
    /// Set once the root container has exited: exit with this status when
    /// everyone waiting has been answered.
    exiting: Option<ExitStatus>,
    /// The uid allowed to talk to us (the creator's, as our user namespace
    /// sees it), learnt from the first connection.
    owner_uid: Option<u32>,
    /// accept() failed for lack of descriptors: not before this instant.
    accept_after: Option<Instant>,
    /// Went idle: trim at this instant if still idle then.
    trim_at: Option<Instant>,
    started: Instant,
    /// Our own pid namespace, to point our children back at after forking
    /// one into another.
    own_pidns: OwnedFd,
    /// The root container's init, at `husk_oci::STANDS_FOR_FD`.
    stands_for: Option<OwnedFd>,
    /// boot's own procfs (host-wide files such as meminfo, and our /self),
    /// kept since /proc shows the root container's.
    own_proc: OwnedFd,
}

/// Entry point of `husk boot`.
pub fn main(cfg: Config, listener: OwnedFd) -> Result<i32> {
    // Our own session: a caller's terminal signals must not reach the
    // sandbox; `run` forwards what it receives.
    let _ = nix::unistd::setsid();
    // Until the root container exists, boot lives only as long as the
    // `husk create` that started it.
    crate::sys::process::set_parent_death_signal(Signal::SIGKILL)
        .map_err(|e| Error::os("set parent death signal", e))?;
    // For a sandbox that shares the host's pid namespace (no pid namespace
    // in the spec) orphans must still come to us.
    let _ = crate::sys::process::set_child_subreaper();
    crate::sys::process::keep_null_device().map_err(|e| Error::os("boot: open /dev/null", e))?;
    let own_proc = setup::leave_host()?;
    crate::sys::process::set_proc_dir(
        own_proc
            .try_clone()
            .map_err(|e| Error::os("boot: procfs", e))?,
    );
    let own_pidns = crate::sys::process::pidfd_open(nix::unistd::getpid())
        .map_err(|e| Error::os("boot: pidfd of itself", e))?;
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::os("boot: set not dumpable", e))?;
    raise_nofile();

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in husk_oci::signals::FORWARD {
        mask.add(*s);
    }
    mask.add(Signal::SIGPIPE);
    mask.thread_block()
        .map_err(|e| Error::os("block signals", e))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::os("signalfd", e))?;

    let listener = UnixListener::from(listener);
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::os("control socket", e))?;
    let mut boot = Boot {
        cfg,
        listener,
        sigfd,
        conns: HashMap::new(),
        next_conn: 1,
        containers: HashMap::new(),
        root_id: None,
        procs: HashMap::new(),
        next_token: 1,
        exits: VecDeque::new(),
        exiting: None,
        owner_uid: None,
        accept_after: None,
        trim_at: None,
        started: Instant::now(),
        own_pidns,
        stands_for: None,
        own_proc,
    };
    boot.serve()
}

/// What a pollfd entry stands for.
#[derive(Clone, Copy)]
enum Watch {
    Listener,
    Signals,
    Conn(ConnId),
    CtrSync(usize),
    ExecSync(u64),
    Views(usize),
}

impl Boot {
    fn serve(&mut self) -> Result<i32> {
        let mut ctr_keys: Vec<String> = Vec::new();
        loop {
            if let Some(st) = self.exiting {
                if self.conns.values().all(|c| !c.role.holds_sandbox_open()) {
                    return Ok(st.0);
                }
            }
            if self.root_id.is_none() && self.started.elapsed() > FIRST_REQUEST {
                tracing::debug!("no container was created; boot exits");
                return Ok(1);
            }
            let now = Instant::now();
            let mut fds = Vec::new();
            let mut what = Vec::new();
            let accepting = self.exiting.is_none()
                && self.accept_after.is_none_or(|t| now >= t)
                && self.active() < conn::MAX_ACTIVE;
            if accepting {
                self.accept_after = None;
                fds.push(crate::sys::pollfd(self.listener.as_raw_fd(), libc::POLLIN));
                what.push(Watch::Listener);
            }
            fds.push(crate::sys::pollfd(self.sigfd.as_raw_fd(), libc::POLLIN));
            what.push(Watch::Signals);
            for (id, c) in &self.conns {
                fds.push(crate::sys::pollfd(c.sock.as_raw_fd(), c.role.poll_events()));
                what.push(Watch::Conn(*id));
            }
            ctr_keys.clear();
            for (id, c) in &self.containers {
                if let (Some(s), Phase::Building | Phase::Starting) = (&c.sync, c.phase) {
                    fds.push(crate::sys::pollfd(s.sock.as_raw_fd(), libc::POLLIN));
                    what.push(Watch::CtrSync(ctr_keys.len()));
                    ctr_keys.push(id.clone());
                }
            }
            for (id, c) in &self.containers {
                if let Some(v) = &c.views {
                    fds.push(crate::sys::pollfd(v.fd().as_raw_fd(), libc::POLLIN));
                    what.push(Watch::Views(ctr_keys.len()));
                    ctr_keys.push(id.clone());
                }
            }
            for (token, p) in &self.procs {
                if let Some(s) = &p.sync {
                    fds.push(crate::sys::pollfd(s.sock.as_raw_fd(), libc::POLLIN));
                    what.push(Watch::ExecSync(*token));
                }
            }
            let timeout = self.next_deadline().map(|d| {
                d.saturating_duration_since(now)
                    .as_millis()
                    .clamp(1, i32::MAX as u128) as i32
            });
            let timeout = match (timeout, self.root_id.is_none()) {
                (Some(t), true) => Some(t.min(1000)),
                (None, true) => Some(1000),
                (t, false) => t,
            };
            crate::sys::poll(&mut fds, timeout.unwrap_or(-1)).map_err(|e| Error::os("poll", e))?;
            let mut busy = false;
            for (pfd, w) in fds.iter().zip(&what) {
                if pfd.revents == 0 {
                    continue;
                }
                busy = true;
                match *w {
                    Watch::Listener => self.accept(),
                    Watch::Signals => self.handle_signals(),
                    Watch::Conn(id) => self.on_conn_event(id, pfd.revents),
                    Watch::CtrSync(i) => self.on_init_event(&ctr_keys[i]),
                    Watch::ExecSync(token) => self.on_exec_event(token),
                    Watch::Views(i) => self.on_views(&ctr_keys[i]),
                }
            }
            let now = Instant::now();
            self.expire(now);
            if busy {
                // Going idle: give back what the requests touched, unless
                // another request comes first.
                self.trim_at = self.is_idle().then(|| now + TRIM_AFTER);
            } else if self.trim_at.is_some_and(|t| now >= t) {
                self.trim_at = None;
                if self.is_idle() {
                    crate::sys::memory::trim_idle();
                }
            }
        }
    }

    /// Requests for a container's /proc views: answered at once.
    fn on_views(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let Some(v) = c.views.as_mut() else { return };
        match v.on_readable() {
            Ok(husk_procviews::Status::Serving) | Ok(husk_procviews::Status::NotMounted) => {}
            Ok(husk_procviews::Status::Closed) => c.views = None,
            Err(e) => {
                tracing::warn!("container {id}: /proc views: {e}");
                c.views = None;
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.conns.values().all(|c| c.role.is_parked())
            && self
                .containers
                .values()
                .all(|c| !matches!(c.phase, Phase::Building | Phase::Starting))
            && self.procs.values().all(|p| p.sync.is_none())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let conns = self.conns.values().filter_map(|c| c.deadline);
        let ctrs = self.containers.values().filter_map(|c| c.deadline);
        let procs = self.procs.values().filter_map(|p| p.deadline);
        conns
            .chain(ctrs)
            .chain(procs)
            .chain(self.accept_after)
            .chain(self.trim_at)
            .min()
    }

    /// Give up on whatever is past its deadline.
    fn expire(&mut self, now: Instant) {
        let late: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| now >= d))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            tracing::debug!("connection {id}: request not complete in time; closed");
            self.close_conn(id);
        }
        let late: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| now >= d))
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            self.fail_setup(
                &id,
                Error::Sandbox(format!(
                    "container {id:?}: its process did not finish setting up within {}s",
                    SETUP_LIMIT.as_secs()
                )),
            );
        }
        let late: Vec<u64> = self
            .procs
            .iter()
            .filter(|(_, p)| p.deadline.is_some_and(|d| now >= d))
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            self.fail_exec(
                t,
                Error::Sandbox(format!(
                    "the process did not finish setting up within {}s",
                    SETUP_LIMIT.as_secs()
                )),
            );
        }
    }

    fn handle_signals(&mut self) {
        let mut reap = false;
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                reap = true;
            } else if signo != libc::SIGPIPE {
                // Signals sent to the sandbox are for its root container.
                if let Some(root) = self.root_id.as_ref().and_then(|r| self.containers.get(r)) {
                    if root.phase == Phase::Running {
                        let _ = pidfd_send_signal(root.pidfd.as_fd(), signo);
                    }
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
                    let (Some(pid), Some(st)) = (ws.pid(), ExitStatus::from_wait(ws)) else {
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
            tracing::debug!("container {cid}: init exited with {}", st.0);
            // A setup that was under way ends; its socket tells how.
            if matches!(
                self.containers[&cid].phase,
                Phase::Building | Phase::Starting
            ) {
                self.on_init_event(&cid);
            }
            if let Some(c) = self.containers.get_mut(&cid) {
                c.phase = Phase::Exited(st);
                c.deadline = None;
                c.views = None;
                c.sync = None;
                c.cgroup_join = JoinFds::default();
                let waiters = std::mem::take(&mut c.waiters);
                if c.destroyed {
                    self.containers.remove(&cid);
                }
                for w in waiters {
                    self.finish_conn(w, Response::Exited { status: st });
                }
            }
            if self.root_id.as_deref() == Some(cid.as_str()) {
                self.shut_down(st);
            }
            return;
        }
        let token = self
            .procs
            .iter()
            .find(|(_, p)| p.pid == pid)
            .map(|(t, _)| *t);
        if let Some(token) = token {
            if self.procs[&token].sync.is_some() {
                // Died before (or while) exec'ing: the socket says why.
                self.on_exec_event(token);
            }
            if let Some(p) = self.procs.remove(&token) {
                for w in p.waiters {
                    self.finish_conn(w, Response::Exited { status: st });
                }
                if self.exits.len() >= KEEP_EXITS {
                    self.exits.pop_front();
                }
                self.exits.push_back((token, st));
            }
        }
    }

    /// The root container is gone: so is the pod. Kill what is left and
    /// exit with the root's status once everyone waiting is answered (as
    /// the first process of the pid namespace, our exit also takes down
    /// anything we missed).
    fn shut_down(&mut self, st: ExitStatus) {
        for (id, c) in &self.containers {
            if !matches!(c.phase, Phase::Exited(_)) {
                tracing::debug!("pod exits: killing container {id}");
                let _ = pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
            }
        }
        for p in self.procs.values() {
            let _ = pidfd_send_signal(p.pidfd.as_fd(), libc::SIGKILL);
        }
        // Reap them (bounded) so their waiters get real statuses.
        let deadline = Instant::now() + Duration::from_secs(2);
        while (self.procs.values().any(|_| true)
            || self
                .containers
                .values()
                .any(|c| !matches!(c.phase, Phase::Exited(_))))
            && Instant::now() < deadline
        {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(1)),
                Ok(ws) => {
                    if let (Some(pid), Some(s)) = (ws.pid(), ExitStatus::from_wait(ws)) {
                        self.exiting.get_or_insert(st);
                        self.on_exit(pid, s);
                    }
                }
                Err(_) => break,
            }
        }
        let left: Vec<u64> = self.procs.keys().copied().collect();
        for t in left {
            if let Some(p) = self.procs.remove(&t) {
                for w in p.waiters {
                    self.finish_conn(
                        w,
                        Response::Exited {
                            status: ExitStatus(137),
                        },
                    );
                }
            }
        }
        self.exiting = Some(st);
    }

    /// Send the final answer on a connection and close it.
    fn finish_conn(&mut self, id: ConnId, resp: Response) {
        if let Some(c) = self.conns.remove(&id) {
            if let Err(e) = wire::send(&c.sock, &resp, &[]) {
                tracing::debug!("connection {id}: reply: {e}");
            }
        }
    }

    /// Send a message that is not the last of a conversation.
    fn send_conn(&mut self, id: ConnId, resp: &Response, fds: &[std::os::fd::RawFd]) -> bool {
        match self.conns.get(&id) {
            Some(c) => match wire::send(&c.sock, resp, fds) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!("connection {id}: send: {e}");
                    false
                }
            },
            None => false,
        }
    }

    fn fail_conn(&mut self, id: ConnId, e: &Error) {
        self.finish_conn(
            id,
            Response::Error {
                kind: e.kind(),
                message: e.to_string(),
            },
        );
    }

    fn close_conn(&mut self, id: ConnId) {
        self.conns.remove(&id);
    }

    /// Tell the requester a container process exists (its pidfd) and take
    /// up the setup channel to it. None: the requester is gone, and so is
    /// the process (killed).
    fn announce_forked(
        &mut self,
        conn: ConnId,
        pidfd: &OwnedFd,
        parent_sock: std::os::unix::net::UnixStream,
    ) -> Result<Option<SyncChan>> {
        use crate::sys::process::pidfd_send_signal;
        if !self.send_conn(conn, &Response::Forked, &[pidfd.as_raw_fd()]) {
            let _ = pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            self.close_conn(conn);
            return Ok(None);
        }
        let sync = SyncChan::new(parent_sock).map_err(|e| {
            let _ = pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            Error::os("setup socket", e)
        })?;
        Ok(Some(sync))
    }
}

/// The descriptor limit boot was started with, which its container
/// processes get back (boot raises its own: every parked waiter costs one).
static NOFILE: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = NOFILE.set((soft, hard));
        let want = hard.min(1 << 16);
        if want > soft {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}

/// In a container process boot forked: the descriptor limit boot had.
pub(crate) fn restore_nofile() {
    if let Some((soft, hard)) = NOFILE.get() {
        let _ = nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
            *soft,
            *hard,
        );
    }
}

/// In a forked child: drop boot's own descriptors right away.
fn close_inherited(boot: &Boot) {
    let _ = nix::unistd::close(boot.listener.as_raw_fd());
    let _ = nix::unistd::close(boot.sigfd.as_raw_fd());
    for c in boot.conns.values() {
        let _ = nix::unistd::close(c.sock.as_raw_fd());
    }
    // Only boot may hold a views connection: if boot goes, its readers
    // must get an error at once, not wait.
    for c in boot.containers.values() {
        if let Some(v) = &c.views {
            let _ = nix::unistd::close(v.fd().as_raw_fd());
        }
        if let Some(v) = &c.views_pending {
            let _ = nix::unistd::close(v.as_raw_fd());
        }
    }
}

/// The peer's credentials on a control connection.
fn peer_uid(sock: &UnixStream) -> Option<u32> {
    nix::sys::socket::getsockopt(sock, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .map(|c| c.uid())
}

/// Point our future children back at our own pid namespace after forking
/// one into another.
fn restore_pidns(boot: &Boot) -> Result<()> {
    nix::sched::setns(boot.own_pidns.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID)
        .map_err(|e| Error::os("restore pid namespace", e))
}

/// Fork a container process (new namespaces `clone_flags`; `what` names
/// the step in an error), born into the cgroup2 directory `cgroup` when
/// the kernel allows it (`sys::process::fork_preferably_into`; the second
/// value says whether it was, else the child writes `cgroup.procs`). When
/// boot has entered
/// another pid namespace for it (`entered_pidns`), the parent goes back to
/// its own at once, and a child it cannot leave behind is killed.
fn fork_child(
    boot: &Boot,
    clone_flags: u64,
    entered_pidns: bool,
    what: &str,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<(crate::sys::process::Forked, bool)> {
    use crate::sys::process::{fork_preferably_into, pidfd_send_signal, Forked};
    let forked = fork_preferably_into(clone_flags, cgroup);
    if entered_pidns && !matches!(forked, Ok((Forked::Child, _))) {
        if let Err(e) = restore_pidns(boot) {
            if let Ok((Forked::Parent { pidfd, .. }, _)) = &forked {
                let _ = pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            }
            return Err(e);
        }
    }
    forked.map_err(|e| Error::os(what, e))
}
