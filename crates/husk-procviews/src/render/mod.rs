//! The container's view of each file, as pure functions of the host's text
//! of that file and the container's cgroup facts. Nothing here touches the
//! system: the server gathers the inputs from descriptors and calls these.
//!
//! Every function keeps the kernel's layout (field names, padding, units)
//! and passes through, unchanged, whatever it does not understand, so a
//! kernel that adds a line or a field still yields a well-formed file.

mod cpu;
mod mem;
mod misc;

pub use cpu::{
    cpu_online, cpu_times, cpuinfo, format_cpu_list, host_cpus, shown_cpus, stat, uptime,
};
pub use mem::{meminfo, swap_numbers, swaps};
pub use misc::{diskstats, loadavg, LoadTracker};

/// USER_HZ: the unit of `/proc/stat` (fixed at 100 in the kernel's ABI on
/// every architecture husk runs on).
pub const USER_HZ: u64 = 100;
const NS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;

/// One of the files a container sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    Meminfo,
    Cpuinfo,
    Stat,
    Uptime,
    Loadavg,
    Swaps,
    Diskstats,
    /// `/sys/devices/system/cpu/online`: what glibc's
    /// `sysconf(_SC_NPROCESSORS_ONLN)` (Python's `os.cpu_count()`, ...) reads.
    CpuOnline,
}

/// Where a view goes in the container: under its procfs or its sysfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Proc,
    Sys,
}

impl View {
    pub const ALL: [View; 8] = [
        View::Meminfo,
        View::Cpuinfo,
        View::Stat,
        View::Uptime,
        View::Loadavg,
        View::Swaps,
        View::Diskstats,
        View::CpuOnline,
    ];

    /// The file's name in the FUSE filesystem's root.
    pub fn name(self) -> &'static str {
        match self {
            View::Meminfo => "meminfo",
            View::Cpuinfo => "cpuinfo",
            View::Stat => "stat",
            View::Uptime => "uptime",
            View::Loadavg => "loadavg",
            View::Swaps => "swaps",
            View::Diskstats => "diskstats",
            View::CpuOnline => "cpu_online",
        }
    }

    /// The file it covers in the container, relative to its procfs or sysfs.
    pub fn target(self) -> (Base, &'static str) {
        match self {
            View::CpuOnline => (Base::Sys, "devices/system/cpu/online"),
            v => (Base::Proc, v.name()),
        }
    }

    pub fn from_name(name: &[u8]) -> Option<View> {
        View::ALL.into_iter().find(|v| v.name().as_bytes() == name)
    }
}

/// The container's memory, in bytes, from its memory cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemFacts {
    /// The effective limit (ancestors included where the kernel tells it);
    /// `None`: no limit.
    pub limit: Option<u64>,
    /// Everything charged to the cgroup, page cache included.
    pub usage: u64,
    /// Swap the container may use on top of `limit`; `None`: no limit of
    /// its own (the host's swap).
    pub swap_limit: Option<u64>,
    /// Swap in use.
    pub swap_usage: u64,
    pub stat: MemStat,
}

/// The lines of `memory.stat` the views use, normalised over v1 (the
/// hierarchical `total_*` keys) and v2. Bytes; 0 when the kernel does not
/// tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStat {
    /// Page cache, tmpfs and swap cache included (v1 `cache`, v2 `file`).
    pub file: u64,
    pub anon: u64,
    pub shmem: u64,
    pub file_mapped: u64,
    pub file_dirty: u64,
    pub file_writeback: u64,
    pub active_anon: u64,
    pub inactive_anon: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub unevictable: u64,
    pub anon_thp: u64,
    pub shmem_thp: u64,
    pub file_thp: u64,
    pub swapcached: u64,
    pub slab_reclaimable: u64,
    pub slab_unreclaimable: u64,
    pub kernel_stack: u64,
    pub pagetables: u64,
    pub sec_pagetables: u64,
    pub percpu: u64,
    pub zswap: u64,
    pub zswapped: u64,
}

/// v1 reports "no limit" as the largest page-aligned counter
/// (9223372036854771712 on 4 KiB pages); anything this large is no limit.
pub const UNLIMITED: u64 = 1 << 62;

impl MemStat {
    /// From cgroup v1's `memory.stat`, preferring the hierarchical
    /// `total_*` keys (the cgroup and its descendants).
    pub fn from_v1(text: &str) -> MemStat {
        let get = |k: &str| {
            kv(text, &format!("total_{k}"))
                .or_else(|| kv(text, k))
                .unwrap_or(0)
        };
        MemStat {
            file: get("cache"),
            anon: get("rss"),
            shmem: get("shmem"),
            file_mapped: get("mapped_file"),
            file_dirty: get("dirty"),
            file_writeback: get("writeback"),
            active_anon: get("active_anon"),
            inactive_anon: get("inactive_anon"),
            active_file: get("active_file"),
            inactive_file: get("inactive_file"),
            unevictable: get("unevictable"),
            anon_thp: get("rss_huge"),
            ..Default::default()
        }
    }

    /// From cgroup v2's `memory.stat` (always hierarchical).
    pub fn from_v2(text: &str) -> MemStat {
        let get = |k: &str| kv(text, k).unwrap_or(0);
        MemStat {
            file: get("file"),
            anon: get("anon"),
            shmem: get("shmem"),
            file_mapped: get("file_mapped"),
            file_dirty: get("file_dirty"),
            file_writeback: get("file_writeback"),
            active_anon: get("active_anon"),
            inactive_anon: get("inactive_anon"),
            active_file: get("active_file"),
            inactive_file: get("inactive_file"),
            unevictable: get("unevictable"),
            anon_thp: get("anon_thp"),
            shmem_thp: get("shmem_thp"),
            file_thp: get("file_thp"),
            swapcached: get("swapcached"),
            slab_reclaimable: get("slab_reclaimable"),
            slab_unreclaimable: get("slab_unreclaimable"),
            kernel_stack: get("kernel_stack"),
            pagetables: get("pagetables"),
            sec_pagetables: get("sec_pagetables"),
            percpu: get("percpu"),
            zswap: get("zswap"),
            zswapped: get("zswapped"),
        }
    }
}

/// The container's CPUs and CPU time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuFacts {
    /// The cpuset's effective CPUs (host numbering); `None`: unknown, all.
    pub cpuset: Option<Vec<u32>>,
    /// CFS bandwidth: (quota, period) in µs; `None`: no quota.
    pub quota: Option<(u64, u64)>,
    /// CPU time used; `None`: unknown.
    pub usage: Option<CpuUsage>,
}

/// CPU time a cgroup used, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub user: u64,
    pub system: u64,
    /// (user, system) per host CPU, indexed by CPU number; empty when the
    /// kernel does not tell (cgroup v2).
    pub percpu: Vec<(u64, u64)>,
}

/// The container's threads by state, from its cgroup's task list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFacts {
    /// Runnable (R), not counting the sandbox itself.
    pub running: u32,
    /// In uninterruptible sleep (D).
    pub blocked: u32,
    /// All threads.
    pub total: u32,
}

/// I/O a container did on one block device (v1 blkio throttle counters or
/// v2 io.stat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevIo {
    pub major: u32,
    pub minor: u32,
    pub rbytes: u64,
    pub wbytes: u64,
    pub dbytes: u64,
    pub rios: u64,
    pub wios: u64,
    pub dios: u64,
}

/// The value of `key` in "key value" lines (memory.stat, cpu.stat).
pub fn kv(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The kB value of a `/proc/meminfo` line.
pub fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Parse a CPU list such as "0-3,7" (cpuset files, sysfs); `None` if it
/// is malformed or empty.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 65535 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// v1 blkio counters ("8:0 Read 4096" lines of
/// `blkio.throttle.io_service_bytes_recursive` and `..._serviced_recursive`)
/// into per-device totals.
pub fn parse_blkio_v1(bytes: &str, ios: &str) -> Vec<DevIo> {
    let mut out: Vec<DevIo> = Vec::new();
    let mut add = |text: &str, is_bytes: bool| {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [dev, op, val] = f[..] else { continue };
            let Some((ma, mi)) = dev.split_once(':') else {
                continue;
            };
            let (Ok(major), Ok(minor), Ok(val)) =
                (ma.parse::<u32>(), mi.parse::<u32>(), val.parse::<u64>())
            else {
                continue;
            };
            let i = match out
                .iter()
                .position(|d| d.major == major && d.minor == minor)
            {
                Some(i) => i,
                None => {
                    out.push(DevIo {
                        major,
                        minor,
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            let d = &mut out[i];
            match (op, is_bytes) {
                ("Read", true) => d.rbytes = val,
                ("Write", true) => d.wbytes = val,
                ("Discard", true) => d.dbytes = val,
                ("Read", false) => d.rios = val,
                ("Write", false) => d.wios = val,
                ("Discard", false) => d.dios = val,
                _ => {}
            }
        }
    };
    add(bytes, true);
    add(ios, false);
    out
}

/// v2 `io.stat` ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0").
pub fn parse_io_stat(text: &str) -> Vec<DevIo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        let mut d = DevIo {
            major,
            minor,
            ..Default::default()
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v = v.parse().unwrap_or(0);
            match k {
                "rbytes" => d.rbytes = v,
                "wbytes" => d.wbytes = v,
                "dbytes" => d.dbytes = v,
                "rios" => d.rios = v,
                "wios" => d.wios = v,
                "dios" => d.dios = v,
                _ => {}
            }
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for v in View::ALL {
            assert_eq!(View::from_name(v.name().as_bytes()), Some(v));
        }
        assert_eq!(View::from_name(b"mounts"), None);
        assert_eq!(
            View::CpuOnline.target(),
            (Base::Sys, "devices/system/cpu/online")
        );
        assert_eq!(View::Meminfo.target(), (Base::Proc, "meminfo"));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5\n"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("\n"), None);
        assert_eq!(parse_cpu_list("2-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
    }

    #[test]
    fn memory_stat_v1_prefers_hierarchical_totals() {
        let t = "cache 10\nrss 20\ntotal_cache 100\ntotal_rss 200\nshmem 1\ntotal_shmem 7\nactive_file 3\n";
        let s = MemStat::from_v1(t);
        assert_eq!(s.file, 100);
        assert_eq!(s.anon, 200);
        assert_eq!(s.shmem, 7);
        assert_eq!(s.active_file, 3);
        assert_eq!(s.slab_reclaimable, 0);
    }

    #[test]
    fn memory_stat_v2() {
        let t = "anon 4096\nfile 8192\nkernel_stack 16384\nslab_reclaimable 100\nslab_unreclaimable 50\nfile_dirty 3\n";
        let s = MemStat::from_v2(t);
        assert_eq!((s.anon, s.file, s.kernel_stack), (4096, 8192, 16384));
        assert_eq!(
            (s.slab_reclaimable, s.slab_unreclaimable, s.file_dirty),
            (100, 50, 3)
        );
    }

    #[test]
    fn io_counters() {
        let b = "254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 0\n254:0 Total 12288\nTotal 12288\n";
        let i = "254:0 Read 1\n254:0 Write 2\n254:0 Discard 0\n";
        let d = parse_blkio_v1(b, i);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].major, d[0].minor, d[0].rbytes, d[0].wbytes),
            (254, 0, 4096, 8192)
        );
        assert_eq!((d[0].rios, d[0].wios), (1, 2));
        let d = parse_io_stat("8:16 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(
            (d[0].major, d[0].minor, d[0].rbytes, d[0].wios),
            (8, 16, 512, 2)
        );
    }

    #[test]
    fn key_values() {
        assert_eq!(kv("a 1\nab 2\n", "ab"), Some(2));
        assert_eq!(kv("a 1\n", "b"), None);
        assert_eq!(
            meminfo_kb("MemTotal:       1024 kB\n", "MemTotal"),
            Some(1024)
        );
        assert_eq!(
            meminfo_kb("HugePages_Total:       0\n", "HugePages_Total"),
            Some(0)
        );
    }
}
