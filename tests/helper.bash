# Shared set-up for the bats suites: paths to what `make` built, a private
# temp dir per test, waiting for readiness, and cleanup of what a test starts.
bats_require_minimum_version 1.5.0
# bats-support and bats-assert, sourced file by file: their load.bash files
# fork a `dirname` per file, which in every test (bats sources this file
# once per test) cost ~0.3 s of CPU per test on the test machine.
sg_load_lib() {
	local d f
	if find_in_bats_lib_path d "$1" && [ "${d##*/}" = load.bash ] && [ -d "${d%/*}/src" ]; then
		for f in "${d%/*}"/src/*.bash; do
			source "$f" || return 1
		done
	else
		bats_load_library "$1"
	fi
}
sg_load_lib bats-support
sg_load_lib bats-assert

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
SG=$BUILD/sockgate
# strerror's words are musl's in the static executable, glibc's in the
# dynamic one SANITIZE=1 builds; the ones that differ and tests compare:
if [ "${SANITIZE:-}" = 1 ]; then
	E_ADDRINUSE="Address already in use" E_BUSY="Device or resource busy"
	E_NOTSUP="Operation not supported"
else
	E_ADDRINUSE="Address in use" E_BUSY="Resource busy" E_NOTSUP="Not supported"
fi
LIB=$BUILD/libsockgate.so
export PATH=$BUILD:$PATH

setup() {
	T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/sg.XXXXXX")
	PIDS=()
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[ -n "${T:-}" ] && rm -rf "$T"
}

# bg CMD...: start CMD in the background, remember it for teardown.
bg() {
	"$@" &
	PIDS+=($!)
}

# wait_for_file PATH [SECONDS]: until PATH exists (a socket, a pid file).
wait_for_file() {
	local i n=$(( ${2:-10} * 20 ))
	for ((i = 0; i < n; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	echo "timed out waiting for $1" >&2
	return 1
}

# wait_for_http URL: until an HTTP GET of URL succeeds (10 s at most).
wait_for_http() {
	local i
	for ((i = 0; i < 200; i++)); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.05
	done
	echo "nothing answered at $1" >&2
	return 1
}

# wait_for_line FILE PATTERN [SECONDS]: until a line of FILE matches.
wait_for_line() {
	local i n=$(( ${3:-10} * 20 ))
	for ((i = 0; i < n; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "timed out waiting for '$2' in $1" >&2
	return 1
}

# free_port: a TCP port on 127.0.0.1 nobody listens on right now.
# (the distribution's python3 where there is one: a version manager's shim
# on PATH can cost most of a second per start on a loaded machine)
free_port() {
	"$PY3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PY3=/usr/bin/python3
[ -x "$PY3" ] || PY3=python3

# svc_web: a python web server on 127.0.0.5:$WPORT serving $T/www, whose
# index.html says "hello from svc" (the address dns_server gives svc.test).
svc_web() {
	mkdir -p "$T/www"
	printf 'hello from svc\n' >"$T/www/index.html"
	WPORT=$(free_port)
	spawn "$T/web.log" "$PY3" -m http.server "$WPORT" --bind 127.0.0.5 --directory "$T/www"
	local i
	for ((i = 0; i < 200; i++)); do
		curl -s "http://127.0.0.5:$WPORT/index.html" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "the web server on 127.0.0.5:$WPORT did not answer" >&2
	return 1
}

# need_netns: skip with the kernel's reason when unshare -n is refused.
need_netns() {
	local why
	why=$(unshare -n true 2>&1) || skip "unshare -n refused here: $why"
}

# spawn OUT CMD...: CMD in the background, output to OUT, killed at teardown.
spawn() {
	local out=$1
	shift
	"$@" >"$out" 2>&1 3>&- &
	PIDS+=($!)
}

# start_server ARGS...: sockgate-server with -v, log in $T/server.log; waits
# for readiness; sets SP (pid) and PORT.
start_server() {
	: >"$T/ready"
	"$SG" server -v --ready-fd 4 "$@" 4>"$T/ready" 2>>"$T/server.log" 3>&- &
	SP=$!
	PIDS+=($SP)
	wait_for_line "$T/ready" ready
	PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$T/server.log" | tail -1)
}

# userver NAME [ARGS...]: a Unix test server (tests/tools/pre_userver.py) at
# $T/NAME.sock, log $T/NAME.log
userver() {
	local name=$1
	shift
	bg python3 "$TOP/tests/tools/pre_userver.py" "$T/$name.sock" --log "$T/$name.log" --ready "$T/$name.ready" "$@"
	wait_for_file "$T/$name.ready"
}

# pre CMD...: CMD with libsockgate.so preloaded
pre() {
	LD_PRELOAD=$LIB "$@"
}

# dns_server [DNSMASQ-OPTION...]: dnsmasq on 127.0.0.1:$DNSPORT answering from
# $T/hosts only (default: svc.test 127.0.0.5, other.test 127.0.0.6), never upstream.
dns_server() {
	[ -f "$T/hosts" ] || printf '127.0.0.5 svc.test\n127.0.0.6 other.test\n' >"$T/hosts"
	DNSPORT=$(free_port)
	spawn "$T/dnsmasq.log" dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$T/hosts" \
		--listen-address=127.0.0.1 --bind-interfaces --port="$DNSPORT" --user=root --pid-file= \
		--local=/test/ --local=/127.in-addr.arpa/ --cname=www.svc.test,svc.test \
		--srv-host=_http._tcp.svc.test,svc.test,8080 "$@"
	local i
	for ((i = 0; i < 200; i++)); do
		[ -n "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$DNSPORT" svc.test 2>/dev/null)" ] && return 0
		sleep 0.05
	done
	echo "dnsmasq did not answer" >&2
	return 1
}
