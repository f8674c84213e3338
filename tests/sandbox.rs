//! The sandbox inside the sandbox: what clients build on the pids husk
//! gives them (pid files of root containers, exec'd processes and pod
//! members), namespaces named by those pids as containerd's CRI names them,
//! a rootfs under a shared mount, and create-time failures.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

fn ns(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn cgroup_file(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()
}

/// How many pid namespaces deep `pid` is (NSpid has one entry per level).
fn pidns_depth(pid: i64) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .map(|v| v.split_whitespace().count())
        })
        .unwrap_or(0)
}

/// The facts a client may rely on for a pid husk gave it, checked against
/// the container process `real` it stands for.
fn assert_pid_facts(given: i64, real: i64, what: &str) {
    let me = std::process::id() as i64;
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns(given, kind),
            ns(real, kind),
            "{what}: pid {given} is not in the container's {kind} namespace"
        );
    }
    assert_ne!(
        ns(given, "pid"),
        ns(me, "pid"),
        "{what}: pid {given} is in the host's pid namespace"
    );
    // The container's process is in the given pid's pid namespace, or in
    // one below it: visible from it.
    assert!(
        pidns_depth(real) >= pidns_depth(given) && pidns_depth(given) >= 2,
        "{what}: the container's process {real} is not visible from pid {given}'s pid namespace"
    );
    // Every hierarchy, the v1 controllers and the unified one ("0::").
    let (g, r) = (cgroup_file(given), cgroup_file(real));
    assert!(
        g.lines().any(|l| l.starts_with("0::")) && g.lines().count() > 1,
        "{g}"
    );
    assert_eq!(
        g, r,
        "{what}: pid {given} is not in the container's cgroups"
    );
}

/// A subreaper (as conmon and containerd's shim are) that runs a husk
/// command writing a pid file, tells us the pid, waits until we say go, then
/// waits for that pid and reports its exit code.
struct Subreaper {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Subreaper {
    fn start(argv: &[String], pid_file: &std::path::Path) -> (Subreaper, i64) {
        let script = format!(
            r#"
import ctypes, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
# Not a pipe: the container inherits husk's stdio and holds it.
err = open({pf:?} + ".err", "w+")
r = subprocess.run({argv}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
if r.returncode != 0:
    err.seek(0)
    print("FAILED", err.read().strip().replace("\n", " "), flush=True); sys.exit(1)
pid = int(open({pf:?}).read())
print(pid, os.getppid() and os.getpid(), flush=True)
sys.stdin.readline()
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st), flush=True)
"#,
            argv = serde_json::to_string(argv).unwrap(),
            pf = pid_file.display().to_string(),
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(!line.starts_with("FAILED"), "{line}");
        let mut f = line.split_whitespace();
        let pid: i64 = f.next().unwrap().parse().unwrap();
        let me: i64 = f.next().unwrap().parse().unwrap();
        // The pid is the subreaper's child once husk has exited.
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s[s.rfind(')')? + 2..]
                    .split_whitespace()
                    .nth(1)?
                    .parse::<i64>()
                    .ok()
            });
        assert_eq!(ppid, Some(me), "pid {pid} is not the caller's child");
        (Subreaper { child, out }, pid)
    }

    /// Let it wait; returns the exit code it saw.
    fn finish(mut self) -> i32 {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let _ = wait_child(self.child, Duration::from_secs(20));
        line.trim().parse().unwrap_or(-1)
    }
}

fn husk_argv(env: &Env, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        HUSK.to_string(),
        "--root".into(),
        env.root.display().to_string(),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// The pid a stand-in stands for (it keeps a pidfd of it at fd 100).
fn stands_for(stand_in: i64) -> i64 {
    let info = std::fs::read_to_string(format!("/proc/{stand_in}/fdinfo/100")).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn pids_given_to_callers_are_in_the_container() {
    require_root();
    let env = Env::new("pidfacts");

    // A root container: its pid file names boot.
    let b = env.bundle(&["sh", "-c", "sleep 2; exit 7"]);
    let id = env.id("root");
    let pf = env.dir.join("root.pid");
    let (s, pid) = Subreaper::start(
        &husk_argv(
            &env,
            &[
                "run",
                "-d",
                "--pid-file",
                pf.to_str().unwrap(),
                "--bundle",
                &b.arg(),
                &id,
            ],
        ),
        &pf,
    );
    let init = env.state(&id)["pid"].as_i64().unwrap();
    assert_ne!(pid, init, "the state's pid is the container's init");
    assert_pid_facts(pid, init, "root container");
    // A hook that enters the state's pid sees the container's mounts.
    assert_ne!(ns(init, "mnt"), ns(std::process::id() as i64, "mnt"));
    assert_eq!(
        s.finish(),
        7,
        "the root container's pid exits with its status"
    );
    env.wait_status(&id, "stopped", 10);
    env.ok(&["delete", &id]);

    // An exec'd process and a pod member: stand-ins.
    let root = env.id("pod");
    let rb = env.bundle(&["sleep", "1000"]);
    rb.edit(|c| c["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"}));
    env.ok(&["run", "-d", "--bundle", &rb.arg(), &root]);

    let pf = env.dir.join("exec.pid");
    let (s, pid) = Subreaper::start(
        &husk_argv(
            &env,
            &[
                "exec",
                "-d",
                "--pid-file",
                pf.to_str().unwrap(),
                &root,
                "sh",
                "-c",
                "sleep 2; exit 5",
            ],
        ),
        &pf,
    );
    let real = stands_for(pid);
    assert!(
        std::fs::read_to_string(format!("/proc/{real}/cmdline"))
            .unwrap()
            .contains("sleep 2"),
        "the stand-in stands for the exec'd shell"
    );
    assert_pid_facts(pid, real, "exec'd process");
    assert_eq!(
        s.finish(),
        5,
        "the exec'd process's pid exits with its status"
    );

    let m = env.id("member");
    let mb = env.bundle(&["sh", "-c", "sleep 2; exit 3"]);
    mb.edit(|c| {
        c["annotations"] = json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": root
        })
    });
    let pf = env.dir.join("member.pid");
    let (s, pid) = Subreaper::start(
        &husk_argv(
            &env,
            &[
                "run",
                "-d",
                "--pid-file",
                pf.to_str().unwrap(),
                "--bundle",
                &mb.arg(),
                &m,
            ],
        ),
        &pf,
    );
    let minit = env.state(&m)["pid"].as_i64().unwrap();
    assert_eq!(stands_for(pid), minit);
    assert_pid_facts(pid, minit, "pod member");
    assert_ne!(
        cgroup_file(pid),
        cgroup_file(init_of(&env, &root)),
        "the member's pid is in the member's cgroup, not the pod's root container's"
    );
    assert_eq!(s.finish(), 3, "the member's pid exits with its status");
    env.wait_status(&m, "stopped", 10);
    env.ok(&["delete", &m]);
    env.ok(&["delete", "--force", &root]);
    env.assert_no_leftovers(&root);
}

fn init_of(env: &Env, id: &str) -> i64 {
    env.state(id)["pid"].as_i64().unwrap()
}

/// What containerd's CRI writes into a pod member's spec: the sandbox's
/// namespaces by the pid from the sandbox's pid file.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn pod_member_joins_the_namespaces_named_by_the_sandbox_pid() {
    require_root();
    let env = Env::new("crins");
    let root = env.id("pod");
    let rb = env.bundle(&["sleep", "1000"]);
    rb.edit(|c| {
        c["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"});
        c["hostname"] = json!("podhost");
    });
    let pf = env.dir.join("sandbox.pid");
    env.ok(&[
        "run",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        "--bundle",
        &rb.arg(),
        &root,
    ]);
    let sandbox_pid: i64 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let root_init = init_of(&env, &root);
    let me = std::process::id() as i64;

    for shared_pid in [false, true] {
        let m = env.id("member");
        let mb = env.bundle(&[
            "sh",
            "-c",
            "for n in net ipc uts pid; do readlink /proc/self/ns/$n; done; hostname; echo ---; ps -o pid,args",
        ]);
        mb.edit(|c| {
            c["annotations"] = json!({
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.sandbox-id": root
            });
            let mut nss = vec![
                json!({"type": "mount"}),
                json!({"type": "network", "path": format!("/proc/{sandbox_pid}/ns/net")}),
                json!({"type": "ipc", "path": format!("/proc/{sandbox_pid}/ns/ipc")}),
                json!({"type": "uts", "path": format!("/proc/{sandbox_pid}/ns/uts")}),
            ];
            nss.push(if shared_pid {
                json!({"type": "pid", "path": format!("/proc/{sandbox_pid}/ns/pid")})
            } else {
                json!({"type": "pid"})
            });
            c["linux"]["namespaces"] = json!(nss);
            c["hostname"] = json!("podhost");
        });
        // A foreground run: it deletes the member when it exits.
        let out = env.ok(&["run", "--bundle", &mb.arg(), &m]);
        let (nss, ps) = out.split_once("---\n").unwrap();
        let lines: Vec<&str> = nss.lines().collect();
        for (i, kind) in ["net", "ipc", "uts"].iter().enumerate() {
            assert_eq!(lines[i], ns(root_init, kind), "{kind}: {out}");
            assert_ne!(lines[i], ns(me, kind), "{kind} is the host's: {out}");
        }
        assert_ne!(lines[3], ns(me, "pid"), "pid is the host's: {out}");
        assert_eq!(lines[4], "podhost");
        let procs: Vec<&str> = ps.lines().skip(1).collect();
        if shared_pid {
            assert_eq!(lines[3], ns(root_init, "pid"), "{out}");
            // The pod's processes (its first process as pid 1) and its own;
            // nothing of the host, nothing of husk's.
            assert!(
                procs
                    .iter()
                    .any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep 1000")),
                "{ps}"
            );
            for l in &procs {
                assert!(
                    l.contains("sleep 1000") || l.contains("sh -c") || l.contains("ps -o"),
                    "not a process of the pod: {l}\n{ps}"
                );
            }
        } else {
            assert_ne!(lines[3], ns(root_init, "pid"), "{out}");
            assert!(procs.iter().all(|l| !l.contains("sleep 1000")), "{ps}");
        }
    }
    env.ok(&["delete", "--force", &root]);
    env.assert_no_leftovers(&root);
}

/// Docker's data root and every systemd host's / are shared mounts: a
/// rootfs below one must run, and no mount of the container's may appear on
/// the host, during or after, also after a failed create.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn rootfs_under_a_shared_mount_leaves_the_host_untouched() {
    require_root();
    let env = Env::new("shared");
    let top = env.dir.join("shared");
    std::fs::create_dir_all(&top).unwrap();
    let good = Bundle::new(&top.join("good"));
    good.edit(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let bad = Bundle::new(&top.join("bad"));
    bad.edit(|c| c["process"]["args"] = json!(["/no/such/program"]));
    let id = env.id("sh");
    let id2 = env.id("shbad");
    let h = format!("{HUSK} --root {}", env.root.display());
    let script = format!(
        r#"set -e
mount --make-rshared /
mount --bind {top} {top}
mount --make-shared {top}
count() {{ grep -c . /proc/self/mountinfo; }}
before=$(count)
{h} run -d --bundle {good} {id}
during=$(count)
{h} exec {id} true
{h} delete --force {id}
after=$(count)
if {h} create --bundle {bad} {id2} 2>/dev/null; then echo "bad create succeeded"; exit 1; fi
failed=$(count)
umount {top}
echo "$before $during $after $failed"
"#,
        top = top.display(),
        good = good.arg(),
        bad = bad.arg(),
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "unchanged", "sh", "-c", &script]);
    let out = run_bounded(c, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(counts.len(), 4, "{text}");
    assert!(
        counts.iter().all(|c| *c == counts[0]),
        "the host's mount table changed (before, during, after, after a failed create): {text}"
    );
    env.assert_no_leftovers(&id);
    env.assert_no_leftovers(&id2);
}

/// Everything that can fail before the program runs fails `create`, with
/// the cause in one line and nothing left behind.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn create_fails_when_a_capability_cannot_be_set() {
    require_root();
    // A capability this host's bounding set lacks (this VM lacks
    // CAP_SYS_RESOURCE), as `docker run --privileged` would ask for.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let names = [
        (24, "CAP_SYS_RESOURCE"),
        (25, "CAP_SYS_TIME"),
        (16, "CAP_SYS_MODULE"),
        (22, "CAP_SYS_BOOT"),
    ];
    let Some((_, cap)) = names.iter().find(|(bit, _)| bnd & (1u64 << bit) == 0) else {
        eprintln!("skipping: this host's bounding set has every capability tried");
        return;
    };
    let env = Env::new("capfail");
    let b = env.bundle(&["true"]);
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!(cap));
        }
    });
    let id = env.id("cap");
    let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
    assert_one_line(&err);
    assert!(err.contains("capabilities"), "{err}");
    env.assert_no_leftovers(&id);
    // A missing program, a bad cwd, a user that cannot be set: create.
    for (what, edit) in [
        ("program", json!({"args": ["/no/such/program"]})),
        ("cwd", json!({"cwd": "/etc/passwd"})),
    ] {
        let b = env.bundle(&["true"]);
        b.edit(|c| {
            for (k, v) in edit.as_object().unwrap() {
                c["process"][k] = v.clone();
            }
        });
        let id = env.id(what);
        let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
        assert_one_line(&err);
        env.assert_no_leftovers(&id);
    }
}
