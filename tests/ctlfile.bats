#!/usr/bin/env bats
# libsockgate.so follows control files (sockgate-mkctl(8)): where a rule's
# Unix path (or unsock's UNSOCK_DIR/PORT.sock) is a control file, connect()
# goes to its target and bind() listens on it. A small Firecracker-style
# multiplexer (tests/tools/fc_mux.py) stands in for a VM's vsock socket.
# VSOCK is only ever bound or connected to CID 1 and "any" here, never to
# the hypervisor's CIDs 0 and 2.

load helper

export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

SRV=$TOP/tests/tools/pre_userver.py
MUX=$TOP/tests/tools/fc_mux.py

# mux MODE [ARGS]: the multiplexer at $T/fc.sock, log $T/fc.log
mux() {
	local mode=$1
	shift
	bg python3 "$MUX" "$T/fc.sock" --mode "$mode" --log "$T/fc.log" --ready "$T/fc.ready" "$@"
	wait_for_file "$T/fc.ready"
}

# fc_rule PORT: a control file for guest port PORT, and a rule to it
fc_rule() {
	sockgate-mkctl --firecracker "$T/fc.sock:$1" "$T/guest.sock"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/guest.sock"
}

@test "a Unix target: curl and python reach the socket the control file names; so does UNSOCK_DIR/PORT.sock" {
	userver web
	sockgate-mkctl --unix "$T/web.sock" "$T/ctl.sock"
	SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/ctl.sock" run -0 pre curl -sS --max-time 5 http://10.1.2.3/via-ctl
	assert_output "hello from unix"
	run -0 cat "$T/web.log"
	assert_line "http GET /via-ctl HTTP/1.1"
	mkdir "$T/un"
	sockgate-mkctl --unix "$T/web.sock" "$T/un/8000.sock"
	UNSOCK_DIR=$T/un run -0 pre python3 -c '
import socket
s = socket.create_connection(("127.175.0.0", 8000), timeout=5)
s.sendall(b"GET /unsock HTTP/1.0\r\n\r\n")
print(s.recv(1000).split(b"\r\n")[0].decode(), s.getpeername())'
	assert_output "HTTP/1.1 200 OK ('127.175.0.0', 8000)"
}

@test "Firecracker: curl, python (blocking and asyncio) and nc through the multiplexer, byte-exact; getpeername is what was asked" {
	mux ok
	fc_rule 52
	run -0 pre curl -sS --max-time 5 http://10.1.2.3/
	assert_output "guest port 52"
	head -c 200000 /dev/urandom > "$T/blob"
	run -0 pre python3 -c '
import asyncio, hashlib, socket, sys
data = open(sys.argv[1], "rb").read()
s = socket.create_connection(("10.1.2.3", 80), timeout=5)
print("peer", s.getpeername(), s.family.name)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(65536)
    if not b: break
    got += b
print("blocking", got == data, len(got))
async def main():
    r, w = await asyncio.open_connection("10.1.2.3", 80)
    w.write(data[:5000])
    await w.drain()
    back = await r.readexactly(5000)
    print("asyncio", back == data[:5000], w.get_extra_info("peername"))
    w.close()
asyncio.run(main())' "$T/blob"
	assert_line "peer ('10.1.2.3', 80) AF_INET"
	assert_line "blocking True 200000"
	assert_line "asyncio True ('10.1.2.3', 80)"
	run -0 bash -c "printf 'line one\nline two\n' | LD_PRELOAD=$LIB timeout 5 nc -N 10.1.2.3 80"
	assert_output $'line one\nline two'
	# one CONNECT line per connection, for the port of the control file
	run -0 sort -u "$T/fc.log"
	assert_output "CONNECT 52"
	[ "$(wc -l < "$T/fc.log")" = 4 ]
}

# connect_errno MODE: what a blocking and a non-blocking python client see
connect_errors() {
	pre python3 -c '
import errno, select, socket, time
try:
    socket.create_connection(("10.1.2.3", 80), timeout=5)
    print("blocking connected")
except OSError as e:
    print("blocking", errno.errorcode[e.errno])
s = socket.socket()
s.setblocking(False)
t = time.monotonic()
r = s.connect_ex(("10.1.2.3", 80))
print("nonblocking", errno.errorcode.get(r, r), "fast" if time.monotonic() - t < 0.5 else "slow")
select.select([], [s], [], 5)
print("so_error", errno.errorcode.get(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0))'
}

@test "Firecracker: a refusal, garbage or a close from the multiplexer is ECONNREFUSED, blocking or not" {
	local mode
	for mode in refuse garbage close; do
		mux "$mode"
		fc_rule 99
		run -0 connect_errors
		assert_line "blocking ECONNREFUSED"
		assert_line "nonblocking EINPROGRESS fast"
		assert_line "so_error ECONNREFUSED"
		kill "${PIDS[-1]}"
		wait "${PIDS[-1]}" 2>/dev/null || true
		rm -f "$T/fc.sock" "$T/fc.ready" "$T/guest.sock"
	done
}

@test "Firecracker: a non-blocking connect never waits for the multiplexer's answer" {
	mux ok --delay 1500
	fc_rule 7
	run -0 pre python3 -c '
import errno, select, socket, time
s = socket.socket()
s.setblocking(False)
t = time.monotonic()
r = s.connect_ex(("10.1.2.3", 80))
took = time.monotonic() - t
print("connect", errno.errorcode.get(r, r), "%.3f" % took, "under 0.2s" if took < 0.2 else "TOO SLOW")
_, w, _ = select.select([], [s], [], 0.5)
print("writable early", bool(w))
_, w, _ = select.select([], [s], [], 10)
print("writable later", bool(w), "after", "%.1f" % (time.monotonic() - t) if w else "-")
print("so_error", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
s.setblocking(True)
s.sendall(b"late but whole\n")
print(s.recv(100))'
	assert_line --regexp "^connect EINPROGRESS 0\.[0-9]+ under 0\.2s$"
	assert_line "writable early False"
	assert_line --regexp "^writable later True after (1\.[4-9]|[2-9]\.[0-9])$"
	assert_line "so_error 0"
	assert_line "b'late but whole\\n'"
}

@test "VSOCK: a preloaded server's bind() to a VSOCK control file listens on AF_VSOCK; getsockname says what it bound" {
	# /proc/net/vsock and ss --vsock need vsock_diag, which this kernel lacks; the
	# port being taken on AF_VSOCK (EADDRINUSE for anyone else) shows the same
	local port=$((40000 + RANDOM % 20000))
	python3 -c 'import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)' 2>/dev/null ||
		skip "no AF_VSOCK here"
	mkdir "$T/un"
	sockgate-mkctl --vsock "any:$port" "$T/un/7000.sock"
	UNSOCK_DIR=$T/un bg env LD_PRELOAD="$LIB" python3 -c '
import socket, sys
s = socket.socket()
s.bind(("127.175.0.0", 7000))
s.listen()
print(s.getsockname(), s.family.name, flush=True)
open(sys.argv[1], "w").write("listening\n")
s.accept()' "$T/ready" > "$T/server.out"
	wait_for_file "$T/ready"
	run -0 cat "$T/server.out"
	assert_output "('127.175.0.0', 7000) AF_INET"
	run -0 python3 -c '
import errno, socket, sys
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
try:
    s.bind((socket.VMADDR_CID_ANY, int(sys.argv[1])))
    print("port free")
except OSError as e:
    print(errno.errorcode[e.errno])' "$port"
	assert_output "EADDRINUSE"
	kill "${PIDS[-1]}"
	wait "${PIDS[-1]}" 2>/dev/null || true
	run -0 python3 -c '
import socket, sys
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, int(sys.argv[1])))
print("port free")' "$port"
	assert_output "port free"
}

@test "VSOCK: a connect to CID 1 through a control file gives the kernel's own error, unchanged" {
	python3 -c 'import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)' 2>/dev/null ||
		skip "no AF_VSOCK here"
	sockgate-mkctl --vsock 1:9 "$T/v.sock"
	local probe='
import errno, socket, sys
s = socket.socket(*((socket.AF_VSOCK, socket.SOCK_STREAM) if sys.argv[1] == "direct" else ()))
try:
    s.connect((1, 9) if sys.argv[1] == "direct" else ("10.1.2.3", 80))
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])'
	run -0 python3 -c "$probe" direct
	want=$output
	[ "$want" != connected ] || skip "this kernel has a vsock loopback transport"
	SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/v.sock" run -0 pre python3 -c "$probe" via
	assert_output "$want"
}

@test "VSOCK round trip through vsock_loopback" {
	python3 -c '
import socket
l = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
l.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY)); l.listen()
c = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM); c.settimeout(3)
c.connect((1, l.getsockname()[1]))' 2>/dev/null ||
		skip "no vsock loopback transport in this kernel (vsock_loopback): a local round trip cannot connect"
	local port=$((40000 + RANDOM % 20000))
	sockgate-mkctl --vsock "any:$port" "$T/srv.sock"
	sockgate-mkctl --vsock "1:$port" "$T/cli.sock"
	bg env SOCKGATE_RULE="bind tcp 127.0.0.1:7000 -> unix $T/srv.sock" LD_PRELOAD="$LIB" python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 7000)); s.listen()
open(sys.argv[1], "w").write("x")
c, a = s.accept(); c.sendall(c.recv(100).upper())' "$T/ready"
	wait_for_file "$T/ready"
	SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/cli.sock" run -0 pre python3 -c '
import socket
s = socket.create_connection(("10.1.2.3", 80), timeout=5); s.sendall(b"vsock"); print(s.recv(100))'
	assert_output "b'VSOCK'"
}

@test "TIPC: where the kernel has it a round trip, else exactly the kernel's error" {
	sockgate-mkctl --tipc 2,2,128,99,0 "$T/t.sock"
	local direct
	direct=$(python3 -c '
import errno, socket
try:
    socket.socket(socket.AF_TIPC, socket.SOCK_STREAM); print("have tipc")
except OSError as e:
    print(errno.errorcode[e.errno])')
	[ "$direct" != "have tipc" ] || skip "TIPC round trip needs a bearer set up (tipc bearer enable), not done by tests"
	SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/t.sock" run -0 pre python3 -c '
import errno, socket
try:
    socket.create_connection(("10.1.2.3", 80), timeout=5); print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])'
	assert_output "$direct"
	[ "$direct" = EAFNOSUPPORT ]
}

@test "malformed control files: ECONNREFUSED for connect, EINVAL for bind, one line saying why; never a crash" {
	sockgate-mkctl --unix /nonexistent/x "$T/good"
	head -c 12 "$T/good" > "$T/truncated"
	{ printf 'SGCF'; tail -c +5 "$T/good" | head -c 3; printf '\x09'; tail -c +9 "$T/good"; } > "$T/version"
	{ head -c 18 "$T/good"; printf '\xee'; tail -c +20 "$T/good"; } > "$T/length"
	{ head -c 30 "$T/good"; printf 'Z'; tail -c +32 "$T/good"; } > "$T/crc"
	{ printf 'SGCX'; tail -c +5 "$T/good"; } > "$T/magic"
	local f
	for f in truncated version length crc magic; do
		SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/$f;bind tcp 127.0.0.1:7000 -> unix $T/$f" \
			run -0 --separate-stderr pre python3 -c '
import errno, socket
try:
    socket.create_connection(("10.1.2.3", 80), timeout=5); print("connected")
except OSError as e:
    print("connect", errno.errorcode[e.errno])
s = socket.socket()
try:
    s.bind(("127.0.0.1", 7000)); print("bound")
except OSError as e:
    print("bind", errno.errorcode[e.errno])'
		assert_line "connect ECONNREFUSED"
		case $f in
		magic)
			# not a control file at all: a plain file where a socket should be
			assert_line "bind EADDRINUSE"
			[ -z "$stderr" ] ;;
		*)
			assert_line "bind EINVAL"
			[[ "$stderr" == "libsockgate: control file $T/$f refused: "* ]] ;;
		esac
	done
}
