use husk::cli::dispatch;

fn main() {
    let cli = husk::cli::parse();
    cli.command.close_inherited_fds();
    let failure = cli.command.failure_code();
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
            failure
        }
    };
    std::process::exit(code);
}
