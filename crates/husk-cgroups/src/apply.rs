//! `linux.resources` → cgroup files.
//!
//! [`CgroupPath::apply`] first *plans* every write (resolving which hierarchy serves each
//! field, converting values for cgroup v2, validating page sizes, checking what the host
//! supports) and only then performs the writes in order. So a field the host cannot honour
//! is reported before anything was changed; only OS-level refusals surface half-way.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
    LinuxNetwork, LinuxResources,
};

use super::util;
use super::{CgroupDir, CgroupError, CgroupPath, Result};

const RES: &str = "linux.resources";

/// One planned write of `value` into the file `path`, on behalf of spec field `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    pub field: String,
    pub path: PathBuf,
    pub value: String,
}

impl CgroupPath {
    /// Apply every `linux.resources` field (see the module documentation of each group in
    /// the source). A field the host cannot honour is an error naming it; `-1` means
    /// unlimited everywhere. Usable again for `update`.
    pub fn apply(&self, res: &LinuxResources) -> Result<()> {
        for op in self.plan(res)? {
            util::write_field(&op.field, &op.path, &op.value)?;
        }
        Ok(())
    }

    /// The writes `apply` would do, in order.
    pub(crate) fn plan(&self, res: &LinuxResources) -> Result<Vec<Op>> {
        let mut p = Planner {
            cg: self,
            ops: Vec::new(),
        };
        if let Some(cpu) = res.cpu() {
            p.cpu(cpu)?;
        }
        if let Some(m) = res.memory() {
            p.memory(m)?;
        }
        if let Some(pids) = res.pids() {
            let d = p.dir("pids", &format!("{RES}.pids.limit"))?;
            let limit = pids.limit();
            let v = if limit <= 0 {
                "max".to_string()
            } else {
                limit.to_string()
            };
            p.push(format!("{RES}.pids.limit"), d, "pids.max", v);
        }
        if let Some(b) = res.block_io() {
            p.block_io(b)?;
        }
        if let Some(h) = res.hugepage_limits() {
            p.hugepages(h)?;
        }
        if let Some(n) = res.network() {
            p.network(n)?;
        }
        if let Some(d) = res.devices() {
            p.devices(d)?;
        }
        if let Some(r) = res.rdma() {
            p.rdma(r)?;
        }
        if let Some(u) = res.unified() {
            p.unified(u)?;
        }
        Ok(p.ops)
    }
}

struct Planner<'a> {
    cg: &'a CgroupPath,
    ops: Vec<Op>,
}

/// `-1` (any negative) → "max", else the number.
fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// v1 files take "-1" for unlimited.
fn v1_num(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// cgroup v1 `cpu.shares` (2..262144) → v2 `cpu.weight` (1..10000); 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio weight (10..1000) → v2 `io.weight` (1..10000).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// The `cpu.max` line for quota/period. `current` is the file's present content, used to
/// keep the half that is not being changed. `None` when neither is set.
pub fn cpu_max_value(
    quota: Option<i64>,
    period: Option<u64>,
    current: Option<&str>,
) -> Option<String> {
    let quota = quota.filter(|q| *q != 0);
    let period = period.filter(|p| *p != 0);
    if quota.is_none() && period.is_none() {
        return None;
    }
    let mut cur = current.unwrap_or("").split_whitespace();
    let cur_quota = cur.next().unwrap_or("max").to_string();
    let cur_period = cur
        .next()
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(100_000);
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_string(),
        None => cur_quota,
    };
    Some(format!("{q} {}", period.unwrap_or(cur_period)))
}

/// OCI `memory.swap` is memory+swap; cgroup v2 `memory.swap.max` is swap alone.
/// Returns the value to write, `None` for "leave alone", or a reason it is invalid.
pub fn swap_to_v2(swap: i64, limit: Option<i64>) -> std::result::Result<Option<String>, String> {
    if swap < 0 {
        return Ok(Some("max".into()));
    }
    if swap == 0 {
        return Ok(None);
    }
    match limit.filter(|l| *l != 0) {
        None => Err("setting swap on cgroup v2 requires linux.resources.memory.limit".into()),
        Some(l) if l < 0 => Err(format!(
            "memory+swap limit {swap} cannot be combined with an unlimited memory limit"
        )),
        Some(l) if swap < l => Err(format!(
            "memory+swap limit {swap} is below the memory limit {l}"
        )),
        Some(l) => Ok(Some((swap - l).to_string())),
    }
}

/// Hugepage sizes the kernel supports, in runc's naming ("2MB", "1GB", "64KB"), sorted by size.
pub fn hugepage_sizes() -> Vec<String> {
    let mut kbs: Vec<u64> = fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name();
                    let n = n.to_str()?;
                    n.strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    kbs.sort_unstable();
    kbs.into_iter().map(size_name).collect()
}

fn size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb & ((1 << 20) - 1) == 0 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb & ((1 << 10) - 1) == 0 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

/// A spec page size ("2MB", "2mb", "2048kB", "1GB", "64KiB") in runc's canonical form
/// ("2MB"), or `None` if unparsable.
pub fn normalize_page_size(s: &str) -> Option<String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let unit = unit.to_ascii_uppercase();
    let kb = match unit.trim_end_matches('B').trim_end_matches('I') {
        "K" => n,
        "M" => n.checked_mul(1 << 10)?,
        "G" => n.checked_mul(1 << 20)?,
        "T" => n.checked_mul(1 << 30)?,
        _ => return None,
    };
    if kb == 0 {
        return None;
    }
    Some(size_name(kb))
}

/// Is `rule` "deny everything" (`{allow:false, type:a}` without numbers, all access)?
fn is_deny_all(rule: &LinuxDeviceCgroup) -> bool {
    !rule.allow()
        && matches!(rule.typ(), None | Some(LinuxDeviceType::A))
        && rule.major().is_none_or_negative()
        && rule.minor().is_none_or_negative()
        && rule
            .access()
            .as_deref()
            .map(|a| a.is_empty() || (a.contains('r') && a.contains('w') && a.contains('m')))
            .unwrap_or(true)
}

trait NoneOrNegative {
    fn is_none_or_negative(&self) -> bool;
}

impl NoneOrNegative for Option<i64> {
    fn is_none_or_negative(&self) -> bool {
        self.map(|v| v < 0).unwrap_or(true)
    }
}

/// The v1 `devices.allow`/`devices.deny` line for a rule ("c 1:3 rwm", "a *:* rwm").
fn device_line(rule: &LinuxDeviceCgroup, field: &str) -> Result<String> {
    let t = match rule.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::P) => {
            return Err(CgroupError::unsupported(
                field,
                "type \"p\" (FIFO) cannot be used in a device cgroup rule",
            ))
        }
    };
    let num = |v: Option<i64>| match v {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    let access = match rule.access().as_deref() {
        None | Some("") => "rwm",
        Some(a) => {
            if a.chars().any(|c| !matches!(c, 'r' | 'w' | 'm')) {
                return Err(CgroupError::unsupported(
                    field,
                    format!("invalid access {a:?} (expected a combination of r, w and m)"),
                ));
            }
            a
        }
    };
    Ok(format!(
        "{t} {}:{} {access}",
        num(rule.major()),
        num(rule.minor())
    ))
}

impl<'a> Planner<'a> {
    fn push(
        &mut self,
        field: impl Into<String>,
        dir: &CgroupDir,
        file: &str,
        value: impl Into<String>,
    ) {
        self.ops.push(Op {
            field: field.into(),
            path: dir.path.join(file),
            value: value.into(),
        });
    }

    /// The directory serving `controller`, or an error naming `field`.
    fn dir(&self, controller: &str, field: &str) -> Result<&'a CgroupDir> {
        self.cg.find(controller).ok_or_else(|| {
            let msg = if husk_sys::ids::is_host_root() {
                format!("the {controller} controller is not available on this host")
            } else {
                // Rootless: only hierarchies the caller may write were kept.
                format!(
                    "uid {} has no cgroup with the {controller} controller that it may write (a delegated cgroup); as a user other than root, limits need one",
                    nix::unistd::geteuid()
                )
            };
            CgroupError::unsupported(field, msg)
        })
    }

    fn cpu(&mut self, cpu: &LinuxCpu) -> Result<()> {
        let f = |n: &str| format!("{RES}.cpu.{n}");
        let any_cpu = cpu.shares().is_some_and(|s| s != 0)
            || cpu.quota().is_some_and(|q| q != 0)
            || cpu.period().is_some_and(|p| p != 0)
            || cpu.burst().is_some()
            || cpu.idle().is_some()
            || cpu.realtime_runtime().is_some_and(|r| r != 0)
            || cpu.realtime_period().is_some_and(|p| p != 0);
        if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
            let d = self.dir("cpuset", &f("cpus"))?;
            self.push(f("cpus"), d, "cpuset.cpus", cpus);
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
            let d = self.dir("cpuset", &f("mems"))?;
            self.push(f("mems"), d, "cpuset.mems", mems);
        }
        if !any_cpu {
            return Ok(());
        }
        let first = if cpu.shares().is_some() {
            "shares"
        } else if cpu.quota().is_some() {
            "quota"
        } else {
            "period"
        };
        let d = self.dir("cpu", &f(first))?;
        if d.v2 {
            if let Some(s) = cpu.shares().filter(|s| *s != 0) {
                self.push(
                    f("shares"),
                    d,
                    "cpu.weight",
                    shares_to_weight(s).to_string(),
                );
            }
            let need_current = cpu.quota().filter(|q| *q != 0).is_none()
                || cpu.period().filter(|p| *p != 0).is_none();
            let current = if need_current {
                util::read_raw(&d.path.join("cpu.max")).ok()
            } else {
                None
            };
            if let Some(v) = cpu_max_value(cpu.quota(), cpu.period(), current.as_deref()) {
                let field = if cpu.quota().is_some() {
                    f("quota")
                } else {
                    f("period")
                };
                self.push(field, d, "cpu.max", v);
            }
            if let Some(b) = cpu.burst() {
                self.push(f("burst"), d, "cpu.max.burst", b.to_string());
            }
            if cpu.realtime_runtime().is_some_and(|r| r != 0) {
                return Err(CgroupError::unsupported(
                    f("realtimeRuntime"),
                    "real-time CPU limits are not supported on cgroup v2",
                ));
            }
            if cpu.realtime_period().is_some_and(|p| p != 0) {
                return Err(CgroupError::unsupported(
                    f("realtimePeriod"),
                    "real-time CPU limits are not supported on cgroup v2",
                ));
            }
        } else {
            if let Some(s) = cpu.shares().filter(|s| *s != 0) {
                self.push(f("shares"), d, "cpu.shares", s.to_string());
            }
            if let Some(p) = cpu.period().filter(|p| *p != 0) {
                self.push(f("period"), d, "cpu.cfs_period_us", p.to_string());
            }
            if let Some(q) = cpu.quota().filter(|q| *q != 0) {
                self.push(f("quota"), d, "cpu.cfs_quota_us", v1_num(q));
            }
            if let Some(b) = cpu.burst() {
                self.push(f("burst"), d, "cpu.cfs_burst_us", b.to_string());
            }
            if let Some(p) = cpu.realtime_period().filter(|p| *p != 0) {
                self.push(f("realtimePeriod"), d, "cpu.rt_period_us", p.to_string());
            }
            if let Some(r) = cpu.realtime_runtime().filter(|r| *r != 0) {
                self.push(f("realtimeRuntime"), d, "cpu.rt_runtime_us", v1_num(r));
            }
        }
        if let Some(i) = cpu.idle() {
            self.push(f("idle"), d, "cpu.idle", i.to_string());
        }
        Ok(())
    }

    #[allow(deprecated)] // reading `kernel` only to warn that it is ignored
    fn memory(&mut self, m: &LinuxMemory) -> Result<()> {
        let f = |n: &str| format!("{RES}.memory.{n}");
        if m.kernel().is_some() {
            tracing::warn!("{} is deprecated and ignored", f("kernel"));
        }
        if m.kernel_tcp().is_some() {
            tracing::warn!("{} is deprecated and ignored", f("kernelTCP"));
        }
        let limit = m.limit().filter(|l| *l != 0);
        let swap = m.swap().filter(|s| *s != 0);
        let reservation = m.reservation().filter(|r| *r != 0);
        let anything = limit.is_some()
            || swap.is_some()
            || reservation.is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true)
            || m.use_hierarchy().is_some();
        if !anything {
            return Ok(());
        }
        let first = if limit.is_some() {
            "limit"
        } else if swap.is_some() {
            "swap"
        } else {
            "reservation"
        };
        let d = self.dir("memory", &f(first))?;
        if let (Some(l), Some(true)) = (limit, m.check_before_update()) {
            let usage_file = if d.v2 {
                "memory.current"
            } else {
                "memory.usage_in_bytes"
            };
            if let Some(usage) = util::read_u64(&d.path.join(usage_file)) {
                if l > 0 && usage > l as u64 {
                    return Err(CgroupError::unsupported(
                        f("limit"),
                        format!(
                            "new limit {l} is below the current usage {usage} (checkBeforeUpdate)"
                        ),
                    ));
                }
            }
        }
        if d.v2 {
            self.memory_v2(m, d, limit, swap, reservation)
        } else {
            self.memory_v1(m, d, limit, swap, reservation)
        }
    }

    fn memory_v1(
        &mut self,
        m: &LinuxMemory,
        d: &CgroupDir,
        limit: Option<i64>,
        swap: Option<i64>,
        reservation: Option<i64>,
    ) -> Result<()> {
        let f = |n: &str| format!("{RES}.memory.{n}");
        let memsw = d.path.join("memory.memsw.limit_in_bytes");
        if let Some(r) = reservation {
            self.push(f("reservation"), d, "memory.soft_limit_in_bytes", v1_num(r));
        }
        let memsw_exists = swap.is_some() && memsw.exists();
        if let (Some(s), false) = (swap, memsw_exists) {
            if s >= 0 && Some(s) != limit {
                return Err(CgroupError::unsupported(
                    f("swap"),
                    format!(
                        "swap accounting is not enabled on this host ({} is missing)",
                        memsw.display()
                    ),
                ));
            }
        }
        match (limit, swap.filter(|_| memsw_exists)) {
            (Some(l), Some(s)) => {
                if s >= 0 && (l < 0 || s < l) {
                    return Err(CgroupError::unsupported(
                        f("swap"),
                        format!("memory+swap limit {s} is below the memory limit {l}"),
                    ));
                }
                // The kernel insists on limit <= memsw at every moment: raise memsw before
                // the limit when memsw grows, lower the limit first when it shrinks.
                let cur = util::read_u64(&memsw).unwrap_or(u64::MAX);
                if s < 0 || cur < s as u64 {
                    self.push(f("swap"), d, "memory.memsw.limit_in_bytes", v1_num(s));
                    self.push(f("limit"), d, "memory.limit_in_bytes", v1_num(l));
                } else {
                    self.push(f("limit"), d, "memory.limit_in_bytes", v1_num(l));
                    self.push(f("swap"), d, "memory.memsw.limit_in_bytes", v1_num(s));
                }
            }
            (Some(l), None) if l < 0 && memsw.exists() => {
                // Lifting the limit lifts memory+swap too, first (the kernel
                // insists on limit <= memsw), as runc's update does.
                self.push(f("swap"), d, "memory.memsw.limit_in_bytes", v1_num(-1));
                self.push(f("limit"), d, "memory.limit_in_bytes", v1_num(l));
            }
            (Some(l), None) => self.push(f("limit"), d, "memory.limit_in_bytes", v1_num(l)),
            (None, Some(s)) => self.push(f("swap"), d, "memory.memsw.limit_in_bytes", v1_num(s)),
            (None, None) => {}
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(CgroupError::unsupported(
                    f("swappiness"),
                    format!("{s} is out of range 0-100"),
                ));
            }
            self.push(f("swappiness"), d, "memory.swappiness", s.to_string());
        }
        if m.disable_oom_killer() == Some(true) {
            self.push(f("disableOOMKiller"), d, "memory.oom_control", "1");
        }
        if let Some(h) = m.use_hierarchy() {
            self.push(
                f("useHierarchy"),
                d,
                "memory.use_hierarchy",
                if h { "1" } else { "0" },
            );
        }
        Ok(())
    }

    fn memory_v2(
        &mut self,
        m: &LinuxMemory,
        d: &CgroupDir,
        limit: Option<i64>,
        swap: Option<i64>,
        reservation: Option<i64>,
    ) -> Result<()> {
        let f = |n: &str| format!("{RES}.memory.{n}");
        if let Some(r) = reservation {
            self.push(f("reservation"), d, "memory.low", max_or(r));
        }
        // swap.max before max: a lowered limit must not leave room to spill into swap
        if let Some(s) = swap {
            match swap_to_v2(s, limit) {
                Err(msg) => return Err(CgroupError::unsupported(f("swap"), msg)),
                Ok(Some(v)) => {
                    let file = d.path.join("memory.swap.max");
                    if !file.exists() {
                        if v != "max" {
                            return Err(CgroupError::unsupported(
                                f("swap"),
                                format!(
                                    "swap accounting is not enabled on this host ({} is missing)",
                                    file.display()
                                ),
                            ));
                        }
                    } else {
                        self.push(f("swap"), d, "memory.swap.max", v);
                    }
                }
                Ok(None) => {}
            }
        }
        if let Some(l) = limit {
            self.push(f("limit"), d, "memory.max", max_or(l));
        }
        if m.swappiness().is_some() {
            return Err(CgroupError::unsupported(
                f("swappiness"),
                "not supported on cgroup v2",
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(CgroupError::unsupported(
                f("disableOOMKiller"),
                "not supported on cgroup v2",
            ));
        }
        if m.use_hierarchy() == Some(false) {
            return Err(CgroupError::unsupported(
                f("useHierarchy"),
                "cgroup v2 is always hierarchical",
            ));
        }
        Ok(())
    }

    fn block_io(&mut self, b: &LinuxBlockIo) -> Result<()> {
        let f = |n: &str| format!("{RES}.blockIO.{n}");
        let empty = Vec::new();
        let wd = b.weight_device().as_ref().unwrap_or(&empty);
        let throttles = [
            (
                "throttleReadBpsDevice",
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "rbps",
            ),
            (
                "throttleWriteBpsDevice",
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "wbps",
            ),
            (
                "throttleReadIOPSDevice",
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "riops",
            ),
            (
                "throttleWriteIOPSDevice",
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "wiops",
            ),
        ];
        let any = b.weight().is_some_and(|w| w != 0)
            || b.leaf_weight().is_some_and(|w| w != 0)
            || !wd.is_empty()
            || throttles
                .iter()
                .any(|t| t.1.as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(());
        }
        let d = match self.cg.find("blkio").or_else(|| self.cg.find("io")) {
            Some(d) => d,
            None => {
                return Err(CgroupError::unsupported(
                    f("weight"),
                    "the blkio controller is not available on this host",
                ))
            }
        };
        if d.v2 {
            let io_weight = d.path.join("io.weight").exists();
            let bfq = !io_weight && d.path.join("io.bfq.weight").exists();
            let weight_file = || {
                if io_weight {
                    Some("io.weight")
                } else if bfq {
                    Some("io.bfq.weight")
                } else {
                    None
                }
            };
            let conv = |w: u16| {
                if io_weight {
                    blkio_weight_to_io_weight(w)
                } else {
                    u64::from(w)
                }
            };
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                check_weight(&f("weight"), w)?;
                let file = weight_file().ok_or_else(|| {
                    CgroupError::unsupported(
                        f("weight"),
                        format!(
                            "neither io.weight nor io.bfq.weight exists in {} (no proportional-weight io scheduler)",
                            d.path.display()
                        ),
                    )
                })?;
                self.push(f("weight"), d, file, format!("default {}", conv(w)));
            }
            if b.leaf_weight().is_some_and(|w| w != 0) {
                return Err(CgroupError::unsupported(
                    f("leafWeight"),
                    "not supported on cgroup v2",
                ));
            }
            for (i, dev) in wd.iter().enumerate() {
                let field = f(&format!("weightDevice[{i}]"));
                if dev.leaf_weight().is_some() {
                    return Err(CgroupError::unsupported(
                        format!("{field}.leafWeight"),
                        "not supported on cgroup v2",
                    ));
                }
                if let Some(w) = dev.weight() {
                    check_weight(&field, w)?;
                    let file = weight_file().ok_or_else(|| {
                        CgroupError::unsupported(
                            &field,
                            "no proportional-weight io scheduler on this host",
                        )
                    })?;
                    self.push(
                        &field,
                        d,
                        file,
                        format!("{}:{} {}", dev.major(), dev.minor(), conv(w)),
                    );
                }
            }
            for (name, list, _, key) in throttles {
                for (i, t) in list.as_deref().unwrap_or(&[]).iter().enumerate() {
                    let rate = if t.rate() == 0 {
                        "max".to_string()
                    } else {
                        t.rate().to_string()
                    };
                    self.push(
                        f(&format!("{name}[{i}]")),
                        d,
                        "io.max",
                        format!("{}:{} {key}={rate}", t.major(), t.minor()),
                    );
                }
            }
        } else {
            let pick =
                |files: &[&'static str]| files.iter().copied().find(|f| d.path.join(f).exists());
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                let file = pick(&["blkio.weight", "blkio.bfq.weight"]).ok_or_else(|| {
                    CgroupError::unsupported(
                        f("weight"),
                        format!(
                            "neither blkio.weight nor blkio.bfq.weight exists in {} (no proportional-weight io scheduler)",
                            d.path.display()
                        ),
                    )
                })?;
                self.push(f("weight"), d, file, w.to_string());
            }
            if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
                let file = pick(&["blkio.leaf_weight"]).ok_or_else(|| {
                    CgroupError::unsupported(
                        f("leafWeight"),
                        format!(
                            "blkio.leaf_weight does not exist in {} (needs the CFQ io scheduler)",
                            d.path.display()
                        ),
                    )
                })?;
                self.push(f("leafWeight"), d, file, w.to_string());
            }
            for (i, dev) in wd.iter().enumerate() {
                let field = f(&format!("weightDevice[{i}]"));
                if let Some(w) = dev.weight() {
                    let file = pick(&["blkio.weight_device", "blkio.bfq.weight_device"])
                        .ok_or_else(|| {
                            CgroupError::unsupported(
                                &field,
                                "no proportional-weight io scheduler on this host",
                            )
                        })?;
                    self.push(
                        &field,
                        d,
                        file,
                        format!("{}:{} {w}", dev.major(), dev.minor()),
                    );
                }
                if let Some(w) = dev.leaf_weight() {
                    let file = pick(&["blkio.leaf_weight_device"]).ok_or_else(|| {
                        CgroupError::unsupported(
                            format!("{field}.leafWeight"),
                            "blkio.leaf_weight_device is missing (needs the CFQ io scheduler)",
                        )
                    })?;
                    self.push(
                        format!("{field}.leafWeight"),
                        d,
                        file,
                        format!("{}:{} {w}", dev.major(), dev.minor()),
                    );
                }
            }
            for (name, list, file, _) in throttles {
                for (i, t) in list.as_deref().unwrap_or(&[]).iter().enumerate() {
                    self.push(
                        f(&format!("{name}[{i}]")),
                        d,
                        file,
                        format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                    );
                }
            }
        }
        Ok(())
    }

    fn hugepages(&mut self, limits: &[LinuxHugepageLimit]) -> Result<()> {
        if limits.is_empty() {
            return Ok(());
        }
        let supported = hugepage_sizes();
        for (i, h) in limits.iter().enumerate() {
            let field = format!("{RES}.hugepageLimits[{i}]");
            let size = normalize_page_size(h.page_size())
                .filter(|s| supported.contains(s))
                .ok_or_else(|| {
                    CgroupError::unsupported(
                        &field,
                        format!(
                            "pagesize {} is not supported (supported: {})",
                            h.page_size(),
                            if supported.is_empty() {
                                "none".to_string()
                            } else {
                                supported.join(", ")
                            }
                        ),
                    )
                })?;
            let d = self.dir("hugetlb", &field)?;
            let (file, rsvd, value) = if d.v2 {
                (
                    format!("hugetlb.{size}.max"),
                    format!("hugetlb.{size}.rsvd.max"),
                    max_or(h.limit()),
                )
            } else {
                (
                    format!("hugetlb.{size}.limit_in_bytes"),
                    format!("hugetlb.{size}.rsvd.limit_in_bytes"),
                    v1_num(h.limit()),
                )
            };
            // Limit reservations too where the kernel has them (5.7+), as runc does, so a
            // mapping cannot reserve pages it could later not fault in.
            if d.path.join(&rsvd).exists() {
                self.push(&field, d, &rsvd, value.clone());
            }
            self.push(&field, d, &file, value);
        }
        Ok(())
    }

    fn network(&mut self, n: &LinuxNetwork) -> Result<()> {
        if let Some(id) = n.class_id() {
            let field = format!("{RES}.network.classID");
            let d = self.v1_only("net_cls", &field)?;
            self.push(field, d, "net_cls.classid", id.to_string());
        }
        if let Some(prios) = n.priorities().as_deref().filter(|p| !p.is_empty()) {
            let field = format!("{RES}.network.priorities");
            let d = self.v1_only("net_prio", &field)?;
            for (i, p) in prios.iter().enumerate() {
                self.push(
                    format!("{field}[{i}]"),
                    d,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                );
            }
        }
        Ok(())
    }

    fn v1_only(&self, controller: &str, field: &str) -> Result<&'a CgroupDir> {
        match self.cg.find(controller) {
            Some(d) if !d.v2 => Ok(d),
            _ => Err(CgroupError::unsupported(
                field,
                format!("the {controller} controller is not available on this host"),
            )),
        }
    }

    fn devices(&mut self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let field = format!("{RES}.devices");
        let trivial = rules.is_empty() || (rules.len() == 1 && is_deny_all(&rules[0]));
        match self.cg.find("devices") {
            Some(d) if !d.v2 => {
                let mut rest = rules;
                if rules.first().is_some_and(is_deny_all) {
                    self.push(format!("{field}[0]"), d, "devices.deny", "a");
                    rest = &rules[1..];
                }
                let offset = rules.len() - rest.len();
                for (i, r) in rest.iter().enumerate() {
                    let f = format!("{field}[{}]", i + offset);
                    let line = device_line(r, &f)?;
                    let file = if r.allow() {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    };
                    self.push(f, d, file, line);
                }
                Ok(())
            }
            _ if trivial => {
                if !rules.is_empty() {
                    tracing::warn!(
                        "{field}: no v1 devices controller; the default deny-all rule is not enforced by cgroups"
                    );
                }
                Ok(())
            }
            // cgroup v2: an eBPF filter, attached when the cgroup is made
            // (CgroupPath::attach_device_filter), not here.
            _ if self.cg.unified_dir().is_some() => Ok(()),
            _ => Err(CgroupError::unsupported(
                field,
                "the devices controller is not available on this host",
            )),
        }
    }

    fn rdma(
        &mut self,
        r: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>,
    ) -> Result<()> {
        if r.is_empty() {
            return Ok(());
        }
        let field = format!("{RES}.rdma");
        let d = self.dir("rdma", &field)?;
        let sorted: BTreeMap<_, _> = r.iter().collect();
        for (dev, lim) in sorted {
            let mut line = dev.clone();
            if let Some(h) = lim.hca_handles() {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = lim.hca_objects() {
                line.push_str(&format!(" hca_object={o}"));
            }
            self.push(format!("{field}[{dev:?}]"), d, "rdma.max", line);
        }
        Ok(())
    }

    fn unified(&mut self, u: &std::collections::HashMap<String, String>) -> Result<()> {
        if u.is_empty() {
            return Ok(());
        }
        let Some(d) = self.cg.dirs.iter().find(|d| d.v2) else {
            return Err(CgroupError::unsupported(
                format!("{RES}.unified"),
                "cgroup v2 is not available on this host",
            ));
        };
        let sorted: BTreeMap<_, _> = u.iter().collect();
        for (k, v) in sorted {
            let field = format!("{RES}.unified[{k:?}]");
            if k.is_empty() || k.contains('/') || k == "." || k == ".." || !k.contains('.') {
                return Err(CgroupError::unsupported(
                    field,
                    "not a cgroup v2 interface file name",
                ));
            }
            if k.starts_with("cgroup.")
                && matches!(
                    k.as_str(),
                    "cgroup.procs"
                        | "cgroup.threads"
                        | "cgroup.subtree_control"
                        | "cgroup.kill"
                        | "cgroup.freeze"
                )
            {
                return Err(CgroupError::unsupported(
                    field,
                    "managed by the runtime, cannot be set",
                ));
            }
            let path = d.path.join(k);
            if !path.exists() {
                return Err(CgroupError::FieldIo {
                    field,
                    op: "open",
                    path,
                    err: std::io::Error::from_raw_os_error(libc::ENOENT),
                });
            }
            self.ops.push(Op {
                field,
                path,
                value: v.clone(),
            });
        }
        Ok(())
    }
}

fn check_weight(field: &str, w: u16) -> Result<()> {
    if !(10..=1000).contains(&w) {
        return Err(CgroupError::unsupported(
            field,
            format!("weight {w} is out of range 10-1000"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{layout::fixtures, resolve_with, Layout};
    use std::path::Path;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    /// The container cgroup /nonexistent-husk-test/x in layout `l`.
    fn cg_in(l: &Layout) -> CgroupPath {
        let path = Path::new("/nonexistent-husk-test/x");
        resolve_with(l, "", Some(path), "x").unwrap()
    }

    fn v2_cg() -> CgroupPath {
        let l = Layout::parse(fixtures::UNIFIED, |_| {
            "cpuset cpu io memory hugetlb pids rdma"
                .split(' ')
                .map(String::from)
                .collect()
        });
        cg_in(&l)
    }

    fn v1_cg() -> CgroupPath {
        let l = Layout::parse(fixtures::LEGACY, |_| vec![]);
        cg_in(&l)
    }

    fn hybrid_cg() -> CgroupPath {
        let l = Layout::parse(fixtures::HYBRID, |_| vec!["hugetlb".into()]);
        cg_in(&l)
    }

    fn lines(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|o| format!("{} {}={}", o.field, o.path.display(), o.value))
            .collect()
    }

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(
            cpu_max_value(Some(50_000), Some(100_000), None).unwrap(),
            "50000 100000"
        );
        assert_eq!(
            cpu_max_value(Some(-1), Some(100_000), None).unwrap(),
            "max 100000"
        );
        assert_eq!(
            cpu_max_value(Some(20_000), None, Some("max 50000\n")).unwrap(),
            "20000 50000"
        );
        assert_eq!(
            cpu_max_value(None, Some(10_000), Some("30000 100000\n")).unwrap(),
            "30000 10000"
        );
        assert_eq!(
            cpu_max_value(None, Some(10_000), None).unwrap(),
            "max 10000"
        );
        assert_eq!(cpu_max_value(Some(0), Some(0), None), None);
        assert_eq!(swap_to_v2(-1, Some(100)).unwrap().unwrap(), "max");
        assert_eq!(swap_to_v2(300, Some(100)).unwrap().unwrap(), "200");
        assert_eq!(swap_to_v2(100, Some(100)).unwrap().unwrap(), "0");
        assert_eq!(swap_to_v2(0, Some(100)).unwrap(), None);
        assert!(swap_to_v2(50, Some(100)).is_err());
        assert!(swap_to_v2(50, None).is_err());
        assert!(swap_to_v2(50, Some(-1)).is_err());
        assert_eq!(normalize_page_size("2MB").unwrap(), "2MB");
        assert_eq!(normalize_page_size("2048kB").unwrap(), "2MB");
        assert_eq!(normalize_page_size("1GB").unwrap(), "1GB");
        assert_eq!(normalize_page_size("64KB").unwrap(), "64KB");
        assert_eq!(normalize_page_size("3MB").unwrap(), "3MB");
        assert_eq!(normalize_page_size("MB"), None);
        assert_eq!(normalize_page_size("2XB"), None);
        assert_eq!(size_name(1 << 20), "1GB");
    }

    #[test]
    fn v2_plan() {
        let cg = v2_cg();
        let r = res(r#"{
            "memory": {"limit": 67108864, "reservation": 1048576, "swap": -1},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0", "burst": 1000, "idle": 0},
            "pids": {"limit": 0},
            "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 0}]},
            "hugepageLimits": [],
            "unified": {}
        }"#);
        let ops = cg.plan(&r).unwrap();
        let d = "/sys/fs/cgroup/nonexistent-husk-test/x";
        let want = vec![
            format!("linux.resources.cpu.cpus {d}/cpuset.cpus=0"),
            format!("linux.resources.cpu.mems {d}/cpuset.mems=0"),
            format!("linux.resources.cpu.shares {d}/cpu.weight=39"),
            format!("linux.resources.cpu.quota {d}/cpu.max=50000 100000"),
            format!("linux.resources.cpu.burst {d}/cpu.max.burst=1000"),
            format!("linux.resources.cpu.idle {d}/cpu.idle=0"),
            format!("linux.resources.memory.reservation {d}/memory.low=1048576"),
            format!("linux.resources.memory.limit {d}/memory.max=67108864"),
            format!("linux.resources.pids.limit {d}/pids.max=max"),
            format!("linux.resources.blockIO.throttleReadBpsDevice[0] {d}/io.max=8:0 rbps=1000"),
            format!("linux.resources.blockIO.throttleWriteIOPSDevice[0] {d}/io.max=8:0 wiops=max"),
        ];
        assert_eq!(lines(&ops), want);
    }

    #[test]
    fn v2_errors() {
        let cg = v2_cg();
        let e = |j: &str| cg.plan(&res(j)).unwrap_err().to_string();
        // Device rules on v2 are an eBPF filter attached at create, not files.
        assert!(cg
            .plan(&res(
                r#"{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}"#
            ))
            .unwrap()
            .is_empty());
        assert!(cg
            .plan(&res(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#))
            .unwrap()
            .is_empty());
        assert_eq!(
            e(r#"{"network": {"classID": 1048577}}"#),
            "linux.resources.network.classID: the net_cls controller is not available on this host"
        );
        assert_eq!(
            e(r#"{"memory": {"limit": 100, "swap": 50}}"#),
            "linux.resources.memory.swap: memory+swap limit 50 is below the memory limit 100"
        );
        assert!(e(r#"{"memory": {"swappiness": 10}}"#)
            .starts_with("linux.resources.memory.swappiness:"));
        assert!(e(r#"{"cpu": {"realtimeRuntime": 10}}"#)
            .starts_with("linux.resources.cpu.realtimeRuntime:"));
        assert_eq!(
            e(r#"{"unified": {"memory.high": "1000"}}"#),
            "linux.resources.unified[\"memory.high\"]: open /sys/fs/cgroup/nonexistent-husk-test/x/memory.high: no such file or directory"
        );
        assert!(
            e(r#"{"unified": {"../x": "1"}}"#).starts_with("linux.resources.unified[\"../x\"]:")
        );
        let hp = e(r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#);
        assert!(
            hp.starts_with("linux.resources.hugepageLimits[0]: pagesize 3MB is not supported"),
            "{hp}"
        );
    }

    #[test]
    fn v1_plan() {
        let cg = v1_cg();
        let r = res(r#"{
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 136, "access": "rw"},
                        {"allow": false, "type": "b", "major": 8, "minor": 0}],
            "memory": {"limit": 1000, "swap": -1, "swappiness": 0, "disableOOMKiller": true, "kernel": 5},
            "cpu": {"shares": 512, "quota": -1, "period": 100000, "realtimeRuntime": 100, "realtimePeriod": 1000},
            "pids": {"limit": 20},
            "network": {"classID": 16, "priorities": [{"name": "eth0", "priority": 5}]},
            "blockIO": {"throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 10}]}
        }"#);
        let ops = cg.plan(&r).unwrap();
        let m = "/sys/fs/cgroup/memory/nonexistent-husk-test/x";
        let c = "/sys/fs/cgroup/cpu,cpuacct/nonexistent-husk-test/x";
        let dv = "/sys/fs/cgroup/devices/nonexistent-husk-test/x";
        let n = "/sys/fs/cgroup/net_cls,net_prio/nonexistent-husk-test/x";
        let want = vec![
            format!("linux.resources.cpu.shares {c}/cpu.shares=512"),
            format!("linux.resources.cpu.period {c}/cpu.cfs_period_us=100000"),
            format!("linux.resources.cpu.quota {c}/cpu.cfs_quota_us=-1"),
            format!("linux.resources.cpu.realtimePeriod {c}/cpu.rt_period_us=1000"),
            format!("linux.resources.cpu.realtimeRuntime {c}/cpu.rt_runtime_us=100"),
            // memsw file missing on this fake path: swap=-1 is still satisfiable
            format!("linux.resources.memory.limit {m}/memory.limit_in_bytes=1000"),
            format!("linux.resources.memory.swappiness {m}/memory.swappiness=0"),
            format!("linux.resources.memory.disableOOMKiller {m}/memory.oom_control=1"),
            "linux.resources.pids.limit /sys/fs/cgroup/pids/nonexistent-husk-test/x/pids.max=20".to_string(),
            "linux.resources.blockIO.throttleWriteBpsDevice[0] /sys/fs/cgroup/blkio/nonexistent-husk-test/x/blkio.throttle.write_bps_device=8:0 10".to_string(),
            format!("linux.resources.network.classID {n}/net_cls.classid=16"),
            format!("linux.resources.network.priorities[0] {n}/net_prio.ifpriomap=eth0 5"),
            format!("linux.resources.devices[0] {dv}/devices.deny=a"),
            format!("linux.resources.devices[1] {dv}/devices.allow=c 1:3 rwm"),
            format!("linux.resources.devices[2] {dv}/devices.allow=c 136:* rw"),
            format!("linux.resources.devices[3] {dv}/devices.deny=b 8:0 rwm"),
        ];
        assert_eq!(lines(&ops), want);
        // swap accounting missing and a real swap limit requested
        let e = cg
            .plan(&res(r#"{"memory": {"limit": 1000, "swap": 2000}}"#))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.resources.memory.swap: swap accounting is not enabled"),
            "{e}"
        );
        // v1 blkio weight without a proportional scheduler
        let e = cg
            .plan(&res(r#"{"blockIO": {"weight": 500}}"#))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "linux.resources.blockIO.weight: neither blkio.weight nor blkio.bfq.weight"
            ),
            "{e}"
        );
    }

    #[test]
    fn hybrid_plan() {
        let cg = hybrid_cg();
        let e = cg
            .plan(&res(r#"{"network": {"classID": 1}}"#))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "linux.resources.network.classID: the net_cls controller is not available on this host"
        );
        let e = cg
            .plan(&res(r#"{"rdma": {"mlx": {"hcaHandles": 1}}}"#))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "linux.resources.rdma: the rdma controller is not available on this host"
        );
        // devices is v1 on hybrid
        let ops = cg
            .plan(&res(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#))
            .unwrap();
        assert_eq!(lines(&ops), vec!["linux.resources.devices[0] /sys/fs/cgroup/devices/nonexistent-husk-test/x/devices.deny=a"]);
    }
}
