# Shared set-up for the benchmark scripts (sourced, not run by `make bench`):
# an absolute BUILD, a temp dir T removed at exit with every pid in pids
# killed, and machine() for the heading line.
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
T=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT

# "2026-11-23, 2 cores, AMD EPYC"
machine() {
	echo "$(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}

# steal_mark, then steal_pct: the share of CPU time the hypervisor gave to
# others in between (the "st" of top). A run with much of it is noise.
steal_mark() { STEAL0=$(awk '/^cpu / { print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat); }
steal_pct() {
	awk -v a="$STEAL0" '/^cpu / { split(a, s, " "); t = $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 - s[2];
		printf "%.1f", (t > 0 ? 100 * ($9 - s[1]) / t : 0) }' /proc/stat
}

# port: a free TCP port on 127.0.0.1; wait_port PORT: until something
# accepts there (the caller's die() when nothing does); start CMD...: in
# the background, output to $T/log, killed at exit, pid in LAST.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	local i
	for i in $(seq 200); do
		python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" \
			2>/dev/null && return 0
		sleep 0.05
	done
	die "nothing listens on port $1"
}
start() { "$@" >>"$T/log" 2>&1 & pids+=($!); LAST=$!; }

# start_nginx LISTEN...: nginx, one worker, serving $T/www at each listen
# address ("127.0.0.1:PORT", "unix:PATH"), keep-alive without limits.
start_nginx() {
	local l listens=
	for l in "$@"; do listens="$listens listen $l;"; done
	mkdir -p "$T/ngx"
	cat >"$T/nginx.conf" <<EOF
worker_processes 1;
error_log $T/ngx/error.log;
pid $T/ngx/nginx.pid;
events { worker_connections 8192; }
http {
	access_log off;
	keepalive_requests 1000000;
	keepalive_timeout 300s;
	client_body_temp_path $T/ngx; proxy_temp_path $T/ngx; fastcgi_temp_path $T/ngx;
	uwsgi_temp_path $T/ngx; scgi_temp_path $T/ngx;
	server {$listens root $T/www; }
}
EOF
	start nginx -p "$T/ngx" -c "$T/nginx.conf" -g 'daemon off; user root;'
}

# nginx_conf NAME ANSWER LISTEN...: $T/NAME.conf, one nginx with one worker
# answering ANSWER to every request on each LISTEN (nginx's listen syntax);
# its pid and error log in $T/NAME.pid and $T/NAME.error.log
nginx_conf() {
	local name=$1 answer=$2 l
	shift 2
	{
		printf 'daemon off;\nmaster_process off;\nworker_processes 1;\n'
		printf 'pid %s;\nerror_log %s;\n' "$T/$name.pid" "$T/$name.error.log"
		printf 'events { worker_connections 4096; }\nhttp {\n\taccess_log off;\n'
		printf '\tclient_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n' "$T" "$T" "$T"
		printf '\tuwsgi_temp_path %s; scgi_temp_path %s;\n\tserver {\n' "$T" "$T"
		for l in "$@"; do printf '\t\tlisten %s;\n' "$l"; done
		printf '\t\tlocation / { return 200 "%s\\n"; }\n\t}\n}\n' "$answer"
	} > "$T/$name.conf"
}

# A measurement that failed (a tool exited non-zero, printed nothing, or
# printed something that is not a number) must read "failed", never a
# figure: empty fields would otherwise become 0 and pass a "< target" test.
# tests/bench.bats checks these with a failing stand-in for the tools.
is_num() { [[ ${1-} =~ ^-?[0-9]+([.][0-9]+)?$ ]]; }
# judge VALUE OP TARGET: "met", "NOT met", or "failed" (VALUE is no number)
judge() {
	is_num "${1-}" || { echo failed; return 0; }
	awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
		ok = op == "<" ? v < t : op == "<=" ? v <= t : op == ">=" ? v >= t : op == ">" ? v > t : -1
		if (ok < 0) { print "bad operator " op > "/dev/stderr"; exit 2 }
		print (ok ? "met" : "NOT met") }'
}
# fmt PRINTF-FORMAT VALUE: VALUE formatted, or "failed" when it is no number
fmt() { if is_num "${2-}"; then printf "$1" "$2"; else printf failed; fi; }
# ratio A B: A / B to 3 decimals, or "failed" when either is no number or B is 0
ratio3() {
	is_num "${1-}" && is_num "${2-}" && awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) exit 1; printf "%.3f", a / b }' ||
		printf failed
}
# sub A B: A - B, or "failed"
diff_num() { is_num "${1-}" && is_num "${2-}" && awk -v a="$1" -v b="$2" 'BEGIN { print a - b }' || echo failed; }
# median of the numbers on stdin (one per word); "failed" when any word is not a number
median() {
	tr ' ' '\n' | grep . | sort -n | awk '
		$1 !~ /^-?[0-9]+([.][0-9]+)?$/ { bad = 1 }
		{ v[NR] = $1 }
		END { if (bad || NR == 0) print "failed"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# lat_pair A B: "p50-A p99-A p50-B p99-B" of one interleaved run of
# tests/tools/lat_pair (A and B: a port on 127.0.0.1 or unix:PATH), or
# "failed failed failed failed" when it fails. PIN: a command prefix
# (taskset), LATN: the number of requests to each.
lat() {
	local out
	if ! out=$(${PIN:-} "$BUILD/tools/lat_pair" "$1" "$2" "${LATN:-1000}"); then
		echo failed failed failed failed
		return 0
	fi
	echo "$out" | awk '$1 == "A" && NF == 5 { a50 = $2; a99 = $4 } $1 == "B" && NF == 5 { b50 = $2; b99 = $4 }
		END { if (a50 == "" || b50 == "") print "failed failed failed failed"; else print a50, a99, b50, b99 }'
}
# latency A B: ROUNDS rounds of A vs B, each with a control run of A vs A
# (what the method reads when nothing is added); prints "p99-added
# p50-added control-p99-spread" as medians of the rounds, "failed" for any
# that could not be measured
latency() {
	local a50 a99 b50 b99 add99="" add50="" ctl="" d
	for _ in $(seq "${ROUNDS:-3}"); do
		read -r a50 a99 b50 b99 < <(lat "$1" "$2")
		add99="$add99 $(diff_num "$b99" "$a99")" add50="$add50 $(diff_num "$b50" "$a50")"
		read -r a50 a99 b50 b99 < <(lat "$1" "$1")
		d=$(diff_num "$b99" "$a99")
		ctl="$ctl ${d#-}"
	done
	echo "$(echo "$add99" | median) $(echo "$add50" | median) $(echo "$ctl" | median)"
}
