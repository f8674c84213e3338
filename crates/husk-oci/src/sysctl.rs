//! Which sysctls a container may set (runc's rule: only namespaced ones,
//! and only for the namespaces the container owns).

use crate::error::{Error, Result};

/// Sysctls a container may set: those of the namespaces it owns.
pub fn check_sysctl(key: &str, own_ipc: bool, own_net: bool, own_uts: bool) -> Result<()> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let (ns, ok) = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        ("IPC", own_ipc)
    } else if key.starts_with("net.") {
        ("network", own_net)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        ("UTS", own_uts)
    } else {
        return Err(Error::Spec(format!(
            "linux.sysctl {key:?}: not a namespaced sysctl; a container may not change it for the whole host"
        )));
    };
    if !ok {
        return Err(Error::Spec(format!(
            "linux.sysctl {key:?}: needs the container's own {ns} namespace"
        )));
    }
    Ok(())
}
