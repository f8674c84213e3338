#!/bin/sh
# Fresh Debian 12 machine, as root: install, build, make a busybox bundle,
# run it with husk.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cargo build --release --quiet
dir=$(mktemp -d /tmp/husk-demo.XXXXXX)
sh scripts/demo-bundle.sh "$dir"
"./target/$(rustc --print host-tuple)/release/husk" --root "$dir/state" run --bundle "$dir" demo
rm -rf "$dir"
