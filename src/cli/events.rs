//! `husk events`: resource usage of a container as runc prints it
//! (`{"type":"stats","id":...,"data":{...}}`), once with `--stats` or every
//! interval, plus `{"type":"oom","id":...}` when its memory cgroup records an
//! OOM kill.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::config::Config;
use crate::container::state::Status;
use crate::container::Container;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Time between stats events (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Container id.
    pub id: String,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("invalid interval {s:?}: {e}"))?;
    if d.is_zero() {
        return Err("the interval must be greater than zero".into());
    }
    Ok(d)
}

/// One event line, keys in runc's order (type, id, data; the stats keep
/// their struct order, runc's), which scripts grep for.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a crate::cgroups::Stats>,
}

/// Print one event line; false once the reader has gone away (a closed
/// pipe ends the stream quietly).
fn emit(line: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
}

/// How often OOM counters are checked between stats events.
const OOM_POLL: Duration = Duration::from_millis(200);

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let ctx = || format!("events {}", a.id);
    let stats_line = || -> anyhow::Result<(String, Status, u64)> {
        let c = Container::load(cfg, &a.id).with_context(ctx)?;
        let status = c.status();
        let ooms = c.oom_kills();
        let data = c.stats().with_context(ctx)?;
        let line = serde_json::to_string(&Event {
            typ: "stats",
            id: &a.id,
            data: Some(&data),
        })?;
        Ok((line, status, ooms))
    };
    let (line, _, mut ooms) = stats_line()?;
    if !emit(&line) {
        return Ok(0);
    }
    if a.stats {
        return Ok(0);
    }
    let mut next = Instant::now() + a.interval;
    loop {
        std::thread::sleep(OOM_POLL.min(next.saturating_duration_since(Instant::now())));
        let state = match Container::read(cfg, &a.id) {
            Ok(s) => s,
            Err(crate::error::Error::NotFound(_)) => return Ok(0),
            Err(e) => return Err(e).with_context(ctx),
        };
        let now_ooms = state.cgroup.oom_kills();
        if now_ooms > ooms {
            let oom = Event {
                typ: "oom",
                id: &a.id,
                data: None,
            };
            if !emit(&serde_json::to_string(&oom)?) {
                return Ok(0);
            }
            ooms = now_ooms;
        }
        if state.current_status() == Status::Stopped {
            return Ok(0);
        }
        if Instant::now() >= next {
            match stats_line() {
                Ok((line, _, _)) => {
                    if !emit(&line) {
                        return Ok(0);
                    }
                }
                Err(_)
                    if Container::read(cfg, &a.id).map(|s| s.current_status()).ok()
                        != Some(Status::Running) =>
                {
                    return Ok(0)
                }
                Err(e) => return Err(e),
            }
            next = Instant::now() + a.interval;
        }
    }
}
