//! Where the numbers come from: descriptors only. The sandbox lives in an
//! empty root, so the server gets a directory descriptor of a procfs that
//! shows the host's numbers ([`HostProc`]) and, per container, directory
//! descriptors of its cgroup in each hierarchy ([`CgroupDir`]), opened by
//! the host side. Files are opened beneath those with openat2
//! (RESOLVE_BENEATH | NO_SYMLINKS | NO_XDEV), so nothing resolves a host
//! path and nothing crosses a mount, in particular not one of the views
//! themselves bind-mounted over a procfs file, which would make the
//! single-threaded server wait on itself.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::render::{
    self, kv, parse_blkio_v1, parse_cpu_list, parse_io_stat, CpuFacts, CpuUsage, DevIo,
    LoadTracker, MemFacts, MemStat, TaskFacts, View, UNLIMITED,
};

const RESOLVE: u64 = husk_sys::mount::RESOLVE_BENEATH
    | husk_sys::mount::RESOLVE_NO_SYMLINKS
    | husk_sys::mount::RESOLVE_NO_XDEV;
/// Open files kept for re-reading (pread from 0), per container.
const MAX_CACHED: usize = 24;
/// Threads looked at for the load and the running/blocked counts.
const MAX_TASKS: usize = 4096;

/// A procfs whose `meminfo`, `stat`, `cpuinfo`, ... show the host's numbers:
/// in boot, its own procfs (the descriptor `leave_host` returns), never one
/// with the views mounted over its files. Cheap to clone; one per sandbox.
#[derive(Debug, Clone)]
pub struct HostProc(Arc<OwnedFd>);

impl HostProc {
    /// Fails unless `fd` is a directory on procfs.
    pub fn new(fd: OwnedFd) -> io::Result<HostProc> {
        let st = nix::sys::statfs::fstatfs(&fd)?;
        if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the host procfs descriptor is not on procfs",
            ));
        }
        Ok(HostProc(Arc::new(fd)))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// What a cgroup directory descriptor is: its hierarchy's controllers and
/// version (as `husk_cgroups::CgroupDir` has them). Crosses the control
/// socket beside the descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDirInfo {
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// A container's cgroup directory in one hierarchy, opened by the host.
#[derive(Debug)]
pub struct CgroupDir {
    pub info: CgroupDirInfo,
    pub fd: OwnedFd,
}

impl CgroupDir {
    /// Host side: open every directory of a container's cgroup (O_PATH).
    pub fn open_all(cg: &husk_cgroups::CgroupPath) -> io::Result<Vec<CgroupDir>> {
        cg.dirs
            .iter()
            .map(|d| {
                Ok(CgroupDir {
                    info: CgroupDirInfo {
                        controllers: d.controllers.clone(),
                        v2: d.v2,
                    },
                    fd: husk_sys::fd::open(&d.path, libc::O_PATH | libc::O_DIRECTORY, 0)?,
                })
            })
            .collect()
    }

    /// For the wire: the descriptions (serialisable) and the descriptors,
    /// in the same order.
    pub fn split(dirs: Vec<CgroupDir>) -> (Vec<CgroupDirInfo>, Vec<OwnedFd>) {
        dirs.into_iter().map(|d| (d.info, d.fd)).unzip()
    }

    /// The other end of [`split`](Self::split).
    pub fn join(infos: Vec<CgroupDirInfo>, fds: Vec<OwnedFd>) -> io::Result<Vec<CgroupDir>> {
        if infos.len() != fds.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cgroup directory descriptions and descriptors do not match",
            ));
        }
        Ok(infos
            .into_iter()
            .zip(fds)
            .map(|(info, fd)| CgroupDir { info, fd })
            .collect())
    }
}

/// What the views of one container are computed from.
#[derive(Debug)]
pub struct Container {
    pub cgroups: Vec<CgroupDir>,
    /// When the container started, on CLOCK_BOOTTIME
    /// ([`husk_sys::clock::boottime`]): `/proc/uptime` counts from here.
    pub started: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Host,
    Cg(usize),
}

/// Which directory answers for a controller, and in which version.
#[derive(Debug, Clone, Copy)]
struct Ctl {
    dir: usize,
    v2: bool,
}

/// Reads the facts of one container.
pub(crate) struct Facts {
    host: HostProc,
    dirs: Vec<OwnedFd>,
    memory: Option<Ctl>,
    cpu: Option<Ctl>,
    cpuacct: Option<Ctl>,
    cpuset: Option<Ctl>,
    io: Option<Ctl>,
    tasks: Option<Ctl>,
    started: Duration,
    load: LoadTracker,
    own_tid: i32,
    cache: Vec<(Dir, &'static str, std::fs::File)>,
}

impl Facts {
    pub(crate) fn new(host: HostProc, ctr: Container) -> Facts {
        let infos: Vec<CgroupDirInfo> = ctr.cgroups.iter().map(|d| d.info.clone()).collect();
        let dirs: Vec<OwnedFd> = ctr.cgroups.into_iter().map(|d| d.fd).collect();
        let exists = |i: usize, f: &str| {
            husk_sys::mount::openat2(
                Some(dirs[i].as_fd()),
                Path::new(f),
                libc::O_PATH,
                0,
                RESOLVE,
            )
            .is_ok()
        };
        // A v1 hierarchy with the controller, else the v2 directory if it
        // has the controller's file (on a hybrid host the unified hierarchy
        // usually has none of them).
        let pick = |v1: &str, v2_file: &str| -> Option<Ctl> {
            if let Some(i) = infos
                .iter()
                .position(|d| !d.v2 && d.controllers.iter().any(|c| c == v1))
            {
                return Some(Ctl { dir: i, v2: false });
            }
            let i = infos.iter().position(|d| d.v2)?;
            exists(i, v2_file).then_some(Ctl { dir: i, v2: true })
        };
        let memory = pick("memory", "memory.current");
        let cpu = pick("cpu", "cpu.max");
        let cpuacct = pick("cpuacct", "cpu.stat");
        let cpuset = pick("cpuset", "cpuset.cpus.effective");
        let io = pick("blkio", "io.stat");
        let tasks = infos
            .iter()
            .position(|d| !d.v2)
            .map(|i| Ctl { dir: i, v2: false })
            .or_else(|| {
                let i = infos.iter().position(|d| d.v2)?;
                Some(Ctl { dir: i, v2: true })
            });
        Facts {
            host,
            dirs,
            memory,
            cpu,
            cpuacct,
            cpuset,
            io,
            tasks,
            started: ctr.started,
            load: LoadTracker::new(Instant::now()),
            own_tid: nix::unistd::gettid().as_raw(),
            cache: Vec::new(),
        }
    }

    fn dir_fd(&self, d: Dir) -> BorrowedFd<'_> {
        match d {
            Dir::Host => self.host.fd(),
            Dir::Cg(i) => self.dirs[i].as_fd(),
        }
    }

    /// The whole text of `name` under `d`, through a kept descriptor when
    /// there is one.
    fn read(&mut self, d: Dir, name: &'static str) -> io::Result<String> {
        if let Some(i) = self
            .cache
            .iter()
            .position(|(cd, n, _)| *cd == d && *n == name)
        {
            match read_all(&self.cache[i].2) {
                Ok(s) => return Ok(s),
                // Gone or stale: open it again below.
                Err(_) => {
                    self.cache.swap_remove(i);
                }
            }
        }
        let fd = husk_sys::mount::openat2(
            Some(self.dir_fd(d)),
            Path::new(name),
            libc::O_RDONLY,
            0,
            RESOLVE,
        )?;
        let f = std::fs::File::from(fd);
        let s = read_all(&f)?;
        // v1 task lists are loaded once per open file and kept for a
        // second: re-reading a kept descriptor would show a stale list.
        let snapshot = matches!(name, "tasks" | "cgroup.procs" | "cgroup.threads");
        if !snapshot && self.cache.len() < MAX_CACHED {
            self.cache.push((d, name, f));
        }
        Ok(s)
    }

    fn read_ctl(&mut self, c: Ctl, name: &'static str) -> Option<String> {
        self.read(Dir::Cg(c.dir), name).ok()
    }

    fn host(&mut self, name: &'static str) -> io::Result<String> {
        self.read(Dir::Host, name)
    }

    fn elapsed(&self) -> Option<Duration> {
        husk_sys::clock::boottime()
            .ok()
            .map(|now| now.saturating_sub(self.started))
    }

    pub(crate) fn mem(&mut self) -> Option<MemFacts> {
        let c = self.memory?;
        let num = |s: Option<String>| -> Option<u64> {
            let s = s?;
            let s = s.trim();
            if s == "max" {
                Some(u64::MAX)
            } else {
                s.parse().ok()
            }
        };
        let limit_of = |v: u64| (v < UNLIMITED).then_some(v);
        if c.v2 {
            let stat = self.read_ctl(c, "memory.stat")?;
            let usage = num(self.read_ctl(c, "memory.current"))?;
            let limit = num(self.read_ctl(c, "memory.max")).and_then(limit_of);
            let swap_limit = num(self.read_ctl(c, "memory.swap.max")).and_then(limit_of);
            let swap_usage = num(self.read_ctl(c, "memory.swap.current")).unwrap_or(0);
            return Some(MemFacts {
                limit,
                usage,
                swap_limit,
                swap_usage,
                stat: MemStat::from_v2(&stat),
            });
        }
        let stat = self.read_ctl(c, "memory.stat")?;
        let usage = num(self.read_ctl(c, "memory.usage_in_bytes"))?;
        let limit = kv(&stat, "hierarchical_memory_limit")
            .or_else(|| num(self.read_ctl(c, "memory.limit_in_bytes")))
            .and_then(limit_of);
        let memsw = kv(&stat, "hierarchical_memsw_limit").and_then(limit_of);
        let swap_limit = match (memsw, limit) {
            (Some(ms), Some(l)) => Some(ms.saturating_sub(l)),
            _ => None,
        };
        let swap_usage = match kv(&stat, "total_swap").or_else(|| kv(&stat, "swap")) {
            Some(s) => s,
            None => num(self.read_ctl(c, "memory.memsw.usage_in_bytes"))
                .map_or(0, |ms| ms.saturating_sub(usage)),
        };
        Some(MemFacts {
            limit,
            usage,
            swap_limit,
            swap_usage,
            stat: MemStat::from_v1(&stat),
        })
    }

    /// The cpuset and quota; CPU time too when `usage`.
    pub(crate) fn cpu(&mut self, usage: bool) -> CpuFacts {
        let mut f = CpuFacts::default();
        if let Some(c) = self.cpuset {
            let text = if c.v2 {
                self.read_ctl(c, "cpuset.cpus.effective")
            } else {
                self.read_ctl(c, "cpuset.effective_cpus")
                    .filter(|t| !t.trim().is_empty())
                    .or_else(|| self.read_ctl(c, "cpuset.cpus"))
            };
            f.cpuset = text.as_deref().and_then(parse_cpu_list);
        }
        if let Some(c) = self.cpu {
            f.quota = if c.v2 {
                self.read_ctl(c, "cpu.max").and_then(|t| {
                    let mut it = t.split_whitespace();
                    let q = it.next()?.parse().ok()?;
                    let p = it.next()?.parse().ok()?;
                    Some((q, p))
                })
            } else {
                let q = self.read_ctl(c, "cpu.cfs_quota_us");
                let p = self.read_ctl(c, "cpu.cfs_period_us");
                match (
                    q.and_then(|q| q.trim().parse::<i64>().ok()),
                    p.and_then(|p| p.trim().parse::<u64>().ok()),
                ) {
                    (Some(q), Some(p)) if q > 0 => Some((q as u64, p)),
                    _ => None,
                }
            };
        }
        if usage {
            f.usage = self.cpu_usage();
        }
        f
    }

    fn cpu_usage(&mut self) -> Option<CpuUsage> {
        let c = self.cpuacct?;
        if c.v2 {
            let t = self.read_ctl(c, "cpu.stat")?;
            return Some(CpuUsage {
                user: kv(&t, "user_usec")? * 1000,
                system: kv(&t, "system_usec")? * 1000,
                percpu: Vec::new(),
            });
        }
        if let Some(t) = self.read_ctl(c, "cpuacct.usage_all") {
            // "cpu user system" then one row per possible CPU, in ns.
            let mut u = CpuUsage::default();
            for row in t.lines().skip(1) {
                let v: Vec<u64> = row
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if let [cpu, user, system] = v[..] {
                    let cpu = cpu as usize;
                    if u.percpu.len() <= cpu {
                        u.percpu.resize(cpu + 1, (0, 0));
                    }
                    u.percpu[cpu] = (user, system);
                    u.user += user;
                    u.system += system;
                }
            }
            if !u.percpu.is_empty() {
                return Some(u);
            }
        }
        let t = self.read_ctl(c, "cpuacct.stat")?;
        let tick = 1_000_000_000 / render::USER_HZ;
        Some(CpuUsage {
            user: kv(&t, "user")? * tick,
            system: kv(&t, "system")? * tick,
            percpu: Vec::new(),
        })
    }

    pub(crate) fn io(&mut self) -> Option<Vec<DevIo>> {
        let c = self.io?;
        if c.v2 {
            return Some(parse_io_stat(&self.read_ctl(c, "io.stat")?));
        }
        let bytes = self.read_ctl(c, "blkio.throttle.io_service_bytes_recursive")?;
        let ios = self
            .read_ctl(c, "blkio.throttle.io_serviced_recursive")
            .unwrap_or_default();
        Some(parse_blkio_v1(&bytes, &ios))
    }

    /// The container's threads by state, from the task list of its cgroup
    /// (not its descendants) and each thread's `/proc/<tid>/stat`.
    pub(crate) fn tasks(&mut self) -> Option<TaskFacts> {
        let c = self.tasks?;
        let list = self.read_ctl(c, if c.v2 { "cgroup.threads" } else { "tasks" })?;
        let mut t = TaskFacts::default();
        let mut path = String::new();
        for tid in list
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter(|t| *t != self.own_tid)
            .take(MAX_TASKS)
        {
            t.total += 1;
            path.clear();
            use std::fmt::Write;
            let _ = write!(path, "{tid}/stat");
            let Ok(fd) = husk_sys::mount::openat2(
                Some(self.host.fd()),
                Path::new(&path),
                libc::O_RDONLY,
                0,
                RESOLVE,
            ) else {
                continue;
            };
            let mut buf = [0u8; 512];
            let n = std::fs::File::from(fd).read_at(&mut buf, 0).unwrap_or(0);
            let text = &buf[..n];
            // "pid (comm) S ...": the state follows the last ')'.
            let state = text
                .iter()
                .rposition(|b| *b == b')')
                .and_then(|i| text.get(i + 2))
                .copied();
            match state {
                Some(b'R') => t.running += 1,
                Some(b'D') => t.blocked += 1,
                _ => {}
            }
        }
        Some(t)
    }

    /// The content of one view, now.
    pub(crate) fn render(&mut self, v: View) -> io::Result<Vec<u8>> {
        let text = match v {
            View::Meminfo => {
                let host = self.host("meminfo")?;
                let m = self.mem();
                render::meminfo(&host, m.as_ref())
            }
            View::Swaps => {
                let host = self.host("swaps")?;
                let meminfo = self.host("meminfo")?;
                let m = self.mem();
                render::swaps(&host, &meminfo, m.as_ref())
            }
            View::Cpuinfo => {
                let host = self.host("cpuinfo")?;
                let shown = self.shown()?;
                render::cpuinfo(&host, &shown)
            }
            View::CpuOnline => render::cpu_online(&self.shown()?),
            View::Stat | View::Uptime => {
                let host = self.host("stat")?;
                let cpus = render::host_cpus(&host);
                let online: Vec<u32> = cpus.keys().copied().collect();
                let f = self.cpu(true);
                let shown = render::shown_cpus(&online, &f);
                let elapsed = self.elapsed();
                let times = render::cpu_times(&cpus, &shown, &f, elapsed);
                if v == View::Stat {
                    let tasks = self.tasks();
                    render::stat(&host, &times, tasks.as_ref())
                } else {
                    let idle = times
                        .iter()
                        .map(|(_, t)| t.get(3).copied().unwrap_or(0))
                        .sum();
                    render::uptime(elapsed.unwrap_or_default(), idle)
                }
            }
            View::Loadavg => {
                let host = self.host("loadavg")?;
                let tasks = self.tasks();
                let active = tasks.map_or(0, |t| t.running + t.blocked);
                let avg = self.load.update(Instant::now(), active);
                render::loadavg(&host, avg, tasks.as_ref())
            }
            View::Diskstats => {
                let host = self.host("diskstats")?;
                let io = self.io();
                render::diskstats(&host, io.as_deref())
            }
        };
        Ok(text.into_bytes())
    }

    fn shown(&mut self) -> io::Result<Vec<u32>> {
        let host = self.host("stat")?;
        let online: Vec<u32> = render::host_cpus(&host).keys().copied().collect();
        let f = self.cpu(false);
        Ok(render::shown_cpus(&online, &f))
    }
}

/// Read a whole (pseudo) file from offset 0, however often it was read.
fn read_all(f: &std::fs::File) -> io::Result<String> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() >= 4 << 20 {
                return Err(io::Error::other("file too large"));
            }
            buf.resize(buf.len() * 2, 0);
        }
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of fixture files standing in for a cgroup directory.
    struct Fixture(std::path::PathBuf);

    impl Fixture {
        fn new(tag: &str, files: &[(&str, &str)]) -> Fixture {
            let p = std::env::temp_dir().join(format!(
                "husk-procviews-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            for (n, c) in files {
                std::fs::write(p.join(n), c).unwrap();
            }
            Fixture(p)
        }

        fn dir(&self, controllers: &[&str], v2: bool) -> CgroupDir {
            CgroupDir {
                info: CgroupDirInfo {
                    controllers: controllers.iter().map(|s| s.to_string()).collect(),
                    v2,
                },
                fd: husk_sys::fd::open(&self.0, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap(),
            }
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn host() -> HostProc {
        HostProc::new(husk_sys::fd::open(Path::new("/proc"), libc::O_PATH, 0).unwrap()).unwrap()
    }

    #[test]
    fn host_proc_must_be_procfs() {
        let tmp = husk_sys::fd::open(&std::env::temp_dir(), libc::O_PATH, 0).unwrap();
        assert!(HostProc::new(tmp).is_err());
    }

    #[test]
    fn v2_facts_from_a_unified_directory() {
        let fx = Fixture::new(
            "v2",
            &[
                ("memory.current", "10485760\n"),
                ("memory.max", "67108864\n"),
                ("memory.swap.max", "max\n"),
                ("memory.swap.current", "4096\n"),
                ("memory.stat", "anon 5242880\nfile 4194304\nactive_file 1048576\ninactive_file 3145728\nslab_reclaimable 4096\n"),
                ("cpu.max", "150000 100000\n"),
                ("cpu.stat", "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\n"),
                ("cpuset.cpus.effective", "0\n"),
                ("io.stat", "254:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
                ("cgroup.threads", ""),
            ],
        );
        let mut f = Facts::new(
            host(),
            Container {
                cgroups: vec![fx.dir(&["memory", "cpu", "cpuset", "io"], true)],
                started: Duration::ZERO,
            },
        );
        let m = f.mem().unwrap();
        assert_eq!(m.limit, Some(64 << 20));
        assert_eq!(m.usage, 10 << 20);
        assert_eq!(m.swap_limit, None);
        assert_eq!(m.swap_usage, 4096);
        assert_eq!(m.stat.slab_reclaimable, 4096);
        let c = f.cpu(true);
        assert_eq!(c.cpuset, Some(vec![0]));
        assert_eq!(c.quota, Some((150000, 100000)));
        let u = c.usage.unwrap();
        assert_eq!((u.user, u.system), (2_000_000, 1_000_000));
        assert_eq!(f.io().unwrap()[0].rbytes, 4096);
        assert_eq!(f.tasks(), Some(TaskFacts::default()));
        let text = String::from_utf8(f.render(View::Meminfo).unwrap()).unwrap();
        assert!(text.starts_with("MemTotal:          65536 kB\n"), "{text}");
        let online = String::from_utf8(f.render(View::CpuOnline).unwrap()).unwrap();
        assert_eq!(online, "0\n");
    }

    #[test]
    fn v1_facts_from_separate_hierarchies() {
        let mem = Fixture::new(
            "v1mem",
            &[
                ("memory.usage_in_bytes", "20971520\n"),
                ("memory.limit_in_bytes", "67108864\n"),
                ("memory.memsw.usage_in_bytes", "20971520\n"),
                ("memory.stat", "cache 1\ntotal_cache 4194304\ntotal_rss 8388608\ntotal_swap 0\nhierarchical_memory_limit 67108864\nhierarchical_memsw_limit 100663296\n"),
            ],
        );
        let cpu = Fixture::new(
            "v1cpu",
            &[
                ("cpu.cfs_quota_us", "-1\n"),
                ("cpu.cfs_period_us", "100000\n"),
            ],
        );
        let acct = Fixture::new(
            "v1acct",
            &[("cpuacct.usage_all", "cpu user system\n0 100 50\n1 200 0\n")],
        );
        let cpuset = Fixture::new(
            "v1cpuset",
            &[("cpuset.effective_cpus", "1\n"), ("cpuset.cpus", "1\n")],
        );
        let mut f = Facts::new(
            host(),
            Container {
                cgroups: vec![
                    mem.dir(&["memory"], false),
                    cpu.dir(&["cpu"], false),
                    acct.dir(&["cpuacct"], false),
                    cpuset.dir(&["cpuset"], false),
                ],
                started: Duration::ZERO,
            },
        );
        let m = f.mem().unwrap();
        assert_eq!(m.limit, Some(64 << 20));
        assert_eq!(m.swap_limit, Some(32 << 20));
        assert_eq!(m.stat.file, 4 << 20);
        let c = f.cpu(true);
        assert_eq!(c.quota, None);
        assert_eq!(c.cpuset, Some(vec![1]));
        let u = c.usage.unwrap();
        assert_eq!(u.percpu, vec![(100, 50), (200, 0)]);
        assert_eq!((u.user, u.system), (300, 50));
        // No tasks file in the fixture: unknown, not zero.
        assert_eq!(f.tasks(), None);
        // No io hierarchy: the host's diskstats.
        assert!(f.io().is_none());
    }

    #[test]
    fn no_cgroups_means_the_hosts_files() {
        let mut f = Facts::new(
            host(),
            Container {
                cgroups: vec![],
                started: Duration::ZERO,
            },
        );
        let ours = f.render(View::Meminfo).unwrap();
        assert!(ours.starts_with(b"MemTotal:"));
        assert_eq!(
            f.render(View::Cpuinfo).unwrap(),
            std::fs::read("/proc/cpuinfo").unwrap()
        );
    }

    #[test]
    fn wire_split_and_join() {
        let fx = Fixture::new("wire", &[]);
        let (infos, fds) = CgroupDir::split(vec![fx.dir(&["memory"], false), fx.dir(&[], true)]);
        assert_eq!(
            infos[1],
            CgroupDirInfo {
                controllers: vec![],
                v2: true
            }
        );
        let back = CgroupDir::join(infos.clone(), fds).unwrap();
        assert_eq!(back.len(), 2);
        assert!(CgroupDir::join(infos, vec![]).is_err());
    }
}
