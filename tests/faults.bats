#!/usr/bin/env bats
# Fault injection not covered by the applets' own suites: a target that
# stalls mid-stream (SIGSTOP/SIGCONT), a receiver killed in the middle of a
# hand-off, logs on a full disk (/dev/full), and the preload when the
# program has run out of fds (ulimit -n). Peers: tests/tools/relay_peer.py,
# tests/tools/srv_peer.py (python3). Runtime: about 10 s on 2 cores.

load helper

RPEER="python3 $BATS_TEST_DIRNAME/tools/relay_peer.py"
SPEER="python3 $BATS_TEST_DIRNAME/tools/srv_peer.py"

fdcount() { ls "/proc/$1/fd" | wc -l; }
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }	# utime + stime

# relay_to TARGET [ARGS...]: sockgate-relay from a TCP port to TARGET, log in
# $T/relay.log; sets RP and PORT
relay_to() {
	local target=$1
	shift
	: >"$T/ready"
	"$SG" relay -v --ready-fd 3 "$@" -l tcp:127.0.0.1:0 "$target" 3>"$T/ready" 2>>"$T/relay.log" &
	RP=$!
	PIDS+=($RP)
	wait_for_line "$T/ready" ready
	PORT=$(sed -n 's/.*listening on tcp:.*:\([0-9]*\)$/\1/p' "$T/relay.log" | tail -1)
}

@test "faults: a target stopped mid-stream (SIGSTOP) stalls its transfer, idle, then SIGCONT and every byte arrives" {
	size=$((64 << 20))
	spawn "$T/srv.out" $RPEER bulk-server "unix:$T/t.sock" "$size"
	SRV=$!
	wait_for_line "$T/srv.out" ready
	relay_to "unix:$T/t.sock"
	base=$(cputicks "$SRV")
	spawn "$T/cli.out" $RPEER bulk-client "tcp:127.0.0.1:$PORT" "$size"
	# mid-stream: once the target has spent 30 ms of CPU time on it (its
	# socket reads are not in /proc/PID/io); the whole takes several times that
	for _ in $(seq 200); do [ $(($(cputicks "$SRV") - base)) -ge 3 ] && break; sleep 0.02; done
	kill -STOP "$SRV"
	! grep -q recv "$T/srv.out"
	# stalled: for a second nothing finishes and the relay does not spin
	t0=$(cputicks "$RP")
	for _ in $(seq 20); do ! grep -q recv "$T/cli.out"; sleep 0.05; done
	[ $(($(cputicks "$RP") - t0)) -lt 20 ]
	grep -v -q done "$T/relay.log"
	kill -CONT "$SRV"
	wait_for_line "$T/cli.out" recv 60
	wait_for_line "$T/srv.out" recv 60
	[ "$(awk '/^sent/ {print $2}' "$T/cli.out")" = "$(awk '/^recv/ {print $2}' "$T/srv.out")" ]
	[ "$(awk '/^recv/ {print $2}' "$T/cli.out")" = "$(awk '/^sent/ {print $2}' "$T/srv.out")" ]
	grep -q "^recv [0-9a-f]\{64\} $size$" "$T/cli.out"
	wait_for_line "$T/relay.log" "$size bytes to target, $size bytes to client, .*, done"
}

@test "faults: a receiver killed while connections wait for it: they are refused, none leaks, a new receiver is served" {
	spawn "$T/stuck.out" $SPEER stuck "$T/r.sock"
	STUCK=$!
	wait_for_line "$T/stuck.out" stuck
	# a long hand-off timeout: what ends the wait must be the receiver's death
	start_server -l 127.0.0.1 -p 0 -S "$T/r.sock" -q 5 -T 30000
	before=$(fdcount "$SP")
	spawn "$T/hold.out" $SPEER hold 30 127.0.0.1 "$PORT" "$T/go"
	wait_for_line "$T/hold.out" "held 30"
	wait_for_line "$T/server.log" "queue full and 5 connections already waiting"
	kill -9 "$STUCK"
	# the sockets queued in the dead receiver are closed by the kernel; the
	# 5 waiting in the server are refused without waiting out the 30 s
	touch "$T/go"
	wait_for_line "$T/hold.out" "data=0" 10
	assert_equal "$(tail -1 "$T/hold.out")" "data=0 eof=30 reset=0"
	wait_for_line "$T/server.log" "refused: receiver unix:$T/r.sock: Connection refused"
	run -1 grep -q "not reading" "$T/server.log"
	# a receiver started again at the same path gets the next connection
	rm -f "$T/r.sock"
	printf '#!/bin/sh\necho "served $TCPREMOTEIP"\n' >"$T/hello"
	chmod +x "$T/hello"
	spawn "$T/inetd.log" "$SG" inetd "$T/r.sock" "$T/hello"
	wait_for_file "$T/r.sock"
	run -0 nc -N 127.0.0.1 "$PORT" </dev/null
	assert_output "served 127.0.0.1"
	assert_equal "$(fdcount "$SP")" "$((before + 1))"	# + the socket connected to the new receiver
}

@test "faults: logs on a full disk (/dev/full): relay and server go on working and stop with 0" {
	spawn "$T/echo.out" $RPEER echo "unix:$T/e.sock"
	wait_for_line "$T/echo.out" ready
	: >"$T/ready"
	"$SG" relay -v --ready-fd 3 -l tcp:127.0.0.1:0 -l "unix:$T/r.sock" "unix:$T/e.sock" 3>"$T/ready" 2>/dev/full &
	RP=$!
	PIDS+=($RP)
	wait_for_line "$T/ready" ready
	run -0 $RPEER many "unix:$T/r.sock" 50
	assert_output "ok 50"
	kill -TERM "$RP"
	# wait in this shell: under run (a subshell) the pid is no child of it
	rc=0
	wait "$RP" || rc=$?
	assert_equal "$rc" 0
	# the server: every hand-off logged (-v) into /dev/full
	printf '#!/bin/sh\necho "served $TCPREMOTEIP"\n' >"$T/hello"
	chmod +x "$T/hello"
	spawn "$T/inetd.log" "$SG" inetd "$T/in.sock" "$T/hello"
	wait_for_file "$T/in.sock"
	port=$(free_port)
	"$SG" server -v --ready-fd 4 -l 127.0.0.1 -p "$port" -S "$T/in.sock" 4>"$T/sready" 2>/dev/full 3>&- &
	SP=$!
	PIDS+=($SP)
	wait_for_line "$T/sready" ready
	for i in 1 2 3; do
		run -0 nc -N 127.0.0.1 "$port" </dev/null
		assert_output "served 127.0.0.1"
	done
	kill -TERM "$SP"
	rc=0
	wait "$SP" || rc=$?
	assert_equal "$rc" 0
}

@test "faults: preload out of fds: a redirected connect() fails with EMFILE on the program's own fd, then works" {
	userver u
	port=$(free_port)	# nobody listens: only the rule reaches the Unix server
	run -0 env SOCKGATE_RULE="connect tcp 127.0.0.1:$port -> unix $T/u.sock" LD_PRELOAD="$LIB" \
		python3 - "$port" <<-'EOF'
	import errno, os, resource, socket, stat, sys
	port = int(sys.argv[1])
	resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
	fill = []
	while True:
	    try:
	        fill.append(os.open("/dev/null", os.O_RDONLY))
	    except OSError as e:
	        assert e.errno == errno.EMFILE
	        break
	os.close(fill.pop())
	s = socket.socket()          # the last free fd
	fd = s.fileno()
	try:
	    s.connect(("127.0.0.1", port))
	    print("connected with no fd to spare")
	except OSError as e:
	    print("connect:", errno.errorcode[e.errno])
	# still the program's own socket, same number, same kind
	assert s.fileno() == fd and stat.S_ISSOCK(os.fstat(fd).st_mode)
	assert s.family == socket.AF_INET and s.getsockname()[0] in ("0.0.0.0", "127.0.0.1")
	for f in fill[:4]:
	    os.close(f)
	s.connect(("127.0.0.1", port))
	s.sendall(b"ping\n")
	print("reply:", s.recv(100).decode().strip())
	print("fd kept:", s.fileno() == fd)
	EOF
	assert_line --index 0 "connect: EMFILE"
	assert_line --partial "reply: "
	assert_line "fd kept: True"
}
