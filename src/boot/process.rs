//! The last steps before a container's program runs: find the executable,
//! set the process's credentials, capabilities and limits, then execve.
//! Everything here runs in a forked child of boot, already inside the
//! container's namespaces and root.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capability, LinuxCapabilities, PosixRlimitType, Process};

use crate::error::{errno_text, Error, Result};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn sys(what: impl std::fmt::Display, e: impl Into<std::io::Error>) -> Error {
    Error::os(what, e)
}

/// The program to execute, resolved now (inside the container's root and
/// cwd) so that a missing executable fails `create`, not `start`.
pub fn find_executable(process: &Process) -> Result<CString> {
    let args = process.args().as_deref().unwrap_or(&[]);
    let name = args
        .first()
        .ok_or_else(|| Error::Spec("process.args is empty".into()))?;
    let check = |p: &Path| -> std::result::Result<(), nix::errno::Errno> {
        let st = nix::sys::stat::stat(p)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(nix::errno::Errno::EACCES);
        }
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK)
    };
    if name.contains('/') {
        check(Path::new(name)).map_err(|e| Error::os(format!("exec {name:?}"), e))?;
        return CString::new(name.as_bytes())
            .map_err(|_| Error::Spec("process.args[0] contains a NUL byte".into()));
    }
    let path_var = process
        .env()
        .iter()
        .flatten()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = PathBuf::from(dir).join(name);
        if check(&cand).is_ok() {
            return CString::new(cand.as_os_str().as_bytes())
                .map_err(|_| Error::Spec("process.args[0] contains a NUL byte".into()));
        }
    }
    Err(Error::Sandbox(format!(
        "exec {name:?}: executable file not found in $PATH"
    )))
}

fn cstrings(list: &[String], what: &str) -> Result<Vec<CString>> {
    list.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::Spec(format!("{what} contains a NUL byte: {s:?}")))
        })
        .collect()
}

/// Read a file of the container's image that must be an ordinary file: no
/// FIFO to block on, no device to read forever, at most `max` bytes.
fn read_small_regular_file(path: &str, max: u64) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut s = String::new();
    f.take(max).read_to_string(&mut s).ok()?;
    Some(s)
}

/// The environment for execve: the spec's, plus HOME from the container's
/// /etc/passwd when the spec has none (as runc does).
pub fn environment(process: &Process) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = process.user().uid();
        let home = read_small_regular_file("/etc/passwd", 1 << 20)
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid))
                        .then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    use PosixRlimitType::*;
    Some(match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    })
}

fn rlimit_name(t: PosixRlimitType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{t:?}"))
}

pub fn apply_rlimits(process: &Process) -> Result<()> {
    for rl in process.rlimits().iter().flatten() {
        let Some(res) = rlimit_resource(rl.typ()) else {
            continue;
        };
        if let Err(e) = crate::sys::set_rlimit(res, rl.soft(), rl.hard()) {
            return Err(Error::Sandbox(format!(
                "process.rlimits {} (soft {}, hard {}): {}",
                rlimit_name(rl.typ()),
                rl.soft(),
                rl.hard(),
                if e.raw_os_error() == Some(libc::EPERM) {
                    "operation not permitted (the host does not allow raising this limit)"
                        .to_string()
                } else {
                    errno_text(&e)
                }
            )));
        }
    }
    Ok(())
}

/// Capability names from the spec as the `caps` crate's values; an unknown
/// name is an error that names it.
fn cap_set(list: Option<&HashSet<Capability>>, field: &str) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in list.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| c.to_string());
        let cap = Cap::from_str(&name).map_err(|_| {
            Error::Spec(format!(
                "process.capabilities.{field}: unknown capability {name:?}"
            ))
        })?;
        out.insert(cap);
    }
    Ok(out)
}

pub struct CapPlan {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl CapPlan {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Result<Self> {
        let none = LinuxCapabilities::default();
        let c = c.unwrap_or(&none);
        Ok(CapPlan {
            bounding: cap_set(c.bounding().as_ref(), "bounding")?,
            effective: cap_set(c.effective().as_ref(), "effective")?,
            permitted: cap_set(c.permitted().as_ref(), "permitted")?,
            inheritable: cap_set(c.inheritable().as_ref(), "inheritable")?,
            ambient: cap_set(c.ambient().as_ref(), "ambient")?,
        })
    }
}

fn caps_err(what: &str, e: caps::errors::CapsError) -> Error {
    Error::Sandbox(format!("set {what} capabilities: {e}"))
}

/// Switch to the spec's user and capability sets. Called as root (in the
/// container's user namespace, if any) with full capabilities.
pub fn set_identity(process: &Process, caps_plan: &CapPlan) -> Result<()> {
    let user = process.user();
    // The bounding set can only shrink, and only while we hold CAP_SETPCAP.
    // Probed with prctl, not read from /proc: this runs inside the
    // container's root, where /proc may be whatever the image holds.
    let known = caps::runtime::thread_all_supported();
    for cap in known.iter() {
        if !caps_plan.bounding.contains(cap) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(|e| caps_err("bounding", e))?;
        }
    }
    // Keep permitted capabilities across the uid change; they are set
    // exactly right after it.
    nix::sys::prctl::set_keepcaps(true).map_err(|e| sys("keep capabilities", e))?;
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if let Err(e) = nix::unistd::setgroups(&gids) {
        // In a user namespace with setgroups denied, only an empty list could
        // be set, and that is what we have.
        if !(e == nix::errno::Errno::EPERM && gids.is_empty()) {
            return Err(sys(
                "set supplementary groups (process.user.additionalGids)",
                e,
            ));
        }
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| sys(format!("setgid {} (process.user.gid)", user.gid()), e))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| sys(format!("setuid {} (process.user.uid)", user.uid()), e))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| sys("clear keep capabilities", e))?;

    // Each capset(2) writes all three sets and needs effective within
    // permitted: inheritable first (while permitted is still full), then
    // shrink effective, then permitted.
    caps::set(None, CapSet::Inheritable, &caps_plan.inheritable)
        .map_err(|e| caps_err("inheritable", e))?;
    caps::set(None, CapSet::Effective, &caps_plan.effective)
        .map_err(|e| caps_err("effective", e))?;
    caps::set(None, CapSet::Permitted, &caps_plan.permitted)
        .map_err(|e| caps_err("permitted", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| caps_err("ambient", e))?;
    for cap in caps_plan.ambient.iter() {
        // The kernel allows an ambient capability only when it is both
        // permitted and inheritable; the spec may ask for others, which runc
        // also skips.
        if caps_plan.permitted.contains(cap) && caps_plan.inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap).map_err(|e| caps_err("ambient", e))?;
        } else {
            tracing::debug!("ambient capability {cap} skipped: not permitted and inheritable");
        }
    }
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

pub fn set_oom_score_adj(process: &Process, proc: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    if let Some(adj) = process.oom_score_adj() {
        crate::sys::proc_write_at(proc, "self/oom_score_adj", adj.to_string().as_bytes())
            .map_err(|e| sys(format!("process.oomScoreAdj {adj}"), e))?;
    }
    Ok(())
}

pub fn set_no_new_privs(process: &Process) -> Result<()> {
    if process.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().map_err(|e| sys("set no_new_privs", e))?;
    }
    Ok(())
}

/// Everything that execve needs, prepared before the credentials change so
/// that no lookup happens as the container's user.
pub struct ExecPlan {
    pub exe: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: PathBuf,
}

impl ExecPlan {
    pub fn new(process: &Process) -> Result<Self> {
        let cwd = process.cwd().clone();
        nix::unistd::chdir(&cwd)
            .map_err(|e| sys(format!("chdir to cwd {:?} (process.cwd)", cwd), e))?;
        let exe = find_executable(process)?;
        Ok(ExecPlan {
            exe,
            argv: cstrings(process.args().as_deref().unwrap_or(&[]), "process.args")?,
            envp: cstrings(&environment(process), "process.env")?,
            cwd,
        })
    }

    /// execve; returns only on failure, with the error to report.
    pub fn exec(&self) -> Error {
        let argv: Vec<&CStr> = self.argv.iter().map(|s| s.as_c_str()).collect();
        let envp: Vec<&CStr> = self.envp.iter().map(|s| s.as_c_str()).collect();
        let e = nix::unistd::execve(&self.exe, &argv, &envp).unwrap_err();
        Error::Sandbox(format!(
            "exec {:?}: {}",
            self.argv
                .first()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default(),
            errno_text(&e.into())
        ))
    }
}

/// Put descriptors `fds` at 3, 4, ... for the program (`--preserve-fds`),
/// leaving every other descriptor close-on-exec.
pub fn place_preserved_fds(fds: Vec<OwnedFd>) -> Result<u32> {
    let n = fds.len() as u32;
    // First move them all above the target range so dup2 never clobbers one
    // we still need.
    let mut high = Vec::with_capacity(fds.len());
    for fd in fds {
        high.push(crate::sys::fd::dup_above(fd.as_fd(), 1000).map_err(|e| sys("preserve fds", e))?);
    }
    for (i, h) in high.into_iter().enumerate() {
        let target = 3 + i as i32;
        nix::unistd::dup2(h.as_raw_fd(), target).map_err(|e| sys("preserve fds", e))?;
    }
    Ok(n)
}

/// personality(2) from linux.personality.
pub fn apply_personality(p: Option<&oci_spec::runtime::LinuxPersonality>) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain;
    let Some(p) = p else { return Ok(()) };
    let mut persona: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    for f in p.flags().iter().flatten() {
        persona |= match f.as_str() {
            "UNAME26" => 0x002_0000,
            "ADDR_NO_RANDOMIZE" => 0x004_0000,
            "FDPIC_FUNCPTRS" => 0x008_0000,
            "MMAP_PAGE_ZERO" => 0x010_0000,
            "ADDR_COMPAT_LAYOUT" => 0x020_0000,
            "READ_IMPLIES_EXEC" => 0x040_0000,
            "ADDR_LIMIT_32BIT" => 0x080_0000,
            "SHORT_INODE" => 0x100_0000,
            "WHOLE_SECONDS" => 0x200_0000,
            "STICKY_TIMEOUTS" => 0x400_0000,
            "ADDR_LIMIT_3GB" => 0x800_0000,
            other => {
                return Err(Error::Spec(format!(
                    "linux.personality.flags: unknown flag {other:?}"
                )))
            }
        };
    }
    crate::sys::sched::personality(persona).map_err(|e| sys("linux.personality", e))
}

/// ioprio_set(2) from process.ioPriority.
pub fn apply_io_priority(process: &Process) -> Result<()> {
    use oci_spec::runtime::IOPriorityClass;
    let Some(io) = process.io_priority() else {
        return Ok(());
    };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = io.priority();
    if !(0..=7).contains(&level) {
        return Err(Error::Spec(format!(
            "process.ioPriority.priority {level}: must be between 0 and 7"
        )));
    }
    crate::sys::sched::set_ioprio(class, level as u32).map_err(|e| sys("process.ioPriority", e))
}

/// sched_setattr(2) from process.scheduler.
pub fn apply_scheduler(process: &Process) -> Result<()> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let Some(s) = process.scheduler() else {
        return Ok(());
    };
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
        P::SchedIso => {
            return Err(Error::Spec(
                "process.scheduler.policy SCHED_ISO: not supported by Linux".into(),
            ))
        }
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let mut attr = crate::sys::sched::SchedAttr {
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    crate::sys::sched::sched_setattr(&mut attr).map_err(|e| sys("process.scheduler", e))
}

/// sched_setaffinity(2) for execCPUAffinity.initial/final.
pub fn apply_cpu_affinity(list: Option<&str>, field: &str) -> Result<()> {
    let Some(list) = list.filter(|l| !l.trim().is_empty()) else {
        return Ok(());
    };
    let cpus = crate::sys::sched::parse_cpu_list(list)
        .ok_or_else(|| Error::Spec(format!("{field}: invalid CPU list {list:?}")))?;
    crate::sys::sched::set_affinity(&cpus).map_err(|e| sys(format!("{field} {list:?}"), e))
}

/// The AppArmor profile for the program, as an exec transition. Written
/// only to a file that really is on procfs (a container could have put
/// something else at that path).
pub fn apply_apparmor(
    process: &Process,
    host_has_apparmor: bool,
    proc: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(());
    };
    if !host_has_apparmor {
        // Warned about at create.
        return Ok(());
    }
    let data = format!("exec {profile}");
    crate::sys::proc_write_at(proc, "self/attr/apparmor/exec", data.as_bytes())
        .or_else(|_| crate::sys::proc_write_at(proc, "self/attr/exec", data.as_bytes()))
        .map_err(|e| sys(format!("process.apparmorProfile {profile:?}"), e))
}

/// Write linux.sysctl values through /proc/sys: namespaced sysctls show the
/// writer's namespaces, and this runs inside the container's.
pub fn apply_sysctls(
    sysctl: Option<&std::collections::HashMap<String, String>>,
    own_ipc: bool,
    own_net: bool,
    own_uts: bool,
    proc: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    let Some(map) = sysctl else { return Ok(()) };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        husk_oci::sysctl::check_sysctl(key, own_ipc, own_net, own_uts)?;
        if key.contains("..") || key.starts_with('.') {
            return Err(Error::Spec(format!("linux.sysctl {key:?}: invalid name")));
        }
        let path = format!("sys/{}", key.replace('.', "/"));
        crate::sys::proc_write_at(proc, &path, map[key].as_bytes())
            .map_err(|e| sys(format!("linux.sysctl {key:?}={:?}", map[key]), e))?;
    }
    Ok(())
}
