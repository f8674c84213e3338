use anyhow::Context;

use crate::config::Config;
use crate::container::Container;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

/// `resume`: thaw a paused container.
pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let mut c = Container::load(cfg, &a.id).with_context(|| format!("resume {}", a.id))?;
    c.resume().with_context(|| format!("resume {}", a.id))?;
    Ok(0)
}
