//! Shared harness for the integration tests: a private `--root`, busybox
//! bundles built in a temp dir, time-bounded husk invocations, and cleanup
//! that runs even when a test fails.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const HUSK: &str = env!("CARGO_BIN_EXE_husk");
pub const BUSYBOX: &str = "/bin/busybox";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Tests drive real containers and need root: a build made as another
/// user marks them ignored (see build.rs); one made as root that runs as
/// someone else says so loudly rather than passing.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (the test binary was built as root: rebuild as this user to skip it)"
    );
}

/// A unique name for ids and directories.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A private husk root plus the bundles of one test. Dropping it deletes every
/// container, kills anything left, removes cgroups, mounts and files.
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub extra_flags: Vec<String>,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let dir = std::env::temp_dir().join(unique(&format!("husk-test-{name}")));
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("state");
        Env {
            dir,
            root,
            // Global flags for every husk command of the run (scripts/test.sh
            // runs the security suite again with --userns=auto).
            extra_flags: std::env::var("HUSK_TEST_FLAGS")
                .map(|f| f.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            ids: Default::default(),
        }
    }

    /// A fresh container id, remembered for cleanup.
    pub fn id(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A busybox bundle whose process runs `args`.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        let b = Bundle::new(&self.dir.join(unique("bundle")));
        b.edit(|c| c["process"]["args"] = json!(args));
        b
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HUSK);
        c.arg("--root").arg(&self.root);
        c.args(&self.extra_flags);
        c.args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run husk with `args`, capturing output, bounded in time.
    pub fn husk(&self, args: &[&str]) -> Output {
        run_bounded(self.cmd(args), Duration::from_secs(30))
    }

    /// Run husk and insist on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.husk(args);
        assert!(
            out.status.success(),
            "husk {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run husk expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.husk(args);
        assert!(
            !out.status.success(),
            "husk {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Poll until the container reaches `want` (or panic after `secs`).
    pub fn wait_status(&self, id: &str, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            // The container may not exist yet (a `run` still starting).
            let out = self.husk(&["state", id]);
            let st = if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                v["status"].as_str().unwrap().to_string()
            } else {
                "absent".to_string()
            };
            if st == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} stayed {st}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Processes started with this env's --root (boot, gofer, waiters).
    pub fn runtime_processes(&self) -> Vec<i32> {
        let needle = self.root.to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for ent in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = ent.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == std::process::id() as i32 {
                continue;
            }
            if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                // Waiters and the gofer are forks of a husk command: known
                // by their name.
                let forked = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "husk-wait" || c.trim() == "husk-gofer");
                if cmd.contains(&needle)
                    && (cmd.contains(" boot ") || cmd.contains(" gofer ") || forked)
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Nothing of container `id` remains: no state, no runtime process, no
    /// cgroup, no mount of this test's files.
    pub fn assert_no_leftovers(&self, id: &str) {
        assert!(
            !self.root.join(id).exists(),
            "state dir of {id} is still there"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.runtime_processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            self.runtime_processes(),
            Vec::<i32>::new(),
            "runtime processes left"
        );
        for cg in cgroup_dirs_of(id) {
            assert!(!cg.exists(), "cgroup {} is still there", cg.display());
        }
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let d = self.dir.to_string_lossy().into_owned();
        assert!(
            !mi.lines().any(|l| l.contains(&d)),
            "mounts of {d} remain:\n{mi}"
        );
    }
}

/// Where husk puts a container's cgroup by default, in every hierarchy.
pub fn cgroup_dirs_of(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for ent in rd.flatten() {
            out.push(ent.path().join("husk").join(id));
        }
    }
    out.push(PathBuf::from("/sys/fs/cgroup/husk").join(id));
    out
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = run_bounded(
                {
                    let mut c = Command::new(HUSK);
                    c.arg("--root")
                        .arg(&self.root)
                        .args(["delete", "--force", id]);
                    c
                },
                Duration::from_secs(20),
            );
        }
        for pid in self.runtime_processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for id in self.ids.borrow().iter() {
            for cg in cgroup_dirs_of(id) {
                if cg.exists() {
                    kill_cgroup(&cg);
                    let _ = std::fs::remove_dir(&cg);
                }
            }
        }
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let d = self.dir.to_string_lossy().into_owned();
        let mut points: Vec<&str> = mi
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&d))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kill_cgroup(cg: &Path) {
    if let Ok(procs) = std::fs::read_to_string(cg.join("cgroup.procs")) {
        for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    std::thread::sleep(Duration::from_millis(50));
}

/// A busybox bundle: rootfs with /bin/busybox and its applets, and a
/// config.json from `husk spec` made suitable for tests (no terminal).
pub struct Bundle {
    pub path: PathBuf,
}

impl Bundle {
    pub fn new(path: &Path) -> Bundle {
        let rootfs = path.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet == "busybox" {
                continue;
            }
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
        let st = Command::new(HUSK)
            .args(["spec", "--bundle"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "husk spec failed");
        let b = Bundle {
            path: path.to_path_buf(),
        };
        b.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["hostname"] = json!("husk-test");
        });
        b
    }

    pub fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path.join("config.json")).unwrap()).unwrap()
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        std::fs::write(
            self.path.join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }

    pub fn arg(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// Run a command with its output captured in files (not pipes: a created
/// container's init holds the caller's stdio until it runs, as with runc);
/// kill it if it outlives `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let dir = std::env::temp_dir().join(unique("husk-out"));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    cmd.stdout(std::fs::File::create(&out_path).unwrap());
    cmd.stderr(std::fs::File::create(&err_path).unwrap());
    let child = cmd.spawn().expect("spawn");
    let status = wait_child(child, limit);
    let out = Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Wait for a child, killing it after `limit`.
pub fn wait_child(mut child: Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let st = child.wait().unwrap();
            panic!("command timed out after {limit:?} (status {st})");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wait for a child whose stdout/stderr are pipes, reading them.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let status = wait_child(child, limit);
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Exactly one line on stderr, and it is not empty.
pub fn assert_one_line(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr:?}");
    assert!(lines[0].starts_with("husk: "), "{stderr:?}");
}

/// Assert that process `pid` (seen from the host) is in container `id`'s
/// own cgroup in the memory hierarchy and in cgroup2 (husk's default
/// cgroup path ends in the id), not in its sandbox's.
pub fn assert_in_own_cgroup(pid: i64, id: &str) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for want in [":memory:", "0::"] {
        let line = text
            .lines()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no {want} line in /proc/{pid}/cgroup:\n{text}"));
        assert!(
            line.ends_with(&format!("/{id}")),
            "process {pid} is not in {id}'s cgroup: {line}"
        );
    }
}
