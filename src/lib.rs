//! husk: a sandboxed OCI container runtime with gVisor runsc's architecture
//! (a Container layer, one sandbox process per pod, one gofer per container)
//! on the `native` platform: the host kernel behind namespaces, cgroups,
//! seccomp and dropped capabilities.
//!
//! The lower layers are crates of their own (see docs/ARCHITECTURE.md):
//! `husk-sys` (the only one with unsafe code), `husk-cgroups`,
//! `husk-seccomp` and `husk-oci`; this crate holds the command line, the
//! container and sandbox layers, boot and the gofer.

#![forbid(unsafe_code)]

pub mod boot;
pub mod cli;
pub mod config;
pub mod container;
pub mod gofer;
pub mod logging;
pub mod posture;
pub mod sandbox;

pub use husk_cgroups as cgroups;
pub use husk_oci::{control, error, mount_options, spec};
pub use husk_seccomp as seccomp;
pub use husk_sys as sys;
