use std::os::fd::RawFd;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sandbox's id (its root container's id).
    #[arg(long)]
    pub sandbox_id: String,
    /// The listening control socket, inherited from the caller.
    #[arg(long)]
    pub listen_fd: RawFd,
    /// `--log`, opened by the caller: boot may be born in a user namespace
    /// with no right to open it.
    #[arg(long)]
    pub log_fd: Option<RawFd>,
    /// Its `--debug-log-dir` file, opened by the caller likewise.
    #[arg(long)]
    pub debug_log_fd: Option<RawFd>,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let listener = crate::sys::fd::claim_inherited(a.listen_fd)
        .map_err(|e| anyhow::anyhow!("boot: --listen-fd {}: {e}", a.listen_fd))?;
    Ok(crate::boot::main(cfg.clone(), listener)?)
}
