//! Framing: a 4-byte little-endian length, then that many bytes of JSON. The
//! descriptors of a message ride on its first byte.

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use serde::de::DeserializeOwned;
use serde::Serialize;

use husk_sys::fdpass;

/// Upper bound on one message; a spec with a large seccomp profile is a few
/// hundred KiB.
const MAX_MESSAGE: usize = 64 << 20;

pub fn send<T: Serialize, S: AsFd>(sock: &S, msg: &T, fds: &[RawFd]) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    fdpass::send_with_fds(sock.as_fd(), &buf, fds)
}

/// Receive one message. End of stream before any byte is `UnexpectedEof`.
pub fn recv<T: DeserializeOwned, S: AsFd>(sock: &S) -> io::Result<(T, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let mut len = [0u8; 4];
    fdpass::recv_exact(sock.as_fd(), &mut len, &mut fds)?;
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control message too large ({n} bytes)"),
        ));
    }
    let mut body = vec![0u8; n];
    fdpass::recv_exact(sock.as_fd(), &mut body, &mut fds).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(io::ErrorKind::InvalidData, "message cut off")
        } else {
            e
        }
    })?;
    let msg = serde_json::from_slice(&body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed control message: {e}"),
        )
    })?;
    Ok((msg, fds))
}

/// Take descriptor `idx` out of a received list.
pub fn take_fd(fds: &mut [Option<OwnedFd>], idx: usize) -> io::Result<OwnedFd> {
    fds.get_mut(idx).and_then(Option::take).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control message lacks descriptor {idx}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Request, Response};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn round_trip_with_descriptor() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        send(
            &a,
            &Request::Signal {
                id: "x".into(),
                signal: 15,
                all: true,
            },
            &[f.as_raw_fd()],
        )
        .unwrap();
        send(&a, &Response::Ok, &[]).unwrap();
        let (req, fds): (Request, _) = recv(&b).unwrap();
        match req {
            Request::Signal { id, signal, all } => {
                assert_eq!((id.as_str(), signal, all), ("x", 15, true))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(fds.len(), 1);
        let (resp, fds): (Response, _) = recv(&b).unwrap();
        assert!(matches!(resp, Response::Ok));
        assert!(fds.is_empty());
        drop(a);
        let err = recv::<Response, _>(&b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn large_message_survives_partial_reads() {
        let (a, b) = UnixStream::pair().unwrap();
        let big = "y".repeat(1 << 20);
        let t = std::thread::spawn(move || {
            send(&a, &Response::Error { message: big }, &[]).unwrap();
        });
        let (resp, _): (Response, _) = recv(&b).unwrap();
        t.join().unwrap();
        match resp {
            Response::Error { message } => assert_eq!(message.len(), 1 << 20),
            other => panic!("unexpected {other:?}"),
        }
    }
}
