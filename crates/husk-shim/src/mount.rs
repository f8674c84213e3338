//! The container's root filesystem from the snapshotter's mounts (an
//! overlay, usually), mounted at `<bundle>/rootfs` as containerd's runc
//! shim does, and unmounted again.
//!
//! Mounting happens in the worker, which is single-threaded and may change
//! its working directory for the duration of a mount: long overlay
//! `lowerdir` lists are shortened to paths relative to their common parent
//! (the mount(2) data must fit in one page), as containerd does.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

/// One entry of `CreateTaskRequest.rootfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMount {
    pub fs_type: String,
    pub source: String,
    /// Below the rootfs (containerd 1.7+); empty for the rootfs itself.
    pub target: String,
    pub options: Vec<String>,
}

/// Mount options that are flags (set, or cleared when `clear`).
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("atime", true, MsFlags::MS_NOATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("defaults", false, MsFlags::empty()),
    ("dev", true, MsFlags::MS_NODEV),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("nodev", false, MsFlags::MS_NODEV),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("suid", true, MsFlags::MS_NOSUID),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
];

const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Flags, propagation and filesystem data of a mount's options.
fn parse_options(options: &[String]) -> (MsFlags, MsFlags, Vec<String>) {
    let mut flags = MsFlags::empty();
    let mut prop = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        if let Some((_, clear, f)) = FLAGS.iter().find(|(n, _, _)| n == o) {
            if *clear {
                flags.remove(*f);
            } else {
                flags.insert(*f);
            }
        } else if let Some((_, p)) = PROPAGATION.iter().find(|(n, _)| n == o) {
            prop.insert(*p);
        } else {
            data.push(o.clone());
        }
    }
    (flags, prop, data)
}

/// The longest common directory of `paths` (ending in `/`), if any.
fn common_dir(paths: &[&str]) -> Option<String> {
    let first = paths.first()?;
    let mut end = first.len();
    for p in &paths[1..] {
        end = end.min(
            first
                .bytes()
                .zip(p.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    let prefix = &first[..end];
    let cut = prefix.rfind('/')?;
    (cut > 0).then(|| first[..=cut].to_string())
}

/// Overlay data too long for one page: `lowerdir` entries relative to
/// their common directory, which the caller makes the working directory.
fn compact_lowerdir(data: &[String]) -> Option<(PathBuf, Vec<String>)> {
    let lower = data.iter().find_map(|o| o.strip_prefix("lowerdir="))?;
    let dirs: Vec<&str> = lower.split(':').collect();
    let common = common_dir(&dirs)?;
    let relative: Vec<&str> = dirs
        .iter()
        .map(|d| d.strip_prefix(common.as_str()).unwrap_or(d))
        .collect();
    let out = data
        .iter()
        .map(|o| {
            if o.starts_with("lowerdir=") {
                format!("lowerdir={}", relative.join(":"))
            } else {
                o.clone()
            }
        })
        .collect();
    Some((PathBuf::from(common), out))
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|n| n as usize)
        .unwrap_or(4096)
}

/// Mount one entry at `target`. Changes the working directory while it
/// mounts a compacted overlay: only for a single-threaded process.
fn mount_one(m: &RootMount, target: &Path) -> io::Result<()> {
    let (flags, prop, mut data) = parse_options(&m.options);
    let mut chdir = None;
    if m.fs_type == "overlay" && data.join(",").len() >= page_size() - 512 {
        if let Some((dir, compacted)) = compact_lowerdir(&data) {
            chdir = Some(dir);
            data = compacted;
        }
    }
    let data = data.join(",");
    if data.len() >= page_size() {
        return Err(io::Error::other(format!(
            "{} mount options are too long ({} bytes)",
            m.fs_type,
            data.len()
        )));
    }
    let back = match &chdir {
        Some(dir) => {
            let cwd = std::env::current_dir()?;
            std::env::set_current_dir(dir)?;
            Some(cwd)
        }
        None => None,
    };
    let fs_type = (!m.fs_type.is_empty()).then_some(m.fs_type.as_str());
    // A bind mount ignores the other flags; they take a remount (below).
    let r = mount(
        Some(m.source.as_str()),
        target,
        fs_type,
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    );
    if let Some(cwd) = back {
        let _ = std::env::set_current_dir(cwd);
    }
    r.map_err(|e| {
        io::Error::other(format!(
            "mount {} ({}) on {}: {}",
            m.source,
            m.fs_type,
            target.display(),
            husk_sys::errno_text(&io::Error::from(e))
        ))
    })?;
    if flags.contains(MsFlags::MS_BIND) && flags.intersects(!(MsFlags::MS_BIND | MsFlags::MS_REC)) {
        mount::<str, Path, str, str>(None, target, None, flags | MsFlags::MS_REMOUNT, None)
            .map_err(io::Error::from)?;
    }
    if !prop.is_empty() {
        mount::<str, Path, str, str>(None, target, None, prop, None).map_err(io::Error::from)?;
    }
    Ok(())
}

/// Mount the snapshotter's mounts at `rootfs` (made 0711 if missing), in
/// order; on failure, whatever was mounted is unmounted again.
pub fn mount_rootfs(mounts: &[RootMount], rootfs: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o711).create(rootfs) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io::Error::other(format!(
                "create {}: {e}",
                rootfs.display()
            )))
        }
    }
    for m in mounts {
        let rel = Path::new(m.target.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            let _ = unmount_all(rootfs);
            return Err(io::Error::other(format!(
                "mount target {:?} leaves the rootfs",
                m.target
            )));
        }
        if let Err(e) = mount_one(m, &rootfs.join(rel)) {
            let _ = unmount_all(rootfs);
            return Err(e);
        }
    }
    Ok(())
}

/// "\040" and friends in /proc/self/mountinfo paths.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    out.dedup();
    out
}

/// Unmount everything at or below `dir` (stacked mounts too). A busy
/// mount is detached rather than left behind.
pub fn unmount_all(dir: &Path) -> io::Result<()> {
    for m in mounts_below(dir) {
        loop {
            match umount2(&m, MntFlags::empty()) {
                Ok(()) => continue,
                Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => break,
                Err(nix::errno::Errno::EBUSY) => {
                    umount2(&m, MntFlags::MNT_DETACH).map_err(io::Error::from)?;
                }
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "unmount {}: {}",
                        m.display(),
                        husk_sys::errno_text(&io::Error::from(e))
                    )))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, p, d) = parse_options(&s(&[
            "ro",
            "nosuid",
            "rbind",
            "rslave",
            "index=off",
            "lowerdir=/a",
        ]));
        assert!(f.contains(
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC
        ));
        assert_eq!(p, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(d, s(&["index=off", "lowerdir=/a"]));
        let (f, _, _) = parse_options(&s(&["ro", "rw"]));
        assert!(!f.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn lowerdirs_are_made_relative_to_their_common_parent() {
        let data = s(&[
            "index=off",
            "workdir=/s/snapshots/9/work",
            "upperdir=/s/snapshots/9/fs",
            "lowerdir=/s/snapshots/3/fs:/s/snapshots/2/fs:/s/snapshots/10/fs",
        ]);
        let (dir, out) = compact_lowerdir(&data).unwrap();
        assert_eq!(dir, PathBuf::from("/s/snapshots/"));
        assert_eq!(out[3], "lowerdir=3/fs:2/fs:10/fs");
        assert_eq!(out[1], data[1]);
        assert_eq!(common_dir(&["/a/b", "/c/d"]), None);
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape("/run/a\\040b"), "/run/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
