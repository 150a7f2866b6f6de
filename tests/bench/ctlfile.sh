#!/usr/bin/env bash
# Control files (libsockgate(7), CONTROL FILES):
#  1. connect() through a control file naming a Unix socket vs through a
#     plain `unix` rule to the same socket (the extra cost is reading the
#     file after the kernel refused the regular file): report the ratio;
#  2. connect() through a Firecracker control file (CONNECT/OK with the
#     test multiplexer, tests/tools/fc_mux.py) vs a direct Unix connect to
#     the same multiplexer socket.
# Medians of blocking connect() calls; three alternating rounds, best kept.
set -eu
. "$(dirname "$0")/lib.bash"
LIB=$BUILD/libsockgate.so
TOP=$(cd "$(dirname "$0")/../.." && pwd)
make -s BUILD="$BUILD" tools >/dev/null
N=${CTL_BENCH_CONNECTS:-2000}

echo "== control files ($(machine))"
# an accept-and-close Unix server, and the multiplexer
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1024)
open(sys.argv[2], "w").write("x")
while True:
    s.accept()[0].close()' "$T/u.sock" "$T/u.ready" &
pids+=($!)
python3 "$TOP/tests/tools/fc_mux.py" "$T/fc.sock" --log /dev/null --ready "$T/fc.ready" &
pids+=($!)
for _ in $(seq 200); do [ -e "$T/u.ready" ] && [ -e "$T/fc.ready" ] && break; sleep 0.05; done
"$BUILD/sockgate-mkctl" --unix "$T/u.sock" "$T/ctl.sock"
"$BUILD/sockgate-mkctl" --firecracker "$T/fc.sock:52" "$T/fcctl.sock"

med() {	# med RULE [N]: the median connect() in ns through RULE
	SOCKGATE_RULE=$1 LD_PRELOAD=$LIB "$BUILD/tools/ctl_bench" "${2:-$N}" 10.1.2.3:80 | cut -d' ' -f1
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == 0 || b < a ? b : a) }'; }
plain=0 ctl=0 fc=0 fcdirect=0
for round in 1 2 3; do
	plain=$(best "$plain" "$(med "connect tcp 10.1.2.3:80 -> unix $T/u.sock")")
	ctl=$(best "$ctl" "$(med "connect tcp 10.1.2.3:80 -> unix $T/ctl.sock")")
	fcdirect=$(best "$fcdirect" "$(med "connect tcp 10.1.2.3:80 -> unix $T/fc.sock" 300)")
	fc=$(best "$fc" "$(med "connect tcp 10.1.2.3:80 -> unix $T/fcctl.sock" 300)")
done
awk -v a="$plain" -v b="$ctl" 'BEGIN {
	printf "connect() through a control file (unix target): %d ns vs %d ns through a plain unix rule: ratio %.2fx\n", b, a, b / a }'
awk -v a="$fcdirect" -v b="$fc" 'BEGIN {
	printf "connect() through a Firecracker control file (CONNECT/OK): %d ns vs %d ns for a plain Unix connect to the multiplexer: ratio %.1fx\n", b, a, b / a }'
