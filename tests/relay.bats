#!/usr/bin/env bats
# sockgate-relay: bytes both ways, half-close, many connections, PROXY
# headers in and out (with haproxy in front), allow rules, faults, signals,
# listeners of every kind. Peers: tests/tools/relay_peer.py (python3),
# $BUILD/tools/proxy-peer, haproxy, systemd-socket-activate.
# Runtime: about 45 s on 2 cores (the two 1 GiB transfers are most of it).

load helper

PEER="python3 $BATS_TEST_DIRNAME/tools/relay_peer.py"
PP=$BUILD/tools/proxy-peer

# spawn OUT CMD...: CMD in the background, output to OUT, killed at teardown.
spawn() {
	local out=$1
	shift
	"$@" >"$out" 2>&1 3>&- 5>&- &
	PIDS+=($!)
}

# spawn_in IN OUT CMD...: the same with stdin from IN (a background job's
# stdin is /dev/null unless redirected on the job itself).
spawn_in() {
	local in=$1 out=$2
	shift 2
	"$@" <"$in" >"$out" 2>&1 3>&- 5>&- &
	PIDS+=($!)
}

# start_relay ARGS...: the relay with -v, log in $T/relay.log, waits for its
# readiness line; sets RP (pid) and PORT (its last tcp listener's port).
start_relay() {
	: >"$T/ready"
	"$SG" relay -v --ready-fd 3 "$@" 3>"$T/ready" 2>>"$T/relay.log" &
	RP=$!
	PIDS+=($RP)
	wait_for_line "$T/ready" ready
	PORT=$(sed -n 's/.*listening on tcp:.*:\([0-9]*\)$/\1/p' "$T/relay.log" | tail -1)
}

# echo_server ADDR: the python echo server on ADDR (unix:... or tcp:127.0.0.1:0); sets EPORT.
echo_server() {
	spawn "$T/echo.out" $PEER echo "$@"
	wait_for_line "$T/echo.out" ready
	EPORT=$(awk '/^listening/ {print $2}' "$T/echo.out")
}

fdcount() { ls "/proc/$1/fd" | wc -l; }

@test "relay: --help prints the usage and exits 0; a bad option exits 100" {
	run -0 "$SG" relay --help
	assert_line --index 0 --partial "usage: sockgate-relay [-v] [-l LISTEN ...]"
	run -100 "$SG" relay --bogus tcp:127.0.0.1:1
	assert_output --partial "usage: sockgate-relay"
	run -100 "$SG" relay -l unix:$T/x.sock
}

@test "relay: bad values exit 1 and say which" {
	run -1 "$SG" relay -l smtp:25 tcp:127.0.0.1:1
	assert_output --partial "sockgate-relay: fatal: unknown listener smtp:25"
	run -1 "$SG" relay -l tcp:127.0.0.1:0 nowhere:1
	assert_output --partial "fatal: bad target nowhere:1"
	run -1 "$SG" relay -l tcp:127.0.0.1:0 --idle-timeout 5parsecs tcp:127.0.0.1:1
	assert_output --partial "--idle-timeout 5parsecs: unknown unit"
	run -1 "$SG" relay -l tcp:127.0.0.1:0 -r "connect tcp 1.2.3.4:80 -> teleport" original
	assert_output --regexp "fatal: rules:1:[0-9]+: "
	run -1 "$SG" relay -l "unix:$T/x.sock,mode=999" tcp:127.0.0.1:1
	assert_output --partial "bad mode"
}

@test "relay: a port in use is a fatal error naming it (111); --reuseport shares it" {
	start_relay -l tcp:127.0.0.1:0 --reuseport tcp:127.0.0.1:1
	run -111 "$SG" relay -l tcp:127.0.0.1:$PORT tcp:127.0.0.1:1
	assert_output --regexp "^sockgate-relay: fatal: unable to bind tcp:127\.0\.0\.1:$PORT: Address (already )?in use$"
	"$SG" relay --reuseport -l tcp:127.0.0.1:$PORT --ready-fd 3 tcp:127.0.0.1:1 3>"$T/ready2" 2>"$T/r2.log" &
	PIDS+=($!)
	wait_for_line "$T/ready2" ready
}

@test "relay: 1 GiB each way at once, TCP to Unix, checksummed" {
	spawn "$T/srv.out" $PEER bulk-server "unix:$T/t.sock" $((1 << 30))
	wait_for_line "$T/srv.out" ready
	start_relay -l tcp:127.0.0.1:0 "unix:$T/t.sock"
	run -0 $PEER bulk-client "tcp:127.0.0.1:$PORT" $((1 << 30))
	wait_for_line "$T/srv.out" recv
	# what one side sent, the other received, byte for byte
	[ "$(awk '/^sent/ {print $2}' <<<"$output")" = "$(awk '/^recv/ {print $2}' "$T/srv.out")" ]
	[ "$(awk '/^recv/ {print $2}' <<<"$output")" = "$(awk '/^sent/ {print $2}' "$T/srv.out")" ]
	assert_line --regexp "^recv [0-9a-f]{64} 1073741824$"
	wait_for_line "$T/relay.log" "1073741824 bytes to target, 1073741824 bytes to client, .*, done"
}

@test "relay: 1 GiB each way at once, Unix to TCP, checksummed" {
	spawn "$T/srv.out" $PEER bulk-server tcp:127.0.0.1:0 $((1 << 30))
	wait_for_line "$T/srv.out" ready
	local tport=$(awk '/^listening/ {print $2}' "$T/srv.out")
	start_relay -l "unix:$T/in.sock" "tcp:127.0.0.1:$tport"
	run -0 $PEER bulk-client "unix:$T/in.sock" $((1 << 30))
	wait_for_line "$T/srv.out" recv
	[ "$(awk '/^sent/ {print $2}' <<<"$output")" = "$(awk '/^recv/ {print $2}' "$T/srv.out")" ]
	[ "$(awk '/^recv/ {print $2}' <<<"$output")" = "$(awk '/^sent/ {print $2}' "$T/srv.out")" ]
	assert_line --regexp "^recv [0-9a-f]{64} 1073741824$"
}

@test "relay: half-close: a client that shuts down its write side still gets the whole reply" {
	spawn "$T/srv.out" $PEER halfclose-server "unix:$T/t.sock"
	wait_for_line "$T/srv.out" ready
	start_relay -l tcp:127.0.0.1:0 "unix:$T/t.sock"
	run -0 $PEER halfclose-client "tcp:127.0.0.1:$PORT" 307200
	local sent=$(awk '/^sent/ {print $2, $3}' <<<"$output")
	assert_line "reply lines 1000 distinct 1"
	assert_line "got $sent"
	wait_for_line "$T/relay.log" "307200 bytes to target, .* bytes to client, .*, done"
}

@test "relay: 2,000 concurrent connections, random payloads checksummed, no fd leaked, idle RSS < 64 MiB" {
	ulimit -n 20000
	echo_server "unix:$T/e.sock"
	start_relay -l tcp:127.0.0.1:0 "unix:$T/e.sock"
	local before=$(fdcount $RP)
	run -0 $PEER many "tcp:127.0.0.1:$PORT" 2000 65536
	assert_output "ok 2000"
	[ "$(grep -c ', done$' "$T/relay.log")" -eq 2000 ]
	# all ended: the relay holds what it held before
	local i
	for i in $(seq 50); do [ "$(fdcount $RP)" -eq "$before" ] && break; sleep 0.1; done
	[ "$(fdcount $RP)" -eq "$before" ]
	# 2,000 idle connections: two sockets each, no pipes, little memory
	mkfifo "$T/hold"
	exec 5<>"$T/hold"	# a writer first, so that opening it to read does not block
	spawn_in "$T/hold" "$T/idle.out" $PEER idle "tcp:127.0.0.1:$PORT" 2000
	wait_for_line "$T/idle.out" "open 2000"
	for i in $(seq 50); do [ "$(fdcount $RP)" -ge $((before + 4000)) ] && break; sleep 0.1; done
	[ "$(fdcount $RP)" -eq $((before + 4000)) ]
	local rss=$(awk '/^VmRSS/ {print $2}' "/proc/$RP/status")
	echo "RSS with 2000 idle connections: $rss kB" >&3
	[ "${SANITIZE:-}" = 1 ] || [ "$rss" -lt 65536 ]	# ASan's shadow memory is not ours
	exec 5>&-
	for i in $(seq 50); do [ "$(fdcount $RP)" -eq "$before" ] && break; sleep 0.1; done
	[ "$(fdcount $RP)" -eq "$before" ]
}

@test "relay: haproxy send-proxy-v2 in front (--proxy-in): the target sees the real client in --proxy-out v2" {
	local hp=$(free_port)
	spawn "$T/pp.out" "$PP" recv -n 1 "unix:$T/t.sock"
	wait_for_line "$T/pp.out" listening
	start_relay -l "unix:$T/r.sock" --proxy-in --proxy-out v2 "unix:$T/t.sock"
	cat >"$T/h.cfg" <<-EOF
	defaults
	    mode tcp
	    timeout connect 5s
	    timeout client 30s
	    timeout server 30s
	frontend f
	    bind 127.0.0.1:$hp
	    default_backend b
	backend b
	    server s1 unix@$T/r.sock send-proxy-v2
	EOF
	spawn "$T/h.out" haproxy -f "$T/h.cfg" -db
	local i
	for i in $(seq 100); do [ -n "$(ss -Hltn "sport = :$hp")" ] && break; sleep 0.05; done
	# the client's own port, to compare with what the target is told
	run -0 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("client", "%s:%d" % s.getsockname())
s.sendall(b"through-haproxy"); s.shutdown(socket.SHUT_WR)
while s.recv(4096): pass' "$hp"
	local client=${output#client }
	wait_for_line "$T/pp.out" "src="
	run cat "$T/pp.out"
	assert_line --partial "v2 PROXY"
	assert_line --partial "src=$client dst=127.0.0.1:$hp"
	assert_line --partial "data=through-haproxy"
	wait_for_line "$T/relay.log" "$client -> unix:$T/t.sock: 15 bytes to target"
}

@test "relay: original: allowed destinations (v2 and v1 headers) are reached, the target gets a v1 header" {
	spawn "$T/pp.out" "$PP" recv -n 2 127.0.0.1:0
	wait_for_line "$T/pp.out" listening
	local tport=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$T/pp.out")
	start_relay -l "unix:$T/r.sock" --proxy-in --proxy-out v1 -r "connect tcp 127.0.0.1:$tport -> pass" original
	run -0 $PEER ppsend "unix:$T/r.sock" 192.0.2.7:4444 "127.0.0.1:$tport" "v2-said"
	run -0 $PEER ppsend "unix:$T/r.sock" 198.51.100.1:5555 "127.0.0.1:$tport" "v1-said" v1
	wait_for_line "$T/pp.out" "v1-said"
	run cat "$T/pp.out"
	assert_line --partial "v1 PROXY stream src=192.0.2.7:4444 dst=127.0.0.1:$tport"
	assert_line --partial "data=v2-said"
	assert_line --partial "v1 PROXY stream src=198.51.100.1:5555 dst=127.0.0.1:$tport"
	run cat "$T/relay.log"
	assert_line --partial "info: 192.0.2.7:4444 -> 127.0.0.1:$tport: 7 bytes to target"
}

@test "relay: bad headers and denied destinations are closed and logged; other connections keep flowing" {
	echo_server tcp:127.0.0.1:0
	start_relay -l "unix:$T/r.sock" --proxy-in --header-timeout 500ms \
		-r "connect tcp 10.0.0.0/8 -> reject" -r "connect tcp 127.0.0.1:$EPORT -> allow" original
	# a good connection stays open across all of it
	coproc GOOD { python3 -c '
import socket, sys
sys.path.insert(0, sys.argv[3])
from relay_peer import pp_build
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(pp_build("192.0.2.1:1000", "127.0.0.1:" + sys.argv[2]) + b"first\n")
print(s.recv(100).decode().strip(), flush=True)
sys.stdin.readline()
s.sendall(b"second\n")
print(s.recv(100).decode().strip(), flush=True)' "$T/r.sock" "$EPORT" "$BATS_TEST_DIRNAME/tools" 3>&-; }
	read -r -u "${GOOD[0]}" line
	[ "$line" = first ]
	# garbage: an HTTP request instead of a header
	$PEER ppsend "unix:$T/r.sock" 1.1.1.1:1 1.1.1.1:1 x raw:474554202f20485454502f312e310d0a0d0a || true
	wait_for_line "$T/relay.log" "bad PROXY header: .* (starts with 47 45 54 20 2f 20 48 54)"
	# truncated, then the client goes away
	$PEER ppsend "unix:$T/r.sock" 1.1.1.1:1 1.1.1.1:1 "" raw:0d0a0d0a000d0a515549540a2111 || true
	wait_for_line "$T/relay.log" "client closed before a complete PROXY header"
	# truncated, and the client waits: the header timeout closes it
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"PROXY TCP4 1.2.3.4 ")
try: s.recv(100)
except ConnectionResetError: pass' "$T/r.sock"
	wait_for_line "$T/relay.log" "no complete PROXY header within 500 ms"
	# too long: a v2 header announcing 65535 bytes of addresses
	$PEER ppsend "unix:$T/r.sock" 1.1.1.1:1 1.1.1.1:1 "" raw:0d0a0d0a000d0a515549540a2111ffff || true
	wait_for_line "$T/relay.log" "bad PROXY header: longer than 16384 bytes"
	# denied by a rule, and by no rule
	run $PEER ppsend "unix:$T/r.sock" 192.0.2.9:9 10.1.2.3:80 "x"
	refute_output --partial "x"
	wait_for_line "$T/relay.log" "warning: 192.0.2.9:9 -> 10.1.2.3:80: 0 bytes to target, 0 bytes to client, .*, denied by rule at line 1 (reject)"
	run $PEER ppsend "unix:$T/r.sock" 192.0.2.9:9 127.0.0.1:1 "x"
	wait_for_line "$T/relay.log" "192.0.2.9:9 -> 127.0.0.1:1: .*denied: no rule allows it"
	# the good one still flows, and new ones work
	echo go >&"${GOOD[1]}"
	read -r -u "${GOOD[0]}" line
	[ "$line" = second ]
	run -0 $PEER ppsend "unix:$T/r.sock" 192.0.2.5:5 "127.0.0.1:$EPORT" "still fine"
	assert_output "still fine"
}

@test "relay: a refusing target and a target that never reads do not hold up the others" {
	echo_server tcp:127.0.0.1:0
	spawn "$T/hold.out" $PEER echo tcp:127.0.0.1:0 --hold
	wait_for_line "$T/hold.out" ready
	local hold=$(awk '/^listening/ {print $2}' "$T/hold.out") closed=$(free_port)
	start_relay -l "unix:$T/r.sock" --proxy-in -r "connect tcp 127.0.0.1 -> pass" original
	# refused: the client is closed, the log says why
	run $PEER ppsend "unix:$T/r.sock" 192.0.2.1:1 "127.0.0.1:$closed" "x"
	wait_for_line "$T/relay.log" "-> 127.0.0.1:$closed: .*unable to connect to target: Connection refused"
	# a target that never reads: 64 MiB pushed at it stalls (back-pressure) ...
	python3 -c '
import socket, sys
sys.path.insert(0, sys.argv[3])
from relay_peer import pp_build
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(1)
s.sendall(pp_build("192.0.2.2:2", "127.0.0.1:" + sys.argv[2]))
n = 0
try:
    while n < 64 << 20:
        n += s.send(b"z" * 65536)
except (socket.timeout, BlockingIOError):
    pass
print("stalled after", n, flush=True)
open(sys.argv[4], "w").write(str(n))
import time; time.sleep(30)' "$T/r.sock" "$hold" "$BATS_TEST_DIRNAME/tools" "$T/stalled" 3>&- &
	PIDS+=($!)
	wait_for_file "$T/stalled" 10
	[ "$(cat "$T/stalled")" -lt $((64 << 20)) ]
	# ... and memory stays bounded while others flow
	run -0 $PEER ppsend "unix:$T/r.sock" 192.0.2.3:3 "127.0.0.1:$EPORT" "others flow"
	assert_output "others flow"
	local rss=$(awk '/^VmRSS/ {print $2}' "/proc/$RP/status")
	[ "${SANITIZE:-}" = 1 ] || [ "$rss" -lt 16384 ]
}

@test "relay: SIGTERM: open transfers finish, new connections are refused, then exit 0" {
	echo_server "unix:$T/e.sock"
	start_relay -l tcp:127.0.0.1:0 --grace 20s "unix:$T/e.sock"
	coproc CL { python3 -c '
import socket, sys, hashlib
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"a"); print(s.recv(1).decode(), flush=True)
sys.stdin.readline()
data = bytes(range(256)) * 40000
import threading
t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))); t.start()
got = b""
while True:
    b = s.recv(65536)
    if not b: break
    got += b
t.join()
print("echoed", len(got), hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), flush=True)' "$PORT" 3>&-; }
	read -r -u "${CL[0]}" line
	[ "$line" = a ]
	kill -TERM $RP
	wait_for_line "$T/relay.log" "stopping: no new connections; waiting for 1 open ones"
	run ! $PEER halfclose-client "tcp:127.0.0.1:$PORT" 256
	echo go >&"${CL[1]}"
	read -r -u "${CL[0]}" line
	[ "$line" = "echoed 10240000 True" ]
	local rc=0
	wait $RP || rc=$?
	[ "$rc" -eq 0 ]
	run cat "$T/relay.log"
	assert_line --partial "10240001 bytes to target, 10240001 bytes to client"
	assert_line --partial "info: stopped"
}

@test "relay: SIGTERM: after the grace time the rest are closed and it exits 0" {
	echo_server "unix:$T/e.sock"
	start_relay -l tcp:127.0.0.1:0 --grace 300ms "unix:$T/e.sock"
	mkfifo "$T/hold"
	exec 5<>"$T/hold"	# a writer first, so that opening it to read does not block
	spawn_in "$T/hold" "$T/idle.out" $PEER idle "tcp:127.0.0.1:$PORT" 3
	wait_for_line "$T/idle.out" "open 3"
	wait_for_line "$T/relay.log" "forwarding"
	for i in $(seq 50); do [ "$(ls -l "/proc/$RP/fd" | grep -c socket:)" -ge 7 ] && break; sleep 0.1; done
	kill -TERM $RP
	local rc=0
	wait $RP || rc=$?
	exec 5>&-
	[ "$rc" -eq 0 ]
	[ "$(grep -c 'relay stopped (grace time over)' "$T/relay.log")" -eq 3 ]
}

@test "relay: --max-conns: beyond it connections wait in the backlog, then are served" {
	echo_server "unix:$T/e.sock"
	start_relay -l tcp:127.0.0.1:0 -c 2 "unix:$T/e.sock"
	mkfifo "$T/hold"
	exec 5<>"$T/hold"	# a writer first, so that opening it to read does not block
	spawn_in "$T/hold" "$T/idle.out" $PEER idle "tcp:127.0.0.1:$PORT" 2
	wait_for_line "$T/idle.out" "open 2"
	# the third connects (kernel backlog) but is not accepted yet
	coproc THIRD { exec $PEER halfclose-client "tcp:127.0.0.1:$PORT" 256 3>&- 5>&-; }
	local i
	for i in $(seq 100); do [ "$(ss -Htn "dport = :$PORT" | wc -l)" -eq 3 ] && break; sleep 0.05; done
	[ "$(ss -Htn "dport = :$PORT" | wc -l)" -eq 3 ]
	sleep 0.2	# give it the chance to be (wrongly) served
	[ "$(grep -c 'bytes to target' "$T/relay.log")" -eq 0 ]
	exec 5>&-
	read -r -u "${THIRD[0]}" line
	[ "$line" = "sent 256 40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880" ]
	wait_for_line "$T/relay.log" "256 bytes to target, .*, done"
}

@test "relay: unix listener mode, owner and group; a comma in the path; abstract listener; stale socket file replaced" {
	echo_server tcp:127.0.0.1:0
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/m.sock"
	run -1 "$SG" relay -l "unix:$T/x.sock,mdoe=0660" "tcp:127.0.0.1:$EPORT"
	assert_output --partial "unknown listener option mdoe=0660"
	start_relay -l "unix:$T/m.sock,mode=0660,owner=nobody,group=daemon" -l "unix:@sg-relay-test-$$" \
		-l "unix:$T/a,b.sock,mode=0600" "tcp:127.0.0.1:$EPORT"
	run stat -c '%A %U %G' "$T/m.sock"
	assert_output "srw-rw---- nobody daemon"
	run stat -c '%A' "$T/a,b.sock"
	assert_output "srw-------"
	run -0 $PEER halfclose-client "unix:$T/m.sock" 512
	run -0 $PEER halfclose-client "unix:@sg-relay-test-$$" 512
	run -0 $PEER halfclose-client "unix:$T/a,b.sock" 512
	kill $RP
	wait $RP
	[ ! -e "$T/m.sock" ]
}

@test "relay: dual-stack tcp:[::]:PORT takes IPv4 and IPv6 clients" {
	[ -e /proc/net/if_inet6 ] || skip "no IPv6 here"
	echo_server "unix:$T/e.sock"
	start_relay -l "tcp:[::]:0" "unix:$T/e.sock"
	run -0 $PEER many "tcp:127.0.0.1:$PORT" 5 100
	run -0 $PEER many "tcp:[::1]:$PORT" 5 100
	run cat "$T/relay.log"
	assert_line --regexp "info: 127\.0\.0\.1:[0-9]+ -> unix:.*done"
	assert_line --regexp "info: \[::1\]:[0-9]+ -> unix:.*done"
}

@test "relay: inherited fd:N and systemd LISTEN_FDS/LISTEN_FDNAMES" {
	command -v systemd-socket-activate >/dev/null || skip "no systemd-socket-activate (package systemd)"
	echo_server "unix:$T/e.sock"
	local p1=$(free_port)
	run -1 "$SG" relay -l fd:7 "unix:$T/e.sock" 7</dev/null
	assert_output "sockgate-relay: fatal: fd:7: fd 7 is not a socket"
	# an inherited listening socket
	python3 -c '
import os, socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8)
os.dup2(l.fileno(), 7)
open(sys.argv[1], "w").write(str(l.getsockname()[1]))
os.execvp(sys.argv[2], sys.argv[2:])' "$T/port" "$SG" relay -v -l fd:7 --ready-fd 3 "unix:$T/e.sock" 3>"$T/ready" 2>"$T/relay.log" &
	PIDS+=($!)
	wait_for_line "$T/ready" ready
	run -0 $PEER many "tcp:127.0.0.1:$(cat "$T/port")" 3 1000
	assert_output "ok 3"
	: >"$T/relay.log"
	systemd-socket-activate -l "127.0.0.1:$p1" --fdname=web -E PATH \
		"$SG" relay -v -l systemd:web "unix:$T/e.sock" 2>"$T/relay.log" 3>&- &
	PIDS+=($!)
	wait_for_line "$T/relay.log" "Listening on"  # systemd-socket-activate's own line
	run -0 $PEER many "tcp:127.0.0.1:$p1" 3 1000
	wait_for_line "$T/relay.log" "listening on tcp:127.0.0.1:$p1 (systemd fd 3 web)"
	wait_for_line "$T/relay.log" "done"
}

@test "relay: fdpass: a connected socket passed with SCM_RIGHTS is relayed" {
	echo_server "unix:$T/e.sock"
	start_relay -l "fdpass:$T/pass.sock" "unix:$T/e.sock"
	local sp=$(free_port)
	# a TCP server on the host side whose accepted socket is passed to the relay
	run -0 python3 -c '
import socket, sys, threading
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.connect(sys.argv[1])
socket.send_fds(d, [b"\0"], [a.fileno()])
a.close()
c.sendall(b"passed along\n"); c.shutdown(socket.SHUT_WR)
print(c.recv(100).decode().strip())' "$T/pass.sock"
	assert_output "passed along"
	wait_for_line "$T/relay.log" "-> unix:$T/e.sock: 13 bytes to target, 13 bytes to client, .*, done"
}

@test "relay: SIGHUP reloads the allow rules without dropping connections; a bad file keeps the old" {
	echo_server tcp:127.0.0.1:0
	local other
	spawn "$T/e2.out" $PEER echo tcp:127.0.0.1:0
	wait_for_line "$T/e2.out" ready
	other=$(awk '/^listening/ {print $2}' "$T/e2.out")
	echo "connect tcp 127.0.0.1:$EPORT -> pass" >"$T/rules"
	start_relay -l "unix:$T/r.sock" --proxy-in -f "$T/rules" original
	run $PEER ppsend "unix:$T/r.sock" 192.0.2.1:1 "127.0.0.1:$other" "before"
	refute_output "before"
	printf 'connect tcp 127.0.0.1:%s -> pass\nconnect tcp 127.0.0.1:%s -> pass\n' "$EPORT" "$other" >"$T/rules"
	kill -HUP $RP
	wait_for_line "$T/relay.log" "reloaded the rules (2)"
	run -0 $PEER ppsend "unix:$T/r.sock" 192.0.2.1:1 "127.0.0.1:$other" "after"
	assert_output "after"
	echo "connect tcp nonsense" >"$T/rules"
	kill -HUP $RP
	wait_for_line "$T/relay.log" "warning: $T/rules:1:.*(keeping the old rules)"
	run -0 $PEER ppsend "unix:$T/r.sock" 192.0.2.1:1 "127.0.0.1:$other" "still"
	assert_output "still"
}

@test "relay: readiness on NOTIFY_SOCKET" {
	echo_server "unix:$T/e.sock"
	spawn "$T/notify.out" python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
print("bound", flush=True); print(s.recv(100).decode(), flush=True)' "$T/notify"
	wait_for_line "$T/notify.out" bound
	NOTIFY_SOCKET=$T/notify "$SG" relay -l tcp:127.0.0.1:0 "unix:$T/e.sock" 2>/dev/null 3>&- &
	PIDS+=($!)
	wait_for_line "$T/notify.out" "READY=1"
}

@test "relay: idle timeout; connect timeout on a Unix target whose backlog stays full" {
	echo_server "unix:$T/e.sock"
	start_relay -l tcp:127.0.0.1:0 --idle-timeout 300ms "unix:$T/e.sock"
	run -0 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x"); s.recv(1)
print("closed" if s.recv(1) == b"" else "data")' "$PORT"
	assert_output closed
	wait_for_line "$T/relay.log" "1 bytes to target, 1 bytes to client, 0\.[0-9]*s, idle timeout"
	# a Unix listener that never accepts, backlog 0: connect says EAGAIN until the timeout
	spawn "$T/full.out" python3 -c '
import socket, sys, time
l = socket.socket(socket.AF_UNIX); l.bind(sys.argv[1]); l.listen(0)
fill = []
for i in range(4):
    c = socket.socket(socket.AF_UNIX); c.setblocking(False)
    try: c.connect(sys.argv[1]); fill.append(c)
    except BlockingIOError: break
print("full", flush=True); time.sleep(60)' "$T/full.sock"
	wait_for_line "$T/full.out" full
	: >"$T/relay.log"
	start_relay -l tcp:127.0.0.1:0 --connect-timeout 400ms "unix:$T/full.sock"
	run $PEER halfclose-client "tcp:127.0.0.1:$PORT" 256
	wait_for_line "$T/relay.log" "unable to connect to target: its backlog stayed full"
}

@test "relay: privilege drop: -u nobody and --chroot after the listeners are open" {
	mkdir -p "$T/root"
	chmod 755 "$T" "$T/root"
	echo_server "unix:$T/root/e.sock"
	chmod 777 "$T/root/e.sock"
	# a directory only root may enter: the relay binds there before it becomes nobody
	mkdir -m 700 "$T/priv"
	start_relay -l "unix:$T/priv/in.sock" -u nobody --chroot "$T/root" unix:/e.sock
	run awk '/^Uid:/ {print $2, $3}' "/proc/$RP/status"
	assert_output "$(id -u nobody) $(id -u nobody)"
	[ "$(readlink "/proc/$RP/root")" = "$T/root" ]
	run -0 $PEER many "unix:$T/priv/in.sock" 3 1000
	assert_output "ok 3"
}

@test "relay: sockgate-server passes accepted sockets to fdpass:; the target sees the real client in --proxy-out v2" {
	spawn "$T/pp.out" "$PP" recv -n 1 "unix:$T/t.sock"
	wait_for_line "$T/pp.out" listening
	start_relay -l "fdpass:$T/pass.sock" --proxy-out v2 "unix:$T/t.sock"
	local sp=$(free_port)
	"$SG" server -v -l 127.0.0.1 -p "$sp" -S "$T/pass.sock" --ready-fd 4 4>"$T/sready" 2>"$T/server.log" 3>&- &
	PIDS+=($!)
	wait_for_line "$T/sready" ready
	run -0 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("client", "%s:%d" % s.getsockname())
s.sendall(b"handed-off"); s.shutdown(socket.SHUT_WR)
while s.recv(4096): pass' "$sp"
	local client=${output#client }
	wait_for_line "$T/pp.out" "src="
	run cat "$T/pp.out"
	assert_line --partial "src=$client dst=127.0.0.1:$sp"
	assert_line --partial "data=handed-off"
	wait_for_line "$T/relay.log" "info: $client -> unix:$T/t.sock: 10 bytes to target"
}

@test "relay: container path: 1 GiB each way from inside unshare -n, through libsockgate.so, Unix, the relay, to TCP" {
	need_netns
	[ -e "$LIB" ] || skip "no $LIB"
	spawn "$T/srv.out" $PEER bulk-server tcp:127.0.0.1:0 $((1 << 30))
	wait_for_line "$T/srv.out" ready
	local tport=$(awk '/^listening/ {print $2}' "$T/srv.out")
	start_relay -l "unix:$T/egress.sock" --proxy-in -r "connect tcp 127.0.0.1:$tport -> pass" original
	# inside: no network at all; only the relay's socket file is reachable
	run -0 unshare -n env SOCKGATE_RULE="connect tcp * -> unix $T/egress.sock proxy-v2" LD_PRELOAD="$LIB" \
		$PEER bulk-client "tcp:127.0.0.1:$tport" $((1 << 30))
	wait_for_line "$T/srv.out" recv
	[ "$(awk '/^sent/ {print $2}' <<<"$output")" = "$(awk '/^recv/ {print $2}' "$T/srv.out")" ]
	[ "$(awk '/^recv/ {print $2}' <<<"$output")" = "$(awk '/^sent/ {print $2}' "$T/srv.out")" ]
	assert_line --regexp "^recv [0-9a-f]{64} 1073741824$"
	wait_for_line "$T/relay.log" "-> 127.0.0.1:$tport: 1073741824 bytes to target, 1073741824 bytes to client, .*, done"
	# a destination not allowed is refused
	run unshare -n env SOCKGATE_RULE="connect tcp * -> unix $T/egress.sock proxy-v2" LD_PRELOAD="$LIB" \
		$PEER halfclose-client "tcp:127.0.0.1:$((tport == 65535 ? 1 : tport + 1))" 256
	assert_failure
	wait_for_line "$T/relay.log" "denied: no rule allows it"
}

@test "relay: a rules file compiled by sockgate-asmgen; -r cannot be added to it" {
	echo_server tcp:127.0.0.1:0
	echo "connect tcp 127.0.0.1:$EPORT -> pass" >"$T/rules"
	run -0 "$SG" asmgen "$T/rules" -o "$T/rules.bin"
	run -100 "$SG" relay -l "unix:$T/x.sock" -f "$T/rules.bin" -r "connect tcp * -> pass" original
	assert_output --partial "-r cannot be used with a compiled rules file"
	start_relay -l "unix:$T/r.sock" --proxy-in -f "$T/rules.bin" original
	run -0 $PEER ppsend "unix:$T/r.sock" 192.0.2.1:1 "127.0.0.1:$EPORT" "compiled"
	assert_output "compiled"
	run $PEER ppsend "unix:$T/r.sock" 192.0.2.1:1 "127.0.0.1:1" "other"
	wait_for_line "$T/relay.log" "127.0.0.1:1: .*denied: no rule allows it"
}

@test "relay: --proxy-in v2 TLVs (AUTHORITY, UNIQUE_ID, NETNS, CRC32C) are passed on in --proxy-out v2" {
	spawn "$T/pp.out" "$PP" recv -n 1 "unix:$T/t.sock"
	wait_for_line "$T/pp.out" listening
	start_relay -l "unix:$T/r.sock" --proxy-in --proxy-out v2 "unix:$T/t.sock"
	run -0 "$PP" send -c -a example.com -N blue -u 0102ab '[2001:db8::7]:999' '[2001:db8::1]:443' "unix:$T/r.sock" <<<"payload"
	wait_for_line "$T/pp.out" "src="
	run cat "$T/pp.out"
	assert_line --partial "v2 PROXY stream src=[2001:db8::7]:999 dst=[2001:db8::1]:443 authority=example.com netns=blue unique_id=0102ab crc32c=yes"
	assert_line --partial "data=payload"
}

@test "relay: idle pooled pipes: at most 16 keep a grown size, the rest go back to 64 KiB; none lost" {
	# 24 flows of 2 MiB each into a target that reads nothing until all 24
	# hold a full pipe; then it reads everything. One idle connection keeps
	# the relay from dropping its pool when the others end.
	cat >"$T/target.py" <<'PY'
import hashlib, os, socket, sys, threading
path, n, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
l = socket.socket(socket.AF_UNIX); l.bind(path); l.listen(64)
print("ready", flush=True)
conns = [l.accept()[0] for _ in range(n + 1)]
while not os.path.exists(go):
    threading.Event().wait(0.05)
sums = []
def drain(c):
    h, k = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b); k += len(b)
    if k:
        sums.append((k, h.hexdigest()))
ts = [threading.Thread(target=drain, args=(c,)) for c in conns[1:]]
for t in ts: t.start()
for t in ts: t.join()
for k, d in sorted(sums): print(k, d, flush=True)
print("done", len(sums), flush=True)
PY
	spawn "$T/target.out" python3 "$T/target.py" "$T/t.sock" 24 "$T/go"
	wait_for_line "$T/target.out" ready
	start_relay -l "unix:$T/r.sock" "unix:$T/t.sock"
	mkfifo "$T/hold"
	exec 5<>"$T/hold"
	spawn_in "$T/hold" "$T/idle.out" $PEER idle "unix:$T/r.sock" 1
	wait_for_line "$T/idle.out" "open 1"
	python3 -c '
import socket, sys, threading
data = bytes(range(256)) * 8192   # 2 MiB
def one():
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(data); s.shutdown(socket.SHUT_WR)
    s.recv(1); s.close()
ts = [threading.Thread(target=one) for _ in range(24)]
for t in ts: t.start()
for t in ts: t.join()' "$T/r.sock" 3>&- &
	local clients=$!
	# every flow stalls with bytes in its pipe: 24 pipes held at once
	for _ in $(seq 100); do [ "$(ls -l /proc/$RP/fd | grep -c pipe:)" -ge 48 ] && break; sleep 0.1; done
	touch "$T/go"
	wait $clients
	wait_for_line "$T/target.out" "done 24"
	run -0 grep -c "^2097152 $(python3 -c 'import hashlib; print(hashlib.sha256(bytes(range(256)) * 8192).hexdigest())')$" "$T/target.out"
	assert_output 24
	for _ in $(seq 100); do [ "$(grep -c 'bytes to target' "$T/relay.log")" -ge 24 ] && break; sleep 0.1; done
	# the pipe sizes of the relay's pipes, read through pidfd_getfd(2)
	run -0 python3 -c '
import ctypes, fcntl, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
pfd = libc.syscall(434, pid, 0)                  # pidfd_open
sizes = []
for name in os.listdir("/proc/%d/fd" % pid):
    if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("pipe:"):
        continue
    fd = libc.syscall(438, pfd, int(name), 0)     # pidfd_getfd
    if fd >= 0:
        sizes.append(fcntl.fcntl(fd, 1032))       # F_GETPIPE_SZ
        os.close(fd)
big = sum(1 for s in sizes if s > 65536)
print("pipe ends", len(sizes), "grown ends", big)' "$RP"
	local ends grown
	read -r _ _ ends _ _ grown <<<"$output"
	[ "$ends" -ge 40 ]	# the pool kept them (24 pipes, two ends each) ...
	[ "$grown" -le 32 ]	# ... but at most 16 of them grown
	exec 5>&-
}

@test "relay faults: at the fd limit (ulimit -n 64) no accepted client is dropped: 200 clients all served" {
	echo_server "unix:$T/e.sock"
	# only the relay runs with the low limit (soft and hard: it cannot raise it)
	: >"$T/ready"
	(ulimit -n 64; exec "$SG" relay -v --ready-fd 3 -l tcp:127.0.0.1:0 "unix:$T/e.sock" 3>"$T/ready" 2>>"$T/relay.log") &
	RP=$!
	PIDS+=($RP)
	wait_for_line "$T/ready" ready
	PORT=$(sed -n 's/.*listening on tcp:.*:\([0-9]*\)$/\1/p' "$T/relay.log" | tail -1)
	run -0 $PEER many "tcp:127.0.0.1:$PORT" 200 262144
	assert_output "ok 200"
	[ "$(grep -c ', done$' "$T/relay.log")" -eq 200 ]
	run grep -c 'unable to create a pipe\|unable to connect\|unable to accept' "$T/relay.log"
	assert_output 0
}

@test "relay: bytes to client counts what was delivered; what was read but not delivered is logged apart" {
	# a target that sends 8 MiB at once to a client that reads nothing until the relay gives up
	cat > "$T/flood.py" <<-'PY'
	import socket, sys, os
	s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
	print("ready", flush=True)
	c, _ = s.accept()
	try:
	    c.sendall(b"x" * (8 << 20))
	except OSError:
	    pass
	PY
	cat > "$T/lazy.py" <<-'PY'
	import socket, sys, os, time
	c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
	c.connect(("127.0.0.1", int(sys.argv[1])))
	while not os.path.exists(sys.argv[2]):
	    time.sleep(0.05)
	n = 0
	while True:
	    b = c.recv(65536)
	    if not b:
	        break
	    n += len(b)
	print("got", n)
	PY
	spawn "$T/flood.out" python3 "$T/flood.py" "$T/t.sock"
	wait_for_line "$T/flood.out" ready
	start_relay --idle-timeout 1s -l tcp:127.0.0.1:0 "unix:$T/t.sock"
	spawn "$T/lazy.out" python3 "$T/lazy.py" "$PORT" "$T/go"
	wait_for_line "$T/relay.log" "idle timeout"
	touch "$T/go"
	wait_for_line "$T/lazy.out" "^got "
	local got=$(awk '/^got/ {print $2}' "$T/lazy.out")
	run grep "idle timeout" "$T/relay.log"
	assert_output --regexp " 0 bytes to target, $got bytes to client, .*idle timeout \(discarded, read but not delivered: 0 bytes to target, [1-9][0-9]* to client\)$"
}

@test "relay -u: a socket file it cannot remove at stop is warned about at start, and at stop" {
	chmod 755 "$T"
	mkdir "$T/ro" "$T/rw" "$T/st"
	chmod 755 "$T/ro"
	chmod 777 "$T/rw"
	chmod 1777 "$T/st"
	echo_server "unix:$T/e.sock"
	start_relay -u nobody -l "unix:$T/ro/r.sock" -l "unix:$T/rw/w.sock" -l "unix:$T/st/s.sock" "unix:$T/e.sock"
	run grep -c "will be left at stop" "$T/relay.log"
	assert_output 2
	grep -q "warning: $T/st/s.sock will be left at stop: its directory $T/st is sticky" "$T/relay.log"
	grep -q "warning: $T/ro/r.sock will be left at stop: its directory $T/ro is not writable by the user the relay runs as" "$T/relay.log"
	kill -TERM "$RP"
	wait "$RP" || true
	grep -q "warning: unable to remove $T/ro/r.sock: Permission denied" "$T/relay.log"
	[ -S "$T/ro/r.sock" ]
	[ ! -e "$T/rw/w.sock" ]
}

@test "relay original: a header with no destination is denied, named as the spec names it (v1 UNKNOWN, v2 LOCAL, v2 family UNSPEC)" {
	start_relay -l "unix:$T/r.sock" --proxy-in -r "connect tcp 127.0.0.1 -> pass" original
	python3 - "$T/r.sock" <<-'PY'
	import socket, sys
	sig = b"\r\n\r\n\x00\r\nQUIT\n"
	for hdr in (b"PROXY UNKNOWN\r\n", sig + b"\x20\x00\x00\x00", sig + b"\x21\x00\x00\x00"):
	    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(hdr + b"hello")
	    try:
	        s.recv(10)
	    except ConnectionResetError:
	        pass
	    s.close()
	PY
	wait_for_line "$T/relay.log" "denied: the PROXY header carries no destination (family UNSPEC)"
	grep -q "denied: the PROXY header carries no destination (PROXY UNKNOWN)$" "$T/relay.log"
	grep -q "denied: the PROXY header carries no destination (LOCAL)$" "$T/relay.log"
	run grep -c "UNSPEC)$" "$T/relay.log"
	assert_output 1
}
