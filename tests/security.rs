//! Isolation and limits, asserted from inside containers and from the host:
//! capabilities, no_new_privs, seccomp, masked and read-only paths, user
//! namespaces, cgroup limits, known escape classes, and the posture of
//! husk's own processes.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// The status lines of /proc/<pid>/status as key → value.
fn status_of(pid: i64) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE: `husk spec`'s defaults.
const DEFAULT_CAPS: &str = "0000000020000420";

fn mkdir_denied_profile() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn default_container_posture() {
    require_root();
    let env = Env::new("posture");
    let b = env.bundle(&[
        "sh",
        "-c",
        "grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status; \
         for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do \
           [ -e $p ] && echo masked $p=$(wc -c < $p); done; \
         if echo 1 > /proc/sys/kernel/domainname 2>/dev/null; then echo sys=rw; else echo sys=ro; fi; \
         ls /proc/self/fd | tr '\\n' ' '",
    ]);
    b.edit(|c| c["linux"]["seccomp"] = mkdir_denied_profile());
    let id = env.id("posture");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    for line in [
        format!("CapEff:\t{DEFAULT_CAPS}"),
        format!("CapBnd:\t{DEFAULT_CAPS}"),
        format!("CapPrm:\t{DEFAULT_CAPS}"),
        "NoNewPrivs:\t1".to_string(),
        "Seccomp:\t2".to_string(),
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    // Every masked file the host has reads as empty (/proc/kcore, where the
    // kernel has one).
    let mut masked = 0;
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        if std::path::Path::new(p).exists() {
            assert!(
                out.contains(&format!("masked {p}=0")),
                "{p} is not masked:\n{out}"
            );
            masked += 1;
        }
    }
    assert!(masked > 0, "no masked path to check on this host");
    assert!(out.contains("sys=ro"), "/proc/sys is writable:\n{out}");
    // Only stdio (and the descriptor ls itself opens for the listing).
    let fds = out.lines().last().unwrap().trim().to_string();
    assert_eq!(
        fds, "0 1 2 3",
        "descriptors leaked into the container: {fds}"
    );
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn seccomp_profile_and_baseline() {
    require_root();
    let mut env = Env::new("seccomp");
    // The spec denies mkdir; other calls work.
    let b = env.bundle(&[
        "sh",
        "-c",
        "mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touch-ok",
    ]);
    b.edit(|c| {
        c["linux"]["seccomp"] = mkdir_denied_profile();
        c["root"]["readonly"] = json!(false);
    });
    let id = env.id("sc");
    let out = env.husk(&["run", "--bundle", &b.arg(), &id]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Operation not permitted"), "{text}");
    assert!(text.contains("rc=1") && text.contains("touch-ok"), "{text}");

    // A permissive profile cannot lift the baseline: no new user namespace
    // for a container without CAP_SYS_ADMIN or a user namespace of its own.
    let b = env.bundle(&[
        "sh",
        "-c",
        "unshare -U true && echo userns-made || echo userns-denied",
    ]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
    });
    let id = env.id("sc");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    assert!(out.contains("userns-denied"), "{out}");
    // The container's annotation turns it off for that container alone:
    // without a profile of its own it runs with no filter at all.
    let b2 = env.bundle(&[
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; unshare -U true && echo userns-made",
    ]);
    b2.edit(|c| c["annotations"] = json!({"dev.husk.seccomp-baseline": "off"}));
    let id = env.id("sc");
    let out = env.ok(&["run", "--bundle", &b2.arg(), &id]);
    assert!(
        out.contains("Seccomp:\t0") && out.contains("userns-made"),
        "{out}"
    );
    // The debugging escape hatch turns it off.
    env.extra_flags = vec!["--seccomp-baseline=off".into()];
    let id = env.id("sc");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    assert!(out.contains("userns-made"), "{out}");
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn user_namespace_maps_root_to_200000() {
    require_root();
    let env = Env::new("userns");
    let b = env.bundle(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; touch /tmp/owned && echo rootfs-writable; sleep 1000",
    ]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["root"]["readonly"] = json!(false);
    });
    let id = env.id("userns");
    let log = env.dir.join("out");
    let child = env
        .cmd(&["run", "--bundle", &b.arg(), &id])
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    env.wait_status(&id, "running", 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("rootfs-writable")
    {
        assert!(
            Instant::now() < deadline,
            "no output: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = std::fs::read_to_string(&log).unwrap();
    let map: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"]);
    assert!(out.contains("\n0\n"), "{out}");
    // The host sees the container's root as uid 200000.
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let uid = status_of(pid)["Uid"].clone();
    assert!(uid.starts_with("200000"), "host view of the uid: {uid}");
    env.ok(&["kill", &id, "KILL"]);
    let _ = wait_child(child, Duration::from_secs(20));
    // The rootfs was ID-mapped: what the container's root wrote belongs to
    // the bundle's owner on disk.
    let meta = std::fs::metadata(b.rootfs().join("tmp/owned")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    env.assert_no_leftovers(&id);
}

fn cg_of(id: &str, ctrl: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/husk/{id}/{file}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn cgroup_limits_are_set_and_enforced() {
    require_root();
    let env = Env::new("limits");
    // pids: a fork loop stops at the limit.
    let b = env.bundle(&[
        "sh",
        "-c",
        "n=0; while [ $n -lt 60 ]; do sleep 30 & n=$((n+1)); done 2>/dev/null; \
         echo started=$(ls -d /proc/[0-9]* | wc -l); kill $(jobs -p) 2>/dev/null; true",
    ]);
    b.edit(|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 20});
        c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        c["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    });
    let id = env.id("pids");
    let out = env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let _ = out;
    let cg = |ctrl: &str, file: &str| cg_of(&id, ctrl, file);
    let pids_max = cg("pids", "pids.max");
    let mem = cg("memory", "memory.limit_in_bytes");
    let shares = cg("cpu", "cpu.shares");
    let quota = cg("cpu", "cpu.cfs_quota_us");
    env.wait_status(&id, "stopped", 30);
    assert_eq!(pids_max, "20");
    assert_eq!(mem, (64u64 << 20).to_string());
    assert_eq!(shares, "512");
    assert_eq!(quota, "50000");
    env.ok(&["delete", &id]);

    // A fork loop stops at the limit.
    let b = env.bundle(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 60 ]; do sleep 1000 & i=$((i+1)); done 2>/dev/null; wait",
    ]);
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 20}));
    let id = env.id("pids");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let current = || {
        cg_of(&id, "pids", "pids.current")
            .parse::<u32>()
            .unwrap_or(0)
    };
    let refused = || {
        cg_of(&id, "pids", "pids.events")
            .strip_prefix("max ")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut peak = 0;
    while refused() == 0 {
        peak = peak.max(current());
        assert!(
            Instant::now() < deadline,
            "the fork loop never hit the limit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(peak <= 20, "more than 20 processes: {peak}");
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn memory_hog_is_oom_killed_and_events_say_so() {
    require_root();
    let env = Env::new("oom");
    let b = env.bundle(&[
        "sh",
        "-c",
        "sleep 1; x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 1000; echo ${#x}",
    ]);
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20}));
    let id = env.id("oom");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let log = env.dir.join("events");
    let mut events = env
        .cmd(&["events", "--interval", "1s", &id])
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["type"] == "oom" && v["id"] == id.as_str())
                .unwrap_or(false)
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "no oom event:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = events.kill();
    let _ = events.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "stats");
    assert!(first["data"]["memory"]["usage"]["limit"].as_u64().unwrap() == 32 << 20);
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn escape_husk_binary_cannot_be_reopened_for_writing() {
    require_root();
    // CVE-2019-5736: a container keeps an O_PATH handle to the runtime's
    // executable (/proc/<pid>/exe of a runtime process it can see, or of
    // itself via a "#!/proc/self/exe" entrypoint) and reopens it for
    // writing once the runtime has exited. husk's sandbox and the container
    // processes it forks run the binary from a read-only mount.
    let env = Env::new("exe");
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("exe");
    env.ok(&["create", "--bundle", &b.arg(), &id]);
    let init = env.state(&id)["pid"].as_i64().unwrap();
    let boot = env.runtime_processes()[0];
    let handles: Vec<std::fs::File> = [init, boot as i64]
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags_path(format!("/proc/{p}/exe"))
        })
        .collect();
    env.ok(&["delete", "--force", &id]);
    for h in &handles {
        // The handle is on a read-only mount...
        let vfs = nix::sys::statvfs::fstatvfs(h).unwrap();
        assert!(
            vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
            "the runtime's executable is reachable through a writable mount"
        );
        // ...so it cannot be reopened for writing (EROFS; ETXTBSY while
        // some other husk process is running the same binary).
        let again = std::fs::OpenOptions::new()
            .append(true)
            .open(format!("/proc/self/fd/{}", h.as_raw_fd()));
        let err = again.expect_err("the husk binary was reopened for writing");
        assert!(
            matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
            "{err}"
        );
    }
    env.assert_no_leftovers(&id);
}

trait OpenPath {
    fn custom_flags_path(&mut self, p: String) -> std::fs::File;
}

impl OpenPath for std::fs::OpenOptions {
    fn custom_flags_path(&mut self, p: String) -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_PATH).open(p).unwrap()
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn escape_no_host_descriptor_leaks_into_the_container() {
    require_root();
    let env = Env::new("fds");
    let b = env.bundle(&[
        "sh",
        "-c",
        "ls -l /proc/self/fd/ | tail -n +2 | wc -l; ls /proc/self/fd | tr '\\n' ' '",
    ]);
    let id = env.id("fds");
    // A descriptor the caller leaks to husk without close-on-exec.
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    let fd = leaked.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    assert!(out.trim_end().ends_with("0 1 2 3"), "{out}");
    // --preserve-fds passes exactly the first N extra descriptors.
    let id = env.id("fds");
    let mut cmd = env.cmd(&["run", "--preserve-fds", "1", "--bundle", &b.arg(), &id]);
    let keep = std::fs::File::open("/etc/hostname").unwrap();
    let kfd = keep.as_raw_fd();
    use std::os::unix::process::CommandExt;
    // SAFETY: dup2 in the child before exec, onto fd 3.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(kfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_bounded(cmd, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.trim_end().ends_with("0 1 2 3 4"), "{text}");
    drop(leaked);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn escape_mount_destinations_stay_inside_the_rootfs() {
    require_root();
    let env = Env::new("symlink");
    let b = env.bundle(&["sh", "-c", "cat /escape/marker 2>/dev/null; ls /escape"]);
    // Host paths the image's symlinks point at.
    let host_target = env.dir.join("host-target");
    std::fs::create_dir_all(&host_target).unwrap();
    std::os::unix::fs::symlink(&host_target, b.rootfs().join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", b.rootfs().join("up")).unwrap();
    let src = env.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), "bound\n").unwrap();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/escape", "type": "bind", "source": src.to_str().unwrap(), "options": ["rbind"]}));
        m.push(json!({"destination": format!("/up{}", env.dir.join("dotdot").display()), "type": "tmpfs", "source": "tmpfs"}));
    });
    let id = env.id("sym");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    assert!(out.contains("bound"), "{out}");
    // Nothing was mounted on the host paths the symlinks name.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(host_target.to_str().unwrap()), "{mi}");
    assert!(!mi.contains("dotdot"), "{mi}");
    assert!(!env.dir.join("dotdot").exists());
    // The mounts went inside the rootfs instead.
    assert!(b
        .rootfs()
        .join(host_target.strip_prefix("/").unwrap())
        .exists());
    env.assert_no_leftovers(&id);
}

type SpecEdit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn unhonourable_specs_fail_naming_the_field() {
    require_root();
    let env = Env::new("unhonour");
    let cases: Vec<(&str, SpecEdit, &str)> = vec![
        (
            "capability",
            Box::new(|c| c["process"]["capabilities"]["bounding"] = json!(["CAP_NOPE"])),
            "CAP_NOPE",
        ),
        (
            "rlimit",
            Box::new(|c| {
                c["process"]["rlimits"] =
                    json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 40, "soft": 1024}])
            }),
            "RLIMIT_NOFILE",
        ),
        (
            "sysctl",
            Box::new(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "10"})),
            "vm.swappiness",
        ),
        (
            "network",
            Box::new(|c| c["linux"]["resources"]["network"] = json!({"classID": 1048577})),
            "linux.resources.network",
        ),
        (
            "seccomp",
            Box::new(|c| {
                c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_SOMETIMES"}]})
            }),
            "linux.seccomp.syscalls[0].action",
        ),
    ];
    for (what, edit, needle) in cases {
        let b = env.bundle(&["true"]);
        b.edit(|c| edit(c));
        let id = env.id(what);
        let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
        assert_one_line(&err);
        assert!(err.contains(needle), "{what}: {err}");
        env.assert_no_leftovers(&id);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn husk_processes_posture() {
    require_root();
    let env = Env::new("own");
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("own");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let boot = env.runtime_processes()[0] as i64;
    let st = status_of(boot);
    assert_eq!(st["Seccomp"], "2", "boot runs under a seccomp filter");
    let bnd = u64::from_str_radix(&st["CapBnd"], 16).unwrap();
    for (cap, bit) in [
        ("CAP_SYS_MODULE", 16),
        ("CAP_SYS_RAWIO", 17),
        ("CAP_SYS_TIME", 25),
        ("CAP_SYS_BOOT", 22),
    ] {
        assert_eq!(bnd & (1 << bit), 0, "boot kept {cap}");
    }
    // No directory of the host held open: its own procfs, and the
    // container's cgroup filesystems as mounted in its cgroup namespace
    // (detached mounts whose root is the container's cgroup).
    for ent in std::fs::read_dir(format!("/proc/{boot}/fd"))
        .unwrap()
        .flatten()
    {
        if std::fs::metadata(ent.path()).is_ok_and(|m| m.is_dir()) {
            let fs = nix::sys::statfs::statfs(&ent.path()).unwrap();
            let link = std::fs::read_link(ent.path()).unwrap();
            let t = fs.filesystem_type();
            assert!(
                t == nix::sys::statfs::PROC_SUPER_MAGIC
                    || ((t == nix::sys::statfs::CGROUP_SUPER_MAGIC
                        || t == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
                        && link == std::path::Path::new("/")),
                "boot holds a directory open: {link:?} ({t:?})"
            );
        }
    }
    assert_eq!(
        std::fs::read_link(format!("/proc/{boot}/cwd")).unwrap(),
        std::path::Path::new("/")
    );
    // boot lives inside the sandbox: its own mount namespace whose root
    // holds nothing of the host, the container's network, IPC and UTS
    // namespaces, a pid namespace that is not the host's, and the
    // container's cgroups.
    let mut root: Vec<String> = std::fs::read_dir(format!("/proc/{boot}/root"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    root.sort();
    assert_eq!(root, ["proc", "sys"], "boot's root");
    let init = env.state(&id)["pid"].as_i64().unwrap();
    for ns in ["net", "ipc", "uts"] {
        let b = std::fs::read_link(format!("/proc/{boot}/ns/{ns}")).unwrap();
        assert_eq!(
            b,
            std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap()
        );
        assert_ne!(
            b,
            std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap()
        );
    }
    for ns in ["pid", "mnt"] {
        assert_ne!(
            std::fs::read_link(format!("/proc/{boot}/ns/{ns}")).unwrap(),
            std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap(),
            "boot shares the host's {ns} namespace"
        );
    }
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{boot}/cgroup")).unwrap(),
        std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap()
    );
    // What boot sees as processes: the container's, none of the host's.
    let seen: Vec<i64> = std::fs::read_dir(format!("/proc/{boot}/root/proc"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    assert_eq!(seen, [1], "boot sees processes other than the container's");
    env.ok(&["delete", "--force", &id]);

    // The gofer: started by hand on a socket that never sends a request,
    // it sits after setting up its posture.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let tfd = theirs.as_raw_fd();
    // SAFETY: clear close-on-exec on a descriptor we own.
    unsafe { libc::fcntl(tfd, libc::F_SETFD, 0) };
    let mut g = std::process::Command::new(HUSK)
        .args([
            "--root",
            env.root.to_str().unwrap(),
            "gofer",
            "--id",
            "x",
            "--sock-fd",
            &tfd.to_string(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(theirs);
    let pid = g.id() as i64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(pid)["Seccomp"] != "2" {
        assert!(Instant::now() < deadline, "gofer never set up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = status_of(pid);
    assert_eq!(st["NoNewPrivs"], "1");
    let eff = u64::from_str_radix(&st["CapEff"], 16).unwrap();
    // CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_SETGID, CAP_SETUID,
    // CAP_SYS_ADMIN; CAP_CHOWN, CAP_FOWNER, CAP_FSETID, CAP_MKNOD and
    // CAP_SETFCAP for the overlays it makes (its filter keeps it from
    // using them itself).
    assert_eq!(
        eff,
        (1 << 1)
            | (1 << 2)
            | (1 << 6)
            | (1 << 7)
            | (1 << 21)
            | (1 << 0)
            | (1 << 3)
            | (1 << 4)
            | (1 << 27)
            | (1 << 31),
        "{eff:x}"
    );
    assert_eq!(st["CapBnd"], st["CapEff"]);
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let gofer_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(host_net, gofer_net, "the gofer shares the host's network");
    drop(ours);
    let _ = g.wait();
}
