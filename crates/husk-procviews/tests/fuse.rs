//! The views through a real FUSE mount, as root: a server in a thread of
//! the test (the production server is single-threaded; only the harness
//! uses a second thread), the views bind-mounted over /proc and /sys files
//! in a private mount namespace of the test's thread, real v1 cgroups made
//! for the test. Printed "SKIPPED" without root or /dev/fuse.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use husk_procviews::{
    mount, CgroupDir, CgroupDirInfo, Config, Container, Counters, HostProc, Server, Status, View,
};

fn skip() -> bool {
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if root.ok() != Some(true) || !Path::new("/dev/fuse").exists() {
        println!("SKIPPED: needs root and /dev/fuse");
        return true;
    }
    false
}

/// A v1 cgroup in the given hierarchies, removed on drop.
struct Cg {
    dirs: Vec<(String, PathBuf)>,
}

impl Cg {
    fn new(tag: &str, ctls: &[&str]) -> Cg {
        let name = format!("husk-procviews-test-{}-{tag}", std::process::id());
        let mut dirs = Vec::new();
        for c in ctls {
            let p = Path::new("/sys/fs/cgroup").join(c).join(&name);
            let _ = std::fs::remove_dir(&p);
            std::fs::create_dir(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            dirs.push((c.to_string(), p));
        }
        Cg { dirs }
    }

    fn path(&self, ctl: &str) -> &Path {
        &self.dirs.iter().find(|(c, _)| c == ctl).unwrap().1
    }

    fn write(&self, ctl: &str, file: &str, v: &str) {
        std::fs::write(self.path(ctl).join(file), v)
            .unwrap_or_else(|e| panic!("{ctl}/{file}={v}: {e}"));
    }

    fn fds(&self) -> Vec<CgroupDir> {
        self.dirs
            .iter()
            .map(|(c, p)| CgroupDir {
                info: CgroupDirInfo {
                    controllers: vec![c.clone()],
                    v2: false,
                },
                fd: husk_sys::fd::open(p, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap(),
            })
            .collect()
    }

    /// `sh -c script` inside the cgroup.
    fn sh(&self, script: &str) -> String {
        let mut join = String::new();
        for (_, p) in &self.dirs {
            join.push_str(&format!("echo $$ > {}/cgroup.procs; ", p.display()));
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{join}{script}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        for (_, p) in &self.dirs {
            for _ in 0..200 {
                if std::fs::remove_dir(p).is_ok() || !p.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// A server thread over a fresh /dev/fuse, the superblock, and the views
/// mounted over this thread's /proc and /sys (in a private mount namespace
/// of the calling thread).
struct Views {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(Counters, Duration)>>,
    _mnt: OwnedFd,
}

fn private_mount_namespace() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_FS)
        .expect("unshare mount namespace");
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
}

fn start(cg: Option<&Cg>, cfg: Config, started: Duration) -> Views {
    // The host's procfs as boot has it: a mount the views never cover
    // (opened before this thread's namespace gets them over its /proc).
    let host =
        HostProc::new(husk_sys::fd::open(Path::new("/proc"), libc::O_PATH, 0).unwrap()).unwrap();
    private_mount_namespace();
    let fuse = husk_sys::fd::open(Path::new("/dev/fuse"), libc::O_RDWR, 0).unwrap();
    let mnt = mount::superblock(fuse.as_fd(), 0, 0).expect("fuse superblock");
    let ctr = Container {
        cgroups: cg.map(|c| c.fds()).unwrap_or_default(),
        started,
    };
    let views = cfg.views.clone();
    let server = Server::new(fuse, host, ctr, cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(server, stop))
    };
    let proc_dir =
        husk_sys::fd::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
    let sys_dir =
        husk_sys::fd::open(Path::new("/sys"), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
    mount::bind_views(mnt.as_fd(), proc_dir.as_fd(), Some(sys_dir.as_fd()), &views)
        .expect("bind views");
    Views {
        stop,
        thread: Some(thread),
        _mnt: mnt,
    }
}

/// The harness's copy of boot's loop: poll, then on_readable.
fn serve(mut server: Server, stop: Arc<AtomicBool>) -> (Counters, Duration) {
    let t0 = thread_cpu();
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [husk_sys::pollfd(server.fd().as_raw_fd(), libc::POLLIN)];
        husk_sys::poll(&mut fds, 50).unwrap();
        if fds[0].revents != 0 {
            match server.on_readable().unwrap() {
                Status::Serving => {}
                Status::NotMounted => std::thread::sleep(Duration::from_millis(1)),
                Status::Closed => break,
            }
        }
    }
    (server.counters(), thread_cpu() - t0)
}

/// This thread's CPU time (user + system).
fn thread_cpu() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

impl Views {
    /// Stop the server (its descriptor closes: the connection is aborted).
    fn kill(&mut self) -> (Counters, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Views {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.kill();
        }
    }
}

fn read(path: &str) -> std::io::Result<String> {
    let mut s = String::new();
    std::fs::File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

fn kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

fn boottime() -> Duration {
    husk_sys::clock::boottime().unwrap()
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn a_64_mib_container_sees_64_mib() {
    if skip() {
        return;
    }
    let cg = Cg::new("mem", &["memory"]);
    cg.write("memory", "memory.limit_in_bytes", "64M");
    let host = read("/proc/meminfo").unwrap();
    let _v = start(Some(&cg), Config::default(), boottime());
    let text = read("/proc/meminfo").unwrap();
    assert_eq!(kb(&text, "MemTotal"), 65536, "{text}");
    assert_eq!(text.lines().count(), host.lines().count());
    // free(1) as a container process would run it.
    let free = cg.sh("free -m");
    let mem: Vec<&str> = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(mem[1], "64", "{free}");
    // Page cache charged to the container shows in buff/cache.
    let f = format!("/tmp/husk-procviews-test-{}", std::process::id());
    cg.sh(&format!(
        "head -c 8000000 /dev/zero > {f}; cat {f} > /dev/null"
    ));
    std::thread::sleep(Duration::from_millis(30));
    let text = read("/proc/meminfo").unwrap();
    let _ = std::fs::remove_file(&f);
    assert!(kb(&text, "Cached") >= 7000, "{text}");
    assert!(kb(&text, "MemFree") <= 65536 - 7000, "{text}");
    assert!(kb(&text, "MemAvailable") >= kb(&text, "MemFree"), "{text}");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn one_cpu_cpuset_shows_one_cpu() {
    if skip() {
        return;
    }
    let cg = Cg::new("cpu", &["cpuset", "cpu", "cpuacct"]);
    cg.write("cpuset", "cpuset.cpus", "1");
    cg.write("cpuset", "cpuset.mems", "0");
    let _v = start(Some(&cg), Config::default(), boottime());
    let info = read("/proc/cpuinfo").unwrap();
    let procs: Vec<&str> = info
        .lines()
        .filter(|l| l.starts_with("processor"))
        .collect();
    assert_eq!(procs.len(), 1, "{info}");
    assert!(procs[0].ends_with(": 1"));
    let stat = read("/proc/stat").unwrap();
    let cpus: Vec<&str> = stat.lines().filter(|l| l.starts_with("cpu")).collect();
    assert_eq!(cpus.len(), 2, "{stat}");
    assert!(cpus[1].starts_with("cpu1 "));
    assert_eq!(read("/sys/devices/system/cpu/online").unwrap(), "1\n");
    // nproc asks sched_getaffinity (the cpuset does that by itself);
    // getconf and Python ask /sys/devices/system/cpu/online (our view).
    assert_eq!(cg.sh("nproc").trim(), "1");
    assert_eq!(cg.sh("getconf _NPROCESSORS_ONLN").trim(), "1");
    assert_eq!(cg.sh("grep -c ^processor /proc/cpuinfo").trim(), "1");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn a_quota_of_one_and_a_half_cpus_shows_two_and_half_a_cpu_one() {
    if skip() {
        return;
    }
    let cg = Cg::new("quota", &["cpu", "cpuacct"]);
    cg.write("cpu", "cpu.cfs_period_us", "100000");
    cg.write("cpu", "cpu.cfs_quota_us", "150000");
    let online = read("/sys/devices/system/cpu/online").unwrap();
    if online != "0-1\n" {
        println!("SKIPPED: written for a host with CPUs 0-1 online, not {online}");
        return;
    }
    let _v = start(Some(&cg), Config::default(), boottime());
    assert_eq!(read("/sys/devices/system/cpu/online").unwrap(), "0-1\n");
    assert_eq!(
        read("/proc/cpuinfo").unwrap().matches("processor").count(),
        2
    );
    // Half a CPU: one.
    cg.write("cpu", "cpu.cfs_quota_us", "50000");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(read("/sys/devices/system/cpu/online").unwrap(), "0\n");
    assert_eq!(
        read("/proc/cpuinfo").unwrap().matches("processor").count(),
        1
    );
    assert_eq!(cg.sh("getconf _NPROCESSORS_ONLN").trim(), "1");
    let stat = read("/proc/stat").unwrap();
    assert_eq!(
        stat.lines().filter(|l| l.starts_with("cpu")).count(),
        2,
        "{stat}"
    );
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn uptime_counts_from_the_start() {
    if skip() {
        return;
    }
    let cg = Cg::new("up", &["cpuacct"]);
    let started = boottime() - Duration::from_secs(42);
    let _v = start(Some(&cg), Config::default(), started);
    let up = read("/proc/uptime").unwrap();
    let secs: f64 = up.split_whitespace().next().unwrap().parse().unwrap();
    assert!((42.0..43.0).contains(&secs), "{up}");
    let idle: f64 = up.split_whitespace().nth(1).unwrap().parse().unwrap();
    // Idle over the host's CPUs, never more than they had since the start.
    assert!(idle <= secs * 2.0 + 0.1, "{up}");
    let out = Command::new("cat").arg("/proc/uptime").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("42."));
    // Fresh again after max_age.
    std::thread::sleep(Duration::from_millis(1100));
    let later: f64 = read("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(later >= secs + 1.0, "{later} after {secs}");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn every_view_reads_and_stats() {
    if skip() {
        return;
    }
    let cg = Cg::new(
        "all",
        &["memory", "cpuset", "cpu", "cpuacct", "pids", "blkio"],
    );
    cg.write("cpuset", "cpuset.cpus", "0");
    cg.write("cpuset", "cpuset.mems", "0");
    cg.write("memory", "memory.limit_in_bytes", "128M");
    cg.write("memory", "memory.memsw.limit_in_bytes", "192M");
    let _v = start(Some(&cg), Config::default(), boottime());
    for p in [
        "meminfo",
        "cpuinfo",
        "stat",
        "uptime",
        "loadavg",
        "swaps",
        "diskstats",
    ] {
        let path = format!("/proc/{p}");
        let text = read(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(meta.permissions().mode() & 0o777, 0o444, "{p}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        assert_eq!(meta.len() as usize, text.len(), "{p}");
        assert!(text.ends_with('\n') || text.is_empty(), "{p}: {text:?}");
        // Read-only: even root cannot write.
        let w = std::fs::OpenOptions::new().write(true).open(&path);
        assert_eq!(
            w.map(|_| ()).unwrap_err().raw_os_error(),
            Some(libc::EROFS),
            "{p}"
        );
    }
    let sw = read("/proc/swaps").unwrap();
    assert!(sw.starts_with("Filename\t\t\t\tType"), "{sw}");
    let la = read("/proc/loadavg").unwrap();
    assert_eq!(la.split_whitespace().count(), 5, "{la}");
    // One thread in the cgroup: the reader, asleep in the read. (After
    // max_age, so that this read renders anew.)
    std::thread::sleep(Duration::from_millis(20));
    let out = cg.sh("exec cat /proc/loadavg");
    assert_eq!(out.split_whitespace().nth(3), Some("0/1"), "{out}");
    // Reading in small pieces agrees with reading at once.
    let mut f = std::fs::File::open("/proc/cpuinfo").unwrap();
    let mut pieces = Vec::new();
    let mut b = [0u8; 7];
    loop {
        let n = f.read(&mut b).unwrap();
        if n == 0 {
            break;
        }
        pieces.extend_from_slice(&b[..n]);
    }
    assert_eq!(
        String::from_utf8(pieces).unwrap(),
        read("/proc/cpuinfo").unwrap()
    );
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn a_dead_server_means_errors_not_hangs() {
    if skip() {
        return;
    }
    let cg = Cg::new("dead", &["memory"]);
    let mut v = start(Some(&cg), Config::default(), boottime());
    assert!(read("/proc/meminfo").is_ok());
    v.kill();
    // Past max_age the kernel asks again and finds no server.
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    let e = read("/proc/meminfo").unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN), "{e}");
    assert!(took < Duration::from_millis(100), "{took:?}");
    for p in [
        "/proc/stat",
        "/proc/uptime",
        "/sys/devices/system/cpu/online",
    ] {
        let t = Instant::now();
        assert!(read(p).is_err(), "{p}");
        assert!(t.elapsed() < Duration::from_millis(100));
    }
    let t = Instant::now();
    let out = Command::new("free").output().unwrap();
    assert!(!out.status.success());
    assert!(t.elapsed() < Duration::from_secs(2));
}

/// The server in a tight loop of reads of /proc/meminfo for 10 s; prints
/// its CPU share and the cost of a served read.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn tight_read_loop_costs_the_server_little() {
    if skip() {
        return;
    }
    let secs: u64 = std::env::var("HUSK_PROCVIEWS_LOOP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let cg = Cg::new("loop", &["memory", "cpuacct", "cpu", "cpuset"]);
    cg.write("memory", "memory.limit_in_bytes", "64M");
    cg.write("cpuset", "cpuset.cpus", "0-1");
    cg.write("cpuset", "cpuset.mems", "0");
    let mut v = start(Some(&cg), Config::default(), boottime());
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(4096);
    while t0.elapsed() < Duration::from_secs(secs) {
        buf.clear();
        std::fs::File::open("/proc/meminfo")
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
        n += 1;
    }
    let wall = t0.elapsed();
    let (c, cpu) = v.kill();
    let share = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    println!(
        "tight loop: {n} reads in {wall:?} ({:.1} µs each); server: {} requests ({} GETATTR, {} READ, {} renders), CPU {cpu:?} = {share:.2}% , {:.1} µs per request",
        wall.as_secs_f64() * 1e6 / n as f64,
        c.requests,
        c.getattrs,
        c.reads,
        c.renders,
        cpu.as_secs_f64() * 1e6 / c.requests.max(1) as f64,
    );
    assert!(share < 5.0, "server CPU {share:.2}%");
}

/// Latency of a read that the server has to answer (attributes expired:
/// GETATTR + READ, one rendering) against one from the page cache.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn cost_of_one_served_read() {
    if skip() {
        return;
    }
    let cg = Cg::new("cost", &["memory", "cpuacct", "cpu", "cpuset"]);
    cg.write("memory", "memory.limit_in_bytes", "64M");
    cg.write("cpuset", "cpuset.cpus", "0-1");
    cg.write("cpuset", "cpuset.mems", "0");
    let host_texts: Vec<String> = [
        "/proc/meminfo",
        "/proc/stat",
        "/proc/cpuinfo",
        "/proc/uptime",
        "/proc/loadavg",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let host_fds: Vec<std::fs::File> = host_texts
        .iter()
        .map(|p| std::fs::File::open(p).unwrap())
        .collect();
    let mut v = start(Some(&cg), Config::default(), boottime());
    for (k, (path, label)) in [
        ("/proc/meminfo", "meminfo"),
        ("/proc/stat", "stat"),
        ("/proc/cpuinfo", "cpuinfo"),
        ("/proc/uptime", "uptime"),
        ("/proc/loadavg", "loadavg"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut cold = Duration::ZERO;
        let mut warm = Duration::ZERO;
        let rounds = 200;
        for _ in 0..rounds {
            std::thread::sleep(Duration::from_millis(11));
            let t = Instant::now();
            read(path).unwrap();
            cold += t.elapsed();
            let t = Instant::now();
            read(path).unwrap();
            warm += t.elapsed();
        }
        // The kernel's own file, through a descriptor opened before the
        // views covered it.
        let t = Instant::now();
        let mut b = Vec::with_capacity(8192);
        for _ in 0..rounds {
            use std::os::unix::fs::FileExt;
            b.resize(8192, 0);
            let _ = host_fds[k].read_at(&mut b, 0).unwrap();
        }
        let kernel = t.elapsed();
        println!(
            "{label}: served read {:.1} µs, cached read {:.1} µs, the host's own file {:.1} µs",
            cold.as_secs_f64() * 1e6 / rounds as f64,
            warm.as_secs_f64() * 1e6 / rounds as f64,
            kernel.as_secs_f64() * 1e6 / rounds as f64
        );
    }
    let (c, cpu) = v.kill();
    println!(
        "server: {} requests, {} renders, CPU {cpu:?}: {:.1} µs per rendering+reply",
        c.requests,
        c.renders,
        cpu.as_secs_f64() * 1e6 / c.renders.max(1) as f64
    );
}

/// A server that is alive but answers nothing: the kernel's request
/// timeout (15 s at least, checked every 15 s) cuts the connection.
/// Slow (up to 30 s): run with --ignored.
#[test]
#[ignore]
fn a_stuck_server_is_cut_off_by_the_kernel() {
    if skip() {
        return;
    }
    private_mount_namespace();
    let fuse = husk_sys::fd::open(Path::new("/dev/fuse"), libc::O_RDWR, 0).unwrap();
    let mnt = mount::superblock(fuse.as_fd(), 0, 0).unwrap();
    let host =
        HostProc::new(husk_sys::fd::open(Path::new("/proc"), libc::O_PATH, 0).unwrap()).unwrap();
    let cfg = Config {
        request_timeout: 1,
        ..Config::default()
    };
    let mut server = Server::new(
        fuse,
        host,
        Container {
            cgroups: vec![],
            started: boottime(),
        },
        cfg,
    )
    .unwrap();
    // Answer INIT only, then nothing.
    let t = Instant::now();
    while server.counters().requests == 0 && t.elapsed() < Duration::from_secs(2) {
        server.on_readable().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    let r = std::fs::metadata(format!("/proc/self/fd/{}/meminfo", mnt.as_raw_fd()));
    let took = t.elapsed();
    println!("stuck server: {r:?} after {took:?}");
    assert!(r.is_err());
    assert!(took < Duration::from_secs(35));
    drop(server);
}

/// What making the views costs a container's start: the superblock (INIT
/// answered by the server thread) and eight bind mounts (a LOOKUP each).
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn setup_cost() {
    if skip() {
        return;
    }
    let host =
        HostProc::new(husk_sys::fd::open(Path::new("/proc"), libc::O_PATH, 0).unwrap()).unwrap();
    let rounds = 50;
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        // A fresh thread each time: a fresh copy of the original mount
        // namespace, without the previous round's views.
        let host = host.clone();
        total += std::thread::spawn(move || {
            private_mount_namespace();
            let proc_dir =
                husk_sys::fd::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0)
                    .unwrap();
            let sys_dir =
                husk_sys::fd::open(Path::new("/sys"), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
            let t = Instant::now();
            let fuse = husk_sys::fd::open(Path::new("/dev/fuse"), libc::O_RDWR, 0).unwrap();
            let mnt = mount::superblock(fuse.as_fd(), 0, 0).unwrap();
            let server = Server::new(
                fuse,
                host,
                Container {
                    cgroups: vec![],
                    started: boottime(),
                },
                Config::default(),
            )
            .unwrap();
            let t_sb = t.elapsed();
            let stop = Arc::new(AtomicBool::new(false));
            let th = {
                let stop = stop.clone();
                std::thread::spawn(move || serve(server, stop))
            };
            // As in boot: its loop is already running when an init binds
            // the views (and has long answered INIT).
            std::thread::sleep(Duration::from_millis(5));
            let t = Instant::now();
            mount::bind_views(
                mnt.as_fd(),
                proc_dir.as_fd(),
                Some(sys_dir.as_fd()),
                &View::ALL,
            )
            .unwrap();
            let t_srv = t.elapsed();
            let took = t_sb + t_srv;
            if std::env::var_os("HUSK_PROCVIEWS_VERBOSE").is_some() {
                println!("superblock+server {t_sb:?}, binds {t_srv:?}");
            }
            stop.store(true, Ordering::Relaxed);
            let (c, _) = th.join().unwrap();
            if std::env::var_os("HUSK_PROCVIEWS_VERBOSE").is_some() {
                println!("{c:?}");
            }
            took
        })
        .join()
        .unwrap();
    }
    println!(
        "setup: {:.0} µs per container (open /dev/fuse, superblock, server, 8 bind mounts; INIT answered before)",
        total.as_secs_f64() * 1e6 / rounds as f64
    );
}

/// Memory a server holds once every view was read (process PSS before and
/// after, so it includes the harness's server thread stack). Run with
/// --ignored.
#[test]
#[ignore]
fn memory_of_a_server() {
    if skip() {
        return;
    }
    let pss = || -> u64 {
        let t = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        t.lines()
            .find_map(|l| {
                l.strip_prefix("Pss:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap()
    };
    let cg = Cg::new(
        "pss",
        &["memory", "cpuset", "cpu", "cpuacct", "pids", "blkio"],
    );
    cg.write("cpuset", "cpuset.cpus", "0-1");
    cg.write("cpuset", "cpuset.mems", "0");
    let before = pss();
    let _v = start(Some(&cg), Config::default(), boottime());
    for _ in 0..3 {
        for p in [
            "meminfo",
            "cpuinfo",
            "stat",
            "uptime",
            "loadavg",
            "swaps",
            "diskstats",
        ] {
            read(&format!("/proc/{p}")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    let after = pss();
    println!(
        "PSS: {before} kB before, {after} kB with a server that served every view: +{} kB",
        after as i64 - before as i64
    );
}
