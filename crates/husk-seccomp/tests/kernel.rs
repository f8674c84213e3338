//! Tests that load filters into the kernel: each forks a child, which sets
//! no_new_privs, installs a plan made with the crate's public API, makes
//! the calls under test and reports through its exit code with `_exit`.
//! The test harness is multi-threaded, so filters are compiled before the
//! fork. (The unit tests, which need neither, are in `src/tests.rs`.)

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use husk_seccomp::{
    default_profile, prepare, send_to_listener, BaselineContext, Prepared, SeccompError,
    PERSONALITY_ALLOWED,
};
use husk_sys::process::exit_now;
use libseccomp::ScmpSyscall;
use nix::errno::Errno;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

fn spec(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("valid linux.seccomp")
}

const OFF: BaselineContext = BaselineContext {
    enabled: false,
    has_cap_sys_admin: false,
    has_user_namespace: false,
    always_inherited: false,
};
const ON: BaselineContext = BaselineContext {
    enabled: true,
    has_cap_sys_admin: false,
    has_user_namespace: false,
    always_inherited: false,
};
const ON_USERNS: BaselineContext = BaselineContext {
    enabled: true,
    has_cap_sys_admin: false,
    has_user_namespace: true,
    always_inherited: false,
};
const ON_ADMIN: BaselineContext = BaselineContext {
    enabled: true,
    has_cap_sys_admin: true,
    has_user_namespace: false,
    always_inherited: false,
};

/// A container process with these capabilities (all five sets), as the
/// spec would give it.
fn process_with(caps: &[&str]) -> oci_spec::runtime::Process {
    serde_json::from_value(json!({
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": caps, "ambient": caps
        }
    }))
    .unwrap()
}

/// `husk spec`'s (and runc's) default capabilities.
const SPEC_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// The errno of a raw system call, or 0 if it succeeded.
fn sys_errno(rc: libc::c_long) -> i32 {
    if rc < 0 {
        errno()
    } else {
        0
    }
}

/// Exit codes a child uses besides the test's own.
const INSTALL_FAILED: i32 = 100;

/// Fork; in the child set no_new_privs, install `prepared` (if any), run
/// `body` with the notify fd and `_exit` with its result. Returns the
/// child's exit code, or 200 + signal if it was killed.
///
/// husk-sys's `fork_run` would be the safe way to fork, but it refuses a
/// process with more than one thread, and the test harness has several:
/// this forks with nix, and the child keeps to what is sound after a fork.
fn in_child(prepared: Option<Prepared>, body: impl FnOnce(Option<OwnedFd>) -> i32) -> i32 {
    // SAFETY: the child only makes system calls (and, in the notify test,
    // allocates: glibc's fork leaves malloc usable in the child) and ends
    // with _exit (exit_now).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let _ = nix::sys::prctl::set_no_new_privs();
            let fd = match prepared.map(Prepared::install) {
                None => None,
                Some(Ok(fd)) => fd,
                Some(Err(_)) => exit_now(INSTALL_FAILED),
            };
            exit_now(body(fd))
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            WaitStatus::Signaled(_, sig, _) => 200 + sig as i32,
            other => panic!("child: {other:?}"),
        },
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ------------------------------------------------- filters in a child process

#[test]
fn profile_denies_mkdir_with_errno() {
    let p = prepare(
        Some(&spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        }))),
        &OFF,
    )
    .unwrap();
    let code = in_child(Some(p), |_| {
        let path = c"/tmp/husk-seccomp-test-should-not-exist";
        match nix::unistd::mkdir(path, Mode::S_IRWXU) {
            Ok(()) => return 1,
            Err(e) if e != Errno::EPERM => return 2,
            Err(_) => {}
        }
        // None: relative to the working directory (AT_FDCWD).
        if nix::sys::stat::mkdirat(None, path, Mode::S_IRWXU) != Err(Errno::EPERM) {
            return 3;
        }
        // SAFETY: a raw system call without arguments.
        if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
            return 4;
        }
        0
    });
    assert_eq!(code, 0);
}

/// Syscalls a child needs after install to finish: the test body's own
/// calls are added per test.
const CHILD_MINIMUM: &[&str] = &["exit_group", "exit", "rt_sigreturn"];

#[test]
fn default_errno_with_allowlist() {
    let mut allowed: Vec<&str> = CHILD_MINIMUM.to_vec();
    allowed.push("getpid");
    let p = prepare(
        Some(&spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": libc::ENOSYS,
            "syscalls": [
                {"names": allowed, "action": "SCMP_ACT_ALLOW"},
                {"names": ["getuid"], "action": "SCMP_ACT_ERRNO"}
            ]
        }))),
        &OFF,
    )
    .unwrap();
    // SAFETY: raw system calls with integer arguments or pointers to live locals.
    let code = in_child(Some(p), |_| unsafe {
        if libc::syscall(libc::SYS_getpid) <= 0 {
            return 1;
        }
        // Not listed: the default errno.
        if sys_errno(libc::syscall(libc::SYS_getppid)) != libc::ENOSYS {
            return 2;
        }
        // Listed with ERRNO and no errnoRet: EPERM.
        if sys_errno(libc::syscall(libc::SYS_getuid)) != libc::EPERM {
            return 3;
        }
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn argument_conditions() {
    let p = prepare(
        Some(&spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": CHILD_MINIMUM, "action": "SCMP_ACT_ALLOW"},
                // Query only.
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0xffffffffu64, "op": "SCMP_CMP_EQ"}]},
                // Same index twice: ORed (one rule each), as runc does.
                {"names": ["getpriority"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": libc::PRIO_PROCESS, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": libc::PRIO_USER, "op": "SCMP_CMP_EQ"}]},
                // Different indexes: ANDed.
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
                // Masked: dup(fd) with fd & 0xff00 == 0x100 is EXDEV, others go.
                {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
                 "args": [{"index": 0, "value": 0xff00, "valueTwo": 0x100,
                           "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["dup"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0x100, "op": "SCMP_CMP_LT"}]},
                {"names": ["dup"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0x1ff, "op": "SCMP_CMP_GT"}]}
            ]
        }))),
        &OFF,
    )
    .unwrap();
    // SAFETY: raw system calls with integer arguments or pointers to live locals.
    let code = in_child(Some(p), |_| unsafe {
        if sys_errno(libc::syscall(libc::SYS_personality, 0xffffffffu64)) != 0 {
            return 1;
        }
        if sys_errno(libc::syscall(libc::SYS_personality, 0x0008u64)) != libc::EPERM {
            return 2;
        }
        if sys_errno(libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0)) != 0 {
            return 3;
        }
        if sys_errno(libc::syscall(libc::SYS_getpriority, libc::PRIO_USER, 0)) != 0 {
            return 4;
        }
        if sys_errno(libc::syscall(libc::SYS_getpriority, libc::PRIO_PGRP, 0)) != libc::EPERM {
            return 5;
        }
        if sys_errno(libc::syscall(libc::SYS_kill, 0, 0)) != 0 {
            return 6;
        }
        if sys_errno(libc::syscall(libc::SYS_kill, 0, libc::SIGURG)) != libc::EPERM {
            return 7;
        }
        if sys_errno(libc::syscall(libc::SYS_dup, 0x105)) != libc::EXDEV {
            return 8;
        }
        // Not open: the kernel's EBADF, so the call went through.
        if sys_errno(libc::syscall(libc::SYS_dup, 0x205)) != libc::EBADF {
            return 9;
        }
        0
    });
    assert_eq!(code, 0);
}

/// Baseline checks run in one child; returns a bit per failed check.
fn baseline_probe(expect_userns_denied: bool) -> i32 {
    let mut failed = 0;
    // SAFETY: raw system calls with integer arguments or pointers to live locals.
    unsafe {
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
        if sys_errno(libc::syscall(libc::SYS_keyctl, 0, -3, 0)) != libc::EPERM {
            failed |= 1;
        }
        if sys_errno(libc::syscall(libc::SYS_bpf, 0, 0, 0)) != libc::EPERM {
            failed |= 2;
        }
        let unshare = sys_errno(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER));
        if expect_userns_denied != (unshare == libc::EPERM) {
            failed |= 4;
        }
        let clone3 = sys_errno(libc::syscall(libc::SYS_clone3, 0, 0));
        if expect_userns_denied != (clone3 == libc::ENOSYS) {
            failed |= 8;
        }
        // Other unshare flags and ordinary forks still work.
        if sys_errno(libc::syscall(libc::SYS_unshare, libc::CLONE_FILES)) != 0 {
            failed |= 16;
        }
    }
    // SAFETY: this runs in a forked child of the test, which has one
    // thread; the grandchild only exits.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => exit_now(7),
        Ok(ForkResult::Parent { child }) => {
            if waitpid(child, None) != Ok(WaitStatus::Exited(child, 7)) {
                failed |= 32;
            }
        }
        Err(_) => failed |= 32,
    }
    if expect_userns_denied {
        // SAFETY: clone with flags only and no stack: like fork, the child
        // runs on a copy of this one-thread process and only exits.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWUSER | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            )
        };
        let err = sys_errno(rc);
        if rc == 0 {
            exit_now(0);
        }
        if rc > 0 {
            let _ = waitpid(Pid::from_raw(rc as i32), None);
        }
        if err != libc::EPERM {
            failed |= 64;
        }
    }
    failed
}

#[test]
fn baseline_denies_for_unprivileged_containers() {
    let p = prepare(None, &ON).unwrap();
    assert_eq!(in_child(Some(p), |_| baseline_probe(true)), 0);
}

#[test]
fn baseline_lets_user_namespace_containers_make_namespaces() {
    // Without any filter, does this host let us make a user namespace?
    // SAFETY: raw system calls with integer arguments or pointers to live locals.
    let host = in_child(None, |_| unsafe {
        sys_errno(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER))
    });
    if host == libc::EPERM {
        eprintln!("skip: this host forbids user namespaces");
        return;
    }
    for ctx in [ON_USERNS, ON_ADMIN] {
        let p = prepare(None, &ctx).unwrap();
        assert_eq!(in_child(Some(p), |_| baseline_probe(false)), 0, "{ctx:?}");
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn baseline_gates_the_mount_api() {
    // Root: fsopen needs root to tell the filter's EPERM from the kernel's.
    assert!(
        is_root(),
        "this test needs root (rebuild as this user to skip it)"
    );
    let fsopen = || {
        // SAFETY: fsopen reads the NUL-terminated name, a static string.
        let rc = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), 0) };
        let err = sys_errno(rc);
        if rc >= 0 {
            let _ = nix::unistd::close(rc as i32);
        }
        err
    };
    let p = prepare(None, &ON).unwrap();
    assert_eq!(in_child(Some(p), |_| fsopen()), libc::EPERM);
    let p = prepare(None, &ON_ADMIN).unwrap();
    assert_eq!(in_child(Some(p), |_| fsopen()), 0);
}

#[test]
fn spec_errno_wins_over_baseline_errno() {
    // Both filters deny keyctl; the spec's (loaded last) errno is seen.
    let p = prepare(
        Some(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": libc::ENOSYS}]}))),
        &ON,
    )
    .unwrap();
    assert_eq!(p.instruction_counts().len(), 2);
    // SAFETY: raw system calls with integer arguments or pointers to live locals.
    let code = in_child(Some(p), |_| unsafe {
        sys_errno(libc::syscall(libc::SYS_keyctl, 0, -3, 0))
    });
    assert_eq!(code, libc::ENOSYS);
    // The spec allowing bpf does not lift the baseline.
    let p = prepare(
        Some(&spec(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["bpf", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}))),
        &ON,
    )
    .unwrap();
    // SAFETY: raw system calls with integer arguments or pointers to live locals.
    let code = in_child(Some(p), |_| unsafe {
        sys_errno(libc::syscall(libc::SYS_bpf, 0, 0, 0))
    });
    assert_eq!(code, libc::EPERM);
}

#[test]
fn probes_fail_without_filters() {
    // The checks above would pass vacuously if the calls failed anyway.
    assert_ne!(in_child(None, |_| baseline_probe(true)), 0);
}

#[test]
fn install_without_nnp_or_cap_sys_admin_fails_cleanly() {
    let p = prepare(None, &ON).unwrap();
    // SAFETY: the child only makes system calls and ends with _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // No no_new_privs, and no CAP_SYS_ADMIN in the effective set.
            let _ = caps::drop(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_ADMIN,
            );
            let code = match p.install() {
                Err(SeccompError::Load {
                    filter: "baseline",
                    message,
                }) if message.starts_with("EACCES: no_new_privs is not set") => 0,
                Err(_) => 1,
                Ok(_) => 2,
            };
            exit_now(code)
        }
        ForkResult::Parent { child } => {
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
        }
    }
}

#[test]
fn notify_returns_a_listener_fd_that_an_agent_can_serve() {
    use std::os::unix::net::UnixListener;

    let dir = std::env::temp_dir().join(format!("husk-seccomp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap();

    let p = prepare(
        Some(&spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "hello agent",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        }))),
        &ON,
    )
    .unwrap();
    assert!(p.uses_notify());
    assert_eq!(p.listener_path(), Some(sock.as_path()));
    assert_eq!(p.listener_metadata(), "hello agent");
    let path = p.listener_path().unwrap().to_path_buf();
    let metadata = p.listener_metadata().to_string();

    // The agent: take the state and fd, answer one getppid with 4242.
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let (n, fds) = husk_sys::fdpass::recv_with_fds(conn.as_fd(), &mut buf).unwrap();
        let fd = fds.into_iter().next().expect("SCM_RIGHTS");
        let state: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).unwrap();
        assert_eq!(req.data.syscall, ScmpSyscall::from_name("getppid").unwrap());
        libseccomp::ScmpNotifResp::new_val(req.id, 4242, libseccomp::ScmpNotifRespFlags::empty())
            .respond(fd.as_raw_fd())
            .unwrap();
        state
    });

    let code = in_child(Some(p), |fd| {
        let Some(fd) = fd else { return 1 };
        let state = json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating",
                           "pid": 4, "bundle": "/b"});
        if send_to_listener(&path, &metadata, fd.as_fd(), 4, state).is_err() {
            return 2;
        }
        drop(fd);
        // SAFETY: plain system call.
        match unsafe { libc::syscall(libc::SYS_getppid) } {
            4242 => 0,
            _ => 3,
        }
    });
    assert_eq!(code, 0);
    let state = agent.join().unwrap();
    assert_eq!(state["ociVersion"], "1.2.0");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["pid"], 4);
    assert_eq!(state["metadata"], "hello agent");
    assert_eq!(state["state"]["id"], "c1");
    let _ = std::fs::remove_dir_all(&dir);
}

// --------------------------------------------------------------- benchmark

/// A profile shaped like Docker's default: defaultAction ERRNO, ~300
/// allowed calls, three ABIs, a few argument rules.
fn docker_like() -> LinuxSeccomp {
    spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": DOCKER_LIKE_ALLOW, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffffffffu64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7e020000u64, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}
        ]
    }))
}

#[rustfmt::skip]
const DOCKER_LIKE_ALLOW: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
    "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod",
    "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64",
    "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
    "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat",
    "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid",
    "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername",
    "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack",
    "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd",
    "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat",
    "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
    "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
    "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
    "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
    "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
    "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid",
    "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
    "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64",
    "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
    "waitpid", "write", "writev", "socket", "arch_prctl", "modify_ldt", "chroot",
    "setdomainname", "sethostname", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "pidfd_getfd",
];

#[test]
fn docker_like_profile_compiles_and_runs() {
    assert!(
        DOCKER_LIKE_ALLOW.len() >= 300,
        "{}",
        DOCKER_LIKE_ALLOW.len()
    );
    let p = prepare(Some(&docker_like()), &ON).unwrap();
    // SAFETY: raw system calls with integer arguments or pointers to live locals.
    let code = in_child(Some(p), |_| unsafe {
        if libc::syscall(libc::SYS_getppid) <= 0 {
            return 1;
        }
        // Not on the allowlist: the default EPERM.
        if sys_errno(libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0)) != libc::EPERM {
            return 2;
        }
        if sys_errno(libc::syscall(libc::SYS_clone3, 0, 0)) != libc::ENOSYS {
            return 3;
        }
        0
    });
    assert_eq!(code, 0);
}

/// In a forked child: install `p` (if any), time `n` getppid calls, send
/// the nanoseconds per call (x1000) and the install time through a pipe.
fn time_in_child(p: Option<Prepared>, n: u64) -> (f64, f64) {
    let (r, w) = nix::unistd::pipe().unwrap();
    let code = in_child(None, move |_| {
        let t0 = Instant::now();
        if let Some(p) = p {
            if p.install().is_err() {
                return INSTALL_FAILED;
            }
        }
        let install_ns = t0.elapsed().as_nanos() as u64;
        let t1 = Instant::now();
        for _ in 0..n {
            // SAFETY: a raw system call without arguments.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        let per_call_milli_ns = (t1.elapsed().as_nanos() as u64) * 1000 / n;
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&install_ns.to_ne_bytes());
        out[8..].copy_from_slice(&per_call_milli_ns.to_ne_bytes());
        let ok = nix::unistd::write(&w, &out) == Ok(16);
        if ok {
            0
        } else {
            1
        }
    });
    assert_eq!(code, 0);
    let mut buf = [0u8; 16];
    nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap();
    let install = u64::from_ne_bytes(buf[..8].try_into().unwrap());
    let per_call = u64::from_ne_bytes(buf[8..].try_into().unwrap());
    (install as f64 / 1000.0, per_call as f64 / 1000.0)
}

/// `cargo test --release -p husk-seccomp --test kernel bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench() {
    let n = 1_000_000;
    for _ in 0..3 {
        let t = Instant::now();
        let p = prepare(Some(&docker_like()), &ON).unwrap();
        let prep = t.elapsed().as_secs_f64() * 1e6;
        let counts = p.instruction_counts();
        let (install, _) = time_in_child(Some(p), 1);
        println!(
            "docker-like profile + baseline: prepare {prep:.0} us, install {install:.1} us, BPF {counts:?}"
        );
    }
    for _ in 0..3 {
        let t = Instant::now();
        let p = prepare(None, &ON).unwrap();
        let prep = t.elapsed().as_secs_f64() * 1e6;
        let (install, _) = time_in_child(Some(p), 1);
        println!("baseline alone: prepare {prep:.0} us, install {install:.1} us");
    }
    // Interleave the configurations and keep each one's best of 7 runs:
    // the machine is a VM and single runs are noisy.
    let mut best = [f64::MAX; 4];
    for _ in 0..7 {
        let runs = [
            time_in_child(None, n).1,
            time_in_child(Some(prepare(None, &ON).unwrap()), n).1,
            time_in_child(Some(prepare(Some(&docker_like()), &OFF).unwrap()), n).1,
            time_in_child(Some(prepare(Some(&docker_like()), &ON).unwrap()), n).1,
        ];
        for (b, r) in best.iter_mut().zip(runs) {
            *b = b.min(r);
        }
    }
    println!(
        "getppid ns/call (best of 7 x {n}): none {:.1}, baseline {:.1}, profile {:.1}, profile+baseline {:.1}",
        best[0], best[1], best[2], best[3]
    );
}

// ---------------------------------------------------------- default profile

/// The errno of `syscall(nr, args...)`, or 0; a child made by clone/fork
/// leaves at once.
///
/// # Safety
///
/// The caller passes arguments the call may dereference only if they are
/// valid or null.
unsafe fn raw(nr: libc::c_long, a: [libc::c_long; 3]) -> i32 {
    // SAFETY: the caller vouches for the arguments; a clone or fork child
    // (no new stack) runs on a copy of this one-thread process and only
    // exits.
    let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2], 0, 0, 0) };
    let err = sys_errno(rc);
    if rc == 0 && (nr == libc::SYS_clone || nr == libc::SYS_fork) {
        exit_now(0);
    }
    if rc > 0 && (nr == libc::SYS_clone || nr == libc::SYS_fork) {
        let _ = waitpid(Pid::from_raw(rc as i32), Some(WaitPidFlag::__WALL));
    }
    err
}

/// Run `checks` (syscall, args, expected errno; 0 = succeeds) in a child
/// under `p`. Ok, or the first check that failed with the errno it got.
fn check_calls(
    p: Prepared,
    checks: Vec<(libc::c_long, [libc::c_long; 3], i32)>,
) -> Result<(), String> {
    let (r, w) = nix::unistd::pipe().unwrap();
    let list = checks.clone();
    let code = in_child(Some(p), move |_| {
        for (i, (nr, args, want)) in list.iter().enumerate() {
            // SAFETY: the tables below pass integers and null pointers only.
            let got = unsafe { raw(*nr, *args) };
            if got != *want {
                let mut report = [0u8; 8];
                report[..4].copy_from_slice(&(i as i32).to_ne_bytes());
                report[4..].copy_from_slice(&got.to_ne_bytes());
                let _ = nix::unistd::write(&w, &report);
                return 1;
            }
        }
        0
    });
    match code {
        0 => Ok(()),
        1 => {
            let mut buf = [0u8; 8];
            nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap();
            let i = i32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize;
            let got = i32::from_ne_bytes(buf[4..].try_into().unwrap());
            let (nr, args, want) = checks[i];
            Err(format!(
                "syscall({nr}, {args:?}): errno {got}, wanted {want} (check {i})"
            ))
        }
        other => Err(format!("child ended with {other}")),
    }
}

const PTRACE_PEEKDATA: libc::c_long = 2;

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn default_profile_for_an_unprivileged_container() {
    // Root: the kernel's own answers differ without root.
    assert!(
        is_root(),
        "this test needs root (rebuild as this user to skip it)"
    );
    // The default profile comes with the baseline (both are husk's
    // additions): personality is the baseline's to check.
    let profile = default_profile(Some(&process_with(SPEC_CAPS)));
    let p = prepare(Some(&profile), &CONTAINER).unwrap();
    let newns = (libc::CLONE_NEWNET | libc::SIGCHLD) as libc::c_long;
    let code = check_calls(
        p,
        vec![
            (libc::SYS_getppid, [0, 0, 0], 0),
            (libc::SYS_getrandom, [0, 0, 0], 0),
            (libc::SYS_fork, [0, 0, 0], 0),
            (libc::SYS_clone, [libc::SIGCHLD as libc::c_long, 0, 0], 0),
            // Capability-gated: EPERM without the capability.
            (libc::SYS_mount, [0, 0, 0], libc::EPERM),
            (
                libc::SYS_unshare,
                [libc::CLONE_NEWNS as libc::c_long, 0, 0],
                libc::EPERM,
            ),
            (libc::SYS_clone, [newns, 0, 0], libc::EPERM),
            (libc::SYS_ptrace, [PTRACE_PEEKDATA, 1, 0], libc::EPERM),
            (libc::SYS_process_vm_readv, [1, 0, 0], libc::EPERM),
            (libc::SYS_kcmp, [1, 1, 0], libc::EPERM),
            (libc::SYS_chroot, [0, 0, 0], libc::EPERM),
            (libc::SYS_adjtimex, [0, 0, 0], libc::EPERM),
            (libc::SYS_get_mempolicy, [0, 0, 0], libc::EPERM),
            (libc::SYS_name_to_handle_at, [0, 0, 0], libc::EPERM),
            (libc::SYS_clone3, [0, 0, 0], libc::ENOSYS),
            // Denied to everyone.
            (libc::SYS_keyctl, [0, -3, 0], libc::EPERM),
            (libc::SYS_io_uring_setup, [0, 0, 0], libc::ENOSYS),
            (libc::SYS_msgget, [0, 0, 0], libc::ENOSYS),
            (libc::SYS_mq_open, [0, 0, 0], libc::ENOSYS),
            (libc::SYS_memfd_secret, [0, 0, 0], libc::ENOSYS),
            // personality: the query and PER_LINUX, not READ_IMPLIES_EXEC.
            (libc::SYS_personality, [0xffff_ffff, 0, 0], 0),
            (libc::SYS_personality, [0, 0, 0], 0),
            (libc::SYS_personality, [0x0040_0000, 0, 0], libc::EPERM),
            // Numbers the profile does not name, and beyond the table.
            (400, [0, 0, 0], libc::ENOSYS),
            (462, [0, 0, 0], libc::ENOSYS), // mseal
            (1000, [0, 0, 0], libc::ENOSYS),
        ],
    );
    code.unwrap();
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn default_profile_follows_capabilities() {
    // Root: the kernel's own answers differ without root.
    assert!(
        is_root(),
        "this test needs root (rebuild as this user to skip it)"
    );
    let caps = [
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_SYS_CHROOT",
        "CAP_SYS_TIME",
    ];
    let profile = default_profile(Some(&process_with(&caps)));
    // As for a container in husk: boot's rules inherited, not repeated.
    let ctx = BaselineContext {
        has_cap_sys_admin: true,
        always_inherited: true,
        ..ON
    };
    let p = prepare(Some(&profile), &ctx).unwrap();
    let newns = (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_long;
    let code = check_calls(
        p,
        vec![
            // Through to the kernel, which answers for itself.
            (libc::SYS_mount, [0, 0, 0], libc::EFAULT),
            (libc::SYS_unshare, [0, 0, 0], 0),
            (libc::SYS_clone, [newns, 0, 0], 0),
            (libc::SYS_ptrace, [PTRACE_PEEKDATA, 1, 0], libc::ESRCH),
            (libc::SYS_clone3, [0, 0, 0], libc::EINVAL),
            (libc::SYS_adjtimex, [0, 0, 0], libc::EFAULT),
            // Gated on a capability this container lacks.
            (libc::SYS_get_mempolicy, [0, 0, 0], libc::EPERM),
            // Denied whatever the capabilities.
            (libc::SYS_io_uring_setup, [0, 0, 0], libc::ENOSYS),
            (libc::SYS_personality, [0x0040_0000, 0, 0], libc::EPERM),
        ],
    );
    code.unwrap();
}

// --------------------------------------------------------- unknown numbers

#[test]
fn unknown_numbers_get_enosys_not_the_default_errno() {
    let mut allowed: Vec<&str> = CHILD_MINIMUM.to_vec();
    allowed.extend(["getpid", "faccessat2", "write"]);
    // Deny by default, highest named number faccessat2 (439).
    let p = prepare(
        Some(&spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": libc::EPERM,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
        }))),
        &OFF,
    )
    .unwrap();
    let code = check_calls(
        p,
        vec![
            (libc::SYS_getpid, [0, 0, 0], 0),
            (libc::SYS_mkdir, [0, 0, 0], libc::EPERM), // known, not listed
            (400, [0, 0, 0], libc::EPERM),             // a hole below the highest
            (libc::SYS_faccessat2, [-1, 0, 0], libc::EFAULT),
            (libc::SYS_process_madvise, [-1, 0, 0], libc::ENOSYS), // 440 > 439
            (1000, [0, 0, 0], libc::ENOSYS),
        ],
    );
    code.unwrap();
    // A permissive default: unknown numbers reach the kernel, which runs
    // the ones it has and answers ENOSYS for the others.
    let p = prepare(
        Some(&spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }))),
        &OFF,
    )
    .unwrap();
    let code = check_calls(
        p,
        vec![
            (libc::SYS_mkdir, [0, 0, 0], libc::EPERM),
            (libc::SYS_process_madvise, [-1, 0, 0], libc::EBADF),
            (1000, [0, 0, 0], libc::ENOSYS),
        ],
    );
    code.unwrap();
}

// ------------------------------------------------ baseline: io_uring, personality

/// A container's baseline when boot's filter is not there to inherit: the
/// tests load the whole baseline into one child.
const CONTAINER: BaselineContext = BaselineContext {
    always_inherited: false,
    ..ON
};

#[test]
fn baseline_denies_io_uring_even_when_the_profile_allows_it() {
    let mut allowed: Vec<&str> = CHILD_MINIMUM.to_vec();
    allowed.extend(["io_uring_setup", "getpid", "write"]);
    let profile = spec(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}));
    for ctx in [CONTAINER, ON_ADMIN] {
        let p = prepare(Some(&profile), &ctx).unwrap();
        let code = check_calls(
            p,
            vec![
                (libc::SYS_getpid, [0, 0, 0], 0),
                (libc::SYS_io_uring_setup, [1, 0, 0], libc::ENOSYS),
            ],
        );
        code.unwrap_or_else(|e| panic!("{ctx:?}: {e}"));
    }
    // Without the baseline the profile's allow stands (EFAULT: no params).
    let p = prepare(Some(&profile), &OFF).unwrap();
    let code = check_calls(p, vec![(libc::SYS_io_uring_setup, [1, 0, 0], libc::EFAULT)]);
    code.unwrap();
}

#[test]
fn baseline_limits_personality_in_every_container() {
    let privileged_container = BaselineContext {
        always_inherited: true,
        ..ON_ADMIN
    };
    let mut checks: Vec<(libc::c_long, [libc::c_long; 3], i32)> = PERSONALITY_ALLOWED
        .iter()
        .map(|v| (libc::SYS_personality, [*v as libc::c_long, 0, 0], 0))
        .collect();
    for v in [0x0040_0000, 0x0010_0000, 0x0800_0000, 0x0000_0001, 1 << 40] {
        checks.push((libc::SYS_personality, [v, 0, 0], libc::EPERM));
    }
    // Leave the child's persona as it was.
    checks.push((libc::SYS_personality, [0, 0, 0], 0));
    for ctx in [CONTAINER, privileged_container] {
        let p = prepare(None, &ctx).unwrap();
        let code = check_calls(p, checks.clone());
        code.unwrap_or_else(|e| panic!("{ctx:?}: {e}"));
    }
    // boot's own filter leaves personality alone: it applies the spec's.
    let boot = BaselineContext {
        has_user_namespace: true,
        ..ON_ADMIN
    };
    let p = prepare(None, &boot).unwrap();
    let code = check_calls(
        p,
        vec![
            (libc::SYS_personality, [0x0040_0000, 0, 0], 0),
            (libc::SYS_personality, [0, 0, 0], 0),
        ],
    );
    code.unwrap();
}
