//! The runtime core, driven through the real binary as root: lifecycle,
//! exit statuses, executable lookup, isolation seen from inside, and bad
//! input that must fail cleanly.

mod common;

use common::*;
use serde_json::json;

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn lifecycle_create_start_kill_delete() {
    require_root();
    let env = Env::new("life");
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("life");
    let pidfile = env.dir.join("pid");
    env.ok(&[
        "create",
        "--bundle",
        &b.arg(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.arg().as_str());
    assert_eq!(st["ociVersion"], husk_oci::OCI_VERSION);
    assert!(st["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(st["owner"], "root");
    assert_eq!(st["rootfs"], b.rootfs().to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // The pid file names the sandbox process, which exists.
    let boot: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{boot}")).exists());

    let list = env.ok(&["list"]);
    assert!(list.lines().next().unwrap().starts_with("ID"));
    assert!(list.contains(&id) && list.contains("created"), "{list}");
    let json_list: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(json_list[0]["id"], id.as_str());
    assert_eq!(env.ok(&["list", "-q"]).trim(), id);

    env.ok(&["start", &id]);
    assert_eq!(env.status(&id), "running");
    // The process is the user's program now.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");

    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped", 10);
    assert_eq!(env.state(&id)["pid"], 0);
    env.ok(&["delete", &id]);
    let err = env.fails(&["state", &id]);
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(env.ok(&["list", "-q"]).trim(), "");
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn exit_statuses_pass_through() {
    require_root();
    let env = Env::new("exit");
    for (args, want) in [
        (vec!["true"], 0),
        (vec!["sh", "-c", "exit 123"], 123),
        // A child killed by a signal: the shell reports 128+signal itself.
        (vec!["sh", "-c", "sleep 100 & kill -9 $!; wait $!"], 137),
    ] {
        let b = env.bundle(&args);
        let id = env.id("exit");
        let out = env.husk(&["run", "--bundle", &b.arg(), &id]);
        assert_eq!(
            out.status.code(),
            Some(want),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.assert_no_leftovers(&id);
    }
    // The container's init itself killed by a signal: run exits 128+9.
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("exit");
    let child = env
        .cmd(&["run", "--bundle", &b.arg(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.wait_status(&id, "running", 10);
    env.ok(&["kill", &id, "SIGKILL"]);
    let st = wait_child(child, std::time::Duration::from_secs(20));
    assert_eq!(st.code(), Some(137));
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn stdio_is_the_callers() {
    require_root();
    let env = Env::new("stdio");
    let b = env.bundle(&["sh", "-c", "echo out; echo err >&2; read x; echo got $x"]);
    let id = env.id("stdio");
    let mut cmd = env.cmd(&["run", "--bundle", &b.arg(), &id]);
    cmd.stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::piped());
    cmd.stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
    }
    let out = wait_bounded(child, std::time::Duration::from_secs(30));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\ngot hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn executable_lookup() {
    require_root();
    let env = Env::new("exe");
    for args in [vec!["/bin/true"], vec!["true"]] {
        let b = env.bundle(&args);
        let id = env.id("exe");
        env.ok(&["run", "--bundle", &b.arg(), &id]);
    }
    // A missing file fails at create, names the program, and leaves nothing.
    let b = env.bundle(&["/bin/nope"]);
    let id = env.id("exe");
    let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
    assert_one_line(&err);
    assert!(
        err.contains(&format!(
            "create {id}: exec \"/bin/nope\": no such file or directory"
        )),
        "{err}"
    );
    env.assert_no_leftovers(&id);
    let b = env.bundle(&["nope"]);
    let id = env.id("exe");
    let err = env.fails(&["run", "--bundle", &b.arg(), &id]);
    assert_one_line(&err);
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn isolation_seen_from_inside() {
    require_root();
    let env = Env::new("iso");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let host_pid = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let b = env.bundle(&[
        "sh",
        "-c",
        "echo pid=$$; echo host=$(hostname); echo mnt=$(readlink /proc/self/ns/mnt); \
         echo pidns=$(readlink /proc/self/ns/pid); cat /marker; \
         if touch /newfile 2>/dev/null; then echo rw; else echo ro; fi; \
         echo nprocs=$(ls -d /proc/[0-9]* | wc -l)",
    ]);
    std::fs::write(b.rootfs().join("marker"), "marker-from-bundle\n").unwrap();
    let id = env.id("iso");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("host=husk-test\n"), "{out}");
    assert!(
        !out.contains(&format!("mnt={}", host_mnt.display())),
        "{out}"
    );
    assert!(
        !out.contains(&format!("pidns={}", host_pid.display())),
        "{out}"
    );
    assert!(out.contains("marker-from-bundle"), "{out}");
    assert!(out.contains("\nro\n"), "root should be read-only: {out}");
    // Only the container's own few processes are visible.
    let n: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("nprocs="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(n <= 5, "{out}");
    assert!(!b.rootfs().join("newfile").exists());
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn bad_input_fails_cleanly() {
    require_root();
    let env = Env::new("bad");
    // Invalid id.
    let b = env.bundle(&["true"]);
    let err = env.fails(&["create", "--bundle", &b.arg(), "a/b"]);
    assert_one_line(&err);
    assert!(err.contains("invalid container id \"a/b\""), "{err}");

    // Missing bundle.
    let id = env.id("bad");
    let missing = env.dir.join("no-such-bundle");
    let err = env.fails(&["create", "--bundle", missing.to_str().unwrap(), &id]);
    assert_one_line(&err);
    assert!(
        err.contains("no-such-bundle") && err.contains("no such file"),
        "{err}"
    );
    env.assert_no_leftovers(&id);

    // Missing config.json.
    let empty = env.dir.join("empty-bundle");
    std::fs::create_dir_all(&empty).unwrap();
    let err = env.fails(&["create", "--bundle", empty.to_str().unwrap(), &id]);
    assert_one_line(&err);
    assert!(
        err.contains("config.json") && err.contains("no such file"),
        "{err}"
    );
    env.assert_no_leftovers(&id);

    // Malformed config.json.
    let bad = env.bundle(&["true"]);
    std::fs::write(bad.path.join("config.json"), "{ not json").unwrap();
    let err = env.fails(&["create", "--bundle", &bad.arg(), &id]);
    assert_one_line(&err);
    assert!(
        err.contains("parse") && err.contains("config.json"),
        "{err}"
    );
    env.assert_no_leftovers(&id);

    // SELinux label.
    let se = env.bundle(&["true"]);
    se.edit(|c| c["process"]["selinuxLabel"] = json!("system_u:system_r:svirt_lxc_net_t:s0"));
    let err = env.fails(&["create", "--bundle", &se.arg(), &id]);
    assert_one_line(&err);
    assert!(err.contains("SELinux is not supported"), "{err}");
    env.assert_no_leftovers(&id);

    // Duplicate id, start twice, delete of a running container.
    let run = env.bundle(&["sleep", "1000"]);
    let id2 = env.id("bad");
    env.ok(&["create", "--bundle", &run.arg(), &id2]);
    let err = env.fails(&["create", "--bundle", &run.arg(), &id2]);
    assert_one_line(&err);
    assert!(err.contains("already exists"), "{err}");
    env.ok(&["start", &id2]);
    let err = env.fails(&["start", &id2]);
    assert_one_line(&err);
    assert!(err.contains("running"), "{err}");
    let err = env.fails(&["delete", &id2]);
    assert_one_line(&err);
    assert!(
        err.contains("not stopped") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(env.status(&id2), "running");
    env.ok(&["delete", "--force", &id2]);
    env.assert_no_leftovers(&id2);
    // A forced delete of a container that is gone succeeds (containerd
    // deletes twice).
    env.ok(&["delete", "--force", &id2]);
    let err = env.fails(&["delete", &id2]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn json_log_lines_for_errors() {
    require_root();
    let env = Env::new("log");
    let log = env.dir.join("log.json");
    let b = env.bundle(&["/bin/nope"]);
    let id = env.id("log");
    let out = env.husk(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        &b.arg(),
        &id,
    ]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("/bin/nope"),
        "{text}"
    );
    assert!(last["time"].as_str().unwrap().len() >= 20);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn file_access_direct_and_network_none() {
    require_root();
    let mut env = Env::new("direct");
    env.extra_flags = vec!["--file-access=direct".into(), "--network=none".into()];
    let b = env.bundle(&[
        "sh",
        "-c",
        "cat /etc/hostname-bind; ip -o link 2>/dev/null | wc -l; ls /sys/class/net",
    ]);
    let src = env.dir.join("hostname-src");
    std::fs::write(&src, "bound-file\n").unwrap();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/etc/hostname-bind", "type": "bind",
            "source": src.to_str().unwrap(), "options": ["rbind", "ro"]
        }))
    });
    let id = env.id("direct");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    assert!(out.contains("bound-file"), "{out}");
    assert!(
        out.trim_end().ends_with("lo"),
        "only loopback expected: {out}"
    );
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn overlay_keeps_the_image_unchanged() {
    require_root();
    for access in ["proxy", "direct"] {
        let mut env = Env::new("overlay");
        env.extra_flags = vec!["--overlay".into(), format!("--file-access={access}")];
        let b = env.bundle(&[
            "sh",
            "-c",
            "echo data > /etc/new-file && cat /etc/new-file && rm /bin/cat && echo removed",
        ]);
        b.edit(|c| c["root"]["readonly"] = json!(false));
        let id = env.id("ov");
        let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
        assert_eq!(out, "data\nremoved\n", "{access}");
        assert!(!b.rootfs().join("etc/new-file").exists(), "{access}");
        assert!(b.rootfs().join("bin/cat").exists(), "{access}");
        env.assert_no_leftovers(&id);
    }
}
