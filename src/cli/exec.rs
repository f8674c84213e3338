//! `husk exec`: run a process in a running container.
//!
//! The process is a child of the sandbox (boot), not of husk. A client that
//! waits on the pid in `--pid-file` (conmon, containerd's shim: subreapers)
//! gets a small waiter process instead: forked from `husk exec`, it becomes
//! the client's child when husk exits, passes signals on to the real
//! process, and exits with its status. If the waiter is killed, the sandbox
//! kills the process it stood for.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use crate::config::Config;
use crate::container::state::{write_file_atomic, Status};
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
    /// Exec even if the container is paused: the process runs once the
    /// container is resumed (husk waits for that, at most 300 s, when the
    /// container is its sandbox's root).
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run in this sub-cgroup of the container's: SUB (every hierarchy) or
    /// CTRL[,CTRL]:SUB (those controllers'; repeat for more). It must exist.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Container id.
    pub id: String,
    /// Command and arguments (when no --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// A process.json; without `user`, the process runs as the container's
/// user (runc accepts such files too).
fn load_process(path: &PathBuf, base: Option<&Process>) -> anyhow::Result<Process> {
    let text =
        std::fs::read(path).with_context(|| format!("read process file {}", path.display()))?;
    let parse_err =
        |e: serde_json::Error| anyhow::anyhow!("parse process file {}: {}", path.display(), e);
    let mut v: serde_json::Value = serde_json::from_slice(&text).map_err(parse_err)?;
    if let Some(obj) = v.as_object_mut() {
        if !obj.contains_key("user") {
            let user = match base {
                Some(b) => serde_json::to_value(b.user())?,
                None => serde_json::json!({"uid": 0, "gid": 0}),
            };
            obj.insert("user".into(), user);
        }
    }
    let p: Process = serde_json::from_value(v).map_err(parse_err)?;
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
        Some(path) => load_process(path, base.as_ref())?,
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
    let mut c = Container::load(cfg, &a.id).with_context(ctx)?;
    if a.ignore_paused && c.state.is_root && c.status() == Status::Paused {
        c = wait_for_resume(cfg, c).with_context(ctx)?;
    }
    let process = build_process(&a, c.state.process.clone()).with_context(ctx)?;
    tracing::debug!(
        "exec {}: {:?} as {}:{} in a {} container",
        a.id,
        process.args().as_deref().unwrap_or_default(),
        process.user().uid(),
        process.user().gid(),
        c.status()
    );
    let terminal = process.terminal() == Some(true);
    let mut proxy: Option<UnixStream> = None;
    let console = match (&a.console_socket, terminal) {
        (Some(p), _) => Some(Console::Path(p.clone())),
        (None, true) => {
            if a.detach {
                bail!(
                    "exec {}: cannot allocate a terminal for a detached process without --console-socket",
                    a.id
                );
            }
            // Be the console ourselves, whatever standard input is (a
            // terminal gets raw mode; anything else is copied as it is).
            let (theirs, ours) = super::tty::console_pair()?;
            proxy = Some(ours);
            Some(theirs)
        }
        (None, false) => None,
    };
    if let Some(pf) = &a.pid_file {
        // A pid file that cannot be written fails the exec before the
        // process runs (as with runc), not after.
        probe_pid_file(pf).with_context(ctx)?;
    }
    let mask = waiter::forward_mask();
    mask.thread_block().context("block signals")?;
    let sub_cgroup = if a.cgroup.is_empty() {
        None
    } else {
        let sub = sub_cgroup(&c.state.cgroup, &a.cgroup).with_context(ctx)?;
        tracing::debug!(
            "exec {}: in cgroup {:?}",
            a.id,
            sub.dirs
                .iter()
                .map(|d| d.path.display().to_string())
                .collect::<Vec<_>>()
        );
        Some(sub)
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
    tracing::debug!("exec {}: process {} started", a.id, execed.pid);

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
    let master = match proxy {
        Some(sock) => Some(super::tty::receive_master(&sock).with_context(ctx)?),
        None => None,
    };
    super::wait_forwarding(master, conn.as_fd(), &mask, forward)?;
    match crate::sandbox::read_exit(&conn) {
        Some(st) => {
            tracing::debug!("exec {}: process exited with status {}", a.id, st.0);
            Ok(st.0)
        }
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

/// Whether a file can be made next to `pf` (where the pid file's
/// temporary copy goes).
fn probe_pid_file(pf: &std::path::Path) -> anyhow::Result<()> {
    let dir = pf
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = pf
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("--pid-file {}: not a file path", pf.display()))?;
    let probe = dir.join(format!(".{}.husk-probe", name.to_string_lossy()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(|e| anyhow::anyhow!("write {}: {}", pf.display(), crate::error::errno_text(&e)))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// How long `exec --ignore-paused` waits for a paused root container to be
/// resumed (boot's own bound on a process's setup).
const RESUME_WAIT: Duration = Duration::from_secs(300);

/// `exec --ignore-paused` into a paused root container: its sandbox (boot)
/// is frozen with it and cannot fork until the container is resumed. Wait
/// for that, as runc's exec does (its new process freezes in the cgroup
/// until then), but bounded, and without holding the container's lock, so
/// that `resume` can take it.
fn wait_for_resume(cfg: &Config, c: Container) -> anyhow::Result<Container> {
    let id = c.id().to_string();
    drop(c);
    tracing::debug!("exec {id}: the container is paused; waiting until it is resumed");
    let deadline = Instant::now() + RESUME_WAIT;
    let mut pause = Duration::from_millis(5);
    loop {
        let st = Container::read(cfg, &id)?.current_status();
        if st != Status::Paused {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "the container stayed paused for {} s; its sandbox cannot start a process until it is resumed",
                RESUME_WAIT.as_secs()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    Ok(Container::load(cfg, &id)?)
}

/// Which hierarchies one `--cgroup` value names, and the path below the
/// container's cgroup.
enum CgroupArg<'a> {
    /// `SUB`: every hierarchy.
    All(&'a str),
    /// `CTRL[,CTRL]:SUB`.
    Some(Vec<&'a str>, &'a str),
}

fn parse_cgroup_arg(arg: &str) -> CgroupArg<'_> {
    match arg.split_once(':') {
        // ":SUB" means every hierarchy too (as with runc).
        Some(("", sub)) => CgroupArg::All(sub),
        Some((ctrls, sub)) => CgroupArg::Some(ctrls.split(',').collect(), sub),
        None => CgroupArg::All(arg),
    }
}

/// `sub` below `base`, resolved lexically; None if it leaves `base` (a
/// real containment test, not runc's string prefix, which lets
/// `../<id>x` through to a sibling).
fn below(base: &std::path::Path, sub: &str) -> Option<std::path::PathBuf> {
    use std::path::Component;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in std::path::Path::new(sub).components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut p = base.to_path_buf();
    p.extend(parts);
    Some(p)
}

/// `exec --cgroup`: each value is `SUB` (every hierarchy) or
/// `CTRL[,CTRL]:SUB` (those controllers' hierarchies, `name=systemd`
/// included); the two forms do not mix. SUB is a path below the
/// container's own cgroup that must exist and may not leave it; empty
/// means the container's cgroup.
fn sub_cgroup(
    base: &crate::cgroups::CgroupPath,
    args: &[String],
) -> anyhow::Result<crate::cgroups::CgroupPath> {
    let parsed: Vec<(&String, CgroupArg<'_>)> =
        args.iter().map(|a| (a, parse_cgroup_arg(a))).collect();
    let all = parsed
        .iter()
        .filter(|(_, p)| matches!(p, CgroupArg::All(_)));
    if args.len() > 1 {
        if let Some((a, _)) = all.clone().next() {
            bail!("invalid --cgroup argument: {a} (missing <controller>: prefix)");
        }
    }
    let mut out = base.clone();
    let set = |d: &mut crate::cgroups::CgroupDir, arg: &str, sub: &str| -> anyhow::Result<()> {
        let Some(p) = below(&d.path, sub) else {
            bail!("--cgroup {arg}: {sub} is not a sub-cgroup of the container's cgroup");
        };
        if !p.is_dir() {
            bail!("--cgroup {arg}: {} does not exist", p.display());
        }
        d.path = p;
        Ok(())
    };
    for (arg, p) in &parsed {
        match p {
            CgroupArg::All(sub) => {
                for d in out.dirs.iter_mut() {
                    set(d, arg, sub)?;
                }
            }
            CgroupArg::Some(ctrls, sub) => {
                for ctrl in ctrls {
                    // v1 hierarchies by controller (or name=); on a host
                    // with cgroup v2 only, its controllers name its one
                    // hierarchy.
                    let v1 = out
                        .dirs
                        .iter()
                        .position(|d| !d.v2 && d.controllers.iter().any(|x| x == ctrl));
                    let i = v1
                        .or_else(|| {
                            let only_v2 = out.dirs.iter().all(|d| d.v2);
                            out.dirs
                                .iter()
                                .position(|d| only_v2 && d.controllers.iter().any(|x| x == ctrl))
                        })
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "--cgroup {arg}: the container has no cgroup controller {ctrl:?}"
                            )
                        })?;
                    set(&mut out.dirs[i], arg, sub)?;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn cgroup_paths_stay_below_the_container() {
        let b = Path::new("/sys/fs/cgroup/pids/c9");
        assert_eq!(below(b, "sub").unwrap(), b.join("sub"));
        assert_eq!(below(b, "/sub").unwrap(), b.join("sub"));
        assert_eq!(below(b, "sub/..").unwrap(), b);
        assert_eq!(below(b, "").unwrap(), b);
        assert!(below(b, "..").is_none());
        assert!(below(b, "../c9x").is_none());
        assert!(below(b, "sub/../../c9x").is_none());
        assert!(below(b, "../../..").is_none());
    }

    #[test]
    fn cgroup_argument_forms() {
        assert!(matches!(parse_cgroup_arg("sub"), CgroupArg::All("sub")));
        assert!(matches!(parse_cgroup_arg(":sub"), CgroupArg::All("sub")));
        match parse_cgroup_arg("cpu,cpuacct:a/b") {
            CgroupArg::Some(c, s) => {
                assert_eq!(c, ["cpu", "cpuacct"]);
                assert_eq!(s, "a/b");
            }
            CgroupArg::All(_) => panic!(),
        }
        match parse_cgroup_arg("name=systemd:x") {
            CgroupArg::Some(c, _) => assert_eq!(c, ["name=systemd"]),
            CgroupArg::All(_) => panic!(),
        }
    }
}
