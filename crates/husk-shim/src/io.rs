//! A process's standard streams, from the paths containerd hands over.
//!
//! Output fifos go to the process directly: it writes into the fifo that
//! containerd (the CRI's log copier, `ctr`) already reads, so nothing it
//! prints is lost or delayed, however early, and no copy runs in the shim.
//! The shim keeps a reader of its own on each output fifo that it never
//! reads from, so the fifo never loses its last reader while containerd
//! restarts (a writer would get EPIPE); it holds no writer, so containerd
//! sees end-of-file once the process and its children are gone.
//!
//! Standard input goes through a pipe that a thread fills from the fifo
//! (`CloseIO` ends it). A terminal is a console the shim owns: it receives
//! the pty master over a console socket and copies between it and the
//! fifos, one thread per direction.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};

/// The stdio paths of one process, as containerd sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stdio {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Descriptors for a process about to be made, and what the shim keeps.
pub struct Prepared {
    /// The process's stdin, stdout and stderr.
    pub child: [OwnedFd; 3],
    /// For a terminal: our end of the console socket and the end the
    /// container layer sends the pty master on.
    pub console: Option<(UnixStream, OwnedFd)>,
    /// What stays with the shim for the life of the process.
    pub io: ProcessIo,
}

/// What the shim holds for one process's stdio.
#[derive(Default)]
pub struct ProcessIo {
    /// Our never-read readers of the output fifos.
    readers: Vec<OwnedFd>,
    /// stdin's fifo, until a copier takes it.
    stdin_fifo: Option<File>,
    /// The pipe's write end for stdin, until a copier takes it.
    stdin_pipe: Option<File>,
    stdin: Option<Copier>,
    /// The pty master, for ResizePty.
    master: Option<Arc<OwnedFd>>,
    console_out: Option<JoinHandle<()>>,
    /// stdout's fifo, for the console copier.
    out_fifo: Option<File>,
}

fn null() -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?,
    ))
}

fn open(path: &str, flags: i32) -> io::Result<OwnedFd> {
    husk_sys::fd::open(Path::new(path), flags, 0).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("open {path}: {}", husk_sys::errno_text(&e)),
        )
    })
}

/// An output path: a fifo (containerd's default), or `file://PATH`.
/// Returns the writer and, for a fifo, our reader.
fn output(path: &str) -> io::Result<(OwnedFd, Option<OwnedFd>)> {
    if let Some(file) = path.strip_prefix("file://") {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| io::Error::new(e.kind(), format!("open {file}: {e}")))?;
        return Ok((OwnedFd::from(f), None));
    }
    if path.contains("://") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("stdio {path}: only fifos and file:// are supported"),
        ));
    }
    // Our reader first: then opening the writer cannot block.
    let reader = open(path, libc::O_RDONLY | libc::O_NONBLOCK)?;
    let writer = open(path, libc::O_WRONLY)?;
    Ok((writer, Some(reader)))
}

impl Prepared {
    pub fn open(s: &Stdio) -> io::Result<Prepared> {
        let mut io = ProcessIo::default();
        let stdin = if s.stdin.is_empty() || s.terminal {
            null()?
        } else {
            // Opening for reading without blocking: a reader sees no
            // end-of-file before a writer has come and gone.
            io.stdin_fifo = Some(File::from(open(
                &s.stdin,
                libc::O_RDONLY | libc::O_NONBLOCK,
            )?));
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            io.stdin_pipe = Some(File::from(w));
            r
        };
        let (stdout, stderr) = if s.terminal {
            if !s.stdout.is_empty() {
                let (w, r) = output(&s.stdout)?;
                io.out_fifo = Some(File::from(w));
                io.readers.extend(r);
            }
            (null()?, null()?)
        } else {
            let stdout = if s.stdout.is_empty() {
                null()?
            } else {
                let (w, r) = output(&s.stdout)?;
                io.readers.extend(r);
                w
            };
            let stderr = if s.stderr.is_empty() {
                null()?
            } else if s.stderr == s.stdout {
                stdout.try_clone()?
            } else {
                let (w, r) = output(&s.stderr)?;
                io.readers.extend(r);
                w
            };
            (stdout, stderr)
        };
        if s.terminal && !s.stdin.is_empty() {
            io.stdin_fifo = Some(File::from(open(
                &s.stdin,
                libc::O_RDONLY | libc::O_NONBLOCK,
            )?));
        }
        let console = if s.terminal {
            let (ours, theirs) = UnixStream::pair()?;
            Some((ours, OwnedFd::from(theirs)))
        } else {
            None
        };
        Ok(Prepared {
            child: [stdin, stdout, stderr],
            console,
            io,
        })
    }
}

impl ProcessIo {
    /// Once the process exists: start copying stdin, and for a terminal,
    /// receive the master from `console` and copy both ways.
    pub fn start(&mut self, console: Option<UnixStream>) -> io::Result<()> {
        if let Some(sock) = console {
            let master = Arc::new(receive_master(&sock)?);
            if let Some(out) = self.out_fifo.take() {
                let m = master.clone();
                self.console_out = Some(
                    std::thread::Builder::new()
                        .name("console-out".into())
                        .stack_size(64 << 10)
                        .spawn(move || copy_out(&m, out))?,
                );
            }
            if let Some(fifo) = self.stdin_fifo.take() {
                let to = File::from(master.as_fd().try_clone_to_owned()?);
                self.stdin = Some(Copier::start(fifo, to)?);
            }
            self.master = Some(master);
        } else if let (Some(fifo), Some(pipe)) = (self.stdin_fifo.take(), self.stdin_pipe.take()) {
            self.stdin = Some(Copier::start(fifo, pipe)?);
        }
        Ok(())
    }

    /// `CloseIO`: the process sees the end of its input.
    pub fn close_stdin(&mut self) {
        self.stdin_fifo = None;
        self.stdin_pipe = None;
        if let Some(c) = self.stdin.take() {
            c.stop();
        }
    }

    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        match &self.master {
            Some(m) => husk_sys::tty::set_window_size(m.as_fd(), rows, cols),
            None => Ok(()),
        }
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        self.close_stdin();
        // The console copier ends with the terminal (EIO once every slave
        // is closed); it is not waited for.
        drop(self.console_out.take());
    }
}

/// The pty master the container layer sends on the console socket (it has
/// arrived by the time create or exec returns).
fn receive_master(sock: &UnixStream) -> io::Result<OwnedFd> {
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 64];
    let (_, mut fds) = husk_sys::fdpass::recv_with_fds(sock.as_fd(), &mut buf)?;
    if fds.is_empty() {
        return Err(io::Error::other("the container sent no terminal"));
    }
    Ok(fds.remove(0))
}

/// Terminal output to the stdout fifo, until the terminal hangs up.
fn copy_out(master: &OwnedFd, mut out: File) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
            // EIO: every slave descriptor is closed.
            Err(_) => break,
        }
    }
}

/// A thread copying a fifo into a descriptor until the fifo's writer
/// closes it, or until stopped.
struct Copier {
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl Copier {
    fn start(mut from: File, mut to: File) -> io::Result<Copier> {
        let stop = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
        )?);
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("stdin".into())
            .stack_size(64 << 10)
            .spawn(move || {
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    let mut fds = [
                        husk_sys::pollfd(from.as_raw_fd(), libc::POLLIN),
                        husk_sys::pollfd(s.as_fd().as_raw_fd(), libc::POLLIN),
                    ];
                    if husk_sys::poll(&mut fds, -1).is_err() || fds[1].revents != 0 {
                        break;
                    }
                    match from.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                // `to` closes here: the process reads end-of-file.
            })?;
        Ok(Copier {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop copying and wait until the process's end is closed.
    fn stop(mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Copier {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(dir: &Path, name: &str) -> String {
        let p = dir.join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p.display().to_string()
    }

    #[test]
    fn output_goes_to_the_fifo_and_ends_with_the_writer() {
        let dir = std::env::temp_dir().join(format!("husk-shim-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = mkfifo(&dir, "out");
        // containerd's reader, opened before the process exists.
        let mut reader = File::from(open(&out, libc::O_RDONLY | libc::O_NONBLOCK).unwrap());
        let p = Prepared::open(&Stdio {
            stdout: out.clone(),
            stderr: out.clone(),
            ..Default::default()
        })
        .unwrap();
        let [_, o, e] = p.child;
        File::from(o).write_all(b"early ").unwrap();
        File::from(e).write_all(b"bytes").unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 64];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.push_str(std::str::from_utf8(&buf[..n]).unwrap()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        // End-of-file although the shim still holds its own reader.
        assert_eq!(got, "early bytes");
        drop(p.io);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stdin_is_copied_until_close_io() {
        let dir = std::env::temp_dir().join(format!("husk-shim-in-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inp = mkfifo(&dir, "in");
        let mut p = Prepared::open(&Stdio {
            stdin: inp.clone(),
            ..Default::default()
        })
        .unwrap();
        p.io.start(None).unwrap();
        let mut w = std::fs::OpenOptions::new().write(true).open(&inp).unwrap();
        w.write_all(b"hello").unwrap();
        let [i, _, _] = p.child;
        let mut child_in = File::from(i);
        let mut buf = [0u8; 5];
        child_in.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        p.io.close_stdin();
        let mut rest = Vec::new();
        child_in.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
