//! Resource usage in the shape of runc's `events --stats` "data" object
//! (runc `types/events.go`: `types.Stats`), including its omitempty behaviour:
//! Go's `omitempty` drops zero numbers, empty slices/maps and nil pointers but never
//! structs, so e.g. `"throttling":{}` and `"intel_rdt":{}` are always present and
//! `"network_interfaces"` is `null`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::apply::hugepage_sizes;
use super::util::{self, kv_get, kv_lines, read_raw, read_u64};
use super::{CgroupDir, CgroupError, CgroupPath, Result};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `types.Stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// All values in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
}

/// Pressure stall information (cgroup v2 `*.pressure` files).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsiStats {
    pub some: PsiData,
    pub full: PsiData,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

/// Intel RDT is not managed by husk; always `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntelRdt {}

/// runc's `types.NetworkInterface` (Go field names, no json tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// USER_HZ: the unit of `cpuacct.stat` (fixed at 100 in the kernel ABI).
const USER_HZ_NS: u64 = 1_000_000_000 / 100;

impl CgroupPath {
    /// Current usage, in runc's `events --stats` shape. Files a kernel does not have are
    /// skipped; fails only if the container's cgroup does not exist.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.dirs.first() {
            if !d.path.is_dir() {
                return Err(CgroupError::Io {
                    op: "stat",
                    path: d.path.clone(),
                    err: std::io::Error::from_raw_os_error(libc::ENOENT),
                });
            }
        }
        let v2 = self.dirs.iter().find(|d| d.v2);
        // cpu: v1 cpuacct (+ v1 cpu for throttling), else v2 cpu.stat (usage + throttling)
        if let Some(acct) = self.find("cpuacct").filter(|d| !d.v2) {
            cpu_v1(&mut s.cpu, &acct.path);
            if let Some(d) = self.find("cpu").filter(|d| !d.v2) {
                throttling_v1(&mut s.cpu.throttling, &d.path);
            }
        } else if let Some(u) = v2 {
            cpu_v2(&mut s.cpu, &u.path);
        }
        if let Some(d) = self.find("cpuset") {
            cpuset(&mut s.cpuset, d);
        }
        if let Some(d) = self.find("memory") {
            if d.v2 {
                memory_v2(&mut s.memory, &d.path);
            } else {
                memory_v1(&mut s.memory, &d.path);
            }
        }
        if let Some(d) = self.find("pids") {
            s.pids.current = read_u64(&d.path.join("pids.current")).unwrap_or(0);
            s.pids.limit = match read_u64(&d.path.join("pids.max")) {
                Some(u64::MAX) | None => 0,
                Some(v) => v,
            };
        }
        match (self.find("blkio").filter(|d| !d.v2), self.find("io")) {
            (Some(d), _) => blkio_v1(&mut s.blkio, &d.path),
            (None, Some(d)) => io_v2(&mut s.blkio, &d.path),
            _ => {}
        }
        if let Some(d) = self.find("hugetlb") {
            for size in hugepage_sizes() {
                let h = if d.v2 {
                    Hugetlb {
                        usage: read_u64(&d.path.join(format!("hugetlb.{size}.current")))
                            .unwrap_or(0),
                        max: 0,
                        failcnt: read_raw(&d.path.join(format!("hugetlb.{size}.events")))
                            .ok()
                            .and_then(|t| kv_get(&t, "max"))
                            .unwrap_or(0),
                    }
                } else {
                    let f = |n: &str| {
                        read_u64(&d.path.join(format!("hugetlb.{size}.{n}"))).unwrap_or(0)
                    };
                    Hugetlb {
                        usage: f("usage_in_bytes"),
                        max: f("max_usage_in_bytes"),
                        failcnt: f("failcnt"),
                    }
                };
                s.hugetlb.insert(size, h);
            }
        }
        if let Some(u) = v2 {
            s.cpu.psi = psi(&u.path.join("cpu.pressure"));
            s.memory.psi = psi(&u.path.join("memory.pressure"));
            s.blkio.psi = psi(&u.path.join("io.pressure"));
        }
        Ok(s)
    }
}

fn nums(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn cpu_v1(c: &mut Cpu, dir: &Path) {
    c.usage.total = read_u64(&dir.join("cpuacct.usage")).unwrap_or(0);
    if let Ok(t) = read_raw(&dir.join("cpuacct.usage_percpu")) {
        c.usage.percpu = nums(&t);
    }
    // "cpu user system" header, then one row per cpu (ns)
    if let Ok(t) = read_raw(&dir.join("cpuacct.usage_all")) {
        for row in t.lines().skip(1) {
            let v = nums(row);
            if v.len() == 3 {
                c.usage.percpu_user.push(v[1]);
                c.usage.percpu_kernel.push(v[2]);
            }
        }
    }
    if let Ok(t) = read_raw(&dir.join("cpuacct.stat")) {
        c.usage.user = kv_get(&t, "user").unwrap_or(0) * USER_HZ_NS;
        c.usage.kernel = kv_get(&t, "system").unwrap_or(0) * USER_HZ_NS;
    }
}

fn throttling_v1(t: &mut Throttling, dir: &Path) {
    if let Ok(text) = read_raw(&dir.join("cpu.stat")) {
        for (k, v) in kv_lines(&text) {
            match k {
                "nr_periods" => t.periods = v,
                "nr_throttled" => t.throttled_periods = v,
                "throttled_time" => t.throttled_time = v,
                _ => {}
            }
        }
    }
}

fn cpu_v2(c: &mut Cpu, dir: &Path) {
    if let Ok(text) = read_raw(&dir.join("cpu.stat")) {
        for (k, v) in kv_lines(&text) {
            match k {
                "usage_usec" => c.usage.total = v * 1000,
                "user_usec" => c.usage.user = v * 1000,
                "system_usec" => c.usage.kernel = v * 1000,
                "nr_periods" => c.throttling.periods = v,
                "nr_throttled" => c.throttling.throttled_periods = v,
                "throttled_usec" => c.throttling.throttled_time = v * 1000,
                _ => {}
            }
        }
    }
}

/// "0-3,5,7-8" → [0,1,2,3,5,7,8].
pub(crate) fn parse_cpu_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(v) = part.parse() {
                    out.push(v);
                }
            }
        }
    }
    out
}

fn cpuset(c: &mut CpuSet, d: &CgroupDir) {
    let r = |n: &str| read_raw(&d.path.join(n)).ok();
    if d.v2 {
        c.cpus = parse_cpu_list(&r("cpuset.cpus.effective").unwrap_or_default());
        c.mems = parse_cpu_list(&r("cpuset.mems.effective").unwrap_or_default());
        return;
    }
    c.cpus = parse_cpu_list(&r("cpuset.cpus").unwrap_or_default());
    c.mems = parse_cpu_list(&r("cpuset.mems").unwrap_or_default());
    let n = |f: &str| read_u64(&d.path.join(f)).unwrap_or(0);
    c.cpu_exclusive = n("cpuset.cpu_exclusive");
    c.mem_hardwall = n("cpuset.mem_hardwall");
    c.mem_exclusive = n("cpuset.mem_exclusive");
    c.memory_migrate = n("cpuset.memory_migrate");
    c.memory_spread_page = n("cpuset.memory_spread_page");
    c.memory_spread_slab = n("cpuset.memory_spread_slab");
    c.memory_pressure = n("cpuset.memory_pressure");
    c.sched_load_balance = n("cpuset.sched_load_balance");
    c.sched_relax_domain_level = r("cpuset.sched_relax_domain_level")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
}

fn memory_entry_v1(dir: &Path, prefix: &str) -> MemoryEntry {
    let f = |n: &str| read_u64(&dir.join(format!("{prefix}{n}"))).unwrap_or(0);
    MemoryEntry {
        limit: f("limit_in_bytes"),
        usage: f("usage_in_bytes"),
        max: f("max_usage_in_bytes"),
        failcnt: f("failcnt"),
    }
}

fn memory_v1(m: &mut Memory, dir: &Path) {
    m.usage = memory_entry_v1(dir, "memory.");
    m.swap = memory_entry_v1(dir, "memory.memsw.");
    m.kernel = memory_entry_v1(dir, "memory.kmem.");
    m.kernel_tcp = memory_entry_v1(dir, "memory.kmem.tcp.");
    if let Ok(t) = read_raw(&dir.join("memory.stat")) {
        m.raw = kv_lines(&t).map(|(k, v)| (k.to_string(), v)).collect();
        m.cache = m.raw.get("cache").copied().unwrap_or(0);
    }
}

fn memory_v2(m: &mut Memory, dir: &Path) {
    let f = |n: &str| read_u64(&dir.join(n));
    let events_max = |n: &str| {
        read_raw(&dir.join(n))
            .ok()
            .and_then(|t| kv_get(&t, "max"))
            .unwrap_or(0)
    };
    m.usage = MemoryEntry {
        limit: f("memory.max").unwrap_or(u64::MAX),
        usage: f("memory.current").unwrap_or(0),
        max: f("memory.peak").unwrap_or(0),
        failcnt: events_max("memory.events"),
    };
    // runc reports v2 swap as memory+swap, like v1's memsw
    if let Some(swap) = f("memory.swap.current") {
        let swap_max = f("memory.swap.max").unwrap_or(u64::MAX);
        m.swap = MemoryEntry {
            limit: m.usage.limit.saturating_add(swap_max),
            usage: m.usage.usage + swap,
            max: 0,
            failcnt: events_max("memory.swap.events"),
        };
    }
    if let Ok(t) = read_raw(&dir.join("memory.stat")) {
        m.raw = kv_lines(&t).map(|(k, v)| (k.to_string(), v)).collect();
        m.cache = m.raw.get("file").copied().unwrap_or(0);
    }
}

/// Parse v1 blkio lines: "8:0 Read 123", "8:0 123" (no op), skipping the "Total N" line.
pub(crate) fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dev, op, val) = match f[..] {
                [dev, op, val] => (dev, op, val),
                [dev, val] => (dev, "", val),
                _ => return None,
            };
            let (maj, min) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: op.to_string(),
                value: val.parse().ok()?,
            })
        })
        .collect()
}

fn blkio_v1(b: &mut Blkio, dir: &Path) {
    let read = |n: &str| {
        read_raw(&dir.join(n))
            .map(|t| parse_blkio_v1(&t))
            .unwrap_or_default()
    };
    // CFQ (old kernels), then BFQ, then the throttle counters that always exist
    let cfq = read("blkio.io_service_bytes_recursive");
    if !cfq.is_empty() {
        b.io_service_bytes_recursive = cfq;
        b.io_serviced_recursive = read("blkio.io_serviced_recursive");
        b.io_queued_recursive = read("blkio.io_queued_recursive");
        b.io_service_time_recursive = read("blkio.io_service_time_recursive");
        b.io_wait_time_recursive = read("blkio.io_wait_time_recursive");
        b.io_merged_recursive = read("blkio.io_merged_recursive");
        b.io_time_recursive = read("blkio.time_recursive");
        b.sectors_recursive = read("blkio.sectors_recursive");
        return;
    }
    let bfq = read("blkio.bfq.io_service_bytes_recursive");
    if !bfq.is_empty() {
        b.io_service_bytes_recursive = bfq;
        b.io_serviced_recursive = read("blkio.bfq.io_serviced_recursive");
        return;
    }
    let pick = |a: &str, b: &str| {
        if dir.join(a).exists() {
            read(a)
        } else {
            read(b)
        }
    };
    b.io_service_bytes_recursive = pick(
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
    );
    b.io_serviced_recursive = pick(
        "blkio.throttle.io_serviced_recursive",
        "blkio.throttle.io_serviced",
    );
}

/// v2 `io.stat`: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
pub(crate) fn parse_io_stat(text: &str, b: &mut Blkio) {
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut b.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                "dios" => (&mut b.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
}

fn io_v2(b: &mut Blkio, dir: &Path) {
    if let Ok(t) = util::read_raw(&dir.join("io.stat")) {
        parse_io_stat(&t, b);
    }
}

/// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull ..."
pub(crate) fn parse_psi(text: &str) -> PsiStats {
    let mut p = PsiStats::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let target = match it.next() {
            Some("some") => &mut p.some,
            Some("full") => &mut p.full,
            _ => continue,
        };
        for kv in it {
            match kv.split_once('=') {
                Some(("avg10", v)) => target.avg10 = v.parse().unwrap_or(0.0),
                Some(("avg60", v)) => target.avg60 = v.parse().unwrap_or(0.0),
                Some(("avg300", v)) => target.avg300 = v.parse().unwrap_or(0.0),
                Some(("total", v)) => target.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    p
}

fn psi(path: &Path) -> Option<PsiStats> {
    read_raw(path).ok().map(|t| parse_psi(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_json_matches_runc() {
        let j = serde_json::to_string(&Stats::default()).unwrap();
        assert_eq!(
            j,
            concat!(
                r#"{"cpu":{"usage":{"kernel":0,"user":0},"throttling":{}},"#,
                r#""cpuset":{"cpu_exclusive":0,"mem_hardwall":0,"mem_exclusive":0,"memory_migrate":0,"#,
                r#""memory_spread_page":0,"memory_spread_slab":0,"memory_pressure":0,"sched_load_balance":0,"sched_relax_domain_level":0},"#,
                r#""memory":{"usage":{"limit":0,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"#,
                r#""pids":{},"blkio":{},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}"#
            )
        );
    }

    #[test]
    fn full_stats_json_field_names() {
        let mut s = Stats::default();
        s.cpu.usage = CpuUsage {
            total: 1,
            percpu: vec![1, 2],
            percpu_kernel: vec![3],
            percpu_user: vec![4],
            kernel: 5,
            user: 6,
        };
        s.cpu.throttling = Throttling {
            periods: 1,
            throttled_periods: 2,
            throttled_time: 3,
        };
        s.memory.cache = 7;
        s.memory.usage = MemoryEntry {
            limit: 1,
            usage: 2,
            max: 3,
            failcnt: 4,
        };
        s.memory.raw.insert("rss".into(), 9);
        s.pids = Pids {
            current: 1,
            limit: 20,
        };
        s.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 5,
        });
        s.hugetlb.insert(
            "2MB".into(),
            Hugetlb {
                usage: 1,
                max: 2,
                failcnt: 0,
            },
        );
        s.cpu.psi = Some(PsiStats::default());
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["usage"]["percpu_kernel"][0], 3);
        assert_eq!(v["cpu"]["usage"]["percpu_user"][0], 4);
        assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 2);
        assert_eq!(v["cpu"]["throttling"]["throttledTime"], 3);
        assert_eq!(v["cpu"]["psi"]["some"]["avg10"], 0.0);
        assert_eq!(v["memory"]["usage"]["max"], 3);
        assert_eq!(v["memory"]["raw"]["rss"], 9);
        assert_eq!(v["pids"]["limit"], 20);
        assert_eq!(v["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
        assert_eq!(v["hugetlb"]["2MB"]["max"], 2);
        assert_eq!(v["hugetlb"]["2MB"]["failcnt"], 0);
        let back: Stats = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        let ni = serde_json::to_value(NetworkInterface {
            name: "eth0".into(),
            rx_bytes: 1,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ni["Name"], "eth0");
        assert_eq!(ni["RxBytes"], 1);
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_cpu_list("0-3,5,7-8\n"), vec![0, 1, 2, 3, 5, 7, 8]);
        assert_eq!(parse_cpu_list(""), Vec::<u16>::new());
        let e = parse_blkio_v1("254:0 Read 4096\n254:0 Write 0\n254:0 Total 4096\nTotal 4096\n");
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            BlkioEntry {
                major: 254,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
        let e = parse_blkio_v1("8:0 77\n");
        assert_eq!(e[0].op, "");
        let mut b = Blkio::default();
        parse_io_stat(
            "254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
            &mut b,
        );
        assert_eq!(b.io_service_bytes_recursive.len(), 3);
        assert_eq!(b.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(b.io_service_bytes_recursive[1].value, 20);
        assert_eq!(b.io_serviced_recursive[0].value, 1);
        let p = parse_psi("some avg10=1.50 avg60=0.00 avg300=0.00 total=12\nfull avg10=0.00 avg60=0.25 avg300=0.00 total=3\n");
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.total, 12);
        assert_eq!(p.full.avg60, 0.25);
    }

    #[test]
    fn v2_memory_from_fixture_files() {
        let dir = std::env::temp_dir().join(format!("husk-cg-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = |n: &str, v: &str| std::fs::write(dir.join(n), v).unwrap();
        w("memory.max", "max\n");
        w("memory.current", "4096\n");
        w("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        w("memory.swap.current", "100\n");
        w("memory.swap.max", "1000\n");
        w("memory.stat", "anon 10\nfile 20\n");
        w("cpu.stat", "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n");
        let mut m = Memory::default();
        memory_v2(&mut m, &dir);
        assert_eq!(m.usage.limit, u64::MAX);
        assert_eq!(m.usage.usage, 4096);
        assert_eq!(m.usage.failcnt, 3);
        assert_eq!(m.swap.usage, 4196);
        assert_eq!(m.swap.limit, u64::MAX);
        assert_eq!(m.cache, 20);
        let mut c = Cpu::default();
        cpu_v2(&mut c, &dir);
        assert_eq!(c.usage.total, 5000);
        assert_eq!(c.usage.kernel, 2000);
        assert_eq!(c.throttling.throttled_time, 7000);
        let cg = CgroupPath {
            dirs: vec![CgroupDir {
                controllers: vec!["memory".into(), "cpu".into()],
                v2: true,
                path: dir.clone(),
                created: false,
            }],
        };
        assert_eq!(cg.oom_kills(), 1);
        let s = cg.stats().unwrap();
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.cpu.usage.user, 3000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
