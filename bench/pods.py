#!/usr/bin/env python3
"""Pod density: the time and memory to add the Nth container to a husk pod
(one sandbox, members joining it) against starting N separate runc
containers.

usage: python3 bench/pods.py --husk PATH [--runc PATH] [--max 50]

Prints a Markdown table. Every container, cgroup and state directory made
here is removed on exit. Run as root.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CG = "husk-podbench"


def sh(*args, **kw):
    # No pipes: a container keeps its creator's stdio open for its lifetime.
    return subprocess.run(list(args), check=True, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def bundle(base, name, annotations, repo):
    path = os.path.join(base, name)
    env = dict(os.environ, HUSK=HUSK)
    subprocess.run(["sh", os.path.join(repo, "scripts/demo-bundle.sh"), path, "sleep", "1000"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    cfg_path = os.path.join(path, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["annotations"] = annotations
    cfg["linux"]["cgroupsPath"] = "/%s/%s" % (CG, name)
    json.dump(cfg, open(cfg_path, "w"))
    return path


def memcg_bytes(name):
    try:
        with open("/sys/fs/cgroup/memory/%s/%s/memory.usage_in_bytes" % (CG, name)) as f:
            return int(f.read())
    except OSError:
        return 0


def pss_of_root(root):
    """PSS (bytes) of every process whose argv names `root` (husk's boot)."""
    total = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open("/proc/%s/cmdline" % p, "rb").read().replace(b"\0", b" ")
            if root.encode() not in cmd:
                continue
            for line in open("/proc/%s/smaps_rollup" % p):
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def timed(*args):
    t = time.perf_counter()
    sh(*args)
    return (time.perf_counter() - t) * 1000


def measure(runtime, root, base, repo, n_max, pod):
    """Start n_max containers one after another; return per-N times (ms of
    create+start) and memory (bytes) after each."""
    ids, times, mem = [], [], []
    if pod:
        b = bundle(base, "pod", {"io.kubernetes.cri.container-type": "sandbox"}, repo)
        sh(runtime, "--root", root, "run", "-d", "--bundle", b, "pod")
        ids.append("pod")
    for i in range(1, n_max + 1):
        name = "%s-%03d" % ("m" if pod else "c", i)
        ann = ({"io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.sandbox-id": "pod"} if pod else {})
        b = bundle(base, name, ann, repo)
        t = timed(runtime, "--root", root, "create", "--bundle", b, name)
        t += timed(runtime, "--root", root, "start", name)
        ids.append(name)
        times.append(t)
        if i in (1, 10, n_max):
            time.sleep(1.0)
            total = sum(memcg_bytes(x) for x in ids) + pss_of_root(root)
            mem.append((i, total))
    return ids, times, mem


def cleanup(runtime, root, ids):
    for x in reversed(ids):
        subprocess.run([runtime, "--root", root, "delete", "--force", x],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    for ctrl in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", ctrl, CG)
        if os.path.isdir(d):
            for sub in os.listdir(d):
                if os.path.isdir(os.path.join(d, sub)):
                    try:
                        os.rmdir(os.path.join(d, sub))
                    except OSError:
                        pass
            try:
                os.rmdir(d)
            except OSError:
                pass


def main():
    global HUSK
    ap = argparse.ArgumentParser()
    ap.add_argument("--husk", required=True)
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    ap.add_argument("--max", type=int, default=50)
    a = ap.parse_args()
    HUSK = a.husk
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    work = tempfile.mkdtemp(prefix="husk-podbench.")
    rows = {}
    try:
        for label, runtime, pod in (("husk pod", a.husk, True), ("runc", a.runc, False)):
            root = os.path.join(work, "root-" + label.split()[0])
            base = os.path.join(work, "b-" + label.split()[0])
            os.makedirs(base)
            ids = []
            try:
                ids, times, mem = measure(runtime, root, base, repo, a.max, pod)
                rows[label] = (times, mem)
            finally:
                cleanup(runtime, root, ids)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    print("| | N=1 create+start | N=10 | N=%d | median over %d | mean over %d | memory N=1 | N=10 | N=%d | per container |"
          % (a.max, a.max, a.max, a.max))
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, (times, mem) in rows.items():
        m = dict(mem)
        per = (m[a.max] - m[1]) / (a.max - 1) / 2**20
        print("| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f MiB | %.2f MiB | %.2f MiB | %.2f MiB |" % (
            label, times[0], times[9], times[a.max - 1], med(times), sum(times) / len(times),
            m[1] / 2**20, m[10] / 2**20, m[a.max] / 2**20, per))
    print()
    print("N-th: the create+start time of that container alone. Memory: the memory "
          "cgroups of all containers so far (husk: also the sandbox's PSS), after 1 s. "
          "husk's members share the pod's network, IPC and UTS namespaces; each runc "
          "container has its own.")
    if "husk pod" in rows:
        m = med(rows["husk pod"][0])
        print()
        print("Target (issue 12): a pod member's create + start ≤ 5 ms: median %.1f ms — %s." % (
            m, "met" if m <= 5.0 else "**not met**"))
    sys.stdout.flush()


HUSK = None

if __name__ == "__main__":
    main()
