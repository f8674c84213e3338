//! A container's cgroup statistics (husk's, in runc's shape) as the
//! `Metrics` protobuf containerd expects from `Stats`: cgroup v1's
//! (`io.containerd.cgroups.v1.Metrics`) when the memory controller is a v1
//! hierarchy (a hybrid host counts as v1, as for containerd's runc shim),
//! else cgroup v2's.

use std::collections::BTreeMap;

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::MessageField;
use husk::cgroups::{CgroupPath, Stats};

use crate::events::pack;
use crate::monitor::oom_kills;

/// The protobuf packages of containerd's cgroup metrics.
const V1: &str = "io.containerd.cgroups.v1";
const V2: &str = "io.containerd.cgroups.v2";

/// The metrics of `cg`, packed as containerd's typeurl reads them.
pub fn metrics(cg: &CgroupPath, stats: &Stats) -> Result<Any, String> {
    let memory = cg
        .dirs
        .iter()
        .find(|d| d.controllers.iter().any(|c| c == "memory"));
    Ok(match memory {
        Some(d) if d.v2 => pack(V2, &to_v2(stats, oom_kills(&d.path, true), &d.path)),
        Some(d) => pack(V1, &to_v1(stats, oom_kills(&d.path, false))),
        None => match cg.unified_dir() {
            Some(u) if cg.dirs.iter().all(|d| d.v2) => pack(V2, &to_v2(stats, 0, u)),
            _ => pack(V1, &to_v1(stats, 0)),
        },
    })
}

fn raw(stats: &Stats, key: &str) -> u64 {
    stats.memory.raw.get(key).copied().unwrap_or(0)
}

fn entry(e: &husk::cgroups::MemoryEntry) -> MessageField<v1::MemoryEntry> {
    MessageField::some(v1::MemoryEntry {
        limit: e.limit,
        usage: e.usage,
        max: e.max,
        failcnt: e.failcnt,
        ..Default::default()
    })
}

fn blkio_v1(list: &[husk::cgroups::BlkioEntry]) -> Vec<v1::BlkIOEntry> {
    list.iter()
        .map(|e| v1::BlkIOEntry {
            op: e.op.clone(),
            major: e.major,
            minor: e.minor,
            value: e.value,
            ..Default::default()
        })
        .collect()
}

pub fn to_v1(s: &Stats, oom_kill: u64) -> v1::Metrics {
    let r = |k: &str| raw(s, k);
    let memory = v1::MemoryStat {
        cache: r("cache"),
        rss: r("rss"),
        rss_huge: r("rss_huge"),
        mapped_file: r("mapped_file"),
        dirty: r("dirty"),
        writeback: r("writeback"),
        pg_pg_in: r("pgpgin"),
        pg_pg_out: r("pgpgout"),
        pg_fault: r("pgfault"),
        pg_maj_fault: r("pgmajfault"),
        inactive_anon: r("inactive_anon"),
        active_anon: r("active_anon"),
        inactive_file: r("inactive_file"),
        active_file: r("active_file"),
        unevictable: r("unevictable"),
        hierarchical_memory_limit: r("hierarchical_memory_limit"),
        hierarchical_swap_limit: r("hierarchical_memsw_limit"),
        total_cache: r("total_cache"),
        total_rss: r("total_rss"),
        total_rss_huge: r("total_rss_huge"),
        total_mapped_file: r("total_mapped_file"),
        total_dirty: r("total_dirty"),
        total_writeback: r("total_writeback"),
        total_pg_pg_in: r("total_pgpgin"),
        total_pg_pg_out: r("total_pgpgout"),
        total_pg_fault: r("total_pgfault"),
        total_pg_maj_fault: r("total_pgmajfault"),
        total_inactive_anon: r("total_inactive_anon"),
        total_active_anon: r("total_active_anon"),
        total_inactive_file: r("total_inactive_file"),
        total_active_file: r("total_active_file"),
        total_unevictable: r("total_unevictable"),
        usage: entry(&s.memory.usage),
        swap: entry(&s.memory.swap),
        kernel: entry(&s.memory.kernel),
        kernel_tcp: entry(&s.memory.kernel_tcp),
        ..Default::default()
    };
    let b = &s.blkio;
    v1::Metrics {
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v1::HugetlbStat {
                usage: h.usage,
                max: h.max,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        pids: MessageField::some(v1::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v1::CPUStat {
            usage: MessageField::some(v1::CPUUsage {
                total: s.cpu.usage.total,
                kernel: s.cpu.usage.kernel,
                user: s.cpu.usage.user,
                per_cpu: s.cpu.usage.percpu.clone(),
                ..Default::default()
            }),
            throttling: MessageField::some(v1::Throttle {
                periods: s.cpu.throttling.periods,
                throttled_periods: s.cpu.throttling.throttled_periods,
                throttled_time: s.cpu.throttling.throttled_time,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(memory),
        blkio: MessageField::some(v1::BlkIOStat {
            io_service_bytes_recursive: blkio_v1(&b.io_service_bytes_recursive),
            io_serviced_recursive: blkio_v1(&b.io_serviced_recursive),
            io_queued_recursive: blkio_v1(&b.io_queued_recursive),
            io_service_time_recursive: blkio_v1(&b.io_service_time_recursive),
            io_wait_time_recursive: blkio_v1(&b.io_wait_time_recursive),
            io_merged_recursive: blkio_v1(&b.io_merged_recursive),
            io_time_recursive: blkio_v1(&b.io_time_recursive),
            sectors_recursive: blkio_v1(&b.sectors_recursive),
            ..Default::default()
        }),
        memory_oom_control: MessageField::some(v1::MemoryOomControl {
            oom_kill,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn psi_v2(p: &Option<husk::cgroups::PsiStats>) -> MessageField<v2::PSIStats> {
    let Some(p) = p else {
        return MessageField::none();
    };
    let data = |d: &husk::cgroups::PsiData| {
        MessageField::some(v2::PSIData {
            avg10: d.avg10,
            avg60: d.avg60,
            avg300: d.avg300,
            total: d.total,
            ..Default::default()
        })
    };
    MessageField::some(v2::PSIStats {
        some: data(&p.some),
        full: data(&p.full),
        ..Default::default()
    })
}

pub fn to_v2(s: &Stats, oom_kill: u64, dir: &std::path::Path) -> v2::Metrics {
    let r = |k: &str| raw(s, k);
    let events = std::fs::read_to_string(dir.join("memory.events")).unwrap_or_default();
    let ev = |k: &str| {
        events
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut io: BTreeMap<(u64, u64), v2::IOEntry> = BTreeMap::new();
    let b = &s.blkio;
    for (list, bytes) in [
        (&b.io_service_bytes_recursive, true),
        (&b.io_serviced_recursive, false),
    ] {
        for e in list {
            let ent = io.entry((e.major, e.minor)).or_insert_with(|| v2::IOEntry {
                major: e.major,
                minor: e.minor,
                ..Default::default()
            });
            match (e.op.to_ascii_lowercase().as_str(), bytes) {
                ("read", true) => ent.rbytes = e.value,
                ("write", true) => ent.wbytes = e.value,
                ("read", false) => ent.rios = e.value,
                ("write", false) => ent.wios = e.value,
                _ => {}
            }
        }
    }
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v2::CPUStat {
            usage_usec: s.cpu.usage.total / 1000,
            user_usec: s.cpu.usage.user / 1000,
            system_usec: s.cpu.usage.kernel / 1000,
            nr_periods: s.cpu.throttling.periods,
            nr_throttled: s.cpu.throttling.throttled_periods,
            throttled_usec: s.cpu.throttling.throttled_time / 1000,
            psi: psi_v2(&s.cpu.psi),
            ..Default::default()
        }),
        memory: MessageField::some(v2::MemoryStat {
            anon: r("anon"),
            file: r("file"),
            kernel_stack: r("kernel_stack"),
            slab: r("slab"),
            sock: r("sock"),
            shmem: r("shmem"),
            file_mapped: r("file_mapped"),
            file_dirty: r("file_dirty"),
            file_writeback: r("file_writeback"),
            anon_thp: r("anon_thp"),
            inactive_anon: r("inactive_anon"),
            active_anon: r("active_anon"),
            inactive_file: r("inactive_file"),
            active_file: r("active_file"),
            unevictable: r("unevictable"),
            slab_reclaimable: r("slab_reclaimable"),
            slab_unreclaimable: r("slab_unreclaimable"),
            pgfault: r("pgfault"),
            pgmajfault: r("pgmajfault"),
            workingset_refault: r("workingset_refault"),
            workingset_activate: r("workingset_activate"),
            workingset_nodereclaim: r("workingset_nodereclaim"),
            pgrefill: r("pgrefill"),
            pgscan: r("pgscan"),
            pgsteal: r("pgsteal"),
            pgactivate: r("pgactivate"),
            pgdeactivate: r("pgdeactivate"),
            pglazyfree: r("pglazyfree"),
            pglazyfreed: r("pglazyfreed"),
            thp_fault_alloc: r("thp_fault_alloc"),
            thp_collapse_alloc: r("thp_collapse_alloc"),
            usage: s.memory.usage.usage,
            usage_limit: s.memory.usage.limit,
            swap_usage: s.memory.swap.usage.saturating_sub(s.memory.usage.usage),
            swap_limit: s.memory.swap.limit.saturating_sub(s.memory.usage.limit),
            max_usage: s.memory.usage.max,
            psi: psi_v2(&s.memory.psi),
            ..Default::default()
        }),
        io: MessageField::some(v2::IOStat {
            usage: io.into_values().collect(),
            psi: psi_v2(&s.blkio.psi),
            ..Default::default()
        }),
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v2::HugeTlbStat {
                current: h.usage,
                max: h.max,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        memory_events: MessageField::some(v2::MemoryEvents {
            low: ev("low"),
            high: ev("high"),
            max: ev("max"),
            oom: ev("oom"),
            oom_kill,
            oom_group_kill: ev("oom_group_kill"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_carries_what_the_cri_reads() {
        let mut s = Stats::default();
        s.memory.usage.usage = 5 << 20;
        s.memory.raw.insert("total_inactive_file".into(), 1 << 20);
        s.memory.raw.insert("total_rss".into(), 3 << 20);
        s.cpu.usage.total = 42_000;
        let m = to_v1(&s, 2);
        assert_eq!(m.memory.usage.usage, 5 << 20);
        assert_eq!(m.memory.total_inactive_file, 1 << 20);
        assert_eq!(m.memory.total_rss, 3 << 20);
        assert_eq!(m.cpu.usage.total, 42_000);
        assert_eq!(m.memory_oom_control.oom_kill, 2);
    }

    #[test]
    fn v2_uses_microseconds_and_anon() {
        let mut s = Stats::default();
        s.cpu.usage.total = 42_000;
        s.memory.raw.insert("anon".into(), 7);
        s.memory.usage.limit = 100;
        let m = to_v2(&s, 1, std::path::Path::new("/nonexistent"));
        assert_eq!(m.cpu.usage_usec, 42);
        assert_eq!(m.memory.anon, 7);
        assert_eq!(m.memory.usage_limit, 100);
        assert_eq!(m.memory_events.oom_kill, 1);
    }

    #[test]
    fn packed_with_the_bare_type_name() {
        let any =
            containerd_shim::util::convert_to_any(Box::new(to_v1(&Stats::default(), 0))).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
    }
}
