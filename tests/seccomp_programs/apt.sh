# Debian's package tools, read-only (the image's dpkg and apt state).
set -e
dpkg -s coreutils | grep -q '^Status: install ok installed'
dpkg-query -W -f '${Package}\n' | grep -qx dpkg
dpkg --print-architecture >/dev/null
apt-config dump | grep -q '^APT '
apt-cache policy coreutils | grep -q 'Installed:'
apt-cache show dpkg | grep -q '^Package: dpkg'
apt-cache depends apt >/dev/null
apt-get -s -o Debug::NoLocking=1 install coreutils | grep -q 'already the newest\|0 upgraded'
echo apt ok
