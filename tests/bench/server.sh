#!/usr/bin/env bash
# sockgate-server costs, with wrk and 'Connection: close' (a new TCP
# connection per request, so accept and hand-off are all that is measured):
#  1. nginx accepting TCP itself vs the same nginx (preloaded with
#     libsockgate.so, an fdpass bind rule) receiving the sockets that
#     sockgate-server accepted and passed: target >= 0.8x connections/s;
#  2. p99 latency added by the hand-off, one connection at a time:
#     target < 100 us. tests/tools/lat_pair alternates connections to nginx
#     direct and through the server, so both see the same moments of the
#     machine (separate wrk runs each see their own noise, and on this kind
#     of shared VM that noise is larger than the target);
#  3. the hand-off alone: a minimal one-thread C answerer (tests/tools/srv_httpd)
#     accepting itself vs receiving the sockets sockgate-server passed;
#  4. for the record: sockgate-inetd running a shell script per connection.
# Runs alternate and keep each side's best. Every address is on loopback.
# The receivers run as they would in a container: in a network namespace of
# their own (unshare -n, where permitted) whose net.unix.max_dgram_qlen is
# raised to the backlog nginx has on TCP (a datagram receiver holds at most
# that many waiting sockets; the default, 10, makes the server queue and
# retry under a burst, see sockgate-server(8) HAND-OFF PROTOCOL).
set -eu
. "$(dirname "$0")/lib.bash"
SG=$BUILD/sockgate
LIB=$BUILD/libsockgate.so
make -s BUILD="$BUILD" "$BUILD/tools/srv_httpd" "$BUILD/tools/lat_pair" >/dev/null
DUR=${SERVER_BENCH_SECONDS:-4}
ROUNDS=${SERVER_BENCH_ROUNDS:-3}
QLEN=4096	# = nginx's TCP backlog below
LATN=${SERVER_BENCH_LATENCY_PAIRS:-5000}

# box CMD...: run CMD in a network namespace of its own with the hand-off
# queue as deep as the TCP backlog; without unshare -n, as it is
if unshare -n true 2>/dev/null; then
	boxed="in a network namespace of their own (unshare -n), net.unix.max_dgram_qlen=$QLEN there"
	box() { exec unshare -n sh -c 'echo "$0" > /proc/sys/net/unix/max_dgram_qlen && exec "$@"' "$QLEN" "$@"; }
else
	boxed="in this network namespace (unshare -n not permitted), net.unix.max_dgram_qlen=$(cat /proc/sys/net/unix/max_dgram_qlen)"
	box() { exec "$@"; }
fi

echo "== sockgate-server ($(machine))"
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
	echo "wrk or nginx missing: sockgate-server benchmark skipped"
	exit 0
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; echo "timed out waiting for $1" >&2; exit 1; }

# nginx_conf (lib.bash): one nginx, one worker, the same config for both sides
direct=$(free_port)
nginx_conf direct benchmark "127.0.0.1:$direct backlog=4096"
nginx -c "$T/direct.conf" -e "$T/direct.error.log" &
pids+=($!)
NGX_D=$!

# the receiver: nginx's bind() of port $inner becomes a receiver at ngx.sock
inner=$(free_port)
nginx_conf boxed benchmark "127.0.0.1:$inner backlog=4096"
SOCKGATE_RULE="bind tcp *:$inner -> fdpass $T/ngx.sock" LD_PRELOAD=$LIB \
	box nginx -c "$T/boxed.conf" -e "$T/boxed.error.log" &
pids+=($!)
NGX_B=$!
wait_for "$T/ngx.sock"
via=$(free_port)
"$SG" server -l 127.0.0.1 -p "$via" -b 4096 -S "$T/ngx.sock" --ready-fd 3 3>"$T/srv.ready" 2>"$T/srv.log" &
pids+=($!)
SRV=$!
wait_for "$T/srv.ready"

# sockgate-inetd with a shell script per connection
cat > "$T/hello" <<'EOF'
#!/bin/sh
cr=$(printf '\r')
while IFS= read -r l; do case $l in "$cr"|"") break;; esac; done
printf 'HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n'
EOF
chmod +x "$T/hello"
"$SG" inetd -c 64 "$T/inetd.sock" "$T/hello" 2>"$T/inetd.log" &
pids+=($!)
wait_for "$T/inetd.sock"
viainetd=$(free_port)
"$SG" server -l 127.0.0.1 -p "$viainetd" -b 4096 -S "$T/inetd.sock" -T 30000 --ready-fd 3 3>"$T/srv2.ready" 2>"$T/srv2.log" &
pids+=($!)
wait_for "$T/srv2.ready"

# the minimal answerer, both ways
cdirect=$(free_port)
"$BUILD/tools/srv_httpd" tcp "$cdirect" >"$T/c1.out" &
pids+=($!)
box "$BUILD/tools/srv_httpd" fdpass "$T/c.sock" >"$T/c2.out" &
pids+=($!)
wait_for "$T/c.sock"
cvia=$(free_port)
"$SG" server -l 127.0.0.1 -p "$cvia" -b 4096 -S "$T/c.sock" --ready-fd 3 3>"$T/srv3.ready" 2>"$T/srv3.log" &
pids+=($!)
wait_for "$T/srv3.ready"
for _ in $(seq 100); do grep -q ready "$T/c1.out" && break; sleep 0.05; done

for p in "$direct" "$via" "$cdirect" "$cvia"; do
	curl -sS --max-time 5 "http://127.0.0.1:$p/" | grep -q benchmark || { echo "nginx on port $p does not answer" >&2; exit 1; }
done

# wrk ARGS: prints "REQ/S P99-MICROSECONDS ERRORS P50-MICROSECONDS REQUESTS"
# ("failed" for a figure wrk did not print)
run_wrk() {
	wrk -H 'Connection: close' --latency "$@" 2>&1 | awk '
		function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
		/^Requests\/sec:/ { rps = $2 }
		/ requests in / { n = $1 }
		/^ +99%/ { p99 = us($2) }
		/^ +50%/ { p50 = us($2) }
		/Socket errors:|Non-2xx/ { err = err $0 }
		function f(v) { return v == "" ? "failed" : v }
		END { printf "%s %s %s %s %s\n", f(rps), f(p99), (err == "" ? "none" : "yes"), f(p50), f(n) }'
}
# best A B: the larger; "failed" once either is
best() { is_num "$1" && is_num "$2" && awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }' || echo failed; }

# lat, latency, judge, fmt, ratio3: tests/bench/lib.bash
# the whole chain on one CPU (taskset): no cross-CPU wake-up, so what is
# left is the hand-off's own cost (on this kind of VM a wake-up of an idle
# virtual CPU alone costs about 30 us, and its tail is the host's)
pin_all() { for p in "$NGX_D" "$NGX_B" "$SRV"; do taskset -apc "$1" "$p" >/dev/null; done; }
LASTCPU=$(($(nproc) - 1))

# throughput DIRECT VIA: ROUNDS alternating wrk -c32 runs to each;
# prints "best-direct best-via errors requests-via" (errors: none or yes)
throughput() {
	local d=0 v=0 errs=none r e n nv=0
	for _ in $(seq "$ROUNDS"); do
		read -r r _ e _ _ < <(run_wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$1/")
		d=$(best "$d" "$r")
		[ "$e" != yes ] || errs=yes
		read -r r _ e _ n < <(run_wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$2/")
		v=$(best "$v" "$r")
		[ "$e" != yes ] || errs=yes
		is_num "$n" && is_num "$nv" && nv=$((nv + n)) || nv=failed
	done
	echo "$d $v $errs $nv"
}
cpu_ns() { awk '{ print $1 }' "/proc/$1/schedstat" 2>/dev/null || echo failed; }	# CPU time of pid $1 so far

steal_mark
fd_before=$(ls /proc/$SRV/fd | wc -l)
cpu0=$(cpu_ns "$SRV")
read -r d_rps v_rps e1 n_via < <(throughput "$direct" "$via")
cpu1=$(cpu_ns "$SRV")
# sockgate-server's CPU time per connection it accepted and passed
us_per_conn=$(is_num "$cpu0" && is_num "$cpu1" && is_num "$n_via" && [ "$n_via" -gt 0 ] &&
	awk -v a="$cpu0" -v b="$cpu1" -v n="$n_via" 'BEGIN { printf "%.1f", (b - a) / 1000 / n }' || echo failed)
PIN=""
read -r f99 f50 fctl < <(latency "$direct" "$via")
pin_all "$LASTCPU"
PIN="taskset -c $LASTCPU"
read -r o99 o50 octl < <(latency "$direct" "$via")
pin_all "0-$LASTCPU"
read -r c_d c_v e2 _ < <(throughput "$cdirect" "$cvia")
errs="$e1$e2"
PIN=""
read -r c99 c50 cctl < <(latency "$cdirect" "$cvia")
read -r i_rps _ < <(run_wrk -t1 -c16 -d"${DUR}s" "http://127.0.0.1:$viainetd/")
fd_after=$(ls /proc/$SRV/fd | wc -l)

r=$(ratio3 "$v_rps" "$d_rps")
echo "wrk -c32 Connection: close to nginx: $(fmt %.0f "$d_rps") conn/s accepted by nginx, $(fmt %.0f "$v_rps") conn/s accepted by sockgate-server and passed: ratio ${r}x (target >= 0.8): $(judge "$r" ">=" 0.8)"
echo "latency added by the hand-off to nginx, one connection at a time, the chain on one CPU ($LATN to each, interleaved, median of $ROUNDS rounds): p99 +$(fmt %.0f "$o99") us (target < 100): $(judge "$o99" "<" 100); p50 +$(fmt %.0f "$o50") us; the method reads p99 +-$(fmt %.0f "$octl") us with nothing added"
echo "the same, scheduled freely over the CPUs (adds this VM's cross-CPU wake-ups): p99 +$(fmt %.0f "$f99") us, p50 +$(fmt %.0f "$f50") us; the method reads p99 +-$(fmt %.0f "$fctl") us with nothing added"
echo "wrk -c32 to a one-thread C answerer: $(fmt %.0f "$c_d") conn/s accepting itself, $(fmt %.0f "$c_v") conn/s receiving from sockgate-server: ratio $(ratio3 "$c_v" "$c_d")x (the hand-off alone)"
echo "latency added for the C answerer, scheduled freely: p99 +$(fmt %.0f "$c99") us, p50 +$(fmt %.0f "$c50") us (p99 +-$(fmt %.0f "$cctl") us with nothing added)"
echo "sockgate-server CPU time per connection accepted and passed to nginx (/proc/PID/schedstat over the wrk runs): $(fmt %.1f "$us_per_conn") us"
echo "wrk -c16 to sockgate-inetd running a shell script per connection: $(fmt %.0f "$i_rps") conn/s (for the record)"
echo "receivers $boxed; hypervisor steal during the runs: $(steal_pct)%"
echo "sockgate-server fds before/after: $fd_before/$fd_after; passed: $(grep -c . "$T/srv.log" || true) log lines (0 = no refusals); wrk errors: $(case $errs in *yes*) echo some;; *) echo none;; esac)"
