//! boot's own world. `husk create` starts boot already inside the sandbox:
//! in the pod's network, IPC and UTS namespaces, a pid namespace of its own
//! (or the one the spec names), the root container's cgroups and a new
//! mount namespace. Here boot leaves every host path behind: its root
//! becomes an empty read-only tmpfs holding only `/proc` (its pid
//! namespace's procfs) and `/sys`. Nothing boot does afterwards resolves a
//! path: mounts arrive as descriptors from the gofer, the control socket
//! was passed in.
//!
//! `/proc` and `/sys` are there for the containers boot forks: a process in
//! a user namespace may mount procfs or sysfs only where one is already
//! fully visible in its mount namespace (the kernel's mount_too_revealing
//! rule). Once the root container's init has mounted its own procfs, boot
//! shows that one at `/proc` ([`show_container_proc`]), so tools that look
//! at the sandbox process's `/proc` (podman's `top`) see the container's
//! processes and nothing else.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};
use crate::sys::mount::{
    mount_setattr, move_mount_fd, Attrs, FsContext, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};

fn err(what: &str, e: std::io::Error) -> Error {
    Error::os(format!("boot: {what}"), e)
}

const PSEUDO: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;

/// Replace boot's view of the host's filesystems with an empty root.
/// Returns a descriptor of boot's own procfs (whose `self` is boot), which
/// stays usable after `/proc` shows the root container's.
pub fn leave_host() -> Result<OwnedFd> {
    // Nothing boot mounts may reach the host, nor host mount events us.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| err("make / private", e.into()))?;
    let tmp = FsContext::open("tmpfs").map_err(|e| err("tmpfs", e))?;
    tmp.set_string("mode", "0755")
        .and_then(|_| tmp.set_string("size", "64k"))
        .map_err(|e| err("tmpfs", e))?;
    let root = tmp.mount(PSEUDO).map_err(|e| err("tmpfs", e))?;
    // On top of the host's root, so that pivot_root can make it ours.
    crate::sys::mount::move_mount_to_path(root.as_fd(), Path::new("/"))
        .map_err(|e| err("mount the new root", e))?;
    for d in ["proc", "sys"] {
        nix::sys::stat::mkdirat(
            Some(std::os::fd::AsRawFd::as_raw_fd(&root)),
            d,
            nix::sys::stat::Mode::from_bits_truncate(0o555),
        )
        .map_err(|e| err(&format!("mkdir /{d}"), e.into()))?;
    }
    // Mounted while the host's /proc and /sys are still in our mount
    // namespace, which is what lets a boot in a user namespace mount them.
    let proc = pseudo_fs("proc")?;
    attach(&proc, &root, "proc")?;
    let sys = match pseudo_fs("sysfs") {
        Ok(sys) => sys,
        // A new sysfs takes privilege over the network namespace; one
        // shared with the host (a rootless spec without its own) leaves
        // the host's, seen through a read-only copy.
        Err(_) => host_sys()?,
    };
    attach(&sys, &root, "sys")?;
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&root))
        .map_err(|e| err("chdir to new root", e.into()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", e.into()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detach the host's root", e.into()))?;
    nix::unistd::chdir("/").map_err(|e| err("chdir /", e.into()))?;
    let ro = Attrs {
        set: MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    mount_setattr(root.as_fd(), false, &ro).map_err(|e| err("make / read-only", e))?;
    crate::sys::fd::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| err("open /proc", e))
}

/// A new procfs or sysfs, read-only.
fn pseudo_fs(typ: &str) -> Result<OwnedFd> {
    let fs = FsContext::open(typ).map_err(|e| err(typ, e))?;
    fs.mount(PSEUDO | MOUNT_ATTR_RDONLY)
        .map_err(|e| err(typ, e))
}

/// A read-only copy of the host's /sys tree (recursive: a user namespace
/// may not take it apart).
fn host_sys() -> Result<OwnedFd> {
    use crate::sys::mount::{open_tree, AT_RECURSIVE, OPEN_TREE_CLONE};
    let tree = open_tree(None, Path::new("/sys"), OPEN_TREE_CLONE | AT_RECURSIVE)
        .map_err(|e| err("sysfs: copy the host's /sys", e))?;
    let attrs = Attrs {
        set: PSEUDO | MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    mount_setattr(tree.as_fd(), true, &attrs).map_err(|e| err("sysfs: read-only", e))?;
    Ok(tree)
}

fn attach(mnt: &OwnedFd, root: &OwnedFd, name: &str) -> Result<()> {
    let target = crate::sys::fd::openat(
        root.as_fd(),
        Path::new(name),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| err(&format!("open /{name}"), e))?;
    move_mount_fd(mnt.as_fd(), target.as_fd()).map_err(|e| err(&format!("mount /{name}"), e))
}

/// Show the root container's procfs (a read-only mount its init sent) at
/// boot's `/proc`, over boot's own.
pub fn show_container_proc(mnt: OwnedFd) -> Result<()> {
    let target = crate::sys::fd::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| err("open /proc", e))?;
    move_mount_fd(mnt.as_fd(), target.as_fd()).map_err(|e| err("show the container's /proc", e))
}
