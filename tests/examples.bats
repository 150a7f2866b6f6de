#!/usr/bin/env bats
# The init files under man/examples: the systemd units pass
# `systemd-analyze verify`, and the command line each unit and OpenRC
# script runs -- read from the file itself, with its paths moved under a
# temp dir, its ports made free ones and its user/group made nobody's --
# is started and answers a connection.
# Peers: systemd-analyze, systemd-socket-activate, python3. Runtime: about 5 s.

load helper

EX=$TOP/man/examples
PP=$BUILD/tools/proxy-peer

setup() {
	T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/sg.XXXXXX")
	PIDS=()
	chmod 0755 "$T"	# the openrc server runs as nobody and must reach $T/run
	mkdir -p "$T/run" "$T/etc/inetd"
	chmod 0755 "$T/run"
	printf '#!/bin/sh\necho "hello $PROTO $TCPREMOTEIP"\n' >"$T/etc/inetd/hello"
	chmod 0755 "$T/etc/inetd/hello"
	NOGROUP=$(id -gn nobody)
}

# local_paths LINE: the paths, users and ports of an example moved to the test's own
local_paths() {
	sed -e "s|/usr/local/bin/|$BUILD/|g" -e "s|/etc/sockgate/|$T/etc/|g" \
	    -e "s|/run/sg/|$T/run/|g" -e "s|/run/sockgate/|$T/run/|g" -e "s|%i|hello|g" \
	    -e "s|:sockgate|:$NOGROUP|g" -e "s|-u sockgate|-u nobody|g" <<<"$1"
}

# exec_start UNIT: the unit's ExecStart command, moved
exec_start() {
	local line
	line=$(sed -n 's/^ExecStart=//p' "$EX/$1")
	[ -n "$line" ] || { echo "no ExecStart in $1" >&2; return 1; }
	local_paths "$line"
}

# openrc_command SCRIPT: "$command $command_args" as OpenRC would run it, moved
openrc_command() {
	local out
	out=$(RC_SVCNAME=$2 bash -c '. "$1" && echo "$command $command_args"' sh "$EX/$1")
	local_paths "$out"
}

# an inetd that answers "hello PROTO REMOTEIP" at $T/run/hello.sock
start_inetd_from() {
	spawn "$T/inetd.log" $1
	wait_for_file "$T/run/hello.sock"
	run -0 stat -c '%a %G' "$T/run/hello.sock"
	assert_output "660 $NOGROUP"
}

# pass_one: a TCP connection passed to $T/run/hello.sock; print what the program said
pass_one() {
	python3 -c "
import socket
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); u.connect('$T/run/hello.sock')
socket.send_fds(u, [b'\0'], [a.fileno()]); a.close()
print(c.makefile().read().strip())"
}

# echo_target: a TCP server on 127.0.0.1 answering "got PAYLOAD"; sets EPORT
echo_target() {
	python3 -c "
import socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); d = b''
    while True:
        b = c.recv(4096)
        if not b: break
        d += b
    c.sendall(b'got ' + d); c.close()" >"$T/echo.port" &
	PIDS+=($!)
	wait_for_line "$T/echo.port" '^[0-9]'
	EPORT=$(cat "$T/echo.port")
	echo "connect tcp 127.0.0.1:$EPORT -> pass" >"$T/etc/egress.rules"
}

# through_relay SOCK: a PROXY v2 client for 127.0.0.1:EPORT through the relay at SOCK
through_relay() {
	for i in $(seq 100); do [ -S "$1" ] && break; sleep 0.05; done
	"$PP" send 192.0.2.1:4000 "127.0.0.1:$EPORT" "unix:$1" <<<"payload"
}

@test "examples: the systemd units pass systemd-analyze verify" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze (package systemd)"
	mkdir "$T/units"
	for u in "$EX"/*.service "$EX"/*.socket; do
		local n=${u##*/}
		n=${n/@./@hello.}
		sed "s|/usr/local/bin/|$BUILD/|g" "$u" >"$T/units/$n"
	done
	# a ExecStart= that is not executable or a bad key shows here
	run -0 systemd-analyze verify --man=no "$T"/units/*
	assert_output ""
	# (and the check itself can fail)
	sed 's/^Type=notify/Type=notifyy/' "$T/units/sockgate-relay.service" >"$T/units/bad.service"
	run systemd-analyze verify --man=no "$T/units/bad.service"
	assert_output --partial "Failed to parse service type"
}

@test "examples: sockgate-inetd@.service and sockgate-inetd.openrc run an inetd that answers" {
	start_inetd_from "$(exec_start sockgate-inetd@.service)"
	run -0 pass_one
	assert_output "hello TCP 127.0.0.1"
	kill "${PIDS[0]}"; wait "${PIDS[0]}" || true
	rm -f "$T/run/hello.sock"
	start_inetd_from "$(openrc_command sockgate-inetd.openrc sockgate-inetd.hello)"
	run -0 pass_one
	assert_output "hello TCP 127.0.0.1"
}

@test "examples: sockgate-relay.service with its .socket relays an allowed destination" {
	command -v systemd-socket-activate >/dev/null || skip "no systemd-socket-activate (package systemd)"
	echo_target
	local sock name
	sock=$(local_paths "$(sed -n 's/^ListenStream=//p' "$EX/sockgate-relay.socket")")
	name=$(sed -n 's/^FileDescriptorName=//p' "$EX/sockgate-relay.socket")
	spawn "$T/relay.log" systemd-socket-activate -l "$sock" --fdname="$name" $(exec_start sockgate-relay.service)
	run -0 through_relay "$sock"
	assert_output "got payload"
}

@test "examples: sockgate-relay.openrc relays an allowed destination" {
	echo_target
	spawn "$T/relay.log" $(openrc_command sockgate-relay.openrc sockgate-relay)
	run -0 through_relay "$T/run/egress.sock"
	assert_output "got payload"
	run -0 stat -c '%a' "$T/run/egress.sock"
	assert_output 660
}

@test "examples: sockgate-server.service with its .socket, and sockgate-server.openrc, pass a connection to inetd" {
	command -v systemd-socket-activate >/dev/null || skip "no systemd-socket-activate (package systemd)"
	start_inetd_from "$(exec_start sockgate-inetd@.service)"
	echo "accept tcp * -> unix $T/run/hello.sock name=hello" >"$T/etc/server.rules"
	# each ListenStream port of the .socket, as a free port on 127.0.0.1
	local args=() p ports=()
	for p in $(sed -n 's/^ListenStream=//p' "$EX/sockgate-server.socket"); do
		ports+=("$(free_port)")
		args+=(-l "127.0.0.1:${ports[-1]}")
	done
	[ "${#ports[@]}" -ge 1 ]
	spawn "$T/act.log" systemd-socket-activate "${args[@]}" $(exec_start sockgate-server.service)
	for p in "${ports[@]}"; do
		wait_for_line "$T/act.log" "Listening on 127.0.0.1:$p"
		run -0 nc -N 127.0.0.1 "$p" </dev/null
		assert_output "hello TCP 127.0.0.1"
	done
	# OpenRC: its default options, port 80 made a free one
	local port=$(free_port) cmd
	cmd=$(openrc_command sockgate-server.openrc sockgate-server)
	[[ $cmd == *"-p 80 "* ]]
	spawn "$T/srv.log" ${cmd/-p 80 /-l 127.0.0.1 -p $port }
	wait_for_line "$T/srv.log" "listening on 127.0.0.1:$port"
	run -0 nc -N 127.0.0.1 "$port" </dev/null
	assert_output "hello TCP 127.0.0.1"
	run -0 awk '/^Uid:/ {print $2}' "/proc/${PIDS[-1]}/status"
	assert_output "$(id -u nobody)"
}
