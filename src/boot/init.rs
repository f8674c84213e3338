//! A container's init: forked by boot into the container's new namespaces,
//! it builds the root filesystem, reports Ready, waits for Start, and execs
//! the user's program. Talks to boot over a socketpair (`Sync` messages);
//! the socket is close-on-exec, so boot reads end-of-stream as "exec done".

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::Spec;

use crate::boot::namespaces::{self, NsPlan};
use crate::boot::process::{self, CapPlan, ExecPlan};
use crate::boot::rootfs::{self, RootfsContext};
use crate::cgroups::CgroupPath;
use crate::config::Config;
use crate::control::wire;
use crate::error::{errno_text, Error, Result};
use crate::seccomp::Prepared;
use husk_oci::hooks::{self, Stage};
use husk_oci::state::OciState;

pub use husk_oci::sync::Sync;

pub fn send(sock: &UnixStream, msg: &Sync) -> Result<()> {
    wire::send(sock, msg, &[])
        .map_err(|e| Error::Sandbox(format!("sync with sandbox: {}", errno_text(&e))))
}

/// Receive the next sync message; `None` at end of stream.
pub fn recv(sock: &UnixStream) -> Result<Option<Sync>> {
    match wire::recv::<Sync, _>(sock) {
        Ok((m, _)) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(Error::Sandbox(format!(
            "sync with sandbox: {}",
            errno_text(&e)
        ))),
    }
}

fn expect(sock: &UnixStream, want: &str) -> Result<()> {
    match recv(sock)? {
        Some(Sync::Error { message }) => Err(Error::Sandbox(message)),
        Some(m) if format!("{m:?}") == want => Ok(()),
        Some(m) => Err(Error::Sandbox(format!(
            "sync with sandbox: expected {want}, got {m:?}"
        ))),
        None => Err(Error::Sandbox("sandbox went away".into())),
    }
}

/// Where the container's mounts come from.
pub enum MountSource {
    /// The gofer's socket; it answers with descriptors.
    Gofer(OwnedFd),
    /// `--file-access=direct`: boot resolved the host paths itself.
    Prepared(husk_oci::gofer::PreparedMounts),
}

pub struct InitArgs<'a> {
    pub id: &'a str,
    pub cfg: &'a Config,
    pub spec: &'a Spec,
    pub cgroup: &'a CgroupPath,
    pub ns: &'a NsPlan,
    pub hook_state: &'a OciState,
    pub sync: UnixStream,
    /// For containers whose stdio came over the control socket.
    pub stdio: Option<[OwnedFd; 3]>,
    pub console: Option<OwnedFd>,
    pub mounts: MountSource,
    pub preserved: Vec<OwnedFd>,
    pub seccomp: Option<Prepared>,
}

/// The child side after fork. Never returns: it execs or exits.
pub fn child_main(args: InitArgs<'_>) -> ! {
    crate::sys::process::reset_signals();
    let terminal = args.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if terminal {
        // A terminal process gets the pty as stdio at start; until then it
        // must not hold the caller's stdio, which clients (containerd's
        // shim) read until end-of-file before they go on.
        crate::sys::process::stdio_to_null();
    }
    let mut args = args;
    let sync = match relocate_sync(&mut args.sync) {
        Ok(s) => s,
        Err(_) => crate::sys::process::exit_now(1),
    };
    report_and_exit(&sync, run(args), 1)
}

/// Keep the sync socket far above the descriptors the program gets (stdio,
/// --preserve-fds); returns a second copy for reporting errors.
fn relocate_sync(sock: &mut UnixStream) -> std::io::Result<UnixStream> {
    let (high, reporter) = relocate_pair(sock)?;
    *sock = high;
    Ok(reporter)
}

/// A child that did not exec: tell boot why, and exit.
fn report_and_exit(sync: &UnixStream, result: Result<Never>, code: i32) -> ! {
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = send(
        sync,
        &Sync::Error {
            message: err.to_string(),
        },
    );
    crate::sys::process::exit_now(code)
}

enum Never {}

fn run(args: InitArgs<'_>) -> Result<Never> {
    let InitArgs {
        id: _,
        cfg,
        spec,
        cgroup,
        ns,
        hook_state,
        sync,
        stdio,
        console,
        mounts,
        preserved,
        seccomp,
    } = args;
    // Die with the sandbox: a container never outlives its boot process.
    crate::sys::process::set_parent_death_signal(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| Error::Sandbox(format!("set parent death signal: {e}")))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("process is required".into()))?;
    expect(&sync, "Go")?;
    if let Some(aff) = process.exec_cpu_affinity() {
        process::apply_cpu_affinity(aff.initial().as_deref(), "process.execCPUAffinity.initial")?;
    }
    // Through the host's /proc while it is still ours to trust.
    process::set_oom_score_adj(process)?;

    if ns.new_user {
        // Become root of the new user namespace (boot wrote the maps).
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(|e| Error::Sandbox(format!("setgid 0 in user namespace: {e}")))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(|e| Error::Sandbox(format!("setuid 0 in user namespace: {e}")))?;
    }
    for (flag, path) in &ns.joins {
        namespaces::join(*flag, path)?;
    }
    if ns.new_cgroup {
        // Rooted at the container's cgroup, which boot has moved us into.
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| Error::Sandbox(format!("create cgroup namespace: {e}")))?;
    }
    if ns.new_time {
        nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .map_err(|e| Error::Sandbox(format!("create time namespace: {e}")))?;
        write_time_offsets(spec)?;
    }
    if ns.set_uts_names {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h)
                .map_err(|e| Error::Sandbox(format!("set hostname {h:?}: {e}")))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            set_domainname(d)?;
        }
    }
    let has = |f: CloneFlags| {
        ns.clone_flags & f.bits() as u64 != 0 || ns.joins.iter().any(|(j, _)| *j == f)
    };
    process::apply_sysctls(
        spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()),
        has(CloneFlags::CLONE_NEWIPC),
        has(CloneFlags::CLONE_NEWNET),
        has(CloneFlags::CLONE_NEWUTS),
    )?;
    if ns.new_net {
        crate::sys::loopback_up()
            .map_err(|e| Error::Sandbox(format!("bring up loopback: {}", errno_text(&e))))?;
    }

    let prepared = match mounts {
        MountSource::Gofer(sock) => husk_oci::gofer::receive(&sock)?,
        MountSource::Prepared(p) => p,
    };
    let ctx = RootfsContext {
        spec,
        cgroup,
        cgroupns: ns.new_cgroup,
        bind_devices: ns.new_user,
    };
    let root = rootfs::build(&ctx, prepared)?;

    let hooks = spec.hooks().as_ref();
    if hooks::has(hooks, Stage::Prestart) || hooks::has(hooks, Stage::CreateRuntime) {
        send(&sync, &Sync::RunHooks)?;
        expect(&sync, "HooksDone")?;
    }
    let mut state = hook_state.clone();
    state.pid = nix::unistd::getpid().as_raw();
    state.status = "creating".into();
    hooks::run(hooks, Stage::CreateContainer, &state)?;

    // Host facts are read before the container's root replaces the host's.
    let apparmor = crate::spec::apparmor_enabled();
    rootfs::pivot(&root)?;
    rootfs::finish(spec, &root)?;
    drop(root);

    let terminal = if process.terminal() == Some(true) {
        Some(open_console(process, console.as_ref())?)
    } else {
        None
    };
    drop(console);
    let caps_plan = CapPlan::from_spec(process.capabilities().as_ref())?;
    let plan = ExecPlan::new(process)?;
    // At create, as runc does: a limit the host forbids fails create.
    process::apply_rlimits(process)?;

    send(&sync, &Sync::Ready)?;
    expect(&sync, "Start")?;

    hooks::run(hooks, Stage::StartContainer, &state)?;
    finish_and_exec(
        cfg,
        process,
        &plan,
        &caps_plan,
        stdio,
        terminal,
        preserved,
        &sync,
        seccomp,
        spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
        apparmor,
    )
}

/// The shared tail of init and exec: stdio, session, limits, identity,
/// seccomp, exec.
#[allow(clippy::too_many_arguments)]
fn finish_and_exec(
    cfg: &Config,
    process: &oci_spec::runtime::Process,
    plan: &ExecPlan,
    caps_plan: &CapPlan,
    stdio: Option<[OwnedFd; 3]>,
    terminal: Option<OwnedFd>,
    preserved: Vec<OwnedFd>,
    sync: &UnixStream,
    seccomp: Option<Prepared>,
    personality: Option<&oci_spec::runtime::LinuxPersonality>,
    apparmor: bool,
) -> Result<Never> {
    let _ = cfg;
    nix::unistd::setsid().map_err(|e| Error::Sandbox(format!("setsid: {e}")))?;
    if let Some(tty) = terminal {
        crate::sys::tty::set_controlling_terminal(tty.as_fd())
            .map_err(|e| Error::Sandbox(format!("set controlling terminal: {e}")))?;
        for target in 0..3 {
            nix::unistd::dup2(tty.as_raw_fd(), target)
                .map_err(|e| Error::Sandbox(format!("dup2 terminal: {e}")))?;
        }
    } else if let Some(fds) = stdio {
        install_stdio(fds, 3 + preserved.len() as RawFd)?;
    }
    let preserve = process::place_preserved_fds(preserved)?;
    crate::sys::process::cloexec_from(3 + preserve)
        .map_err(|e| Error::Sandbox(format!("close descriptors: {e}")))?;

    process::apply_rlimits(process)?;
    process::apply_io_priority(process)?;
    process::apply_scheduler(process)?;
    process::apply_personality(personality)?;
    process::apply_apparmor(process, apparmor)?;
    // Without no_new_privs, loading a filter takes CAP_SYS_ADMIN, so it
    // goes in before the capabilities are dropped; otherwise as late as
    // possible, so the fewest calls happen under it.
    // Last steps from here: tell boot, so that the socket closing next
    // means the exec happened (not that we died on the way).
    send(sync, &Sync::Exec)?;
    let nnp = process.no_new_privileges() == Some(true);
    let mut seccomp = seccomp;
    if !nnp {
        install_seccomp(seccomp.take(), sync)?;
    }
    process::set_identity(process, caps_plan)?;
    process::set_no_new_privs(process)?;
    install_seccomp(seccomp.take(), sync)?;
    // Credential changes clear the parent-death signal; set it again.
    crate::sys::process::set_parent_death_signal(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| Error::Sandbox(format!("set parent death signal: {e}")))?;
    if let Some(aff) = process.exec_cpu_affinity() {
        process::apply_cpu_affinity(
            aff.cpu_affinity_final().as_deref(),
            "process.execCPUAffinity.final",
        )?;
    }
    let _ = nix::unistd::chdir(&plan.cwd);
    Err(plan.exec())
}

/// Load the seccomp filters; a user-notification descriptor goes to boot,
/// which hands it to the spec's listener (a host path this process cannot
/// reach from inside the container).
fn install_seccomp(plan: Option<Prepared>, sync: &UnixStream) -> Result<()> {
    let Some(plan) = plan else { return Ok(()) };
    if plan.is_empty() {
        return Ok(());
    }
    if let Some(fd) = plan.install().map_err(|e| Error::Sandbox(e.to_string()))? {
        wire::send(sync, &Sync::SeccompNotify, &[fd.as_raw_fd()]).map_err(|e| {
            Error::Sandbox(format!(
                "send seccomp notify fd to sandbox: {}",
                errno_text(&e)
            ))
        })?;
    }
    Ok(())
}

/// Two copies of the sync socket at descriptors >= 1000.
fn relocate_pair(sock: &UnixStream) -> std::io::Result<(UnixStream, UnixStream)> {
    let high = || -> std::io::Result<UnixStream> {
        Ok(UnixStream::from(crate::sys::fd::dup_above(
            sock.as_fd(),
            1000,
        )?))
    };
    Ok((high()?, high()?))
}

/// Put the three descriptors at 0, 1, 2. `above` is where the temporary
/// copies may go without landing on a descriptor still to be placed (and
/// under a low RLIMIT_NOFILE).
pub fn install_stdio(fds: [OwnedFd; 3], above: RawFd) -> Result<()> {
    // Move them up first so that dup2 onto 0..2 never closes one we still
    // need.
    let mut high: Vec<RawFd> = Vec::with_capacity(3);
    for fd in &fds {
        high.push(
            nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(above))
                .map_err(|e| Error::Sandbox(format!("stdio: {e}")))?,
        );
    }
    drop(fds);
    for (target, h) in high.into_iter().enumerate() {
        nix::unistd::dup2(h, target as RawFd).map_err(|e| Error::Sandbox(format!("stdio: {e}")))?;
        let _ = nix::unistd::close(h);
    }
    Ok(())
}

/// Allocate a pty in the container's devpts, send its master to the console
/// socket (as runc does: the slave's name as data, the master as
/// SCM_RIGHTS), and return the slave.
pub fn open_console(
    process: &oci_spec::runtime::Process,
    socket: Option<&OwnedFd>,
) -> Result<OwnedFd> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let socket = socket.ok_or_else(|| {
        Error::Spec("process.terminal is true but no --console-socket was given".into())
    })?;
    let master = posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY)
        .map_err(|e| Error::Sandbox(format!("open /dev/ptmx: {}", errno_text(&e.into()))))?;
    grantpt(&master).map_err(|e| Error::Sandbox(format!("grantpt: {e}")))?;
    unlockpt(&master).map_err(|e| Error::Sandbox(format!("unlockpt: {e}")))?;
    let name = ptsname_r(&master).map_err(|e| Error::Sandbox(format!("ptsname: {e}")))?;
    let slave = crate::sys::fd::open(
        PathBuf::from(&name).as_path(),
        libc::O_RDWR | libc::O_NOCTTY,
        0,
    )
    .map_err(|e| Error::Sandbox(format!("open {name}: {}", errno_text(&e))))?;
    if let Some(size) = process.console_size() {
        let _ = crate::sys::tty::set_window_size(
            master.as_fd(),
            size.height() as u16,
            size.width() as u16,
        );
    }
    crate::sys::fdpass::send_with_fds(socket.as_fd(), name.as_bytes(), &[master.as_raw_fd()])
        .map_err(|e| Error::Sandbox(format!("send pty to console socket: {}", errno_text(&e))))?;
    Ok(slave)
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .map_err(|e| Error::Sandbox(format!("linux.timeOffsets: {}", errno_text(&e))))
}

fn set_domainname(name: &str) -> Result<()> {
    crate::sys::set_domainname(name)
        .map_err(|e| Error::Sandbox(format!("set domainname {name:?}: {}", errno_text(&e))))
}

/// Exec'd processes (husk exec) share the tail of init.
pub struct ExecArgs<'a> {
    pub cfg: &'a Config,
    pub process: &'a oci_spec::runtime::Process,
    pub init_pid: i32,
    pub sync: UnixStream,
    pub stdio: [OwnedFd; 3],
    pub console: Option<OwnedFd>,
    pub preserved: Vec<OwnedFd>,
    pub cgroup: &'a CgroupPath,
    /// The container's init, whose namespaces are entered through it in
    /// one setns(2): it fails if the init is gone.
    pub init_fd: OwnedFd,
    /// Which of its namespaces differ from boot's.
    pub ns_flags: CloneFlags,
    /// The host has AppArmor (decided by boot, outside the container).
    pub apparmor: bool,
    pub seccomp: Option<Prepared>,
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
}

/// The child side of `husk exec` after fork: enter the container, exec.
pub fn exec_child_main(args: ExecArgs<'_>) -> ! {
    crate::sys::process::reset_signals();
    let mut args = args;
    let sync = match relocate_sync(&mut args.sync) {
        Ok(s) => s,
        Err(_) => crate::sys::process::exit_now(127),
    };
    report_and_exit(&sync, exec_run(args), 127)
}

fn exec_run(args: ExecArgs<'_>) -> Result<Never> {
    crate::sys::process::set_parent_death_signal(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| Error::Sandbox(format!("set parent death signal: {e}")))?;
    // Through the host's /proc, before entering the container's mounts.
    process::set_oom_score_adj(args.process)?;
    // Join the container's cgroup before its cgroup namespace hides it.
    args.cgroup
        .add_pid(nix::unistd::getpid().as_raw())
        .map_err(|e| Error::Sandbox(e.to_string()))?;
    if !args.ns_flags.is_empty() {
        nix::sched::setns(args.init_fd.as_fd(), args.ns_flags).map_err(|e| {
            Error::Sandbox(format!(
                "enter namespaces of container (pid {}): {}",
                args.init_pid,
                errno_text(&e.into())
            ))
        })?;
    }
    drop(args.init_fd);
    let terminal = if args.process.terminal() == Some(true) {
        Some(open_console(args.process, args.console.as_ref())?)
    } else {
        None
    };
    drop(args.console);
    let caps_plan = CapPlan::from_spec(args.process.capabilities().as_ref())?;
    let plan = ExecPlan::new(args.process)?;
    finish_and_exec(
        args.cfg,
        args.process,
        &plan,
        &caps_plan,
        Some(args.stdio),
        terminal,
        args.preserved,
        &args.sync,
        args.seccomp,
        args.personality.as_ref(),
        args.apparmor,
    )
}
