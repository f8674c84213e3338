//! The control protocol between the container layer (the CLI, or the shim)
//! and `husk boot`: length-prefixed JSON messages over the sandbox's
//! AF_UNIX stream socket, with descriptors alongside (SCM_RIGHTS); see
//! [`crate::wire`].
//!
//! boot lives inside the sandbox and sees no host path, so it only does what
//! needs the sandbox: creating a container's init, starting it, running
//! processes in a container, reporting exits, and tearing containers down.
//! Cgroups (stats, pause, update, listing processes) and signals are the
//! container layer's business: it reaches them from the host.
//!
//! Some requests are conversations on one connection: boot answers
//! [`Response::Forked`] (with a pidfd) as soon as the process exists, may
//! ask for hooks to be run ([`Response::RunHooks`], answered with
//! [`Request::HooksDone`]) or hand over a seccomp notify descriptor
//! ([`Response::SeccompListener`]), and ends with a final answer.

use oci_spec::runtime::{Process, Spec};
use serde::{Deserialize, Serialize};

pub use crate::wire;

/// Version of this protocol. Recorded with each sandbox, since a running
/// boot outlives an upgrade of the binary that talks to it.
pub const PROTOCOL: u32 = 2;

/// Kinds of namespaces, as the spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    User,
    Pid,
    Net,
    Ipc,
    Uts,
    Mount,
    Cgroup,
    Time,
}

impl NsKind {
    /// The CLONE_NEW* flag.
    pub fn flag(self) -> u64 {
        (match self {
            NsKind::User => libc::CLONE_NEWUSER,
            NsKind::Pid => libc::CLONE_NEWPID,
            NsKind::Net => libc::CLONE_NEWNET,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Uts => libc::CLONE_NEWUTS,
            NsKind::Mount => libc::CLONE_NEWNS,
            NsKind::Cgroup => libc::CLONE_NEWCGROUP,
            NsKind::Time => libc::CLONE_NEWTIME,
        }) as u64
    }

    /// The name under /proc/<pid>/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Pid => "pid",
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Mount => "mnt",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
        }
    }

    /// The name in the spec's `linux.namespaces[].type`.
    pub fn spec_name(self) -> &'static str {
        match self {
            NsKind::Net => "network",
            NsKind::Mount => "mount",
            other => other.proc_name(),
        }
    }

    pub const ALL: [NsKind; 8] = [
        NsKind::User,
        NsKind::Pid,
        NsKind::Net,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Mount,
        NsKind::Cgroup,
        NsKind::Time,
    ];
}

/// The namespaces of a container's init, decided by the container layer
/// (which can resolve the spec's paths on the host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitNamespaces {
    /// Created for the init (at fork, or right after for cgroup and time).
    pub new: Vec<NsKind>,
    /// Joined, in this order: (kind, index of the descriptor in the
    /// request's descriptor list).
    pub join: Vec<(NsKind, usize)>,
    /// Namespaces the container owns (created or named by its spec): its
    /// hostname and sysctls are set there. A pod member that only shares
    /// its pod's does not own it.
    pub owned: Vec<NsKind>,
    /// Namespaces made anew for this container (by the init's fork, or by
    /// boot's birth for the root container): a fresh network namespace
    /// gets its loopback brought up, a fresh user namespace means device
    /// nodes are bound rather than made.
    pub fresh: Vec<NsKind>,
    /// The container lives in a user namespace other than the host's (its
    /// own, or its pod's): device nodes are bound rather than made.
    #[serde(default)]
    pub in_user_ns: bool,
}

impl InitNamespaces {
    pub fn creates(&self, k: NsKind) -> bool {
        self.new.contains(&k)
    }
    pub fn owns(&self, k: NsKind) -> bool {
        self.owned.contains(&k)
    }
}

/// Everything boot needs to build one container.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateContainer {
    pub id: String,
    pub spec: Box<Spec>,
    pub namespaces: InitNamespaces,
    /// The container's cgroup hierarchies (which filesystems to mount in
    /// it); the init is placed in them through `fds.cgroup_procs`.
    pub cgroup: husk_cgroups::CgroupPath,
    /// Attached descriptors, by index into the message's descriptor list.
    pub fds: CreateFds,
    /// The container state JSON that hooks run in the container read on
    /// stdin, minus what boot fills in (pid, status).
    pub hook_state: crate::state::OciState,
    /// The compiled seccomp filters (spec profile and husk's baseline), for
    /// the init and every process exec'd into the container.
    pub seccomp: Option<husk_seccomp::Prepared>,
    /// The host has AppArmor (a host fact boot cannot read).
    pub apparmor: bool,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct CreateFds {
    /// stdin, stdout, stderr for the container's process; absent for the
    /// root container, whose process inherits boot's own.
    pub stdio: Option<[usize; 3]>,
    /// A connected console socket to send the pty master to.
    pub console_socket: Option<usize>,
    /// The socket on which the gofer (or the container layer itself, with
    /// `--file-access=direct`) sends the container's mounts.
    pub mounts: usize,
    /// Descriptors the process gets at 3, 4, ... (`--preserve-fds`).
    #[serde(default)]
    pub preserved: Vec<usize>,
    /// How the init (and every process exec'd into the container later)
    /// joins the container's cgroup, opened on the host
    /// (`husk_cgroups::JoinFds`): each v1 hierarchy's `tasks` file...
    /// Empty when the container shares boot's cgroup (the root container).
    #[serde(default)]
    pub cgroup_procs: Vec<usize>,
    /// ...and the cgroup2 directory and its `cgroup.procs`.
    #[serde(default)]
    pub cgroup2: Option<[usize; 2]>,
    /// A detached copy of the host's mount tree, only when the spec has
    /// createContainer hooks: their paths resolve in the runtime's
    /// namespace while they run in the container's.
    #[serde(default)]
    pub host_root: Option<usize>,
    /// What the container's /proc views are served from (unless turned
    /// off): a /dev/fuse descriptor and its cgroup directories.
    #[serde(default)]
    pub proc_views: Option<ProcViewsFds>,
    /// The rootfs directory, opened on the host, for a container without
    /// a mount namespace of its own: its init (and every process exec'd
    /// into it) shares the host's and chroots into this directory.
    #[serde(default)]
    pub rootfs_dir: Option<usize>,
}

/// The container's /proc views (`husk-procviews`): boot serves them from
/// the cgroup filesystems the init mounts in its cgroup namespace (which
/// show nothing above the container's cgroup).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcViewsFds {
    /// An open /dev/fuse (neither boot nor the container may open it).
    pub fuse: usize,
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
    /// A sub-cgroup of the container's to run in (`exec --cgroup`), as
    /// descriptors opened on the host (`husk_cgroups::JoinFds`: v1 `tasks`
    /// files here, the cgroup2 directory and `cgroup.procs` in `cgroup2`),
    /// replacing the container's own.
    #[serde(default)]
    pub cgroup_procs: Vec<usize>,
    #[serde(default)]
    pub cgroup2: Option<[usize; 2]>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Request {
    /// Build a container (a conversation, see the module documentation).
    Create(Box<CreateContainer>),
    /// The hooks boot asked for ran (or failed with this message).
    HooksDone { error: Option<String> },
    /// Release a created container's init to exec its program.
    Start { id: String },
    /// Run a process in a container (a conversation).
    Exec(Box<ExecProcess>),
    /// Answer once the container's init has exited. With `kill_on_close`,
    /// the caller stands in for the container (a pid-file waiter): if its
    /// connection goes away first, the container's init is killed.
    Wait { id: String, kill_on_close: bool },
    /// Answer once the exec'd process `token` has exited (as `Wait`).
    WaitExec { token: u64, kill_on_close: bool },
    /// Kill a container's init and everything boot started in it, answer
    /// once it is reaped, and forget it. For the root container, boot exits
    /// afterwards (and with it, every container of the pod).
    Destroy { id: String },
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

/// What kind of failure an error answer reports, so callers can tell
/// "no such container" from "boot could not do it" without matching text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    Exists,
    BadState,
    /// The spec (or the request) asks for something invalid.
    Invalid,
    /// The sandbox failed to do it.
    Sandbox,
    /// boot refused the caller (credentials, too many connections).
    Refused,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result")]
pub enum Response {
    /// The process exists; its pidfd is attached.
    Forked,
    /// Run the createRuntime and prestart hooks now; answer `HooksDone`.
    RunHooks,
    /// A seccomp user-notification descriptor (attached) for the spec's
    /// listenerPath, which only the host side can reach.
    SeccompListener,
    Created,
    Started,
    Execed {
        token: u64,
    },
    Exited {
        status: ExitStatus,
    },
    Destroyed,
    Error {
        kind: ErrorKind,
        message: String,
    },
}
