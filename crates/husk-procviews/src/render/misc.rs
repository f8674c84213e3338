//! `/proc/loadavg` and `/proc/diskstats`.

use std::fmt::Write;
use std::time::{Duration, Instant};

use super::{DevIo, TaskFacts};

/// The kernel samples the load every 5 s.
const SAMPLE: Duration = Duration::from_secs(5);

/// The container's load averages: exponentially damped 1, 5 and 15 minute
/// averages of its runnable + uninterruptible threads, like the kernel's.
///
/// The sandbox keeps no timer for it: a sample is taken when the file is
/// read, and the 5-second steps since the last read are applied at once
/// with that sample (as the kernel itself catches up after idle periods
/// without ticks). A container nobody asks about costs nothing; one read
/// every few seconds (top, uptime) gives the kernel's figures.
#[derive(Debug, Clone)]
pub struct LoadTracker {
    since: Instant,
    avg: [f64; 3],
}

impl LoadTracker {
    pub fn new(now: Instant) -> Self {
        LoadTracker {
            since: now,
            avg: [0.0; 3],
        }
    }

    /// Apply the 5-second steps up to `now` with `active` threads.
    pub fn update(&mut self, now: Instant, active: u32) -> [f64; 3] {
        let steps = (now.saturating_duration_since(self.since).as_secs() / SAMPLE.as_secs()) as i32;
        if steps > 0 {
            self.since += SAMPLE * steps as u32;
            for (avg, minutes) in self.avg.iter_mut().zip([1.0f64, 5.0, 15.0]) {
                let decay = (-(SAMPLE.as_secs_f64()) / (minutes * 60.0))
                    .exp()
                    .powi(steps);
                *avg = *avg * decay + f64::from(active) * (1.0 - decay);
            }
        }
        self.avg
    }
}

/// The container's `/proc/loadavg`: its load averages, its runnable and
/// total threads, and the host file's last field (the last pid of the
/// reading sandbox's pid namespace, which is the pod's, not the host's).
/// Without task facts, the host's text unchanged.
pub fn loadavg(host: &str, avg: [f64; 3], tasks: Option<&TaskFacts>) -> String {
    let Some(t) = tasks else {
        return host.to_string();
    };
    let last_pid = host.split_whitespace().nth(4).unwrap_or("0");
    let mut out = String::with_capacity(40);
    for a in avg {
        // Two decimals, rounded as the kernel rounds (it adds 1/200).
        let hundredths = (a.max(0.0) * 100.0 + 0.5) as u64;
        let _ = write!(out, "{}.{:02} ", hundredths / 100, hundredths % 100);
    }
    let _ = writeln!(out, "{}/{} {last_pid}", t.running, t.total);
    out
}

/// The container's `/proc/diskstats`: one line per block device the
/// container did I/O on (as its cgroup counts it), named as the host names
/// it, with the host's number of columns: reads and writes completed,
/// sectors read and written, discards and sectors discarded come from the
/// cgroup; merges, times, in-flight and flushes, which a cgroup does not
/// count, are 0. Devices the container never touched are not listed.
/// Without I/O facts, the host's text unchanged.
pub fn diskstats(host: &str, io: Option<&[DevIo]>) -> String {
    let Some(io) = io else {
        return host.to_string();
    };
    let mut out = String::new();
    for line in host.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let (Ok(major), Ok(minor)) = (f[0].parse::<u32>(), f[1].parse::<u32>()) else {
            continue;
        };
        let Some(d) = io.iter().find(|d| d.major == major && d.minor == minor) else {
            continue;
        };
        let columns = f.len() - 3;
        let mut v = vec![0u64; columns];
        let mut set = |i: usize, x: u64| {
            if i < columns {
                v[i] = x;
            }
        };
        set(0, d.rios);
        set(2, d.rbytes / 512);
        set(4, d.wios);
        set(6, d.wbytes / 512);
        set(11, d.dios);
        set(13, d.dbytes / 512);
        let _ = write!(out, "{major:4} {minor:7} {}", f[2]);
        for x in v {
            let _ = write!(out, " {x}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_average_converges_like_the_kernels() {
        let t0 = Instant::now();
        let mut l = LoadTracker::new(t0);
        assert_eq!(l.update(t0 + Duration::from_secs(4), 3), [0.0; 3]);
        // One minute at 1 runnable thread: the 1-minute average is 1 - 1/e.
        let a = l.update(t0 + Duration::from_secs(60), 1);
        assert!((a[0] - (1.0 - (-1.0f64).exp())).abs() < 1e-9, "{a:?}");
        assert!(a[1] < a[0] && a[2] < a[1]);
        // Long idle: back to nothing.
        let a = l.update(t0 + Duration::from_secs(3600), 0);
        assert!(a[0] < 1e-9 && a[2] < 0.1, "{a:?}");
    }

    #[test]
    fn loadavg_line() {
        let host = "0.41 0.90 0.80 1/124 5590\n";
        let t = TaskFacts {
            running: 1,
            blocked: 0,
            total: 7,
        };
        assert_eq!(
            loadavg(host, [0.632, 0.156, 0.0549], Some(&t)),
            "0.63 0.16 0.05 1/7 5590\n"
        );
        assert_eq!(
            loadavg(host, [12.346, 0.0, 0.0], Some(&t)),
            "12.35 0.00 0.00 1/7 5590\n"
        );
        assert_eq!(loadavg(host, [0.0; 3], None), host);
    }

    #[test]
    fn diskstats_of_the_containers_devices() {
        let host = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n \
                    254       0 vda 338835 16004 17466394 85128 423584 164039 33854344 287447 0 42756 394878 118023 55 16084616 13370 78390 8931\n";
        let io = [DevIo {
            major: 254,
            minor: 0,
            rbytes: 4096,
            wbytes: 1 << 20,
            rios: 1,
            wios: 16,
            ..Default::default()
        }];
        assert_eq!(
            diskstats(host, Some(&io)),
            " 254       0 vda 1 0 8 0 16 0 2048 0 0 0 0 0 0 0 0 0 0\n"
        );
        // An older kernel's 14 columns stay 14.
        let old = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n";
        let io = [DevIo {
            major: 8,
            minor: 0,
            rios: 5,
            ..Default::default()
        }];
        assert_eq!(
            diskstats(old, Some(&io)),
            "   8       0 sda 5 0 0 0 0 0 0 0 0 0 0\n"
        );
        assert_eq!(diskstats(host, Some(&[])), "");
        assert_eq!(diskstats(host, None), host);
    }
}
