//! Compiled filters are plain BPF, so they can be kept: `prepare_cached`
//! stores each compiled plan under the runtime's root, keyed by a hash of the
//! profile, the baseline context and this binary's version. Compiling a
//! Docker-sized profile for three architectures costs libseccomp ~15 ms;
//! reading it back costs microseconds, and clients run the same profile for
//! every container.

use std::hash::{Hash, Hasher};
use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;

use super::{prepare, BaselineContext, Prepared, SeccompError};

/// Bump when the serialized form of `Prepared` changes.
const FORMAT: u32 = 1;

fn key(spec: Option<&LinuxSeccomp>, ctx: &BaselineContext) -> String {
    let text = spec
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .unwrap_or_default();
    // Two independent 64-bit hashes: a collision would need both to agree.
    let mut parts = Vec::new();
    for salt in [0x9e37_79b9_7f4a_7c15u64, 0xc2b2_ae3d_27d4_eb4f] {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        FORMAT.hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        text.hash(&mut h);
        ctx.enabled.hash(&mut h);
        ctx.has_cap_sys_admin.hash(&mut h);
        ctx.has_user_namespace.hash(&mut h);
        ctx.always_inherited.hash(&mut h);
        parts.push(format!("{:016x}", h.finish()));
    }
    parts.concat()
}

/// `prepare`, through a cache directory (created on demand, root-only). A
/// cache that cannot be read or written is ignored.
pub fn prepare_cached(
    dir: &Path,
    spec: Option<&LinuxSeccomp>,
    ctx: &BaselineContext,
) -> Result<Prepared, SeccompError> {
    let file = dir.join(format!("{}.json", key(spec, ctx)));
    if let Ok(bytes) = std::fs::read(&file) {
        if let Ok(p) = serde_json::from_slice::<Prepared>(&bytes) {
            return Ok(p);
        }
    }
    let p = prepare(spec, ctx)?;
    if let Ok(bytes) = serde_json::to_vec(&p) {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
        let tmp = dir.join(format!(".{}.{}", std::process::id(), key(spec, ctx)));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_plan_round_trips() {
        let dir = std::env::temp_dir().join(format!("husk-seccomp-cache-{}", std::process::id()));
        let spec: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        let ctx = BaselineContext {
            enabled: true,
            ..Default::default()
        };
        let a = prepare_cached(&dir, Some(&spec), &ctx).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let b = prepare_cached(&dir, Some(&spec), &ctx).unwrap();
        assert_eq!(a.instruction_counts(), b.instruction_counts());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        // A different context is a different plan.
        let other = BaselineContext {
            enabled: false,
            ..Default::default()
        };
        prepare_cached(&dir, Some(&spec), &other).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
