//! The gofer: the only husk process that resolves host paths for a
//! container. It opens the rootfs and every bind-mount source without
//! following magic links, turns them into detached mounts (open_tree), sets
//! their attributes (mount_setattr), and hands the descriptors to the sandbox
//! over a socket. The sandbox attaches them with move_mount and never looks a
//! host path up itself. With `--file-access=direct` the sandbox calls
//! `prepare` in-process instead.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};
use serde::{Deserialize, Serialize};

use crate::control::{wire, GoferReply};
use crate::error::{errno_text, Error, Result};
use crate::mount_options as options;
use crate::sys::mount::{
    mount_setattr, open_tree, openat2, AT_RECURSIVE, OPEN_TREE_CLONE, RESOLVE_NO_MAGICLINKS,
};

/// uid_map and gid_map contents ("container host size" lines).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdMaps {
    pub uid: String,
    pub gid: String,
}

impl IdMaps {
    fn from(
        uid: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>,
        gid: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>,
    ) -> Option<IdMaps> {
        let fmt = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
            m.into_iter()
                .flatten()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect()
        };
        let (u, g) = (fmt(uid), fmt(gid));
        (!u.is_empty() && !g.is_empty()).then_some(IdMaps { uid: u, gid: g })
    }

    /// The host uid that container uid 0 maps to, if any.
    fn host_root_uid(&self) -> Option<u32> {
        self.uid.lines().find_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3 && f[0] == 0).then_some(f[1])
        })
    }
}

/// What the gofer is asked to open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoferRequest {
    pub rootfs: PathBuf,
    /// (index into spec.mounts, the mount) for every bind mount.
    pub binds: Vec<(usize, Mount)>,
    /// Host device nodes to hand over for bind mounting (user namespaces).
    pub devices: Vec<String>,
    /// The container's own user namespace mappings, if it gets one: an
    /// rootfs owned by a uid that does not map to the container's root is
    /// ID-mapped with them, and so are mounts with "idmap" but no mappings.
    #[serde(default)]
    pub userns: Option<IdMaps>,
    /// `--overlay`: the rootfs under a memory-backed writable layer.
    #[serde(default)]
    pub overlay: bool,
}

impl GoferRequest {
    pub fn for_spec(bundle: &Path, spec: &Spec, bind_devices: bool, overlay: bool) -> Self {
        let binds = spec
            .mounts()
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, m)| options::is_bind(m))
            .map(|(i, m)| {
                let mut m = m.clone();
                if let Some(src) = m.source().clone() {
                    if src.is_relative() {
                        m.set_source(Some(bundle.join(src)));
                    }
                }
                (i, m)
            })
            .collect();
        let devices = if bind_devices {
            crate::boot::rootfs::DEFAULT_DEVICES
                .iter()
                .map(|d| format!("/dev/{}", d.name))
                .chain(
                    spec.linux()
                        .as_ref()
                        .and_then(|l| l.devices().as_ref())
                        .into_iter()
                        .flatten()
                        .map(|d| d.path().display().to_string()),
                )
                .collect()
        } else {
            Vec::new()
        };
        let userns = if bind_devices {
            spec.linux()
                .as_ref()
                .and_then(|l| IdMaps::from(l.uid_mappings().as_ref(), l.gid_mappings().as_ref()))
        } else {
            None
        };
        GoferRequest {
            rootfs: crate::spec::rootfs_path(bundle, spec),
            binds,
            devices,
            userns,
            overlay,
        }
    }
}

/// Detached mounts ready to be attached in the container.
#[derive(Debug)]
pub struct PreparedMounts {
    pub rootfs: OwnedFd,
    pub binds: Vec<(usize, OwnedFd)>,
    pub devices: Vec<(String, OwnedFd)>,
}

/// User namespaces made for ID-mapped mounts, one per distinct mapping.
#[derive(Default)]
struct UsernsCache(Vec<(IdMaps, OwnedFd)>);

impl UsernsCache {
    fn get(&mut self, maps: &IdMaps) -> std::io::Result<RawFd> {
        if let Some((_, fd)) = self.0.iter().find(|(m, _)| m == maps) {
            return Ok(fd.as_raw_fd());
        }
        // SAFETY: the gofer and boot are single-threaded.
        let fd = unsafe { crate::sys::process::userns_with_maps(&maps.uid, &maps.gid)? };
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
    let rootfs = if req.overlay {
        overlay_rootfs(&req.rootfs)
    } else {
        open_source(&req.rootfs, true)
    }
    .map_err(|e| Error::Sandbox(format!("rootfs {}: {e}", req.rootfs.display())))?;
    if let Some(maps) = &req.userns {
        // A rootfs not owned by the uid the container's root maps to is
        // shown through an ID-mapped mount, so the container's root owns it.
        let owner = nix::sys::stat::fstat(rootfs.as_raw_fd())
            .map(|st| st.st_uid)
            .ok();
        if owner.is_some() && owner != maps.host_root_uid() {
            userns
                .get(maps)
                .and_then(|ns| idmap(&rootfs, true, ns))
                .map_err(|e| {
                    Error::Sandbox(format!(
                        "rootfs {}: ID-mapped mount: {}",
                        req.rootfs.display(),
                        errno_text(&e)
                    ))
                })?;
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
fn open_source(path: &Path, recursive: bool) -> std::result::Result<OwnedFd, String> {
    let fd =
        openat2(None, path, libc::O_PATH, 0, RESOLVE_NO_MAGICLINKS).map_err(|e| errno_text(&e))?;
    let mut flags = OPEN_TREE_CLONE;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    open_tree(Some(fd.as_fd()), Path::new(""), flags).map_err(|e| errno_text(&e))
}

/// Send prepared mounts (or the error that stopped us) to the sandbox.
pub fn send(sock: &impl AsFd, result: Result<PreparedMounts>) -> std::io::Result<()> {
    match result {
        Ok(pm) => {
            let mut fds: Vec<RawFd> = vec![pm.rootfs.as_raw_fd()];
            let mut binds = Vec::new();
            for (i, fd) in &pm.binds {
                binds.push((*i, fds.len()));
                fds.push(fd.as_raw_fd());
            }
            let mut devices = Vec::new();
            for (d, fd) in &pm.devices {
                devices.push((d.clone(), fds.len()));
                fds.push(fd.as_raw_fd());
            }
            let reply = GoferReply::Mounts {
                rootfs: 0,
                binds,
                devices,
            };
            wire::send(sock, &reply, &fds)
        }
        Err(e) => wire::send(
            sock,
            &GoferReply::Error {
                message: e.to_string(),
            },
            &[],
        ),
    }
}

/// Receive the gofer's answer (in the sandbox).
pub fn receive(sock: &impl AsFd) -> Result<PreparedMounts> {
    let (reply, fds): (GoferReply, _) = wire::recv(sock).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Sandbox("gofer exited without handing over the mounts".into())
        } else {
            Error::Sandbox(format!("receive mounts from gofer: {}", errno_text(&e)))
        }
    })?;
    let mut fds: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    let take = |fds: &mut Vec<Option<OwnedFd>>, i: usize| {
        wire::take_fd(fds, i).map_err(|e| Error::Sandbox(e.to_string()))
    };
    match reply {
        GoferReply::Error { message } => Err(Error::Sandbox(message)),
        GoferReply::Mounts {
            rootfs,
            binds,
            devices,
        } => {
            let rootfs = take(&mut fds, rootfs)?;
            let mut b = Vec::with_capacity(binds.len());
            for (i, f) in binds {
                b.push((i, take(&mut fds, f)?));
            }
            let mut d = Vec::with_capacity(devices.len());
            for (p, f) in devices {
                d.push((p, take(&mut fds, f)?));
            }
            Ok(PreparedMounts {
                rootfs,
                binds: b,
                devices: d,
            })
        }
    }
}

/// `husk gofer`: read one request from `sock`, answer it, exit.
pub fn serve(sock: OwnedFd) -> Result<()> {
    let (req, _): (GoferRequest, _) = wire::recv(&sock)
        .map_err(|e| Error::Sandbox(format!("gofer: read request: {}", errno_text(&e))))?;
    let result = prepare(&req);
    send(&sock, result).map_err(|e| Error::Sandbox(format!("gofer: send mounts: {e}")))
}
