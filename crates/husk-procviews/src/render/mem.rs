//! `/proc/meminfo` and `/proc/swaps`.

use std::fmt::Write;

use super::{meminfo_kb, MemFacts};

/// The container's `/proc/meminfo`.
///
/// * `MemTotal`: the cgroup's limit, or the host's total when there is none
///   or it is larger.
/// * `MemFree`: `MemTotal` − usage (usage counts page cache, as the kernel
///   charges it to the cgroup).
/// * `MemAvailable`: `MemFree` + what the cgroup could reclaim without
///   swapping (its file LRU pages and reclaimable slab), but never more
///   than the host has available nor more than `MemTotal`.
/// * `Buffers`: 0 (a cgroup has no such count); `Cached`: its page cache
///   (tmpfs included, swap cache excluded, as the kernel's line).
/// * `Swap*`: the container's swap allowance (v1 memsw − mem, v2
///   `memory.swap.max`) capped at the host's swap, and its swap use.
/// * The LRU lists, `Dirty`, `Writeback`, `AnonPages`, `Mapped`, `Shmem`,
///   the huge page counts and, on v2, slab, kernel stack, page tables and
///   per-cpu memory: the cgroup's own numbers; lines that have a per-cgroup
///   meaning but no source in this cgroup version show 0, never the host's.
/// * Lines about the machine (`Vmalloc*`, `HugePages_*`, `Hugepagesize`,
///   `DirectMap*`, `CommitLimit`, `Committed_AS`, ...) are the host's.
///
/// Without memory facts the host's text is returned unchanged.
pub fn meminfo(host: &str, mem: Option<&MemFacts>) -> String {
    let Some(m) = mem else {
        return host.to_string();
    };
    let host_total = meminfo_kb(host, "MemTotal").unwrap_or(0) * 1024;
    let total = match m.limit {
        Some(l) if l < host_total || host_total == 0 => l,
        _ => host_total,
    };
    let free = total.saturating_sub(m.usage);
    let s = &m.stat;
    let reclaimable = s.active_file + s.inactive_file + s.slab_reclaimable;
    let mut avail = free.saturating_add(reclaimable).min(total);
    if let Some(h) = meminfo_kb(host, "MemAvailable") {
        avail = avail.min(h * 1024);
    }
    let (swap_total, swap_free) = swap_numbers(host, m);
    let kb = |b: u64| b / 1024;
    let value = |key: &str| -> Option<u64> {
        Some(match key {
            "MemTotal" => kb(total),
            "MemFree" => kb(free),
            "MemAvailable" => kb(avail),
            "Buffers" => 0,
            "Cached" => kb(s.file.saturating_sub(s.swapcached)),
            "SwapCached" => kb(s.swapcached),
            "Active" => kb(s.active_anon + s.active_file),
            "Inactive" => kb(s.inactive_anon + s.inactive_file),
            "Active(anon)" => kb(s.active_anon),
            "Inactive(anon)" => kb(s.inactive_anon),
            "Active(file)" => kb(s.active_file),
            "Inactive(file)" => kb(s.inactive_file),
            "Unevictable" => kb(s.unevictable),
            "Mlocked" => 0,
            "SwapTotal" => kb(swap_total),
            "SwapFree" => kb(swap_free),
            "Zswap" => kb(s.zswap),
            "Zswapped" => kb(s.zswapped),
            "Dirty" => kb(s.file_dirty),
            "Writeback" => kb(s.file_writeback),
            "AnonPages" => kb(s.anon),
            "Mapped" => kb(s.file_mapped),
            "Shmem" => kb(s.shmem),
            "KReclaimable" => kb(s.slab_reclaimable),
            "Slab" => kb(s.slab_reclaimable + s.slab_unreclaimable),
            "SReclaimable" => kb(s.slab_reclaimable),
            "SUnreclaim" => kb(s.slab_unreclaimable),
            "KernelStack" => kb(s.kernel_stack),
            "PageTables" => kb(s.pagetables),
            "SecPageTables" => kb(s.sec_pagetables),
            "NFS_Unstable" | "Bounce" | "WritebackTmp" => 0,
            "Percpu" => kb(s.percpu),
            "AnonHugePages" => kb(s.anon_thp),
            "ShmemHugePages" => kb(s.shmem_thp),
            "ShmemPmdMapped" | "FilePmdMapped" => 0,
            "FileHugePages" => kb(s.file_thp),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(host.len() + 16);
    for line in host.lines() {
        let key = line.split_once(':').map(|(k, _)| k);
        match key.and_then(|k| value(k).map(|v| (k, v))) {
            // Only "kB" lines carry these keys; keep any other as it is.
            Some((k, v)) if line.ends_with(" kB") => kb_line(&mut out, k, v),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// One meminfo line as the kernel prints it: the label and colon padded to
/// 16 columns, the number right-aligned in 8 more, then " kB".
fn kb_line(out: &mut String, key: &str, kb: u64) {
    let label = format!("{key}:");
    if label.len() >= 16 {
        let _ = writeln!(out, "{label} {kb:>7} kB");
    } else {
        let _ = writeln!(out, "{label:<16}{kb:>8} kB");
    }
}

/// (SwapTotal, SwapFree) in bytes for the container: its swap allowance
/// capped at the host's swap, and what is left of it.
pub fn swap_numbers(host_meminfo: &str, m: &MemFacts) -> (u64, u64) {
    let host_swap = meminfo_kb(host_meminfo, "SwapTotal").unwrap_or(0) * 1024;
    let total = m.swap_limit.map_or(host_swap, |l| l.min(host_swap));
    (total, total.saturating_sub(m.swap_usage))
}

/// The container's `/proc/swaps`: the host's header and, when the
/// container may swap, one line named "none" of type "virtual" with its
/// swap allowance and use (KiB) and priority -1, laid out in the kernel's
/// columns. The host's swap devices are not shown.
pub fn swaps(host: &str, host_meminfo: &str, mem: Option<&MemFacts>) -> String {
    let Some(m) = mem else {
        return host.to_string();
    };
    let mut out = String::new();
    match host.lines().next() {
        Some(h) if h.starts_with("Filename") => out.push_str(h),
        _ => out.push_str("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"),
    }
    out.push('\n');
    let (total, free) = swap_numbers(host_meminfo, m);
    if total > 0 {
        let size = total / 1024;
        let used = (total - free) / 1024;
        let name = "none";
        let _ = writeln!(
            out,
            "{name}{:pad$}virtual\t{size}\t{}{used}\t{}-1",
            "",
            if size < 10_000_000 { "\t" } else { "" },
            if used < 10_000_000 { "\t" } else { "" },
            pad = 40 - name.len(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::MemStat;
    use super::*;

    const HOST: &str = "MemTotal:       24683772 kB
MemFree:        22486584 kB
MemAvailable:   24235260 kB
Buffers:           15536 kB
Cached:          1887032 kB
SwapCached:            0 kB
Active:           961264 kB
Inactive:         935812 kB
Active(anon):        116 kB
Inactive(anon):     4796 kB
Active(file):     961148 kB
Inactive(file):   931016 kB
Unevictable:       15944 kB
Mlocked:           13008 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
Dirty:              1360 kB
Writeback:             0 kB
AnonPages:         10596 kB
Mapped:            11708 kB
Shmem:             10388 kB
KReclaimable:     163460 kB
Slab:             199428 kB
SReclaimable:     163460 kB
SUnreclaim:        35968 kB
KernelStack:        2000 kB
PageTables:         1376 kB
CommitLimit:    12341884 kB
VmallocTotal:   34359738367 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
DirectMap1G:    25165824 kB
";

    fn m64() -> MemFacts {
        MemFacts {
            limit: Some(64 << 20),
            usage: 10 << 20,
            swap_limit: Some(0),
            swap_usage: 0,
            stat: MemStat {
                file: 4 << 20,
                anon: 5 << 20,
                active_file: 1 << 20,
                inactive_file: 3 << 20,
                active_anon: 5 << 20,
                shmem: 1 << 20,
                ..Default::default()
            },
        }
    }

    /// What procps `free` does with the file (MemTotal, MemFree, "used").
    fn free_m(text: &str) -> (u64, u64, u64, u64) {
        let g = |k| meminfo_kb(text, k).unwrap();
        let total = g("MemTotal");
        let free = g("MemFree");
        let cache = g("Buffers") + g("Cached") + g("SReclaimable");
        let used = total - free - cache;
        (
            total / 1024,
            free / 1024,
            used / 1024,
            g("MemAvailable") / 1024,
        )
    }

    #[test]
    fn a_64_mib_container_is_64_mib() {
        let out = meminfo(HOST, Some(&m64()));
        let (total, free, used, avail) = free_m(&out);
        assert_eq!(total, 64);
        assert_eq!(free, 54);
        assert_eq!(used, 6);
        assert_eq!(avail, 58);
        assert!(out.starts_with("MemTotal:          65536 kB\nMemFree:           55296 kB\n"));
        assert!(out.contains("\nBuffers:               0 kB\n"));
        assert!(out.contains("\nCached:             4096 kB\n"));
        assert!(out.contains("\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"));
        // Per-cgroup lines v1 has no number for: 0, not the host's.
        assert!(out.contains("\nSReclaimable:          0 kB\n"));
        assert!(out.contains("\nKernelStack:           0 kB\n"));
        // Machine lines pass through untouched, in order.
        assert!(out.contains("\nVmallocTotal:   34359738367 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n"));
        assert_eq!(out.lines().count(), HOST.lines().count());
        for (a, b) in out.lines().zip(HOST.lines()) {
            assert_eq!(a.split(':').next(), b.split(':').next());
            if b.ends_with(" kB") && b.len() < 28 {
                assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn no_limit_means_the_hosts_total() {
        let mut m = m64();
        m.limit = None;
        let out = meminfo(HOST, Some(&m));
        assert_eq!(meminfo_kb(&out, "MemTotal"), Some(24683772));
        assert_eq!(meminfo_kb(&out, "MemFree"), Some(24683772 - 10 * 1024));
        // Never more available than the host has.
        assert_eq!(meminfo_kb(&out, "MemAvailable"), Some(24235260));
        // A limit above the host's memory is no limit.
        m.limit = Some(u64::MAX / 2);
        assert_eq!(
            meminfo_kb(&meminfo(HOST, Some(&m)), "MemTotal"),
            Some(24683772)
        );
        // No facts: the host's file.
        assert_eq!(meminfo(HOST, None), HOST);
    }

    #[test]
    fn usage_above_the_limit_shows_nothing_free() {
        let mut m = m64();
        m.usage = 70 << 20;
        let out = meminfo(HOST, Some(&m));
        assert_eq!(meminfo_kb(&out, "MemFree"), Some(0));
        assert_eq!(meminfo_kb(&out, "MemAvailable"), Some(4096));
    }

    #[test]
    fn swap_allowance() {
        let mut m = m64();
        m.swap_limit = Some(32 << 20);
        m.swap_usage = 8 << 20;
        let out = meminfo(HOST, Some(&m));
        assert_eq!(meminfo_kb(&out, "SwapTotal"), Some(32768));
        assert_eq!(meminfo_kb(&out, "SwapFree"), Some(24576));
        // Unlimited swap: the host's.
        m.swap_limit = None;
        assert_eq!(
            swap_numbers(HOST, &m),
            (2097148 * 1024, 2097148 * 1024 - (8 << 20))
        );
        // An allowance above the host's swap is the host's swap.
        m.swap_limit = Some(1 << 40);
        assert_eq!(swap_numbers(HOST, &m).0, 2097148 * 1024);
    }

    #[test]
    fn v2_slab_counts_as_cache_for_free() {
        let mut m = m64();
        m.stat.slab_reclaimable = 2 << 20;
        m.stat.slab_unreclaimable = 1 << 20;
        m.stat.kernel_stack = 64 << 10;
        let out = meminfo(HOST, Some(&m));
        assert!(out.contains("\nSlab:               3072 kB\nSReclaimable:       2048 kB\nSUnreclaim:         1024 kB\nKernelStack:          64 kB\n"));
        let (_, _, used, avail) = free_m(&out);
        assert_eq!(used, 4);
        assert_eq!(avail, 60);
    }

    #[test]
    fn swaps_file() {
        let host = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/vda2                               partition\t2097148\t\t0\t\t-2\n";
        let mut m = m64();
        assert_eq!(
            swaps(host, HOST, Some(&m)),
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        );
        m.swap_limit = Some(32 << 20);
        m.swap_usage = 1 << 20;
        assert_eq!(
            swaps(host, HOST, Some(&m)),
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
             none                                    virtual\t32768\t\t1024\t\t-1\n"
        );
        assert_eq!(swaps(host, HOST, None), host);
    }
}
