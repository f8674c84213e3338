//! The container's own `/proc/meminfo`, `/proc/cpuinfo`, `/proc/stat`,
//! `/proc/uptime`, `/proc/loadavg`, `/proc/swaps`, `/proc/diskstats` and
//! `/sys/devices/system/cpu/online`, computed from its cgroups and served
//! from the sandbox over FUSE.
//!
//! * [`render`]: the views as pure functions of the host's text and the
//!   container's cgroup facts (the semantics of each file are documented
//!   there).
//! * [`HostProc`], [`CgroupDir`], [`Container`]: the sources, as
//!   descriptors only (the sandbox has no host path).
//! * [`Server`]: one per container, over its own /dev/fuse descriptor;
//!   single-threaded and non-blocking: poll [`Server::fd`] for POLLIN and
//!   call [`Server::on_readable`].
//! * [`mount::superblock`] makes the FUSE filesystem (a detached mount),
//!   [`mount::bind_views`] binds each file over the container's procfs and
//!   sysfs files.
//!
//! Wiring, in order: the host side opens /dev/fuse and the container's
//! cgroup directories ([`CgroupDir::open_all`]) and sends them to boot;
//! boot makes the superblock with the descriptor (before polling it: a
//! /dev/fuse without a filesystem polls as an error), starts a [`Server`]
//! and adds it to its poll loop; the container's init, forked afterwards,
//! inherits the detached mount and calls [`mount::bind_views`] once its
//! procfs and sysfs are mounted, before pivot_root. Every other copy of
//! the /dev/fuse descriptor must be closed (the init's is close-on-exec),
//! so that boot's death aborts the connection.

#![forbid(unsafe_code)]

mod facts;
pub mod mount;
mod proto;
pub mod render;
mod server;

pub use facts::{CgroupDir, CgroupDirInfo, Container, HostProc};
pub use render::View;
pub use server::{Config, Counters, Server, Status};
