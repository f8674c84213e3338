//! Signals husk's stand-ins (`run`, `exec`, waiters, boot) pass on to the
//! container process they stand for.

use nix::sys::signal::{SigSet, Signal};

pub const FORWARD: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// [`FORWARD`] as a signal set (to block before waiting on a signalfd).
pub fn forward_mask() -> SigSet {
    let mut mask = SigSet::empty();
    for s in FORWARD {
        mask.add(*s);
    }
    mask
}
