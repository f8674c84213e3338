//! Global flags, gathered in one struct. `to_flags` turns it back into argv so
//! that `husk boot` and `husk gofer` run with the configuration the command
//! that started them had.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Platform {
    /// The host kernel behind namespaces, cgroups, seccomp and dropped
    /// capabilities.
    #[default]
    Native,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Network {
    /// Use the network namespace the spec asks for.
    #[default]
    Sandbox,
    /// Share the host's network namespace.
    Host,
    /// A fresh network namespace with only loopback.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FileAccess {
    /// A gofer process resolves every host path and hands the sandbox mount
    /// descriptors.
    #[default]
    Proxy,
    /// The sandbox resolves host paths itself.
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Userns {
    /// As the spec says.
    #[default]
    Spec,
    /// A container whose spec has no user namespace gets one chosen by
    /// husk: its ids 0-65535 map to a free, unprivileged host range.
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OnOff {
    #[default]
    On,
    Off,
}

#[derive(Debug, Clone, Args, PartialEq, Eq)]
pub struct Config {
    /// Directory for container state (default: /run/husk for root,
    /// $XDG_RUNTIME_DIR/husk for anyone else).
    #[arg(long, global = true, default_value_os_t = default_root(), value_name = "DIR")]
    pub root: PathBuf,

    /// Append log lines to this file (default: standard error).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Log line format; json writes runc-style lines that podman and
    /// containerd read.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log at debug level.
    #[arg(long, global = true)]
    pub debug: bool,

    /// Write one debug log per husk process into this directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub debug_log_dir: Option<PathBuf>,

    /// How the sandbox isolates the application.
    #[arg(long, global = true, value_enum, default_value_t = Platform::Native)]
    pub platform: Platform,

    /// Network mode: sandbox (as the spec says), host, or none (loopback only).
    #[arg(long, global = true, value_enum, default_value_t = Network::Sandbox)]
    pub network: Network,

    /// Who resolves host paths: proxy (a gofer) or direct (the sandbox).
    #[arg(long, global = true, value_enum, default_value_t = FileAccess::Proxy)]
    pub file_access: FileAccess,

    /// runc's systemd cgroup driver: refused by `create` (husk manages
    /// cgroups through cgroupfs only).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,

    /// Add husk's baseline seccomp filter on top of the spec's profile, and
    /// husk's default profile where the spec has none (off: runc's
    /// behaviour, for debugging only).
    #[arg(long, global = true, value_enum, default_value_t = OnOff::On)]
    pub seccomp_baseline: OnOff,

    /// Overlay the container's rootfs with a memory-backed layer: the
    /// container may write, the image on disk stays as it was.
    #[arg(long, global = true)]
    pub overlay: bool,

    /// User namespaces: as the spec says, or `auto` (container root is not
    /// host root; the annotation dev.husk.userns: auto does it per
    /// container).
    #[arg(long, global = true, value_enum, default_value_t = Userns::Spec)]
    pub userns: Userns,

    /// Accepted for runc compatibility; husk detects rootless mode itself.
    /// (Only before the command: `spec --rootless` is a different flag.)
    #[arg(long, value_name = "VALUE")]
    pub rootless: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: default_root(),
            log: None,
            log_format: LogFormat::Text,
            debug: false,
            debug_log_dir: None,
            platform: Platform::Native,
            network: Network::Sandbox,
            file_access: FileAccess::Proxy,
            systemd_cgroup: false,
            seccomp_baseline: OnOff::On,
            overlay: false,
            userns: Userns::Spec,
            rootless: None,
        }
    }
}

/// Whether husk runs without the host's root privileges: as a normal
/// user, or as root of a user namespace (rootless podman runs its runtime
/// so).
pub fn rootless() -> bool {
    !crate::sys::ids::is_host_root()
}

/// The state directory when `--root` is not given: `/run/husk` for root,
/// `$XDG_RUNTIME_DIR/husk` for anyone else (runc's rule), or
/// `/run/user/<uid>/husk` when that variable is not set.
pub fn default_root() -> PathBuf {
    if !rootless() {
        return PathBuf::from("/run/husk");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("husk"),
        _ if !nix::unistd::geteuid().is_root() => {
            PathBuf::from(format!("/run/user/{}/husk", nix::unistd::geteuid()))
        }
        _ => PathBuf::from("/run/husk"),
    }
}

fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

impl Config {
    /// The argv that reproduces this configuration, for child husk processes.
    pub fn to_flags(&self) -> Vec<String> {
        let mut f = vec!["--root".to_string(), self.root.display().to_string()];
        if let Some(log) = &self.log {
            f.push("--log".into());
            f.push(log.display().to_string());
        }
        f.push(format!("--log-format={}", value_name(&self.log_format)));
        if self.debug {
            f.push("--debug".into());
        }
        if let Some(d) = &self.debug_log_dir {
            f.push("--debug-log-dir".into());
            f.push(d.display().to_string());
        }
        f.push(format!("--platform={}", value_name(&self.platform)));
        f.push(format!("--network={}", value_name(&self.network)));
        f.push(format!("--file-access={}", value_name(&self.file_access)));
        if self.systemd_cgroup {
            f.push("--systemd-cgroup".into());
        }
        f.push(format!(
            "--seccomp-baseline={}",
            value_name(&self.seccomp_baseline)
        ));
        if self.overlay {
            f.push("--overlay".into());
        }
        if self.userns == Userns::Auto {
            f.push("--userns=auto".into());
        }
        f
    }

    /// Directory holding one container's state.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Where compiled seccomp filters are cached. Not under `--root`: Docker
    /// passes the same root to every runtime, and runc reads every entry of
    /// it, so husk keeps nothing there but container directories.
    pub fn seccomp_cache_dir(&self) -> PathBuf {
        if !rootless() {
            return PathBuf::from("/run/husk-cache");
        }
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d).join("husk-cache"),
            _ => {
                let mut p = self.root.clone().into_os_string();
                p.push(".husk-cache");
                PathBuf::from(p)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        cfg: Config,
    }

    #[test]
    fn to_flags_round_trips() {
        let cfg = Config {
            root: "/tmp/r".into(),
            log: Some("/tmp/l.json".into()),
            log_format: LogFormat::Json,
            debug: true,
            debug_log_dir: Some("/tmp/dbg".into()),
            network: Network::None,
            file_access: FileAccess::Direct,
            systemd_cgroup: true,
            seccomp_baseline: OnOff::Off,
            overlay: true,
            ..Config::default()
        };
        let mut argv = vec!["husk".to_string()];
        argv.extend(cfg.to_flags());
        let back = Wrap::try_parse_from(argv).unwrap().cfg;
        assert_eq!(back, cfg);
    }

    #[test]
    fn defaults_round_trip() {
        let cfg = Config::default();
        let mut argv = vec!["husk".to_string()];
        argv.extend(cfg.to_flags());
        assert_eq!(Wrap::try_parse_from(argv).unwrap().cfg, cfg);
    }
}
