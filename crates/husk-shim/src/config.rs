//! The shim's configuration: where husk keeps state, which husk binary
//! runs boot and the gofer, and husk's global flags for the containers it
//! makes. It comes from the TOML file that the runtime handler's options
//! name (`ConfigPath`, as gVisor's shim reads runsc flags), and is recorded
//! in every bundle so that `shim delete`, which gets no options, finds the
//! container again.
//!
//! ```toml
//! root = "/run/containerd/husk"   # husk's --root; the containerd namespace is appended
//! binary = "/usr/local/bin/husk"  # default: `husk` beside the shim, then $PATH
//! log = "/var/log/husk-shim.log"  # the shim's log (and husk's --log); default: containerd's
//! debug = false
//! network = "sandbox"             # sandbox | host | none
//! file_access = "proxy"           # proxy | direct
//! overlay = false
//! seccomp_baseline = "on"         # on | off
//! ```

use std::path::{Path, PathBuf};

use husk::config::{Config, FileAccess, Network, OnOff};
use serde::{Deserialize, Serialize};

/// Default state directory (the namespace is appended), beside runc's
/// `/run/containerd/runc`.
pub const DEFAULT_ROOT: &str = "/run/containerd/husk";

/// The file in each bundle that records how its container was made.
pub const BUNDLE_RECORD: &str = "husk-shim.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShimConfig {
    pub root: Option<PathBuf>,
    pub binary: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub debug: bool,
    /// husk's `--systemd-cgroup` (which `create` refuses: husk places
    /// cgroups itself); accepted so that the option reads as husk's.
    pub systemd_cgroup: bool,
    pub network: Option<String>,
    pub file_access: Option<String>,
    pub overlay: bool,
    pub seccomp_baseline: Option<String>,
}

impl ShimConfig {
    /// Read a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<ShimConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("husk shim config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            format!(
                "husk shim config {}: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })
    }

    /// husk's global flags for containers of containerd namespace `ns`.
    pub fn husk_config(&self, ns: &str) -> Result<Config, String> {
        if ns.is_empty() || ns.contains('/') || ns == "." || ns == ".." {
            return Err(format!("invalid containerd namespace {ns:?}"));
        }
        let root = self
            .root
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        if !root.is_absolute() {
            return Err(format!(
                "husk shim config: root {} is not absolute",
                root.display()
            ));
        }
        let network = match self.network.as_deref() {
            None | Some("sandbox") => Network::Sandbox,
            Some("host") => Network::Host,
            Some("none") => Network::None,
            Some(o) => return Err(format!("husk shim config: unknown network {o:?}")),
        };
        let file_access = match self.file_access.as_deref() {
            None | Some("proxy") => FileAccess::Proxy,
            Some("direct") => FileAccess::Direct,
            Some(o) => return Err(format!("husk shim config: unknown file_access {o:?}")),
        };
        let seccomp_baseline = match self.seccomp_baseline.as_deref() {
            None | Some("on") => OnOff::On,
            Some("off") => OnOff::Off,
            Some(o) => return Err(format!("husk shim config: unknown seccomp_baseline {o:?}")),
        };
        Ok(Config {
            root: root.join(ns),
            log: self.log.clone(),
            debug: self.debug,
            network,
            file_access,
            systemd_cgroup: self.systemd_cgroup,
            seccomp_baseline,
            overlay: self.overlay,
            ..Config::default()
        })
    }

    /// The husk binary: the configured one, else `husk` beside this
    /// executable, else the first `husk` on $PATH.
    pub fn husk_binary(&self) -> Result<PathBuf, String> {
        if let Some(b) = &self.binary {
            return Ok(b.clone());
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("husk")));
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join("husk"));
        beside
            .into_iter()
            .chain(on_path)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                "the husk binary was not found beside the shim or on $PATH (set `binary` in the shim config)"
                    .to_string()
            })
    }
}

/// What a bundle records for `shim delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleRecord {
    pub namespace: String,
    pub config: ShimConfig,
    /// Whether the shim mounted `<bundle>/rootfs`.
    pub mounted_rootfs: bool,
}

impl BundleRecord {
    pub fn write(&self, bundle: &Path) -> std::io::Result<()> {
        let tmp = bundle.join(format!(".{BUNDLE_RECORD}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(self).unwrap_or_default())?;
        std::fs::rename(&tmp, bundle.join(BUNDLE_RECORD))
    }

    pub fn read(bundle: &Path) -> Option<BundleRecord> {
        let bytes = std::fs::read(bundle.join(BUNDLE_RECORD)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_and_maps_to_husk_flags() {
        let c: ShimConfig = toml::from_str(
            "root = \"/tmp/x\"\nnetwork = \"none\"\noverlay = true\nseccomp_baseline = \"off\"\n",
        )
        .unwrap();
        let h = c.husk_config("k8s.io").unwrap();
        assert_eq!(h.root, PathBuf::from("/tmp/x/k8s.io"));
        assert_eq!(h.network, Network::None);
        assert!(h.overlay);
        assert_eq!(h.seccomp_baseline, OnOff::Off);
        assert_eq!(
            ShimConfig::default().husk_config("default").unwrap().root,
            PathBuf::from("/run/containerd/husk/default")
        );
    }

    #[test]
    fn the_readme_example_is_the_default() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\nroot = \"/run/containerd/husk\"")
            .expect("README has the shim config example");
        let body = &readme[start + "```toml\n".len()..];
        let body = &body[..body.find("```").expect("closed")];
        let c: ShimConfig = toml::from_str(body).unwrap();
        assert_eq!(
            c.husk_config("k8s.io").unwrap(),
            ShimConfig::default().husk_config("k8s.io").unwrap()
        );
    }

    #[test]
    fn rejects_unknown_keys_and_values() {
        assert!(toml::from_str::<ShimConfig>("rot = \"/x\"").is_err());
        let c = ShimConfig {
            network: Some("bridge".into()),
            ..Default::default()
        };
        assert!(c.husk_config("default").is_err());
        assert!(ShimConfig::default().husk_config("../x").is_err());
    }
}
