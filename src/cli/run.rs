use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::config::Config;
use crate::container::{Console, Container, CreateOptions};

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
pub const FORWARD: &[Signal] = &[
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
    let spec = crate::spec::load(&absolute(&a.bundle)).with_context(ctx)?;
    let spec_terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    // A terminal without a console socket: be the console ourselves, as runc
    // does for a person at a shell.
    let mut proxy = None;
    let console = match (&a.console_socket, spec_terminal) {
        (Some(p), _) => Some(Console::Path(p.clone())),
        (None, true) if !a.detach => {
            if !super::tty::stdin_is_tty() {
                anyhow::bail!(
                    "run {}: process.terminal is true but standard input is not a terminal and no --console-socket was given",
                    a.id
                );
            }
            let (theirs, ours) = super::tty::console_pair()?;
            proxy = Some(ours);
            Some(theirs)
        }
        _ => None,
    };
    let opts = CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console,
        preserve_fds: a.preserve_fds,
        spec: Some(spec),
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
    let created = Container::create(cfg, opts).with_context(ctx)?;
    let mut c = created.container;
    let mut boot = created.boot_child;
    let master = match &proxy {
        Some(sock) => Some(super::tty::receive_master(sock).with_context(ctx)?),
        None => None,
    };
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
    let init_pid = Pid::from_raw(c.state.init.map(|p| p.pid).unwrap_or(0));
    // Let other commands (kill, pause, exec) lock the container while we wait.
    drop(c);
    let Some(mut boot) = boot else {
        anyhow::bail!("run {}: no sandbox process to wait for", a.id);
    };
    match master {
        Some(m) => super::tty::proxy(m, boot.pidfd().as_fd(), &mut |sig| {
            let _ = nix::sys::signal::kill(init_pid, sig);
        }),
        None => {
            let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
                .context("signalfd")?;
            forward_until(&sigfd, boot.pidfd().as_raw_fd(), |sig| {
                let _ = nix::sys::signal::kill(init_pid, sig);
            });
        }
    }
    let status = boot.wait().context("wait for sandbox")?;
    let code = crate::sys::spawn::exit_code(status);
    if !a.keep {
        match Container::load(cfg, &a.id) {
            Ok(c) => c.delete(true).with_context(ctx)?,
            Err(crate::error::Error::NotFound(_)) => {}
            Err(e) => return Err(e).with_context(ctx),
        }
    }
    Ok(code)
}

/// Pass signals arriving on `sigfd` to `forward` until `done` is readable.
pub fn forward_until(sigfd: &SignalFd, done: i32, mut forward: impl FnMut(Signal)) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: done,
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
                    forward(sig);
                }
            }
        }
        if fds[1].revents != 0 {
            return;
        }
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}
