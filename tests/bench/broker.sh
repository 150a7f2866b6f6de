#!/usr/bin/env bash
# make bench: the broker against relaying. iperf3 bulk from a client in
# `unshare -n` (no network of its own) to an iperf3 server on the host's
# loopback, four ways in interleaved rounds (each round a different order):
#   direct    the client on the host, plain TCP (the limit)
#   broker    libsockgate.so, rule "broker": the socket is made by
#             sockgate-relay's broker on the host and passed in
#   relay     libsockgate.so, rule "unix ... proxy-v2" to sockgate-relay
#             --proxy-in original, which relays every byte
#   proxyd    libsockgate.so, rule "unix ..." to systemd-socket-proxyd on a
#             Unix socket, which relays every byte
# Reported: median and spread (min-max) of Gbit/s over the rounds, the
# ratio of medians to direct, the relaying process's CPU per GB moved, and
# the endpoints' CPU per GB (iperf3's own accounting). Then connect latency
# (connect, one HTTP request, the answer, close; p50/p99) through the broker
# and through the relay, interleaved in one process (tests/tools/lat_pair).
#   BENCH_SECONDS=3 (per iperf3 run)  BENCH_ROUNDS=5  BENCH_CONNECTS=2000
set -u
. "$(dirname "$0")/lib.bash"
SG=$BUILD/sockgate
LIB=$BUILD/libsockgate.so
SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-5}
NCONN=${BENCH_CONNECTS:-2000}
PROXYD=/lib/systemd/systemd-socket-proxyd
say() { printf '%s\n' "$*" >&2; }
die() { say "bench/broker: $*"; exit 1; }

for t in iperf3 nginx systemd-socket-activate python3 unshare; do
	command -v $t >/dev/null || die "$t is missing (make deps, BENCH_PKGS)"
done
[ -x "$PROXYD" ] || die "$PROXYD is missing (package systemd)"
[ -x "$SG" ] && [ -e "$LIB" ] || die "$SG or $LIB is missing (make BUILD=$BUILD)"
unshare -n true 2>/dev/null || die "unshare -n is refused here"
make -s BUILD="$BUILD" "$BUILD/tools/lat_pair" >/dev/null || die "unable to build lat_pair"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

wait_sock() {
	local i
	for i in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done
	die "no socket at $1"
}

IPORT=$(port)
NPORT=$(port)
RPORT=$(port)	# the relay's allow rule sends this one to nginx
start iperf3 -s -B 127.0.0.1 -p "$IPORT"
mkdir -p "$T/www"
printf 'ok\n' >"$T/www/index.html"
start_nginx "127.0.0.1:$NPORT"
start "$SG" relay -l "unix:$T/b.sock,broker" -r "connect tcp 127.0.0.1:$IPORT -> pass" \
	-r "connect tcp 127.0.0.1:$NPORT -> pass" original
BROKER=$LAST
start "$SG" relay -l "unix:$T/r.sock" --proxy-in -r "connect tcp 127.0.0.1:$IPORT -> pass" \
	-r "connect tcp 127.0.0.1:$RPORT -> tcp 127.0.0.1:$NPORT" original
RELAY=$LAST
start systemd-socket-activate -l "$T/p.sock" "$PROXYD" --connections-max=4096 "127.0.0.1:$IPORT"
PROXY=$LAST
wait_port "$IPORT"
wait_port "$NPORT"
for s in b r p; do wait_sock "$T/$s.sock"; done

declare -A RULE PID
RULE[broker]="connect tcp 127.0.0.1 -> broker $T/b.sock"
RULE[relay]="connect tcp 127.0.0.1 -> unix $T/r.sock proxy-v2"
RULE[proxyd]="connect tcp 127.0.0.1 -> unix $T/p.sock"
PID[broker]=$BROKER PID[relay]=$RELAY PID[proxyd]=$PROXY PID[direct]=

# iperf3 one way: "Gbit/s bytes endpoint-cpu-seconds"
bulk() {
	local out
	if [ "$1" = direct ]; then
		out=$(iperf3 -c 127.0.0.1 -p "$IPORT" -t "$SECS" -J 2>/dev/null)
	else
		out=$(unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="${RULE[$1]}" \
			iperf3 -c 127.0.0.1 -p "$IPORT" -t "$SECS" -J 2>/dev/null)
	fi
	python3 -c '
import json, sys
r = json.load(sys.stdin)["end"]
s = r["sum_received"]; c = r["cpu_utilization_percent"]
print("%.2f %d %.3f" % (s["bits_per_second"] / 1e9, s["bytes"],
      (c["host_total"] + c["remote_total"]) / 100 * s["seconds"]))' <<<"$out"
}
cpu_ns() { [ -n "$1" ] && awk '{ print $1 }' "/proc/$1/schedstat" 2>/dev/null || echo 0; }

paths=(direct broker relay proxyd)
declare -A G CPU BYTES ECPU
steal_mark
for ((k = 0; k < ROUNDS; k++)); do
	say "round $((k + 1)) of $ROUNDS ..."
	for ((j = 0; j < 4; j++)); do
		p=${paths[$(( (j + k) % 4 ))]}
		c0=$(cpu_ns "${PID[$p]}")
		read -r g b e < <(bulk "$p") || die "iperf3 failed on the $p path"
		c1=$(cpu_ns "${PID[$p]}")
		G[$p]="${G[$p]:-} $g"
		CPU[$p]=$(( ${CPU[$p]:-0} + c1 - c0 ))
		BYTES[$p]=$(( ${BYTES[$p]:-0} + b ))
		ECPU[$p]=$(python3 -c 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]))' "${ECPU[$p]:-0}" "$e")
	done
done
STEAL=$(steal_pct)

say "connect latency, $NCONN connects each way ..."
read -r lb50 lb99 lr50 lr99 < <(unshare -n env LD_PRELOAD="$LIB" \
	SOCKGATE_RULE="connect tcp 127.0.0.1:$NPORT -> broker $T/b.sock; connect tcp 127.0.0.1:$RPORT -> unix $T/r.sock proxy-v2" \
	"$BUILD/tools/lat_pair" "$NPORT" "$RPORT" "$NCONN" | awk '{ printf "%s %s ", $2, $4 } END { print "" }')

stats() {	# "median min max" of the numbers given
	python3 -c 'import statistics, sys; v = sorted(float(x) for x in sys.argv[1:]); print("%.2f %.2f %.2f" % (statistics.median(v), v[0], v[-1]))' "$@"
}
msgb() { awk -v n="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.0f" : "-"), n / 1e6 / (b / 1e9) }'; }
name() { case $1 in direct) echo "direct TCP (host)";; broker) echo "broker (socket passed)";;
	relay) echo "sockgate-relay";; proxyd) echo "systemd-socket-proxyd";; esac; }
read -r dmed _ _ < <(stats ${G[direct]})
echo
echo "broker benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
echo "command: make bench (tests/bench/broker.sh; $ROUNDS interleaved rounds of ${SECS}s each; iperf3 1 stream from unshare -n to the host's loopback)"
echo
printf '| %-24s | %16s | %9s | %17s | %19s |\n' path "Gb/s median" "x direct" "relay CPU ms/GB" "iperf3 CPU ms/GB"
printf '|%s|\n' "--------------------------|------------------|-----------|-------------------|---------------------"
for p in "${paths[@]}"; do
	read -r med lo hi < <(stats ${G[$p]})
	rc=-
	[ -n "${PID[$p]}" ] && rc=$(msgb "${CPU[$p]}" "${BYTES[$p]}")
	printf '| %-24s | %16s | %9s | %17s | %19s |\n' "$(name "$p")" "$med ($lo-$hi)" \
		"$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$med" "$dmed")" \
		"$rc" "$(msgb "$(python3 -c 'import sys; print(float(sys.argv[1]) * 1e9)' "${ECPU[$p]}")" "${BYTES[$p]}")"
done
echo
echo "connect + one HTTP request + close, $NCONN each, interleaved (tests/tools/lat_pair): broker p50 ${lb50} us p99 ${lb99} us;" \
	"relay p50 ${lr50} us p99 ${lr99} us"
echo "hypervisor steal during the rounds: ${STEAL}%"
