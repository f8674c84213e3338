//! The command surface clients use besides the lifecycle: hooks, exec with
//! pid-file waiters, console sockets, kill --all, pause/resume, update, and
//! the errors of bad input.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A hook script that records its stage, the state it got on stdin and the
/// namespaces it runs in.
fn hook_script(dir: &std::path::Path, log: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("hook.sh");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nstate=$(cat)\necho \"$1 mnt=$(readlink /proc/self/ns/mnt) net=$(readlink /proc/self/ns/net) state=$state\" >> {}\nexit ${{2:-0}}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

fn hook(path: &std::path::Path, stage: &str, code: u32) -> serde_json::Value {
    json!({"path": path.to_str().unwrap(), "args": ["hook", stage, code.to_string()]})
}

fn lines_of(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn hooks_run_at_their_times_in_their_namespaces() {
    require_root();
    let env = Env::new("hooks");
    let log = env.dir.join("hooks.log");
    let script = hook_script(&env.dir, &log);
    let b = env.bundle(&["sleep", "1000"]);
    // startContainer runs inside the container: its script and log live in
    // the rootfs.
    let inner_log = b.rootfs().join("hooks.log");
    let inner = hook_script(&b.rootfs(), std::path::Path::new("/hooks.log"));
    let _ = inner;
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["hooks"] = json!({
            "prestart": [hook(&script, "prestart", 0)],
            "createRuntime": [hook(&script, "createRuntime", 0)],
            "createContainer": [hook(&script, "createContainer", 0)],
            "startContainer": [{"path": "/hook.sh", "args": ["hook", "startContainer"]}],
            "poststart": [hook(&script, "poststart", 0)],
            "poststop": [hook(&script, "poststop", 0)]
        });
    });
    let id = env.id("hooks");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .display()
        .to_string();
    env.ok(&["create", "--bundle", &b.arg(), &id]);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let cont_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .display()
        .to_string();
    let cont_net = std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .display()
        .to_string();
    let lines = lines_of(&log);
    let stages: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        stages,
        ["prestart", "createRuntime", "createContainer"],
        "{lines:?}"
    );
    for l in &lines[..2] {
        assert!(
            l.contains(&format!("mnt={host_mnt}")),
            "runtime namespace: {l}"
        );
        assert!(
            l.contains(&format!("\"pid\":{pid}")),
            "state carries the pid: {l}"
        );
    }
    assert!(
        lines[2].contains(&format!("mnt={cont_mnt}")),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains(&format!("net={cont_net}")),
        "{}",
        lines[2]
    );
    assert!(
        lines[0].contains(&format!("\"id\":\"{id}\"")),
        "{}",
        lines[0]
    );

    env.ok(&["start", &id]);
    let lines = lines_of(&log);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[3].starts_with("poststart") && lines[3].contains(&format!("mnt={host_mnt}")));
    assert!(lines[3].contains("\"status\":\"running\""), "{}", lines[3]);
    // startContainer runs in the init after `start` has released it (and
    // returned, as runc's does): wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines_of(&inner_log).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let inside = lines_of(&inner_log);
    assert_eq!(inside.len(), 1, "{inside:?}");
    assert!(
        inside[0].starts_with("startContainer") && inside[0].contains(&format!("mnt={cont_mnt}"))
    );

    env.ok(&["delete", "--force", &id]);
    let lines = lines_of(&log);
    assert!(
        lines[4].starts_with("poststop") && lines[4].contains("\"status\":\"stopped\""),
        "{lines:?}"
    );
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn failing_hooks() {
    require_root();
    let env = Env::new("hookfail");
    let log = env.dir.join("hooks.log");
    let script = hook_script(&env.dir, &log);
    for stage in ["prestart", "createRuntime", "createContainer"] {
        let b = env.bundle(&["sleep", "1000"]);
        b.edit(|c| c["hooks"] = json!({stage: [hook(&script, stage, 3)]}));
        let id = env.id("hookfail");
        let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
        assert_one_line(&err);
        assert!(
            err.contains(stage) && err.contains("exit status 3"),
            "{err}"
        );
        env.assert_no_leftovers(&id);
    }
    // startContainer: as with runc, `start` returns once the init is
    // released; the hook's failure stops the container and is reported on
    // the container's stderr.
    let b = env.bundle(&["sleep", "1000"]);
    b.edit(|c| c["hooks"] = json!({"startContainer": [{"path": "/bin/false"}]}));
    let id = env.id("hookfail");
    let errlog = env.dir.join("hookfail.err");
    let mut c = env.cmd(&["create", "--bundle", &b.arg(), &id]);
    // The container inherits create's stderr: a file of ours.
    c.stdout(std::process::Stdio::null());
    c.stderr(std::fs::File::create(&errlog).unwrap());
    assert!(wait_child(c.spawn().unwrap(), Duration::from_secs(30)).success());
    env.ok(&["start", &id]);
    env.wait_status(&id, "stopped", 10);
    let err = std::fs::read_to_string(&errlog).unwrap();
    assert!(err.contains("startContainer"), "{err}");
    env.ok(&["delete", &id]);
    // poststart and poststop failures are logged, not fatal.
    let b = env.bundle(&["sleep", "1000"]);
    b.edit(|c| {
        c["hooks"] = json!({"poststart": [hook(&script, "poststart", 4)], "poststop": [hook(&script, "poststop", 5)]})
    });
    let id = env.id("hookfail");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    assert_eq!(env.status(&id), "running");
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}

/// Run `husk exec -d --pid-file` under a subreaper (python3), as conmon and
/// containerd's shim do, and report the exit status of the pid-file's
/// process.
fn exec_detached_status(env: &Env, id: &str, args: &[&str]) -> (i32, String) {
    let pidfile = env.dir.join(unique("exec.pid"));
    let mut argv = vec![
        HUSK.to_string(),
        "--root".into(),
        env.root.display().to_string(),
        "exec".into(),
        "-d".into(),
        "--pid-file".into(),
        pidfile.display().to_string(),
        id.to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let script = format!(
        r#"
import ctypes, json, os, subprocess, sys
libc = ctypes.CDLL(None)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
subprocess.run({argv}, check=True, stdin=subprocess.DEVNULL)
pid = int(open({pf:?}).read())
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st), pid)
"#,
        argv = serde_json::to_string(&argv).unwrap(),
        pf = pidfile.display().to_string(),
    );
    let mut c = std::process::Command::new("python3");
    c.args(["-c", &script]);
    let out = run_bounded(c, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut f = text.split_whitespace();
    (
        f.next().unwrap().parse().unwrap(),
        f.next().unwrap().to_string(),
    )
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn exec_pid_file_waiter_exits_with_the_process_status() {
    require_root();
    let env = Env::new("execwait");
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("ew");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let (code, _) = exec_detached_status(&env, &id, &["sh", "-c", "sleep 0.2; exit 7"]);
    assert_eq!(code, 7);
    // Foreground exec exits with the status too, signals as 128+n.
    let o = env.husk(&["exec", &id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Killing the waiter takes its process down with it.
    let pidfile = env.dir.join("w.pid");
    env.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "999",
    ]);
    let waiter: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let count = |env: &Env| -> usize {
        serde_json::from_str::<Vec<i64>>(&env.ok(&["ps", "--format", "json", &id]))
            .unwrap()
            .len()
    };
    assert_eq!(count(&env), 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(waiter),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&env) != 1 {
        assert!(
            Instant::now() < deadline,
            "the exec'd process outlived its waiter"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}

/// Receive the pty master from a console socket connection, as runc's
/// clients do: one message, the pty's name as data, the fd as SCM_RIGHTS.
fn recv_master(listener: &UnixListener) -> (String, OwnedFd) {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(v) = c {
            fd = v.first().copied();
        }
    }
    let n = msg.bytes;
    let name = String::from_utf8_lossy(&buf[..n]).into_owned();
    // SAFETY: SCM_RIGHTS gave us this descriptor.
    (name, unsafe {
        OwnedFd::from_raw_fd(fd.expect("no descriptor"))
    })
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn console_socket_gets_the_pty_master() {
    require_root();
    let env = Env::new("console");
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let b = env.bundle(&["sh", "-c", "tty; read line; echo got:$line"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let id = env.id("con");
    let create = env
        .cmd(&[
            "create",
            "--bundle",
            &b.arg(),
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (name, master) = recv_master(&listener);
    assert!(wait_child(create, Duration::from_secs(20)).success());
    assert!(name.starts_with("/dev/pts/"), "{name}");
    env.ok(&["start", &id]);
    let mut m = std::fs::File::from(master);
    m.write_all(b"hello\n").unwrap();
    // Non-blocking reads against a deadline: a missing answer fails the
    // test instead of hanging it.
    nix::fcntl::fcntl(
        m.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("got:hello") {
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&got)
        );
        match m.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("/dev/pts/0") && text.contains("got:hello"),
        "{text}"
    );
    env.wait_status(&id, "stopped", 10);
    env.ok(&["delete", &id]);

    // A terminal with no console socket: husk is the console, whatever its
    // standard input is (as runc); only a detached process cannot have one.
    let id = env.id("con");
    let err = env.fails(&["exec", "--tty", &id, "true"]);
    assert!(err.contains("does not exist"), "{err}");
    let b2 = env.bundle(&["sleep", "1000"]);
    let id = env.id("con");
    env.ok(&["run", "-d", "--bundle", &b2.arg(), &id]);
    assert_eq!(env.ok(&["exec", "--tty", &id, "echo", "tty"]), "tty\r\n");
    let err = env.fails(&["exec", "--tty", "--detach", &id, "true"]);
    assert_one_line(&err);
    assert!(err.contains("--console-socket"), "{err}");
    env.ok(&["delete", "--force", &id]);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn kill_all_pause_resume_update() {
    require_root();
    let env = Env::new("killall");
    let b = env.bundle(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = env.id("ka");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let ps = |env: &Env| -> Vec<i64> {
        serde_json::from_str(&env.ok(&["ps", "--format", "json", &id])).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ps(&env).len() < 3 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let table = env.ok(&["ps", &id]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    assert_eq!(table.lines().count(), 4, "{table}");

    env.ok(&["pause", &id]);
    assert_eq!(env.status(&id), "paused");
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["status"], "paused");
    let freezer =
        std::fs::read_to_string(format!("/sys/fs/cgroup/freezer/husk/{id}/freezer.state")).unwrap();
    assert_eq!(freezer.trim(), "FROZEN");
    env.ok(&["resume", &id]);
    assert_eq!(env.status(&id), "running");

    env.ok(&[
        "update",
        "--memory",
        "48m",
        "--pids-limit",
        "30",
        "--cpu-shares",
        "256",
        &id,
    ]);
    let read = |ctrl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/husk/{id}/{f}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max"), "30");
    assert_eq!(read("cpu", "cpu.shares"), "256");
    let res = env.dir.join("res.json");
    std::fs::write(&res, r#"{"pids": {"limit": 40}}"#).unwrap();
    env.ok(&["update", "--resources", res.to_str().unwrap(), &id]);
    assert_eq!(read("pids", "pids.max"), "40");

    // TERM to pid 1 without a handler is ignored, as Linux does.
    env.ok(&["kill", &id, "TERM"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.status(&id), "running");
    env.ok(&["kill", "--all", &id, "KILL"]);
    env.wait_status(&id, "stopped", 10);
    env.ok(&["delete", &id]);
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn bad_input_on_the_client_surface() {
    require_root();
    let env = Env::new("badsurf");
    let log = env.dir.join("log.json");
    let logged = |env: &Env, args: &[&str]| -> (String, serde_json::Value) {
        let mut full = vec!["--log", log.to_str().unwrap(), "--log-format", "json"];
        full.extend_from_slice(args);
        let err = env.fails(&full);
        assert_one_line(&err);
        let text = std::fs::read_to_string(&log).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["level"], "error");
        (err, last)
    };
    let ghost = env.id("ghost");
    for cmd in [
        vec!["start", &ghost],
        vec!["kill", &ghost],
        vec!["exec", &ghost, "true"],
        vec!["ps", &ghost],
        vec!["pause", &ghost],
        vec!["events", "--stats", &ghost],
        vec!["update", "--memory", "1m", &ghost],
    ] {
        let (err, last) = logged(&env, &cmd);
        assert!(
            err.contains(&format!("container \"{ghost}\" does not exist")),
            "{cmd:?}: {err}"
        );
        assert!(last["msg"].as_str().unwrap().contains(&ghost));
    }

    let b = env.bundle(&["true"]);
    let id = env.id("stopped");
    env.ok(&["run", "--keep", "--bundle", &b.arg(), &id]);
    let (err, _) = logged(&env, &["exec", &id, "true"]);
    assert!(err.contains("stopped"), "{err}");
    let (err, _) = logged(&env, &["update", "--pids-limit", "5", &id]);
    assert!(err.contains("stopped"), "{err}");
    let (err, _) = logged(&env, &["kill", &id, "NOSUCHSIG"]);
    assert!(err.contains("NOSUCHSIG"), "{err}");

    let b = env.bundle(&["sleep", "1000"]);
    let id2 = env.id("live");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id2]);
    let bad = env.dir.join("process.json");
    std::fs::write(&bad, "{\"args\": 42}").unwrap();
    let (err, _) = logged(&env, &["exec", "--process", bad.to_str().unwrap(), &id2]);
    assert!(
        err.contains("process.json") || err.contains("process file"),
        "{err}"
    );
    let (err, _) = logged(
        &env,
        &[
            "exec",
            "--console-socket",
            "/nonexistent/sock",
            "-t",
            &id2,
            "true",
        ],
    );
    assert!(err.contains("/nonexistent/sock"), "{err}");
    let (err, _) = logged(&env, &["kill", &id2, "SIGNOPE"]);
    assert!(err.contains("SIGNOPE"), "{err}");
    // Nothing changed: still running, one process.
    assert_eq!(env.status(&id2), "running");
    let ps: Vec<i64> = serde_json::from_str(&env.ok(&["ps", "--format", "json", &id2])).unwrap();
    assert_eq!(ps.len(), 1);
    env.ok(&["delete", "--force", &id2]);
    env.ok(&["delete", &id]);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn container_that_died_or_lost_its_sandbox_deletes_cleanly() {
    require_root();
    let env = Env::new("died");
    let b = env.bundle(&["sleep", "1000"]);
    let log = env.dir.join("hooks.log");
    let script = hook_script(&env.dir, &log);
    b.edit(|c| c["hooks"] = json!({"poststop": [hook(&script, "poststop", 0)]}));
    let id = env.id("died");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let boot = env.runtime_processes()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(boot),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    env.wait_status(&id, "stopped", 10);
    env.ok(&["delete", &id]);
    assert!(lines_of(&log).iter().any(|l| l.starts_with("poststop")));
    env.assert_no_leftovers(&id);
}

#[test]
fn features_document() {
    let out = std::process::Command::new(HUSK)
        .arg("features")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
    let hooks = v["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 6);
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("user")));
    assert!(v["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("CAP_SYS_ADMIN")));
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    assert!(v["linux"]["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .contains(&json!("SCMP_ACT_NOTIFY")));
    assert_eq!(v["linux"]["selinux"]["enabled"], false);
    assert!(v["mountOptions"]
        .as_array()
        .unwrap()
        .contains(&json!("rro")));
}
