#!/usr/bin/env bats
# sockgate-send-fd: files, pipes and a listening socket passed to programs
# started with --recv; to sockgate-inetd; to stream receivers; errors.
# Peers: python3, curl, nc, sockgate-server -e. Runtime: about 2 s.

load helper

spawn() {
	local out=$1
	shift
	"$@" >"$out" 2>&1 3>&- &
	PIDS+=($!)
}

@test "send-fd: --help, usage errors, an fd that is not open, an absent receiver" {
	run -0 "$SG" send-fd --help
	assert_output --partial "usage: sockgate-send-fd [-v] PATH [FD]"
	run -100 "$SG" send-fd
	assert_output --partial "usage: sockgate-send-fd"
	run -100 "$SG" send-fd --recv "$T/r.sock"
	run -100 "$SG" send-fd --as 3 "$T/r.sock"
	run -1 "$SG" send-fd "$T/r.sock" 9
	assert_output "sockgate-send-fd: fatal: fd 9 is not open"
	run -111 "$SG" send-fd "$T/r.sock"
	assert_output "sockgate-send-fd: fatal: unable to connect to unix:$T/r.sock: No such file or directory"
	run -111 "$SG" send-fd --open "$T/nofile" "$T/r.sock"
	assert_output "sockgate-send-fd: fatal: unable to open $T/nofile: No such file or directory"
}

@test "send-fd --open: a file passed and read by the program --recv runs" {
	printf 'line one\nline two\n' >"$T/data"
	spawn "$T/out" "$SG" send-fd --recv "$T/r.sock" --any-fd -- cat
	wait_for_file "$T/r.sock"
	run -0 "$SG" send-fd -v --open "$T/data" "$T/r.sock"
	assert_output "sockgate-send-fd: info: sent $T/data to unix:$T/r.sock"
	wait "${PIDS[0]}"
	assert_equal "$(cat "$T/out")" "$(printf 'line one\nline two')"
	# --recv removed its socket file once it had the fd
	[ ! -e "$T/r.sock" ]
}

@test "send-fd: stdin (a pipe) by default; --as puts the fd where the program wants it" {
	spawn "$T/out" "$SG" send-fd --recv "$T/r.sock" --as 5 --any-fd -- sh -c 'echo "fd0:$(cat)"; echo "fd5:$(cat <&5)"'
	wait_for_file "$T/r.sock"
	echo "through a pipe" | "$SG" send-fd "$T/r.sock"
	wait "${PIDS[0]}"
	assert_equal "$(cat "$T/out")" "$(printf 'fd0:\nfd5:through a pipe')"
}

@test "send-fd: a listening socket (bound by sockgate-server -e) passed to python, which serves on it" {
	spawn "$T/py.out" "$SG" send-fd --recv "$T/l.sock" -- python3 -c '
import os, socket
s = socket.socket(fileno=0)
print("listening", s.getsockname()[1], os.environ["TCPLOCALIP"], os.environ["TCPLOCALPORT"], flush=True)
for i in range(2):
    c, a = s.accept()
    c.sendall(("served %s:%d\n" % a).encode())
    c.close()'
	wait_for_file "$T/l.sock"
	"$SG" server -v -l 127.0.0.1 -p 0 -e sh -c 'exec "$0" send-fd "$1" "$SOCKGATE_LISTEN_FD"' "$SG" "$T/l.sock" \
		2>"$T/server.log" 3>&-
	PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$T/server.log")
	wait_for_line "$T/py.out" listening
	assert_equal "$(cat "$T/py.out")" "listening $PORT 127.0.0.1 $PORT"
	# the binder is gone (it exited after sending); only python holds the socket
	run ss -Hltnp "sport = :$PORT"
	assert_output --partial python3
	refute_output --partial sockgate
	run -0 nc -N 127.0.0.1 "$PORT" </dev/null
	assert_output --regexp "^served 127\.0\.0\.1:[0-9]+$"
	run -0 python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $PORT)); print(s.getsockname()[1], s.recv(99).decode().strip())"
	read -r cport rest <<<"$output"
	assert_equal "$rest" "served 127.0.0.1:$cport"
}

@test "send-fd: a connected TCP socket passed to sockgate-inetd, whose program sees its addresses" {
	cat >"$T/env" <<-'EOF'
	#!/bin/sh
	echo "$PROTO $TCPLOCALIP:$TCPLOCALPORT $TCPREMOTEIP:$TCPREMOTEPORT"
	EOF
	chmod +x "$T/env"
	spawn "$T/inetd.log" "$SG" inetd "$T/in.sock" "$T/env"
	wait_for_file "$T/in.sock"
	run -0 python3 -c "
import socket, subprocess
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
subprocess.run(['$SG', 'send-fd', '$T/in.sock', str(a.fileno())], pass_fds=[a.fileno()], check=True)
a.close()
print(l.getsockname()[1], c.getsockname()[1], c.makefile().read().strip())"
	read -r lport cport rest <<<"$output"
	assert_equal "$rest" "TCP 127.0.0.1:$lport 127.0.0.1:$cport"
}

@test "send-fd: a stream receiver is connected to when the datagram type is refused" {
	spawn "$T/r.out" python3 -c "
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind('$T/r.sock'); s.listen()
print('up', flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 512, 4)
print('record', len(msg), msg[0], 'fds', len(fds), open(fds[0]).read().strip(), flush=True)"
	wait_for_line "$T/r.out" up
	echo "a file for a stream receiver" >"$T/data"
	run -0 "$SG" send-fd --open "$T/data" "$T/r.sock"
	wait_for_line "$T/r.out" record
	assert_equal "$(tail -1 "$T/r.out")" "record 43 1 fds 1 a file for a stream receiver"
}

@test "send-fd --recv: the program gets SIGPIPE's default action back" {
	spawn "$T/out" "$SG" send-fd --recv "$T/r.sock" --any-fd -- sh -c 'grep SigIgn /proc/self/status'
	wait_for_file "$T/r.sock"
	"$SG" send-fd "$T/r.sock" </dev/null
	wait "${PIDS[0]}"
	# SIGPIPE is signal 13: bit 0x1000 of the ignored mask
	run -0 cat "$T/out"
	assert_output --regexp "^SigIgn:[[:space:]]+[0-9a-f]+$"
	mask=$(awk '{print $2}' "$T/out")
	assert_equal "$(( 0x$mask & 0x1000 ))" 0
}

@test "send-fd --recv: a file and a socket from a uid not allowed are refused and logged; the program gets the next, a socket" {
	chmod 755 "$T"
	cp "$TOP/tests/tools/pass_sock.py" "$T/"
	echo secret >"$T/data"
	spawn "$T/out" "$SG" send-fd --recv "$T/r.sock" -m 0666 -- python3 -c '
import os, stat; print("fd 0 is a socket:", stat.S_ISSOCK(os.fstat(0).st_mode))'
	wait_for_file "$T/r.sock"
	run -0 "$SG" send-fd --open "$T/data" "$T/r.sock"
	wait_for_line "$T/out" "warning: $T/r.sock: refused an fd from pid [0-9]* uid 0 gid 0: not a socket$"
	run -0 setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 "$T/pass_sock.py" "$T/r.sock"
	wait_for_line "$T/out" "refused an fd from pid [0-9]* uid 65534 gid 65534: a sender not allowed"
	python3 "$TOP/tests/tools/pass_sock.py" "$T/r.sock"
	wait "${PIDS[0]}"
	run -0 grep -v warning "$T/out"
	assert_output "fd 0 is a socket: True"

	spawn "$T/out2" "$SG" send-fd --recv "$T/r2.sock" -m 0666 --sender nobody -- python3 -c '
import os, stat; print("fd 0 is a socket:", stat.S_ISSOCK(os.fstat(0).st_mode))'
	wait_for_file "$T/r2.sock"
	run -0 setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 "$T/pass_sock.py" "$T/r2.sock"
	wait "${PIDS[1]}"
	assert_equal "$(cat "$T/out2")" "fd 0 is a socket: True"
	run -100 "$SG" send-fd --any-fd "$T/r2.sock"
}

@test "send-fd --recv -m: the socket file is never looser than MODE: the socket's own mode is set before bind() makes the file" {
	command -v strace >/dev/null || skip "strace not installed"
	(umask 0; exec strace -f -o "$T/trace" -e trace=bind,chmod,fchmod,fchmodat "$SG" send-fd --recv "$T/r.sock" -m 0640 --any-fd -- true) &
	PIDS+=($!)
	wait_for_file "$T/r.sock"
	run -0 stat -c %a "$T/r.sock"
	assert_output 640
	"$SG" send-fd "$T/r.sock" </dev/null
	wait "${PIDS[0]}"
	run -0 grep -E -o '(fchmod|bind|chmod|fchmodat)\([^)]*\)' "$T/trace"
	assert_output --regexp "^fchmod\([0-9]+, 0640\)
bind\([0-9]+, \{sa_family=AF_UNIX, sun_path=\"$T/r.sock\"\}, [0-9]+\)
(chmod\(|fchmodat\(AT_FDCWD, )\"/proc/self/fd/[0-9]+\", 0640\)$"
}
