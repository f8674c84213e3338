//! `husk ps`: the container's processes. `--format json` is a JSON array of
//! host pids (containerd parses it); the table has ps -ef's columns, or the
//! columns of the given ps options.

use std::process::Command;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::container::Container;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Container id.
    pub id: String,
    /// Options for ps(1) (table format only), e.g. -o pid,comm.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let ctx = || format!("ps {}", a.id);
    let c = Container::load(cfg, &a.id).with_context(ctx)?;
    let pids = c.processes().with_context(ctx)?;
    drop(c);
    match a.format {
        Format::Json => {
            if !a.ps_args.is_empty() {
                bail!("ps {}: ps options are not allowed with --format json", a.id);
            }
            println!("{}", serde_json::to_string(&pids)?);
        }
        Format::Table if a.ps_args.is_empty() => print!("{}", table(&pids)),
        Format::Table => print!("{}", with_ps(&pids, &a.ps_args).with_context(ctx)?),
    }
    Ok(0)
}

/// Run the host's ps with the caller's options and keep the header and the
/// rows of our pids (found under the PID column).
fn with_ps(pids: &[i32], args: &[String]) -> anyhow::Result<String> {
    let out = Command::new("ps").args(args).output().context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps options must include a PID column"))?;
    let mut s = format!("{header}\n");
    for l in lines {
        if let Some(p) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&p) {
                s.push_str(l);
                s.push('\n');
            }
        }
    }
    Ok(s)
}

struct Row {
    uid: String,
    pid: i32,
    ppid: i32,
    c: u64,
    stime: String,
    tty: String,
    time: String,
    cmd: String,
}

fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

fn row(pid: i32) -> Option<Row> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let tty_nr: u64 = f.get(4)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime_ticks: u64 = f.get(12)?.parse().ok()?;
    let start: u64 = f.get(19)?.parse().ok()?;
    let hz = clock_ticks();
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let cpu_secs = (utime + stime_ticks) / hz;
    let age = (uptime - start as f64 / hz as f64).max(1.0);
    let c = ((utime + stime_ticks) as f64 / hz as f64 * 100.0 / age) as u64;
    let boot_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64()
        - uptime;
    let started = (boot_time + start as f64 / hz as f64) as i64;
    let stime = hhmm(started);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut cmd = String::from_utf8_lossy(&cmdline)
        .replace('\0', " ")
        .trim_end()
        .to_string();
    if cmd.is_empty() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        cmd = format!("[{}]", comm.trim());
    }
    let tty = if tty_nr == 0 {
        "?".to_string()
    } else {
        let major = (tty_nr >> 8) & 0xfff;
        let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
        if major == 136 {
            format!("pts/{minor}")
        } else {
            format!("{major}:{minor}")
        }
    };
    Some(Row {
        uid: if uid == "0" { "root".into() } else { uid },
        pid,
        ppid,
        c,
        stime,
        tty,
        time: format!(
            "{:02}:{:02}:{:02}",
            cpu_secs / 3600,
            (cpu_secs / 60) % 60,
            cpu_secs % 60
        ),
        cmd,
    })
}

fn hhmm(epoch: i64) -> String {
    let t = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0) as u64),
    )
    .to_string();
    // "2026-11-29T02:04:33Z" → "02:04" (UTC, like ps in a UTC machine).
    t.get(11..16).unwrap_or("?").to_string()
}

/// `ps -ef`-style table: UID PID PPID C STIME TTY TIME CMD.
fn table(pids: &[i32]) -> String {
    let rows: Vec<Row> = pids.iter().filter_map(|p| row(*p)).collect();
    let mut s = format!(
        "{:<8} {:>7} {:>7} {:>2} {:<5} {:<8} {:>8} {}\n",
        "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<8} {:>7} {:>7} {:>2} {:<5} {:<8} {:>8} {}\n",
            r.uid, r.pid, r.ppid, r.c, r.stime, r.tty, r.time, r.cmd
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_ps_columns_and_our_process() {
        let me = std::process::id() as i32;
        let t = table(&[me]);
        let mut lines = t.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        );
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(row[1], me.to_string());
    }
}
