#!/bin/sh
# Install what building and testing husk needs on Debian 12 (as root).
# Idempotent: packages already present are left alone.
set -eu
PKGS="busybox-static libseccomp-dev pkg-config gcc libc6-dev podman containerd runc containernetworking-plugins protobuf-compiler docker.io iproute2 util-linux procps golang-go nodejs openjdk-17-jdk-headless uidmap slirp4netns"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# Device modes a stock Debian gets from udev (50-udev-default.rules: tun
# and fuse are 0666), which machines without udev lack: rootless podman's
# slirp4netns opens /dev/net/tun, and /proc views of rootless containers
# need /dev/fuse.
for d in /dev/net/tun /dev/fuse; do
    [ -c "$d" ] && chmod 0666 "$d"
done
command -v cargo >/dev/null || { echo "install-deps: cargo (Rust toolchain) is required" >&2; exit 1; }
