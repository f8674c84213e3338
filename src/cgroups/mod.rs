//! TEMPORARY placeholder with the interface of the cgroups module; replaced by
//! the real implementation.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{0}")]
    Other(String),
}
pub type Result<T> = std::result::Result<T, CgroupError>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPath {
    pub dirs: Vec<CgroupDir>,
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    pub controllers: Vec<String>,
    pub v2: bool,
    pub path: PathBuf,
    pub created: bool,
}
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {}

pub fn resolve(_spec_path: Option<&Path>, _id: &str, _systemd: bool) -> Result<CgroupPath> {
    Ok(CgroupPath::default())
}

impl CgroupPath {
    pub fn create(&mut self) -> Result<()> {
        Ok(())
    }
    pub fn add_pid(&self, _pid: i32) -> Result<()> {
        Ok(())
    }
    pub fn apply(&self, _res: &oci_spec::runtime::LinuxResources) -> Result<()> {
        Ok(())
    }
    pub fn freeze(&self) -> Result<()> {
        Ok(())
    }
    pub fn thaw(&self) -> Result<()> {
        Ok(())
    }
    pub fn is_frozen(&self) -> bool {
        false
    }
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(vec![])
    }
    pub fn signal_all(&self, _sig: nix::sys::signal::Signal) -> Result<()> {
        Ok(())
    }
    pub fn destroy(&self) -> Result<()> {
        Ok(())
    }
    pub fn stats(&self) -> Result<Stats> {
        Ok(Stats::default())
    }
    pub fn oom_kills(&self) -> u64 {
        0
    }
    pub fn dir_of(&self, _c: &str) -> Option<&Path> {
        None
    }
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }
}
