//! `containerd-shim-husk-v2`: husk's containerd shim (runtime type
//! `io.containerd.husk.v2`), one process per pod talking to the pod's
//! `husk boot` directly. See `service` for the task API, `worker` for why
//! a second process does the forking.

#![forbid(unsafe_code)]

mod config;
mod events;
mod io;
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
    if let Ok(flags) = containerd_shim::parse(&args[1..]) {
        if flags.version {
            println!(
                "containerd-shim-husk-v2\n  Version: {}\n  Runtime: {RUNTIME_ID}",
                env!("CARGO_PKG_VERSION")
            );
            return;
        }
        // The daemon: fork the worker while there is still one thread
        // (the crate starts the server's threads next).
        if flags.action.is_empty() && !flags.socket.is_empty() {
            match worker::spawn() {
                Ok(w) => service::set_worker(w),
                Err(e) => {
                    eprintln!("{RUNTIME_ID}: start the worker: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    containerd_shim::run::<service::HuskShim>(
        RUNTIME_ID,
        Some(containerd_shim::Config {
            // Our logger (see logger.rs).
            no_setup_logger: true,
            // The worker reaps what husk starts; the crate's reaper
            // (waitpid(-1) on SIGCHLD) would steal the status of hooks run
            // here.
            no_reaper: true,
            no_sub_reaper: true,
            ..Default::default()
        }),
    );
}
