use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write config.json into.
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// A spec for running without root (user namespace, no cgroups).
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(_cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("spec: {} exists; remove it first", path.display());
    }
    let spec = crate::spec::default_spec(a.rootless);
    let text = serde_json::to_string_pretty(&spec)? + "\n";
    std::fs::write(&path, text).with_context(|| format!("spec: write {}", path.display()))?;
    Ok(0)
}
