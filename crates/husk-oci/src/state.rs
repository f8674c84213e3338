//! The OCI state of a container as `state` prints it and hooks read it, and
//! how husk names a process so that a reused pid is never mistaken for it.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use husk_sys::process::is_same_process;

/// A process identified by pid and start time, so a reused pid is never
/// mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcRef {
    pub fn of(pid: i32) -> Option<Self> {
        husk_sys::process::start_time(pid).map(|start_time| ProcRef { pid, start_time })
    }
    pub fn is_alive(&self) -> bool {
        is_same_process(self.pid, self.start_time)
    }
}

/// The runtime-spec state object, with runc's extra fields (rootfs, created,
/// owner) that clients and people read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: String,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}
