//! Debian 12's stock Docker (docker.io 20.10) drives each OCI runtime through
//! the same scenarios: a private dockerd per runtime (its own data root,
//! exec root, socket and managed containerd), the runtime registered in
//! daemon.json as users do, a busybox image imported locally (no registry),
//! and checks of real effects: output, exit codes, processes, cgroups,
//! namespaces, mounts, network.
//!
//! `HUSK_DOCKER_RUNTIMES` picks the runtimes (default `runc,husk,husk-auto`):
//! `runc` is Docker's built-in runtime (Debian's /usr/sbin/runc), `husk` this
//! crate's binary, `husk-auto` the same with `runtimeArgs: ["--userns=auto"]`
//! (every container in a user namespace of its own), and `NAME=/abs/path`
//! registers any other binary. With
//! `HUSK_DOCKER_LOG_DIR` set, each dockerd's log is copied there.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{unique, BUSYBOX, HUSK};

/// The apt client; a newer one may be in /usr/local/bin.
const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const RUNC: &str = "/usr/sbin/runc";
/// dockerd finds runc, containerd, docker-init, docker-proxy and iptables
/// here: Debian's, whatever else the machine has.
const DAEMON_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// If this socket exists, dockerd 20.10 uses that containerd instead of
/// starting its own.
const SYSTEM_CONTAINERD: &str = "/run/containerd/containerd.sock";
/// Limit for one client command.
const CMD_LIMIT: Duration = Duration::from_secs(30);
/// After this long, a runtime's remaining scenarios are not run (failed).
const RUNTIME_BUDGET: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------
// Commands, bounded in time.

/// A finished command: its exit code and output.
struct Out {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Insist on success; returns stdout.
    #[track_caller]
    fn ok(self) -> String {
        assert!(self.code == Some(0), "{}", self.describe());
        self.stdout
    }

    fn describe(&self) -> String {
        format!(
            "`{}` exited {:?}\nstderr: {}\nstdout: {}",
            self.what,
            self.code,
            self.stderr.trim_end(),
            self.stdout.trim_end()
        )
    }
}

/// Run `cmd` with output in files; kill it and panic (naming it) if it
/// outlives `limit`.
#[track_caller]
fn bounded(mut cmd: Command, limit: Duration) -> Out {
    let what = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let dir = std::env::temp_dir().join(unique("hdk-out"));
    std::fs::create_dir_all(&dir).unwrap();
    let (o, e) = (dir.join("stdout"), dir.join("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|err| panic!("spawn `{what}`: {err}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = Out {
        what,
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&std::fs::read(&o).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&e).unwrap_or_default()).into_owned(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.is_some(),
        "timed out after {limit:?}: {}",
        out.describe()
    );
    out
}

#[track_caller]
fn sh(prog: &str, args: &[&str]) -> Out {
    let mut c = Command::new(prog);
    c.args(args);
    bounded(c, Duration::from_secs(20))
}

/// Poll `f` until it returns Some, for at most `limit`.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Host facts: processes, mounts, cgroups, network.

fn pid_alive(pid: i32) -> bool {
    // A zombie has finished; only its parent's bookkeeping is left.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// When a process started, in clock ticks since boot.
fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn kill(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Mount points of /proc/self/mountinfo at or under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    let sub = format!("{d}/");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == d || p.starts_with(&sub))
        .map(str::to_string)
        .collect()
}

/// Lines of /proc/self/mountinfo that mention `dir` anywhere.
fn mountinfo_mentioning(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&d))
        .map(str::to_string)
        .collect()
}

/// Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers,
/// name=systemd, and the unified one).
fn cgroup_roots() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default();
    if Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
        v.push(PathBuf::from("/sys/fs/cgroup"));
    }
    v.sort();
    v
}

/// Kill everything in a cgroup (thawing it first) and remove it.
fn remove_cgroup(cg: &Path) {
    if !cg.exists() {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(cg) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = std::fs::write(cg.join("freezer.state"), "THAWED");
    let _ = std::fs::write(cg.join("cgroup.freeze"), "0");
    for _ in 0..50 {
        let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
        for p in procs.lines().filter_map(|l| l.trim().parse().ok()) {
            kill(p, nix::sys::signal::Signal::SIGKILL);
        }
        if std::fs::remove_dir(cg).is_ok() || !cg.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `iptables -t TABLE -S`, one rule/chain/policy a line.
fn iptables_rules(table: &str) -> Vec<String> {
    let o = sh("iptables", &["-w", "-t", table, "-S"]);
    o.stdout.lines().map(str::to_string).collect()
}

/// Split an `iptables -S` line into arguments (double quotes group).
fn split_rule(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    args.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(cur);
    }
    args
}

/// What dockerd may change on the host, taken before it starts, so that
/// cleanup undoes only what this test's dockerd did.
struct HostSnapshot {
    docker0: bool,
    ip_forward: String,
    iptables: Vec<(&'static str, Vec<String>)>,
    /// Docker's cgroup parent (`docker`) existed in these hierarchies.
    cgroup_parents: BTreeSet<PathBuf>,
}

impl HostSnapshot {
    fn take() -> HostSnapshot {
        HostSnapshot {
            docker0: Path::new("/sys/class/net/docker0").exists(),
            ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap_or_default()
                .trim()
                .to_string(),
            iptables: ["filter", "nat"]
                .into_iter()
                .map(|t| (t, iptables_rules(t)))
                .collect(),
            cgroup_parents: cgroup_roots()
                .into_iter()
                .map(|r| r.join("docker"))
                .filter(|p| p.exists())
                .collect(),
        }
    }

    /// Undo dockerd's network changes: rules and chains it added, policies
    /// it changed, the bridge it made, ip_forward.
    fn restore_network(&self) {
        for (table, before) in &self.iptables {
            let after = iptables_rules(table);
            let run = |args: &[String]| {
                let mut c = Command::new("iptables");
                c.args(["-w", "-t", table]).args(args);
                let _ = bounded(c, Duration::from_secs(20));
            };
            for line in after.iter().rev() {
                if before.contains(line) || !line.starts_with("-A ") {
                    continue;
                }
                let mut args = split_rule(line);
                args[0] = "-D".into();
                run(&args);
            }
            let new_chains: Vec<String> = after
                .iter()
                .filter(|l| l.starts_with("-N ") && !before.contains(l))
                .map(|l| l[3..].trim().to_string())
                .collect();
            for c in &new_chains {
                run(&["-F".into(), c.clone()]);
            }
            for c in &new_chains {
                run(&["-X".into(), c.clone()]);
            }
            for line in before.iter().filter(|l| l.starts_with("-P ")) {
                if !after.contains(line) {
                    let mut args = split_rule(line);
                    args[0] = "-P".into();
                    run(&args);
                }
            }
        }
        if !self.docker0 && Path::new("/sys/class/net/docker0").exists() {
            let _ = sh("ip", &["link", "delete", "docker0"]);
        }
        if !self.ip_forward.is_empty() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
        }
    }
}

// ---------------------------------------------------------------------------
// The image: a busybox rootfs, as the other client tests build it.

fn rootfs_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("image-rootfs");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root", "data"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
    let tar = dir.join("rootfs.tar");
    let mut c = Command::new("tar");
    c.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
    bounded(c, Duration::from_secs(60)).ok();
    tar
}

// ---------------------------------------------------------------------------
// One runtime, one dockerd.

#[derive(Clone, Debug)]
struct Runtime {
    /// The name given to `docker run --runtime`.
    name: String,
    /// Registered in daemon.json with this path; None: Docker's own runc.
    path: Option<PathBuf>,
    /// The binary whose `--root R list -q` shows the containers left.
    binary: PathBuf,
    /// daemon.json's runtimeArgs.
    args: Vec<String>,
}

fn runtimes() -> Vec<Runtime> {
    let spec =
        std::env::var("HUSK_DOCKER_RUNTIMES").unwrap_or_else(|_| "runc,husk,husk-auto".into());
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item {
            "runc" => Runtime {
                name: "runc".into(),
                path: None,
                binary: RUNC.into(),
                args: Vec::new(),
            },
            "husk" => Runtime {
                name: "husk".into(),
                path: Some(HUSK.into()),
                binary: HUSK.into(),
                args: Vec::new(),
            },
            "husk-auto" => Runtime {
                name: "husk-auto".into(),
                path: Some(HUSK.into()),
                binary: HUSK.into(),
                args: vec!["--userns=auto".into()],
            },
            other => {
                let (name, path) = other.split_once('=').unwrap_or_else(|| {
                    panic!("HUSK_DOCKER_RUNTIMES: {other:?}: use runc, husk or NAME=/abs/path")
                });
                assert!(
                    path.starts_with('/'),
                    "HUSK_DOCKER_RUNTIMES: {path} is not absolute"
                );
                Runtime {
                    name: name.into(),
                    path: Some(path.into()),
                    binary: path.into(),
                    args: Vec::new(),
                }
            }
        })
        .collect()
}

/// A private dockerd with one runtime under test. Dropping it removes every
/// container, stops dockerd and its containerd, kills what is left, unmounts,
/// and undoes its cgroups and network changes.
struct Daemon {
    rt: Runtime,
    dir: PathBuf,
    data: PathBuf,
    exec: PathBuf,
    host: String,
    image: String,
    /// containerd namespace: Docker's "moby", unless a system containerd is
    /// shared (then a private one).
    ns: String,
    shared_containerd: bool,
    dockerd: Mutex<Option<Child>>,
    events: Mutex<Option<Child>>,
    snapshot: HostSnapshot,
    mounts_before: Vec<String>,
    /// Names given to containers, removed after each scenario.
    names: Mutex<Vec<String>>,
}

impl Daemon {
    fn new(rt: &Runtime) -> Daemon {
        // Short: Docker's default exec root is /run/docker, and sockets
        // live under it.
        let dir = std::env::temp_dir().join(unique("hdk"));
        std::fs::create_dir_all(&dir).unwrap();
        let mounts_before = mountinfo_mentioning(&dir);
        let shared_containerd = Path::new(SYSTEM_CONTAINERD).exists();
        Daemon {
            rt: rt.clone(),
            data: dir.join("data"),
            exec: dir.join("exec"),
            host: format!("unix://{}", dir.join("docker.sock").display()),
            image: format!("husk-bb:{}", unique("t")),
            ns: if shared_containerd {
                unique("hdk")
            } else {
                "moby".into()
            },
            shared_containerd,
            dockerd: Mutex::new(None),
            events: Mutex::new(None),
            snapshot: HostSnapshot::take(),
            mounts_before,
            names: Mutex::new(Vec::new()),
            dir,
        }
    }

    fn dockerd_pid(&self) -> Option<i32> {
        self.dockerd.lock().unwrap().as_ref().map(|c| c.id() as i32)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Start dockerd and import the image.
    fn start(&self) {
        let mut runtimes = serde_json::Map::new();
        runtimes.insert("husk".into(), serde_json::json!({ "path": HUSK }));
        if let Some(p) = &self.rt.path {
            runtimes.insert(
                self.rt.name.clone(),
                serde_json::json!({ "path": p, "runtimeArgs": self.rt.args }),
            );
        }
        let config = self.dir.join("daemon.json");
        std::fs::write(
            &config,
            serde_json::to_vec_pretty(&serde_json::json!({ "runtimes": runtimes })).unwrap(),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.join("dockerd.log")).unwrap();
        let mut c = Command::new(DOCKERD);
        c.env_clear()
            .env("PATH", DAEMON_PATH)
            .arg("--data-root")
            .arg(&self.data)
            .arg("--exec-root")
            .arg(&self.exec)
            .arg("-H")
            .arg(&self.host)
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .arg("--config-file")
            .arg(&config);
        if self.shared_containerd {
            // Not to mix our containers with the system Docker's.
            c.args(["--containerd-namespace", &self.ns]).args([
                "--containerd-plugins-namespace",
                &format!("{}-plugins", self.ns),
            ]);
        }
        c.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        *self.dockerd.lock().unwrap() = Some(c.spawn().expect("start dockerd"));
        let up = wait_for(Duration::from_secs(30), || {
            if !self.dockerd_pid().is_some_and(pid_alive) {
                panic!("dockerd exited:\n{}", self.log_tail());
            }
            let mut c = self.client();
            c.arg("version");
            (bounded(c, Duration::from_secs(10)).code == Some(0)).then_some(())
        });
        assert!(
            up.is_some(),
            "dockerd did not come up:\n{}",
            self.log_tail()
        );
        if !self.shared_containerd {
            assert!(
                self.exec.join("containerd/containerd.sock").exists(),
                "dockerd did not start its own containerd:\n{}",
                self.log_tail()
            );
        }
        // Every container id this dockerd makes, for cleanup.
        let ev = std::fs::File::create(self.dir.join("events")).unwrap();
        let mut c = self.client();
        c.args([
            "events",
            "--filter",
            "type=container",
            "--format",
            "{{.ID}}",
        ])
        .stdin(Stdio::null())
        .stdout(ev)
        .stderr(Stdio::null());
        *self.events.lock().unwrap() = Some(c.spawn().expect("docker events"));
        let tar = rootfs_tar(&self.dir);
        self.ok(&[
            "import",
            "--change",
            r#"CMD ["sh"]"#,
            tar.to_str().unwrap(),
            &self.image,
        ]);
    }

    /// The apt docker client, talking to this dockerd only.
    fn client(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_CONFIG", self.dir.join("client"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .arg("-H")
            .arg(&self.host);
        c
    }

    #[track_caller]
    fn docker_t(&self, args: &[&str], limit: Duration) -> Out {
        let mut c = self.client();
        c.args(args);
        bounded(c, limit)
    }

    #[track_caller]
    fn docker(&self, args: &[&str]) -> Out {
        self.docker_t(args, CMD_LIMIT)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        self.docker(args).ok()
    }

    /// A unique container name, removed after the scenario.
    fn name(&self, what: &str) -> String {
        let n = unique(what);
        self.names.lock().unwrap().push(n.clone());
        n
    }

    /// `docker run --runtime RT [--name N] OPTS IMAGE CMD...`
    #[track_caller]
    fn run(&self, opts: &[&str], cmd: &[&str]) -> Out {
        let name;
        let mut args = vec!["run", "--runtime", &self.rt.name];
        if !opts.contains(&"--name") {
            name = self.name("run");
            args.extend(["--name", &name]);
        }
        args.extend(opts);
        args.push(&self.image);
        args.extend(cmd);
        self.docker(&args)
    }

    #[track_caller]
    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name]).trim().to_string()
    }

    #[track_caller]
    fn full_id(&self, name: &str) -> String {
        self.inspect(name, "{{.Id}}")
    }

    /// Wait until the container's status is `want`.
    #[track_caller]
    fn wait_status(&self, name: &str, want: &str, limit: Duration) {
        let mut last = String::new();
        let got = wait_for(limit, || {
            last = self.inspect(name, "{{.State.Status}}");
            (last == want).then_some(())
        });
        assert!(got.is_some(), "{name} stayed {last}, wanted {want}");
    }

    /// The same client as a shell command line (for script(1)).
    fn shell(&self, args: &str) -> String {
        format!("{DOCKER} -H {} {args}", self.host)
    }

    /// Run a docker command under a pty, as a person at a terminal.
    #[track_caller]
    fn under_pty(&self, args: &str) -> Out {
        let mut c = Command::new("script");
        c.env("DOCKER_CONFIG", self.dir.join("client"))
            .env_remove("DOCKER_HOST")
            .args(["-qec", &self.shell(args), "/dev/null"]);
        bounded(c, CMD_LIMIT)
    }

    /// Remove the scenario's containers.
    fn remove_named(&self) {
        let names: Vec<String> = std::mem::take(&mut *self.names.lock().unwrap());
        for chunk in names.chunks(25) {
            let mut args = vec!["rm", "-f"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = catch_unwind(AssertUnwindSafe(|| {
                self.docker_t(&args, Duration::from_secs(120))
            }));
        }
    }

    /// Ids of every container this dockerd made (from its event stream).
    fn container_ids(&self) -> BTreeSet<String> {
        std::fs::read_to_string(self.dir.join("events"))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string)
            .collect()
    }

    /// The cgroups of this dockerd's containers that exist, in every
    /// hierarchy (all of Docker's parent if this test created it).
    fn container_cgroups(&self) -> Vec<PathBuf> {
        let ids = self.container_ids();
        let mut out = Vec::new();
        for root in cgroup_roots() {
            let parent = root.join("docker");
            let ours_entirely = !self.snapshot.cgroup_parents.contains(&parent);
            if let Ok(rd) = std::fs::read_dir(&parent) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_dir() && (ours_entirely || ids.contains(&name)) {
                        out.push(e.path());
                    }
                }
            }
        }
        out
    }

    /// Processes that this dockerd's containers or runtime left: anything
    /// naming our directory (shims, runtime processes) or living in one of
    /// our containers' cgroups, but not dockerd, its containerd or our
    /// event client; with `runtime_exe`, also any process of the runtime's
    /// binary started since dockerd.
    fn leftover_processes(&self, runtime_exe: bool) -> Vec<(i32, String)> {
        let me = std::process::id() as i32;
        let dockerd = self.dockerd_pid();
        let events = self.events.lock().unwrap().as_ref().map(|c| c.id() as i32);
        let d = format!("{}/", self.dir.display());
        let shim_ns = format!("-namespace {} ", self.ns);
        let mut in_cgroups = BTreeSet::new();
        for cg in self.container_cgroups() {
            let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
            in_cgroups.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        let exe = std::fs::canonicalize(&self.rt.binary).ok();
        let mut out = Vec::new();
        for pid in all_pids() {
            if pid == me || Some(pid) == dockerd || Some(pid) == events || !pid_alive(pid) {
                continue;
            }
            let cmd = cmdline(pid);
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "containerd" && ppid(pid) == dockerd && dockerd.is_some() {
                continue;
            }
            let names_dir = format!("{cmd} ").contains(&d);
            let our_shim = self.shared_containerd
                && comm.starts_with("containerd-shim")
                && format!("{cmd} ").contains(&shim_ns);
            let runtime_binary = runtime_exe
                && exe.is_some()
                && std::fs::read_link(format!("/proc/{pid}/exe")).ok() == exe
                && start_time(pid) >= dockerd.and_then(start_time);
            if names_dir || our_shim || in_cgroups.contains(&pid) || runtime_binary {
                out.push((pid, cmd));
            }
        }
        out
    }

    /// The runtime's state directory, as the containerd shim passes it.
    fn runtime_root(&self) -> PathBuf {
        self.exec.join("runtime-runc").join(&self.ns)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let log_dir = std::env::var_os("HUSK_DOCKER_LOG_DIR");
        let dockerd_alive = self.dockerd_pid().is_some_and(pid_alive);
        if dockerd_alive {
            self.remove_named();
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let ids = self
                    .docker_t(&["ps", "-aq"], Duration::from_secs(30))
                    .stdout;
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    let _ = self.docker_t(&args, Duration::from_secs(120));
                }
            }));
        }
        if let Some(mut ev) = self.events.lock().unwrap().take() {
            let _ = ev.kill();
            let _ = ev.wait();
        }
        // dockerd: SIGTERM (it stops its containerd and unmounts its data
        // root), then SIGKILL.
        let managed_containerd: Vec<i32> = match self.dockerd_pid() {
            Some(d) => all_pids()
                .into_iter()
                .filter(|p| ppid(*p) == Some(d))
                .collect(),
            None => Vec::new(),
        };
        if let Some(mut child) = self.dockerd.lock().unwrap().take() {
            let pid = child.id() as i32;
            kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while managed_containerd.iter().any(|p| pid_alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in &managed_containerd {
            if pid_alive(*p) && cmdline(*p).contains(&*self.dir.to_string_lossy()) {
                kill(*p, nix::sys::signal::Signal::SIGKILL);
            }
        }
        // Whatever is left: shims, runtime processes, container processes.
        for _ in 0..3 {
            let left = self.leftover_processes(false);
            if left.is_empty() {
                break;
            }
            for (p, _) in left {
                kill(p, nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for cg in self.container_cgroups() {
            remove_cgroup(&cg);
        }
        for root in cgroup_roots() {
            let parent = root.join("docker");
            if !self.snapshot.cgroup_parents.contains(&parent) {
                let _ = std::fs::remove_dir(&parent);
            }
        }
        // dockerd's data root is bind-mounted on itself and shared, so
        // mounts may have copies: repeat until none is left.
        for _ in 0..10 {
            let mut points = mounts_under(&self.dir);
            if points.is_empty() {
                break;
            }
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        if self.shared_containerd {
            // Our (now empty) namespaces in the system containerd.
            let plugins = format!("{}-plugins", self.ns);
            let _ = catch_unwind(|| {
                sh(
                    "ctr",
                    &[
                        "--address",
                        SYSTEM_CONTAINERD,
                        "namespaces",
                        "rm",
                        &self.ns,
                        &plugins,
                    ],
                )
            });
        }
        let _ = catch_unwind(AssertUnwindSafe(|| self.snapshot.restore_network()));
        if let Some(d) = log_dir {
            let _ = std::fs::create_dir_all(&d);
            let _ = std::fs::copy(
                self.dir.join("dockerd.log"),
                Path::new(&d).join(format!("dockerd-{}.log", self.rt.name)),
            );
        }
        if mounts_under(&self.dir).is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("docker test: mounts left under {}", self.dir.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Scenarios. Each panics on failure; the driver records it and goes on.

/// `run` prints the command's output; its exit code is docker's.
fn s_run(d: &Daemon) {
    assert_eq!(d.run(&["--rm"], &["echo", "hi"]).ok(), "hi\n");
    let o = d.run(&["--rm"], &["sh", "-c", "exit 3"]);
    assert_eq!(o.code, Some(3), "{}", o.describe());
}

fn ns_of(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The pid namespaces of `pid`, innermost last (from NSpid: how many levels
/// deep it is).
fn pidns_depth(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .map(|v| v.split_whitespace().count())
        })
        .unwrap_or(0)
}

/// What clients build on the pid Docker gets from the runtime (State.Pid:
/// `--network container:X` paths, the shim's stats and OOM events): it is
/// in the container's network, IPC and UTS namespaces and cgroups, and in
/// a pid namespace that is not the host's and from which the container's
/// process is visible. runc gives the container's process itself.
fn assert_pid_facts(state_pid: i32, container_proc: i32) {
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns_of(state_pid, kind),
            ns_of(container_proc, kind),
            "State.Pid {state_pid} is not in the container's {kind} namespace"
        );
    }
    assert_ne!(
        ns_of(state_pid, "pid"),
        ns_of(std::process::id() as i32, "pid"),
        "State.Pid {state_pid} is in the host's pid namespace"
    );
    // The container's process lives in State.Pid's pid namespace or in one
    // below it (then it is visible from it).
    assert!(
        pidns_depth(container_proc) >= pidns_depth(state_pid) && pidns_depth(state_pid) >= 2,
        "State.Pid {state_pid} cannot see the container's process {container_proc}"
    );
    let cg = |p: i32| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default();
    assert_eq!(
        cg(state_pid),
        cg(container_proc),
        "State.Pid {state_pid} is not in the container's cgroups"
    );
}

/// The host pid of the process running `cmd` in container `n`, by `top`.
fn top_pid(d: &Daemon, n: &str, cmd: &str) -> i32 {
    let top = d.ok(&["top", n, "-o", "pid,args"]);
    top.lines()
        .skip(1)
        .find_map(|l| {
            let (pid, args) = l.trim().split_once(' ')?;
            (args.trim() == cmd).then(|| pid.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {cmd:?} in top of {n}:\n{top}"))
}

/// `stop -t 2` (sleep ignores SIGTERM as pid 1: SIGKILL after 2 s) and
/// `kill` end the container: 137, and its process is gone.
fn s_stop_kill(d: &Daemon) {
    for how in ["stop", "kill"] {
        let n = d.name(how);
        d.run(&["-d", "--name", &n], &["sleep", "1000"]).ok();
        let pid: i32 = d.inspect(&n, "{{.State.Pid}}").parse().unwrap();
        assert!(pid > 0 && pid_alive(pid), "State.Pid {pid} is not running");
        let sleep = top_pid(d, &n, "sleep 1000");
        assert_eq!(cmdline(sleep), "sleep 1000");
        assert_pid_facts(pid, sleep);
        let t = Instant::now();
        if how == "stop" {
            d.ok(&["stop", "-t", "2", &n]);
            let el = t.elapsed();
            assert!(
                el >= Duration::from_millis(1500) && el < Duration::from_secs(20),
                "stop -t 2 took {el:?}"
            );
        } else {
            d.ok(&["kill", &n]);
        }
        d.wait_status(&n, "exited", Duration::from_secs(10));
        assert_eq!(d.inspect(&n, "{{.State.ExitCode}}"), "137", "{how}");
        for p in [pid, sleep] {
            assert!(
                wait_for(Duration::from_secs(5), || (!pid_alive(p)).then_some(())).is_some(),
                "{how}: process {p} still runs"
            );
        }
    }
}

/// `exec` runs in the container (its pid 1, its hostname) with output and
/// exit code; `exec -it` gets a pty.
fn s_exec(d: &Daemon) {
    let n = d.name("exec");
    d.run(&["-d", "--name", &n], &["sleep", "1000"]).ok();
    let o = d.docker(&["exec", &n, "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(o.code, Some(4), "{}", o.describe());
    assert_eq!(o.stdout, "in-exec\n");
    assert_eq!(
        d.ok(&["exec", &n, "cat", "/proc/1/cmdline"]),
        "sleep\u{0}1000\u{0}"
    );
    let host = d.inspect(&n, "{{.Config.Hostname}}");
    assert_eq!(d.ok(&["exec", &n, "hostname"]).trim(), host);
    let o = d.under_pty(&format!(
        "exec -it {n} sh -c 'tty; echo tty-exec-ok; exit 5'"
    ));
    assert!(
        o.stdout.contains("/dev/pts/") && o.stdout.contains("tty-exec-ok"),
        "{}",
        o.describe()
    );
    assert_eq!(o.code, Some(5), "{}", o.describe());
}

/// `logs` has all the output, from the very first line, stdout and stderr.
fn s_logs(d: &Daemon) {
    let n = d.name("logs");
    d.run(
        &["-d", "--name", &n],
        &[
            "sh",
            "-c",
            "echo first-line; echo to-stderr >&2; for i in 1 2 3; do echo line-$i; done; sleep 1000",
        ],
    )
    .ok();
    let o = wait_for(Duration::from_secs(10), || {
        let o = d.docker(&["logs", &n]);
        o.stdout.contains("line-3").then_some(o)
    })
    .expect("logs never showed line-3");
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["first-line", "line-1", "line-2", "line-3"],
        "{}",
        o.describe()
    );
    assert_eq!(o.stderr.trim(), "to-stderr", "{}", o.describe());
}

/// `top` lists the container's processes and only them.
fn s_top(d: &Daemon) {
    let n = d.name("top");
    d.run(
        &["-d", "--name", &n],
        &["sh", "-c", "sleep 1000 & exec sleep 1001"],
    )
    .ok();
    let id = d.full_id(&n);
    let mut last = String::new();
    let rows = wait_for(Duration::from_secs(10), || {
        last = d.ok(&["top", &n]);
        let rows: Vec<(i32, String)> = last
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 8).then(|| (f[1].parse().unwrap_or(0), f[7..].join(" ")))
            })
            .collect();
        (rows.len() >= 2).then_some(rows)
    })
    .unwrap_or_else(|| panic!("top never showed both sleeps:\n{last}"));
    let mut cmds: Vec<&str> = rows.iter().map(|(_, c)| c.as_str()).collect();
    cmds.sort();
    assert_eq!(cmds, ["sleep 1000", "sleep 1001"], "top:\n{last}");
    for (pid, cmd) in &rows {
        assert_eq!(&cmdline(*pid), cmd, "top's pid {pid}");
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        assert!(
            cg.contains(&format!("/docker/{id}")),
            "pid {pid} is not in the container's cgroup:\n{cg}"
        );
    }
}

/// "608KiB / 100MiB" -> (bytes, "100MiB")
fn mem_usage(s: &str) -> (f64, String) {
    let (used, limit) = s
        .split_once(" / ")
        .unwrap_or_else(|| panic!("MemUsage {s:?}"));
    let num: String = used
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = &used[num.len()..];
    let mult = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("MemUsage unit {unit:?} in {s:?}"),
    };
    (num.parse::<f64>().unwrap() * mult, limit.to_string())
}

#[track_caller]
fn stats(d: &Daemon, n: &str) -> serde_json::Value {
    let o = d.ok(&["stats", "--no-stream", "--format", "{{json .}}", n]);
    serde_json::from_str(o.trim()).unwrap_or_else(|e| panic!("stats {o:?}: {e}"))
}

/// `stats` reports each container's own cgroup: its limit, its usage, its
/// processes.
fn s_stats(d: &Daemon) {
    let idle = d.name("idle");
    d.run(
        &["-d", "--name", &idle, "--memory", "100m"],
        &["sleep", "1000"],
    )
    .ok();
    // dd holds its 48 MiB buffer, blocked writing into a pipe nobody reads.
    let hog = d.name("hog");
    d.run(
        &["-d", "--name", &hog, "--memory", "200m"],
        &["sh", "-c", "dd if=/dev/zero bs=48M count=1 | sleep 1000"],
    )
    .ok();
    let mut last = serde_json::Value::Null;
    let hog_used = wait_for(Duration::from_secs(20), || {
        last = stats(d, &hog);
        let (used, _) = mem_usage(last["MemUsage"].as_str().unwrap_or_default());
        (used >= 40.0 * 1048576.0).then_some(used)
    })
    .unwrap_or_else(|| panic!("the hog's usage never reached 40MiB: {last}"));
    assert_eq!(
        mem_usage(last["MemUsage"].as_str().unwrap()).1,
        "200MiB",
        "{last}"
    );
    let pids: u32 = last["PIDs"].as_str().unwrap_or("0").parse().unwrap_or(0);
    assert!((2..=5).contains(&pids), "hog PIDs: {last}");

    let s = stats(d, &idle);
    let (used, limit) = mem_usage(s["MemUsage"].as_str().unwrap_or_default());
    assert_eq!(limit, "100MiB", "{s}");
    assert!(
        used < hog_used / 2.0,
        "idle usage {used} vs hog {hog_used}: {s}"
    );
    let pids: u32 = s["PIDs"].as_str().unwrap_or("0").parse().unwrap_or(0);
    assert!((1..=3).contains(&pids), "idle PIDs: {s}");
    // The limit is on the cgroup Docker asked for (cgroupsPath /docker/ID).
    let id = d.full_id(&idle);
    let v1 = format!("/sys/fs/cgroup/memory/docker/{id}/memory.limit_in_bytes");
    let v2 = format!("/sys/fs/cgroup/docker/{id}/memory.max");
    let limit = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .unwrap_or_else(|e| panic!("{v1} / {v2}: {e}"));
    assert_eq!(limit.trim(), "104857600");
}

/// A 100 MiB buffer under `--memory 64m` is OOM-killed; 10 MiB is fine.
fn s_oom(d: &Daemon) {
    let ok = d.name("fits");
    let o = d.run(
        &["--name", &ok, "--memory", "64m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=10M", "count=1"],
    );
    assert_eq!(o.code, Some(0), "{}", o.describe());
    assert_eq!(d.inspect(&ok, "{{.State.OOMKilled}}"), "false");
    let n = d.name("oom");
    let o = d.run(
        &["--name", &n, "--memory", "64m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
    );
    assert_eq!(o.code, Some(137), "{}", o.describe());
    assert_eq!(
        d.inspect(&n, "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
}

fn read_counter(f: &Path) -> u64 {
    std::fs::read_to_string(f)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `pause` freezes the container's processes; `unpause` lets them go on.
fn s_pause(d: &Daemon) {
    let host = d.dir.join(unique("pause"));
    std::fs::create_dir_all(&host).unwrap();
    let f = host.join("n");
    let n = d.name("pause");
    d.run(
        &["-d", "--name", &n, "-v", &format!("{}:/data", host.display())],
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /data/n.tmp; mv /data/n.tmp /data/n; sleep 0.1; done",
        ],
    )
    .ok();
    assert!(
        wait_for(Duration::from_secs(10), || (read_counter(&f) >= 3)
            .then_some(()))
        .is_some(),
        "the counter does not count"
    );
    d.ok(&["pause", &n]);
    assert_eq!(
        d.inspect(&n, "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    let a = read_counter(&f);
    std::thread::sleep(Duration::from_secs(1));
    let b = read_counter(&f);
    assert_eq!(a, b, "the counter advanced while paused");
    d.ok(&["unpause", &n]);
    assert_eq!(
        d.inspect(&n, "{{.State.Status}} {{.State.Paused}}"),
        "running false"
    );
    assert!(
        wait_for(Duration::from_secs(10), || (read_counter(&f) > b + 2)
            .then_some(()))
        .is_some(),
        "the counter stayed at {} after unpause",
        read_counter(&f)
    );
}

/// Bind mounts rw and ro; a read-only rootfs with a writable tmpfs.
fn s_volumes(d: &Daemon) {
    let host = d.dir.join(unique("vol"));
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "host-data\n").unwrap();
    let token = unique("written");
    let vol = format!("{}:/data", host.display());
    let o = d
        .run(
            &["--rm", "-v", &vol],
            &[
                "sh",
                "-c",
                &format!("cat /data/from-host; echo {token} > /data/out"),
            ],
        )
        .ok();
    assert_eq!(o, "host-data\n");
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap_or_default(),
        format!("{token}\n")
    );

    let o = d.run(
        &["--rm", "-v", &format!("{vol}:ro")],
        &["sh", "-c", "cat /data/from-host; echo x > /data/ro-write"],
    );
    assert_ne!(
        o.code,
        Some(0),
        "write to a :ro volume worked: {}",
        o.describe()
    );
    assert_eq!(o.stdout, "host-data\n", "{}", o.describe());
    assert!(
        o.stderr.contains("Read-only file system"),
        "{}",
        o.describe()
    );
    assert!(!host.join("ro-write").exists());

    let o = d.run(
        &["--rm", "--read-only"],
        &["sh", "-c", "echo x > /rootfile"],
    );
    assert_ne!(
        o.code,
        Some(0),
        "write to a --read-only rootfs worked: {}",
        o.describe()
    );
    assert!(
        o.stderr.contains("Read-only file system"),
        "{}",
        o.describe()
    );
    let o = d
        .run(
            &["--rm", "--read-only", "--tmpfs", "/tmp"],
            &[
                "sh",
                "-c",
                "echo y > /tmp/t && cat /tmp/t && grep ' /tmp ' /proc/mounts",
            ],
        )
        .ok();
    assert!(
        o.starts_with("y\n") && o.contains("tmpfs /tmp tmpfs"),
        "{o}"
    );
}

/// `--user` sets the ids; `--cap-drop ALL` leaves no capability (and takes
/// CAP_CHOWN's power away from root).
fn s_user_caps(d: &Daemon) {
    let o = d.run(&["--rm", "--user", "1000:1000"], &["id"]).ok();
    assert!(o.starts_with("uid=1000 gid=1000"), "{o}");
    let chown = "touch /f && chown 1:1 /f && echo chowned";
    let caps = "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status";
    let o = d
        .run(&["--rm"], &["sh", "-c", &format!("{caps}; {chown}")])
        .ok();
    assert!(o.contains("chowned"), "root could not chown: {o}");
    assert!(!o.contains("CapEff:\t0000000000000000"), "{o}");
    let o = d.run(
        &["--rm", "--cap-drop", "ALL"],
        &["sh", "-c", &format!("{caps}; {chown}")],
    );
    let zero: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("Cap") && l.ends_with("0000000000000000"))
        .collect();
    assert_eq!(zero.len(), 3, "{}", o.describe());
    assert!(
        !o.stdout.contains("chowned"),
        "chown worked: {}",
        o.describe()
    );
    assert!(
        o.stderr.contains("Operation not permitted"),
        "{}",
        o.describe()
    );
}

/// `--network none`: a network namespace of its own with only lo.
fn s_network_none(d: &Daemon) {
    let o = d
        .run(
            &["--rm", "--network", "none"],
            &["sh", "-c", "readlink /proc/self/ns/net; ip -o link"],
        )
        .ok();
    let mut lines = o.lines();
    let ns = lines.next().unwrap_or_default();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(ns.starts_with("net:[") && Path::new(ns) != host, "{o}");
    let links: Vec<&str> = lines
        .filter_map(|l| l.split(':').nth(1).map(str::trim))
        .collect();
    assert_eq!(links, ["lo"], "{o}");
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = ("127.0.0.1", port);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()?
        .next()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    r.starts_with("HTTP/1.").then_some(r)
}

/// The default bridge, and a port published on 127.0.0.1 reaching busybox
/// httpd.
fn s_bridge_port(d: &Daemon) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = unique("served");
    let n = d.name("web");
    d.run(
        &["-d", "--name", &n, "-p", &format!("127.0.0.1:{port}:80")],
        &[
            "sh",
            "-c",
            &format!(
                "mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 80 -h /www"
            ),
        ],
    )
    .ok();
    let ip = d.inspect(&n, "{{.NetworkSettings.IPAddress}}");
    assert!(ip.starts_with("172."), "bridge address {ip:?}");
    let eth0 = d.ok(&["exec", &n, "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(eth0.contains(&format!("inet {ip}/")), "{eth0}");
    let mut last = None;
    let got = wait_for(Duration::from_secs(20), || {
        last = http_get(port, "/index.html");
        last.as_ref().filter(|r| r.contains(&token)).cloned()
    });
    let r = got.unwrap_or_else(|| panic!("GET 127.0.0.1:{port}/index.html: {last:?}"));
    assert!(r.starts_with("HTTP/1.") && r.contains(" 200 "), "{r}");
}

fn ns_links(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| l.contains(":["))
        .map(str::to_string)
        .collect()
}

fn host_ns(kinds: &[&str]) -> Vec<String> {
    kinds
        .iter()
        .map(|k| {
            std::fs::read_link(format!("/proc/self/ns/{k}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// `--network/--ipc/--pid container:X` join X's namespaces, not the host's.
fn s_join(d: &Daemon) {
    let x = d.name("donor");
    d.run(
        &["-d", "--name", &x, "--ipc", "shareable"],
        &["sleep", "1000"],
    )
    .ok();
    let probe = "for n in net ipc pid; do readlink /proc/self/ns/$n; done; ip -o -4 addr show eth0";
    let xo = d.ok(&["exec", &x, "sh", "-c", probe]);
    let c = format!("container:{x}");
    if d.rt.args.iter().any(|a| a == "--userns=auto") {
        // A container in a user namespace of its own cannot join namespaces
        // made outside it: refused, saying so (docs/security.md).
        let out = d.run(
            &["--rm", "--network", &c, "--ipc", &c, "--pid", &c],
            &["true"],
        );
        assert_eq!(out.code, Some(125), "{}", out.describe());
        assert!(
            out.stderr
                .contains("--userns=auto: linux.namespaces joins the"),
            "{}",
            out.describe()
        );
        return;
    }
    let jo = d
        .run(
            &["--rm", "--network", &c, "--ipc", &c, "--pid", &c],
            &["sh", "-c", &format!("{probe}; echo ---; ps")],
        )
        .ok();
    let (jns, ps) = jo.split_once("---\n").unwrap_or((&jo, ""));
    let host = host_ns(&["net", "ipc", "pid"]);
    assert_eq!(ns_links(&xo).len(), 3, "{xo}");
    assert_eq!(ns_links(jns), ns_links(&xo), "joiner vs donor namespaces");
    for (mine, h) in ns_links(jns).iter().zip(&host) {
        assert_ne!(mine, h, "the joiner is in the host's namespace");
    }
    let ip = |s: &str| {
        s.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .map(str::to_string)
    };
    assert!(ip(&xo).is_some(), "{xo}");
    assert_eq!(ip(jns), ip(&xo), "joiner vs donor address");
    // ps: X's sleep as pid 1, the joiner's shell and ps, nothing else.
    let procs: Vec<(String, String)> = ps
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| (f[0].to_string(), f[2..].join(" ")))
        })
        .collect();
    assert!(
        procs.iter().any(|(p, c)| p == "1" && c == "sleep 1000"),
        "the donor's sleep is not pid 1 in the joiner:\n{ps}"
    );
    for (pid, c) in &procs {
        // (busybox sh runs ps in a fork of itself: "{ps} sh -c for n...")
        assert!(
            c == "sleep 1000" || c.contains("sh -c for n in net ipc pid") || c == "ps",
            "pid {pid} ({c}) is not the containers':\n{ps}"
        );
    }
}

/// `--init` puts docker-init (tini) first; `--restart on-failure:2` runs a
/// failing command again, twice.
fn s_init_restart(d: &Daemon) {
    let o = d
        .run(
            &["--rm", "--init"],
            &[
                "sh",
                "-c",
                "tr '\\0' ' ' < /proc/1/cmdline; echo; echo sh-pid=$$; echo cmd-ran",
            ],
        )
        .ok();
    let mut lines = o.lines();
    let pid1 = lines.next().unwrap_or_default();
    assert!(pid1.starts_with("/sbin/docker-init -- sh -c"), "{o}");
    assert!(!o.contains("sh-pid=1\n") && o.contains("cmd-ran"), "{o}");

    let n = d.name("restart");
    d.run(
        &["-d", "--name", &n, "--restart", "on-failure:2"],
        &["sh", "-c", "echo ran; exit 1"],
    )
    .ok();
    let mut last = String::new();
    let done = wait_for(Duration::from_secs(30), || {
        last = d.inspect(
            &n,
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
        );
        (last == "2 exited 1").then_some(())
    });
    assert!(done.is_some(), "RestartCount/Status/ExitCode: {last}");
    let logs = d.ok(&["logs", &n]);
    assert_eq!(logs.matches("ran").count(), 3, "{logs}");
}

/// 20 containers started at once all run, then all go.
fn s_many(d: &Daemon) {
    let prefix = unique("many");
    let names: Vec<String> = (0..20)
        .map(|i| {
            let n = format!("{prefix}-{i}");
            d.names.lock().unwrap().push(n.clone());
            n
        })
        .collect();
    let outs: Vec<Result<Out, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = names
            .iter()
            .map(|n| {
                s.spawn(move || {
                    catch_unwind(AssertUnwindSafe(|| {
                        d.run(&["-d", "--name", n], &["sleep", "1000"])
                    }))
                    .map_err(panic_text)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in outs {
        o.unwrap_or_else(|e| panic!("{e}")).ok();
    }
    let mut args = vec!["inspect", "-f", "{{.State.Running}} {{.State.Pid}}"];
    args.extend(names.iter().map(String::as_str));
    let st = d.ok(&args);
    let pids: BTreeSet<i32> = st
        .lines()
        .map(|l| {
            assert!(l.starts_with("true "), "not running: {st}");
            l[5..].parse().unwrap()
        })
        .collect();
    assert_eq!(pids.len(), 20, "{st}");
    assert!(pids.iter().all(|p| pid_alive(*p)), "{st}");
    let filter = format!("name={prefix}-");
    assert_eq!(d.ok(&["ps", "-q", "--filter", &filter]).lines().count(), 20);
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    d.docker_t(&args, Duration::from_secs(120)).ok();
    let left = d.ok(&["ps", "-aq", "--filter", &filter]);
    assert_eq!(left.trim(), "", "containers left");
    assert!(
        wait_for(Duration::from_secs(10), || pids
            .iter()
            .all(|p| !pid_alive(*p))
            .then_some(()))
        .is_some(),
        "processes of removed containers still run"
    );
}

/// After everything: no container in the runtime's state, no mount, no
/// cgroup, no shim or runtime process left.
fn s_leftovers(d: &Daemon) {
    let left = d.ok(&["ps", "-aq"]);
    assert_eq!(left.trim(), "", "containers left");
    let check = || -> Vec<String> {
        let mut problems = Vec::new();
        let root = d.runtime_root();
        if root.exists() {
            let mut c = Command::new(&d.rt.binary);
            c.arg("--root").arg(&root).args(["list", "-q"]);
            let o = bounded(c, Duration::from_secs(20));
            if o.code != Some(0) || !o.stdout.trim().is_empty() {
                problems.push(format!("runtime state: {}", o.describe()));
            }
        }
        let data_root_bind = format!(" {} {} ", d.data.display(), d.data.display());
        let mounts: Vec<String> = mountinfo_mentioning(&d.dir)
            .into_iter()
            .filter(|l| !d.mounts_before.contains(l) && !l.contains(&data_root_bind))
            .collect();
        if !mounts.is_empty() {
            problems.push(format!("mounts:\n{}", mounts.join("\n")));
        }
        let cgs = d.container_cgroups();
        if !cgs.is_empty() {
            problems.push(format!("cgroups: {cgs:?}"));
        }
        let procs = d.leftover_processes(d.rt.path.is_some());
        if !procs.is_empty() {
            problems.push(format!("processes: {procs:?}"));
        }
        problems
    };
    let mut problems = Vec::new();
    let clean = wait_for(Duration::from_secs(10), || {
        problems = check();
        problems.is_empty().then_some(())
    });
    assert!(clean.is_some(), "left behind:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// The driver.

type Scenario = fn(&Daemon);

const SCENARIOS: &[(&str, Scenario)] = &[
    ("1 run: output, exit code", s_run),
    ("2 stop -t 2, kill", s_stop_kill),
    ("3 exec, exec -it", s_exec),
    ("4 logs", s_logs),
    ("5 top", s_top),
    ("6 stats", s_stats),
    ("7 OOM kill", s_oom),
    ("8 pause/unpause", s_pause),
    ("9 volumes, --read-only", s_volumes),
    ("10 --user, --cap-drop", s_user_caps),
    ("11 --network none", s_network_none),
    ("12 bridge, -p", s_bridge_port),
    ("13 container: net/ipc/pid", s_join),
    ("14 --init, --restart", s_init_restart),
    ("15 20 at once", s_many),
    ("16 no leftovers", s_leftovers),
];

thread_local! {
    /// Where this thread last panicked (the quiet hook records it).
    static PANIC_AT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Scenario failures are caught and tabulated: instead of printing each
/// panic (and a backtrace), remember where it happened.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        PANIC_AT.with(|p| *p.borrow_mut() = at);
    }));
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    let at = PANIC_AT.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if at.is_empty() {
        msg
    } else {
        format!("{msg}\n(at {at})")
    }
}

type Results = Vec<Result<Duration, String>>;

fn run_runtime(rt: &Runtime) -> Results {
    let started = Instant::now();
    let d = Daemon::new(rt);
    let mut results: Results = Vec::new();
    if let Err(e) = catch_unwind(AssertUnwindSafe(|| d.start())) {
        let msg = format!("dockerd/image setup failed: {}", panic_text(e));
        return SCENARIOS.iter().map(|_| Err(msg.clone())).collect();
    }
    for (i, (name, f)) in SCENARIOS.iter().enumerate() {
        let last = i + 1 == SCENARIOS.len();
        if !last && started.elapsed() > RUNTIME_BUDGET {
            results.push(Err(format!(
                "not run: the runtime's {RUNTIME_BUDGET:?} budget is used up"
            )));
            continue;
        }
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| f(&d)));
        d.remove_named();
        let r = r.map(|_| t.elapsed()).map_err(panic_text);
        let _ = writeln!(
            std::io::stderr(),
            "docker test [{}] {name}: {}",
            rt.name,
            match &r {
                Ok(el) => format!("ok ({:.1}s)", el.as_secs_f64()),
                Err(_) => "FAILED".into(),
            }
        );
        results.push(r);
    }
    drop(d);
    let _ = writeln!(
        std::io::stderr(),
        "docker test [{}]: {:.0}s in all",
        rt.name,
        started.elapsed().as_secs_f64()
    );
    results
}

fn table(rts: &[Runtime], results: &[Results]) -> String {
    let w = SCENARIOS.iter().map(|(n, _)| n.len()).max().unwrap_or(10);
    let mut t = format!("\n{:w$}", "scenario");
    for rt in rts {
        t += &format!(" | {:12}", rt.name);
    }
    t += "\n";
    for (i, (name, _)) in SCENARIOS.iter().enumerate() {
        t += &format!("{name:w$}");
        for r in results {
            let cell = match &r[i] {
                Ok(el) => format!("ok {:.1}s", el.as_secs_f64()),
                Err(e) if e.starts_with("not run") => "NOT RUN".into(),
                Err(_) => "FAIL".into(),
            };
            t += &format!(" | {cell:12}");
        }
        t += "\n";
    }
    let mut details = String::new();
    for (rt, r) in rts.iter().zip(results) {
        for (i, res) in r.iter().enumerate() {
            if let Err(e) = res {
                let e: String = e.chars().take(2000).collect();
                details += &format!(
                    "\n[{}] {}:\n  {}\n",
                    rt.name,
                    SCENARIOS[i].0,
                    e.replace('\n', "\n  ")
                );
            }
        }
    }
    if !details.is_empty() {
        t += "\nfailures:";
        t += &details;
    }
    t
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn docker_drives_each_runtime() {
    // Printed past the test harness's capture: a skip must be seen.
    let say = |m: &str| {
        let _ = writeln!(std::io::stderr(), "docker test: {m}");
    };
    if !nix::unistd::geteuid().is_root() {
        say("SKIPPED: needs root");
        return;
    }
    for p in [DOCKER, DOCKERD] {
        if !Path::new(p).exists() {
            say(&format!(
                "SKIPPED: {p} is missing (apt-get install docker.io; scripts/install-deps.sh does)"
            ));
            return;
        }
    }
    let rts = runtimes();
    if Path::new(SYSTEM_CONTAINERD).exists() {
        say(&format!(
            "{SYSTEM_CONTAINERD} exists: dockerd uses that containerd (in a private namespace)"
        ));
    }
    quiet_panics();
    let results: Vec<Results> = rts.iter().map(run_runtime).collect();
    let _ = std::panic::take_hook();
    let t = table(&rts, &results);
    let _ = writeln!(std::io::stderr(), "{t}");
    let failed: Vec<String> = rts
        .iter()
        .zip(&results)
        .flat_map(|(rt, r)| {
            r.iter()
                .zip(SCENARIOS)
                .filter(|(res, _)| res.is_err())
                .map(move |(_, (name, _))| format!("[{}] {name}", rt.name))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} scenario(s) failed (details in the table above): {}",
        failed.len(),
        failed.join(", ")
    );
}
