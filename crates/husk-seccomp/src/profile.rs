//! The spec's `linux.seccomp` profile, compiled as runc applies it.
//!
//! - `defaultAction` (+ `defaultErrnoRet`, EPERM when unset) is the filter's
//!   default; SCMP_ACT_NOTIFY cannot be the default (every call the runtime
//!   makes after loading, including handing the fd to the agent, would wait
//!   on an agent that has no fd yet).
//! - `architectures` are added to the native one, which is always there.
//! - `flags` become `SECCOMP_FILTER_FLAG_*` bits; one the kernel does not
//!   know is an error naming it. `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`
//!   only means something with a notify listener and is dropped otherwise.
//! - `syscalls[]`: a name libseccomp does not know on this architecture is
//!   skipped with a debug log (profiles list syscalls of other architectures
//!   and newer kernels). A rule whose action equals the default action is
//!   skipped (libseccomp rejects it and it would change nothing).
//!   `errnoRet` defaults to EPERM for SCMP_ACT_ERRNO and is the trace value
//!   (default EPERM, as runc) for SCMP_ACT_TRACE. A call listed twice
//!   without conditions keeps its first action (libseccomp's behaviour, so
//!   the same as under runc).
//! - A system call number above the highest one the profile names (for its
//!   architecture) fails with ENOSYS when the default action denies (ERRNO,
//!   KILL, TRAP), as runc does: a program calling something newer than the
//!   profile, e.g. `faccessat2` against a profile written before it, gets
//!   the answer of an older kernel and its libc falls back. With a
//!   permissive default (ALLOW, LOG, TRACE) such calls reach the kernel,
//!   which answers ENOSYS itself for numbers it does not have.
//! - SCMP_ACT_NOTIFY for `write` is refused (runc refuses it too): the
//!   runtime writes after loading the filter, and its agent would wait on
//!   a notification only the runtime could answer.
//! - `args[]`: conditions on different argument indexes are ANDed in one
//!   rule. libseccomp cannot AND two conditions on the same argument, so
//!   when any index repeats, every condition of that entry becomes its own
//!   rule and they are ORed — runc's long-standing behaviour, which profiles
//!   written for Docker/runc expect. For SCMP_CMP_MASKED_EQ `value` is the
//!   mask and `valueTwo` the datum compared with `arg & mask` (0 if unset);
//!   other operators compare with `value` and ignore `valueTwo`.

use std::path::PathBuf;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpSyscall};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use super::bpf::{self, Limit, X32_SYSCALL_BIT};
use super::{export, flags_supported, new_filter, Program, SeccompError, BPF_MAXINSNS};

/// Number of system call arguments seccomp can see.
const MAX_ARGS: usize = 6;

pub(super) struct Compiled {
    pub program: Program,
    pub listener_path: Option<PathBuf>,
    pub listener_metadata: Option<String>,
    pub notify: bool,
}

/// The spec's name of an enum value (its serde form), for messages.
fn spec_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_string(),
    }
}

/// `errnoRet`/`defaultErrnoRet`: EPERM when unset; it must fit the 16 bits
/// of SECCOMP_RET_DATA.
fn ret_value(errno_ret: Option<u32>, field: &str) -> Result<u16, SeccompError> {
    match errno_ret {
        None => Ok(libc::EPERM as u16),
        Some(v) => u16::try_from(v).map_err(|_| {
            SeccompError::spec(
                field,
                format!("{v} does not fit in 16 bits (at most 65535)"),
            )
        }),
    }
}

/// Map an OCI action to libseccomp's. `errno_field` names the errnoRet field
/// for messages.
pub(super) fn action(
    a: LinuxSeccompAction,
    errno_ret: Option<u32>,
    errno_field: &str,
) -> Result<ScmpAction, SeccompError> {
    use LinuxSeccompAction as A;
    Ok(match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(i32::from(ret_value(errno_ret, errno_field)?)),
        A::ScmpActTrace => ScmpAction::Trace(ret_value(errno_ret, errno_field)?),
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActNotify => ScmpAction::Notify,
    })
}

/// Map an OCI architecture to libseccomp's.
pub(super) fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Map an OCI filter flag to the kernel's `SECCOMP_FILTER_FLAG_*` bit.
pub(super) fn flag(f: LinuxSeccompFilterFlag) -> libc::c_ulong {
    use LinuxSeccompFilterFlag as F;
    match f {
        F::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        F::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
        F::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        F::SeccompFilterFlagWaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    }
}

/// Map one `args[]` entry to a libseccomp comparison.
pub(super) fn compare(arg: &LinuxSeccompArg, field: &str) -> Result<ScmpArgCompare, SeccompError> {
    use LinuxSeccompOperator as O;
    if arg.index() >= MAX_ARGS {
        return Err(SeccompError::spec(
            field,
            format!(
                "index {} is out of range (a system call has arguments 0 to {})",
                arg.index(),
                MAX_ARGS - 1
            ),
        ));
    }
    let (op, datum) = match arg.op() {
        O::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        O::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        O::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        O::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        O::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        O::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        O::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
}

/// The rules libseccomp gets for one `syscalls[]` entry's conditions: one
/// rule with all of them, or (an index repeats) one rule per condition.
fn rule_sets(conds: &[ScmpArgCompare], args: &[LinuxSeccompArg]) -> Vec<Vec<ScmpArgCompare>> {
    if conds.is_empty() {
        return vec![Vec::new()];
    }
    let mut seen = [false; MAX_ARGS];
    let repeats = args
        .iter()
        .any(|a| std::mem::replace(&mut seen[a.index()], true));
    if repeats {
        conds.iter().map(|c| vec![*c]).collect()
    } else {
        vec![conds.to_vec()]
    }
}

fn libseccomp_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "(unknown version)".to_string(),
    }
}

pub(super) fn compile(s: &LinuxSeccomp) -> Result<Compiled, SeccompError> {
    const ROOT: &str = "linux.seccomp";
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::spec(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut ctx = new_filter(default, ROOT)?;

    let mut arches = vec![ScmpArch::native()];
    for a in s.architectures().iter().flatten() {
        let resolved = match arch(*a) {
            ScmpArch::Native => ScmpArch::native(),
            other => other,
        };
        if !arches.contains(&resolved) {
            arches.push(resolved);
        }
        ctx.add_arch(arch(*a)).map_err(|e| {
            SeccompError::spec(
                "linux.seccomp.architectures",
                format!(
                    "architecture {:?} is not supported by libseccomp {} ({e})",
                    spec_name(a),
                    libseccomp_version()
                ),
            )
        })?;
    }

    let mut flags: libc::c_ulong = 0;
    for f in s.flags().iter().flatten() {
        let bit = flag(*f);
        // WAIT_KILLABLE_RECV alone is invalid: probe it with a listener.
        let probe = if bit == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
            bit | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        } else {
            bit
        };
        if !flags_supported(probe) {
            return Err(SeccompError::spec(
                "linux.seccomp.flags",
                format!("{} is not supported by this kernel", spec_name(f)),
            ));
        }
        flags |= bit;
    }

    let mut notify = false;
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("{ROOT}.syscalls[{i}]");
        let act = action(sc.action(), sc.errno_ret(), &format!("{field}.errnoRet"))?;
        let args: &[LinuxSeccompArg] = sc.args().as_deref().unwrap_or(&[]);
        let conds = args
            .iter()
            .enumerate()
            .map(|(j, a)| compare(a, &format!("{field}.args[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if sc.names().is_empty() {
            return Err(SeccompError::spec(
                format!("{field}.names"),
                "names no system call",
            ));
        }
        if let Some(j) = sc.names().iter().position(|n| n.is_empty()) {
            return Err(SeccompError::spec(
                format!("{field}.names[{j}]"),
                "empty system call name",
            ));
        }
        if act == default {
            tracing::debug!("seccomp: {field}: action is the default action, skipped");
            continue;
        }
        if act == ScmpAction::Notify {
            if let Some(j) = sc.names().iter().position(|n| n == "write") {
                return Err(SeccompError::spec(
                    format!("{field}.names[{j}]"),
                    "SCMP_ACT_NOTIFY cannot be used for the write syscall",
                ));
            }
            notify = true;
        }
        let sets = rule_sets(&conds, args);
        for name in sc.names() {
            let nr = match ScmpSyscall::from_name(name) {
                Ok(nr) => nr,
                Err(_) => {
                    tracing::debug!("seccomp: {field}: unknown system call {name:?}, skipped");
                    continue;
                }
            };
            for set in &sets {
                let added = if set.is_empty() {
                    ctx.add_rule(act, nr)
                } else {
                    ctx.add_rule_conditional(act, nr, set)
                };
                added.map_err(|e| {
                    SeccompError::compile(&field, &format!("add rule for {name:?}"), e)
                })?;
            }
        }
    }

    if notify {
        if s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
        {
            return Err(SeccompError::spec(
                "linux.seccomp.listenerPath",
                "required because a rule uses SCMP_ACT_NOTIFY",
            ));
        }
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            // The kernel cannot return both a listener fd and a thread id.
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    } else {
        flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }

    let mut insns = if denies(default) {
        bpf::enosys_above(&limits(
            &arches,
            s.syscalls().iter().flatten().flat_map(|sc| sc.names()),
        ))
    } else {
        Vec::new()
    };
    insns.extend(export(&ctx, ROOT)?);
    if insns.len() > BPF_MAXINSNS {
        return Err(SeccompError::spec(
            ROOT,
            format!(
                "the compiled filter has {} instructions, more than the kernel's limit of {BPF_MAXINSNS}",
                insns.len()
            ),
        ));
    }
    Ok(Compiled {
        program: Program {
            name: "linux.seccomp",
            insns,
            flags,
        },
        listener_path: s.listener_path().clone(),
        listener_metadata: s.listener_metadata().clone(),
        notify,
    })
}

/// A default action that keeps calls from the kernel: unknown numbers get
/// ENOSYS instead of it.
fn denies(a: ScmpAction) -> bool {
    matches!(
        a,
        ScmpAction::Errno(_) | ScmpAction::KillThread | ScmpAction::KillProcess | ScmpAction::Trap
    )
}

/// The highest number the profile names on each of its architectures. x32
/// shares x86_64's audit architecture; its numbers carry the x32 bit.
fn limits<'a>(arches: &[ScmpArch], names: impl Iterator<Item = &'a String> + Clone) -> Vec<Limit> {
    let highest = |a: ScmpArch| -> Option<u32> {
        names
            .clone()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, a).ok())
            .filter_map(|nr| u32::try_from(i32::from(nr)).ok())
            .max()
    };
    let mut out: Vec<Limit> = Vec::new();
    for a in arches {
        let Some(audit) = bpf::audit_arch(*a) else {
            tracing::debug!("seccomp: no ENOSYS stub for {a:?}");
            continue;
        };
        let i = match out.iter().position(|l| l.audit == audit) {
            Some(i) => i,
            None => {
                out.push(Limit {
                    audit,
                    max: None,
                    x32_max: None,
                });
                out.len() - 1
            }
        };
        if *a == ScmpArch::X32 {
            out[i].x32_max = highest(*a).filter(|m| m & X32_SYSCALL_BIT != 0);
        } else {
            out[i].max = highest(*a).filter(|m| m & X32_SYSCALL_BIT == 0);
        }
    }
    out
}

/// Check the raw JSON of `linux.seccomp` (the object itself) for names the
/// spec does not define, with a message naming the field, e.g.
/// `linux.seccomp.syscalls[0].args[1].op: unknown operator "SCMP_CMP_FOO"`.
/// Typed parsing of config.json rejects these too, but with serde's
/// line/column message; call this on the raw value for a clearer one.
/// Fields that are absent or of another JSON type are left to the parser.
pub fn check_json(seccomp: &serde_json::Value) -> Result<(), SeccompError> {
    fn known<T: serde::de::DeserializeOwned>(
        v: Option<&serde_json::Value>,
        field: &str,
        what: &str,
    ) -> Result<(), SeccompError> {
        match v {
            Some(serde_json::Value::String(s)) => {
                serde_json::from_value::<T>(serde_json::Value::String(s.clone()))
                    .map(|_| ())
                    .map_err(|_| SeccompError::spec(field, format!("unknown {what} {s:?}")))
            }
            _ => Ok(()),
        }
    }
    fn items<'a>(
        v: &'a serde_json::Value,
        key: &str,
    ) -> impl Iterator<Item = (usize, &'a serde_json::Value)> {
        v.get(key)
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
            .enumerate()
    }
    known::<LinuxSeccompAction>(
        seccomp.get("defaultAction"),
        "linux.seccomp.defaultAction",
        "action",
    )?;
    for (_, a) in items(seccomp, "architectures") {
        known::<Arch>(Some(a), "linux.seccomp.architectures", "architecture")?;
    }
    for (_, f) in items(seccomp, "flags") {
        known::<LinuxSeccompFilterFlag>(Some(f), "linux.seccomp.flags", "flag")?;
    }
    for (i, sc) in items(seccomp, "syscalls") {
        known::<LinuxSeccompAction>(
            sc.get("action"),
            &format!("linux.seccomp.syscalls[{i}].action"),
            "action",
        )?;
        for (j, arg) in items(sc, "args") {
            known::<LinuxSeccompOperator>(
                arg.get("op"),
                &format!("linux.seccomp.syscalls[{i}].args[{j}].op"),
                "operator",
            )?;
        }
    }
    Ok(())
}
