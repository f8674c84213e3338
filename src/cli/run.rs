use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::config::Config;
use crate::container::{Container, CreateOptions};
use crate::sys::process::pidfd_open;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle directory (holds config.json).
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// AF_UNIX socket that receives the pty master when process.terminal is set.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the pid of the process to wait on (the sandbox) here.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Return once the container has started.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility; husk always uses pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Accepted for runc compatibility: the sandbox is always our child.
    #[arg(long)]
    pub no_subreaper: bool,
    /// Pass this many extra descriptors (from fd 3) to the process.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
}

/// Signals `run` passes on to the container while it waits.
const FORWARD: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let ctx = || format!("run {}", a.id);
    let opts = CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
    };
    // Block the signals we forward before the container exists, so none is
    // lost between start and the wait loop.
    let mut mask = SigSet::empty();
    for s in FORWARD {
        mask.add(*s);
    }
    if !a.detach {
        mask.thread_block().context("block signals")?;
    }
    let created = Container::create(cfg, &opts).with_context(ctx)?;
    let mut c = created.container;
    let mut boot = created.boot_child;
    if let Err(e) = c.start() {
        let _ = c.delete(true);
        if let Some(b) = boot.as_mut() {
            let _ = b.wait();
        }
        return Err(e).with_context(ctx);
    }
    if a.detach {
        return Ok(0);
    }
    let init_pid = c.state.init.map(|p| p.pid).unwrap_or(0);
    // Let other commands (kill, pause, exec) lock the container while we wait.
    drop(c);
    let Some(mut boot) = boot else {
        anyhow::bail!("run {}: no sandbox process to wait for", a.id);
    };
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let bootfd = pidfd_open(nix::unistd::Pid::from_raw(boot.id() as i32)).context("pidfd")?;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: bootfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            while let Ok(Some(info)) = sigfd.read_signal() {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(init_pid), sig);
                }
            }
        }
        if fds[1].revents != 0 {
            break;
        }
    }
    let status = boot.wait().context("wait for sandbox")?;
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 255,
    };
    if !a.keep {
        match Container::load(cfg, &a.id) {
            Ok(c) => c.delete(true).with_context(ctx)?,
            Err(crate::error::Error::NotFound(_)) => {}
            Err(e) => return Err(e).with_context(ctx),
        }
    }
    Ok(code)
}
