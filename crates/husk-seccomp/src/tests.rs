//! Unit tests: they need no privileges and load no filter. The tests that
//! fork a child and load filters into the kernel are integration tests,
//! in `tests/kernel.rs`, so that this crate forbids `unsafe` in tests too.

use std::os::fd::AsFd;

use libseccomp::{ScmpAction, ScmpArch, ScmpCompareOp, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};
use serde_json::json;

use super::baseline::{Gate, RULES};
use super::profile::{action, arch, compare, flag};
use super::*;

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

#[test]
fn inherited_always_rules_are_left_out() {
    let ctx = BaselineContext {
        always_inherited: true,
        ..ON
    };
    let names: Vec<&str> = baseline_for(&ctx).iter().map(|(n, _)| *n).collect();
    assert!(
        !names.contains(&"kexec_load") && names.contains(&"fsopen"),
        "{names:?}"
    );
    // Privileged and inherited: only the rule every container gets.
    let both = BaselineContext {
        always_inherited: true,
        ..ON_ADMIN
    };
    let names: Vec<&str> = baseline_for(&both).iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["personality"]);
    assert_eq!(prepare(None, &both).unwrap().instruction_counts().len(), 1);
    // boot's own filter (privileged, nothing inherited) has no container rule.
    let boot = BaselineContext {
        has_user_namespace: true,
        ..ON_ADMIN
    };
    let names: Vec<&str> = baseline_for(&boot).iter().map(|(n, _)| *n).collect();
    assert!(
        names.contains(&"kexec_load") && names.contains(&"io_uring_setup"),
        "{names:?}"
    );
    assert!(!names.contains(&"personality"), "{names:?}");
    // Off: nothing.
    assert!(prepare(None, &OFF).unwrap().is_empty());
}

// ---------------------------------------------------------------- mapping

#[test]
fn actions_map_to_libseccomp() {
    use LinuxSeccompAction as A;
    let f = "f";
    assert_eq!(
        action(A::ScmpActKill, None, f).unwrap(),
        ScmpAction::KillThread
    );
    assert_eq!(
        action(A::ScmpActKillThread, None, f).unwrap(),
        ScmpAction::KillThread
    );
    assert_eq!(
        action(A::ScmpActKillProcess, None, f).unwrap(),
        ScmpAction::KillProcess
    );
    assert_eq!(action(A::ScmpActTrap, None, f).unwrap(), ScmpAction::Trap);
    assert_eq!(action(A::ScmpActAllow, None, f).unwrap(), ScmpAction::Allow);
    assert_eq!(action(A::ScmpActLog, None, f).unwrap(), ScmpAction::Log);
    assert_eq!(
        action(A::ScmpActNotify, None, f).unwrap(),
        ScmpAction::Notify
    );
    // ERRNO and TRACE default to EPERM and carry errnoRet.
    assert_eq!(
        action(A::ScmpActErrno, None, f).unwrap(),
        ScmpAction::Errno(libc::EPERM)
    );
    assert_eq!(
        action(A::ScmpActErrno, Some(38), f).unwrap(),
        ScmpAction::Errno(38)
    );
    assert_eq!(
        action(A::ScmpActTrace, None, f).unwrap(),
        ScmpAction::Trace(1)
    );
    assert_eq!(
        action(A::ScmpActTrace, Some(77), f).unwrap(),
        ScmpAction::Trace(77)
    );
    let e = action(
        A::ScmpActErrno,
        Some(70000),
        "linux.seccomp.syscalls[2].errnoRet",
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "linux.seccomp.syscalls[2].errnoRet: 70000 does not fit in 16 bits (at most 65535)"
    );
}

#[test]
fn every_spec_architecture_maps() {
    let names = [
        "SCMP_ARCH_NATIVE",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
    ];
    let mut seen = std::collections::HashSet::new();
    for n in names {
        let a: Arch = serde_json::from_value(json!(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(
            seen.insert(format!("{:?}", arch(a))),
            "{n} maps to a taken arch"
        );
    }
    assert_eq!(arch(Arch::ScmpArchX86_64), ScmpArch::X8664);
    assert_eq!(arch(Arch::ScmpArchX32), ScmpArch::X32);
    assert_eq!(arch(Arch::ScmpArchAarch64), ScmpArch::Aarch64);
    assert_eq!(arch(Arch::ScmpArchMips64n32), ScmpArch::Mips64N32);
}

#[test]
fn flags_map_to_kernel_bits() {
    use LinuxSeccompFilterFlag as F;
    assert_eq!(flag(F::SeccompFilterFlagTsync), 1);
    assert_eq!(flag(F::SeccompFilterFlagLog), 2);
    assert_eq!(flag(F::SeccompFilterFlagSpecAllow), 4);
    assert_eq!(flag(F::SeccompFilterFlagWaitKillableRecv), 32);
    assert_eq!(flag_names(1 | 8 | 16), "TSYNC|NEW_LISTENER|TSYNC_ESRCH");
}

#[test]
fn operators_map_to_libseccomp() {
    let arg = |v: serde_json::Value| -> oci_spec::runtime::LinuxSeccompArg {
        serde_json::from_value(v).unwrap()
    };
    let cases = [
        ("SCMP_CMP_NE", ScmpCompareOp::NotEqual),
        ("SCMP_CMP_LT", ScmpCompareOp::Less),
        ("SCMP_CMP_LE", ScmpCompareOp::LessOrEqual),
        ("SCMP_CMP_EQ", ScmpCompareOp::Equal),
        ("SCMP_CMP_GE", ScmpCompareOp::GreaterEqual),
        ("SCMP_CMP_GT", ScmpCompareOp::Greater),
    ];
    for (op, want) in cases {
        let got = compare(&arg(json!({"index": 2, "value": 7, "op": op})), "f").unwrap();
        assert_eq!(got, libseccomp::ScmpArgCompare::new(2, want, 7), "{op}");
    }
    // MASKED_EQ: value is the mask, valueTwo the datum (0 when unset).
    let got = compare(
        &arg(json!({"index": 0, "value": 0xff00, "valueTwo": 0x100, "op": "SCMP_CMP_MASKED_EQ"})),
        "f",
    )
    .unwrap();
    let want = libseccomp::ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0xff00), 0x100);
    assert_eq!(got, want);
    let got = compare(
        &arg(json!({"index": 0, "value": 0x7e020000u64, "op": "SCMP_CMP_MASKED_EQ"})),
        "f",
    )
    .unwrap();
    let want = libseccomp::ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0x7e020000), 0);
    assert_eq!(got, want);
    let e = compare(
        &arg(json!({"index": 6, "value": 1, "op": "SCMP_CMP_EQ"})),
        "linux.seccomp.syscalls[0].args[1]",
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "linux.seccomp.syscalls[0].args[1]: index 6 is out of range (a system call has arguments 0 to 5)"
    );
}

// ------------------------------------------------------ errors naming fields

#[test]
fn check_json_names_the_field() {
    let base = || {
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        })
    };
    check_json(&base()).unwrap();
    let cases: [(&str, serde_json::Value, &str); 5] = [
        (
            "/defaultAction",
            json!("SCMP_ACT_FOO"),
            "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\"",
        ),
        (
            "/architectures/1",
            json!("SCMP_ARCH_FOO"),
            "linux.seccomp.architectures: unknown architecture \"SCMP_ARCH_FOO\"",
        ),
        (
            "/flags/0",
            json!("SECCOMP_FILTER_FLAG_FOO"),
            "linux.seccomp.flags: unknown flag \"SECCOMP_FILTER_FLAG_FOO\"",
        ),
        (
            "/syscalls/1/action",
            json!("SCMP_ACT_BAR"),
            "linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_BAR\"",
        ),
        (
            "/syscalls/1/args/1/op",
            json!("SCMP_CMP_SOMETIMES"),
            "linux.seccomp.syscalls[1].args[1].op: unknown operator \"SCMP_CMP_SOMETIMES\"",
        ),
    ];
    for (ptr, bad, want) in cases {
        let mut v = base();
        *v.pointer_mut(ptr).unwrap() = bad;
        assert_eq!(check_json(&v).unwrap_err().to_string(), want);
    }
}

fn prepare_err(v: serde_json::Value) -> String {
    prepare(Some(&spec(v)), &OFF).unwrap_err().to_string()
}

#[test]
fn prepare_errors_name_the_field() {
    assert_eq!(
        prepare_err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"})),
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
    );
    assert_eq!(
        prepare_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]})),
        "linux.seccomp.listenerPath: required because a rule uses SCMP_ACT_NOTIFY"
    );
    assert_eq!(
        prepare_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_LOG"},
                         {"names": [], "action": "SCMP_ACT_ERRNO"}]})),
        "linux.seccomp.syscalls[1].names: names no system call"
    );
    assert_eq!(
        prepare_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]})),
        "linux.seccomp.syscalls[0].names[1]: empty system call name"
    );
    assert_eq!(
        prepare_err(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 65536})),
        "linux.seccomp.defaultErrnoRet: 65536 does not fit in 16 bits (at most 65535)"
    );
    assert_eq!(
        prepare_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]})),
        "linux.seccomp.syscalls[0].args[0]: index 9 is out of range (a system call has arguments 0 to 5)"
    );
}

#[test]
fn architecture_libseccomp_lacks_is_an_error_naming_it() {
    // libseccomp 2.5 knows no loongarch64; 2.6 does. Either way the result
    // is consistent with what libseccomp reports.
    let r = prepare(
        Some(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_LOONGARCH64"]}))),
        &OFF,
    );
    if let Err(e) = r {
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "linux.seccomp.architectures: architecture \"SCMP_ARCH_LOONGARCH64\" is not supported"
            ),
            "{msg}"
        );
    }
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let p = prepare(
        Some(&spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["nope_not_a_syscall", "getpid", "socketcall", "arm_fadvise64_64"],
                 "action": "SCMP_ACT_ALLOW"},
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}
            ]
        }))),
        &OFF,
    )
    .unwrap();
    assert!(!p.is_empty());
    assert!(!p.uses_notify());
    assert_eq!(p.instruction_counts().len(), 1);
    // A native-only filter with a call of another ABI is fine too.
    prepare(
        Some(&spec(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["socketcall", "read"], "action": "SCMP_ACT_ALLOW"}]}))),
        &OFF,
    )
    .unwrap();
}

#[test]
fn prepared_can_cross_threads() {
    fn send<T: Send + Sync>() {}
    send::<Prepared>();
}

#[test]
fn nothing_to_do_is_empty() {
    let p = prepare(None, &OFF).unwrap();
    assert!(p.is_empty());
    assert!(p.install().unwrap().is_none());
    let p = prepare(None, &ON).unwrap();
    assert!(!p.is_empty());
    assert_eq!(p.instruction_counts()[0].0, "baseline");
}

#[test]
fn kernel_flags_are_probed() {
    let p = prepare(
        Some(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}))),
        &ON,
    );
    // WAIT_KILLABLE_RECV needs Linux 5.19; name it if this kernel is older.
    match p {
        Ok(p) => {
            let dbg = format!("{p:?}");
            // No listener: WAIT_KILLABLE_RECV is dropped; TSYNC|LOG|SPEC_ALLOW
            // on the profile, TSYNC|SPEC_ALLOW on the baseline.
            assert!(dbg.contains("flags 0x7"), "{dbg}");
            assert!(dbg.contains("flags 0x5"), "{dbg}");
        }
        Err(e) => assert_eq!(
            e.to_string(),
            "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported by this kernel"
        ),
    }
}

// ---------------------------------------------------------------- baseline

#[test]
fn baseline_list_has_unique_known_syscalls() {
    let mut seen = std::collections::HashSet::new();
    for (name, reason) in BASELINE {
        assert!(seen.insert(*name), "{name} listed twice");
        assert!(
            !reason.is_empty() && !reason.contains('\n'),
            "{name}: one-line reason"
        );
        let known = [ScmpArch::X8664, ScmpArch::Aarch64]
            .iter()
            .any(|a| ScmpSyscall::from_name_by_arch(name, *a).is_ok());
        assert!(known, "{name} is not a system call libseccomp knows");
    }
    assert_eq!(BASELINE.len(), RULES.len());
    for must in [
        "kexec_load",
        "bpf",
        "keyctl",
        "unshare",
        "clone",
        "clone3",
        "fsopen",
    ] {
        assert!(seen.contains(must), "{must} missing");
    }
    assert!(!seen.contains("name_to_handle_at"));
    // The conditional half is exactly the namespace and mount-API part.
    let gated: Vec<&str> = RULES
        .iter()
        .filter(|r| r.gate == Gate::Unprivileged)
        .map(|r| r.name)
        .collect();
    for g in [
        "unshare",
        "clone",
        "clone3",
        "fsopen",
        "move_mount",
        "mount_setattr",
    ] {
        assert!(gated.contains(&g), "{g} should be gated");
    }
    assert!(!gated.contains(&"keyctl"));
    let container: Vec<&str> = RULES
        .iter()
        .filter(|r| r.gate == Gate::Container)
        .map(|r| r.name)
        .collect();
    assert_eq!(container, ["personality"]);
    assert_eq!(baseline_for(&ON).len(), BASELINE.len());
    // A privileged filter that inherits nothing is boot's own: neither the
    // gated rules nor the container rules.
    assert_eq!(
        baseline_for(&ON_USERNS).len(),
        BASELINE.len() - gated.len() - container.len()
    );
    assert!(baseline_for(&OFF).is_empty());
}

#[test]
fn baseline_is_smaller_when_privileged() {
    let full = prepare(None, &ON).unwrap().instruction_counts()[0].1;
    let priv_ = prepare(None, &ON_ADMIN).unwrap().instruction_counts()[0].1;
    assert!(priv_ < full, "{priv_} < {full}");
    assert_eq!(
        prepare(None, &ON_USERNS).unwrap().instruction_counts()[0].1,
        priv_
    );
}

#[test]
fn send_to_listener_names_the_path_on_failure() {
    let (r, _w) = nix::unistd::pipe().unwrap();
    let e = send_to_listener(
        std::path::Path::new("/nonexistent/husk/agent.sock"),
        "",
        r.as_fd(),
        1,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "linux.seccomp.listenerPath /nonexistent/husk/agent.sock: connect: No such file or directory (os error 2)"
    );
}

// ---------------------------------------------------------- default profile

use super::default_profile::{ALLOWED, CONDITIONAL, DENIED, GATED};

/// Every group of the default profile with its names.
fn default_groups() -> Vec<(&'static str, &'static [&'static str])> {
    let mut out = Vec::new();
    for g in ALLOWED.iter().chain(CONDITIONAL) {
        out.push(("allowed", g.names));
    }
    for g in GATED {
        out.push(("gated", g.group.names));
    }
    for d in DENIED {
        out.push(("denied", d.group.names));
    }
    out
}

const ARCHES_KNOWN: &[ScmpArch] = &[
    ScmpArch::X8664,
    ScmpArch::X86,
    ScmpArch::X32,
    ScmpArch::Aarch64,
    ScmpArch::Arm,
    ScmpArch::S390X,
    ScmpArch::Ppc64Le,
    ScmpArch::Riscv64,
];

#[test]
fn default_profile_classifies_every_system_call_once() {
    let mut seen = std::collections::HashMap::new();
    for (kind, names) in default_groups() {
        for n in names {
            assert!(seen.insert(*n, kind).is_none(), "{n} is listed twice");
            let known = ARCHES_KNOWN
                .iter()
                .any(|a| ScmpSyscall::from_name_by_arch(n, *a).is_ok());
            assert!(known, "{n} is not a system call libseccomp knows");
        }
    }
    // Every number libseccomp names on x86_64 and 32-bit x86 is decided.
    for arch in [ScmpArch::X8664, ScmpArch::X86] {
        for nr in 0..1024 {
            if let Ok(name) = ScmpSyscall::from(nr).get_name_by_arch(arch) {
                assert!(
                    seen.contains_key(name.as_str()),
                    "{arch:?} {nr} {name} is in no list of the default profile"
                );
            }
        }
    }
}

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

#[test]
fn default_profile_compiles_for_any_capabilities() {
    let all: Vec<String> = ALL_CAPS.iter().map(|c| c.to_string()).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    for caps in [&[][..], SPEC_CAPS, &all[..]] {
        let profile = default_profile(Some(&process_with(caps)));
        let p = prepare(Some(&profile), &ON).unwrap();
        for (name, n) in p.instruction_counts() {
            assert!(n < BPF_MAXINSNS, "{name}: {n} instructions");
        }
    }
    // No process at all: no capabilities.
    let none = default_profile(None);
    assert_eq!(
        serde_json::to_value(&none).unwrap(),
        serde_json::to_value(default_profile(Some(&process_with(&[])))).unwrap()
    );
}

const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[test]
fn default_profile_is_documented() {
    // docs/security.md names every system call the default profile and
    // the baseline refuse (or gate), so the two cannot drift apart.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/security.md"),
    )
    .unwrap();
    let mut missing = Vec::new();
    let names = GATED
        .iter()
        .flat_map(|g| g.group.names)
        .chain(DENIED.iter().flat_map(|d| d.group.names))
        .chain(BASELINE.iter().map(|(n, _)| n));
    for n in names {
        if !doc.contains(&format!("`{n}`")) {
            missing.push(*n);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/security.md does not name {missing:?}"
    );
}

#[test]
fn notify_for_write_is_refused() {
    assert_eq!(
        prepare_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]})),
        "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
    );
    // Other calls may still be handed to an agent.
    prepare(
        Some(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))),
        &OFF,
    )
    .unwrap();
}

#[test]
fn plans_cross_the_wire_intact() {
    let profile = default_profile(Some(&process_with(SPEC_CAPS)));
    let p = prepare(Some(&profile), &ON).unwrap();
    let text = serde_json::to_vec(&p).unwrap();
    let back: Prepared = serde_json::from_slice(&text).unwrap();
    assert_eq!(format!("{back:?}"), format!("{p:?}"));
    // Malformed programs are refused, not loaded.
    let mut v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    v["filters"][0]["insns"] = json!("0g00000000000000");
    assert!(serde_json::from_value::<Prepared>(v.clone()).is_err());
    v["filters"][0]["insns"] = json!("");
    assert!(serde_json::from_value::<Prepared>(v.clone()).is_err());
    v["filters"][0]["insns"] = json!("0000");
    assert!(serde_json::from_value::<Prepared>(v).is_err());
}
