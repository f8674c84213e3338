//! `/proc/cpuinfo`, `/proc/stat`, `/proc/uptime` and
//! `/sys/devices/system/cpu/online`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::{CpuFacts, TaskFacts, NS_PER_TICK, USER_HZ};

/// The per-CPU lines of the host's `/proc/stat` (its online CPUs): CPU
/// number → its columns (user nice system idle iowait irq softirq steal
/// guest guest_nice, as many as the kernel prints), in USER_HZ ticks.
pub fn host_cpus(host_stat: &str) -> BTreeMap<u32, Vec<u64>> {
    host_stat
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cpu")?;
            let (n, vals) = rest.split_once(' ')?;
            let n: u32 = n.parse().ok()?;
            Some((
                n,
                vals.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect(),
            ))
        })
        .collect()
}

/// The CPUs the container is shown, in host numbering: the cpuset's
/// effective CPUs that are online, and of those only the first
/// ⌈quota/period⌉ when a CFS quota allows fewer (a quota of 150000/100000
/// shows 2 CPUs: the container can run on two at once, for 75% of the time).
/// Never empty: at worst the first online CPU.
pub fn shown_cpus(online: &[u32], cpu: &CpuFacts) -> Vec<u32> {
    let mut cpus: Vec<u32> = match &cpu.cpuset {
        Some(set) => online.iter().copied().filter(|c| set.contains(c)).collect(),
        None => online.to_vec(),
    };
    if cpus.is_empty() {
        cpus = online.iter().copied().take(1).collect();
    }
    if let Some((quota, period)) = cpu.quota {
        if quota > 0 && period > 0 {
            let n = quota.div_ceil(period).max(1) as usize;
            cpus.truncate(n);
        }
    }
    cpus
}

/// "0-3,5\n": a CPU list as sysfs prints it.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        i += 1;
    }
    out.push('\n');
    out
}

/// `/sys/devices/system/cpu/online` for the container: its shown CPUs.
pub fn cpu_online(shown: &[u32]) -> String {
    format_cpu_list(shown)
}

/// The container's `/proc/cpuinfo`: the host's blocks of the shown CPUs,
/// with their host numbers (so they agree with `sched_getaffinity` and
/// `/proc/self/status`), and on x86 `siblings` and `cpu cores` counted
/// over the shown CPUs of each package. Text that is not a per-CPU block
/// is kept; a format without "processor" blocks is passed through.
pub fn cpuinfo(host: &str, shown: &[u32]) -> String {
    let blocks: Vec<&str> = host.split("\n\n").collect();
    let field = |b: &str, key: &str| -> Option<String> {
        b.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim_end() == key).then(|| v.trim().to_string())
        })
    };
    let cpu_of = |b: &str| field(b, "processor").and_then(|v| v.parse::<u32>().ok());
    if !blocks.iter().any(|b| cpu_of(b).is_some()) {
        return host.to_string();
    }
    let kept: Vec<&str> = blocks
        .iter()
        .copied()
        .filter(|b| cpu_of(b).is_none_or(|c| shown.contains(&c)))
        .collect();
    if !kept.iter().any(|b| cpu_of(b).is_some()) {
        return host.to_string();
    }
    // Per package (physical id): shown logical CPUs, distinct core ids.
    let mut packages: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    for b in kept.iter().filter(|b| cpu_of(b).is_some()) {
        let pkg = field(b, "physical id").unwrap_or_default();
        let e = packages.entry(pkg).or_default();
        e.0 += 1;
        if let Some(core) = field(b, "core id") {
            if !e.1.contains(&core) {
                e.1.push(core);
            }
        }
    }
    let mut out = String::with_capacity(host.len());
    for (i, b) in kept.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        if cpu_of(b).is_none() {
            out.push_str(b);
            continue;
        }
        let pkg = field(b, "physical id").unwrap_or_default();
        let (siblings, cores) = packages
            .get(&pkg)
            .map(|(n, c)| (*n, c.len()))
            .unwrap_or((1, 1));
        for (j, line) in b.lines().enumerate() {
            if j > 0 {
                out.push('\n');
            }
            let key = line.split_once(':').map(|(k, _)| k);
            match key {
                Some(k) if k.trim_end() == "siblings" => {
                    let _ = write!(out, "{k}: {siblings}");
                }
                Some(k) if k.trim_end() == "cpu cores" && cores > 0 => {
                    let _ = write!(out, "{k}: {cores}");
                }
                _ => out.push_str(line),
            }
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The container's per-CPU times, in USER_HZ ticks, for the shown CPUs:
/// `[user, nice, system, idle, iowait, irq, softirq, steal, guest,
/// guest_nice]`, as many columns as the host prints.
///
/// Semantics: time since the container started, from its point of view.
/// user and system are the cgroup's CPU time on that CPU (cgroup v1
/// `cpuacct.usage_all`); when the kernel gives no per-CPU split (cgroup
/// v2) or the container ran on CPUs it is not shown (a quota narrower than
/// its cpuset), its total is spread evenly over the shown CPUs. idle is the
/// rest of the time since it started; nice, iowait, irq, softirq, steal
/// and guest are 0 (a cgroup has no such counts).
///
/// Without usage facts or a start time, the host's lines of those CPUs.
pub fn cpu_times(
    host: &BTreeMap<u32, Vec<u64>>,
    shown: &[u32],
    cpu: &CpuFacts,
    elapsed: Option<Duration>,
) -> Vec<(u32, Vec<u64>)> {
    let columns = host.values().map(Vec::len).max().unwrap_or(10).max(4);
    let (Some(usage), Some(elapsed)) = (&cpu.usage, elapsed) else {
        return shown
            .iter()
            .map(|c| (*c, host.get(c).cloned().unwrap_or_else(|| vec![0; columns])))
            .collect();
    };
    let elapsed_ticks = (elapsed.as_nanos() / NS_PER_TICK as u128) as u64;
    let n = shown.len().max(1) as u64;
    let outside: u64 = usage
        .percpu
        .iter()
        .enumerate()
        .filter(|(i, _)| !shown.contains(&(*i as u32)))
        .map(|(_, (u, s))| u + s)
        .sum();
    let per_cpu = !usage.percpu.is_empty() && outside == 0;
    shown
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let (user, system) = if per_cpu {
                let (u, s) = usage.percpu.get(*c as usize).copied().unwrap_or((0, 0));
                (u / NS_PER_TICK, s / NS_PER_TICK)
            } else {
                // Even shares; the remainder goes to the first CPUs.
                let share = |ns: u64| {
                    let t = ns / NS_PER_TICK;
                    t / n + u64::from((k as u64) < t % n)
                };
                (share(usage.user), share(usage.system))
            };
            let mut v = vec![0; columns];
            v[0] = user;
            v[2] = system;
            v[3] = elapsed_ticks.saturating_sub(user + system);
            (*c, v)
        })
        .collect()
}

/// The container's `/proc/stat`: the aggregate `cpu` line (the sum of the
/// shown CPUs) and one `cpuN` line per shown CPU from `times`;
/// `procs_running` and `procs_blocked` from the container's tasks when
/// known; everything else (intr, ctxt, btime, processes, softirq) is the
/// host's. btime stays the host's boot time so that `ps` computes process
/// start times right from `/proc/<pid>/stat`.
pub fn stat(host: &str, times: &[(u32, Vec<u64>)], tasks: Option<&TaskFacts>) -> String {
    let mut out = String::with_capacity(host.len());
    let columns = times.iter().map(|(_, v)| v.len()).max().unwrap_or(10);
    for line in host.lines() {
        if line.starts_with("cpu ") {
            let mut sum = vec![0u64; columns];
            for (_, v) in times {
                for (s, x) in sum.iter_mut().zip(v) {
                    *s += x;
                }
            }
            out.push_str("cpu ");
            for s in &sum {
                let _ = write!(out, " {s}");
            }
            out.push('\n');
            for (c, v) in times {
                let _ = write!(out, "cpu{c}");
                for x in v {
                    let _ = write!(out, " {x}");
                }
                out.push('\n');
            }
            continue;
        }
        if line.starts_with("cpu") {
            continue;
        }
        match (line.split_once(' '), tasks) {
            (Some(("procs_running", _)), Some(t)) => {
                let _ = writeln!(out, "procs_running {}", t.running);
            }
            (Some(("procs_blocked", _)), Some(t)) => {
                let _ = writeln!(out, "procs_blocked {}", t.blocked);
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The container's `/proc/uptime`: seconds since it started, and the idle
/// time of its shown CPUs (the sum of their idle ticks, as the kernel sums
/// over its CPUs), both with two decimals, truncated as the kernel does.
pub fn uptime(elapsed: Duration, idle_ticks: u64) -> String {
    let cs = elapsed.as_millis() / 10;
    format!(
        "{}.{:02} {}.{:02}\n",
        cs / 100,
        cs % 100,
        idle_ticks / USER_HZ,
        idle_ticks % USER_HZ
    )
}

#[cfg(test)]
mod tests {
    use super::super::CpuUsage;
    use super::*;

    const STAT: &str = "cpu  89751 0 58646 593962 1402 0 515 30 0 0
cpu0 44799 0 28212 298634 452 0 63 14 0 0
cpu1 44951 0 30433 295327 950 0 451 15 0 0
intr 5198106 0 0 0
ctxt 12354486
btime 1796684988
processes 200260
procs_running 3
procs_blocked 1
softirq 1736975 0 170226 6324 13032 476620 0 335 265180 0 805258
";

    const CPUINFO: &str = "processor\t: 0
vendor_id\t: AuthenticAMD
physical id\t: 0
siblings\t: 2
core id\t\t: 0
cpu cores\t: 2
flags\t\t: fpu vme

processor\t: 1
vendor_id\t: AuthenticAMD
physical id\t: 0
siblings\t: 2
core id\t\t: 1
cpu cores\t: 2
flags\t\t: fpu vme

";

    #[test]
    fn online_cpus_from_stat() {
        let h = host_cpus(STAT);
        assert_eq!(h.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(h[&1][0], 44951);
        assert_eq!(h[&1].len(), 10);
    }

    #[test]
    fn cpus_from_cpuset_and_quota() {
        let online = [0, 1, 2, 3, 4, 5, 6, 7];
        let f = |cpuset: Option<Vec<u32>>, quota| CpuFacts {
            cpuset,
            quota,
            usage: None,
        };
        assert_eq!(shown_cpus(&online, &f(None, None)).len(), 8);
        assert_eq!(shown_cpus(&online, &f(Some(vec![3]), None)), vec![3]);
        assert_eq!(
            shown_cpus(&online, &f(None, Some((150000, 100000)))),
            vec![0, 1]
        );
        assert_eq!(
            shown_cpus(&online, &f(None, Some((50000, 100000)))),
            vec![0]
        );
        assert_eq!(
            shown_cpus(&online, &f(None, Some((100000, 100000)))),
            vec![0]
        );
        assert_eq!(
            shown_cpus(&online, &f(Some(vec![2, 5, 6]), Some((200000, 100000)))),
            vec![2, 5]
        );
        // A quota wider than the cpuset changes nothing.
        assert_eq!(
            shown_cpus(&online, &f(Some(vec![4]), Some((400000, 100000)))),
            vec![4]
        );
        // An offline cpuset CPU is not shown; nothing left: the first online.
        assert_eq!(shown_cpus(&[0, 1], &f(Some(vec![9]), None)), vec![0]);
    }

    #[test]
    fn cpu_list_format() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3]), "0-3\n");
        assert_eq!(format_cpu_list(&[0]), "0\n");
        assert_eq!(format_cpu_list(&[0, 2, 3, 4, 7]), "0,2-4,7\n");
        assert_eq!(cpu_online(&[5]), "5\n");
    }

    #[test]
    fn cpuinfo_of_one_cpu() {
        let out = cpuinfo(CPUINFO, &[1]);
        assert_eq!(
            out,
            "processor\t: 1\nvendor_id\t: AuthenticAMD\nphysical id\t: 0\nsiblings\t: 1\n\
             core id\t\t: 1\ncpu cores\t: 1\nflags\t\t: fpu vme\n\n"
        );
        assert_eq!(cpuinfo(CPUINFO, &[0, 1]), CPUINFO);
        // Nothing shown matches: keep the host's rather than an empty file.
        assert_eq!(cpuinfo(CPUINFO, &[7]), CPUINFO);
        // A format without processor blocks passes through.
        assert_eq!(cpuinfo("vendor_id : x\n", &[0]), "vendor_id : x\n");
    }

    #[test]
    fn cpuinfo_keeps_non_cpu_blocks() {
        let arm = "processor\t: 0\nBogoMIPS\t: 48.00\n\nprocessor\t: 1\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\n";
        assert_eq!(
            cpuinfo(arm, &[1]),
            "processor\t: 1\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\n"
        );
    }

    #[test]
    fn stat_from_container_usage() {
        let host = host_cpus(STAT);
        let tick = NS_PER_TICK;
        let cpu = CpuFacts {
            cpuset: Some(vec![1]),
            quota: None,
            usage: Some(CpuUsage {
                user: 30 * tick,
                system: 12 * tick,
                percpu: vec![(0, 0), (30 * tick, 12 * tick)],
            }),
        };
        let shown = shown_cpus(&[0, 1], &cpu);
        let times = cpu_times(&host, &shown, &cpu, Some(Duration::from_secs(5)));
        assert_eq!(times, vec![(1, vec![30, 0, 12, 458, 0, 0, 0, 0, 0, 0])]);
        let tasks = TaskFacts {
            running: 2,
            blocked: 0,
            total: 9,
        };
        let out = stat(STAT, &times, Some(&tasks));
        assert_eq!(
            out,
            "cpu  30 0 12 458 0 0 0 0 0 0\ncpu1 30 0 12 458 0 0 0 0 0 0\n\
             intr 5198106 0 0 0\nctxt 12354486\nbtime 1796684988\nprocesses 200260\n\
             procs_running 2\nprocs_blocked 0\n\
             softirq 1736975 0 170226 6324 13032 476620 0 335 265180 0 805258\n"
        );
        let idle: u64 = times.iter().map(|(_, v)| v[3]).sum();
        assert_eq!(uptime(Duration::from_millis(5019), idle), "5.01 4.58\n");
    }

    #[test]
    fn usage_spread_when_the_kernel_has_no_split() {
        let host = host_cpus(STAT);
        let tick = NS_PER_TICK;
        // cgroup v2: totals only; quota of 1.5 CPUs on a 2-CPU host.
        let cpu = CpuFacts {
            cpuset: None,
            quota: Some((150000, 100000)),
            usage: Some(CpuUsage {
                user: 101 * tick,
                system: 40 * tick,
                percpu: vec![],
            }),
        };
        let shown = shown_cpus(&[0, 1], &cpu);
        let t = cpu_times(&host, &shown, &cpu, Some(Duration::from_secs(100)));
        assert_eq!(t[0].1[..4], [51, 0, 20, 9929]);
        assert_eq!(t[1].1[..4], [50, 0, 20, 9930]);
        // Ran on a CPU it is not shown (quota narrower than its cpuset):
        // spread too, so no CPU shows more than it could.
        let cpu = CpuFacts {
            cpuset: None,
            quota: Some((100000, 100000)),
            usage: Some(CpuUsage {
                user: 60 * tick,
                system: 0,
                percpu: vec![(30 * tick, 0), (30 * tick, 0)],
            }),
        };
        let shown = shown_cpus(&[0, 1], &cpu);
        let t = cpu_times(&host, &shown, &cpu, Some(Duration::from_secs(1)));
        assert_eq!(t, vec![(0, vec![60, 0, 0, 40, 0, 0, 0, 0, 0, 0])]);
    }

    #[test]
    fn no_usage_means_the_hosts_lines() {
        let host = host_cpus(STAT);
        let cpu = CpuFacts {
            cpuset: Some(vec![0]),
            ..Default::default()
        };
        let t = cpu_times(&host, &[0], &cpu, Some(Duration::from_secs(1)));
        assert_eq!(t[0].1[0], 44799);
        let out = stat(STAT, &t, None);
        assert!(out.starts_with("cpu  44799 0 28212 298634 452 0 63 14 0 0\ncpu0 44799 "));
        assert!(out.contains("\nprocs_running 3\nprocs_blocked 1\n"));
        assert!(!out.contains("cpu1"));
    }

    #[test]
    fn uptime_format() {
        assert_eq!(uptime(Duration::from_millis(0), 0), "0.00 0.00\n");
        assert_eq!(
            uptime(Duration::from_millis(123_456), 24_601),
            "123.45 246.01\n"
        );
    }
}
