# GNU coreutils and friends from the image (dash runs this).
set -e
cd "$(mktemp -d)"
seq 1 1000 > nums
sort -n -r nums | head -n 1 | grep -qx 1000
split -l 100 nums part.
[ "$(ls part.* | wc -l)" -eq 10 ]
cat part.* | cmp - nums
mkdir -p tree/a/b
cp nums tree/a/b/
cp -a tree copy
diff -r tree copy
mv copy moved
ln -s moved/a linked
test "$(readlink -f linked)" = "$(pwd)/moved/a"
realpath linked >/dev/null
chmod -R go-rwx moved
stat -c '%a %s' moved/a/b/nums | grep -q '^600 '
touch -d '2001-02-03 04:05:06' stamp
test "$(date -r stamp +%Y)" = 2001
install -m 0755 nums installed && test -x installed
dd if=/dev/urandom of=rand bs=1k count=64 status=none
sha256sum rand > rand.sum && sha256sum -c rand.sum >/dev/null
truncate -s 1M sparse && test "$(stat -c %s sparse)" -eq 1048576
echo hi | tee teed >/dev/null && grep -q hi teed
mkfifo pipe
(echo via-fifo > pipe) &
grep -q via-fifo pipe
wait
sync
sync -f nums
df -h . >/dev/null
du -sh . >/dev/null
id -u >/dev/null
nproc >/dev/null
uname -a >/dev/null
env | grep -q '^PATH='
timeout 1 sleep 5 || test $? -eq 124
nice -n 10 true
nohup true >/dev/null 2>&1
stdbuf -oL echo buffered >/dev/null
printf 'x\n' > followed
timeout 2 tail -f followed > tailed &
sleep 0.3
printf 'y\n' >> followed
wait || true
grep -qx y tailed
ls -la / >/dev/null
getent passwd root >/dev/null
rm -rf tree moved
echo coreutils ok
