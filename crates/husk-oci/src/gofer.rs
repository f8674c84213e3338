//! The gofer's protocol: what it is asked to open for a container, and the
//! detached mounts it answers with (descriptors over SCM_RIGHTS).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mount_options as options;
use crate::wire;

/// uid_map and gid_map contents ("container host size" lines).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdMaps {
    pub uid: String,
    pub gid: String,
}

impl IdMaps {
    pub fn from(
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
    pub fn host_root_uid(&self) -> Option<u32> {
        host_of_zero(&self.uid)
    }

    /// The host gid that container gid 0 maps to, if any.
    pub fn host_root_gid(&self) -> Option<u32> {
        host_of_zero(&self.gid)
    }
}

fn host_of_zero(map: &str) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u32> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (f.len() == 3 && f[0] == 0).then_some(f[1])
    })
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
            crate::devices::DEFAULT_DEVICES
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

/// The gofer's answer to boot: detached mounts for the rootfs and each bind
/// mount of the spec, by index into the message's descriptor list.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result")]
pub enum GoferReply {
    Mounts {
        rootfs: usize,
        /// (index into spec.mounts, descriptor index)
        binds: Vec<(usize, usize)>,
        /// (device path in the container, descriptor index): host device
        /// nodes to bind when the container cannot mknod (user namespaces).
        devices: Vec<(String, usize)>,
    },
    Error {
        message: String,
    },
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
            Error::os("receive mounts from gofer", e)
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
