//! The command line: runc's commands and flags, one file per command. This
//! layer knows argv shapes and output formats, not how a sandbox works.

use std::os::fd::{AsRawFd, RawFd};

use nix::sys::signalfd::{SfdFlags, SignalFd};

mod boot;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod gofer;
mod kill;
mod list;
mod pause;
mod ps;
mod resume;
mod run;
mod spec;
mod start;
mod state;
mod tty;
mod update;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "husk",
    version,
    about = "A sandboxed OCI container runtime",
    disable_help_subcommand = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version (runc's shape: version, commit, spec).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    pub version: (),
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container; its program waits until `start`.
    Create(create::Args),
    /// Start a created container's program.
    Start(start::Args),
    /// Print a container's state as JSON.
    State(state::Args),
    /// Send a signal to a container's init (default TERM).
    Kill(kill::Args),
    /// Delete a container and everything it holds.
    Delete(delete::Args),
    /// Create and start a container, and wait for it unless --detach.
    Run(run::Args),
    /// List containers.
    List(list::Args),
    /// Write a default config.json.
    Spec(spec::Args),
    /// Run a process in a running container.
    Exec(exec::Args),
    /// List a container's processes.
    Ps(ps::Args),
    /// Resource usage and OOM events of a container.
    Events(events::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(resume::Args),
    /// Change a running container's resource limits.
    Update(update::Args),
    /// Print the OCI features document of this runtime.
    Features(features::Args),
    /// The sandbox process (internal; started by husk itself).
    #[command(hide = true)]
    Boot(boot::Args),
    /// The file proxy of one container (internal; started by husk itself).
    #[command(hide = true)]
    Gofer(gofer::Args),
}

impl Command {
    /// For husk's internal processes: the one descriptor they inherit on
    /// purpose. Everything else they inherited is closed before anything
    /// (the log files included) is opened.
    pub fn close_inherited_fds(&self) {
        let keep: Vec<RawFd> = match self {
            Command::Boot(a) => [Some(a.listen_fd), a.log_fd, a.debug_log_fd]
                .into_iter()
                .flatten()
                .collect(),
            Command::Gofer(a) => vec![a.sock_fd],
            _ => return,
        };
        crate::sys::process::close_fds_except(&keep);
    }

    /// Log files the caller opened for this process (boot's).
    pub fn log_fds(&self) -> crate::logging::InheritedLogs {
        match self {
            Command::Boot(a) => crate::logging::InheritedLogs {
                log: a.log_fd,
                debug: a.debug_log_fd,
            },
            _ => Default::default(),
        }
    }

    /// The exit code of a command that fails: 255 for `exec`, as runc's,
    /// so that a caller can tell a runtime failure from the exit status of
    /// the process it ran; 1 for every other command.
    pub fn failure_code(&self) -> i32 {
        match self {
            Command::Exec(_) => 255,
            _ => 1,
        }
    }

    /// The command's name and container id, for log file names and errors.
    pub fn describe(&self) -> (&'static str, Option<&str>) {
        match self {
            Command::Create(a) => ("create", Some(&a.id)),
            Command::Start(a) => ("start", Some(&a.id)),
            Command::State(a) => ("state", Some(&a.id)),
            Command::Kill(a) => ("kill", Some(&a.id)),
            Command::Delete(a) => ("delete", Some(&a.id)),
            Command::Run(a) => ("run", Some(&a.id)),
            Command::List(_) => ("list", None),
            Command::Spec(_) => ("spec", None),
            Command::Exec(a) => ("exec", Some(&a.id)),
            Command::Ps(a) => ("ps", Some(&a.id)),
            Command::Events(a) => ("events", Some(&a.id)),
            Command::Pause(a) => ("pause", Some(&a.id)),
            Command::Resume(a) => ("resume", Some(&a.id)),
            Command::Update(a) => ("update", Some(&a.id)),
            Command::Features(_) => ("features", None),
            Command::Boot(a) => ("boot", Some(&a.sandbox_id)),
            Command::Gofer(a) => ("gofer", Some(&a.id)),
        }
    }
}

/// What `husk --version` prints after "husk ": runc's three lines
/// (`runc version X`, `commit: ...`, `spec: ...`) with husk's values.
pub fn version_text() -> String {
    format!(
        "version {}\ncommit: {}\nspec: {}",
        env!("CARGO_PKG_VERSION"),
        env!("HUSK_COMMIT"),
        husk_oci::OCI_VERSION
    )
}

/// Parse the command line as runc's users expect it: `-v`/`--version`
/// prints three lines; an unknown command is one line on standard error
/// (exit status 3, as runc's); everything else is clap's.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let version: &'static str = Box::leak(version_text().into_boxed_str());
    let cmd = Cli::command().version(version);
    let result = cmd
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    match result {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            use clap::error::{ContextKind, ContextValue};
            let name = match e.get(ContextKind::InvalidSubcommand) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let hint = match e.get(ContextKind::SuggestedSubcommand) {
                Some(ContextValue::String(s)) => format!("did you mean {s:?}? "),
                Some(ContextValue::Strings(v)) if !v.is_empty() => {
                    format!("did you mean {:?}? ", v[0])
                }
                _ => String::new(),
            };
            eprintln!("husk: unknown command {name:?} ({hint}husk --help lists the commands)");
            std::process::exit(3);
        }
        Err(e) => e.exit(),
    }
}

/// Output format of `list` and `ps`.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Run a parsed command; returns the process exit code.
pub fn dispatch(cfg: &Config, cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Create(a) => create::run(cfg, a),
        Command::Start(a) => start::run(cfg, a),
        Command::State(a) => state::run(cfg, a),
        Command::Kill(a) => kill::run(cfg, a),
        Command::Delete(a) => delete::run(cfg, a),
        Command::Run(a) => run::run(cfg, a),
        Command::List(a) => list::run(cfg, a),
        Command::Spec(a) => spec::run(cfg, a),
        Command::Exec(a) => exec::run(cfg, a),
        Command::Ps(a) => ps::run(cfg, a),
        Command::Events(a) => events::run(cfg, a),
        Command::Pause(a) => pause::run(cfg, a),
        Command::Resume(a) => resume::run(cfg, a),
        Command::Update(a) => update::run(cfg, a),
        Command::Features(a) => features::run(cfg, a),
        Command::Boot(a) => boot::run(cfg, a),
        Command::Gofer(a) => gofer::run(cfg, a),
    }
}

/// Parse a signal given as a number, a name ("KILL") or a full name
/// ("SIGKILL"), including real-time signals ("RTMIN+3").
pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(format!("invalid signal {s:?}"));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')
                .and_then(|n| n.parse::<i32>().ok())
                .ok_or_else(|| format!("invalid signal {s:?}"))?
        };
        let n = libc::SIGRTMIN() + off;
        if n <= libc::SIGRTMAX() {
            return Ok(n);
        }
        return Err(format!("invalid signal {s:?}"));
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let off = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('-')
                .and_then(|n| n.parse::<i32>().ok())
                .ok_or_else(|| format!("invalid signal {s:?}"))?
        };
        let n = libc::SIGRTMAX() - off;
        if n >= libc::SIGRTMIN() {
            return Ok(n);
        }
        return Err(format!("invalid signal {s:?}"));
    }
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| format!("unknown signal {s:?}"))
}

/// `run` and `exec` in the foreground: until `done` is readable, proxy the
/// terminal (if any) and pass on the signals we get.
pub(crate) fn wait_forwarding(
    master: Option<std::os::fd::OwnedFd>,
    done: std::os::fd::BorrowedFd<'_>,
    mask: &nix::sys::signal::SigSet,
    mut forward: impl FnMut(nix::sys::signal::Signal),
) -> anyhow::Result<()> {
    match master {
        Some(m) => tty::proxy(m, done, &mut forward),
        None => {
            let sigfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
                .map_err(|e| anyhow::anyhow!("signalfd: {e}"))?;
            crate::sandbox::waiter::forward_until(&sigfd, done.as_raw_fd(), forward);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL"), Ok(9));
        assert_eq!(parse_signal("SIGKILL"), Ok(9));
        assert_eq!(parse_signal("sigterm"), Ok(15));
        assert_eq!(parse_signal("10"), Ok(10));
        assert_eq!(parse_signal("RTMIN+2"), Ok(libc::SIGRTMIN() + 2));
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_signal("0"), Ok(0));
        assert!(parse_signal("-1").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn runc_argv_shapes_parse() {
        let argv = [
            "husk",
            "--root",
            "/r",
            "--log",
            "/l.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "c1",
        ];
        let cli = Cli::try_parse_from(argv).unwrap();
        assert_eq!(cli.config.root, std::path::PathBuf::from("/r"));
        assert!(matches!(cli.command, Command::Create(_)));
        let argv = [
            "husk",
            "--log-format=json",
            "--log",
            "/x",
            "delete",
            "--force",
            "c",
        ];
        assert!(matches!(
            Cli::try_parse_from(argv).unwrap().command,
            Command::Delete(_)
        ));
        let argv = ["husk", "kill", "c", "9"];
        assert!(matches!(
            Cli::try_parse_from(argv).unwrap().command,
            Command::Kill(_)
        ));
    }
}
