#!/usr/bin/env bats
# sockgate-run --seccomp: the rules applied to programs no preload reaches
# (Go built with CGO_ENABLED=0, C linked statically with musl), by a
# supervisor answering their socket calls through seccomp user notification.

load helper

GET=$BUILD/go/httpget
SERVE=$BUILD/go/httpserve
STCLI=$BUILD/static/stcli

# need_unotify: skip, saying why, where seccomp user notification is refused
# (an old kernel, a container runtime's own filter).
need_unotify() {
	[ -x "$GET" ] && [ -x "$STCLI" ] || skip "the Go and static test programs are not built (make tools)"
	local why
	why=$(sockgate-run --seccomp -- true 2>&1) || skip "seccomp user notification refused here: $why"
}

@test "seccomp: a Go client (CGO_ENABLED=0) in a namespace with no network GETs 10.1.2.3:80 from a Unix server, with the PROXY v2 header asked for, byte for byte" {
	need_netns
	need_unotify
	userver web --proxy --raw
	run -0 unshare -n sockgate-run --seccomp \
		-r "connect tcp 10.1.2.3:80 -> unix $T/web.sock proxy-v2 source=10.9.9.9:5555" -- "$GET" http://10.1.2.3/
	assert_line "hello from unix"
	# what Go itself believes it is connected to
	assert_line "peer 10.1.2.3:80 local 10.9.9.9:5555"
	wait_for_line "$T/web.log" "http GET"
	# signature, v2 PROXY, TCP over IPv4, 12 bytes: 10.9.9.9 -> 10.1.2.3, 5555 -> 80
	run -0 grep '^raw ' "$T/web.log"
	assert_output "raw 0d0a0d0a000d0a515549540a2111000c0a0909090a01020315b30050"
	run -0 grep '^http ' "$T/web.log"
	assert_output "http GET / HTTP/1.1"
}

@test "seccomp: a C program linked statically with musl does the round trip, and getpeername() says 10.1.2.3:80" {
	need_netns
	need_unotify
	userver echo
	run -0 unshare -n sockgate-run --seccomp -r "connect tcp 10.1.2.0/24 -> unix $T/echo.sock" -- "$STCLI" 10.1.2.3 80
	assert_line --regexp '^[0-9]+: peer 10\.1\.2\.3:80$'
	assert_line --regexp '^[0-9]+: got hello [0-9]+$'
	# the same program without --seccomp: the library cannot reach it, and says so
	run -1 unshare -n sockgate-run -r "connect tcp 10.1.2.0/24 -> unix $T/echo.sock" -- "$STCLI" 10.1.2.3 80
	assert_line "sockgate-run: warning: $STCLI is linked statically, out of the library's reach: run it with --seccomp"
	assert_line --regexp '^[0-9]+: connect: Network unreachable$'
}

@test "seccomp: a Go HTTP server listening on TCP with no network is served on a Unix socket by a bind rule" {
	need_netns
	need_unotify
	spawn "$T/go.out" unshare -n sockgate-run --seccomp -r "bind tcp *:8080 -> unix $T/web.sock" -- "$SERVE" :8080
	wait_for_line "$T/go.out" "^ready"
	# what Go believes it listens on
	run -0 grep '^ready' "$T/go.out"
	assert_output "ready [::]:8080"
	run -0 curl -sS --max-time 5 --unix-socket "$T/web.sock" http://x/a
	assert_output "hello from go, you are [::1]:0"
	run -0 curl -sS --max-time 5 --unix-socket "$T/web.sock" http://x/b
	assert_output "hello from go, you are [::1]:0"
}

@test "seccomp: a Go HTTP server with no network behind sockgate-server (fdpass rule) logs the real client's address and port" {
	need_netns
	need_unotify
	SPORT=$(free_port)
	bg sockgate-server -l 127.0.0.1 -p "$SPORT" -S "$T/rx.sock" --ready-fd 3 -v 3>"$T/srv-ready" 2>"$T/srv.log"
	wait_for_line "$T/srv-ready" ready
	spawn "$T/go.out" unshare -n sockgate-run --seccomp -r "bind tcp *:8000 -> fdpass $T/rx.sock" -- "$SERVE" 0.0.0.0:8000
	wait_for_line "$T/go.out" "^ready"
	run -0 grep '^ready' "$T/go.out"
	assert_output "ready [::]:8000"
	for i in 1 2; do
		run -0 curl -sS --max-time 5 -w '%{local_port}\n' "http://127.0.0.1:$SPORT/"
		assert_line --index 0 "hello from go, you are 127.0.0.1:${lines[1]}"
		wait_for_line "$T/go.out" "request from 127.0.0.1:${lines[1]}\$"
	done
}
