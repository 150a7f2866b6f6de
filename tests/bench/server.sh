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

# nginx NAME LISTEN-PORT: one nginx, one worker, the same config for both sides
nginx_conf() {
	cat > "$T/$1.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $T/$1.pid;
error_log $T/$1.error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T;
	uwsgi_temp_path $T; scgi_temp_path $T;
	server {
		listen 127.0.0.1:$2 backlog=4096;
		location / { return 200 "benchmark\n"; }
	}
}
EOF
}

direct=$(free_port)
nginx_conf direct "$direct"
nginx -c "$T/direct.conf" -e "$T/direct.error.log" &
pids+=($!)
NGX_D=$!

# the receiver: nginx's bind() of port $inner becomes a receiver at ngx.sock
inner=$(free_port)
nginx_conf boxed "$inner"
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

# wrk ARGS: prints "REQ/S P99-MICROSECONDS ERRORS P50-MICROSECONDS"
run_wrk() {
	wrk -H 'Connection: close' --latency "$@" 2>&1 | awk '
		function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
		/^Requests\/sec:/ { rps = $2 }
		/^ +99%/ { p99 = us($2) }
		/^ +50%/ { p50 = us($2) }
		/Socket errors:|Non-2xx/ { err = err $0 }
		END { printf "%s %s %s %s\n", rps, p99, (err == "" ? "none" : "yes"), p50 }'
}
best() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { if (m == "max") print (b > a ? b : a); else print (a == 0 || b < a ? b : a) }'; }

# lat_pair A B: "p50-A p99-A p50-B p99-B" of one interleaved run
lat() { $PIN "$BUILD/tools/lat_pair" "$1" "$2" "$LATN" | awk '{ p50[NR] = $2; p99[NR] = $4 } END { print p50[1], p99[1], p50[2], p99[2] }'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# latency DIRECT VIA: ROUNDS rounds of DIRECT vs VIA, each with a control
# run of DIRECT vs DIRECT (what the method reads when nothing is added);
# prints "p99-added p50-added control-p99-spread" as medians of the rounds
latency() {
	local a50 a99 b50 b99 add99="" add50="" ctl=""
	for _ in $(seq "$ROUNDS"); do
		read -r a50 a99 b50 b99 < <(lat "$1" "$2")
		add99="$add99 $((b99 - a99))" add50="$add50 $((b50 - a50))"
		read -r a50 a99 b50 b99 < <(lat "$1" "$1")
		ctl="$ctl $((b99 > a99 ? b99 - a99 : a99 - b99))"
	done
	echo "$(echo "$add99" | median) $(echo "$add50" | median) $(echo "$ctl" | median)"
}
# the whole chain on one CPU (taskset): no cross-CPU wake-up, so what is
# left is the hand-off's own cost (on this kind of VM a wake-up of an idle
# virtual CPU alone costs about 30 us, and its tail is the host's)
pin_all() { for p in "$NGX_D" "$NGX_B" "$SRV"; do taskset -apc "$1" "$p" >/dev/null; done; }
LASTCPU=$(($(nproc) - 1))

# throughput DIRECT VIA: ROUNDS alternating wrk -c32 runs to each;
# prints "best-direct best-via errors" (errors: none or yes)
throughput() {
	local d=0 v=0 errs=none r e
	for _ in $(seq "$ROUNDS"); do
		read -r r _ e < <(run_wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$1/")
		d=$(best "$d" "$r" max)
		[ "$e" != yes ] || errs=yes
		read -r r _ e < <(run_wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$2/")
		v=$(best "$v" "$r" max)
		[ "$e" != yes ] || errs=yes
	done
	echo "$d $v $errs"
}

steal_mark
fd_before=$(ls /proc/$SRV/fd | wc -l)
read -r d_rps v_rps e1 < <(throughput "$direct" "$via")
PIN=""
read -r f99 f50 fctl < <(latency "$direct" "$via")
pin_all "$LASTCPU"
PIN="taskset -c $LASTCPU"
read -r o99 o50 octl < <(latency "$direct" "$via")
pin_all "0-$LASTCPU"
read -r c_d c_v e2 < <(throughput "$cdirect" "$cvia")
errs="$e1$e2"
PIN=""
read -r c99 c50 cctl < <(latency "$cdirect" "$cvia")
read -r i_rps _ _ < <(run_wrk -t1 -c16 -d"${DUR}s" "http://127.0.0.1:$viainetd/")
fd_after=$(ls /proc/$SRV/fd | wc -l)

awk -v a="$d_rps" -v b="$v_rps" 'BEGIN {
	r = b / a
	printf "wrk -c32 Connection: close to nginx: %.0f conn/s accepted by nginx, %.0f conn/s accepted by sockgate-server and passed: ratio %.3fx (target >= 0.8): %s\n",
		a, b, r, (r >= 0.8 ? "met" : "NOT met") }'
awk -v a="$o99" -v b="$o50" -v c="$octl" -v n="$LATN" -v r="$ROUNDS" 'BEGIN {
	printf "latency added by the hand-off to nginx, one connection at a time, the chain on one CPU (%d to each, interleaved, median of %d rounds): p99 +%.0f us (target < 100): %s; p50 +%.0f us; the method reads p99 +-%.0f us with nothing added\n",
		n, r, a, (a != "" && a < 100 ? "met" : "NOT met"), b, c }'
awk -v a="$f99" -v b="$f50" -v c="$fctl" 'BEGIN {
	printf "the same, scheduled freely over the CPUs (adds this VM'"'"'s cross-CPU wake-ups): p99 +%.0f us, p50 +%.0f us; the method reads p99 +-%.0f us with nothing added\n", a, b, c }'
awk -v a="$c_d" -v b="$c_v" 'BEGIN {
	printf "wrk -c32 to a one-thread C answerer: %.0f conn/s accepting itself, %.0f conn/s receiving from sockgate-server: ratio %.3fx (the hand-off alone)\n",
		a, b, b / a }'
awk -v a="$c99" -v b="$c50" -v c="$cctl" 'BEGIN {
	printf "latency added for the C answerer, scheduled freely: p99 +%.0f us, p50 +%.0f us (p99 +-%.0f us with nothing added)\n", a, b, c }'
awk -v a="$i_rps" 'BEGIN { printf "wrk -c16 to sockgate-inetd running a shell script per connection: %.0f conn/s (for the record)\n", a }'
echo "receivers $boxed; hypervisor steal during the runs: $(steal_pct)%"
echo "sockgate-server fds before/after: $fd_before/$fd_after; passed: $(grep -c . "$T/srv.log" || true) log lines (0 = no refusals); wrk errors: $(case $errs in *yes*) echo some;; *) echo none;; esac)"
