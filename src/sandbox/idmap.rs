//! Writing the uid_map and gid_map of a new user namespace (boot's).
//!
//! Root writes any mapping itself. A user without the host's root may
//! write only one line that maps its own id; anything more goes through
//! the setuid helpers `newuidmap` and `newgidmap` (Debian's `uidmap`
//! package), which allow the ranges `/etc/subuid` and `/etc/subgid` grant
//! the user. Before asking them, husk checks the grant itself, so that a
//! refusal names what is missing instead of the helper's terse words.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{errno_text, Error, Result};

/// One line of a map: container id, host id, size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub inside: u64,
    pub host: u64,
    pub size: u64,
}

/// Parse uid_map text ("inside host size" lines).
pub fn parse_map(text: &str) -> Vec<Range> {
    text.lines()
        .filter_map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            match v[..] {
                [inside, host, size] => Some(Range { inside, host, size }),
                _ => None,
            }
        })
        .collect()
}

/// Which ids a map is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Uid => "uid_map",
            Kind::Gid => "gid_map",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Kind::Uid => "linux.uidMappings",
            Kind::Gid => "linux.gidMappings",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            Kind::Uid => "newuidmap",
            Kind::Gid => "newgidmap",
        }
    }
    fn sub_file(self) -> &'static str {
        match self {
            Kind::Uid => "/etc/subuid",
            Kind::Gid => "/etc/subgid",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Kind::Uid => "uids",
            Kind::Gid => "gids",
        }
    }
    fn own(self) -> u64 {
        match self {
            Kind::Uid => nix::unistd::geteuid().as_raw() as u64,
            Kind::Gid => nix::unistd::getegid().as_raw() as u64,
        }
    }
}

/// The ranges `/etc/subuid` (or subgid) text grants the user named `name`
/// with id `id`: lines `name:start:count` or `id:start:count`.
pub fn granted(text: &str, name: Option<&str>, id: u64) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let mine = Some(who) == name || who.parse::<u64>().ok() == Some(id);
            if !mine {
                return None;
            }
            Some((start.trim().parse().ok()?, count.trim().parse().ok()?))
        })
        .collect()
}

/// Whether `r` is inside one of `grants` (start, count).
fn covered(r: &Range, grants: &[(u64, u64)]) -> bool {
    grants
        .iter()
        .any(|&(start, count)| r.host >= start && r.host + r.size <= start + count)
}

/// The user's name, for the subordinate id files and for messages.
fn user_name(uid: u64) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid as u32))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Why the helper would refuse `map` for our user (None: it would not).
/// `subid_text` is the content of /etc/subuid or /etc/subgid (None when
/// the file cannot be read).
pub fn refusal(kind: Kind, map: &[Range], subid_text: Option<&str>) -> Option<String> {
    let own = kind.own();
    // The subordinate files name the user, whose name is looked up by uid
    // for both kinds (newgidmap does the same).
    let uid = Kind::Uid.own();
    let name = user_name(uid);
    let who = name.clone().unwrap_or_else(|| uid.to_string());
    let grants = subid_text
        .map(|t| granted(t, name.as_deref(), uid))
        .unwrap_or_default();
    let total: u64 = map.iter().map(|r| r.size).sum();
    let bad: Vec<&Range> = map
        .iter()
        .filter(|r| {
            let own_id = r.size == 1 && r.host == own;
            !own_id && !covered(r, &grants)
        })
        .collect();
    if bad.is_empty() {
        return None;
    }
    let file = kind.sub_file();
    if grants.is_empty() && total == 1 {
        return Some(format!(
            "{}: host {} {} is not user {who}'s own ({own}), and {file} grants user {who} no subordinate {}",
            kind.field(),
            match kind {
                Kind::Uid => "uid",
                Kind::Gid => "gid",
            },
            bad[0].host,
            kind.noun()
        ));
    }
    if grants.is_empty() {
        return Some(format!(
            "{}: no subordinate {} for user {who} in {file}; the spec maps {total} ids (a user may map only its own {} {own} without them)",
            kind.field(),
            kind.noun(),
            match kind {
                Kind::Uid => "uid",
                Kind::Gid => "gid",
            }
        ));
    }
    let have: Vec<String> = grants
        .iter()
        .map(|(s, c)| format!("{s}-{}", s + c - 1))
        .collect();
    let r = bad[0];
    Some(format!(
        "{}: host ids {}-{} are not among user {who}'s subordinate {} in {file} ({})",
        kind.field(),
        r.host,
        r.host + r.size - 1,
        kind.noun(),
        have.join(", ")
    ))
}

fn write_direct(pid: i32, kind: Kind, text: &str) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/{}", kind.file()), text).map_err(|e| {
        Error::Sandbox(format!(
            "{}: write {}: {}",
            kind.field(),
            text.trim().replace('\n', ", "),
            errno_text(&e)
        ))
    })
}

/// Find a helper on the usual paths (not $PATH: it runs setuid root).
fn helper_path(kind: Kind) -> Option<&'static Path> {
    let candidates: &[&'static str] = match kind {
        Kind::Uid => &[
            "/usr/bin/newuidmap",
            "/bin/newuidmap",
            "/usr/sbin/newuidmap",
        ],
        Kind::Gid => &[
            "/usr/bin/newgidmap",
            "/bin/newgidmap",
            "/usr/sbin/newgidmap",
        ],
    };
    candidates.iter().map(Path::new).find(|p| p.is_file())
}

fn write_with_helper(pid: i32, kind: Kind, map: &[Range]) -> Result<()> {
    let subid = std::fs::read_to_string(kind.sub_file()).ok();
    if let Some(why) = refusal(kind, map, subid.as_deref()) {
        return Err(Error::Privilege(why));
    }
    let Some(helper) = helper_path(kind) else {
        return Err(Error::Privilege(format!(
            "{}: mapping more than one's own id takes {} (Debian's uidmap package), which is not installed",
            kind.field(),
            kind.helper()
        )));
    };
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for r in map {
        cmd.args([r.inside.to_string(), r.host.to_string(), r.size.to_string()]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            Error::Sandbox(format!(
                "{}: run {}: {}",
                kind.field(),
                helper.display(),
                errno_text(&e)
            ))
        })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Privilege(format!(
            "{}: {} refused ({}): {msg}",
            kind.field(),
            kind.helper(),
            out.status
        )));
    }
    Ok(())
}

/// Write the maps of process `pid`, which is in a new user namespace.
pub fn write(pid: i32, uid_map: &str, gid_map: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        // Root (of the host, or of the user namespace we are in: rootless
        // podman's) writes any map of ids it has itself.
        write_direct(pid, Kind::Uid, uid_map)?;
        return write_direct(pid, Kind::Gid, gid_map);
    }
    let uids = parse_map(uid_map);
    let gids = parse_map(gid_map);
    let own_only =
        |map: &[Range], kind: Kind| matches!(map, [r] if r.size == 1 && r.host == kind.own());
    if own_only(&uids, Kind::Uid) {
        write_direct(pid, Kind::Uid, uid_map)?;
    } else {
        write_with_helper(pid, Kind::Uid, &uids)?;
    }
    if own_only(&gids, Kind::Gid) {
        // Only a privileged writer may leave setgroups(2) allowed.
        let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
        write_direct(pid, Kind::Gid, gid_map)
    } else {
        write_with_helper(pid, Kind::Gid, &gids)
    }
}

/// Whether the caller may write `uid_map`/`gid_map` itself or through the
/// helpers, checked before anything is made (`create` fails early, naming
/// what is missing).
pub fn check(uid_map: &str, gid_map: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    for (kind, text) in [(Kind::Uid, uid_map), (Kind::Gid, gid_map)] {
        let map = parse_map(text);
        if matches!(&map[..], [r] if r.size == 1 && r.host == kind.own()) {
            continue;
        }
        let subid = std::fs::read_to_string(kind.sub_file()).ok();
        if let Some(why) = refusal(kind, &map, subid.as_deref()) {
            return Err(Error::Privilege(why));
        }
        if helper_path(kind).is_none() {
            return Err(Error::Privilege(format!(
                "{}: mapping more than one's own id takes {} (Debian's uidmap package), which is not installed",
                kind.field(),
                kind.helper()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_and_grants() {
        assert_eq!(
            parse_map("0 1000 1\n1 100000 65536\n"),
            vec![
                Range {
                    inside: 0,
                    host: 1000,
                    size: 1
                },
                Range {
                    inside: 1,
                    host: 100000,
                    size: 65536
                }
            ]
        );
        let text = "alice:100000:65536\n1001:300000:10\nbob:200000:65536\n";
        assert_eq!(granted(text, Some("alice"), 1000), vec![(100000, 65536)]);
        assert_eq!(granted(text, Some("carol"), 1001), vec![(300000, 10)]);
        assert!(granted(text, Some("dave"), 7).is_empty());
    }

    #[test]
    fn coverage() {
        let g = [(100000, 65536)];
        assert!(covered(
            &Range {
                inside: 1,
                host: 100000,
                size: 65536
            },
            &g
        ));
        assert!(!covered(
            &Range {
                inside: 1,
                host: 100000,
                size: 65537
            },
            &g
        ));
        assert!(!covered(
            &Range {
                inside: 1,
                host: 99999,
                size: 2
            },
            &g
        ));
    }

    #[test]
    fn refusals_name_what_is_missing() {
        let me = Kind::Uid.own();
        let map = [Range {
            inside: 0,
            host: 200000,
            size: 65536,
        }];
        let why = refusal(Kind::Uid, &map, Some("")).unwrap();
        assert!(why.contains("no subordinate uids for user"), "{why}");
        assert!(why.contains("/etc/subuid"), "{why}");
        assert!(why.contains("maps 65536 ids"), "{why}");
        let text = format!("{me}:100000:65536\n");
        let why = refusal(Kind::Uid, &map, Some(&text)).unwrap();
        assert!(why.contains("host ids 200000-265535"), "{why}");
        assert!(why.contains("100000-165535"), "{why}");
        let ok = [
            Range {
                inside: 0,
                host: me,
                size: 1,
            },
            Range {
                inside: 1,
                host: 100000,
                size: 65536,
            },
        ];
        assert_eq!(refusal(Kind::Uid, &ok, Some(&text)), None);
    }
}
