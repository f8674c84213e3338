//! Small, allocation-light helpers for reading and writing cgroupfs files.
//!
//! cgroupfs and procfs files are tiny and report a size of 0 or 4096, so
//! `std::fs::read_to_string` (which stats the file first) is replaced by a
//! plain open + read loop: one syscall fewer per access.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use super::{CgroupError, Result};

/// Go-style, lower-case text of an OS error ("no such file or directory").
pub(crate) fn os_msg(e: &io::Error) -> String {
    husk_sys::errno_text(e)
}

/// Whether the error means "the file or directory is not there".
pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Read a small file completely.
pub(crate) fn read_raw(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut buf = Vec::with_capacity(256);
    f.read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Read a small file, mapping failures to a one-line [`CgroupError::Io`].
pub(crate) fn read(path: &Path) -> Result<String> {
    read_raw(path).map_err(|err| CgroupError::Io {
        op: "read",
        path: path.to_path_buf(),
        err,
    })
}

/// Read a file holding one unsigned number; "max" reads as `u64::MAX`.
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    let s = read_raw(path).ok()?;
    parse_u64_or_max(s.trim())
}

/// Parse a decimal u64, "max" as `u64::MAX`. Negative values (v1 "-1") read as `u64::MAX` too.
pub(crate) fn parse_u64_or_max(s: &str) -> Option<u64> {
    if s == "max" || s == "-1" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Write `value` to an existing cgroup file with a single write(2).
/// Returns the failing operation ("open" or "write") with the error.
pub(crate) fn write_raw(
    path: &Path,
    value: &str,
) -> std::result::Result<(), (&'static str, io::Error)> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| ("open", e))?;
    f.write_all(value.as_bytes()).map_err(|e| ("write", e))
}

/// Write a value, mapping failures to [`CgroupError::Io`].
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|(op, err)| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        err,
    })
}

/// Write a value on behalf of a spec field, mapping failures to [`CgroupError::FieldIo`].
pub(crate) fn write_field(field: &str, path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|(op, err)| CgroupError::FieldIo {
        field: field.to_string(),
        op,
        path: path.to_path_buf(),
        err,
    })
}

/// Iterate "key value" lines (memory.stat, cpu.stat, memory.events, ...).
pub(crate) fn kv_lines(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|l| {
        let mut it = l.split_whitespace();
        let k = it.next()?;
        let v = it.next()?.parse().ok()?;
        Some((k, v))
    })
}

/// The value of one key in a "key value" file, if present.
pub(crate) fn kv_get(text: &str, key: &str) -> Option<u64> {
    kv_lines(text).find(|(k, _)| *k == key).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_messages_are_go_style() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(os_msg(&e), "no such file or directory");
        let e = io::Error::from_raw_os_error(libc::EBUSY);
        assert_eq!(os_msg(&e), "device or resource busy");
    }

    #[test]
    fn kv_parsing() {
        let t = "cache 10\nrss 20\nbogus\nx y\n";
        assert_eq!(kv_get(t, "rss"), Some(20));
        assert_eq!(kv_get(t, "x"), None);
        assert_eq!(kv_lines(t).count(), 2);
        assert_eq!(parse_u64_or_max("max"), Some(u64::MAX));
        assert_eq!(parse_u64_or_max("12"), Some(12));
    }
}
