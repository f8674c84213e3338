use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container the gofer serves.
    #[arg(long)]
    pub id: String,
    /// The socket to the sandbox, inherited from the caller.
    #[arg(long)]
    pub sock_fd: RawFd,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    crate::posture::gofer_start(&cfg.root.join(crate::container::SECCOMP_CACHE))?;
    // SAFETY: the caller passed this descriptor to us for our exclusive use.
    let sock = unsafe { OwnedFd::from_raw_fd(a.sock_fd) };
    crate::gofer::serve(sock)?;
    Ok(0)
}
