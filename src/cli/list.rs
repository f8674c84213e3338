use crate::config::Config;
use crate::container::Container;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print only the ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let mut states: Vec<_> = Container::list(cfg)?
        .iter()
        .map(|s| s.oci_state())
        .collect();
    // runc lists by id.
    states.sort_by(|a, b| a.id.cmp(&b.id));
    if a.quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format {
        Format::Json => {
            let view: Vec<_> = states.iter().map(super::state::RuncState::of).collect();
            println!("{}", serde_json::to_string(&view)?)
        }
        Format::Table => print!("{}", table(&states)),
    }
    Ok(0)
}

/// runc's table: ID PID STATUS BUNDLE CREATED OWNER, columns padded.
fn table(states: &[crate::container::state::OciState]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for s in states {
        rows.push([
            s.id.clone(),
            s.pid.to_string(),
            s.status.clone(),
            s.bundle.display().to_string(),
            s.created.clone(),
            s.owner.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{:<w$}   ", c, w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::state::OciState;

    #[test]
    fn table_aligns_columns() {
        let s = OciState {
            id: "abc".into(),
            pid: 42,
            status: "running".into(),
            bundle: "/b".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            ..Default::default()
        };
        let t = table(&[s]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID    PID   STATUS    BUNDLE"), "{t}");
        assert!(lines[1].starts_with("abc   42    running   /b"), "{t}");
    }
}
