//! One thread that watches everything that happens on its own: processes
//! exiting (boot answers a `Wait`/`WaitExec` connection per process, or
//! closes them all when it dies), OOM kills in a container's cgroup (v1:
//! an eventfd on `memory.oom_control`; v2: inotify on `memory.events`),
//! and the shim going idle (it then gives memory back).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use husk::cgroups::CgroupPath;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// What the monitor reports.
#[derive(Debug)]
pub enum Event {
    /// A process exited with this status; `None` when boot went away
    /// without saying (it died, and the process with it).
    Exited {
        id: String,
        exec_id: String,
        status: Option<i32>,
    },
    /// The container's cgroup saw an OOM kill.
    Oom { id: String },
}

enum Source {
    /// A Wait or WaitExec connection.
    Exit {
        id: String,
        exec_id: String,
        conn: UnixStream,
    },
    /// cgroup v1: an eventfd registered for memory.oom_control.
    OomV1 {
        id: String,
        efd: EventFd,
        dir: PathBuf,
    },
    /// cgroup v2: inotify on memory.events.
    OomV2 {
        id: String,
        inotify: Inotify,
        dir: PathBuf,
        kills: u64,
    },
}

impl Source {
    fn fd(&self) -> i32 {
        match self {
            Source::Exit { conn, .. } => conn.as_raw_fd(),
            Source::OomV1 { efd, .. } => efd.as_fd().as_raw_fd(),
            Source::OomV2 { inotify, .. } => inotify.as_fd().as_raw_fd(),
        }
    }

    fn id(&self) -> &str {
        match self {
            Source::Exit { id, .. } | Source::OomV1 { id, .. } | Source::OomV2 { id, .. } => id,
        }
    }
}

struct Shared {
    sources: Mutex<HashMap<u64, Source>>,
    wake: EventFd,
    /// Something happened since the last trim.
    busy: AtomicBool,
}

/// The handle RPCs use to add and remove what is watched.
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
    next: Arc<Mutex<u64>>,
}

/// How long the shim must have been idle before it trims its memory.
const TRIM_AFTER: Duration = Duration::from_millis(500);

impl Monitor {
    /// Start the thread; `report` is called from it for every event.
    pub fn start(report: impl Fn(Event) + Send + 'static) -> std::io::Result<Monitor> {
        let shared = Arc::new(Shared {
            sources: Mutex::new(HashMap::new()),
            wake: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
            busy: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("monitor".into())
            .stack_size(256 << 10)
            .spawn(move || run(&s, &report))?;
        Ok(Monitor {
            shared,
            next: Arc::new(Mutex::new(1)),
        })
    }

    fn add(&self, src: Source) {
        let key = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        self.shared
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, src);
        self.poke();
    }

    /// Wake the thread (something changed; trim once idle again).
    pub fn poke(&self) {
        self.shared.busy.store(true, Ordering::Relaxed);
        let _ = self.shared.wake.write(1);
    }

    /// Report when the process behind this Wait/WaitExec connection exits.
    pub fn watch_exit(&self, id: &str, exec_id: &str, conn: UnixStream) {
        self.add(Source::Exit {
            id: id.into(),
            exec_id: exec_id.into(),
            conn,
        });
    }

    /// Report OOM kills in the container's cgroup.
    pub fn watch_oom(&self, id: &str, cg: &CgroupPath) -> std::io::Result<()> {
        let Some(dir) = cg
            .dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == "memory"))
        else {
            return Ok(());
        };
        let src = if dir.v2 {
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
            inotify.add_watch(&dir.path.join("memory.events"), AddWatchFlags::IN_MODIFY)?;
            Source::OomV2 {
                id: id.into(),
                inotify,
                kills: oom_kills(&dir.path, true),
                dir: dir.path.clone(),
            }
        } else {
            let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC)?;
            let ctl = std::fs::File::open(dir.path.join("memory.oom_control"))?;
            std::fs::write(
                dir.path.join("cgroup.event_control"),
                format!("{} {}", efd.as_fd().as_raw_fd(), ctl.as_raw_fd()),
            )?;
            Source::OomV1 {
                id: id.into(),
                efd,
                dir: dir.path.clone(),
            }
        };
        self.add(src);
        Ok(())
    }

    /// Stop watching everything of container `id`.
    pub fn forget(&self, id: &str) {
        self.shared
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.id() != id);
        self.poke();
    }
}

/// The `oom_kill` counter of a memory cgroup directory.
pub fn oom_kills(dir: &Path, v2: bool) -> u64 {
    let file = if v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn run(shared: &Shared, report: &dyn Fn(Event)) {
    let mut idle_since: Option<Instant> = None;
    loop {
        let (mut fds, keys): (Vec<libc::pollfd>, Vec<u64>) = {
            let sources = shared.sources.lock().unwrap_or_else(|e| e.into_inner());
            sources
                .iter()
                .map(|(k, s)| (husk_sys::pollfd(s.fd(), libc::POLLIN), *k))
                .unzip()
        };
        fds.push(husk_sys::pollfd(
            shared.wake.as_fd().as_raw_fd(),
            libc::POLLIN,
        ));
        let timeout = match idle_since {
            Some(t) => TRIM_AFTER.saturating_sub(t.elapsed()).as_millis().max(1) as i32,
            None => -1,
        };
        if husk_sys::poll(&mut fds, timeout).is_err() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let woken = fds.last().is_some_and(|f| f.revents != 0);
        if woken {
            let _ = shared.wake.read();
        }
        let mut events = Vec::new();
        {
            let mut sources = shared.sources.lock().unwrap_or_else(|e| e.into_inner());
            for (pfd, key) in fds.iter().zip(&keys) {
                if pfd.revents == 0 {
                    continue;
                }
                let remove = match sources.get_mut(key) {
                    None => false,
                    Some(Source::Exit { id, exec_id, conn }) => {
                        let status = husk::sandbox::read_exit(conn).map(|s| s.0);
                        events.push(Event::Exited {
                            id: id.clone(),
                            exec_id: exec_id.clone(),
                            status,
                        });
                        true
                    }
                    Some(Source::OomV1 { id, efd, dir }) => {
                        let _ = efd.read();
                        if dir.is_dir() {
                            events.push(Event::Oom { id: id.clone() });
                            false
                        } else {
                            // The event that says the cgroup is gone.
                            true
                        }
                    }
                    Some(Source::OomV2 {
                        id,
                        inotify,
                        dir,
                        kills,
                    }) => {
                        let _ = inotify.read_events();
                        let now = oom_kills(dir, true);
                        if now > *kills {
                            *kills = now;
                            events.push(Event::Oom { id: id.clone() });
                        }
                        !dir.is_dir()
                    }
                };
                if remove {
                    sources.remove(key);
                }
            }
        }
        // OOM first: the CRI sets OOMKilled only if the OOM event comes
        // before it handles the exit.
        events.sort_by_key(|e| !matches!(e, Event::Oom { .. }));
        let had_events = !events.is_empty();
        for e in events {
            report(e);
        }
        if woken || had_events || shared.busy.swap(false, Ordering::Relaxed) {
            idle_since = Some(Instant::now());
        } else if idle_since.is_some_and(|t| t.elapsed() >= TRIM_AFTER) {
            idle_since = None;
            husk_sys::memory::trim_idle();
        }
    }
}
