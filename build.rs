//! Build facts the code needs:
//!
//! - Integration tests that drive real containers need root. A build made
//!   as another user marks them ignored ("needs root"), so a run shows how
//!   many it did not run instead of passing them silently.
//! - The git commit husk is built from, for `husk --version` (`commit:
//!   ...`, as runc prints it). Outside a git checkout, or without git, it
//!   says "unknown"; `HUSK_COMMIT` in the environment wins (for
//!   packagers).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(husk_root_tests)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=USER");
    println!("cargo::rerun-if-env-changed=SUDO_UID");
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        });
    if euid.as_deref() == Some("0") {
        println!("cargo::rustc-cfg=husk_root_tests");
    }

    println!("cargo::rerun-if-env-changed=HUSK_COMMIT");
    let commit = std::env::var("HUSK_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=HUSK_COMMIT={commit}");
    // Run again when HEAD moves: HEAD itself (a branch switch) and the
    // branch it names (a commit), wherever this worktree keeps them (only
    // files that exist: a missing one would rerun this every build).
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(name) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &name]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for p in watch.into_iter().flatten() {
        if std::path::Path::new(&p).exists() {
            println!("cargo::rerun-if-changed={p}");
        }
    }
}
