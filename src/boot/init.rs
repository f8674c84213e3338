//! A container's init, and the child side of `husk exec`.
//!
//! The init is forked by boot into the container's new namespaces. It
//! places itself in the container's cgroup and the namespaces it joins,
//! builds the root filesystem from the mounts it is sent, and then does
//! everything that can fail before the program runs — terminal, limits,
//! seccomp (without no_new_privs), user, groups, capabilities, cwd, the
//! executable's lookup — so that such failures fail `create`, as with
//! runc. It then reports Ready and waits for Start; only seccomp with
//! no_new_privs, the startContainer hooks and the execve itself are left.
//!
//! It talks to boot over a socketpair ([`Sync`] messages); the socket is
//! close-on-exec, so boot reads end-of-stream after `Exec` as "exec done".

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{Process, Spec};

use crate::boot::process::{self, CapPlan, ExecPlan};
use crate::boot::rootfs::{self, RootfsContext};
use crate::cgroups::{CgroupPath, JoinFds};
use crate::config::Config;
use crate::control::{wire, InitNamespaces, NsKind};
use crate::error::{errno_text, Error, Result};
use crate::seccomp::Prepared;
use crate::sys::mount::{
    mount_setattr, open_tree, Attrs, FsContext, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, OPEN_TREE_CLONE,
};
use husk_oci::hooks::{self, Stage};
use husk_oci::state::OciState;
pub use husk_oci::sync::Sync;

pub fn send(sock: &UnixStream, msg: &Sync) -> Result<()> {
    wire::send(sock, msg, &[]).map_err(|e| Error::os("sync with sandbox", e))
}

/// Receive the next sync message; `None` at end of stream.
pub fn recv(sock: &UnixStream) -> Result<Option<Sync>> {
    match wire::recv::<Sync, _>(sock) {
        Ok((m, _)) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(Error::os("sync with sandbox", e)),
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

fn sys(what: impl std::fmt::Display, e: impl Into<std::io::Error>) -> Error {
    Error::os(what, e)
}

pub struct InitArgs<'a> {
    pub cfg: &'a Config,
    pub spec: &'a Spec,
    pub cgroup: &'a CgroupPath,
    pub ns: &'a InitNamespaces,
    /// Namespaces to join (not user or pid: boot handles those).
    pub joins: Vec<(NsKind, OwnedFd)>,
    /// How to join the container's cgroup (empty: boot's cgroup is it).
    pub cgroup_join: JoinFds,
    /// Born into its cgroup2 directory already (`boot::fork_child`).
    pub born_in_v2: bool,
    pub hook_state: &'a OciState,
    pub sync: UnixStream,
    /// For containers whose stdio came over the control socket.
    pub stdio: Option<[OwnedFd; 3]>,
    pub console: Option<OwnedFd>,
    /// The socket the mounts arrive on (gofer protocol).
    pub mounts: OwnedFd,
    /// A copy of the host's mount tree for createContainer hooks.
    pub host_root: Option<OwnedFd>,
    /// The FUSE mount of the container's /proc views.
    pub views: Option<OwnedFd>,
    /// No mount namespace of the container's own: the rootfs directory to
    /// chroot into (the init has joined the host's mount namespace).
    pub rootfs_dir: Option<OwnedFd>,
    pub preserved: Vec<OwnedFd>,
    pub seccomp: Option<Prepared>,
    pub apparmor: bool,
    /// Send boot a read-only mount of our procfs (the root container).
    pub show_proc: bool,
}

/// The child side after fork. Never returns: it execs or exits.
pub fn child_main(args: InitArgs<'_>) -> ! {
    crate::sys::process::reset_signals();
    super::restore_nofile();
    let terminal = args.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if terminal {
        // A terminal process gets the pty as stdio; until then it must not
        // hold the caller's stdio, which clients (containerd's shim) read
        // until end-of-file before they go on.
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
    let high = || -> std::io::Result<UnixStream> {
        Ok(UnixStream::from(crate::sys::fd::dup_above(
            sock.as_fd(),
            1000,
        )?))
    };
    let (a, b) = (high()?, high()?);
    *sock = a;
    Ok(b)
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

/// Join the container's cgroup (what is left after birth).
fn join_cgroup(join: &JoinFds, born_in_v2: bool) -> Result<()> {
    join.join_self(born_in_v2)
        .map_err(|e| sys("join the container's cgroup", e))
}

/// A procfs of our own pid namespace, never attached anywhere: how the init
/// reaches /proc/self before (and after) it has a /proc of its own.
fn own_procfs() -> Result<OwnedFd> {
    let fs = FsContext::open("proc").map_err(|e| sys("procfs", e))?;
    fs.mount(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
        .map_err(|e| sys("procfs", e))
}

fn run(args: InitArgs<'_>) -> Result<Never> {
    let InitArgs {
        cfg: _,
        spec,
        cgroup,
        ns,
        joins,
        cgroup_join,
        born_in_v2,
        hook_state,
        sync,
        stdio,
        console,
        mounts,
        host_root,
        views,
        rootfs_dir,
        preserved,
        seccomp,
        apparmor,
        show_proc,
    } = args;
    // Die with the sandbox: a container never outlives its boot process.
    crate::sys::process::set_parent_death_signal(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| sys("set parent death signal", e))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("process is required".into()))?;
    join_cgroup(&cgroup_join, born_in_v2)?;
    drop(cgroup_join);
    for (kind, fd) in &joins {
        nix::sched::setns(fd.as_fd(), CloneFlags::from_bits_retain(kind.flag() as i32)).map_err(
            |e| {
                Error::Sandbox(format!(
                    "join {} namespace (linux.namespaces): {}",
                    kind.spec_name(),
                    errno_text(&e.into())
                ))
            },
        )?;
    }
    drop(joins);
    if ns.creates(NsKind::Cgroup) {
        // Rooted at the container's cgroup, which we are in now.
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| sys("create cgroup namespace", e))?;
    }
    let proc = own_procfs()?;
    if views.is_some() {
        // What boot reads the views from: our cgroup filesystems, which our
        // cgroup namespace roots at our cgroup.
        match cgroup_mounts(cgroup) {
            Ok((infos, fds)) => {
                let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
                wire::send(&sync, &Sync::CgroupMounts { infos }, &raw)
                    .map_err(|e| sys("send cgroup mounts to the sandbox", e))?;
            }
            Err(e) => {
                let _ = send(
                    &sync,
                    &Sync::Warning {
                        message: format!("no /proc views: {e}"),
                    },
                );
            }
        }
    }
    if ns.creates(NsKind::Time) {
        nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .map_err(|e| sys("create time namespace", e))?;
        write_time_offsets(spec, proc.as_fd())?;
    }
    if show_proc {
        let tree = open_tree(Some(proc.as_fd()), Path::new(""), OPEN_TREE_CLONE)
            .and_then(|t| {
                mount_setattr(
                    t.as_fd(),
                    false,
                    &Attrs {
                        set: MOUNT_ATTR_RDONLY,
                        ..Default::default()
                    },
                )
                .map(|_| t)
            })
            .map_err(|e| sys("procfs for the sandbox", e))?;
        wire::send(&sync, &Sync::ProcMount, &[tree.as_raw_fd()])
            .map_err(|e| sys("send procfs to the sandbox", e))?;
    }
    if let Some(aff) = process.exec_cpu_affinity() {
        process::apply_cpu_affinity(aff.initial().as_deref(), "process.execCPUAffinity.initial")?;
    }
    process::set_oom_score_adj(process, proc.as_fd())?;
    if ns.owns(NsKind::Uts) {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h)
                .map_err(|e| Error::Sandbox(format!("set hostname {h:?}: {e}")))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            crate::sys::set_domainname(d)
                .map_err(|e| Error::os(format!("set domainname {d:?}"), e))?;
        }
    }
    process::apply_sysctls(
        spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()),
        ns.owns(NsKind::Ipc),
        ns.owns(NsKind::Net),
        ns.owns(NsKind::Uts),
        proc.as_fd(),
    )?;
    if ns.fresh.contains(&NsKind::Net) {
        crate::sys::loopback_up().map_err(|e| sys("bring up loopback", e))?;
    }

    let prepared = husk_oci::gofer::receive(&mounts)?;
    drop(mounts);
    let ctx = RootfsContext {
        spec,
        cgroup,
        bind_devices: ns.in_user_ns || ns.fresh.contains(&NsKind::User),
    };
    let root = match &rootfs_dir {
        // Nothing is mounted in the host's mount namespace; the default
        // devices are made in the rootfs's own /dev, as runc does.
        Some(dir) => {
            drop(prepared);
            rootfs::populate_shared_root(&ctx, dir.as_fd())?;
            None
        }
        None => Some(rootfs::build(&ctx, prepared)?),
    };
    if let (Some(views), Some(root)) = (views, root.as_ref()) {
        // Over the container's own /proc and /sys files; without views the
        // container still runs, with the host's numbers. (A container
        // without a mount namespace gets none: they would be mounted in
        // the host's.)
        if let Err(e) = bind_proc_views(root, &views) {
            let _ = send(
                &sync,
                &Sync::Warning {
                    message: format!("no /proc views: {e}"),
                },
            );
        }
    }

    let hooks = spec.hooks().as_ref();
    if hooks::has(hooks, Stage::Prestart) || hooks::has(hooks, Stage::CreateRuntime) {
        send(&sync, &Sync::RunHooks)?;
        expect(&sync, "HooksDone")?;
    }
    let mut state = hook_state.clone();
    state.pid = nix::unistd::getpid().as_raw();
    state.status = "creating".into();
    if hooks::has(hooks, Stage::CreateContainer) {
        in_host_root(host_root.as_ref(), || {
            hooks::run(hooks, Stage::CreateContainer, &state)
        })?;
    }
    drop(host_root);

    match (root, &rootfs_dir) {
        (Some(root), _) => {
            rootfs::pivot(&root)?;
            rootfs::finish(spec, &root)?;
        }
        (None, Some(dir)) => enter_chroot(dir)?,
        (None, None) => unreachable!("a rootfs is built or shared"),
    }
    drop(rootfs_dir);

    let terminal = if process.terminal() == Some(true) {
        Some(open_console(process, console.as_ref())?)
    } else {
        None
    };
    drop(console);
    let personality = spec.linux().as_ref().and_then(|l| l.personality().as_ref());
    let tail = prepare_process(ProcessSetup {
        process,
        stdio,
        terminal,
        preserved,
        sync: &sync,
        seccomp,
        personality,
        apparmor: apparmor.then_some(proc.as_fd()),
    })?;

    send(&sync, &Sync::Ready)?;
    expect(&sync, "Start")?;

    // `start` has returned by now (as runc's does): what fails from here is
    // told on the container's stderr as well as to boot.
    let after_start = (|| -> Result<Never> {
        let tail = tail.seccomp_if_nnp(&sync)?;
        // As they run in the container: under its user, capabilities and
        // full seccomp filter.
        state.status = "created".into();
        hooks::run(hooks, Stage::StartContainer, &state)?;
        drop(proc);
        tail.exec(process, &sync)
    })();
    if let Err(e) = &after_start {
        let _ = nix::unistd::write(std::io::stderr(), format!("husk: {e}\n").as_bytes());
    }
    after_start
}

/// Read-only detached mounts of our cgroup filesystems, one per hierarchy.
fn cgroup_mounts(
    cgroup: &CgroupPath,
) -> Result<(Vec<husk_procviews::CgroupDirInfo>, Vec<OwnedFd>)> {
    let mut infos = Vec::new();
    let mut fds = Vec::new();
    for d in &cgroup.dirs {
        let fs = FsContext::open(if d.v2 { "cgroup2" } else { "cgroup" })
            .map_err(|e| sys("cgroup filesystem", e))?;
        if !d.v2 {
            for c in &d.controllers {
                match c.strip_prefix("name=") {
                    Some(n) => fs.set_string("name", n),
                    None => fs.set_flag(c),
                }
                .map_err(|e| sys(format!("cgroup filesystem {c}"), e))?;
            }
        }
        let mnt = fs
            .mount(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
            .map_err(|e| sys("cgroup filesystem", e))?;
        infos.push(husk_procviews::CgroupDirInfo {
            controllers: d.controllers.clone(),
            v2: d.v2,
        });
        fds.push(mnt);
    }
    Ok((infos, fds))
}

/// Bind the container's /proc views over its /proc (and /sys) files.
fn bind_proc_views(root: &OwnedFd, views: &OwnedFd) -> Result<()> {
    let dir = |p: &str| {
        rootfs::open_in_root(root.as_fd(), Path::new(p), libc::O_PATH | libc::O_DIRECTORY)
    };
    let proc = dir("/proc").map_err(|e| sys("/proc", e))?;
    let sys_dir = dir("/sys").ok();
    husk_procviews::mount::bind_views(
        views.as_fd(),
        proc.as_fd(),
        sys_dir.as_ref().map(|s| s.as_fd()),
        &husk_procviews::View::ALL,
    )
    .map_err(|e| sys("bind the views", e))
}

/// A container without a mount namespace of its own: its root is the
/// rootfs directory, by chroot (not a security boundary against a process
/// with CAP_SYS_CHROOT; see docs/security.md).
fn enter_chroot(dir: &OwnedFd) -> Result<()> {
    nix::unistd::fchdir(dir.as_raw_fd()).map_err(|e| sys("chdir to rootfs", e))?;
    nix::unistd::chroot(".").map_err(|e| sys("chroot to rootfs", e))?;
    nix::unistd::chdir("/").map_err(|e| sys("chdir /", e))
}

/// Run `f` with the copy of the host's mount tree as our root (in our own
/// mount namespace), then come back: createContainer hooks are found and
/// run in the runtime's filesystem, inside the container's namespaces.
fn in_host_root<T>(host_root: Option<&OwnedFd>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let host_root = host_root.ok_or_else(|| {
        Error::Sandbox("createContainer hooks: no host filesystem was passed".into())
    })?;
    let ours = crate::sys::fd::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| sys("open /", e))?;
    let enter = |fd: &OwnedFd| -> Result<()> {
        nix::unistd::fchdir(fd.as_raw_fd()).map_err(|e| sys("chdir", e))?;
        nix::unistd::chroot(".").map_err(|e| sys("chroot", e))
    };
    enter(host_root)?;
    let r = f();
    enter(&ours)?;
    r
}

/// What the shared tail of init and exec needs.
struct ProcessSetup<'a> {
    process: &'a Process,
    stdio: Option<[OwnedFd; 3]>,
    terminal: Option<OwnedFd>,
    preserved: Vec<OwnedFd>,
    sync: &'a UnixStream,
    seccomp: Option<Prepared>,
    personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
    /// The host has AppArmor: the procfs to set the exec profile through.
    apparmor: Option<std::os::fd::BorrowedFd<'a>>,
}

/// A process ready to exec: everything that can fail is done, but seccomp
/// when no_new_privs is set (then it goes in as late as possible, so the
/// fewest calls happen under it).
struct Prepared2 {
    plan: ExecPlan,
    seccomp: Option<Prepared>,
}

/// The steps of a container process that can fail, in the order that works:
/// stdio and terminal, descriptors, limits, scheduling, seccomp (without
/// no_new_privs it needs CAP_SYS_ADMIN, so before the capabilities go),
/// identity, no_new_privs, cwd and the executable.
fn prepare_process(s: ProcessSetup<'_>) -> Result<Prepared2> {
    let ProcessSetup {
        process,
        stdio,
        terminal,
        preserved,
        sync,
        seccomp,
        personality,
        apparmor,
    } = s;
    nix::unistd::setsid().map_err(|e| sys("setsid", e))?;
    if let Some(tty) = terminal {
        crate::sys::tty::set_controlling_terminal(tty.as_fd())
            .map_err(|e| sys("set controlling terminal", e))?;
        // The process's own terminal, as on a login: owned by its user
        // (the group stays devpts's, tty), so `tty`, mesg and write work.
        nix::unistd::fchown(
            tty.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(process.user().uid())),
            None,
        )
        .map_err(|e| sys("chown the terminal to process.user.uid", e))?;
        for target in 0..3 {
            nix::unistd::dup2(tty.as_raw_fd(), target).map_err(|e| sys("dup2 terminal", e))?;
        }
    } else if let Some(fds) = stdio {
        install_stdio(fds, 3 + preserved.len() as RawFd)?;
    }
    let preserve = process::place_preserved_fds(preserved)?;
    crate::sys::process::cloexec_from(3 + preserve).map_err(|e| sys("close descriptors", e))?;
    let caps_plan = CapPlan::from_spec(process.capabilities().as_ref())?;
    process::apply_rlimits(process)?;
    process::apply_io_priority(process)?;
    process::apply_scheduler(process)?;
    process::apply_personality(personality)?;
    if let Some(proc) = apparmor {
        process::apply_apparmor(process, true, proc)?;
    }
    let nnp = process.no_new_privileges() == Some(true);
    let mut seccomp = seccomp;
    if !nnp {
        install_seccomp(seccomp.take(), sync)?;
    }
    process::set_identity(process, &caps_plan)?;
    process::set_no_new_privs(process)?;
    // Credential changes clear the parent-death signal; set it again.
    crate::sys::process::set_parent_death_signal(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| sys("set parent death signal", e))?;
    // chdir to the cwd and find the executable, as the container's user.
    let plan = ExecPlan::new(process)?;
    Ok(Prepared2 { plan, seccomp })
}

impl Prepared2 {
    fn seccomp_if_nnp(mut self, sync: &UnixStream) -> Result<Self> {
        install_seccomp(self.seccomp.take(), sync)?;
        Ok(self)
    }

    /// The last steps: tell boot the exec is next, and exec.
    fn exec(self, process: &Process, sync: &UnixStream) -> Result<Never> {
        if let Some(aff) = process.exec_cpu_affinity() {
            process::apply_cpu_affinity(
                aff.cpu_affinity_final().as_deref(),
                "process.execCPUAffinity.final",
            )?;
        }
        send(sync, &Sync::Exec)?;
        Err(self.plan.exec())
    }
}

/// Load the seccomp filters; a user-notification descriptor goes to boot,
/// which hands it on to the host side (the spec's listener is a host path).
fn install_seccomp(plan: Option<Prepared>, sync: &UnixStream) -> Result<()> {
    let Some(plan) = plan else { return Ok(()) };
    if plan.is_empty() {
        return Ok(());
    }
    if let Some(fd) = plan.install().map_err(|e| Error::Sandbox(e.to_string()))? {
        wire::send(sync, &Sync::SeccompNotify, &[fd.as_raw_fd()])
            .map_err(|e| Error::os("send seccomp notify fd to sandbox", e))?;
    }
    Ok(())
}

/// Put the three descriptors at 0, 1, 2. `above` is where the temporary
/// copies may go without landing on a descriptor still to be placed (and
/// under a low RLIMIT_NOFILE).
pub fn install_stdio(fds: [OwnedFd; 3], above: RawFd) -> Result<()> {
    // Move them up first so that dup2 onto 0..2 never closes one we still
    // need.
    let mut high = Vec::with_capacity(3);
    for fd in &fds {
        high.push(crate::sys::fd::dup_above(fd.as_fd(), above).map_err(|e| sys("stdio", e))?);
    }
    drop(fds);
    for (target, h) in high.into_iter().enumerate() {
        nix::unistd::dup2(h.as_raw_fd(), target as RawFd).map_err(|e| sys("stdio", e))?;
    }
    Ok(())
}

/// Allocate a pty in the container's devpts, send its master to the console
/// socket (as runc does: the slave's name as data, the master as
/// SCM_RIGHTS), and return the slave.
pub fn open_console(process: &Process, socket: Option<&OwnedFd>) -> Result<OwnedFd> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let socket = socket.ok_or_else(|| {
        Error::Spec("process.terminal is true but no --console-socket was given".into())
    })?;
    let master = posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY)
        .map_err(|e| sys("open /dev/ptmx", e))?;
    grantpt(&master).map_err(|e| Error::os("grantpt", e))?;
    unlockpt(&master).map_err(|e| Error::os("unlockpt", e))?;
    let name = ptsname_r(&master).map_err(|e| Error::os("ptsname", e))?;
    let slave = crate::sys::fd::open(
        PathBuf::from(&name).as_path(),
        libc::O_RDWR | libc::O_NOCTTY,
        0,
    )
    .map_err(|e| sys(format!("open {name}"), e))?;
    if let Some(size) = process.console_size() {
        let _ = crate::sys::tty::set_window_size(
            master.as_fd(),
            size.height() as u16,
            size.width() as u16,
        );
    }
    crate::sys::fdpass::send_with_fds(socket.as_fd(), name.as_bytes(), &[master.as_raw_fd()])
        .map_err(|e| sys("send pty to console socket", e))?;
    Ok(slave)
}

fn write_time_offsets(spec: &Spec, proc: std::os::fd::BorrowedFd<'_>) -> Result<()> {
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
    crate::sys::proc_write_at(proc, "self/timens_offsets", text.as_bytes())
        .map_err(|e| Error::os("linux.timeOffsets", e))
}

/// Exec'd processes (husk exec) share the tail of init.
pub struct ExecArgs<'a> {
    pub cfg: &'a Config,
    pub process: &'a Process,
    pub sync: UnixStream,
    pub stdio: [OwnedFd; 3],
    pub console: Option<OwnedFd>,
    pub preserved: Vec<OwnedFd>,
    /// How to join the container's cgroup (empty: boot's cgroup is the
    /// container's).
    pub cgroup_join: JoinFds,
    /// Born into its cgroup2 directory already (`boot::fork_child`).
    pub born_in_v2: bool,
    /// The container's init, whose namespaces are entered through it in
    /// one setns(2): it fails if the init is gone.
    pub init_fd: OwnedFd,
    /// Which of its namespaces to enter (CLONE_NEW* flags).
    pub enter: u64,
    /// A container without a mount namespace: its rootfs, to chroot into.
    pub chroot: Option<OwnedFd>,
    pub seccomp: Option<Prepared>,
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    pub apparmor: bool,
}

/// The child side of `husk exec` after fork: enter the container, exec.
pub fn exec_child_main(args: ExecArgs<'_>) -> ! {
    crate::sys::process::reset_signals();
    super::restore_nofile();
    let mut args = args;
    let sync = match relocate_sync(&mut args.sync) {
        Ok(s) => s,
        Err(_) => crate::sys::process::exit_now(127),
    };
    report_and_exit(&sync, exec_run(args), 127)
}

fn exec_run(args: ExecArgs<'_>) -> Result<Never> {
    crate::sys::process::set_parent_death_signal(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| sys("set parent death signal", e))?;
    join_cgroup(&args.cgroup_join, args.born_in_v2)?;
    if args.enter != 0 {
        nix::sched::setns(
            args.init_fd.as_fd(),
            CloneFlags::from_bits_retain(args.enter as i32),
        )
        .map_err(|e| sys("enter the container's namespaces", e))?;
    }
    drop(args.init_fd);
    if let Some(dir) = &args.chroot {
        enter_chroot(dir)?;
    }
    // A procfs of the container's pid namespace, only when a step needs
    // one (the container's own /proc is the container's to arrange).
    let needs_proc = args.process.oom_score_adj().is_some()
        || (args.apparmor
            && args
                .process
                .apparmor_profile()
                .as_deref()
                .is_some_and(|p| !p.is_empty()));
    let proc = if needs_proc {
        Some(own_procfs()?)
    } else {
        None
    };
    if let Some(proc) = &proc {
        process::set_oom_score_adj(args.process, proc.as_fd())?;
    }
    let terminal = if args.process.terminal() == Some(true) {
        Some(open_console(args.process, args.console.as_ref())?)
    } else {
        None
    };
    drop(args.console);
    let tail = prepare_process(ProcessSetup {
        process: args.process,
        stdio: Some(args.stdio),
        terminal,
        preserved: args.preserved,
        sync: &args.sync,
        seccomp: args.seccomp,
        personality: args.personality.as_ref(),
        apparmor: proc.as_ref().filter(|_| args.apparmor).map(|p| p.as_fd()),
    })?;
    let tail = tail.seccomp_if_nnp(&args.sync)?;
    let _ = args.cfg;
    tail.exec(args.process, &args.sync)
}
