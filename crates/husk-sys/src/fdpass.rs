//! Byte messages with file descriptors attached (SCM_RIGHTS) over AF_UNIX
//! sockets.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Most descriptors one message may carry (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS: usize = 64;

/// Send all of `data`, attaching `fds` to the first byte.
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("too many descriptors in one message ({})", fds.len()),
        ));
    }
    let mut sent = 0;
    let mut first = true;
    while sent < data.len() || first {
        let iov = [IoSlice::new(&data[sent..])];
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if first && !fds.is_empty() { &cmsg } else { &[] };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => {
                sent += n;
                first = false;
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if data.is_empty() {
            break;
        }
    }
    Ok(())
}

/// Receive up to `buf.len()` bytes and any descriptors that came with them.
/// Returns 0 bytes at end of stream.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(list) = c {
                for fd in list {
                    // SAFETY: SCM_RIGHTS installed these descriptors in our
                    // table for us; nothing else owns them.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(io::Error::other("descriptors were truncated in transit"));
        }
        return Ok((msg.bytes, fds));
    }
}

/// Read exactly `buf.len()` bytes, collecting descriptors on the way.
pub fn recv_exact(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let (n, more) = recv_with_fds(sock, &mut buf[got..])?;
        fds.extend(more);
        if n == 0 {
            // Closed cleanly between messages, or cut off inside one.
            return Err(if got == 0 {
                io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")
            } else {
                io::Error::new(io::ErrorKind::InvalidData, "message cut off")
            });
        }
        got += n;
    }
    Ok(())
}
