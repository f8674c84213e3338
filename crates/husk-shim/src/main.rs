//! `containerd-shim-husk-v2`: husk's containerd shim (runtime type
//! `io.containerd.husk.v2`), one process per pod talking to the pod's
//! `husk boot` directly. `lifecycle` has the binary's three lives
//! (start, delete, the daemon), `service` the task API, `worker` the
//! forking half.

#![forbid(unsafe_code)]

mod config;
mod events;
mod io;
mod lifecycle;
mod logger;
mod metrics;
mod monitor;
mod mount;
mod options;
mod service;
mod worker;

const RUNTIME_ID: &str = "io.containerd.husk.v2";

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let flags = match containerd_shim::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{RUNTIME_ID}: {e}");
            std::process::exit(2);
        }
    };
    if flags.version {
        println!(
            "containerd-shim-husk-v2:\n  Version: {}\n  Runtime: {RUNTIME_ID}",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    if flags.namespace.is_empty() {
        eprintln!("{RUNTIME_ID}: -namespace is required");
        std::process::exit(2);
    }
    let result = match flags.action.as_str() {
        "start" => lifecycle::start(&flags),
        "delete" => lifecycle::delete(&flags),
        "" if !flags.socket.is_empty() => {
            // The daemon: fork the worker while there is one thread.
            let code = match worker::spawn() {
                Ok(w) => lifecycle::daemon(flags, w),
                Err(e) => {
                    eprintln!("{RUNTIME_ID}: start the worker: {e}");
                    1
                }
            };
            std::process::exit(code);
        }
        "" => Err("-socket is required".into()),
        other => Err(format!("unknown action {other:?}")),
    };
    if let Err(e) = result {
        eprintln!("{RUNTIME_ID}: {e}");
        std::process::exit(1);
    }
}
