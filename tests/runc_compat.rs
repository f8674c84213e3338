//! Behaving as runc does wherever scripts, tools and the OCI runtime spec
//! can tell. Each check runs against husk and, where cheap, against runc
//! (Debian's /usr/sbin/runc, when installed) with the same bundle and the
//! same assertions: a check that runc passes tests the right thing. Where
//! husk deliberately differs from runc (a runc bug, or the runtime spec
//! says otherwise), the check says so and runs against husk only.

mod common;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const RUNC: &str = "/usr/sbin/runc";

/// One runtime under test: husk (with the env's root) or runc (with a root
/// of its own in the env's directory).
struct Rt<'a> {
    env: &'a Env,
    runc: bool,
    ids: RefCell<Vec<String>>,
}

impl<'a> Rt<'a> {
    fn name(&self) -> &'static str {
        if self.runc {
            "runc"
        } else {
            "husk"
        }
    }

    fn runc_root(&self) -> PathBuf {
        self.env.dir.join("runc-root")
    }

    /// A fresh container id (deleted when the runtime is dropped).
    fn id(&self, prefix: &str) -> String {
        if self.runc {
            let id = unique(&format!("{prefix}-runc"));
            self.ids.borrow_mut().push(id.clone());
            id
        } else {
            self.env.id(prefix)
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        if self.runc {
            let mut c = Command::new(RUNC);
            c.arg("--root").arg(self.runc_root());
            c.args(args);
            c.stdin(Stdio::null());
            c
        } else {
            self.env.cmd(args)
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        run_bounded(self.cmd(args), Duration::from_secs(40))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}): {}\nstdout: {}",
            self.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state(&self, id: &str) -> Option<Value> {
        let out = self.run(&["state", id]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let st = self
                .state(id)
                .map(|s| s["status"].as_str().unwrap().to_string());
            if st.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} stayed {st:?}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of a running container's process (as `state` says).
    fn pid(&self, id: &str) -> i64 {
        self.state(id).expect("state")["pid"].as_i64().unwrap()
    }
}

impl Drop for Rt<'_> {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = run_bounded(
                self.cmd(&["delete", "--force", id]),
                Duration::from_secs(20),
            );
        }
    }
}

/// husk, and runc when it is installed (the same checks prove they test
/// the right thing).
fn runtimes(env: &Env) -> Vec<Rt<'_>> {
    let mut v = vec![Rt {
        env,
        runc: false,
        ids: Default::default(),
    }];
    if Path::new(RUNC).exists() {
        v.push(Rt {
            env,
            runc: true,
            ids: Default::default(),
        });
    } else {
        eprintln!("note: {RUNC} is not installed; checking husk only");
    }
    v
}

fn husk_only(env: &Env) -> Rt<'_> {
    Rt {
        env,
        runc: false,
        ids: Default::default(),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Start a command with its output in files; `finish` waits (bounded) and
/// collects it.
struct Background {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    fn start(mut cmd: Command, dir: &Path) -> Background {
        let out = dir.join(unique("bg-out"));
        let err = dir.join(unique("bg-err"));
        cmd.stdout(std::fs::File::create(&out).unwrap());
        cmd.stderr(std::fs::File::create(&err).unwrap());
        Background {
            child: cmd.spawn().unwrap(),
            out,
            err,
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn finish(self, limit: Duration) -> Output {
        let status = wait_child(self.child, limit);
        Output {
            status,
            stdout: std::fs::read(&self.out).unwrap_or_default(),
            stderr: std::fs::read(&self.err).unwrap_or_default(),
        }
    }
}

// ---- cgroups made by hand (pre-existing cgroups, sub-cgroups) -----------

/// The mount points of every cgroup hierarchy (v1 and v2).
fn hierarchies() -> Vec<(PathBuf, bool)> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out = Vec::new();
    for l in mounts.lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        let fstype = post.split(' ').next().unwrap_or("");
        let opts = pre.split(' ').nth(5).unwrap_or("");
        if (fstype == "cgroup" || fstype == "cgroup2") && !opts.split(',').any(|o| o == "ro") {
            out.push((
                PathBuf::from(pre.split(' ').nth(4).unwrap()),
                fstype == "cgroup2",
            ));
        }
    }
    out
}

/// A cgroup made by hand at the same path in every hierarchy, removed
/// (processes killed, thawed) when dropped.
struct HandCgroup {
    rel: String,
    dirs: Vec<(PathBuf, bool)>,
}

impl HandCgroup {
    fn new(prefix: &str) -> HandCgroup {
        let rel = unique(prefix);
        let mut dirs = Vec::new();
        for (mnt, v2) in hierarchies() {
            let d = mnt.join(&rel);
            std::fs::create_dir_all(&d).unwrap();
            copy_cpuset(&mnt, &d);
            dirs.push((d, v2));
        }
        HandCgroup { rel, dirs }
    }

    /// linux.cgroupsPath for it.
    fn path(&self) -> String {
        format!("/{}", self.rel)
    }

    /// Make `sub` in every hierarchy; returns its directories.
    fn mkdir_sub(&self, sub: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (d, _) in &self.dirs {
            let s = d.join(sub);
            std::fs::create_dir_all(&s).unwrap();
            copy_cpuset(d, &s);
            out.push(s);
        }
        out
    }

    fn freezer_file(&self) -> (PathBuf, &'static str, &'static str) {
        match self
            .dirs
            .iter()
            .find(|(d, v2)| !v2 && d.parent().is_some_and(|p| p.ends_with("freezer")))
        {
            Some((d, _)) => (d.join("freezer.state"), "FROZEN", "THAWED"),
            None => {
                let (d, _) = self.dirs.iter().find(|(_, v2)| *v2).unwrap();
                (d.join("cgroup.freeze"), "1", "0")
            }
        }
    }

    fn freeze(&self, on: bool) {
        let (f, frozen, thawed) = self.freezer_file();
        std::fs::write(f, if on { frozen } else { thawed }).unwrap();
    }

    /// Put `pid` into every hierarchy.
    fn add(&self, pid: u32) {
        for (d, _) in &self.dirs {
            std::fs::write(d.join("cgroup.procs"), pid.to_string()).unwrap();
        }
    }

    /// Every process in it, sub-cgroups included.
    fn procs(&self) -> Vec<i32> {
        fn walk(d: &Path, out: &mut Vec<i32>) {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        let mut v = Vec::new();
        for (d, _) in &self.dirs {
            walk(d, &mut v);
        }
        v.sort();
        v.dedup();
        v
    }
}

/// A v1 cpuset directory needs cpus and mems before anything joins it.
fn copy_cpuset(parent: &Path, d: &Path) {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let (src, dst) = (parent.join(f), d.join(f));
        if src.exists() && dst.exists() {
            if let Ok(v) = std::fs::read_to_string(&src) {
                let _ = std::fs::write(&dst, v.trim());
            }
        }
    }
}

fn remove_tree(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(d);
}

impl Drop for HandCgroup {
    fn drop(&mut self) {
        let (f, _, thawed) = self.freezer_file();
        let _ = std::fs::write(f, thawed);
        for _ in 0..50 {
            let procs = self.procs();
            if procs.is_empty() {
                break;
            }
            for p in procs {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (d, _) in &self.dirs {
            remove_tree(d);
        }
    }
}

// ---- security first ------------------------------------------------------

/// The device cgroup rules are exactly the spec's plus the runtime's
/// defaults; a node created through linux.devices gets no access by itself.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn device_rules_are_the_specs_and_the_defaults_only() {
    require_root();
    let env = Env::new("devrules");
    let kmsg = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                       "fileMode": 438, "uid": 0, "gid": 0}]);
    // runc's default rules (libcontainer's AllowedDevices), as devices.list
    // shows them.
    let mut want: Vec<&str> = vec![
        "b *:* m",
        "c *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 10:200 rwm",
        "c 136:* rwm",
    ];
    want.sort();
    for rt in runtimes(&env) {
        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| c["linux"]["devices"] = kmsg.clone());
        let id = rt.id("devrules");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let ls = rt.ok(&["exec", &id, "ls", "-l", "/dev/kmsg"]);
        assert!(
            ls.starts_with('c') && ls.contains("1,  11"),
            "{}: {ls}",
            rt.name()
        );
        let out = rt.run(&["exec", &id, "sh", "-c", ": > /dev/kmsg && echo opened"]);
        assert!(
            !text(&out.stdout).contains("opened")
                && text(&out.stderr).contains("Operation not permitted"),
            "{}: /dev/kmsg was writable under deny-all: {out:?}",
            rt.name()
        );
        let list = rt.ok(&["exec", &id, "cat", "/sys/fs/cgroup/devices/devices.list"]);
        let mut got: Vec<&str> = list.lines().collect();
        got.sort();
        assert_eq!(got, want, "{}: devices.list", rt.name());

        // Access comes from linux.resources.devices only.
        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| {
            c["linux"]["devices"] = kmsg.clone();
            c["linux"]["resources"]["devices"] = json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}
            ]);
        });
        let id = rt.id("devallow");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let out = rt.ok(&["exec", &id, "sh", "-c", ": > /dev/kmsg && echo opened"]);
        assert!(out.contains("opened"), "{}: {out}", rt.name());
    }
}

/// The same rules through the cgroup v2 eBPF device filter (what a pure v2
/// host gets): attached to a cgroup2 directory of this host, with the rule
/// list husk builds for a deny-all spec that creates /dev/kmsg.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn v2_device_filter_keeps_created_nodes_closed() {
    require_root();
    let Some((mnt, _)) = hierarchies().into_iter().find(|(_, v2)| *v2) else {
        eprintln!("note: no cgroup2 hierarchy; skipping");
        return;
    };
    let mut spec: oci_spec::runtime::Spec = serde_json::from_value({
        let mut v = husk::spec::default_spec(false);
        v["linux"]["devices"] =
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
        v
    })
    .unwrap();
    husk::spec::add_default_device_rules(&mut spec);
    let rules = spec
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    let dir = mnt.join(unique("husk-compat-devbpf"));
    std::fs::create_dir_all(&dir).unwrap();
    let cg = husk::cgroups::CgroupPath {
        dirs: vec![husk::cgroups::CgroupDir {
            controllers: vec![],
            v2: true,
            path: dir.clone(),
            created: true,
        }],
    };
    cg.attach_device_filter(&rules).unwrap();
    let script = format!(
        "echo $$ > {}/cgroup.procs; : > /dev/null && echo null-ok; : > /dev/kmsg && echo kmsg-ok; true",
        dir.display()
    );
    let out = Command::new(BUSYBOX)
        .args(["sh", "-c", &script])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&dir);
    let out = text(&out.stdout);
    assert!(out.contains("null-ok"), "/dev/null was refused: {out}");
    assert!(!out.contains("kmsg-ok"), "/dev/kmsg was allowed: {out}");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn fifo_devices_are_made_without_a_rule() {
    require_root();
    let env = Env::new("fifo");
    for rt in runtimes(&env) {
        let b = env.bundle(&["ls", "-l", "/dev/myfifo", "/dev/fifo2"]);
        b.edit(|c| {
            c["linux"]["devices"] = json!([
                {"path": "/dev/myfifo", "type": "p", "fileMode": 420, "uid": 0, "gid": 0},
                {"path": "/dev/fifo2", "type": "p"}
            ])
        });
        let id = rt.id("fifo");
        let out = rt.ok(&["run", "--bundle", &b.arg(), &id]);
        assert!(
            out.contains("prw-r--r--") && out.contains("/dev/myfifo"),
            "{}: {out}",
            rt.name()
        );
        assert!(
            out.contains("prw-rw-rw-") && out.contains("/dev/fifo2"),
            "{}: {out}",
            rt.name()
        );
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn proc_and_sys_through_symlinks_are_refused() {
    require_root();
    let env = Env::new("symproc");
    for rt in runtimes(&env) {
        for (dir, fs) in [("proc", "proc"), ("sys", "sysfs")] {
            for target in ["/tmp", "tmp"] {
                let b = env.bundle(&["true"]);
                let p = b.rootfs().join(dir);
                std::fs::remove_dir(&p).unwrap();
                std::os::unix::fs::symlink(target, &p).unwrap();
                let id = rt.id("symproc");
                let out = rt.run(&["run", "--bundle", &b.arg(), &id]);
                let err = text(&out.stderr);
                assert!(
                    !out.status.success(),
                    "{}: /{dir} -> {target} was followed",
                    rt.name()
                );
                assert!(
                    err.contains(&format!(
                        "filesystem \\\"{fs}\\\" must be mounted on ordinary directory"
                    )) || err.contains(&format!(
                        "filesystem \"{fs}\" must be mounted on ordinary directory"
                    )),
                    "{}: {err}",
                    rt.name()
                );
                assert!(rt.state(&id).is_none(), "{}: state left behind", rt.name());
            }
        }
    }
}

// ---- lifecycle and commands ----------------------------------------------

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn exec_into_created_and_paused_containers() {
    require_root();
    let env = Env::new("execstates");
    for rt in runtimes(&env) {
        let b = env.bundle(&["sleep", "1000"]);
        let id = rt.id("execstates");
        rt.ok(&["create", "--bundle", &b.arg(), &id]);
        assert_eq!(rt.ok(&["exec", &id, "echo", "hi"]), "hi\n", "{}", rt.name());
        assert_eq!(rt.state(&id).unwrap()["status"], "created");
        rt.ok(&["start", &id]);
        rt.ok(&["pause", &id]);
        let out = rt.run(&["exec", &id, "echo", "hi"]);
        assert_eq!(out.status.code(), Some(255), "{}: {out:?}", rt.name());
        assert!(
            text(&out.stderr).contains("cannot exec in a paused container"),
            "{}: {out:?}",
            rt.name()
        );
        assert!(out.stdout.is_empty());
        // --ignore-paused: the process runs once the container is resumed
        // (runc's exec waits for that; husk's too, at most 300 s).
        let mut bg = Background::start(
            rt.cmd(&["exec", "--ignore-paused", &id, "echo", "late"]),
            &env.dir,
        );
        std::thread::sleep(Duration::from_millis(500));
        assert!(bg.running(), "{}: exec did not wait for resume", rt.name());
        rt.ok(&["resume", &id]);
        let out = bg.finish(Duration::from_secs(30));
        assert!(out.status.success(), "{}: {out:?}", rt.name());
        assert_eq!(text(&out.stdout), "late\n", "{}", rt.name());
        rt.ok(&["delete", "--force", &id]);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn kill_all_and_ps_of_a_stopped_container() {
    require_root();
    let env = Env::new("stoppedcmds");
    for rt in runtimes(&env) {
        let b = env.bundle(&["sleep", "1000"]);
        let id = rt.id("stopped");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        rt.ok(&["kill", &id, "KILL"]);
        rt.wait_status(&id, "stopped");
        rt.ok(&["kill", "--all", &id, "0"]);
        assert!(
            !rt.run(&["kill", &id, "0"]).status.success(),
            "{}",
            rt.name()
        );
        let ps = rt.ok(&["ps", &id]);
        let lines: Vec<&str> = ps.lines().collect();
        assert_eq!(lines.len(), 1, "{}: {ps}", rt.name());
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
            "{}",
            rt.name()
        );
        rt.ok(&["delete", &id]);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn create_in_a_frozen_cgroup_fails_at_once() {
    require_root();
    let env = Env::new("frozen");
    for rt in runtimes(&env) {
        let cg = HandCgroup::new("husk-compat-frozen");
        cg.freeze(true);
        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| c["linux"]["cgroupsPath"] = json!(cg.path()));
        let id = rt.id("frozen");
        let t = Instant::now();
        let out = rt.run(&["create", "--bundle", &b.arg(), &id]);
        assert!(
            !out.status.success(),
            "{}: created in a frozen cgroup",
            rt.name()
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}: took {:?}",
            rt.name(),
            t.elapsed()
        );
        assert!(
            text(&out.stderr).contains("container's cgroup unexpectedly frozen"),
            "{}: {out:?}",
            rt.name()
        );
        assert!(rt.state(&id).is_none(), "{}", rt.name());
        assert_eq!(
            cg.procs(),
            Vec::<i32>::new(),
            "{}: processes left",
            rt.name()
        );
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn create_in_a_non_empty_cgroup_warns_and_goes_on() {
    require_root();
    let env = Env::new("nonempty");
    for rt in runtimes(&env) {
        let cg = HandCgroup::new("husk-compat-nonempty");
        let mut other = Command::new(BUSYBOX)
            .args(["sleep", "1000"])
            .spawn()
            .unwrap();
        cg.add(other.id());
        // A create that fails leaves the other process alone.
        let b = env.bundle(&["/nonexistent/program"]);
        b.edit(|c| c["linux"]["cgroupsPath"] = json!(cg.path()));
        let id = rt.id("nonempty");
        let out = rt.run(&["create", "--bundle", &b.arg(), &id]);
        assert!(!out.status.success(), "{}", rt.name());
        assert!(
            other.try_wait().unwrap().is_none(),
            "{}: the other process was killed",
            rt.name()
        );

        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| c["linux"]["cgroupsPath"] = json!(cg.path()));
        let id = rt.id("nonempty");
        let out = rt.run(&["create", "--bundle", &b.arg(), &id]);
        assert!(out.status.success(), "{}: {out:?}", rt.name());
        assert!(
            text(&out.stderr).contains("container's cgroup is not empty: 1 process(es) found"),
            "{}: {out:?}",
            rt.name()
        );
        rt.ok(&["start", &id]);
        assert_eq!(rt.state(&id).unwrap()["status"], "running");
        let _ = other.kill();
        let _ = other.wait();
        rt.ok(&["delete", "--force", &id]);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn exec_cgroup_runs_in_a_sub_cgroup() {
    require_root();
    let env = Env::new("execcg");
    for rt in runtimes(&env) {
        let cg = HandCgroup::new("husk-compat-execcg");
        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("{}/c", cg.path())));
        let id = rt.id("execcg");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        cg.mkdir_sub("c/sub");
        let lines = |args: &[&str]| -> Vec<String> {
            let mut full = vec!["exec"];
            full.extend_from_slice(args);
            full.extend_from_slice(&[&id, "cat", "/proc/self/cgroup"]);
            rt.ok(&full).lines().map(str::to_string).collect()
        };
        let all = lines(&["--cgroup", "sub"]);
        assert!(
            all.iter().all(|l| l.ends_with("/sub")),
            "{}: {all:?}",
            rt.name()
        );
        let all = lines(&["--cgroup", "/sub"]);
        assert!(
            all.iter().all(|l| l.ends_with("/sub")),
            "{}: {all:?}",
            rt.name()
        );
        let some = lines(&["--cgroup", "pids:sub", "--cgroup", "memory:sub"]);
        for l in &some {
            let moved = l.contains(":pids:") || l.contains(":memory:");
            assert_eq!(l.ends_with("/sub"), moved, "{}: {some:?}", rt.name());
        }
        for bad in [
            vec!["--cgroup", "pids:.."],
            vec!["--cgroup", "pids:../.."],
            vec!["--cgroup", "pids:nosuchsub"],
            vec!["--cgroup", "sub", "--cgroup", "pids:sub"],
        ] {
            let mut full = vec!["exec"];
            full.extend_from_slice(&bad);
            full.extend_from_slice(&[&id, "cat", "/proc/self/cgroup"]);
            let out = rt.run(&full);
            assert_eq!(
                out.status.code(),
                Some(255),
                "{}: {bad:?} {out:?}",
                rt.name()
            );
            assert!(out.stdout.is_empty(), "{}: {bad:?} ran", rt.name());
        }
        if !rt.runc {
            // runc's escape check is a string prefix: `../cx` reaches the
            // sibling `cx` of the container's cgroup `c`. husk refuses.
            cg.mkdir_sub("cx");
            let out = rt.run(&["exec", "--cgroup", "pids:../cx", &id, "true"]);
            assert_eq!(out.status.code(), Some(255), "{out:?}");
        }
        rt.ok(&["delete", "--force", &id]);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn debug_and_log_cover_exec() {
    require_root();
    let env = Env::new("execlog");
    for rt in runtimes(&env) {
        let b = env.bundle(&["sleep", "1000"]);
        let id = rt.id("execlog");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let out = rt.run(&["--debug", "exec", &id, "echo", "out"]);
        assert_eq!(text(&out.stdout), "out\n", "{}", rt.name());
        assert!(
            text(&out.stderr).contains("level=debug"),
            "{}: {out:?}",
            rt.name()
        );
        let log = env.dir.join(unique("exec.log"));
        let out = rt.run(&[
            "--log",
            log.to_str().unwrap(),
            "--debug",
            "exec",
            &id,
            "echo",
            "out",
        ]);
        assert_eq!(text(&out.stdout), "out\n", "{}", rt.name());
        assert!(
            !text(&out.stderr).contains("level=debug"),
            "{}: {out:?}",
            rt.name()
        );
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(logged.contains("level=debug"), "{}: {logged}", rt.name());
        rt.ok(&["delete", "--force", &id]);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn exec_runtime_failures_exit_255() {
    require_root();
    let env = Env::new("exec255");
    for rt in runtimes(&env) {
        let b = env.bundle(&["sleep", "1000"]);
        let id = rt.id("exec255");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let out = rt.run(&[
            "exec",
            "--pid-file",
            "/nonexistent/dir/pid",
            &id,
            "sh",
            "-c",
            "touch /dev/shm/ran",
        ]);
        assert_eq!(out.status.code(), Some(255), "{}: {out:?}", rt.name());
        if !rt.runc {
            // The process never ran (runc's sometimes does: it writes the
            // pid file while its process is on its way to exec).
            assert!(
                !rt.run(&["exec", &id, "test", "-e", "/dev/shm/ran"])
                    .status
                    .success(),
                "the exec'd process ran"
            );
        }
        for args in [
            vec!["exec", &id, "nosuchbin"],
            vec!["exec", "no-such-container", "true"],
        ] {
            let out = rt.run(&args);
            assert_eq!(
                out.status.code(),
                Some(255),
                "{}: {args:?} {out:?}",
                rt.name()
            );
        }
        // The process's own status passes through.
        let out = rt.run(&["exec", &id, "sh", "-c", "exit 7"]);
        assert_eq!(out.status.code(), Some(7), "{}", rt.name());
        rt.ok(&["delete", "--force", &id]);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn version_and_unknown_commands() {
    require_root();
    let env = Env::new("version");
    for rt in runtimes(&env) {
        for flag in ["-v", "--version"] {
            let out = rt.ok(&[flag]);
            let lines: Vec<&str> = out.lines().collect();
            assert!(lines.len() >= 3, "{}: {out}", rt.name());
            assert!(
                lines[0].starts_with(&format!("{} version ", rt.name())),
                "{out}"
            );
            assert!(
                lines[1].starts_with("commit: ") && lines[1].len() > 8,
                "{out}"
            );
            assert!(lines[2].starts_with("spec: 1."), "{out}");
            if !rt.runc {
                assert_eq!(lines.len(), 3, "{out}");
            }
        }
        for cmd in ["nosuchcmd", "version"] {
            let out = rt.run(&[cmd]);
            assert_eq!(out.status.code(), Some(3), "{}: {out:?}", rt.name());
            assert!(out.stdout.is_empty());
            let err = text(&out.stderr);
            assert_eq!(err.trim().lines().count(), 1, "{}: {err}", rt.name());
            assert!(err.contains(cmd), "{err}");
        }
    }
    // help keeps clap's pages.
    let h = husk_only(&env);
    assert!(h.ok(&["--help"]).contains("Usage: husk"));
}

// ---- terminals -----------------------------------------------------------

/// `ls -ln $(tty)` inside, as "uid gid".
fn tty_owner(ls: &str) -> (String, String) {
    let line = ls
        .lines()
        .map(|l| l.trim_start_matches('\0'))
        .find(|l| l.starts_with("crw") && l.contains("/dev/pts/"))
        .unwrap_or_else(|| panic!("no pty line in {ls:?}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[2].to_string(), f[3].to_string())
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn terminal_without_a_tty_is_proxied_and_owned_by_the_user() {
    require_root();
    let env = Env::new("tty");
    let has_script = Path::new("/usr/bin/script").exists();
    for rt in runtimes(&env) {
        let b = env.bundle(&["sh", "-c", "tty; ls -ln $(tty); id -u"]);
        b.edit(|c| {
            c["process"]["terminal"] = json!(true);
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        });
        let id = rt.id("tty");
        let out = if rt.runc {
            // runc needs a controlling terminal (it opens /dev/tty): give it
            // one with script(1).
            if !has_script {
                continue;
            }
            let cmdline = format!(
                "{RUNC} --root {} run --bundle {} {id}",
                rt.runc_root().display(),
                b.arg()
            );
            let mut c = Command::new("/usr/bin/script");
            c.args(["-qec", &cmdline, "/dev/null"]).stdin(Stdio::null());
            run_bounded(c, Duration::from_secs(30))
        } else {
            // stdin is /dev/null and there is no console socket: husk
            // allocates the pty and copies it, whatever its stdin is.
            rt.run(&["run", "--bundle", &b.arg(), &id])
        };
        assert!(out.status.success(), "{}: {out:?}", rt.name());
        let o = text(&out.stdout);
        assert!(o.contains("/dev/pts/0"), "{}: {o}", rt.name());
        assert_eq!(
            tty_owner(&o),
            ("1000".into(), "5".into()),
            "{}: {o}",
            rt.name()
        );
    }
    // exec -t without a terminal on stdin, as another user.
    let h = husk_only(&env);
    let b = env.bundle(&["sleep", "1000"]);
    let id = h.id("ttyexec");
    h.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let o = h.ok(&[
        "exec",
        "-t",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "ls -ln $(tty)",
    ]);
    assert_eq!(tty_owner(&o), ("1000".into(), "5".into()), "{o}");
    h.ok(&["delete", "--force", &id]);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn exec_process_file_without_user() {
    require_root();
    let env = Env::new("procnouser");
    let pf = env.dir.join("process.json");
    std::fs::write(&pf, r#"{"args":["id"],"cwd":"/","env":["PATH=/bin"]}"#).unwrap();
    for rt in runtimes(&env) {
        let b = env.bundle(&["sleep", "1000"]);
        let id = rt.id("procnouser");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let out = rt.ok(&["exec", "--process", pf.to_str().unwrap(), &id]);
        assert!(
            out.starts_with("uid=0(root) gid=0(root)"),
            "{}: {out}",
            rt.name()
        );
        rt.ok(&["delete", "--force", &id]);
    }
    // husk: uid and gid default to the container's (runc uses 0:0).
    let h = husk_only(&env);
    let b = env.bundle(&["sleep", "1000"]);
    b.edit(|c| c["process"]["user"] = json!({"uid": 65534, "gid": 65534}));
    let id = h.id("procnouser");
    h.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let out = h.ok(&["exec", "--process", pf.to_str().unwrap(), &id]);
    assert!(
        out.starts_with("uid=65534(nobody) gid=65534(nobody)"),
        "{out}"
    );
    h.ok(&["delete", "--force", &id]);
}

// ---- spec, mounts, hooks -------------------------------------------------

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn spec_writes_what_runc_spec_writes() {
    require_root();
    let env = Env::new("spec");
    let runc_spec = |rootless: bool| -> Option<(String, Value)> {
        if !Path::new(RUNC).exists() {
            return None;
        }
        let d = env.dir.join(unique("runc-spec"));
        std::fs::create_dir_all(&d).unwrap();
        let mut c = Command::new(RUNC);
        c.arg("spec").arg("--bundle").arg(&d);
        if rootless {
            c.arg("--rootless");
        }
        assert!(c.status().unwrap().success());
        let t = std::fs::read_to_string(d.join("config.json")).unwrap();
        Some((t.clone(), serde_json::from_str(&t).unwrap()))
    };
    let husk_spec = |extra: &[&str]| -> (String, Value) {
        let d = env.dir.join(unique("husk-spec"));
        std::fs::create_dir_all(&d).unwrap();
        let mut args = vec!["spec", "--bundle", d.to_str().unwrap()];
        args.extend_from_slice(extra);
        env.ok(&args);
        let t = std::fs::read_to_string(d.join("config.json")).unwrap();
        (t.clone(), serde_json::from_str(&t).unwrap())
    };
    for rootless in [false, true] {
        let extra: &[&str] = if rootless { &["--rootless"] } else { &[] };
        let (htext, mut h) = husk_spec(extra);
        let husk_version = h["ociVersion"].clone();
        // No cgroup namespace unless asked, as runc.
        assert!(
            !h["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "cgroup"),
            "{htext}"
        );
        if let Some((rtext, r)) = runc_spec(rootless) {
            // The hostname and the spec version are each runtime's own.
            h["hostname"] = r["hostname"].clone();
            h["ociVersion"] = r["ociVersion"].clone();
            assert_eq!(h, r, "rootless={rootless}");
            // The same file, key for key (tabs, runc's key order, no
            // final newline).
            let norm = htext
                .replace("\"husk\"", &r["hostname"].to_string())
                .replace(
                    &format!("\"ociVersion\": {husk_version}"),
                    &format!("\"ociVersion\": {}", r["ociVersion"]),
                );
            assert_eq!(norm, rtext, "rootless={rootless}");
        }
    }
    let (_, x) = husk_spec(&["--extras"]);
    assert!(x["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "cgroup"));
    // A namespace listed twice stays a clear error.
    let b = env.bundle(&["true"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "pid"}))
    });
    let err = env.fails(&["run", "--bundle", &b.arg(), &env.id("dupns")]);
    assert!(err.contains("\"pid\" twice"), "{err}");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn read_only_dev_is_made_read_only_after_its_submounts() {
    require_root();
    let env = Env::new("rodev");
    for rt in runtimes(&env) {
        let b = env.bundle(&[
            "sh",
            "-c",
            "touch /dev/x 2>&1; touch /dev/shm/x && echo shm-ok; test -c /dev/null && echo null-ok; \
             test -L /dev/ptmx && echo ptmx-ok; grep ' /dev ' /proc/self/mountinfo",
        ]);
        b.edit(|c| {
            let m = c["mounts"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|m| m["destination"] == "/dev")
                .unwrap();
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        });
        let id = rt.id("rodev");
        let out = rt.ok(&["run", "--bundle", &b.arg(), &id]);
        for want in [
            "Read-only file system",
            "shm-ok",
            "null-ok",
            "ptmx-ok",
            " /dev ro,",
        ] {
            assert!(out.contains(want), "{}: no {want:?} in {out}", rt.name());
        }
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn bind_mount_propagation_options_are_honoured() {
    require_root();
    let env = Env::new("prop");
    let src = |n: &str| {
        let p = env.dir.join("m").join(n);
        std::fs::create_dir_all(&p).unwrap();
        p.to_str().unwrap().to_string()
    };
    // A shared mount on the host, to see master relations.
    let shared = src("shared");
    nix::mount::mount(
        Some(shared.as_str()),
        shared.as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    nix::mount::mount(
        None::<&str>,
        shared.as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    let mounts = json!([
        {"destination": "/mnt/a", "type": "bind", "source": src("a"), "options": ["rbind", "rw", "rshared"]},
        {"destination": "/mnt/c", "type": "bind", "source": src("c"), "options": ["bind", "private"]},
        {"destination": "/mnt/d", "type": "bind", "source": src("d"), "options": ["bind", "unbindable"]},
        {"destination": "/mnt/e", "type": "bind", "source": shared, "options": ["rbind", "ro", "rslave"]},
        {"destination": "/mnt/f", "type": "bind", "source": shared, "options": ["bind", "shared"]},
        {"destination": "/mnt/g", "type": "bind", "source": src("g"), "options": ["rbind", "nosuid", "runbindable"]},
        {"destination": "/mnt/h", "type": "bind", "source": shared, "options": ["bind", "rw", "rprivate"]}
    ]);
    for rt in runtimes(&env) {
        let b = env.bundle(&["grep", " /mnt/", "/proc/self/mountinfo"]);
        b.edit(|c| {
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .extend(mounts.as_array().unwrap().clone())
        });
        let id = rt.id("prop");
        let out = rt.ok(&["run", "--bundle", &b.arg(), &id]);
        let line = |m: &str| -> String {
            out.lines()
                .find(|l| l.split(' ').nth(4) == Some(m))
                .unwrap_or_else(|| panic!("{}: no {m} in {out}", rt.name()))
                .split(" - ")
                .next()
                .unwrap()
                .to_string()
        };
        let (a, c, d, e, f, g, h) = (
            line("/mnt/a"),
            line("/mnt/c"),
            line("/mnt/d"),
            line("/mnt/e"),
            line("/mnt/f"),
            line("/mnt/g"),
            line("/mnt/h"),
        );
        let who = rt.name();
        assert!(a.contains(" shared:") && a.contains(" rw,"), "{who}: {a}");
        assert!(
            !c.contains("shared:") && !c.contains("master:"),
            "{who}: {c}"
        );
        assert!(d.ends_with(" unbindable"), "{who}: {d}");
        assert!(
            e.contains(" master:") && !e.contains("shared:") && e.contains(" ro,"),
            "{who}: {e}"
        );
        assert!(
            f.contains(" shared:") && f.contains(" master:"),
            "{who}: {f}"
        );
        assert!(
            g.ends_with(" unbindable") && g.contains("nosuid"),
            "{who}: {g}"
        );
        assert!(
            !h.contains("shared:") && !h.contains("master:"),
            "{who}: {h}"
        );
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn no_mount_namespace_shares_the_runtimes() {
    require_root();
    let env = Env::new("nomntns");
    let no_mntns = |c: &mut Value| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
    };
    for rt in runtimes(&env) {
        // With maskedPaths (the default spec) it cannot be honoured.
        let b = env.bundle(&["true"]);
        b.edit(no_mntns);
        let id = rt.id("nomntns");
        let out = rt.run(&["run", "--bundle", &b.arg(), &id]);
        assert!(!out.status.success(), "{}", rt.name());
        assert!(
            text(&out.stderr).contains("private MNT namespace"),
            "{}: {out:?}",
            rt.name()
        );
        assert!(rt.state(&id).is_none());

        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| {
            no_mntns(c);
            c["mounts"] = json!([]);
            c["linux"]["maskedPaths"] = json!([]);
            c["linux"]["readonlyPaths"] = json!([]);
            c["root"]["readonly"] = json!(false);
        });
        // runc needs a /proc in the rootfs to start at all (it mounts
        // nothing): give both the host's, as the research did.
        let proc_dir = b.rootfs().join("proc");
        nix::mount::mount(
            Some("/proc"),
            &proc_dir,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        let id = rt.id("nomntns");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let pid = rt.pid(&id);
        let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
        assert_eq!(ns(&pid.to_string()), ns("self"), "{}", rt.name());
        let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
        assert_eq!(root, b.rootfs(), "{}", rt.name());
        if !rt.runc {
            // exec'd processes land in the same root.
            let marker = unique("from-exec");
            let out = rt.run(&["exec", &id, "sh", "-c", &format!("echo here > /{marker}")]);
            let on_host = Path::new("/").join(&marker);
            let leaked = on_host.exists();
            let _ = std::fs::remove_file(&on_host);
            assert!(out.status.success(), "{out:?}");
            assert!(!leaked, "exec wrote to the host's root");
            assert!(b.rootfs().join(&marker).exists());
        }
        rt.ok(&["delete", "--force", &id]);
        // runc leaves the rootfs bound onto itself (with a copy of our
        // /proc bind) behind: peel everything off.
        for _ in 0..10 {
            let a = nix::mount::umount2(&proc_dir, nix::mount::MntFlags::MNT_DETACH);
            let r = nix::mount::umount2(&b.rootfs(), nix::mount::MntFlags::MNT_DETACH);
            if a.is_err() && r.is_err() {
                break;
            }
        }
    }
    // Mounts would be made in the host's mount namespace: husk refuses
    // them (runc makes them there and leaves them behind).
    let h = husk_only(&env);
    let b = env.bundle(&["true"]);
    b.edit(|c| {
        no_mntns(c);
        c["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        c["root"]["readonly"] = json!(false);
    });
    let out = h.run(&["run", "--bundle", &b.arg(), &h.id("nomntns")]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("mount namespace"),
        "{out:?}"
    );
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn mount_label_without_selinux_is_a_warning() {
    require_root();
    if Path::new("/sys/fs/selinux/enforce").exists() {
        eprintln!("note: this host has SELinux; skipping");
        return;
    }
    // runc passes the label to the kernel as context= and fails at the
    // first tmpfs; husk warns that it is ignored (there is no SELinux to
    // label anything), and runs.
    let env = Env::new("mountlabel");
    let b = env.bundle(&["true"]);
    b.edit(|c| c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2"));
    let out = env.husk(&["run", "--bundle", &b.arg(), &env.id("mountlabel")]);
    assert!(out.status.success(), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("level=warning") && err.contains("mountLabel"),
        "{err}"
    );
    // process.selinuxLabel stays an error (as with runc).
    let b = env.bundle(&["true"]);
    b.edit(|c| c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0"));
    let err = env.fails(&["run", "--bundle", &b.arg(), &env.id("selinuxlabel")]);
    assert!(err.contains("selinuxLabel"), "{err}");
}

fn hook(env: &Env, stage: &str, fail: bool) -> Value {
    let log = env.dir.join(format!("{stage}.json"));
    json!({"path": "/bin/sh", "args": ["sh", "-c",
        format!("cat > {}; {}", log.display(), if fail { "echo boom >&2; exit 3" } else { "true" })]})
}

fn hook_state(env: &Env, stage: &str) -> Value {
    let p = env.dir.join(format!("{stage}.json"));
    let t = std::fs::read_to_string(&p).unwrap_or_else(|_| panic!("{stage} hook did not run"));
    let _ = std::fs::remove_file(&p);
    serde_json::from_str(&t).unwrap()
}

/// What hooks read on stdin (the runtime spec's, as the OCI validation
/// suite and crun have it; runc differs: prestart reads "creating" and
/// poststart runs during create), and failing late hooks only warn.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn hooks_see_the_state_and_late_failures_only_warn() {
    require_root();
    let env = Env::new("hookstate");
    let h = husk_only(&env);
    let b = env.bundle(&["sleep", "1000"]);
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [hook(&env, "prestart", false)],
            "poststart": [hook(&env, "poststart", true)],
            "poststop": [hook(&env, "poststop", true)],
        })
    });
    let id = h.id("hookstate");
    h.ok(&["create", "--bundle", &b.arg(), &id]);
    let pid = h.pid(&id);
    let s = hook_state(&env, "prestart");
    assert_eq!(
        (s["status"].as_str(), s["pid"].as_i64()),
        (Some("created"), Some(pid)),
        "{s}"
    );
    assert_eq!(s["id"], id.as_str());
    let out = h.run(&["start", &id]);
    assert!(
        out.status.success(),
        "a failing poststart hook failed start: {out:?}"
    );
    assert!(text(&out.stderr).contains("poststart"), "{out:?}");
    let s = hook_state(&env, "poststart");
    assert_eq!(
        (s["status"].as_str(), s["pid"].as_i64()),
        (Some("running"), Some(pid)),
        "{s}"
    );
    assert_eq!(h.state(&id).unwrap()["status"], "running");
    h.ok(&["kill", &id, "KILL"]);
    h.wait_status(&id, "stopped");
    let out = h.run(&["delete", &id]);
    assert!(
        out.status.success(),
        "a failing poststop hook failed delete: {out:?}"
    );
    assert!(text(&out.stderr).contains("poststop"), "{out:?}");
    assert_eq!(hook_state(&env, "poststop")["status"], "stopped");
    assert!(h.state(&id).is_none());

    // Both runtimes: a foreground run whose poststop hook fails exits with
    // the container's status; a failed create still runs poststop.
    for rt in runtimes(&env) {
        let b = env.bundle(&["sh", "-c", "exit 4"]);
        b.edit(|c| c["hooks"] = json!({"poststop": [hook(&env, "poststop", true)]}));
        let out = rt.run(&["run", "--bundle", &b.arg(), &rt.id("hookrun")]);
        assert_eq!(out.status.code(), Some(4), "{}: {out:?}", rt.name());
        assert_eq!(
            hook_state(&env, "poststop")["status"],
            "stopped",
            "{}",
            rt.name()
        );

        let b = env.bundle(&["true"]);
        b.edit(|c| {
            c["hooks"] = json!({
                "prestart": [{"path": "/bin/false"}],
                "poststop": [hook(&env, "poststop", false)],
            })
        });
        let id = rt.id("hookfail");
        let out = rt.run(&["create", "--bundle", &b.arg(), &id]);
        assert!(!out.status.success(), "{}", rt.name());
        assert_eq!(
            hook_state(&env, "poststop")["status"],
            "stopped",
            "{}",
            rt.name()
        );
        assert!(rt.state(&id).is_none(), "{}", rt.name());
    }
}

// ---- output formats ------------------------------------------------------

/// The keys of a JSON object's text, in the order they appear.
fn key_order(obj_text: &str, keys: &[&str]) -> Vec<usize> {
    keys.iter()
        .map(|k| {
            obj_text
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("no {k} in {obj_text}"))
        })
        .collect()
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn events_and_list_print_runcs_key_order() {
    require_root();
    let env = Env::new("keyorder");
    for rt in runtimes(&env) {
        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| c["annotations"] = json!({"b.key": "2", "a.key": "1"}));
        let id = rt.id("keyorder");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let ev = rt.ok(&["events", "--stats", &id]);
        assert!(
            ev.starts_with(&format!(
                "{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":{{\"cpu\":"
            )),
            "{}: {ev}",
            rt.name()
        );
        let data = &ev[ev.find("\"data\"").unwrap()..];
        let pos = key_order(data, &["cpu", "memory", "pids", "blkio", "hugetlb"]);
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{}: {ev}", rt.name());
        let list = rt.ok(&["list", "--format", "json"]);
        let pos = key_order(
            &list,
            &[
                "ociVersion",
                "id",
                "pid",
                "status",
                "bundle",
                "rootfs",
                "created",
                "annotations",
                "a.key",
                "b.key",
                "owner",
            ],
        );
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{}: {list}", rt.name());
        rt.ok(&["delete", "--force", &id]);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn update_on_cgroup_v1() {
    require_root();
    let Some(mem) = hierarchies()
        .into_iter()
        .find(|(m, v2)| !v2 && m.ends_with("memory"))
        .map(|(m, _)| m)
    else {
        eprintln!("note: no cgroup v1 memory hierarchy; skipping");
        return;
    };
    if !mem.join("memory.memsw.limit_in_bytes").exists() {
        eprintln!("note: no swap accounting; skipping");
        return;
    }
    let cpu = hierarchies()
        .into_iter()
        .find(|(m, v2)| !v2 && m.join("cpu.cfs_quota_us").exists())
        .map(|(m, _)| m)
        .unwrap();
    let devices = hierarchies()
        .into_iter()
        .find(|(m, v2)| !v2 && m.join("devices.list").exists())
        .map(|(m, _)| m)
        .unwrap();
    let env = Env::new("update");
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap().trim().to_string();
    let unlimited = |v: String| v.parse::<u64>().unwrap() > 1 << 62;
    for rt in runtimes(&env) {
        let path = unique("husk-compat-update");
        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| {
            c["linux"]["cgroupsPath"] = json!(format!("/{path}"));
            c["linux"]["resources"]["memory"] = json!({"limit": 104857600, "swap": 209715200});
            c["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
        });
        let id = rt.id("update");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let (m, c, d) = (mem.join(&path), cpu.join(&path), devices.join(&path));
        assert_eq!(read(m.join("memory.memsw.limit_in_bytes")), "209715200");
        rt.ok(&["update", "--memory", "-1", &id]);
        assert!(
            unlimited(read(m.join("memory.limit_in_bytes"))),
            "{}",
            rt.name()
        );
        assert!(
            unlimited(read(m.join("memory.memsw.limit_in_bytes"))),
            "{}",
            rt.name()
        );
        rt.ok(&["update", "--memory", "20M", "--memory-swap", "40M", &id]);
        assert_eq!(read(m.join("memory.limit_in_bytes")), "20971520");
        rt.ok(&["update", "--memory", "-1", &id]);
        assert!(
            unlimited(read(m.join("memory.memsw.limit_in_bytes"))),
            "{}",
            rt.name()
        );
        for (args, quota, period) in [
            (vec!["--cpu-quota", "20000"], "20000", "100000"),
            (
                vec!["--cpu-period", "10000", "--cpu-quota", "5000"],
                "5000",
                "10000",
            ),
            (
                vec!["--cpu-quota", "1500", "--cpu-period", "3000"],
                "1500",
                "3000",
            ),
            (vec!["--cpu-period", "1000000"], "1500", "1000000"),
            (
                vec!["--cpu-quota", "200000", "--cpu-period", "100000"],
                "200000",
                "100000",
            ),
        ] {
            let mut full = vec!["update"];
            full.extend_from_slice(&args);
            full.push(&id);
            rt.ok(&full);
            assert_eq!(
                (
                    read(c.join("cpu.cfs_quota_us")),
                    read(c.join("cpu.cfs_period_us"))
                ),
                (quota.to_string(), period.to_string()),
                "{}: {args:?}",
                rt.name()
            );
        }
        // Device rules are not changed by update (and not validated).
        let before = read(d.join("devices.list"));
        for access in ["rwx", "rw"] {
            let r = env.dir.join(unique("res.json"));
            std::fs::write(
                &r,
                json!({"devices": [{"allow": true, "type": "c", "major": 1, "minor": 11, "access": access}]})
                    .to_string(),
            )
            .unwrap();
            rt.ok(&["update", "-r", r.to_str().unwrap(), &id]);
            assert_eq!(
                read(d.join("devices.list")),
                before,
                "{}: {access}",
                rt.name()
            );
        }
        rt.ok(&["delete", "--force", &id]);
    }
}

/// The words clients match in a runtime's errors (containerd's runc shim
/// and podman look for "does not exist" and "not running"), as runc says
/// them, on one line.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn error_messages_clients_match() {
    require_root();
    let env = Env::new("golden");
    for rt in runtimes(&env) {
        let missing = rt.id("missing");
        for args in [
            vec!["state", missing.as_str()],
            vec!["delete", missing.as_str()],
            vec!["kill", missing.as_str(), "KILL"],
            vec!["exec", missing.as_str(), "true"],
            vec!["pause", missing.as_str()],
            vec!["ps", missing.as_str()],
        ] {
            let out = rt.run(&args);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            // exec's own failures are 255 (its process's codes are its own).
            let code = if args[0] == "exec" { 255 } else { 1 };
            assert_eq!(
                out.status.code(),
                Some(code),
                "{} {args:?}: {err}",
                rt.name()
            );
            // husk names the id: `container "ID" does not exist`.
            assert!(
                err.contains("does not exist"),
                "{} {args:?}: {err}",
                rt.name()
            );
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{} {args:?}: {err}",
                rt.name()
            );
        }
        let b = env.bundle(&["sleep", "1000"]);
        let id = rt.id("stopped");
        rt.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        rt.ok(&["kill", &id, "KILL"]);
        rt.wait_status(&id, "stopped");
        for args in [
            vec!["kill", id.as_str(), "KILL"],
            vec!["pause", id.as_str()],
        ] {
            let out = rt.run(&args);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(1), "{} {args:?}: {err}", rt.name());
            assert!(
                err.contains("container not running"),
                "{} {args:?}: {err}",
                rt.name()
            );
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{} {args:?}: {err}",
                rt.name()
            );
        }
        rt.ok(&["delete", &id]);
    }
    // husk alone: the systemd cgroup driver is refused, naming the flag,
    // before anything is made.
    let b = env.bundle(&["true"]);
    let id = env.id("systemd");
    let out = env.husk(&["--systemd-cgroup", "create", "--bundle", &b.arg(), &id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(": --systemd-cgroup: husk manages cgroups"),
        "{err}"
    );
    assert_one_line(&err);
    env.assert_no_leftovers(&id);
}
