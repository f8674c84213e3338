//! What husk's own processes may do: the privileges boot and the gofer keep
//! for themselves (gVisor's posture, in the native platform's terms).
//!
//! - The gofer runs in an empty network namespace, keeps only the
//!   capabilities it needs to open host paths and make mounts, sets
//!   no_new_privs, and runs under a seccomp allowlist of the calls it makes.
//! - boot is not dumpable (its /proc entries, cwd and descriptors are closed
//!   to other users of its uid without CAP_SYS_PTRACE), drops every
//!   capability neither it nor the containers of its sandbox may need (the
//!   bounding, permitted, effective and inheritable sets), and loads the
//!   always-denied part of husk's seccomp baseline. A true allowlist cannot
//!   bind boot: every container process is forked from it and inherits its
//!   filter, so the filter must allow whatever the containers' programs may
//!   do; see docs/security.md.

use std::collections::HashSet;
use std::path::Path;

use caps::{CapSet, Capability as Cap, CapsHashSet};

use crate::error::{Error, Result};
use crate::seccomp::{self, BaselineContext};

/// Capabilities boot uses itself: namespaces, mounts, cgroups, credentials
/// of the processes it forks, signals.
const BOOT_NEEDS: &[Cap] = &[
    Cap::CAP_SYS_ADMIN,
    Cap::CAP_SETUID,
    Cap::CAP_SETGID,
    Cap::CAP_SETPCAP,
    Cap::CAP_SYS_CHROOT,
    Cap::CAP_NET_ADMIN,
    Cap::CAP_KILL,
    Cap::CAP_DAC_OVERRIDE,
    Cap::CAP_DAC_READ_SEARCH,
    Cap::CAP_FOWNER,
    Cap::CAP_CHOWN,
    Cap::CAP_MKNOD,
    Cap::CAP_SYS_PTRACE,
    Cap::CAP_SYS_NICE,
    Cap::CAP_SYS_RESOURCE,
];

/// The capabilities container engines give by default (Docker's list), so
/// that the members of a pod can have them even when its root container
/// (a pause container) has fewer.
const CONTAINER_DEFAULTS: &[Cap] = &[
    Cap::CAP_CHOWN,
    Cap::CAP_DAC_OVERRIDE,
    Cap::CAP_FSETID,
    Cap::CAP_FOWNER,
    Cap::CAP_MKNOD,
    Cap::CAP_NET_RAW,
    Cap::CAP_SETGID,
    Cap::CAP_SETUID,
    Cap::CAP_SETFCAP,
    Cap::CAP_SETPCAP,
    Cap::CAP_NET_BIND_SERVICE,
    Cap::CAP_SYS_CHROOT,
    Cap::CAP_KILL,
    Cap::CAP_AUDIT_WRITE,
];

/// What the gofer keeps: opening any host path, and making mounts (and the
/// user namespaces of ID-mapped mounts).
const GOFER_NEEDS: &[Cap] = &[
    Cap::CAP_SYS_ADMIN,
    Cap::CAP_DAC_OVERRIDE,
    Cap::CAP_DAC_READ_SEARCH,
    Cap::CAP_SETUID,
    Cap::CAP_SETGID,
    // An overlay it makes (a rootfs of ID-mapped layers) writes its upper
    // layer with its maker's capabilities: copy-up sets owners, modes and
    // file capabilities, and copies device nodes. The filter below keeps
    // the gofer itself from chown, chmod, mknod or setxattr.
    Cap::CAP_CHOWN,
    Cap::CAP_FOWNER,
    Cap::CAP_FSETID,
    Cap::CAP_SETFCAP,
    Cap::CAP_MKNOD,
];

/// The system calls the gofer makes once it is set up (reading its
/// request, opening and cloning trees, answering, exiting; forking the
/// helper of ID-mapped mounts; the allocator and the panic path).
const GOFER_SYSCALLS: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "recvmsg",
    "recvfrom",
    "sendmsg",
    "sendto",
    "close",
    "close_range",
    "openat",
    "openat2",
    "open_tree",
    "mount_setattr",
    "fstat",
    "newfstatat",
    "statx",
    "fcntl",
    "lseek",
    "readlink",
    "readlinkat",
    "getdents64",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "brk",
    "madvise",
    "futex",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "restart_syscall",
    "getpid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getrandom",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "clone",
    "clone3",
    "wait4",
    "waitid",
    "kill",
    "tgkill",
    "pidfd_send_signal",
    "pidfd_open",
    "pause",
    "set_robust_list",
    "rseq",
    "prctl",
    "exit",
    "exit_group",
    "fsync",
    "sched_yield",
    "pipe2",
    "fsopen",
    "fsconfig",
    // An overlay of ID-mapped layers is made as the container's root.
    "setfsuid",
    "setfsgid",
    "capget",
    "capset",
    "fsmount",
    "mkdirat",
];

fn sys_err(what: &str, e: impl Into<std::io::Error>) -> Error {
    Error::os(what, e)
}

fn caps_err(what: &str, e: caps::errors::CapsError) -> Error {
    Error::Sandbox(format!("{what}: {e}"))
}

/// Limit every capability set of the calling process to `keep`.
fn keep_only(keep: &CapsHashSet) -> Result<()> {
    let all = caps::runtime::thread_all_supported();
    for cap in all.difference(keep) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| caps_err("drop bounding", e))?;
    }
    let current = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let kept: CapsHashSet = current.intersection(keep).copied().collect();
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(|e| caps_err("clear inheritable", e))?;
    caps::set(None, CapSet::Effective, &kept).map_err(|e| caps_err("set effective", e))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| caps_err("set permitted", e))?;
    Ok(())
}

/// The sets boot keeps for a sandbox whose root container's process asks
/// for `root_caps` (every set of its spec).
pub fn boot_keeps(root_caps: &HashSet<String>) -> CapsHashSet {
    let mut keep: CapsHashSet = BOOT_NEEDS
        .iter()
        .chain(CONTAINER_DEFAULTS)
        .copied()
        .collect();
    for name in root_caps {
        if let Ok(c) = name.parse::<Cap>() {
            keep.insert(c);
        }
    }
    keep
}

/// boot, at start: not dumpable, and its share of the seccomp baseline.
pub fn boot_start(cache_dir: &Path, baseline: bool) -> Result<()> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| sys_err("set boot not dumpable", e))?;
    if baseline {
        // Only the rules that hold for every container, privileged or not:
        // whatever boot loads, every container process inherits.
        let ctx = BaselineContext {
            enabled: true,
            has_cap_sys_admin: true,
            has_user_namespace: true,
            always_inherited: false,
        };
        let plan = seccomp::prepare_cached(cache_dir, None, &ctx)
            .map_err(|e| Error::Sandbox(format!("boot seccomp filter: {e}")))?;
        plan.install()
            .map_err(|e| Error::Sandbox(format!("boot seccomp filter: {e}")))?;
    }
    Ok(())
}

/// boot, once its root container is known: drop what the sandbox will
/// never need.
pub fn boot_restrict(keep: &CapsHashSet) -> Result<()> {
    keep_only(keep)
}

/// Every capability named in any of a process's five sets.
pub fn cap_names(process: &oci_spec::runtime::Process) -> HashSet<String> {
    let Some(c) = process.capabilities().as_ref() else {
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
    .filter_map(|cap| serde_json::to_value(cap).ok()?.as_str().map(str::to_string))
    .collect()
}

/// The capabilities of `process` that the sandbox no longer has, if any.
pub fn missing_caps(process: &oci_spec::runtime::Process) -> Option<String> {
    let have = caps::read(None, CapSet::Bounding).ok()?;
    let mut missing: Vec<String> = cap_names(process)
        .into_iter()
        .filter(|name| name.parse::<Cap>().is_ok_and(|c| !have.contains(&c)))
        .collect();
    missing.sort();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// The gofer, before it reads its request: an empty network namespace, its
/// few capabilities, no_new_privs, not dumpable, its syscall allowlist.
pub fn gofer_start(cache_dir: &Path) -> Result<()> {
    // Its work is for the `husk create` that started it, and ends with it.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| sys_err("gofer: parent death signal", e))?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| sys_err("gofer: empty network namespace", e))?;
    nix::sys::prctl::set_dumpable(false).map_err(|e| sys_err("gofer: not dumpable", e))?;
    keep_only(&GOFER_NEEDS.iter().copied().collect())?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| sys_err("gofer: no_new_privs", e))?;
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "syscalls": [{"names": GOFER_SYSCALLS, "action": "SCMP_ACT_ALLOW"}]
    }))
    .map_err(|e| Error::Invalid(e.to_string()))?;
    let ctx = BaselineContext::default();
    let plan = seccomp::prepare_cached(cache_dir, Some(&profile), &ctx)
        .map_err(|e| Error::Sandbox(format!("gofer seccomp filter: {e}")))?;
    plan.install()
        .map_err(|e| Error::Sandbox(format!("gofer seccomp filter: {e}")))?;
    Ok(())
}
