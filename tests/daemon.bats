#!/usr/bin/env bats
# Daemon plumbing the applets share (applets/daemon.c, core/sockfile.c): the
# privilege drop of relay and server read back from /proc/PID/status, and
# a live socket's path never taken by a second inetd, send-fd --recv or
# relay, while a stale file is still replaced.
# Peers: python3, setpriv. Runtime: about 4 s.

load helper

# The launcher's supplementary groups, which every drop must take away.
LAUNCH_GROUPS=4,27,100

# ids PID: "UID GID GROUPS..." (real ids) from /proc/PID/status
ids() {
	awk '/^Uid:/ {u = $2} /^Gid:/ {g = $2} /^Groups:/ {$1 = ""; gr = $0}
	     END {print u, g gr}' "/proc/$1/status" | sed 's/ *$//'
}

# dropped APPLET ARGS...: start the applet under setpriv with the launcher's
# groups, wait for it to be ready, print its ids; then stop it.
dropped() {
	local applet=$1 pid
	shift
	: >"$T/ready"
	case $applet in
	relay) setpriv --groups=$LAUNCH_GROUPS -- "$SG" relay --ready-fd 3 -l "unix:$T/in.sock" "$@" \
		unix:/nowhere.sock 3>"$T/ready" 2>>"$T/log" & ;;
	server) setpriv --groups=$LAUNCH_GROUPS -- "$SG" server --ready-fd 3 -l 127.0.0.1 -p 0 \
		-S "$T/in.sock" "$@" 3>"$T/ready" 2>>"$T/log" & ;;
	esac
	pid=$!
	PIDS+=($pid)
	wait_for_line "$T/ready" ready || { cat "$T/log" >&2; return 1; }
	ids "$pid"
	kill "$pid"
	wait "$pid" || true
	rm -f "$T/in.sock"
}

@test "privilege drop: the launcher's groups are there to be dropped (the test's own check)" {
	run -0 setpriv --groups=$LAUNCH_GROUPS -- sh -c 'grep "^Groups:" /proc/self/status'
	assert_output --regexp "^Groups:[[:space:]]+4 27 100[[:space:]]*$"
}

@test "privilege drop: -u by name and by number give the same ids, none of the launcher's groups stay" {
	[ "$(id -u nobody)" = 65534 ] || skip "nobody is not 65534 here"
	local g=$(id -g nobody)
	for applet in relay server; do
		run -0 dropped $applet -u nobody
		assert_output "65534 $g $g"
		# a numeric -u (as systemd units write it) is looked up too
		run -0 dropped $applet -u 65534
		assert_output "65534 $g $g"
	done
}

@test "privilege drop: a uid with no passwd entry is its own group; -g and -G choose otherwise" {
	getent passwd 4242 >/dev/null && skip "uid 4242 has a passwd entry here"
	for applet in relay server; do
		run -0 dropped $applet -u 4242
		assert_output "4242 4242 4242"
		run -0 dropped $applet -u 4242 -g 5555
		assert_output "4242 5555 5555"
		run -0 dropped $applet -u 4242 -G 27,5555
		assert_output "4242 4242 27 5555"
		run -0 dropped $applet -u 65534 -g 100 -G 100
		assert_output "65534 100 100"
	done
}

@test "privilege drop: -k keeps the user's own groups from the group file, not the launcher's" {
	local want="65534 $(id -g nobody) $(id -G nobody | tr ' ' '\n' | sort -n | xargs)"
	run -0 dropped relay -u nobody -k
	assert_output "$want"
	run -0 dropped server -u 65534 -k
	assert_output "$want"
}

@test "privilege drop: an unknown user or group name is bad input (exit 1)" {
	run -1 "$SG" relay -l "unix:$T/in.sock" -u no-such-user-here unix:/x.sock
	assert_output "sockgate-relay: fatal: unknown user no-such-user-here"
	run -1 "$SG" server -l 127.0.0.1 -p 0 -S "$T/x.sock" -u nobody -G no-such-group-here
	assert_output "sockgate-server: fatal: unknown group no-such-group-here"
}

@test "privilege drop: --chroot / -x without -u warns that it stays root" {
	mkdir "$T/root"
	: >"$T/ready"
	"$SG" relay --ready-fd 3 -l "unix:$T/in.sock" --chroot "$T/root" unix:/e.sock 3>"$T/ready" 2>"$T/log" &
	PIDS+=($!)
	wait_for_line "$T/ready" ready
	run -0 cat "$T/log"
	assert_output "sockgate-relay: warning: --chroot without -u: still root, with every capability"
	rm -f "$T/in.sock"
	start_server -l 127.0.0.1 -p 0 -S /in.sock -x "$T/root"
	run -0 grep warning "$T/server.log"
	assert_output "sockgate-server: warning: --chroot without -u: still root, with every capability"
}

# passfd SOCK FILE: pass an open FILE to the fd receiver at SOCK
passfd() {
	"$SG" send-fd --open "$2" "$1"
}

@test "socket files: a second inetd on a live receiver's path fails with EADDRINUSE ("Address in use"); the first keeps working" {
	spawn "$T/first.log" "$SG" inetd "$T/r.sock" sh -c 'echo hello >"$0"' "$T/got"
	wait_for_file "$T/r.sock"
	run -111 "$SG" inetd "$T/r.sock" true
	assert_output "sockgate-inetd: fatal: unable to bind unix:$T/r.sock: Address in use"
	run -0 python3 "$TOP/tests/tools/pass_sock.py" "$T/r.sock"
	wait_for_line "$T/got" hello
}

@test "socket files: a second send-fd --recv on a live path fails with EADDRINUSE; the first still receives" {
	spawn "$T/out" "$SG" send-fd --recv "$T/r.sock" --any-fd -- cat
	wait_for_file "$T/r.sock"
	run -111 "$SG" send-fd --recv "$T/r.sock" --any-fd -- cat
	assert_output "sockgate-send-fd: fatal: unable to bind unix:$T/r.sock: Address in use"
	echo first >"$T/data"
	run -0 passfd "$T/r.sock" "$T/data"
	wait "${PIDS[0]}"
	assert_equal "$(cat "$T/out")" first
}

@test "socket files: a stale receiver file (nobody bound) is replaced by inetd and send-fd --recv" {
	python3 -c "import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind('$T/r.sock')"
	[ -S "$T/r.sock" ]
	spawn "$T/out" "$SG" send-fd --recv "$T/r.sock" --any-fd -- cat
	echo again >"$T/data"
	for i in $(seq 100); do passfd "$T/r.sock" "$T/data" 2>/dev/null && break; sleep 0.05; done
	wait "${PIDS[0]}"
	assert_equal "$(cat "$T/out")" again
}

@test "socket files: a relay does not take the path of a stream socket bound but not listening yet" {
	# the probe is a datagram connect: a stream probe is refused by such a socket too
	python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind('$T/l.sock'); print('bound', flush=True)
time.sleep(30)" >"$T/py.out" &
	PIDS+=($!)
	wait_for_line "$T/py.out" bound
	run -111 "$SG" relay -l "unix:$T/l.sock" unix:/nowhere.sock
	assert_output "sockgate-relay: fatal: unable to bind unix:$T/l.sock: Address in use"
	[ -S "$T/l.sock" ]
}

@test "socket files: a second relay on a live relay's path fails; the first keeps answering" {
	python3 -c "
import socket, os
s = socket.socket(socket.AF_UNIX); s.bind('$T/e.sock'); s.listen()
print('ready', flush=True)
while True:
    c, _ = s.accept(); c.sendall(c.recv(99)); c.close()" >"$T/echo.out" &
	PIDS+=($!)
	wait_for_line "$T/echo.out" ready
	: >"$T/ready"
	"$SG" relay --ready-fd 3 -l "unix:$T/in.sock" "unix:$T/e.sock" 3>"$T/ready" 2>"$T/relay.log" &
	PIDS+=($!)
	wait_for_line "$T/ready" ready
	run -111 "$SG" relay -l "unix:$T/in.sock" "unix:$T/e.sock"
	assert_output "sockgate-relay: fatal: unable to bind unix:$T/in.sock: Address in use"
	run -0 python3 -c "
import socket; s = socket.socket(socket.AF_UNIX); s.connect('$T/in.sock'); s.sendall(b'still'); print(s.recv(99).decode())"
	assert_output still
}
