//! The shim's log: containerd's `log` fifo in the bundle the shim was
//! started for (containerd copies it into its own log), and a file when
//! the configuration names one.
//!
//! The crate's own logger writes to that fifo only and fails badly once
//! containerd stops reading it (the first container of a pod is removed
//! while the shim serves the others: every write raises SIGPIPE, which the
//! crate logs, which raises SIGPIPE...). Here a sink that fails is dropped.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

struct Logger {
    sinks: Mutex<Vec<File>>,
}

static LOGGER: Logger = Logger {
    sinks: Mutex::new(Vec::new()),
};

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now());
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let line = format!(
            "time=\"{time}\" level={level} msg={:?} runtime=io.containerd.husk.v2 pid={}\n",
            r.args().to_string(),
            std::process::id()
        );
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.retain_mut(|f| f.write_all(line.as_bytes()).is_ok());
    }

    fn flush(&self) {}
}

/// Install the logger, writing to containerd's `log` fifo in `dir` if
/// there is one.
pub fn init(dir: &Path, debug: bool) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
    if let Ok(fd) = husk_sys::fd::open(&dir.join("log"), libc::O_WRONLY | libc::O_NONBLOCK, 0) {
        // Opened without blocking (no reader: no log); written blocking,
        // as containerd's own shims do.
        let _ = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        );
        add(File::from(fd));
    }
}

/// Also log to `path` (appending); debug-level when `debug`.
pub fn add_file(path: &Path, debug: bool) {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => add(f),
        Err(e) => log::warn!("log file {}: {e}", path.display()),
    }
    if debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

fn add(f: File) {
    LOGGER
        .sinks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(f);
}
