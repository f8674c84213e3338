//! The task service: containerd's task API v2 on husk's container layer.
//!
//! One shim serves every container of a pod (grouped by the CRI's
//! `io.kubernetes.cri.sandbox-id` annotation; a container without one gets
//! a shim of its own). The first container is the pod's sandbox: creating
//! it starts the pod's `husk boot`; the others join that boot. Every call
//! goes straight to husk's library and the pod's control socket: no husk
//! command runs per call. Calls that fork go through the worker (see
//! `worker`).
//!
//! The task pid containerd gets is the container's init as the host sees
//! it, inside the pod's namespaces: the CRI builds the other containers'
//! `/proc/<pid>/ns/*` paths from the sandbox's, and reads nothing else
//! from it (stats and OOM come from here, from the container's own
//! cgroup).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use containerd_shim::api::{self, Status};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::r#async::TtrpcContext;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::TtrpcResult;
use husk::cgroups::CgroupPath;
use husk::container::Container;
use husk::control::ErrorKind;
use husk::error::Error as HuskError;
use tokio::sync::Notify;

use crate::config::{BundleRecord, ShimConfig};
use crate::events::{pack, Events};
use crate::io::{Prepared, ProcessIo, Stdio};
use crate::monitor::{self, Monitor};
use crate::mount::{unmount_all, RootMount};
use crate::worker::{self, Worker};

/// Annotations whose value groups containers into one shim.
pub const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.containerd.husk.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

fn rpc(code: Code, msg: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.into()))
}

fn status_of(kind: ErrorKind, message: String) -> ttrpc::Error {
    let code = match kind {
        ErrorKind::NotFound => Code::NOT_FOUND,
        ErrorKind::Exists => Code::ALREADY_EXISTS,
        ErrorKind::BadState => Code::FAILED_PRECONDITION,
        ErrorKind::Invalid => Code::INVALID_ARGUMENT,
        ErrorKind::Refused => Code::PERMISSION_DENIED,
        ErrorKind::Sandbox => Code::UNKNOWN,
    };
    rpc(code, message)
}

fn husk_err(e: HuskError) -> ttrpc::Error {
    status_of(e.kind(), e.to_string())
}

pub fn now() -> Timestamp {
    containerd_shim::util::timestamp().unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    Paused,
    Stopped,
}

impl State {
    fn proto(self) -> Status {
        match self {
            State::Created => Status::CREATED,
            State::Running => Status::RUNNING,
            State::Paused => Status::PAUSED,
            State::Stopped => Status::STOPPED,
        }
    }
}

/// A container's init or an exec'd process.
struct Proc {
    pid: u32,
    /// An exec'd process's pidfd (signals go to it).
    pidfd: Option<OwnedFd>,
    state: State,
    exit: Option<(u32, Timestamp)>,
    stdio: Stdio,
    io: ProcessIo,
    /// A start is under way: an exit seen meanwhile is published after
    /// the start event.
    starting: bool,
    exit_pending: bool,
    /// An exec'd process's spec, until it starts.
    spec: Option<Box<oci_spec::runtime::Process>>,
}

impl Proc {
    fn new(stdio: Stdio) -> Proc {
        Proc {
            pid: 0,
            pidfd: None,
            state: State::Created,
            exit: None,
            stdio,
            io: ProcessIo::default(),
            starting: false,
            exit_pending: false,
            spec: None,
        }
    }
}

struct Task {
    bundle: PathBuf,
    config: ShimConfig,
    husk: husk::config::Config,
    binary: PathBuf,
    mounted: bool,
    cgroup: CgroupPath,
    /// The container shares a pid namespace (the pod's): its processes
    /// do not die with its init, so they are killed when it exits.
    kill_all_on_exit: bool,
    /// OOM kills already reported.
    oom_seen: u64,
    init: Proc,
    execs: HashMap<String, Proc>,
}

impl Task {
    fn proc(&self, exec_id: &str) -> TtrpcResult<&Proc> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs
            .get(exec_id)
            .ok_or_else(|| rpc(Code::NOT_FOUND, format!("process {exec_id} does not exist")))
    }

    fn proc_mut(&mut self, exec_id: &str) -> TtrpcResult<&mut Proc> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs
            .get_mut(exec_id)
            .ok_or_else(|| rpc(Code::NOT_FOUND, format!("process {exec_id} does not exist")))
    }
}

struct Inner {
    namespace: String,
    /// The daemon exits when notified.
    exit: Arc<Notify>,
    worker: Worker,
    tasks: Mutex<HashMap<String, Task>>,
    /// A process exited or a task went: `Wait` calls look again.
    changed: Notify,
    events: Events,
    monitor: OnceLock<Monitor>,
    log_file: OnceLock<()>,
}

#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl Service {
    /// The service of a daemon for containerd namespace `namespace`,
    /// publishing to containerd's ttrpc socket `ttrpc_address`. Runs on a
    /// tokio runtime (the event publisher is a task of it).
    pub fn new(
        namespace: &str,
        ttrpc_address: &str,
        worker: Worker,
        exit: Arc<Notify>,
    ) -> Result<Service, String> {
        let inner = Arc::new(Inner {
            namespace: namespace.into(),
            exit,
            worker,
            tasks: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            events: Events::start(ttrpc_address.into(), namespace.into()),
            monitor: OnceLock::new(),
            log_file: OnceLock::new(),
        });
        let weak = Arc::downgrade(&inner);
        let monitor = Monitor::start(move |ev| {
            if let Some(i) = weak.upgrade() {
                i.on_event(ev);
            }
        })
        .map_err(|e| format!("start the monitor: {e}"))?;
        let _ = inner.monitor.set(monitor);
        Ok(Service { inner })
    }
}

impl Inner {
    fn tasks(&self) -> MutexGuard<'_, HashMap<String, Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn monitor(&self) -> &Monitor {
        self.monitor
            .get()
            .expect("monitor started with the service")
    }

    fn worker(&self) -> TtrpcResult<&Worker> {
        Ok(&self.worker)
    }

    fn task<'a>(tasks: &'a mut HashMap<String, Task>, id: &str) -> TtrpcResult<&'a mut Task> {
        tasks
            .get_mut(id)
            .ok_or_else(|| rpc(Code::NOT_FOUND, format!("container {id} does not exist")))
    }

    fn publish_exit(&self, id: &str, exec_id: &str, p: &Proc) {
        let Some((code, at)) = &p.exit else { return };
        self.events.send(
            topics::TASK_EXIT_EVENT_TOPIC,
            TaskExit {
                container_id: id.into(),
                id: if exec_id.is_empty() { id } else { exec_id }.into(),
                pid: p.pid,
                exit_status: *code,
                exited_at: MessageField::some(at.clone()),
                ..Default::default()
            },
        );
    }

    /// TaskOOM if the container's cgroup counted an OOM kill not yet
    /// reported (`always`: also when the kernel keeps no count).
    fn check_oom(&self, id: &str, t: &mut Task, always: bool) {
        let Some(dir) = t
            .cgroup
            .dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == "memory"))
        else {
            return;
        };
        let kills = monitor::oom_kills(&dir.path, dir.v2);
        if kills > t.oom_seen || (always && kills == 0) {
            t.oom_seen = kills;
            log::info!("container {id}: OOM kill");
            self.events.send(
                topics::TASK_OOM_EVENT_TOPIC,
                TaskOOM {
                    container_id: id.into(),
                    ..Default::default()
                },
            );
        }
    }

    fn on_event(&self, ev: monitor::Event) {
        match ev {
            monitor::Event::Oom { id } => {
                let mut tasks = self.tasks();
                if let Some(t) = tasks.get_mut(&id) {
                    self.check_oom(&id, t, true);
                }
            }
            monitor::Event::Exited {
                id,
                exec_id,
                status,
            } => {
                let mut kill_all = None;
                {
                    let mut tasks = self.tasks();
                    let Some(t) = tasks.get_mut(&id) else { return };
                    if exec_id.is_empty() {
                        self.check_oom(&id, t, false);
                        if t.kill_all_on_exit {
                            kill_all = Some(t.cgroup.clone());
                        }
                    }
                    let Ok(p) = t.proc_mut(&exec_id) else { return };
                    if p.exit.is_some() {
                        return;
                    }
                    // boot gone without a word: the process went with it.
                    let code = status.unwrap_or(137).max(0) as u32;
                    log::debug!("{id}/{exec_id}: exited with {code}");
                    p.exit = Some((code, now()));
                    p.state = State::Stopped;
                    if p.starting {
                        p.exit_pending = true;
                    } else {
                        let p = t.proc(&exec_id).expect("just found");
                        self.publish_exit(&id, &exec_id, p);
                    }
                    self.changed.notify_waiters();
                }
                if let Some(cg) = kill_all {
                    let _ = cg.signal_all(nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
    }

    fn create(&self, req: api::CreateTaskRequest) -> TtrpcResult<api::CreateTaskResponse> {
        if !req.checkpoint.is_empty() || !req.parent_checkpoint.is_empty() {
            return Err(rpc(
                Code::UNIMPLEMENTED,
                "restoring from a checkpoint is not supported by husk",
            ));
        }
        husk::container::validate_id(&req.id).map_err(husk_err)?;
        if self.tasks().contains_key(&req.id) {
            return Err(rpc(
                Code::ALREADY_EXISTS,
                format!("container {} already exists", req.id),
            ));
        }
        let (type_url, value) = req
            .options
            .as_ref()
            .map(|a| (a.type_url.as_str(), a.value.as_slice()))
            .unwrap_or(("", &[]));
        let config = crate::options::shim_config(type_url, value)
            .map_err(|e| rpc(Code::INVALID_ARGUMENT, e))?;
        let husk = config
            .husk_config(&self.namespace)
            .map_err(|e| rpc(Code::INVALID_ARGUMENT, e))?;
        let binary = config
            .husk_binary()
            .map_err(|e| rpc(Code::FAILED_PRECONDITION, e))?;
        husk::sandbox::set_husk_binary(&binary).map_err(husk_err)?;
        if let Some(path) = &config.log {
            self.log_file
                .get_or_init(|| crate::logger::add_file(path, config.debug));
        }
        let bundle = PathBuf::from(&req.bundle);
        let record = BundleRecord {
            namespace: self.namespace.clone(),
            config: config.clone(),
            mounted_rootfs: !req.rootfs.is_empty(),
        };
        if let Err(e) = record.write(&bundle) {
            log::warn!("{}: record in bundle: {e}", req.id);
        }
        let spec = husk::spec::load(&bundle).map_err(husk_err)?;
        let kill_all_on_exit = !own_pid_namespace(&spec);
        let stdio = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let prepared = Prepared::open(&stdio).map_err(|e| rpc(Code::INTERNAL, e.to_string()))?;
        let mut fds: Vec<RawFd> = prepared.child.iter().map(|f| f.as_raw_fd()).collect();
        if let Some((_, theirs)) = &prepared.console {
            fds.push(theirs.as_raw_fd());
        }
        let wreq = worker::Request::Create(Box::new(worker::CreateReq {
            id: req.id.clone(),
            bundle: bundle.clone(),
            namespace: self.namespace.clone(),
            config: config.clone(),
            binary: binary.clone(),
            rootfs: req
                .rootfs
                .iter()
                .map(|m| RootMount {
                    fs_type: m.type_.clone(),
                    source: m.source.clone(),
                    target: m.target.clone(),
                    options: m.options.clone(),
                })
                .collect(),
            terminal: req.terminal,
        }));
        let answer = self.worker()?.call(&wreq, &fds);
        let Prepared {
            child,
            console,
            mut io,
        } = prepared;
        drop(child);
        let console = console.map(|(ours, theirs)| {
            drop(theirs);
            ours
        });
        let (resp, fds) = answer.map_err(|e| rpc(Code::INTERNAL, e))?;
        let (pid, cgroup, mounted) = match resp {
            worker::Response::Created {
                pid,
                cgroup,
                mounted,
                ..
            } => (pid, cgroup, mounted),
            worker::Response::Error { kind, message } => return Err(status_of(kind, message)),
            other => {
                return Err(rpc(
                    Code::INTERNAL,
                    format!("husk shim worker: unexpected answer {other:?}"),
                ))
            }
        };
        let mut fds = fds.into_iter();
        let (Some(wait), Some(pidfd)) = (fds.next(), fds.next()) else {
            return Err(rpc(Code::INTERNAL, "husk shim worker sent no descriptors"));
        };
        if let Err(e) = io.start(console) {
            // The container exists but nobody could use it.
            if let Ok(c) = Container::load(&husk, &req.id) {
                let _ = c.delete(true);
            }
            if mounted {
                let _ = unmount_all(&bundle.join("rootfs"));
            }
            return Err(rpc(Code::INTERNAL, format!("terminal: {e}")));
        }
        let mut tasks = self.tasks();
        // Signals to the init go through the container layer (which
        // checks it is still the init); its pidfd is not needed here.
        drop(pidfd);
        let mut init = Proc::new(stdio.clone());
        init.pid = pid as u32;
        init.io = io;
        if let Err(e) = self.monitor().watch_oom(&req.id, &cgroup) {
            log::warn!("{}: OOM events: {e}", req.id);
        }
        tasks.insert(
            req.id.clone(),
            Task {
                bundle: bundle.clone(),
                config,
                husk,
                binary,
                mounted,
                oom_seen: cgroup
                    .dirs
                    .iter()
                    .find(|d| d.controllers.iter().any(|c| c == "memory"))
                    .map(|d| monitor::oom_kills(&d.path, d.v2))
                    .unwrap_or(0),
                cgroup,
                kill_all_on_exit,
                init,
                execs: HashMap::new(),
            },
        );
        self.monitor()
            .watch_exit(&req.id, "", UnixStream::from(wait));
        self.events.send(
            topics::TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: stdio.stdin,
                    stdout: stdio.stdout,
                    stderr: stdio.stderr,
                    terminal: stdio.terminal,
                    ..Default::default()
                }),
                checkpoint: req.checkpoint.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        log::info!("created {} (pid {pid})", req.id);
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn start(&self, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id);
        }
        let cfg = {
            let mut tasks = self.tasks();
            let t = Self::task(&mut tasks, &req.id)?;
            if t.init.state != State::Created || t.init.starting {
                return Err(rpc(
                    Code::FAILED_PRECONDITION,
                    format!("container {} is not created", req.id),
                ));
            }
            t.init.starting = true;
            t.husk.clone()
        };
        let started = Container::load(&cfg, &req.id).and_then(|mut c| c.start());
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, &req.id)?;
        t.init.starting = false;
        let pid = t.init.pid;
        if started.is_ok() {
            if t.init.state == State::Created {
                t.init.state = State::Running;
            }
            self.events.send(
                topics::TASK_START_EVENT_TOPIC,
                TaskStart {
                    container_id: req.id.clone(),
                    pid,
                    ..Default::default()
                },
            );
        }
        if std::mem::take(&mut t.init.exit_pending) {
            self.publish_exit(&req.id, "", &t.init);
        }
        started.map_err(husk_err)?;
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<api::StartResponse> {
        let (spec, stdio, t_config, ns, binary) = {
            let mut tasks = self.tasks();
            let t = Self::task(&mut tasks, id)?;
            if t.init.exit.is_some() {
                return Err(rpc(
                    Code::FAILED_PRECONDITION,
                    format!("container {id} is stopped"),
                ));
            }
            let (config, binary) = (t.config.clone(), t.binary.clone());
            let p = t.proc_mut(exec_id)?;
            if p.state != State::Created || p.starting {
                return Err(rpc(
                    Code::FAILED_PRECONDITION,
                    format!("process {exec_id} was started already"),
                ));
            }
            let Some(spec) = p.spec.take() else {
                return Err(rpc(Code::FAILED_PRECONDITION, "process has no spec"));
            };
            p.starting = true;
            (
                spec,
                p.stdio.clone(),
                config,
                self.namespace.clone(),
                binary,
            )
        };
        let result = (|| {
            let prepared =
                Prepared::open(&stdio).map_err(|e| rpc(Code::INTERNAL, e.to_string()))?;
            let mut fds: Vec<RawFd> = prepared.child.iter().map(|f| f.as_raw_fd()).collect();
            if let Some((_, theirs)) = &prepared.console {
                fds.push(theirs.as_raw_fd());
            }
            let wreq = worker::Request::Exec(Box::new(worker::ExecReq {
                id: id.into(),
                namespace: ns,
                config: t_config,
                binary,
                terminal: stdio.terminal,
                process: spec,
            }));
            let answer = self.worker()?.call(&wreq, &fds);
            let Prepared {
                child,
                console,
                mut io,
            } = prepared;
            drop(child);
            let console = console.map(|(ours, theirs)| {
                drop(theirs);
                ours
            });
            let (resp, fds) = answer.map_err(|e| rpc(Code::INTERNAL, e))?;
            let pid = match resp {
                worker::Response::Execed { pid } => pid,
                worker::Response::Error { kind, message } => return Err(status_of(kind, message)),
                other => {
                    return Err(rpc(
                        Code::INTERNAL,
                        format!("husk shim worker: unexpected answer {other:?}"),
                    ))
                }
            };
            let mut fds = fds.into_iter();
            let (Some(wait), Some(pidfd)) = (fds.next(), fds.next()) else {
                return Err(rpc(Code::INTERNAL, "husk shim worker sent no descriptors"));
            };
            if let Err(e) = io.start(console) {
                let _ = husk_sys::process::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                return Err(rpc(Code::INTERNAL, format!("terminal: {e}")));
            }
            Ok((pid, wait, pidfd, io))
        })();
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, id)?;
        let p = t.proc_mut(exec_id)?;
        p.starting = false;
        match result {
            Ok((pid, wait, pidfd, io)) => {
                p.pid = pid.max(0) as u32;
                p.pidfd = Some(pidfd);
                p.io = io;
                p.state = State::Running;
                self.events.send(
                    topics::TASK_EXEC_STARTED_EVENT_TOPIC,
                    TaskExecStarted {
                        container_id: id.into(),
                        exec_id: exec_id.into(),
                        pid: p.pid,
                        ..Default::default()
                    },
                );
                let pid = p.pid;
                self.monitor()
                    .watch_exit(id, exec_id, UnixStream::from(wait));
                Ok(api::StartResponse {
                    pid,
                    ..Default::default()
                })
            }
            Err(e) => {
                // A process that could not start has exited, as far as
                // anyone waiting for it is concerned.
                p.state = State::Stopped;
                p.exit = Some((255, now()));
                self.changed.notify_waiters();
                Err(e)
            }
        }
    }

    fn exec(&self, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let spec: oci_spec::runtime::Process = req
            .spec
            .as_ref()
            .map(|a| serde_json::from_slice(&a.value))
            .transpose()
            .map_err(|e| rpc(Code::INVALID_ARGUMENT, format!("exec process spec: {e}")))?
            .ok_or_else(|| rpc(Code::INVALID_ARGUMENT, "exec without a process spec"))?;
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, &req.id)?;
        if t.init.exit.is_some() {
            return Err(rpc(
                Code::FAILED_PRECONDITION,
                format!("container {} is stopped", req.id),
            ));
        }
        if req.exec_id.is_empty() || t.execs.contains_key(&req.exec_id) {
            return Err(rpc(
                Code::ALREADY_EXISTS,
                format!("process {} already exists", req.exec_id),
            ));
        }
        let mut p = Proc::new(Stdio {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        });
        p.spec = Some(Box::new(spec));
        t.execs.insert(req.exec_id.clone(), p);
        self.events.send(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: req.id,
                exec_id: req.exec_id,
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    fn state(&self, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, &req.id)?;
        let bundle = t.bundle.display().to_string();
        let p = t.proc(&req.exec_id)?;
        Ok(api::StateResponse {
            id: if req.exec_id.is_empty() {
                req.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle,
            pid: p.pid,
            status: p.state.proto().into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: p.exit.as_ref().map(|e| e.0).unwrap_or(0),
            exited_at: p.exit.as_ref().map(|e| e.1.clone()).into(),
            exec_id: req.exec_id,
            ..Default::default()
        })
    }

    /// The exit of a process, if it has exited.
    fn exit_of(&self, req: &api::WaitRequest) -> TtrpcResult<Option<api::WaitResponse>> {
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, &req.id)?;
        let p = t.proc(&req.exec_id)?;
        Ok(p.exit.as_ref().map(|(code, at)| api::WaitResponse {
            exit_status: *code,
            exited_at: MessageField::some(at.clone()),
            ..Default::default()
        }))
    }

    fn kill(&self, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let finished = || rpc(Code::NOT_FOUND, "process already finished");
        let cfg = {
            let mut tasks = self.tasks();
            let t = Self::task(&mut tasks, &req.id)?;
            if !req.exec_id.is_empty() {
                let p = t.proc(&req.exec_id)?;
                if p.exit.is_some() {
                    return Err(finished());
                }
                let Some(fd) = &p.pidfd else {
                    return Err(rpc(Code::FAILED_PRECONDITION, "process was not started"));
                };
                return match husk_sys::process::pidfd_send_signal(fd.as_fd(), req.signal as i32) {
                    Ok(()) => Ok(api::Empty::new()),
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(finished()),
                    Err(e) => Err(rpc(Code::UNKNOWN, format!("signal process: {e}"))),
                };
            }
            if t.init.exit.is_some() {
                // What outlived the init (in a pod's shared pid namespace).
                if req.all && !t.cgroup.is_empty() {
                    if let Ok(sig) = nix::sys::signal::Signal::try_from(req.signal as i32) {
                        let _ = t.cgroup.signal_all(sig);
                    }
                }
                return Err(finished());
            }
            t.husk.clone()
        };
        let c = Container::load(&cfg, &req.id).map_err(husk_err)?;
        match c.kill(req.signal as i32, req.all) {
            Ok(()) => Ok(api::Empty::new()),
            Err(HuskError::Invalid(m)) if m.contains("not running") => Err(finished()),
            Err(e) => Err(husk_err(e)),
        }
    }

    fn delete(&self, req: api::DeleteRequest) -> TtrpcResult<api::DeleteResponse> {
        if !req.exec_id.is_empty() {
            let mut tasks = self.tasks();
            let t = Self::task(&mut tasks, &req.id)?;
            let p = t.proc(&req.exec_id)?;
            if p.state != State::Created && p.exit.is_none() {
                return Err(rpc(
                    Code::FAILED_PRECONDITION,
                    format!("process {} is running", req.exec_id),
                ));
            }
            let p = t.execs.remove(&req.exec_id).expect("just found");
            let (code, at) = p.exit.clone().unwrap_or((0, now()));
            return Ok(api::DeleteResponse {
                pid: p.pid,
                exit_status: code,
                exited_at: MessageField::some(at),
                ..Default::default()
            });
        }
        let (cfg, bundle, mounted) = {
            let mut tasks = self.tasks();
            let t = Self::task(&mut tasks, &req.id)?;
            if matches!(t.init.state, State::Running | State::Paused) && t.init.exit.is_none() {
                return Err(rpc(
                    Code::FAILED_PRECONDITION,
                    format!("container {} is running", req.id),
                ));
            }
            (t.husk.clone(), t.bundle.clone(), t.mounted)
        };
        match Container::load(&cfg, &req.id) {
            // A pod's sandbox goes with whatever is left of the pod.
            Ok(c) => c.delete(true).map_err(husk_err)?,
            Err(HuskError::NotFound(_)) => {}
            Err(e) => return Err(husk_err(e)),
        }
        if mounted {
            if let Err(e) = unmount_all(&bundle.join("rootfs")) {
                log::warn!("{}: {e}", req.id);
            }
        }
        self.monitor().forget(&req.id);
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, &req.id)?;
        let (code, at) = t.init.exit.clone().unwrap_or((137, now()));
        let pid = t.init.pid;
        tasks.remove(&req.id);
        self.changed.notify_waiters();
        self.events.send(
            topics::TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: req.id.clone(),
                pid,
                exit_status: code,
                exited_at: MessageField::some(at.clone()),
                ..Default::default()
            },
        );
        log::info!("deleted {}", req.id);
        Ok(api::DeleteResponse {
            pid,
            exit_status: code,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    fn pids(&self, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let (cfg, execs) = {
            let mut tasks = self.tasks();
            let t = Self::task(&mut tasks, &req.id)?;
            let execs: HashMap<u32, String> = t
                .execs
                .iter()
                .filter(|(_, p)| p.pid != 0)
                .map(|(id, p)| (p.pid, id.clone()))
                .collect();
            (t.husk.clone(), execs)
        };
        let pids = Container::load(&cfg, &req.id)
            .and_then(|c| c.processes())
            .map_err(husk_err)?;
        let mut out = api::PidsResponse::new();
        for pid in pids {
            let pid = pid as u32;
            let info = match execs.get(&pid) {
                Some(exec_id) => MessageField::some(pack(
                    "containerd.runc.v1",
                    &ProcessDetails {
                        exec_id: exec_id.clone(),
                        ..Default::default()
                    },
                )),
                None => MessageField::none(),
            };
            out.processes
                .push(containerd_shim::protos::api::ProcessInfo {
                    pid,
                    info,
                    ..Default::default()
                });
        }
        Ok(out)
    }

    fn pause(&self, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        self.set_paused(&req.id, true)
    }

    fn resume(&self, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        self.set_paused(&req.id, false)
    }

    fn set_paused(&self, id: &str, pause: bool) -> TtrpcResult<api::Empty> {
        let cfg = {
            let mut tasks = self.tasks();
            Self::task(&mut tasks, id)?.husk.clone()
        };
        let mut c = Container::load(&cfg, id).map_err(husk_err)?;
        if pause {
            c.pause().map_err(husk_err)?;
        } else {
            c.resume().map_err(husk_err)?;
        }
        drop(c);
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, id)?;
        if t.init.exit.is_none() {
            t.init.state = if pause { State::Paused } else { State::Running };
        }
        if pause {
            self.events.send(
                topics::TASK_PAUSED_EVENT_TOPIC,
                TaskPaused {
                    container_id: id.into(),
                    ..Default::default()
                },
            );
        } else {
            self.events.send(
                topics::TASK_RESUMED_EVENT_TOPIC,
                TaskResumed {
                    container_id: id.into(),
                    ..Default::default()
                },
            );
        }
        Ok(api::Empty::new())
    }

    fn update(&self, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let resources: oci_spec::runtime::LinuxResources = req
            .resources
            .as_ref()
            .map(|a| serde_json::from_slice(&a.value))
            .transpose()
            .map_err(|e| rpc(Code::INVALID_ARGUMENT, format!("resources: {e}")))?
            .ok_or_else(|| rpc(Code::INVALID_ARGUMENT, "update without resources"))?;
        let cfg = {
            let mut tasks = self.tasks();
            Self::task(&mut tasks, &req.id)?.husk.clone()
        };
        Container::load(&cfg, &req.id)
            .and_then(|c| c.update(resources))
            .map_err(husk_err)?;
        Ok(api::Empty::new())
    }

    fn stats(&self, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        let cg = {
            let mut tasks = self.tasks();
            Self::task(&mut tasks, &req.id)?.cgroup.clone()
        };
        let stats = cg
            .stats()
            .map_err(|e| rpc(Code::UNKNOWN, format!("stats of {}: {e}", req.id)))?;
        let any = crate::metrics::metrics(&cg, &stats).map_err(|e| rpc(Code::INTERNAL, e))?;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    fn resize_pty(&self, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, &req.id)?;
        let p = t.proc(&req.exec_id)?;
        p.io.resize(
            req.height.min(u16::MAX as u32) as u16,
            req.width.min(u16::MAX as u32) as u16,
        )
        .map_err(|e| rpc(Code::UNKNOWN, format!("resize terminal: {e}")))?;
        Ok(api::Empty::new())
    }

    fn close_io(&self, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        let mut tasks = self.tasks();
        let t = Self::task(&mut tasks, &req.id)?;
        let p = t.proc_mut(&req.exec_id)?;
        if req.stdin {
            p.io.close_stdin();
        }
        Ok(api::Empty::new())
    }

    fn connect(&self, req: api::ConnectRequest) -> TtrpcResult<api::ConnectResponse> {
        let mut tasks = self.tasks();
        let task_pid = Self::task(&mut tasks, &req.id)
            .map(|t| t.init.pid)
            .unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            ..Default::default()
        })
    }

    fn shutdown(&self, _: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if !self.tasks().is_empty() {
            // containerd asks after every task's removal; the pod's other
            // containers are still here.
            return Ok(api::Empty::new());
        }
        let exit = self.exit.clone();
        // Answer first, then go.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            exit.notify_one();
        });
        Ok(api::Empty::new())
    }
}

/// Whether the spec gives the container a pid namespace of its own (not
/// one named by path, like the pod's).
fn own_pid_namespace(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid
                    && n.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
            })
        })
}

/// How long each call took goes to the debug log (the pod-start
/// benchmark reads it); every call counts as activity (the shim trims its
/// memory once idle).
/// An error as one line (the status's code and message).
fn err_text(e: &ttrpc::Error) -> String {
    match e {
        ttrpc::Error::RpcStatus(s) => {
            format!("{:?}: {}", s.code.enum_value_or_default(), s.message)
        }
        other => other.to_string(),
    }
}

fn done<T>(inner: &Inner, name: &str, id: &str, t: Instant, r: &TtrpcResult<T>) {
    if let Err(e) = r {
        let e = err_text(e);
        // Kill of an exited process and the like are routine.
        if matches!(name, "create" | "start" | "delete" | "exec") {
            log::warn!("{name} {id}: {e}");
        } else {
            log::debug!("{name} {id}: {e}");
        }
    }
    log::debug!("rpc {name} {id}: {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
    if let Some(m) = inner.monitor.get() {
        m.poke();
    }
}

impl Service {
    /// A call that may block (husk's library, the worker, cgroup files):
    /// on a helper thread, so the server keeps answering.
    async fn blocking<R, T>(
        &self,
        name: &'static str,
        id: String,
        req: R,
        f: fn(&Inner, R) -> TtrpcResult<T>,
    ) -> TtrpcResult<T>
    where
        R: Send + 'static,
        T: Send + 'static,
    {
        let t = Instant::now();
        let inner = self.inner.clone();
        let r = tokio::task::spawn_blocking(move || f(&inner, req))
            .await
            .unwrap_or_else(|e| Err(rpc(Code::INTERNAL, format!("{name}: {e}"))));
        done(&self.inner, name, &id, t, &r);
        r
    }

    /// A call that only reads or changes the shim's own records.
    fn quick<R, T>(
        &self,
        name: &'static str,
        id: String,
        req: R,
        f: fn(&Inner, R) -> TtrpcResult<T>,
    ) -> TtrpcResult<T> {
        let t = Instant::now();
        let r = f(&self.inner, req);
        done(&self.inner, name, &id, t, &r);
        r
    }
}

#[async_trait::async_trait]
impl containerd_shim::protos::shim_async::Task for Service {
    async fn state(
        &self,
        _: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        self.quick("state", req.id.clone(), req, Inner::state)
    }

    async fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        self.blocking("create", req.id.clone(), req, Inner::create)
            .await
    }

    async fn start(
        &self,
        _: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        self.blocking("start", req.id.clone(), req, Inner::start)
            .await
    }

    async fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        self.blocking("delete", req.id.clone(), req, Inner::delete)
            .await
    }

    async fn pids(
        &self,
        _: &TtrpcContext,
        req: api::PidsRequest,
    ) -> TtrpcResult<api::PidsResponse> {
        self.blocking("pids", req.id.clone(), req, Inner::pids)
            .await
    }

    async fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        self.blocking("pause", req.id.clone(), req, Inner::pause)
            .await
    }

    async fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        self.blocking("resume", req.id.clone(), req, Inner::resume)
            .await
    }

    async fn checkpoint(
        &self,
        _: &TtrpcContext,
        _: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        Err(rpc(
            Code::UNIMPLEMENTED,
            "checkpoint is not supported by husk",
        ))
    }

    async fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        self.blocking("kill", req.id.clone(), req, Inner::kill)
            .await
    }

    async fn exec(
        &self,
        _: &TtrpcContext,
        req: api::ExecProcessRequest,
    ) -> TtrpcResult<api::Empty> {
        self.quick("exec", req.id.clone(), req, Inner::exec)
    }

    async fn resize_pty(
        &self,
        _: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        self.quick("resize_pty", req.id.clone(), req, Inner::resize_pty)
    }

    async fn close_io(
        &self,
        _: &TtrpcContext,
        req: api::CloseIORequest,
    ) -> TtrpcResult<api::Empty> {
        self.blocking("close_io", req.id.clone(), req, Inner::close_io)
            .await
    }

    async fn update(
        &self,
        _: &TtrpcContext,
        req: api::UpdateTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        self.blocking("update", req.id.clone(), req, Inner::update)
            .await
    }

    async fn wait(
        &self,
        _: &TtrpcContext,
        req: api::WaitRequest,
    ) -> TtrpcResult<api::WaitResponse> {
        loop {
            // Registered before looking, so no exit slips in between.
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(r) = self.inner.exit_of(&req)? {
                return Ok(r);
            }
            changed.await;
        }
    }

    async fn stats(
        &self,
        _: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        self.blocking("stats", req.id.clone(), req, Inner::stats)
            .await
    }

    async fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        self.quick("connect", req.id.clone(), req, Inner::connect)
    }

    async fn shutdown(
        &self,
        _: &TtrpcContext,
        req: api::ShutdownRequest,
    ) -> TtrpcResult<api::Empty> {
        self.quick("shutdown", String::new(), req, Inner::shutdown)
    }
}
