//! husk's OCI layer, runsc's `specutils` plus the wire: validating a spec
//! and filling its defaults (the default devices, the sysctl rules, mount
//! options), running hooks, and the messages husk's processes exchange
//! (control requests, OCI state, gofer and init messages) with their
//! framing. It knows no process of husk's and makes no container.

#![forbid(unsafe_code)]

pub mod control;
pub mod devices;
pub mod error;
pub mod gofer;
pub mod hooks;
pub mod mount_options;
pub mod signals;
pub mod spec;
pub mod state;
pub mod sync;
pub mod sysctl;
pub mod wire;

/// The descriptor at which a husk stand-in (boot for its root container,
/// a waiter for a pod member or an exec'd process) holds a pidfd of the
/// process it stands for. Clients build namespace paths from the pids
/// husk gives them (`/proc/<pid>/ns/pid`); through this descriptor the
/// host side finds the process those paths are meant for.
pub const STANDS_FOR_FD: i32 = 100;

/// The OCI runtime-spec version husk implements (state, features, hooks).
pub const OCI_VERSION: &str = "1.2.0";
