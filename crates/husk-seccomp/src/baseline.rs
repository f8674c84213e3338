//! husk's sandbox baseline: a second filter, default action ALLOW, that
//! denies a short list of system calls no ordinary container needs and that
//! open large or historically exploited parts of the host kernel.
//!
//! [`RULES`] is the one list: each entry has its reason, whether it applies
//! always or only to unprivileged containers, and how it is denied.
//! "Unprivileged" means the container has neither CAP_SYS_ADMIN nor its own
//! user namespace ([`BaselineContext::privileged`]); a container given
//! either is meant to mount and make namespaces, so the new mount API,
//! quotactl, and user-namespace creation are left to it. Decisions:
//!
//! - `name_to_handle_at` is not denied: it only produces a handle, systemd
//!   and util-linux use it to find mount points, and the dangerous half,
//!   `open_by_handle_at`, is denied.
//! - `quotactl`/`quotactl_fd` are denied to unprivileged containers only,
//!   like the mount API: they act on host block devices and filesystems.
//! - The mount-API calls follow the same condition as `unshare`
//!   (CAP_SYS_ADMIN or a user namespace lifts them): the init sets up the
//!   container's mounts before the filter is loaded, so husk itself never
//!   needs them afterwards.
//! - `clone3` fails with ENOSYS, not EPERM: its flags are in memory seccomp
//!   cannot read, so it cannot be filtered on CLONE_NEWUSER, and ENOSYS makes
//!   glibc and Go fall back to `clone`, whose flags are filtered.
//! - `io_uring_setup`/`_enter`/`_register` fail with ENOSYS for every
//!   container (Docker 25 and later deny them too): io_uring runs work in
//!   kernel threads beside the syscall path, it has been the source of a
//!   long series of privilege escalations, and every user of it (liburing,
//!   libuv, tokio-uring, databases) falls back to ordinary system calls when
//!   the kernel says it has none. EPERM is what a kernel with io_uring
//!   switched off by sysctl says; ENOSYS, what one built without it says,
//!   is the answer every fallback handles.
//! - `personality` only with the values glibc and `setarch` use
//!   ([`PERSONALITY_ALLOWED`](super::bpf::PERSONALITY_ALLOWED)). This rule
//!   checks an argument with hand-written BPF in front of the filter
//!   (libseccomp cannot say "none of these values"). It is in every
//!   container's filter but not in boot's: boot's init applies the spec's
//!   own `linux.personality` (any flags) under boot's filter.
//!
//! The filter covers the native architecture and the compat ABIs the kernel
//! runs on it (x86 and x32 on x86_64, arm on aarch64, ...), so a 32-bit
//! binary is neither killed by it nor able to go around it.

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpSyscall};

use super::{bpf, export, new_filter, BaselineContext, Program, SeccompError};

/// When a rule applies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Gate {
    /// Every process: loaded on boot, which every container inherits.
    Always,
    /// Left out when the container has CAP_SYS_ADMIN or a user namespace.
    Unprivileged,
    /// Every container's own filter, privileged or not, but never boot's
    /// (see [`BaselineContext::for_container`]).
    Container,
}

/// How a rule denies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Deny {
    /// Always fail with this errno.
    Errno(i32),
    /// Fail with this errno when the clone-flags argument has these bits.
    CloneFlags(i32, u64),
    /// Fail with this errno unless the argument is one of
    /// [`PERSONALITY_ALLOWED`](super::bpf::PERSONALITY_ALLOWED).
    Personality(i32),
}

pub(super) struct Rule {
    pub name: &'static str,
    pub reason: &'static str,
    pub gate: Gate,
    pub deny: Deny,
}

const EPERM: Deny = Deny::Errno(libc::EPERM);
const ENOSYS: Deny = Deny::Errno(libc::ENOSYS);
const NEWUSER: Deny = Deny::CloneFlags(libc::EPERM, libc::CLONE_NEWUSER as u64);

const fn rule(name: &'static str, gate: Gate, deny: Deny, reason: &'static str) -> Rule {
    Rule {
        name,
        reason,
        gate,
        deny,
    }
}

use Gate::{Always, Container, Unprivileged};

/// The baseline, one entry per system call.
#[rustfmt::skip]
pub(super) const RULES: &[Rule] = &[
    rule("kexec_load", Always, EPERM, "loads a new kernel to replace the host's"),
    rule("kexec_file_load", Always, EPERM, "loads a new kernel to replace the host's"),
    rule("init_module", Always, EPERM, "loads code into the host kernel"),
    rule("finit_module", Always, EPERM, "loads code into the host kernel"),
    rule("delete_module", Always, EPERM, "unloads modules the host relies on"),
    rule("bpf", Always, EPERM, "eBPF runs code in the host kernel; a frequent exploit path"),
    rule("perf_event_open", Always, EPERM, "host-wide counters leak other tenants' activity; a frequent exploit path"),
    rule("userfaultfd", Always, EPERM, "stalls kernel page faults at will, the usual lever for kernel race exploits"),
    rule("keyctl", Always, EPERM, "the kernel keyring is not namespaced: keys are shared with the host"),
    rule("add_key", Always, EPERM, "the kernel keyring is not namespaced: keys are shared with the host"),
    rule("request_key", Always, EPERM, "the kernel keyring is not namespaced; may call host upcall programs"),
    rule("open_by_handle_at", Always, EPERM, "opens host files by handle around the mount namespace (the 'shocker' escape)"),
    rule("iopl", Always, EPERM, "raw I/O port access to host hardware"),
    rule("ioperm", Always, EPERM, "raw I/O port access to host hardware"),
    rule("reboot", Always, EPERM, "reboots or halts the machine (or kills the pid namespace's init)"),
    rule("swapon", Always, EPERM, "changes the host's swap devices"),
    rule("swapoff", Always, EPERM, "changes the host's swap devices"),
    rule("acct", Always, EPERM, "switches host-wide process accounting"),
    rule("lookup_dcookie", Always, EPERM, "reveals host dentry paths (oprofile interface)"),
    rule("io_uring_setup", Always, ENOSYS, "io_uring: kernel-side async work, a long series of privilege escalations; users fall back to plain calls"),
    rule("io_uring_enter", Always, ENOSYS, "io_uring: kernel-side async work, a long series of privilege escalations; users fall back to plain calls"),
    rule("io_uring_register", Always, ENOSYS, "io_uring: kernel-side async work, a long series of privilege escalations; users fall back to plain calls"),
    rule("personality", Container, Deny::Personality(libc::EPERM), "only PER_LINUX/PER_LINUX32 with UNAME26 or ADDR_NO_RANDOMIZE: READ_IMPLIES_EXEC and MMAP_PAGE_ZERO undo exploit mitigations"),
    rule("unshare", Unprivileged, NEWUSER, "with CLONE_NEWUSER: a new user namespace exposes root-only kernel code (netfilter, filesystems) to attack"),
    rule("clone", Unprivileged, NEWUSER, "with CLONE_NEWUSER: a new user namespace exposes root-only kernel code (netfilter, filesystems) to attack"),
    rule("clone3", Unprivileged, Deny::Errno(libc::ENOSYS), "flags are in memory seccomp cannot read, so CLONE_NEWUSER cannot be filtered; ENOSYS makes libc fall back to clone"),
    rule("fsopen", Unprivileged, EPERM, "new mount API: filesystem parsers reachable from a user namespace (e.g. CVE-2022-0185)"),
    rule("fsconfig", Unprivileged, EPERM, "new mount API: filesystem parsers reachable from a user namespace (e.g. CVE-2022-0185)"),
    rule("fsmount", Unprivileged, EPERM, "new mount API: makes mounts the container is not meant to make"),
    rule("fspick", Unprivileged, EPERM, "new mount API: reconfigures existing mounts"),
    rule("move_mount", Unprivileged, EPERM, "new mount API: attaches mounts the container is not meant to make"),
    rule("open_tree", Unprivileged, EPERM, "new mount API: clones mount trees"),
    rule("mount_setattr", Unprivileged, EPERM, "new mount API: changes mount flags and ID mappings"),
    rule("quotactl", Unprivileged, EPERM, "acts on quotas of host block devices"),
    rule("quotactl_fd", Unprivileged, EPERM, "acts on quotas of host filesystems"),
];

const PAIRS: [(&str, &str); RULES.len()] = {
    let mut out = [("", ""); RULES.len()];
    let mut i = 0;
    while i < RULES.len() {
        out[i] = (RULES[i].name, RULES[i].reason);
        i += 1;
    }
    out
};

/// The baseline list (for docs and tests): (syscall name, reason). All fail
/// with EPERM except `clone3` and `io_uring_*` (ENOSYS). `unshare` and
/// `clone` are denied only with CLONE_NEWUSER in their flags; they,
/// `clone3`, the new mount API (`fsopen` ... `mount_setattr`) and
/// `quotactl`/`quotactl_fd` are denied only when the container has neither
/// CAP_SYS_ADMIN nor its own user namespace. `personality` is refused for
/// values outside [`PERSONALITY_ALLOWED`](super::bpf::PERSONALITY_ALLOWED),
/// in every container ([`baseline_for`] lists what applies to one
/// container).
pub const BASELINE: &[(&str, &str)] = &PAIRS;

/// The entries of [`BASELINE`] that apply to a container, e.g. for a debug
/// log; empty when the baseline is off.
pub fn baseline_for(ctx: &BaselineContext) -> Vec<(&'static str, &'static str)> {
    if !ctx.enabled {
        return Vec::new();
    }
    RULES
        .iter()
        .filter(|r| applies(r, ctx))
        .map(|r| (r.name, r.reason))
        .collect()
}

fn applies(r: &Rule, ctx: &BaselineContext) -> bool {
    match r.gate {
        Gate::Always => !ctx.always_inherited,
        Gate::Unprivileged => !ctx.privileged(),
        Gate::Container => ctx.for_container(),
    }
}

/// The rule table as text, for the cache key: a plan compiled from another
/// table must not be reused.
pub(super) fn fingerprint() -> String {
    let mut s = String::new();
    for r in RULES {
        s.push_str(&format!("{}:{:?}:{:?};", r.name, r.gate, r.deny));
    }
    s.push_str(&format!("{:?}", bpf::PERSONALITY_ALLOWED));
    s
}

/// The compat ABIs the kernel runs next to `native`.
fn compat_arches(native: ScmpArch) -> &'static [ScmpArch] {
    match native {
        ScmpArch::X8664 => &[ScmpArch::X86, ScmpArch::X32],
        ScmpArch::Aarch64 => &[ScmpArch::Arm],
        ScmpArch::S390X => &[ScmpArch::S390],
        ScmpArch::Ppc64 => &[ScmpArch::Ppc],
        ScmpArch::Mips64 => &[ScmpArch::Mips, ScmpArch::Mips64N32],
        ScmpArch::Mipsel64 => &[ScmpArch::Mipsel, ScmpArch::Mipsel64N32],
        ScmpArch::Parisc64 => &[ScmpArch::Parisc],
        _ => &[],
    }
}

/// The argument that holds clone's flags: s390 swaps the first two.
fn clone_flags_arg(native: ScmpArch) -> u32 {
    match native {
        ScmpArch::S390 | ScmpArch::S390X => 1,
        _ => 0,
    }
}

/// The personality guard for the arches the filter covers.
fn personality_prefix(arches: &[ScmpArch], errno: i32) -> Vec<libc::sock_filter> {
    let mut at = Vec::new();
    for a in arches {
        let (Some(audit), Ok(nr)) = (
            bpf::audit_arch(*a),
            ScmpSyscall::from_name_by_arch("personality", *a),
        ) else {
            tracing::debug!("seccomp baseline: no personality guard for {a:?}");
            continue;
        };
        if let Ok(nr) = u32::try_from(i32::from(nr)) {
            at.push(bpf::Personality { audit, nr });
        }
    }
    bpf::personality_guard(&at, errno as u32)
}

pub(super) fn compile(
    ctx: &BaselineContext,
    flags: libc::c_ulong,
) -> Result<Program, SeccompError> {
    const FIELD: &str = "husk seccomp baseline";
    let mut filter = new_filter(ScmpAction::Allow, FIELD)?;
    let native = ScmpArch::native();
    let mut arches = vec![native];
    for a in compat_arches(native) {
        // An ABI this libseccomp lacks just stays out (its calls then hit
        // the filter's bad-architecture action, like any unlisted ABI).
        match filter.add_arch(*a) {
            Ok(_) => arches.push(*a),
            Err(e) => tracing::debug!("seccomp baseline: no {a:?} support: {e}"),
        }
    }
    let mut prefix = Vec::new();
    for r in RULES {
        if !applies(r, ctx) {
            continue;
        }
        if let Deny::Personality(errno) = r.deny {
            prefix.extend(personality_prefix(&arches, errno));
            continue;
        }
        // A call this architecture does not have (iopl on arm64) is skipped.
        let Ok(nr) = ScmpSyscall::from_name(r.name) else {
            tracing::debug!("seccomp baseline: {} unknown here, skipped", r.name);
            continue;
        };
        let added = match r.deny {
            Deny::Errno(errno) => filter.add_rule(ScmpAction::Errno(errno), nr),
            Deny::CloneFlags(errno, bits) => {
                let arg = if r.name == "clone" {
                    clone_flags_arg(native)
                } else {
                    0
                };
                let cond = ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(bits), bits);
                filter.add_rule_conditional(ScmpAction::Errno(errno), nr, &[cond])
            }
            Deny::Personality(_) => unreachable!("handled above"),
        };
        added.map_err(|e| SeccompError::compile(FIELD, &format!("add rule for {}", r.name), e))?;
    }
    prefix.extend(export(&filter, FIELD)?);
    if prefix.len() > super::BPF_MAXINSNS {
        return Err(SeccompError::spec(
            FIELD,
            format!(
                "{} instructions, more than the kernel's limit",
                prefix.len()
            ),
        ));
    }
    Ok(Program {
        name: "baseline",
        insns: prefix,
        flags,
    })
}
