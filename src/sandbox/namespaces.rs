//! Which namespaces a sandbox's boot is born into, and which ones each
//! container's init creates, joins or shares — decided on the host, where
//! the spec's namespace paths can be opened.
//!
//! The root container's network, IPC, UTS and user namespaces are boot's
//! own: boot is born in them (new ones, or the spec's by path), and so is
//! every container it forks. Its pid namespace is a parent of the root
//! container's (which boot creates for the init), so every process of the
//! pod is visible from it and none of the host's. A pod member shares the
//! pod's network, IPC and UTS namespaces unless its spec names others by
//! path; a path that names the pod's own (as containerd writes it) is
//! simply shared.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::config::Network;
use crate::control::{InitNamespaces, NsKind};
use crate::error::{errno_text, Error, Result};

fn kind_of(t: LinuxNamespaceType) -> NsKind {
    match t {
        LinuxNamespaceType::Mount => NsKind::Mount,
        LinuxNamespaceType::Cgroup => NsKind::Cgroup,
        LinuxNamespaceType::Uts => NsKind::Uts,
        LinuxNamespaceType::Ipc => NsKind::Ipc,
        LinuxNamespaceType::User => NsKind::User,
        LinuxNamespaceType::Pid => NsKind::Pid,
        LinuxNamespaceType::Network => NsKind::Net,
        LinuxNamespaceType::Time => NsKind::Time,
    }
}

/// The spec's namespaces after `--network`: (kind, path to join, if any).
pub fn spec_namespaces(spec: &Spec, network: Network) -> Vec<(NsKind, Option<PathBuf>)> {
    let mut list: Vec<(NsKind, Option<PathBuf>)> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .into_iter()
        .map(|n| {
            (
                kind_of(n.typ()),
                n.path()
                    .clone()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(|p| through_stand_in(&p)),
            )
        })
        .collect();
    match network {
        Network::Sandbox => {}
        Network::Host => list.retain(|(k, _)| *k != NsKind::Net),
        Network::None => {
            list.retain(|(k, _)| *k != NsKind::Net);
            list.push((NsKind::Net, None));
        }
    }
    // The user namespace first, so the others are joined with its
    // privileges.
    list.sort_by_key(|(k, _)| *k != NsKind::User);
    list
}

/// Clients name another container's namespaces by the pid husk gave them
/// (`/proc/<pid>/ns/pid`, for `docker run --pid container:X` or a pod's
/// shared pid namespace). That pid is a stand-in — boot for a root
/// container, a waiter otherwise — which shares the container's network,
/// IPC and UTS namespaces but not its pid namespace. Such a path is taken
/// to mean the namespace of the process the stand-in stands for.
fn through_stand_in(path: &Path) -> PathBuf {
    let mut parts = path.iter().map(|c| c.to_str().unwrap_or(""));
    let (Some("/"), Some("proc"), Some(pid), Some("ns"), Some(name), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return path.to_path_buf();
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return path.to_path_buf();
    };
    if !is_husk(pid) {
        return path.to_path_buf();
    }
    let fdinfo = format!("/proc/{pid}/fdinfo/{}", husk_oci::STANDS_FOR_FD);
    let target = std::fs::read_to_string(fdinfo)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Pid:"))
                .and_then(|v| v.trim().parse::<i32>().ok())
        })
        .filter(|p| *p > 0);
    match target {
        Some(t) => PathBuf::from(format!("/proc/{t}/ns/{name}")),
        None => path.to_path_buf(),
    }
}

/// Whether process `pid` runs the husk binary (a stand-in, boot, or an
/// init that has not exec'd yet).
fn is_husk(pid: i32) -> bool {
    super::runs_husk(pid) == Some(true)
}

/// Whether the spec gives the container a new user namespace.
pub fn has_new_userns(spec: &Spec) -> bool {
    spec_namespaces(spec, Network::Sandbox)
        .iter()
        .any(|(k, p)| *k == NsKind::User && p.is_none())
}

/// Whether the spec names a user namespace to join (a pod member in a pod
/// with one, as containerd writes it).
pub fn joins_userns(spec: &Spec) -> bool {
    spec_namespaces(spec, Network::Sandbox)
        .iter()
        .any(|(k, p)| *k == NsKind::User && p.is_some())
}

fn open_ns(kind: NsKind, path: &std::path::Path) -> Result<OwnedFd> {
    File::open(path).map(OwnedFd::from).map_err(|e| {
        Error::Spec(format!(
            "linux.namespaces: {} namespace path {}: {}",
            kind.spec_name(),
            path.display(),
            errno_text(&e)
        ))
    })
}

/// How boot is born for a sandbox whose root container has `spec`.
#[derive(Debug, Default)]
pub struct BootBirth {
    /// CLONE_NEW* flags of boot's clone3.
    pub clone_flags: u64,
    /// Namespaces boot joins before it execs (user first).
    pub joins: Vec<(NsKind, OwnedFd)>,
    /// A pid namespace to be born into (entered by its creator, since a
    /// process cannot move itself into one).
    pub pid_join: Option<OwnedFd>,
    /// Boot gets a new user namespace: its creator writes the maps.
    pub new_user: bool,
    /// Boot gets a new pid namespace (it is its first process).
    pub new_pid: bool,
}

/// Plan the root container: boot's birth, its init's namespaces, and the
/// descriptors of those the init joins (indexes in `init.join`).
pub fn plan_root(
    spec: &Spec,
    network: Network,
) -> Result<(BootBirth, InitNamespaces, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let mut birth = BootBirth {
        clone_flags: NsKind::Mount.flag(),
        ..Default::default()
    };
    let mut init = InitNamespaces {
        new: vec![NsKind::Mount, NsKind::Cgroup],
        // Root of a user namespace other than the host's (rootless
        // podman's) may not make device nodes either.
        in_user_ns: !crate::sys::ids::in_initial_userns(),
        ..Default::default()
    };
    let list = spec_namespaces(spec, network);
    let shares_mounts = !list.iter().any(|(k, _)| *k == NsKind::Mount);
    if shares_mounts {
        // No mount namespace: the container shares the runtime's (ours;
        // boot's is a private one of its own), joined through this
        // descriptor, and its root is a chroot into the rootfs.
        check_shared_mounts(spec)?;
        init.new.retain(|k| *k != NsKind::Mount);
        let ns = File::open("/proc/self/ns/mnt")
            .map(OwnedFd::from)
            .map_err(|e| Error::Sandbox(format!("open our mount namespace: {}", errno_text(&e))))?;
        init.join.push((NsKind::Mount, fds.len()));
        fds.push(ns);
    }
    for (kind, path) in list {
        match (kind, path) {
            (NsKind::Mount | NsKind::Cgroup, _) => {}
            (NsKind::Pid, None) => {
                birth.clone_flags |= kind.flag();
                birth.new_pid = true;
                init.new.push(NsKind::Pid);
            }
            (NsKind::Pid, Some(p)) => {
                // The init joins it; boot is born in its parent, so that it
                // sees the container's processes without being one of them
                // (unless the named one is the host's own).
                let ns = open_ns(kind, &p)?;
                let parent = crate::sys::fd::ns_parent(ns.as_fd());
                birth.pid_join = Some(match parent {
                    Ok(parent) => parent,
                    Err(_) => ns.try_clone().map_err(|e| {
                        Error::Sandbox(format!("pid namespace {}: {}", p.display(), errno_text(&e)))
                    })?,
                });
                init.join.push((NsKind::Pid, fds.len()));
                fds.push(ns);
            }
            (NsKind::Time, None) => init.new.push(NsKind::Time),
            (NsKind::Time, Some(p)) => {
                return Err(Error::Spec(format!(
                    "linux.namespaces: joining a time namespace ({}) is not supported",
                    p.display()
                )))
            }
            (k, None) => {
                birth.clone_flags |= k.flag();
                init.fresh.push(k);
                if k == NsKind::User {
                    birth.new_user = true;
                } else {
                    init.owned.push(k);
                }
            }
            (NsKind::User, Some(p)) => {
                // boot's own namespaces are made at its birth, before it
                // could join another user namespace, and would belong to
                // the wrong one.
                return Err(Error::Spec(format!(
                    "linux.namespaces: joining a user namespace by path ({}) is only supported for pod members",
                    p.display()
                )));
            }
            (k, Some(p)) => {
                let fd = open_ns(k, &p)?;
                birth.joins.push((k, fd));
                init.owned.push(k);
            }
        }
    }
    if birth.new_user && shares_mounts {
        // The host's mount namespace belongs to the host's user namespace:
        // a container's root could not enter it.
        return Err(Error::Spec(
            "linux.namespaces: a container without a mount namespace cannot have a user namespace"
                .into(),
        ));
    }
    if birth.new_user && !birth.joins.is_empty() {
        // They would be joined from inside the new user namespace, which
        // has no say over them.
        return Err(Error::Spec(
            "linux.namespaces: joining namespaces by path together with a new user namespace is not supported".into(),
        ));
    }
    Ok((birth, init, fds))
}

/// What a container without a mount namespace cannot have: anything that
/// would be mounted, since it would be mounted in the host's mount
/// namespace and stay there (runc does mount it there, and leaves it
/// behind).
fn check_shared_mounts(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let none = |v: Option<&Vec<String>>| v.is_none_or(|v| v.is_empty());
    if !none(linux.and_then(|l| l.masked_paths().as_ref()))
        || !none(linux.and_then(|l| l.readonly_paths().as_ref()))
    {
        // runc's words.
        return Err(Error::Spec(
            "linux.maskedPaths, linux.readonlyPaths: unable to restrict sys entries without a private MNT namespace".into(),
        ));
    }
    let refuse = |what: &str| {
        Err(Error::Spec(format!(
            "{what}: needs a mount namespace of the container's own (linux.namespaces has none, so it would be done in the host's mount namespace)"
        )))
    };
    if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        return refuse("mounts");
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return refuse("root.readonly");
    }
    if linux
        .and_then(|l| l.rootfs_propagation().as_ref())
        .is_some()
    {
        return refuse("linux.rootfsPropagation");
    }
    Ok(())
}

/// The inode of `kind` of process `pid` (host view), to tell whether a path
/// names a namespace boot already lives in.
fn ns_id(pid: i32, kind: NsKind) -> Option<(u64, u64)> {
    std::fs::metadata(format!("/proc/{pid}/ns/{}", kind.proc_name()))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Whether process `pid` (a pod's boot) lives in a user namespace other
/// than ours: its members' device nodes are then bound, not made.
pub fn in_other_userns(pid: i32) -> bool {
    let mine = std::fs::metadata("/proc/self/ns/user")
        .ok()
        .map(|m| (m.dev(), m.ino()));
    ns_id(pid, NsKind::User) != mine
}

/// Plan a pod member: its init's namespaces, and the descriptors of those
/// it joins (their indexes in `init.join` refer to this list).
pub fn plan_member(
    spec: &Spec,
    network: Network,
    boot_pid: i32,
) -> Result<(InitNamespaces, Vec<OwnedFd>)> {
    let mut init = InitNamespaces {
        new: vec![NsKind::Mount, NsKind::Cgroup],
        ..Default::default()
    };
    let mut fds = Vec::new();
    // The pod's user namespace, which the member shares.
    init.in_user_ns = in_other_userns(boot_pid) || !crate::sys::ids::in_initial_userns();
    let list = spec_namespaces(spec, network);
    if !list.iter().any(|(k, _)| *k == NsKind::Mount) {
        return Err(Error::Spec(
            "linux.namespaces: a pod member needs a mount namespace of its own".into(),
        ));
    }
    for (kind, path) in list {
        match (kind, path) {
            (NsKind::Mount | NsKind::Cgroup, _) => {}
            (NsKind::User, None) => {
                return Err(Error::Spec(
                    "linux.namespaces: a pod member shares its pod's user namespace and cannot have one of its own".into(),
                ))
            }
            (k @ (NsKind::Pid | NsKind::Time), None) => init.new.push(k),
            // Net, IPC, UTS: the pod's.
            (_, None) => {}
            (k, Some(p)) => {
                let mine = std::fs::metadata(&p)
                    .map(|m| (m.dev(), m.ino()))
                    .map_err(|e| {
                        Error::Spec(format!(
                            "linux.namespaces: {} namespace path {}: {}",
                            k.spec_name(),
                            p.display(),
                            errno_text(&e)
                        ))
                    })?;
                if matches!(k, NsKind::Net | NsKind::Ipc | NsKind::Uts) {
                    init.owned.push(k);
                }
                if Some(mine) == ns_id(boot_pid, k) {
                    // The pod's own (what containerd writes): shared.
                    continue;
                }
                if k == NsKind::User {
                    return Err(Error::Spec(format!(
                        "linux.namespaces: user namespace {}: a pod member must share its pod's",
                        p.display()
                    )));
                }
                init.join.push((k, fds.len()));
                fds.push(open_ns(k, &p)?);
            }
        }
    }
    Ok((init, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = husk_oci::spec::default_spec(false);
        base["linux"]["namespaces"] = v;
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn root_namespaces_are_boots_and_the_inits() {
        let (birth, init, _) = plan_root(
            &spec(serde_json::json!([
                {"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}
            ])),
            Network::Sandbox,
        )
        .unwrap();
        let f = |k: NsKind| k.flag();
        assert_eq!(
            birth.clone_flags,
            f(NsKind::Pid) | f(NsKind::Net) | f(NsKind::Ipc) | f(NsKind::Uts) | f(NsKind::Mount)
        );
        assert!(birth.new_pid && !birth.new_user);
        // The init gets its own pid namespace below boot's, its mount and
        // cgroup namespaces; it owns (sets names in) the pod's others.
        for k in [NsKind::Pid, NsKind::Mount, NsKind::Cgroup] {
            assert!(init.creates(k), "{k:?}");
        }
        assert!(!init.creates(NsKind::Net));
        assert!(init.owns(NsKind::Uts) && init.fresh.contains(&NsKind::Net));
    }

    #[test]
    fn network_flag_overrides_spec() {
        let s = spec(serde_json::json!([{"type":"mount"},{"type":"network"}]));
        let (host, init, _) = plan_root(&s, Network::Host).unwrap();
        assert_eq!(host.clone_flags & NsKind::Net.flag(), 0);
        assert!(!init.fresh.contains(&NsKind::Net));
        let s = spec(serde_json::json!([{"type":"mount"}]));
        let (none, _, _) = plan_root(&s, Network::None).unwrap();
        assert_ne!(none.clone_flags & NsKind::Net.flag(), 0);
    }

    #[test]
    fn missing_path_is_named() {
        let s =
            spec(serde_json::json!([{"type":"mount"},{"type":"network","path":"/nonexistent/ns"}]));
        let e = plan_root(&s, Network::Sandbox).unwrap_err().to_string();
        assert!(e.contains("network namespace path /nonexistent/ns"), "{e}");
    }

    #[test]
    fn member_shares_the_pods_namespaces_named_by_path() {
        let me = std::process::id() as i32;
        let s = spec(serde_json::json!([
            {"type":"mount"},{"type":"pid"},
            {"type":"network","path": format!("/proc/{me}/ns/net")},
            {"type":"ipc","path": format!("/proc/{me}/ns/ipc")},
            {"type":"uts"}
        ]));
        // "boot" is this test process: the paths name its namespaces.
        let (init, fds) = plan_member(&s, Network::Sandbox, me).unwrap();
        assert!(fds.is_empty() && init.join.is_empty());
        assert!(init.creates(NsKind::Pid) && !init.creates(NsKind::Net));
        assert!(init.owns(NsKind::Net) && !init.owns(NsKind::Uts));
        let s = spec(serde_json::json!([{"type":"mount"},{"type":"user"}]));
        assert!(plan_member(&s, Network::Sandbox, me).is_err());
    }
}
