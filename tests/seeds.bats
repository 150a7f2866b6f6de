#!/usr/bin/env bats
# The documented examples of unsock and socketbox, run as their READMEs
# write them with only the library or command name changed (libunsock.so ->
# libsockgate.so, socketbox -> sockgate-server): unsock's nc examples and
# its python-http example (UNSOCK_PORT), the flag address of UNSOCK_ADDR
# as the peer of accepted connections; socketbox's options, SKBOX_LISTEN_FD
# for the -e program, /etc/socketbox.conf as the default rules (in a mount
# namespace, so /etc is never written). TCP on the examples' fixed ports
# (7000, 8000) runs in a network namespace of its own.

load helper

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# in_netns SCRIPT: bash SCRIPT in a new network namespace with loopback up
in_netns() {
	unshare -n bash -c "ip link set lo up && $1"
}

@test "unsock's nc examples: listen on 127.175.0.0 7000 (a Unix socket), connect from 127.175.0.3/0 (any IPv4), 127.1.0.3/24 leaves 127.0.0.1 to TCP" {
	need_netns
	mkdir -p "$T/unsockets"
	export T LIB
	run -0 timeout 20 unshare -n bash -c '
		ip link set lo up
		# Make nc listen on Unix domain socket 7000.sock instead of TCP port 7000
		UNSOCK_DIR=$T/unsockets/ LD_PRELOAD=$LIB nc -l 127.175.0.0 7000 >"$T/a.got" &
		for i in $(seq 100); do [ -S "$T/unsockets/7000.sock" ] && break; sleep 0.05; done
		# nothing listens on TCP 7000: it really is the Unix socket
		! nc -z 127.175.0.0 7000 || exit 9
		echo one | UNSOCK_DIR=$T/unsockets/ LD_PRELOAD=$LIB nc -N 127.175.0.0 7000
		wait
		# Listen on all IPv4 addresses; connections are coming from 127.175.0.3
		UNSOCK_ADDR=127.175.0.3/0 UNSOCK_DIR=$T/unsockets/ LD_PRELOAD=$LIB nc -nv -l 127.0.0.1 7000 >"$T/b.got" 2>"$T/b.err" &
		for i in $(seq 100); do [ -S "$T/unsockets/7000.sock" ] && break; sleep 0.05; done
		echo two | UNSOCK_ADDR=127.175.0.3/0 UNSOCK_DIR=$T/unsockets/ LD_PRELOAD=$LIB nc -N 127.0.0.1 7000
		wait
		# 127.1.0.3/24 covers 127.1.0.0-255: 127.0.0.1 stays TCP
		nc -l 127.0.0.1 7000 >"$T/c.got" &
		for i in $(seq 100); do ss -Hltn "sport = :7000" | grep -q . && break; sleep 0.05; done
		echo three | UNSOCK_ADDR=127.1.0.3/24 UNSOCK_DIR=$T/unsockets/ LD_PRELOAD=$LIB nc -N 127.0.0.1 7000
		wait'
	assert_equal "$(cat "$T/a.got")" "one"
	assert_equal "$(cat "$T/b.got")" "two"
	run -0 cat "$T/b.err"
	assert_output --partial "Connection received on 127.175.0.3 0"
	assert_equal "$(cat "$T/c.got")" "three"
}

@test "unsock's python-http example: http.server on 8000.sock by UNSOCK_PORT=8000, curl --unix-socket and curl through the library; port 5900 stays TCP; the server logs the flag address" {
	need_netns
	mkdir -p "$T/unsockets" "$T/www"
	echo "served over unix" >"$T/www/index.html"
	export T LIB
	run -0 timeout 30 unshare -n bash -c '
		ip link set lo up
		cd "$T/www"
		UNSOCK_PORT=8000 UNSOCK_ACCEPT_CONVERT_ALL=1 UNSOCK_ADDR=127.0.0.1/0 \
			UNSOCK_DIR=$T/unsockets LD_PRELOAD=$LIB \
			python3 -m http.server >/dev/null 2>"$T/http.log" &
		for i in $(seq 200); do [ -S "$T/unsockets/8000.sock" ] && break; sleep 0.05; done
		python3 -m http.server --bind 127.0.0.1 5900 >/dev/null 2>&1 &
		for i in $(seq 200); do curl -s -o /dev/null http://127.0.0.1:5900/ && break; sleep 0.05; done
		curl -sS --unix-socket $T/unsockets/8000.sock http://localhost:8000/
		UNSOCK_ADDR=127.0.0.1/0 UNSOCK_DIR=$T/unsockets LD_PRELOAD=$LIB curl -sS -4 http://localhost:8000/
		# UNSOCK_PORT: any other port is TCP as before
		UNSOCK_PORT=8000 UNSOCK_ADDR=127.0.0.1/0 UNSOCK_DIR=$T/unsockets LD_PRELOAD=$LIB \
			curl -sS -o /dev/null -w "%{http_code} tcp\n" http://127.0.0.1:5900/
		kill %1 %2'
	assert_line -n 0 "served over unix"
	assert_line -n 1 "served over unix"
	assert_line -n 2 "200 tcp"
	run -0 grep -c '^127.0.0.1 - - .*"GET / HTTP/1.1" 200' "$T/http.log"
	assert_output 2
}

@test "UNSOCK_PORT: a bad value is named and nothing is redirected; -1 means any port" {
	run -7 env UNSOCK_PORT=70000 UNSOCK_DIR="$T/u" LD_PRELOAD="$LIB" curl -sS -m 2 http://127.175.0.0:1/
	assert_line -n 0 "libsockgate: UNSOCK_PORT: UNSOCK_PORT '70000' is too large (expected 0-65535, or -1 for any) (no socket is redirected)"
	run -7 env UNSOCK_PORT=x UNSOCK_DIR="$T/u" LD_PRELOAD="$LIB" curl -sS -m 2 http://127.175.0.0:1/
	assert_line -n 0 "libsockgate: UNSOCK_PORT: UNSOCK_PORT 'x' is invalid (expected 0-65535, or -1 for any) (no socket is redirected)"
	mkdir "$T/u"
	bg python3 "$TOP/tests/tools/pre_userver.py" "$T/u/1234.sock" --ready "$T/u.ready"
	wait_for_file "$T/u.ready"
	run -0 bash -c "echo any | UNSOCK_PORT=-1 UNSOCK_DIR=$T/u LD_PRELOAD=$LIB timeout 5 nc -N 127.175.0.0 1234"
	assert_output "any"
	run -1 bash -c "echo none | UNSOCK_PORT=80 UNSOCK_DIR=$T/u LD_PRELOAD=$LIB timeout 5 nc -N 127.175.0.0 1234 2>&1"
	refute_output "none"
}

@test "socketbox -e: the program finds the listening socket in SKBOX_LISTEN_FD (and SOCKGATE_LISTEN_FD); -e as a flag before other options" {
	local prog='import os, socket
fd = int(os.environ["SKBOX_LISTEN_FD"])
s = socket.socket(fileno=fd)
print(fd, os.environ["SOCKGATE_LISTEN_FD"], s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), s.getsockname()[0])'
	run -0 "$SG" server -l ::1 -p 0 -e python3 -c "$prog"
	assert_output --regexp '^([0-9]+) \1 1 ::1$'
	# socketbox read -e as a flag; the program is the first operand
	run -0 "$SG" server -e -l ::1 -p 0 python3 -c "$prog"
	assert_output --regexp '^([0-9]+) \1 1 ::1$'
	run -100 "$SG" server -e -l ::1 -p 0
}

@test "socketbox's options, every spelling: -l -p -t -F -R -r -b -z -u -g -G -S with a receiver; -k -x; -s; -i; -d" {
	[ "$(id -u)" = 0 ] || skip "-t, -u, -g, -x need root"
	mkdir -p "$T/jail"
	chmod 755 "$T" "$T/jail"
	spawn "$T/inetd.log" "$SG" inetd -m 0666 "$T/jail/in.sock" sh -c 'echo "got $TCPREMOTEIP $TCPLOCALIP"'
	wait_for_file "$T/jail/in.sock"
	local port
	port=$(free_port)
	start_server -l ::1 -p "$port" -t -F -R -r -b 16 -z -u nobody -g nogroup -G nogroup -S "$T/jail/in.sock"
	run -0 timeout 10 nc -N ::1 "$port" </dev/null
	assert_output "got ::1 ::1"
	kill "$SP"
	# -k keeps the groups, -x a chroot: the path is inside it
	port=$(free_port)
	start_server -l 127.0.0.1 -p "$port" -k -x "$T/jail" -S /in.sock
	run -0 timeout 10 nc -N 127.0.0.1 "$port" </dev/null
	assert_output "got 127.0.0.1 127.0.0.1"
	kill "$SP"
	# -s: an inherited listening socket; -i: a socket to send to, by fd
	port=$(free_port)
	export SG
	python3 - "$port" "$T" 3>&- 4>"$T/ready-s" <<-'EOF' &
	import os, socket, sys
	port, t = int(sys.argv[1]), sys.argv[2]
	l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	l.bind(("127.0.0.1", port)); l.listen()
	u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); u.connect(t + "/jail/in.sock")
	os.set_inheritable(l.fileno(), True); os.set_inheritable(u.fileno(), True)
	os.execvp(os.environ["SG"], [os.environ["SG"], "server", "-s", str(l.fileno()), "-i", str(u.fileno()),
	          "--ready-fd", "4"])
	EOF
	PIDS+=($!)
	wait_for_line "$T/ready-s" ready 30
	run -0 timeout 10 nc -N 127.0.0.1 "$port" </dev/null
	assert_output "got 127.0.0.1 127.0.0.1"
	# -d: into the background; the foreground process exits 0 at once
	port=$(free_port)
	# (not under run: the background server keeps the output open, as socketbox's did)
	timeout 5 "$SG" server -d -l 127.0.0.1 -p "$port" -S "$T/jail/in.sock" 3>&- >"$T/d.log" 2>&1
	run -0 timeout 10 nc -N 127.0.0.1 "$port" </dev/null
	assert_output "got 127.0.0.1 127.0.0.1"
	# the background server: the process that listens on that port
	local dpid
	dpid=$(ss -Hltnp "sport = :$port" | sed -n 's/.*pid=\([0-9]*\),.*/\1/p' | head -1)
	[ -n "$dpid" ] && PIDS+=("$dpid")
}

@test "socketbox's default: no -f, -S or -i reads /etc/socketbox.conf (sockgate rules); socketbox's own language there, or no file, is one clear line (in a mount namespace)" {
	unshare -m true 2>/dev/null || skip "unshare -m refused here"
	mkdir -p "$T/etc"
	spawn "$T/inetd.log" "$SG" inetd "$T/in.sock" sh -c 'echo "by default $TCPLOCALIP"'
	wait_for_file "$T/in.sock"
	echo "accept tcp * -> unix $T/in.sock" >"$T/etc/socketbox.conf"
	local port
	port=$(free_port)
	export T SG
	bg unshare -m bash -c "mount -t tmpfs none /etc && cp $T/etc/socketbox.conf /etc/ && exec $SG server -l 127.0.0.1 -p $port --ready-fd 3 3>$T/ready"
	wait_for_line "$T/ready" ready
	run -0 timeout 10 nc -N 127.0.0.1 "$port" </dev/null
	assert_output "by default 127.0.0.1"
	# socketbox's own rule language is not read: say so, exit 1
	printf 'rule-set\nip:::1 jump-unix:/run/x\n' >"$T/etc/socketbox.conf"
	run -1 unshare -m bash -c "mount -t tmpfs none /etc && cp $T/etc/socketbox.conf /etc/ && exec $SG server -l 127.0.0.1 -p 0"
	assert_output --regexp "^sockgate-server: fatal: /etc/socketbox.conf:1:1: .* \(the default rules file, read as sockgate-rules\(5\): socketbox's own rule language is not read; give -f, -S or -i\)$"
	run -100 unshare -m bash -c "mount -t tmpfs none /etc && exec $SG server -l 127.0.0.1 -p 0"
	assert_line -n 0 "sockgate-server: fatal: one of -f RULES, -S PATH, -i FD is needed (/etc/socketbox.conf: No such file or directory)"
}
