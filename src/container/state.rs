//! The container's state file (`<root>/<id>/state.json`) and the OCI state
//! JSON that `state` prints and hooks read.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hooks, Process};
use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupPath;
use crate::error::{Error, IoContext, Result};

pub const STATE_FILE: &str = "state.json";
pub use husk_oci::state::{OciState, ProcRef};
pub use husk_oci::OCI_VERSION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The sandbox a container lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRef {
    /// The sandbox id (= the root container's id).
    pub id: String,
    pub boot: ProcRef,
    /// The control protocol its boot speaks (boot outlives an upgrade of
    /// the binary that started it).
    #[serde(default)]
    pub protocol: u32,
}

/// What husk writes in `runtime` of its state files: a root shared with
/// runc (Docker passes the same `--root` to every runtime) holds state
/// files of both, and husk leaves runc's alone.
pub const RUNTIME_NAME: &str = "husk";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Always [`RUNTIME_NAME`].
    #[serde(default)]
    pub runtime: String,
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, as runc writes it.
    pub created: String,
    pub owner_uid: u32,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The last status the runtime recorded; `Container::status` refines it
    /// with liveness checks.
    pub status: Status,
    pub init: Option<ProcRef>,
    pub sandbox: Option<SandboxRef>,
    #[serde(default)]
    pub cgroup: CgroupPath,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// Whether this container is its sandbox's root container.
    pub is_root: bool,
    /// The container's process, the defaults for `exec`.
    #[serde(default)]
    pub process: Option<Process>,
    /// The `husk create` that made the container, while it is creating.
    #[serde(default)]
    pub creator: Option<ProcRef>,
    /// The seccomp profile's listenerPath and listenerMetadata: who gets
    /// the notify descriptors of the container's processes.
    #[serde(default)]
    pub seccomp_listener: Option<(PathBuf, String)>,
    /// The first host id of the range `--userns=auto` gave the pod (the
    /// root container holds it; members record it to map their mounts).
    #[serde(default)]
    pub userns_base: Option<u32>,
}

impl State {
    /// Read the state file in `dir`. A missing file means the container does
    /// not exist (or is being deleted).
    pub fn read(dir: BorrowedFd<'_>, id: &str) -> Result<Self> {
        let fd = match crate::sys::fd::openat(
            dir,
            Path::new(STATE_FILE),
            libc::O_RDONLY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(e).with_ctx(|| format!("open state of container {id:?}")),
        };
        let file = File::from(fd);
        // A state file names hooks that `delete` runs as us: only one we
        // could have written ourselves is believed.
        let meta = file
            .metadata()
            .with_ctx(|| format!("state of container {id:?}"))?;
        {
            use std::os::unix::fs::MetadataExt;
            let me = nix::unistd::geteuid().as_raw();
            if meta.uid() != me || meta.mode() & 0o022 != 0 || !meta.is_file() {
                return Err(Error::Invalid(format!(
                    "state of container {id:?} is not trustworthy: owned by uid {}, mode {:o} (want uid {me}, not writable by others)",
                    meta.uid(),
                    meta.mode() & 0o7777
                )));
            }
        }
        serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| Error::Invalid(format!("state of container {id:?} is corrupt: {e}")))
    }

    /// Replace the state file atomically: write a temporary file in the same
    /// directory, then rename it over the old one. Readers see the old or the
    /// new file, never a torn one.
    pub fn write(&self, dir: BorrowedFd<'_>) -> Result<()> {
        let tmp = format!(".{STATE_FILE}.tmp");
        let fd = crate::sys::fd::openat(
            dir,
            Path::new(&tmp),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o600,
        )
        .with_ctx(|| format!("write state of container {:?}", self.id))?;
        let mut file = File::from(fd);
        let body = serde_json::to_vec(self).map_err(|e| Error::Invalid(e.to_string()))?;
        file.write_all(&body)
            .with_ctx(|| format!("write state of container {:?}", self.id))?;
        drop(file);
        nix::fcntl::renameat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            Some(dir.as_raw_fd()),
            STATE_FILE,
        )
        .with_ctx(|| format!("save state of container {:?}", self.id))?;
        Ok(())
    }

    /// The status as it is now: a recorded live status whose init has died
    /// (or whose pid was reused) is `Stopped`.
    pub fn current_status(&self) -> Status {
        match self.status {
            // A create that died half-way never finishes.
            Status::Creating if self.creator.is_some_and(|c| !c.is_alive()) => Status::Stopped,
            Status::Creating => Status::Creating,
            Status::Stopped => Status::Stopped,
            s => {
                let alive = self.init.is_some_and(|p| p.is_alive());
                if !alive {
                    Status::Stopped
                } else if s == Status::Created && !self.init_has_exec_ed() {
                    Status::Created
                } else if self.cgroup_frozen() {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
        }
    }

    fn cgroup_frozen(&self) -> bool {
        self.cgroup.is_frozen()
    }

    /// Whether the init runs the container's program already: until then
    /// it runs husk (from a read-only clone of the husk binary). A `start`
    /// killed after boot released the init never recorded `running`; this
    /// tells the truth anyway.
    fn init_has_exec_ed(&self) -> bool {
        let Some(init) = self.init else { return false };
        crate::sandbox::runs_husk(init.pid) == Some(false)
    }

    pub fn owner_name(&self) -> String {
        if self.owner_uid == 0 {
            return "root".into();
        }
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(self.owner_uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("#{}", self.owner_uid))
    }

    /// The OCI state as `state` prints it.
    pub fn oci_state(&self) -> OciState {
        let status = self.current_status();
        let pid = match status {
            Status::Stopped | Status::Creating => 0,
            _ => self.init.map(|p| p.pid).unwrap_or(0),
        };
        OciState {
            oci_version: OCI_VERSION.to_string(),
            id: self.id.clone(),
            status: status.to_string(),
            pid,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner_name(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Write `contents` to `path` atomically (temporary file + rename), for pid
/// files that a waiting client may read at any moment.
pub fn write_file_atomic(path: &std::path::Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.husk-tmp", name.to_string_lossy()));
    std::fs::write(&tmp, contents).with_ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_ctx(|| format!("write {}", path.display()))?;
    Ok(())
}
