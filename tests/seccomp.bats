#!/usr/bin/env bats
# sockgate-run --seccomp: the rules applied to programs no preload reaches
# (Go built with CGO_ENABLED=0, C linked statically with musl), by a
# supervisor answering their socket calls through seccomp user notification.

load helper

GET=$BUILD/go/httpget
SERVE=$BUILD/go/httpserve
STCLI=$BUILD/static/stcli
UDPASK=$BUILD/go/udpask
STUDP=$BUILD/static/studp
STOPT=$BUILD/static/stopt
TCPOPTS=$BUILD/go/tcpopts

# need_unotify: skip, saying why, where seccomp user notification is refused
# (an old kernel, a container runtime's own filter).
need_unotify() {
	[ -x "$GET" ] && [ -x "$STCLI" ] && [ -x "$STOPT" ] && [ -x "$TCPOPTS" ] || skip "the Go and static test programs are not built (make tools)"
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

@test "seccomp: a reject rule gives the Go program its errno, answered by the supervisor" {
	need_unotify
	run -1 sockgate-run --seccomp -r "connect tcp 10.1.2.3:80 -> reject EACCES" -- "$GET" http://10.1.2.3/
	assert_output "dial tcp 10.1.2.3:80: connect: permission denied"
	run -1 sockgate-run --seccomp -r "connect tcp 10.1.2.0/24 -> reject" -- "$STCLI" 10.1.2.9 80
	assert_output --regexp '^[0-9]+: connect: Connection refused$'
}

@test "seccomp: loopback TCP no rule matches still works, for Go and for C, and unmatched Unix sockets too" {
	need_unotify
	port=$(free_port)
	bg python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = b"plain tcp\n"
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
open(sys.argv[2], "w").close()
s.serve_forever()' "$port" "$T/ready"
	wait_for_file "$T/ready"
	run -0 sockgate-run --seccomp -r "connect tcp 10.1.2.3:80 -> reject" -- "$GET" "http://127.0.0.1:$port/"
	assert_line "plain tcp"
	assert_line --regexp "^peer 127\.0\.0\.1:$port local 127\.0\.0\.1:[0-9]+$"
	userver echo
	run -0 sockgate-run --seccomp -r "connect tcp 10.1.2.3:80 -> reject" -- \
		python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"hi\n"); print(s.recv(9).decode().strip(), s.getpeername())' "$T/echo.sock"
	assert_output "hi $T/echo.sock"
}

@test "seccomp: TCP options of a redirected socket read back as set, SO_DOMAIN and SO_PROTOCOL as the inet socket's (static C); Go's SetNoDelay, SetKeepAlive, SetKeepAlivePeriod succeed" {
	need_netns
	need_unotify
	userver echo
	# TCP_INFO's state 0: the library's zeros; SO_KEEPALIVE is the Unix socket's own
	run -0 unshare -n sockgate-run --seccomp -r "connect tcp 10.1.2.3:80 -> unix $T/echo.sock" -- "$STOPT" 10.1.2.3 80
	assert_output "nodelay 1 keepidle 30 keepintvl 5 keepcnt 4 keepalive 1 domain 2 protocol 6 state 0"
	run -0 unshare -n sockgate-run --seccomp -r "connect tcp 10.1.2.3:80 -> unix $T/echo.sock" -- "$TCPOPTS" 10.1.2.3:80
	assert_output "nodelay <nil> keepalive <nil> period <nil>"
}

@test "seccomp: TCP options of a loopback socket no rule matches are the kernel's, under a rule that makes the filter send them" {
	need_unotify
	bg python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1] + ".tmp", "w").write("%d" % s.getsockname()[1]); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
while True: held.append(s.accept()[0])' "$T/port"
	wait_for_file "$T/port"
	port=$(cat "$T/port")
	# TCP_INFO's state 1 (ESTABLISHED) comes from the kernel's own TCP socket only
	run -0 sockgate-run --seccomp -r "connect tcp 10.1.2.3:80 -> unix $T/none.sock" -- "$STOPT" 127.0.0.1 "$port"
	assert_output "nodelay 1 keepidle 30 keepintvl 5 keepcnt 4 keepalive 1 domain 2 protocol 6 state 1"
	run -0 sockgate-run --seccomp -r "connect tcp 10.1.2.3:80 -> unix $T/none.sock" -- "$TCPOPTS" "127.0.0.1:$port"
	assert_output "nodelay <nil> keepalive <nil> period <nil>"
}

@test "seccomp: a static program that forks and execs a second one: both are redirected" {
	need_netns
	need_unotify
	userver echo
	run -0 unshare -n sockgate-run --seccomp -r "connect tcp 10.1.2.0/24 -> unix $T/echo.sock" -- \
		"$STCLI" 10.1.2.3 80 "$STCLI" 10.1.2.4 81
	assert_line --regexp '^[0-9]+: peer 10\.1\.2\.3:80$'
	assert_line --regexp '^[0-9]+: peer 10\.1\.2\.4:81$'
	run -0 grep -c '^[0-9]*: got hello [0-9]*$' <<<"$output"
	assert_output 2
}

@test "seccomp: the program's exit status and death by signal are sockgate-run's; signals are forwarded; no zombie left" {
	need_unotify
	run -7 sockgate-run --seccomp -- sh -c 'exit 7'
	run -143 sockgate-run --seccomp -- sh -c 'kill -TERM $$'
	# a forwarded SIGTERM: the program reports it and exits 42
	sockgate-run --seccomp -- sh -c 'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done' >"$T/out" &
	sp=$!
	wait_for_line "$T/out" ready
	# the supervisor's only child is the program, running: nothing left unwaited for
	run -0 ps -o stat= --ppid "$sp"
	refute_output --partial Z
	kill -TERM "$sp"
	rc=0
	wait "$sp" || rc=$?
	[ "$rc" = 42 ]
	run -0 cat "$T/out"
	assert_output "ready
got TERM"
	run -127 sockgate-run --seccomp -- "$T/nonexistent"
	assert_output "sockgate-run: fatal: unable to run $T/nonexistent: No such file or directory"
	: >"$T/not-executable"
	run -126 sockgate-run --seccomp -- "$T/not-executable"
	assert_output "sockgate-run: fatal: unable to run $T/not-executable: Permission denied"
}

@test "seccomp: where user notification is refused (here: a second supervisor inside the first), sockgate-run says so and exits 111" {
	need_unotify
	run -111 sockgate-run --seccomp -- sockgate-run --seccomp -- true
	assert_output "sockgate-run: fatal: unable to install the seccomp filter: $E_BUSY (a supervisor watches this process already: one per process, seccomp(2))"
}

@test "seccomp: a static C server's blocking accept() waits for the connection; a signal interrupts it with EINTR" {
	need_netns
	need_unotify
	spawn "$T/out" unshare -n sockgate-run --seccomp -r "bind tcp 10.0.0.1:80 -> unix $T/st.sock proxy-v2" -- \
		"$BUILD/static/stserve" 10.0.0.1 80 2
	wait_for_line "$T/out" "^ready"
	# nothing comes for a while: accept() is parked, not answered
	printf 'PROXY TCP4 192.0.2.7 10.0.0.1 4711 80\r\n' >"$T/hdr"
	run -0 socat -t 5 - "UNIX-CONNECT:$T/st.sock" <"$T/hdr"
	assert_output "bye"
	wait_for_line "$T/out" "^from"
	run -0 socat -t 5 - "UNIX-CONNECT:$T/st.sock" < <(printf 'PROXY TCP4 192.0.2.8 10.0.0.1 4712 80\r\n')
	assert_output "bye"
	wait_for_line "$T/out" "from 192.0.2.8:4712"
	run -0 cat "$T/out"
	assert_output "ready 10.0.0.1:80
from 192.0.2.7:4711
from 192.0.2.8:4712"
	# a forwarded signal: the parked accept() says EINTR, as the kernel's would
	spawn "$T/out2" sockgate-run --seccomp -r "bind tcp 10.0.0.1:81 -> unix $T/st2.sock" -- \
		"$BUILD/static/stserve" 10.0.0.1 81 1
	wait_for_line "$T/out2" "^ready"
	# until accept() waits in the supervisor's hands (the kernel names the wait)
	sp=${PIDS[-1]}
	for i in $(seq 100); do
		c=$(pgrep -P "$sp") && grep -q seccomp "/proc/$c/wchan" 2>/dev/null && break
		sleep 0.05
	done
	grep -q seccomp "/proc/$c/wchan"
	kill -USR1 "$sp"
	wait_for_line "$T/out2" "^accept"
	run -0 cat "$T/out2"
	assert_output "ready 10.0.0.1:81
accept: Interrupted system call"
}

@test "seccomp: a tcp target: Go's non-blocking connect sees EINPROGRESS, then SO_ERROR 0, and the peer it asked for" {
	need_netns
	need_unotify
	cat > "$T/run.sh" <<-EOF
	ip link set lo up
	python3 -c '
	import socket, sys
	s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
	print(s.getsockname()[1], flush=True)
	c, _ = s.accept(); c.recv(4096)
	c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nvia tcp\n"); c.close()' >"$T/port" &
	while [ ! -s "$T/port" ]; do sleep 0.05; done
	exec sockgate-run --seccomp -r "connect tcp 10.1.2.3:80 -> tcp 127.0.0.1:\$(cat "$T/port")" -- "$GET" http://10.1.2.3/
	EOF
	run -0 timeout 20 unshare -n sh "$T/run.sh"
	assert_line "via tcp"
	assert_line --regexp '^peer 10\.1\.2\.3:80 local 0\.0\.0\.0:0$'
}

@test "seccomp: UDP to a redirected address reaches a Unix datagram server, and replies come from the address sent to (Go connected and not; static C sendto, sendmsg, connect); a PROXY v2 header per datagram" {
	need_netns
	need_unotify
	userver dns --dgram
	userver dnspp --dgram --proxy
	R="connect udp 10.1.2.3:53 -> unix $T/dns.sock
connect udp 10.1.2.4:53 -> unix $T/dnspp.sock proxy-v2 source=192.0.2.9:0"
	run -0 unshare -n sockgate-run --seccomp -r "$R" -- "$UDPASK" dial 10.1.2.3:53 q-dial
	assert_line "reply echo:q-dial from 10.1.2.3:53"
	# bound, registered with Go's epoll, then sendto(): the new socket takes the registration over
	run -0 unshare -n sockgate-run --seccomp -r "$R" -- "$UDPASK" to 10.1.2.3:53 q-to
	assert_line "reply echo:q-to from 10.1.2.3:53"
	assert_line --regexp '^local \[::\]:[0-9]+$'
	for m in sendto sendmsg connect; do
		run -0 unshare -n sockgate-run --seccomp -r "$R" -- "$STUDP" $m 10.1.2.3 53 "q-$m"
		assert_output $'reply echo:q-'$m$' from 10.1.2.3:53 (length 16)\nlocal 0.0.0.0:0'
	done
	run -0 unshare -n sockgate-run --seccomp -r "$R" -- "$STUDP" sendto 10.1.2.4 53 q-pp
	assert_output $'reply echo:q-pp from 10.1.2.4:53 (length 16)\nlocal 192.0.2.9:0'
	run -0 cat "$T/dns.log"
	assert_output $'dgram b\'q-dial\'\ndgram b\'q-to\'\ndgram b\'q-sendto\'\ndgram b\'q-sendmsg\'\ndgram b\'q-connect\''
	run -0 cat "$T/dnspp.log"
	assert_output $'hdr dst=10.1.2.4:53 proto=dgram src=192.0.2.9:0\ndgram b\'q-pp\''
	# the sockets bound beside the servers' for the replies are gone with the programs
	run -0 find "$T" -name '.sockgate-dgram-*'
	assert_output ""
}

@test "seccomp: with a udp rule, unmatched UDP on loopback still goes to the kernel (sendto, sendmsg, connect), and a reject rule answers sendto()" {
	need_unotify
	port=$(free_port)
	bg python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", int(sys.argv[1]))); open(sys.argv[2], "w").close()
while True:
    d, a = s.recvfrom(1500); s.sendto(b"udp:" + d, a)' "$port" "$T/udp.ready"
	wait_for_file "$T/udp.ready"
	R="connect udp 10.1.2.3:53 -> unix $T/none.sock
connect udp 10.9.0.0/16 -> reject EACCES"
	for m in sendto sendmsg connect; do
		run -0 sockgate-run --seccomp -r "$R" -- "$STUDP" $m 127.0.0.1 "$port" "q-$m"
		assert_line --index 0 "reply udp:q-$m from 127.0.0.1:$port (length 16)"
		assert_line --index 1 --regexp '^local (0\.0\.0\.0|127\.0\.0\.1):[0-9]+$'
	done
	run -0 sockgate-run --seccomp -r "$R" -- "$UDPASK" to "127.0.0.1:$port" q-go
	assert_line "reply udp:q-go from 127.0.0.1:$port"
	run -1 sockgate-run --seccomp -r "$R" -- "$STUDP" sendto 10.9.0.1 53 q
	assert_output "sendto: Permission denied"
	run -1 sockgate-run --seccomp -r "$R" -- "$UDPASK" to 10.9.0.1:53 q
	assert_output --regexp '^write udp \[::\]:[0-9]+->10\.9\.0\.1:53: sendto: permission denied$'
}

@test "sockgate-run without --seccomp: a Go or static program gets one line naming --seccomp; a dynamic one none" {
	need_unotify
	run -1 sockgate-run -r "connect tcp 10.1.2.3:80 -> reject" -- "$GET" http://127.0.0.1:1/
	assert_line --index 0 "sockgate-run: warning: $GET is a Go program, which calls the kernel without libc: run it with --seccomp"
	run -0 grep -c -- --seccomp <<<"$output"
	assert_output 1
	cp "$STCLI" "$T/stcli"
	PATH=$T:$PATH run -1 sockgate-run -- stcli 127.0.0.1 1
	assert_line --index 0 "sockgate-run: warning: stcli is linked statically, out of the library's reach: run it with --seccomp"
	run -0 sockgate-run -- sh -c 'echo quiet'
	assert_output "quiet"
}

@test "seccomp: Go's own resolver (CGO_ENABLED=0) with no network: svc.test asked over the dns: listener of sockgate-relay, then the GET through its egress, the relay naming the host" {
	need_netns
	need_unotify
	dns_server
	svc_web
	"$SG" relay -v --ready-fd 3 -l "dns:$T/dns.sock" -l "unix:$T/egress.sock" --dns-server "127.0.0.1:$DNSPORT" \
		-r "connect tcp svc.test:$WPORT -> pass" --proxy-in original 3>"$T/ready" 2>>"$T/relay.log" &
	PIDS+=($!)
	wait_for_line "$T/ready" ready
	# Go reads /etc/resolv.conf itself: give it one of our own (in a mount
	# namespace) whose server only the udp rule below can reach
	printf 'nameserver 192.0.2.53\n' >"$T/resolv.conf"
	cat >"$T/rules" <<-EOT
	connect udp *:53 -> unix $T/dns.sock
	connect tcp * -> unix $T/egress.sock proxy-v2
	EOT
	run -0 unshare -n -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh "$T/resolv.conf" \
		sockgate-run --seccomp -f "$T/rules" -- "$GET" "http://svc.test:$WPORT/index.html"
	assert_line "hello from svc"
	assert_line --regexp "^peer 127.0.0.5:$WPORT local "
	wait_for_line "$T/relay.log" "(svc.test)"
}
