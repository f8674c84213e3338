//! Parsing a spec mount's `options` into what the new mount API wants:
//! mount attributes for mount_setattr/fsmount, propagation, and the
//! filesystem's own parameters for fsconfig.

use oci_spec::runtime::Mount;

use husk_sys::mount::{
    Attrs, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME,
};

pub use husk_sys::mount::{MS_PRIVATE, MS_SHARED, MS_SLAVE, MS_UNBINDABLE};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Attributes of the top mount.
    pub attrs: Attrs,
    /// Attributes of the whole tree ("rro", "rnosuid", ...).
    pub rec_attrs: Attrs,
    pub bind: bool,
    /// "rbind": clone the whole tree under the source.
    pub recursive: bool,
    /// (MS_* propagation type, applies to the whole tree)
    pub propagation: Option<(u64, bool)>,
    /// Filesystem parameters for fsconfig: (key, value); no value = flag.
    pub data: Vec<(String, Option<String>)>,
    /// "idmap"/"ridmap": an ID-mapped mount (recursive for ridmap).
    pub idmap: Option<bool>,
}

fn flag(attrs: &mut Attrs, bit: u64, on: bool) {
    if on {
        attrs.set |= bit;
        attrs.clear &= !bit;
    } else {
        attrs.clear |= bit;
        attrs.set &= !bit;
    }
}

fn atime(attrs: &mut Attrs, mode: u64) {
    attrs.clear |= MOUNT_ATTR__ATIME;
    attrs.set = (attrs.set & !MOUNT_ATTR__ATIME) | mode;
}

/// Apply one attribute option ("ro", "nosuid", ...) to `a`; false if the
/// option is not an attribute.
fn attr_option(a: &mut Attrs, opt: &str) -> bool {
    match opt {
        "ro" => flag(a, MOUNT_ATTR_RDONLY, true),
        "rw" => flag(a, MOUNT_ATTR_RDONLY, false),
        "nosuid" => flag(a, MOUNT_ATTR_NOSUID, true),
        "suid" => flag(a, MOUNT_ATTR_NOSUID, false),
        "nodev" => flag(a, MOUNT_ATTR_NODEV, true),
        "dev" => flag(a, MOUNT_ATTR_NODEV, false),
        "noexec" => flag(a, MOUNT_ATTR_NOEXEC, true),
        "exec" => flag(a, MOUNT_ATTR_NOEXEC, false),
        "nodiratime" => flag(a, MOUNT_ATTR_NODIRATIME, true),
        "diratime" => flag(a, MOUNT_ATTR_NODIRATIME, false),
        "nosymfollow" => flag(a, MOUNT_ATTR_NOSYMFOLLOW, true),
        "symfollow" => flag(a, MOUNT_ATTR_NOSYMFOLLOW, false),
        "noatime" => atime(a, MOUNT_ATTR_NOATIME),
        "relatime" => atime(a, MOUNT_ATTR_RELATIME),
        "strictatime" => atime(a, MOUNT_ATTR_STRICTATIME),
        "norelatime" | "atime" => atime(a, MOUNT_ATTR_STRICTATIME),
        _ => return false,
    }
    true
}

pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let opt = opt.as_str();
        if attr_option(&mut o.attrs, opt) {
            continue;
        }
        if let Some(rest) = opt.strip_prefix('r') {
            if rest != "bind" && attr_option(&mut o.rec_attrs, rest) {
                continue;
            }
        }
        match opt {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive = true;
            }
            "private" => o.propagation = Some((MS_PRIVATE, false)),
            "rprivate" => o.propagation = Some((MS_PRIVATE, true)),
            "shared" => o.propagation = Some((MS_SHARED, false)),
            "rshared" => o.propagation = Some((MS_SHARED, true)),
            "slave" => o.propagation = Some((MS_SLAVE, false)),
            "rslave" => o.propagation = Some((MS_SLAVE, true)),
            "unbindable" => o.propagation = Some((MS_UNBINDABLE, false)),
            "runbindable" => o.propagation = Some((MS_UNBINDABLE, true)),
            "idmap" => o.idmap = Some(false),
            "ridmap" => o.idmap = Some(true),
            // Options with no meaning for the kernel.
            "defaults" | "async" | "tmpcopyup" | "remount" | "loud" | "nomand" => {}
            _ if opt.starts_with("x-") || opt.starts_with("X-") => {}
            _ => match opt.split_once('=') {
                Some((k, v)) => o.data.push((k.to_string(), Some(v.to_string()))),
                None => o.data.push((opt.to_string(), None)),
            },
        }
    }
    o
}

/// Whether a spec mount is a bind mount (type "bind", or a "bind"/"rbind"
/// option whatever the type says).
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> MountOptions {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn attributes_and_data() {
        let o = p(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "newinstance",
        ]);
        assert_eq!(o.attrs.set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME);
        assert_eq!(o.attrs.clear, MOUNT_ATTR__ATIME);
        assert_eq!(
            o.data,
            vec![
                ("mode".to_string(), Some("755".to_string())),
                ("size".to_string(), Some("65536k".to_string())),
                ("newinstance".to_string(), None),
            ]
        );
        assert!(!o.bind);
    }

    #[test]
    fn bind_recursive_and_propagation() {
        let o = p(&["rbind", "rro", "rprivate", "nodev"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.rec_attrs.set, MOUNT_ATTR_RDONLY);
        assert_eq!(o.attrs.set, MOUNT_ATTR_NODEV);
        assert_eq!(o.propagation, Some((MS_PRIVATE, true)));
    }

    #[test]
    fn later_option_wins() {
        let o = p(&["ro", "rw"]);
        assert_eq!(o.attrs.set & MOUNT_ATTR_RDONLY, 0);
        assert_eq!(o.attrs.clear & MOUNT_ATTR_RDONLY, MOUNT_ATTR_RDONLY);
    }
}
