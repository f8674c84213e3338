//! The control protocol between the CLI (through the sandbox layer) and
//! `husk boot`, and between `husk gofer` and boot: length-prefixed JSON
//! messages over AF_UNIX stream sockets, with descriptors alongside
//! (SCM_RIGHTS).

pub use crate::wire;

use std::path::PathBuf;

use oci_spec::runtime::{LinuxResources, Process, Spec};
use serde::{Deserialize, Serialize};

/// Everything boot needs to build one container.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateContainer {
    pub id: String,
    pub bundle: PathBuf,
    pub spec: Box<Spec>,
    /// Cgroup placement, decided by the container layer.
    pub cgroup: husk_cgroups::CgroupPath,
    /// Attached descriptors, by index into the message's descriptor list.
    pub fds: CreateFds,
    /// The container state JSON that hooks read on stdin, minus what boot
    /// fills in (pid, status).
    pub hook_state: crate::state::OciState,
    /// The compiled seccomp filters (spec profile and husk's baseline), for
    /// the init and every process exec'd into the container.
    pub seccomp: Option<husk_seccomp::Prepared>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct CreateFds {
    /// stdin, stdout, stderr for the container's process; absent for the
    /// root container, whose process inherits boot's own.
    pub stdio: Option<[usize; 3]>,
    /// A connected console socket to send the pty master to.
    pub console_socket: Option<usize>,
    /// The gofer's end of the mount-descriptor channel (proxy file access).
    pub gofer: Option<usize>,
    /// Descriptors the process gets at 3, 4, ... (`--preserve-fds`).
    #[serde(default)]
    pub preserved: Vec<usize>,
}

/// A process to run in an existing container (`husk exec`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecProcess {
    pub id: String,
    pub process: Box<Process>,
    /// stdin, stdout, stderr.
    pub stdio: [usize; 3],
    pub console_socket: Option<usize>,
    /// Descriptors the process gets at 3, 4, ... (`--preserve-fds`).
    #[serde(default)]
    pub preserved: Vec<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Request {
    Create(Box<CreateContainer>),
    Start {
        id: String,
    },
    Signal {
        id: String,
        signal: i32,
        all: bool,
    },
    /// Reply once the container's init has exited. With `kill_on_close`,
    /// the caller stands in for the container (a pid-file waiter of a pod
    /// sub-container): if its connection goes away first, the container is
    /// killed.
    Wait {
        id: String,
        kill_on_close: bool,
    },
    /// Reply once the process `pid` (started by Exec) has exited. With
    /// `kill_on_close`, the caller stands in for the process (a pid-file
    /// waiter): if its connection goes away first, the process is killed.
    WaitPid {
        pid: i32,
        kill_on_close: bool,
    },
    Exec(Box<ExecProcess>),
    Processes {
        id: String,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Stats {
        id: String,
    },
    Update {
        id: String,
        resources: Box<LinuxResources>,
    },
    /// Kill the container's processes, wait for them, and forget it. For the
    /// root container, boot exits afterwards.
    Destroy {
        id: String,
    },
}

/// How a process ended, as a shell reports it: the exit code, or 128 plus
/// the number of the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus(pub i32);

impl ExitStatus {
    pub fn from_wait(status: nix::sys::wait::WaitStatus) -> Option<Self> {
        use nix::sys::wait::WaitStatus::*;
        match status {
            Exited(_, code) => Some(ExitStatus(code)),
            Signaled(_, sig, _) => Some(ExitStatus(128 + sig as i32)),
            _ => None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result")]
pub enum Response {
    Ok,
    Created { pid: i32, start_time: u64 },
    Exec { pid: i32, start_time: u64 },
    Exited { status: ExitStatus },
    Pids { pids: Vec<i32> },
    Stats { stats: Box<serde_json::Value> },
    Error { message: String },
}
