//! Clocks that std does not expose.

use std::io;
use std::time::Duration;

/// CLOCK_BOOTTIME: time since the host booted, counting suspend. The clock
/// behind `/proc/uptime` and the start times in `/proc/<pid>/stat`.
pub fn boottime() -> io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec into the one we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(test)]
mod tests {
    #[test]
    fn boottime_moves_forward() {
        let a = super::boottime().unwrap();
        let b = super::boottime().unwrap();
        assert!(b >= a);
        assert!(a > std::time::Duration::ZERO);
    }
}
