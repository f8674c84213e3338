//! boot's control connections. Each is non-blocking: a request is read a
//! piece at a time as it arrives, and must be complete within
//! [`REQUEST_LIMIT`] of the accept, so a client that trickles bytes (or
//! none) only ever holds its own connection. Every connection is watched
//! for hang-up, whatever it is waiting for; their number is capped, and a
//! descriptor shortage pauses accepting instead of spinning.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{Boot, Phase};
use crate::control::{wire, ErrorKind, Request, Response};
use crate::error::Error;
use crate::sys::process::pidfd_send_signal;

pub type ConnId = u64;

/// Most connections doing something at once (reading a request, in a
/// create, start or exec); more are refused with a message. A request that
/// has arrived is read at once, so only slow or stuck clients count.
pub const MAX_ACTIVE: usize = 256;
/// Most connections parked in Wait at once. They cost a descriptor each and
/// no work; they never crowd out requests.
pub const MAX_PARKED: usize = 16384;
/// A request must have arrived whole this long after the accept.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// What a parked connection waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Ctr(String),
    Exec(u64),
}

/// What a connection is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Reading its request.
    Request,
    /// Waiting for an exit.
    Parked {
        target: Target,
        kill_on_close: bool,
    },
    /// In a create conversation; reading `HooksDone` when `hooks` is set.
    Creating {
        id: String,
        hooks: bool,
    },
    Starting(String),
    Execing(u64),
}

impl Role {
    pub fn poll_events(&self) -> i16 {
        match self {
            Role::Request | Role::Creating { hooks: true, .. } => libc::POLLIN | libc::POLLRDHUP,
            // Anything the peer sends now is a protocol error; only its
            // going away matters.
            _ => libc::POLLRDHUP,
        }
    }

    pub fn is_parked(&self) -> bool {
        matches!(self, Role::Parked { .. })
    }

    /// Whether boot must answer this connection before it may exit.
    pub fn holds_sandbox_open(&self) -> bool {
        matches!(self, Role::Parked { .. })
    }
}

pub struct Conn {
    pub sock: UnixStream,
    pub reader: wire::FrameReader,
    pub role: Role,
    pub deadline: Option<Instant>,
}

impl Boot {
    /// Connections that are not parked.
    pub(super) fn active(&self) -> usize {
        self.conns.values().filter(|c| !c.role.is_parked()).count()
    }

    pub(super) fn accept(&mut self) {
        // Take everything waiting, up to the cap.
        while self.active() < MAX_ACTIVE {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if let Some(id) = self.admit(sock) {
                        // Most requests are there already: read them now, so
                        // a burst of waits parks instead of crowding the cap.
                        self.on_conn_event(id, libc::POLLIN);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    tracing::warn!("accept: {e}; pausing for 100ms");
                    self.accept_after = Some(Instant::now() + Duration::from_millis(100));
                    return;
                }
                Err(e) => {
                    tracing::debug!("accept: {e}");
                    return;
                }
            }
        }
        // Over the cap: refuse the rest clearly rather than let them hang.
        while let Ok((sock, _)) = self.listener.accept() {
            let _ = wire::send(
                &sock,
                &Response::Error {
                    kind: ErrorKind::Refused,
                    message: format!(
                        "sandbox is busy: {MAX_ACTIVE} requests are in progress; try again"
                    ),
                },
                &[],
            );
        }
    }

    fn admit(&mut self, sock: UnixStream) -> Option<ConnId> {
        // Only the sandbox's creator may talk to it (the socket's mode says
        // so too; this also holds if the mode was loosened).
        let uid = super::peer_uid(&sock);
        let allowed = match (self.owner_uid, uid) {
            (_, Some(0)) => true,
            (None, Some(u)) => {
                self.owner_uid = Some(u);
                true
            }
            (Some(o), Some(u)) => o == u,
            (_, None) => false,
        };
        if !allowed {
            let _ = wire::send(
                &sock,
                &Response::Error {
                    kind: ErrorKind::Refused,
                    message: "permission denied: the sandbox belongs to another user".into(),
                },
                &[],
            );
            return None;
        }
        if self.owner_uid.is_none() {
            self.owner_uid = uid;
        }
        if sock.set_nonblocking(true).is_err() {
            return None;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                sock,
                reader: wire::FrameReader::default(),
                role: Role::Request,
                deadline: Some(Instant::now() + REQUEST_LIMIT),
            },
        );
        Some(id)
    }

    pub(super) fn on_conn_event(&mut self, id: ConnId, revents: i16) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let reading = matches!(c.role, Role::Request | Role::Creating { hooks: true, .. });
        if reading && revents & libc::POLLIN != 0 {
            match c.reader.read::<Request, _>(&c.sock) {
                Ok(None) => {
                    // Part of a request; the rest may still come.
                    if revents & (libc::POLLHUP | libc::POLLERR) == 0 {
                        return;
                    }
                }
                Ok(Some((req, fds))) => {
                    c.deadline = None;
                    self.dispatch(id, req, fds);
                    return;
                }
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        tracing::debug!("connection {id}: {e}");
                    }
                }
            }
        } else if revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR) == 0 {
            return;
        }
        self.abandoned(id);
    }

    /// The peer went away (or broke the protocol) mid-conversation.
    fn abandoned(&mut self, id: ConnId) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        match c.role {
            Role::Request => {}
            Role::Parked {
                target,
                kill_on_close,
            } => {
                let gone = |w: &ConnId| *w != id;
                match target {
                    Target::Ctr(cid) => {
                        if let Some(ctr) = self.containers.get_mut(&cid) {
                            ctr.waiters.retain(gone);
                            if kill_on_close && !matches!(ctr.phase, Phase::Exited(_)) {
                                tracing::debug!(
                                    "the waiter of container {cid} went away; killing it"
                                );
                                let _ = pidfd_send_signal(
                                    std::os::fd::AsFd::as_fd(&ctr.pidfd),
                                    libc::SIGKILL,
                                );
                            }
                        }
                    }
                    Target::Exec(token) => {
                        if let Some(p) = self.procs.get_mut(&token) {
                            p.waiters.retain(gone);
                            if kill_on_close {
                                tracing::debug!(
                                    "the waiter of process {token} went away; killing it"
                                );
                                let _ = pidfd_send_signal(
                                    std::os::fd::AsFd::as_fd(&p.pidfd),
                                    libc::SIGKILL,
                                );
                            }
                        }
                    }
                }
            }
            Role::Creating { id: cid, .. } => {
                // Nobody will learn of this container: undo it.
                if let Some(ctr) = self.containers.get_mut(&cid) {
                    ctr.conn = None;
                }
                self.fail_setup(&cid, Error::Sandbox("the creator went away".into()));
            }
            Role::Starting(cid) => {
                // The start goes on; its result is seen in the state.
                if let Some(ctr) = self.containers.get_mut(&cid) {
                    ctr.conn = None;
                }
            }
            Role::Execing(token) => {
                // Nobody knows this process: do not leave it behind.
                if let Some(p) = self.procs.get_mut(&token) {
                    p.conn = None;
                }
                self.fail_exec(token, Error::Sandbox("the caller went away".into()));
            }
        }
    }

    fn dispatch(&mut self, id: ConnId, req: Request, fds: Vec<OwnedFd>) {
        let role = self.conns.get(&id).map(|c| c.role.clone());
        if let Some(Role::Creating { id: cid, .. }) = role {
            match req {
                Request::HooksDone { error } => self.hooks_done(&cid, id, error),
                other => {
                    tracing::debug!("connection {id}: unexpected {other:?} during create");
                    self.abandoned(id);
                }
            }
            return;
        }
        tracing::debug!("request: {}", request_name(&req));
        let result = match req {
            Request::Create(c) => self.create(id, *c, fds),
            Request::Start { id: cid } => self.start(id, &cid),
            Request::Exec(e) => self.exec(id, *e, fds),
            Request::Wait {
                id: cid,
                kill_on_close,
            } => self.wait(id, Target::Ctr(cid), kill_on_close),
            Request::WaitExec {
                token,
                kill_on_close,
            } => self.wait(id, Target::Exec(token), kill_on_close),
            Request::Destroy { id: cid } => self.destroy(id, &cid),
            Request::HooksDone { .. } => {
                Err(Error::Invalid("HooksDone outside of a create".into()))
            }
        };
        if let Err(e) = result {
            self.fail_conn(id, &e);
        }
    }

    pub(super) fn set_role(&mut self, id: ConnId, role: Role) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.role = role;
        }
    }

    fn wait(
        &mut self,
        id: ConnId,
        target: Target,
        kill_on_close: bool,
    ) -> crate::error::Result<()> {
        if self.conns.len() - self.active() >= MAX_PARKED {
            return Err(Error::Remote {
                kind: ErrorKind::Refused,
                message: format!("sandbox is busy: {MAX_PARKED} waits are parked; try again"),
            });
        }
        match &target {
            Target::Ctr(cid) => {
                let c = self
                    .containers
                    .get_mut(cid)
                    .ok_or_else(|| Error::NotFound(cid.clone()))?;
                if let Phase::Exited(status) = c.phase {
                    self.finish_conn(id, Response::Exited { status });
                    return Ok(());
                }
                c.waiters.push(id);
            }
            Target::Exec(token) => match self.procs.get_mut(token) {
                Some(p) => p.waiters.push(id),
                None => {
                    let status = self
                        .exits
                        .iter()
                        .find(|(t, _)| t == token)
                        .map(|(_, s)| *s)
                        .ok_or_else(|| {
                            Error::Invalid(format!(
                                "no process {token} was started in this sandbox"
                            ))
                        })?;
                    self.finish_conn(id, Response::Exited { status });
                    return Ok(());
                }
            },
        }
        self.set_role(
            id,
            Role::Parked {
                target,
                kill_on_close,
            },
        );
        Ok(())
    }

    /// Kill a container's processes; answer once its init is reaped.
    fn destroy(&mut self, id: ConnId, cid: &str) -> crate::error::Result<()> {
        let is_root = self.root_id.as_deref() == Some(cid);
        let c = self
            .containers
            .get(cid)
            .ok_or_else(|| Error::NotFound(cid.to_string()))?;
        if let Phase::Exited(_) = c.phase {
            if !is_root {
                self.containers.remove(cid);
            }
            self.finish_conn(id, Response::Destroyed);
            return Ok(());
        }
        let _ = pidfd_send_signal(std::os::fd::AsFd::as_fd(&c.pidfd), libc::SIGKILL);
        let tokens: Vec<u64> = self
            .procs
            .iter()
            .filter(|(_, p)| p.ctr == cid)
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            let _ = pidfd_send_signal(
                std::os::fd::AsFd::as_fd(&self.procs[&t].pidfd),
                libc::SIGKILL,
            );
        }
        // Answered from the reaper: as a waiter of the container.
        self.containers
            .get_mut(cid)
            .expect("present")
            .waiters
            .push(id);
        self.set_role(
            id,
            Role::Parked {
                target: Target::Ctr(cid.to_string()),
                kill_on_close: false,
            },
        );
        if !is_root {
            // Forgotten once reaped: its id may be used again in the pod.
            self.containers.get_mut(cid).expect("present").destroyed = true;
        }
        Ok(())
    }
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::Create(_) => "Create",
        Request::HooksDone { .. } => "HooksDone",
        Request::Start { .. } => "Start",
        Request::Exec(_) => "Exec",
        Request::Wait { .. } => "Wait",
        Request::WaitExec { .. } => "WaitExec",
        Request::Destroy { .. } => "Destroy",
    }
}
