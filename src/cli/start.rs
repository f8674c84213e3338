use anyhow::Context;

use crate::config::Config;
use crate::container::Container;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let mut c = Container::load(cfg, &a.id).with_context(|| format!("start {}", a.id))?;
    c.start().with_context(|| format!("start {}", a.id))?;
    Ok(0)
}
