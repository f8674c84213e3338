//! Crash safety: kill -9 of any husk process at any point of create,
//! start, exec or delete leaves nothing `delete --force` cannot clean up.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Delays (ms) at which processes are killed; bounded for CI.
const DELAYS: &[u64] = &[0, 1, 2, 4, 6, 8, 10, 12, 15, 20, 30];

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn reap(mut c: Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() > deadline => {
                let _ = c.kill();
                let _ = c.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A helper process of this env whose argv has `word` (" boot "), or, for
/// " gofer ", the gofer (a fork of `husk create`, known by its name).
fn helper(env: &Env, word: &str) -> Option<i32> {
    env.runtime_processes().into_iter().find(|p| {
        if word == " gofer " {
            return std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "husk-gofer");
        }
        std::fs::read(format!("/proc/{p}/cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(word)
            })
            .unwrap_or(false)
    })
}

/// After the fault: `delete --force` works and nothing is left.
fn settle(env: &Env, id: &str, what: &str) {
    let out = env.husk(&["delete", "--force", id]);
    assert!(
        out.status.success(),
        "{what}: delete --force failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_no_leftovers(id);
}

fn spawn(env: &Env, args: &[&str]) -> Child {
    let mut c = env.cmd(args);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c.spawn().unwrap()
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn killing_any_husk_process_leaves_nothing_delete_cannot_clean() {
    require_root();
    let env = Env::new("faults");
    let b = env.bundle(&["sleep", "1000"]);
    let bundle = b.arg();

    for &d in DELAYS {
        // The CLI's create, at every point.
        let id = env.id("kcreate");
        let c = spawn(&env, &["create", "--bundle", &bundle, &id]);
        std::thread::sleep(Duration::from_millis(d));
        kill9(c.id() as i32);
        reap(c);
        settle(&env, &id, &format!("create killed after {d} ms"));

        // The gofer and boot while a create runs.
        for who in [" gofer ", " boot "] {
            let id = env.id("khelper");
            let c = spawn(&env, &["create", "--bundle", &bundle, &id]);
            let t = Instant::now();
            let mut victim = None;
            while victim.is_none() && t.elapsed() < Duration::from_secs(2) {
                victim = helper(&env, who);
            }
            std::thread::sleep(Duration::from_millis(d / 2));
            if let Some(p) = victim {
                kill9(p);
            }
            reap(c);
            settle(&env, &id, &format!("{who} killed {d} ms into create"));
        }

        // The CLI's start, and boot during start.
        for kill_boot in [false, true] {
            let id = env.id("kstart");
            env.ok(&["create", "--bundle", &bundle, &id]);
            let boot = helper(&env, " boot ");
            let c = spawn(&env, &["start", &id]);
            std::thread::sleep(Duration::from_millis(d / 2));
            if kill_boot {
                if let Some(p) = boot {
                    kill9(p);
                }
            } else {
                kill9(c.id() as i32);
            }
            reap(c);
            // Whatever happened, the state tells the truth.
            let st = env.status(&id);
            assert!(
                ["created", "running", "stopped"].contains(&st.as_str()),
                "after start was cut off: {st}"
            );
            settle(
                &env,
                &id,
                &format!("start cut off after {d} ms (boot: {kill_boot})"),
            );
        }

        // exec -d with a stand-in, killed; and delete, killed.
        let id = env.id("kexec");
        env.ok(&["run", "-d", "--bundle", &bundle, &id]);
        let pf = env.dir.join(format!("exec-{d}.pid"));
        let c = spawn(
            &env,
            &[
                "exec",
                "-d",
                "--pid-file",
                pf.to_str().unwrap(),
                &id,
                "sleep",
                "1000",
            ],
        );
        std::thread::sleep(Duration::from_millis(d));
        kill9(c.id() as i32);
        reap(c);
        let c = spawn(&env, &["delete", "--force", &id]);
        std::thread::sleep(Duration::from_millis(d / 3));
        kill9(c.id() as i32);
        reap(c);
        settle(&env, &id, &format!("exec and delete cut off after {d} ms"));
    }
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A pod's boot outlives its members' accidents: killed creates, forced
/// deletes of running members. It keeps no descriptor of theirs, and their
/// ids can be used again.
#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn a_pods_boot_survives_its_members_accidents() {
    require_root();
    let env = Env::new("podfaults");
    let root = env.id("pod");
    let rb = env.bundle(&["sleep", "1000"]);
    rb.edit(|c| {
        c["annotations"] = serde_json::json!({"io.kubernetes.cri.container-type": "sandbox"})
    });
    env.ok(&["run", "-d", "--bundle", &rb.arg(), &root]);
    let boot = helper(&env, " boot ").expect("boot");
    let mb = env.bundle(&["sleep", "1000"]);
    mb.edit(|c| {
        c["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": root
        })
    });
    let member = mb.arg();
    // Settle boot's own descriptors (views, first connections) first.
    let m = env.id("m");
    env.ok(&["run", "-d", "--bundle", &member, &m]);
    env.ok(&["delete", "--force", &m]);
    let baseline = fd_count(boot);
    for &d in DELAYS {
        let m = env.id("m");
        let c = spawn(&env, &["create", "--bundle", &member, &m]);
        std::thread::sleep(Duration::from_millis(d));
        kill9(c.id() as i32);
        reap(c);
        let out = env.husk(&["delete", "--force", &m]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A running member deleted by force; then its id again.
    let m = env.id("m");
    env.ok(&["run", "-d", "--bundle", &member, &m]);
    env.ok(&["delete", "--force", &m]);
    env.ok(&["run", "-d", "--bundle", &member, &m]);
    env.ok(&["delete", "--force", &m]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count(boot) > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        fd_count(boot) <= baseline,
        "boot holds {} descriptors, {baseline} before",
        fd_count(boot)
    );
    env.ok(&["delete", "--force", &root]);
    env.assert_no_leftovers(&root);
}
