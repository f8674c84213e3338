//! A private containerd with the CRI plugin, for the CRI end-to-end test
//! and the pod-start benchmark: its own root, state, sockets and config,
//! bridge CNI from Debian's containernetworking-plugins in its own conf
//! dir, a pause and a busybox image built here and imported (no
//! registry), and three runtime handlers:
//!
//! - `husk`: husk's own shim (`io.containerd.husk.v2`, found on
//!   containerd's PATH as `containerd-shim-husk-v2`);
//! - `husk-runc-shim`: containerd's runc shim with husk as its binary;
//! - `runc`: containerd's runc shim with runc.
//!
//! Everything it makes goes away when the `Lab` is dropped, even after a
//! failure: pods, containerd, processes, mounts, cgroups, the bridge, the
//! shim sockets, the directory.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};

pub const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-husk-v2");
pub const HANDLERS: [&str; 3] = ["husk", "husk-runc-shim", "runc"];
pub const NS: &str = "k8s.io";
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:husk-cri";
pub const PAUSE_IMAGE: &str = "localhost/husk-cri-pause:1";
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Print past the test harness's capture: what is skipped must be seen.
pub fn say(m: &str) {
    let _ = writeln!(std::io::stderr(), "cri: {m}");
}

pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// The husk binary beside the shim (cargo builds both into one directory).
pub fn husk_binary() -> PathBuf {
    Path::new(SHIM).with_file_name("husk")
}

/// Why the lab cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    for p in [
        "containerd",
        "ctr",
        "containerd-shim-runc-v2",
        "runc",
        "tar",
    ] {
        if which(p).is_none() {
            return Some(format!(
                "{p} is missing (apt-get install containerd runc; scripts/install-deps.sh does)"
            ));
        }
    }
    for p in ["bridge", "host-local", "loopback"] {
        if !Path::new("/usr/lib/cni").join(p).is_file() {
            return Some(format!(
                "/usr/lib/cni/{p} is missing (apt-get install containernetworking-plugins; scripts/install-deps.sh does)"
            ));
        }
    }
    if !husk_binary().is_file() {
        return Some(format!(
            "{} is missing (cargo build -p husk; `cargo test --workspace` builds it)",
            husk_binary().display()
        ));
    }
    if !Path::new("/bin/busybox").is_file() {
        return Some("/bin/busybox is missing (apt-get install busybox-static)".into());
    }
    None
}

pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A CRI call bounded in time, its error as text.
pub async fn call<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Err(_) => Err(format!("{what}: no answer in {}s", CALL_TIMEOUT.as_secs())),
        Ok(Err(s)) => Err(format!("{what}: {:?}: {}", s.code(), s.message())),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

/// How to set the lab up.
#[derive(Debug, Clone, Copy, Default)]
pub struct LabOptions {
    /// husk's shim logs at debug level (with every call's duration).
    pub shim_debug: bool,
    /// Every runtime binary, shim `start` and CNI plugin runs under a
    /// wrapper that records when it ran (`times.log`), for the pod-start
    /// benchmark's breakdown; needs a C compiler.
    pub timed: bool,
}

pub struct Lab {
    pub dir: PathBuf,
    pub opts: LabOptions,
    /// The top of every pod's cgroup_parent (one directory per hierarchy).
    pub cgroup_top: String,
    pub bridge: String,
    containerd: Option<Child>,
    pub channel: Option<Channel>,
    /// Every sandbox made, for cleanup (their shim sockets).
    pub sandboxes: std::sync::Mutex<Vec<String>>,
    /// Other cgroup parents to remove (`ctr` puts containers in
    /// /<namespace>/<id>).
    pub extra_cgroups: std::sync::Mutex<Vec<String>>,
    pub keep: bool,
    pub pause_is_busybox: bool,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

impl Lab {
    pub fn sock(&self) -> PathBuf {
        self.dir.join("c.sock")
    }

    pub fn rt(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone().expect("connected"))
    }

    pub fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone().expect("connected"))
    }

    pub fn containerd_pid(&self) -> Option<u32> {
        self.containerd.as_ref().map(|c| c.id())
    }

    /// Make the directory, the images, the config; start containerd and
    /// connect. `tag` names the lab (bridge, cgroups).
    pub async fn start(tag: &str, opts: LabOptions) -> Result<Lab, String> {
        let id = format!("{tag}{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("husk-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut lab = Lab {
            dir,
            opts,
            cgroup_top: id.clone(),
            bridge: format!("hb{}", std::process::id() % 10_000_000),
            containerd: None,
            channel: None,
            sandboxes: Default::default(),
            extra_cgroups: Default::default(),
            keep: std::env::var_os("HUSK_CRI_KEEP").is_some(),
            pause_is_busybox: false,
        };
        lab.configure()?;
        lab.pause_is_busybox = build_images(&lab.dir)?;
        lab.start_containerd().await?;
        for tar in ["pause.tar", "busybox.tar"] {
            run(Command::new("ctr")
                .arg("--address")
                .arg(lab.sock())
                .args(["-n", NS, "images", "import"])
                .arg(lab.dir.join("images").join(tar)))?;
        }
        // The CRI learns of imported images from an event.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut img = lab.images();
            let list = call("ListImages", img.list_images(ListImagesRequest::default())).await?;
            let have = |n: &str| {
                list.images
                    .iter()
                    .any(|i| i.repo_tags.iter().any(|t| t == n))
            };
            if have(BUSYBOX_IMAGE) && have(PAUSE_IMAGE) {
                break;
            }
            if Instant::now() > deadline {
                return Err("the CRI does not list the imported images".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(lab)
    }

    fn configure(&self) -> Result<(), String> {
        let d = self.dir.display();
        let shim_debug = self.opts.shim_debug;
        let mut husk = husk_binary();
        let mut runc = which("runc").ok_or("runc is missing")?;
        let mut cni_bin = PathBuf::from("/usr/lib/cni");
        if self.opts.timed {
            let w = self.dir.join("wrap");
            std::fs::create_dir_all(w.join("cni")).map_err(|e| e.to_string())?;
            let log = self.dir.join("times.log");
            let runc_shim =
                which("containerd-shim-runc-v2").ok_or("containerd-shim-runc-v2 is missing")?;
            for (name, real, tag) in [
                ("husk", husk.clone(), "runtime"),
                ("runc", runc.clone(), "runtime"),
                ("containerd-shim-husk-v2", PathBuf::from(SHIM), "runtime"),
                ("containerd-shim-runc-v2", runc_shim, "runtime"),
                ("cni/bridge", PathBuf::from("/usr/lib/cni/bridge"), "cni"),
                (
                    "cni/loopback",
                    PathBuf::from("/usr/lib/cni/loopback"),
                    "cni",
                ),
            ] {
                timewrap(&w.join(name), &real, tag, &log)?;
            }
            // Called by bridge, which is timed already.
            let _ = std::os::unix::fs::symlink("/usr/lib/cni/host-local", w.join("cni/host-local"));
            // The shims' wrappers come first on containerd's PATH.
            husk = w.join("husk");
            runc = w.join("runc");
            cni_bin = w.join("cni");
        }
        for sub in ["cni", "root", "state", "logs"] {
            std::fs::create_dir_all(self.dir.join(sub)).map_err(|e| e.to_string())?;
        }
        write(
            &self.dir.join("husk-shim.toml"),
            &format!(
                "root = \"{d}/husk-state\"\nlog = \"{d}/husk-shim.log\"\ndebug = {shim_debug}\n"
            ),
        )?;
        write(
            &self.dir.join("config.toml"),
            &format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk]
      runtime_type = "io.containerd.husk.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk.options]
        TypeUrl = "io.containerd.husk.v1.Options"
        ConfigPath = "{d}/husk-shim.toml"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk-runc-shim]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk-runc-shim.options]
        BinaryName = "{husk}"
        Root = "{d}/husk-runc-root"
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{d}/runc-root"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{d}/cni"
    max_conf_num = 1
"#,
                husk = husk.display(),
                runc = runc.display(),
                cni_bin = cni_bin.display(),
            ),
        )?;
        // A bridge without gateway or NAT: no iptables rules to undo. The
        // CRI adds loopback itself.
        let subnet = format!(
            "10.{}.{}.0/24",
            200 + std::process::id() % 50,
            std::process::id() / 50 % 250
        );
        write(
            &self.dir.join("cni/10-husk-cri.conflist"),
            &json!({
                "cniVersion": "1.0.0",
                "name": format!("husk-cri-{}", std::process::id()),
                "plugins": [{
                    "type": "bridge", "bridge": self.bridge, "isGateway": false,
                    "ipMasq": false, "hairpinMode": false,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                             "dataDir": format!("{d}/cni-ipam")}
                }]
            })
            .to_string(),
        )?;
        Ok(())
    }

    async fn start_containerd(&mut self) -> Result<(), String> {
        let shim_dir = Path::new(SHIM).parent().ok_or("shim has no directory")?;
        // containerd looks for containerd-shim-<name>-v2 on its PATH.
        let mut path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            shim_dir.display()
        );
        if self.opts.timed {
            path = format!("{}:{path}", self.dir.join("wrap").display());
        }
        let log =
            std::fs::File::create(self.dir.join("containerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start containerd: {e}"))?;
        self.containerd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self
                .containerd
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "containerd exited ({st}); see {}",
                    self.dir.join("containerd.log").display()
                ));
            }
            if self.sock().exists() {
                if let Ok(ch) = connect(self.sock()).await {
                    let mut rt = RuntimeServiceClient::new(ch.clone());
                    if let Ok(st) = rt.status(StatusRequest { verbose: false }).await {
                        let ready = st
                            .into_inner()
                            .status
                            .is_some_and(|s| s.conditions.iter().all(|c| c.status));
                        if ready {
                            self.channel = Some(ch);
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return Err("containerd's CRI did not become ready in 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pod cgroup parent for a pod uid.
    pub fn cgroup_parent(&self, uid: &str) -> String {
        format!("/{}/pod{uid}", self.cgroup_top)
    }

    /// A pod's config. `share_pid`: one pid namespace for the pod.
    pub fn pod_config(&self, name: &str, share_pid: bool) -> PodSandboxConfig {
        let uid = format!("{name}-{}", unique());
        let pid = if share_pid {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Container
        };
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.dir.join("logs").join(&uid).display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent(&uid),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Pod as i32,
                        pid: pid as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A container's config (as the kubelet sends it).
    pub fn container_config(
        &self,
        name: &str,
        cmd: &[&str],
        memory_limit: i64,
        share_pid: bool,
    ) -> ContainerConfig {
        let pid = if share_pid {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Container
        };
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: BUSYBOX_IMAGE.into(),
                ..Default::default()
            }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    memory_limit_in_bytes: memory_limit,
                    ..Default::default()
                }),
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Pod as i32,
                        pid: pid as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    pub async fn run_pod(
        &self,
        handler: &str,
        config: &PodSandboxConfig,
    ) -> Result<String, String> {
        // The kubelet makes the pod's log directory.
        let _ = std::fs::create_dir_all(&config.log_directory);
        let mut rt = self.rt();
        let id = call(
            "RunPodSandbox",
            rt.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }),
        )
        .await?
        .pod_sandbox_id;
        self.sandboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.clone());
        Ok(id)
    }

    pub async fn create_start(
        &self,
        pod: &str,
        sandbox: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> Result<String, String> {
        let mut rt = self.rt();
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let id = call(
            &format!("CreateContainer {name}"),
            rt.create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(sandbox.clone()),
            }),
        )
        .await?
        .container_id;
        call(
            &format!("StartContainer {name}"),
            rt.start_container(StartContainerRequest {
                container_id: id.clone(),
            }),
        )
        .await?;
        Ok(id)
    }

    pub async fn status(&self, id: &str) -> Result<ContainerStatus, String> {
        let mut rt = self.rt();
        call(
            "ContainerStatus",
            rt.container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            }),
        )
        .await?
        .status
        .ok_or_else(|| "ContainerStatus: no status".into())
    }

    /// Wait until the container is in `state`.
    pub async fn wait_state(
        &self,
        id: &str,
        state: ContainerState,
        limit: Duration,
    ) -> Result<ContainerStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.status(id).await?;
            if s.state == state as i32 {
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "container {id} is in state {} after {}s, not {state:?} (exit {}, reason {:?})",
                    s.state,
                    limit.as_secs(),
                    s.exit_code,
                    s.reason
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop and remove a pod (its containers with it).
    pub async fn remove_pod(&self, id: &str) -> Result<(), String> {
        let mut rt = self.rt();
        call(
            "StopPodSandbox",
            rt.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        )
        .await?;
        call(
            "RemovePodSandbox",
            rt.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        )
        .await?;
        Ok(())
    }

    /// Remove every pod still there (cleanup after a failure).
    pub async fn remove_all_pods(&self) {
        let mut rt = self.rt();
        if let Ok(list) = call(
            "ListPodSandbox",
            rt.list_pod_sandbox(ListPodSandboxRequest::default()),
        )
        .await
        {
            for sb in list.items {
                // Its shim's socket is removed at the end, whatever happens.
                self.sandboxes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sb.id.clone());
                if let Err(e) = self.remove_pod(&sb.id).await {
                    say(&format!("cleanup of pod {}: {e}", sb.id));
                }
            }
        }
    }

    /// The cgroup.procs of cgroup path `rel` (memory hierarchy, or the
    /// unified one).
    fn procs_file(rel: &str) -> Option<PathBuf> {
        let rel = rel.trim_start_matches('/');
        [
            format!("/sys/fs/cgroup/memory/{rel}/cgroup.procs"),
            format!("/sys/fs/cgroup/unified/{rel}/cgroup.procs"),
            format!("/sys/fs/cgroup/{rel}/cgroup.procs"),
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    }

    /// The container's own process (not husk's boot or stand-ins) whose
    /// command line contains `marker`, as the host sees it.
    pub fn process_of(&self, uid: &str, container: &str, marker: &str) -> Result<i32, String> {
        let rel = format!("{}/{container}", self.cgroup_parent(uid));
        let file = Self::procs_file(&rel).ok_or_else(|| format!("no cgroup {rel}"))?;
        let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        text.lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .find(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                cmd.contains(marker) && !comm.starts_with("husk")
            })
            .ok_or_else(|| format!("no process {marker:?} in cgroup {rel}"))
    }

    /// What is left of the pods: processes, mounts, cgroups, network
    /// namespaces, runtime state, shim sockets. Waits (bounded) for things
    /// that go away on their own.
    pub fn leftovers(&self, uids: &[String], sandboxes: &[String]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.scan(uids, sandboxes);
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn scan(&self, uids: &[String], sandboxes: &[String]) -> Vec<String> {
        let mut left = Vec::new();
        let dir = self.dir.display().to_string();
        let me = std::process::id() as i32;
        let ctd = self.containerd_pid().map(|p| p as i32);
        for pid in pids() {
            if pid == me || Some(pid) == ctd {
                continue;
            }
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if cmd.contains(&dir) || cg.contains(&format!("/{}/", self.cgroup_top)) {
                left.push(format!("process {pid}: {}", cmd.trim()));
            }
        }
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            for l in mi.lines() {
                if let Some(mp) = l.split(' ').nth(4) {
                    if mp.starts_with(&dir) {
                        left.push(format!("mount {mp}"));
                    }
                }
            }
        }
        for uid in uids {
            for d in cgroup_dirs(&self.cgroup_parent(uid)) {
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.path().is_dir() {
                            left.push(format!("cgroup {}", e.path().display()));
                        }
                    }
                }
            }
        }
        for sub in [
            "state/io.containerd.grpc.v1.cri/netns".to_string(),
            format!("husk-state/{NS}"),
            format!("husk-runc-root/{NS}"),
            format!("runc-root/{NS}"),
        ] {
            if let Ok(rd) = std::fs::read_dir(self.dir.join(&sub)) {
                for e in rd.flatten() {
                    left.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        for sb in sandboxes {
            let s = self.shim_socket(sb);
            if s.exists() {
                left.push(format!("shim socket {} (pod {sb})", s.display()));
            }
        }
        left
    }

    /// The socket of the shim that serves pod `sandbox` (containerd's
    /// naming, for both shims).
    pub fn shim_socket(&self, sandbox: &str) -> PathBuf {
        let path = format!("{}/{NS}/{sandbox}", self.sock().display());
        let hash = Sha256::digest(path.as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        PathBuf::from(format!("/run/containerd/s/{hex}"))
    }

    /// Processes of the lab, by pid.
    pub fn lab_processes(&self) -> Vec<i32> {
        let dir = self.dir.display().to_string();
        pids()
            .into_iter()
            .filter(|&pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                String::from_utf8_lossy(&cmd).contains(&dir)
                    || cg.contains(&format!("/{}/", self.cgroup_top))
            })
            .filter(|&p| p != std::process::id() as i32)
            .collect()
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// The directory of cgroup path `rel` in every mounted hierarchy.
pub fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let mut out = Vec::new();
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        for l in mi.lines() {
            let (a, b) = l.split_once(" - ").unwrap_or((l, ""));
            let fstype = b.split(' ').next().unwrap_or("");
            if fstype == "cgroup" || fstype == "cgroup2" {
                if let Some(mp) = a.split(' ').nth(4) {
                    let d = Path::new(mp).join(rel);
                    if d.is_dir() {
                        out.push(d);
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The namespace inode of `kind` of process `pid`.
pub fn ns(pid: i32, kind: &str) -> Result<u64, String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .map(|m| m.ino())
        .map_err(|e| format!("/proc/{pid}/ns/{kind}: {e}"))
}

async fn connect(path: PathBuf) -> Result<Channel, String> {
    Endpoint::try_from("http://[::]:50051")
        .map_err(|e| e.to_string())?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await
        .map_err(|e| e.to_string())
}

/// The pause program, in C: sleeps until told to stop, reaps orphans.
const PAUSE_C: &str = r#"
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) ; }
int main(void) {
    struct sigaction s = {0};
    s.sa_handler = stop;
    sigaction(SIGTERM, &s, 0);
    sigaction(SIGINT, &s, 0);
    s.sa_handler = reap;
    s.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &s, 0);
    for (;;) pause();
}
"#;

/// A program that runs another and appends when it ran to a log:
/// `<tag> <start ns> <end ns> <argv0> <args...>` (CLOCK_REALTIME).
const TIMEWRAP_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
int main(int argc, char **argv) {
    long long a = now();
    pid_t p = fork();
    if (p == 0) { execv(REAL, argv); _exit(127); }
    int st = 0;
    while (p > 0 && waitpid(p, &st, 0) < 0 && errno == EINTR) ;
    long long b = now();
    FILE *f = fopen(LOG, "a");
    if (f) {
        fprintf(f, "%s %lld %lld %s", TAG, a, b, argv[0]);
        for (int i = 1; i < argc && i < 24; i++) fprintf(f, " %s", argv[i]);
        fprintf(f, "\n");
        fclose(f);
    }
    if (p < 0) return 127;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
"#;

fn timewrap(out: &Path, real: &Path, tag: &str, log: &Path) -> Result<(), String> {
    let src = out.with_extension("c");
    write(&src, TIMEWRAP_C)?;
    run(Command::new("gcc")
        .arg("-O2")
        .arg(format!("-DREAL=\"{}\"", real.display()))
        .arg(format!("-DTAG=\"{tag}\""))
        .arg(format!("-DLOG=\"{}\"", log.display()))
        .arg("-o")
        .arg(out)
        .arg(&src))?;
    let _ = std::fs::remove_file(&src);
    Ok(())
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OCI image-layout archive of one layer made from `rootfs`.
fn oci_archive(
    name: &str,
    rootfs: &Path,
    config: serde_json::Value,
    out: &Path,
) -> Result<(), String> {
    let lay = out.with_extension("layout");
    let blobs = lay.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    let put = |bytes: &[u8]| -> Result<(String, usize), String> {
        let d = hex(&Sha256::digest(bytes));
        std::fs::write(blobs.join(&d), bytes).map_err(|e| e.to_string())?;
        Ok((format!("sha256:{d}"), bytes.len()))
    };
    let layer_tar = lay.join("layer.tar");
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "-C",
        ])
        .arg(rootfs)
        .arg("-cf")
        .arg(&layer_tar)
        .arg("."))?;
    let layer = std::fs::read(&layer_tar).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&layer_tar);
    let (ld, ln) = put(&layer)?;
    let cfg = json!({"architecture": "amd64", "os": "linux", "config": config,
                     "rootfs": {"type": "layers", "diff_ids": [ld]}});
    let (cd, cn) = put(cfg.to_string().as_bytes())?;
    let manifest = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ln}]});
    let (md, mn) = put(manifest.to_string().as_bytes())?;
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}}]});
    write(&lay.join("index.json"), &index.to_string())?;
    write(&lay.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&lay)
        .arg("-cf")
        .arg(out)
        .args(["oci-layout", "index.json", "blobs"]))?;
    let _ = std::fs::remove_dir_all(&lay);
    Ok(())
}

/// The busybox and pause images; true if pause had to be busybox's
/// `sleep` (no C compiler).
fn build_images(dir: &Path) -> Result<bool, String> {
    let images = dir.join("images");
    let bb = images.join("busybox-root");
    for sub in ["bin", "tmp", "etc", "proc", "sys", "dev", "root"] {
        std::fs::create_dir_all(bb.join(sub)).map_err(|e| e.to_string())?;
    }
    std::fs::copy("/bin/busybox", bb.join("bin/busybox")).map_err(|e| e.to_string())?;
    let list = run(Command::new("/bin/busybox").arg("--list"))?;
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", bb.join("bin").join(applet));
    }
    write(&bb.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    write(&bb.join("etc/group"), "root:x:0:\n")?;
    let env = json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
    oci_archive(
        BUSYBOX_IMAGE,
        &bb,
        json!({"Env": env, "Cmd": ["sh"]}),
        &images.join("busybox.tar"),
    )?;
    let pause = images.join("pause-root");
    std::fs::create_dir_all(&pause).map_err(|e| e.to_string())?;
    write(&images.join("pause.c"), PAUSE_C)?;
    let compiled = Command::new("gcc")
        .args(["-static", "-Os", "-s", "-o"])
        .arg(pause.join("pause"))
        .arg(images.join("pause.c"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if compiled {
        let _ =
            std::fs::set_permissions(pause.join("pause"), std::fs::Permissions::from_mode(0o755));
        oci_archive(
            PAUSE_IMAGE,
            &pause,
            json!({"Entrypoint": ["/pause"]}),
            &images.join("pause.tar"),
        )?;
    } else {
        say("no static C compiler: the pause image is busybox's `sleep infinity`");
        oci_archive(
            PAUSE_IMAGE,
            &bb,
            json!({"Env": env, "Entrypoint": ["/bin/sleep", "infinity"]}),
            &images.join("pause.tar"),
        )?;
    }
    let _ = std::fs::remove_dir_all(&bb);
    let _ = std::fs::remove_dir_all(&pause);
    Ok(!compiled)
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.channel.is_some() {
            // On a thread of its own: we may be inside another runtime.
            let me: &Lab = self;
            std::thread::scope(|s| {
                s.spawn(|| {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        rt.block_on(async {
                            let _ =
                                tokio::time::timeout(Duration::from_secs(90), me.remove_all_pods())
                                    .await;
                        })
                    }
                });
            });
        }
        if let Some(mut c) = self.containerd.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever survived: shims, husk boots, container processes.
        for _ in 0..3 {
            let left = self.lab_processes();
            if left.is_empty() {
                break;
            }
            for p in left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let dir = self.dir.display().to_string();
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut mps: Vec<String> = mi
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|m| m.starts_with(&dir))
                .map(String::from)
                .collect();
            mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in mps {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        // Deepest cgroup directories first, in every hierarchy.
        let mut cgs = Vec::new();
        let mut tops = vec![self.cgroup_top.clone()];
        tops.extend(
            self.extra_cgroups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        for t in &tops {
            for top in cgroup_dirs(t) {
                collect_dirs(&top, &mut cgs);
            }
        }
        cgs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for _ in 0..20 {
            cgs.retain(|d| std::fs::remove_dir(d).is_err() && d.exists());
            if cgs.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for d in &cgs {
            say(&format!("cleanup: cgroup {} stays", d.display()));
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for sb in self
            .sandboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = std::fs::remove_file(self.shim_socket(sb));
        }
        if self.keep {
            say(&format!("kept {}", self.dir.display()));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn collect_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    out.push(d.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Lines of a CRI log file (`<time> <stream> <tag> <text>`), as text.
pub fn log_text(config: &PodSandboxConfig, container_log: &str) -> String {
    let path = Path::new(&config.log_directory).join(container_log);
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Keyed results of one handler's run.
pub type Outcomes = Vec<(&'static str, Result<String, String>)>;

pub fn table(rows: &[(String, Outcomes)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (_, o) in rows {
        for (n, _) in o {
            if !names.contains(n) {
                names.push(n);
            }
        }
    }
    let mut t = String::from("\n| check |");
    for (h, _) in rows {
        t += &format!(" {h} |");
    }
    t += "\n|---|";
    for _ in rows {
        t += "---|";
    }
    for n in names {
        t += &format!("\n| {n} |");
        for (_, o) in rows {
            let cell = match o.iter().find(|(k, _)| *k == n) {
                Some((_, Ok(m))) if m.is_empty() => "ok".to_string(),
                Some((_, Ok(m))) => format!("ok: {m}"),
                Some((_, Err(_))) => "FAIL".to_string(),
                None => "-".to_string(),
            };
            t += &format!(" {cell} |");
        }
    }
    let mut details = String::new();
    for (h, o) in rows {
        for (n, r) in o {
            if let Err(e) = r {
                details += &format!("\n[{h}] {n}: {e}");
            }
        }
    }
    if !details.is_empty() {
        t += "\n\nfailures:";
        t += &details;
    }
    t
}

pub type Map = HashMap<String, String>;
