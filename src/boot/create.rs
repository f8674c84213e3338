//! Building a container and starting it: the init is forked at once, and
//! everything after is driven by its setup socket (and, for hooks, by the
//! caller's connection), so boot answers everyone else meanwhile.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::conn::{ConnId, Role};
use super::init::{self, InitArgs};
use super::{Boot, Ctr, Phase, SETUP_LIMIT};
use crate::cgroups::{Cgroup2Fds, JoinFds};
use crate::control::{wire, CreateContainer, NsKind, Response};
use crate::error::{errno_text, Error, Result};
use crate::sys::process::{pidfd_send_signal, Forked};
use husk_oci::sync::Sync;

/// Take descriptor `i` of a request.
pub(super) fn take(fds: &mut [Option<OwnedFd>], i: usize) -> Result<OwnedFd> {
    wire::take_fd(fds, i).map_err(|e| Error::Sandbox(e.to_string()))
}

impl Boot {
    pub(super) fn create(
        &mut self,
        conn: ConnId,
        req: CreateContainer,
        fds: Vec<OwnedFd>,
    ) -> Result<()> {
        if self.exiting.is_some() {
            return Err(Error::Invalid("the sandbox is shutting down".into()));
        }
        if self.containers.contains_key(&req.id) {
            return Err(Error::Exists(req.id));
        }
        let is_root = self.root_id.is_none();
        if !is_root && req.namespaces.creates(NsKind::User) {
            return Err(Error::Spec(
                "linux.namespaces: a pod member shares its pod's user namespace and cannot have one of its own".into(),
            ));
        }
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
        let mut fds: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
        let stdio = match req.fds.stdio {
            Some([a, b, c]) => Some([take(&mut fds, a)?, take(&mut fds, b)?, take(&mut fds, c)?]),
            None => None,
        };
        let console = req
            .fds
            .console_socket
            .map(|i| take(&mut fds, i))
            .transpose()?;
        let mounts = take(&mut fds, req.fds.mounts)?;
        let mut preserved = Vec::new();
        for i in &req.fds.preserved {
            preserved.push(take(&mut fds, *i)?);
        }
        let host_root = req.fds.host_root.map(|i| take(&mut fds, i)).transpose()?;
        let (views_pending, views_mount) = match &req.fds.proc_views {
            Some(pv) => match Self::proc_views_mount(&mut fds, pv) {
                Ok((fuse, mnt)) => (Some(fuse), Some(mnt)),
                Err(e) => {
                    tracing::warn!("container {}: no /proc views: {e}", req.id);
                    (None, None)
                }
            },
            None => (None, None),
        };
        let rootfs_dir = req.fds.rootfs_dir.map(|i| take(&mut fds, i)).transpose()?;
        // Kept for processes exec'd into such a container later.
        let ctr_root_dir = rootfs_dir
            .as_ref()
            .map(|f| f.try_clone())
            .transpose()
            .map_err(|e| Error::Sandbox(format!("rootfs descriptor: {}", errno_text(&e))))?;
        let cgroup_join = take_cgroup_join(&mut fds, &req.fds.cgroup_procs, req.fds.cgroup2)?;
        // Kept for processes exec'd into the container later.
        let ctr_cgroup_join = cgroup_join
            .try_clone()
            .map_err(|e| Error::os("cgroup descriptors", e))?;
        let mut joins = Vec::new();
        let mut pid_join = None;
        for (kind, i) in &req.namespaces.join {
            let fd = take(&mut fds, *i)?;
            match kind {
                // A process cannot move itself into another pid namespace:
                // boot enters it for its next child.
                NsKind::Pid => pid_join = Some(fd),
                NsKind::User => {
                    return Err(Error::Spec(
                        "linux.namespaces: joining a user namespace other than the pod's is not supported".into(),
                    ))
                }
                k => joins.push((*k, fd)),
            }
        }
        let clone_flags = req
            .namespaces
            .new
            .iter()
            .filter(|k| {
                matches!(
                    k,
                    NsKind::Pid | NsKind::Mount | NsKind::Net | NsKind::Ipc | NsKind::Uts
                )
            })
            .fold(0u64, |f, k| f | k.flag());
        let (parent_sock, child_sock) =
            UnixStream::pair().map_err(|e| Error::os("socketpair", e))?;

        if let Some(ns) = &pid_join {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| Error::os("join pid namespace (linux.namespaces)", e))?;
        }
        let (forked, born_in_v2) = super::fork_child(
            self,
            clone_flags,
            pid_join.is_some(),
            "create namespaces",
            cgroup_join.v2_dir(),
        )?;
        let (pid, pidfd) = match forked {
            Forked::Child => {
                drop(parent_sock);
                super::close_inherited(self);
                if let Some(v) = &views_pending {
                    let _ = nix::unistd::close(v.as_raw_fd());
                }
                init::child_main(InitArgs {
                    cfg: &self.cfg,
                    spec: &req.spec,
                    cgroup: &req.cgroup,
                    ns: &req.namespaces,
                    joins,
                    cgroup_join,
                    born_in_v2,
                    hook_state: &req.hook_state,
                    sync: child_sock,
                    stdio,
                    console,
                    mounts,
                    host_root,
                    views: views_mount,
                    rootfs_dir,
                    preserved,
                    seccomp: req.seccomp.clone(),
                    apparmor: req.apparmor,
                    show_proc: is_root,
                })
            }
            Forked::Parent { pid, pidfd } => (pid, pidfd),
        };
        drop(child_sock);
        drop(stdio);
        drop(console);
        drop(mounts);
        drop(host_root);
        drop(views_mount);
        drop(rootfs_dir);
        drop(preserved);
        let Some(sync) = self.announce_forked(conn, &pidfd, parent_sock)? else {
            return Ok(());
        };
        // What an exec'd process must enter to be in this container.
        let mut enter = 0u64;
        let mut enter_pid = false;
        let kinds = req
            .namespaces
            .new
            .iter()
            .copied()
            .chain(req.namespaces.join.iter().map(|(k, _)| *k));
        for k in kinds {
            match k {
                NsKind::Pid => enter_pid = true,
                NsKind::User => {}
                k => enter |= k.flag(),
            }
        }
        let notify_pending = req.seccomp.as_ref().is_some_and(|s| s.uses_notify());
        self.containers.insert(
            req.id.clone(),
            Ctr {
                hook_state: req.hook_state,
                seccomp: req.seccomp,
                personality: req
                    .spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.personality().clone()),
                apparmor: req.apparmor,
                init: pid,
                pidfd,
                phase: Phase::Building,
                sync: Some(sync),
                conn: Some(conn),
                deadline: Some(Instant::now() + SETUP_LIMIT),
                announced: false,
                notify_pending,
                enter,
                enter_pid,
                cgroup_join: ctr_cgroup_join,
                root_dir: ctr_root_dir,
                waiters: Vec::new(),
                destroyed: false,
                views: None,
                views_pending,
            },
        );
        self.set_role(
            conn,
            Role::Creating {
                id: req.id.clone(),
                hooks: false,
            },
        );
        if is_root {
            self.stands_for = self.containers.get(&req.id).and_then(|c| {
                crate::sys::fd::dup_to(c.pidfd.as_fd(), husk_oci::STANDS_FOR_FD).ok()
            });
            self.root_id = Some(req.id);
        }
        Ok(())
    }

    /// The FUSE mount a container's init binds its /proc views from; the
    /// server starts once the init sends its cgroup filesystems.
    fn proc_views_mount(
        fds: &mut [Option<OwnedFd>],
        pv: &husk_oci::control::ProcViewsFds,
    ) -> Result<(OwnedFd, OwnedFd)> {
        let fuse = take(fds, pv.fuse)?;
        let mnt = husk_procviews::mount::superblock(fuse.as_fd(), 0, 0)
            .map_err(|e| Error::Sandbox(errno_text(&e)))?;
        Ok((fuse, mnt))
    }

    /// Start serving a container's /proc views from its cgroup filesystems.
    fn start_views(
        &self,
        fuse: OwnedFd,
        infos: Vec<husk_procviews::CgroupDirInfo>,
        fds: Vec<OwnedFd>,
    ) -> Result<husk_procviews::Server> {
        let io = |e: std::io::Error| Error::Sandbox(errno_text(&e));
        let cgroups = husk_procviews::CgroupDir::join(infos, fds).map_err(io)?;
        let host =
            husk_procviews::HostProc::new(self.own_proc.try_clone().map_err(io)?).map_err(io)?;
        let started = crate::sys::clock::boottime().map_err(io)?;
        husk_procviews::Server::new(
            fuse,
            host,
            husk_procviews::Container { cgroups, started },
            husk_procviews::Config {
                // Fresh enough for anything that sizes itself from these
                // files, and it bounds boot's work under a reading loop.
                max_age: std::time::Duration::from_millis(100),
                ..Default::default()
            },
        )
        .map_err(io)
    }

    /// Messages (or the end of stream) on a container init's setup socket.
    pub(super) fn on_init_event(&mut self, id: &str) {
        loop {
            let Some(c) = self.containers.get_mut(id) else {
                return;
            };
            let Some(sync) = c.sync.as_mut() else { return };
            let msg = sync.reader.read::<Sync, _>(&sync.sock);
            let phase = c.phase;
            let conn = c.conn;
            match msg {
                Ok(None) => return,
                Ok(Some((Sync::RunHooks, _))) if phase == Phase::Building => match conn {
                    Some(conn) if self.send_conn(conn, &Response::RunHooks, &[]) => {
                        self.set_role(
                            conn,
                            Role::Creating {
                                id: id.to_string(),
                                hooks: true,
                            },
                        );
                    }
                    _ => {
                        return self.fail_setup(id, Error::Sandbox("the creator went away".into()))
                    }
                },
                Ok(Some((Sync::ProcMount, fds))) if phase == Phase::Building => {
                    if let Some(fd) = fds.into_iter().next() {
                        if self.root_id.as_deref() == Some(id) {
                            if let Err(e) = super::setup::show_container_proc(fd) {
                                tracing::warn!("{e}");
                            }
                        }
                    }
                }
                Ok(Some((Sync::SeccompNotify, fds))) => {
                    self.containers.get_mut(id).expect("present").notify_pending = false;
                    let sent = match (conn, fds.first()) {
                        (Some(conn), Some(fd)) => {
                            self.send_conn(conn, &Response::SeccompListener, &[fd.as_raw_fd()])
                        }
                        _ => false,
                    };
                    if !sent {
                        tracing::warn!(
                            "container {id}: seccomp notify descriptor could not be handed over"
                        );
                    }
                }
                Ok(Some((Sync::Ready, _))) if phase == Phase::Building => {
                    let c = self.containers.get_mut(id).expect("present");
                    c.phase = Phase::Created;
                    c.deadline = None;
                    c.conn = None;
                    if self.root_id.as_deref() == Some(id) {
                        // The sandbox outlives its creator from now on: before
                        // the answer, which lets the creator exit.
                        let _ = nix::sys::prctl::set_pdeathsig(None);
                        // The container owns our stdio now; hold none of it,
                        // so its readers see end-of-file when the container's
                        // processes exit.
                        crate::sys::process::stdio_to_null();
                    }
                    if let Some(conn) = conn {
                        self.finish_conn(conn, Response::Created);
                    }
                    return;
                }
                Ok(Some((Sync::Exec, _))) if phase == Phase::Starting => {
                    let c = self.containers.get_mut(id).expect("present");
                    c.announced = true;
                    // The caller was answered at release, unless it waited
                    // for a notify descriptor, which came before this.
                    if let Some(conn) = c.conn.take() {
                        self.finish_conn(conn, Response::Started);
                    }
                }
                Ok(Some((Sync::Warning { message }, _))) => {
                    tracing::warn!("container {id}: {message}");
                }
                Ok(Some((Sync::CgroupMounts { infos }, fds))) => {
                    if let Some(fuse) = self
                        .containers
                        .get_mut(id)
                        .and_then(|c| c.views_pending.take())
                    {
                        match self.start_views(fuse, infos, fds) {
                            Ok(server) => {
                                self.containers.get_mut(id).expect("present").views = Some(server)
                            }
                            Err(e) => tracing::warn!("container {id}: no /proc views: {e}"),
                        }
                    }
                }
                Ok(Some((Sync::Error { message }, _))) => {
                    return self.fail_setup(id, Error::Sandbox(message))
                }
                Ok(Some((other, _))) => {
                    return self.fail_setup(
                        id,
                        Error::Sandbox(format!(
                            "container {id:?}: unexpected message from its init: {other:?}"
                        )),
                    )
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    let c = self.containers.get_mut(id).expect("present");
                    if phase == Phase::Starting && c.announced {
                        // The program runs.
                        c.phase = Phase::Running;
                        c.sync = None;
                        c.deadline = None;
                        c.conn = None;
                        if let Some(conn) = conn {
                            self.finish_conn(conn, Response::Started);
                        }
                        return;
                    }
                    let what = if phase == Phase::Starting {
                        format!("container {id:?}: its process died before it could exec")
                    } else {
                        format!("container {id:?}: its init exited while being set up")
                    };
                    return self.fail_setup(id, Error::Sandbox(what));
                }
                Err(e) => {
                    return self.fail_setup(
                        id,
                        Error::Sandbox(format!("container {id:?}: setup socket: {e}")),
                    )
                }
            }
        }
    }

    /// The caller ran (or failed) the hooks the init asked for.
    pub(super) fn hooks_done(&mut self, id: &str, conn: ConnId, error: Option<String>) {
        self.set_role(
            conn,
            Role::Creating {
                id: id.to_string(),
                hooks: false,
            },
        );
        let Some(sync) = self.containers.get(id).and_then(|c| c.sync.as_ref()) else {
            return;
        };
        let msg = match &error {
            None => Sync::HooksDone,
            Some(m) => Sync::Error { message: m.clone() },
        };
        let sent = wire::send(&sync.sock, &msg, &[]);
        match (error, sent) {
            (Some(m), _) => self.fail_setup(id, Error::Invalid(m)),
            (None, Err(e)) => self.fail_setup(id, Error::os("setup socket", e)),
            (None, Ok(())) => {}
        }
    }

    /// `Start`: release a created container's init.
    pub(super) fn start(&mut self, conn: ConnId, id: &str) -> Result<()> {
        let c = self
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if c.phase != Phase::Created {
            return Err(Error::BadState {
                id: id.to_string(),
                op: "start",
                status: match c.phase {
                    Phase::Building => "creating",
                    Phase::Created => "created",
                    Phase::Starting | Phase::Running => "running",
                    Phase::Exited(_) => "stopped",
                }
                .to_string(),
            });
        }
        let sync = c
            .sync
            .as_ref()
            .ok_or_else(|| Error::Sandbox(format!("container {id:?} lost its init")))?;
        wire::send(&sync.sock, &Sync::Start, &[])
            .map_err(|e| Error::os(format!("container {id:?}: start"), e))?;
        c.phase = Phase::Starting;
        c.deadline = Some(Instant::now() + SETUP_LIMIT);
        if c.notify_pending {
            // Only the caller can reach the seccomp listener: it waits for
            // the descriptor.
            c.conn = Some(conn);
            self.set_role(conn, Role::Starting(id.to_string()));
        } else {
            // As runc: start returns once the init is released. A client
            // that watches the container (containerd's OOM watch) must be
            // in place before the program gets going; what fails from here
            // on (a startContainer hook, execve) stops the container.
            self.finish_conn(conn, Response::Started);
        }
        Ok(())
    }

    /// A container's setup failed: tell its caller, kill its init. A
    /// container that never got created is forgotten; a root container's
    /// failure ends the sandbox.
    pub(super) fn fail_setup(&mut self, id: &str, e: Error) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        tracing::debug!("container {id}: {e}");
        let _ = pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
        c.sync = None;
        c.deadline = None;
        let conn = c.conn.take();
        let building = c.phase == Phase::Building;
        if let Some(conn) = conn {
            self.fail_conn(conn, &e);
        }
        if building {
            if let Some(c) = self.containers.remove(id) {
                for w in c.waiters {
                    self.fail_conn(w, &e);
                }
            }
            if self.root_id.as_deref() == Some(id) {
                self.exiting = Some(crate::control::ExitStatus(1));
            }
        }
    }
}

/// The descriptors a request names to join a cgroup with (`JoinFds`):
/// `tasks` files, and the cgroup2 directory and its `cgroup.procs`.
pub(super) fn take_cgroup_join(
    fds: &mut [Option<OwnedFd>],
    tasks: &[usize],
    v2: Option<[usize; 2]>,
) -> Result<JoinFds> {
    let mut join = JoinFds::default();
    for i in tasks {
        join.tasks.push(take(fds, *i)?);
    }
    if let Some([dir, procs]) = v2 {
        join.v2 = Some(Cgroup2Fds {
            dir: take(fds, dir)?,
            procs: take(fds, procs)?,
        });
    }
    Ok(join)
}
