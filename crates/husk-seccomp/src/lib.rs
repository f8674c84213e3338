//! seccomp: the spec's `linux.seccomp` profile plus husk's sandbox baseline.
//!
//! Two filters may be loaded into a container's init right before it execs
//! the user's program:
//!
//! 1. **husk's baseline** (`--seccomp-baseline=on`, see [`BASELINE`]): default
//!    action ALLOW, a short list of kernel-attack-surface syscalls that fail
//!    with EPERM (ENOSYS for `clone3`). It is loaded first.
//! 2. **the spec's profile**, applied as runc applies it (the rules are in
//!    `profile.rs`). It is loaded second, so where both filters deny a call
//!    with ERRNO the spec's errno is the one the process sees (the kernel
//!    returns the data of the most recently installed filter among actions
//!    of equal precedence); where the spec allows a call the baseline
//!    denies, the baseline's ERRNO wins (ERRNO outranks ALLOW, LOG, TRACE
//!    and NOTIFY). Loading the baseline first also means a profile that
//!    forbids `seccomp(2)` cannot stop it.
//!
//! Both filters are compiled by libseccomp in [`prepare`] (binary-tree
//! optimisation, `SCMP_FLTATR_CTL_OPTIMIZE` = 2) and exported as BPF, so
//! [`Prepared::install`] is one `seccomp(SECCOMP_SET_MODE_FILTER)` system
//! call per filter: it does not allocate and holds no lock, which makes it
//! safe in a child forked from a multi-threaded process and keeps the time
//! between install and exec short. A [`Prepared`] is plain data (`Send`),
//! so it may also be built before the fork. The spec's `flags` are passed to that
//! system call as the kernel's `SECCOMP_FILTER_FLAG_*` bits (the same bits
//! libseccomp's `SCMP_FLTATR_CTL_TSYNC`/`_LOG`/`_SSB`/`_WAITKILL` attributes
//! would set); [`prepare`] asks the kernel whether it knows each one and
//! names any it does not.
//!
//! Neither filter sets no_new_privs (`SCMP_FLTATR_CTL_NNP` is off): the
//! caller sets it when `process.noNewPrivileges` asks, and must either have
//! set it or still hold CAP_SYS_ADMIN when it calls `install`.

#![forbid(unsafe_code)]

mod baseline;
mod bpf;
mod cache;
pub mod default_profile;
mod profile;
#[cfg(test)]
mod tests;

use std::io::{IoSlice, Read, Seek};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use libseccomp::ScmpFilterContext;
use oci_spec::runtime::LinuxSeccomp;

pub use baseline::{baseline_for, BASELINE};
pub use bpf::PERSONALITY_ALLOWED;
pub use cache::{prepare_cached, prepare_cached_default};
pub use default_profile::default_profile;
pub use profile::check_json;

/// The kernel's limit on the length of one classic-BPF program.
const BPF_MAXINSNS: usize = 4096;

/// Why a profile cannot be compiled, loaded or handed to its agent. Every
/// message is one line and, for a problem in the spec, starts with the
/// JSON path of the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile asks for something invalid or that this host cannot do.
    #[error("{field}: {message}")]
    Spec { field: String, message: String },
    /// libseccomp refused a step of compiling a filter.
    #[error("{field}: libseccomp: {message}")]
    Compile { field: String, message: String },
    /// The kernel refused to load a compiled filter.
    #[error("load {filter} seccomp filter: {message}")]
    Load {
        filter: &'static str,
        message: String,
    },
    /// The seccomp agent at `listenerPath` could not be given the notify fd.
    #[error("linux.seccomp.listenerPath {}: {what}: {source}", path.display())]
    Listener {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

impl SeccompError {
    fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        SeccompError::Spec {
            field: field.into(),
            message: message.into(),
        }
    }

    fn compile(field: impl Into<String>, what: &str, e: libseccomp::error::SeccompError) -> Self {
        SeccompError::Compile {
            field: field.into(),
            message: format!("{what}: {e}"),
        }
    }
}

/// What husk knows about the container that decides the baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BaselineContext {
    /// `--seccomp-baseline=on`.
    pub enabled: bool,
    /// CAP_SYS_ADMIN is in the container process's effective or bounding set.
    pub has_cap_sys_admin: bool,
    /// The container got its own user namespace.
    pub has_user_namespace: bool,
    /// The always-denied rules are already enforced by a filter the process
    /// inherits (boot loads them on itself), so this filter leaves them out.
    pub always_inherited: bool,
}

impl BaselineContext {
    /// The container may legitimately mount and make namespaces: the
    /// baseline's gated rules (see [`BASELINE`]) are left out.
    pub fn privileged(&self) -> bool {
        self.has_cap_sys_admin || self.has_user_namespace
    }

    /// The filter is for a container's process, not for boot itself: the
    /// process inherits boot's filter (every container, when the baseline
    /// is on), or it is unprivileged. boot asks for its own filter as a
    /// privileged process that inherits nothing, and rules that would also
    /// bind boot's setup of a container (`personality`: boot applies the
    /// spec's `linux.personality` under its own filter) stay out of it.
    pub fn for_container(&self) -> bool {
        self.always_inherited || !self.privileged()
    }
}

/// One compiled filter, ready for `seccomp(2)`.
#[derive(Clone)]
struct Program {
    /// Names the filter in errors and logs.
    name: &'static str,
    insns: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` bits passed when loading it.
    flags: libc::c_ulong,
}

/// A compiled plan: built in the container's init (a forked, single-threaded
/// child of the sandbox, already inside the container's root) right before
/// exec. Holds the filters as BPF, in load order (baseline first).
#[derive(Clone)]
pub struct Prepared {
    filters: Vec<Program>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    notify: bool,
}

/// The serialized form of a `Prepared`: it travels from the CLI to the
/// sandbox in the create request (the cache keeps it in a binary form of
/// its own, see `cache.rs`).
#[derive(serde::Serialize, serde::Deserialize)]
struct PreparedWire {
    filters: Vec<ProgramWire>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    notify: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ProgramWire {
    name: String,
    flags: u64,
    /// The instructions as the kernel takes them (code, jt, jf, k; native
    /// byte order), in hex: a default profile is ~1,400 instructions, and
    /// one string parses much faster than as many JSON arrays.
    insns: String,
}

/// One instruction as the 8 bytes `struct sock_filter` is.
fn insn_bytes(i: &libc::sock_filter) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..2].copy_from_slice(&i.code.to_ne_bytes());
    b[2] = i.jt;
    b[3] = i.jf;
    b[4..].copy_from_slice(&i.k.to_ne_bytes());
    b
}

fn insn_from(c: &[u8]) -> libc::sock_filter {
    libc::sock_filter {
        code: u16::from_ne_bytes([c[0], c[1]]),
        jt: c[2],
        jf: c[3],
        k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
    }
}

fn to_hex(insns: &[libc::sock_filter]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(insns.len() * 16);
    for i in insns {
        for b in insn_bytes(i) {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

fn from_hex(s: &str) -> Option<Vec<libc::sock_filter>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if s.len() % 16 != 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(s.len() / 2);
    for pair in s.chunks_exact(2) {
        bytes.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some(bytes.chunks_exact(8).map(insn_from).collect())
}

/// The name a deserialized filter gets (names are `&'static str`).
fn filter_name(name: &str) -> &'static str {
    if name == "baseline" {
        "baseline"
    } else {
        "linux.seccomp"
    }
}

impl serde::Serialize for Prepared {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PreparedWire {
            filters: self
                .filters
                .iter()
                .map(|p| ProgramWire {
                    name: p.name.to_string(),
                    flags: p.flags,
                    insns: to_hex(&p.insns),
                })
                .collect(),
            listener_path: self.listener_path.clone(),
            listener_metadata: self.listener_metadata.clone(),
            notify: self.notify,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Prepared {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = PreparedWire::deserialize(d)?;
        let mut filters = Vec::with_capacity(w.filters.len());
        for p in w.filters {
            let insns = from_hex(&p.insns)
                .filter(|i| !i.is_empty() && i.len() <= BPF_MAXINSNS)
                .ok_or_else(|| serde::de::Error::custom("seccomp program of invalid length"))?;
            filters.push(Program {
                name: filter_name(&p.name),
                flags: p.flags,
                insns,
            });
        }
        Ok(Prepared {
            filters,
            listener_path: w.listener_path,
            listener_metadata: w.listener_metadata,
            notify: w.notify,
        })
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filters: Vec<String> = self
            .filters
            .iter()
            .map(|p| format!("{}: {} insns, flags {:#x}", p.name, p.insns.len(), p.flags))
            .collect();
        f.debug_struct("Prepared")
            .field("filters", &filters)
            .field("listener_path", &self.listener_path)
            .field("listener_metadata", &self.listener_metadata)
            .field("notify", &self.notify)
            .finish()
    }
}

/// Compile the spec's profile (if any) and, when `baseline.enabled`, husk's
/// baseline. Unknown syscall names are skipped with a debug log (profiles
/// list syscalls of other architectures and kernels); everything else that
/// cannot be honoured is an error naming the field.
pub fn prepare(
    spec: Option<&LinuxSeccomp>,
    baseline: &BaselineContext,
) -> Result<Prepared, SeccompError> {
    let mut filters = Vec::new();
    let compiled = spec.map(profile::compile).transpose()?;
    if baseline.enabled && !baseline_for(baseline).is_empty() {
        // Speculation and thread-sync behaviour follow the spec's profile:
        // TSYNC so that the spec's own TSYNC load finds every thread on the
        // same filter tree, SPEC_ALLOW so that loading the baseline does not
        // turn on the SSB mitigation the spec asked to leave off. With no
        // profile the baseline must not change speculation behaviour either.
        let flags = match &compiled {
            Some(c) => {
                c.program.flags
                    & (libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW)
            }
            None if flags_supported(libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW) => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            None => 0,
        };
        filters.push(baseline::compile(baseline, flags)?);
    }
    let (listener_path, listener_metadata, notify) = match compiled {
        Some(c) => {
            filters.push(c.program);
            (c.listener_path, c.listener_metadata, c.notify)
        }
        None => (None, None, false),
    };
    Ok(Prepared {
        filters,
        listener_path,
        listener_metadata,
        notify,
    })
}

impl Prepared {
    /// Load the filters into the kernel for the calling thread (and with the
    /// spec's flags, e.g. SECCOMP_FILTER_FLAG_TSYNC/LOG/SPEC_ALLOW). Requires
    /// no_new_privs or CAP_SYS_ADMIN — the caller handles order. Returns the
    /// seccomp user-notification fd (close-on-exec) when the spec uses
    /// SCMP_ACT_NOTIFY: the caller must then send it to `listenerPath`
    /// ([`send_to_listener`]).
    ///
    /// Makes only `seccomp(2)` system calls: no allocation, no locks. If the
    /// second filter fails after the first was loaded, the thread keeps the
    /// first; the caller must not exec then.
    pub fn install(self) -> Result<Option<OwnedFd>, SeccompError> {
        let mut notify_fd = None;
        for p in &self.filters {
            match husk_sys::seccomp::set_mode_filter(&p.insns, p.flags) {
                Err(e) => {
                    let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
                    return Err(SeccompError::Load {
                        filter: p.name,
                        message: load_error_message(errno, p.flags),
                    });
                }
                Ok(husk_sys::seccomp::Loaded::Listener(fd)) => notify_fd = Some(fd),
                Ok(husk_sys::seccomp::Loaded::Filter) => {}
                Ok(husk_sys::seccomp::Loaded::TsyncFailed(tid)) => {
                    // TSYNC without TSYNC_ESRCH reports the thread that could
                    // not be synchronised as a positive return value.
                    return Err(SeccompError::Load {
                        filter: p.name,
                        message: format!(
                            "SECCOMP_FILTER_FLAG_TSYNC: thread {tid} cannot be synchronised"
                        ),
                    });
                }
            }
        }
        Ok(notify_fd)
    }

    /// Nothing to load: no spec profile and the baseline is off.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The spec's profile uses SCMP_ACT_NOTIFY: [`install`](Self::install)
    /// will return a notify fd for `listenerPath`.
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// `linux.seccomp.listenerPath`, for the caller to hand the notify fd to.
    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// `linux.seccomp.listenerMetadata` (empty when unset).
    pub fn listener_metadata(&self) -> &str {
        self.listener_metadata.as_deref().unwrap_or("")
    }

    /// BPF instructions per filter in load order, e.g. for a debug log.
    pub fn instruction_counts(&self) -> Vec<(&'static str, usize)> {
        self.filters
            .iter()
            .map(|p| (p.name, p.insns.len()))
            .collect()
    }
}

fn load_error_message(errno: nix::errno::Errno, flags: libc::c_ulong) -> String {
    match errno {
        nix::errno::Errno::EACCES => {
            "EACCES: no_new_privs is not set and the process lacks CAP_SYS_ADMIN".to_string()
        }
        nix::errno::Errno::EINVAL => format!(
            "EINVAL: the kernel rejected the filter or its flags ({})",
            flag_names(flags)
        ),
        e => format!("{e}: {}", e.desc()),
    }
}

/// Human names of `SECCOMP_FILTER_FLAG_*` bits.
fn flag_names(flags: libc::c_ulong) -> String {
    const NAMES: &[(libc::c_ulong, &str)] = &[
        (libc::SECCOMP_FILTER_FLAG_TSYNC, "TSYNC"),
        (libc::SECCOMP_FILTER_FLAG_LOG, "LOG"),
        (libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW, "SPEC_ALLOW"),
        (libc::SECCOMP_FILTER_FLAG_NEW_LISTENER, "NEW_LISTENER"),
        (libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH, "TSYNC_ESRCH"),
        (
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            "WAIT_KILLABLE_RECV",
        ),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join("|")
    }
}

/// Does the running kernel accept this combination of filter flags? Asks
/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, NULL)`: the kernel checks the
/// flags before it reads the program, so EFAULT means "known flags" and
/// EINVAL "unknown". Nothing is loaded either way.
fn flags_supported(flags: libc::c_ulong) -> bool {
    husk_sys::seccomp::flags_known(flags)
}

/// Apply the attributes every husk filter has: no NNP (the caller decides),
/// binary-tree optimisation, real error codes from libseccomp.
fn new_filter(
    default: libseccomp::ScmpAction,
    field: &str,
) -> Result<ScmpFilterContext, SeccompError> {
    let mut ctx = ScmpFilterContext::new(default)
        .map_err(|e| SeccompError::compile(field, "create filter", e))?;
    ctx.set_ctl_nnp(false)
        .map_err(|e| SeccompError::compile(field, "SCMP_FLTATR_CTL_NNP", e))?;
    ctx.set_ctl_optimize(2)
        .map_err(|e| SeccompError::compile(field, "SCMP_FLTATR_CTL_OPTIMIZE=2", e))?;
    // Better error codes only; older libseccomp lacks it.
    let _ = ctx.set_api_sysrawrc(true);
    Ok(ctx)
}

/// Generate the BPF of a filter (libseccomp writes it to an fd; a memfd
/// keeps it off the filesystem).
fn export(ctx: &ScmpFilterContext, field: &str) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let io = |what: &str, e: std::io::Error| SeccompError::Compile {
        field: field.to_string(),
        message: format!("{what}: {e}"),
    };
    let fd = nix::sys::memfd::memfd_create(
        c"husk-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| io("memfd_create", e.into()))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file)
        .map_err(|e| SeccompError::compile(field, "generate BPF", e))?;
    file.rewind().map_err(|e| io("rewind BPF", e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| io("read BPF", e))?;
    let size = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % size != 0 {
        return Err(SeccompError::Compile {
            field: field.to_string(),
            message: format!("generated BPF has an odd size of {} bytes", bytes.len()),
        });
    }
    let insns: Vec<libc::sock_filter> = bytes.chunks_exact(size).map(insn_from).collect();
    if insns.len() > BPF_MAXINSNS {
        return Err(SeccompError::spec(
            field,
            format!(
                "the compiled filter has {} instructions, more than the kernel's limit of {BPF_MAXINSNS}",
                insns.len()
            ),
        ));
    }
    Ok(insns)
}

/// Send a notify fd to the spec's listenerPath as the OCI runtime spec says:
/// connect to the AF_UNIX stream socket and send one message whose data is
/// the JSON "container process state" (`ociVersion`, `fds: ["seccompFd"]`,
/// `pid`, `metadata` = listenerMetadata (left out when empty), `state` = the
/// OCI container state object) and whose SCM_RIGHTS carries the fd.
pub fn send_to_listener(
    listener_path: &Path,
    metadata: &str,
    fd: BorrowedFd<'_>,
    pid: i32,
    state: serde_json::Value,
) -> Result<(), SeccompError> {
    use nix::sys::socket::{
        connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
        UnixAddr,
    };
    let err = |what: &'static str, source: std::io::Error| SeccompError::Listener {
        path: listener_path.to_path_buf(),
        what,
        source,
    };
    // The container process state carries the version of the state object
    // it wraps; the caller's state always has one.
    let oci_version = state
        .get("ociVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let mut message = serde_json::json!({
        "ociVersion": oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if !metadata.is_empty() {
        message["metadata"] = serde_json::Value::String(metadata.to_string());
    }
    let data = serde_json::to_vec(&message).map_err(|e| err("encode state", e.into()))?;

    let addr = UnixAddr::new(listener_path).map_err(|e| err("socket address", e.into()))?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| err("socket", e.into()))?;
    loop {
        match connect(sock.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(err("connect", e.into())),
        }
    }
    let fds = [fd.as_raw_fd()];
    let mut sent = 0;
    while sent < data.len() {
        let iov = [IoSlice::new(&data[sent..])];
        // The fd goes with the first byte; the rest (a stream socket may
        // take a large state in pieces) goes without it.
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage] = if sent == 0 { &cmsg } else { &[] };
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(err("send", e.into())),
        }
    }
    Ok(())
}
