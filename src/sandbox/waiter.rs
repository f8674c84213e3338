//! Stand-ins: small processes that take the place of a container process
//! (a pod member's init, an exec'd process) in a client's pid file. The
//! real process is a child of boot; the client (conmon, containerd's shim:
//! subreapers) waits on the pid we give it, so we give it a process that
//! becomes its child when husk exits, passes the signals it gets on to the
//! real process, and exits with its status (the code, or 128+signal).
//!
//! A stand-in lives where clients look for the container: it joins the
//! container's cgroups (stats and OOM events are read from the pid's
//! cgroup), its network, IPC, UTS and mount namespaces (tools build
//! `/proc/<pid>/ns/*` paths from it, and podman's `top` lists the /proc of
//! its mount namespace), and the sandbox's pid namespace, from which every
//! process of the pod is visible and no process of the host. If it dies,
//! boot sees its connection close and kills the process it stood for.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cgroups::CgroupPath;
use crate::error::{Error, Result};
use crate::sys::process::{close_fds_except, exit_now, pidfd_open, pidfd_send_signal, Forked};

pub use husk_oci::signals::forward_mask;

/// Pass signals arriving on `sigfd` to `forward` until `done` is readable.
pub fn forward_until(sigfd: &SignalFd, done: i32, mut forward: impl FnMut(Signal)) {
    loop {
        let mut fds = [
            crate::sys::pollfd(sigfd.as_raw_fd(), libc::POLLIN),
            crate::sys::pollfd(done, libc::POLLIN),
        ];
        if crate::sys::poll(&mut fds, -1).is_err() {
            continue;
        }
        if fds[0].revents != 0 {
            while let Ok(Some(info)) = sigfd.read_signal() {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    forward(sig);
                }
            }
        }
        if fds[1].revents != 0 {
            return;
        }
    }
}

/// What a stand-in stands for.
pub struct StandIn<'a> {
    /// A Wait or WaitExec connection made with kill_on_close.
    pub conn: UnixStream,
    /// The real process.
    pub target: OwnedFd,
    /// boot, when it has a pid namespace of its own to put the stand-in in.
    pub sandbox_pidns: Option<OwnedFd>,
    /// The cgroup the real process is in.
    pub cgroup: &'a CgroupPath,
}

/// Fork a stand-in; returns its pid (in our pid namespace).
pub fn spawn(s: StandIn<'_>) -> Result<i32> {
    let join = super::cgroup_join(s.cgroup)?;
    let own_pidns = match &s.sandbox_pidns {
        Some(ns) => {
            let own = pidfd_open(nix::unistd::getpid())
                .map_err(|e| Error::os("pidfd of ourselves", e))?;
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| Error::os("enter the sandbox's pid namespace", e))?;
            Some(own)
        }
        None => None,
    };
    // At its known place before the fork: a client may look the stand-in
    // up the moment its pid file exists.
    let target = crate::sys::fd::dup_to(s.target.as_fd(), husk_oci::STANDS_FOR_FD)
        .map_err(|e| Error::os("stand-in", e))?;
    drop(s.target);
    let mask = forward_mask();
    // The stand-in says when it is in place: the pid must be what clients
    // expect the moment its pid file exists.
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::os("pipe", e))?;
    // Born into the cgroup2 directory where the kernel lets us; the child
    // writes cgroup.procs otherwise.
    let forked = crate::sys::process::fork_preferably_into(0, join.v2_dir());
    if let Some(own) = &own_pidns {
        if !matches!(forked, Ok((Forked::Child, _))) {
            let _ = nix::sched::setns(own.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID);
        }
    }
    let (forked, born_in_v2) = forked.map_err(|e| Error::os("fork stand-in", e))?;
    match forked {
        Forked::Parent { pid, pidfd } => {
            drop(ready_w);
            let mut fds = [
                crate::sys::pollfd(ready_r.as_raw_fd(), libc::POLLIN),
                crate::sys::pollfd(pidfd.as_raw_fd(), libc::POLLIN),
            ];
            let _ = crate::sys::poll(&mut fds, 5000);
            let mut b = [0u8; 1];
            if fds[0].revents & libc::POLLIN == 0
                || !matches!(nix::unistd::read(ready_r.as_raw_fd(), &mut b), Ok(1))
            {
                let _ = pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                return Err(Error::Sandbox(
                    "the stand-in process did not set itself up".into(),
                ));
            }
            Ok(pid.as_raw())
        }
        Forked::Child => {
            drop(ready_r);
            drop(own_pidns);
            drop(s.sandbox_pidns);
            let _ = nix::unistd::setsid();
            // Hold none of the caller's stdio: clients read it to its end.
            crate::sys::process::stdio_to_null();
            let _ = nix::sys::prctl::set_dumpable(false);
            let _ = join.join_self(born_in_v2);
            drop(join);
            // While our /proc is still the host's.
            crate::sys::memory::trim_idle();
            let mut enter = super::STANDIN_NAMESPACES
                .iter()
                .fold(0, |f, k| f | k.flag()) as i32;
            if super::unprivileged() {
                // The container's namespaces belong to the sandbox's user
                // namespace: entered first, it gives the right to the rest.
                enter |= crate::control::NsKind::User.flag() as i32;
            }
            // Fails only if the process is gone; then the answer is near.
            let _ = nix::sched::setns(
                target.as_fd(),
                nix::sched::CloneFlags::from_bits_retain(enter),
            );
            let _ = mask.thread_block();
            let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK);
            let _ = nix::unistd::write(&ready_w, b"r");
            drop(ready_w);
            let mut keep = vec![s.conn.as_raw_fd(), target.as_raw_fd()];
            if let Ok(sf) = &sigfd {
                keep.push(sf.as_raw_fd());
            }
            close_fds_except(&keep);
            let _ = nix::sys::prctl::set_name(c"husk-wait");
            if let Ok(sigfd) = sigfd {
                forward_until(&sigfd, s.conn.as_raw_fd(), |sig| {
                    let _ = pidfd_send_signal(target.as_fd(), sig as i32);
                });
            }
            // No answer: the sandbox, and the process with it, is gone.
            let code = super::read_exit(&s.conn).map(|st| st.0).unwrap_or(137);
            exit_now(code)
        }
    }
}
