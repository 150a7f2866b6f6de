#!/usr/bin/env bash
# libsockgate.so costs:
#  1. an unmatched connect() to a loopback TCP listener, with the library
#     loaded (and rules that do not match) vs without: target <= 1.05x;
#  2. wrk requests per second against nginx: redirected by the library to
#     nginx's Unix socket vs plain loopback TCP to the same nginx: target >= 1.0x
#     (this compares transports: it cannot see the library's own cost);
#  3. the library's own cost on the same transport: one request per
#     connection to nginx's Unix socket, by a client connecting to it
#     directly vs to a TCP address the library redirects there
#     (tests/tools/lat_pair, interleaved, in one process with the library
#     loaded; a control run compares the direct path with itself).
# Runs alternate several times and keep each side's best, so both sides see
# the same machine state. Every address used is on loopback.
set -eu
. "$(dirname "$0")/lib.bash"
LIB=$BUILD/libsockgate.so
make -s BUILD="$BUILD" tools >/dev/null
# judge, fmt, ratio3, lat, latency: lib.bash

echo "== preload ($(machine))"

# --- 1. unmatched connect() ------------------------------------------------------
# The client alternates, connect by connect, connect() as a program calls it
# (through the library when preloaded) and libc's own connect(): the ratio of
# the two medians is the library's cost under the same machine state. The same run
# without the library is the control (should be 1.00x).
N=${PRELOAD_BENCH_CONNECTS:-2000}
rules='connect tcp 10.0.0.0/8 -> unix /nonexistent/a.sock; connect tcp [fd00::/8] -> unix /nonexistent/b.sock; connect udp * -> unix /nonexistent/dns.sock'
read -r ctl_plt ctl_libc < <("$BUILD/tools/pre_client" bench "$N")
read -r on_plt on_libc < <(SOCKGATE_RULE=$rules LD_PRELOAD=$LIB "$BUILD/tools/pre_client" bench "$N")
r=$(ratio3 "${on_plt-}" "${on_libc-}")
echo "unmatched connect() to loopback TCP: $(fmt %d "${on_plt-}") ns through the library vs $(fmt %d "${on_libc-}") ns libc alone: ratio ${r}x (target <= 1.05): $(judge "$r" "<=" 1.05)  [control without the library: $(ratio3 "${ctl_plt-}" "${ctl_libc-}")x]"

# --- 2. wrk through the library vs loopback TCP ---------------------------------------
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
	echo "wrk or nginx missing: redirected-throughput benchmark skipped"
	exit 0
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ghost=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nginx_conf nginx benchmark "127.0.0.1:$port" "unix:$T/nginx.sock"
nginx -c "$T/nginx.conf" -e "$T/nginx.error.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$T/nginx.sock" ] && break; sleep 0.05; done
DUR=${PRELOAD_BENCH_SECONDS:-4}
rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'; }
best() { is_num "$1" && is_num "$2" && awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }' || echo failed; }
best_tcp=0 best_unix=0
for round in 1 2 3; do
	tcp=$(wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$port/" | rps)
	# 127.0.0.1:$ghost has no listener: only the rule makes it reach nginx
	unix=$(SOCKGATE_RULE="connect tcp 127.0.0.1:$ghost -> unix $T/nginx.sock" LD_PRELOAD=$LIB \
		wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$ghost/" | rps)
	best_tcp=$(best "$best_tcp" "$tcp")
	best_unix=$(best "$best_unix" "$unix")
done
r=$(ratio3 "$best_unix" "$best_tcp")
echo "wrk -c32 to nginx: $(fmt %.0f "$best_tcp") req/s over loopback TCP, $(fmt %.0f "$best_unix") req/s redirected to its Unix socket: ratio ${r}x (target >= 1.0): $(judge "$r" ">=" 1.0)"

# --- 3. the library's own cost, same transport ------------------------------------
LATN=${PRELOAD_BENCH_REQUESTS:-3000} ROUNDS=3
export SOCKGATE_RULE="connect tcp 127.0.0.1:$ghost -> unix $T/nginx.sock"
PIN="env LD_PRELOAD=$LIB"
read -r u99 u50 uctl < <(latency "unix:$T/nginx.sock" "$ghost")
PIN=""
unset SOCKGATE_RULE
read -r a50 _ _ _ < <(lat "unix:$T/nginx.sock" "unix:$T/nginx.sock")
echo "one request per connection to nginx's Unix socket ($LATN each, interleaved, median of $ROUNDS rounds): the library's redirect adds p50 +$(fmt %.0f "$u50") us, p99 +$(fmt %.0f "$u99") us to the direct connect (p50 $(fmt %.0f "$a50") us without the library; the method reads p99 +-$(fmt %.0f "$uctl") us with nothing added; no target, for the record)"
