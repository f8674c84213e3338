//! Compiled filters are plain BPF, so they can be kept: `prepare_cached`
//! stores each compiled plan under the runtime's cache directory. Compiling
//! a Docker-sized profile for three architectures costs libseccomp ~15 ms;
//! reading it back costs microseconds, and clients run the same profile for
//! every container.
//!
//! - **Key**: the SHA-256 of everything the plan is made from: the profile
//!   (the spec's, or husk's default for the container), the baseline
//!   context, husk's version and the cache format, the baseline's rule
//!   table and the libseccomp version that compiles it. The same inputs
//!   give the same file name in every process and every build.
//! - **Format**: the BPF as the kernel takes it, with a small header
//!   (`encode`): reading a plan back is a copy, not a parse.
//! - **Size**: at most [`MAX_ENTRIES`] plans; writing one more removes the
//!   least recently used (a hit refreshes a file's modification time).
//! - **Trust**: a cached plan is loaded into a container, so the cache is
//!   used only when its directory is a real directory (not a symlink),
//!   owned by the runtime's effective uid and writable by nobody else; a
//!   file is read only if it is a regular file reached without following a
//!   symlink (O_NOFOLLOW), owned by that uid and not writable by group or
//!   others. Anything else is ignored and the plan compiled afresh. Files
//!   are written 0600 under a temporary name and renamed into place.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use oci_spec::runtime::{LinuxSeccomp, Process};
use sha2::{Digest, Sha256};

use super::{prepare, BaselineContext, Prepared, SeccompError};

/// Bump when the file format or the way a profile is compiled changes (the
/// rule tables are in the key already).
const FORMAT: u32 = 2;

/// At most this many plans are kept.
pub const MAX_ENTRIES: usize = 64;

/// A cached plan larger than this is not one husk wrote (3 filters of
/// 4096 instructions are 96 KiB).
const MAX_FILE: u64 = 1 << 20;

/// A temporary file older than this was left by a writer that died.
const STALE_TMP: Duration = Duration::from_secs(60);

/// The cache key: hex SHA-256 of the plan's inputs. `profile` is the
/// profile's own text: the spec's JSON, or what husk's default profile is
/// made from.
fn key_of(profile: &str, ctx: &BaselineContext) -> String {
    let lib = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut h = Sha256::new();
    let mut line = |label: &str, value: &str| {
        h.update(label.as_bytes());
        h.update(b"=");
        h.update(value.len().to_le_bytes());
        h.update(value.as_bytes());
        h.update(b"\n");
    };
    line("format", &FORMAT.to_string());
    line("husk", env!("CARGO_PKG_VERSION"));
    line("libseccomp", &lib);
    line("baseline", &super::baseline::fingerprint());
    line(
        "context",
        &format!(
            "enabled={} admin={} userns={} inherited={}",
            ctx.enabled, ctx.has_cap_sys_admin, ctx.has_user_namespace, ctx.always_inherited
        ),
    );
    line("profile", profile);
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// The key of a spec's profile (or none) with this context.
pub(super) fn key(spec: Option<&LinuxSeccomp>, ctx: &BaselineContext) -> String {
    let profile = spec
        .map(|s| format!("spec {}", serde_json::to_string(s).unwrap_or_default()))
        .unwrap_or_else(|| "none".to_string());
    key_of(&profile, ctx)
}

/// `prepare`, through a cache directory (created on demand, 0700). A cache
/// that cannot be trusted, read or written is ignored: the plan is compiled.
pub fn prepare_cached(
    dir: &Path,
    spec: Option<&LinuxSeccomp>,
    ctx: &BaselineContext,
) -> Result<Prepared, SeccompError> {
    cached(dir, &key(spec, ctx), || prepare(spec, ctx))
}

/// `prepare` with husk's default profile for a container whose process is
/// `process`, through the cache. The key is computed from what the profile
/// is made from, so a cache hit does not build the profile at all.
pub fn prepare_cached_default(
    dir: &Path,
    process: Option<&Process>,
    ctx: &BaselineContext,
) -> Result<Prepared, SeccompError> {
    let caps = super::default_profile::capabilities(process);
    let profile = format!("default {}", super::default_profile::fingerprint(&caps));
    cached(dir, &key_of(&profile, ctx), || {
        prepare(Some(&super::default_profile::default_profile(process)), ctx)
    })
}

fn cached(
    dir: &Path,
    key: &str,
    compile: impl FnOnce() -> Result<Prepared, SeccompError>,
) -> Result<Prepared, SeccompError> {
    let name = format!("{key}.bpf");
    let dirfd = open_dir(dir);
    if let Some(d) = &dirfd {
        if let Some(p) = read(d, &name) {
            return Ok(p);
        }
    }
    let p = compile()?;
    if let Some(d) = &dirfd {
        write(d, dir, &name, &encode(&p));
    }
    Ok(p)
}

const MAGIC: &[u8; 8] = b"huskbpf\0";

/// The cache's file format: magic, then per filter its name (0 baseline,
/// 1 linux.seccomp), flags and instructions as the kernel takes them, then
/// the listener fields as JSON. Native byte order: a cache never leaves
/// its machine.
fn encode(p: &Prepared) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(64 + p.filters.iter().map(|f| f.insns.len() * 8).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(p.filters.len() as u32).to_ne_bytes());
    for f in &p.filters {
        out.push(u8::from(f.name != "baseline"));
        out.extend_from_slice(&f.flags.to_ne_bytes());
        out.extend_from_slice(&(f.insns.len() as u32).to_ne_bytes());
        for i in &f.insns {
            out.extend_from_slice(&super::insn_bytes(i));
        }
    }
    let meta = serde_json::json!({
        "listener_path": p.listener_path,
        "listener_metadata": p.listener_metadata,
        "notify": p.notify,
    });
    out.extend_from_slice(&serde_json::to_vec(&meta).unwrap_or_default());
    out
}

fn decode(b: &[u8]) -> Option<Prepared> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Some(head)
    }
    let mut b = b;
    if take(&mut b, 8)? != MAGIC {
        return None;
    }
    let n = u32::from_ne_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
    if n > 8 {
        return None;
    }
    let mut filters = Vec::with_capacity(n);
    for _ in 0..n {
        let name = if take(&mut b, 1)?[0] == 0 {
            "baseline"
        } else {
            "linux.seccomp"
        };
        let width = std::mem::size_of::<libc::c_ulong>();
        let flags = libc::c_ulong::from_ne_bytes(take(&mut b, width)?.try_into().ok()?);
        let len = u32::from_ne_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
        if len == 0 || len > super::BPF_MAXINSNS {
            return None;
        }
        let insns = take(&mut b, len * 8)?
            .chunks_exact(8)
            .map(super::insn_from)
            .collect();
        filters.push(super::Program { name, flags, insns });
    }
    let meta: serde_json::Value = serde_json::from_slice(b).ok()?;
    Some(Prepared {
        filters,
        listener_path: serde_json::from_value(meta.get("listener_path")?.clone()).ok()?,
        listener_metadata: serde_json::from_value(meta.get("listener_metadata")?.clone()).ok()?,
        notify: meta.get("notify")?.as_bool()?,
    })
}

/// Does this file or directory belong to us alone?
fn trusted(meta: &std::fs::Metadata) -> bool {
    meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

/// Open (creating it if need be) the cache directory, if it can be trusted.
fn open_dir(dir: &Path) -> Option<OwnedFd> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    let fd = husk_sys::fd::open(
        dir,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(|e| tracing::debug!("seccomp cache {}: {e}", dir.display()))
    .ok()?;
    let meta = std::fs::File::from(fd.try_clone().ok()?).metadata().ok()?;
    if !trusted(&meta) {
        tracing::debug!(
            "seccomp cache {}: not owned by us alone (uid {}, mode {:o}), not used",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
        return None;
    }
    Some(fd)
}

fn read(dir: &OwnedFd, name: &str) -> Option<Prepared> {
    let fd = husk_sys::fd::openat(
        dir.as_fd(),
        Path::new(name),
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
        0,
    )
    .ok()?;
    let mut file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() || !trusted(&meta) || meta.len() > MAX_FILE {
        tracing::debug!("seccomp cache: {name} is not ours alone, ignored");
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut file)
        .take(MAX_FILE)
        .read_to_end(&mut bytes)
        .ok()?;
    let p = decode(&bytes)?;
    // Used: keep it over the least recently used ones.
    let now = nix::sys::time::TimeSpec::UTIME_NOW;
    let _ = nix::sys::stat::futimens(file.as_raw_fd(), &now, &now);
    Some(p)
}

fn write(dir: &OwnedFd, path: &Path, name: &str, bytes: &[u8]) {
    let tmp = format!(".{}.{name}", std::process::id());
    let Ok(fd) = husk_sys::fd::openat(
        dir.as_fd(),
        Path::new(&tmp),
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0o600,
    ) else {
        return;
    };
    let mut file = std::fs::File::from(fd);
    let d = Some(dir.as_raw_fd());
    if file.write_all(bytes).is_err() || nix::fcntl::renameat(d, tmp.as_str(), d, name).is_err() {
        let _ = nix::unistd::unlinkat(d, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        return;
    }
    evict(dir, path);
}

/// Keep at most MAX_ENTRIES plans: remove the least recently used ones,
/// and temporary files writers left behind.
fn evict(dir: &OwnedFd, path: &Path) {
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let d = Some(dir.as_raw_fd());
    let now = SystemTime::now();
    let mut plans: Vec<(SystemTime, String)> = Vec::new();
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Ok(meta) =
            nix::sys::stat::fstatat(d, name.as_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        let mtime = SystemTime::UNIX_EPOCH
            + Duration::new(
                meta.st_mtime.max(0) as u64,
                meta.st_mtime_nsec.max(0) as u32,
            );
        let stale = now.duration_since(mtime).unwrap_or_default() > STALE_TMP;
        if name.starts_with('.') {
            if stale {
                let _ = nix::unistd::unlinkat(
                    d,
                    name.as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
            }
        } else if name.ends_with(".bpf") {
            plans.push((mtime, name));
        }
    }
    if plans.len() <= MAX_ENTRIES {
        return;
    }
    plans.sort();
    let excess = plans.len() - MAX_ENTRIES;
    for (_, name) in plans.into_iter().take(excess) {
        let _ = nix::unistd::unlinkat(d, name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("husk-seccomp-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mkdir_profile() -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap()
    }

    fn on() -> BaselineContext {
        BaselineContext {
            enabled: true,
            ..Default::default()
        }
    }

    fn plans_in(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".bpf"))
            .count()
    }

    #[test]
    fn cached_plan_round_trips() {
        let dir = tmpdir("rt");
        let spec = mkdir_profile();
        let a = prepare_cached(&dir, Some(&spec), &on()).unwrap();
        assert_eq!(plans_in(&dir), 1);
        let b = prepare_cached(&dir, Some(&spec), &on()).unwrap();
        assert_eq!(a.instruction_counts(), b.instruction_counts());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        // A different context is a different plan.
        prepare_cached(&dir, Some(&spec), &BaselineContext::default()).unwrap();
        assert_eq!(plans_in(&dir), 2);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            assert_eq!(e.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_is_a_stable_sha256_of_the_inputs() {
        let spec = mkdir_profile();
        let k = key(Some(&spec), &on());
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k, key(Some(&spec), &on()), "same inputs, same key");
        assert_ne!(k, key(None, &on()));
        assert_ne!(k, key(Some(&spec), &BaselineContext::default()));
        let other: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        assert_ne!(k, key(Some(&other), &on()));
    }

    /// Plant `planted` (a valid plan of another profile) where the plan for
    /// (mkdir profile, on) would be, apply `spoil` to it, and check that
    /// prepare_cached compiles instead of loading it.
    fn planted_is_ignored(tag: &str, spoil: impl FnOnce(&Path, &Path)) {
        let dir = tmpdir(tag);
        let spec = mkdir_profile();
        let want = prepare(Some(&spec), &on()).unwrap();
        let planted = prepare(None, &BaselineContext::default()).unwrap();
        assert_ne!(format!("{want:?}"), format!("{planted:?}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = dir.join(format!("{}.bpf", key(Some(&spec), &on())));
        let elsewhere = dir.join("elsewhere");
        std::fs::write(&elsewhere, encode(&planted)).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        spoil(&file, &elsewhere);
        let got = prepare_cached(&dir, Some(&spec), &on()).unwrap();
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{tag}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn untrusted_cache_files_are_ignored() {
        // Control: a trusted planted file *is* used (so the checks below
        // are not passing for another reason).
        let dir = tmpdir("control");
        let spec = mkdir_profile();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let planted = prepare(None, &BaselineContext::default()).unwrap();
        let file = dir.join(format!("{}.bpf", key(Some(&spec), &on())));
        std::fs::write(&file, encode(&planted)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let got = prepare_cached(&dir, Some(&spec), &on()).unwrap();
        assert_eq!(format!("{got:?}"), format!("{planted:?}"));
        std::fs::remove_dir_all(&dir).unwrap();

        planted_is_ignored("symlink", |file, elsewhere| {
            std::os::unix::fs::symlink(elsewhere, file).unwrap();
        });
        planted_is_ignored("writable", |file, elsewhere| {
            std::fs::rename(elsewhere, file).unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o666)).unwrap();
        });
        planted_is_ignored("group-writable", |file, elsewhere| {
            std::fs::rename(elsewhere, file).unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o620)).unwrap();
        });
        planted_is_ignored("open-dir", |file, elsewhere| {
            std::fs::rename(elsewhere, file).unwrap();
            let dir = file.parent().unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        });
        if nix::unistd::geteuid().is_root() {
            planted_is_ignored("foreign", |file, elsewhere| {
                std::fs::rename(elsewhere, file).unwrap();
                std::os::unix::fs::chown(file, Some(4321), None).unwrap();
            });
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let dir = tmpdir("bound");
        let n = MAX_ENTRIES + 5;
        let first: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        }))
        .unwrap();
        for i in 0..n {
            let spec: LinuxSeccomp = serde_json::from_value(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 + i}]
            }))
            .unwrap();
            prepare_cached(&dir, Some(&spec), &BaselineContext::default()).unwrap();
            if i == 0 {
                // Older than the rest by a clear margin, but used again below.
                std::thread::sleep(Duration::from_millis(20));
            }
            if i == 10 {
                // A hit refreshes the first plan: it must survive eviction.
                prepare_cached(&dir, Some(&first), &BaselineContext::default()).unwrap();
            }
        }
        assert_eq!(plans_in(&dir), MAX_ENTRIES);
        let first_file = dir.join(format!(
            "{}.bpf",
            key(Some(&first), &BaselineContext::default())
        ));
        assert!(first_file.exists(), "the recently used plan was evicted");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn process(caps: &[&str]) -> Process {
        serde_json::from_value(serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}
        }))
        .unwrap()
    }

    #[test]
    fn default_profile_plans_are_keyed_by_what_the_profile_is_made_of() {
        let dir = tmpdir("default");
        let ctx = BaselineContext {
            always_inherited: true,
            ..on()
        };
        let plain = process(&["CAP_KILL"]);
        let got = prepare_cached_default(&dir, Some(&plain), &ctx).unwrap();
        let want = prepare(
            Some(&crate::default_profile::default_profile(Some(&plain))),
            &ctx,
        )
        .unwrap();
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
        let hit = prepare_cached_default(&dir, Some(&plain), &ctx).unwrap();
        assert_eq!(format!("{hit:?}"), format!("{want:?}"));
        assert_eq!(plans_in(&dir), 1);
        // A capability no rule depends on: the same plan.
        prepare_cached_default(&dir, Some(&process(&["CAP_KILL", "CAP_LEASE"])), &ctx).unwrap();
        assert_eq!(plans_in(&dir), 1);
        // One that opens a group: another.
        let admin = process(&["CAP_KILL", "CAP_SYS_ADMIN"]);
        let a = prepare_cached_default(&dir, Some(&admin), &ctx).unwrap();
        assert_eq!(plans_in(&dir), 2);
        assert_ne!(format!("{a:?}"), format!("{want:?}"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_format_round_trips() {
        let spec: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "meta",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        let p = prepare(Some(&spec), &on()).unwrap();
        let back = decode(&encode(&p)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{p:?}"));
        assert!(back.uses_notify());
        assert_eq!(back.listener_metadata(), "meta");
        let bytes = encode(&p);
        for cut in [0, 7, 12, 30, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(decode(&bad).is_none());
    }
}
