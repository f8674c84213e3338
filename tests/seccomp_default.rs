//! husk's own seccomp profile for specs without `linux.seccomp`, from the
//! outside: how many system calls a container can reach (bench/reach.c
//! reads the filters back from the running process), that the spec's own
//! profile and the annotation still decide, and that real programs —
//! busybox, Debian's coreutils, apt, python3 and perl, a static Go binary,
//! a Rust binary with threads and epoll, Node.js and Java — work under it.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The target of issue 15 for an unprivileged container on this kernel.
const TARGET: usize = 260;

/// `husk spec`'s capabilities (runc's default too).
const SPEC_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The capabilities Docker gives a container by default.
const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// bench/reach.c, compiled into the test's directory.
fn reach_binary(env: &Env) -> PathBuf {
    let out = env.dir.join("reach");
    let st = Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(repo().join("bench/reach.c"))
        .arg("-lseccomp")
        .status()
        .expect("gcc (scripts/install-deps.sh installs it)");
    assert!(st.success(), "building bench/reach.c failed");
    out
}

/// What bench/reach.c says about a process.
struct Reach {
    summary: HashMap<String, String>,
    /// name -> verdict for all-zero arguments ("reachable", "ERRNO(38)", ...).
    verdict: HashMap<String, String>,
}

impl Reach {
    fn of(reach: &Path, pid: i64) -> Reach {
        let out = Command::new(reach)
            .arg("--list")
            .arg(pid.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "reach {pid}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut summary = HashMap::new();
        let mut verdict = HashMap::new();
        for line in text.lines() {
            if line.starts_with("reachable=") {
                for kv in line.split_whitespace() {
                    let (k, v) = kv.split_once('=').unwrap();
                    summary.insert(k.to_string(), v.to_string());
                }
            } else {
                let f: Vec<&str> = line.split_whitespace().collect();
                verdict.insert(f[1].to_string(), f[2].to_string());
            }
        }
        Reach { summary, verdict }
    }

    fn count(&self, key: &str) -> usize {
        self.summary[key].parse().unwrap()
    }

    fn reachable(&self) -> usize {
        self.count("reachable")
    }

    fn expect(&self, what: &str, pairs: &[(&str, &str)]) {
        for (name, want) in pairs {
            let got = self
                .verdict
                .get(*name)
                .map(String::as_str)
                .unwrap_or("absent");
            assert!(
                got.starts_with(want),
                "{what}: {name} is {got}, expected {want}"
            );
        }
    }
}

/// Start the bundle detached, read its filters, delete it.
fn reach_of(env: &Env, reach: &Path, b: &Bundle, prefix: &str) -> Reach {
    let id = env.id(prefix);
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let r = Reach::of(reach, pid);
    env.ok(&["delete", "--force", &id]);
    r
}

fn set_caps(c: &mut Value, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = json!(caps);
    }
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn reachable_system_calls() {
    require_root();
    let env = Env::new("sc-reach");
    let reach = reach_binary(&env);
    let b = env.bundle(&["sleep", "1000"]);

    let spec_caps = reach_of(&env, &reach, &b, "reach");
    let implemented = spec_caps.count("implemented");
    eprintln!(
        "husk default profile, husk spec's capabilities: {:?}",
        spec_caps.summary
    );
    assert!(
        spec_caps.reachable() <= TARGET,
        "{} system calls reachable, the target is at most {TARGET}",
        spec_caps.reachable()
    );
    assert!(
        spec_caps.reachable() > 150,
        "implausibly few: {:?}",
        spec_caps.summary
    );
    spec_caps.expect(
        "default profile",
        &[
            ("getppid", "reachable"),
            ("clone", "reachable"),
            ("personality", "reachable"),
            ("getrandom", "reachable"),
            ("io_uring_setup", "ERRNO(38)"),
            ("msgget", "ERRNO(38)"),
            ("clone3", "ERRNO(38)"),
            ("mseal", "ERRNO(38)"),
            ("statmount", "ERRNO(38)"),
            ("futex_wake", "ERRNO(38)"),
            ("mount", "ERRNO(1)"),
            ("unshare", "ERRNO(1)"),
            ("ptrace", "ERRNO(1)"),
            ("process_vm_readv", "ERRNO(1)"),
            ("kcmp", "ERRNO(1)"),
            ("pidfd_getfd", "ERRNO(1)"),
            ("name_to_handle_at", "ERRNO(1)"),
            ("mbind", "ERRNO(1)"),
            ("chroot", "ERRNO(1)"),
            ("keyctl", "ERRNO(1)"),
        ],
    );

    // Docker's default capabilities open what they are for.
    b.edit(|c| set_caps(c, DOCKER_CAPS));
    let docker_caps = reach_of(&env, &reach, &b, "reach");
    eprintln!(
        "husk default profile, Docker's default capabilities: {:?}",
        docker_caps.summary
    );
    docker_caps.expect("Docker's capabilities", &[("chroot", "reachable")]);
    assert!(docker_caps.reachable() <= TARGET + 5);

    // CAP_SYS_ADMIN and CAP_SYS_PTRACE: mounts, namespaces, ptrace; io_uring
    // stays out whatever the capabilities.
    let mut privileged = SPEC_CAPS.to_vec();
    privileged.extend(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
    b.edit(|c| set_caps(c, &privileged));
    let admin = reach_of(&env, &reach, &b, "reach");
    admin.expect(
        "CAP_SYS_ADMIN",
        &[
            ("mount", "reachable"),
            ("unshare", "reachable"),
            ("setns", "reachable"),
            ("clone3", "reachable"),
            ("ptrace", "reachable"),
            ("process_vm_readv", "reachable"),
            ("io_uring_setup", "ERRNO(38)"),
            ("keyctl", "ERRNO(1)"),
        ],
    );

    // The annotation switches husk's additions off: no filter at all.
    b.edit(|c| {
        set_caps(c, SPEC_CAPS);
        c["annotations"] = json!({"dev.husk.seccomp-baseline": "off"});
    });
    let off = reach_of(&env, &reach, &b, "reach");
    assert_eq!(off.count("filters"), 0, "{:?}", off.summary);
    assert_eq!(off.reachable(), implemented);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn the_specs_own_profile_wins() {
    require_root();
    let env = Env::new("sc-spec");
    let reach = reach_binary(&env);
    let b = env.bundle(&["sleep", "1000"]);
    // A permissive profile that denies mkdir with its own errno: the
    // default profile is not applied, the baseline still is.
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "msgget"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]
        })
    });
    let r = reach_of(&env, &reach, &b, "spec");
    r.expect(
        "spec profile",
        &[
            ("mkdir", "ERRNO(5)"),
            ("msgget", "ERRNO(5)"),
            ("mount", "reachable"),
            ("ptrace", "reachable"),
            ("msgsnd", "reachable"),
            ("io_uring_setup", "ERRNO(38)"),
            ("keyctl", "ERRNO(1)"),
        ],
    );
    // Where the spec and the baseline both deny, the spec's errno is seen.
    b.edit(|c| {
        c["linux"]["seccomp"]["syscalls"] =
            json!([{"names": ["io_uring_setup"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}])
    });
    let r = reach_of(&env, &reach, &b, "spec");
    r.expect("spec errno", &[("io_uring_setup", "ERRNO(5)")]);
    // Annotation off: only the spec's profile.
    b.edit(|c| c["annotations"] = json!({"dev.husk.seccomp-baseline": "off"}));
    let r = reach_of(&env, &reach, &b, "spec");
    assert_eq!(r.count("filters"), 1, "{:?}", r.summary);
    r.expect(
        "spec only",
        &[
            ("io_uring_setup", "ERRNO(5)"),
            ("io_uring_enter", "reachable"),
        ],
    );
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn numbers_above_the_profile_get_enosys() {
    require_root();
    let env = Env::new("sc-enosys");
    let reach = reach_binary(&env);
    let b = env.bundle(&["sleep", "1000"]);
    // A deny-by-default profile: the calls the default profile allows, and
    // nothing it refuses. Its highest named x86_64 number is below
    // futex_wake's (454).
    let mut profile = serde_json::to_value(husk::seccomp::default_profile(None)).unwrap();
    profile["defaultErrnoRet"] = json!(1);
    let rules = profile["syscalls"].as_array_mut().unwrap();
    rules.retain(|r| r["action"] == "SCMP_ACT_ALLOW");
    b.edit(|c| c["linux"]["seccomp"] = profile.clone());
    let r = reach_of(&env, &reach, &b, "enosys");
    r.expect(
        "deny by default",
        &[
            ("getppid", "reachable"),
            ("mount", "ERRNO(1)"), // known, not listed: the default errno
            ("process_madvise", "ERRNO(1)"), // a number below the highest listed
            ("futex_wake", "ERRNO(38)"), // above it
            ("mseal", "ERRNO(38)"),
            ("listmount", "ERRNO(38)"),
        ],
    );
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn notify_for_write_is_refused_at_create() {
    require_root();
    let env = Env::new("sc-notify");
    let b = env.bundle(&["true"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": env.dir.join("agent.sock"),
            "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]
        })
    });
    let id = env.id("notify");
    let err = env.fails(&["create", "--bundle", &b.arg(), &id]);
    assert_one_line(&err);
    assert!(
        err.contains("SCMP_ACT_NOTIFY cannot be used for the write syscall"),
        "{err}"
    );
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn init_finishes_under_the_default_profile_without_no_new_privs() {
    require_root();
    // Without noNewPrivileges the filter goes in before husk's init sets
    // the user, groups and capabilities: those calls must pass it.
    let env = Env::new("sc-nnp");
    let b = env.bundle(&[
        "sh",
        "-c",
        "id; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
    ]);
    b.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 6]});
    });
    let id = env.id("nnp");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    assert!(out.contains("uid=1000 gid=1000 groups=5,6"), "{out}");
    assert!(
        out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t0"),
        "{out}"
    );
}

// ------------------------------------------------------- real programs

/// Where built test programs are kept between runs (building the Go one
/// takes seconds; the sources' hash names the directory).
fn programs_dir() -> PathBuf {
    let src = repo().join("tests/seccomp_programs");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut text = Vec::new();
    for p in &names {
        text.extend(p.file_name().unwrap().as_encoded_bytes());
        text.extend(std::fs::read(p).unwrap());
    }
    for tool in [
        &["go", "version"][..],
        &["rustc", "--version"],
        &["javac", "-version"],
    ] {
        if let Ok(o) = Command::new(tool[0]).args(&tool[1..]).output() {
            text.extend(o.stdout);
            text.extend(o.stderr);
        }
    }
    // A cheap stable hash (FNV-1a): the name only has to change with them.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let dir = PathBuf::from(format!("/var/tmp/husk-seccomp-programs/{h:016x}"));
    if dir.join(".complete").exists() {
        return dir;
    }
    let tmp = PathBuf::from(format!("{}.{}", dir.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    for p in &names {
        std::fs::copy(p, tmp.join(p.file_name().unwrap())).unwrap();
    }
    let build = |what: &str, cmd: &mut Command| {
        match cmd.current_dir(&tmp).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "building the {what} test program failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            // The check reports it as skipped.
            Err(e) => eprintln!("WARNING: no {what} toolchain ({e}): its check is skipped"),
        }
    };
    build(
        "Go",
        Command::new("go")
            .args(["build", "-o", "go-check", "go-check.go"])
            .env("CGO_ENABLED", "0")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOCACHE", tmp.join(".gocache"))
            .env("GOPATH", tmp.join(".gopath")),
    );
    build(
        "Rust",
        Command::new("rustc").args([
            "-O",
            "--edition",
            "2021",
            "-o",
            "rust-check",
            "rust-check.rs",
        ]),
    );
    build(
        "Java",
        Command::new("javac").args(["-nowarn", "-d", ".", "Check.java"]),
    );
    let _ = std::fs::remove_dir_all(tmp.join(".gocache"));
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("go-w,a+rX")
        .arg(&tmp)
        .status();
    std::fs::write(tmp.join(".complete"), "").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test run got there first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// A Debian bundle without copying Debian: an empty rootfs with the host's
/// /usr, /etc and package databases bind-mounted read-only (this host is
/// Debian 12), /bin & co. as the merged-/usr symlinks, and the test
/// programs at /opt/progs.
fn debian_bundle(env: &Env, progs: &Path) -> Bundle {
    let path = env.dir.join("debian");
    let rootfs = path.join("rootfs");
    for d in [
        "usr",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "run",
        "opt/progs",
        "var/lib/dpkg",
        "var/lib/apt",
        "var/cache/apt",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    for l in ["bin", "sbin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), rootfs.join(l)).unwrap();
    }
    let st = Command::new(HUSK)
        .args(["spec", "--bundle"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success());
    let b = Bundle { path };
    let bind = |dst: &str, src: &Path| {
        json!({"destination": dst, "type": "bind", "source": src,
               "options": ["rbind", "ro", "nosuid", "nodev"]})
    };
    let tmpfs = |dst: &str, mode: &str| {
        json!({"destination": dst, "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", format!("mode={mode}")]})
    };
    b.edit(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["sh", "/opt/progs/run-all.sh"]);
        c["process"]["env"] = json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "LANG=C.UTF-8"
        ]);
        c["hostname"] = json!("husk-programs");
        let mounts = c["mounts"].as_array_mut().unwrap();
        for d in [
            "/usr",
            "/etc",
            "/var/lib/dpkg",
            "/var/lib/apt",
            "/var/cache/apt",
        ] {
            mounts.push(bind(d, Path::new(d)));
        }
        mounts.push(bind("/opt/progs", progs));
        mounts.push(tmpfs("/tmp", "1777"));
        mounts.push(tmpfs("/root", "700"));
        mounts.push(tmpfs("/run", "755"));
    });
    b
}

/// run-all.sh's report: check name -> exit code ("skipped" for a missing
/// tool), and the whole text for messages.
fn run_programs(env: &Env, b: &Bundle) -> (Vec<(String, String)>, String) {
    let id = env.id("progs");
    let mut cmd = env.cmd(&["run", "--bundle", &b.arg(), &id]);
    cmd.current_dir(&env.dir);
    let out = run_bounded(cmd, Duration::from_secs(300));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let results = text
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect();
    (results, text)
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn programs_work_under_the_default_profile() {
    require_root();
    if !Path::new("/usr/bin/apt-get").exists() || !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipping: this host is not the Debian the check expects");
        return;
    }
    let env = Env::new("sc-progs");
    let progs = programs_dir();
    let b = debian_bundle(&env, &progs);
    let (results, text) = run_programs(&env, &b);
    eprintln!("under husk's default profile:\n{text}");
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "busybox",
        "coreutils",
        "apt",
        "python3",
        "perl",
        "go-static",
        "rust-threads-epoll",
        "node",
        "java",
    ] {
        assert!(names.contains(&want), "no result for {want}:\n{text}");
    }
    let failed: Vec<&(String, String)> = results
        .iter()
        .filter(|(_, r)| r != "0" && r != "skipped")
        .collect();
    if failed.is_empty() {
        return;
    }
    // Which of these fail only because of the profile?
    b.edit(|c| c["annotations"] = json!({"dev.husk.seccomp-baseline": "off"}));
    let (without, text_off) = run_programs(&env, &b);
    let newly: Vec<&String> = failed
        .iter()
        .filter(|(n, _)| without.iter().any(|(m, r)| m == n && r == "0"))
        .map(|(n, _)| n)
        .collect();
    panic!(
        "failing under the default profile: {failed:?}; of these, working without husk's \
         additions (newly failing): {newly:?}\nwithout:\n{text_off}"
    );
}
