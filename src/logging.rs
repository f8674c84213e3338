//! Logging through `tracing`, in the two line formats clients read:
//! logrus-style text (`time="..." level=info msg="..."`) and runc's JSON lines
//! (`{"level":"error","msg":"...","time":"..."}`), which podman and containerd
//! parse from the `--log` file.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::config::{Config, LogFormat};

/// One log destination with its own format and threshold.
struct LineLayer {
    out: Mutex<Box<dyn Write + Send>>,
    format: LogFormat,
    max: Level,
}

#[derive(Default)]
struct Fields {
    msg: String,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.rest.push((field.name(), value.to_string()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.rest.push((field.name(), format!("{value:?}")));
        }
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Format one event as a log line (with trailing newline).
fn format_line(format: LogFormat, level: &Level, fields: &Fields, now: SystemTime) -> String {
    let time = humantime::format_rfc3339_seconds(now).to_string();
    let mut line = String::with_capacity(96 + fields.msg.len());
    match format {
        LogFormat::Json => {
            let mut obj = serde_json::Map::new();
            obj.insert("level".into(), level_name(level).into());
            obj.insert("msg".into(), fields.msg.clone().into());
            obj.insert("time".into(), time.into());
            for (k, v) in &fields.rest {
                obj.insert((*k).to_string(), v.clone().into());
            }
            line.push_str(&serde_json::Value::Object(obj).to_string());
        }
        LogFormat::Text => {
            let _ = write!(
                line,
                "time={:?} level={} msg={:?}",
                time,
                level_name(level),
                fields.msg
            );
            for (k, v) in &fields.rest {
                let _ = write!(line, " {k}={v:?}");
            }
        }
    }
    line.push('\n');
    line
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = event.metadata().level();
        if *level > self.max {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = format_line(self.format, level, &fields, SystemTime::now());
        if let Ok(mut out) = self.out.lock() {
            // One write per line: with O_APPEND, lines from several husk
            // processes sharing a log file do not interleave.
            let _ = out.write_all(line.as_bytes());
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Log files a caller opened for a child husk process (boot, which may be
/// born in a user namespace that cannot open them).
#[derive(Debug, Default, Clone, Copy)]
pub struct InheritedLogs {
    pub log: Option<std::os::fd::RawFd>,
    pub debug: Option<std::os::fd::RawFd>,
}

impl InheritedLogs {
    /// Open `cfg`'s log files for a child that will be `command` for `id`;
    /// the descriptors are inherited across exec.
    pub fn open_for_child(
        cfg: &Config,
        command: &str,
        id: &str,
    ) -> std::io::Result<(Vec<std::os::fd::OwnedFd>, Vec<String>)> {
        use std::os::fd::{AsRawFd, OwnedFd};
        let mut fds: Vec<OwnedFd> = Vec::new();
        let mut args = Vec::new();
        if let Some(path) = &cfg.log {
            let f = OwnedFd::from(open_append(path)?);
            crate::sys::process::clear_cloexec(f.as_raw_fd())?;
            args.push(format!("--log-fd={}", f.as_raw_fd()));
            fds.push(f);
        }
        if let Some(dir) = &cfg.debug_log_dir {
            let _ = std::fs::create_dir_all(dir);
            let name = format!("{id}.{command}.of-{}.log", std::process::id());
            let f = OwnedFd::from(open_append(&dir.join(name))?);
            crate::sys::process::clear_cloexec(f.as_raw_fd())?;
            args.push(format!("--debug-log-fd={}", f.as_raw_fd()));
            fds.push(f);
        }
        Ok((fds, args))
    }
}

/// The log files this process writes to (besides standard error), for a
/// helper forked from it that keeps logging (the gofer).
static LOG_FDS: std::sync::OnceLock<Vec<std::os::fd::RawFd>> = std::sync::OnceLock::new();

/// Descriptors of the log files `init` opened.
pub fn log_fds() -> &'static [std::os::fd::RawFd] {
    LOG_FDS.get().map(Vec::as_slice).unwrap_or(&[])
}

fn line_layer(
    f: File,
    format: LogFormat,
    max: Level,
    fds: &mut Vec<std::os::fd::RawFd>,
) -> LineLayer {
    fds.push(std::os::fd::AsRawFd::as_raw_fd(&f));
    LineLayer {
        out: Mutex::new(Box::new(f)),
        format,
        max,
    }
}

/// A file this process inherited, to append to.
fn inherited(fd: std::os::fd::RawFd) -> Option<File> {
    crate::sys::fd::claim_inherited(fd).ok().map(File::from)
}

/// Install the global subscriber for this process. `command` and `id` name
/// the per-process debug log under `--debug-log-dir`.
pub fn init(cfg: &Config, command: &str, id: Option<&str>, fds: InheritedLogs) {
    let main_max = if cfg.debug { Level::DEBUG } else { Level::INFO };
    let opened = |path: &Path| match fds.log.and_then(inherited) {
        Some(f) => Ok(f),
        None => open_append(path),
    };
    let mut files = Vec::new();
    let main: Option<LineLayer> = match &cfg.log {
        Some(path) => match opened(path) {
            Ok(f) => Some(line_layer(f, cfg.log_format, main_max, &mut files)),
            Err(e) => {
                eprintln!("husk: cannot open log file {}: {e}", path.display());
                None
            }
        },
        // Without --log, only warnings reach standard error (the error that
        // ends a command is printed by main).
        None => Some(LineLayer {
            out: Mutex::new(Box::new(std::io::stderr())),
            format: LogFormat::Text,
            max: if cfg.debug { Level::DEBUG } else { Level::WARN },
        }),
    };
    let debug_file: Option<LineLayer> = cfg.debug_log_dir.as_ref().and_then(|dir| {
        if let Some(f) = fds.debug.and_then(inherited) {
            return Some(line_layer(f, LogFormat::Text, Level::DEBUG, &mut files));
        }
        let _ = std::fs::create_dir_all(dir);
        let name = format!(
            "{}.{}.{}.log",
            id.unwrap_or("husk"),
            command,
            std::process::id()
        );
        open_append(&dir.join(name))
            .ok()
            .map(|f| line_layer(f, LogFormat::Text, Level::DEBUG, &mut files))
    });
    let _ = LOG_FDS.set(files);
    let subscriber = tracing_subscriber::registry().with(main).with(debug_file);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn fields(msg: &str) -> Fields {
        Fields {
            msg: msg.into(),
            rest: vec![],
        }
    }

    #[test]
    fn json_line_is_runc_shaped() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let line = format_line(
            LogFormat::Json,
            &Level::ERROR,
            &fields("create x: \"boom\""),
            t,
        );
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "create x: \"boom\"");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn text_line_quotes_message() {
        let t = UNIX_EPOCH;
        let line = format_line(LogFormat::Text, &Level::WARN, &fields("a \"b\""), t);
        assert_eq!(
            line,
            "time=\"1970-01-01T00:00:00Z\" level=warning msg=\"a \\\"b\\\"\"\n"
        );
    }
}
