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
