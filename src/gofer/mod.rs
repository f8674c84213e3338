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

/// What the gofer is asked to open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoferRequest {
    pub rootfs: PathBuf,
    /// (index into spec.mounts, the mount) for every bind mount.
    pub binds: Vec<(usize, Mount)>,
    /// Host device nodes to hand over for bind mounting (user namespaces).
    pub devices: Vec<String>,
}

impl GoferRequest {
    pub fn for_spec(bundle: &Path, spec: &Spec, bind_devices: bool) -> Self {
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
        GoferRequest {
            rootfs: crate::spec::rootfs_path(bundle, spec),
            binds,
            devices,
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

/// Open the rootfs and each bind source as detached mount trees.
pub fn prepare(req: &GoferRequest) -> Result<PreparedMounts> {
    let rootfs = open_source(&req.rootfs, true)
        .map_err(|e| Error::Sandbox(format!("rootfs {}: {e}", req.rootfs.display())))?;
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
