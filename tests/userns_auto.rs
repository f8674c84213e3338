//! `--userns=auto` and the annotation `dev.husk.userns: auto`: a container
//! whose spec asks for no user namespace gets one, with a range of host ids
//! no other container holds; its root is no one on the host, and its files
//! keep their owners on disk.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use serde_json::json;

const REGISTRY: &str = "/run/husk-userns";
const FIRST: u64 = 1 << 30;

/// The (inside, outside, count) line of a process's uid_map, seen from the
/// host.
fn uid_map(pid: i64) -> Vec<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/uid_map"))
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

fn host_uid(pid: i64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|x| x.parse().unwrap()))
        .unwrap()
}

fn pid_of(env: &Env, id: &str) -> i64 {
    env.state(id)["pid"].as_i64().unwrap()
}

fn registered(base: u64) -> bool {
    Path::new(REGISTRY).join(base.to_string()).exists()
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn auto_maps_root_to_a_private_range_and_keeps_owners_on_disk() {
    require_root();
    let mut env = Env::new("userns-auto");
    env.extra_flags.push("--userns=auto".into());
    let data = env.dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let b = env.bundle(&["sleep", "1000"]);
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind",
            "source": data, "options": ["rbind"]
        }));
    });
    let id = env.id("auto");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let pid = pid_of(&env, &id);
    let map = uid_map(pid);
    assert_eq!(map[0], 0, "uid_map {map:?}");
    assert_eq!(map[2], 65536, "uid_map {map:?}");
    let base = map[1];
    assert!(
        base >= FIRST && (base - FIRST) % 65536 == 0,
        "range {base} not one of husk's"
    );
    assert!(registered(base), "range {base} not recorded in {REGISTRY}");
    // The container's root is `base` on the host.
    assert_eq!(host_uid(pid), base);
    // Inside: root, and what it writes (rootfs and bind mount) is owned on
    // disk by the owner of the tree, not by the range.
    let out = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; touch /tmp/in-rootfs /data/in-bind && echo wrote",
    ]);
    assert_eq!(out, "0\nwrote\n");
    assert_eq!(
        std::fs::metadata(b.rootfs().join("tmp/in-rootfs"))
            .unwrap()
            .uid(),
        0
    );
    assert_eq!(std::fs::metadata(data.join("in-bind")).unwrap().uid(), 0);
    // A container user's file is owned on disk by that user's id as the
    // container knows it, not by its id in the host range.
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    env.ok(&["exec", "--user", "1000:1000", &id, "touch", "/data/by-1000"]);
    let m = std::fs::metadata(data.join("by-1000")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    env.ok(&["delete", "--force", &id]);
    assert!(!registered(base), "range {base} kept after delete");
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn two_containers_get_disjoint_ranges_and_a_member_shares_its_pods() {
    require_root();
    let env = Env::new("userns-pods");
    // The annotation asks for it without the flag.
    let ann = |extra: serde_json::Value| {
        let mut a = json!({"dev.husk.userns": "auto"});
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };
    let mut pids = Vec::new();
    let mut roots = Vec::new();
    for _ in 0..2 {
        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| c["annotations"] = ann(json!({"io.kubernetes.cri.container-type": "sandbox"})));
        let id = env.id("pod");
        env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        pids.push(pid_of(&env, &id));
        roots.push(id);
    }
    let (a, b) = (uid_map(pids[0])[1], uid_map(pids[1])[1]);
    assert!(a.abs_diff(b) >= 65536, "ranges overlap: {a} and {b}");

    // A member of the first pod: the pod's user namespace, its bind mounts
    // mapped the same way.
    let data = env.dir.join("member-data");
    std::fs::create_dir(&data).unwrap();
    let mb = env.bundle(&["sleep", "1000"]);
    mb.edit(|c| {
        c["annotations"] = json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": roots[0],
        });
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind",
            "source": data, "options": ["rbind"]
        }));
    });
    let m = env.id("member");
    env.ok(&["run", "-d", "--bundle", &mb.arg(), &m]);
    let out = env.ok(&["exec", &m, "sh", "-c", "id -u; touch /data/f && echo ok"]);
    assert_eq!(out, "0\nok\n");
    let mpid = pid_of(&env, &m);
    // boot, in the pod's user namespace, may not place the member in its
    // cgroup itself: the member joins through the descriptors husk opened.
    assert_in_own_cgroup(mpid, &m);
    assert_eq!(
        std::fs::read_link(format!("/proc/{mpid}/ns/user")).unwrap(),
        std::fs::read_link(format!("/proc/{}/ns/user", pids[0])).unwrap()
    );
    assert_eq!(std::fs::metadata(data.join("f")).unwrap().uid(), 0);
    // The member's delete leaves the pod's range alone.
    env.ok(&["delete", "--force", &m]);
    assert!(registered(a));
    for r in &roots {
        env.ok(&["delete", "--force", r]);
    }
    assert!(!registered(a) && !registered(b));
    for r in roots.iter().chain([&m]) {
        env.assert_no_leftovers(r);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn all_capabilities_are_worth_less_in_an_auto_namespace() {
    require_root();
    // Every capability, as --privileged gives; making /dev/mem works with
    // the host's CAP_MKNOD and not with a user namespace's.
    let all = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_SYS_ADMIN",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SETUID",
        "CAP_SETGID"
    ]);
    let script = "mknod /tmp/mem c 1 1 && echo mknod-ok || echo mknod-refused";
    let mut outs = Vec::new();
    for auto in [false, true] {
        let mut env = Env::new("userns-caps");
        if auto {
            env.extra_flags.push("--userns=auto".into());
        }
        let b = env.bundle(&["sh", "-c", script]);
        b.edit(|c| {
            c["root"]["readonly"] = json!(false);
            c["linux"]["resources"]["devices"]
                .as_array_mut()
                .unwrap()
                .push(json!({"allow": true, "type": "c", "major": 1, "minor": 1, "access": "rwm"}));
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = all.clone();
            }
        });
        let id = env.id("caps");
        outs.push(env.ok(&["run", "--bundle", &b.arg(), &id]));
        env.ok(&["delete", "--force", &id]);
        env.assert_no_leftovers(&id);
    }
    assert_eq!(outs[0].trim(), "mknod-ok", "without a user namespace");
    assert_eq!(outs[1].trim(), "mknod-refused", "with --userns=auto");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn a_spec_with_its_own_user_namespace_is_left_alone() {
    require_root();
    let mut env = Env::new("userns-own");
    env.extra_flags.push("--userns=auto".into());
    let b = env.bundle(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    });
    let id = env.id("own");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    assert_eq!(uid_map(pid_of(&env, &id)), [0, 300000, 65536]);
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}

/// Unmounts an overlay when dropped (also when the test fails).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn an_overlay_rootfs_is_remade_from_id_mapped_layers() {
    require_root();
    // As Docker, containerd and podman give it: the rootfs is an overlay,
    // which the kernel will not ID-map itself.
    let mut env = Env::new("userns-overlay");
    env.extra_flags.push("--userns=auto".into());
    let b = env.bundle(&["sh", "-c", "touch /new /bin/busybox && mkdir /dir && id -u"]);
    b.edit(|c| c["root"]["readonly"] = json!(false));
    let layers = env.dir.join("layers");
    let (lower, upper, work) = (
        layers.join("lower"),
        layers.join("upper"),
        layers.join("work"),
    );
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::rename(b.rootfs(), &lower).unwrap();
    std::fs::create_dir(b.rootfs()).unwrap();
    nix::mount::mount(
        Some("overlay"),
        &b.rootfs(),
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(
            format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            )
            .as_str(),
        ),
    )
    .unwrap();
    let mounted = Mounted(b.rootfs());
    let id = env.id("overlay");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    assert_eq!(out, "0\n");
    // What the container's root wrote is owned by the host's root in the
    // upper layer, as the client expects of its rootfs.
    for f in ["new", "bin/busybox", "dir"] {
        let m = std::fs::metadata(upper.join(f)).unwrap_or_else(|e| panic!("upper/{f}: {e}"));
        assert_eq!((m.uid(), m.gid()), (0, 0), "upper/{f}");
    }
    // And the client's own view of its rootfs shows it.
    assert!(b.rootfs().join("dir").is_dir());
    env.ok(&["delete", "--force", &id]);
    drop(mounted);
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn boot_in_its_user_namespace_still_writes_the_callers_log() {
    require_root();
    // containerd's log.json lives in a directory only root may enter;
    // boot, born as the root of the new user namespace, is no one there.
    let mut env = Env::new("userns-log");
    let logs = env.dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let log = logs.join("log.json");
    env.extra_flags.extend([
        "--userns=auto".to_string(),
        "--debug".into(),
        "--log-format=json".into(),
        "--log".into(),
        log.display().to_string(),
    ]);
    let b = env.bundle(&["echo", "hi"]);
    let id = env.id("log");
    let out = env.husk(&["run", "--bundle", &b.arg(), &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(!stderr.contains("log file"), "{stderr}");
    // boot's own lines are there (it answers the requests).
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("request: Start"), "{text}");
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}
