use anyhow::Context;

use crate::config::Config;
use crate::container::Container;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill the container first if it is still running.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Container id.
    pub id: String,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let c = match Container::load(cfg, &a.id) {
        Ok(c) => c,
        // containerd deletes twice (plain, then --force): a forced delete of
        // a container that is already gone succeeds, as with runc.
        Err(Error::NotFound(_)) if a.force => return Ok(0),
        // A state that cannot be read (empty, garbage, truncated, not ours)
        // must not block a forced delete: clean up from what can be found.
        Err(e @ Error::Invalid(_)) if a.force => {
            tracing::warn!("delete {}: {e}; cleaning up from what can be found", a.id);
            crate::container::salvage(cfg, &a.id).with_context(|| format!("delete {}", a.id))?;
            return Ok(0);
        }
        Err(e) => return Err(e).with_context(|| format!("delete {}", a.id)),
    };
    c.delete(a.force)
        .with_context(|| format!("delete {}", a.id))?;
    Ok(0)
}
