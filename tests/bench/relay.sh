#!/usr/bin/env bash
# make bench: sockgate-relay against socat and systemd-socket-proxyd, all
# relaying loopback TCP to loopback TCP (and TCP to nginx on a Unix socket),
# measured side by side in one run
# (rounds in rotating order, best of each kept):
# iperf3 bulk throughput, wrk requests per second against nginx with
# keep-alive and with "Connection: close", and the resident memory of the
# relay holding 2,000 idle connections. Direct TCP is the physical limit.
#   BENCH_SECONDS=3 (per measurement)  BENCH_CONNS=50 (wrk connections)  BENCH_ROUNDS=3
set -u
. "$(dirname "$0")/lib.bash"
SG=$BUILD/sockgate
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${BENCH_SECONDS:-3}
CONNS=${BENCH_CONNS:-50}
PROXYD=/lib/systemd/systemd-socket-proxyd
say() { printf '%s\n' "$*" >&2; }
die() { say "bench/relay: $*"; exit 1; }

for t in iperf3 wrk nginx socat systemd-socket-activate python3; do
	command -v $t >/dev/null || die "$t is missing (make deps, BENCH_PKGS)"
done
[ -x "$PROXYD" ] || die "$PROXYD is missing (package systemd)"
[ -x "$SG" ] || die "$SG is missing (make BUILD=$BUILD)"
ulimit -n 20000

# the two servers
NPORT=$(port)
IPORT=$(port)
mkdir -p "$T/www"
head -c 612 /dev/zero | tr '\0' x >"$T/www/index.html"
start_nginx "127.0.0.1:$NPORT" "unix:$T/ngx.sock"
start iperf3 -s -B 127.0.0.1 -p "$IPORT"
wait_port "$NPORT"
wait_port "$IPORT"
for i in $(seq 100); do [ -S "$T/ngx.sock" ] && break; sleep 0.05; done

# relay NAME LISTENPORT TARGET: start one kind of relay (TARGET a port, or a /path)
relay() {
	local tt=TCP:127.0.0.1:$3 tp=127.0.0.1:$3 ts=tcp:127.0.0.1:$3
	case $3 in /*) tt=UNIX-CONNECT:$3 tp=$3 ts=unix:$3 ;; esac
	case $1 in
	direct) ;;
	socat) start socat "TCP-LISTEN:$2,bind=127.0.0.1,fork,reuseaddr" "$tt" ;;
	proxyd) start systemd-socket-activate -l "127.0.0.1:$2" "$PROXYD" --connections-max=4096 "$tp" ;;
	sockgate) start "$SG" relay -l "tcp:127.0.0.1:$2" "$ts" ;;
	esac
	[ "$1" = direct ] || wait_port "$2"
	RPID=$LAST
	[ "$1" = direct ] && RPID=
}

gbits() {	# iperf3 to port $1: "Gbit/s bytes" received
	iperf3 -c 127.0.0.1 -p "$1" -t "$SECS" -J 2>/dev/null |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["end"]["sum_received"]; print("%.1f %d" % (r["bits_per_second"] / 1e9, r["bytes"]))'
}
cpu_ns() { [ -n "$1" ] && awk '{ print $1 }' "/proc/$1/schedstat" 2>/dev/null || echo 0; }	# CPU time of pid $1 so far
rps() {		# wrk to port $1, extra args: requests per second
	local p=$1
	shift
	wrk -t2 -c"$CONNS" -d"${SECS}s" "$@" "http://127.0.0.1:$p/" 2>/dev/null | awk '/^Requests\/sec/ {printf "%.0f", $2}'
}
idle_rss() {	# 2,000 idle connections through port $1 held by pid $2: RSS in KiB of $2's process tree
	mkfifo "$T/hold.$1"
	exec 5<>"$T/hold.$1"
	python3 "$TOP/tests/tools/relay_peer.py" idle "tcp:127.0.0.1:$1" 2000 <"$T/hold.$1" >"$T/idle.$1" 2>&1 5>&- &
	local ip=$! i
	for i in $(seq 200); do grep -q "open 2000" "$T/idle.$1" && break; sleep 0.05; done
	sleep 0.5
	local pids="$2 $(pgrep -P "$2" | tr '\n' ' ')" rss=0 p
	for p in $pids; do rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done
	exec 5>&-
	wait $ip 2>/dev/null
	echo "$rss"
}

# every relay up at once, two of each: one to iperf3, one to nginx
declare -A BP NP UP PID BPID BULK KA CLOSE UKA UCLOSE RSS CPUNS BYTES
BP[direct]=$IPORT NP[direct]=$NPORT
for r in socat proxyd sockgate; do
	BP[$r]=$(port)
	relay $r "${BP[$r]}" "$IPORT"
	BPID[$r]=$RPID
	UP[$r]=$(port)
	relay $r "${UP[$r]}" "$T/ngx.sock"
	NP[$r]=$(port)
	relay $r "${NP[$r]}" "$NPORT"
	PID[$r]=$RPID
done
best() { python3 -c 'import sys; v=[float(x) for x in sys.argv[1:] if x]; print(("%.1f" if max(v) < 1000 else "%.0f") % max(v) if v else "")' "$@"; }
# the machine is shared and noisy: ROUNDS rounds, each in a different order, best of each kept
ROUNDS=${BENCH_ROUNDS:-3}
order=(direct socat proxyd sockgate)
steal_mark
for ((k = 0; k < ROUNDS; k++)); do
	say "round $((k + 1)) of $ROUNDS ..."
	for ((j = 0; j < 4; j++)); do
		r=${order[$(( (j + k) % 4 ))]}
		c0=$(cpu_ns "${BPID[$r]:-}")
		read -r g b < <(gbits "${BP[$r]}")
		c1=$(cpu_ns "${BPID[$r]:-}")
		BULK[$r]=$(best ${BULK[$r]:-} "$g")
		CPUNS[$r]=$(( ${CPUNS[$r]:-0} + c1 - c0 )) BYTES[$r]=$(( ${BYTES[$r]:-0} + ${b:-0} ))
		KA[$r]=$(best ${KA[$r]:-} "$(rps "${NP[$r]}")")
		CLOSE[$r]=$(best ${CLOSE[$r]:-} "$(rps "${NP[$r]}" -H "Connection: close")")
		[ $r = direct ] && continue
		UKA[$r]=$(best ${UKA[$r]:-} "$(rps "${UP[$r]}")")
		UCLOSE[$r]=$(best ${UCLOSE[$r]:-} "$(rps "${UP[$r]}" -H "Connection: close")")
	done
done
STEAL=$(steal_pct)
say "2,000 idle connections ..."
RSS[direct]=- RSS[socat]=-
for r in proxyd sockgate; do RSS[$r]=$(idle_rss "${NP[$r]}" "${PID[$r]}"); done

ratio() { python3 -c 'import sys; a,b=sys.argv[1:]; print("%.2f" % (float(a)/float(b)) if b not in ("","0","0.0") and a else "-")' "$1" "$2"; }
echo
echo "relay benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
echo "command: make bench (tests/bench/relay.sh; best of $ROUNDS rounds of ${SECS}s each; iperf3 1 stream; wrk -t2 -c$CONNS; nginx 1 worker; 612-byte page; all loopback TCP)"
echo
printf '| %-22s | %10s | %8s | %14s | %8s | %14s | %8s | %16s |\n' path "bulk Gb/s" "x direct" "keep-alive r/s" "x direct" "close r/s" "x direct" "RSS 2000 idle"
printf '|%s|\n' "------------------------|------------|----------|----------------|----------|----------------|----------|------------------"
name() { case $1 in direct) echo "direct TCP";; socat) echo "socat";; proxyd) echo "systemd-socket-proxyd";; sockgate) echo "sockgate-relay";; esac; }
for r in direct socat proxyd sockgate; do
	rs=${RSS[$r]}
	[ "$rs" = - ] || rs="$((rs / 1024)) MiB ($rs kB)"
	printf '| %-22s | %10s | %8s | %14s | %8s | %14s | %8s | %16s |\n' "$(name $r)" "${BULK[$r]}" "$(ratio "${BULK[$r]}" "${BULK[direct]}")" \
		"${KA[$r]}" "$(ratio "${KA[$r]}" "${KA[direct]}")" "${CLOSE[$r]}" "$(ratio "${CLOSE[$r]}" "${CLOSE[direct]}")" "$rs"
done
echo
echo "TCP to Unix bridge (the relay listens on TCP, nginx on a Unix socket):"
echo
printf '| %-22s | %14s | %8s | %14s | %8s |\n' path "keep-alive r/s" "x direct" "close r/s" "x direct"
printf '|%s|\n' "------------------------|----------------|----------|----------------|----------"
for r in socat proxyd sockgate; do
	printf '| %-22s | %14s | %8s | %14s | %8s |\n' "$(name $r)" "${UKA[$r]}" "$(ratio "${UKA[$r]}" "${KA[direct]}")" \
		"${UCLOSE[$r]}" "$(ratio "${UCLOSE[$r]}" "${CLOSE[direct]}")"
done
echo
echo "sockgate-relay vs systemd-socket-proxyd: bulk $(ratio "${BULK[sockgate]}" "${BULK[proxyd]}")x (target >= 1.2)," \
	"keep-alive $(ratio "${KA[sockgate]}" "${KA[proxyd]}")x (>= 1.2), close $(ratio "${CLOSE[sockgate]}" "${CLOSE[proxyd]}")x (>= 1.2);" \
	"to Unix: keep-alive $(ratio "${UKA[sockgate]}" "${UKA[proxyd]}")x, close $(ratio "${UCLOSE[sockgate]}" "${UCLOSE[proxyd]}")x;" \
	"bulk vs direct $(ratio "${BULK[sockgate]}" "${BULK[direct]}")x (>= 0.6); RSS with 2000 idle ${RSS[sockgate]} kB (< 65536)"
msgb() { [ "${BYTES[$1]:-0}" -gt 0 ] && awk -v n="${CPUNS[$1]}" -v b="${BYTES[$1]}" 'BEGIN { printf "%.0f", n / 1e6 / (b / 1e9) }' || echo -; }
echo "relay CPU time per GB relayed in the bulk runs (/proc/PID/schedstat): sockgate-relay $(msgb sockgate) ms," \
	"systemd-socket-proxyd $(msgb proxyd) ms: ratio $(ratio "$(msgb sockgate)" "$(msgb proxyd)")x; hypervisor steal during the rounds: ${STEAL}%"
