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

/// Who this program image is, decided once, at the first question: (lives
/// in the initial user namespace, is root there). Both answers come from
/// the same moment, so a helper forked from the CLI (the gofer) that later
/// joins a user namespace and becomes root there keeps its caller's
/// answers if the caller had asked, and gets the right ones otherwise.
fn identity() -> (bool, bool) {
    static IDENTITY: OnceLock<(bool, bool)> = OnceLock::new();
    *IDENTITY.get_or_init(|| {
        let initial = std::fs::read_to_string("/proc/self/uid_map")
            .map(|t| is_initial_map(&t))
            // Without /proc there is no telling; assume the common case.
            .unwrap_or(true);
        (initial, initial && nix::unistd::geteuid().is_root())
    })
}

/// Whether the calling process lives in the initial user namespace.
pub fn in_initial_userns() -> bool {
    identity().0
}

/// Whether the calling process is root of the initial user namespace: the
/// only caller whose capabilities reach the whole host. Anyone else (a
/// normal user, or root of a user namespace such as rootless podman's) is
/// rootless.
pub fn is_host_root() -> bool {
    identity().1
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
