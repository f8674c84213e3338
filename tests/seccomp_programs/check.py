"""Python 3: threads, processes, sockets, epoll, asyncio, files, randomness."""
import asyncio
import hashlib
import json
import multiprocessing
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import zlib


def square(x):
    return x * x


def main():
    # Threads.
    out = []
    ts = [threading.Thread(target=lambda i=i: out.append(i * i)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(out) == [i * i for i in range(8)]

    # Processes: fork, exec, a pool with its pipes and semaphores.
    assert subprocess.run(["true"]).returncode == 0
    with multiprocessing.Pool(2) as pool:
        assert pool.map(square, range(10)) == [i * i for i in range(10)]
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, st = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(st) == 7

    # Sockets on loopback, through epoll.
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    ep = select.epoll()
    ep.register(conn.fileno(), select.EPOLLIN)
    cli.sendall(b"ping")
    assert ep.poll(5)
    assert conn.recv(4) == b"ping"
    a, b = socket.socketpair()
    a.send(b"x")
    assert b.recv(1) == b"x"

    # asyncio with a subprocess.
    async def amain():
        p = await asyncio.create_subprocess_exec("echo", "async", stdout=subprocess.PIPE)
        data, _ = await p.communicate()
        await asyncio.sleep(0.01)
        return data

    assert asyncio.run(amain()) == b"async\n"

    # Files, metadata, xattr-preserving copies, memfd.
    d = tempfile.mkdtemp()
    path = os.path.join(d, "f")
    with open(path, "wb") as f:
        f.write(os.urandom(4096))
    shutil.copy2(path, path + ".copy")
    assert hashlib.sha256(open(path, "rb").read()).digest() == hashlib.sha256(
        open(path + ".copy", "rb").read()).digest()
    fd = os.memfd_create("x")
    os.write(fd, b"memfd")
    os.close(fd)
    shutil.rmtree(d)

    # Signals and timers.
    got = []
    signal.signal(signal.SIGALRM, lambda *_: got.append(1))
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    time.sleep(0.2)
    assert got
    if hasattr(os, "pidfd_open"):
        os.close(os.pidfd_open(os.getpid()))

    # Odds and ends.
    con = sqlite3.connect(":memory:")
    con.execute("create table t (x)")
    con.execute("insert into t values (42)")
    assert con.execute("select x from t").fetchone()[0] == 42
    assert zlib.decompress(zlib.compress(b"z" * 1000)) == b"z" * 1000
    json.dumps(dict(os.environ))
    os.sched_getaffinity(0)
    os.cpu_count()
    print("python ok")


if __name__ == "__main__":
    main()
