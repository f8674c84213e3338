//! The messages between boot and a container's init (or an exec'd process
//! before it execs), over their socketpair.

use serde::{Deserialize, Serialize};

/// Messages between boot and a container's init (or an exec'd process before
/// it execs).
#[derive(Debug, Serialize, Deserialize)]
pub enum Sync {
    /// boot → init: namespaces are set up from outside (id maps, cgroup).
    Go,
    /// init → boot: run the createRuntime/prestart hooks now.
    RunHooks,
    /// boot → init: hooks done.
    HooksDone,
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
    /// either way: something failed; the message says what.
    Error { message: String },
}
