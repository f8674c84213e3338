//! The runtime options containerd sends with `Create` (and on `start`'s
//! stdin). For a runtime type other than runc's, the CRI sends
//! `runtimeoptions.v1.Options { type_url = 1, config_path = 2 }` (both
//! strings), which the protos crate does not carry; it is decoded here.
//! `ctr run --runtime-config-path` sends the same message.

use std::path::PathBuf;

use crate::config::ShimConfig;

/// The full name of `runtimeoptions.v1.Options` (containerd's typeurl uses
/// it bare, or behind a `…/` prefix).
const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";

/// The shim configuration the options name (defaults when there is none).
pub fn shim_config(type_url: &str, value: &[u8]) -> Result<ShimConfig, String> {
    let ours = type_url == RUNTIME_OPTIONS
        || type_url
            .rsplit_once('/')
            .is_some_and(|(_, name)| name == RUNTIME_OPTIONS);
    if !ours {
        // No options, or runc's (a handler of runtime_type husk with runc
        // options): nothing of ours.
        return Ok(ShimConfig::default());
    }
    match config_path(value)? {
        Some(p) => ShimConfig::from_file(&p),
        None => Ok(ShimConfig::default()),
    }
}

/// `config_path` (field 2) of an encoded `runtimeoptions.v1.Options`.
pub fn config_path(mut buf: &[u8]) -> Result<Option<PathBuf>, String> {
    let bad = || "runtime options: malformed runtimeoptions.v1.Options".to_string();
    let mut path = None;
    while !buf.is_empty() {
        let tag = varint(&mut buf).ok_or_else(bad)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint(&mut buf).ok_or_else(bad)?;
            }
            1 => buf = buf.get(8..).ok_or_else(bad)?,
            5 => buf = buf.get(4..).ok_or_else(bad)?,
            2 => {
                let len = usize::try_from(varint(&mut buf).ok_or_else(bad)?).map_err(|_| bad())?;
                let (value, rest) = (buf.get(..len).ok_or_else(bad)?, &buf[len..]);
                if field == 2 {
                    let s = std::str::from_utf8(value).map_err(|_| bad())?;
                    path = (!s.is_empty()).then(|| PathBuf::from(s));
                }
                buf = rest;
            }
            _ => return Err(bad()),
        }
    }
    Ok(path)
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u8, s: &str) -> Vec<u8> {
        let mut v = vec![(n << 3) | 2, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn decodes_config_path() {
        let mut msg = field(1, "io.containerd.husk.v1.Options");
        msg.extend(field(2, "/etc/husk/shim.toml"));
        assert_eq!(
            config_path(&msg).unwrap(),
            Some(PathBuf::from("/etc/husk/shim.toml"))
        );
        assert_eq!(config_path(&field(1, "x")).unwrap(), None);
        assert_eq!(config_path(&[]).unwrap(), None);
        assert!(config_path(&[0x12, 0x05, b'a']).is_err());
    }

    #[test]
    fn other_options_mean_defaults() {
        assert_eq!(
            shim_config("containerd.runc.v1.Options", b"\x08\x01").unwrap(),
            ShimConfig::default()
        );
        assert_eq!(shim_config("", b"").unwrap(), ShimConfig::default());
    }
}
