//! The real clients drive husk: podman (through conmon) and containerd's runc
//! shim (through ctr), with private state directories, doing what users do.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn out_str(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err_str(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn check(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}\n{}",
        o.status,
        err_str(o),
        out_str(o)
    );
    out_str(o)
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// Run `shell_cmd` under script(1) so it gets a pty, like a person at a
/// terminal.
fn under_pty(shell_cmd: &str, limit: Duration) -> Output {
    let mut c = Command::new("script");
    c.args(["-qec", shell_cmd, "/dev/null"]);
    c.stdin(Stdio::null());
    run_bounded(c, limit)
}

/// A wrapper that pins husk's --root for clients that pass none (podman).
fn husk_wrapper(dir: &Path, root: &Path) -> PathBuf {
    let w = dir.join("husk");
    std::fs::write(
        &w,
        format!("#!/bin/sh\nexec {HUSK} --root {} \"$@\"\n", root.display()),
    )
    .unwrap();
    std::fs::set_permissions(&w, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    w
}

/// A tar of a busybox rootfs.
fn rootfs_tar(env: &Env) -> PathBuf {
    let b = Bundle::new(&env.dir.join("image-src"));
    let tar = env.dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(b.rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

struct Podman {
    dir: PathBuf,
    conf: PathBuf,
    storage_conf: PathBuf,
    image: String,
}

impl Podman {
    fn new(env: &Env) -> Podman {
        let dir = env.dir.join("podman");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let wrapper = husk_wrapper(&env.dir, &env.root);
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            format!(
                r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{dir}/events.log"
runtime = "husk"
runtime_supports_json = ["husk", "crun", "runc"]
[engine.runtimes]
husk = ["{wrapper}"]
"#,
                dir = dir.display(),
                wrapper = wrapper.display()
            ),
        )
        .unwrap();
        let storage_conf = dir.join("storage.conf");
        std::fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let p = Podman {
            dir,
            conf,
            storage_conf,
            image: format!("localhost/husk-bb:{}", unique("t")),
        };
        let tar = rootfs_tar(env);
        check(
            &p.run(&["import", tar.to_str().unwrap(), &p.image]),
            "podman import",
        );
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--runtime")
            .arg("husk")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run_bounded(self.cmd(args), Duration::from_secs(60))
    }

    /// The same invocation as a shell command line (for script(1)).
    fn shell(&self, args: &str) -> String {
        format!(
            "CONTAINERS_CONF={} CONTAINERS_STORAGE_CONF={} podman --root {} --runroot {} --tmpdir {} --storage-driver vfs --runtime husk {args}",
            self.conf.display(),
            self.storage_conf.display(),
            self.dir.join("root").display(),
            self.dir.join("runroot").display(),
            self.dir.join("tmp").display(),
        )
    }

    fn status(&self, name: &str) -> String {
        out_str(&self.run(&["inspect", "-f", "{{.State.Status}}", name]))
            .trim()
            .to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["rmi", "-af"]);
        // podman's cgroupfs parent; removed only once empty.
        remove_empty_cgroup_parent("libpod_parent");
    }
}

/// rmdir a parent cgroup a client made in every hierarchy, if it is empty.
fn remove_empty_cgroup_parent(name: &str) {
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for ent in rd.flatten() {
            let _ = std::fs::remove_dir(ent.path().join(name));
        }
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn podman_runs_containers_with_husk() {
    require_root();
    assert!(
        which("podman").is_some(),
        "podman is not installed (.ci/run installs it)"
    );
    let env = Env::new("podman");
    let p = Podman::new(&env);
    let img = p.image.clone();

    let o = p.run(&["run", "--rm", "--network", "none", &img, "echo", "hi"]);
    assert_eq!(check(&o, "podman run echo"), "hi\n");

    let o = p.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &img,
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", err_str(&o));

    // A failure inside husk reaches podman's error through the JSON log.
    let o = p.run(&["run", "--rm", "--network", "none", &img, "/no/such/program"]);
    assert!(!o.status.success());
    assert!(err_str(&o).contains("/no/such/program"), "{}", err_str(&o));

    let name = unique("pd");
    check(
        &p.run(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            &img,
            "sleep",
            "1000",
        ]),
        "podman run -d",
    );
    assert_eq!(p.status(&name), "running");
    // `top` lists the container's processes and nothing else (podman reads
    // the /proc of the mount namespace of the container's pid).
    let top = check(&p.run(&["top", &name, "pid", "args"]), "podman top");
    let rows: Vec<&str> = top.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "podman top: {top}");
    assert!(rows[0].contains("sleep 1000"), "podman top: {top}");
    // `stats` reads the container's own cgroup: its processes, its memory.
    let stats = check(
        &p.run(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.PIDs}} {{.MemUsage}} {{.CPUPerc}}",
            &name,
        ]),
        "podman stats",
    );
    let f: Vec<&str> = stats.split_whitespace().collect();
    let pids: u32 = f[0].parse().unwrap_or(0);
    assert!((1..=3).contains(&pids), "podman stats: {stats}");
    let used = f[1];
    assert!(
        used.ends_with("kB")
            || (used.ends_with("MB")
                && used.trim_end_matches("MB").parse::<f64>().unwrap_or(1e9) < 50.0),
        "an idle sleep uses little memory: {stats}"
    );
    let cpu: f64 = f
        .last()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap_or(1e9);
    assert!(cpu < 50.0, "an idle sleep uses no CPU: {stats}");
    let o = p.run(&["exec", &name, "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", err_str(&o));
    assert_eq!(out_str(&o), "in-exec\n");

    let o = under_pty(
        // (The sleep: see `run -it` below.)
        &p.shell(&format!(
            "exec -it {name} sh -c 'sleep 0.3; tty; echo tty-exec-ok'"
        )),
        Duration::from_secs(60),
    );
    let text = out_str(&o);
    assert!(
        text.contains("/dev/pts/") && text.contains("tty-exec-ok"),
        "{text}"
    );

    check(&p.run(&["pause", &name]), "podman pause");
    assert_eq!(p.status(&name), "paused");
    check(&p.run(&["unpause", &name]), "podman unpause");
    assert_eq!(p.status(&name), "running");

    // sleep as pid 1 has no SIGTERM handler: stop falls back to SIGKILL
    // after the timeout, as with runc.
    let t = Instant::now();
    check(&p.run(&["stop", "-t", "2", &name]), "podman stop");
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(p.status(&name), "exited");
    check(&p.run(&["rm", &name]), "podman rm");

    // The short sleep: podman connects to conmon's attach socket before
    // `start`, but conmon may only accept it after handling the console's
    // first output, which a container started in a few milliseconds can
    // already have written (it is then only in the container's log). runc
    // starts slowly enough to hide that race.
    let o = under_pty(
        &p.shell(&format!(
            "run -it --rm --network none {img} sh -c 'sleep 0.3; tty; echo tty-run-ok'"
        )),
        Duration::from_secs(60),
    );
    let text = out_str(&o);
    assert!(
        text.contains("/dev/pts/") && text.contains("tty-run-ok"),
        "{text}"
    );

    let left = out_str(&p.run(&["ps", "-aq"]));
    assert_eq!(left.trim(), "", "containers left: {left}");
}

/// A containerd daemon of our own: private config, root, state and socket.
struct Containerd {
    dir: PathBuf,
    child: std::process::Child,
    ns: String,
}

impl Containerd {
    fn start(env: &Env) -> Containerd {
        let dir = env.dir.join("containerd");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable = true
"#,
                d = dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            dir,
            child,
            ns: unique("husk"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(&self.ns)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        run_bounded(self.cmd(args), Duration::from_secs(60))
    }

    fn shell(&self, args: &str) -> String {
        format!(
            "ctr --address {} --namespace {} {args}",
            self.socket().display(),
            self.ns
        )
    }

    fn task_status(&self, id: &str) -> String {
        let ls = out_str(&self.ctr(&["task", "ls"]));
        ls.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("absent")
            .to_string()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let ls = out_str(&self.ctr(&["task", "ls", "-q"]));
        for id in ls.lines() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
            let _ = self.ctr(&["task", "rm", "-f", id]);
        }
        let cs = out_str(&self.ctr(&["container", "ls", "-q"]));
        for id in cs.lines() {
            let _ = self.ctr(&["container", "rm", id]);
        }
        let ims = out_str(&self.ctr(&["image", "ls", "-q"]));
        for im in ims.lines() {
            let _ = self.ctr(&["image", "rm", im]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(format!("/run/containerd/runc/{}", self.ns));
        // containerd's default cgroupsPath is /<namespace>/<id>.
        remove_empty_cgroup_parent(&self.ns);
    }
}

fn sha256_file(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// An OCI image archive (image layout in a tar) with one layer: the rootfs.
fn oci_archive(env: &Env, name: &str) -> PathBuf {
    let layer = rootfs_tar(env);
    let layout = env.dir.join("oci-layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let tmp = layout.join("blob.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        let d = sha256_file(&tmp);
        std::fs::rename(&tmp, blobs.join(&d)).unwrap();
        (d, bytes.len())
    };
    let layer_bytes = std::fs::read(&layer).unwrap();
    let (layer_d, layer_n) = put(&layer_bytes);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_d}")]}
    });
    let (cfg_d, cfg_n) = put(serde_json::to_vec(&config).unwrap().as_slice());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cfg_d}"), "size": cfg_n},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_d}"), "size": layer_n}]
    });
    let (man_d, man_n) = put(serde_json::to_vec(&manifest).unwrap().as_slice());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{man_d}"), "size": man_n,
            "annotations": {"org.opencontainers.image.ref.name": name, "io.containerd.image.name": name}}]
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = env.dir.join("image-oci.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .unwrap();
    assert!(st.success());
    archive
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn containerd_runs_containers_with_husk() {
    require_root();
    assert!(
        which("containerd").is_some(),
        "containerd is not installed (.ci/run installs it)"
    );
    let env = Env::new("ctrd");
    let ctd = Containerd::start(&env);
    let image = format!("localhost/husk-bb:{}", unique("t"));
    let archive = oci_archive(&env, &image);
    check(
        &ctd.ctr(&["image", "import", archive.to_str().unwrap()]),
        "ctr image import",
    );
    let rb = ["--runc-binary", HUSK];

    let id = unique("c");
    let o = ctd.ctr(&["run", "--rm", rb[0], rb[1], &image, &id, "echo", "hi"]);
    assert_eq!(check(&o, "ctr run echo"), "hi\n");

    let id = unique("c");
    check(
        &ctd.ctr(&["run", "-d", rb[0], rb[1], &image, &id, "sleep", "1000"]),
        "ctr run -d",
    );
    assert_eq!(ctd.task_status(&id), "RUNNING");
    let o = ctd.ctr(&["task", "exec", "--exec-id", "e1", &id, "echo", "in-exec"]);
    assert_eq!(check(&o, "ctr task exec"), "in-exec\n");
    let o = ctd.ctr(&["task", "exec", "--exec-id", "e2", &id, "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{}", err_str(&o));
    let o = under_pty(
        &ctd.shell(&format!(
            "task exec -t --exec-id e3 {id} sh -c 'tty; echo tty-exec-ok'"
        )),
        Duration::from_secs(60),
    );
    assert!(out_str(&o).contains("tty-exec-ok"), "{}", out_str(&o));

    let ps = check(&ctd.ctr(&["task", "ps", &id]), "ctr task ps");
    let pid_line = ps.lines().nth(1).unwrap_or_default();
    let pid: i32 = pid_line.split_whitespace().next().unwrap().parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");

    check(&ctd.ctr(&["task", "pause", &id]), "ctr task pause");
    assert_eq!(ctd.task_status(&id), "PAUSED");
    check(&ctd.ctr(&["task", "resume", &id]), "ctr task resume");
    assert_eq!(ctd.task_status(&id), "RUNNING");

    // SIGTERM to a pid 1 without a handler is ignored; KILL is not.
    check(&ctd.ctr(&["task", "kill", &id]), "ctr task kill");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ctd.task_status(&id), "RUNNING");
    check(
        &ctd.ctr(&["task", "kill", "-s", "KILL", &id]),
        "ctr task kill -s KILL",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctd.task_status(&id) != "STOPPED" {
        assert!(Instant::now() < deadline, "task did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    check(&ctd.ctr(&["task", "rm", &id]), "ctr task rm");
    check(&ctd.ctr(&["container", "rm", &id]), "ctr container rm");

    let id = unique("c");
    let o = under_pty(
        &ctd.shell(&format!(
            "run -t --rm --runc-binary {HUSK} {image} {id} sh -c 'tty; echo tty-run-ok'"
        )),
        Duration::from_secs(60),
    );
    assert!(out_str(&o).contains("tty-run-ok"), "{}", out_str(&o));

    assert_eq!(out_str(&ctd.ctr(&["task", "ls", "-q"])).trim(), "");
    // husk's state for this namespace is gone: every container was deleted.
    let root = PathBuf::from(format!("/run/containerd/runc/{}", ctd.ns));
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "husk state left: {left:?}");
}
