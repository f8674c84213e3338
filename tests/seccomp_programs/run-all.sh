#!/bin/sh
# Inside the container: run every program check, one line each:
#   "<name> <exit code>", with the check's output (indented) after a failure.
# A check whose tool is missing in this image reports "<name> skipped".
# Each check has 60 s; checks run one after another.
cd /opt/progs || exit 99
out=/tmp/check.out
check() {
    name=$1; shift
    if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
        echo "$name skipped"
        return
    fi
    timeout 60 "$@" >"$out" 2>&1 </dev/null
    rc=$?
    echo "$name $rc"
    if [ "$rc" -ne 0 ]; then
        sed 's/^/    /' "$out" | tail -n 30
    fi
}
check busybox /usr/bin/busybox sh ./busybox.sh
check coreutils sh ./coreutils.sh
check apt sh ./apt.sh
check python3 python3 ./check.py
check perl perl ./check.pl
check go-static ./go-check
check rust-threads-epoll ./rust-check
check node node ./check.js
check java java -Xshare:auto -cp /opt/progs Check
