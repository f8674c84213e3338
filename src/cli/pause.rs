use anyhow::Context;

use crate::config::Config;
use crate::container::Container;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

/// `pause`: freeze every process of the container.
pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let mut c = Container::load(cfg, &a.id).with_context(|| format!("pause {}", a.id))?;
    c.pause().with_context(|| format!("pause {}", a.id))?;
    Ok(0)
}
