//! /proc that reflects the container's limits: the views boot serves over
//! FUSE, as a container sees them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn fuse_available() -> bool {
    if std::path::Path::new("/dev/fuse").exists() {
        true
    } else {
        eprintln!("skipping: no /dev/fuse");
        false
    }
}

fn meminfo_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn views_show_the_containers_limits() {
    require_root();
    if !fuse_available() {
        return;
    }
    let env = Env::new("views");
    let b = env.bundle(&[
        "sh",
        "-c",
        "cat /proc/meminfo; echo ---; nproc; cat /sys/devices/system/cpu/online; \
         grep -c ^processor /proc/cpuinfo; grep -c '^cpu[0-9]' /proc/stat; echo ---; \
         sleep 1.2; cat /proc/uptime; cat /proc/swaps",
    ]);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64u64 << 20});
        c["linux"]["resources"]["cpu"] = json!({"cpus": "0"});
    });
    let id = env.id("v");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id]);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert_eq!(meminfo_kb(parts[0], "MemTotal"), 65536, "{}", parts[0]);
    assert!(meminfo_kb(parts[0], "MemAvailable") <= 65536);
    assert!(meminfo_kb(parts[0], "MemFree") <= 65536);
    let cpus: Vec<&str> = parts[1].lines().collect();
    assert_eq!(
        cpus,
        ["1", "0", "1", "1"],
        "nproc, online, cpuinfo, stat:\n{out}"
    );
    let uptime: f64 = parts[2].split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        (1.0..10.0).contains(&uptime),
        "uptime {uptime} is not seconds since the container started"
    );

    // Off by annotation: the host's numbers.
    let host_total = meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "MemTotal",
    );
    let b = env.bundle(&["cat", "/proc/meminfo"]);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64u64 << 20});
        c["annotations"] = json!({"dev.husk.proc-views": "off"});
    });
    let id2 = env.id("v");
    let out = env.ok(&["run", "--bundle", &b.arg(), &id2]);
    assert_eq!(meminfo_kb(&out, "MemTotal"), host_total);
    env.assert_no_leftovers(&id);
    env.assert_no_leftovers(&id2);
}

fn cpu_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = &s[s.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
}

fn boot_of(env: &Env) -> i32 {
    env.runtime_processes()
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c).contains(" boot ")
                        || String::from_utf8_lossy(&c).contains("\0boot\0")
                })
                .unwrap_or(false)
        })
        .expect("boot runs")
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn reading_views_in_a_tight_loop_costs_boot_little() {
    require_root();
    if !fuse_available() {
        return;
    }
    let env = Env::new("viewcpu");
    // A reader that never stops; the test watches it for 10 s.
    let b = env.bundle(&["sh", "-c", "while :; do cat /proc/meminfo >/dev/null; done"]);
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 64u64 << 20}));
    let id = env.id("vc");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let boot = boot_of(&env);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let t0 = cpu_ticks(boot);
    std::thread::sleep(Duration::from_secs(10));
    let used = cpu_ticks(boot) - t0;
    // < 5% of 10 s.
    assert!(
        used * 100 < 5 * 10 * hz,
        "boot used {used} ticks ({hz}/s) serving /proc views for 10 s"
    );
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leftovers(&id);
}

#[test]
#[cfg_attr(not(husk_root_tests), ignore = "needs root")]
fn views_fail_rather_than_hang_when_their_server_dies() {
    require_root();
    if !fuse_available() {
        return;
    }
    let env = Env::new("viewkill");
    let b = env.bundle(&["sh", "-c", "while :; do cat /proc/meminfo >/dev/null; done"]);
    let id = env.id("vk");
    env.ok(&["run", "-d", "--bundle", &b.arg(), &id]);
    let boot = boot_of(&env);
    std::thread::sleep(Duration::from_millis(300));
    // The server (boot) dies: its readers are not stuck, the container
    // stops, delete cleans up.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(boot),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t = Instant::now();
    env.wait_status(&id, "stopped", 5);
    assert!(t.elapsed() < Duration::from_secs(5));
    env.ok(&["delete", &id]);
    env.assert_no_leftovers(&id);
}
