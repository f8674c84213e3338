//! The devices every container gets (runtime spec, "Default Devices").

pub struct DefaultDevice {
    pub name: &'static str,
    pub major: u64,
    pub minor: u64,
}

/// /dev/null, zero, full, random, urandom and tty, in that order.
pub const DEFAULT_DEVICES: &[DefaultDevice] = &[
    DefaultDevice {
        name: "null",
        major: 1,
        minor: 3,
    },
    DefaultDevice {
        name: "zero",
        major: 1,
        minor: 5,
    },
    DefaultDevice {
        name: "full",
        major: 1,
        minor: 7,
    },
    DefaultDevice {
        name: "random",
        major: 1,
        minor: 8,
    },
    DefaultDevice {
        name: "urandom",
        major: 1,
        minor: 9,
    },
    DefaultDevice {
        name: "tty",
        major: 5,
        minor: 0,
    },
];
