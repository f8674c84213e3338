//! The gofer: the only husk process that resolves host paths for a
//! container. It opens the rootfs and every bind-mount source without
//! following magic links, turns them into detached mounts (open_tree), sets
//! their attributes (mount_setattr), and hands the descriptors to the sandbox
//! over a socket. The sandbox attaches them with move_mount and never looks a
//! host path up itself. With `--file-access=direct` the sandbox calls
//! `prepare` in-process instead.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::error::{errno_text, Error, Result};
use crate::mount_options as options;
use crate::sys::mount::{
    mount_setattr, open_tree, openat2, AT_RECURSIVE, OPEN_TREE_CLONE, RESOLVE_NO_MAGICLINKS,
};
use husk_oci::gofer::{send, GoferRequest, IdMaps, PreparedMounts};
use husk_oci::wire;

mod overlay;

/// User namespaces made for ID-mapped mounts, one per distinct mapping.
#[derive(Default)]
struct UsernsCache(Vec<(IdMaps, OwnedFd)>);

impl UsernsCache {
    fn get(&mut self, maps: &IdMaps) -> std::io::Result<RawFd> {
        if let Some((_, fd)) = self.0.iter().find(|(m, _)| m == maps) {
            return Ok(fd.as_raw_fd());
        }
        // SAFETY: the gofer and boot are single-threaded.
        let fd = crate::sys::process::userns_with_maps(&maps.uid, &maps.gid)?;
        let raw = fd.as_raw_fd();
        self.0.push((maps.clone(), fd));
        Ok(raw)
    }
}

fn idmap(tree: &OwnedFd, recursive: bool, userns: RawFd) -> std::io::Result<()> {
    mount_setattr(
        tree.as_fd(),
        recursive,
        &crate::sys::mount::Attrs {
            userns_fd: Some(userns),
            ..Default::default()
        },
    )
}

/// Open the rootfs and each bind source as detached mount trees.
pub fn prepare(req: &GoferRequest) -> Result<PreparedMounts> {
    let mut userns = UsernsCache::default();
    let mut rootfs = if req.overlay {
        overlay_rootfs(&req.rootfs)
    } else {
        open_source(&req.rootfs, true)
    }
    .map_err(|e| Error::Sandbox(format!("rootfs {}: {e}", req.rootfs.display())))?;
    if nix::sys::stat::fstat(rootfs.as_raw_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR)
    {
        return Err(Error::Spec(format!(
            "root.path {}: not a directory",
            req.rootfs.display()
        )));
    }
    if let Some(maps) = &req.userns {
        // A rootfs not owned by the uid the container's root maps to is
        // shown through an ID-mapped mount, so the container's root owns it.
        let owner = nix::sys::stat::fstat(rootfs.as_raw_fd())
            .map(|st| st.st_uid)
            .ok();
        // Rootless, no ID-mapped mount can be made (they take the host's
        // root): the rootfs is shown as it is, as runc shows it.
        if owner.is_some() && owner != maps.host_root_uid() && !crate::config::rootless() {
            let ns = userns.get(maps).map_err(|e| {
                Error::Sandbox(format!(
                    "user namespace for ID-mapped mounts: {}",
                    errno_text(&e)
                ))
            })?;
            match idmap(&rootfs, true, ns) {
                Ok(()) => {}
                // The kernel maps an overlay's layers, not the overlay
                // (what Docker, containerd and podman give as the rootfs).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && !req.overlay => {
                    let ids = maps.host_root_uid().zip(maps.host_root_gid());
                    let ids = ids.ok_or_else(|| {
                        Error::Spec(
                            "an ID-mapped overlay needs container uid and gid 0 mapped".into(),
                        )
                    })?;
                    rootfs = overlay::remap(&req.rootfs, ns, ids).map_err(|m| {
                        Error::Sandbox(format!(
                            "rootfs {}: ID-mapped mount: {}; {m}",
                            req.rootfs.display(),
                            errno_text(&e)
                        ))
                    })?;
                }
                Err(e) => {
                    return Err(Error::Sandbox(format!(
                        "rootfs {}: ID-mapped mount: {}",
                        req.rootfs.display(),
                        errno_text(&e)
                    )))
                }
            }
        }
    }
    let mut binds = Vec::with_capacity(req.binds.len());
    for (idx, m) in &req.binds {
        let src = m.source().clone().unwrap_or_default();
        let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
        let tree = open_source(&src, opts.recursive).map_err(|e| {
            Error::Sandbox(format!(
                "mount {} (source {}): {e}",
                m.destination().display(),
                src.display()
            ))
        })?;
        // The mount's own mappings, or "idmap" with the container's.
        let maps = IdMaps::from(m.uid_mappings().as_ref(), m.gid_mappings().as_ref())
            .or_else(|| opts.idmap.and(req.userns.clone()));
        if let Some(maps) = maps {
            if crate::config::rootless() {
                return Err(Error::Privilege(format!(
                    "mount {}: an ID-mapped mount (uidMappings/gidMappings, idmap) takes the host's root, which husk does not have here",
                    m.destination().display()
                )));
            }
            let recursive = opts.idmap.unwrap_or(opts.recursive);
            userns
                .get(&maps)
                .and_then(|ns| idmap(&tree, recursive, ns))
                .map_err(|e| {
                    Error::Sandbox(format!(
                        "mount {} (source {}): ID-mapped mount: {}",
                        m.destination().display(),
                        src.display(),
                        errno_text(&e)
                    ))
                })?;
        } else if opts.idmap.is_some() {
            return Err(Error::Spec(format!(
                "mount {}: \"idmap\" needs uidMappings/gidMappings on the mount or a user namespace",
                m.destination().display()
            )));
        }
        // Attributes that hold for the whole tree are set here, before the
        // sandbox ever sees the mount; "ro" on a plain bind affects only the
        // top mount, "rro" and friends the whole tree.
        apply_attrs(&tree, &opts).map_err(|e| {
            Error::Sandbox(format!(
                "mount {} (source {}): set attributes: {e}",
                m.destination().display(),
                src.display()
            ))
        })?;
        binds.push((*idx, tree));
    }
    let mut devices = Vec::with_capacity(req.devices.len());
    for d in &req.devices {
        let tree = open_source(Path::new(d), false)
            .map_err(|e| Error::Sandbox(format!("device {d}: {e}")))?;
        devices.push((d.clone(), tree));
    }
    Ok(PreparedMounts {
        rootfs,
        binds,
        devices,
    })
}

fn apply_attrs(tree: &OwnedFd, opts: &options::MountOptions) -> std::result::Result<(), String> {
    if !opts.attrs.is_empty() {
        mount_setattr(tree.as_fd(), false, &opts.attrs).map_err(|e| errno_text(&e))?;
    }
    if !opts.rec_attrs.is_empty() {
        mount_setattr(tree.as_fd(), true, &opts.rec_attrs).map_err(|e| errno_text(&e))?;
    }
    Ok(())
}

/// The rootfs as the lower layer of an overlay whose upper layer is a
/// fresh tmpfs (runsc's --overlay): writes land in memory and vanish with
/// the container. The tmpfs is never attached anywhere; overlayfs reaches
/// its directories through this process's descriptor.
fn overlay_rootfs(rootfs: &Path) -> std::result::Result<OwnedFd, String> {
    use crate::sys::mount::FsContext;
    // Resolve the lower layer as any host path: no magic links.
    let lower = openat2(
        None,
        rootfs,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| errno_text(&e))?;
    let tmp = FsContext::open("tmpfs").map_err(|e| errno_text(&e))?;
    tmp.set_string("mode", "0755").map_err(|e| errno_text(&e))?;
    let upper = tmp.mount(0).map_err(|e| errno_text(&e))?;
    for d in ["upper", "work"] {
        nix::sys::stat::mkdirat(
            Some(upper.as_raw_fd()),
            d,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .map_err(|e| format!("overlay {d}: {}", errno_text(&e.into())))?;
    }
    let ov = FsContext::open("overlay").map_err(|e| errno_text(&e))?;
    let _ = ov.set_string("source", "husk-overlay");
    let fdpath = |fd: &OwnedFd, sub: &str| format!("/proc/self/fd/{}{sub}", fd.as_raw_fd());
    ov.set_string("lowerdir", &fdpath(&lower, ""))
        .map_err(|e| format!("overlay lowerdir: {}", errno_text(&e)))?;
    ov.set_string("upperdir", &fdpath(&upper, "/upper"))
        .map_err(|e| format!("overlay upperdir: {}", errno_text(&e)))?;
    ov.set_string("workdir", &fdpath(&upper, "/work"))
        .map_err(|e| format!("overlay workdir: {}", errno_text(&e)))?;
    ov.mount(0)
        .map_err(|e| format!("overlay: {}", errno_text(&e)))
}

/// Resolve a host path without following magic links (/proc/<pid>/fd/... and
/// friends), then clone the mount tree at it.
///
/// A clone of a shared mount joins its peer group: whatever the container
/// then mounts on it would appear on the host (and pivot_root refuses a
/// shared root). So every clone is made a slave of its source, as runc's
/// default rootfsPropagation ("rslave") has it: the host's later mounts
/// still show up in the container, nothing flows back. Propagation the
/// spec asks for on a bind mount is set after it is attached.
fn open_source(path: &Path, recursive: bool) -> std::result::Result<OwnedFd, String> {
    let fd =
        openat2(None, path, libc::O_PATH, 0, RESOLVE_NO_MAGICLINKS).map_err(|e| errno_text(&e))?;
    let mut flags = OPEN_TREE_CLONE;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let tree = open_tree(Some(fd.as_fd()), Path::new(""), flags).map_err(|e| errno_text(&e))?;
    mount_setattr(
        tree.as_fd(),
        recursive,
        &crate::sys::mount::Attrs {
            propagation: crate::sys::mount::MS_SLAVE,
            ..Default::default()
        },
    )
    .map_err(|e| format!("make it a slave mount: {}", errno_text(&e)))?;
    Ok(tree)
}

/// The gofer forked by `husk create` (see `sandbox::Mounts`): its posture,
/// then `req` answered on `sock`. Returns the exit code; what stopped it is
/// logged as `husk gofer` logs it.
pub fn forked_main(cfg: &crate::config::Config, sock: &impl AsFd, req: &GoferRequest) -> i32 {
    // Known by its name, as the stand-ins are (its argv is its creator's).
    let _ = nix::sys::prctl::set_name(c"husk-gofer");
    let run = || -> Result<()> {
        crate::posture::gofer_start(&cfg.seccomp_cache_dir())?;
        send(sock, prepare(req)).map_err(|e| Error::Sandbox(format!("gofer: send mounts: {e}")))
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            if cfg.log.is_some() {
                tracing::error!("gofer: {e}");
            } else {
                eprintln!("husk: gofer: {e}");
            }
            1
        }
    }
}

/// `husk gofer`: read one request from `sock`, answer it, exit.
pub fn serve(sock: OwnedFd) -> Result<()> {
    let (req, _): (GoferRequest, _) =
        wire::recv(&sock).map_err(|e| Error::os("gofer: read request", e))?;
    let result = prepare(&req);
    send(&sock, result).map_err(|e| Error::os("gofer: send mounts", e))
}
