//! Runtime-chosen user namespaces (`--userns=auto`, or the annotation
//! `dev.husk.userns: auto`): a container whose spec asks for no user
//! namespace gets one anyway, its ids 0-65535 mapped to a range of host ids
//! that no other running container has. Its root is then no one on the
//! host, and its capabilities mean nothing outside its namespaces; its
//! rootfs and bind mounts are ID-mapped, so files keep their owners on disk.
//!
//! Ranges are handed out as files under [`REGISTRY`], one per range, made
//! with O_EXCL (so two `create`s never get the same one) and naming the
//! container that holds it; `delete` releases it. A range whose holder's
//! state is gone (a create killed half-way) is taken back.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::json;

use crate::config::{Config, Userns};
use crate::error::{Error, IoContext, Result};

/// The annotation that asks for a runtime-chosen user namespace.
pub const ANNOTATION: &str = "dev.husk.userns";
/// Where ranges are recorded (for every --root of this host).
pub const REGISTRY: &str = "/run/husk-userns";
/// Ids per container: 0-65535, what images assume.
pub const SIZE: u32 = 65536;
/// The first host id handed out: far above the ranges /etc/subuid gives
/// users (100000 and up) and below the kernel's overflow ids.
const FIRST: u32 = 1 << 30;
/// How many ranges there are.
const SLOTS: u32 = 1 << 14;

/// Whether this container gets a runtime-chosen user namespace; an error
/// if it asks for one it cannot have.
pub fn wanted(cfg: &Config, spec: &Spec) -> Result<bool> {
    let ann = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .map(String::as_str);
    let auto = match ann {
        Some("auto") => true,
        Some(_) => false,
        None => cfg.userns == Userns::Auto,
    };
    let has_user = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    if auto && crate::config::rootless() {
        let asked = if ann.is_some() {
            format!("the annotation {ANNOTATION}: auto")
        } else {
            "--userns=auto".to_string()
        };
        return Err(Error::Privilege(format!(
            "{asked} needs root: it hands out host ids from {REGISTRY}, which only root may map; as a user, give the spec a user namespace of its own (husk spec --rootless)"
        )));
    }
    if !auto || has_user {
        return Ok(false);
    }
    // Namespaces made outside it belong to another user namespace, and
    // its root has no say over them (nor could boot, born in the new one,
    // join them).
    let joined = crate::sandbox::namespaces::spec_namespaces(spec, cfg.network)
        .into_iter()
        .find_map(|(k, p)| p.map(|p| (k, p)));
    if let Some((kind, path)) = joined {
        return Err(Error::Spec(format!(
            "--userns=auto: linux.namespaces joins the {} namespace {}, made outside the user namespace husk would choose; make the container a pod member (io.kubernetes.cri.sandbox-id) or run it without --userns=auto",
            kind.spec_name(),
            path.display()
        )));
    }
    Ok(true)
}

fn slot_file(base: u32) -> PathBuf {
    Path::new(REGISTRY).join(base.to_string())
}

/// Reserve a free range for container `id` (state directory `dir`); returns
/// its first host id.
pub fn allocate(id: &str, dir: &Path) -> Result<u32> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(REGISTRY)
        .with_ctx(|| format!("create {REGISTRY}"))?;
    // Start where the id hashes to, so concurrent creates rarely collide.
    let start = id
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
        % SLOTS;
    for k in 0..SLOTS {
        let base = FIRST + ((start + k) % SLOTS) * SIZE;
        let path = slot_file(base);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(dir.as_os_str().as_encoded_bytes())
                    .with_ctx(|| format!("write {}", path.display()))?;
                return Ok(base);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Taken: by a container that still exists?
                let holder = std::fs::read(&path).unwrap_or_default();
                let holder = Path::new(std::ffi::OsStr::from_bytes(&holder));
                // Its state directory is made before the range is taken
                // and removed before it is given back: gone means leaked.
                if !holder.as_os_str().is_empty() && !holder.exists() {
                    let _ = std::fs::remove_file(&path);
                }
            }
            Err(e) => return Err(e).with_ctx(|| format!("reserve {}", path.display())),
        }
    }
    Err(Error::Sandbox(format!(
        "--userns=auto: all {SLOTS} host id ranges are in use"
    )))
}

/// Give a range back.
pub fn release(base: u32) {
    let _ = std::fs::remove_file(slot_file(base));
}

/// Give the container a user namespace with that range (`own_ns`: the root
/// container; a pod member is in its pod's already), and ID-map its bind
/// mounts (the rootfs is ID-mapped by the gofer already, since the
/// container's root does not own it).
pub fn apply(spec: &mut Spec, base: u32, own_ns: bool) -> Result<()> {
    let mut v = serde_json::to_value(&*spec).map_err(|e| Error::Invalid(e.to_string()))?;
    let linux = &mut v["linux"];
    if own_ns {
        match linux["namespaces"].as_array_mut() {
            Some(list) => list.push(json!({"type": "user"})),
            None => linux["namespaces"] = json!([{"type": "user"}]),
        }
    }
    if own_ns {
        // Clients ask for "0 2147483647" (every group may ping); in a user
        // namespace only mapped groups can be named, so the range ends at
        // the last mapped one (what CRI-O does for its pods).
        if let Some(range) = linux["sysctl"]["net.ipv4.ping_group_range"].as_str() {
            if let Some(clamped) = clamp_ping_range(range) {
                linux["sysctl"]["net.ipv4.ping_group_range"] = json!(clamped);
            }
        }
    }
    let map = json!([{"containerID": 0, "hostID": base, "size": SIZE}]);
    linux["uidMappings"] = map.clone();
    linux["gidMappings"] = map;
    if let Some(mounts) = v["mounts"].as_array_mut() {
        for m in mounts {
            let is_bind = m["type"] == "bind"
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
            let mapped = m.get("uidMappings").is_some()
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "idmap" || x == "ridmap"));
            if is_bind && !mapped {
                match m["options"].as_array_mut() {
                    Some(o) => o.push(json!("idmap")),
                    None => m["options"] = json!(["idmap"]),
                }
            }
        }
    }
    *spec = serde_json::from_value(v).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(())
}

/// `low high` with both ends within the mapped gids, if it was not.
fn clamp_ping_range(range: &str) -> Option<String> {
    let mut it = range.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(low)), Some(Ok(high)), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    let last = u64::from(SIZE - 1);
    (high > last && low <= last).then(|| format!("{low} {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_range_ends_at_the_last_mapped_group() {
        assert_eq!(clamp_ping_range("0 2147483647").as_deref(), Some("0 65535"));
        assert_eq!(clamp_ping_range("0 1000"), None);
        assert_eq!(clamp_ping_range("junk"), None);
        // Nothing mapped in it: left for the kernel to refuse, by name.
        assert_eq!(clamp_ping_range("70000 80000"), None);
    }

    #[test]
    fn apply_maps_ids_and_binds() {
        let mut base = husk_oci::spec::default_spec(false);
        base["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind"]}),
        );
        let mut spec: Spec = serde_json::from_value(base).unwrap();
        apply(&mut spec, FIRST, true).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert!(v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user"));
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], FIRST);
        let data = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap();
        assert!(data["options"]
            .as_array()
            .unwrap()
            .contains(&json!("idmap")));
        // proc is not a bind: left alone.
        let proc = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/proc")
            .unwrap();
        assert!(!proc["options"]
            .as_array()
            .map(|o| o.contains(&json!("idmap")))
            .unwrap_or(false));
    }
}
