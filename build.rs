//! Integration tests that drive real containers need root. A build made as
//! another user marks them ignored ("needs root"), so a run shows how many
//! it did not run instead of passing them silently.

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
}
