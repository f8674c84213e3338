//! Giving memory back when a long-lived husk process goes idle.
//!
//! boot runs most of husk's code while it builds a container and then waits
//! for requests for hours. The pages of the binary it touched stay mapped,
//! and with one sandbox on the machine they are all its own in PSS terms.
//! Text and read-only data of the executable are clean, file-backed pages:
//! dropping them from the page table (MADV_DONTNEED) frees nothing in the
//! page cache but removes them from this process's footprint; a later
//! request faults the code it needs back in from the page cache. Pages the
//! loader wrote (relocations) are never touched: only mappings of the
//! executable with no anonymous (copied) pages are dropped.

use std::os::unix::fs::MetadataExt;

extern "C" {
    fn malloc_trim(pad: libc::size_t) -> libc::c_int;
}

/// Drop the executable's clean code and read-only data from our page
/// table, and return free heap to the kernel.
pub fn trim_idle() {
    // Through our own procfs: boot's /proc shows its container's.
    let Ok(exe) = crate::process::open_own_proc("exe", libc::O_RDONLY)
        .and_then(|f| std::fs::File::from(f).metadata())
    else {
        return;
    };
    let (dev, ino) = (exe.dev(), exe.ino());
    let Ok(smaps) = crate::process::open_own_proc("smaps", libc::O_RDONLY)
        .and_then(|f| std::io::read_to_string(std::fs::File::from(f)))
    else {
        return;
    };
    let mut current: Option<(usize, usize, bool)> = None;
    let mut ranges = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                let perms = f.next().unwrap_or("");
                let offset = f.next().and_then(|o| u64::from_str_radix(o, 16).ok());
                let devs = f.next().unwrap_or("");
                let inode: u64 = f.next().and_then(|i| i.parse().ok()).unwrap_or(0);
                let ours = inode == ino && inode != 0 && same_dev(devs, dev);
                let clean_kind = perms == "r-xp" || (perms == "r--p" && offset == Some(0));
                current = (ours && clean_kind).then_some((start, end, true));
                continue;
            }
        }
        if first == "Anonymous:" {
            if let Some((s, e, _)) = current.take() {
                if f.next() == Some("0") {
                    ranges.push((s, e));
                }
            }
        }
    }
    for (s, e) in ranges {
        // SAFETY: the range is a private, read-only mapping of our own
        // executable without any copied-on-write page: dropping it only
        // makes the next access fault the same file contents back in.
        unsafe { libc::madvise(s as *mut libc::c_void, e - s, libc::MADV_DONTNEED) };
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { malloc_trim(0) };
}

/// "fe:00" from /proc/self/smaps against st_dev.
fn same_dev(field: &str, dev: u64) -> bool {
    let Some((maj, min)) = field.split_once(':') else {
        return false;
    };
    let (Ok(maj), Ok(min)) = (u64::from_str_radix(maj, 16), u64::from_str_radix(min, 16)) else {
        return false;
    };
    nix::sys::stat::major(dev) == maj && nix::sys::stat::minor(dev) == min
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resident_pages() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn trimming_keeps_the_process_working() {
        let before = resident_pages();
        trim_idle();
        // Code and data still work after the trim.
        let v: Vec<String> = (0..1000).map(|i| format!("{i}")).collect();
        assert_eq!(v[999], "999");
        let after = resident_pages();
        assert!(
            after <= before + 64,
            "rss grew from {before} to {after} pages"
        );
    }
}
