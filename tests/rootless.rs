//! Rootless husk: a user other than root runs containers (husk's own
//! commands, and rootless podman with husk as its runtime). Each test is
//! run by root, makes a user of its own (useradd; /etc/subuid and
//! /etc/subgid entries only where the test grants them), drops to it with
//! setpriv for every husk or podman command, and removes the user, its
//! processes, its files and any cgroup it was delegated afterwards, even on
//! failure. A test that cannot make its user says SKIPPED.

mod common;

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Printed past the test harness's capture: a skip must be seen.
fn say(test: &str, m: &str) {
    let _ = writeln!(std::io::stderr(), "{test}: {m}");
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn check(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}\n{}",
        o.status,
        err(o),
        out(o)
    );
    out(o)
}

fn chown_r(path: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "chown -R {}", path.display());
}

/// A user made for one test, with a home and a runtime directory of its
/// own under the test's directory.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    runtime_dir: PathBuf,
    /// Subordinate ids granted ("start-end"), removed again on drop.
    subids: Option<String>,
    /// Delegated cgroup directories (one per hierarchy), removed on drop.
    delegated: Vec<PathBuf>,
    /// The husk binary, where the user can run it.
    husk: PathBuf,
}

impl TestUser {
    /// Make the user, or say why not (the test is then skipped).
    fn create(env: &Env, test: &str) -> Option<TestUser> {
        if !nix::unistd::geteuid().is_root() {
            say(test, "SKIPPED: needs root to make a test user");
            return None;
        }
        for tool in ["/usr/sbin/useradd", "/usr/sbin/userdel", "/usr/bin/setpriv"] {
            if !Path::new(tool).exists() {
                say(test, &format!("SKIPPED: {tool} is missing"));
                return None;
            }
        }
        // Short, unique, a valid user name.
        let name = format!(
            "hrl{}x{}",
            std::process::id(),
            unique("u").rsplit('-').next().unwrap()
        );
        // Short paths of its own (podman refuses a runroot longer than 50
        // characters), removed on drop.
        let base = PathBuf::from("/tmp").join(&name);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let home = base.join("home");
        let runtime_dir = base.join("run");
        // The test's directory is the user's way in.
        std::fs::set_permissions(
            &env.dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let o = Command::new("/usr/sbin/useradd")
            .args([
                "-M",
                "-s",
                "/bin/sh",
                "-K",
                "SUB_UID_COUNT=0",
                "-K",
                "SUB_GID_COUNT=0",
            ])
            .arg("-d")
            .arg(&home)
            .arg(&name)
            .output()
            .unwrap();
        if !o.status.success() {
            say(
                test,
                &format!("SKIPPED: useradd {name}: {}", err(&o).trim()),
            );
            return None;
        }
        let pw = nix::unistd::User::from_name(&name).ok().flatten();
        let Some(pw) = pw else {
            let _ = Command::new("/usr/sbin/userdel").arg(&name).status();
            say(
                test,
                &format!("SKIPPED: user {name} not found after useradd"),
            );
            return None;
        };
        for d in [&home, &runtime_dir] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
            chown_r(d, pw.uid.as_raw(), pw.gid.as_raw());
        }
        let mut u = TestUser {
            name,
            uid: pw.uid.as_raw(),
            gid: pw.gid.as_raw(),
            home,
            runtime_dir,
            subids: None,
            delegated: Vec::new(),
            husk: PathBuf::from(HUSK),
        };
        // The test binary's husk, if the user can reach it; a copy if not.
        let st = u
            .command("/bin/sh", &["-c", &format!("test -x {HUSK}")])
            .status();
        if !st.is_ok_and(|s| s.success()) {
            let copy = env.dir.join("husk");
            std::fs::copy(HUSK, &copy).unwrap();
            u.husk = copy;
        }
        Some(u)
    }

    /// Grant `count` subordinate uids and gids from `start`.
    fn grant_subids(&mut self, start: u32, count: u32) {
        let range = format!("{start}-{}", start + count - 1);
        let o = Command::new("/usr/sbin/usermod")
            .args(["--add-subuids", &range, "--add-subgids", &range, &self.name])
            .output()
            .unwrap();
        assert!(o.status.success(), "usermod: {}", err(&o));
        self.subids = Some(range);
    }

    /// `prog args` as this user, with a user's environment.
    fn command(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(prog)
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .current_dir(&self.home)
            .stdin(Stdio::null());
        c
    }

    /// husk as this user (default --root: $XDG_RUNTIME_DIR/husk).
    fn husk(&self, args: &[&str]) -> Output {
        let prog = self.husk.to_string_lossy().into_owned();
        run_bounded(self.command(&prog, args), Duration::from_secs(30))
    }

    fn ok(&self, args: &[&str]) -> String {
        check(&self.husk(args), &format!("husk {args:?}"))
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.husk(args);
        assert!(
            !o.status.success(),
            "husk {args:?} should have failed: {}",
            out(&o)
        );
        err(&o)
    }

    fn state_root(&self) -> PathBuf {
        self.runtime_dir.join("husk")
    }

    /// A `husk spec --rootless` busybox bundle owned by the user.
    fn bundle(&self, env: &Env, args: &[&str]) -> Bundle {
        let path = env.dir.join(unique("bundle"));
        let b = Bundle::new(&path);
        // Bundle::new wrote root's `husk spec`; the user writes its own.
        std::fs::remove_file(path.join("config.json")).unwrap();
        chown_r(&path, self.uid, self.gid);
        let p = path.to_string_lossy().into_owned();
        self.ok(&["spec", "--rootless", "--bundle", &p]);
        b.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(args);
            c["hostname"] = json!("husk-rootless");
            c["root"]["readonly"] = json!(false);
        });
        b
    }

    /// Processes running as this user (host uid), by pid.
    fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for ent in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = ent.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if std::fs::metadata(ent.path()).is_ok_and(|m| m.uid() == self.uid) {
                pids.push(pid);
            }
        }
        pids
    }

    /// A cgroup of each hierarchy delegated to the user the way systemd
    /// delegates one (the directory and its process files are the user's),
    /// with a leaf `cli` the user's commands run in. Returns its path below
    /// the hierarchies' roots.
    fn delegate_cgroup(&mut self) -> Option<String> {
        let name = format!("husk-rootless-{}", self.name);
        let mut made = 0;
        for h in ["unified", "memory", "pids", "freezer"] {
            let base = Path::new("/sys/fs/cgroup").join(h);
            if !base.join("cgroup.procs").exists() {
                continue;
            }
            let d = base.join(&name);
            let cli = d.join("cli");
            if std::fs::create_dir_all(&cli).is_err() {
                continue;
            }
            self.delegated.push(d.clone());
            for dir in [&d, &cli] {
                let _ = std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid));
                for f in [
                    "cgroup.procs",
                    "tasks",
                    "cgroup.subtree_control",
                    "cgroup.threads",
                ] {
                    let _ = std::os::unix::fs::chown(dir.join(f), Some(self.uid), Some(self.gid));
                }
            }
            made += 1;
        }
        (made > 0).then(|| format!("/{name}"))
    }

    /// As [`husk`](Self::husk), with the command placed in the delegated
    /// cgroup's leaf first (as a user's session is in systemd's).
    fn husk_in_delegated(&self, args: &[&str]) -> Output {
        let mut script = String::new();
        for d in &self.delegated {
            script += &format!("echo $$ > {}/cli/cgroup.procs && ", d.display());
        }
        script += "exec \"$@\"";
        let prog = self.husk.to_string_lossy().into_owned();
        let mut c = Command::new("/bin/sh");
        c.args(["-c", &script, "sh", "/usr/bin/setpriv"])
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--init-groups", "--", &prog])
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&self.home)
            .stdin(Stdio::null());
        run_bounded(c, Duration::from_secs(30))
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its containers, as the user; then whatever it still runs.
        if let Ok(rd) = std::fs::read_dir(self.state_root()) {
            for ent in rd.flatten() {
                let id = ent.file_name().to_string_lossy().into_owned();
                let _ = self.husk(&["delete", "--force", &id]);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.processes();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for d in self.delegated.iter().rev() {
            for sub in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if sub.path().is_dir() {
                    let _ = std::fs::remove_dir(sub.path());
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        if let Some(r) = &self.subids {
            let _ = Command::new("/usr/sbin/usermod")
                .args(["--del-subuids", r, "--del-subgids", r, &self.name])
                .output();
        }
        let _ = Command::new("/usr/sbin/userdel").arg(&self.name).output();
        if let Some(base) = self.home.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

/// A range of subordinate ids for a test, away from those useradd hands out
/// and different for each test process.
fn subid_base() -> u32 {
    400_000_000 + (std::process::id() % 1000) * 4 * 65536
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn rootless_lifecycle() {
    let env = Env::new("rl-life");
    let Some(u) = TestUser::create(&env, "rootless_lifecycle") else {
        return;
    };
    let b = u.bundle(&env, &["sleep", "1000"]);
    let id = unique("rl");
    u.ok(&["create", "--bundle", &b.arg(), &id]);
    // The default root of a user: $XDG_RUNTIME_DIR/husk.
    assert!(u.state_root().join(&id).join("state.json").exists());
    let st: serde_json::Value = serde_json::from_str(&u.ok(&["state", &id])).unwrap();
    assert_eq!(st["status"], "created");
    let init = st["pid"].as_i64().unwrap();
    u.ok(&["start", &id]);
    assert!(u.ok(&["list"]).contains(&id));
    // Container root is the user on the host; its maps are the spec's.
    let host = std::fs::metadata(format!("/proc/{init}")).unwrap();
    assert_eq!(host.uid(), u.uid, "container root runs as the user");
    let o = u.husk(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /tmp/made-inside; hostname",
    ]);
    let text = check(&o, "exec");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &u.uid.to_string(), "1"]
    );
    assert_eq!(lines[2], "husk-rootless");
    let made = std::fs::metadata(b.rootfs().join("tmp/made-inside")).unwrap();
    assert_eq!(
        made.uid(),
        u.uid,
        "a file root made is the user's on the host"
    );
    // ps without a cgroup: the processes of the container's pid namespace.
    let o = u.husk(&["exec", "-d", &id, "sleep", "999"]);
    check(&o, "exec -d");
    let ps: Vec<i64> = serde_json::from_str(&u.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps.len(), 2, "ps: {ps:?}");
    assert!(ps.contains(&init));
    // No cgroup can be written: pausing says what is missing.
    let e = u.fails(&["pause", &id]);
    assert_one_line(&e);
    assert!(e.contains("delegated cgroup"), "{e}");
    u.ok(&["kill", &id, "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while serde_json::from_str::<serde_json::Value>(&u.ok(&["state", &id])).unwrap()["status"]
        != "stopped"
    {
        assert!(Instant::now() < deadline, "container did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    u.ok(&["delete", &id]);
    assert!(!u.state_root().join(&id).exists());
    // run: the exit status is the container's.
    b.edit(|c| c["process"]["args"] = json!(["sh", "-c", "exit 7"]));
    let o = u.husk(&["run", "--bundle", &b.arg(), &unique("rl")]);
    assert_eq!(o.status.code(), Some(7), "{}", err(&o));
    // Nothing of the user's is left running.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !u.processes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(u.processes(), Vec::<i32>::new(), "processes left");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn rootless_refusals_name_the_missing_privilege() {
    let env = Env::new("rl-refuse");
    let Some(u) = TestUser::create(&env, "rootless_refusals_name_the_missing_privilege") else {
        return;
    };
    let b = u.bundle(&env, &["true"]);
    let good = b.config();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "subuids",
            Box::new(|c| {
                c["linux"]["uidMappings"] =
                    json!([{"containerID": 0, "hostID": 300000, "size": 65536}])
            }),
            vec![
                "no subordinate uids for user",
                "/etc/subuid",
                "the spec maps 65536 ids",
            ],
        ),
        (
            "subgids",
            Box::new(|c| {
                c["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 300000, "size": 65536}])
            }),
            vec!["no subordinate gids", "/etc/subgid"],
        ),
        (
            "no-userns",
            Box::new(|c| {
                let ns: Vec<serde_json::Value> = c["linux"]["namespaces"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|n| n["type"] != "user")
                    .cloned()
                    .collect();
                c["linux"]["namespaces"] = json!(ns);
                let l = c["linux"].as_object_mut().unwrap();
                l.remove("uidMappings");
                l.remove("gidMappings");
            }),
            vec!["not root", "user namespace of its own"],
        ),
        (
            "memory",
            Box::new(|c| c["linux"]["resources"] = json!({"memory": {"limit": 67108864}})),
            vec!["linux.resources.memory.limit", "delegated cgroup"],
        ),
        (
            "idmap",
            Box::new(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/mnt", "type": "bind", "source": "/tmp",
                    "options": ["rbind", "idmap"]
                }))
            }),
            vec!["ID-mapped mount", "host's root"],
        ),
    ];
    for (what, edit, needles) in cases {
        b.edit(|c| {
            *c = good.clone();
            edit(c)
        });
        let id = unique(what);
        let e = u.fails(&["create", "--bundle", &b.arg(), &id]);
        assert_one_line(&e);
        for n in needles {
            assert!(e.contains(n), "{what}: {e}");
        }
        assert!(!u.state_root().join(&id).exists(), "{what}: state left");
        assert_eq!(u.processes(), Vec::<i32>::new(), "{what}: processes left");
    }
    b.edit(|c| *c = good.clone());
    let barg = b.arg();
    let id = unique("direct");
    let e = u.fails(&["--file-access=direct", "create", "--bundle", &barg, &id]);
    assert_one_line(&e);
    assert!(
        e.contains("--file-access=direct") && e.contains("proxy"),
        "{e}"
    );
    assert!(!u.state_root().join(&id).exists());
    for flags in [["--userns=auto", "create"], ["create", "--userns=auto"]] {
        let id = unique("auto");
        let mut args = flags.to_vec();
        args.extend(["--bundle", &barg, &id]);
        let e = u.fails(&args);
        assert_one_line(&e);
        assert!(e.contains("--userns=auto needs root"), "{e}");
        assert!(!u.state_root().join(&id).exists());
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn rootless_subordinate_ids_through_newuidmap() {
    let test = "rootless_subordinate_ids_through_newuidmap";
    if !Path::new("/usr/bin/newuidmap").exists() {
        say(
            test,
            "SKIPPED: newuidmap is missing (Debian's uidmap; scripts/install-deps.sh installs it)",
        );
        return;
    }
    let env = Env::new("rl-subid");
    let Some(mut u) = TestUser::create(&env, test) else {
        return;
    };
    let base = subid_base();
    u.grant_subids(base, 65536);
    let b = u.bundle(&env, &["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f && chown 1000:1000 /tmp/f && echo chowned"]);
    let maps = json!([
        {"containerID": 0, "hostID": u.uid, "size": 1},
        {"containerID": 1, "hostID": base, "size": 65536}
    ]);
    let gmaps = json!([
        {"containerID": 0, "hostID": u.gid, "size": 1},
        {"containerID": 1, "hostID": base, "size": 65536}
    ]);
    b.edit(|c| {
        c["linux"]["uidMappings"] = maps.clone();
        c["linux"]["gidMappings"] = gmaps.clone();
        // chown needs it; `husk spec --rootless` gives none.
        c["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN"]);
        c["process"]["capabilities"]["effective"] = json!(["CAP_CHOWN"]);
        c["process"]["capabilities"]["permitted"] = json!(["CAP_CHOWN"]);
    });
    let o = u.husk(&["run", "--bundle", &b.arg(), &unique("sub")]);
    let text = check(&o, "run with subordinate ids");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (uid, b0) = (u.uid.to_string(), base.to_string());
    assert!(rows.contains(&vec!["1", b0.as_str(), "65536"]), "{text}");
    assert!(rows.contains(&vec!["0", uid.as_str(), "1"]), "{text}");
    assert!(text.contains("chowned"), "{text}");
    // Container uid 1000 is subordinate id base + 999 on the host.
    let f = std::fs::metadata(b.rootfs().join("tmp/f")).unwrap();
    assert_eq!((f.uid(), f.gid()), (base + 999, base + 999));
    // Ranges beyond the grant are refused by name.
    b.edit(|c| {
        c["linux"]["uidMappings"][1]["size"] = json!(65537);
    });
    let e = u.fails(&["create", "--bundle", &b.arg(), &unique("sub")]);
    assert_one_line(&e);
    assert!(
        e.contains(&format!("host ids {base}-{}", base + 65536)) && e.contains("/etc/subuid"),
        "{e}"
    );
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn rootless_delegated_cgroup() {
    let test = "rootless_delegated_cgroup";
    let env = Env::new("rl-cg");
    let Some(mut u) = TestUser::create(&env, test) else {
        return;
    };
    let Some(parent) = u.delegate_cgroup() else {
        say(test, "SKIPPED: no cgroup hierarchy to delegate");
        return;
    };
    let b = u.bundle(&env, &["sleep", "1000"]);
    let id = unique("cg");
    let path = format!("{parent}/{id}");
    let have = |h: &str| {
        u.delegated
            .iter()
            .any(|d| d.starts_with(Path::new("/sys/fs/cgroup").join(h)))
    };
    let mut res = json!({});
    if have("memory") {
        res["memory"] = json!({"limit": 67108864});
    }
    if have("pids") {
        res["pids"] = json!({"limit": 40});
    }
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = res.clone();
    });
    check(
        &u.husk_in_delegated(&["run", "-d", "--bundle", &b.arg(), &id]),
        "run -d in a delegated cgroup",
    );
    let init = serde_json::from_str::<serde_json::Value>(&u.ok(&["state", &id])).unwrap()["pid"]
        .as_i64()
        .unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    for d in &u.delegated {
        let h = d
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let line = cg
            .lines()
            .find(|l| {
                if h == "unified" {
                    l.starts_with("0::")
                } else {
                    l.split(':')
                        .nth(1)
                        .is_some_and(|c| c.split(',').any(|x| x == h))
                }
            })
            .unwrap_or_else(|| panic!("no {h} line in {cg}"));
        assert!(line.ends_with(&path), "{h}: {line} (wanted {path})");
    }
    if have("memory") {
        let v =
            std::fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"))
                .unwrap();
        assert_eq!(v.trim(), "67108864");
    }
    if have("pids") {
        let v = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{path}/pids.max")).unwrap();
        assert_eq!(v.trim(), "40");
    }
    // The freezer is the user's too.
    if have("freezer") || have("unified") {
        check(&u.husk(&["pause", &id]), "pause");
        let st: serde_json::Value = serde_json::from_str(&u.ok(&["state", &id])).unwrap();
        assert_eq!(st["status"], "paused");
        check(&u.husk(&["resume", &id]), "resume");
    }
    let ps: Vec<i64> = serde_json::from_str(&u.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps, [init]);
    u.ok(&["delete", "--force", &id]);
    for d in &u.delegated {
        assert!(!d.join(&id).exists(), "{} left", d.join(&id).display());
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn rootless_posture() {
    let test = "rootless_posture";
    let env = Env::new("rl-posture");
    let Some(u) = TestUser::create(&env, test) else {
        return;
    };
    let b = u.bundle(&env, &["sleep", "1000"]);
    let id = unique("pos");
    u.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let st: serde_json::Value = serde_json::from_str(&u.ok(&["state", &id])).unwrap();
    let init = st["pid"].as_i64().unwrap();
    let status = |pid: i64| -> std::collections::HashMap<String, String> {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    };
    // boot: the user's uid on the host, not dumpable, its filter, its
    // bounding set cut (in its user namespace, which the user owns).
    let boot = u
        .processes()
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&format!("--sandbox-id={id}")))
        })
        .expect("boot") as i64;
    let bs = status(boot);
    assert_eq!(
        bs["Uid"].split_whitespace().next(),
        Some(u.uid.to_string().as_str())
    );
    assert_eq!(bs["Seccomp"], "2");
    let bnd = u64::from_str_radix(&bs["CapBnd"], 16).unwrap();
    for bit in [16, 17, 22, 25] {
        assert_eq!(bnd & (1 << bit), 0, "boot kept capability {bit}");
    }
    assert_ne!(
        std::fs::read_link(format!("/proc/{boot}/ns/user")).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap(),
        "boot lives in a user namespace of its own"
    );
    let mut root: Vec<String> = std::fs::read_dir(format!("/proc/{boot}/root"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    root.sort();
    assert_eq!(root, ["proc", "sys"], "boot's root");
    // The container: the user on the host, `husk spec --rootless`'s caps,
    // no_new_privs, husk's default profile and baseline.
    let cs = status(init);
    assert_eq!(
        cs["Uid"].split_whitespace().next(),
        Some(u.uid.to_string().as_str())
    );
    assert_eq!(cs["CapEff"], "0000000020000420");
    assert_eq!(cs["NoNewPrivs"], "1");
    assert_eq!(cs["Seccomp"], "2");
    u.ok(&["delete", "--force", &id]);

    // The gofer, started by hand as the user in a user namespace of its
    // own (as husk's gofer is, in the sandbox's), on a socket that never
    // sends a request: it sits in its posture.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let tfd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
    // SAFETY: clear close-on-exec on a descriptor we own.
    unsafe { libc::fcntl(tfd, libc::F_SETFD, 0) };
    let prog = u.husk.to_string_lossy().into_owned();
    let script = format!(
        "exec unshare --user --map-root-user --mount {prog} --root {} gofer --id x --sock-fd {tfd}",
        u.state_root().display()
    );
    let mut c = u.command("/bin/sh", &["-c", &script]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut g = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let gofer = loop {
        assert!(Instant::now() < deadline, "gofer never set up");
        let found = u.processes().into_iter().find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("gofer\0--id"))
                && status(*p as i64).get("Seccomp").map(String::as_str) == Some("2")
        });
        if let Some(p) = found {
            break p as i64;
        }
        if let Ok(Some(st)) = g.try_wait() {
            panic!("the gofer exited ({st}) before setting up");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let gs = status(gofer);
    assert_eq!(gs["NoNewPrivs"], "1");
    let eff = u64::from_str_radix(&gs["CapEff"], 16).unwrap();
    let want = (1u64 << 1)
        | (1 << 2)
        | (1 << 6)
        | (1 << 7)
        | (1 << 21)
        | (1 << 0)
        | (1 << 3)
        | (1 << 4)
        | (1 << 27)
        | (1 << 31);
    assert_eq!(eff, want, "{eff:x}");
    assert_eq!(gs["CapBnd"], gs["CapEff"]);
    assert_ne!(
        std::fs::read_link(format!("/proc/{gofer}/ns/net")).unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap(),
        "the gofer shares the host's network"
    );
    drop(theirs);
    drop(ours);
    let _ = g.kill();
    let _ = g.wait();
}

/// podman as the test user, with stock configuration: only its storage is
/// private (--root, --runroot, --tmpdir under the user's home).
struct RootlessPodman<'a> {
    user: &'a TestUser,
    runtime: String,
}

impl RootlessPodman<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let store = &self.user.home;
        let mut full: Vec<String> = vec![
            "--root".into(),
            store.join("root").display().to_string(),
            "--runroot".into(),
            store.join("rr").display().to_string(),
            "--tmpdir".into(),
            store.join("tmp").display().to_string(),
            "--runtime".into(),
            self.runtime.clone(),
        ];
        full.extend(args.iter().map(|s| s.to_string()));
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        run_bounded(
            self.user.command("/usr/bin/podman", &full),
            Duration::from_secs(120),
        )
    }

    fn check(&self, args: &[&str]) -> String {
        check(
            &self.run(args),
            &format!("[{}] podman {args:?}", self.runtime),
        )
    }
}

/// One runtime through rootless podman: run, exec, a volume, stop, rm.
fn podman_scenario(u: &TestUser, runtime: &str, image: &str, vol: &Path, net: &[&str]) {
    let p = RootlessPodman {
        user: u,
        runtime: runtime.to_string(),
    };
    let tag = Path::new(runtime)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut args = vec!["run", "--rm"];
    args.extend(net);
    args.extend([image, "sh", "-c", "echo hi; id -u"]);
    assert_eq!(p.check(&args), "hi\n0\n", "[{tag}] run --rm");
    let mut args = vec!["run", "--rm"];
    args.extend(net);
    args.extend([image, "sh", "-c", "exit 3"]);
    let o = p.run(&args);
    assert_eq!(o.status.code(), Some(3), "[{tag}] exit status: {}", err(&o));

    let name = format!("rl-{tag}");
    let v = format!("{}:/data", vol.display());
    let mut args = vec!["run", "-d", "--name", &name, "-v", &v];
    args.extend(net);
    args.extend([image, "sleep", "1000"]);
    p.check(&args);
    let o = p.run(&[
        "exec",
        &name,
        "sh",
        "-c",
        "cat /data/from-host; echo written > /data/from-$0; exit 4",
        &tag,
    ]);
    assert_eq!(o.status.code(), Some(4), "[{tag}] exec: {}", err(&o));
    assert_eq!(out(&o), "hello\n", "[{tag}] exec reads the volume");
    // What the container's root wrote is the user's on the host.
    let f = vol.join(format!("from-{tag}"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "written\n");
    assert_eq!(std::fs::metadata(&f).unwrap().uid(), u.uid, "[{tag}] owner");
    if !net.contains(&"none") {
        // podman's network namespace (slirp4netns's tap device) is the
        // container's.
        let o = p.check(&["exec", &name, "cat", "/proc/net/dev"]);
        assert!(o.contains("tap0"), "[{tag}] no slirp4netns device: {o}");
    }
    let st = p.check(&["inspect", "-f", "{{.State.Status}}", &name]);
    assert_eq!(st.trim(), "running");
    let t = Instant::now();
    p.check(&["stop", "-t", "2", &name]);
    assert!(t.elapsed() < Duration::from_secs(30));
    let st = p.check(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    assert_eq!(st.trim(), "exited 137", "[{tag}] stop");
    p.check(&["rm", &name]);
    assert_eq!(
        p.check(&["ps", "-aq"]).trim(),
        "",
        "[{tag}] containers left"
    );
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn rootless_podman_runs_containers_with_husk() {
    let test = "rootless_podman_runs_containers_with_husk";
    for tool in ["/usr/bin/podman", "/usr/bin/newuidmap", "/usr/sbin/runc"] {
        if !Path::new(tool).exists() {
            say(
                test,
                &format!("SKIPPED: {tool} is missing (scripts/install-deps.sh installs it)"),
            );
            return;
        }
    }
    let env = Env::new("rl-podman");
    let Some(mut u) = TestUser::create(&env, test) else {
        return;
    };
    u.grant_subids(subid_base() + 2 * 65536, 65536);
    // A busybox image, imported (no registry).
    let src = Bundle::new(&env.dir.join("image-src"));
    let tar = env.dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(src.rootfs())
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let vol = u.home.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("from-host"), "hello\n").unwrap();
    chown_r(&vol, u.uid, u.gid);
    let image = "localhost/husk-rootless-bb:1";
    let p = RootlessPodman {
        user: &u,
        runtime: "/usr/sbin/runc".into(),
    };
    p.check(&["import", tar.to_str().unwrap(), image]);
    // podman's default network for a user is slirp4netns, which needs
    // /dev/net/tun; a host that keeps it from users gets none.
    let tun = u
        .command("/bin/sh", &["-c", "exec 3<>/dev/net/tun"])
        .status();
    let net: &[&str] = if tun.is_ok_and(|s| s.success()) {
        &[]
    } else {
        say(
            test,
            "note: /dev/net/tun is not usable by users here: --network none",
        );
        &["--network", "none"]
    };
    let husk = u.husk.to_string_lossy().into_owned();
    // The same scenario against runc first: it checks the right thing.
    for rt in ["/usr/sbin/runc", husk.as_str()] {
        podman_scenario(&u, rt, image, &vol, net);
    }
    let _ = p.run(&["rm", "-af", "-t", "0"]);
    let _ = p.run(&["rmi", "-af"]);
    // podman's storage is in the user's home, inside the test's directory;
    // its processes go with the user.
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn rootless_pod_member() {
    let env = Env::new("rl-pod");
    let Some(u) = TestUser::create(&env, "rootless_pod_member") else {
        return;
    };
    let pod = unique("pod");
    let root = u.bundle(&env, &["sleep", "1000"]);
    root.edit(|c| c["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"}));
    u.ok(&["run", "-d", "--bundle", &root.arg(), &pod]);
    // A member shares its pod's user namespace (no entry of its own), with
    // the spec's default masked paths, which mask files with /dev/null.
    let m = u.bundle(
        &env,
        &["sh", "-c", "id -u; cat /proc/self/uid_map; hostname"],
    );
    m.edit(|c| {
        c["annotations"] = json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": pod,
        });
        let ns: Vec<serde_json::Value> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] != "user" && n["type"] != "uts")
            .cloned()
            .collect();
        c["linux"]["namespaces"] = json!(ns);
        let l = c["linux"].as_object_mut().unwrap();
        l.remove("uidMappings");
        l.remove("gidMappings");
    });
    let text = check(
        &u.husk(&["run", "--bundle", &m.arg(), &unique("mem")]),
        "member run",
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &u.uid.to_string(), "1"]
    );
    assert_eq!(lines[2], "husk-rootless", "the pod's UTS namespace");
    u.ok(&["delete", "--force", &pod]);
}
