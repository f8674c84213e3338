//! Building a container's root filesystem inside its new mount namespace,
//! from descriptors only: the rootfs and bind mounts arrive as detached mounts
//! from the gofer, filesystems are made with fsopen/fsmount, and every
//! destination is resolved inside the rootfs with RESOLVE_IN_ROOT so a
//! container-controlled symlink can never point a mount outside it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchdir, fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};

use crate::cgroups::CgroupPath;
use crate::error::{Error, Result};
use crate::mount_options::{self as options, MountOptions};
use crate::sys::mount::{
    mount_setattr, move_mount_fd, move_mount_to_path, open_tree, openat2, Attrs, FsContext,
    AT_RECURSIVE, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    OPEN_TREE_CLONE, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS,
};
use husk_oci::gofer::PreparedMounts;

pub use husk_oci::devices::DEFAULT_DEVICES;

/// What the rootfs builder needs besides the spec.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    /// Which cgroup hierarchies to show (every container has its own cgroup
    /// namespace, rooted at its cgroup, so they are mounted fresh).
    pub cgroup: &'a CgroupPath,
    /// Device nodes must be bind mounted (user namespace: no mknod).
    pub bind_devices: bool,
}

fn err(what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::os(what, e)
}

/// Resolve `path` inside the tree rooted at `root`, never leaving it.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(
        Some(root),
        rel,
        flags,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

/// Most symlinks followed while resolving one path (as the kernel's
/// MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// Resolve `path` inside `root` component by component, creating what is
/// missing (directories, and the last component as `last`). Symlinks are
/// followed as if `root` were "/", including dangling ones, whose targets
/// are created: an image may legitimately point /var/run at /run. Nothing
/// is ever looked up or created outside `root`.
fn resolve_create(root: BorrowedFd<'_>, path: &Path, last: Kind) -> io::Result<OwnedFd> {
    use std::collections::VecDeque;
    let mut todo: VecDeque<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let is_last = todo.is_empty();
        let parent = open_in_root(root, &cur, libc::O_PATH | libc::O_DIRECTORY)?;
        match nix::sys::stat::fstatat(
            Some(parent.as_raw_fd()),
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = nix::fcntl::readlinkat(Some(parent.as_raw_fd()), name.as_os_str())?;
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push_front(n.to_os_string()),
                        Component::ParentDir => todo.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(st) => {
                let dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                if !is_last && !dir {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                cur.push(&name);
            }
            Err(nix::errno::Errno::ENOENT) => {
                let dir = reopen_dir(parent.as_fd())?;
                if is_last && last == Kind::File {
                    match nix::fcntl::openat(
                        Some(dir.as_raw_fd()),
                        name.as_os_str(),
                        nix::fcntl::OFlag::O_CREAT
                            | nix::fcntl::OFlag::O_EXCL
                            | nix::fcntl::OFlag::O_WRONLY
                            | nix::fcntl::OFlag::O_NOFOLLOW
                            | nix::fcntl::OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    ) {
                        Ok(fd) => {
                            let _ = nix::unistd::close(fd);
                        }
                        Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    match nix::sys::stat::mkdirat(
                        Some(dir.as_raw_fd()),
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                cur.push(&name);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let flags = if last == Kind::Dir {
        libc::O_PATH | libc::O_DIRECTORY
    } else {
        libc::O_PATH
    };
    open_in_root(root, &cur, flags)
}

/// O_PATH directory descriptors cannot create entries; reopen for that.
fn reopen_dir(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    openat2(
        Some(fd),
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        0,
    )
}

/// mkdir -p inside `root`; returns an O_PATH descriptor of the directory.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, _mode: u32) -> io::Result<OwnedFd> {
    match open_in_root(root, path, libc::O_PATH | libc::O_DIRECTORY) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    resolve_create(root, path, Kind::Dir)
}

/// Make sure a regular file exists at `path` inside `root` (a mount point for
/// a file bind mount); returns an O_PATH descriptor of it.
pub fn create_file(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    match open_in_root(root, path, libc::O_PATH) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    resolve_create(root, path, Kind::File)
}

fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = fstat(fd.as_raw_fd())?;
    Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR)
}

/// Attach the rootfs over "/" of the new mount namespace and mount every
/// spec mount into it. Returns the rootfs mount (still to be pivoted into).
pub fn build(ctx: &RootfsContext<'_>, mut prepared: PreparedMounts) -> Result<OwnedFd> {
    // Our mount namespace is a copy of boot's, which is private and holds
    // no host path; the rootfs arrives a slave of its source (the gofer made
    // it so), so nothing mounted on it reaches the host.
    move_mount_to_path(prepared.rootfs.as_fd(), Path::new("/"))
        .map_err(|e| err("attach rootfs", e))?;
    let root = prepared.rootfs;
    let rootb = root.as_fd();

    let mounts = ctx.spec.mounts().as_deref().unwrap_or(&[]);
    let mut binds: Vec<Option<OwnedFd>> = (0..mounts.len()).map(|_| None).collect();
    for (i, fd) in prepared.binds.drain(..) {
        if i < binds.len() {
            binds[i] = Some(fd);
        }
    }
    let mut dev_is_bound = false;
    let mut devpts = false;
    // Read-only filesystems that other mounts (or the device nodes, for
    // /dev) go below are made read-only last, as runc does for /dev.
    let mut read_only_last: Vec<(OwnedFd, PathBuf)> = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let dest = m.destination();
        let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
        if options::is_bind(m) {
            if dest == Path::new("/dev") {
                dev_is_bound = true;
            }
            let src = binds[i].take().ok_or_else(|| {
                Error::Sandbox(format!("mount {}: no source from gofer", dest.display()))
            })?;
            attach_bind(rootb, m, src, &opts)?;
            continue;
        }
        let typ = m.typ().as_deref().unwrap_or("");
        match typ {
            "cgroup" | "cgroup2" => mount_cgroup(ctx, rootb, m, &opts)?,
            _ => {
                if typ == "devpts" {
                    devpts = true;
                }
                let later_below = mounts[i + 1..]
                    .iter()
                    .any(|l| l.destination().starts_with(dest) && l.destination() != dest);
                if opts.attrs.set & MOUNT_ATTR_RDONLY != 0
                    && (later_below || dest == Path::new("/dev"))
                {
                    let mut rw = opts.clone();
                    rw.attrs.set &= !MOUNT_ATTR_RDONLY;
                    let mnt = mount_fs(rootb, m, typ, &rw)?;
                    read_only_last.push((mnt, dest.to_path_buf()));
                } else {
                    mount_fs(rootb, m, typ, &opts)?;
                }
            }
        }
    }

    if !dev_is_bound {
        create_devices(ctx, rootb, &mut prepared.devices, devpts)?;
    }
    for (path, fd) in prepared.devices.drain(..) {
        let target = create_file(rootb, Path::new(&path)).map_err(|e| err(&path, e))?;
        move_mount_fd(fd.as_fd(), target.as_fd()).map_err(|e| err(format!("bind {path}"), e))?;
    }
    for (mnt, dest) in read_only_last.into_iter().rev() {
        let a = Attrs {
            set: MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        // That mount only: the ones below keep their own flags.
        mount_setattr(mnt.as_fd(), false, &a)
            .map_err(|e| err(format!("mount {}: make it read-only", dest.display()), e))?;
    }

    make_cwd(ctx, rootb)?;
    Ok(root)
}

/// The process's working directory, made if the image lacks it (as runc).
fn make_cwd(ctx: &RootfsContext<'_>, root: BorrowedFd<'_>) -> Result<()> {
    let cwd = ctx
        .spec
        .process()
        .as_ref()
        .map(|p| p.cwd().clone())
        .unwrap_or_else(|| PathBuf::from("/"));
    mkdir_all(root, &cwd, 0o755).map_err(|e| err(format!("cwd {}", cwd.display()), e))?;
    Ok(())
}

/// A container without a mount namespace of its own (it shares the
/// host's, see `init::enter_chroot`): nothing is mounted; the default
/// devices and `linux.devices` are made in the rootfs's /dev (as runc does;
/// they stay there), and the working directory is made if missing.
pub fn populate_shared_root(ctx: &RootfsContext<'_>, root: BorrowedFd<'_>) -> Result<()> {
    create_devices(ctx, root, &mut Vec::new(), false)?;
    make_cwd(ctx, root)
}

fn attach_bind(root: BorrowedFd<'_>, m: &Mount, src: OwnedFd, opts: &MountOptions) -> Result<()> {
    let dest = m.destination();
    let target = if is_dir(src.as_fd()).map_err(|e| err(dest.display(), e))? {
        mkdir_all(root, dest, 0o755)
    } else {
        create_file(root, dest)
    }
    .map_err(|e| err(format!("mount {}", dest.display()), e))?;
    move_mount_fd(src.as_fd(), target.as_fd())
        .map_err(|e| err(format!("mount {}", dest.display()), e))?;
    if let Some((prop, recursive)) = opts.propagation {
        let a = Attrs {
            propagation: prop,
            ..Default::default()
        };
        mount_setattr(src.as_fd(), recursive, &a)
            .map_err(|e| err(format!("mount {}: set propagation", dest.display()), e))?;
    }
    Ok(())
}

/// Make a new filesystem with fsopen/fsconfig/fsmount and attach it;
/// returns the attached mount.
fn mount_fs(root: BorrowedFd<'_>, m: &Mount, typ: &str, opts: &MountOptions) -> Result<OwnedFd> {
    let dest = m.destination();
    let what = || format!("mount {} ({typ})", dest.display());
    if typ.is_empty() {
        return Err(Error::Sandbox(format!(
            "mount {}: no type given",
            dest.display()
        )));
    }
    if typ == "proc" || typ == "sysfs" {
        ordinary_dir(root, dest, typ)?;
    }
    let fs = FsContext::open(typ).map_err(|e| err(what(), e))?;
    if let Some(src) = m.source() {
        let s = src.to_string_lossy();
        if !s.is_empty() {
            // Pseudo filesystems ignore their source but accept it as a
            // name; filesystems like overlay take it as is.
            let _ = fs.set_string("source", &s);
        }
    }
    for (k, v) in &opts.data {
        match v {
            Some(v) => fs.set_string(k, v),
            None => fs.set_flag(k),
        }
        .map_err(|e| err(format!("{}: option {k}", what()), e))?;
    }
    let mnt = fs.mount(opts.attrs.set).map_err(|e| err(what(), e))?;
    let target = mkdir_all(root, dest, 0o755).map_err(|e| err(what(), e))?;
    move_mount_fd(mnt.as_fd(), target.as_fd()).map_err(|e| err(what(), e))?;
    if !opts.rec_attrs.is_empty() {
        mount_setattr(mnt.as_fd(), true, &opts.rec_attrs).map_err(|e| err(what(), e))?;
    }
    if let Some((prop, recursive)) = opts.propagation {
        let a = Attrs {
            propagation: prop,
            ..Default::default()
        };
        mount_setattr(mnt.as_fd(), recursive, &a).map_err(|e| err(what(), e))?;
    }
    Ok(mnt)
}

/// proc and sysfs go on an ordinary directory (or a path still to be
/// made), never through a symlink: neither the image nor a process of
/// another container sharing the rootfs decides where the kernel's
/// interfaces land (runc refuses the same, in these words).
fn ordinary_dir(root: BorrowedFd<'_>, dest: &Path, typ: &str) -> Result<()> {
    let refuse = || {
        Error::Spec(format!(
            "mount {} ({typ}): filesystem {typ:?} must be mounted on ordinary directory",
            dest.display()
        ))
    };
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Ok(());
    };
    let dir = match open_in_root(root, parent, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(d) => d,
        // Missing (made later as directories) or not a directory (the
        // mount fails on its own).
        Err(_) => return Ok(()),
    };
    match nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => Err(refuse()),
        _ => Ok(()),
    }
}

/// The container's view of its cgroups: fresh cgroupfs mounts, which its
/// cgroup namespace roots at its own cgroup.
fn mount_cgroup(
    ctx: &RootfsContext<'_>,
    root: BorrowedFd<'_>,
    m: &Mount,
    opts: &MountOptions,
) -> Result<()> {
    let dest = m.destination();
    let what = || format!("mount {} (cgroup)", dest.display());
    let v2_only = ctx.cgroup.dirs.len() == 1 && ctx.cgroup.dirs[0].v2;
    let mut attrs = opts.attrs.set;
    if v2_only || ctx.cgroup.dirs.is_empty() {
        let typ = if ctx.cgroup.dirs.is_empty() && m.typ().as_deref() == Some("cgroup") {
            // No cgroup was made (no cgroupfs writable): show nothing.
            return Ok(());
        } else {
            "cgroup2"
        };
        let target = mkdir_all(root, dest, 0o755).map_err(|e| err(what(), e))?;
        let fs = FsContext::open(typ).map_err(|e| err(what(), e))?;
        let mnt = fs.mount(attrs).map_err(|e| err(what(), e))?;
        move_mount_fd(mnt.as_fd(), target.as_fd()).map_err(|e| err(what(), e))?;
        return Ok(());
    }
    // v1 or hybrid: a tmpfs holding one directory per hierarchy.
    let tmp = FsContext::open("tmpfs").map_err(|e| err(what(), e))?;
    tmp.set_string("mode", "755").map_err(|e| err(what(), e))?;
    let ro = attrs & MOUNT_ATTR_RDONLY != 0;
    attrs &= !MOUNT_ATTR_RDONLY;
    let tmpmnt = tmp
        .mount(attrs | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
        .map_err(|e| err(what(), e))?;
    let target = mkdir_all(root, dest, 0o755).map_err(|e| err(what(), e))?;
    move_mount_fd(tmpmnt.as_fd(), target.as_fd()).map_err(|e| err(what(), e))?;
    for d in &ctx.cgroup.dirs {
        let name = if d.v2 {
            "unified".to_string()
        } else {
            d.controllers
                .iter()
                .map(|c| c.strip_prefix("name=").unwrap_or(c))
                .collect::<Vec<_>>()
                .join(",")
        };
        let sub = dest.join(&name);
        let subfd = mkdir_all(root, &sub, 0o755).map_err(|e| err(sub.display(), e))?;
        let fs = FsContext::open(if d.v2 { "cgroup2" } else { "cgroup" })
            .map_err(|e| err(sub.display(), e))?;
        if !d.v2 {
            for c in &d.controllers {
                match c.strip_prefix("name=") {
                    Some(n) => fs.set_string("name", n),
                    None => fs.set_flag(c),
                }
                .map_err(|e| err(format!("{}: {c}", sub.display()), e))?;
            }
        }
        let mnt = fs
            .mount(attrs | if ro { MOUNT_ATTR_RDONLY } else { 0 })
            .map_err(|e| err(sub.display(), e))?;
        move_mount_fd(mnt.as_fd(), subfd.as_fd()).map_err(|e| err(sub.display(), e))?;
        // Co-mounted controllers ("cpu,cpuacct") are also reachable by
        // each name, as on the host.
        if d.controllers.len() > 1 {
            let dir = open_in_root(root, dest, libc::O_PATH | libc::O_DIRECTORY)
                .map_err(|e| err(dest.display(), e))?;
            for c in &d.controllers {
                let _ = nix::unistd::symlinkat(name.as_str(), Some(dir.as_raw_fd()), c.as_str());
            }
        }
    }
    if ro {
        let a = Attrs {
            set: MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        mount_setattr(tmpmnt.as_fd(), false, &a).map_err(|e| err(what(), e))?;
    }
    Ok(())
}

fn create_devices(
    ctx: &RootfsContext<'_>,
    root: BorrowedFd<'_>,
    bound: &mut Vec<(String, OwnedFd)>,
    devpts: bool,
) -> Result<()> {
    let dev = mkdir_all(root, Path::new("/dev"), 0o755).map_err(|e| err("/dev", e))?;
    let devb = dev.as_fd();
    if !ctx.bind_devices {
        let old = nix::sys::stat::umask(Mode::empty());
        for d in DEFAULT_DEVICES {
            mknod_in(devb, d.name, SFlag::S_IFCHR, 0o666, d.major, d.minor, 0, 0)
                .map_err(|e| err(format!("mknod /dev/{}", d.name), e))?;
        }
        if let Some(linux) = ctx.spec.linux() {
            for d in linux.devices().iter().flatten() {
                let kind = match d.typ() {
                    LinuxDeviceType::B => SFlag::S_IFBLK,
                    LinuxDeviceType::P => SFlag::S_IFIFO,
                    _ => SFlag::S_IFCHR,
                };
                let path = d.path();
                let parent = path.parent().unwrap_or(Path::new("/"));
                let name = path.file_name().unwrap_or_default();
                let dir = mkdir_all(root, parent, 0o755)
                    .map_err(|e| err(format!("device {}", path.display()), e))?;
                mknod_in(
                    dir.as_fd(),
                    name,
                    kind,
                    d.file_mode().unwrap_or(0o666),
                    d.major() as u64,
                    d.minor() as u64,
                    d.uid().unwrap_or(0),
                    d.gid().unwrap_or(0),
                )
                .map_err(|e| err(format!("mknod {}", path.display()), e))?;
            }
        }
        nix::sys::stat::umask(old);
    } else {
        // Device nodes arrive from the gofer as bind mounts; `build` attaches
        // them after this.
        let _ = bound;
    }
    let links: &[(&str, &str)] = &[
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, target) in links {
        match nix::unistd::symlinkat(*target, Some(devb.as_raw_fd()), *name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(err(format!("symlink /dev/{name}"), e.into())),
        }
    }
    if devpts {
        // /dev/ptmx must be the devpts instance's multiplexer.
        let _ = nix::unistd::unlinkat(
            Some(devb.as_raw_fd()),
            "ptmx",
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        nix::unistd::symlinkat("pts/ptmx", Some(devb.as_raw_fd()), "ptmx")
            .map_err(|e| err("symlink /dev/ptmx", e.into()))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn mknod_in(
    dir: BorrowedFd<'_>,
    name: impl AsRef<OsStr>,
    kind: SFlag,
    mode: u32,
    major: u64,
    minor: u64,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    let name = name.as_ref();
    // O_PATH directory descriptors can't be used for mknodat; reopen.
    let d = openat2(
        Some(dir),
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        0,
    )?;
    match mknodat(
        Some(d.as_raw_fd()),
        name,
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        makedev(major, minor),
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::EEXIST) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if uid != 0 || gid != 0 {
        fchownat(
            Some(d.as_raw_fd()),
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

/// pivot_root into `root` and drop the old root entirely.
pub fn pivot(root: &OwnedFd) -> Result<()> {
    fchdir(root.as_raw_fd()).map_err(|e| err("chdir to rootfs", e.into()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", e.into()))?;
    // The old root now sits on top of the new one at "."; detach it.
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detach old root", e.into()))?;
    nix::unistd::chdir("/").map_err(|e| err("chdir /", e.into()))?;
    Ok(())
}

/// After pivot_root: masked and read-only paths, the root's propagation and
/// read-only flag.
pub fn finish(spec: &Spec, root: &OwnedFd) -> Result<()> {
    let slash = open_in_root(
        root.as_fd(),
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|e| err("open /", e))?;
    if let Some(linux) = spec.linux() {
        for p in linux.readonly_paths().iter().flatten() {
            readonly_path(slash.as_fd(), Path::new(p))?;
        }
        for p in linux.masked_paths().iter().flatten() {
            mask_path(slash.as_fd(), Path::new(p))?;
        }
        if let Some(prop) = linux.rootfs_propagation().as_deref() {
            let flag = match prop {
                "shared" | "rshared" => MsFlags::MS_SHARED,
                "slave" | "rslave" => MsFlags::MS_SLAVE,
                "private" | "rprivate" => MsFlags::MS_PRIVATE,
                "unbindable" | "runbindable" => MsFlags::MS_UNBINDABLE,
                other => {
                    return Err(Error::Spec(format!(
                        "linux.rootfsPropagation: unknown value {other:?}"
                    )))
                }
            };
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                flag | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| err("linux.rootfsPropagation", e.into()))?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let a = Attrs {
            set: MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        mount_setattr(root.as_fd(), false, &a).map_err(|e| err("make rootfs read-only", e))?;
    }
    Ok(())
}

fn readonly_path(root: BorrowedFd<'_>, p: &Path) -> Result<()> {
    let fd = match open_in_root(root, p, libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(err(format!("readonly path {}", p.display()), e)),
    };
    let what = || format!("readonly path {}", p.display());
    let tree = open_tree(
        Some(fd.as_fd()),
        Path::new(""),
        OPEN_TREE_CLONE | AT_RECURSIVE,
    )
    .map_err(|e| err(what(), e))?;
    let a = Attrs {
        set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        ..Default::default()
    };
    mount_setattr(tree.as_fd(), true, &a).map_err(|e| err(what(), e))?;
    move_mount_fd(tree.as_fd(), fd.as_fd()).map_err(|e| err(what(), e))
}

fn mask_path(root: BorrowedFd<'_>, p: &Path) -> Result<()> {
    let fd = match open_in_root(root, p, libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(err(format!("masked path {}", p.display()), e)),
    };
    let what = || format!("masked path {}", p.display());
    let cover = if is_dir(fd.as_fd()).map_err(|e| err(what(), e))? {
        let fs = FsContext::open("tmpfs").map_err(|e| err(what(), e))?;
        fs.set_string("size", "0").map_err(|e| err(what(), e))?;
        fs.mount(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
            .map_err(|e| err(what(), e))?
    } else {
        let null =
            open_in_root(root, Path::new("/dev/null"), libc::O_PATH).map_err(|e| err(what(), e))?;
        open_tree(Some(null.as_fd()), Path::new(""), OPEN_TREE_CLONE).map_err(|e| err(what(), e))?
    };
    move_mount_fd(cover.as_fd(), fd.as_fd()).map_err(|e| err(what(), e))
}

/// For error messages about a path in the container.
pub fn show(p: &Path) -> String {
    String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()
}
