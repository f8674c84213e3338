use std::os::fd::RawFd;

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
    crate::posture::gofer_start(&cfg.seccomp_cache_dir())?;
    let sock = crate::sys::fd::claim_inherited(a.sock_fd)
        .map_err(|e| anyhow::anyhow!("gofer: --sock-fd {}: {e}", a.sock_fd))?;
    crate::gofer::serve(sock)?;
    Ok(0)
}
