//! The few pieces of the kernel's FUSE protocol (`<linux/fuse.h>`, 7.x) a
//! read-only filesystem of a handful of files needs: request header and
//! arguments in, replies out. Native byte order, as the kernel writes them.

pub const ROOT_ID: u64 = 1;

// Opcodes.
pub const LOOKUP: u32 = 1;
pub const FORGET: u32 = 2;
pub const GETATTR: u32 = 3;
pub const OPEN: u32 = 14;
pub const READ: u32 = 15;
pub const STATFS: u32 = 17;
pub const RELEASE: u32 = 18;
pub const FLUSH: u32 = 25;
pub const INIT: u32 = 26;
pub const OPENDIR: u32 = 27;
pub const READDIR: u32 = 28;
pub const RELEASEDIR: u32 = 29;
pub const INTERRUPT: u32 = 36;
pub const DESTROY: u32 = 38;
pub const BATCH_FORGET: u32 = 42;
pub const READDIRPLUS: u32 = 44;

// INIT flags (fuse_init_in.flags / flags2 << 32).
pub const ASYNC_READ: u64 = 1 << 0;
pub const AUTO_INVAL_DATA: u64 = 1 << 12;
pub const DO_READDIRPLUS: u64 = 1 << 13;
pub const ABORT_ERROR: u64 = 1 << 21;
pub const MAX_PAGES: u64 = 1 << 22;
pub const INIT_EXT: u64 = 1 << 30;
pub const REQUEST_TIMEOUT: u64 = 1 << 42;

// OPEN reply flags.
pub const FOPEN_KEEP_CACHE: u32 = 1 << 1;
pub const FOPEN_CACHE_DIR: u32 = 1 << 3;

/// The oldest protocol we speak: 7.23 has zero-message opens (an OPEN
/// answered ENOSYS) and the 64-byte INIT reply.
pub const MIN_MINOR: u32 = 23;
/// The newest we know: 7.43 has the request timeout in the INIT reply.
pub const MAX_MINOR: u32 = 43;

pub const IN_HEADER: usize = 40;
/// Reply size (checked by the server's tests).
#[cfg(test)]
pub const OUT_HEADER: usize = 16;
pub const ATTR_SIZE: usize = 88;
pub const ENTRY_OUT: usize = 40 + ATTR_SIZE;
/// Reply size (checked by the server's tests).
#[cfg(test)]
pub const ATTR_OUT: usize = 16 + ATTR_SIZE;
pub const INIT_OUT: usize = 64;
/// Reply size (checked by the server's tests).
#[cfg(test)]
pub const STATFS_OUT: usize = 80;
/// Reply size (checked by the server's tests).
#[cfg(test)]
pub const OPEN_OUT: usize = 16;

/// The kernel refuses reads of /dev/fuse into less than this (and than a
/// header + max_write, which we keep at 4096).
pub const READ_BUFFER: usize = 8192 + 4096;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `struct fuse_in_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InHeader {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub total_extlen: u16,
}

impl InHeader {
    pub fn parse(b: &[u8]) -> Option<InHeader> {
        if b.len() < IN_HEADER {
            return None;
        }
        Some(InHeader {
            len: u32_at(b, 0)?,
            opcode: u32_at(b, 4)?,
            unique: u64_at(b, 8)?,
            nodeid: u64_at(b, 16)?,
            uid: u32_at(b, 24)?,
            gid: u32_at(b, 28)?,
            pid: u32_at(b, 32)?,
            total_extlen: u16_at(b, 36)?,
        })
    }
}

/// Appends native-endian fields to a reply buffer.
pub struct Out<'a>(pub &'a mut Vec<u8>);

impl Out<'_> {
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
}

/// Start a reply: the out header with its length filled in by [`finish`].
pub fn begin(buf: &mut Vec<u8>, unique: u64, error: i32) {
    buf.clear();
    Out(buf).u32(0).u32(error as u32).u64(unique);
}

/// Fill in the reply's total length.
pub fn finish(buf: &mut [u8]) {
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
}

/// `struct fuse_attr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub time: (u64, u32),
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Attr {
    pub fn write(&self, o: &mut Out<'_>) {
        o.u64(self.ino)
            .u64(self.size)
            .u64(self.size.div_ceil(512))
            .u64(self.time.0)
            .u64(self.time.0)
            .u64(self.time.0)
            .u32(self.time.1)
            .u32(self.time.1)
            .u32(self.time.1)
            .u32(self.mode)
            .u32(self.nlink)
            .u32(self.uid)
            .u32(self.gid)
            .u32(0) // rdev
            .u32(4096) // blksize
            .u32(0); // flags
    }
}

/// Seconds and nanoseconds of a validity period.
pub fn valid(d: std::time::Duration) -> (u64, u32) {
    (d.as_secs(), d.subsec_nanos())
}

/// `struct fuse_dirent` (name padded to 8 bytes).
pub fn dirent(buf: &mut Vec<u8>, ino: u64, next_off: u64, typ: u32, name: &[u8]) {
    Out(buf)
        .u64(ino)
        .u64(next_off)
        .u32(name.len() as u32)
        .u32(typ);
    buf.extend_from_slice(name);
    let pad = (8 - (name.len() % 8)) % 8;
    buf.resize(buf.len() + pad, 0);
}

pub fn dirent_size(name: &[u8]) -> usize {
    (24 + name.len()).div_ceil(8) * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut b = Vec::new();
        Out(&mut b)
            .u32(48)
            .u32(READ)
            .u64(7)
            .u64(2)
            .u32(1)
            .u32(2)
            .u32(3)
            .u16(0)
            .u16(0);
        let h = InHeader::parse(&b).unwrap();
        assert_eq!(
            h,
            InHeader {
                len: 48,
                opcode: READ,
                unique: 7,
                nodeid: 2,
                uid: 1,
                gid: 2,
                pid: 3,
                total_extlen: 0
            }
        );
        assert!(InHeader::parse(&b[..39]).is_none());
    }

    #[test]
    fn sizes_match_the_kernels_structs() {
        let mut b = Vec::new();
        Attr::default().write(&mut Out(&mut b));
        assert_eq!(b.len(), ATTR_SIZE);
        begin(&mut b, 9, -2);
        assert_eq!(b.len(), OUT_HEADER);
        finish(&mut b);
        assert_eq!(u32_at(&b, 0), Some(16));
        assert_eq!(u32_at(&b, 4), Some((-2i32) as u32));
        let mut d = Vec::new();
        dirent(&mut d, 1, 1, 4, b".");
        assert_eq!(d.len(), dirent_size(b"."));
        assert_eq!(d.len(), 32);
        assert_eq!(dirent_size(b"meminfo"), 32);
        assert_eq!(dirent_size(b"diskstats"), 40);
    }
}
