//! Process creation and process identity: clone3 into new namespaces, pidfds,
//! and the start time that tells a live process from a reused pid.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;

// libc 0.2.191 declares CLONE_INTO_CGROUP as a c_int, which truncates the
// kernel's 64-bit value to 0; this is <linux/sched.h>'s value.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

static PROC_DIR: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();

/// Tell this module where this process's own procfs is, when `/proc` in
/// its mount namespace shows another pid namespace (boot's `/proc` shows
/// its root container's processes). Set once; later calls are ignored.
pub fn set_proc_dir(dir: OwnedFd) {
    let _ = PROC_DIR.set(dir);
}

/// Open `self/<rel>` in this process's own procfs (see [`set_proc_dir`]).
pub(crate) fn open_own_proc(rel: &str, flags: i32) -> io::Result<OwnedFd> {
    let path = format!("self/{rel}");
    match PROC_DIR.get() {
        Some(dir) => crate::fd::openat(dir.as_fd(), std::path::Path::new(&path), flags, 0),
        None => crate::fd::open(std::path::Path::new(&format!("/proc/{path}")), flags, 0),
    }
}

/// Number of threads of the calling process.
pub fn thread_count() -> io::Result<usize> {
    let fd = open_own_proc("status", libc::O_RDONLY)?;
    let text = std::io::read_to_string(std::fs::File::from(fd))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no thread count in /proc/self/status"))
}

/// Forking runs Rust code in the child on a copy of the parent's memory,
/// which is only sound when no other thread could have been holding a lock
/// (the allocator's, a Mutex) at the moment of the fork. husk's CLI, boot,
/// gofer and waiters never start threads; this checks it at run time, so
/// the fork functions below can be safe to call.
fn ensure_single_threaded() -> io::Result<()> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(io::Error::other(format!(
            "refusing to fork: the process has {n} threads"
        ))),
    }
}

/// What `fork_into` returns in each process.
pub enum Forked {
    Parent { pid: Pid, pidfd: OwnedFd },
    Child,
}

/// Fork with `clone3(2)`, creating the namespaces in `ns_flags` for the child,
/// optionally placing it straight into the cgroup v2 directory `cgroup`.
/// Fails if the process has more than one thread.
pub fn fork_into(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    ensure_single_threaded()?;
    let mut pidfd: RawFd = -1;
    // SAFETY: clone_args is plain integers; all-zero is a valid value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = ns_flags | libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut RawFd as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size we pass; with a zero
    // stack the child runs on a copy of our stack like fork(2), which is sound
    // because the process has a single thread (checked above).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: CLONE_PIDFD stored a fresh descriptor that we now own.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// [`fork_into`] the cgroup2 directory `cgroup` where the kernel lets this
/// process place a child there, and outside it where it refuses (EPERM,
/// EACCES, ENOENT, EBUSY, EOPNOTSUPP: a caller in a user namespace, or in a
/// cgroup namespace that an `nsdelegate` mount makes a boundary); the
/// second value says whether the child was born there. A child born
/// outside can still join through a descriptor of `cgroup.procs` that a
/// more privileged process opened (`husk_cgroups::JoinFds`).
pub fn fork_preferably_into(
    ns_flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<(Forked, bool)> {
    if let Some(cg) = cgroup {
        match fork_into(ns_flags, Some(cg)) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(
                        libc::EPERM | libc::EACCES | libc::ENOENT | libc::EBUSY | libc::EOPNOTSUPP
                    )
                ) => {}
            r => return r.map(|f| (f, true)),
        }
    }
    fork_into(ns_flags, None).map(|f| (f, false))
}

/// A user namespace with the given uid_map/gid_map lines, as a descriptor
/// (for ID-mapped mounts): a child is forked into a new user namespace, its
/// maps written, its namespace opened, and the child killed.
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // The child only makes itself dumpable (its parent may be non-dumpable,
    // and opening the namespace of a non-dumpable process would take
    // CAP_SYS_PTRACE), says so, and waits to be killed.
    match fork_into(libc::CLONE_NEWUSER as u64, None)? {
        Forked::Child => {
            // Never outlive the process that made it.
            let _ = set_parent_death_signal(nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::prctl::set_dumpable(true);
            let _ = nix::unistd::write(&ready_w, b"r");
            loop {
                // SAFETY: pause has no memory effects.
                unsafe { libc::pause() };
            }
        }
        Forked::Parent { pid, pidfd } => {
            drop(ready_w);
            let done = (|| -> io::Result<OwnedFd> {
                let mut b = [0u8; 1];
                if nix::unistd::read(ready_r.as_raw_fd(), &mut b)? != 1 {
                    return Err(io::Error::other("user namespace helper died"));
                }
                let p = pid.as_raw();
                std::fs::write(format!("/proc/{p}/uid_map"), uid_map)?;
                std::fs::write(format!("/proc/{p}/gid_map"), gid_map)?;
                let ns = std::fs::File::open(format!("/proc/{p}/ns/user"))?;
                Ok(OwnedFd::from(ns))
            })();
            let _ = pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            done
        }
    }
}

/// pidfd_open(2).
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// The pid of the process behind `pidfd`, as this process's pid namespace
/// numbers it (from /proc/self/fdinfo): how a pid made in a sandbox's pid
/// namespace is translated to the host's. `None` if the process has been
/// reaped, or is not visible in our pid namespace.
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| io::Error::other("descriptor is not a pidfd"))?;
    Ok((pid > 0).then_some(pid))
}

/// pidfd_send_signal(2): signal exactly the process the pidfd refers to.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments; a null siginfo means "as kill(2)".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Wait until the process behind `pidfd` has exited, up to `timeout_ms`
/// (negative: forever). Returns whether it exited.
pub fn pidfd_wait_exit(pidfd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(r > 0);
    }
}

/// Fields of /proc/<pid>/stat that identify a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    pub start_time: u64,
}

/// Parse /proc/<pid>/stat. `comm` may hold spaces and parentheses, so fields
/// are counted from the last ')'.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut it = rest.split_ascii_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    // Fields 5..=21 lie between ppid (4) and starttime (22).
    let start_time = it.nth(17)?.parse().ok()?;
    Some(ProcStat {
        state,
        ppid,
        start_time,
    })
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The start time (clock ticks since boot) of a live, non-zombie process.
pub fn start_time(pid: i32) -> Option<u64> {
    proc_stat(pid)
        .filter(|s| s.state != 'Z' && s.state != 'X')
        .map(|s| s.start_time)
}

/// Whether `pid` is alive and still the process that started at `start`.
pub fn is_same_process(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

/// Make the calling process the reaper of its orphaned descendants.
pub fn set_child_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Ask the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: nix::sys::signal::Signal) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(sig).map_err(io::Error::from)
}

/// Clear close-on-exec so `fd` survives execve.
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD)?);
    fcntl(fd, FcntlArg::F_SETFD(flags - FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Fork a child that runs `child` and exits with the code it returns;
/// returns the child's pid. Fails if the process has more than one thread.
pub fn fork_run(child: impl FnOnce() -> i32) -> io::Result<Pid> {
    match fork_into(0, None)? {
        Forked::Child => exit_now(child()),
        Forked::Parent { pid, .. } => Ok(pid),
    }
}

/// Mark every descriptor from `first` up close-on-exec, so nothing the runtime
/// holds leaks into the container's program.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor
    // flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Close every descriptor from 3 up except those in `keep`: a husk process
/// started by a client must not hold the client's inherited pipes open.
pub fn close_fds_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&f| f >= 3)
        .map(|&f| f as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first: u32 = 3;
    for k in keep {
        if k > first {
            // SAFETY: close_range only closes descriptors; none of the ones
            // in this range are owned by live Rust objects at this point.
            unsafe { libc::syscall(libc::SYS_close_range, first, k - 1, 0) };
        }
        first = k + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
}

/// Reset signal dispositions and the mask a forked child inherited, so the
/// container's program starts with defaults.
pub fn reset_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL has no handler code to be unsound.
        let _ = unsafe { sigaction(sig, &dfl) };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}

/// Point stdin, stdout and stderr at /dev/null (a process that must not
/// hold its caller's stdio).
pub fn stdio_to_null() {
    let opened;
    let null = match NULL_DEVICE.get() {
        Some(fd) => fd.as_fd(),
        None => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            Ok(f) => {
                opened = f;
                opened.as_fd()
            }
            Err(_) => return,
        },
    };
    for fd in 0..3 {
        let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
    }
}

static NULL_DEVICE: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();

/// Keep /dev/null open for [`stdio_to_null`], for a process about to leave
/// every host path behind (boot).
pub fn keep_null_device() -> io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let _ = NULL_DEVICE.set(OwnedFd::from(f));
    Ok(())
}

/// Exit immediately without running destructors or flushing stdio buffers that
/// belong to the parent's copy of memory (for forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let line = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn own_start_time_is_stable() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        assert!(is_same_process(me, t));
        assert!(!is_same_process(me, t + 1));
        assert!(!is_same_process(0, t));
    }
}
