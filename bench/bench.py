#!/usr/bin/env python3
"""husk benchmark driver: husk vs runc, crun and runsc on this machine.

Called by bench/run.sh, which installs the tools, builds husk and the
syscall probe, makes the work directory and cleans up after us:

    bench.py run --work W --repo REPO --husk HUSK --bundle B [--doc F] [--quick] ...
    bench.py cleanup --work W

Every container, cgroup and process made here lives under W (runtime roots,
bundles, podman storage) or under the cgroup /husk-bench, so `cleanup` can
find them all again from those two names alone.

This process makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), as
conmon and containerd's shims do, so the pid a runtime writes to --pid-file
becomes our child once `create` returns and can be waited for directly.
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import random
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seccomp_profile  # noqa: E402

CG_PARENT = "husk-bench"
CG_ROOT = "/sys/fs/cgroup"
MEMCG = os.path.join(CG_ROOT, "memory")
UNIFIED = os.path.join(CG_ROOT, "unified")
PR_SET_CHILD_SUBREAPER = 36
# Section 2 also times `create` after this much idle time: on this VM an idle
# vCPU is slow to wake, which makes a create that follows a pause (as on a
# quiet node) slower than one in a back-to-back loop.
IDLE_S = 0.1


# The kernel floor: ../shared/bench/minrun.c, the least work any runtime must do
# for `run` of the default `runc spec` bundle (compiled by run.sh at bench time).
FLOOR = "kernel floor"
FLOOR_NOTE = ("*kernel floor* is `minrun ROOTFS /bin/true` (`../shared/bench/minrun.c`, `gcc -O2`): new "
              "mount/UTS/IPC/network/PID namespaces, a cgroup in every v1 controller and in cgroup2, the rootfs "
              "bind, proc, a tmpfs /dev with devpts, pivot_root, execve; no state, hooks, seccomp, capabilities "
              "or /sys: the least work any runtime must do for this bundle.")


class BenchError(Exception):
    pass


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# --------------------------------------------------------------------------
# runtimes


class Runtime:
    """How to call one runtime: argv = prefix + global flags + command.

    For the wrapped runtimes (runc†, crun†) the prefix is
    `unshare -m sh -c 'umount /sys/fs/cgroup/unified; exec RUNTIME "$@"' NAME`:
    a private mount namespace in which the hybrid layout's cgroup2 mount is
    gone, which crun needs on this host; runc gets the same treatment so the
    two are compared on the same footing.
    """

    def __init__(self, key, name, exe, root, wrapped=False, extra=()):
        self.key = key  # file-name safe
        self.name = name  # shown in tables
        self.exe = exe
        self.root = root
        self.wrapped = wrapped
        self.extra = list(extra)  # global flags after --root

    def prefix(self):
        if self.wrapped:
            script = 'umount %s 2>/dev/null; exec %s "$@"' % (UNIFIED, self.exe)
            return ["unshare", "-m", "sh", "-c", script, os.path.basename(self.exe)]
        return [self.exe]

    def cmd(self, *args, extra=()):
        return self.prefix() + ["--root", self.root] + self.extra + list(extra) + list(args)

    def root_matches(self, argv):
        """True when a process's argv names this runtime's state root."""
        want = self.root.encode()
        return any(a == want or a == b"--root=" + want for a in argv)


def make_runtimes(work, husk):
    def root(key):
        return os.path.join(work, "root-" + key)

    return [
        Runtime("runc", "runc", shutil.which("runc") or "/usr/sbin/runc", root("runc")),
        Runtime("runcu", "runc†", shutil.which("runc") or "/usr/sbin/runc", root("runcu"), wrapped=True),
        Runtime("crunu", "crun†", shutil.which("crun") or "/usr/bin/crun", root("crunu"), wrapped=True),
        Runtime("runsc", "runsc", shutil.which("runsc") or "/usr/bin/runsc", root("runsc"),
                extra=["--network=none", "--platform=ptrace"]),
        Runtime("husk", "husk", husk, root("husk")),
    ]


# --------------------------------------------------------------------------
# processes


class Proc:
    """Spawns commands with posix_spawn and waits through a pidfd, reaping
    every other exited child meanwhile, as a subreaper does on SIGCHLD.

    That matters: runsc's `delete` waits until its gofer's and sandbox's pids
    are gone, and an unreaped zombie still holds its pid. Pids in `protected`
    (running commands, pid-file processes we mean to wait for) are left for
    `wait` to reap, so their exit status is not lost.
    """

    def __init__(self, work):
        self.work = work
        self.errf = os.path.join(work, "last-stderr")
        self.protected = set()
        self.children = "/proc/%d/task/%d/children" % (os.getpid(), os.getpid())
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake = r
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def spawn(self, argv, out=os.devnull, err=None):
        fa = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_OPEN, 2, err or self.errf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        ]
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
        self.protected.add(pid)
        return pid

    def reap(self):
        """Reap exited children that nobody is going to wait for."""
        try:
            with open(self.children) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        for k in kids:
            if k not in self.protected:
                try:
                    os.waitpid(k, os.WNOHANG)
                except ChildProcessError:
                    pass

    def wait(self, pid, timeout):
        """Exit code of pid (reaped if it is our child); None on timeout."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.protected.discard(pid)
            return 0
        deadline = time.monotonic() + timeout
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            p.register(self.wake, select.POLLIN)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                ready = dict(p.poll(left * 1000))
                if fd in ready:
                    break
                if self.wake in ready:
                    try:
                        while os.read(self.wake, 512):
                            pass
                    except BlockingIOError:
                        pass
                    self.reap()
        finally:
            os.close(fd)
        self.protected.discard(pid)
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            return 0

    def run(self, argv, out=os.devnull, timeout=120, check=True):
        """Run argv to completion; returns (exit code, seconds)."""
        self.reap()
        t0 = time.perf_counter()
        pid = self.spawn(argv, out)
        rc = self.wait(pid, timeout)
        dt = time.perf_counter() - t0
        if rc is None:
            os.kill(pid, signal.SIGKILL)
            self.wait(pid, 10)
            raise BenchError("%s: timed out after %ds" % (shlex.join(argv), timeout))
        if check and rc != 0:
            raise BenchError("%s: exit %d: %s" % (shlex.join(argv), rc, self.stderr_tail()))
        return rc, dt

    def stderr_tail(self, n=300):
        try:
            with open(self.errf, errors="replace") as f:
                text = " ".join(f.read().split())
        except OSError:
            return ""
        return text[-n:]


def proc_argv(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a for a in f.read().split(b"\0") if a]
    except OSError:
        return None


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def smaps_rollup(pid):
    """{'Pss': kB, 'Rss': kB} of pid, or None if it is gone."""
    res = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] in ("Pss:", "Rss:"):
                    res[parts[0][:-1]] = int(parts[1])
    except OSError:
        return None
    return res


def memcg_of(pid):
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if "memory" in ctrls.split(","):
                    return path
    except OSError:
        pass
    return None


ROLES = ("boot", "gofer", "wait", "umount", "init", "exec", "sandbox")


def role_of(argv):
    for a in argv[1:]:
        s = a.decode(errors="replace")
        if s in ROLES:
            return s
    return os.path.basename(argv[0].decode(errors="replace"))


def runtime_processes(rt):
    """Long-lived processes of rt: every process whose argv names its root."""
    found = []
    for pid in all_pids():
        argv = proc_argv(pid)
        if argv and rt.root_matches(argv):
            mem = smaps_rollup(pid)
            if mem is not None:
                found.append({"pid": pid, "role": role_of(argv), "pss": mem.get("Pss", 0),
                              "rss": mem.get("Rss", 0), "memcg": memcg_of(pid)})
    return found


class OtherLoad:
    """CPU time used by processes outside this benchmark (another build or test
    run on a shared machine), between two snapshots: the self + reaped-children
    time of every user-space process that is not ours and lived through both.
    Reaped children are charged when reaped, so one section can get time spent
    during an earlier one; over the whole run it evens out."""

    TICK = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def stats():
        out = {}
        for pid in all_pids():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            # rest[0] is field 3 (state): ppid 4, utime 14 .. cstime 17, starttime 22
            out[pid] = (int(rest[1]), int(rest[19]), sum(int(x) for x in rest[11:15]))
        return out

    def snapshot(self):
        st = self.stats()
        ours = {os.getpid()}
        p = os.getppid()
        while p > 1 and p in st:  # our ancestors: their children's time is ours
            ours.add(p)
            p = st[p][0]
        changed = True
        while changed:
            changed = False
            for pid, (ppid, _, _) in st.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        return {pid: (start, ticks) for pid, (ppid, start, ticks) in st.items()
                if pid not in ours and pid != 2 and ppid != 2}

    def since(self, before):
        after = self.snapshot()
        ticks = sum(a[1] - before[pid][1] for pid, a in after.items()
                    if pid in before and before[pid][0] == a[0])
        return ticks / float(self.TICK)


# --------------------------------------------------------------------------
# cgroups


def cg_path(name):
    return "/%s/%s" % (CG_PARENT, name)


def memcg_usage(cgpath):
    try:
        with open(MEMCG + cgpath + "/memory.usage_in_bytes") as f:
            return int(f.read())
    except OSError:
        return None


def bench_cgroup_dirs():
    """Every cgroup directory under /husk-bench in every hierarchy, deepest first."""
    dirs = []
    for h in sorted(os.listdir(CG_ROOT)):
        top = os.path.join(CG_ROOT, h, CG_PARENT)
        if os.path.isdir(top) and not os.path.islink(os.path.join(CG_ROOT, h)):
            for dirpath, _, _ in os.walk(top):
                dirs.append(dirpath)
    dirs.sort(key=lambda d: d.count("/"), reverse=True)
    return dirs


def remove_bench_cgroups():
    left = []
    for d in bench_cgroup_dirs():
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            left.append("%s (%s)" % (d, e.strerror))
    return left


# --------------------------------------------------------------------------
# bundles


class Bundles:
    """One shared rootfs; a config.json per (purpose, runtime), all pointing
    at the rootfs by absolute path, each with its own cgroupsPath."""

    def __init__(self, base, work):
        self.base = base
        self.rootfs = os.path.join(base, "rootfs")
        self.dir = os.path.join(work, "bundles")
        with open(os.path.join(base, "config.json")) as f:
            self.spec = json.load(f)

    def make(self, name, args, cgroup, seccomp=False, seccomp_json=None, caps=None, annotations=None):
        spec = json.loads(json.dumps(self.spec))
        spec["root"] = {"path": self.rootfs, "readonly": True}
        spec["process"]["args"] = list(args)
        spec["process"]["terminal"] = False
        spec["linux"]["cgroupsPath"] = cg_path(cgroup)
        if seccomp:
            spec["linux"]["seccomp"] = seccomp_profile.profile()
        elif seccomp_json is not None:
            spec["linux"]["seccomp"] = seccomp_json
        else:
            spec["linux"].pop("seccomp", None)
        if caps is not None:
            for s in ("bounding", "effective", "permitted"):
                spec["process"]["capabilities"][s] = list(caps)
        if annotations:
            spec["annotations"] = dict(annotations)
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(spec, f, indent=1)
        return d


# --------------------------------------------------------------------------
# section 9: reachability


# issue 15: at most this many x86_64 system calls reachable under husk's default profile
REACH_TARGET = 260

# the capabilities Docker gives a container by default
DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def parse_reach(path):
    with open(path) as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith("reachable="):
            kv = dict(p.split("=", 1) for p in line.split())
            r = {k: int(v) for k, v in kv.items() if k != "insns"}
            r["insns"] = kv["insns"]
            return r
    raise BenchError("reach printed no result: %r" % text[-200:])


class DockerProfile:
    """Docker's own default profile, as Docker hands it to its runtime: a
    private dockerd (its own data and exec roots and socket, no bridge, no
    iptables) runs one busybox `sleep` container with runc; its filters are
    read with bench/reach.c, and the config.json Docker wrote gives the
    profile and capabilities the other rows reuse. With --docker-config, a
    config.json Docker wrote earlier is used instead (no dockerd)."""

    def __init__(self, work, rootfs, reach, config=None):
        self.dir = os.path.join(work, "docker")
        self.rootfs = rootfs
        self.reach = reach
        self.config = config
        self.profile = None
        self.caps = None
        self.measured = None
        self.version = ""
        self.why = ""
        self.daemon = None

    def source(self):
        if self.config and self.profile:
            return "from `%s` (a config.json Docker wrote)." % self.config
        if self.profile:
            return "read from the config.json a private Docker %s wrote for its container." % self.version
        return "not available (%s): its rows are left out." % (self.why or "no Docker here")

    def client(self, *args, out=None, timeout=60):
        argv = ["/usr/bin/docker", "-H", "unix://%s/docker.sock" % self.dir] + list(args)
        env = dict(os.environ, DOCKER_CONFIG=os.path.join(self.dir, "client"))
        env.pop("DOCKER_HOST", None)
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        except (OSError, subprocess.SubprocessError) as e:
            raise BenchError("docker %s: %s" % (" ".join(args), e))
        if p.returncode != 0:
            raise BenchError("docker %s: %s" % (" ".join(args), p.stderr.strip()[-300:]))
        return p.stdout.strip()

    def get(self):
        if self.config:
            with open(self.config) as f:
                c = json.load(f)
            self.take(c)
            return
        if not (os.path.exists("/usr/sbin/dockerd") and os.path.exists("/usr/bin/docker")):
            raise BenchError("no /usr/sbin/dockerd and /usr/bin/docker")
        os.makedirs(os.path.join(self.dir, "client"), exist_ok=True)
        with open(os.path.join(self.dir, "daemon.json"), "w") as f:
            json.dump({}, f)
        log = open(os.path.join(self.dir, "dockerd.log"), "w")
        argv = ["/usr/sbin/dockerd", "--data-root", self.dir + "/data", "--exec-root", self.dir + "/exec",
                "-H", "unix://%s/docker.sock" % self.dir, "--pidfile", self.dir + "/docker.pid",
                "--config-file", self.dir + "/daemon.json", "--bridge", "none", "--iptables=false",
                "--ip6tables=false", "--ip-masq=false", "--containerd-namespace", "husk-bench",
                "--containerd-plugins-namespace", "husk-bench-plugins"]
        self.daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        deadline = time.time() + 40
        while True:
            if self.daemon.poll() is not None:
                raise BenchError("dockerd exited: see %s/dockerd.log" % self.dir)
            try:
                self.version = self.client("version", "--format", "{{.Server.Version}}", timeout=10)
                break
            except BenchError:
                if time.time() > deadline:
                    raise BenchError("dockerd did not come up")
                time.sleep(0.3)
        tar = os.path.join(self.dir, "rootfs.tar")
        subprocess.run(["tar", "-C", self.rootfs, "-cf", tar, "."], check=True)
        self.client("import", tar, "husk-bench-busybox:reach", timeout=120)
        cid = self.client("run", "-d", "--network", "none", "--name", "reach",
                          "husk-bench-busybox:reach", "sleep", "1000", timeout=120)
        pid = self.client("inspect", "-f", "{{.State.Pid}}", cid)
        out = os.path.join(self.dir, "reach.out")
        with open(out, "w") as f:
            subprocess.run([self.reach, pid], stdout=f, check=True, timeout=120)
        self.measured = parse_reach(out)
        found = None
        for top in (self.dir + "/exec", "/run/containerd"):
            for root, _dirs, files in os.walk(top):
                if os.path.basename(root) == cid and "config.json" in files:
                    found = os.path.join(root, "config.json")
        if not found:
            raise BenchError("no config.json for container %s" % cid[:12])
        with open(found) as f:
            self.take(json.load(f))

    def take(self, c):
        self.profile = c["linux"]["seccomp"]
        self.caps = c["process"]["capabilities"]["bounding"]

    def stop(self):
        if not self.daemon:
            return
        try:
            self.client("rm", "-f", "reach", timeout=60)
        except BenchError:
            pass
        self.daemon.terminate()
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        # its containerd and shims go with the work directory in cleanup (their argv names it)


# --------------------------------------------------------------------------
# stats and formatting


def ms(x):
    if x is None:
        return "–"
    x *= 1000
    return "%.1f ms" % x if x < 100 else "%.0f ms" % x


def mib(kb):
    return "–" if kb is None else "%.2f MiB" % (kb / 1024.0)


def ratio(x, ref):
    if x is None or not ref:
        return "–"
    return "%.2f×" % (x / ref)


def summary(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def short_err(e, n=160):
    s = " ".join(str(e).split())
    return s if len(s) <= n else s[: n - 1] + "…"


# --------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, a):
        self.a = a
        self.quick = a.quick
        self.work = a.work
        self.proc = Proc(a.work)
        self.rts = make_runtimes(a.work, a.husk)
        self.by_key = {rt.key: rt for rt in self.rts}
        # run.sh --before: an earlier husk, measured in sections 1 and 2 only,
        # interleaved with the rest (before/after of a change in one run)
        self.before = ([Runtime("huskb", a.before_name, a.before, os.path.join(a.work, "root-huskb"))]
                       if a.before else [])
        self.bundles = Bundles(a.bundle, a.work)
        self.live = {}  # (runtime, id) -> pid-file pid, created and not yet deleted
        self.results = {}
        self.notes = []
        self.md = []
        self.other_load = []  # (section, wall s, CPU-s of other processes)

    # ---- helpers -----------------------------------------------------------

    def create(self, rt, cid, bundle, extra=()):
        pidf = os.path.join(self.work, "pid-%s-%s" % (rt.key, cid))
        self.live[(rt, cid)] = None
        _, dt = self.proc.run(rt.cmd("create", "--bundle", bundle, "--pid-file", pidf, cid, extra=extra))
        with open(pidf) as f:
            pid = int(f.read().strip())
        self.proc.protected.add(pid)
        self.live[(rt, cid)] = pid
        return pid, dt

    def start(self, rt, cid, extra=()):
        return self.proc.run(rt.cmd("start", cid, extra=extra))[1]

    def delete(self, rt, cid, extra=()):
        _, dt = self.proc.run(rt.cmd("delete", cid, extra=extra))
        self.forget(rt, cid)
        return dt

    def forget(self, rt, cid):
        pid = self.live.pop((rt, cid), None)
        if pid:  # not waited for: let the reaper have it
            self.proc.protected.discard(pid)

    def destroy(self, rt, cid, pid=None):
        """`delete --force` (kills, then deletes), tolerating a container
        that is already gone. The pid-file process is left to the reaper
        meanwhile: runsc's delete waits for its sandbox's pid to vanish."""
        self.proc.protected.discard(pid)
        rc, _ = self.proc.run(rt.cmd("delete", "--force", cid), timeout=60, check=False)
        if rc != 0:
            log("   %s delete --force %s: exit %d: %s" % (rt.name, cid, rc, self.proc.stderr_tail()))
        if pid:
            self.proc.wait(pid, 10)
        self.forget(rt, cid)

    def fail(self, fails, rt, e):
        fails[rt.name] = short_err(e)
        log("   %s failed: %s" % (rt.name, fails[rt.name]))
        self.destroy_live()

    def destroy_live(self):
        for (rt, cid), pid in list(self.live.items()):
            self.destroy(rt, cid, pid)
        self.proc.reap()

    def section(self, title, fn):
        log("== " + title)
        t0 = time.time()
        load = OtherLoad()
        before = load.snapshot()
        try:
            fn()
        except Exception as e:  # a section failing must not stop the others
            log("section failed: %s" % e)
            self.md.append("**failed:** %s\n" % short_err(e, 400))
        finally:
            self.destroy_live()
        wall = time.time() - t0
        # a process that reaps a long-lived child is charged its whole time at once: cap at what
        # the CPUs could have done in this section
        other = min(load.since(before), wall * (os.cpu_count() or 1))
        self.other_load.append((title, wall, other))
        log("   %s took %.0f s; other processes used %.1f CPU-s meanwhile" % (title, wall, other))
        if other > 0.05 * wall:
            self.md.append("\n*The machine was not quiet: other processes used %.1f CPU-seconds "
                           "(%.0f%% of one CPU) during this section.*" % (other, 100 * other / wall))

    # ---- 0. which runtimes work at all ---------------------------------------

    def precheck(self):
        """One `run` of /bin/true per runtime; a runtime that fails is left
        out of every section, with the reason in the notes."""
        ok = []
        for rt in self.rts:
            b = self.bundles.make("check-" + rt.key, ["/bin/true"], rt.key + "-check")
            try:
                self.proc.run(rt.cmd("run", "--bundle", b, "check"), timeout=60)
                ok.append(rt)
            except BenchError as e:
                self.notes.append("%s cannot run a container here and is left out: %s" % (rt.name, short_err(e)))
                self.proc.run(rt.cmd("delete", "--force", "check"), check=False)
            self.proc.reap()
        # crun without the mount-namespace treatment, to record why it is needed
        crun = Runtime("crun", "crun", self.by_key["crunu"].exe, os.path.join(self.work, "root-crun"))
        b = self.bundles.make("check-crun", ["/bin/true"], "crun-check")
        try:
            self.proc.run(crun.cmd("run", "--bundle", b, "check"), timeout=60)
            self.notes.append("plain crun (no private mount namespace) also works on this host.")
        except BenchError as e:
            self.notes.append("plain `crun run` on this host fails: `%s` — hence crun†."
                              % self.proc.stderr_tail(120))
            self.proc.run(crun.cmd("delete", "--force", "check"), check=False)
        self.proc.reap()
        self.rts = ok
        self.ref = self.by_key["runc"] if self.by_key["runc"] in ok else None

    # ---- 1. run of /bin/true -------------------------------------------------

    def bench_run(self):
        """`run` of /bin/true by every runtime and by the kernel floor
        (minrun), interleaved: each round runs them all once, in a shuffled
        order. Wall time as the driver sees it; CPU time is the user + system
        time of every process the command made (what getrusage(RUSAGE_CHILDREN)
        gains across it: the runtime's processes are all waited for by their
        parents, and orphans that reach this subreaper are reaped before the
        reading), as hyperfine reports it."""
        import resource
        rounds, warm = (20, 2) if self.quick else (50, 3)
        arms = []
        if self.a.minrun:
            arms.append((FLOOR, [self.a.minrun, self.bundles.rootfs, "/bin/true"]))
        for rt in self.rts + self.before:
            b = self.bundles.make("run-" + rt.key, ["/bin/true"], rt.key + "-run")
            arms.append((rt.name, rt.cmd("run", "--bundle", b, "bench-run")))
        wall = {name: [] for name, _ in arms}
        cpu = {name: [] for name, _ in arms}
        fails = {}
        rng = random.Random(12)

        def children_cpu():
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime

        for i in range(warm + rounds):
            order = list(arms)
            rng.shuffle(order)
            for name, argv in order:
                if name in fails:
                    continue
                self.proc.reap()
                c0 = children_cpu()
                try:
                    _, dt = self.proc.run(argv, timeout=120)
                except BenchError as e:
                    fails[name] = short_err(e)
                    log("   %s failed: %s" % (name, fails[name]))
                    continue
                self.proc.reap()
                if i >= warm:
                    wall[name].append(dt)
                    cpu[name].append(children_cpu() - c0)
        res = {}
        for name, _ in arms:
            if name in fails or not wall[name]:
                continue
            res[name] = summary(wall[name])
            res[name]["cpu"] = statistics.median(cpu[name])
            res[name]["cpu_min"] = min(cpu[name])
            log("   %s: %s wall, %s CPU" % (name, ms(res[name]["median"]), ms(res[name]["cpu"])))
        self.results["run"] = res
        ref = res.get("runc", {})
        floor = res.get(FLOOR, {})
        rows = []
        for name, r in res.items():
            rows.append([name, ms(r["median"]), "%s – %s" % (ms(r["min"]), ms(r["max"])),
                         ratio(r["median"], floor.get("median")), ratio(r["median"], ref.get("median")),
                         ms(r["cpu"]), ratio(r["cpu"], floor.get("cpu")), ratio(r["cpu"], ref.get("cpu"))])
        rows += [[name, "failed", msg] + ["–"] * 5 for name, msg in fails.items()]
        self.md.append("`RUNTIME run --bundle B ID` of a busybox `/bin/true` container (create + start + wait "
                       "+ delete as a client sees it), %d rounds after %d warm-up rounds; each round runs every "
                       "row once, in a shuffled order, back to back; medians. *CPU* is the user + system time "
                       "of all the processes one run made (getrusage of the waited-for children, as hyperfine "
                       "reports it). %s\n" % (rounds, warm, FLOOR_NOTE if self.a.minrun else
                                                "The kernel floor was not measured: %s." % self.a.minrun_why))
        self.md.append(table(["runtime", "median", "min – max", "× floor", "× runc", "CPU", "CPU × floor",
                              "CPU × runc"], rows))

    def hyperfine(self, cmds, runs, warm, tag):
        out = os.path.join(self.work, "hyperfine-%s.json" % tag)
        argv = ["hyperfine", "-N", "--style", "basic", "--warmup", str(warm), "--runs", str(runs),
                "--export-json", out] + cmds
        log(shlex.join(argv))
        subprocess.run(argv, check=True, stdout=sys.stderr, timeout=900)
        self.proc.reap()
        with open(out) as f:
            data = json.load(f)
        res = {}
        for r in data["results"]:
            res[r["command"]] = {"median": r["median"], "min": r["min"], "max": r["max"], "n": len(r["times"])}
        return res

    # ---- 2. create / start / delete ------------------------------------------

    def bench_cycle(self):
        n, warm = (10, 1) if self.quick else (50, 3)
        res, fails = {}, {}
        rts = self.rts + self.before
        bundles = {rt.name: self.bundles.make("cycle-" + rt.key, ["/bin/true"], rt.key + "-cycle")
                   for rt in rts}
        t = {rt.name: {"create": [], "start": [], "delete": [], "create after idle": []} for rt in rts}
        rng = random.Random(1)
        # cycle i of every runtime, in a shuffled order, then cycle i+1; after the warm-up, every
        # other cycle pauses IDLE_S before each create and records only that create
        for i in range(warm + 2 * n):
            idle = i >= warm and (i - warm) % 2 == 1
            order = list(rts)
            rng.shuffle(order)
            for rt in order:
                if rt.name in fails:
                    continue
                cid = "cyc%04d" % i
                if idle:
                    time.sleep(IDLE_S)
                try:
                    pid, tc = self.create(rt, cid, bundles[rt.name])
                    ts = self.start(rt, cid)
                    if self.proc.wait(pid, 60) is None:
                        raise BenchError("%s: container %s did not exit" % (rt.name, cid))
                    td = self.delete(rt, cid)
                except BenchError as e:
                    self.fail(fails, rt, e)
                    continue
                if idle:
                    t[rt.name]["create after idle"].append(tc)
                elif i >= warm:
                    t[rt.name]["create"].append(tc)
                    t[rt.name]["start"].append(ts)
                    t[rt.name]["delete"].append(td)
        for rt in rts:
            if rt.name not in fails:
                r = res[rt.name] = {op: summary(v) for op, v in t[rt.name].items()}
                log("   %s: create %s start %s delete %s" % (rt.name, ms(r["create"]["median"]),
                                                              ms(r["start"]["median"]), ms(r["delete"]["median"])))
        self.results["cycle"] = res
        rows = []
        for op in ("create", "start", "delete", "create after idle"):
            ref = res.get("runc", {}).get(op, {}).get("median")
            for name, r in res.items():
                s = r[op]
                rows.append([op, name, ms(s["median"]), "%s – %s" % (ms(s["min"]), ms(s["max"])),
                             ratio(s["median"], ref)])
        rows += [["all", name, "failed", msg, "–"] for name, msg in fails.items()]
        self.md.append("A subreaper driver (bench/bench.py) times each command of %d cycles per runtime "
                       "(after %d warm-up cycles): `create --pid-file`, `start`, wait for the pid-file's "
                       "process to exit (it is the driver's child), `delete`. The runtimes take turns in a "
                       "shuffled order, cycle by cycle, back to back. *create after idle*: %d more cycles in "
                       "between, each `create` preceded by %.0f ms of idling, as on a quiet node (an idle vCPU "
                       "of this VM is slow to wake).\n" % (n, warm, n, IDLE_S * 1000))
        self.md.append(table(["command", "runtime", "median", "min – max", "× runc"], rows))

    # ---- 3. idle memory -------------------------------------------------------

    def bench_idle(self):
        res, fails = {}, {}
        for rt in self.rts:
            b = self.bundles.make("idle-" + rt.key, ["sleep", "100000"], rt.key + "-idle")
            try:
                pid, _ = self.create(rt, "idle", b)
                self.start(rt, "idle")
            except BenchError as e:
                self.fail(fails, rt, e)
                continue
            time.sleep(1.5)
            self.proc.reap()
            procs = runtime_processes(rt)
            roles = {}
            for p in procs:
                roles.setdefault(p["role"], []).append(p["pss"])
            res[rt.name] = {
                "pss": sum(p["pss"] for p in procs),
                "rss": sum(p["rss"] for p in procs),
                "procs": [{"role": p["role"], "pss": p["pss"], "rss": p["rss"]} for p in procs],
                "cgroup": (memcg_usage(cg_path(rt.key + "-idle")) or 0) // 1024,
            }
            self.destroy(rt, "idle", pid)
            log("   %s: %s in %d processes" % (rt.name, mib(res[rt.name]["pss"]), len(procs)))
        self.results["idle"] = res
        rows = []
        for name, r in res.items():
            parts = {}
            for p in r["procs"]:
                parts.setdefault(p["role"], []).append(p["pss"])
            detail = ", ".join("%s %s%s" % (role, mib(sum(v)), " (×%d)" % len(v) if len(v) > 1 else "")
                               for role, v in sorted(parts.items())) or "none"
            rows.append([name, mib(r["pss"]), mib(r["rss"]), detail, mib(r["cgroup"])])
        rows += [[name, "failed", msg, "", ""] for name, msg in fails.items()]
        self.md.append("One idle `sleep` container per runtime, 1.5 s after `start`. PSS and RSS summed over "
                       "every process whose argv names the runtime's `--root` (husk: boot, gofer, waiters; "
                       "runsc: sandbox, gofer; runc/crun leave none). The container's own processes are not "
                       "included; the last column is what the container's memory cgroup is charged, for scale "
                       "(runsc's sandbox lives inside it).\n")
        self.md.append(table(["runtime", "runtime PSS", "runtime RSS", "PSS by process", "container memcg"], rows))

    # ---- 4. density -------------------------------------------------------------

    def bench_density(self):
        n = 50
        rounds = 1 if self.quick else 3
        res, fails = {}, {}
        for rt in self.rts:
            names = ["d%03d" % i for i in range(n)]
            bundles = [self.bundles.make("dens-%s-%s" % (rt.key, c), ["sleep", "100000"], "%s-%s" % (rt.key, c))
                       for c in names]
            samples = []
            try:
                for _ in range(rounds):
                    samples.append(self.density_round(rt, names, bundles))
            except BenchError as e:
                self.fail(fails, rt, e)
                continue
            med = lambda k: statistics.median(x[k] for x in samples)  # noqa: E731
            res[rt.name] = {k: med(k) for k in samples[0]}
            res[rt.name]["start_min"] = min(x["start_s"] for x in samples)
            res[rt.name]["start_max"] = max(x["start_s"] for x in samples)
            res[rt.name]["rounds"] = samples
            r = res[rt.name]
            log("   %s: %.2f s, %s cgroups + %s runtime" % (rt.name, r["start_s"], mib(r["cgroup_kb"]),
                                                           mib(r["runtime_pss_kb"])))
        self.results["density"] = res
        ref = res.get("runc")
        rows = []
        for name, r in res.items():
            note = " (%d cgroups missing)" % r["missing_cgroups"] if r["missing_cgroups"] else ""
            spread = " (%.2f – %.2f)" % (r["start_min"], r["start_max"]) if rounds > 1 else ""
            rows.append([name, "%.2f s%s" % (r["start_s"], spread), ms(r["start_s"] / n),
                         ratio(r["start_s"], ref and ref["start_s"]),
                         mib(r["cgroup_kb"]) + note, mib(r["runtime_pss_kb"]), mib(r["total_kb"]),
                         mib(r["total_kb"] / n), ratio(r["total_kb"], ref and ref["total_kb"]),
                         "%.2f s" % r["teardown_s"]])
        rows += [[name, "failed", msg] + [""] * 7 for name, msg in fails.items()]
        self.md.append("%d idle `sleep` containers started one after another (`create` + `start` each, "
                       "own cgroup `/husk-bench/RUNTIME-dNNN`), then 2 s later: `memory.usage_in_bytes` "
                       "summed over their memory cgroups, plus the PSS of runtime processes that are "
                       "outside those cgroups (a process inside is already counted). Teardown is "
                       "`delete --force` of all %d. %s\n"
                       % (n, n, "Median of %d rounds (min – max of the start time)." % rounds if rounds > 1
                          else "One round."))
        self.md.append(table(["runtime", "start all", "per container", "× runc", "cgroups", "runtime PSS",
                              "total", "per container", "× runc", "teardown"], rows))

    def density_round(self, rt, names, bundles):
        pids = []
        t0 = time.perf_counter()
        for c, b in zip(names, bundles):
            pid, _ = self.create(rt, c, b)
            self.start(rt, c)
            pids.append(pid)
        total = time.perf_counter() - t0
        time.sleep(2)
        self.proc.reap()
        cg_kb = 0
        missing = 0
        for c in names:
            u = memcg_usage(cg_path("%s-%s" % (rt.key, c)))
            if u is None:
                missing += 1
            else:
                cg_kb += u // 1024
        procs = runtime_processes(rt)
        inside = "/%s/" % CG_PARENT
        outside = [p for p in procs if not (p["memcg"] or "").startswith(inside)]
        rt_kb = sum(p["pss"] for p in outside)
        t1 = time.perf_counter()
        for c, pid in zip(names, pids):
            self.destroy(rt, c, pid)
        teardown = time.perf_counter() - t1
        self.proc.reap()
        return {"start_s": total, "cgroup_kb": cg_kb, "runtime_pss_kb": rt_kb, "runtime_procs": len(procs),
                "runtime_procs_outside": len(outside), "missing_cgroups": missing, "teardown_s": teardown,
                "total_kb": cg_kb + rt_kb}

    # ---- 5. syscall cost ----------------------------------------------------------

    def bench_syscall(self):
        reps = 3 if self.quick else 7
        full = ["1000000", "100000"]
        slow = ["5000", "1000"]  # runsc on ptrace: ~100 µs per syscall here
        res = {"native": {}}
        fails = {}
        probe = "/bench-syscall"
        for cfg in ("none", "default"):
            samples = {"native": []}
            runs = []
            for rt in self.rts:
                iters = slow if rt.key == "runsc" else full
                b = self.bundles.make("sys-%s-%s" % (cfg, rt.key), [probe] + iters, rt.key + "-sys",
                                      seccomp=(cfg == "default"))
                extra = ["--oci-seccomp"] if rt.key == "runsc" and cfg == "default" else []
                runs.append((rt, b, extra))
                samples[rt.name] = []
            for rep in range(reps):
                out = os.path.join(self.work, "sys.out")
                # chroot, so that /bin/busybox resolves as in the containers (on the host
                # /bin is a symlink to usr/bin)
                self.proc.run(["chroot", self.bundles.rootfs, probe] + full, out=out, timeout=120)
                samples["native"].append(self.parse_probe(out))
                random.Random(rep).shuffle(runs)
                for rt, b, extra in runs:
                    if rt.name in fails:
                        continue
                    cid = "sys%02d" % rep
                    self.live[(rt, cid)] = None
                    try:
                        self.proc.run(rt.cmd("run", "--bundle", b, cid, extra=extra), out=out, timeout=300)
                        self.forget(rt, cid)
                        samples[rt.name].append(self.parse_probe(out))
                    except BenchError as e:
                        self.fail(fails, rt, e)
                    self.proc.reap()
            for name, ss in samples.items():
                if not ss:
                    continue
                res.setdefault(name, {})[cfg] = {
                    "getppid_ns": min(s["getppid_ns"] for s in ss),
                    "open_close_ns": min(s["open_close_ns"] for s in ss),
                    "getppid_med_ns": statistics.median(s["getppid_med_ns"] for s in ss),
                    "open_close_med_ns": statistics.median(s["open_close_med_ns"] for s in ss),
                    "runs": ss,
                    "getppid_iters": ss[0]["getppid_iters"], "open_iters": ss[0]["open_iters"],
                    "seccomp": ss[0]["seccomp"], "no_new_privs": ss[0]["no_new_privs"],
                }
        self.results["syscall"] = res
        rows = []
        for name, r in res.items():
            row = [name]
            for cfg in ("none", "default"):
                x = r.get(cfg)
                ref = res.get("runc", {}).get(cfg)
                if not x:
                    row += ["–"] * 4
                    continue
                row += ["%.0f" % x["getppid_ns"], ratio(x["getppid_ns"], ref and ref["getppid_ns"]),
                        "%.0f" % x["open_close_ns"], ratio(x["open_close_ns"], ref and ref["open_close_ns"])]
            if "none" not in r or "default" not in r:
                row += ["–", "–"]
                rows.append(row)
                continue
            row.append(" / ".join(r[c]["seccomp"].replace("?", "–") for c in ("none", "default")))
            it = r["none"]
            row.append("%s / %s" % (fmt_count(it["getppid_iters"]), fmt_count(it["open_iters"])))
            rows.append(row)
        self.md.append("A static C probe (bench/syscall.c, `gcc -static -O2`) in the busybox rootfs times "
                       "1,000,000 raw `getppid` calls and 100,000 `open`+`close` pairs of `/bin/busybox`, each "
                       "in 20 equal batches, and reports ns per call of its fastest batch; the table gives "
                       "the fastest of %d such runs, the runtimes taking turns (shuffled) run by run. Noise "
                       "from other tenants only ever adds time, so the minimum is the steadiest estimate of "
                       "the cost itself. "
                       "*no filter*: "
                       "the spec as `husk spec` writes it (no `linux.seccomp`): runc, crun and runsc load no "
                       "filter then, husk loads its own default profile (docs/security.md); *profile*: a docker-like "
                       "allowlist (bench/seccomp_profile.py, %d syscalls allowed, `SCMP_ACT_ERRNO` otherwise; "
                       "runsc gets `--oci-seccomp`). `Seccomp:` is the field of `/proc/self/status` the probe "
                       "saw (0 none, 2 filter) without / with the profile. *native* runs the probe on the host, "
                       "chrooted into the same rootfs so the path resolves alike. runsc runs fewer iterations "
                       "(ptrace platform: every syscall is a ptrace stop).\n"
                       % (reps, len(set(seccomp_profile.ALLOWED))))
        rows += [[name, "failed", msg] + [""] * 8 for name, msg in fails.items()]
        self.md.append(table(["runtime", "getppid ns (no `linux.seccomp`)", "× runc", "open+close ns", "× runc",
                              "getppid ns (profile)", "× runc", "open+close ns (profile)", "× runc",
                              "Seccomp:", "iterations"], rows))

    @staticmethod
    def parse_probe(path):
        with open(path) as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("getppid_ns="):
                kv = dict(p.split("=", 1) for p in line.split())
                return {"getppid_ns": float(kv["getppid_ns"]), "open_close_ns": float(kv["open_close_ns"]),
                        "getppid_med_ns": float(kv["getppid_med_ns"]),
                        "open_close_med_ns": float(kv["open_close_med_ns"]),
                        "getppid_iters": int(kv["getppid_iters"]), "open_iters": int(kv["open_iters"]),
                        "seccomp": kv.get("seccomp", "?"), "no_new_privs": kv.get("no_new_privs", "?")}
        raise BenchError("probe printed no result: %r" % text[-200:])

    # ---- 6. podman ---------------------------------------------------------------------

    def bench_podman(self):
        podman = shutil.which("podman")
        if not podman:
            self.md.append("podman is not installed: skipped (install `podman` to measure it).\n")
            self.results["podman"] = "not installed"
            return
        pw = os.path.join(self.work, "podman")
        for d in ("root", "runroot", "tmp", "wrap"):
            os.makedirs(os.path.join(pw, d), exist_ok=True)
        conf = os.path.join(pw, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    'events_logfile_path = "%s/events.log"\n' % pw)
        sconf = os.path.join(pw, "storage.conf")
        with open(sconf, "w") as f:
            f.write('[storage]\ndriver = "overlay"\nrunroot = "%s/runroot"\ngraphroot = "%s/root"\n' % (pw, pw))
        os.environ["CONTAINERS_CONF"] = conf
        os.environ["CONTAINERS_STORAGE_CONF"] = sconf
        base = [podman, "--root", pw + "/root", "--runroot", pw + "/runroot", "--tmpdir", pw + "/tmp",
                "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        tar = os.path.join(pw, "rootfs.tar")
        subprocess.run(["tar", "-C", self.bundles.rootfs, "-cf", tar, "."], check=True)
        self.proc.run(base + ["import", tar, "localhost/husk-bench-busybox"], timeout=120)
        self.podman_base = base

        def rt_args(rt):
            if rt.wrapped:  # podman runs the runtime itself: give it the wrapper as a script
                path = os.path.join(pw, "wrap", os.path.basename(rt.exe))
                with open(path, "w") as f:
                    f.write('#!/bin/sh\nexec %s "$@"\n' % shlex.join(rt.prefix()))
                os.chmod(path, 0o755)
                return ["--runtime", path]
            args = ["--runtime", rt.exe]
            for flag in rt.extra:
                args += ["--runtime-flag", flag.lstrip("-")]
            return args

        runs, warm = (3, 1) if self.quick else (10, 2)
        cmds, failed = [], {}
        for rt in self.rts:
            argv = base + rt_args(rt) + ["run", "--rm", "--network=none", "localhost/husk-bench-busybox", "true"]
            try:
                self.proc.run(argv, timeout=120)
                cmds += ["-n", rt.name, shlex.join(argv)]
            except BenchError as e:
                failed[rt.name] = short_err(self.proc.stderr_tail(200) or e)
                log("   podman with %s failed: %s" % (rt.name, failed[rt.name]))
            self.proc.reap()
        res = self.hyperfine(cmds, runs, warm, "podman") if cmds else {}
        self.results["podman"] = {"ok": res, "failed": failed}
        ref = res.get("runc", {}).get("median")
        rows = []
        for rt in self.rts:
            r = res.get(rt.name)
            if r:
                rows.append([rt.name, ms(r["median"]), "%s – %s" % (ms(r["min"]), ms(r["max"])),
                             ratio(r["median"], ref)])
            else:
                rows.append([rt.name, "failed", failed.get(rt.name, ""), "–"])
        self.md.append("`podman run --rm --network=none IMG true` with `--runtime` set to each runtime "
                       "(runsc with `--runtime-flag network=none --runtime-flag platform=ptrace`; runc†/crun† "
                       "through a wrapper script), private storage under the work directory, an image "
                       "imported offline from the busybox rootfs, cgroupfs, file events. One hyperfine call, "
                       "%d warm-up runs, %d runs each.\n" % (warm, runs))
        self.md.append(table(["runtime", "median", "min – max", "× runc"], rows))

    # ---- 7. create with many stopped containers in the root ---------------------------

    def bench_scale(self):
        m = 300 if self.quick else 1000
        probes = 10 if self.quick else 30
        keys = [k for k in ("husk", "runc") if self.by_key[k] in self.rts]
        res = {}
        for key in keys:
            rt = self.by_key[key]
            full = Runtime(rt.key, rt.name, rt.exe, rt.root + "-full", rt.wrapped, rt.extra)
            empty = Runtime(rt.key, rt.name, rt.exe, rt.root + "-empty", rt.wrapped, rt.extra)
            os.makedirs(full.root, exist_ok=True)
            os.makedirs(empty.root, exist_ok=True)
            fill = self.bundles.make("scale-fill-" + key, ["/bin/true"], key + "-scale-fill")
            probe = self.bundles.make("scale-probe-" + key, ["/bin/true"], key + "-scale-probe")
            t0 = time.perf_counter()
            for i in range(m):
                cid = "stopped%04d" % i
                pid, _ = self.create(full, cid, fill)
                self.start(full, cid)
                self.proc.wait(pid, 60)
                self.proc.reap()
            fill_s = time.perf_counter() - t0
            log("   %s: %d stopped containers in %.1f s" % (rt.name, m, fill_s))
            t = {"empty": {"create": [], "delete": []}, "full": {"create": [], "delete": []}}
            for i in range(probes + 2):
                pair = (("empty", empty), ("full", full))
                for label, r in (pair if i % 2 == 0 else pair[::-1]):
                    cid = "probe%04d" % i
                    _, tc = self.create(r, cid, probe)
                    td = self.delete(r, cid)
                    self.proc.reap()
                    if i >= 2:
                        t[label]["create"].append(tc)
                        t[label]["delete"].append(td)
            _, tl = self.proc.run(full.cmd("list"), timeout=120)
            _, tle = self.proc.run(empty.cmd("list"), timeout=120)
            t1 = time.perf_counter()
            for i in range(m):
                self.delete(full, "stopped%04d" % i)
            del_s = time.perf_counter() - t1
            res[rt.name] = {"stopped": m, "fill_s": fill_s, "delete_all_s": del_s, "list_full_s": tl,
                            "list_empty_s": tle,
                            **{"%s_%s" % (lab, op): summary(v) for lab, d in t.items() for op, v in d.items()}}
            log("   %s: create %s empty / %s full" % (rt.name, ms(res[rt.name]["empty_create"]["median"]),
                                                    ms(res[rt.name]["full_create"]["median"])))
        self.results["scale"] = res
        rows = []
        for name, r in res.items():
            for op in ("create", "delete"):
                e, f = r["empty_" + op], r["full_" + op]
                rows.append([name, op, "%s (%s – %s)" % (ms(e["median"]), ms(e["min"]), ms(e["max"])),
                             "%s (%s – %s)" % (ms(f["median"]), ms(f["min"]), ms(f["max"])),
                             ratio(f["median"], e["median"])])
            rows.append([name, "list", ms(r["list_empty_s"]), ms(r["list_full_s"]),
                         ratio(r["list_full_s"], r["list_empty_s"])])
        self.md.append("`create` + `delete` of a new container (not started), %d times alternating (back "
                       "to back; which goes first alternates too) between an empty `--root` and a `--root` "
                       "holding %d **stopped** containers (each made by `create` "
                       "+ `start` of `/bin/true`, waited for, never deleted), medians (min – max); `list` once "
                       "each, for contrast, since it is O(n) by nature. Stopped containers are the case that "
                       "grows without bound in practice (exited, not yet removed), keep only on-disk state, and "
                       "are what a per-`create` scan of the root would have to read and liveness-check (their "
                       "recorded pids are dead), while adding no processes, namespaces or cgroups whose kernel-side "
                       "cost would blur the measurement, as %d live `created` sandboxes would.\n" % (probes, m, m))
        self.md.append(table(["runtime", "command", "empty root", "root with %d stopped" % m, "full / empty"], rows))
        for name, r in res.items():
            self.md.append("\n%s: making the %d stopped containers took %.1f s, deleting them %.1f s."
                           % (name, r["stopped"], r["fill_s"], r["delete_all_s"]))

    # ---- 9. reachable system calls ---------------------------------------------------

    def reach_of(self, rt, name, bundle):
        """Start `bundle` (a `sleep`), read its filter chain with bench/reach.c, delete it."""
        cid = "reach-" + name
        self.create(rt, cid, bundle)
        self.start(rt, cid)
        out = os.path.join(self.work, "reach.out")
        self.proc.run(rt.cmd("state", cid), out=out)
        with open(out) as f:
            pid = json.load(f)["pid"]
        self.proc.run([self.a.reach, str(pid)], out=out, timeout=120)
        self.destroy(rt, cid, self.live.get((rt, cid)))
        return parse_reach(out)

    def bench_reach(self):
        if not self.a.reach:
            self.md.append("bench/reach.c was not built: skipped.\n")
            return
        docker = DockerProfile(self.work, self.bundles.rootfs, self.a.reach, self.a.docker_config)
        try:
            docker.get()
        except BenchError as e:
            docker.why = short_err(e, 300)
        finally:
            docker.stop()
        husk, runc = self.by_key.get("husk"), self.by_key.get("runc")
        rows, res = [], {}

        def measure(key, label, rt, note="", **kw):
            if rt not in self.rts:
                return
            b = self.bundles.make("reach-" + key, ["sleep", "1000"], rt.key + "-reach", **kw)
            try:
                r = self.reach_of(rt, key, b)
            except BenchError as e:
                rows.append([label, "failed", short_err(e), "", ""])
                return
            res[key] = r
            rows.append([label, "**%d**" % r["reachable"] if key == "husk-default" else str(r["reachable"]),
                         "%d (%s)" % (r["filters"], r["insns"]) if r["filters"] else "0",
                         "%d / %d" % (r["denied_eperm"], r["denied_enosys"]), note])

        off = {"dev.husk.seccomp-baseline": "off"}
        measure("runc", "runc, `runc spec` (no profile)", runc)
        if docker.measured:
            r = docker.measured
            res["docker"] = r
            rows.append(["Docker %s (`docker run`, runc), its default profile" % docker.version,
                         str(r["reachable"]), "%d (%s)" % (r["filters"], r["insns"]),
                         "%d / %d" % (r["denied_eperm"], r["denied_enosys"]), "measured in Docker itself"])
        if docker.profile:
            measure("runc-docker", "runc, Docker's profile and capabilities", runc,
                    seccomp_json=docker.profile, caps=docker.caps)
        measure("husk-off", "husk, no profile, `dev.husk.seccomp-baseline: off`", husk, annotations=off)
        measure("husk-baseline", "husk, baseline only (spec profile allowing all)", husk,
                "what a spec without a profile got before the default profile",
                seccomp_json={"defaultAction": "SCMP_ACT_ALLOW"})
        if docker.profile:
            measure("husk-docker", "husk, Docker's profile and capabilities + baseline", husk,
                    seccomp_json=docker.profile, caps=docker.caps)
        measure("husk-default", "husk, no profile: default profile, `husk spec`'s capabilities", husk,
                "target: at most %d" % REACH_TARGET)
        measure("husk-default-docker-caps", "husk, no profile: default profile, Docker's capabilities", husk,
                caps=DOCKER_CAPS)
        self.results["reach"] = res
        impl = next((r["implemented"] for r in res.values()), None)
        self.md.append("`bench/reach.c` reads the filter chain of a running busybox `sleep` container with "
                       "`PTRACE_SECCOMP_GET_FILTER`, evaluates each filter for every x86_64 number 0–550 "
                       "(arguments unknown, so argument-filtered calls count if any value gets through) and "
                       "combines them as the kernel does. *Reachable*: implemented by this kernel (%s numbers, "
                       "found by calling each with zero arguments in an isolated child) and let through by "
                       "every filter. *Refused* counts EPERM / ENOSYS verdicts for zero arguments. "
                       "Docker's profile: %s\n" % (impl, docker.source()))
        self.md.append(table(["runtime and profile", "reachable", "filters (instructions)", "refused EPERM / ENOSYS",
                              "notes"], rows))

    # ---- targets ---------------------------------------------------------------------------

    def targets(self):
        R = self.results
        rows = []

        def add(target, measured, ok):
            rows.append([target, measured, "–" if ok is None else ("yes" if ok else "**no**")])

        run = R.get("run", {})
        if "husk" in run and FLOOR in run:
            h, f = run["husk"], run[FLOOR]
            add("`run` of /bin/true: husk ≤ 1.6× the kernel floor (wall)",
                "husk %s, floor %s (%s)" % (ms(h["median"]), ms(f["median"]), ratio(h["median"], f["median"])),
                h["median"] <= 1.6 * f["median"])
            add("`run` of /bin/true: husk ≤ 2.0× the kernel floor (CPU)",
                "husk %s, floor %s (%s)" % (ms(h["cpu"]), ms(f["cpu"]), ratio(h["cpu"], f["cpu"])),
                h["cpu"] <= 2.0 * f["cpu"])
        if "husk" in run and "runc" in run:
            h, r = run["husk"]["median"], run["runc"]["median"]
            add("`run` of /bin/true: husk ≤ 0.5× runc", "husk %s, runc %s (%s)" % (ms(h), ms(r), ratio(h, r)),
                h <= 0.5 * r)
        if "husk" in run and "crun†" in run:
            h, c = run["husk"]["median"], run["crun†"]["median"]
            extra = ""
            if "runc†" in run and "runc" in run:
                wrap = run["runc†"]["median"] - run["runc"]["median"]
                extra = " (crun† includes the unshare wrapper, which costs runc %s: crun† − that ≈ %s)" % (
                    ms(wrap), ms(c - wrap))
            add("`run` of /bin/true: husk ≤ crun", "husk %s, crun† %s%s" % (ms(h), ms(c), extra), h <= c)
        cyc = R.get("cycle", {}).get("husk")
        if cyc:
            # issue 12: half of what docs/benchmarks.md said before it (15.3 / 3.3 / 2.5 ms)
            for op, before in (("create", 15.3), ("start", 3.3), ("delete", 2.5)):
                m = cyc[op]["median"]
                add("`%s` ≤ %.2f ms (half of %.1f ms)" % (op, before / 2, before), ms(m), m * 1000 <= before / 2)
        idle = R.get("idle", {})
        if "husk" in idle:
            p = idle["husk"]["pss"]
            add("idle runtime PSS (boot+gofer+waiters) ≤ 1.5 MiB", mib(p), p <= 1536)
        dens = R.get("density", {})
        if "husk" in dens and "runc" in dens:
            h, r = dens["husk"], dens["runc"]
            add("50 containers: start time ≤ 0.5× runc", "husk %.2f s, runc %.2f s (%s)" % (
                h["start_s"], r["start_s"], ratio(h["start_s"], r["start_s"])), h["start_s"] <= 0.5 * r["start_s"])
            lim = r["total_kb"] + 50 * 256
            add("50 containers: memory ≤ runc + 0.25 MiB/container", "husk %s, limit %s (runc %s)" % (
                mib(h["total_kb"]), mib(lim), mib(r["total_kb"])), h["total_kb"] <= lim)
        sc = R.get("syscall", {})
        if "husk" in sc and "runc" in sc:
            for k, label in (("getppid_ns", "getppid"), ("open_close_ns", "open+close")):
                h, r = sc["husk"]["default"][k], sc["runc"]["default"][k]
                hs, rs = sc["husk"]["default"]["seccomp"], sc["runc"]["default"]["seccomp"]
                add("%s with default profile within 5%% of runc" % label,
                    "husk %.0f ns, runc %.0f ns (%+.1f%%); Seccomp: husk %s, runc %s%s" % (
                        h, r, 100 * (h / r - 1), hs, rs,
                        " — husk applied no filter, so this does not count yet" if hs != rs else ""),
                    h <= r * 1.05 if hs == rs else None)
        if "husk" in sc and "runc" in sc and "none" in sc["husk"]:
            for k, label in (("getppid_ns", "getppid"), ("open_close_ns", "open+close")):
                h, r = sc["husk"]["none"][k], sc["runc"]["default"][k]
                add("%s: husk's default profile (no `linux.seccomp`) within 5%% of runc with the docker-like "
                    "profile" % label, "husk %.0f ns, runc %.0f ns (%+.1f%%)" % (h, r, 100 * (h / r - 1)),
                    h <= r * 1.05)
        reach = R.get("reach", {})
        if "husk-default" in reach:
            n = reach["husk-default"]["reachable"]
            add("reachable system calls, husk's default profile ≤ %d" % REACH_TARGET, str(n), n <= REACH_TARGET)
        if "husk-docker" in reach and "runc-docker" in reach:
            h, r = reach["husk-docker"]["reachable"], reach["runc-docker"]["reachable"]
            add("reachable with Docker's profile: husk ≤ runc", "husk %d, runc %d" % (h, r), h <= r)
        scale = R.get("scale", {})
        if "husk" in scale:
            s = scale["husk"]
            e, f = s["empty_create"]["median"], s["full_create"]["median"]
            add("`create` not slower with %d stopped containers (≤ +10%%, noise)" % s["stopped"],
                "%s → %s (%s)" % (ms(e), ms(f), ratio(f, e)), f <= e * 1.10)
            e, f = s["empty_delete"]["median"], s["full_delete"]["median"]
            add("`delete` not slower with %d stopped containers (not a stated target)" % s["stopped"],
                "%s → %s (%s)" % (ms(e), ms(f), ratio(f, e)), f <= e * 1.10)
        return table(["target", "measured", "met"], rows)

    # ---- all ---------------------------------------------------------------------------------

    def main(self):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise BenchError("prctl(PR_SET_CHILD_SUBREAPER) failed")
        for rt in self.rts:
            os.makedirs(rt.root, exist_ok=True)
        t0 = time.time()
        log("== precheck")
        self.precheck()
        if not self.ref:
            raise BenchError("runc does not work here; nothing to compare with")
        sections = [
            ("1. `run` of /bin/true", self.bench_run),
            ("2. `create`, `start`, `delete` separately", self.bench_cycle),
            ("3. Idle memory of one sandbox", self.bench_idle),
            ("4. Density: 50 idle containers", self.bench_density),
            ("5. Syscall cost inside the container", self.bench_syscall),
            ("6. `podman run --rm IMG true`", self.bench_podman),
            ("7. `create` with 1,000 stopped containers in the root" if not self.quick
             else "7. `create` with 300 stopped containers in the root", self.bench_scale),
            ("9. Reachable system calls", self.bench_reach),
        ]
        if self.a.only:
            keep = set(self.a.only.split(","))
            sections = [(t, f) for t, f in sections if t.split(".")[0] in keep]
        body = []
        for title, fn in sections:
            self.md = []
            self.section(title, fn)
            body.append("### %s\n\n%s\n" % (title, "\n".join(self.md)))
        elapsed = time.time() - t0
        self.emit(body, elapsed)

    def emit(self, body, elapsed):
        a = self.a
        head = ["# Benchmarks: husk vs runc, crun, runsc", ""]
        head.append("Generated by `%s` (%s mode); the whole run took %d min %02d s "
                    "(plus installing and building)." % (a.command, "quick" if self.quick else "full",
                                                         elapsed // 60, elapsed % 60))
        head.append("")
        head.append(environment(a))
        head.append("")
        head.append("runc† and crun† run inside `unshare -m sh -c 'umount /sys/fs/cgroup/unified; exec RUNTIME "
                    "\"$@\"'`: crun refuses this hybrid cgroup layout otherwise, and runc gets the same "
                    "treatment so the two see the same host. runsc runs with `--network=none "
                    "--platform=ptrace` (its kvm platform hangs here). Ratios are to plain runc; times are "
                    "wall-clock as the calling process sees them. Where husk's time goes, what each speed "
                    "change bought and what stands between husk and the kernel floor: "
                    "[speed.md](speed.md).")
        head.append("")
        other = sum(o for _, _, o in self.other_load)
        busy = [(t, o / w) for t, w, o in self.other_load if w > 0 and o > 0.05 * w]
        if busy:
            self.notes.append("the machine was not quiet: processes other than the benchmark's used %.0f "
                              "CPU-seconds during the run (%.0f%% of one CPU); sections marked below were "
                              "affected, so rerun on a quiet machine before trusting small differences."
                              % (other, 100 * other / elapsed))
        else:
            self.notes.append("the machine was quiet: other processes used %.1f CPU-seconds during the run."
                              % other)
        if self.notes:
            head.append("Notes from this run:\n")
            head += ["- " + n for n in self.notes]
            head.append("")
        tgt = ["### Targets\n", self.targets(), ""]
        doc = "\n".join(head) + "\n" + "\n".join(tgt) + "\n" + "\n".join(body) + "\n" + METHOD
        sys.stdout.write(doc)
        if a.doc:
            with open(a.doc, "w") as f:
                f.write(doc)
            log("wrote %s" % a.doc)
        with open(os.path.join(a.work, "results.json"), "w") as f:
            json.dump(self.results, f, indent=1)


def fmt_count(n):
    return "{:,}".format(n)


def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except (OSError, subprocess.SubprocessError):
        return "not installed"


def husk_built(a, commit):
    """Which husk was measured: the commit its `--version` names (it was built
    by run.sh unless run.sh was given --husk)."""
    try:
        out = subprocess.run([a.husk, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    built = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("commit:")), "")
    if a.given:
        return "built from commit %s (a binary given with `--husk`)" % (built[:12] or "?")
    return "commit %s, `cargo build --release`" % commit


def environment(a):
    def meminfo():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return "%.1f GiB" % (int(line.split()[1]) / 1048576.0)
        return "?"

    def cpu():
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        return "?"

    def git(*args):
        return subprocess.run(["git", "-C", a.repo] + list(args), capture_output=True, text=True).stdout.strip()

    try:
        with open("/etc/os-release") as f:
            osr = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        distro = osr.get("PRETTY_NAME", "?").strip('"')
    except OSError:
        distro = "?"
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock")
    commit = git("rev-parse", "--short=12", "HEAD") + (" (with uncommitted changes in src/)" if dirty else "")
    lines = [
        "| | |", "|---|---|",
        "| date | %s |" % datetime.datetime.now(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y"),
        "| command | `%s` |" % a.command,
        "| machine | %s CPUs (%s), %s RAM, %s |" % (os.cpu_count(), cpu(), meminfo(), distro),
        "| kernel | %s |" % platform.release(),
        "| cgroups | %s |" % ("hybrid: v1 controllers + cgroup2 at /sys/fs/cgroup/unified"
                              if os.path.ismount(UNIFIED) else
                              "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"),
        "| husk | %s |" % husk_built(a, commit),
        "| runc | %s |" % first_line(["runc", "--version"]),
        "| crun | %s |" % first_line(["crun", "--version"]),
        "| runsc | %s |" % first_line(["runsc", "--version"]),
        "| podman | %s |" % first_line(["podman", "--version"]),
        "| hyperfine | %s |" % first_line(["hyperfine", "--version"]),
    ]
    return "\n".join(lines)


METHOD = """
### How it is measured

- `sh bench/run.sh [--quick]` installs hyperfine, runc, crun, runsc, gcc and busybox-static with apt
  when missing, builds husk with `cargo build --release`, compiles `bench/syscall.c` with
  `gcc -static -O2`, makes one busybox bundle with `scripts/demo-bundle.sh` and runs
  `bench/bench.py` with a copy of `target/<host tuple>/release/husk`, a static executable
  (`.cargo/config.toml`; a copy, so that a build meanwhile cannot swap it).
  Every container gets a config.json of its own (same rootfs, by absolute path) whose
  `linux.cgroupsPath` is `/husk-bench/RUNTIME-...`; runtime roots, bundles and podman's
  storage live in one `mktemp -d /tmp/husk-bench.XXXXXX` directory. On exit, even after a failure
  or Ctrl-C, `bench.py cleanup` kills and deletes whatever containers are left in those roots,
  kills leftover processes that name the work directory (by pid), removes the `/husk-bench`
  cgroups in every hierarchy, unmounts anything under the work directory and removes it.
- The driver is a child subreaper, as conmon and containerd's shims are, so the `--pid-file`
  process of every runtime (runc/crun: the container's init; runsc: the sandbox; husk: `husk boot`)
  is its child after `create` and is waited for directly.
- Runtime processes are found by their argv naming the runtime's `--root`, which is how husk's
  boot, gofer and waiter processes and runsc's sandbox and gofer are told apart from the
  container's own processes. runsc's ptrace stubs (the address spaces of the application) carry
  no argv and are not counted as runtime processes.
- Each section also reports how much CPU other processes on the machine used meanwhile (from
  `/proc/*/stat`, everything outside the benchmark's own process tree); above 5% of one CPU the
  section is marked, since on 2 vCPUs that is enough to move medians by more than the 5% targets.
- The driver's own measurements take turns: every row once per round, in a shuffled order, in
  section 1 (with the kernel floor, `../shared/bench/minrun.c`, compiled at bench time and left
  out, with a note, when it is not there), runtime by runtime each cycle in section 2 and each
  run in section 5, empty root and full root each probe in section 7. hyperfine, which cannot
  interleave (it runs all the runs of one command before the next command's), is used only for
  podman in section 6.
- Section 9 builds `bench/reach.c` (`gcc -O2 ... -lseccomp`) and starts each configuration's
  busybox `sleep` container once. Docker's row comes from a private dockerd (data and exec roots
  under the work directory, `--bridge none`, no iptables, its own containerd namespace) running
  one container with its default runtime (runc); the profile and capabilities in the config.json
  it wrote are then given to runc and husk. `HUSK_BENCH_DOCKER_CONFIG=FILE` uses such a
  config.json instead of starting Docker.
- `--quick` does fewer repetitions (20 rounds instead of 50 in section 1, 10 cycles instead of 50
  in section 2, 3 syscall runs instead of 7, one
  density round instead of 3, 300 stopped containers instead of 1,000) and takes about 2
  minutes instead of about 5 (plus the build); the header says which mode made this file.
"""


# --------------------------------------------------------------------------
# cleanup


def cleanup(work):
    """Undo everything a run under `work` made; safe to call twice."""
    if not work.startswith("/tmp/husk-bench."):
        raise SystemExit("cleanup: refusing %s" % work)
    proc = Proc(work) if os.path.isdir(work) else None
    if proc:
        rts = make_runtimes(work, "husk")
        husk = os.path.join(work, "husk")
        if not os.path.exists(husk):
            triple = subprocess.run(["rustc", "--print", "host-tuple"], capture_output=True,
                                    text=True).stdout.strip()
            husk = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "target", triple, "release", "husk")
        exes = {"husk": husk}
        roots = [d for d in os.listdir(work) if d.startswith("root-")]
        for d in roots:
            key = d[len("root-"):].split("-")[0]
            base = next((r for r in rts if r.key == key), None)
            if key == "crun":
                base = Runtime("crun", "crun", shutil.which("crun") or "/usr/bin/crun", "")
            if key == "huskb":
                base = Runtime("huskb", "husk (before)", os.path.join(work, "husk-before"), "")
            if base is None:
                continue
            rt = Runtime(base.key, base.name, exes.get(key, base.exe), os.path.join(work, d), base.wrapped, base.extra)
            try:
                out = subprocess.run(rt.cmd("list", "--quiet"), capture_output=True, text=True, timeout=60).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            ids = out.split()
            if ids:
                log("cleanup: %d containers left in %s" % (len(ids), d))
            for cid in ids:
                subprocess.run(rt.cmd("kill", cid, "9"), capture_output=True, timeout=60)
                subprocess.run(rt.cmd("delete", "--force", cid), capture_output=True, timeout=60)
        podman_cleanup(work)
    # leftover processes: argv names the work dir (runtime roots, bundles), or in our cgroups
    me = {os.getpid(), os.getppid()}
    victims = set()
    wb = work.encode()
    for pid in all_pids():
        if pid in me:
            continue
        argv = proc_argv(pid)
        if argv and any(a.startswith(wb) or (b"=" + wb) in a for a in argv) and b"cleanup" not in argv:
            victims.add(pid)
    for d in bench_cgroup_dirs():
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                victims.update(int(x) for x in f.read().split())
        except OSError:
            pass
    victims -= me
    for pid in sorted(victims):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if victims:
        log("cleanup: killed %d leftover processes" % len(victims))
        time.sleep(0.5)
    for _ in range(10):
        left = remove_bench_cgroups()
        if not left:
            break
        time.sleep(0.3)
    else:
        log("cleanup: could not remove cgroups: %s" % ", ".join(left))
    # mounts under the work directory (podman's overlay), deepest first
    try:
        with open("/proc/self/mountinfo") as f:
            mnts = [line.split()[4] for line in f]
    except OSError:
        mnts = []
    for m in sorted({m for m in mnts if m == work or m.startswith(work + "/")}, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    if os.path.isdir(work):
        shutil.rmtree(work, ignore_errors=True)
        if os.path.exists(work):
            log("cleanup: could not remove all of %s" % work)


def podman_cleanup(work):
    pw = os.path.join(work, "podman")
    podman = shutil.which("podman")
    if not podman or not os.path.isdir(pw):
        return
    env = dict(os.environ, CONTAINERS_CONF=os.path.join(pw, "containers.conf"),
               CONTAINERS_STORAGE_CONF=os.path.join(pw, "storage.conf"))
    base = [podman, "--root", pw + "/root", "--runroot", pw + "/runroot", "--tmpdir", pw + "/tmp",
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    for args in (["rm", "--all", "--force", "--time", "0"], ["system", "reset", "--force"]):
        try:
            subprocess.run(base + args, capture_output=True, timeout=120, env=env)
        except (OSError, subprocess.SubprocessError):
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--work", required=True)
    r.add_argument("--repo", required=True)
    r.add_argument("--husk", required=True)
    r.add_argument("--bundle", required=True, help="busybox bundle made by scripts/demo-bundle.sh")
    r.add_argument("--doc", help="write the Markdown here too")
    r.add_argument("--command", default="sh bench/run.sh")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--only", help="comma-separated section numbers (development)")
    r.add_argument("--reach", help="bench/reach.c, built (section 9)")
    r.add_argument("--minrun", help="../shared/bench/minrun.c, built: the kernel floor (section 1)")
    r.add_argument("--before", help="an earlier husk binary, an extra row in sections 1 and 2")
    r.add_argument("--before-name", default="husk (before)", help="that row's name")
    r.add_argument("--given", action="store_true", help="the husk binary was given, not built (run.sh --husk)")
    r.add_argument("--minrun-why", default="no minrun", help="why there is no --minrun")
    r.add_argument("--docker-config", help="a config.json Docker wrote, for Docker's profile (section 9)")
    c = sub.add_parser("cleanup")
    c.add_argument("--work", required=True)
    a = p.parse_args()
    if a.cmd == "cleanup":
        cleanup(a.work)
        return
    # On INT or TERM (Ctrl-C, run.sh's timeout, which forwards the signal too),
    # unwind once and delete what is live; further signals are ignored meanwhile.
    def stop(signum, _frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    b = Bench(a)
    try:
        b.main()
    except KeyboardInterrupt as e:
        log("interrupted (%s): deleting the containers that are live" % e)
        b.destroy_live()
        sys.exit(130)
    finally:
        b.destroy_live()


if __name__ == "__main__":
    main()
