//! husk: a sandboxed OCI container runtime with gVisor runsc's architecture
//! (a Container layer, one sandbox process per pod, one gofer per container)
//! on the `native` platform: the host kernel behind namespaces, cgroups,
//! seccomp and dropped capabilities.

pub mod boot;
pub mod cgroups;
pub mod cli;
pub mod config;
pub mod container;
pub mod control;
pub mod error;
pub mod gofer;
pub mod logging;
pub mod mount_options;
pub mod posture;
pub mod sandbox;
pub mod seccomp;
pub mod spec;
pub mod sys;
