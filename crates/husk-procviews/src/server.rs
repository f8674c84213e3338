//! The FUSE server of one container's views: single-threaded, never
//! blocking, driven by the caller's poll loop.
//!
//! How a read reaches us. The filesystem is a root directory holding one
//! regular file per view. OPEN is answered ENOSYS, which the kernel takes
//! as "zero-message opens" (protocol 7.23): it never sends OPEN, RELEASE
//! or (after one ENOSYS) FLUSH again, and reads go through the page cache.
//! Each file reports its real size and, as mtime, the moment its content
//! was rendered; attributes are valid for [`Config::max_age`]. With
//! FUSE_AUTO_INVAL_DATA the kernel asks GETATTR again once they expire,
//! sees the new mtime, drops the cached pages and READs the new content.
//! A reader in a tight loop therefore costs the server one GETATTR (one
//! rendering) and one READ per `max_age`, whatever its rate; data is at
//! most about `2 × max_age` old.
//!
//! A rendition is only replaced when attributes are asked for, and READs
//! are served from the current one, so the size the kernel was told and
//! the bytes it reads agree. (A reader that reads one file in several
//! read() calls across a refresh can, rarely, get pieces of two
//! renditions; every file fits in one read of a page-sized buffer except
//! cpuinfo on hosts with many CPUs.)
//!
//! Every request is answered before `on_readable` returns, so nothing of
//! ours is ever pending across calls; what bounds a reader when the server
//! itself stops (killed, stopped, frozen) is the kernel: closing the last
//! /dev/fuse descriptor aborts the connection (ENOTCONN), and the request
//! timeout negotiated at INIT ([`Config::request_timeout`]) aborts it when
//! a request stays unanswered that long.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;

use crate::facts::{Container, Facts, HostProc};
use crate::proto::{self, Attr, InHeader, Out};
use crate::render::View;

/// How the server behaves; [`Config::default`] is what husk uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// The files served, in this order (node ids 2, 3, ...).
    pub views: Vec<View>,
    /// How long a rendition and the attributes the kernel caches are good
    /// for. Bounds both staleness and the server's work under load.
    pub max_age: Duration,
    /// Seconds an unanswered request may wait before the kernel aborts the
    /// connection (protocol 7.43, Linux 6.14+; the kernel raises it to at
    /// least 15 and checks every 15 s). 0: none.
    pub request_timeout: u16,
    /// Requests handled per `on_readable` call at most, so that a flood
    /// cannot keep the caller's loop from its other descriptors.
    pub batch: usize,
    /// Owner reported for every file, in the user namespace of whoever
    /// created the superblock (0: the container's root).
    pub uid: u32,
    pub gid: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            views: View::ALL.to_vec(),
            max_age: Duration::from_millis(10),
            request_timeout: 60,
            batch: 64,
            uid: 0,
            gid: 0,
        }
    }
}

/// What `on_readable` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Keep polling the descriptor.
    Serving,
    /// The descriptor has no filesystem yet (no superblock was made with
    /// it): it polls as an error until one is, so make it first.
    NotMounted,
    /// The connection is gone (unmounted, aborted, or DESTROY): drop the
    /// server.
    Closed,
}

/// Counters, for tests and measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    pub renders: u64,
    pub reads: u64,
    pub getattrs: u64,
}

struct Rendition {
    data: Vec<u8>,
    at: Instant,
    mtime: (u64, u32),
}

/// The server of one container's views, over one /dev/fuse descriptor.
pub struct Server {
    fuse: OwnedFd,
    facts: Facts,
    cfg: Config,
    files: Vec<Option<Rendition>>,
    buf: Vec<u8>,
    out: Vec<u8>,
    initialized: bool,
    closed: bool,
    born: (u64, u32),
    last_mtime: (u64, u32),
    counters: Counters,
}

const LONG: Duration = Duration::from_secs(24 * 3600);
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const DT_DIR: u32 = 4;
const DT_REG: u32 = 8;

fn wall() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

impl Server {
    /// A server of `ctr`'s views on `fuse` (an open /dev/fuse, made
    /// non-blocking here), reading host numbers from `host`.
    pub fn new(fuse: OwnedFd, host: HostProc, ctr: Container, cfg: Config) -> io::Result<Server> {
        let st = nix::sys::stat::fstat(fuse.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(10, 229) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the FUSE descriptor is not /dev/fuse",
            ));
        }
        Self::unchecked(fuse, host, ctr, cfg)
    }

    /// Without the /dev/fuse check: unit tests drive the protocol through
    /// a SEQPACKET socket pair, which keeps message boundaries as
    /// /dev/fuse does.
    fn unchecked(fuse: OwnedFd, host: HostProc, ctr: Container, cfg: Config) -> io::Result<Server> {
        let fl = nix::fcntl::fcntl(fuse.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
        let fl = nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(fuse.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))?;
        let n = cfg.views.len();
        Ok(Server {
            fuse,
            facts: Facts::new(host, ctr),
            cfg,
            files: (0..n).map(|_| None).collect(),
            buf: Vec::new(),
            out: Vec::with_capacity(256),
            initialized: false,
            closed: false,
            born: wall(),
            last_mtime: (0, 0),
            counters: Counters::default(),
        })
    }

    /// The descriptor to poll for POLLIN.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fuse.as_fd()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Handle every request that is waiting (up to [`Config::batch`]),
    /// without ever blocking.
    pub fn on_readable(&mut self) -> io::Result<Status> {
        if self.closed {
            return Ok(Status::Closed);
        }
        if self.buf.len() < proto::READ_BUFFER {
            self.buf.resize(proto::READ_BUFFER, 0);
        }
        for _ in 0..self.cfg.batch.max(1) {
            match nix::unistd::read(self.fuse.as_raw_fd(), &mut self.buf) {
                Ok(n) => {
                    self.handle(n);
                    if self.closed {
                        return Ok(Status::Closed);
                    }
                }
                Err(Errno::EAGAIN) => return Ok(Status::Serving),
                // Interrupted, or the request went away before we got it.
                Err(Errno::EINTR) | Err(Errno::ENOENT) => continue,
                Err(Errno::ENODEV) | Err(Errno::ECONNABORTED) => {
                    self.closed = true;
                    return Ok(Status::Closed);
                }
                Err(Errno::EPERM) => return Ok(Status::NotMounted),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Status::Serving)
    }

    fn handle(&mut self, n: usize) {
        let Some(h) = InHeader::parse(&self.buf[..n]) else {
            return;
        };
        self.counters.requests += 1;
        let end = (h.len as usize).clamp(proto::IN_HEADER, n);
        // Copy the (small) argument so that replies can borrow self.
        let mut arg = [0u8; 512];
        let alen = (end - proto::IN_HEADER).min(arg.len());
        arg[..alen].copy_from_slice(&self.buf[proto::IN_HEADER..proto::IN_HEADER + alen]);
        let arg = &arg[..alen];
        match h.opcode {
            proto::INIT => self.init(&h, arg),
            proto::FORGET | proto::BATCH_FORGET | proto::INTERRUPT => {}
            _ if !self.initialized => self.error(&h, libc::EIO),
            proto::LOOKUP => self.lookup(&h, arg),
            proto::GETATTR => self.getattr(&h),
            proto::READ => self.read(&h, arg),
            // Zero-message opens: the kernel stops sending OPEN and
            // RELEASE, and FLUSH after its first ENOSYS.
            proto::OPEN | proto::FLUSH => self.error(&h, libc::ENOSYS),
            proto::RELEASE | proto::RELEASEDIR => self.empty(&h),
            proto::OPENDIR => {
                proto::begin(&mut self.out, h.unique, 0);
                Out(&mut self.out)
                    .u64(0)
                    .u32(proto::FOPEN_KEEP_CACHE | proto::FOPEN_CACHE_DIR)
                    .u32(0);
                self.send();
            }
            proto::READDIR => self.readdir(&h, arg, false),
            proto::READDIRPLUS => self.readdir(&h, arg, true),
            proto::STATFS => {
                proto::begin(&mut self.out, h.unique, 0);
                Out(&mut self.out)
                    .u64(0)
                    .u64(0)
                    .u64(0)
                    .u64(self.cfg.views.len() as u64 + 1)
                    .u64(0)
                    .u32(4096)
                    .u32(255)
                    .u32(4096)
                    .u32(0)
                    .zeros(24);
                self.send();
            }
            proto::DESTROY => {
                self.empty(&h);
                self.closed = true;
            }
            _ => self.error(&h, libc::ENOSYS),
        }
    }

    fn send(&mut self) {
        proto::finish(&mut self.out);
        match nix::unistd::write(&self.fuse, &self.out) {
            // ENOENT: the request was interrupted or aborted meanwhile.
            Ok(_) | Err(Errno::ENOENT) | Err(Errno::EINTR) => {}
            Err(Errno::ENODEV) | Err(Errno::ECONNABORTED) => self.closed = true,
            Err(_) => {}
        }
    }

    fn error(&mut self, h: &InHeader, errno: i32) {
        proto::begin(&mut self.out, h.unique, -errno);
        self.send();
    }

    fn empty(&mut self, h: &InHeader) {
        proto::begin(&mut self.out, h.unique, 0);
        self.send();
    }

    fn init(&mut self, h: &InHeader, arg: &[u8]) {
        let (Some(major), Some(minor), Some(readahead), Some(flags)) = (
            proto::u32_at(arg, 0),
            proto::u32_at(arg, 4),
            proto::u32_at(arg, 8),
            proto::u32_at(arg, 12),
        ) else {
            return self.error(h, libc::EINVAL);
        };
        let mut offered = u64::from(flags);
        if offered & proto::INIT_EXT != 0 {
            offered |= u64::from(proto::u32_at(arg, 16).unwrap_or(0)) << 32;
        }
        if major > 7 {
            // Tell the kernel our major; it asks again in 7.x.
            proto::begin(&mut self.out, h.unique, 0);
            Out(&mut self.out)
                .u32(7)
                .u32(proto::MAX_MINOR)
                .zeros(proto::INIT_OUT - 8);
            return self.send();
        }
        if major < 7 || minor < proto::MIN_MINOR {
            self.closed = true;
            return self.error(h, libc::EPROTO);
        }
        let mut want = offered
            & (proto::ASYNC_READ
                | proto::AUTO_INVAL_DATA
                | proto::DO_READDIRPLUS
                | proto::MAX_PAGES
                | proto::ABORT_ERROR);
        let timeout = if self.cfg.request_timeout > 0 && offered & proto::REQUEST_TIMEOUT != 0 {
            want |= proto::REQUEST_TIMEOUT;
            self.cfg.request_timeout
        } else {
            0
        };
        if want >> 32 != 0 {
            want |= proto::INIT_EXT;
        }
        proto::begin(&mut self.out, h.unique, 0);
        Out(&mut self.out)
            .u32(7)
            .u32(minor.min(proto::MAX_MINOR))
            .u32(readahead.min(128 << 10))
            .u32(want as u32)
            .u16(0) // max_background: the kernel's default
            .u16(0) // congestion_threshold
            .u32(4096) // max_write
            .u32(1) // time_gran: nanoseconds
            .u16(32) // max_pages
            .u16(0) // map_alignment
            .u32((want >> 32) as u32)
            .u32(0) // max_stack_depth
            .u16(timeout)
            .zeros(22);
        self.send();
        self.initialized = true;
    }

    fn index(&self, nodeid: u64) -> Option<usize> {
        let i = nodeid.checked_sub(2)? as usize;
        (i < self.cfg.views.len()).then_some(i)
    }

    fn dir_attr(&self) -> Attr {
        Attr {
            ino: proto::ROOT_ID,
            size: 0,
            time: self.born,
            mode: S_IFDIR | 0o555,
            nlink: 2,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
        }
    }

    /// The attributes of file `i`, rendering it first if its content is
    /// older than `max_age` (or was never rendered).
    fn file_attr(&mut self, i: usize) -> Option<Attr> {
        let stale = self.files[i]
            .as_ref()
            .is_none_or(|r| r.at.elapsed() >= self.cfg.max_age);
        if stale {
            self.refresh(i);
        }
        let r = self.files[i].as_ref()?;
        Some(Attr {
            ino: i as u64 + 2,
            size: r.data.len() as u64,
            time: r.mtime,
            mode: S_IFREG | 0o444,
            nlink: 1,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
        })
    }

    /// Render file `i` anew. On failure the previous content stays.
    fn refresh(&mut self, i: usize) {
        let Ok(data) = self.facts.render(self.cfg.views[i]) else {
            return;
        };
        self.counters.renders += 1;
        let mut mtime = wall();
        if mtime <= self.last_mtime {
            // Strictly newer than any earlier rendition, so that the
            // kernel sees a change and drops cached pages.
            mtime = match self.last_mtime.1 + 1 {
                1_000_000_000 => (self.last_mtime.0 + 1, 0),
                ns => (self.last_mtime.0, ns),
            };
        }
        self.last_mtime = mtime;
        self.files[i] = Some(Rendition {
            data,
            at: Instant::now(),
            mtime,
        });
    }

    /// A file's entry as LOOKUP and READDIRPLUS give it: the name is
    /// valid for long, the attributes for no time, so that nothing is
    /// rendered until the file is used (a GETATTR comes first). That keeps
    /// setting up the bind mounts cheap.
    fn entry(&self, i: usize, o: &mut Out<'_>) {
        let attr = Attr {
            ino: i as u64 + 2,
            size: 0,
            time: self.born,
            mode: S_IFREG | 0o444,
            nlink: 1,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
        };
        let (es, ens) = proto::valid(LONG);
        o.u64(i as u64 + 2).u64(0).u64(es).u64(0).u32(ens).u32(0);
        attr.write(o);
    }

    fn lookup(&mut self, h: &InHeader, arg: &[u8]) {
        let name = arg.split(|b| *b == 0).next().unwrap_or_default();
        let found = (h.nodeid == proto::ROOT_ID)
            .then(|| View::from_name(name))
            .flatten()
            .and_then(|v| self.cfg.views.iter().position(|x| *x == v));
        let Some(i) = found else {
            return self.error(h, libc::ENOENT);
        };
        let mut out = std::mem::take(&mut self.out);
        proto::begin(&mut out, h.unique, 0);
        self.entry(i, &mut Out(&mut out));
        self.out = out;
        self.send();
    }

    fn getattr(&mut self, h: &InHeader) {
        self.counters.getattrs += 1;
        let (attr, validity) = if h.nodeid == proto::ROOT_ID {
            (Some(self.dir_attr()), LONG)
        } else {
            match self.index(h.nodeid) {
                Some(i) => (self.file_attr(i), self.cfg.max_age),
                None => return self.error(h, libc::ENOENT),
            }
        };
        let Some(attr) = attr else {
            return self.error(h, libc::EIO);
        };
        let (a, ans) = proto::valid(validity);
        proto::begin(&mut self.out, h.unique, 0);
        let mut o = Out(&mut self.out);
        o.u64(a).u32(ans).u32(0);
        attr.write(&mut o);
        self.send();
    }

    fn read(&mut self, h: &InHeader, arg: &[u8]) {
        self.counters.reads += 1;
        let Some(i) = self.index(h.nodeid) else {
            return self.error(
                h,
                if h.nodeid == proto::ROOT_ID {
                    libc::EISDIR
                } else {
                    libc::ENOENT
                },
            );
        };
        let (Some(off), Some(size)) = (proto::u64_at(arg, 8), proto::u32_at(arg, 16)) else {
            return self.error(h, libc::EINVAL);
        };
        // Serve the rendition whose size the kernel was last told; render
        // only if there is none.
        if self.files[i].is_none() {
            self.refresh(i);
        }
        let Some(r) = self.files[i].as_ref() else {
            return self.error(h, libc::EIO);
        };
        let len = r.data.len() as u64;
        let start = off.min(len) as usize;
        let end = off.saturating_add(u64::from(size)).min(len) as usize;
        proto::begin(&mut self.out, h.unique, 0);
        self.out.extend_from_slice(&r.data[start..end]);
        self.send();
    }

    /// READDIR, or READDIRPLUS (entries with their lookup, in one round
    /// trip: [`crate::mount::bind_views`] lists the root once so that its
    /// eight lookups need no more).
    fn readdir(&mut self, h: &InHeader, arg: &[u8], plus: bool) {
        if h.nodeid != proto::ROOT_ID {
            return self.error(h, libc::ENOTDIR);
        }
        let (Some(off), Some(size)) = (proto::u64_at(arg, 8), proto::u32_at(arg, 16)) else {
            return self.error(h, libc::EINVAL);
        };
        let mut out = std::mem::take(&mut self.out);
        proto::begin(&mut out, h.unique, 0);
        let count = self.cfg.views.len() + 2;
        let mut used = 0usize;
        for k in (off as usize)..count {
            let (ino, typ, name): (u64, u32, &[u8]) = match k {
                0 => (proto::ROOT_ID, DT_DIR, b"."),
                1 => (proto::ROOT_ID, DT_DIR, b".."),
                _ => (k as u64, DT_REG, self.cfg.views[k - 2].name().as_bytes()),
            };
            let sz = proto::dirent_size(name) + if plus { proto::ENTRY_OUT } else { 0 };
            if used + sz > size as usize {
                break;
            }
            if plus {
                if k < 2 {
                    // No lookup for "." and "..": node id 0 says so.
                    Out(&mut out).zeros(proto::ENTRY_OUT);
                } else {
                    self.entry(k - 2, &mut Out(&mut out));
                }
            }
            proto::dirent(&mut out, ino, k as u64 + 1, typ, name);
            used += sz;
        }
        self.out = out;
        self.send();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{u32_at, u64_at};
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    struct Kernel {
        end: OwnedFd,
        server: Server,
        unique: u64,
    }

    impl Kernel {
        fn new(cfg: Config) -> Kernel {
            let (a, b) = socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .unwrap();
            let host = HostProc::new(
                husk_sys::fd::open(std::path::Path::new("/proc"), libc::O_PATH, 0).unwrap(),
            )
            .unwrap();
            let ctr = Container {
                cgroups: vec![],
                started: husk_sys::clock::boottime().unwrap(),
            };
            Kernel {
                end: a,
                server: Server::unchecked(b, host, ctr, cfg).unwrap(),
                unique: 0,
            }
        }

        /// Send one request, run the server, return the reply (error, body)
        /// or None when it sent none.
        fn ask(&mut self, opcode: u32, nodeid: u64, arg: &[u8]) -> Option<(i32, Vec<u8>)> {
            self.unique += 1;
            let mut b = Vec::new();
            Out(&mut b)
                .u32((proto::IN_HEADER + arg.len()) as u32)
                .u32(opcode)
                .u64(self.unique)
                .u64(nodeid)
                .u32(0)
                .u32(0)
                .u32(1)
                .u32(0);
            b.extend_from_slice(arg);
            nix::unistd::write(&self.end, &b).unwrap();
            self.server.on_readable().unwrap();
            let mut r = vec![0u8; 1 << 16];
            match nix::sys::socket::recv(
                self.end.as_raw_fd(),
                &mut r,
                nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => {
                    r.truncate(n);
                    assert_eq!(u32_at(&r, 0), Some(n as u32), "length in the header");
                    assert_eq!(u64_at(&r, 8), Some(self.unique));
                    Some((
                        u32_at(&r, 4).unwrap() as i32,
                        r[proto::OUT_HEADER..].to_vec(),
                    ))
                }
                Err(Errno::EAGAIN) => None,
                Err(e) => panic!("{e}"),
            }
        }

        fn init(&mut self) -> Vec<u8> {
            let mut a = Vec::new();
            let flags = proto::ASYNC_READ
                | proto::AUTO_INVAL_DATA
                | proto::DO_READDIRPLUS
                | proto::INIT_EXT
                | (1 << 17);
            Out(&mut a)
                .u32(7)
                .u32(45)
                .u32(1 << 20)
                .u32(flags as u32)
                .u32((proto::REQUEST_TIMEOUT >> 32) as u32)
                .zeros(44);
            let (e, body) = self.ask(proto::INIT, 0, &a).unwrap();
            assert_eq!(e, 0);
            body
        }
    }

    fn read_arg(off: u64, size: u32) -> Vec<u8> {
        let mut a = Vec::new();
        Out(&mut a)
            .u64(0)
            .u64(off)
            .u32(size)
            .u32(0)
            .u64(0)
            .u32(0)
            .u32(0);
        a
    }

    #[test]
    fn init_negotiates_what_we_need() {
        let mut k = Kernel::new(Config::default());
        // Nothing but INIT before INIT.
        assert_eq!(k.ask(proto::GETATTR, 1, &[0; 16]).unwrap().0, -libc::EIO);
        let body = k.init();
        assert_eq!(body.len(), proto::INIT_OUT);
        assert_eq!(
            (u32_at(&body, 0), u32_at(&body, 4)),
            (Some(7), Some(proto::MAX_MINOR))
        );
        assert_eq!(u32_at(&body, 8), Some(128 << 10));
        let flags =
            u64::from(u32_at(&body, 12).unwrap()) | (u64::from(u32_at(&body, 32).unwrap()) << 32);
        assert_eq!(
            flags,
            proto::ASYNC_READ
                | proto::AUTO_INVAL_DATA
                | proto::DO_READDIRPLUS
                | proto::INIT_EXT
                | proto::REQUEST_TIMEOUT
        );
        assert_eq!(u32_at(&body, 20), Some(4096));
        assert_eq!(u16::from_ne_bytes([body[40], body[41]]), 60);
    }

    #[test]
    fn too_old_a_kernel_is_refused() {
        let mut k = Kernel::new(Config::default());
        let mut a = Vec::new();
        Out(&mut a).u32(7).u32(22).u32(0).u32(0);
        assert_eq!(k.ask(proto::INIT, 0, &a).unwrap().0, -libc::EPROTO);
    }

    #[test]
    fn lookup_getattr_read() {
        let mut k = Kernel::new(Config::default());
        k.init();
        let (e, entry) = k.ask(proto::LOOKUP, 1, b"meminfo\0").unwrap();
        assert_eq!(e, 0);
        assert_eq!(entry.len(), proto::ENTRY_OUT);
        let node = u64_at(&entry, 0).unwrap();
        assert_eq!(node, 2);
        // Attributes valid for no time: nothing rendered yet.
        assert_eq!(u64_at(&entry, 24), Some(0));
        assert_eq!(k.server.counters().renders, 0);
        assert_eq!(
            k.ask(proto::LOOKUP, 1, b"mounts\0").unwrap().0,
            -libc::ENOENT
        );
        assert_eq!(
            k.ask(proto::LOOKUP, 2, b"meminfo\0").unwrap().0,
            -libc::ENOENT
        );

        let (e, attr) = k.ask(proto::GETATTR, node, &[0; 16]).unwrap();
        assert_eq!(e, 0);
        assert_eq!(attr.len(), proto::ATTR_OUT);
        let size = u64_at(&attr, 16 + 8).unwrap();
        let mode = u32_at(&attr, 16 + 60).unwrap();
        assert_eq!(mode, S_IFREG | 0o444);
        assert_eq!(u64_at(&attr, 0), Some(0), "valid 10 ms: 0 s");
        assert_eq!(u32_at(&attr, 8), Some(10_000_000));
        assert!(size > 100);
        let (e, data) = k.ask(proto::READ, node, &read_arg(0, 1 << 20)).unwrap();
        assert_eq!(e, 0);
        assert_eq!(data.len() as u64, size, "READ serves what GETATTR sized");
        assert!(data.starts_with(b"MemTotal:"));
        let (_, tail) = k.ask(proto::READ, node, &read_arg(9, 5)).unwrap();
        assert_eq!(tail, data[9..14]);
        let (_, eof) = k.ask(proto::READ, node, &read_arg(size + 10, 100)).unwrap();
        assert!(eof.is_empty());
        assert_eq!(k.server.counters().renders, 1);
        // Within max_age the same rendition; after it a new one, newer.
        let mtime = |a: &[u8]| (u64_at(a, 16 + 32).unwrap(), u32_at(a, 16 + 52).unwrap());
        let (_, again) = k.ask(proto::GETATTR, node, &[0; 16]).unwrap();
        assert_eq!(mtime(&again), mtime(&attr));
        std::thread::sleep(Duration::from_millis(12));
        let (_, later) = k.ask(proto::GETATTR, node, &[0; 16]).unwrap();
        assert!(mtime(&later) > mtime(&attr));
        assert_eq!(k.server.counters().renders, 2);
        assert_eq!(
            k.ask(proto::READ, 1, &read_arg(0, 10)).unwrap().0,
            -libc::EISDIR
        );
    }

    #[test]
    fn zero_message_opens_and_the_rest() {
        let mut k = Kernel::new(Config::default());
        k.init();
        assert_eq!(k.ask(proto::OPEN, 2, &[0; 8]).unwrap().0, -libc::ENOSYS);
        assert_eq!(k.ask(proto::FLUSH, 2, &[0; 24]).unwrap().0, -libc::ENOSYS);
        assert_eq!(k.ask(proto::RELEASE, 2, &[0; 24]).unwrap().0, 0);
        // No reply to these.
        assert!(k.ask(proto::FORGET, 2, &[1, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(k.ask(proto::BATCH_FORGET, 0, &[0; 8]).is_none());
        assert!(k.ask(proto::INTERRUPT, 0, &[0; 8]).is_none());
        // Writes and everything else: not implemented.
        for op in [4u32, 16, 21, 22, 23, 35, 46, 52] {
            assert_eq!(
                k.ask(op, 2, &[0; 64]).unwrap().0,
                -libc::ENOSYS,
                "opcode {op}"
            );
        }
        let (e, st) = k.ask(proto::STATFS, 1, &[]).unwrap();
        assert_eq!((e, st.len()), (0, proto::STATFS_OUT));
        let (e, root) = k.ask(proto::GETATTR, 1, &[0; 16]).unwrap();
        assert_eq!(e, 0);
        assert_eq!(u32_at(&root, 16 + 60), Some(S_IFDIR | 0o555));
        let (e, od) = k.ask(proto::OPENDIR, 1, &[0; 8]).unwrap();
        assert_eq!((e, od.len()), (0, proto::OPEN_OUT));
        assert_eq!(k.ask(proto::DESTROY, 0, &[]).unwrap().0, 0);
        assert_eq!(k.server.on_readable().unwrap(), Status::Closed);
    }

    #[test]
    fn directory_listing_plain_and_plus() {
        let mut k = Kernel::new(Config::default());
        k.init();
        let names = |body: &[u8], plus: bool| {
            let mut out = Vec::new();
            let mut at = 0;
            while at < body.len() {
                if plus {
                    at += proto::ENTRY_OUT;
                }
                let len = u32_at(body, at + 16).unwrap() as usize;
                out.push(String::from_utf8(body[at + 24..at + 24 + len].to_vec()).unwrap());
                at += (24 + len).div_ceil(8) * 8;
            }
            out
        };
        let (_, d) = k.ask(proto::READDIR, 1, &read_arg(0, 4096)).unwrap();
        let all = names(&d, false);
        assert_eq!(all.len(), 10);
        assert_eq!(&all[..3], [".", "..", "meminfo"]);
        assert_eq!(all[9], "cpu_online");
        let (_, d) = k.ask(proto::READDIR, 1, &read_arg(8, 4096)).unwrap();
        assert_eq!(names(&d, false), ["diskstats", "cpu_online"]);
        let (_, d) = k.ask(proto::READDIR, 1, &read_arg(10, 4096)).unwrap();
        assert!(d.is_empty());
        // A small buffer gets what fits.
        let (_, d) = k.ask(proto::READDIR, 1, &read_arg(0, 70)).unwrap();
        assert_eq!(names(&d, false), [".", ".."]);
        let (_, d) = k.ask(proto::READDIRPLUS, 1, &read_arg(0, 4096)).unwrap();
        assert_eq!(names(&d, true).len(), 10);
        assert_eq!(u64_at(&d, 0), Some(0), "no entry for .");
        let second = proto::ENTRY_OUT + 32 + proto::ENTRY_OUT + 32;
        assert_eq!(u64_at(&d, second), Some(2), "meminfo's node");
        assert_eq!(k.server.counters().renders, 0);
    }

    #[test]
    fn a_subset_of_views() {
        let mut k = Kernel::new(Config {
            views: vec![View::Uptime],
            ..Config::default()
        });
        k.init();
        assert_eq!(
            k.ask(proto::LOOKUP, 1, b"meminfo\0").unwrap().0,
            -libc::ENOENT
        );
        let (e, entry) = k.ask(proto::LOOKUP, 1, b"uptime\0").unwrap();
        assert_eq!((e, u64_at(&entry, 0)), (0, Some(2)));
        let (_, data) = k.ask(proto::READ, 2, &read_arg(0, 100)).unwrap();
        let up: f64 = std::str::from_utf8(&data)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(up < 1.0);
        assert_eq!(k.ask(proto::GETATTR, 3, &[0; 16]).unwrap().0, -libc::ENOENT);
    }
}
