#!/bin/sh
# Fresh Debian 12 machine, as root: install what the tests need, check
# formatting and lints, run every test (unit and integration).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --all-targets 2>&1
# The escape-class tests again, every container in a user namespace husk
# chose (--userns=auto).
HUSK_TEST_FLAGS=--userns=auto cargo test --test security escape_ 2>&1
