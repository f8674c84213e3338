//! Overlay rootfs for containers in a user namespace.
//!
//! Docker, containerd and podman hand the runtime an overlayfs mount as the
//! rootfs, and the kernel refuses to ID-map an overlay mount itself. It does
//! take ID-mapped layers, so the gofer reads the layers of the client's
//! overlay from mountinfo and makes a second overlay of the same directories,
//! each layer seen through an ID-mapped mount: the container's root owns what
//! the host's root owns, and what it writes lands in the client's upper
//! directory owned as the client expects.
//!
//! The client's own overlay stays mounted with the same upper and work
//! directories; clients do not write through it while the container runs,
//! and `index=off` keeps the kernel from refusing the second mount.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::error::errno_text;
use crate::sys::mount::{mount_setattr, open_tree, openat2, FsContext, OPEN_TREE_CLONE};
use crate::sys::mount::{Attrs, RESOLVE_NO_MAGICLINKS};

/// The layers of an overlay mount, as its mount options name them.
#[derive(Debug, Default, PartialEq)]
pub struct Layers {
    /// Uppermost first.
    pub lower: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
}

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The layers of the overlay mounted at `mountpoint`, from mountinfo text
/// (the last mount there wins: it is the one on top). Relative layer paths
/// (Docker uses them when the absolute ones would not fit a page) are taken
/// from `base`.
pub fn layers_of(mountinfo: &str, mountpoint: &Path, base: &Path) -> Option<Layers> {
    let line = mountinfo.lines().rev().find(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.len() > 4 && Path::new(&unescape(f[4])) == mountpoint
    })?;
    let (_, tail) = line.split_once(" - ")?;
    let mut t = tail.splitn(3, ' ');
    if t.next()? != "overlay" {
        return None;
    }
    let _source = t.next()?;
    let opts = t.next()?;
    let abs = |p: &str| {
        let p = PathBuf::from(unescape(p));
        if p.is_relative() {
            base.join(p)
        } else {
            p
        }
    };
    let mut layers = Layers::default();
    for opt in opts.split(',') {
        if let Some(v) = opt.strip_prefix("lowerdir=") {
            // "::" marks data-only layers, which cannot be remade this way.
            if v.contains("::") {
                return None;
            }
            layers
                .lower
                .extend(v.split(':').filter(|s| !s.is_empty()).map(abs));
        } else if let Some(v) = opt.strip_prefix("lowerdir+=") {
            layers.lower.push(abs(v));
        } else if opt.starts_with("datadir+=") {
            return None;
        } else if let Some(v) = opt.strip_prefix("upperdir=") {
            layers.upper = Some(abs(v));
        } else if let Some(v) = opt.strip_prefix("workdir=") {
            layers.work = Some(abs(v));
        }
    }
    (!layers.lower.is_empty()).then_some(layers)
}

fn clone_mapped(path: &Path, userns: RawFd) -> Result<OwnedFd, String> {
    let fd = openat2(
        None,
        path,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| format!("{}: {}", path.display(), errno_text(&e)))?;
    let tree = open_tree(Some(fd.as_fd()), Path::new(""), OPEN_TREE_CLONE)
        .map_err(|e| format!("{}: {}", path.display(), errno_text(&e)))?;
    mount_setattr(
        tree.as_fd(),
        false,
        &Attrs {
            userns_fd: Some(userns),
            ..Default::default()
        },
    )
    .map_err(|e| format!("{}: ID-mapped mount: {}", path.display(), errno_text(&e)))?;
    Ok(tree)
}

fn fd_path(fd: &OwnedFd, sub: &str) -> String {
    format!("/proc/self/fd/{}{sub}", fd.as_raw_fd())
}

/// Run `f` with the filesystem ids `uid`/`gid` and this thread's
/// capabilities all effective (a change of fsuid from 0 clears the
/// filesystem ones).
fn as_ids<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> Result<T, String> {
    use caps::CapSet;
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    let before = caps::read(None, CapSet::Effective).map_err(|e| e.to_string())?;
    let old_gid = nix::unistd::setfsgid(nix::unistd::Gid::from_raw(gid));
    let old_uid = nix::unistd::setfsuid(nix::unistd::Uid::from_raw(uid));
    let raised = caps::set(None, CapSet::Effective, &permitted).map_err(|e| e.to_string());
    let out = raised.map(|()| f());
    nix::unistd::setfsuid(old_uid);
    nix::unistd::setfsgid(old_gid);
    let _ = caps::set(None, CapSet::Effective, &before);
    out
}

/// A new overlay of the layers of the overlay mounted at `rootfs`, each
/// layer ID-mapped through `userns`, made as the container's root
/// (`root_ids`, host view): the kernel writes the upper layer with its
/// maker's credentials, and through the mapping only the container's ids
/// have an owner on disk.
pub fn remap(rootfs: &Path, userns: RawFd, root_ids: (u32, u32)) -> Result<OwnedFd, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("mountinfo: {}", errno_text(&e)))?;
    let canonical = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    // Docker's layout: <home>/<layer>/merged, relative paths from <home>.
    let base = canonical
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    let layers = layers_of(&info, &canonical, base).ok_or_else(|| {
        "an overlay whose layers cannot be read from mountinfo cannot be ID-mapped".to_string()
    })?;
    // Kept open until the overlay is made: its options name them.
    let mut keep = Vec::new();
    let mut lower = Vec::new();
    for l in &layers.lower {
        let fd = clone_mapped(l, userns)?;
        lower.push(fd_path(&fd, ""));
        keep.push(fd);
    }
    let ov = FsContext::open("overlay").map_err(|e| errno_text(&e))?;
    let _ = ov.set_string("source", "husk-overlay");
    ov.set_string("lowerdir", &lower.join(":"))
        .map_err(|e| format!("overlay lowerdir: {}", errno_text(&e)))?;
    if let (Some(upper), Some(work)) = (&layers.upper, &layers.work) {
        // Upper and work must be on one mount: map the directory holding
        // both.
        let common =
            common_dir(upper, work).ok_or("overlay upperdir and workdir share no parent")?;
        let fd = clone_mapped(&common, userns)?;
        let rel = |p: &Path| {
            let r = p.strip_prefix(&common).unwrap_or(p);
            format!("/{}", r.display())
        };
        ov.set_string("upperdir", &fd_path(&fd, &rel(upper)))
            .map_err(|e| format!("overlay upperdir: {}", errno_text(&e)))?;
        ov.set_string("workdir", &fd_path(&fd, &rel(work)))
            .map_err(|e| format!("overlay workdir: {}", errno_text(&e)))?;
        let _ = ov.set_string("index", "off");
        keep.push(fd);
    }
    let tree = as_ids(root_ids.0, root_ids.1, || ov.mount(0))?
        .map_err(|e| format!("overlay of ID-mapped layers: {}", errno_text(&e)))?;
    drop(keep);
    Ok(tree)
}

fn common_dir(a: &Path, b: &Path) -> Option<PathBuf> {
    let mut c = PathBuf::new();
    for (x, y) in a.components().zip(b.components()) {
        if x != y {
            break;
        }
        c.push(x);
    }
    (c != Path::new("/") && !c.as_os_str().is_empty()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = "36 25 0:31 / /var/lib/docker/overlay2/abc/merged rw,relatime shared:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X:/var/lib/docker/overlay2/l/Y,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work,index=off\n";

    #[test]
    fn reads_dockers_layers() {
        let l = layers_of(
            DOCKER,
            Path::new("/var/lib/docker/overlay2/abc/merged"),
            Path::new("/var/lib/docker/overlay2"),
        )
        .unwrap();
        assert_eq!(
            l.lower,
            [
                PathBuf::from("/var/lib/docker/overlay2/l/X"),
                PathBuf::from("/var/lib/docker/overlay2/l/Y")
            ]
        );
        assert_eq!(
            l.upper.as_deref(),
            Some(Path::new("/var/lib/docker/overlay2/abc/diff"))
        );
        assert_eq!(
            common_dir(l.upper.as_ref().unwrap(), l.work.as_ref().unwrap()).unwrap(),
            Path::new("/var/lib/docker/overlay2/abc")
        );
    }

    #[test]
    fn relative_and_escaped_and_plus_layers() {
        let info = "1 2 0:3 / /a\\040b rw - overlay overlay rw,lowerdir=l/X:l/Y,upperdir=abc/diff,workdir=abc/work\n\
                    1 2 0:3 / /c rw - overlay overlay rw,lowerdir+=/x,lowerdir+=/y\n\
                    1 2 0:3 / /d rw - ext4 /dev/vda rw\n";
        let l = layers_of(info, Path::new("/a b"), Path::new("/home")).unwrap();
        assert_eq!(l.lower[1], Path::new("/home/l/Y"));
        assert_eq!(l.upper.as_deref(), Some(Path::new("/home/abc/diff")));
        let l = layers_of(info, Path::new("/c"), Path::new("/")).unwrap();
        assert_eq!(l.lower, [PathBuf::from("/x"), PathBuf::from("/y")]);
        assert!(l.upper.is_none());
        assert!(layers_of(info, Path::new("/d"), Path::new("/")).is_none());
        assert!(layers_of(info, Path::new("/nowhere"), Path::new("/")).is_none());
    }
}
