use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::Context;
use nix::unistd::Pid;

use crate::config::Config;
use crate::container::{Console, Container};
use crate::sandbox::waiter;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: super::create::CreateFlags,
    /// Return once the container has started.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility: the sandbox is always our child.
    #[arg(long)]
    pub no_subreaper: bool,
    /// Container id.
    pub id: String,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let ctx = || format!("run {}", a.id);
    let spec = crate::spec::load(&absolute(&a.flags.bundle)).with_context(ctx)?;
    let spec_terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    // A terminal without a console socket: be the console ourselves, as runc
    // does for a person at a shell, and also when standard input is not a
    // terminal (a script, a CI job): the pty is copied to and from our stdio.
    let mut proxy = None;
    let console = match (&a.flags.console_socket, spec_terminal) {
        (Some(p), _) => Some(Console::Path(p.clone())),
        (None, true) if !a.detach => {
            let (theirs, ours) = super::tty::console_pair()?;
            proxy = Some(ours);
            Some(theirs)
        }
        _ => None,
    };
    let mut opts = a.flags.options(&a.id, console);
    opts.spec = Some(spec);
    // Block the signals we forward before the container exists, so none is
    // lost between start and the wait loop.
    let mask = waiter::forward_mask();
    if !a.detach {
        mask.thread_block().context("block signals")?;
    }
    let created = Container::create(cfg, opts).with_context(ctx)?;
    let mut c = created.container;
    let mut boot = created.boot_child;
    let master = match &proxy {
        Some(sock) => match super::tty::receive_master(sock) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = c.delete(true);
                if let Some(b) = boot.as_mut() {
                    let _ = b.wait();
                }
                return Err(e).with_context(ctx);
            }
        },
        None => None,
    };
    // A pod member's exit is told by its sandbox: the wait is asked for
    // before start, so a process that is gone at once is not missed (boot
    // answers a wait on an exited container with its status).
    let member_wait = if boot.is_none() && !a.detach {
        match c.wait_conn() {
            Ok(conn) => Some(conn),
            Err(e) => {
                let _ = c.delete(true);
                return Err(e).with_context(ctx);
            }
        }
    } else {
        None
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
    // Signals go through a pidfd: once boot has reaped the init, its pid
    // may belong to someone else.
    let init = c
        .state
        .init
        .and_then(|p| crate::sys::process::pidfd_open(Pid::from_raw(p.pid)).ok());
    let forward = |sig: nix::sys::signal::Signal| {
        if let Some(fd) = &init {
            let _ = crate::sys::process::pidfd_send_signal(fd.as_fd(), sig as i32);
        }
    };
    let code = match boot {
        // Our own sandbox: it exits with the container's status.
        Some(mut boot) => {
            // Let other commands (kill, pause, exec) lock the container.
            drop(c);
            super::wait_forwarding(master, boot.pidfd().as_fd(), &mask, forward)?;
            crate::sys::spawn::exit_code(boot.wait().context("wait for sandbox")?)
        }
        // A pod member: the sandbox tells us when it exits.
        None => {
            let conn = match member_wait {
                Some(conn) => conn,
                None => c.wait_conn().with_context(ctx)?,
            };
            drop(c);
            super::wait_forwarding(master, conn.as_fd(), &mask, forward)?;
            crate::sandbox::read_exit(&conn).map(|s| s.0).unwrap_or(137)
        }
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

fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}
