use clap::Parser;

use husk::cli::{dispatch, Cli};

fn main() {
    let cli = Cli::parse();
    cli.command.close_inherited_fds();
    let (name, id) = cli.command.describe();
    let (name, id) = (name.to_string(), id.map(str::to_string));
    husk::logging::init(&cli.config, &name, id.as_deref(), cli.command.log_fds());
    let cfg = cli.config.clone();
    let code = match dispatch(&cfg, cli.command) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            if cfg.log.is_some() {
                // podman and containerd report the last line of the log file.
                tracing::error!("{msg}");
            } else {
                tracing::debug!("{msg}");
            }
            eprintln!("husk: {msg}");
            1
        }
    };
    std::process::exit(code);
}
