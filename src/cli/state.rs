use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;

use crate::config::Config;
use crate::container::state::OciState;
use crate::container::Container;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

pub fn run(cfg: &Config, a: Args) -> anyhow::Result<i32> {
    let st = Container::read(cfg, &a.id).with_context(|| format!("state {}", a.id))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&RuncState::of(&st.oci_state()))?
    );
    Ok(0)
}

/// A container's state as `state` and `list --format json` print it: keys
/// in runc's order (ociVersion, id, pid, status, bundle, rootfs, created,
/// annotations sorted by key, owner), which scripts grep for.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RuncState<'a> {
    oci_version: &'a str,
    id: &'a str,
    pid: i32,
    status: &'a str,
    bundle: &'a std::path::Path,
    rootfs: &'a std::path::Path,
    created: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
    owner: &'a str,
}

impl<'a> RuncState<'a> {
    pub(super) fn of(s: &'a OciState) -> Self {
        RuncState {
            oci_version: &s.oci_version,
            id: &s.id,
            pid: s.pid,
            status: &s.status,
            bundle: &s.bundle,
            rootfs: &s.rootfs,
            created: &s.created,
            annotations: s
                .annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            owner: &s.owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_runcs_order() {
        let mut s = OciState {
            id: "x".into(),
            ..Default::default()
        };
        s.annotations.insert("b".into(), "2".into());
        s.annotations.insert("a".into(), "1".into());
        let text = serde_json::to_string(&RuncState::of(&s)).unwrap();
        let keys = [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "annotations",
            "\"a\"",
            "\"b\"",
            "owner",
        ];
        let pos: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    }
}
