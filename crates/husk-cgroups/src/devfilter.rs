//! Device rules on cgroup v2: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
//! that answers each device access the way the v1 devices controller would
//! for the same `linux.resources.devices` list.
//!
//! v1 semantics: a cgroup starts allowing everything; a rule for all
//! devices ("a", no major/minor, "rwm") resets the default; every later
//! rule overrides earlier ones for the devices it names. The program checks
//! the rules after the last all-devices rule from the last to the first and
//! takes the first that matches; otherwise the default. An allow rule
//! matches an access whose every bit it grants; a deny rule matches an
//! access with any bit it forbids.

use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use husk_sys::bpf::{attach_device_program, load_device_program, Insn};

use super::{CgroupError, Result};

// The kernel's struct bpf_cgroup_dev_ctx: access_type (access << 16 |
// type), major, minor, all u32.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Opcodes (BPF_CLASS | BPF_OP/BPF_SIZE | BPF_SRC).
const LDX_MEM_W: u8 = 0x61;
const MOV64_K: u8 = 0xb7;
const MOV64_X: u8 = 0xbf;
const AND64_K: u8 = 0x57;
const RSH64_K: u8 = 0x77;
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |b, c| match c {
        'm' => b | ACC_MKNOD,
        'r' => b | ACC_READ,
        'w' => b | ACC_WRITE,
        _ => b,
    })
}

fn is_all_devices(r: &LinuxDeviceCgroup) -> bool {
    matches!(r.typ(), None | Some(LinuxDeviceType::A))
        && r.major().is_none_or(|m| m < 0)
        && r.minor().is_none_or(|m| m < 0)
        && access_bits(r.access().as_deref().unwrap_or("rwm")) == ACC_MKNOD | ACC_READ | ACC_WRITE
}

/// The program for `rules`.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let field = "linux.resources.devices";
    // Rules before the last all-devices rule no longer matter.
    let (default_allow, effective) = match rules.iter().rposition(is_all_devices) {
        Some(i) => (rules[i].allow(), &rules[i + 1..]),
        None => (true, rules),
    };
    // r2: access bits, r3: device type, r4: major, r5: minor.
    let mut out = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(MOV64_X, 3, 2, 0, 0),
        insn(AND64_K, 3, 0, 0, 0xffff),
        insn(RSH64_K, 2, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for (i, r) in effective.iter().enumerate().rev() {
        let access = access_bits(r.access().as_deref().unwrap_or("rwm"));
        // Each block ends with "r0 = verdict; exit"; `None` offsets jump
        // past the block.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        match r.typ() {
            None | Some(LinuxDeviceType::A) => {}
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => {
                block.push((insn(JNE_K, 3, 0, 0, DEV_CHAR), true))
            }
            Some(LinuxDeviceType::B) => block.push((insn(JNE_K, 3, 0, 0, DEV_BLOCK), true)),
            Some(LinuxDeviceType::P) => {
                return Err(CgroupError::unsupported(
                    format!("{field}[{}]", i + rules.len() - effective.len()),
                    "type \"p\" (FIFO) cannot be used in a device cgroup rule",
                ))
            }
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            block.push((insn(JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
        }
        block.push((insn(MOV64_X, 6, 2, 0, 0), false));
        if r.allow() {
            // Every requested bit must be granted.
            block.push((insn(AND64_K, 6, 0, 0, !access & 0x7), false));
            block.push((insn(JNE_K, 6, 0, 0, 0), true));
            block.push((insn(MOV64_K, 0, 0, 0, 1), false));
        } else {
            // Any forbidden bit denies.
            block.push((insn(AND64_K, 6, 0, 0, access), false));
            block.push((insn(JEQ_K, 6, 0, 0, 0), true));
            block.push((insn(MOV64_K, 0, 0, 0, 0), false));
        }
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let n = block.len();
        for (j, (mut ins, to_next)) in block.into_iter().enumerate() {
            if to_next {
                ins.off = (n - j - 1) as i16;
            }
            out.push(ins);
        }
    }
    out.push(insn(MOV64_K, 0, 0, 0, default_allow as i32));
    out.push(insn(EXIT, 0, 0, 0, 0));
    Ok(out)
}

/// Load the program for `rules` and attach it to the cgroup v2 directory
/// `dir`. (bpf(2) is denied to the sandbox by its own seccomp filter: the
/// container layer does this when it creates the cgroup.)
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let field = "linux.resources.devices";
    let prog = program(rules)?;
    let fd = load_device_program(&prog).map_err(|e| {
        CgroupError::unsupported(field, format!("load the cgroup v2 device filter: {e}"))
    })?;
    let cg = std::fs::File::open(dir)
        .map_err(|e| CgroupError::unsupported(field, format!("open {}: {}", dir.display(), e)))?;
    attach_device_program(cg.as_fd(), fd.as_fd()).map_err(|e| {
        CgroupError::unsupported(
            field,
            format!(
                "attach the device filter to {}: {}",
                dir.display(),
                husk_sys::errno_text(&e)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    /// Run the program on one access, in plain Rust (a tiny interpreter of
    /// the few opcodes we emit), to check its logic without root.
    fn eval(prog: &[Insn], dev_type: i32, access: i32, major: i32, minor: i32) -> bool {
        let ctx = [
            ((access << 16) | dev_type) as u64,
            major as u64,
            minor as u64,
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[(i.off / 4) as usize],
                MOV64_K => r[dst] = i.imm as i64 as u64,
                MOV64_X => r[dst] = r[src],
                AND64_K => r[dst] &= i.imm as i64 as u64,
                RSH64_K => r[dst] >>= i.imm,
                JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize
                    }
                }
                JEQ_K => {
                    if r[dst] == i.imm as i64 as u64 {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0] == 1,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn default_spec_rules() {
        let p = program(&rules(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}
        ])))
        .unwrap();
        let rw = ACC_READ | ACC_WRITE;
        assert!(eval(&p, DEV_CHAR, rw, 1, 3), "/dev/null");
        assert!(!eval(&p, DEV_CHAR, rw, 1, 5), "/dev/zero is not allowed");
        assert!(
            eval(&p, DEV_CHAR, ACC_MKNOD, 8, 0),
            "mknod of any char device"
        );
        assert!(
            !eval(&p, DEV_BLOCK, ACC_MKNOD, 8, 0),
            "but not of block devices"
        );
        assert!(!eval(&p, DEV_BLOCK, ACC_READ, 8, 0), "reading a disk");
        assert!(eval(&p, DEV_CHAR, ACC_WRITE, 136, 4), "a pty");
        assert!(!eval(&p, DEV_CHAR, ACC_READ, 137, 4), "another major");
    }

    #[test]
    fn later_rules_win_and_no_rules_allow() {
        let p = program(&rules(serde_json::json!([
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "w"}
        ])))
        .unwrap();
        assert!(eval(&p, DEV_CHAR, ACC_READ, 1, 5));
        assert!(!eval(&p, DEV_CHAR, ACC_WRITE, 1, 5));
        assert!(
            eval(&p, DEV_BLOCK, ACC_READ, 8, 0),
            "default allow without a deny-all"
        );
        let p = program(&[]).unwrap();
        assert!(eval(&p, DEV_BLOCK, ACC_WRITE, 8, 0));
    }

    #[test]
    fn fifo_rules_are_refused() {
        let e = program(&rules(
            serde_json::json!([{"allow": true, "type": "p", "access": "rwm"}]),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.resources.devices[0]"), "{e}");
    }
}
