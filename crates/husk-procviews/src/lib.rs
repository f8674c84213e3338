//! The container's own `/proc/meminfo`, `/proc/cpuinfo`, `/proc/stat`,
//! `/proc/uptime`, `/proc/loadavg`, `/proc/swaps`, `/proc/diskstats` and
//! `/sys/devices/system/cpu/online`, computed from its cgroups and served
//! from the sandbox over FUSE.

#![forbid(unsafe_code)]

pub mod render;

pub use render::View;
