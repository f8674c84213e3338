//! Running a process in a container (`husk exec`): forked at once into the
//! container's namespaces (entered through its init's pidfd, which fails if
//! the init is gone) and cgroup, and followed through its setup socket.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::conn::{ConnId, Role};
use super::create::take;
use super::init;
use super::{Boot, ExecProc, Phase, SETUP_LIMIT};
use crate::control::{ExecProcess, Response};
use crate::error::{errno_text, Error, Result};
use crate::sys::process::{pidfd_send_signal, Forked};
use husk_oci::sync::Sync;

impl Boot {
    pub(super) fn exec(&mut self, conn: ConnId, req: ExecProcess, fds: Vec<OwnedFd>) -> Result<()> {
        let c = self
            .containers
            .get(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        match c.phase {
            // Starting: released by `start` (which has returned, as runc's
            // does) but not exec'd yet; its namespaces are there to join.
            Phase::Created | Phase::Starting | Phase::Running => {}
            other => {
                return Err(Error::BadState {
                    id: req.id.clone(),
                    op: "exec in",
                    status: match other {
                        Phase::Building => "creating",
                        _ => "stopped",
                    }
                    .into(),
                })
            }
        }
        if let Some(missing) = crate::posture::missing_caps(&req.process) {
            return Err(Error::Spec(format!(
                "process.capabilities: {missing} not available in this sandbox (its root container did not have them)"
            )));
        }
        let mut fds: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
        let stdio = [
            take(&mut fds, req.stdio[0])?,
            take(&mut fds, req.stdio[1])?,
            take(&mut fds, req.stdio[2])?,
        ];
        let console = req.console_socket.map(|i| take(&mut fds, i)).transpose()?;
        let mut preserved = Vec::new();
        for i in &req.preserved {
            preserved.push(take(&mut fds, *i)?);
        }
        // The process joins the container's cgroup (or the sub-cgroup the
        // caller opened); a root container's processes are in boot's.
        let cgroup_join = if req.cgroup_procs.is_empty() && req.cgroup2.is_none() {
            c.cgroup_join
                .try_clone()
                .map_err(|e| Error::os("cgroup descriptors", e))?
        } else {
            super::create::take_cgroup_join(&mut fds, &req.cgroup_procs, req.cgroup2)?
        };
        let init_fd = c.pidfd.try_clone().map_err(|e| Error::os("exec", e))?;
        let (enter, enter_pid) = (c.enter, c.enter_pid);
        let chroot = c
            .root_dir
            .as_ref()
            .map(|f| f.try_clone())
            .transpose()
            .map_err(|e| Error::Sandbox(format!("exec: {}", errno_text(&e))))?;
        let seccomp = c.seccomp.clone();
        let personality = c.personality.clone();
        let apparmor = c.apparmor;
        let mut agent_state = c.hook_state.clone();
        agent_state.status = "running".into();
        let (parent_sock, child_sock) =
            UnixStream::pair().map_err(|e| Error::os("socketpair", e))?;
        if enter_pid {
            // Through the init's pidfd: fails if the init is gone.
            nix::sched::setns(init_fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID).map_err(
                |e| {
                    Error::Sandbox(format!(
                        "enter pid namespace of container {:?}: {}",
                        req.id,
                        errno_text(&e.into())
                    ))
                },
            )?;
        }
        let (forked, born_in_v2) =
            super::fork_child(self, 0, enter_pid, "fork", cgroup_join.v2_dir())?;
        let (pid, pidfd) = match forked {
            Forked::Child => {
                drop(parent_sock);
                super::close_inherited(self);
                init::exec_child_main(init::ExecArgs {
                    cfg: &self.cfg,
                    process: &req.process,
                    sync: child_sock,
                    stdio,
                    console,
                    preserved,
                    cgroup_join,
                    born_in_v2,
                    init_fd,
                    enter,
                    chroot,
                    seccomp,
                    personality,
                    apparmor,
                })
            }
            Forked::Parent { pid, pidfd } => (pid, pidfd),
        };
        drop(child_sock);
        drop(init_fd);
        let Some(sync) = self.announce_forked(conn, &pidfd, parent_sock)? else {
            return Ok(());
        };
        let token = self.next_token;
        self.next_token += 1;
        self.procs.insert(
            token,
            ExecProc {
                ctr: req.id,
                pid,
                pidfd,
                sync: Some(sync),
                conn: Some(conn),
                deadline: Some(Instant::now() + SETUP_LIMIT),
                announced: false,
                running: false,
                waiters: Vec::new(),
            },
        );
        self.set_role(conn, Role::Execing(token));
        Ok(())
    }

    /// Messages (or the end of stream) on an exec'd process's setup socket.
    pub(super) fn on_exec_event(&mut self, token: u64) {
        loop {
            let Some(p) = self.procs.get_mut(&token) else {
                return;
            };
            let Some(sync) = p.sync.as_mut() else { return };
            let msg = sync.reader.read::<Sync, _>(&sync.sock);
            let conn = p.conn;
            let (announced, pid) = (p.announced, p.pid);
            match msg {
                Ok(None) => return,
                Ok(Some((Sync::Exec, _))) => p.announced = true,
                Ok(Some((Sync::SeccompNotify, fds))) => {
                    let sent = match (conn, fds.first()) {
                        (Some(conn), Some(fd)) => {
                            self.send_conn(conn, &Response::SeccompListener, &[fd.as_raw_fd()])
                        }
                        _ => false,
                    };
                    if !sent {
                        tracing::warn!("seccomp notify descriptor could not be handed over");
                    }
                }
                Ok(Some((Sync::Error { message }, _))) => {
                    return self.fail_exec(token, Error::Sandbox(message))
                }
                Ok(Some((other, _))) => {
                    return self.fail_exec(
                        token,
                        Error::Sandbox(format!("unexpected message from the process: {other:?}")),
                    )
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && announced => {
                    p.sync = None;
                    p.deadline = None;
                    p.running = true;
                    p.conn = None;
                    if let Some(conn) = conn {
                        self.finish_conn(conn, Response::Execed { token });
                    }
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.fail_exec(
                        token,
                        Error::Sandbox(format!(
                            "the process (pid {pid} in the sandbox) died before it could exec"
                        )),
                    )
                }
                Err(e) => return self.fail_exec(token, Error::os("setup socket", e)),
            }
        }
    }

    /// An exec'd process failed before running its program: tell the
    /// caller and make sure it is gone (the reaper forgets it).
    pub(super) fn fail_exec(&mut self, token: u64, e: Error) {
        let Some(p) = self.procs.get_mut(&token) else {
            return;
        };
        let _ = pidfd_send_signal(p.pidfd.as_fd(), libc::SIGKILL);
        p.sync = None;
        p.deadline = None;
        if let Some(conn) = p.conn.take() {
            self.fail_conn(conn, &e);
        }
    }
}
