use anyhow::Context;

use crate::config::Config;
use crate::container::Container;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let st = Container::read(cfg, &a.id).with_context(|| format!("state {}", a.id))?;
    println!("{}", serde_json::to_string_pretty(&st.oci_state())?);
    Ok(0)
}
