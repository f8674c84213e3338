//! Tests against the real cgroup filesystem. They need root and skip (with a printed note)
//! otherwise. Every test uses its own `/husk-cgtest-<pid>[-name]` tree, and a guard kills
//! its processes and removes its directories even when an assertion fails.
//!
//! Ownership decision exercised here: `create` of `/husk-cgtest-<pid>/a` marks only the
//! leaf `a` as created; the intermediate `/husk-cgtest-<pid>` it had to make is shared
//! ground (like `/husk`), so `destroy` leaves it and the test guard removes it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;

use super::*;

fn usable(test: &str) -> bool {
    // /proc/self is owned by the effective uid (nix's `user` feature is not enabled here)
    let euid = fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if euid != 0 {
        eprintln!("note: skipping {test}: needs root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("note: skipping {test}: /bin/busybox (busybox-static) is not installed");
        return false;
    }
    match layout() {
        Ok(l) if l.hierarchy("memory").is_some() && l.hierarchy("pids").is_some() => true,
        _ => {
            eprintln!("note: skipping {test}: no writable memory/pids cgroup hierarchy");
            false
        }
    }
}

/// Owns a test cgroup tree and the processes started in it.
struct Guard {
    cg: CgroupPath,
    top: String,
    children: Vec<Child>,
}

impl Guard {
    fn new(name: &str) -> Guard {
        let top = if name.is_empty() {
            format!("/husk-cgtest-{}", std::process::id())
        } else {
            format!("/husk-cgtest-{}-{name}", std::process::id())
        };
        let cg = resolve(Some(Path::new(&format!("{top}/a"))), "unused").unwrap();
        Guard {
            cg,
            top,
            children: Vec::new(),
        }
    }

    /// Start `/bin/busybox sh` that waits for a line on stdin and then execs `cmd`, so the
    /// process can be moved into the cgroup before `cmd` allocates anything.
    fn spawn(&mut self, cmd: &str) -> i32 {
        let child = Command::new("/bin/busybox")
            .args(["sh", "-c", &format!("read _; exec {cmd}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn /bin/busybox");
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }

    fn release(&mut self, idx: usize) {
        let stdin = self.children[idx].stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    fn tops(&self) -> Vec<PathBuf> {
        layout()
            .unwrap()
            .hierarchies
            .iter()
            .map(|h| h.mountpoint.join(&self.top[1..]))
            .collect()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        let mut all = self.cg.clone();
        for d in &mut all.dirs {
            d.created = true;
        }
        let _ = all.destroy();
        for c in &mut self.children {
            let _ = c.wait();
        }
        if self.top.is_empty() {
            return;
        }
        for t in self.tops() {
            let _ = remove_tree(&t, Instant::now());
        }
    }
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Whether `pid` now runs the busybox applet `applet` (argv[1]) rather than the shell.
fn execed(pid: i32, applet: &str) -> bool {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.split(|b| *b == 0).nth(1) == Some(applet.as_bytes())
}

fn proc_state(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("State:").map(|s| s.trim().to_string()))
        .unwrap_or_default()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// "major:minor" of the first real disk, for throttle tests.
fn first_disk() -> Option<String> {
    let mut names: Vec<_> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .find_map(|n| fs::read_to_string(format!("/sys/block/{n}/dev")).ok())
        .map(|s| s.trim().to_string())
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn host_lifecycle() {
    if !usable("host_lifecycle") {
        return;
    }
    let mut g = Guard::new("");
    g.cg.create().unwrap();
    assert!(g.cg.dirs.iter().all(|d| d.created && d.path.is_dir()));
    // a second create keeps the record
    g.cg.create().unwrap();
    assert!(g.cg.dirs.iter().all(|d| d.created));
    if let Some(cs) =
        g.cg.dir_of("cpuset")
            .filter(|_| !g.cg.find("cpuset").unwrap().v2)
    {
        assert!(!read(&cs.join("cpuset.cpus")).is_empty());
        assert!(!read(&cs.join("cpuset.mems")).is_empty());
    }

    let pid = g.spawn("/bin/busybox sleep 1000");
    g.cg.add_pid(pid).unwrap();
    let disk = first_disk();
    let throttle = disk
        .as_deref()
        .map(|d| {
            let (maj, min) = d.split_once(':').unwrap();
            format!(r#","blockIO": {{"throttleReadBpsDevice": [{{"major": {maj}, "minor": {min}, "rate": 1048576}}]}}"#)
        })
        .unwrap_or_default();
    let r = res(&format!(
        r#"{{
        "memory": {{"limit": 67108864}},
        "pids": {{"limit": 20}},
        "cpu": {{"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}},
        "devices": [{{"allow": false, "access": "rwm"}},
                    {{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}}]
        {throttle}
    }}"#
    ));
    g.cg.apply(&r).unwrap();

    let mem = g.cg.find("memory").unwrap().clone();
    if mem.v2 {
        assert_eq!(read(&mem.path.join("memory.max")), "67108864");
    } else {
        assert_eq!(read(&mem.path.join("memory.limit_in_bytes")), "67108864");
    }
    assert_eq!(read(&g.cg.dir_of("pids").unwrap().join("pids.max")), "20");
    let cpu = g.cg.find("cpu").unwrap().clone();
    if cpu.v2 {
        assert_eq!(
            read(&cpu.path.join("cpu.weight")),
            shares_to_weight(512).to_string()
        );
        assert_eq!(read(&cpu.path.join("cpu.max")), "50000 100000");
    } else {
        assert_eq!(read(&cpu.path.join("cpu.shares")), "512");
        assert_eq!(read(&cpu.path.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&cpu.path.join("cpu.cfs_period_us")), "100000");
    }
    assert_eq!(
        read(&g.cg.dir_of("cpuset").unwrap().join("cpuset.cpus")),
        "0"
    );
    if let Some(dev) = g.cg.find("devices").filter(|d| !d.v2) {
        assert_eq!(read(&dev.path.join("devices.list")), "c 1:3 rwm");
    }
    if let (Some(disk), Some(b)) = (disk, g.cg.find("blkio").filter(|d| !d.v2)) {
        assert_eq!(
            read(&b.path.join("blkio.throttle.read_bps_device")),
            format!("{disk} 1048576")
        );
    }

    // let it exec sleep inside the cgroup, so its memory is charged here
    g.release(0);
    wait_for("sleep to exec", Duration::from_secs(5), || {
        execed(pid, "sleep")
    });
    assert!(g.cg.pids().unwrap().contains(&pid));

    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen());
    if g.cg.find("freezer").is_some_and(|d| !d.v2) {
        assert!(proc_state(pid).starts_with('D'), "{}", proc_state(pid));
    }
    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen());
    wait_for("thawed state", Duration::from_secs(2), || {
        proc_state(pid).starts_with('S')
    });

    let s = g.cg.stats().unwrap();
    assert!(s.pids.current >= 1, "{s:?}");
    assert_eq!(s.pids.limit, 20);
    assert!(s.memory.usage.usage > 0, "{s:?}");
    assert_eq!(s.memory.usage.limit, 67108864);
    assert_eq!(s.cpuset.cpus, vec![0]);
    let j = serde_json::to_value(&s).unwrap();
    assert!(j["memory"]["raw"].is_object());
    assert_eq!(g.cg.oom_kills(), 0);

    let leaves: Vec<PathBuf> = g.cg.dirs.iter().map(|d| d.path.clone()).collect();
    g.cg.destroy().unwrap();
    let status = g.children[0].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    for l in &leaves {
        assert!(!l.exists(), "{} still exists", l.display());
        // the intermediate directory was not the leaf: it stays
        assert!(l.parent().unwrap().is_dir());
    }
    g.cg.destroy().unwrap(); // idempotent
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn host_hugetlb_and_unified() {
    if !usable("host_hugetlb_and_unified") {
        return;
    }
    let sizes = hugepage_sizes();
    if !sizes.iter().any(|s| s == "2MB") {
        eprintln!("note: skipping host_hugetlb_and_unified: no 2MB huge pages");
        return;
    }
    let mut g = Guard::new("huge");
    g.cg.create().unwrap();
    let Some(h) = g.cg.find("hugetlb").cloned() else {
        eprintln!("note: skipping host_hugetlb_and_unified: no hugetlb controller");
        return;
    };
    g.cg.apply(&res(
        r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]}"#,
    ))
    .unwrap();
    let file = if h.v2 {
        "hugetlb.2MB.max"
    } else {
        "hugetlb.2MB.limit_in_bytes"
    };
    assert_eq!(read(&h.path.join(file)), "8388608");
    let s = g.cg.stats().unwrap();
    assert!(s.hugetlb.contains_key("2MB"), "{s:?}");

    let e =
        g.cg.apply(&res(
            r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#,
        ))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("linux.resources.hugepageLimits[0]: pagesize 3MB is not supported"),
        "{e}"
    );

    if let Some(u) = g.cg.unified_dir().map(Path::to_path_buf) {
        if h.v2 {
            g.cg.apply(&res(r#"{"unified": {"hugetlb.2MB.max": "4194304"}}"#))
                .unwrap();
            assert_eq!(read(&u.join("hugetlb.2MB.max")), "4194304");
        }
        if !u.join("memory.high").exists() {
            let e =
                g.cg.apply(&res(r#"{"unified": {"memory.high": "100000"}}"#))
                    .unwrap_err()
                    .to_string();
            assert_eq!(
                e,
                format!(
                    "linux.resources.unified[\"memory.high\"]: open {}: no such file or directory",
                    u.join("memory.high").display()
                )
            );
        }
    }
    g.cg.destroy().unwrap();
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn host_network_and_blkio_weight() {
    if !usable("host_network_and_blkio_weight") {
        return;
    }
    let mut g = Guard::new("net");
    g.cg.create().unwrap();
    let r = res(r#"{"network": {"classID": 1048577}}"#);
    match g.cg.find("net_cls").filter(|d| !d.v2).cloned() {
        None => {
            let e = g.cg.apply(&r).unwrap_err().to_string();
            assert_eq!(
                e,
                "linux.resources.network.classID: the net_cls controller is not available on this host"
            );
        }
        Some(d) => {
            g.cg.apply(&r).unwrap();
            assert_eq!(read(&d.path.join("net_cls.classid")), "1048577");
        }
    }
    if let Some(b) = g.cg.find("blkio").filter(|d| !d.v2).cloned() {
        let r = res(r#"{"blockIO": {"weight": 500}}"#);
        if b.path.join("blkio.weight").exists() || b.path.join("blkio.bfq.weight").exists() {
            g.cg.apply(&r).unwrap();
        } else {
            let e = g.cg.apply(&r).unwrap_err().to_string();
            assert!(e.starts_with("linux.resources.blockIO.weight: neither blkio.weight nor blkio.bfq.weight exists in"), "{e}");
        }
    }
    g.cg.destroy().unwrap();
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn host_oom_kill_counter() {
    if !usable("host_oom_kill_counter") {
        return;
    }
    let mut g = Guard::new("oom");
    g.cg.create().unwrap();
    let pid = g.spawn("/bin/busybox dd if=/dev/zero of=/dev/null bs=64M count=1");
    g.cg.add_pid(pid).unwrap();
    // memory+swap equal to the limit where swap accounting exists, so nothing can swap out
    let mem = g.cg.find("memory").unwrap().clone();
    let swap = if mem.v2 || mem.path.join("memory.memsw.limit_in_bytes").exists() {
        r#", "swap": 16777216"#
    } else {
        ""
    };
    g.cg.apply(&res(&format!(
        r#"{{"memory": {{"limit": 16777216{swap}}}}}"#
    )))
    .unwrap();
    assert_eq!(g.cg.oom_kills(), 0);
    g.release(0);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = g.children[0].try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dd was not OOM-killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(g.cg.oom_kills() >= 1);
    // (memory.failcnt is not asserted: 6.x kernels leave the v1 counters at 0 here)
    let s = g.cg.stats().unwrap();
    assert_eq!(s.memory.usage.limit, 16777216);
    g.cg.destroy().unwrap();
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn host_signal_all_and_relative_path() {
    if !usable("host_signal_all_and_relative_path") {
        return;
    }
    let name = format!("husk-cgtest-{}-rel", std::process::id());
    let mut g = Guard::new("sig");
    g.cg = resolve(Some(Path::new(&name)), "x").unwrap();
    g.top = String::new();
    let own = parse_proc_cgroup(&fs::read_to_string("/proc/self/cgroup").unwrap());
    let mem_own = own
        .iter()
        .find(|e| {
            e.controllers.iter().any(|c| c == "memory")
                || (e.controllers.is_empty() && layout().unwrap().mode == Mode::Unified)
        })
        .unwrap()
        .path
        .clone();
    let mem_dir = g.cg.dir_of("memory").unwrap().to_path_buf();
    assert!(
        mem_dir.ends_with(mem_own.strip_prefix("/").unwrap().join(&name)),
        "{}",
        mem_dir.display()
    );
    g.cg.create().unwrap();
    let pid = g.spawn("/bin/busybox sleep 1000");
    g.cg.add_pid(pid).unwrap();
    g.release(0);
    wait_for("sleep to exec", Duration::from_secs(5), || {
        execed(pid, "sleep")
    });
    g.cg.signal_all(Signal::SIGTERM).unwrap();
    let status = g.children[0].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    g.cg.destroy().unwrap();
    assert!(!mem_dir.exists());
}

/// `cargo test --release -- --ignored --nocapture host_bench`
#[test]
#[ignore]
fn host_bench() {
    if !usable("host_bench") {
        return;
    }
    const N: usize = 50;
    let t0 = Instant::now();
    let l = Layout::load().unwrap();
    let layout_us = t0.elapsed().as_secs_f64() * 1e6;
    let _ = l;
    let mut full = Vec::new();
    let mut setup = Vec::new();
    let mut teardown = Vec::new();
    let mut no_proc = Vec::new();
    let base = format!("/husk-cgtest-{}-bench", std::process::id());
    let g = Guard::new("bench"); // cleans `base` up at the end
    for i in 0..N {
        let mut child = Command::new("/bin/busybox")
            .args(["sleep", "1000"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let p = format!("{base}/c{i}");
        let t = Instant::now();
        let mut cg = resolve(Some(Path::new(&p)), "x").unwrap();
        cg.create().unwrap();
        cg.add_pid(pid).unwrap();
        let mid = t.elapsed();
        cg.destroy().unwrap();
        let total = t.elapsed();
        child.wait().unwrap();
        full.push(total.as_secs_f64() * 1e6);
        setup.push(mid.as_secs_f64() * 1e6);
        teardown.push((total - mid).as_secs_f64() * 1e6);

        let t = Instant::now();
        let mut cg = resolve(Some(Path::new(&format!("{p}-empty"))), "x").unwrap();
        cg.create().unwrap();
        cg.destroy().unwrap();
        no_proc.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    eprintln!(
        "cgroup bench ({} hierarchies, {N} iterations): uncached layout parse {layout_us:.0} µs; median resolve+create+add_pid+destroy {:.0} µs (resolve+create+add_pid {:.0} µs, destroy incl. kill+wait {:.0} µs); resolve+create+destroy without a process {:.0} µs",
        g.cg.dirs.len(),
        med(&mut full),
        med(&mut setup),
        med(&mut teardown),
        med(&mut no_proc)
    );
}

/// The legacy path (no cgroup2, so no `cgroup.kill`): destroy must freeze, kill a forking
/// process tree spread over a nested child cgroup, thaw, and remove the nested cgroup too.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn host_destroy_v1_only_with_nested_cgroups() {
    if !usable("host_destroy_v1_only_with_nested_cgroups") {
        return;
    }
    let mut g = Guard::new("nested");
    g.cg.create().unwrap();
    let mut v1 = g.cg.clone();
    v1.dirs.retain(|d| !d.v2);
    if v1.find("freezer").is_none() {
        eprintln!("note: skipping host_destroy_v1_only_with_nested_cgroups: no v1 freezer");
        return;
    }
    let leader =
        g.spawn("/bin/busybox sh -c '/bin/busybox sleep 1000 & /bin/busybox sleep 1000 & wait'");
    v1.add_pid(leader).unwrap();
    // a nested cgroup (as a container running its own cgroup manager would make) with a process
    let nested: Vec<PathBuf> = v1.dirs.iter().map(|d| d.path.join("inner")).collect();
    for n in &nested {
        fs::create_dir(n).unwrap();
    }
    let cs = v1.dir_of("cpuset").unwrap().join("inner");
    for f in ["cpuset.cpus", "cpuset.mems"] {
        fs::write(cs.join(f), read(&cs.parent().unwrap().join(f))).unwrap();
    }
    let inner_pid = g.spawn("/bin/busybox sleep 1000");
    for n in &nested {
        fs::write(n.join("cgroup.procs"), inner_pid.to_string()).unwrap();
    }
    g.release(0);
    g.release(1);
    wait_for("the tree to start", Duration::from_secs(5), || {
        v1.pids().unwrap().len() >= 4 && execed(inner_pid, "sleep")
    });
    let before = v1.pids().unwrap();
    assert!(before.contains(&inner_pid));
    v1.destroy().unwrap();
    for d in &v1.dirs {
        assert!(!d.path.exists(), "{} still exists", d.path.display());
    }
    for c in &mut g.children {
        assert!(c.wait().unwrap().code().is_none(), "killed by a signal");
    }
    for pid in before {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || proc_state(pid).starts_with('Z'),
            "pid {pid} survived"
        );
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn v2_device_filter_is_enforced() {
    if !usable("v2_device_filter_is_enforced") {
        return;
    }
    let mut g = Guard::new("devbpf");
    g.cg.create().unwrap();
    let Some(dir) = g.cg.unified_dir().map(Path::to_path_buf) else {
        eprintln!("note: skipping v2_device_filter_is_enforced: no cgroup v2 hierarchy");
        return;
    };
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]))
        .unwrap();
    // Straight on the v2 directory: on this hybrid host the v1 devices
    // controller would otherwise be the one to enforce the rules.
    devfilter::attach(&dir, &rules).unwrap();
    let out = std::env::temp_dir().join(format!("husk-devbpf-{}", std::process::id()));
    let pid = g.spawn(&format!(
        "sh -c 'cat /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null && echo zero-ok; true' > {}",
        out.display()
    ));
    g.cg.add_pid(pid).unwrap();
    g.release(0);
    let _ = g.children[0].wait();
    let text = fs::read_to_string(&out).unwrap_or_default();
    let _ = fs::remove_file(&out);
    assert!(text.contains("null-ok"), "/dev/null was refused: {text:?}");
    assert!(!text.contains("zero-ok"), "/dev/zero was allowed: {text:?}");
}
