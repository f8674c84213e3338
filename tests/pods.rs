//! Pods: several containers in one sandbox, as containerd and CRI-O put
//! them, driven through the real binary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn cri(sandbox: &str) -> serde_json::Value {
    json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": sandbox
    })
}

fn crio(sandbox: &str) -> serde_json::Value {
    json!({
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.cri-o.SandboxID": sandbox
    })
}

fn member(env: &Env, sandbox: &str, args: &[&str], ann: serde_json::Value) -> Bundle {
    let b = env.bundle(args);
    b.edit(|c| c["annotations"] = ann);
    let _ = sandbox;
    b
}

fn init_pid(env: &Env, id: &str) -> i64 {
    env.state(id)["pid"].as_i64().unwrap()
}

fn ns(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

fn boots(env: &Env) -> usize {
    env.runtime_processes()
        .iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("\0boot\0"))
                .unwrap_or(false)
        })
        .count()
}

/// Start a pod: a root container and members; returns their ids.
fn pod(env: &Env) -> (String, String, String) {
    let root = env.id("pod");
    let rb = env.bundle(&["sleep", "1000"]);
    rb.edit(|c| {
        c["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"});
    });
    env.ok(&["run", "-d", "--bundle", &rb.arg(), &root]);
    let a = env.id("cri");
    let ab = member(env, &root, &["sleep", "1000"], cri(&root));
    env.ok(&["run", "-d", "--bundle", &ab.arg(), &a]);
    let b = env.id("crio");
    let bb = member(env, &root, &["sleep", "1000"], crio(&root));
    env.ok(&["create", "--bundle", &bb.arg(), &b]);
    env.ok(&["start", &b]);
    (root, a, b)
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn pod_members_share_the_sandbox() {
    require_root();
    let env = Env::new("pod");
    let (root, a, b) = pod(&env);
    assert_eq!(boots(&env), 1, "exactly one sandbox process for the pod");
    for id in [&root, &a, &b] {
        assert_eq!(env.status(id), "running");
    }
    let (pr, pa, pb) = (
        init_pid(&env, &root),
        init_pid(&env, &a),
        init_pid(&env, &b),
    );
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(ns(pr, kind), ns(pa, kind), "{kind}");
        assert_eq!(ns(pr, kind), ns(pb, kind), "{kind}");
    }
    assert_ne!(ns(pr, "mnt"), ns(pa, "mnt"));
    assert_ne!(ns(pa, "mnt"), ns(pb, "mnt"));
    assert_ne!(ns(pr, "pid"), ns(pa, "pid"), "own pid namespace by default");
    // Each member in its own cgroup (boot has it born there), and so is a
    // process exec'd into it.
    assert_in_own_cgroup(pa, &a);
    assert_in_own_cgroup(pb, &b);
    let sleeper = env
        .cmd(&["exec", &a, "sleep", "1000"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let execd = loop {
        let ps: Vec<i64> = serde_json::from_str(&env.ok(&["ps", "--format", "json", &a])).unwrap();
        if let Some(p) = ps.iter().find(|p| **p != pa) {
            break *p;
        }
        assert!(Instant::now() < deadline, "the exec'd sleep never showed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_in_own_cgroup(execd, &a);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(execd as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = wait_child(sleeper, Duration::from_secs(10));

    // exec into a member; ps of a member lists only its processes.
    assert_eq!(env.ok(&["exec", &a, "hostname"]).trim(), "husk-test");
    let ps: Vec<i64> = serde_json::from_str(&env.ok(&["ps", "--format", "json", &a])).unwrap();
    assert_eq!(ps, vec![pa]);
    let ps: Vec<i64> = serde_json::from_str(&env.ok(&["ps", "--format", "json", &root])).unwrap();
    assert_eq!(ps, vec![pr]);

    // A server on loopback in one member is reached from the other.
    let child = env
        .cmd(&["exec", &a, "sh", "-c", "echo pong | nc -l -p 7777"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let o = env.husk(&["exec", &b, "sh", "-c", "nc 127.0.0.1 7777 </dev/null"]);
        let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if s == "pong" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(got, "pong");
    let _ = wait_child(child, Duration::from_secs(10));

    // Per-container memory stats are each container's own.
    let hog = env.id("hog");
    let hb = member(
        &env,
        &root,
        &[
            "sh",
            "-c",
            "x=$(head -c 20000000 /dev/zero | tr '\\0' a); sleep 1000; echo ${#x}",
        ],
        cri(&root),
    );
    env.ok(&["run", "-d", "--bundle", &hb.arg(), &hog]);
    let usage = |id: &str| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["events", "--stats", id])).unwrap();
        v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while usage(&hog) < 15_000_000 {
        assert!(Instant::now() < deadline, "the hog never grew");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        usage(&a) < 5_000_000,
        "a member's stats include another's memory"
    );

    // Killing one member leaves the others running.
    env.ok(&["kill", &a, "KILL"]);
    env.wait_status(&a, "stopped", 10);
    assert_eq!(env.status(&b), "running");
    assert_eq!(env.status(&root), "running");
    env.ok(&["delete", &a]);
    env.ok(&["delete", "--force", &hog]);

    // The sandbox cannot go while it has members, unless forced; then every
    // member reads as stopped and deletes cleanly.
    env.ok(&["delete", "--force", &b]);
    let b2 = env.id("crio");
    let bb = member(&env, &root, &["sleep", "1000"], crio(&root));
    env.ok(&["run", "-d", "--bundle", &bb.arg(), &b2]);
    env.ok(&["kill", &root, "KILL"]);
    env.wait_status(&root, "stopped", 10);
    let err = env.fails(&["delete", &root]);
    assert_one_line(&err);
    assert!(err.contains("sandbox of") && err.contains(&b2), "{err}");
    env.ok(&["delete", "--force", &root]);
    env.wait_status(&b2, "stopped", 10);
    env.ok(&["delete", &b2]);
    for id in [&root, &a, &b, &b2, &hog] {
        env.assert_no_leftovers(id);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn delete_members_then_sandbox() {
    require_root();
    let env = Env::new("podorder");
    let (root, a, b) = pod(&env);
    env.ok(&["delete", "--force", &a]);
    env.ok(&["delete", "--force", &b]);
    assert_eq!(env.status(&root), "running");
    env.ok(&["delete", "--force", &root]);
    for id in [&root, &a, &b] {
        env.assert_no_leftovers(id);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn sandbox_killed_with_sigkill() {
    require_root();
    let env = Env::new("podkill");
    let (root, a, b) = pod(&env);
    let boot = env.runtime_processes()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(boot),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for id in [&root, &a, &b] {
        env.wait_status(id, "stopped", 10);
    }
    for id in [&a, &b, &root] {
        env.ok(&["delete", id]);
        env.assert_no_leftovers(id);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn members_pid_file_waiter_and_shared_pid_namespace() {
    require_root();
    let env = Env::new("podpid");
    let root = env.id("pod");
    let rb = env.bundle(&["sleep", "1000"]);
    env.ok(&["run", "-d", "--bundle", &rb.arg(), &root]);
    let root_init = init_pid(&env, &root);
    // shareProcessNamespace: the member names the pod's pid namespace.
    let m = env.id("shared");
    let mb = member(&env, &root, &["sh", "-c", "sleep 1000"], cri(&root));
    mb.edit(|c| {
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "pid" {
                n["path"] = json!(format!("/proc/{root_init}/ns/pid"));
            }
        }
    });
    // Created under a subreaper (as conmon and containerd's shim are), the
    // pid file's process is the subreaper's child and exits with the
    // member's status: here killed, 137.
    let pidfile = env.dir.join("member.pid");
    let script = format!(
        r#"
import ctypes, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
husk = [{husk:?}, "--root", {root:?}]
subprocess.run(husk + ["create", "--bundle", {bundle:?}, "--pid-file", {pf:?}, {id:?}],
               check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.run(husk + ["start", {id:?}], check=True)
pid = int(open({pf:?}).read())
out = subprocess.run(husk + ["exec", {id:?}, "sh", "-c", "ls -d /proc/[0-9]* | wc -l"],
                     check=True, capture_output=True, text=True).stdout.strip()
import json
init = json.loads(subprocess.run(husk + ["state", {id:?}], check=True, capture_output=True, text=True).stdout)["pid"]
pidns = os.readlink("/proc/%d/ns/pid" % init)
subprocess.run(husk + ["kill", {id:?}, "KILL"], check=True)
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st), pid, out, pidns)
"#,
        husk = HUSK,
        root = env.root.display().to_string(),
        bundle = mb.arg(),
        pf = pidfile.display().to_string(),
        id = m,
    );
    let mut c = std::process::Command::new("python3");
    c.args(["-c", &script]);
    let out = run_bounded(c, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f[0], "137", "the waiter's status: {text}");
    let waiter: i32 = f[1].parse().unwrap();
    let boot = env
        .runtime_processes()
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("\0boot\0"))
                .unwrap_or(false)
        })
        .unwrap();
    assert_ne!(
        waiter, boot,
        "a member's pid file must not name the sandbox"
    );
    // The member shares the pod's pid namespace and sees its processes.
    assert!(f[2].parse::<u32>().unwrap() >= 3, "{text}");
    assert_eq!(f[3], ns(root_init, "pid"));
    env.wait_status(&m, "stopped", 10);
    assert_eq!(env.status(&root), "running");
    env.ok(&["delete", &m]);
    env.ok(&["delete", "--force", &root]);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn concurrent_members_keep_state_consistent() {
    require_root();
    let env = Env::new("podconc");
    let root = env.id("pod");
    let rb = env.bundle(&["sleep", "1000"]);
    env.ok(&["run", "-d", "--bundle", &rb.arg(), &root]);
    let mb = member(&env, &root, &["sleep", "1000"], cri(&root));
    let ids: Vec<String> = (0..20).map(|_| env.id("m")).collect();
    // Output goes to files: a member keeps its creator's stdio open.
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            let err = env.dir.join(format!("{id}.err"));
            let child = env
                .cmd(&["run", "-d", "--bundle", &mb.arg(), id])
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .unwrap();
            (child, err)
        })
        .collect();
    for (c, err) in children {
        let st = wait_child(c, Duration::from_secs(60));
        assert!(
            st.success(),
            "{}",
            std::fs::read_to_string(err).unwrap_or_default()
        );
    }
    for id in &ids {
        assert_eq!(env.status(id), "running", "{id}");
    }
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 21);
    assert_eq!(boots(&env), 1);
    env.ok(&["delete", "--force", &root]);
    for id in &ids {
        env.wait_status(id, "stopped", 10);
        env.ok(&["delete", id]);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn bad_pod_input() {
    require_root();
    let env = Env::new("podbad");
    let id = env.id("m");
    let b = member(&env, "nope", &["true"], cri("no-such-sandbox"));
    let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
    assert_one_line(&err);
    assert!(
        err.contains("sandbox \"no-such-sandbox\" does not exist"),
        "{err}"
    );
    env.assert_no_leftovers(&id);

    // A stopped sandbox.
    let root = env.id("pod");
    let rb = env.bundle(&["true"]);
    env.ok(&["run", "--keep", "--bundle", &rb.arg(), &root]);
    assert_eq!(env.status(&root), "stopped");
    let b = member(&env, &root, &["true"], crio(&root));
    let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
    assert_one_line(&err);
    assert!(err.contains("is not running"), "{err}");
    env.assert_no_leftovers(&id);

    // Annotations that disagree.
    let b = member(
        &env,
        &root,
        &["true"],
        json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": root,
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.cri-o.SandboxID": "other"
        }),
    );
    let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
    assert_one_line(&err);
    assert!(err.contains("disagree"), "{err}");
    env.assert_no_leftovers(&id);
    env.ok(&["delete", &root]);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn a_member_stuck_in_a_hook_delays_no_one_else() {
    require_root();
    let env = Env::new("podstuck");
    let root = env.id("pod");
    let rb = env.bundle(&["sleep", "1000"]);
    env.ok(&["run", "-d", "--bundle", &rb.arg(), &root]);
    let a = env.id("a");
    let ab = member(&env, &root, &["sleep", "1000"], cri(&root));
    env.ok(&["run", "-d", "--bundle", &ab.arg(), &a]);
    // B's prestart hook sleeps 60 s: boot waits for it without blocking.
    let stuck = env.id("stuck");
    let sb = member(&env, &root, &["sleep", "1000"], cri(&root));
    let marker = env.dir.join("hook-started");
    sb.edit(|c| {
        c["hooks"] = json!({"prestart": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("touch {}; exec sleep 60", marker.display())]
        }]});
    });
    // In a process group of its own, so that its hook goes with it.
    let mut creating = {
        use std::os::unix::process::CommandExt;
        env.cmd(&["create", "--bundle", &sb.arg(), &stuck])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the hook never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Meanwhile the pod's other members answer at once.
    let timed = |args: &[&str]| {
        let t = Instant::now();
        let out = env.ok(args);
        (t.elapsed(), out)
    };
    let (t, out) = timed(&["exec", &a, "echo", "hello"]);
    assert_eq!(out, "hello\n");
    assert!(t < Duration::from_secs(5), "exec took {t:?}");
    let (t, _) = timed(&["state", &a]);
    assert!(t < Duration::from_secs(5), "state took {t:?}");
    let m = env.id("m");
    let mb = member(&env, &root, &["sleep", "1000"], cri(&root));
    let (t, _) = timed(&["run", "-d", "--bundle", &mb.arg(), &m]);
    assert!(
        t < Duration::from_secs(5),
        "another member's run took {t:?}"
    );
    let (t, _) = timed(&["kill", &a, "KILL"]);
    assert!(t < Duration::from_secs(5), "kill took {t:?}");
    env.wait_status(&a, "stopped", 5);
    // The stuck create is still waiting for its hook.
    assert!(creating.try_wait().unwrap().is_none());
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(creating.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = creating.wait();
    for id in [&stuck, &a, &m, &root] {
        env.ok(&["delete", "--force", id]);
    }
    for id in [&stuck, &a, &m, &root] {
        env.assert_no_leftovers(id);
    }
}
