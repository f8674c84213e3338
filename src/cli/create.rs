use std::path::PathBuf;

use anyhow::Context;

use crate::config::Config;
use crate::container::{Console, Container, CreateOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle directory (holds config.json).
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// AF_UNIX socket that receives the pty master when process.terminal is set.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the pid of the process to wait on (the sandbox) here.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility; husk always uses pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra descriptors (from fd 3) to the process.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
}

impl Args {
    pub fn options(&self) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console: self.console_socket.clone().map(Console::Path),
            preserve_fds: self.preserve_fds,
            spec: None,
        }
    }
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    Container::create(cfg, a.options()).with_context(|| format!("create {}", a.id))?;
    Ok(0)
}
