//! Waiters: small processes that stand in for a container process that is
//! a child of the sandbox, for clients that wait on the pid in a pid file.
//! conmon and containerd's shim are subreapers: once husk exits, a waiter
//! forked by husk becomes their child. It passes the signals it gets on to
//! the real process and exits with its status (the code, or 128+signal).
//! If the waiter dies, boot sees its connection close and kills the process
//! it stood for, so the two live and die together.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;

use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::control::{wire, Response};
use crate::error::{errno_text, Error, Result};
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

/// The status carried by the sandbox's answer on a Wait/WaitPid
/// connection; 255 if the sandbox went away without answering.
pub fn read_exit(conn: &UnixStream) -> i32 {
    match wire::recv::<Response, _>(conn) {
        Ok((Response::Exited { status }, _)) => status.0,
        _ => 255,
    }
}

/// Fork a waiter holding `conn` (a Wait or WaitPid connection made with
/// kill_on_close) for the process `target`. Returns the waiter's pid.
pub fn spawn(conn: UnixStream, target: Pid) -> Result<i32> {
    let pidfd = pidfd_open(target).ok();
    let mask = forward_mask();
    match crate::sys::process::fork_into(0, None)
        .map_err(|e| Error::Sandbox(format!("fork waiter: {}", errno_text(&e))))?
    {
        Forked::Parent { pid, .. } => Ok(pid.as_raw()),
        Forked::Child => {
            let _ = nix::unistd::setsid();
            // Hold no directory of the caller's (a bundle) open.
            let _ = nix::unistd::chdir("/");
            // Hold none of the caller's stdio: clients read it to its end.
            crate::sys::process::stdio_to_null();
            let _ = mask.thread_block();
            let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK);
            let mut keep = vec![conn.as_raw_fd()];
            if let Some(p) = &pidfd {
                keep.push(p.as_raw_fd());
            }
            if let Ok(s) = &sigfd {
                keep.push(s.as_raw_fd());
            }
            close_fds_except(&keep);
            let _ = nix::sys::prctl::set_name(c"husk-wait");
            crate::sys::memory::trim_idle();
            if let Ok(sigfd) = sigfd {
                forward_until(&sigfd, conn.as_raw_fd(), |sig| {
                    if let Some(fd) = &pidfd {
                        let _ = pidfd_send_signal(fd.as_fd(), sig as i32);
                    }
                });
            }
            exit_now(read_exit(&conn))
        }
    }
}
