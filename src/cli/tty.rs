//! husk's own console for `run`/`exec` with a terminal and no
//! `--console-socket`: receive the pty master over a socketpair, put the
//! caller's terminal in raw mode, and copy bytes both ways until the process
//! exits (as runc does for a person at a shell).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{bail, Context};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};

use crate::container::Console;

/// The socket end handed to the runtime as the console socket, and ours.
pub fn console_pair() -> anyhow::Result<(Console, UnixStream)> {
    let (ours, theirs) = UnixStream::pair().context("console socketpair")?;
    Ok((Console::Fd(OwnedFd::from(theirs)), ours))
}

pub fn receive_master(sock: &UnixStream) -> anyhow::Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let (_, mut fds) = crate::sys::fdpass::recv_with_fds(sock.as_fd(), &mut buf)
        .context("receive the terminal from the container")?;
    if fds.is_empty() {
        bail!("the container did not send a terminal");
    }
    Ok(fds.remove(0))
}

/// Restores the caller's terminal settings when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

fn copy_winsize(master: BorrowedFd<'_>) {
    if let Some((rows, cols)) = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|fd| crate::sys::tty::window_size(fd.as_fd()).ok())
    {
        let _ = crate::sys::tty::set_window_size(master, rows, cols);
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Copy between the caller's terminal and `master` until `done` becomes
/// readable (the process exited) and the master has no more output.
/// `forward` receives other signals the caller gets, to pass on.
pub fn proxy(master: OwnedFd, done: BorrowedFd<'_>, forward: &mut dyn FnMut(Signal)) {
    let _raw = RawMode::enter();
    copy_winsize(master.as_fd());
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGWINCH,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        mask.add(s);
    }
    let _ = mask.thread_block();
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok();
    let mut stdin_open = true;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut fds = [
            crate::sys::pollfd(master.as_raw_fd(), libc::POLLIN),
            crate::sys::pollfd(done.as_raw_fd(), libc::POLLIN),
            crate::sys::pollfd(if stdin_open { 0 } else { -1 }, libc::POLLIN),
            crate::sys::pollfd(
                sigfd.as_ref().map(|s| s.as_raw_fd()).unwrap_or(-1),
                libc::POLLIN,
            ),
        ];
        if crate::sys::poll(&mut fds, -1).is_err() {
            continue;
        }
        if fds[0].revents != 0 {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => break,
                Ok(n) => {
                    write_all(std::io::stdout().as_fd(), &buf[..n]);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        if fds[2].revents != 0 {
            match nix::unistd::read(0, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    write_all(master.as_fd(), &buf[..n]);
                }
            }
        }
        if fds[3].revents != 0 {
            if let Some(s) = sigfd.as_ref() {
                while let Ok(Some(info)) = s.read_signal() {
                    match Signal::try_from(info.ssi_signo as i32) {
                        Ok(Signal::SIGWINCH) => copy_winsize(master.as_fd()),
                        Ok(sig) => forward(sig),
                        Err(_) => {}
                    }
                }
            }
        }
        if fds[1].revents != 0 && fds[0].revents == 0 {
            // The process is gone and the master has nothing more to say.
            break;
        }
    }
}
