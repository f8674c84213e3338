use anyhow::Context;

use crate::config::Config;
use crate::container::Container;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Signal every process of the container, not just its init.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Container id.
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number; default TERM.
    #[arg(default_value = "TERM")]
    pub signal: String,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let sig = super::parse_signal(&a.signal)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("kill {}", a.id))?;
    let c = Container::load(cfg, &a.id).with_context(|| format!("kill {}", a.id))?;
    c.kill(sig, a.all)
        .with_context(|| format!("kill {}", a.id))?;
    Ok(0)
}
