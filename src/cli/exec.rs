//! `husk exec`: run a process in a running container.
//!
//! The process is a child of the sandbox (boot), not of husk. A client that
//! waits on the pid in `--pid-file` (conmon, containerd's shim: subreapers)
//! gets a small waiter process instead: forked from `husk exec`, it becomes
//! the client's child when husk exits, passes signals on to the real
//! process, and exits with its status. If the waiter is killed, the sandbox
//! kills the process it stood for.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use crate::config::Config;
use crate::container::state::write_file_atomic;
use crate::container::{Console, Container, ExecOptions};
use crate::sandbox::waiter;
use crate::sys::process::pidfd_send_signal;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A process.json (OCI process object) to run.
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process has started.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the pid of a process that exits with the exec'd process's status.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// AF_UNIX socket that receives the pty master.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Environment variables (KEY=VALUE).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group ids.
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability.
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many extra descriptors (from fd 3) to the process.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// SELinux label (refused: SELinux is not supported).
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile.
    #[arg(short = 'a', long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Accepted for runc compatibility; exec into a paused container is
    /// still refused (its process would freeze before it could start).
    #[arg(long)]
    pub ignore_paused: bool,
    /// Accepted for runc compatibility (sub-cgroup to run in).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Container id.
    pub id: String,
    /// Command and arguments (when no --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

fn load_process(path: &PathBuf) -> anyhow::Result<Process> {
    let text =
        std::fs::read(path).with_context(|| format!("read process file {}", path.display()))?;
    let p: Process = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("parse process file {}: {}", path.display(), e))?;
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!("process file {}: args must name a program", path.display());
    }
    Ok(p)
}

fn capability(name: &str) -> anyhow::Result<Capability> {
    let full = if name.to_ascii_uppercase().starts_with("CAP_") {
        name.to_ascii_uppercase()
    } else {
        format!("CAP_{}", name.to_ascii_uppercase())
    };
    caps::Capability::from_str(&full)
        .map_err(|_| anyhow::anyhow!("unknown capability {name:?}"))?;
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| anyhow::anyhow!("unknown capability {name:?}"))
}

/// The process to run: from --process, or the container's own process with
/// the command line's overrides (as runc builds it).
fn build_process(a: &Args, base: Option<Process>) -> anyhow::Result<Process> {
    if a.process_label.as_deref().is_some_and(|l| !l.is_empty()) {
        bail!("--process-label: SELinux is not supported");
    }
    let mut p = match &a.process {
        Some(path) => load_process(path)?,
        None => {
            if a.args.is_empty() {
                bail!("no command given (pass ARGS or --process)");
            }
            let mut p = base.unwrap_or_default();
            p.set_args(Some(a.args.clone()));
            p.set_terminal(Some(false));
            p.set_console_size(None);
            p
        }
    };
    if a.tty {
        p.set_terminal(Some(true));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &a.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .map_err(|_| anyhow::anyhow!("--user {u:?}: only numeric uid[:gid] is supported"))?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow::anyhow!("--user {u:?}: gid is not a number"))?,
            );
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        let mut caps = p
            .capabilities()
            .clone()
            .unwrap_or_else(LinuxCapabilities::default);
        let add = |set: &Option<HashSet<Capability>>, c: Capability| {
            let mut s = set.clone().unwrap_or_default();
            s.insert(c);
            Some(s)
        };
        for name in &a.cap {
            let c = capability(name)?;
            caps.set_bounding(add(caps.bounding(), c));
            caps.set_effective(add(caps.effective(), c));
            caps.set_permitted(add(caps.permitted(), c));
            caps.set_inheritable(add(caps.inheritable(), c));
            caps.set_ambient(add(caps.ambient(), c));
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    Ok(p)
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let ctx = || format!("exec {}", a.id);
    let c = Container::load(cfg, &a.id).with_context(ctx)?;
    let process = build_process(&a, c.state.process.clone()).with_context(ctx)?;
    let terminal = process.terminal() == Some(true);
    let mut proxy: Option<UnixStream> = None;
    let console = match (&a.console_socket, terminal) {
        (Some(p), _) => Some(Console::Path(p.clone())),
        (None, true) => {
            if a.detach || !super::tty::stdin_is_tty() {
                bail!(
                    "exec {}: --tty needs --console-socket, or a terminal on standard input",
                    a.id
                );
            }
            let (theirs, ours) = super::tty::console_pair()?;
            proxy = Some(ours);
            Some(theirs)
        }
        (None, false) => None,
    };
    let mask = waiter::forward_mask();
    mask.thread_block().context("block signals")?;
    let sub_cgroup = match &a.cgroup {
        Some(sub) => Some(sub_cgroup(&c.state.cgroup, sub).with_context(ctx)?),
        None => None,
    };
    let execed = c
        .exec(ExecOptions {
            process,
            console,
            preserve_fds: a.preserve_fds,
            ignore_paused: a.ignore_paused,
            sub_cgroup,
        })
        .with_context(ctx)?;
    // Other husk commands may lock the container while this one waits.
    drop(c);

    if a.detach {
        let pid = execed.pid;
        let stand_in = match execed.stand_in() {
            Ok(p) => p,
            Err(e) => return Err(e).with_context(ctx),
        };
        tracing::debug!("exec {}: process {pid}, stand-in {stand_in}", a.id);
        if let Some(pf) = &a.pid_file {
            if let Err(e) = write_file_atomic(pf, stand_in.to_string().as_bytes()) {
                // Nobody could wait for it: take the process down (boot
                // kills what a dead stand-in stood for).
                let _ = nix::sys::signal::kill(Pid::from_raw(stand_in), Signal::SIGKILL);
                return Err(e).with_context(ctx);
            }
        }
        return Ok(0);
    }
    if let Some(pf) = &a.pid_file {
        // In the foreground, husk exec itself exits with the status.
        write_file_atomic(pf, std::process::id().to_string().as_bytes()).with_context(ctx)?;
    }
    let conn = execed.wait_conn().with_context(ctx)?;
    let forward = |sig: Signal| {
        let _ = pidfd_send_signal(execed.pidfd.as_fd(), sig as i32);
    };
    match proxy {
        Some(sock) => {
            let master = super::tty::receive_master(&sock).with_context(ctx)?;
            super::tty::proxy(master, conn.as_fd(), &mut |sig| forward(sig));
        }
        None => {
            let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
                .context("signalfd")?;
            waiter::forward_until(&sigfd, conn.as_raw_fd(), forward);
        }
    }
    match crate::sandbox::read_exit(&conn) {
        Some(st) => Ok(st.0),
        None => {
            // runc reports a process killed with its container as 137.
            eprintln!(
                "husk: exec {}: the sandbox exited, and the process with it",
                a.id
            );
            Ok(137)
        }
    }
}

/// `exec --cgroup`: `SUB` (every hierarchy) or `CTRL:SUB` (one), a path
/// below the container's own cgroup that must exist and may not leave it.
fn sub_cgroup(
    base: &crate::cgroups::CgroupPath,
    arg: &str,
) -> anyhow::Result<crate::cgroups::CgroupPath> {
    let (ctrl, sub) = match arg.split_once(':') {
        Some((c, s)) => (Some(c), s),
        None => (None, arg),
    };
    let rel = std::path::Path::new(sub.trim_start_matches('/'));
    if rel.as_os_str().is_empty()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        bail!("--cgroup {arg:?}: must name a sub-cgroup of the container's cgroup");
    }
    let mut out = base.clone();
    let mut matched = false;
    for d in out.dirs.iter_mut() {
        let wanted = match ctrl {
            None => true,
            Some(c) => {
                (d.v2 && c.is_empty())
                    || d.controllers
                        .iter()
                        .any(|x| x == c || x.strip_prefix("name=") == Some(c))
            }
        };
        if wanted {
            matched = true;
            let p = d.path.join(rel);
            if !p.is_dir() {
                bail!("--cgroup {arg:?}: {} does not exist", p.display());
            }
            d.path = p;
        }
    }
    if !matched {
        bail!("--cgroup {arg:?}: the container has no such cgroup controller");
    }
    Ok(out)
}
