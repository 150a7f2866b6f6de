#!/bin/sh
# Install the Debian packages named on the command line that are missing:
# with apt-get when root on Debian/Ubuntu, otherwise name them and exit 2.
missing=
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "sockgate: installing missing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# A fresh machine often has another apt running (unattended-upgrades):
	# wait for its lock rather than fail the first make.
	apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null &&
		apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $missing >/dev/null || {
		echo "sockgate: apt-get install failed for:$missing" >&2; exit 2; }
	exit 0
fi
echo "sockgate: missing packages:$missing" >&2
echo "sockgate: install them (as root: apt-get install$missing) and run make again" >&2
exit 2
