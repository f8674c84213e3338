//! husk's default profile: what a container gets when its spec has no
//! `linux.seccomp` (and husk's additions are on). It follows the semantics
//! of Docker's default profile — an allowlist, with system calls that need
//! a capability allowed only to containers that hold it — and is tighter
//! where no ordinary program needs a call. The lists are written from the
//! kernel's system call tables and man pages; every x86_64 system call
//! libseccomp knows is in exactly one of them (a unit test checks this), so
//! nothing is denied or allowed by omission.
//!
//! What the container gets:
//!
//! - [`ALLOWED`]: allowed to every container.
//! - [`GATED`]: allowed to a container that holds one of the group's
//!   capabilities in any of its capability sets (bounding, effective,
//!   permitted, inheritable, ambient: the ones it may ever have); others
//!   get the group's errno. The kernel would refuse most of them without
//!   the capability anyway: refusing them at the filter keeps the code that
//!   runs before the kernel's capability check out of reach.
//! - [`DENIED`]: refused to every container, each group with its reason
//!   and errno. ENOSYS where the call is a feature programs probe for and
//!   do without (what a kernel without it answers), EPERM otherwise.
//! - `clone` only without namespace flags (EPERM with them; CAP_SYS_ADMIN
//!   lifts the condition); on 32-bit x86, the `ipc` multiplexer only for
//!   its semaphore and shared-memory calls (the message-queue ones get
//!   ENOSYS like `msgget`). `personality` is allowed here and checked by
//!   the baseline, which always comes with this profile (both are husk's
//!   additions, switched on and off together): only the values in
//!   [`PERSONALITY_ALLOWED`](super::bpf::PERSONALITY_ALLOWED) pass.
//! - Anything else — numbers the tables do not name, system calls newer
//!   than this list — fails with ENOSYS (the default action), so that libc
//!   falls back as it does on an older kernel.
//!
//! The profile covers the native architecture and the compat ABIs the
//! kernel runs beside it (x86 and x32 on x86_64), so 32-bit programs work
//! and get the same rules under their own numbers.

use std::collections::HashSet;

use libseccomp::ScmpArch;
use oci_spec::runtime::{Capability, LinuxSeccomp, Process};
use serde_json::json;

/// One group of system calls and why it is where it is.
pub struct Group {
    pub names: &'static [&'static str],
    pub reason: &'static str,
}

const fn g(names: &'static [&'static str], reason: &'static str) -> Group {
    Group { names, reason }
}

/// System calls every container may make.
#[rustfmt::skip]
pub const ALLOWED: &[Group] = &[
    g(&["read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
        "preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
        "lseek", "_llseek", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "fcntl64", "flock",
        "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "sync_file_range2",
        "arm_sync_file_range", "truncate", "truncate64", "ftruncate", "ftruncate64",
        "fallocate", "fadvise64", "fadvise64_64", "arm_fadvise64_64", "readahead", "sendfile",
        "sendfile64", "copy_file_range", "splice", "tee", "ioctl", "memfd_create"],
      "file descriptors and their data"),
    g(&["stat", "stat64", "fstat", "fstat64", "lstat", "lstat64", "newfstatat", "fstatat64",
        "statx", "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat",
        "faccessat2", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "rename",
        "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat", "unlink",
        "unlinkat", "symlink", "symlinkat", "readlink", "readlinkat", "chmod", "fchmod",
        "fchmodat", "chown", "chown32", "fchown", "fchown32", "lchown", "lchown32", "fchownat",
        "umask", "mknod", "mknodat", "utime", "utimes", "futimesat", "utimensat",
        "utimensat_time64", "setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr",
        "fgetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr",
        "fremovexattr", "inotify_init", "inotify_init1", "inotify_add_watch",
        "inotify_rm_watch"],
      "files and directories (the kernel checks ownership and CAP_CHOWN, CAP_FOWNER, CAP_MKNOD)"),
    g(&["brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
        "mlock", "mlock2", "munlock", "mlockall", "munlockall", "membarrier", "map_shadow_stack"],
      "memory (RLIMIT_MEMLOCK bounds locking)"),
    g(&["execve", "execveat", "fork", "vfork", "exit", "exit_group", "wait4", "waitid",
        "waitpid", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid",
        "setsid", "set_tid_address", "set_robust_list", "futex", "futex_time64", "rseq",
        "restart_syscall", "prctl", "arch_prctl", "set_thread_area", "get_thread_area",
        "uname", "sysinfo", "getrusage", "times", "getrlimit", "ugetrlimit", "setrlimit",
        "prlimit64", "getpriority", "setpriority", "sched_yield", "sched_getaffinity",
        "sched_setaffinity", "sched_getparam", "sched_setparam", "sched_getscheduler",
        "sched_setscheduler", "sched_getattr", "sched_setattr", "sched_get_priority_max",
        "sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64",
        "getcpu", "getrandom", "ioprio_get", "ioprio_set", "capget", "capset", "seccomp",
        "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
        "pidfd_open", "pidfd_send_signal"],
      "processes, threads, limits and scheduling (raising a limit or a priority needs a capability the kernel checks)"),
    g(&["breakpoint", "cacheflush", "set_tls", "s390_pci_mmio_read", "s390_pci_mmio_write",
        "s390_runtime_instr", "riscv_flush_icache"],
      "architecture-specific calls libc and language runtimes make on arm, s390x and riscv64"),
    g(&["getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
        "getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups",
        "getgroups32", "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
        "setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
        "setgroups", "setgroups32"],
      "user and group ids (changing them needs CAP_SETUID/CAP_SETGID, which the kernel checks; husk's init sets them after loading the filter when noNewPrivileges is off)"),
    g(&["rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
        "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend",
        "sigaltstack", "sigreturn", "sigprocmask", "signalfd4", "kill", "tkill", "tgkill",
        "pause", "alarm"],
      "signals"),
    g(&["nanosleep", "clock_nanosleep", "clock_nanosleep_time64", "clock_gettime",
        "clock_gettime64", "clock_getres", "clock_getres_time64", "gettimeofday", "time",
        "getitimer", "setitimer", "timer_create", "timer_settime", "timer_settime64",
        "timer_gettime", "timer_gettime64", "timer_getoverrun", "timer_delete",
        "timerfd_create", "timerfd_settime", "timerfd_settime64", "timerfd_gettime",
        "timerfd_gettime64"],
      "clocks, sleeps and timers"),
    g(&["poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
        "epoll_pwait2", "eventfd2"],
      "waiting for descriptors"),
    g(&["socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
        "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown", "sendto",
        "recvfrom", "send", "recv", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
        "recvmmsg_time64", "socketcall"],
      "sockets (raw and packet sockets need CAP_NET_RAW, which the kernel checks)"),
    g(&["shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop",
        "semtimedop_time64", "semctl"],
      "System V shared memory and semaphores (PostgreSQL, Apache), in the container's IPC namespace"),
    g(&["io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64"],
      "kernel AIO (databases such as MySQL use it)"),
];

/// Allowed with conditions on the arguments (see the module docs); listed
/// for the completeness check and the docs.
pub const CONDITIONAL: &[Group] = &[
    g(
        &["clone"],
        "only without namespace flags (CAP_SYS_ADMIN: any flags)",
    ),
    g(
        &["personality"],
        "only PER_LINUX or PER_LINUX32, with UNAME26 or ADDR_NO_RANDOMIZE, or the query 0xffffffff (the baseline's check)",
    ),
    g(
        &["ipc"],
        "32-bit x86 multiplexer: only its semaphore and shared-memory calls",
    ),
];

/// A group allowed only with a capability.
pub struct Gated {
    pub group: Group,
    /// Any one of these lets the calls through.
    pub caps: &'static [Capability],
    /// What the others get.
    pub errno: i32,
}

const fn gated(
    caps: &'static [Capability],
    errno: i32,
    names: &'static [&'static str],
    reason: &'static str,
) -> Gated {
    Gated {
        group: Group { names, reason },
        caps,
        errno,
    }
}

use libc::{ENOSYS, EPERM};
use Capability::{
    Bpf, DacReadSearch, Perfmon, Setgid, Setuid, SysAdmin, SysBoot, SysChroot, SysModule, SysNice,
    SysPacct, SysPtrace, SysRawio, SysTime, SysTtyConfig, Syslog,
};

/// System calls a container may make only with a capability.
#[rustfmt::skip]
pub const GATED: &[Gated] = &[
    gated(&[SysAdmin], EPERM,
        &["mount", "umount", "umount2", "pivot_root", "unshare", "setns", "fsopen", "fsconfig",
          "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr"],
        "mounts and namespaces"),
    gated(&[SysAdmin], ENOSYS, &["clone3"],
        "its flags are in memory a filter cannot read, so namespace flags cannot be refused; ENOSYS makes libc use clone"),
    gated(&[SysAdmin], EPERM, &["quotactl", "quotactl_fd", "swapon", "swapoff"],
        "quotas and swap of host devices"),
    gated(&[SysAdmin], EPERM, &["sethostname", "setdomainname"],
        "host and domain name (the UTS namespace is set up by the runtime)"),
    gated(&[SysAdmin], EPERM, &["name_to_handle_at", "lookup_dcookie"],
        "file handles and dentry cookies identify host files outside the container's mounts"),
    gated(&[SysAdmin], EPERM, &["fanotify_init", "fanotify_mark"],
        "filesystem-wide event monitoring"),
    gated(&[SysAdmin], EPERM, &["process_mrelease"],
        "reaps a dying process's memory: user-space OOM killers only"),
    gated(&[SysAdmin, Bpf], EPERM, &["bpf"], "loads programs into the kernel"),
    gated(&[SysAdmin, Perfmon], EPERM, &["perf_event_open"],
        "performance counters see the host's other processes"),
    gated(&[SysAdmin, Syslog], EPERM, &["syslog"], "the host kernel's log"),
    gated(&[SysBoot], EPERM, &["reboot", "kexec_load", "kexec_file_load"],
        "rebooting, or loading a new kernel"),
    gated(&[SysModule], EPERM, &["init_module", "finit_module", "delete_module"],
        "kernel modules"),
    gated(&[SysPacct], EPERM, &["acct"], "host-wide process accounting"),
    gated(&[SysPtrace], EPERM,
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
          "process_madvise", "get_robust_list"],
        "reading and changing other processes (ptrace has a history of filter bypasses and kernel bugs)"),
    gated(&[SysPtrace], EPERM, &["userfaultfd"],
        "stalls page faults at will, the usual lever for kernel race exploits"),
    gated(&[SysRawio], EPERM, &["iopl", "ioperm"], "raw I/O port access"),
    gated(&[SysTime], EPERM,
        &["settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex",
          "clock_adjtime", "clock_adjtime64"],
        "the host's clock; even reading adjtimex reveals how the host disciplines it"),
    gated(&[SysTtyConfig], EPERM, &["vhangup"], "hangs up the terminal"),
    gated(&[SysNice], EPERM,
        &["get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind",
          "migrate_pages", "move_pages"],
        "NUMA placement, which reaches into other processes and the host's memory layout"),
    gated(&[SysChroot], EPERM, &["chroot"], "changing the root directory"),
    gated(&[DacReadSearch], EPERM, &["open_by_handle_at"],
        "opens host files by handle around the mount namespace (the 'shocker' escape)"),
    gated(&[Setuid], EPERM, &["setfsuid", "setfsuid32"],
        "file-system uid: only file servers that hold CAP_SETUID use it"),
    gated(&[Setgid], EPERM, &["setfsgid", "setfsgid32"],
        "file-system gid: only file servers that hold CAP_SETGID use it"),
];

/// A group refused to every container.
pub struct Denied {
    pub group: Group,
    pub errno: i32,
}

const fn denied(errno: i32, names: &'static [&'static str], reason: &'static str) -> Denied {
    Denied {
        group: Group { names, reason },
        errno,
    }
}

/// System calls no container gets from the default profile.
#[rustfmt::skip]
pub const DENIED: &[Denied] = &[
    denied(EPERM, &["add_key", "request_key", "keyctl"],
        "the kernel keyring is not namespaced: keys are shared with the host"),
    denied(EPERM, &["vmsplice"],
        "maps user pages into pipes; a classic root exploit path, used by almost nothing"),
    denied(ENOSYS, &["io_uring_setup", "io_uring_enter", "io_uring_register"],
        "io_uring: a long series of privilege escalations; users fall back to plain calls"),
    denied(ENOSYS, &["msgget", "msgsnd", "msgrcv", "msgctl"],
        "System V message queues: the favourite heap-spraying tool of kernel exploits, rarely used by programs"),
    denied(ENOSYS, &["mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64",
                     "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr"],
        "POSIX message queues (mq_notify was a known use-after-free), rarely used by programs"),
    denied(ENOSYS, &["memfd_secret", "futex_waitv", "futex_wake", "futex_wait",
                     "futex_requeue", "cachestat", "fchmodat2", "pkey_alloc", "pkey_free",
                     "pkey_mprotect"],
        "newer features programs check for and do without (libc falls back from fchmodat2 to fchmodat; cachestat reads page-cache state)"),
    denied(ENOSYS, &["remap_file_pages", "modify_ldt", "signalfd", "eventfd"],
        "superseded: remap_file_pages is emulated since Linux 3.16, modify_ldt serves 16-bit code, signalfd and eventfd gave way to signalfd4 and eventfd2 (which libc uses)"),
    denied(ENOSYS, &["uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "create_module",
                     "get_kernel_syms", "query_module", "getpmsg", "putpmsg", "afs_syscall",
                     "tuxcall", "security", "vserver", "epoll_ctl_old", "epoll_wait_old",
                     "break", "oldstat", "stty", "gtty", "nice", "ftime", "prof", "signal",
                     "lock", "mpx", "ulimit", "oldolduname", "oldfstat", "sgetmask",
                     "ssetmask", "sigaction", "sigsuspend", "sigpending", "oldlstat",
                     "readdir", "profil", "olduname", "idle", "vm86old", "vm86", "bdflush"],
        "obsolete or never implemented"),
];

/// Namespace flags `clone` may not carry without CAP_SYS_ADMIN:
/// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NAMESPACES: u64 = 0x7e02_0000;

/// The `ipc(2)` calls allowed on 32-bit x86: SEMOP, SEMGET, SEMCTL,
/// SEMTIMEDOP, SHMAT, SHMDT, SHMGET, SHMCTL (the low 16 bits of the first
/// argument; the high ones carry a version).
const IPC_ALLOWED: &[u64] = &[1, 2, 3, 4, 21, 22, 23, 24];

/// The OCI names of the architectures the profile covers.
fn architectures() -> Vec<&'static str> {
    match ScmpArch::native() {
        ScmpArch::X8664 => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        ScmpArch::Aarch64 => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        ScmpArch::S390X => vec!["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        ScmpArch::Ppc64Le => vec!["SCMP_ARCH_PPC64LE"],
        ScmpArch::Riscv64 => vec!["SCMP_ARCH_RISCV64"],
        _ => vec![],
    }
}

/// Every capability in any of the process's sets: the ones it may have.
pub fn capabilities(process: Option<&Process>) -> HashSet<Capability> {
    let Some(c) = process.and_then(|p| p.capabilities().as_ref()) else {
        return HashSet::new();
    };
    [
        c.bounding(),
        c.effective(),
        c.permitted(),
        c.inheritable(),
        c.ambient(),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .copied()
    .collect()
}

/// What the default profile for these capabilities is made from, as text
/// for a cache key: the tables, the architectures, and which of the
/// capabilities the tables gate on the process holds. Much cheaper than
/// building the profile, which a cache hit then does not need.
pub(super) fn fingerprint(caps: &HashSet<Capability>) -> String {
    let mut s = format!(
        "{:?} {CLONE_NAMESPACES:#x} {IPC_ALLOWED:?}\n",
        architectures()
    );
    for g in ALLOWED.iter().chain(CONDITIONAL) {
        s.push_str(&g.names.join(","));
        s.push('\n');
    }
    for g in GATED {
        let held = g.caps.iter().any(|c| caps.contains(c));
        s.push_str(&format!("{:?} {} {held} ", g.caps, g.errno));
        s.push_str(&g.group.names.join(","));
        s.push('\n');
    }
    for d in DENIED {
        s.push_str(&format!("{} ", d.errno));
        s.push_str(&d.group.names.join(","));
        s.push('\n');
    }
    s
}

/// husk's default profile for a container whose process is `process`, as
/// the `linux.seccomp` it stands in for.
pub fn default_profile(process: Option<&Process>) -> LinuxSeccomp {
    let caps = capabilities(process);
    let admin = caps.contains(&SysAdmin);
    let mut allow: Vec<&str> = ALLOWED.iter().flat_map(|g| g.names).copied().collect();
    let mut refuse: Vec<(i32, Vec<&str>)> = Vec::new();
    for g in GATED {
        if g.caps.iter().any(|c| caps.contains(c)) {
            allow.extend(g.group.names);
        } else {
            refuse.push((g.errno, g.group.names.to_vec()));
        }
    }
    for d in DENIED {
        refuse.push((d.errno, d.group.names.to_vec()));
    }
    let mut rules = vec![json!({"names": allow, "action": "SCMP_ACT_ALLOW"})];
    if admin {
        rules.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW"}));
    } else {
        // s390 swaps clone's first two arguments.
        let index = match ScmpArch::native() {
            ScmpArch::S390 | ScmpArch::S390X => 1,
            _ => 0,
        };
        rules.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": index, "value": CLONE_NAMESPACES, "valueTwo": 0,
                      "op": "SCMP_CMP_MASKED_EQ"}]}));
        // With any of them: EPERM, one rule per flag (rules are ORed).
        for bit in (0..64)
            .map(|b| 1u64 << b)
            .filter(|b| CLONE_NAMESPACES & b != 0)
        {
            rules.push(json!({"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM,
                "args": [{"index": index, "value": bit, "valueTwo": bit,
                          "op": "SCMP_CMP_MASKED_EQ"}]}));
        }
    }
    rules.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW"}));
    for call in IPC_ALLOWED {
        rules.push(json!({"names": ["ipc"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0xffff, "valueTwo": call,
                      "op": "SCMP_CMP_MASKED_EQ"}]}));
    }
    // Merge the refusals by errno: one rule each.
    let mut by_errno: Vec<(i32, Vec<&str>)> = Vec::new();
    for (errno, names) in refuse {
        match by_errno.iter_mut().find(|(e, _)| *e == errno) {
            Some((_, all)) => all.extend(names),
            None => by_errno.push((errno, names)),
        }
    }
    for (errno, names) in by_errno {
        rules.push(json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno}));
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": ENOSYS,
        "architectures": architectures(),
        "syscalls": rules,
    });
    serde_json::from_value(profile).expect("husk's default profile is a valid linux.seccomp")
}
