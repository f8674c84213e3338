//! The messages between boot and a container's init (or an exec'd process
//! before it execs), over their socketpair. The socket is close-on-exec in
//! the child, so boot reads end-of-stream after [`Sync::Exec`] as "the
//! program is running".

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub enum Sync {
    /// init → boot: run the createRuntime/prestart hooks now.
    RunHooks,
    /// boot → init: hooks done.
    HooksDone,
    /// init → boot: a read-only mount of the container's procfs (attached):
    /// boot shows it as its own /proc, so tools that look at the sandbox
    /// process's /proc (podman top) see the container's processes.
    ProcMount,
    /// init → boot: the container's cgroup filesystems (attached, one per
    /// hierarchy, read-only detached mounts rooted at its cgroup), for its
    /// /proc views.
    CgroupMounts {
        infos: Vec<husk_procviews::CgroupDirInfo>,
    },
    /// init → boot: the container is created; waiting for Start.
    Ready,
    /// boot → init: exec the program.
    Start,
    /// init → boot: about to exec (only the last steps remain); the socket
    /// closing after this means the exec happened.
    Exec,
    /// init → boot: a seccomp user-notification descriptor (attached) for
    /// the spec's listenerPath.
    SeccompNotify,
    /// init → boot: something did not work and the container goes on
    /// without it (boot logs it).
    Warning { message: String },
    /// either way: something failed; the message says what.
    Error { message: String },
}
