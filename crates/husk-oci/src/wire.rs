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

/// Reads frames from a non-blocking socket a piece at a time, for a
/// server that must never wait on one client. It never reads past the end
/// of the frame it is assembling.
#[derive(Default)]
pub struct FrameReader {
    head: [u8; 4],
    head_got: usize,
    body: Vec<u8>,
    body_got: usize,
    fds: Vec<OwnedFd>,
}

impl FrameReader {
    /// Whether part of a frame has arrived.
    pub fn started(&self) -> bool {
        self.head_got > 0
    }

    /// Read what is there. `Ok(Some(..))` with a whole frame, `Ok(None)` when
    /// more must arrive first; end of stream is `UnexpectedEof` between
    /// frames and `InvalidData` inside one.
    pub fn read<T: DeserializeOwned, S: AsFd>(
        &mut self,
        sock: &S,
    ) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
        loop {
            let (buf, got) = if self.head_got < 4 {
                (&mut self.head[self.head_got..], self.head_got)
            } else {
                (&mut self.body[self.body_got..], self.body_got)
            };
            if buf.is_empty() {
                break;
            }
            let (n, fds) = match fdpass::recv_with_fds(sock.as_fd(), buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            self.fds.extend(fds);
            if n == 0 {
                return Err(if self.head_got == 0 {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")
                } else {
                    io::Error::new(io::ErrorKind::InvalidData, "message cut off")
                });
            }
            if self.head_got < 4 {
                self.head_got = got + n;
                if self.head_got == 4 {
                    let len = u32::from_le_bytes(self.head) as usize;
                    if len > MAX_MESSAGE {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("control message too large ({len} bytes)"),
                        ));
                    }
                    self.body = vec![0u8; len];
                    self.body_got = 0;
                }
            } else {
                self.body_got = got + n;
            }
        }
        let msg = serde_json::from_slice(&self.body).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed control message: {e}"),
            )
        });
        let fds = std::mem::take(&mut self.fds);
        self.head_got = 0;
        self.body = Vec::new();
        self.body_got = 0;
        Ok(Some((msg?, fds)))
    }
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
            &Request::Wait {
                id: "x".into(),
                kill_on_close: true,
            },
            &[f.as_raw_fd()],
        )
        .unwrap();
        send(&a, &Response::Started, &[]).unwrap();
        let (req, fds): (Request, _) = recv(&b).unwrap();
        match req {
            Request::Wait { id, kill_on_close } => {
                assert_eq!((id.as_str(), kill_on_close), ("x", true))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(fds.len(), 1);
        let (resp, fds): (Response, _) = recv(&b).unwrap();
        assert!(matches!(resp, Response::Started));
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
            send(
                &a,
                &Response::Error {
                    kind: crate::control::ErrorKind::Sandbox,
                    message: big,
                },
                &[],
            )
            .unwrap();
        });
        let (resp, _): (Response, _) = recv(&b).unwrap();
        t.join().unwrap();
        match resp {
            Response::Error { message, .. } => assert_eq!(message.len(), 1 << 20),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn frame_reader_assembles_pieces_without_blocking() {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let mut r = FrameReader::default();
        assert!(r.read::<Response, _>(&b).unwrap().is_none());
        let body = serde_json::to_vec(&Response::Execed { token: 7 }).unwrap();
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        // The descriptor rides on the first two bytes; the rest trickles in.
        fdpass::send_with_fds(a.as_fd(), &frame[..2], &[f.as_raw_fd()]).unwrap();
        assert!(r.read::<Response, _>(&b).unwrap().is_none());
        assert!(r.started());
        for byte in &frame[2..frame.len() - 1] {
            fdpass::send_with_fds(a.as_fd(), std::slice::from_ref(byte), &[]).unwrap();
            assert!(r.read::<Response, _>(&b).unwrap().is_none());
        }
        // The last byte, and the first of the next frame behind it.
        let mut tail = vec![*frame.last().unwrap()];
        tail.extend_from_slice(&frame[..1]);
        fdpass::send_with_fds(a.as_fd(), &tail, &[]).unwrap();
        let (msg, fds) = r.read::<Response, _>(&b).unwrap().unwrap();
        assert!(matches!(msg, Response::Execed { token: 7 }));
        assert_eq!(fds.len(), 1);
        assert!(r.read::<Response, _>(&b).unwrap().is_none());
        assert!(r.started());
        drop(a);
        let e = r.read::<Response, _>(&b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
