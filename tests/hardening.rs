//! Hardening: the control plane survives slow, stuck and hostile clients;
//! a local user controls nothing of a sandbox whatever the umask; state
//! that cannot be read does not block `delete --force`.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use husk::control::{wire, Request, Response};

fn boot_pid(env: &Env, id: &str) -> i32 {
    let p = env.dir.join(format!("{id}.boot.pid"));
    let _ = p;
    env.runtime_processes()
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("boot"))
                .unwrap_or(false)
        })
        .expect("boot runs")
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU ticks (user + system) a process has used.
fn cpu_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = &s[s.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
}

/// Every command a client needs keeps answering promptly.
fn assert_responsive(env: &Env, id: &str, during: &str) {
    for args in [
        vec!["exec", id, "true"],
        vec!["kill", id, "0"],
        vec!["state", id],
        vec!["ps", id],
    ] {
        let t = Instant::now();
        env.ok(&args);
        let el = t.elapsed();
        assert!(
            el < Duration::from_secs(1),
            "{args:?} took {el:?} during {during}"
        );
    }
}

/// `n` connections to boot's socket, each parked in a Wait its client
/// never reads.
fn parked_waits(sock: &std::path::Path, id: &str, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|_| {
            let c = UnixStream::connect(sock).unwrap();
            wire::send(
                &c,
                &Request::Wait {
                    id: id.to_string(),
                    kill_on_close: false,
                },
                &[],
            )
            .unwrap();
            c
        })
        .collect()
}

fn raise_nofile() {
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        hard.min(1 << 15),
        hard,
    );
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn control_plane_survives_slow_stuck_and_hostile_clients() {
    require_root();
    raise_nofile();
    let env = Env::new("ctlplane");
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("cp");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let boot = boot_pid(&env, &id);
    let sock = env.root.join(&id).join("sandbox.sock");
    let baseline_fds = fd_count(boot);

    // A slow loris: a byte every second, never a whole request.
    let slow = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            let mut c = UnixStream::connect(&sock).unwrap();
            for _ in 0..6 {
                if c.write_all(b"\x20").is_err() {
                    return true; // boot closed it
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            false
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert_responsive(&env, &id, "a slow-loris client");

    // 2,000 parked waits, never polled by their clients.
    let t0 = cpu_ticks(boot);
    let mut parked = parked_waits(&sock, &id, 2000);
    std::thread::sleep(Duration::from_millis(500));
    assert_responsive(&env, &id, "2,000 parked waits");
    // 10,000 garbage frames, each on its own connection.
    for i in 0..10_000u32 {
        if let Ok(mut c) = UnixStream::connect(&sock) {
            let junk: &[u8] = match i % 3 {
                0 => b"\x05\x00\x00\x00{\"x\":",
                1 => b"\xff\xff\xff\x7fgarbage",
                _ => b"\x03\x00\x00\x00abc",
            };
            let _ = c.write_all(junk);
        }
    }
    assert_responsive(&env, &id, "10,000 garbage frames");
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(boot) - t0;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    // All of the above is real work; what must not happen is spinning.
    assert!(
        used < 5 * hz,
        "boot used {used} ticks ({hz}/s) for the load"
    );
    let idle0 = cpu_ticks(boot);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        cpu_ticks(boot) - idle0 <= hz / 10,
        "boot is busy with 2,000 parked waits and nothing to do"
    );
    // The parked waits are answered when the container ends.
    drop(parked.split_off(10));
    assert!(slow.join().unwrap(), "the slow loris was never cut off");
    env.ok(&["kill", &id, "KILL"]);
    for c in &parked {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (r, _) = wire::recv::<Response, _>(c).unwrap();
        assert!(matches!(r, Response::Exited { .. }), "{r:?}");
    }
    drop(parked);
    let _ = baseline_fds;
    env.ok(&["delete", &id]);
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn boot_gives_back_descriptors_when_clients_go() {
    require_root();
    raise_nofile();
    let env = Env::new("ctlfds");
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("fd");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let boot = boot_pid(&env, &id);
    let sock = env.root.join(&id).join("sandbox.sock");
    let before = fd_count(boot);
    let conns = parked_waits(&sock, &id, 1500);
    std::thread::sleep(Duration::from_millis(500));
    assert!(fd_count(boot) >= before + 1000, "waits are parked");
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count(boot) > before {
        assert!(
            Instant::now() < deadline,
            "boot holds {} descriptors, {before} before the clients came",
            fd_count(boot)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_responsive(&env, &id, "after the clients left");
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}

/// A user other than the sandbox's creator reaches nothing, even when
/// husk runs under umask 000.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn local_users_cannot_reach_a_sandbox_even_under_umask_000() {
    require_root();
    let env = Env::new("umask");
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("um");
    let mut c = env.cmd(&["run", "-d", "--bundle", &b.arg(), &id]);
    // pre_exec-free umask: through the shell.
    let argv: Vec<String> = std::iter::once(c.get_program().to_string_lossy().into_owned())
        .chain(c.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect();
    let line = argv
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    c = Command::new("sh");
    c.args(["-c", &format!("umask 000; exec {line}")]);
    let o = run_bounded(c, Duration::from_secs(30));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = env.root.join(&id);
    assert_eq!(mode(&env.root), 0o711, "root directory");
    assert_eq!(mode(&dir), 0o700, "container directory");
    assert_eq!(mode(&dir.join("sandbox.sock")) & 0o077, 0, "control socket");
    assert_eq!(mode(&dir.join("state.json")) & 0o077, 0, "state file");

    // As nobody: no connection to the sandbox, no exec, no planted state.
    let as_nobody = |script: &str| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ]);
        run_bounded(c, Duration::from_secs(20))
    };
    let sock = dir.join("sandbox.sock");
    let o = as_nobody(&format!(
        "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"{}\")' && echo CONNECTED",
        sock.display()
    ));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("CONNECTED"),
        "an unprivileged user reached the control socket"
    );
    let o = as_nobody(&format!(
        "{HUSK} --root {} exec {id} id",
        env.root.display()
    ));
    assert!(
        !o.status.success(),
        "an unprivileged user exec'd into the container"
    );
    let o = as_nobody(&format!(
        "echo '{{}}' > {}/planted.json && echo PLANTED",
        dir.display()
    ));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("PLANTED"));
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}

/// A state file that cannot be read (empty, garbage, truncated) does not
/// block `delete --force`: the processes, cgroups and directory go.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn corrupt_state_does_not_block_a_forced_delete() {
    require_root();
    let env = Env::new("corrupt");
    for (what, content) in [
        ("empty", &b""[..]),
        ("garbage", &b"\x00\x01garbage{"[..]),
        (
            "truncated",
            &b"{\"runtime\":\"husk\",\"id\":\"x\",\"cgr"[..],
        ),
    ] {
        let b = env.bundle(&["sleep", "1000"]);
        let id = env.id(what);
        env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
        let state = env.root.join(&id).join("state.json");
        std::fs::write(&state, content).unwrap();
        let err = env.fails(&["delete", &id]);
        assert_one_line(&err);
        env.ok(&["delete", "--force", &id]);
        env.assert_no_leftovers(&id);
    }
}
