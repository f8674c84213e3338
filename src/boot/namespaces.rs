//! Which namespaces a container's init creates and which it joins, from the
//! spec and `--network`.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::config::Network;
use crate::error::{errno_text, Error, Result};

#[derive(Debug, Clone, Default)]
pub struct NsPlan {
    /// Namespaces created at clone3 time.
    pub clone_flags: u64,
    /// Namespaces to join by path, in the order to join them (user first).
    pub joins: Vec<(CloneFlags, PathBuf)>,
    /// A pid namespace to join: boot enters it for its children before
    /// forking, since a process cannot move itself into another one.
    pub pid_path: Option<PathBuf>,
    pub new_user: bool,
    pub new_net: bool,
    pub new_uts: bool,
    pub new_pid: bool,
    pub new_mount: bool,
    /// Unshared by init once it sits in its cgroup, so the namespace is
    /// rooted there.
    pub new_cgroup: bool,
    /// Unshared by init so the clock offsets can be written before exec.
    pub new_time: bool,
    /// The spec gave this container a UTS namespace (new or by path), so
    /// its hostname and domainname are set there. Not so for a pod member
    /// that merely shares the pod's.
    pub set_uts_names: bool,
}

fn flag_of(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

pub fn type_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

impl NsPlan {
    pub fn from_spec(spec: &Spec, network: Network) -> Result<Self> {
        let mut plan = NsPlan::default();
        let mut list: Vec<(LinuxNamespaceType, Option<PathBuf>)> = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect();
        match network {
            Network::Sandbox => {}
            Network::Host => list.retain(|(t, _)| *t != LinuxNamespaceType::Network),
            Network::None => {
                list.retain(|(t, _)| *t != LinuxNamespaceType::Network);
                list.push((LinuxNamespaceType::Network, None));
            }
        }
        // Join the user namespace before any other, so the others are
        // entered with its privileges.
        list.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        for (t, path) in list {
            if t == LinuxNamespaceType::Uts {
                plan.set_uts_names = true;
            }
            let flag = flag_of(t);
            match path.filter(|p| !p.as_os_str().is_empty()) {
                Some(p) => {
                    if let Err(e) = std::fs::metadata(&p) {
                        return Err(Error::Spec(format!(
                            "linux.namespaces: {} namespace path {}: {}",
                            type_name(t),
                            p.display(),
                            errno_text(&e)
                        )));
                    }
                    if t == LinuxNamespaceType::Pid {
                        plan.pid_path = Some(p);
                    } else {
                        plan.joins.push((flag, p));
                    }
                }
                None => match t {
                    LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
                    LinuxNamespaceType::Time => plan.new_time = true,
                    _ => {
                        plan.clone_flags |= flag.bits() as u64;
                        match t {
                            LinuxNamespaceType::User => plan.new_user = true,
                            LinuxNamespaceType::Network => plan.new_net = true,
                            LinuxNamespaceType::Uts => plan.new_uts = true,
                            LinuxNamespaceType::Pid => plan.new_pid = true,
                            LinuxNamespaceType::Mount => plan.new_mount = true,
                            _ => {}
                        }
                    }
                },
            }
        }
        if !plan.new_mount
            && !plan
                .joins
                .iter()
                .any(|(f, _)| *f == CloneFlags::CLONE_NEWNS)
        {
            return Err(Error::Spec(
                "linux.namespaces: a mount namespace is required".into(),
            ));
        }
        if plan
            .joins
            .iter()
            .any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
            && plan.clone_flags != 0
        {
            return Err(Error::Spec(
                "linux.namespaces: joining a user namespace by path while creating other namespaces is not supported".into(),
            ));
        }
        Ok(plan)
    }
}

impl NsPlan {
    /// A pod sub-container shares its pod's network, IPC and UTS namespaces:
    /// unless the spec names one by path (containerd and CRI-O point them at
    /// the pod already), it joins the one of the pod's root container (init
    /// `pod_init`), instead of creating its own or using the host's.
    pub fn join_pod(&mut self, pod_init: i32) {
        for (flag, name) in [
            (CloneFlags::CLONE_NEWNET, "net"),
            (CloneFlags::CLONE_NEWIPC, "ipc"),
            (CloneFlags::CLONE_NEWUTS, "uts"),
        ] {
            if self.joins.iter().any(|(f, _)| *f == flag) {
                continue;
            }
            if flag == CloneFlags::CLONE_NEWUTS {
                self.set_uts_names = false;
            }
            self.clone_flags &= !(flag.bits() as u64);
            self.joins
                .push((flag, PathBuf::from(format!("/proc/{pod_init}/ns/{name}"))));
        }
        self.new_net = false;
        self.new_uts = false;
    }
}

/// setns(2) into the namespace at `path`.
pub fn join(flag: CloneFlags, path: &std::path::Path) -> Result<()> {
    let f = File::open(path).map_err(|e| {
        Error::Sandbox(format!(
            "open namespace {}: {}",
            path.display(),
            errno_text(&e)
        ))
    })?;
    nix::sched::setns(f.as_fd(), flag).map_err(|e| {
        Error::Sandbox(format!(
            "join namespace {}: {}",
            path.display(),
            errno_text(&e.into())
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = crate::spec::default_spec(false);
        base["linux"]["namespaces"] = v;
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn default_namespaces() {
        let p = NsPlan::from_spec(
            &spec(serde_json::json!([
                {"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}
            ])),
            Network::Sandbox,
        )
        .unwrap();
        assert!(p.new_pid && p.new_net && p.new_uts && p.new_mount && p.new_cgroup);
        assert!(!p.new_user);
        assert_eq!(p.clone_flags & libc::CLONE_NEWCGROUP as u64, 0);
    }

    #[test]
    fn network_flag_overrides_spec() {
        let s = spec(serde_json::json!([{"type":"mount"},{"type":"network"}]));
        let host = NsPlan::from_spec(&s, Network::Host).unwrap();
        assert!(!host.new_net);
        let s = spec(serde_json::json!([{"type":"mount"}]));
        let none = NsPlan::from_spec(&s, Network::None).unwrap();
        assert!(none.new_net);
    }

    #[test]
    fn missing_path_is_named() {
        let s =
            spec(serde_json::json!([{"type":"mount"},{"type":"network","path":"/nonexistent/ns"}]));
        let e = NsPlan::from_spec(&s, Network::Sandbox)
            .unwrap_err()
            .to_string();
        assert!(e.contains("network namespace path /nonexistent/ns"), "{e}");
    }
}
