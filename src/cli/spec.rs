//! `husk spec`: write a default config.json, as `runc spec` writes it (same
//! content, key order and tab indentation), so bundles made with either
//! behave the same; `--extras` adds what husk recommends beyond that.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::Value;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write config.json into.
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// A spec for running without root (user namespace, no cgroups).
    #[arg(long)]
    pub rootless: bool,
    /// Add husk's recommended extras to runc's defaults (a cgroup
    /// namespace).
    #[arg(long)]
    pub extras: bool,
}

pub fn run(_cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("spec: {} exists; remove it first", path.display());
    }
    let mut spec = crate::spec::default_spec(a.rootless);
    if a.extras {
        crate::spec::add_extras(&mut spec);
    }
    std::fs::write(&path, to_runc_text(&spec)?)
        .with_context(|| format!("spec: write {}", path.display()))?;
    Ok(0)
}

/// The order of keys in runc's config.json (Go struct order); a key's
/// place is the same in every object it appears in. Others go last, sorted.
const KEY_ORDER: &[&str] = &[
    "ociVersion",
    "process",
    "terminal",
    "user",
    "uid",
    "gid",
    "args",
    "env",
    "cwd",
    "capabilities",
    "bounding",
    "effective",
    "permitted",
    "ambient",
    "rlimits",
    "destination",
    "type",
    "hard",
    "soft",
    "source",
    "options",
    "noNewPrivileges",
    "root",
    "path",
    "readonly",
    "hostname",
    "mounts",
    "linux",
    "uidMappings",
    "gidMappings",
    "containerID",
    "hostID",
    "size",
    "resources",
    "devices",
    "allow",
    "access",
    "namespaces",
    "maskedPaths",
    "readonlyPaths",
];

/// A JSON value serialized with its object keys in [`KEY_ORDER`].
struct Ordered<'a>(&'a Value);

impl serde::Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(m) => {
                let rank = |k: &str| KEY_ORDER.iter().position(|x| *x == k).unwrap_or(usize::MAX);
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
                let mut map = s.serialize_map(Some(keys.len()))?;
                for k in keys {
                    map.serialize_entry(k, &Ordered(&m[k]))?;
                }
                map.end()
            }
            Value::Array(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(&Ordered(x))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

/// runc's file format: keys in runc's order, tab indentation, no newline
/// at the end.
fn to_runc_text(spec: &Value) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&Ordered(spec), &mut ser)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_in_runcs_order() {
        let text =
            String::from_utf8(to_runc_text(&crate::spec::default_spec(false)).unwrap()).unwrap();
        let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
        assert!(pos("ociVersion") < pos("process"));
        assert!(pos("process") < pos("root"));
        assert!(pos("root") < pos("hostname"));
        assert!(pos("hostname") < pos("mounts"));
        assert!(pos("mounts") < pos("linux"));
        assert!(text.starts_with("{\n\t\"ociVersion\""), "{text}");
        assert!(text.ends_with('}'));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, crate::spec::default_spec(false));
    }
}
