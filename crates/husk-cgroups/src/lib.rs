//! Container cgroups for husk: cgroup v1 ("legacy"), hybrid and v2 ("unified") hosts.
//!
//! A container's cgroup is a [`CgroupPath`]: one absolute directory per mounted, writable
//! hierarchy (every v1 hierarchy including named ones such as `name=systemd`, plus the
//! cgroup2 mount when there is one). It is computed by [`resolve`] from the host
//! [`Layout`] (one parse of `/proc/self/mountinfo`, cached for the process) and, for a
//! relative `linux.cgroupsPath`, one read of `/proc/self/cgroup`. It is serialisable so the
//! state file can carry it to `delete`.
//!
//! Life cycle: [`resolve`] → [`CgroupPath::create`] → [`CgroupPath::apply`] →
//! [`CgroupPath::add_pid`] or [`CgroupPath::join_fds`] → ... → [`CgroupPath::destroy`].
//!
//! Directory ownership: only the leaf directory of each hierarchy is tracked
//! ([`CgroupDir::created`]). Intermediate directories that `create` had to make (for example
//! `/husk` in `/husk/<id>`) are shared by all containers below them and are deliberately
//! left in place by `destroy`: removing them would race with a concurrent `create` of a
//! sibling. Only a failed `create` removes the intermediate directories it made itself.
//!
//! There is no systemd cgroup driver: making cgroups behind systemd's back (paths it does not
//! know) would fight it on a systemd host, so `--systemd-cgroup` is refused by the caller.
//!
//! On cgroup2 (including the unified hierarchy of a hybrid host, where it is the only home
//! of e.g. hugetlb) `create` enables the available controllers in the parents'
//! `cgroup.subtree_control`, including the root's; that setting is left in place.
//!
//! No threads, D-Bus or helper processes are used. Every wait is bounded by
//! [`WAIT_LIMIT`] (2 s); polls sleep 20 µs at first, doubling up to 1 ms, so that state
//! changes that take microseconds (a frozen cgroup, a killed process leaving) are not
//! rounded up to whole milliseconds.

#![forbid(unsafe_code)]

mod apply;
mod devfilter;
mod layout;
mod stats;
mod util;

#[cfg(test)]
mod host_tests;

use std::fs::{self, DirBuilder};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

pub use apply::{
    blkio_weight_to_io_weight, cpu_max_value, hugepage_sizes, normalize_page_size,
    shares_to_weight, swap_to_v2,
};
pub use layout::{layout, parse_proc_cgroup, Hierarchy, Layout, Mode, ProcCgroup};
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Hugetlb, IntelRdt, Memory, MemoryEntry,
    NetworkInterface, Pids, PsiData, PsiStats, Stats, Throttling,
};

/// Parent of container cgroups when the spec has no `linux.cgroupsPath`.
pub const DEFAULT_PARENT: &str = "/husk";
/// Bound on every wait (freezing, processes exiting, busy rmdir).
pub const WAIT_LIMIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(1);

/// Errors of this module. Every message is a single line naming the spec field or the
/// file involved, with OS errors in lower-case Go style.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A filesystem operation on a cgroup file or directory failed.
    #[error("{op} {}: {}", .path.display(), util::os_msg(.err))]
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// Writing the value of a spec field failed.
    #[error("{field}: {op} {}: {}", .path.display(), util::os_msg(.err))]
    FieldIo {
        field: String,
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// A spec field is invalid or cannot be honoured on this host.
    #[error("{field}: {msg}")]
    Unsupported { field: String, msg: String },
    /// `linux.cgroupsPath` (or the id used to build the default path) is not acceptable.
    #[error("linux.cgroupsPath {path:?}: {msg}")]
    InvalidPath { path: String, msg: String },
    /// A bounded wait expired.
    #[error("{what} {}: timed out after {}ms ({detail})", .path.display(), .timeout.as_millis())]
    Timeout {
        what: &'static str,
        path: PathBuf,
        timeout: Duration,
        detail: String,
    },
}

impl CgroupError {
    /// The underlying OS error, if any (e.g. to test for `ENOENT`).
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            CgroupError::Io { err, .. } | CgroupError::FieldIo { err, .. } => Some(err),
            _ => None,
        }
    }

    pub(crate) fn unsupported(field: impl Into<String>, msg: impl Into<String>) -> Self {
        CgroupError::Unsupported {
            field: field.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, CgroupError>;

/// One container's cgroup, resolved to an absolute directory in every hierarchy.
/// Serialized into the container's state file, so `delete` can find and remove it later
/// even after a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPath {
    pub dirs: Vec<CgroupDir>,
}

/// The container's directory in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    /// e.g. `["cpu"]`, `["cpu","cpuacct"]`, `["name=systemd"]`, or the v2 controllers.
    pub controllers: Vec<String>,
    pub v2: bool,
    /// Absolute, e.g. `/sys/fs/cgroup/memory/husk/abc`.
    pub path: PathBuf,
    /// True if husk created this leaf directory (only those are ever removed).
    pub created: bool,
}

impl CgroupDir {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// How a process puts itself into a container's cgroup: descriptors opened
/// by the runtime (the kernel checks a move against the credentials of the
/// file's opener, so a joiner with fewer privileges, such as boot in a user
/// namespace, can still use them) and used by the joiner on itself.
///
/// A v1 hierarchy is joined by writing "0" into its `tasks` file: every
/// joiner is single-threaded, so moving its one thread moves the process,
/// and unlike `cgroup.procs` this does not take the kernel's global
/// threadgroup lock for writing, whose first writer after a quiet spell
/// waits for an RCU grace period (8-16 ms on the benchmark machine).
/// cgroup2 has no such door (`cgroup.threads` moves threads only within a
/// threaded subtree): there the joiner is born into the directory
/// (`clone3`'s `CLONE_INTO_CGROUP`, which takes that lock only for
/// reading; `husk_sys::process::fork_preferably_into`), and writes
/// `cgroup.procs` only if the kernel refuses that.
#[derive(Debug, Default)]
pub struct JoinFds {
    /// Each v1 hierarchy's `tasks` file, open for writing.
    pub tasks: Vec<OwnedFd>,
    pub v2: Option<Cgroup2Fds>,
}

/// The cgroup2 part of [`JoinFds`].
#[derive(Debug)]
pub struct Cgroup2Fds {
    /// The directory (`O_PATH`), to be born into.
    pub dir: OwnedFd,
    /// Its `cgroup.procs`, open for writing.
    pub procs: OwnedFd,
}

impl JoinFds {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.v2.is_none()
    }

    pub fn try_clone(&self) -> io::Result<JoinFds> {
        Ok(JoinFds {
            tasks: self
                .tasks
                .iter()
                .map(OwnedFd::try_clone)
                .collect::<io::Result<_>>()?,
            v2: self
                .v2
                .as_ref()
                .map(|v| {
                    Ok::<_, io::Error>(Cgroup2Fds {
                        dir: v.dir.try_clone()?,
                        procs: v.procs.try_clone()?,
                    })
                })
                .transpose()?,
        })
    }

    /// The cgroup2 directory to be born into, if any.
    pub fn v2_dir(&self) -> Option<BorrowedFd<'_>> {
        self.v2.as_ref().map(|v| v.dir.as_fd())
    }

    /// Put the calling (single-threaded) process into the cgroup: every
    /// v1 hierarchy, and cgroup2 unless it was born there (`born_in_v2`).
    pub fn join_self(&self, born_in_v2: bool) -> io::Result<()> {
        let v2 = self.v2.as_ref().filter(|_| !born_in_v2).map(|v| &v.procs);
        for fd in self.tasks.iter().chain(v2) {
            nix::unistd::write(fd, b"0")?;
        }
        Ok(())
    }
}

/// Where a container's cgroup goes.
///
/// `spec_path` is `linux.cgroupsPath`:
/// * absolute (`/a/b`): below each hierarchy's root (the root visible at the mountpoint);
/// * relative (`a/b`): below the calling process's own cgroup in each hierarchy, read from
///   `/proc/self/cgroup`;
/// * `None` or empty: `/husk/<id>`.
///
/// Paths with `..` components are rejected, and so is a path naming a hierarchy root.
/// Read-only mounted hierarchies are skipped. When the caller is not root, hierarchies in
/// which the container's directory (or its nearest existing ancestor) is not writable for
/// it are skipped too (root of a user namespace is not root here), so that rootless callers get only delegated hierarchies; when
/// nothing is left the result [`is_empty`](CgroupPath::is_empty). For root, touches the
/// filesystem only to read `/proc/self/mountinfo` (once per process), `/proc/self/cgroup`
/// (relative paths only) and the owner of `/proc/self`.
pub fn resolve(spec_path: Option<&Path>, id: &str) -> Result<CgroupPath> {
    let target = target_path(spec_path, id)?;
    let layout = layout()?;
    let self_cgroup = if target.below_self {
        Some(layout::read_self_cgroup()?)
    } else {
        None
    };
    let mut cg = build(&layout, &target, self_cgroup.as_deref());
    if !husk_sys::ids::is_host_root() {
        cg.dirs.retain(|d| writable_for_us(&d.path));
    }
    Ok(cg)
}

/// Whether `path`, or the nearest ancestor that exists, is writable with our effective ids.
fn writable_for_us(path: &Path) -> bool {
    let mut p = path;
    loop {
        if p.exists() {
            return nix::unistd::eaccess(p, nix::unistd::AccessFlags::W_OK).is_ok();
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

/// [`resolve`] with every input injected (for tests and for callers that already hold the
/// layout and the text of `/proc/self/cgroup`).
pub fn resolve_with(
    layout: &Layout,
    self_cgroup: &str,
    spec_path: Option<&Path>,
    id: &str,
) -> Result<CgroupPath> {
    let target = target_path(spec_path, id)?;
    Ok(build(layout, &target, Some(self_cgroup)))
}

/// A validated cgroup path below a hierarchy root or below our own cgroup.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    rel: PathBuf,
    below_self: bool,
}

fn invalid(path: impl Into<String>, msg: impl Into<String>) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.into(),
        msg: msg.into(),
    }
}

fn target_path(spec_path: Option<&Path>, id: &str) -> Result<Target> {
    let spec = spec_path.filter(|p| !p.as_os_str().is_empty());
    match spec {
        None => {
            let p = format!("{DEFAULT_PARENT}/{id}");
            if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
                return Err(invalid(
                    p,
                    "the container id is not usable as a cgroup name",
                ));
            }
            Ok(Target {
                rel: PathBuf::from(&DEFAULT_PARENT[1..]).join(id),
                below_self: false,
            })
        }
        Some(p) => Ok(Target {
            rel: normalize(p)?,
            below_self: !p.is_absolute(),
        }),
    }
}

/// Strip the root and `.` components; reject `..` and an empty result.
fn normalize(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(invalid(
                    p.to_string_lossy(),
                    "must not contain \"..\" components",
                ))
            }
            Component::Prefix(_) => return Err(invalid(p.to_string_lossy(), "invalid path")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(invalid(
            p.to_string_lossy(),
            "must name a cgroup below the hierarchy root",
        ));
    }
    Ok(out)
}

fn build(layout: &Layout, t: &Target, self_cgroup: Option<&str>) -> CgroupPath {
    let entries = self_cgroup.map(parse_proc_cgroup).unwrap_or_default();
    let dirs = layout
        .hierarchies
        .iter()
        .filter(|h| !h.read_only)
        .map(|h| {
            let base = if t.below_self {
                layout::proc_entry_for(&entries, h)
                    .map(|e| h.dir_of_proc_path(&e.path))
                    .unwrap_or_else(|| h.mountpoint.clone())
            } else {
                h.mountpoint.clone()
            };
            CgroupDir {
                controllers: h.controllers.clone(),
                v2: h.v2,
                path: base.join(&t.rel),
                created: false,
            }
        })
        .collect();
    CgroupPath { dirs }
}

/// How to freeze this cgroup.
enum Freezer {
    /// Path of `freezer.state`.
    V1(PathBuf),
    /// The cgroup2 directory (`cgroup.freeze`, `cgroup.events`).
    V2(PathBuf),
}

impl CgroupPath {
    /// `mkdir -p` in every hierarchy (mode 0755) and record `created` for leaves that did
    /// not exist. Every v1 cpuset level created gets `cpuset.cpus`/`cpuset.mems` copied from
    /// its parent (an uninitialised parent is fixed first). On cgroup2, every created
    /// level's parent gets the controllers of its `cgroup.controllers` enabled in
    /// `cgroup.subtree_control` (best effort: failures, e.g. because the parent has
    /// processes of its own, are logged). On failure everything this call created is removed.
    pub fn create(&mut self) -> Result<()> {
        let mut made: Vec<PathBuf> = Vec::new();
        let before: Vec<bool> = self.dirs.iter().map(|d| d.created).collect();
        for i in 0..self.dirs.len() {
            if let Err(e) = self.create_one(i, &mut made) {
                for p in made.iter().rev() {
                    let _ = fs::remove_dir(p);
                }
                for (d, c) in self.dirs.iter_mut().zip(before) {
                    d.created = c;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn create_one(&mut self, i: usize, made: &mut Vec<PathBuf>) -> Result<()> {
        let start = made.len();
        let d = &self.dirs[i];
        mkdir_p(&d.path, made)?;
        let new = &made[start..];
        if !d.v2 && d.has("cpuset") {
            for p in new {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let v = cpuset_parent_value(p, file)?;
                    util::write(&p.join(file), &v)?;
                }
            }
        }
        if d.v2 {
            for p in new {
                if let Some(parent) = p.parent() {
                    enable_v2_controllers(parent);
                }
            }
        }
        let leaf_created = new.last() == Some(&d.path);
        self.dirs[i].created |= leaf_created;
        Ok(())
    }

    /// What [`create`](Self::create) will make, recorded before it runs:
    /// every leaf that does not exist yet is marked as created, so a caller
    /// killed half-way leaves a record that [`destroy`](Self::destroy) can
    /// clean up from (removing a directory that was never made is a no-op).
    pub fn intent(&self) -> CgroupPath {
        let mut c = self.clone();
        for d in &mut c.dirs {
            d.created |= !d.path.exists();
        }
        c
    }

    /// Write `pid` into `cgroup.procs` in every hierarchy (including `name=systemd` and the
    /// unified one on hybrid hosts).
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        let s = pid.to_string();
        for d in &self.dirs {
            util::write(&d.path.join("cgroup.procs"), &s)?;
        }
        Ok(())
    }

    /// The descriptors a process uses to put itself into this cgroup
    /// ([`JoinFds`]), opened now with this process's credentials.
    pub fn join_fds(&self) -> Result<JoinFds> {
        let open = |path: PathBuf, flags: i32, write: bool| -> Result<OwnedFd> {
            fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .custom_flags(flags | libc::O_CLOEXEC)
                .open(&path)
                .map(OwnedFd::from)
                .map_err(|err| CgroupError::Io {
                    op: "open",
                    path,
                    err,
                })
        };
        let mut fds = JoinFds::default();
        for d in &self.dirs {
            if d.v2 {
                fds.v2 = Some(Cgroup2Fds {
                    dir: open(d.path.clone(), libc::O_PATH | libc::O_DIRECTORY, false)?,
                    procs: open(d.path.join("cgroup.procs"), 0, true)?,
                });
            } else {
                fds.tasks.push(open(d.path.join("tasks"), 0, true)?);
            }
        }
        Ok(fds)
    }

    fn freezer(&self) -> Result<Freezer> {
        if let Some(d) = self.dirs.iter().find(|d| !d.v2 && d.has("freezer")) {
            return Ok(Freezer::V1(d.path.join("freezer.state")));
        }
        if let Some(d) = self.dirs.iter().find(|d| d.v2) {
            return Ok(Freezer::V2(d.path.clone()));
        }
        let msg = if husk_sys::ids::is_host_root() {
            "neither a v1 freezer hierarchy nor cgroup v2 is available on this host".to_string()
        } else {
            format!(
                "uid {} has no cgroup with a freezer that it may write (a delegated cgroup); as a user other than root, pausing needs one",
                nix::unistd::geteuid()
            )
        };
        Err(CgroupError::unsupported("freezer", msg))
    }

    /// Freeze every process. v1: `freezer.state` FROZEN, waiting (1 ms polls, at most 2 s)
    /// until it reads FROZEN; v2: `cgroup.freeze` 1, waiting for `frozen 1` in
    /// `cgroup.events`. On timeout the cgroup is thawed again and an error returned.
    pub fn freeze(&self) -> Result<()> {
        match self.freezer()? {
            Freezer::V1(state) => {
                util::write(&state, "FROZEN")?;
                let mut last = String::new();
                let ok = poll_until(|i| {
                    if i > 0 && i % 50 == 0 {
                        util::write(&state, "FROZEN")?;
                    }
                    last = util::read(&state)?.trim().to_string();
                    Ok(last == "FROZEN")
                })?;
                if !ok {
                    let _ = util::write(&state, "THAWED");
                    return Err(CgroupError::Timeout {
                        what: "freeze",
                        path: state,
                        timeout: WAIT_LIMIT,
                        detail: format!("state {last}"),
                    });
                }
            }
            Freezer::V2(dir) => {
                util::write(&dir.join("cgroup.freeze"), "1")?;
                let events = dir.join("cgroup.events");
                let ok = poll_until(|_| Ok(v2_frozen(&util::read(&events)?)))?;
                if !ok {
                    let _ = util::write(&dir.join("cgroup.freeze"), "0");
                    return Err(CgroupError::Timeout {
                        what: "freeze",
                        path: events,
                        timeout: WAIT_LIMIT,
                        detail: "not frozen".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Undo [`freeze`](Self::freeze) (waits, bounded, until the kernel reports it thawed).
    pub fn thaw(&self) -> Result<()> {
        let (file, ok) = match self.freezer()? {
            Freezer::V1(state) => {
                util::write(&state, "THAWED")?;
                let ok = poll_until(|_| Ok(util::read(&state)?.trim() == "THAWED"))?;
                (state, ok)
            }
            Freezer::V2(dir) => {
                util::write(&dir.join("cgroup.freeze"), "0")?;
                let events = dir.join("cgroup.events");
                let ok = poll_until(|_| Ok(!v2_frozen(&util::read(&events)?)))?;
                (events, ok)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(CgroupError::Timeout {
                what: "thaw",
                path: file,
                timeout: WAIT_LIMIT,
                detail: "still frozen".into(),
            })
        }
    }

    /// Whether the cgroup is (completely) frozen; false when unknown.
    pub fn is_frozen(&self) -> bool {
        match self.freezer() {
            Ok(Freezer::V1(state)) => util::read_raw(&state)
                .map(|s| s.trim() == "FROZEN")
                .unwrap_or(false),
            Ok(Freezer::V2(dir)) => util::read_raw(&dir.join("cgroup.events"))
                .map(|s| v2_frozen(&s))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The directory used to list processes: pids, then memory, then any.
    fn primary(&self) -> Option<&CgroupDir> {
        self.find("pids")
            .or_else(|| self.find("memory"))
            .or_else(|| self.dirs.first())
    }

    /// All pids in the container's cgroup, including descendant cgroups, sorted and
    /// deduplicated, read from one hierarchy (pids, else memory, else any). A cgroup that
    /// does not exist has no processes.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        if let Some(d) = self.primary() {
            collect_procs(&d.path, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Pids found in any hierarchy (used by destroy, which needs every directory empty).
    fn all_pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        for d in &self.dirs {
            collect_procs(&d.path, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Signal every process. For SIGKILL, nothing may fork away while the list is walked:
    /// where cgroup2 has `cgroup.kill` (Linux 5.14+, also the unified directory of a hybrid
    /// host) the kernel kills the whole subtree atomically and any process listed only in v1
    /// hierarchies is killed by pid; otherwise the cgroup is frozen first (best effort),
    /// every process killed, then thawed.
    pub fn signal_all(&self, sig: Signal) -> Result<()> {
        if sig == Signal::SIGKILL {
            let known = self.all_pids()?;
            if known.is_empty() {
                // Nothing can fork into an empty cgroup. And cgroup.kill is
                // not free: on some kernels (6.18 here) every later
                // CLONE_INTO_CGROUP into a cgroup that was once killed is
                // killed at birth, which would make a pre-existing cgroup
                // unusable for the next container.
                return Ok(());
            }
            return self.kill_all(&known);
        }
        for pid in self.pids()? {
            send(pid, sig)?;
        }
        Ok(())
    }

    /// SIGKILL everything; `known` are the pids already listed (from every hierarchy).
    fn kill_all(&self, known: &[i32]) -> Result<()> {
        let killer = self
            .dirs
            .iter()
            .filter(|d| d.v2)
            .map(|d| d.path.join("cgroup.kill"))
            .find(|p| p.exists());
        if let Some(k) = killer {
            util::write(&k, "1")?;
            // processes listed in a v1 hierarchy but not in the v2 cgroup
            for &pid in known {
                send(pid, Signal::SIGKILL)?;
            }
            return Ok(());
        }
        let frozen = match self.freeze() {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("killing without freezing: {e}");
                false
            }
        };
        // once frozen the set cannot grow: list again
        let pids = if frozen {
            self.all_pids()?
        } else {
            known.to_vec()
        };
        let mut res = Ok(());
        for pid in pids {
            if let Err(e) = send(pid, Signal::SIGKILL) {
                res = Err(e);
            }
        }
        if frozen {
            self.thaw()?;
        }
        res
    }

    /// SIGKILL everything and wait (bounded by `start` + [`WAIT_LIMIT`]) until no
    /// hierarchy lists a process.
    fn kill_and_wait(&self, start: Instant) -> Result<()> {
        let pids = self.all_pids()?;
        if pids.is_empty() {
            return Ok(());
        }
        self.kill_all(&pids)?;
        // Poll the primary hierarchy's cgroups (listed once: nothing can create cgroups
        // any more), and confirm with a full scan once they are empty.
        let mut watch = Vec::new();
        if let Some(d) = self.primary() {
            cgroup_tree(&d.path, &mut watch)?;
        }
        let mut i = 0;
        loop {
            let mut left = Vec::new();
            for dir in &watch {
                read_procs(dir, &mut left)?;
            }
            if left.is_empty() {
                left = self.all_pids()?;
                if left.is_empty() {
                    return Ok(());
                }
            }
            if start.elapsed() >= WAIT_LIMIT {
                return Err(CgroupError::Timeout {
                    what: "waiting for the processes to exit in",
                    path: self.primary().map(|d| d.path.clone()).unwrap_or_default(),
                    timeout: WAIT_LIMIT,
                    detail: format!("{} left, e.g. pid {}", left.len(), left[0]),
                });
            }
            // dying processes stay listed for a moment; one that raced in gets killed too
            for &pid in &left {
                let _ = send(pid, Signal::SIGKILL);
            }
            sleep(backoff(i));
            i += 1;
        }
    }

    /// Kill everything left, wait (at most 2 s, polling at up to 1 ms intervals) until no
    /// hierarchy lists a process, then remove every leaf directory with `created == true`
    /// (and the child cgroups inside it, deepest first). Idempotent: missing directories are
    /// fine. Directories with `created == false` are never removed.
    ///
    /// Fast path: each created leaf is first removed with a single rmdir, which the kernel
    /// refuses (EBUSY) while the cgroup has processes or child cgroups; only then are the
    /// processes of every hierarchy killed and waited for, and the tree removed. Leaves not
    /// created by husk are searched for processes (recursively) up front instead.
    pub fn destroy(&self) -> Result<()> {
        let start = Instant::now();
        let mut killed = false;
        for d in self.dirs.iter().filter(|d| !d.created) {
            let mut v = Vec::new();
            collect_procs(&d.path, &mut v)?;
            if !v.is_empty() {
                self.kill_and_wait(start)?;
                killed = true;
                break;
            }
        }
        let mut res = Ok(());
        for d in self.dirs.iter().filter(|d| d.created) {
            match fs::remove_dir(&d.path) {
                Ok(()) => continue,
                Err(e) if util::is_not_found(&e) => continue,
                Err(_) => {}
            }
            if !killed {
                self.kill_and_wait(start)?;
                killed = true;
            }
            if let Err(e) = remove_tree(&d.path, start) {
                if res.is_ok() {
                    res = Err(e);
                }
            }
        }
        res
    }

    /// The number of OOM kills recorded for this cgroup (v1 `memory.oom_control`, v2
    /// `memory.events`, field `oom_kill`); 0 if unknown.
    pub fn oom_kills(&self) -> u64 {
        let Some(d) = self.find("memory") else {
            return 0;
        };
        let file = if d.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        util::read_raw(&d.path.join(file))
            .ok()
            .and_then(|t| util::kv_get(&t, "oom_kill"))
            .unwrap_or(0)
    }

    /// The directory holding `controller` ("memory", "freezer", "name=systemd", ...),
    /// preferring v1 (on hybrid hosts a controller lives in exactly one hierarchy).
    pub fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.find(controller).map(|d| d.path.as_path())
    }

    /// The cgroup2 directory, if the host has a cgroup2 mount.
    /// Device rules where no v1 devices controller enforces them: an eBPF
    /// filter on the cgroup v2 directory. The container layer calls this
    /// when it creates the cgroup (the sandbox's own seccomp filter denies
    /// it bpf(2)); `apply` leaves device rules on v2 to it.
    pub fn attach_device_filter(
        &self,
        rules: &[oci_spec::runtime::LinuxDeviceCgroup],
    ) -> Result<()> {
        if self.find("devices").is_some_and(|d| !d.v2) {
            return Ok(());
        }
        match self.unified_dir() {
            Some(dir) if !rules.is_empty() => devfilter::attach(dir, rules),
            _ => Ok(()),
        }
    }

    pub fn unified_dir(&self) -> Option<&Path> {
        self.dirs.iter().find(|d| d.v2).map(|d| d.path.as_path())
    }

    /// True when the host has no writable cgroup hierarchy at all (nothing mounted, or only
    /// read-only mounts as in an unprivileged container): every operation is then a no-op
    /// and callers should skip resource limits.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    pub(crate) fn find(&self, controller: &str) -> Option<&CgroupDir> {
        self.dirs
            .iter()
            .filter(|d| !d.v2)
            .chain(self.dirs.iter().filter(|d| d.v2))
            .find(|d| d.has(controller))
    }
}

/// Sleep before poll number `i`: 20 µs doubling up to 1 ms, so that the common fast case
/// (a state change that takes microseconds) is not rounded up to a full millisecond while
/// long waits still poll at ~1 ms.
fn backoff(i: u32) -> Duration {
    Duration::from_micros((20u64 << i.min(6)).min(1000))
}

/// Run `f` until it returns true or [`WAIT_LIMIT`] passes (see [`backoff`]).
fn poll_until(mut f: impl FnMut(u32) -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    let mut i = 0;
    loop {
        if f(i)? {
            return Ok(true);
        }
        if start.elapsed() >= WAIT_LIMIT {
            return Ok(false);
        }
        sleep(backoff(i));
        i += 1;
    }
}

fn v2_frozen(events: &str) -> bool {
    util::kv_get(events, "frozen") == Some(1)
}

fn send(pid: i32, sig: Signal) -> Result<()> {
    match kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(CgroupError::Io {
            op: "kill",
            path: PathBuf::from(format!("/proc/{pid}")),
            err: io::Error::from_raw_os_error(e as i32),
        }),
    }
}

/// mkdir -p that records (top-down) every directory it created.
fn mkdir_p(path: &Path, made: &mut Vec<PathBuf>) -> Result<()> {
    let mkdir = |p: &Path| DirBuilder::new().mode(0o755).create(p);
    match mkdir(path) {
        Ok(()) => {
            made.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if util::is_not_found(&e) && path.parent().is_some() => {
            mkdir_p(path.parent().unwrap_or(path), made)?;
            match mkdir(path) {
                Ok(()) => {
                    made.push(path.to_path_buf());
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(err) => Err(CgroupError::Io {
                    op: "mkdir",
                    path: path.to_path_buf(),
                    err,
                }),
            }
        }
        Err(err) => Err(CgroupError::Io {
            op: "mkdir",
            path: path.to_path_buf(),
            err,
        }),
    }
}

/// The value of `file` in `dir`'s parent, initialising the parent first if it is empty.
fn cpuset_parent_value(dir: &Path, file: &str) -> Result<String> {
    let parent = dir.parent().ok_or_else(|| CgroupError::Io {
        op: "read",
        path: dir.join(file),
        err: io::Error::from_raw_os_error(libc::ENOENT),
    })?;
    let v = util::read(&parent.join(file))?.trim().to_string();
    if !v.is_empty() {
        return Ok(v);
    }
    let v = cpuset_parent_value(parent, file)?;
    util::write(&parent.join(file), &v)?;
    Ok(v)
}

/// Enable in `parent` every controller it has available but not yet delegated.
fn enable_v2_controllers(parent: &Path) {
    let Ok(avail) = util::read_raw(&parent.join("cgroup.controllers")) else {
        return;
    };
    let enabled = util::read_raw(&parent.join("cgroup.subtree_control")).unwrap_or_default();
    let missing: Vec<&str> = avail
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .collect();
    if missing.is_empty() {
        return;
    }
    let file = parent.join("cgroup.subtree_control");
    let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    if util::write_raw(&file, &all.join(" ")).is_ok() {
        return;
    }
    for c in missing {
        if let Err((op, e)) = util::write_raw(&file, &format!("+{c}")) {
            tracing::warn!(
                "cannot enable the {c} controller: {op} {}: {}",
                file.display(),
                util::os_msg(&e)
            );
        }
    }
}

/// Append the pids listed in `dir`'s own `cgroup.procs`; false if `dir` does not exist.
fn read_procs(dir: &Path, out: &mut Vec<i32>) -> Result<bool> {
    let procs = dir.join("cgroup.procs");
    match util::read_raw(&procs) {
        Ok(t) => {
            out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            Ok(true)
        }
        Err(e) if util::is_not_found(&e) || e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(err) => Err(CgroupError::Io {
            op: "read",
            path: procs,
            err,
        }),
    }
}

/// Append the pids of `dir` and all its descendants; a missing directory adds nothing.
fn collect_procs(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    if read_procs(dir, out)? {
        for sub in subdirs(dir)? {
            collect_procs(&sub, out)?;
        }
    }
    Ok(())
}

/// `dir` and every cgroup below it (parents before children).
fn cgroup_tree(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    out.push(dir.to_path_buf());
    for sub in subdirs(dir)? {
        cgroup_tree(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if util::is_not_found(&e) => return Ok(Vec::new()),
        Err(err) => {
            return Err(CgroupError::Io {
                op: "readdir",
                path: dir.to_path_buf(),
                err,
            })
        }
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// rmdir `dir` and its child cgroups, deepest first, retrying EBUSY until the deadline.
fn remove_tree(dir: &Path, start: Instant) -> Result<()> {
    for sub in subdirs(dir)? {
        remove_tree(&sub, start)?;
    }
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if util::is_not_found(&e) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < WAIT_LIMIT => {
                sleep(POLL)
            }
            Err(err) => {
                return Err(CgroupError::Io {
                    op: "rmdir",
                    path: dir.to_path_buf(),
                    err,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::layout::fixtures::{HYBRID, LEGACY, UNIFIED};
    use super::*;

    const SELF_HYBRID: &str = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n4:memory:/process_api/5022d7\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    fn hybrid() -> Layout {
        Layout::parse(HYBRID, |_| vec!["hugetlb".into()])
    }

    fn dir<'a>(cg: &'a CgroupPath, ctrl: &str) -> &'a Path {
        cg.dir_of(ctrl).unwrap()
    }

    #[test]
    fn default_path() {
        let cg = resolve_with(&hybrid(), SELF_HYBRID, None, "abc").unwrap();
        assert_eq!(cg.dirs.len(), 10);
        assert_eq!(
            dir(&cg, "memory"),
            Path::new("/sys/fs/cgroup/memory/husk/abc")
        );
        assert_eq!(
            dir(&cg, "name=systemd"),
            Path::new("/sys/fs/cgroup/systemd/husk/abc")
        );
        assert_eq!(
            dir(&cg, "hugetlb"),
            Path::new("/sys/fs/cgroup/unified/husk/abc")
        );
        assert_eq!(
            cg.unified_dir(),
            Some(Path::new("/sys/fs/cgroup/unified/husk/abc"))
        );
        assert!(cg.dirs.iter().all(|d| !d.created));
        assert!(cg.dir_of("net_cls").is_none());
        // empty path = default
        let cg2 = resolve_with(&hybrid(), "", Some(Path::new("")), "abc").unwrap();
        assert_eq!(cg, cg2);
    }

    #[test]
    fn absolute_path() {
        let cg = resolve_with(&hybrid(), SELF_HYBRID, Some(Path::new("/a/./b")), "x").unwrap();
        assert_eq!(dir(&cg, "memory"), Path::new("/sys/fs/cgroup/memory/a/b"));
        assert_eq!(dir(&cg, "cpu"), Path::new("/sys/fs/cgroup/cpu/a/b"));
        let l = Layout::parse(LEGACY, |_| vec![]);
        let cg = resolve_with(&l, "", Some(Path::new("/a/b")), "x").unwrap();
        assert_eq!(
            dir(&cg, "cpuacct"),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/a/b")
        );
        assert_eq!(cg.dirs.len(), 11);
    }

    #[test]
    fn relative_path() {
        let cg = resolve_with(&hybrid(), SELF_HYBRID, Some(Path::new("a/b")), "x").unwrap();
        assert_eq!(
            dir(&cg, "memory"),
            Path::new("/sys/fs/cgroup/memory/process_api/5022d7/a/b")
        );
        assert_eq!(dir(&cg, "pids"), Path::new("/sys/fs/cgroup/pids/a/b"));
        let l = Layout::parse(UNIFIED, |_| vec!["memory".into(), "pids".into()]);
        let cg = resolve_with(
            &l,
            "0::/user.slice/session-1.scope\n",
            Some(Path::new("c")),
            "x",
        )
        .unwrap();
        assert_eq!(cg.dirs.len(), 1);
        assert_eq!(
            dir(&cg, "memory"),
            Path::new("/sys/fs/cgroup/user.slice/session-1.scope/c")
        );
    }

    #[test]
    fn rejects_bad_paths() {
        for p in ["/a/../b", "../x", "a/..", "/", ".", ""] {
            let r = resolve_with(&hybrid(), SELF_HYBRID, Some(Path::new(p)), "");
            let e = r.unwrap_err().to_string();
            assert!(e.starts_with("linux.cgroupsPath"), "{p}: {e}");
            assert!(!e.contains('\n'));
        }
        let e = resolve_with(&hybrid(), "", Some(Path::new("/a/../b")), "x")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "linux.cgroupsPath \"/a/../b\": must not contain \"..\" components"
        );
        for id in ["..", "a/b", ""] {
            assert!(resolve_with(&hybrid(), "", None, id).is_err());
        }
    }

    #[test]
    fn read_only_and_empty_layouts() {
        let ro = "27 24 0:25 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";
        let l = Layout::parse(ro, |_| vec![]);
        let cg = resolve_with(&l, "", None, "x").unwrap();
        assert!(cg.is_empty());
        assert_eq!(cg.oom_kills(), 0);
        assert!(cg.pids().unwrap().is_empty());
        let cg = resolve_with(&hybrid(), "", None, "x").unwrap();
        assert!(!cg.is_empty());
    }

    #[test]
    fn state_round_trip() {
        let cg = resolve_with(&hybrid(), SELF_HYBRID, None, "abc").unwrap();
        let j = serde_json::to_string(&cg).unwrap();
        assert!(j.starts_with("{\"dirs\":[{\"controllers\":[\"cpu\"],\"v2\":false,\"path\":\"/sys/fs/cgroup/cpu/husk/abc\",\"created\":false}"));
        let back: CgroupPath = serde_json::from_str(&j).unwrap();
        assert_eq!(back, cg);
    }

    #[test]
    fn error_messages_are_one_line() {
        let e = CgroupError::FieldIo {
            field: "linux.resources.memory.swap".into(),
            op: "write",
            path: "/sys/fs/cgroup/memory/x/memory.memsw.limit_in_bytes".into(),
            err: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.swap: write /sys/fs/cgroup/memory/x/memory.memsw.limit_in_bytes: no such file or directory"
        );
        assert_eq!(e.os_error().unwrap().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn missing_dirs_are_fine() {
        let mut cg = CgroupPath {
            dirs: vec![CgroupDir {
                controllers: vec!["memory".into()],
                v2: false,
                path: "/nonexistent/husk-test/a".into(),
                created: true,
            }],
        };
        assert!(cg.pids().unwrap().is_empty());
        cg.destroy().unwrap();
        cg.dirs[0].created = false;
        cg.destroy().unwrap();
        assert!(!cg.is_frozen());
    }
}
