//! Making the views appear in a container: a FUSE superblock made with the
//! new mount API over the server's /dev/fuse descriptor, and one bind mount
//! per view over the file it replaces in the container's procfs (and
//! sysfs).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::path::Path;

use husk_sys::mount::{
    move_mount_fd, open_tree, openat2, FsContext, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, OPEN_TREE_CLONE, RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
};

use crate::render::{Base, View};

/// sysfs's magic number (nix names procfs's but not this one).
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// Make the FUSE superblock served through `fuse` (the server's /dev/fuse
/// descriptor, or a copy of it) and return a detached, read-only, nosuid,
/// nodev, noexec mount of its root directory.
///
/// Must run where the descriptor is open under the same number (the kernel
/// takes it as the "fd=" option). `uid`/`gid` name the mount's owner in
/// the caller's user namespace, which becomes the filesystem's: 0 is its
/// root. `allow_other` lets every process of that namespace in, and
/// `default_permissions` makes the kernel check the files' 0444 mode
/// itself. The kernel sends INIT right away; nothing under the mount can be
/// looked up until the server has answered it.
pub fn superblock(fuse: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<OwnedFd> {
    let fs = FsContext::open("fuse")?;
    fs.set_string("subtype", "husk-procviews")?;
    fs.set_string("fd", &fuse.as_raw_fd().to_string())?;
    fs.set_string("rootmode", "40000")?;
    fs.set_string("user_id", &uid.to_string())?;
    fs.set_string("group_id", &gid.to_string())?;
    fs.set_flag("allow_other")?;
    fs.set_flag("default_permissions")?;
    fs.mount(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
}

/// Bind each of `views` from the FUSE mount `fs` (as [`superblock`]
/// returned it) over its file in the container: `proc_dir` is the
/// container's procfs (a descriptor of `<rootfs>/proc` once the init has
/// mounted it there), `sys_dir` its sysfs (`<rootfs>/sys`); a view whose
/// base is missing is skipped. Targets are opened beneath those without
/// following symlinks or crossing mounts, and must be on procfs or sysfs.
///
/// Needs a kernel that can clone from a detached mount (open_tree of a
/// path under an fsmount'ed mount: Linux 6.15+); the lead's init calls it
/// in the container's mount namespace before pivot_root.
pub fn bind_views(
    fs: BorrowedFd<'_>,
    proc_dir: BorrowedFd<'_>,
    sys_dir: Option<BorrowedFd<'_>>,
    views: &[View],
) -> io::Result<()> {
    check_magic(proc_dir, nix::sys::statfs::PROC_SUPER_MAGIC.0, "procfs")?;
    if let Some(s) = sys_dir {
        check_magic(s, SYSFS_MAGIC, "sysfs")?;
    }
    // One listing of the root makes every view's dentry (READDIRPLUS), so
    // the lookups below cost no round trip to the server each.
    if let Ok(root) =
        husk_sys::fd::openat(fs, Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)
    {
        if let Ok(mut dir) = nix::dir::Dir::from_fd(root.into_raw_fd()) {
            // All entries come in the first batch; asking for more would
            // cost one more round trip to learn there are none.
            for _ in dir.iter().take(views.len() + 2) {}
        }
    }
    for v in views {
        let (base, rel) = v.target();
        // Beneath the checked base without crossing a mount: the target is
        // on that procfs or sysfs too.
        let (dir, what) = match base {
            Base::Proc => (proc_dir, "procfs"),
            Base::Sys => match sys_dir {
                Some(s) => (s, "sysfs"),
                None => continue,
            },
        };
        let target = openat2(
            Some(dir),
            Path::new(rel),
            libc::O_PATH,
            0,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV,
        )
        .map_err(|e| io::Error::new(e.kind(), format!("{what} {rel}: {e}")))?;
        let clone = open_tree(Some(fs), Path::new(v.name()), OPEN_TREE_CLONE)
            .map_err(|e| io::Error::new(e.kind(), format!("clone view {}: {e}", v.name())))?;
        move_mount_fd(clone.as_fd(), target.as_fd())
            .map_err(|e| io::Error::new(e.kind(), format!("mount view over {rel}: {e}")))?;
    }
    Ok(())
}

fn check_magic(fd: BorrowedFd<'_>, magic: i64, what: &str) -> io::Result<()> {
    let st = nix::sys::statfs::fstatfs(fd)?;
    if st.filesystem_type().0 as i64 != magic {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not on {what}"),
        ));
    }
    Ok(())
}
