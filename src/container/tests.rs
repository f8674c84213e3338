//! The container layer against a recording fake of what it drives (see
//! `ops.rs`): no root, no cgroups, no boot. A `create` that fails at any
//! of its steps leaves nothing it made; `delete` keeps its rules.

use std::collections::BTreeSet;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxResources, Spec};
use serde_json::json;

use super::ops::Ops;
use super::state::{ProcRef, Status};
use super::{Container, CreateOptions};
use crate::cgroups::CgroupPath;
use crate::config::Config;
use crate::control::CreateContainer;
use crate::error::{Error, Result};
use crate::sandbox::{BootPlan, Event, Launched, Mounts, Sandbox};
use crate::sys::spawn::ChildProc;
use husk_oci::gofer::GoferRequest;

/// Records every call, keeps count of what is made and not yet undone,
/// and fails the `fail_at`-th fallible call.
#[derive(Default)]
struct Fake {
    log: Vec<String>,
    fallible_calls: usize,
    fail_at: Option<usize>,
    cgroups: BTreeSet<String>,
    boots: usize,
    /// Containers boot was asked to build and not to destroy.
    built: BTreeSet<String>,
    /// Our ends of the gofer sockets handed out.
    gofer_peers: Vec<UnixStream>,
}

impl Fake {
    fn failing(n: usize) -> Fake {
        Fake {
            fail_at: Some(n),
            ..Default::default()
        }
    }

    fn step(&mut self, what: String) -> Result<()> {
        self.log.push(what.clone());
        let n = self.fallible_calls;
        self.fallible_calls += 1;
        if self.fail_at == Some(n) {
            return Err(Error::Sandbox(format!("injected failure at {what}")));
        }
        Ok(())
    }

    /// Whether every gofer socket handed out was closed by the container
    /// layer (the mounts were taken or dropped).
    fn mounts_released(&self) -> bool {
        self.gofer_peers.iter().all(|s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            matches!(std::io::Read::read(&mut &*s, &mut b), Ok(0))
        })
    }
}

fn cg_name(cg: &CgroupPath) -> String {
    cg.intent()
        .dirs
        .first()
        .map(|d| d.path.display().to_string())
        .unwrap_or_else(|| "(no hierarchy)".into())
}

impl Ops for Fake {
    fn create_cgroup(&mut self, cg: &mut CgroupPath) -> Result<()> {
        let name = cg_name(cg);
        self.step(format!("create_cgroup {name}"))?;
        self.cgroups.insert(name);
        Ok(())
    }

    fn cgroup_occupancy(&mut self, _cg: &CgroupPath) -> (bool, usize) {
        (false, 0)
    }

    fn limit_cgroup(&mut self, cg: &CgroupPath, _res: &LinuxResources) -> Result<()> {
        self.step(format!("limit_cgroup {}", cg_name(cg)))
    }

    fn cgroup_join_fds(&mut self, cg: &CgroupPath) -> Result<crate::cgroups::JoinFds> {
        self.step(format!("cgroup_join_fds {}", cg_name(cg)))?;
        Ok(Default::default())
    }

    fn remove_cgroup(&mut self, cg: &CgroupPath, kill: bool) -> Result<()> {
        let name = cg_name(cg);
        self.log.push(format!("remove_cgroup {name} kill={kill}"));
        self.cgroups.remove(&name);
        Ok(())
    }

    fn open_mounts(
        &mut self,
        _cfg: &Config,
        id: &str,
        _req: &GoferRequest,
        _userns_of: Option<i32>,
    ) -> Result<Mounts> {
        self.step(format!("open_mounts {id}"))?;
        let (ours, theirs) = UnixStream::pair().unwrap();
        self.gofer_peers.push(ours);
        Ok(Mounts::from_socket(OwnedFd::from(theirs)))
    }

    fn launch(
        &mut self,
        _cfg: &Config,
        id: &str,
        dir: &Path,
        _plan: BootPlan<'_>,
    ) -> Result<Launched> {
        self.step(format!("launch {id}"))?;
        self.boots += 1;
        Ok(Launched {
            sandbox: Sandbox {
                id: id.to_string(),
                // Stands for boot: alive, and never signalled by the fake.
                boot: ProcRef::of(std::process::id() as i32).unwrap(),
                dir: dir.to_path_buf(),
            },
            child: None,
        })
    }

    fn create_in(
        &mut self,
        sb: &Sandbox,
        req: CreateContainer,
        _fds: &[RawFd],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<()>,
    ) -> Result<()> {
        // The init exists (it stands for ours), hooks run, then boot may
        // still fail: the failure then comes after the fork.
        let pidfd = crate::sys::process::pidfd_open(nix::unistd::getpid()).unwrap();
        self.built.insert(req.id.clone());
        on_event(Event::Forked(&pidfd))?;
        on_event(Event::RunHooks)?;
        self.step(format!("create_in {} {}", sb.id, req.id))
    }

    fn destroy_in(&mut self, sb: &Sandbox, id: &str) -> Result<()> {
        self.log.push(format!("destroy_in {} {id}", sb.id));
        self.built.remove(id);
        Ok(())
    }

    fn boot_alive(&mut self, _sb: &Sandbox) -> bool {
        self.boots > 0
    }

    fn stop_boot(&mut self, sb: &Sandbox, child: Option<ChildProc>, _grace: Duration) {
        assert!(child.is_none());
        self.log.push(format!("stop_boot {}", sb.id));
        self.boots -= 1;
        // boot takes its containers with it.
        self.built.clear();
    }

    fn open_fuse(&mut self, _sb: &Sandbox) -> std::io::Result<OwnedFd> {
        Err(std::io::Error::from_raw_os_error(libc::ENODEV))
    }
}

/// A private root and bundle directory, removed on drop.
struct Scratch {
    dir: PathBuf,
    cfg: Config,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "husk-unit-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        let cfg = Config {
            root: dir.join("root"),
            ..Config::default()
        };
        Scratch { dir, cfg }
    }

    fn opts(&self, id: &str, annotations: serde_json::Value) -> CreateOptions {
        let mut v = husk_oci::spec::default_spec(false);
        v["process"]["terminal"] = json!(false);
        v["annotations"] = annotations;
        let spec: Spec = serde_json::from_value(v).unwrap();
        CreateOptions {
            id: id.into(),
            bundle: self.dir.join("bundle"),
            pid_file: None,
            console: None,
            preserve_fds: 0,
            spec: Some(spec),
        }
    }

    fn exists(&self, id: &str) -> bool {
        self.cfg.container_dir(id).exists()
    }

    fn load(&self, id: &str) -> Container {
        Container::load(&self.cfg, id).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn member_of(root: &str) -> serde_json::Value {
    json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": root,
    })
}

/// Run a successful create through the fake; returns its log.
fn create_ok(s: &Scratch, fake: &mut Fake, id: &str, ann: serde_json::Value) -> Vec<String> {
    let start = fake.log.len();
    let created = Container::create_with(fake, &s.cfg, s.opts(id, ann)).unwrap();
    assert!(created.boot_child.is_none());
    drop(created);
    fake.log[start..].to_vec()
}

#[test]
fn ids() {
    for ok in ["a", "abc-DEF_1.2+x", "7abaf1363f88"] {
        super::validate_id(ok).unwrap();
    }
    for bad in ["", ".", "..", "a/b", "a b", "é", "x\n"] {
        assert!(super::validate_id(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_root_container_is_made_step_by_step() {
    let s = Scratch::new("root");
    let mut fake = Fake::default();
    let log = create_ok(&s, &mut fake, "r", json!({}));
    let steps: Vec<&str> = log.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "open_mounts",
            "create_cgroup",
            "limit_cgroup",
            "launch",
            "create_in"
        ]
    );
    let c = s.load("r");
    assert_eq!(c.state.status, Status::Created);
    assert!(c.state.is_root);
    assert!(c.state.creator.is_none());
    assert_eq!(c.state.init.map(|p| p.pid), Some(std::process::id() as i32));
    assert_eq!(fake.cgroups.len(), 1);
    assert_eq!(fake.boots, 1);
    assert!(fake.mounts_released(), "the gofer's socket stayed open");
}

#[test]
fn a_failed_root_create_undoes_exactly_what_it_made() {
    let s = Scratch::new("rootfail");
    let steps = create_ok(&s, &mut Fake::default(), "probe", json!({})).len();
    for k in 0..steps {
        let mut fake = Fake::failing(k);
        let id = format!("r{k}");
        let e = Container::create_with(&mut fake, &s.cfg, s.opts(&id, json!({})))
            .err()
            .unwrap_or_else(|| panic!("create survived a failure at step {k}: {:?}", fake.log));
        assert!(e.to_string().contains("injected failure"), "{e}");
        assert!(!s.exists(&id), "step {k}: state left: {:?}", fake.log);
        assert!(
            fake.cgroups.is_empty(),
            "step {k}: cgroup left: {:?}",
            fake.log
        );
        assert_eq!(fake.boots, 0, "step {k}: boot left running: {:?}", fake.log);
        assert!(fake.built.is_empty(), "step {k}: container left in boot");
        assert!(fake.mounts_released(), "step {k}: gofer socket left open");
        // Undone in reverse: boot before the cgroup it was born into.
        let pos = |p: &str| fake.log.iter().position(|l| l.starts_with(p));
        if let (Some(b), Some(c)) = (pos("stop_boot"), pos("remove_cgroup")) {
            assert!(b < c, "{:?}", fake.log);
        }
        if let Some(c) = pos("remove_cgroup") {
            assert!(fake.log[c].ends_with("kill=true"), "{:?}", fake.log);
        }
    }
}

#[test]
fn a_failed_member_create_leaves_its_pod_alone() {
    let s = Scratch::new("member");
    let mut pod = Fake::default();
    create_ok(&s, &mut pod, "pod", json!({}));
    let ok = create_ok(&s, &mut pod, "m", member_of("pod"));
    let steps: Vec<&str> = ok.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "open_mounts",
            "create_cgroup",
            "limit_cgroup",
            "cgroup_join_fds",
            "create_in"
        ]
    );
    assert!(s.cfg.container_dir("pod").join("members/m").exists());
    let m = s.load("m");
    assert!(!m.state.is_root);
    assert_eq!(
        m.state.sandbox.as_ref().map(|sb| sb.id.as_str()),
        Some("pod")
    );
    drop(m);

    for k in 0..ok.len() {
        let mut fake = Fake::failing(k);
        fake.boots = 1; // the pod's
        let id = format!("m{k}");
        assert!(Container::create_with(&mut fake, &s.cfg, s.opts(&id, member_of("pod"))).is_err());
        assert!(!s.exists(&id), "step {k}: {:?}", fake.log);
        assert!(
            !s.cfg
                .container_dir("pod")
                .join("members")
                .join(&id)
                .exists(),
            "step {k}: still recorded as a member"
        );
        assert!(fake.cgroups.is_empty(), "step {k}: {:?}", fake.log);
        assert!(
            fake.built.is_empty(),
            "step {k}: not destroyed in boot: {:?}",
            fake.log
        );
        assert_eq!(fake.boots, 1, "step {k}: the pod's boot was stopped");
        assert!(!fake.log.iter().any(|l| l.starts_with("stop_boot")));
        assert!(fake.mounts_released());
    }
    // The pod is as it was.
    assert!(s.exists("pod"));
    assert!(s.exists("m"));
}

#[test]
fn delete_keeps_its_rules() {
    let s = Scratch::new("delete");
    let mut fake = Fake::default();
    create_ok(&s, &mut fake, "pod", json!({}));
    create_ok(&s, &mut fake, "m", member_of("pod"));

    // A sandbox with members goes only with --force.
    let before = fake.log.len();
    let e = s.load("pod").delete_with(&mut fake, false).unwrap_err();
    assert!(e.to_string().contains("it is the sandbox of m"), "{e}");
    assert_eq!(
        fake.log.len(),
        before,
        "refused, yet it did {:?}",
        &fake.log[before..]
    );
    assert!(s.exists("pod"));

    // A running container goes only with --force: an init that has
    // exec'd its program (here: sleep) is running.
    let mut sleep = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut m = s.load("m");
    m.state.init = ProcRef::of(sleep.id() as i32);
    m.save().unwrap();
    drop(m);
    let e = s.load("m").delete_with(&mut fake, false).unwrap_err();
    assert!(
        e.to_string().contains("that is not stopped: running"),
        "{e}"
    );
    assert!(s.exists("m"));

    // A member's delete asks its pod's boot, which stays.
    s.load("m").delete_with(&mut fake, true).unwrap();
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert!(!s.exists("m"));
    assert!(!s.cfg.container_dir("pod").join("members/m").exists());
    assert!(fake.log.iter().any(|l| l == "destroy_in pod m"));
    assert!(!fake.log.iter().any(|l| l.starts_with("stop_boot")));
    assert_eq!(fake.boots, 1);

    // The root's delete stops boot, then removes its cgroup.
    s.load("pod").delete_with(&mut fake, false).unwrap();
    assert!(!s.exists("pod"));
    assert_eq!(fake.boots, 0);
    assert!(fake.cgroups.is_empty(), "{:?}", fake.log);
    let tail: Vec<&str> = fake.log[fake.log.len() - 3..]
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(tail, ["destroy_in", "stop_boot", "remove_cgroup"]);
}

#[test]
fn the_status_follows_the_processes() {
    let s = Scratch::new("status");
    let mut fake = Fake::default();
    create_ok(&s, &mut fake, "c", json!({}));
    let mut c = s.load("c");
    // Our init still runs husk's code (it is this very binary): created.
    assert_eq!(c.status(), Status::Created);
    // Once it runs another program: running, whatever was recorded.
    let mut sleep = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.state.init = ProcRef::of(sleep.id() as i32);
    assert_eq!(c.status(), Status::Running);
    // Once it has exited: stopped, and a stopped container is not
    // started again.
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert_eq!(c.status(), Status::Stopped);
    assert!(matches!(c.start(), Err(Error::BadState { .. })));
    // A create whose `husk create` died half-way never finishes.
    c.state.status = Status::Creating;
    c.state.creator = c.state.init;
    assert_eq!(c.status(), Status::Stopped);
    c.state.creator = ProcRef::of(std::process::id() as i32);
    assert_eq!(c.status(), Status::Creating);
}
