//! `create`'s steps. [`CreateRequest::read`] checks what the caller asked
//! for and makes nothing; the [`CreateGuard`] then makes the container one
//! step at a time (state, gofer, cgroup; a new sandbox for a pod's root,
//! the pod's for a member; the request to boot), recording each thing it
//! makes so that a failure undoes exactly those, in reverse.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::Spec;

use super::lock::DirLock;
use super::ops::Ops;
use super::state::{self, OciState, ProcRef, State, Status};
use super::{
    absolute, add_member, baseline_on, boot_seccomp, explain_sandbox_death, give_to_listener,
    host_pid, host_tree, id_maps_of, make_root_dir, now_rfc3339, pod_sandbox, proc_views_on,
    remove_member, remove_state_dir, seccomp_plan, userns, CreateOptions,
};
use crate::cgroups::CgroupPath;
use crate::config::Config;
use crate::control::{CreateContainer, CreateFds, InitNamespaces, NsKind};
use crate::error::{errno_text, Error, IoContext, Result};
use crate::sandbox::namespaces::{self, has_new_userns, joins_userns};
use crate::sandbox::{BootPlan, Event, Launched, Mounts, Sandbox};
use crate::spec::PodRole;
use husk_oci::gofer::GoferRequest;
use husk_oci::hooks::{self, Stage};

/// What `create` was asked for, checked before anything is made.
pub(super) struct CreateRequest {
    pub bundle: PathBuf,
    pub spec: Spec,
    /// A pod member's sandbox (its lock held shared, so the sandbox is not
    /// deleted under us) and the pod's `--userns=auto` range.
    pub pod: Option<(Sandbox, DirLock, Option<u32>)>,
    pub is_root: bool,
}

impl CreateRequest {
    pub fn read(cfg: &Config, opts: &mut CreateOptions) -> Result<CreateRequest> {
        super::validate_id(&opts.id)?;
        if cfg.systemd_cgroup {
            // Cgroups made behind systemd's back, at paths it does not know,
            // would fight it; husk has no D-Bus client to ask it instead.
            return Err(Error::Invalid(
                "--systemd-cgroup: husk manages cgroups through cgroupfs only; use the cgroupfs driver (Docker: native.cgroupdriver=cgroupfs, containerd: SystemdCgroup = false, podman: --cgroup-manager=cgroupfs)".into(),
            ));
        }
        let bundle = absolute(&opts.bundle)?;
        if !bundle.is_dir() {
            return Err(Error::Spec(format!(
                "bundle {}: {}",
                bundle.display(),
                if bundle.exists() {
                    "not a directory"
                } else {
                    "no such file or directory"
                }
            )));
        }
        let mut spec = match opts.spec.take() {
            Some(s) => s,
            None => crate::spec::load(&bundle)?,
        };
        crate::spec::add_default_device_rules(&mut spec);
        let role = crate::spec::pod_role(&spec)?;
        let pod = match &role {
            PodRole::Root => None,
            PodRole::Sub { sandbox_id } => Some(pod_sandbox(cfg, sandbox_id)?),
        };
        if crate::sandbox::unprivileged() {
            if cfg.file_access == crate::config::FileAccess::Direct {
                // Cloning mounts takes CAP_SYS_ADMIN over one's mount
                // namespace; a user has it only in the sandbox's.
                return Err(Error::Privilege(
                    "--file-access=direct: husk would open the mounts itself, which takes privilege over the host's mount namespace that a user other than root lacks; use the gofer (--file-access=proxy, the default)".into(),
                ));
            }
            if pod.is_none() {
                super::check_unprivileged(&spec)?;
            }
        }
        if spec.process().as_ref().and_then(|p| p.terminal()) == Some(true)
            && opts.console.is_none()
        {
            return Err(Error::Spec(
                "process.terminal is true but no --console-socket was given".into(),
            ));
        }
        Ok(CreateRequest {
            bundle,
            spec,
            is_root: pod.is_none(),
            pod,
        })
    }
}

/// The container's state directory, made (so the id is taken) and locked.
pub(super) fn make_state_dir(cfg: &Config, id: &str) -> Result<(PathBuf, DirLock)> {
    use std::os::unix::fs::DirBuilderExt;
    make_root_dir(&cfg.root)?;
    let dir = cfg.container_dir(id);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists(id.to_string()))
        }
        Err(e) => return Err(e).with_ctx(|| format!("create {}", dir.display())),
    }
    // The lock is taken before the guard exists, so the guard's cleanup
    // still runs under it.
    match DirLock::acquire(&dir, id) {
        Ok(l) => Ok((dir, l)),
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(e)
        }
    }
}

/// What goes to boot with the request: descriptors (indexes into `fds`,
/// kept open by `keep`), the init's namespaces, the container's cgroup and
/// seccomp plan.
pub(super) struct Outgoing {
    fds: Vec<RawFd>,
    keep: Vec<OwnedFd>,
    cfds: CreateFds,
    /// The gofer's socket, or what to ask it once boot runs (an
    /// unprivileged caller's gofer joins boot's user namespace).
    mounts_fd: Option<RawFd>,
    gofer_req: Option<GoferRequest>,
    init_ns: InitNamespaces,
    cgroup: CgroupPath,
    seccomp: Option<crate::seccomp::Prepared>,
    baseline: bool,
}

impl Outgoing {
    fn push(&mut self, fd: RawFd) -> usize {
        self.fds.push(fd);
        self.fds.len() - 1
    }

    fn push_owned(&mut self, fd: OwnedFd) -> usize {
        let i = self.push(fd.as_raw_fd());
        self.keep.push(fd);
        i
    }
}

/// Everything a `create` has made so far, undone (in reverse) if it is
/// dropped armed.
pub(super) struct CreateGuard<'o> {
    ops: &'o mut dyn Ops,
    dir: PathBuf,
    /// The host id range this pod's root took.
    userns_base: Option<u32>,
    /// Poststop hooks to run once everything is undone, and their state.
    poststop: Option<(Option<oci_spec::runtime::Hooks>, OciState)>,
    pub mounts: Option<Mounts>,
    /// The cgroup, and whether it held other processes before this create.
    cgroup: Option<(CgroupPath, bool)>,
    pub sandbox: Option<(Sandbox, Option<crate::sys::spawn::ChildProc>)>,
    /// The sandbox this pod member was recorded in.
    member_of: Option<(Config, String)>,
    /// A pod member the pod's boot has forked (to destroy there).
    member: Option<(Sandbox, String)>,
    pub armed: bool,
}

impl<'o> CreateGuard<'o> {
    pub fn new(ops: &'o mut dyn Ops, dir: PathBuf) -> Self {
        CreateGuard {
            ops,
            dir,
            userns_base: None,
            poststop: None,
            mounts: None,
            cgroup: None,
            sandbox: None,
            member_of: None,
            member: None,
            armed: true,
        }
    }

    /// The user namespace `--userns=auto` chose, and the first state file:
    /// what will be made is recorded before it is, so a create killed at
    /// any point leaves a state `delete --force` can clean up from.
    pub fn begin(
        &mut self,
        cfg: &Config,
        id: &str,
        req: &mut CreateRequest,
        lock: &DirLock,
    ) -> Result<State> {
        // --userns=auto: the pod's root takes a range of host ids; its
        // members are in the pod's user namespace, their mounts mapped alike.
        let userns_base = match &req.pod {
            None if userns::wanted(cfg, &req.spec)? => {
                let base = userns::allocate(id, &self.dir)?;
                self.userns_base = Some(base);
                userns::apply(&mut req.spec, base, true)?;
                Some(base)
            }
            None => None,
            Some((_, _, base)) => {
                if let Some(b) = base {
                    userns::apply(&mut req.spec, *b, false)?;
                }
                *base
            }
        };
        let spec = &req.spec;
        let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        let cgroup = crate::cgroups::resolve(cgroups_path.as_deref(), id)?;
        let state = State {
            runtime: state::RUNTIME_NAME.into(),
            id: id.to_string(),
            bundle: req.bundle.clone(),
            rootfs: crate::spec::rootfs_path(&req.bundle, spec),
            created: now_rfc3339(),
            owner_uid: nix::unistd::geteuid().as_raw(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            status: Status::Creating,
            init: None,
            sandbox: None,
            cgroup: cgroup.intent(),
            hooks: spec.hooks().clone(),
            is_root: req.is_root,
            process: spec.process().clone(),
            creator: ProcRef::of(nix::unistd::getpid().as_raw()),
            seccomp_listener: None,
            userns_base,
        };
        state.write(lock.fd())?;
        // From here a failed create is a container that existed: its
        // poststop hooks run (runtime spec: on a failed prestart hook the
        // lifecycle goes on with delete; runc runs them for any failure).
        if hooks::has(spec.hooks().as_ref(), Stage::Poststop) {
            let mut oci = state.oci_state();
            oci.status = Status::Stopped.to_string();
            oci.pid = 0;
            self.poststop = Some((spec.hooks().clone(), oci));
        }
        Ok(state)
    }

    /// The gofer (it opens the rootfs meanwhile), the seccomp plan, the
    /// cgroup and its limits.
    pub fn prepare(
        &mut self,
        cfg: &Config,
        id: &str,
        req: &CreateRequest,
        state: &mut State,
        lock: &DirLock,
    ) -> Result<Outgoing> {
        let spec = &req.spec;
        // In a user namespace (its own or its pod's), devices are bound and
        // the rootfs is ID-mapped.
        let userns = has_new_userns(spec)
            || state.userns_base.is_some()
            || joins_userns(spec)
            || crate::config::rootless()
            || req
                .pod
                .as_ref()
                .is_some_and(|(sb, _, _)| namespaces::in_other_userns(sb.boot.pid));
        let gofer_req = GoferRequest::for_spec(&req.bundle, spec, userns, cfg.overlay);
        // Otherwise the gofer starts now and opens the rootfs while the
        // cgroup is made and boot starts.
        let (mounts_fd, gofer_req) = if crate::sandbox::unprivileged() {
            (None, Some(gofer_req))
        } else {
            let mounts = self.ops.open_mounts(cfg, id, &gofer_req, None)?;
            let fd = mounts.sandbox_end.as_raw_fd();
            self.mounts = Some(mounts);
            (Some(fd), None)
        };

        let baseline = baseline_on(cfg, spec);
        let seccomp = seccomp_plan(cfg, spec, baseline)?;
        let mut cgroup = state.cgroup.clone();
        self.ops.create_cgroup(&mut cgroup)?;
        let (frozen, others) = self.ops.cgroup_occupancy(&cgroup);
        self.cgroup = Some((cgroup.clone(), others > 0));
        state.cgroup = cgroup.clone();
        state.write(lock.fd())?;
        // A frozen cgroup (a pre-existing one, or below a frozen parent)
        // would freeze the sandbox as soon as it is born into it: fail now,
        // in runc's words, rather than wait on it.
        if frozen {
            return Err(Error::Invalid(
                "container's cgroup unexpectedly frozen".into(),
            ));
        }
        // Processes already there (a cgroupsPath shared on purpose) are
        // left alone, as runc leaves them, and never killed by a failed
        // create.
        if others > 0 {
            tracing::warn!("container's cgroup is not empty: {others} process(es) found");
        }
        let rootless = crate::config::rootless();
        if rootless {
            super::note_rootless_cgroup(
                &cgroup,
                spec.linux()
                    .as_ref()
                    .and_then(|l| l.cgroups_path().as_deref()),
            );
        }
        if let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            if rootless {
                // Device rules take the host's root (the devices controller,
                // or a BPF program on cgroup2); a rootless container cannot
                // make device nodes, and the host's that it is given are
                // guarded by their own permissions.
                let mut res = res.clone();
                res.set_devices(None);
                self.ops.limit_cgroup(&cgroup, &res)?;
            } else {
                self.ops.limit_cgroup(&cgroup, res)?;
            }
        }
        Ok(Outgoing {
            fds: Vec::new(),
            keep: Vec::new(),
            cfds: CreateFds::default(),
            mounts_fd,
            gofer_req,
            init_ns: InitNamespaces::default(),
            cgroup,
            seccomp,
            baseline,
        })
    }

    /// A pod's root container: a new sandbox, born into its namespaces
    /// and cgroup.
    pub fn launch_root(
        &mut self,
        cfg: &Config,
        id: &str,
        req: &CreateRequest,
        out: &mut Outgoing,
    ) -> Result<Sandbox> {
        let (birth, mut init_ns, ns_fds) = namespaces::plan_root(&req.spec, cfg.network)?;
        let base = out.fds.len();
        for (_, i) in init_ns.join.iter_mut() {
            *i += base;
        }
        for fd in ns_fds {
            out.push_owned(fd);
        }
        out.init_ns = init_ns;
        let id_maps = birth.new_user.then(|| id_maps_of(&req.spec)).transpose()?;
        let boot_filter = if out.baseline {
            Some(boot_seccomp(cfg)?)
        } else {
            None
        };
        let Launched { sandbox, child } = self.ops.launch(
            cfg,
            id,
            &self.dir,
            BootPlan {
                birth,
                id_maps,
                cgroup: &out.cgroup,
                seccomp: boot_filter,
            },
        )?;
        self.sandbox = Some((sandbox.clone(), child));
        Ok(sandbox)
    }

    /// A pod member: the pod's sandbox, its namespaces, and descriptors to
    /// join the member's own cgroup.
    pub fn join_pod(
        &mut self,
        cfg: &Config,
        id: &str,
        req: &CreateRequest,
        pod: (Sandbox, DirLock, Option<u32>),
        out: &mut Outgoing,
    ) -> Result<Sandbox> {
        let (sandbox, _pod_lock, _) = pod;
        let (mut init_ns, ns_fds) =
            namespaces::plan_member(&req.spec, cfg.network, sandbox.boot.pid)?;
        // The root container's process inherits boot's stdio; a pod
        // member's comes along with the request.
        out.cfds.stdio = Some([0, 1, 2]);
        out.fds.extend([0, 1, 2]);
        let base = out.fds.len();
        for (_, i) in init_ns.join.iter_mut() {
            *i += base;
        }
        for fd in ns_fds {
            out.push_owned(fd);
        }
        out.init_ns = init_ns;
        let join = self.ops.cgroup_join_fds(&out.cgroup)?;
        for fd in join.tasks {
            let i = out.push_owned(fd);
            out.cfds.cgroup_procs.push(i);
        }
        if let Some(v2) = join.v2 {
            out.cfds.cgroup2 = Some([out.push_owned(v2.dir), out.push_owned(v2.procs)]);
        }
        add_member(cfg, &sandbox.id, id)?;
        self.member_of = Some((cfg.clone(), sandbox.id.clone()));
        Ok(sandbox)
    }

    /// The gofer of an unprivileged caller, which joins the user namespace
    /// of `sandbox`'s boot (so it starts once boot exists).
    pub fn late_gofer(
        &mut self,
        cfg: &Config,
        id: &str,
        sandbox: &Sandbox,
        out: &mut Outgoing,
    ) -> Result<()> {
        if let Some(req) = out.gofer_req.take() {
            let mounts = self
                .ops
                .open_mounts(cfg, id, &req, Some(sandbox.boot.pid))?;
            out.mounts_fd = Some(mounts.sandbox_end.as_raw_fd());
            self.mounts = Some(mounts);
        }
        Ok(())
    }

    /// The request to boot, and what it says while it builds the
    /// container (hooks to run, a seccomp listener to serve); returns the
    /// init waiting for `start`.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        &mut self,
        cfg: &Config,
        opts: &CreateOptions,
        req: CreateRequest,
        sandbox: &Sandbox,
        mut out: Outgoing,
        console: Option<&OwnedFd>,
        state: &mut State,
        lock: &DirLock,
    ) -> Result<ProcRef> {
        let spec = req.spec;
        let mounts_fd = out
            .mounts_fd
            .ok_or_else(|| Error::Sandbox("no mounts for the container".into()))?;
        out.cfds.mounts = out.push(mounts_fd);
        if hooks::has(spec.hooks().as_ref(), Stage::CreateContainer) {
            let tree = host_tree()?;
            out.cfds.host_root = Some(out.push_owned(tree));
        }
        if proc_views_on(&spec) && out.init_ns.creates(NsKind::Mount) {
            // Opened here: neither boot nor the container may open devices.
            match self.ops.open_fuse(sandbox) {
                Ok(fuse) => {
                    let i = out.push_owned(fuse);
                    out.cfds.proc_views = Some(husk_oci::control::ProcViewsFds { fuse: i });
                }
                // Rootless: /dev/fuse is often root's alone (mode 0600).
                Err(e) if crate::config::rootless() => tracing::debug!(
                    "create {}: rootless: no /proc views: /dev/fuse: {}",
                    opts.id,
                    errno_text(&e)
                ),
                Err(e) => tracing::warn!(
                    "create {}: no /proc views: /dev/fuse: {}",
                    opts.id,
                    errno_text(&e)
                ),
            }
        }
        if !out.init_ns.creates(NsKind::Mount) {
            // No mount namespace of its own (see namespaces::plan_root).
            if cfg.overlay {
                return Err(Error::Spec(
                    "--overlay needs a mount namespace (linux.namespaces has none)".into(),
                ));
            }
            tracing::warn!(
                "container {:?} has no mount namespace: it shares the host's, and only a chroot keeps it in {}",
                opts.id,
                state.rootfs.display()
            );
            let dir = crate::sys::fd::open(&state.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
                .with_ctx(|| format!("open rootfs {}", state.rootfs.display()))?;
            out.cfds.rootfs_dir = Some(out.push_owned(dir));
        }
        if let Some(c) = console {
            out.cfds.console_socket = Some(out.push(c.as_raw_fd()));
        }
        for i in 0..opts.preserve_fds {
            let idx = out.push(3 + i as RawFd);
            out.cfds.preserved.push(idx);
        }
        let hook_state = OciState {
            oci_version: state::OCI_VERSION.into(),
            id: state.id.clone(),
            status: "creating".into(),
            pid: 0,
            bundle: state.bundle.clone(),
            rootfs: state.rootfs.clone(),
            created: state.created.clone(),
            owner: state.owner_name(),
            annotations: state.annotations.clone(),
        };
        let listener = out.seccomp.as_ref().and_then(|s| {
            s.listener_path()
                .map(|p| (p.to_path_buf(), s.listener_metadata().to_string()))
        });
        state.seccomp_listener = listener.clone();
        let Outgoing {
            fds,
            keep,
            cfds,
            init_ns,
            cgroup,
            seccomp,
            ..
        } = out;
        let request = CreateContainer {
            id: opts.id.clone(),
            spec: Box::new(spec),
            namespaces: init_ns,
            cgroup,
            fds: cfds,
            hook_state: hook_state.clone(),
            seccomp,
            apparmor: crate::spec::apparmor_enabled(),
        };
        let hooks = state.hooks.clone();
        let mut init: Option<ProcRef> = None;
        let lock_fd = lock.fd();
        let mut on_event = |ev: Event<'_>| -> Result<()> {
            match ev {
                Event::Forked(pidfd) => {
                    // An init that died already (a missing program fails
                    // that fast) has no pid left; boot's answer says why.
                    if let Ok(p) = host_pid(pidfd) {
                        init = Some(p);
                        // Recorded at once: a create killed from here on
                        // leaves a process `delete --force` can find.
                        state.init = Some(p);
                        state.write(lock_fd)?;
                    }
                    Ok(())
                }
                Event::RunHooks => {
                    let mut st = hook_state.clone();
                    st.pid = init.map(|p| p.pid).unwrap_or(0);
                    st.status = "created".into();
                    hooks::run(hooks.as_ref(), Stage::Prestart, &st)?;
                    st.status = "creating".into();
                    hooks::run(hooks.as_ref(), Stage::CreateRuntime, &st)
                }
                Event::SeccompListener(fd) => {
                    let mut st = hook_state.clone();
                    st.pid = init.map(|p| p.pid).unwrap_or(0);
                    give_to_listener(listener.as_ref(), fd, st)
                }
            }
        };
        let created = self.ops.create_in(sandbox, request, &fds, &mut on_event);
        drop(keep);
        let is_member = self.member_of.is_some();
        match created {
            Ok(()) => {
                if is_member {
                    self.member = Some((sandbox.clone(), opts.id.clone()));
                }
                init.ok_or_else(|| Error::Sandbox("no init was reported".into()))
            }
            Err(e) => {
                if is_member && init.is_some() {
                    // From here, undoing means asking the pod's boot too.
                    self.member = Some((sandbox.clone(), opts.id.clone()));
                }
                if let Some(why) = self.mounts.as_mut().and_then(Mounts::startup_error) {
                    return Err(Error::Sandbox(format!("start husk gofer: {why}")));
                }
                Err(explain_sandbox_death(e, self.sandbox.as_mut()))
            }
        }
    }

    fn undo(&mut self) {
        if let Some((sb, id)) = self.member.take() {
            if let Err(e) = self.ops.destroy_in(&sb, &id) {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Some((cfg, sandbox)) = self.member_of.take() {
            let id = self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            remove_member(&cfg, &sandbox, &id);
        }
        if let Some(m) = self.mounts.take() {
            m.kill();
        }
        if let Some((sb, child)) = self.sandbox.take() {
            self.ops.stop_boot(&sb, child, Duration::ZERO);
        }
        if let Some((cg, others)) = self.cgroup.take() {
            // Ours died with boot (or were destroyed by the pod's); anything
            // of ours left in the cgroup goes, others' stay with it.
            if let Err(e) = self.ops.remove_cgroup(&cg, !others) {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Err(e) = remove_state_dir(&self.dir) {
            tracing::warn!("cleanup: {e}");
        }
        if let Some(base) = self.userns_base.take() {
            userns::release(base);
        }
    }
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.undo();
        if let Some((h, oci)) = self.poststop.take() {
            hooks::run_logged(h.as_ref(), Stage::Poststop, &oci);
        }
    }
}
