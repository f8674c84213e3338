#!/bin/sh
# Make a small OCI bundle from Debian's busybox-static: DIR/rootfs and
# DIR/config.json (from `husk spec`), running ARGS (default: a greeting).
# usage: demo-bundle.sh DIR [ARGS...]
set -eu
dir=$1; shift
husk=${HUSK:-$(dirname "$0")/../target/$(rustc --print host-tuple)/release/husk}
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" \
         "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/rootfs/root"
cp /bin/busybox "$dir/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
rm -f "$dir/config.json"
"$husk" spec --bundle "$dir"
if [ $# -eq 0 ]; then
    set -- sh -c 'echo "hello from husk: pid $$ on $(hostname), $(ls /proc | grep -c "^[0-9]") processes visible"'
fi
python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=2)
PY
