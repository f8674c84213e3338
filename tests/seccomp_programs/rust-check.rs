// Rust: std threads, channels and processes, and an epoll loop (the
// calls mio and tokio make), built with plain rustc, no crates.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::mpsc;
use std::thread;

#[repr(C, packed)]
struct EpollEvent {
    events: u32,
    data: u64,
}

extern "C" {
    fn epoll_create1(flags: i32) -> i32;
    fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: *mut EpollEvent) -> i32;
    fn epoll_wait(epfd: i32, events: *mut EpollEvent, maxevents: i32, timeout: i32) -> i32;
    fn close(fd: i32) -> i32;
}

const EPOLL_CLOEXEC: i32 = 0o2000000;
const EPOLL_CTL_ADD: i32 = 1;
const EPOLLIN: u32 = 1;

fn main() {
    // Threads and a channel.
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let tx = tx.clone();
            thread::spawn(move || tx.send(i * i).unwrap())
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    drop(tx);
    assert_eq!(rx.iter().sum::<u64>(), 140);

    // A TCP pair on loopback, the server side waited for with epoll from
    // another thread.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // SAFETY (of the calls below): plain system calls on descriptors
        // this thread owns, with a valid event buffer.
        unsafe {
            let ep = epoll_create1(EPOLL_CLOEXEC);
            assert!(ep >= 0, "epoll_create1");
            let mut ev = EpollEvent { events: EPOLLIN, data: 7 };
            assert_eq!(epoll_ctl(ep, EPOLL_CTL_ADD, conn.as_raw_fd(), &mut ev), 0);
            let mut out = [EpollEvent { events: 0, data: 0 }];
            assert_eq!(epoll_wait(ep, out.as_mut_ptr(), 1, 5000), 1);
            let data = out[0].data;
            assert_eq!(data, 7);
            close(ep);
        }
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(&buf).unwrap();
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    server.join().unwrap();

    // A child process.
    let out = std::process::Command::new("echo").arg("child").output().unwrap();
    assert_eq!(out.stdout, b"child\n");
    let dir = std::env::temp_dir().join(format!("rust-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("f"), [1u8; 4096]).unwrap();
    std::fs::copy(dir.join("f"), dir.join("g")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    println!("rust ok");
}
