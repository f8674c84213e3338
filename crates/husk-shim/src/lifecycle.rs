//! The shim binary's three lives, as containerd runs it:
//!
//! - `start` (cwd: the bundle): the address of the pod's shim, starting it
//!   if it does not run yet;
//! - `delete` (cwd: the bundle): after every task's removal, and for every
//!   task of a shim that died, remove the container and its mounts;
//! - the daemon (no action): serve the task API on its socket until the
//!   last container is gone.
//!
//! The crate's own bootstrap (`containerd_shim::run`) runs the synchronous
//! ttrpc server: five threads per connection, each connection's reader
//! waking every 10 ms. The daemon here serves the same generated service
//! with ttrpc's tokio server on one thread, and keeps the crate's flags,
//! socket naming and address file.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim_async::create_task;
use containerd_shim::protos::ttrpc::r#async::transport::Listener;
use containerd_shim::protos::ttrpc::r#async::Server;
use containerd_shim::{DeleteResponse, Flags};
use husk::container::Container;

use crate::config::{BundleRecord, ShimConfig};
use crate::mount::unmount_all;
use crate::service::{Service, GROUP_ANNOTATIONS};
use crate::worker::Worker;

/// The annotation value that groups this bundle's container with others.
fn grouping(bundle: &Path) -> Option<String> {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    GROUP_ANNOTATIONS.iter().find_map(|k| {
        spec["annotations"][k]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(String::from)
    })
}

/// Shims are killed before containerd when memory runs out.
fn adjust_oom_score(pid: u32) {
    let ours = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let _ = std::fs::write(
        format!("/proc/{pid}/oom_score_adj"),
        (ours + 1).min(1000).to_string(),
    );
}

/// `start`: print the address of the pod's shim.
pub fn start(flags: &Flags) -> Result<(), String> {
    let group = grouping(Path::new(".")).unwrap_or_else(|| flags.id.clone());
    let address = containerd_shim::socket_address(&flags.address, &flags.namespace, &group);
    let path = address.trim_start_matches("unix://").to_string();
    match UnixStream::connect(&path) {
        Ok(_) => {
            // The pod's shim runs: it serves this container too.
            containerd_shim::util::write_address(&address).map_err(|e| e.to_string())?;
            return say_address(&address);
        }
        // Left behind by a shim that was killed.
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            let _ = std::fs::remove_file(&path);
        }
        Err(_) => {}
    }
    let exe = std::env::current_exe().map_err(|e| format!("shim executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["-namespace", &flags.namespace, "-id", &flags.id])
        .args(["-address", &flags.address, "-socket", &address])
        // One malloc arena: the shim's few threads mostly sleep.
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Out of `start`'s process group, which containerd may signal.
        .process_group(0);
    if flags.debug {
        cmd.arg("-debug");
    }
    let mut child = cmd.spawn().map_err(|e| format!("start the shim: {e}"))?;
    adjust_oom_score(child.id());
    // The daemon closes its stdout once it serves (or fails).
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut said);
    }
    if !said.is_empty() {
        eprint!("{said}");
    }
    if let Ok(Some(st)) = child.try_wait() {
        if !st.success() {
            return Err(format!("the shim exited at once ({st})"));
        }
    }
    containerd_shim::util::write_address(&address).map_err(|e| e.to_string())?;
    say_address(&address)
}

/// containerd takes all of `start`'s output as the address.
fn say_address(address: &str) -> Result<(), String> {
    let mut out = std::io::stdout();
    out.write_all(address.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("write the address: {e}"))
}

/// `delete`: the daemon may be gone. Remove the container (a pod's
/// sandbox takes what is left of the pod with it), its cgroups and its
/// rootfs mounts; harmless when the daemon did it already.
pub fn delete(flags: &Flags) -> Result<(), String> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().unwrap_or_default()
    } else {
        PathBuf::from(&flags.bundle)
    };
    let record = BundleRecord::read(&bundle);
    let (config, ns) = match &record {
        Some(r) => (r.config.clone(), r.namespace.clone()),
        None => (ShimConfig::default(), flags.namespace.clone()),
    };
    let mut pid = 0;
    if let Ok(cfg) = config.husk_config(&ns) {
        if let Ok(b) = config.husk_binary() {
            let _ = husk::sandbox::set_husk_binary(&b);
        }
        if let Ok(c) = Container::load(&cfg, &flags.id) {
            pid = c.state.init.map(|p| p.pid).unwrap_or(0).max(0) as u32;
            if let Err(e) = c.delete(true) {
                eprintln!("delete {}: {e}", flags.id);
            }
        }
    }
    if record.is_some_and(|r| r.mounted_rootfs) {
        if let Err(e) = unmount_all(&bundle.join("rootfs")) {
            eprintln!("delete {}: {e}", flags.id);
        }
    }
    remove_dead_socket(&bundle);
    let resp = DeleteResponse {
        pid,
        exit_status: 137,
        exited_at: MessageField::some(crate::service::now()),
        ..Default::default()
    };
    let bytes = resp.write_to_bytes().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}

/// The socket of a shim that was killed stays behind (containerd does not
/// remove it, nor do its own shims): remove it if nobody listens on it.
fn remove_dead_socket(bundle: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = address.trim().trim_start_matches("unix://");
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket {
        if let Err(e) = UnixStream::connect(path) {
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The daemon. `worker` was forked while the process had one thread.
pub fn daemon(flags: Flags, worker: Worker) -> i32 {
    crate::logger::init(Path::new("."), flags.debug);
    // Hold no bundle: containerd removes them.
    let _ = std::env::set_current_dir("/");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Blocking calls (husk's library) run on helper threads that go
        // away soon after the calls.
        .thread_keep_alive(Duration::from_secs(1))
        .max_blocking_threads(32)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            log::error!("tokio runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(flags, worker)) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

async fn serve(flags: Flags, worker: Worker) -> Result<(), String> {
    let path = flags.socket.trim_start_matches("unix://").to_string();
    if let Some(dir) = Path::new(&path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                // Another daemon of the pod won the race; it serves.
                log::info!("{path} is served already");
                signal_ready();
                return Ok(());
            }
            let _ = std::fs::remove_file(&path);
            UnixListener::bind(&path).map_err(|e| format!("bind {path}: {e}"))?
        }
        Err(e) => return Err(format!("bind {path}: {e}")),
    };
    // Only containerd (root) talks to us.
    let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    let exit = Arc::new(tokio::sync::Notify::new());
    let service = Service::new(&flags.namespace, &ttrpc_address, worker, exit.clone())?;
    let listener = Listener::try_from(listener).map_err(|e| format!("listener: {e}"))?;
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(create_task(Arc::new(service)));
    server.start().await.map_err(|e| format!("serve: {e}"))?;
    signal_ready();
    log::info!("shim started for {}", flags.id);
    exit.notified().await;
    let _ = std::fs::remove_file(&path);
    log::info!("shim exits");
    let _ = tokio::time::timeout(Duration::from_secs(1), server.shutdown()).await;
    Ok(())
}

/// `start` reads our stdout until it closes: point it at stderr
/// (/dev/null) once we serve.
fn signal_ready() {
    let _ = nix::unistd::dup2(2, 1);
}
