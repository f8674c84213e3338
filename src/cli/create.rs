use std::path::PathBuf;

use anyhow::Context;

use crate::config::Config;
use crate::container::{Console, Container, CreateOptions};

/// The flags `create` and `run` share (runc's).
#[derive(Debug, clap::Args)]
pub struct CreateFlags {
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
}

impl CreateFlags {
    pub fn options(&self, id: &str, console: Option<Console>) -> CreateOptions {
        CreateOptions {
            id: id.to_string(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console,
            preserve_fds: self.preserve_fds,
            spec: None,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Container id.
    pub id: String,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let console = a.flags.console_socket.clone().map(Console::Path);
    Container::create(cfg, a.flags.options(&a.id, console))
        .with_context(|| format!("create {}", a.id))?;
    Ok(0)
}
