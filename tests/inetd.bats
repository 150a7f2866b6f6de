#!/usr/bin/env bats
# sockgate-inetd: a program per passed socket with the UCSPI environment
# (from the metadata record, or from the socket itself), the -c limit,
# reaping, socket file mode/owner, readiness and SIGTERM.
# Peers: sockgate-server, curl, nc, python3. Runtime: about 4 s.

load helper

PEER="python3 $BATS_TEST_DIRNAME/tools/srv_peer.py"

setup() {
	T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/sg.XXXXXX")
	PIDS=()
	cat >"$T/env" <<-'EOF'
	#!/bin/sh
	echo "PROTO=$PROTO TCPLOCALIP=$TCPLOCALIP TCPLOCALPORT=$TCPLOCALPORT TCPREMOTEIP=$TCPREMOTEIP TCPREMOTEPORT=$TCPREMOTEPORT SOCKGATE_RULE=${SOCKGATE_RULE-unset} args=$*"
	EOF
	chmod +x "$T/env"
}

@test "inetd: --help, usage errors, bad mode" {
	run -0 "$SG" inetd --help
	assert_output --partial "usage: sockgate-inetd [-v] [-c MAXCHILDREN]"
	run -100 "$SG" inetd "$T/x.sock"
	assert_output --partial "usage: sockgate-inetd"
	run -1 "$SG" inetd -m 0999 "$T/x.sock" true
	assert_output "sockgate-inetd: fatal: -m 0999: not an octal mode"
	run -1 "$SG" inetd -c 0 "$T/x.sock" true
	assert_output "sockgate-inetd: fatal: -c 0: too small (allowed: 1 to 1000000)"
	run -111 "$SG" inetd "$T/no/such/dir/x.sock" true
	assert_output "sockgate-inetd: fatal: unable to bind unix:$T/no/such/dir/x.sock: No such file or directory"
}

@test "inetd: nc through sockgate-server sees the UCSPI variables of its own connection" {
	spawn "$T/inetd.log" "$SG" inetd -v "$T/in.sock" "$T/env" a b
	wait_for_file "$T/in.sock"
	echo "accept tcp * -> unix $T/in.sock name=env-rule" >"$T/rules"
	start_server -l 127.0.0.1 -p 0 -f "$T/rules"
	run -0 python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $PORT)); p = s.getsockname()[1]
print(p, s.makefile().read().strip())"
	cport=${output%% *}
	assert_output "$cport PROTO=TCP TCPLOCALIP=127.0.0.1 TCPLOCALPORT=$PORT TCPREMOTEIP=127.0.0.1 TCPREMOTEPORT=$cport SOCKGATE_RULE=env-rule args=a b"
	run -0 nc -N 127.0.0.1 "$PORT" </dev/null
	assert_output --regexp "^PROTO=TCP TCPLOCALIP=127.0.0.1 TCPLOCALPORT=$PORT TCPREMOTEIP=127.0.0.1 TCPREMOTEPORT=[0-9]+ "
	wait_for_line "$T/inetd.log" "info: 127.0.0.1:$cport rule env-rule: pid [0-9]* started (1 running)"
}

@test "inetd: a socket without a metadata record gets its addresses from the socket" {
	spawn "$T/inetd.log" "$SG" inetd "$T/in.sock" "$T/env"
	wait_for_file "$T/in.sock"
	run -0 python3 -c "
import socket
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); u.connect('$T/in.sock')
socket.send_fds(u, [b'\0'], [a.fileno()]); a.close()
print(l.getsockname()[1], c.getsockname()[1], c.makefile().read().strip())"
	read -r lport cport rest <<<"$output"
	assert_equal "$rest" "PROTO=TCP TCPLOCALIP=127.0.0.1 TCPLOCALPORT=$lport TCPREMOTEIP=127.0.0.1 TCPREMOTEPORT=$cport SOCKGATE_RULE=unset args="
}

@test "inetd -c 2: at most 2 programs; the others wait in the queue, then all are served" {
	cat >"$T/slow" <<-EOF
	#!/bin/sh
	read -r request
	while [ ! -e "$T/go" ]; do sleep 0.05; done
	echo "served \$TCPREMOTEPORT"
	EOF
	chmod +x "$T/slow"
	spawn "$T/inetd.log" "$SG" inetd -v -c 2 "$T/in.sock" "$T/slow"
	wait_for_file "$T/in.sock"
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock"
	spawn "$T/burst.out" $PEER burst 5 127.0.0.1 "$PORT" $'GET /\n'
	wait_for_line "$T/inetd.log" "(2 running)"
	wait_for_line "$T/server.log" "passed to" 
	# all five reach the receiver's queue; only two have a program
	for i in $(seq 40); do [ "$(grep -c 'passed to' "$T/server.log")" = 5 ] && break; sleep 0.05; done
	assert_equal "$(grep -c 'passed to' "$T/server.log")" 5
	assert_equal "$(grep -c 'started' "$T/inetd.log")" 2
	touch "$T/go"
	wait_for_line "$T/burst.out" "ok=5"
	assert_equal "$(cat "$T/burst.out")" "ok=5 eof=0 reset=0 error=0"
	wait_for_line "$T/inetd.log" "started (2 running)"
	# grep -c prints 0 and exits 1 when nothing matches
	run -1 grep -c "(3 running)" "$T/inetd.log"
	assert_output 0
}

@test "inetd: children are reaped; a child killed by a signal does not affect the others" {
	cat >"$T/crash" <<-'EOF'
	#!/bin/sh
	if [ "$TCPREMOTEIP" = 127.0.0.9 ]; then kill -SEGV $$; fi
	echo "fine $TCPREMOTEIP"
	EOF
	chmod +x "$T/crash"
	spawn "$T/inetd.log" "$SG" inetd -v "$T/in.sock" "$T/crash"
	IP=$!
	wait_for_file "$T/in.sock"
	start_server -l 0.0.0.0 -p 0 -S "$T/in.sock"
	run -0 python3 -c "
import socket; s=socket.socket(); s.bind(('127.0.0.9',0)); s.connect(('127.0.0.1',$PORT)); print(repr(s.recv(9)))"
	assert_output "b''"
	wait_for_line "$T/inetd.log" "killed by signal 11"
	run -0 nc -N 127.0.0.1 "$PORT" </dev/null
	assert_output "fine 127.0.0.1"
	wait_for_line "$T/inetd.log" "exited 0"
	# both children were reaped: none left, not even a zombie (ps exits 1)
	run -1 ps --ppid "$IP" -o stat=
	assert_output ""
}

@test "inetd -m -o: the socket file's mode and owner; a stale socket file is replaced" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	python3 -c "import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind('$T/in.sock')"
	spawn "$T/inetd.log" "$SG" inetd -m 0660 -o nobody:nogroup --ready-fd 4 "$T/in.sock" "$T/env" 4>"$T/ready"
	wait_for_line "$T/ready" ready
	run -0 stat -c '%a %U %G %F' "$T/in.sock"
	assert_output "660 nobody nogroup socket"
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock" -O nobody:nogroup
	run -0 nc -N 127.0.0.1 "$PORT" </dev/null
	assert_output --partial "PROTO=TCP"
}

@test "inetd: a regular file at PATH is not replaced" {
	echo keep >"$T/in.sock"
	run -111 "$SG" inetd "$T/in.sock" true
	assert_output --regexp "^sockgate-inetd: fatal: unable to bind unix:$T/in.sock: Address (already )?in use$"
	assert_equal "$(cat "$T/in.sock")" keep
}

@test "inetd: SIGTERM stops it with 0 and removes its socket file" {
	"$SG" inetd -v "$T/in.sock" "$T/env" 2>"$T/inetd.log" 3>&- &
	IP=$!
	PIDS+=($IP)
	wait_for_file "$T/in.sock"
	kill -TERM "$IP"
	rc=0; wait "$IP" || rc=$?
	assert_equal "$rc" 0
	[ ! -e "$T/in.sock" ]
	grep -q "info: stopping on signal 15" "$T/inetd.log"
}

@test "inetd: a file, a netlink socket and a socket from a uid not allowed are refused and logged, no program runs; --sender allows that uid" {
	chmod 755 "$T"
	cp "$TOP/tests/tools/pass_sock.py" "$T/"
	spawn "$T/inetd.log" "$SG" inetd -v -m 0666 "$T/in.sock" sh -c 'echo ran >>"$0"' "$T/ran"
	wait_for_file "$T/in.sock"
	echo secret >"$T/data"
	run -0 "$SG" send-fd --open "$T/data" "$T/in.sock"
	wait_for_line "$T/inetd.log" "warning: $T/in.sock: refused an fd from pid [0-9]* uid 0 gid 0: not a socket$"
	run -0 setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 "$T/pass_sock.py" "$T/in.sock"
	wait_for_line "$T/inetd.log" "refused an fd from pid [0-9]* uid 65534 gid 65534: a sender not allowed"
	python3 "$TOP/tests/tools/pass_sock.py" "$T/in.sock"
	wait_for_line "$T/inetd.log" "pid [0-9]* exited 0"
	assert_equal "$(cat "$T/ran")" "ran"
	run -0 grep -c started "$T/inetd.log"
	assert_output 1

	run -0 python3 "$T/pass_sock.py" "$T/in.sock" netlink
	wait_for_line "$T/inetd.log" "warning: $T/in.sock: refused an fd from pid [0-9]* uid 0 gid 0: not a socket of the family expected$"
	run -0 grep -c started "$T/inetd.log"
	assert_output 1

	spawn "$T/inetd2.log" "$SG" inetd -v -m 0666 --sender 65534 "$T/in2.sock" sh -c 'echo ran2 >>"$0"' "$T/ran"
	wait_for_file "$T/in2.sock"
	run -0 setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 "$T/pass_sock.py" "$T/in2.sock"
	wait_for_line "$T/inetd2.log" "pid [0-9]* exited 0"
	assert_equal "$(cat "$T/ran")" "$(printf 'ran\nran2')"
	run -1 "$SG" inetd --sender nosuchuser-x "$T/in3.sock" true
	assert_output --partial "nosuchuser-x"
}
