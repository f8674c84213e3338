use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sandbox's id (its root container's id).
    #[arg(long)]
    pub sandbox_id: String,
    /// The listening control socket, inherited from the caller.
    #[arg(long)]
    pub listen_fd: RawFd,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    // SAFETY: the caller passed this descriptor to us for our exclusive use.
    let listener = unsafe { OwnedFd::from_raw_fd(a.listen_fd) };
    Ok(crate::boot::main(cfg.clone(), listener)?)
}
