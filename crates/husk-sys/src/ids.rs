//! Who the calling process is, as far as privileges go: root of the
//! initial user namespace, or not.

use std::sync::OnceLock;

/// Whether `uid_map` text is the initial user namespace's identity map
/// ("0 0 4294967295").
pub fn is_initial_map(text: &str) -> bool {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first: Vec<&str> = match lines.next() {
        Some(l) => l.split_whitespace().collect(),
        None => return false,
    };
    lines.next().is_none() && first == ["0", "0", "4294967295"]
}

/// Whether the calling process lives in the initial user namespace.
pub fn in_initial_userns() -> bool {
    static INITIAL: OnceLock<bool> = OnceLock::new();
    *INITIAL.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|t| is_initial_map(&t))
            // Without /proc there is no telling; assume the common case.
            .unwrap_or(true)
    })
}

/// Whether the calling process is root of the initial user namespace: the
/// only caller whose capabilities reach the whole host. Anyone else (a
/// normal user, or root of a user namespace such as rootless podman's) is
/// rootless.
///
/// Decided once per program image: a helper forked from the CLI (the gofer)
/// keeps its caller's answer even after it has joined a user namespace and
/// become root there, since what it may do on the host is its caller's.
pub fn is_host_root() -> bool {
    static HOST_ROOT: OnceLock<bool> = OnceLock::new();
    *HOST_ROOT.get_or_init(|| nix::unistd::geteuid().is_root() && in_initial_userns())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_map() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map("0 1000 1\n"));
        assert!(!is_initial_map("0 1000 1\n1 100000 65536\n"));
        assert!(!is_initial_map(""));
    }
}
