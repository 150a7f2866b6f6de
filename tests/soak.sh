#!/usr/bin/env bash
# make soak SOAK_SECONDS=N (not part of make check): sockgate-relay and
# sockgate-server under steady load for N seconds (default 600), all on
# loopback:
#   relay A  TCP -> nginx on a Unix socket             wrk -c16 keep-alive
#   relay B  TCP -> an echo server (Unix)               tests/tools/soak_peer.py
#   server   127.0.0.1 -> nginx (preloaded, fdpass)     wrk -c8 Connection: close
#            127.0.0.2 -> sockgate-inetd running cat    tests/tools/soak_peer.py
# soak_peer.py checksums every echoed transfer (random sizes, slow readers
# at 256 KiB/s) and resets connections at random; every 5 s all three get
# SIGHUP. Every 10 s the fds and RSS of each are read from /proc and
# printed as a table; lat_pair measures p99 through relay A and the server
# at the start and at the end, under the same load. Verdicts at the end: no
# byte lost or altered on a completed transfer, the same fds when idle
# again as before the load, every subject still running; RSS growth and
# p99 end vs start are printed.
set -u
. "$(dirname "$0")/bench/lib.bash"
SECS=${SOAK_SECONDS:-600}
SG=$BUILD/sockgate
LIB=$BUILD/libsockgate.so
TOP=$(cd "$(dirname "$0")/.." && pwd)
for t in wrk nginx python3 curl; do
	command -v $t >/dev/null || { echo "soak: $t is missing (make deps)" >&2; exit 1; }
done
[ "$SECS" -ge 40 ] || { echo "soak: SOAK_SECONDS must be at least 40" >&2; exit 100; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {
	for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done
	echo "soak: timed out waiting for $1" >&2
	exit 1
}

# the targets
nginx_conf u soak "unix:$T/ngx.sock"
nginx -c "$T/u.conf" -e "$T/u.error.log" &
pids+=($!)
inner=$(free_port)
nginx_conf f soak "127.0.0.1:$inner backlog=4096"
SOCKGATE_RULE="bind tcp *:$inner -> fdpass $T/ngxfd.sock" LD_PRELOAD=$LIB \
	nginx -c "$T/f.conf" -e "$T/f.error.log" &
pids+=($!)
python3 "$TOP/tests/tools/relay_peer.py" echo "unix:$T/echo.sock" > "$T/echo.out" 2>&1 &
pids+=($!)
"$SG" inetd -c 64 "$T/cat.sock" cat 2> "$T/inetd.log" &
pids+=($!)
wait_for "$T/ngx.sock"
wait_for "$T/ngxfd.sock"
wait_for "$T/cat.sock"
for _ in $(seq 100); do grep -q ready "$T/echo.out" && break; sleep 0.05; done

# the subjects
PA=$(free_port) PB=$(free_port) PS=$(free_port)
"$SG" relay -l "tcp:127.0.0.1:$PA" --ready-fd 3 "unix:$T/ngx.sock" 3>"$T/a.ready" 2>"$T/relay-a.log" &
RA=$!
pids+=($RA)
"$SG" relay -l "tcp:127.0.0.1:$PB" --ready-fd 3 "unix:$T/echo.sock" 3>"$T/b.ready" 2>"$T/relay-b.log" &
RB=$!
pids+=($RB)
printf 'accept tcp 127.0.0.1:%s -> unix %s\naccept tcp 127.0.0.2:%s -> unix %s\n' \
	"$PS" "$T/ngxfd.sock" "$PS" "$T/cat.sock" > "$T/rules"
"$SG" server -l 0.0.0.0 -p "$PS" -b 4096 -f "$T/rules" --ready-fd 3 3>"$T/s.ready" 2>"$T/server.log" &
RS=$!
pids+=($RS)
for f in a b s; do
	for _ in $(seq 200); do grep -q ready "$T/$f.ready" && break; sleep 0.05; done
done
curl -sS --max-time 5 "http://127.0.0.1:$PA/" | grep -q soak || { echo "soak: relay A does not reach nginx" >&2; exit 1; }
curl -sS --max-time 5 "http://127.0.0.1:$PS/" | grep -q soak || { echo "soak: the server does not reach nginx" >&2; exit 1; }

# one connection on each path first: the server keeps a socket connected
# to each receiver it has used, which belongs in the idle baseline
python3 -c '
import socket, sys
for host in ("127.0.0.1", "127.0.0.2"):
    s = socket.create_connection((host, int(sys.argv[2 if host == "127.0.0.2" else 1])), timeout=10)
    s.sendall(b"warm\n"); s.shutdown(socket.SHUT_WR)
    assert s.recv(100) == b"warm\n", host
' "$PB" "$PS" || { echo "soak: the echo paths do not answer" >&2; exit 1; }

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
sample() {
	printf '| %5s | %5s | %8s | %5s | %8s | %5s | %8s | %s\n' "$1" "$(fds $RA)" "$(rss $RA)" \
		"$(fds $RB)" "$(rss $RB)" "$(fds $RS)" "$(rss $RS)" "$2"
}

echo "== soak: ${SECS}s ($(machine)); relay A :$PA -> nginx, relay B :$PB -> echo, server :$PS -> nginx / inetd cat"
idle0="$(fds $RA) $(fds $RB) $(fds $RS)"
row0=$(sample 0 "(idle, before the load)")
LATN=${SOAK_LATENCY_PAIRS:-500}
wrk -t1 -c16 -d"${SECS}s" "http://127.0.0.1:$PA/" > "$T/wrk-a.out" 2>&1 &
WA=$!
wrk -t1 -c8 -d"${SECS}s" -H 'Connection: close' "http://127.0.0.1:$PS/" > "$T/wrk-s.out" 2>&1 &
WS=$!
python3 "$TOP/tests/tools/soak_peer.py" "$SECS" "127.0.0.1:$PB" "127.0.0.2:$PS" > "$T/peer.out" 2>&1 &
PEER=$!
(while sleep 5; do kill -HUP $RA $RB $RS 2>/dev/null || exit 0; done) &
HUPS=$!
pids+=($WA $WS $PEER $HUPS)
start=$SECONDS
read -r a50s a99s b50s b99s < <(lat "$PA" "$PS")
latsecs=$((SECONDS - start))
echo "p99 at the start (lat_pair, $LATN each, under the load): relay A $(fmt %.0f "$a99s") us, server $(fmt %.0f "$b99s") us"
echo
echo "|   t s | A fds | A RSS kB | B fds | B RSS kB | S fds | S RSS kB | soak_peer so far"
echo "|-------|-------|----------|-------|----------|-------|----------|------------------"
echo "$row0"
rss0=""
next=10
# the last measurement must end before the load does: it took latsecs at the start
while [ $((SECONDS - start)) -lt $((SECS - 2 * latsecs - 5)) ]; do
	sleep 1
	if [ $((SECONDS - start)) -ge $next ]; then
		sample "$((SECONDS - start))" "$(tail -1 "$T/peer.out")"
		[ -n "$rss0" ] || rss0="$(rss $RA) $(rss $RB) $(rss $RS)"
		next=$((next + 10))
	fi
done
read -r a50e a99e b50e b99e < <(lat "$PA" "$PS")
rss1="$(rss $RA) $(rss $RB) $(rss $RS)"
sample "$((SECONDS - start))" "$(tail -1 "$T/peer.out")"
wait $PEER
peer_rc=$?
wait $WA $WS
kill $HUPS 2>/dev/null
# idle again: every connection closed (the relays see the last EOFs soon)
for _ in $(seq 100); do [ "$(fds $RA) $(fds $RB) $(fds $RS)" = "$idle0" ] && break; sleep 0.1; done
idle1="$(fds $RA) $(fds $RB) $(fds $RS)"
sample end "(idle, after the load)"
echo
echo "p99 under the load, start -> end: relay A $(fmt %.0f "$a99s") -> $(fmt %.0f "$a99e") us, server $(fmt %.0f "$b99s") -> $(fmt %.0f "$b99e") us (p50: relay A $(fmt %.0f "$a50s") -> $(fmt %.0f "$a50e") us, server $(fmt %.0f "$b50s") -> $(fmt %.0f "$b50e") us)"
echo "wrk through relay A: $(grep -E 'requests in|Socket errors|Non-2xx' "$T/wrk-a.out" | xargs)"
echo "wrk through the server: $(grep -E 'requests in|Socket errors|Non-2xx' "$T/wrk-s.out" | xargs)"
echo "soak_peer at the end: $(tail -1 "$T/peer.out")"
echo "log lines: server $(grep -c . "$T/server.log"), relay A $(grep -c . "$T/relay-a.log"), relay B $(grep -c . "$T/relay-b.log")"
growth() { awk -v a="$(echo "$rss0" | cut -d' ' -f"$1")" -v b="$(echo "$rss1" | cut -d' ' -f"$1")" 'BEGIN { printf "%+d kB", b - a }'; }
echo "RSS from the first sample under the load to the last: relay A $(growth 1), relay B $(growth 2), server $(growth 3)"
rc=0
last=$(tail -1 "$T/peer.out")
if [ "$peer_rc" = 0 ] && [[ $last == "check ok="*" bad=0 "*" bad=0 "* ]]; then
	echo "bytes: every completed transfer came back whole: met"
else
	echo "bytes: a completed transfer lost or altered bytes, or soak_peer failed (status $peer_rc): NOT met"
	rc=1
fi
if [ "$idle1" = "$idle0" ]; then
	echo "fds: the same when idle again ($idle1): met"
else
	echo "fds: $idle0 before the load, $idle1 after: NOT met"
	rc=1
fi
for p in $RA $RB $RS; do
	kill -0 "$p" 2>/dev/null || { echo "pid $p (a subject) died: NOT met"; rc=1; }
done
exit $rc
