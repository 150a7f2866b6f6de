#!/usr/bin/env bats
# sockgate-server: sockets passed to sockgate-inetd and to python receivers,
# rules by destination and source, reject/rst, faults (receiver missing, not
# reading, killed, restarted, 1,000-connection burst, out of fds), signals,
# privilege drop and chroot, inherited and systemd listeners.
# Peers: curl, nc, python3 (tests/tools/srv_peer.py), systemd-socket-activate.
# Runtime: about 15 s on 2 cores.

load helper

PEER="python3 $BATS_TEST_DIRNAME/tools/srv_peer.py"

# inetd PATH ARGS...: sockgate-inetd on PATH running the who-script with ARGS.
inetd() {
	local p=$1
	shift
	spawn "$T/inetd-${p##*/}.log" "$SG" inetd -v "$p" "$T/who" "$@"
	wait_for_file "$p"
}

fdcount() { ls "/proc/$1/fd" | wc -l; }

setup() {
	T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/sg.XXXXXX")
	PIDS=()
	# an HTTP/1.0 answer naming the daemon and who connected
	cat >"$T/who" <<-'EOF'
	#!/bin/sh
	# read the request first: closing with unread bytes would reset
	cr=$(printf '\r')
	while IFS= read -r l; do case $l in "$cr"|"") break;; esac; done
	printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s %s %s %s %s %s\n' \
		"${1:-daemon}" "$PROTO" "$TCPREMOTEIP" "$TCPREMOTEPORT" "$TCPLOCALIP" "${SOCKGATE_RULE:--}"
	EOF
	chmod +x "$T/who"
}

@test "server: --help, bad options, missing target" {
	run -0 "$SG" server --help
	assert_output --partial "usage: sockgate-server [-vtFRrk]"
	run -100 "$SG" server -Q
	assert_output --partial "usage: sockgate-server"
	run -100 "$SG" server -p 0
	assert_output --partial "one of -f RULES, -S PATH, -i FD is needed"
	run -1 "$SG" server -p 70000 -S /x
	assert_output "sockgate-server: fatal: -p 70000: too large (allowed: 0 to 65535)"
	run -1 "$SG" server -l 1.2.3 -p 0 -S /x
	assert_output "sockgate-server: fatal: -l 1.2.3: not a numeric IPv4 or IPv6 address"
}

@test "server -S: curl reaches a script run by sockgate-inetd, which sees curl's address and port" {
	inetd "$T/in.sock" web
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock"
	run -0 curl -sS -w ' %{local_ip} %{local_port}' "http://127.0.0.1:$PORT/"
	read -r name proto ip port lip rule cip cport <<<"$(echo $output)"
	assert_equal "$name $proto $ip $lip $rule" "web TCP 127.0.0.1 127.0.0.1 -"
	assert_equal "$port" "$cport"
	run -0 nc -N 127.0.0.1 "$PORT" </dev/null
	assert_output --partial "web TCP 127.0.0.1"
	wait_for_line "$T/server.log" "127.0.0.1:$cport -> 127.0.0.1:$PORT: passed to unix:$T/in.sock"
}

@test "server: dual-stack by default; IPv4 clients are recorded as IPv4, IPv6 ones as IPv6" {
	inetd "$T/in.sock"
	start_server -p 0 -S "$T/in.sock"
	run -0 curl -sS "http://127.0.0.1:$PORT/"
	assert_output --regexp "^daemon TCP 127\.0\.0\.1 [0-9]+ 127\.0\.0\.1 -$"
	run -0 curl -sS -g "http://[::1]:$PORT/"
	assert_output --regexp "^daemon TCP ::1 [0-9]+ ::1 -$"
}

@test "server -f: two daemons chosen by destination address (127.0.0.2, 127.0.0.3), path templates, rule names" {
	inetd "$T/127.0.0.2.sock" two
	inetd "$T/127.0.0.3.sock" three
	cat >"$T/rules" <<-EOF
	accept tcp 127.0.0.2 -> unix $T/%a.sock name=by-dst-2
	accept tcp 127.0.0.3 from 127.0.0.0/8 -> fdpass $T/%a.sock name=by-dst-3
	EOF
	start_server -l 0.0.0.0 -p 0 -f "$T/rules"
	run -0 curl -sS "http://127.0.0.2:$PORT/"
	assert_output --regexp "^two TCP 127\.0\.0\.1 [0-9]+ 127\.0\.0\.2 by-dst-2$"
	run -0 curl -sS "http://127.0.0.3:$PORT/"
	assert_output --regexp "^three TCP 127\.0\.0\.1 [0-9]+ 127\.0\.0\.3 by-dst-3$"
	run -0 $PEER probe 127.0.0.4 "$PORT"
	assert_output --regexp "^eof [0-9]+$"
	wait_for_line "$T/server.log" "-> 127.0.0.4:$PORT: refused: no rule matches"
	grep -q "(rule by-dst-3, line 2): passed to unix:$T/127.0.0.3.sock" "$T/server.log"
}

@test "server -f: reject closes, reject rst resets, chosen by source address and port" {
	inetd "$T/in.sock"
	cat >"$T/rules" <<-EOF
	accept tcp * from 127.0.0.9 -> reject rst
	accept tcp * from 127.0.0.8 -> reject
	accept tcp * -> unix $T/in.sock
	EOF
	start_server -l 127.0.0.1 -p 0 -f "$T/rules"
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^data:HTTP/1.0 200 OK"
	run -0 python3 -c "
import socket; s=socket.socket(); s.bind(('127.0.0.9',0)); s.connect(('127.0.0.1',$PORT))
try: print('data' if s.recv(9) else 'eof')
except ConnectionResetError: print('reset')"
	assert_output reset
	run -0 python3 -c "
import socket; s=socket.socket(); s.bind(('127.0.0.8',0)); s.connect(('127.0.0.1',$PORT))
try: print('data' if s.recv(9) else 'eof')
except ConnectionResetError: print('reset')"
	assert_output eof
	wait_for_line "$T/server.log" "(rule at line 1): rejected (rst)"
	grep -q "(rule at line 2): rejected$" "$T/server.log"
}

@test "server -f: an action the server cannot take is a line-numbered error" {
	printf 'accept tcp * -> unix /x\naccept tcp *:80 -> tcp 127.0.0.1:80\n' >"$T/rules"
	run -1 "$SG" server -p 0 -f "$T/rules"
	assert_output "sockgate-server: fatal: $T/rules:2:20: action tcp is not one sockgate-server can take (unix, abstract, fdpass, reject, blackhole)"
	# a compiled file keeps lines but no columns
	"$SG" asmgen "$T/rules" -o "$T/rules.bin"
	run -1 "$SG" server -p 0 -f "$T/rules.bin"
	assert_output "sockgate-server: fatal: $T/rules.bin:2: action tcp is not one sockgate-server can take (unix, abstract, fdpass, reject, blackhole)"
	printf 'accept tcp 1.2.3.4/40 -> unix /x\n' >"$T/rules"
	run -1 "$SG" server -p 0 -f "$T/rules"
	assert_output --regexp "^sockgate-server: fatal: $T/rules:1:[0-9]+: "
}

@test "server: the metadata record as a python receiver reads it (-i FD over a socket pair)" {
	spawn "$T/pair.out" $PEER pair -- "$SG" server -v -l 127.0.0.1 -p 0 -i "{fd}"
	wait_for_line "$T/pair.out" "listening on"
	PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$T/pair.out")
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^data:from-python [0-9]+$"
	cport=${output##* }
	wait_for_line "$T/pair.out" "^peer"
	run grep -E '^(record|peer)' "$T/pair.out"
	assert_output "record len=43 local=127.0.0.1:$PORT remote=127.0.0.1:$cport rule=- fds 1
peer 127.0.0.1:$cport"
}

@test "server faults: receiver missing is logged and refused (rst as the rule says); others go on" {
	inetd "$T/ok.sock"
	cat >"$T/rules" <<-EOF
	accept tcp 127.0.0.2 -> unix $T/missing.sock rst
	accept tcp 127.0.0.3 -> unix $T/ok.sock
	EOF
	start_server -l 0.0.0.0 -p 0 -f "$T/rules"
	before=$(fdcount "$SP")
	run -0 $PEER probe 127.0.0.2 "$PORT"
	assert_output --regexp "^reset "
	wait_for_line "$T/server.log" "127.0.0.2:$PORT (rule at line 1): refused: receiver unix:$T/missing.sock: No such file or directory"
	# a socket file nobody is bound to
	python3 -c "import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind('$T/missing.sock')"
	run -0 $PEER probe 127.0.0.2 "$PORT"
	assert_output --regexp "^reset "
	wait_for_line "$T/server.log" "refused: receiver unix:$T/missing.sock: Connection refused"
	run -0 curl -sS "http://127.0.0.3:$PORT/"
	assert_output --partial "daemon TCP 127.0.0.1"
	assert_equal "$(fdcount "$SP")" "$before"	# (an inetd gets a connection of its own per socket, closed after)
	# -S: a close by default, a reset with --rst
	start_server -l 127.0.0.1 -p 0 -S "$T/gone.sock"
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^eof "
	start_server -l 127.0.0.1 -p 0 -S "$T/gone.sock" --rst
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^reset "
}

@test "server faults: a receiver that does not read: its queue fills, connections wait, then are refused; others go on" {
	spawn "$T/stuck.out" $PEER stuck "$T/stuck.sock"
	wait_for_line "$T/stuck.out" stuck
	inetd "$T/ok.sock"
	cat >"$T/rules" <<-EOF
	accept tcp 127.0.0.2 -> unix $T/stuck.sock
	accept tcp 127.0.0.3 -> unix $T/ok.sock
	EOF
	start_server -l 0.0.0.0 -p 0 -f "$T/rules" -q 5 -T 400
	before=$(fdcount "$SP")
	spawn "$T/hold.out" $PEER hold 30 127.0.0.2 "$PORT" "$T/go"
	wait_for_line "$T/hold.out" "held 30"
	# the kernel queue holds max_dgram_qlen sockets; 5 more wait in the server
	wait_for_line "$T/server.log" "queue full and 5 connections already waiting"
	# the warning names the rule that chose the receiver
	wait_for_line "$T/server.log" "127.0.0.2:$PORT (rule at line 1): refused: receiver unix:$T/stuck.sock not reading (waited 400 ms)"
	run -0 curl -sS "http://127.0.0.3:$PORT/"
	assert_output --partial "daemon TCP"
	# every connection accounted for: in the kernel queue, timed out, or refused
	passed=$(grep -c "127.0.0.2:$PORT (rule at line 1): passed to" "$T/server.log")
	waited=$(grep -c "not reading (waited 400 ms)" "$T/server.log")
	full=$(grep -c "queue full and 5 connections already waiting" "$T/server.log")
	assert_equal "$waited" 5
	assert_equal "$((passed + waited + full))" 30
	assert_equal "$(fdcount "$SP")" "$((before + 1))"	# + the socket connected to the datagram receiver; none kept for an inetd
	# the receiver dies: the sockets in its queue are closed by the kernel
	kill "${PIDS[0]}"
	touch "$T/go"
	wait_for_line "$T/hold.out" "data=0"
	assert_equal "$(tail -1 "$T/hold.out")" "data=0 eof=30 reset=0"
}

@test "server faults: receiver killed mid-stream, then restarted at the same path" {
	cat >"$T/echo" <<-'EOF'
	#!/bin/sh
	echo "hello $TCPREMOTEIP"
	exec cat
	EOF
	chmod +x "$T/echo"
	spawn "$T/inetd.log" "$SG" inetd -v "$T/in.sock" "$T/echo"
	IP=$!
	wait_for_file "$T/in.sock"
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock"
	before=$(fdcount "$SP")
	coproc NC { exec nc 127.0.0.1 "$PORT" 3>&-; }
	read -r -t 5 line <&"${NC[0]}"
	assert_equal "$line" "hello 127.0.0.1"
	kill -9 "$IP"
	# the connection lives on in its program: the bytes go straight to it
	echo "still here" >&"${NC[1]}"
	read -r -t 5 line <&"${NC[0]}"
	assert_equal "$line" "still here"
	kill "$NC_PID"
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^eof "
	wait_for_line "$T/server.log" "refused: receiver unix:$T/in.sock: Connection refused"
	# a new receiver at the same path is found again
	rm -f "$T/in.sock"
	spawn "$T/inetd2.log" "$SG" inetd -v "$T/in.sock" "$T/who"
	wait_for_file "$T/in.sock"
	run -0 curl -sS "http://127.0.0.1:$PORT/"
	assert_output --partial "daemon TCP 127.0.0.1"
	assert_equal "$(fdcount "$SP")" "$before"	# (an inetd gets a connection of its own per socket, closed after)
}

@test "server faults: 1,000 connections in a burst all served by sockgate-inetd -c 50; no fd lost" {
	spawn "$T/inetd.log" "$SG" inetd -c 50 "$T/in.sock" "$T/who"
	wait_for_file "$T/in.sock"
	# -T 120000: 1,000 children of a shell script, 50 at a time, take 10 s on a
	# quiet machine and several times that under the load of a CI neighbour;
	# what is tested is that none is lost, not how fast they go
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock" -T 120000
	before=$(fdcount "$SP")
	run -0 $PEER burst 1000 127.0.0.1 "$PORT"
	assert_output "ok=1000 eof=0 reset=0 error=0"
	assert_equal "$(grep -c ': passed to ' "$T/server.log")" 1000
	assert_equal "$(fdcount "$SP")" "$before"	# (an inetd gets a connection of its own per socket, closed after)
}

@test "server faults: out of fds (EMFILE) it backs off, then serves again" {
	spawn "$T/stuck.out" $PEER stuck "$T/stuck.sock"
	wait_for_line "$T/stuck.out" stuck
	inetd "$T/ok.sock"
	cat >"$T/rules" <<-EOF
	accept tcp 127.0.0.2 -> unix $T/stuck.sock
	accept tcp 127.0.0.3 -> unix $T/ok.sock
	EOF
	# room for a few waiting connections only
	(ulimit -n 24; exec "$SG" server -v --ready-fd 4 -l 0.0.0.0 -p 0 -f "$T/rules" -T 600 \
		4>"$T/ready" 2>>"$T/server.log" 3>&-) &
	SP=$!
	PIDS+=($SP)
	wait_for_line "$T/ready" ready
	PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$T/server.log")
	before=$(fdcount "$SP")
	spawn "$T/hold.out" $PEER hold 40 127.0.0.2 "$PORT" "$T/go"
	wait_for_line "$T/hold.out" "held 40"
	wait_for_line "$T/server.log" "warning: accept paused for 10 ms (and again while it lasts): "
	wait_for_line "$T/server.log" "not reading (waited 600 ms)"
	run -0 curl -sS --max-time 10 "http://127.0.0.3:$PORT/"
	assert_output --partial "daemon TCP"
	wait_for_line "$T/server.log" "warning: accepting again after [0-9]* back-offs in [0-9]* ms"
	# one line when an episode of back-offs begins, one when it ends: not one per back-off
	[ "$(grep -c "accept paused" "$T/server.log")" -eq "$(grep -c "accepting again after" "$T/server.log")" ]
	# the receiver goes; the sockets in its queue close; the rest time out
	kill "${PIDS[0]}"
	touch "$T/go"
	wait_for_line "$T/hold.out" "data=0 eof=40 reset=0" 20
	assert_equal "$(grep -c "accept paused" "$T/server.log")" "$(grep -c "accepting again" "$T/server.log")"
	run -0 $PEER probe 127.0.0.2 "$PORT"
	assert_output --regexp "^eof "
	wait_for_line "$T/server.log" "refused: receiver unix:$T/stuck.sock: Connection refused"
	kill -0 "$SP"
	assert_equal "$(fdcount "$SP")" "$before"	# (ok.sock, an inetd, got a connection per socket)
}

@test "server: SIGHUP reloads the rules; a bad file keeps the old ones; SIGTERM stops with 0" {
	inetd "$T/a.sock" A
	inetd "$T/b.sock" B
	echo "accept tcp * -> unix $T/a.sock" >"$T/rules"
	start_server -l 127.0.0.1 -p 0 -f "$T/rules"
	run -0 curl -sS "http://127.0.0.1:$PORT/"
	assert_output --partial "A TCP"
	echo "accept tcp * -> unix $T/b.sock name=new" >"$T/rules"
	kill -HUP "$SP"
	wait_for_line "$T/server.log" "rules reloaded from $T/rules (1 rules)"
	run -0 curl -sS "http://127.0.0.1:$PORT/"
	assert_output --partial "B TCP 127.0.0.1"
	assert_output --partial " new"
	echo "accept tcp * -> frobnicate" >"$T/rules"
	kill -HUP "$SP"
	wait_for_line "$T/server.log" "(keeping the old rules)"
	run -0 curl -sS "http://127.0.0.1:$PORT/"
	assert_output --partial "B TCP"
	kill -TERM "$SP"
	rc=0; wait "$SP" || rc=$?
	assert_equal "$rc" 0
	grep -q "info: stopping on signal 15" "$T/server.log"
}

@test "server: binds a port below 1024, then runs as nobody in a chroot (-u, -x)" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	low=$(python3 -c '
import socket
for p in range(600, 1000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass')
	mkdir -p "$T/root"
	chmod 755 "$T" "$T/root"
	# nobody must be able to write to the receiver's socket
	spawn "$T/inetd.log" "$SG" inetd -m 0666 --sender nobody "$T/root/in.sock" "$T/who"
	wait_for_file "$T/root/in.sock"
	start_server -l 127.0.0.1 -p "$low" -u nobody -x "$T/root" -S /in.sock
	assert_equal "$PORT" "$low"
	run grep -E '^(Uid|Gid|Groups):' "/proc/$SP/status"
	assert_line --regexp "^Uid:[[:space:]]+65534[[:space:]]+65534[[:space:]]+65534[[:space:]]+65534$"
	assert_line --regexp "^Groups:[[:space:]]+65534[[:space:]]*$"
	assert_equal "$(readlink "/proc/$SP/root")" "$T/root"
	run -0 curl -sS "http://127.0.0.1:$low/"
	assert_output --partial "daemon TCP 127.0.0.1"
}

@test "server -O: only receivers whose socket is owned by the given user get sockets" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	inetd "$T/in.sock"
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock" -O nobody
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^eof "
	wait_for_line "$T/server.log" "refused: receiver unix:$T/in.sock: Operation not permitted"
	chown nobody "$T/in.sock"
	run -0 curl -sS "http://127.0.0.1:$PORT/"
	assert_output --partial "daemon TCP"
	kill "$SP"
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock" -O :root
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^data:HTTP"
}

@test "server: listening sockets from systemd (LISTEN_FDS) and -s FD" {
	port=$(free_port)
	inetd "$T/in.sock"
	spawn "$T/act.log" systemd-socket-activate -l "127.0.0.1:$port" "$SG" server -v -S "$T/in.sock"
	wait_for_line "$T/act.log" "Listening on 127.0.0.1:$port"
	run -0 curl -sS "http://127.0.0.1:$port/"
	assert_output --partial "daemon TCP 127.0.0.1"
	wait_for_line "$T/act.log" "listening on 127.0.0.1:$port"
	# -s: a listening socket made by python, inherited as fd 5
	port2=$(free_port)
	spawn "$T/s.log" python3 -c "
import os, socket, sys
s = socket.socket(); s.bind(('127.0.0.1', $port2)); s.listen(8)
os.dup2(s.fileno(), 5)
os.execv('$SG', ['sockgate-server', '-v', '-s', '5', '-S', '$T/in.sock'])"
	wait_for_line "$T/s.log" "listening on 127.0.0.1:$port2"
	run -0 curl -sS "http://127.0.0.1:$port2/"
	assert_output --partial "daemon TCP 127.0.0.1"
}

@test "server: the receiver runs in a network namespace with no network (unshare -n) and serves the host's client" {
	need_netns
	spawn "$T/inetd.log" unshare -n "$SG" inetd -v "$T/in.sock" "$T/who" netns
	wait_for_file "$T/in.sock"
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock"
	run -0 curl -sS -w ' %{local_port}' "http://127.0.0.1:$PORT/"
	read -r name proto ip port lip rule cport <<<"$(echo $output)"
	assert_equal "$name $proto $ip $lip $port" "netns TCP 127.0.0.1 127.0.0.1 $cport"
	# the receiver is in another network namespace, which has only a down lo
	ipid=$(pgrep -f "inetd -v $T/in.sock")
	[ "$(readlink "/proc/$ipid/ns/net")" != "$(readlink /proc/self/ns/net)" ]
	run -0 nsenter -t "$ipid" -n ip -o link
	assert_output --regexp "^1: lo: <LOOPBACK> "
	assert_equal "${#lines[@]}" 1
}

@test "server: -g and -G set the groups; -k keeps the user's groups; NOTIFY_SOCKET gets READY=1" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	chmod 755 "$T"
	spawn "$T/notify.out" python3 -c "
import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind('$T/notify.sock')
import os; os.chmod('$T/notify.sock', 0o666)  # as systemd's is: the server is nobody by then
print('up', flush=True); print(s.recv(100).decode(), flush=True)"
	wait_for_line "$T/notify.out" up
	NOTIFY_SOCKET=$T/notify.sock start_server -l 127.0.0.1 -p 0 -S "$T/in.sock" -u nobody -g daemon -G daemon,sys
	wait_for_line "$T/notify.out" "READY=1"
	run grep -E '^(Uid|Gid|Groups):' "/proc/$SP/status"
	assert_line --regexp "^Gid:[[:space:]]+1[[:space:]]+1[[:space:]]+1[[:space:]]+1$"
	assert_line --regexp "^Groups:[[:space:]]+1 3[[:space:]]*$"
	kill "$SP"
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock" -u nobody -k
	run grep -E '^(Gid|Groups):' "/proc/$SP/status"
	assert_line --regexp "^Groups:[[:space:]]+$(id -G nobody | tr ' ' '\n' | sort -n | xargs)[[:space:]]*$"
	assert_line --regexp "^Gid:[[:space:]]+65534[[:space:]]"
}

@test "server: AnyIP in a test namespace: the destination address picks the daemon; -F binds an address not configured" {
	need_netns
	inetd "$T/a.sock" A
	inetd "$T/b.sock" B
	cat >"$T/rules" <<-EOF
	accept tcp 198.18.0.1 -> unix $T/a.sock
	accept tcp 198.18.0.0/24 -> unix $T/b.sock
	EOF
	: >"$T/ready"
	unshare -n sh -c 'ip link set lo up && ip route add local 198.18.0.0/24 dev lo && exec "$@"' sh \
		"$SG" server -v -t --ready-fd 4 -l 0.0.0.0 -p 8080 -f "$T/rules" 4>"$T/ready" 2>>"$T/server.log" 3>&- &
	SP=$!
	PIDS+=($SP)
	wait_for_line "$T/ready" ready
	run -0 nsenter -t "$SP" -n curl -sS "http://198.18.0.1:8080/"
	assert_output --regexp "^A TCP 198\.18\.0\.1 [0-9]+ 198\.18\.0\.1 -$"
	run -0 nsenter -t "$SP" -n curl -sS "http://198.18.0.77:8080/"
	assert_output --regexp "^B TCP 198\.18\.0\.77 [0-9]+ 198\.18\.0\.77 -$"
	# an address no interface has: only with -F
	run -111 nsenter -t "$SP" -n "$SG" server -l 192.0.2.1 -p 8081 -S "$T/a.sock"
	assert_output --regexp "^sockgate-server: fatal: unable to bind 192\.0\.2\.1:8081: (Address not available|Cannot assign requested address)$"
	nsenter -t "$SP" -n "$SG" server -F -l 192.0.2.1 -p 8081 -S "$T/a.sock" --ready-fd 4 4>"$T/ready2" 3>&- &
	PIDS+=($!)
	wait_for_line "$T/ready2" ready
}

@test "server: a SOCK_SEQPACKET receiver gets one connection; -O checks its SO_PEERCRED" {
	[ "$(id -u)" = 0 ] || skip "needs root"
	[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3 for user nobody"
	spawn "$T/seq.out" $PEER seqrecv "$T/seq.sock" 2
	wait_for_line "$T/seq.out" listening
	start_server -l 127.0.0.1 -p 0 -S "$T/seq.sock" -O root:root
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^data:from-seqpacket len=43 local=127\.0\.0\.1:$PORT remote=127\.0\.0\.1:[0-9]+ rule=- [0-9]+$"
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^data:from-seqpacket "
	# the receiver took its two and left: the next one is refused and logged
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^eof "
	wait_for_line "$T/server.log" "refused: receiver unix:$T/seq.sock: Connection refused"
	# a listener running as another user fails SO_PEERCRED
	kill "$SP"
	mkdir "$T/n"
	chown nobody "$T/n"
	chmod 755 "$T"
	spawn "$T/seq2.out" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		/usr/bin/python3 "$BATS_TEST_DIRNAME/tools/srv_peer.py" seqrecv "$T/n/seq.sock" 1
	wait_for_line "$T/seq2.out" listening
	chown root:root "$T/n/seq.sock"	# the file's owner would pass; the process does not
	start_server -l 127.0.0.1 -p 0 -S "$T/n/seq.sock" -O root:root
	run -0 $PEER probe 127.0.0.1 "$PORT"
	assert_output --regexp "^eof "
	wait_for_line "$T/server.log" "refused: receiver unix:$T/n/seq.sock: Operation not permitted"
}

@test "server -r: two servers share a port with SO_REUSEPORT; without it the second fails" {
	inetd "$T/in.sock"
	start_server -r -l 127.0.0.1 -p 0 -S "$T/in.sock"
	first=$SP
	run -111 "$SG" server -l 127.0.0.1 -p "$PORT" -S "$T/in.sock"
	assert_output --regexp "^sockgate-server: fatal: unable to bind 127\.0\.0\.1:$PORT: Address (already )?in use$"
	start_server -r -l 127.0.0.1 -p "$PORT" -S "$T/in.sock"
	[ "$SP" != "$first" ]
	kill -0 "$first"
	run -0 curl -sS "http://127.0.0.1:$PORT/"
	assert_output --partial "daemon TCP 127.0.0.1"
}

# a preloaded receiver in a network namespace of its own: accepts N connections on its
# "127.0.0.1:8096" (fdpass RSOCK by rule), in KIDS processes forked after listen()
# (0: itself), each line "PID HOST:PORT" of a client it saw; "listening" when it listens
listener_taker() {
	local rsock=$1 n=$2 kids=$3 out=$4
	bg env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 127.0.0.1:8096 -> fdpass $rsock" unshare -n python3 -c '
import os, select, socket, sys
out = open(sys.argv[1], "a", buffering=1)
n, kids = int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(); s.bind(("127.0.0.1", 8096)); s.listen(); s.setblocking(False)
parent = os.getpid()
def serve():
    ep = select.epoll(); ep.register(s.fileno(), select.EPOLLIN)
    while True:
        ep.poll(0.2)
        if os.getppid() != parent and os.getpid() != parent:
            os._exit(0)	# a child whose parent was stopped
        try:
            c, a = s.accept()
        except BlockingIOError:
            continue
        out.write("%d %s:%d\n" % (os.getpid(), a[0], a[1]))
        c.sendall(b"ok\n"); c.close()
        if not kids:
            global n
            n -= 1
            if not n:
                return
if not kids:
    out.write("listening\n"); serve(); sys.exit(0)
for _ in range(kids):
    if os.fork() == 0:
        serve()
out.write("listening\n")
os.wait()' "$out" "$n" "$kids"
	wait_for_line "$out" listening
}

# clients N PORT: N connections, one after the other; prints each one's local port
clients() {
	python3 -c '
import socket, sys
for _ in range(int(sys.argv[1])):
    c = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
    assert c.recv(10) == b"ok\n"
    print(c.getsockname()[1])' "$@"
}

@test "server -L: the listening socket goes to a preloaded receiver in a network namespace, which accepts itself with the clients' real addresses; one that starts again gets it again" {
	unshare -n true 2>/dev/null || skip "unshare -n not permitted here"
	start_server -l 127.0.0.1 -p 0 -S "$T/r.sock" -L
	listener_taker "$T/r.sock" 3 0 "$T/rx.log"
	run -0 clients 3 "$PORT"
	want=$(for p in $output; do echo "127.0.0.1:$p"; done)
	wait "${PIDS[1]}"
	run -0 sh -c "grep -v listening '$T/rx.log' | cut -d' ' -f2"
	assert_output "$want"
	wait_for_line "$T/server.log" "info: passed the listening socket 127.0.0.1:$PORT to unix:$T/r.sock$"
	run grep -c "passed to" "$T/server.log"
	assert_output 0	# no connection went through the server
	run grep -c warning "$T/server.log"
	assert_output 0	# a hand-over racing the receiver's take-over is waited out quietly
	# the receiver has gone: a new one gets the listener again
	: >"$T/rx.log"
	listener_taker "$T/r.sock" 2 0 "$T/rx.log"
	run -0 clients 2 "$PORT"
	wait "${PIDS[2]}"
	[ "$(grep -c "info: passed the listening socket" "$T/server.log")" -ge 2 ]
	run -100 "$SG" server -L -l 127.0.0.1 -p 0 -f /dev/null
	assert_output --partial "-L passes the listening socket to the receiver at -S PATH"
}

@test "server -L: every process of a receiver that forks after listen() takes the listening socket over; connections wait in the backlog while none has it" {
	unshare -n true 2>/dev/null || skip "unshare -n not permitted here"
	start_server -l 127.0.0.1 -p 0 -S "$T/r.sock" -L
	# a client before any receiver: it waits in the listen backlog and is served later
	clients 1 "$PORT" >"$T/early" &
	PIDS+=($!)
	listener_taker "$T/r.sock" 0 2 "$T/rx.log"
	wait "${PIDS[1]}"	# the early client
	run -0 clients 20 "$PORT"
	want=$(for p in $(cat "$T/early") $output; do echo "127.0.0.1:$p"; done | sort)
	wait_for_line "$T/rx.log" ":${output##*$'\n'}$"
	run -0 sh -c "grep -v listening '$T/rx.log' | cut -d' ' -f2 | sort"
	assert_equal "$output" "$want"
	# served by the two children, never by the parent, which still holds the Unix socket
	run -0 sh -c "grep -v listening '$T/rx.log' | cut -d' ' -f1 | sort -u | wc -l"
	[ "$output" -ge 1 ] && [ "$output" -le 2 ]
	[ "$(grep -c "info: passed the listening socket" "$T/server.log")" -ge 2 ]
	[ -S "$T/r.sock" ]
}
