//! The container's own `/proc/meminfo`, `/proc/cpuinfo`, `/proc/stat`,
//! `/proc/uptime`, `/proc/loadavg`, `/proc/swaps`, `/proc/diskstats` and
//! `/sys/devices/system/cpu/online`, computed from its cgroups and served
//! from the sandbox over FUSE.

#![forbid(unsafe_code)]

mod facts;
pub mod mount;
mod proto;
pub mod render;
mod server;

pub use facts::{CgroupDir, CgroupDirInfo, Container, HostProc};
pub use render::View;
pub use server::{Config, Counters, Server, Status};
