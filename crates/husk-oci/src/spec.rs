//! Reading, validating and generating OCI runtime specs (`config.json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::json;

use crate::error::{Error, IoContext, Result};

/// What a spec asks of the sandbox it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodRole {
    /// A new sandbox whose id is the container's id.
    Root,
    /// Join the running sandbox with this id.
    Sub { sandbox_id: String },
}

/// Load `<bundle>/config.json` and validate it for this runtime. Warnings are
/// logged; anything husk cannot honour is an error naming the field.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).with_ctx(|| format!("read {}", path.display()))?;
    let spec: Spec = serde_json::from_slice(&text).map_err(|e| {
        // A seccomp profile with an unknown action, operator, architecture
        // or flag: name the field rather than a line and column.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) {
            if let Some(sc) = v.get("linux").and_then(|l| l.get("seccomp")) {
                if let Err(se) = husk_seccomp::check_json(sc) {
                    return Error::Spec(format!("{}: {se}", path.display()));
                }
            }
        }
        Error::Spec(format!("parse {}: {}", path.display(), short_serde(&e)))
    })?;
    validate(&spec)?;
    Ok(spec)
}

/// serde's "unknown variant" errors list every allowed value; keep the part
/// that names the offending one.
fn short_serde(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match (s.find(", expected one of"), s.rfind(" at line ")) {
        (Some(cut), Some(pos)) if cut < pos => format!("{}{}", &s[..cut], &s[pos..]),
        _ => s,
    }
}

pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("config.json: process is required".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Spec(
            "config.json: process.args must name a program".into(),
        ));
    }
    for (i, kv) in process.env().iter().flatten().enumerate() {
        if !kv.contains('=') {
            return Err(Error::Spec(format!(
                "config.json: process.env[{i}] {kv:?} is not of the form KEY=VALUE"
            )));
        }
    }
    if process
        .selinux_label()
        .as_ref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(Error::Spec(
            "config.json: process.selinuxLabel is set: SELinux is not supported".into(),
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::Spec(format!(
            "config.json: process.cwd {:?} is not an absolute path",
            process.cwd()
        )));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Spec("config.json: root is required".into()))?;
    if root.path().as_os_str().is_empty() {
        return Err(Error::Spec("config.json: root.path is empty".into()));
    }
    if let Some(linux) = spec.linux() {
        if let Some(label) = linux.mount_label().as_deref().filter(|l| !l.is_empty()) {
            // Without SELinux a label means nothing to the kernel: files
            // are not labelled anywhere on this host, so the container is
            // no less confined than its neighbours. With SELinux, husk
            // could not apply it: refuse.
            if selinux_enabled() {
                return Err(Error::Spec(
                    "config.json: linux.mountLabel is set: husk does not support SELinux".into(),
                ));
            }
            tracing::warn!(
                "linux.mountLabel {label:?} ignored: SELinux is not enabled on this host"
            );
        }
        if let Some(nss) = linux.namespaces() {
            let mut seen = Vec::new();
            for ns in nss {
                if seen.contains(&ns.typ()) {
                    let name = serde_json::to_value(ns.typ())
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| format!("{:?}", ns.typ()));
                    return Err(Error::Spec(format!(
                        "config.json: linux.namespaces lists {name:?} twice"
                    )));
                }
                seen.push(ns.typ());
            }
            let has_userns = seen.contains(&LinuxNamespaceType::User);
            if !has_userns
                && (linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
                    || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()))
            {
                return Err(Error::Spec(
                    "config.json: linux.uidMappings/gidMappings need a user namespace".into(),
                ));
            }
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(Error::Spec(format!(
                "config.json: mounts[{i}].destination {:?} is not an absolute path",
                m.destination()
            )));
        }
    }
    if process
        .apparmor_profile()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
        && !apparmor_enabled()
    {
        tracing::warn!(
            "process.apparmorProfile {:?} ignored: AppArmor is not enabled on this host",
            process.apparmor_profile().as_deref().unwrap_or_default()
        );
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        // Which namespaces the container owns is settled in the sandbox;
        // here, only that each name is a namespaced one at all.
        for key in sysctl.keys() {
            crate::sysctl::check_sysctl(key, true, true, true)?;
        }
    }
    pod_role(spec)?;
    Ok(())
}

/// Whether the host runs SELinux (selinuxfs mounted where libselinux
/// looks for it).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

const CRI_TYPE: &str = "io.kubernetes.cri.container-type";
const CRI_SANDBOX: &str = "io.kubernetes.cri.sandbox-id";
const CRIO_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
const CRIO_SANDBOX: &str = "io.kubernetes.cri-o.SandboxID";

/// Decide from containerd's or CRI-O's annotations whether this container
/// starts a sandbox or joins one.
pub fn pod_role(spec: &Spec) -> Result<PodRole> {
    let empty = HashMap::new();
    let ann = spec.annotations().as_ref().unwrap_or(&empty);
    let pick = |type_key: &str, id_key: &str| -> Result<Option<PodRole>> {
        match ann.get(type_key).map(String::as_str) {
            None => Ok(None),
            Some("sandbox") => Ok(Some(PodRole::Root)),
            Some("container") => match ann.get(id_key) {
                Some(id) if !id.is_empty() => Ok(Some(PodRole::Sub {
                    sandbox_id: id.clone(),
                })),
                _ => Err(Error::Spec(format!(
                    "config.json: annotation {type_key}=container needs {id_key}"
                ))),
            },
            Some(other) => Err(Error::Spec(format!(
                "config.json: annotation {type_key} has unknown value {other:?}"
            ))),
        }
    };
    let cri = pick(CRI_TYPE, CRI_SANDBOX)?;
    let crio = pick(CRIO_TYPE, CRIO_SANDBOX)?;
    match (cri, crio) {
        (Some(a), Some(b)) if a != b => Err(Error::Spec(format!(
            "config.json: annotations {CRI_TYPE}/{CRI_SANDBOX} and {CRIO_TYPE}/{CRIO_SANDBOX} disagree"
        ))),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Ok(PodRole::Root),
    }
}

/// The device cgroup rules every container gets after the spec's own
/// (`linux.resources.devices`), in runc's order: mknod of any character or
/// block device, then /dev/null, random, full, tty, zero, urandom, every
/// pty (136:*), /dev/ptmx and /dev/net/tun.
///
/// Nodes listed in `linux.devices` are created in the container but get no
/// rule of their own: creating a node never grants access to it. A spec
/// that denies everything and creates /dev/kmsg leaves /dev/kmsg
/// unusable, as with runc; a spec that wants access says so in
/// `linux.resources.devices`.
pub const DEFAULT_DEVICE_RULES: &[(char, Option<i64>, Option<i64>, &str)] = &[
    ('c', None, None, "m"),
    ('b', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"),
    ('c', Some(1), Some(8), "rwm"),
    ('c', Some(1), Some(7), "rwm"),
    ('c', Some(5), Some(0), "rwm"),
    ('c', Some(1), Some(5), "rwm"),
    ('c', Some(1), Some(9), "rwm"),
    ('c', Some(136), None, "rwm"),
    ('c', Some(5), Some(2), "rwm"),
    ('c', Some(10), Some(200), "rwm"),
];

/// Append [`DEFAULT_DEVICE_RULES`] to the spec's `linux.resources.devices`.
pub fn add_default_device_rules(spec: &mut Spec) {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
    let Some(linux) = spec.linux_mut().as_mut() else {
        return;
    };
    let extra: Vec<LinuxDeviceCgroup> = DEFAULT_DEVICE_RULES
        .iter()
        .filter_map(|(t, major, minor, access)| {
            serde_json::from_value(json!({
                "allow": true,
                "type": t.to_string(),
                "major": major,
                "minor": minor,
                "access": access,
            }))
            .ok()
        })
        .collect();
    let mut res = linux
        .resources()
        .clone()
        .unwrap_or_else(LinuxResources::default);
    let mut devs = res.devices().clone().unwrap_or_default();
    devs.extend(extra);
    res.set_devices(Some(devs));
    linux.set_resources(Some(res));
}

/// The absolute path of the rootfs for `bundle`.
pub fn rootfs_path(bundle: &Path, spec: &Spec) -> PathBuf {
    let p = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    if p.is_absolute() {
        p
    } else {
        bundle.join(p)
    }
}

/// The default `config.json` that `husk spec` writes: what `runc spec`
/// writes (namespaces, mounts, capabilities, device rules; the hostname is
/// "husk" where runc's is "runc"), so bundles made with either behave the
/// same. husk's extras are in [`add_extras`].
pub fn default_spec(rootless: bool) -> serde_json::Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "network"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "husk",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": namespaces.clone(),
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        namespaces.retain(|n| n["type"] != "network");
        namespaces.push(json!({"type": "user"}));
        let linux = &mut spec["linux"];
        linux["namespaces"] = json!(namespaces);
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux.as_object_mut().unwrap().remove("resources");
        let mounts = spec["mounts"].as_array_mut().unwrap();
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["destination"] == "/dev/pts" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
        }
    }
    spec
}

/// `husk spec --extras`: what husk recommends beyond runc's defaults. A
/// cgroup namespace: the container sees its own cgroup as the root of
/// /proc/self/cgroup. (husk gives every container one whether the spec
/// asks or not; listing it makes the bundle say so to other runtimes.)
pub fn add_extras(spec: &mut serde_json::Value) {
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        if !nss.iter().any(|n| n["type"] == "cgroup") {
            nss.push(json!({"type": "cgroup"}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_from(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_spec_parses_and_validates() {
        let s = spec_from(default_spec(false));
        validate(&s).unwrap();
        assert_eq!(pod_role(&s).unwrap(), PodRole::Root);
        let r = spec_from(default_spec(true));
        validate(&r).unwrap();
    }

    #[test]
    fn missing_process_is_rejected() {
        let mut v = default_spec(false);
        v.as_object_mut().unwrap().remove("process");
        let err = validate(&spec_from(v)).unwrap_err().to_string();
        assert!(err.contains("process is required"), "{err}");
    }

    #[test]
    fn selinux_label_is_rejected() {
        let mut v = default_spec(false);
        v["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
        let err = validate(&spec_from(v)).unwrap_err().to_string();
        assert!(err.contains("SELinux is not supported"), "{err}");
    }

    #[test]
    fn default_device_rules_follow_the_specs() {
        let mut s = spec_from(default_spec(false));
        add_default_device_rules(&mut s);
        let devs = s
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert!(!devs[0].allow(), "the spec's deny-all stays first");
        assert!(devs
            .iter()
            .any(|d| d.allow() && d.major() == Some(1) && d.minor() == Some(3)));
        assert!(devs
            .iter()
            .any(|d| d.allow() && d.major() == Some(136) && d.minor().is_none()));
        assert_eq!(devs.len(), 1 + DEFAULT_DEVICE_RULES.len());
    }

    #[test]
    fn created_devices_get_no_rule() {
        // runc's behaviour, and the only safe one: linux.devices makes the
        // node, linux.resources.devices alone decides access to it.
        let mut v = default_spec(false);
        v["linux"]["devices"] = json!([
            {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11},
            {"path": "/dev/fifo", "type": "p"}
        ]);
        let mut s = spec_from(v);
        add_default_device_rules(&mut s);
        let devs = s
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert!(!devs
            .iter()
            .any(|d| d.major() == Some(1) && d.minor() == Some(11)));
        assert!(!devs
            .iter()
            .any(|d| d.typ() == Some(oci_spec::runtime::LinuxDeviceType::P)));
        assert_eq!(devs.len(), 1 + DEFAULT_DEVICE_RULES.len());
    }

    #[test]
    fn pod_annotations() {
        let mut v = default_spec(false);
        v["annotations"] = json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": "pod1"
        });
        assert_eq!(
            pod_role(&spec_from(v.clone())).unwrap(),
            PodRole::Sub {
                sandbox_id: "pod1".into()
            }
        );
        v["annotations"]["io.kubernetes.cri-o.ContainerType"] = json!("sandbox");
        assert!(pod_role(&spec_from(v.clone())).is_err());
        v["annotations"] = json!({
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.cri-o.SandboxID": "pod2"
        });
        assert_eq!(
            pod_role(&spec_from(v.clone())).unwrap(),
            PodRole::Sub {
                sandbox_id: "pod2".into()
            }
        );
        v["annotations"] = json!({"io.kubernetes.cri.container-type": "container"});
        assert!(pod_role(&spec_from(v)).is_err());
    }

    #[test]
    fn unknown_capability_error_is_short_and_names_it() {
        let mut v = default_spec(false);
        v["process"]["capabilities"]["bounding"] = json!(["CAP_NOPE"]);
        let text = serde_json::to_vec(&v).unwrap();
        let e = serde_json::from_slice::<Spec>(&text).unwrap_err();
        let s = short_serde(&e);
        assert!(s.contains("CAP_NOPE"), "{s}");
        assert!(!s.contains("expected one of"), "{s}");
    }
}
