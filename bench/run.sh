#!/bin/sh
# Benchmark husk against runc, crun and runsc on this machine (Debian 12, as
# root). Installs what it needs, builds husk in release mode, prints Markdown
# tables and writes them, with the machine and versions, to
# docs/benchmarks.md.
#
# usage: sh bench/run.sh [--quick] [--no-doc] [--only N,M...] [--husk FILE] [--before FILE NAME]
#   --quick      fewer repetitions (about 2 minutes instead of about 5, plus the build)
#   --no-doc     print only; leave docs/benchmarks.md alone
#   --only LIST  run only these sections (numbers 1-10; implies --no-doc)
#   --husk FILE  measure this husk binary instead of building one (implies --no-doc)
#   --before FILE NAME  also measure this earlier husk binary, as the row NAME,
#                in sections 1 and 2 (interleaved: a before/after in one run)
#
# Section 1 has a "kernel floor" row: ../shared/bench/minrun.c (next to the
# repository), compiled here with gcc -O2, the least work any runtime must do
# for `run` of the default bundle. Without that file the row is left out, and
# the report says so.
#
# Section 9 (reachable system calls) measures Docker's default profile in a
# private dockerd when /usr/sbin/dockerd is there, or takes it from the
# config.json Docker wrote that HUSK_BENCH_DOCKER_CONFIG names. Section 10
# (Kubernetes pod start through the CRI) runs a private containerd.
set -eu

cd "$(dirname "$0")/.."
repo=$(pwd)
command="sh bench/run.sh $*"
usage="usage: sh bench/run.sh [--quick] [--no-doc] [--only N,M...] [--husk FILE] [--before FILE NAME]"
quick=""
only=""
given=""
before=""
before_name=""
doc="$repo/docs/benchmarks.md"
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=--quick ;;
        --no-doc) doc="" ;;
        --only) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; only=$2; doc=""; shift ;;
        --husk) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; given=$2; doc=""; shift ;;
        --before) [ $# -ge 3 ] || { echo "$usage" >&2; exit 2; }; before=$2; before_name=$3; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
    shift
done
command=$(echo "$command" | sed 's/ *$//')

if [ "$(id -u)" -ne 0 ]; then
    echo "bench: must run as root (runtimes, cgroups, mounts)" >&2
    exit 1
fi

say() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

# ---- tools -----------------------------------------------------------------
missing=""
command -v hyperfine >/dev/null 2>&1 || missing="$missing hyperfine"
command -v runc >/dev/null 2>&1 || missing="$missing runc"
command -v crun >/dev/null 2>&1 || missing="$missing crun"
command -v runsc >/dev/null 2>&1 || missing="$missing runsc"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
[ -f "$(gcc -print-file-name=libc.a 2>/dev/null || echo /nonexistent)" ] || missing="$missing libc6-dev"
[ -f /usr/include/seccomp.h ] || missing="$missing libseccomp-dev"
# scripts/demo-bundle.sh copies /bin/busybox into the rootfs: it must be the static one
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing busybox-static"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
# 10. the CRI pod start: containerd with its CRI plugin, CNI plugins, and
# protoc for the CRI client (k8s-cri) the benchmark is built with
command -v containerd >/dev/null 2>&1 || missing="$missing containerd"
[ -x /usr/lib/cni/bridge ] || missing="$missing containernetworking-plugins"
command -v protoc >/dev/null 2>&1 || missing="$missing protobuf-compiler"
command -v git >/dev/null 2>&1 || missing="$missing git"
if [ -n "$missing" ]; then
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
command -v podman >/dev/null 2>&1 || say "podman is not installed: its section will be skipped"
command -v cargo >/dev/null 2>&1 || { echo "bench: cargo (a Rust toolchain) is required" >&2; exit 1; }

# ---- build -----------------------------------------------------------------
if [ -n "$given" ]; then
    [ -x "$given" ] || { echo "bench: --husk $given: not an executable" >&2; exit 2; }
    husk=$(cd "$(dirname "$given")" && pwd)/$(basename "$given")
    say "measuring $husk (not built here)"
else
    say "cargo build --release"
    cargo build --release --quiet
    # a static executable, for this machine (.cargo/config.toml)
    husk="$repo/target/$(rustc --print host-tuple)/release/husk"
fi

# ---- work directory, cleaned up whatever happens ----------------------------
work=$(mktemp -d /tmp/husk-bench.XXXXXX)
cleanup() {
    trap - EXIT INT TERM HUP
    say "cleaning up $work"
    python3 "$repo/bench/bench.py" cleanup --work "$work" || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 129' HUP

# a private copy, so that another `cargo build` meanwhile cannot swap the binary mid-run
cp "$husk" "$work/husk"
husk="$work/husk"

say "building the syscall probe, the reachability probe and the busybox bundle in $work"
gcc -static -O2 -Wall -o "$work/bench-syscall" "$repo/bench/syscall.c"
gcc -O2 -Wall -o "$work/reach" "$repo/bench/reach.c" -lseccomp
floor="$repo/../shared/bench/minrun.c"
if [ -f "$floor" ]; then
    gcc -O2 -o "$work/minrun" "$floor"
    set -- --minrun "$work/minrun"
else
    say "no $floor: the kernel floor row of section 1 is left out"
    set -- --minrun-why "$floor is not there"
fi
HUSK="$husk" sh "$repo/scripts/demo-bundle.sh" "$work/bundle" /bin/true
cp "$work/bench-syscall" "$work/bundle/rootfs/bench-syscall"

start=$(date +%s)
limit=960; [ -n "$quick" ] && limit=360   # hard bounds: a full run takes ~6 min, --quick ~2
set -- run --work "$work" --repo "$repo" --husk "$husk" --bundle "$work/bundle" --command "$command" \
    --reach "$work/reach" "$@"
[ -n "${HUSK_BENCH_DOCKER_CONFIG:-}" ] && set -- "$@" --docker-config "$HUSK_BENCH_DOCKER_CONFIG"
[ -n "$quick" ] && set -- "$@" "$quick"
[ -n "$only" ] && set -- "$@" --only "$only"
[ -n "$doc" ] && set -- "$@" --doc "$doc"
[ -n "$given" ] && set -- "$@" --given
if [ -n "$before" ]; then
    cp "$before" "$work/husk-before"
    set -- "$@" --before "$work/husk-before" --before-name "$before_name"
fi
timeout --foreground "$limit" python3 "$repo/bench/bench.py" "$@"

# ---- 8. pods: the Nth member of one husk sandbox vs N runc containers -------
if [ -z "$only" ] || echo ",$only," | grep -q ",8,"; then
    say "8. pods"
    n=50; [ -n "$quick" ] && n=10
    pods=$(timeout --foreground 300 python3 "$repo/bench/pods.py" --husk "$husk" --max "$n")
    printf '\n### 8. Pods: adding the Nth container\n\n%s\n' "$pods"
    if [ -n "$doc" ]; then
        printf '\n### 8. Pods: adding the Nth container\n\n`python3 bench/pods.py --max %s`: one husk sandbox (a root `sleep` container) and N members joining it one after another (containerd-style annotations), against N separate runc containers.\n\n%s\n' "$n" "$pods" >> "$doc"
    fi
fi
# ---- 10. Kubernetes: pod start through the CRI, per runtime handler ---------
if [ -z "$only" ] || echo ",$only," | grep -q ",10,"; then
    say "10. CRI pod start (builds the shim and the benchmark in release mode)"
    runs=12; [ -n "$quick" ] && runs=10
    if timeout --foreground 1800 cargo bench --quiet -p husk-shim --bench pod_start -- \
        --runs "$runs" --out "$work/cri.md" >&2; then
        printf '\n### 10. Kubernetes: pod start through the CRI\n\n%s\n' "$(cat "$work/cri.md")"
        if [ -n "$doc" ]; then
            printf '\n### 10. Kubernetes: pod start through the CRI\n\n`cargo bench -p husk-shim --bench pod_start -- --runs %s`: a private containerd 1.6 with the CRI plugin and bridge CNI, three runtime handlers (husk'"'"'s shim `io.containerd.husk.v2`; containerd'"'"'s runc shim with husk as its binary; runc), as the kubelet starts a pod: RunPodSandbox + 2 x (CreateContainer + StartContainer) until both containers run, %s interleaved runs per handler after 2 warm-up rounds. The split comes from a second lab where every runtime binary, shim `start` and CNI plugin runs under a timing wrapper and husk'"'"'s shim logs each call'"'"'s duration: *runtime* is the time a shim or runtime binary was working, *CNI* the plugins'"'"', *containerd* the rest. Memory: PSS and RSS of every runtime process (shim, worker, boot, stand-ins) of an idle pod of two `sleep` containers, 2 s after its start.\n\n%s\n' "$runs" "$runs" "$(cat "$work/cri.md")" >> "$doc"
        fi
    else
        say "10. CRI pod start failed (see above)"
    fi
fi
say "done in $(( $(date +%s) - start )) s"
