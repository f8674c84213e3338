//! Hand-written classic BPF for the two checks libseccomp's rule language
//! cannot express, placed in front of a program libseccomp generated:
//!
//! - [`enosys_above`]: a system call number higher than the highest one a
//!   profile names fails with ENOSYS (runc's behaviour), so that libc
//!   falls back from a call newer than the profile instead of failing on
//!   the profile's default errno.
//! - [`personality_guard`]: `personality(2)` only with the values
//!   [`PERSONALITY_ALLOWED`] describes. libseccomp can only OR conditions
//!   on one argument, and "none of these values" needs an AND.
//!
//! Each block only reads `arch`, `nr` and (the guard) the first argument,
//! and either returns or falls through to the instruction after it; the
//! program behind it starts by loading what it needs itself, so blocks and
//! a libseccomp program can simply be concatenated. Jumps are forward
//! only, as the kernel requires. The kernel's per-filter action cache
//! still works: for every number but `personality`'s, the result depends
//! on `arch` and `nr` alone.

use libc::sock_filter;
use libseccomp::ScmpArch;

// Classic BPF opcodes (linux/bpf_common.h): class | size/op | mode/source.
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
const BPF_ALU_AND_K: u16 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K (0)
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGT_K: u16 = 0x05 | 0x20; // BPF_JMP | BPF_JGT | BPF_K
const BPF_JSET_K: u16 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

// Offsets in struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0: u32 = 16;

/// x32 system calls come with this bit set in `nr`, under the x86_64
/// audit architecture.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// `personality(2)` values a container's programs may set: `PER_LINUX`
/// or `PER_LINUX32` (what `setarch`/`linux32` switch between), with or
/// without `UNAME26` (`setarch --uname-2.6`) and `ADDR_NO_RANDOMIZE`
/// (`setarch -R`, gdb, rr), plus `0xffffffff`, which only asks for the
/// current value. Every other flag is refused: `READ_IMPLIES_EXEC` makes
/// all readable memory executable, `MMAP_PAGE_ZERO` maps page 0 (both undo
/// exploit mitigations), and the other execution domains carry such flags.
pub const PERSONALITY_ALLOWED: &[u64] = &[
    0x0000_0000,
    0x0000_0008,
    0x0002_0000,
    0x0002_0008,
    0x0004_0000,
    0x0004_0008,
    0x0006_0000,
    0x0006_0008,
    0xffff_ffff,
];
/// The bits [`PERSONALITY_ALLOWED`] combines (the query value aside).
const PERSONALITY_BITS: u32 = 0x0006_0008;
const PERSONALITY_QUERY: u32 = 0xffff_ffff;

/// The kernel's AUDIT_ARCH_* value of an architecture (linux/audit.h:
/// ELF machine, 0x80000000 for 64-bit, 0x40000000 for little-endian), for
/// the ones husk knows. x32 shares x86_64's.
pub(crate) fn audit_arch(a: ScmpArch) -> Option<u32> {
    const B64: u32 = 0x8000_0000;
    const LE: u32 = 0x4000_0000;
    Some(match a {
        ScmpArch::X8664 | ScmpArch::X32 => 62 | B64 | LE,
        ScmpArch::X86 => 3 | LE,
        ScmpArch::Aarch64 => 183 | B64 | LE,
        ScmpArch::Arm => 40 | LE,
        ScmpArch::Riscv64 => 243 | B64 | LE,
        ScmpArch::Loongarch64 => 258 | B64 | LE,
        ScmpArch::Ppc64Le => 21 | B64 | LE,
        ScmpArch::Ppc64 => 21 | B64,
        ScmpArch::Ppc => 20,
        ScmpArch::S390X => 22 | B64,
        ScmpArch::S390 => 22,
        _ => return None,
    })
}

fn little_endian(audit: u32) -> bool {
    audit & 0x4000_0000 != 0
}

/// A jump target: a label, bound to a position later.
#[derive(Clone, Copy, Debug)]
struct Label(usize);

struct Insn {
    code: u16,
    k: u32,
    jt: Option<Label>,
    jf: Option<Label>,
}

/// A tiny assembler with forward labels. `None` as a target means the next
/// instruction; a label bound at the end means "after this block".
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    fn load(&mut self, offset: u32) {
        self.insns.push(Insn {
            code: BPF_LD_W_ABS,
            k: offset,
            jt: None,
            jf: None,
        });
    }

    fn and(&mut self, k: u32) {
        self.insns.push(Insn {
            code: BPF_ALU_AND_K,
            k,
            jt: None,
            jf: None,
        });
    }

    fn jump(&mut self, code: u16, k: u32, jt: Option<Label>, jf: Option<Label>) {
        self.insns.push(Insn { code, k, jt, jf });
    }

    fn ret(&mut self, k: u32) {
        self.insns.push(Insn {
            code: BPF_RET_K,
            k,
            jt: None,
            jf: None,
        });
    }

    /// Resolve the labels. Panics on an unbound label or a jump longer than
    /// BPF's 8-bit offsets: both are bugs in the code that built the block,
    /// whose size does not depend on any input but the list of arches.
    fn finish(self) -> Vec<sock_filter> {
        let offset = |at: usize, l: Option<Label>| -> u8 {
            let Some(l) = l else { return 0 };
            let to = self.labels[l.0].expect("BPF label bound");
            assert!(to > at, "BPF jumps go forward");
            u8::try_from(to - at - 1).expect("BPF jump within 255 instructions")
        };
        self.insns
            .iter()
            .enumerate()
            .map(|(i, ins)| sock_filter {
                code: ins.code,
                jt: offset(i, ins.jt),
                jf: offset(i, ins.jf),
                k: ins.k,
            })
            .collect()
    }
}

/// One architecture's limit for [`enosys_above`]: numbers above `max`
/// fail with ENOSYS. For x86_64, `x32_max` is the limit for x32 numbers
/// (those with [`X32_SYSCALL_BIT`]; None leaves them alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub audit: u32,
    pub max: Option<u32>,
    pub x32_max: Option<u32>,
}

/// The ENOSYS block: for each limit, a number of that architecture above
/// its highest named one returns ERRNO(ENOSYS); everything else falls
/// through.
pub(crate) fn enosys_above(limits: &[Limit]) -> Vec<sock_filter> {
    if limits
        .iter()
        .all(|l| l.max.is_none() && l.x32_max.is_none())
    {
        return Vec::new();
    }
    let mut a = Asm::default();
    let enosys = a.label();
    let end = a.label();
    a.load(OFF_ARCH);
    for l in limits {
        if l.max.is_none() && l.x32_max.is_none() {
            continue;
        }
        let next = a.label();
        a.jump(BPF_JEQ_K, l.audit, None, Some(next));
        a.load(OFF_NR);
        let native = a.label();
        if l.audit == audit_arch(ScmpArch::X8664).unwrap_or(0) {
            a.jump(BPF_JSET_K, X32_SYSCALL_BIT, None, Some(native));
            match l.x32_max {
                Some(m) => a.jump(BPF_JGT_K, m, Some(enosys), Some(end)),
                None => a.jump(BPF_JEQ_K, 0, Some(end), Some(end)),
            }
        }
        a.bind(native);
        match l.max {
            Some(m) => a.jump(BPF_JGT_K, m, Some(enosys), Some(end)),
            None => a.jump(BPF_JEQ_K, 0, Some(end), Some(end)),
        }
        // Not this architecture: A still holds `arch` for the next test.
        a.bind(next);
    }
    // No architecture matched: on to the program.
    a.jump(BPF_JEQ_K, 0, Some(end), Some(end));
    a.bind(enosys);
    a.ret(SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    a.bind(end);
    a.finish()
}

/// One architecture for [`personality_guard`]: its audit value and the
/// number of `personality` on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Personality {
    pub audit: u32,
    pub nr: u32,
}

/// The personality block: `personality(v)` with `v` outside
/// [`PERSONALITY_ALLOWED`] returns ERRNO(`errno`). The argument is an
/// `unsigned int`; a value with any of its upper 32 bits set is refused
/// too (the kernel would ignore them, a filter must not).
pub(crate) fn personality_guard(arches: &[Personality], errno: u32) -> Vec<sock_filter> {
    if arches.is_empty() {
        return Vec::new();
    }
    let mut a = Asm::default();
    let deny = a.label();
    let end = a.label();
    // Group the numbers by audit architecture (x32 shares x86_64's).
    let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
    for p in arches {
        match groups.iter_mut().find(|(audit, _)| *audit == p.audit) {
            Some((_, nrs)) => nrs.push(p.nr),
            None => groups.push((p.audit, vec![p.nr])),
        }
    }
    let mut checks = Vec::new();
    a.load(OFF_ARCH);
    for (audit, nrs) in &groups {
        let next = a.label();
        let check = a.label();
        a.jump(BPF_JEQ_K, *audit, None, Some(next));
        a.load(OFF_NR);
        for (i, nr) in nrs.iter().enumerate() {
            let other = if i + 1 == nrs.len() { Some(end) } else { None };
            a.jump(BPF_JEQ_K, *nr, Some(check), other);
        }
        // Not this architecture: A still holds `arch` for the next test.
        a.bind(next);
        checks.push((check, little_endian(*audit)));
    }
    a.jump(BPF_JEQ_K, 0, Some(end), Some(end));
    for (check, le) in checks {
        let (lo, hi) = if le {
            (OFF_ARG0, OFF_ARG0 + 4)
        } else {
            (OFF_ARG0 + 4, OFF_ARG0)
        };
        a.bind(check);
        a.load(hi);
        a.jump(BPF_JEQ_K, 0, None, Some(deny));
        a.load(lo);
        a.jump(BPF_JEQ_K, PERSONALITY_QUERY, Some(end), None);
        a.and(!PERSONALITY_BITS);
        a.jump(BPF_JEQ_K, 0, Some(end), Some(deny));
    }
    a.bind(deny);
    a.ret(SECCOMP_RET_ERRNO | (errno & 0xffff));
    a.bind(end);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a block as the kernel would for (arch, nr, arg0): Some(ret) if it
    /// returns, None if it falls through.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, arg0: u64) -> Option<u32> {
        let word = |off: u32| -> u32 {
            match off {
                OFF_NR => nr,
                OFF_ARCH => arch,
                16 => arg0 as u32,
                20 => (arg0 >> 32) as u32,
                _ => panic!("load of offset {off}"),
            }
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        while pc < prog.len() {
            let i = prog[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => acc = word(i.k),
                BPF_ALU_AND_K => acc &= i.k,
                BPF_RET_K => return Some(i.k),
                BPF_JEQ_K | BPF_JGT_K | BPF_JSET_K => {
                    let t = match i.code {
                        BPF_JEQ_K => acc == i.k,
                        BPF_JGT_K => acc > i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if t { i.jt } else { i.jf });
                }
                c => panic!("opcode {c:#x}"),
            }
        }
        None
    }

    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;
    const ENOSYS: Option<u32> = Some(0x0005_0000 | 38);

    #[test]
    fn enosys_above_the_highest_named_number() {
        let p = enosys_above(&[
            Limit {
                audit: X86_64,
                max: Some(439),
                x32_max: Some(X32_SYSCALL_BIT | 400),
            },
            Limit {
                audit: I386,
                max: Some(300),
                x32_max: None,
            },
        ]);
        assert_eq!(run(&p, X86_64, 439, 0), None);
        assert_eq!(run(&p, X86_64, 440, 0), ENOSYS);
        assert_eq!(run(&p, X86_64, 1000, 0), ENOSYS);
        assert_eq!(run(&p, X86_64, 0, 0), None);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 400, 0), None);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 401, 0), ENOSYS);
        assert_eq!(run(&p, X86_64, u32::MAX, 0), ENOSYS);
        assert_eq!(run(&p, I386, 300, 0), None);
        assert_eq!(run(&p, I386, 301, 0), ENOSYS);
        // Another architecture: not this block's business.
        assert_eq!(run(&p, 0xc000_00b7, 5000, 0), None);
        // x32 not in the profile: its numbers go on to the program.
        let p = enosys_above(&[Limit {
            audit: X86_64,
            max: Some(10),
            x32_max: None,
        }]);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 5000, 0), None);
        assert_eq!(run(&p, X86_64, 11, 0), ENOSYS);
        assert!(enosys_above(&[]).is_empty());
    }

    #[test]
    fn personality_values() {
        let p = personality_guard(
            &[
                Personality {
                    audit: X86_64,
                    nr: 135,
                },
                Personality {
                    audit: X86_64,
                    nr: X32_SYSCALL_BIT | 135,
                },
                Personality {
                    audit: I386,
                    nr: 136,
                },
            ],
            1,
        );
        let eperm = Some(0x0005_0001);
        for v in PERSONALITY_ALLOWED {
            assert_eq!(run(&p, X86_64, 135, *v), None, "{v:#x}");
            assert_eq!(run(&p, I386, 136, *v), None, "{v:#x}");
            assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 135, *v), None, "{v:#x}");
        }
        for v in [
            0x0040_0000u64, // READ_IMPLIES_EXEC
            0x0010_0000,    // MMAP_PAGE_ZERO
            0x0000_0001,    // PER_SVR4's domain
            0x0400_0008,
            0x0800_0000, // ADDR_LIMIT_3GB
            0xffff_fffe,
            0x1_0000_0000,
            0xffff_ffff_ffff_ffff,
        ] {
            assert_eq!(run(&p, X86_64, 135, v), eperm, "{v:#x}");
        }
        assert_eq!(run(&p, I386, 136, 0x0040_0000), eperm);
        // Other calls, other arches: through.
        assert_eq!(run(&p, X86_64, 136, 0x0040_0000), None);
        assert_eq!(run(&p, I386, 135, 0x0040_0000), None);
        assert_eq!(run(&p, 0xc000_00b7, 92, 0x0040_0000), None);
    }
}
