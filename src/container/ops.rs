//! The seam between a container and what it drives: the host's cgroups,
//! the gofer, and the sandbox's boot, one call per operation. [`Real`]
//! does them; the unit tests (`container/tests.rs`) record them and make
//! any one of them fail, to check that a failed `create` undoes exactly
//! what it made and that `delete` keeps its rules, without root.

use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::cgroups::{CgroupPath, JoinFds};
use crate::config::Config;
use crate::control::CreateContainer;
use crate::error::Result;
use crate::sandbox::{self, BootPlan, Event, Launched, Mounts, Sandbox};
use crate::sys::spawn::ChildProc;
use husk_oci::gofer::GoferRequest;

pub(crate) trait Ops {
    /// Make the container's cgroup directories.
    fn create_cgroup(&mut self, cg: &mut CgroupPath) -> Result<()>;
    /// Whether the new cgroup is frozen, and whether processes other than
    /// the container's were in it already.
    fn cgroup_occupancy(&mut self, cg: &CgroupPath) -> (bool, usize);
    /// Apply `linux.resources`, device rules included.
    fn limit_cgroup(&mut self, cg: &CgroupPath, res: &LinuxResources) -> Result<()>;
    /// Descriptors that join the container's cgroup, one per hierarchy
    /// (`sandbox::cgroup_procs`), for a pod member's init.
    fn cgroup_join_fds(&mut self, cg: &CgroupPath) -> Result<JoinFds>;
    /// Kill what is left in the cgroup (`kill`) and remove what we made.
    fn remove_cgroup(&mut self, cg: &CgroupPath, kill: bool) -> Result<()>;
    /// Start the gofer on `req` (or open the mounts here); `userns_of`:
    /// the boot whose user namespace it joins (an unprivileged caller's).
    fn open_mounts(
        &mut self,
        cfg: &Config,
        id: &str,
        req: &GoferRequest,
        userns_of: Option<i32>,
    ) -> Result<Mounts>;
    /// Start a sandbox's boot.
    fn launch(
        &mut self,
        cfg: &Config,
        id: &str,
        dir: &Path,
        plan: BootPlan<'_>,
    ) -> Result<Launched>;
    /// Ask `sb`'s boot to build a container.
    fn create_in(
        &mut self,
        sb: &Sandbox,
        req: CreateContainer,
        fds: &[RawFd],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<()>;
    /// Ask `sb`'s boot to kill container `id` and wait for its init.
    fn destroy_in(&mut self, sb: &Sandbox, id: &str) -> Result<()>;
    /// Whether `sb`'s boot still runs.
    fn boot_alive(&mut self, sb: &Sandbox) -> bool;
    /// Wait (bounded) for `sb`'s boot to exit; kill it if it does not.
    fn stop_boot(&mut self, sb: &Sandbox, child: Option<ChildProc>, grace: Duration);
    /// /dev/fuse opened in `sb`'s user namespace, for its /proc views.
    fn open_fuse(&mut self, sb: &Sandbox) -> std::io::Result<OwnedFd>;
}

/// The operations done for real.
pub(crate) struct Real;

impl Ops for Real {
    fn create_cgroup(&mut self, cg: &mut CgroupPath) -> Result<()> {
        Ok(cg.create()?)
    }

    fn cgroup_occupancy(&mut self, cg: &CgroupPath) -> (bool, usize) {
        (cg.is_frozen(), cg.pids().map(|p| p.len()).unwrap_or(0))
    }

    fn limit_cgroup(&mut self, cg: &CgroupPath, res: &LinuxResources) -> Result<()> {
        cg.apply(res)?;
        if let Some(rules) = res.devices() {
            cg.attach_device_filter(rules)?;
        }
        Ok(())
    }

    fn cgroup_join_fds(&mut self, cg: &CgroupPath) -> Result<JoinFds> {
        sandbox::cgroup_join(cg)
    }

    fn remove_cgroup(&mut self, cg: &CgroupPath, kill: bool) -> Result<()> {
        if kill {
            // destroy kills whatever is still in it first.
            Ok(cg.destroy()?)
        } else {
            // Others' processes stay, and so does the cgroup they are in:
            // only the directories we made and left empty go.
            for d in cg.dirs.iter().filter(|d| d.created) {
                let _ = std::fs::remove_dir(&d.path);
            }
            Ok(())
        }
    }

    fn open_mounts(
        &mut self,
        cfg: &Config,
        _id: &str,
        req: &GoferRequest,
        userns_of: Option<i32>,
    ) -> Result<Mounts> {
        Mounts::open(cfg, req, userns_of)
    }

    fn launch(
        &mut self,
        cfg: &Config,
        id: &str,
        dir: &Path,
        plan: BootPlan<'_>,
    ) -> Result<Launched> {
        Sandbox::launch(cfg, id, dir, plan)
    }

    fn create_in(
        &mut self,
        sb: &Sandbox,
        req: CreateContainer,
        fds: &[RawFd],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<()> {
        sb.create(req, fds, on_event).map(drop)
    }

    fn destroy_in(&mut self, sb: &Sandbox, id: &str) -> Result<()> {
        sb.destroy(id)
    }

    fn boot_alive(&mut self, sb: &Sandbox) -> bool {
        sb.is_running()
    }

    fn stop_boot(&mut self, sb: &Sandbox, child: Option<ChildProc>, grace: Duration) {
        if !sb.wait_boot_exit(grace) {
            sb.kill_boot();
        }
        if let Some(mut c) = child {
            c.kill();
            let _ = c.wait();
        }
    }

    fn open_fuse(&mut self, sb: &Sandbox) -> std::io::Result<OwnedFd> {
        super::open_fuse_for(sb)
    }
}
