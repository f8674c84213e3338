# busybox applets, as a busybox image would use them (run by busybox sh).
set -e
bb=/usr/bin/busybox
cd /tmp
d=$($bb mktemp -d)
cd "$d"
$bb seq 1 200 > nums
$bb sort -rn nums | $bb head -n 3 > top
[ "$($bb head -n 1 top)" = 200 ]
$bb mkdir -p a/b/c
$bb cp nums a/b/c/
$bb mv a/b/c/nums a/b/moved
$bb ln -s moved a/b/link
[ "$($bb readlink a/b/link)" = moved ]
$bb chmod 640 a/b/moved
$bb stat -c %a a/b/moved | $bb grep -q 640
$bb touch -d '2001-02-03 04:05:06' stamp
$bb tar -czf t.tgz a
$bb mkdir x && $bb tar -xzf t.tgz -C x
$bb cmp nums x/a/b/moved
$bb gzip -k nums && $bb gunzip -c nums.gz | $bb cmp - nums
$bb sha256sum nums | $bb grep -q nums
$bb md5sum nums >/dev/null
echo hello | $bb base64 | $bb base64 -d | $bb grep -q hello
$bb dd if=/dev/zero of=zero bs=4096 count=16 2>/dev/null
[ "$($bb wc -c < zero)" -eq 65536 ]
$bb find . -name moved | $bb grep -q moved
$bb awk 'BEGIN { s = 0 } { s += $1 } END { if (s != 20100) exit 1 }' nums
$bb sed -n '5p' nums | $bb grep -q '^5$'
echo a b c | $bb xargs -n 1 echo | $bb wc -l | $bb grep -q 3
$bb mkfifo fifo
( echo through-fifo > fifo ) &
$bb grep -q through-fifo fifo
wait
$bb ps >/dev/null
$bb top -b -n 1 >/dev/null
$bb free >/dev/null
$bb df / >/dev/null
$bb du -s . >/dev/null
$bb id >/dev/null
$bb nproc >/dev/null
$bb uname -a >/dev/null
$bb date +%s >/dev/null
$bb sleep 0.1
$bb timeout 1 $bb sleep 5 || true
$bb renice -n 5 -p $$ >/dev/null
$bb setsid $bb true
$bb kill -0 $$
$bb hostname >/dev/null
$bb env | $bb grep -q PATH
$bb ls -la /proc/self/fd >/dev/null
$bb rm -rf "$d"
echo busybox ok
