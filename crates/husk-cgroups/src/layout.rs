//! The host's cgroup hierarchies, parsed from `/proc/self/mountinfo`, and the
//! calling process's own cgroups, parsed from `/proc/self/cgroup`.
//!
//! Three layouts are recognised:
//! * legacy (v1 only): one `cgroup` mount per hierarchy, possibly co-mounted
//!   ("cpu,cpuacct"), plus named hierarchies such as `name=systemd`;
//! * hybrid: v1 mounts plus a `cgroup2` mount (usually `/sys/fs/cgroup/unified`)
//!   holding whatever controllers v1 did not claim (often none, here hugetlb);
//! * unified (v2 only): a single `cgroup2` mount.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::util;
use super::Result;

/// The v1 controller names we recognise in a `cgroup` mount's super options.
/// Anything else there (rw, xattr, clone_children, release_agent=, ...) is a mount option.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// How the host's cgroups are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 hierarchies plus a cgroup2 mount.
    Hybrid,
    /// Only cgroup2.
    Unified,
    /// No cgroup filesystem is mounted at all.
    None,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mountpoint: PathBuf,
    /// The cgroup shown at the mountpoint (mountinfo field 4); `/` unless bind-mounted
    /// from a sub-cgroup (common inside containers without a cgroup namespace).
    pub root: PathBuf,
    /// v1: the controllers (e.g. `["cpu","cpuacct"]`, `["name=systemd"]`);
    /// v2: the root's `cgroup.controllers`.
    pub controllers: Vec<String>,
    /// Whether this is the cgroup2 hierarchy.
    pub v2: bool,
    /// Mounted read-only (as in most containers): unusable for creating cgroups.
    pub read_only: bool,
}

/// All cgroup hierarchies of the host, as seen by this process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub mode: Mode,
    pub hierarchies: Vec<Hierarchy>,
}

static CACHED: OnceLock<Layout> = OnceLock::new();

/// The host's cgroup layout. Reads `/proc/self/mountinfo` (and the cgroup2 root's
/// `cgroup.controllers`) once per process; later calls return a copy of the cached value.
/// Use [`Layout::load`] to force a fresh read.
pub fn layout() -> Result<Layout> {
    if let Some(l) = CACHED.get() {
        return Ok(l.clone());
    }
    let l = Layout::load()?;
    Ok(CACHED.get_or_init(|| l).clone())
}

impl Layout {
    /// Read and parse the current mount table (uncached).
    pub fn load() -> Result<Layout> {
        let text = util::read(Path::new("/proc/self/mountinfo"))?;
        Ok(Layout::parse(&text, |mnt| {
            util::read_raw(&mnt.join("cgroup.controllers"))
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        }))
    }

    /// Parse mountinfo text. `v2_controllers` returns the controller list of a cgroup2
    /// mountpoint (injected so tests need no filesystem).
    pub fn parse(mountinfo: &str, v2_controllers: impl Fn(&Path) -> Vec<String>) -> Layout {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some(m) = parse_mount_line(line) else {
                continue;
            };
            let h = match m.fstype {
                "cgroup2" => {
                    if hierarchies.iter().any(|h| h.v2) {
                        continue; // first cgroup2 mount wins
                    }
                    let mountpoint = PathBuf::from(&m.mountpoint);
                    Hierarchy {
                        controllers: v2_controllers(&mountpoint),
                        mountpoint,
                        root: PathBuf::from(&m.root),
                        v2: true,
                        read_only: m.read_only,
                    }
                }
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty()
                        || hierarchies
                            .iter()
                            .any(|h| !h.v2 && h.controllers == controllers)
                    {
                        continue; // not a real hierarchy, or a second mount of one we have
                    }
                    Hierarchy {
                        mountpoint: PathBuf::from(&m.mountpoint),
                        root: PathBuf::from(&m.root),
                        controllers,
                        v2: false,
                        read_only: m.read_only,
                    }
                }
                _ => continue,
            };
            hierarchies.push(h);
        }
        let has_v1 = hierarchies.iter().any(|h| !h.v2);
        let has_v2 = hierarchies.iter().any(|h| h.v2);
        let mode = match (has_v1, has_v2) {
            (true, true) => Mode::Hybrid,
            (true, false) => Mode::Legacy,
            (false, true) => Mode::Unified,
            (false, false) => Mode::None,
        };
        Layout { mode, hierarchies }
    }

    /// The hierarchy that holds `controller` (v1 first; on a hybrid host a controller
    /// can only be bound to one of them anyway).
    pub fn hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .filter(|h| !h.v2)
            .chain(self.hierarchies.iter().filter(|h| h.v2))
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// The cgroup2 hierarchy, if mounted.
    pub fn unified(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.v2)
    }
}

struct MountLine<'a> {
    root: String,
    mountpoint: String,
    read_only: bool,
    fstype: &'a str,
    super_opts: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_mount_line(line: &str) -> Option<MountLine<'_>> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let _id = l.next()?;
    let _parent = l.next()?;
    let _dev = l.next()?;
    let root = l.next()?;
    let mountpoint = l.next()?;
    let opts = l.next()?;
    let mut r = right.split(' ');
    let fstype = r.next()?;
    if fstype != "cgroup" && fstype != "cgroup2" {
        return None;
    }
    let _source = r.next()?;
    let super_opts = r.next().unwrap_or("");
    Some(MountLine {
        root: unescape(root),
        mountpoint: unescape(mountpoint),
        read_only: opts.split(',').any(|o| o == "ro"),
        fstype,
        super_opts,
    })
}

/// Undo mountinfo's octal escapes (`\040` for space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    pub id: u32,
    /// Empty for the cgroup2 line (`0::/path`).
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

/// Parse `/proc/<pid>/cgroup` text.
pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let id = it.next()?.parse().ok()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let path = path.strip_suffix(" (deleted)").unwrap_or(path);
            Some(ProcCgroup {
                id,
                controllers: ctrls
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// The entry of `entries` that describes hierarchy `h`.
pub(crate) fn proc_entry_for<'a>(
    entries: &'a [ProcCgroup],
    h: &Hierarchy,
) -> Option<&'a ProcCgroup> {
    if h.v2 {
        return entries
            .iter()
            .find(|e| e.id == 0 && e.controllers.is_empty());
    }
    entries
        .iter()
        .find(|e| e.controllers == h.controllers)
        .or_else(|| {
            entries
                .iter()
                .find(|e| e.controllers.iter().any(|c| h.controllers.contains(c)))
        })
}

/// Read `/proc/self/cgroup`.
pub(crate) fn read_self_cgroup() -> Result<String> {
    util::read(Path::new("/proc/self/cgroup"))
}

impl Hierarchy {
    /// The directory of cgroup `path` (as named in /proc/<pid>/cgroup, i.e. relative to the
    /// hierarchy root) in this mount, accounting for a mount whose root is a sub-cgroup.
    pub(crate) fn dir_of_proc_path(&self, path: &Path) -> PathBuf {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        if rel.as_os_str().is_empty() {
            self.mountpoint.clone()
        } else {
            self.mountpoint.join(rel)
        }
    }
}

/// mountinfo fixtures shared by the unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    pub(crate) const HYBRID: &str = "\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    pub(crate) const LEGACY: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
30 26 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
31 26 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
32 26 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
33 26 0:31 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpuset,clone_children
34 26 0:32 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,hugetlb
35 26 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
36 26 0:34 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,freezer
37 26 0:35 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,devices
38 26 0:36 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,blkio
39 26 0:37 / /sys/fs/cgroup/perf_event rw,nosuid,nodev,noexec,relatime shared:21 - cgroup cgroup rw,perf_event
40 26 0:38 /docker/abc /mnt/extra\\040dir rw,relatime - cgroup cgroup rw,memory
";

    pub(crate) const UNIFIED: &str = "\
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
27 24 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn v2_ctrls(_: &Path) -> Vec<String> {
        "cpuset cpu io memory hugetlb pids rdma misc"
            .split(' ')
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn hybrid_layout() {
        let l = Layout::parse(HYBRID, |_| vec!["hugetlb".to_string()]);
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(l.hierarchies.len(), 10);
        let sd = l.hierarchy("name=systemd").unwrap();
        assert_eq!(sd.mountpoint, Path::new("/sys/fs/cgroup/systemd"));
        assert!(!sd.v2);
        let h = l.hierarchy("hugetlb").unwrap();
        assert!(h.v2);
        assert_eq!(h.mountpoint, Path::new("/sys/fs/cgroup/unified"));
        assert!(l.hierarchy("net_cls").is_none());
        assert_eq!(l.unified().unwrap().controllers, vec!["hugetlb"]);
    }

    #[test]
    fn legacy_layout_with_comount_and_named() {
        let l = Layout::parse(LEGACY, |_| vec![]);
        assert_eq!(l.mode, Mode::Legacy);
        let cpu = l.hierarchy("cpu").unwrap();
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(cpu.mountpoint, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.hierarchy("cpuacct").unwrap().mountpoint, cpu.mountpoint);
        let sd = l.hierarchy("name=systemd").unwrap();
        assert_eq!(sd.controllers, vec!["name=systemd"]);
        let cs = l.hierarchy("cpuset").unwrap();
        assert_eq!(cs.controllers, vec!["cpuset"]); // clone_children is an option
                                                    // the second memory mount (bind of a sub-cgroup) is ignored
        assert_eq!(
            l.hierarchy("memory").unwrap().mountpoint,
            Path::new("/sys/fs/cgroup/memory")
        );
        assert_eq!(l.hierarchies.len(), 11);
        assert!(l.unified().is_none());
    }

    #[test]
    fn unified_layout() {
        let l = Layout::parse(UNIFIED, v2_ctrls);
        assert_eq!(l.mode, Mode::Unified);
        assert_eq!(l.hierarchies.len(), 1);
        let h = l.hierarchy("memory").unwrap();
        assert!(h.v2);
        assert_eq!(h.mountpoint, Path::new("/sys/fs/cgroup"));
        assert!(l.hierarchy("devices").is_none());
        assert!(l.hierarchy("freezer").is_none());
    }

    #[test]
    fn no_cgroups_and_read_only() {
        let l = Layout::parse("1 2 0:1 / / rw - ext4 /dev/vda rw\n", |_| vec![]);
        assert_eq!(l.mode, Mode::None);
        let ro = "27 24 0:25 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";
        let l = Layout::parse(ro, |_| vec![]);
        assert!(l.hierarchies[0].read_only);
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/plain"), "/plain");
        let l = Layout::parse(LEGACY, |_| vec![]);
        assert!(!l
            .hierarchies
            .iter()
            .any(|h| h.mountpoint == Path::new("/mnt/extra dir")));
        let m = parse_mount_line(
            "40 26 0:38 /docker/abc /mnt/extra\\040dir rw,relatime - cgroup cgroup rw,memory",
        )
        .unwrap();
        assert_eq!(m.mountpoint, "/mnt/extra dir");
        assert_eq!(m.root, "/docker/abc");
    }

    #[test]
    fn proc_cgroup() {
        let text =
            "9:name=systemd:/\n4:memory:/process_api/5022d7\n2:cpu,cpuacct:/a\n0::/x/y (deleted)\n";
        let e = parse_proc_cgroup(text);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].controllers, vec!["name=systemd"]);
        assert_eq!(e[1].path, Path::new("/process_api/5022d7"));
        assert_eq!(e[2].controllers, vec!["cpu", "cpuacct"]);
        assert!(e[3].controllers.is_empty());
        assert_eq!(e[3].path, Path::new("/x/y"));
        let l = Layout::parse(LEGACY, |_| vec![]);
        let cpu = l.hierarchy("cpuacct").unwrap();
        assert_eq!(proc_entry_for(&e, cpu).unwrap().path, Path::new("/a"));
        let h = Hierarchy {
            mountpoint: "/m".into(),
            root: "/docker/abc".into(),
            controllers: vec!["memory".into()],
            v2: false,
            read_only: false,
        };
        assert_eq!(
            h.dir_of_proc_path(Path::new("/docker/abc/x")),
            Path::new("/m/x")
        );
        assert_eq!(
            h.dir_of_proc_path(Path::new("/docker/abc")),
            Path::new("/m")
        );
        assert_eq!(
            h.dir_of_proc_path(Path::new("/other")),
            Path::new("/m/other")
        );
    }
}
