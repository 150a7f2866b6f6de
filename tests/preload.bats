#!/usr/bin/env bats
# libsockgate.so, outgoing side: unchanged programs (curl, python, nc, nginx's
# peer, a C client) connect to 10.1.2.3 and land on Unix sockets under $T.
# 10.1.2.3 is never reached: the rules redirect it (and several tests run
# with no network at all, in unshare -n).

load helper

# under SANITIZE=1 the test programs carry ASan, which wants to come first
# in the library list; the preload library must come first instead
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

SRV=$TOP/tests/tools/pre_userver.py
CLI=$BUILD/tools/pre_client

# isolated CMD...: in a network namespace of its own when the kernel allows,
# so a mistake can never reach a real 10.1.2.3
isolated() {
	if unshare -n true 2>/dev/null; then
		unshare -n "$@"
	else
		"$@"
	fi
}

@test "curl reaches a Unix server while it believes it talks to 10.1.2.3:80" {
	userver web
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/web.sock"
	run -0 pre curl -sS --max-time 5 http://10.1.2.3/hello
	assert_output "hello from unix"
	run -0 cat "$T/web.log"
	assert_line "http GET /hello HTTP/1.1"
}

@test "python socket and asyncio (non-blocking connect): exact bytes both ways, getpeername is 10.1.2.3:80, TCP_MAXSEG sane, TCP options read back as set" {
	userver echo
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/echo.sock"
	run -0 pre python3 -c '
import asyncio, socket
s = socket.create_connection(("10.1.2.3", 80), timeout=5)
s.sendall(b"py\x00sock\xff\n")
print(repr(s.recv(100)), s.getpeername(), s.family.name)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("mss", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 42)
print("opts", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
      s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT), s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
async def main():
    r, w = await asyncio.open_connection("10.1.2.3", 80)
    w.write(b"py-asyncio\n")
    await w.drain()
    print(repr(await r.readline()), w.get_extra_info("peername"))
    w.close()
asyncio.run(main())'
	assert_line "b'py\\x00sock\\xff\\n' ('10.1.2.3', 80) AF_INET"
	assert_line "mss 65483"	# a sane segment size, as loopback would give (iperf3 checks it)
	assert_line "opts 1 42 9 6"	# as set; TCP_KEEPCNT unset: Linux's default; IPPROTO_TCP
	assert_line "b'py-asyncio\\n' ('10.1.2.3', 80)"
	run -0 cat "$T/echo.log"
	assert_line "data b'py\\x00sock\\xff\\n'"
	assert_line "data b'py-asyncio\\n'"
}

@test "nc sends and receives the exact bytes" {
	userver echo
	export SOCKGATE_RULE="connect tcp 10.1.2.0/24:80 -> unix $T/echo.sock"
	run -0 bash -c "printf 'line one\nline two\n' | LD_PRELOAD=$LIB timeout 5 nc -N 10.1.2.3 80"
	assert_output $'line one\nline two'
}

@test "with no network at all (unshare -n): curl, python asyncio and nc still arrive" {
	need_netns
	userver web
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/web.sock"
	run -0 unshare -n env LD_PRELOAD="$LIB" sh -c '
		curl -sS --max-time 5 http://10.1.2.3/no-net
		python3 -c "
import asyncio
async def main():
    r, w = await asyncio.open_connection(\"10.1.2.3\", 80)
    w.write(b\"GET /asyncio HTTP/1.0\r\n\r\n\")
    print((await r.read()).split(b\"\r\n\")[-1].decode(), end=\"\")
asyncio.run(main())"
		printf "GET /nc HTTP/1.0\r\n\r\n" | timeout 5 nc -N 10.1.2.3 80 | tail -1
		curl -sS --max-time 2 http://127.0.0.1:1/ 2>&1 | grep -c "Couldn.t connect"'
	assert_output $'hello from unix\nhello from unix\nhello from unix\n1'
	run -0 cat "$T/web.log"
	assert_line "http GET /no-net HTTP/1.1"
	assert_line "http GET /asyncio HTTP/1.0"
	assert_line "http GET /nc HTTP/1.0"
}

nginx_conf() {
	cat > "$T/nginx.conf" <<-EOF
	daemon off;
	master_process off;
	pid $T/nginx.pid;
	error_log $T/nginx-error.log;
	events { worker_connections 64; }
	http {
		access_log off;
		client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T;
		uwsgi_temp_path $T; scgi_temp_path $T;
		log_format pp '\$proxy_protocol_server_addr:\$proxy_protocol_server_port from \$proxy_protocol_addr';
		server {
			listen unix:$T/nginx.sock proxy_protocol;
			access_log $T/access.log pp;
			location / { return 200 "nginx here\n"; }
		}
	}
	EOF
	bg nginx -c "$T/nginx.conf" -e "$T/nginx-error.log"
	wait_for_file "$T/nginx.sock"
}

@test "nginx with proxy_protocol logs the destination the program asked for (v2 and v1)" {
	command -v nginx >/dev/null || skip "nginx not installed"
	nginx_conf
	SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/nginx.sock proxy-v2 source=192.0.2.7:0" \
		run -0 pre curl -sS --max-time 5 http://10.1.2.3/
	assert_output "nginx here"
	SOCKGATE_RULE="connect tcp 10.9.8.7:8080 -> unix $T/nginx.sock proxy-v1 source=192.0.2.8:0" \
		run -0 pre curl -sS --max-time 5 http://10.9.8.7:8080/
	assert_output "nginx here"
	run -0 cat "$T/access.log"
	assert_line "10.1.2.3:80 from 192.0.2.7"
	assert_line "10.9.8.7:8080 from 192.0.2.8"
}

@test "the AUTHORITY TLV carries the name the program resolved; NETNS and CRC32C when asked" {
	need_netns
	userver pp --proxy
	printf '10.1.2.3 web.example\n' > "$T/hosts"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/pp.sock proxy-v2 netns crc32c"
	run -0 unshare -n -m sh -c "mount --bind $T/hosts /etc/hosts &&
		LD_PRELOAD=$LIB curl -sS --max-time 5 http://web.example/by-name &&
		LD_PRELOAD=$LIB curl -sS --max-time 5 http://10.1.2.3/by-address"
	assert_output $'hello from unix\nhello from unix'
	run -0 cat "$T/pp.log"
	assert_line --regexp '^hdr authority=web\.example crc32c=present dst=10\.1\.2\.3:80 netns=net:\[[0-9]+\] proto=stream src=0\.0\.0\.0:0$'
	assert_line --regexp '^hdr crc32c=present dst=10\.1\.2\.3:80 netns=net:\[[0-9]+\] proto=stream src=0\.0\.0\.0:0$'
	assert_line "http GET /by-name HTTP/1.1"
}

@test "full backlog: non-blocking connect says EINPROGRESS, completes when the listener accepts, nothing lost" {
	userver slow --backlog 1 --accept-after "$T/gate" --proxy --quiet
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/slow.sock proxy-v2"
	run -0 timeout 20 env LD_PRELOAD="$LIB" "$CLI" fill "$T/slow.sock" 10.1.2.3 80 --gate "$T/gate"
	assert_line --regexp '^filled [0-9]+$'
	assert_line "connect: EINPROGRESS"
	assert_line "before accept: not writable"
	assert_line "early write: EAGAIN"
	assert_line "poll: writable"
	assert_line "so_error: 0"
	assert_line "flags: nonblock cloexec"
	assert_line "options: keepalive=1 rcvbuf=100000"
	assert_line "echo: same 262144 bytes"
	run -0 cat "$T/slow.log"
	assert_line --regexp '^hdr dst=10\.1\.2\.3:80 proto=stream src=[0-9.]+:0$'
}

@test "asyncio through a full backlog" {
	userver slow --backlog 0 --accept-after "$T/gate"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/slow.sock"
	# The bounds only stop a hang: on a loaded machine Python's start, its
	# resolver thread and the helper's retries can take seconds, and the
	# outcome asserted does not depend on how long any step takes.
	run -0 timeout 90 env LD_PRELOAD="$LIB" python3 -c '
import asyncio, os, socket, sys
# fill the queue with plain unix connects
held = []
while True:
    u = socket.socket(socket.AF_UNIX); u.setblocking(False)
    try: u.connect(sys.argv[1])
    except BlockingIOError: break
    held.append(u)
async def main():
    t = asyncio.ensure_future(asyncio.open_connection("10.1.2.3", 80))
    await asyncio.sleep(0.3)
    print("done before accept:", t.done())
    open(sys.argv[2], "w").close()
    r, w = await asyncio.wait_for(t, 60)
    w.write(b"after the wait\n"); await w.drain()
    print(repr(await asyncio.wait_for(r.readline(), 60)))
asyncio.run(main())' "$T/slow.sock" "$T/gate"
	assert_output $'done before accept: False\nb\'after the wait\\n\''
}

@test "every errno path: refused, missing path, path too long, reject, blackhole" {
	# fits the rule (100 bytes before expansion), too long once %a-%p are filled in
	long=$(printf 'x%.0s' $(seq $((100 - ${#T} - 8))))
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/dead.sock"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:1 -> unix $T/dead.sock
connect tcp 10.1.2.3:2 -> unix $T/missing.sock
connect tcp 10.1.2.3:3 -> unix $T/$long-%a-%p.sock
connect tcp 10.1.2.3:4 -> reject
connect tcp 10.1.2.3:5 -> reject EHOSTUNREACH
connect tcp 10.1.2.3:6 -> blackhole
connect tcp 10.1.2.3:7 -> abstract sockgate-test-nobody-$$"
	for p in 1 2 3 4 5 6 7; do
		isolated env LD_PRELOAD="$LIB" "$CLI" errno 10.1.2.3 $p
	done > "$T/out"
	run -0 cat "$T/out"
	assert_output $'ECONNREFUSED\nECONNREFUSED\nENAMETOOLONG\nECONNREFUSED\nEHOSTUNREACH\nETIMEDOUT\nECONNREFUSED'
	# a non-blocking connect into a blackhole stays in progress, like dropped SYNs
	run -0 isolated env LD_PRELOAD="$LIB" python3 -c '
import select, socket
s = socket.socket(); s.setblocking(False)
print(s.connect_ex(("10.1.2.3", 6)) == 115)
print(select.select([s], [s], [s], 0.3) == ([], [], []))
s.close()'
	assert_output $'True\nTrue'
}

@test "8 threads x 200 connections and a child after fork: all arrive, no fd leaks" {
	userver echo --quiet
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/echo.sock"
	run -0 timeout 60 env LD_PRELOAD="$LIB" "$CLI" threads 10.1.2.3 80 8 200
	assert_output --regexp '^connections 1600 failed 0 fds ([0-9]+)->\1$'
	run -0 timeout 20 env LD_PRELOAD="$LIB" "$CLI" fork 10.1.2.3 80
	assert_output --regexp '^parent ok child ok fds ([0-9]+)->\1$'
}

@test "8 threads x 200 non-blocking connects into a backlog of 1, with PROXY headers: helper threads race, nothing lost" {
	userver tight --backlog 1 --proxy --quiet
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/tight.sock proxy-v2"
	run -0 timeout 60 env LD_PRELOAD="$LIB" "$CLI" nbthreads 10.1.2.3 80 8 200
	assert_output --regexp '^connections 1600 failed 0 fds ([0-9]+)->\1$'
	run -0 grep -c '^hdr dst=10.1.2.3:80 ' "$T/tight.log"
	assert_output 1600
}

@test "epoll registration made before connect() carries over; fd number, O_NONBLOCK, FD_CLOEXEC kept" {
	userver echo
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/echo.sock"
	run -0 timeout 10 env LD_PRELOAD="$LIB" "$CLI" epoll 10.1.2.3 80
	assert_line "connect: 0"
	assert_line "epoll: 1 data=5eed out=1"
	assert_line "reply: via-epoll"
	run -0 pre "$CLI" peer 10.1.2.3 80
	assert_output $'peer 10.1.2.3:80\nlocal family inet\ndomain inet\ncloexec 0\necho ok'
	run -0 pre python3 -c '
import os, socket
s = socket.socket(); fd = s.fileno(); s.connect(("10.1.2.3", 80))
print(s.fileno() == fd, os.get_inheritable(fd))
d = socket.socket(fileno=os.dup(fd)); print(d.getpeername())
e = socket.socket(fileno=os.dup2(fd, 50)); print(e.getpeername()); e.detach(); os.close(50)
d.close(); s.sendall(b"still\n"); print(s.recv(10))'
	assert_output $'True False\n(\'10.1.2.3\', 80)\n(\'10.1.2.3\', 80)\nb\'still\\n\''
}

@test "UDP: sendto/recvfrom, connect/send, sendmmsg/recvmmsg report the original destination; PROXY header per datagram" {
	userver dns --dgram
	userver dnspp --dgram --proxy
	export SOCKGATE_RULE="connect udp 10.1.2.3:53 -> unix $T/dns.sock
connect udp 10.1.2.4:53 -> unix $T/dnspp.sock proxy-v2 source=192.0.2.9:0"
	run -0 pre python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"q1", ("10.1.2.3", 53)); print(u.recvfrom(100))
u.sendto(b"q2", ("10.1.2.4", 53)); print(u.recvfrom(100))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(("10.1.2.3", 53)); c.send(b"q3"); print(c.recv(100), c.getpeername())'
	assert_output $'(b\'echo:q1\', (\'10.1.2.3\', 53))\n(b\'echo:q2\', (\'10.1.2.4\', 53))\nb\'echo:q3\' (\'10.1.2.3\', 53)'
	run -0 cat "$T/dnspp.log"
	assert_output $'hdr dst=10.1.2.4:53 proto=dgram src=192.0.2.9:0\ndgram b\'q2\''
	run -0 timeout 10 env LD_PRELOAD="$LIB" "$CLI" mmsg 10.1.2.3 53
	assert_output $'sent 3\necho:m0 from 10.1.2.3:53\necho:m1 from 10.1.2.3:53\necho:m2 from 10.1.2.3:53'
}

@test "unmatched connections are untouched; tcp and pass rules" {
	userver echo
	port=$(free_port)
	bg python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); open(sys.argv[2], "w").close()
while True:
    c, a = s.accept(); c.sendall(b"tcp-server %d\n" % (a[0] == "127.0.0.1")); c.close()' "$port" "$T/tcp.ready"
	wait_for_file "$T/tcp.ready"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> tcp 127.0.0.1:$port
connect tcp 127.0.0.1:$port -> pass
connect tcp 127.0.0.0/8 -> unix $T/echo.sock"
	run -0 pre python3 -c '
import socket, sys
for a in [("127.0.0.1", int(sys.argv[1])), ("10.1.2.3", 80)]:
    s = socket.create_connection(a); print(s.recv(100).decode().strip(), s.getpeername() == a)' "$port"
	assert_output $'tcp-server 1 True\ntcp-server 1 True'
}

@test "broken rules: one line naming file:line:col, sockets left alone; SOCKGATE_STRICT=1 refuses" {
	userver echo
	port=$(free_port)
	printf 'connect tcp 10.1.2.3:80 -> unix %s\nconnect tcp 10.0.0.0/8 -> unixx /x\n' "$T/echo.sock" > "$T/rules"
	SOCKGATE_RULES=$T/rules run -0 pre "$CLI" errno 127.0.0.1 "$port"
	assert_output - <<-EOF
	libsockgate: $T/rules:2:27: unknown action 'unixx' (expected unix, abstract, tcp, fdpass, systemd, reject, blackhole, pass, nat64, translate, broker) (no socket is redirected)
	ECONNREFUSED
	EOF
	SOCKGATE_RULES=$T/rules SOCKGATE_STRICT=1 run -0 pre "$CLI" errno 127.0.0.1 "$port"
	assert_line "EACCES"
	SOCKGATE_RULES=$T/missing run -0 pre "$CLI" errno 127.0.0.1 "$port"
	assert_output - <<-EOF
	libsockgate: $T/missing: cannot read rules: No such file or directory (no socket is redirected)
	ECONNREFUSED
	EOF
}

@test "a compiled rules file (sockgate-asmgen) loads; SOCKGATE_RULE comes first" {
	[ -x "$BUILD/sockgate-asmgen" ] || skip "sockgate-asmgen not built"
	userver a
	userver b
	printf 'connect tcp 10.1.2.3:80 -> unix %s\n' "$T/a.sock" > "$T/rules.txt"
	run -0 "$BUILD/sockgate-asmgen" "$T/rules.txt" -o "$T/rules.bin"
	SOCKGATE_RULES=$T/rules.bin run -0 pre curl -sS http://10.1.2.3/
	assert_output "hello from unix"
	SOCKGATE_RULES=$T/rules.bin SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/b.sock" run -0 pre curl -sS http://10.1.2.3/x
	run -0 cat "$T/b.log"
	assert_line "http GET /x HTTP/1.1"
}

@test "unsock compatibility: UNSOCK_DIR, UNSOCK_ADDR, UNSOCK_BLOCK_INET6" {
	mkdir "$T/u"
	bg python3 "$SRV" "$T/u/7000.sock" --ready "$T/u.ready"
	wait_for_file "$T/u.ready"
	run -0 bash -c "printf 'via unsock\n' | UNSOCK_DIR=$T/u/ LD_PRELOAD=$LIB timeout 5 nc -N 127.175.0.0 7000"
	assert_output "via unsock"
	run -0 bash -c "printf 'any v4\n' | UNSOCK_ADDR=127.175.0.3/0 UNSOCK_DIR=$T/u LD_PRELOAD=$LIB timeout 5 nc -N 10.20.30.40 7000"
	assert_output "any v4"
	UNSOCK_BLOCK_INET6=1 run -0 pre python3 -c '
import socket
socket.socket(socket.AF_INET).close()
try: socket.socket(socket.AF_INET6)
except OSError as e: print(e.strerror)'
	assert_output "Address family not supported by protocol"
}

@test "u-relay-tproxy flags and MSG_FASTOPEN: getsockname hack, fastopen=epipe, sendto(MSG_FASTOPEN) connects" {
	userver echo
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/echo.sock
connect tcp 10.1.2.3:853 -> unix $T/echo.sock fastopen=epipe"
	URELAY_TPROXY_LOCAL_FLAGS=0x40000 run -0 pre python3 -c '
import socket
s = socket.socket(socket.AF_INET6); s.bind(("::", 0)); s.connect(("::ffff:10.1.2.3", 80))
print(s.getsockname(), s.getpeername())'
	assert_output "('::', 0, 0, 0) ('::ffff:10.1.2.3', 80, 0, 0)"
	run -0 pre python3 -c '
import socket
s = socket.socket(); s.sendto(b"tfo data\n", socket.MSG_FASTOPEN, ("10.1.2.3", 80)); print(s.recv(100), s.getpeername())
t = socket.socket()
try: t.sendto(b"x", socket.MSG_FASTOPEN, ("10.1.2.3", 853))
except OSError as e: print(e.strerror)'
	assert_output $'b\'tfo data\\n\' (\'10.1.2.3\', 80)\nBroken pipe'
	URELAY_TPROXY_LOCAL_FLAGS=0x20000 run -0 pre python3 -c '
import socket
t = socket.socket()
try: t.sendto(b"x", socket.MSG_FASTOPEN, ("10.1.2.3", 80))
except OSError as e: print(e.strerror)'
	assert_output "Broken pipe"
}

@test "shutdown(SHUT_WR) works: the server sees EOF and still answers" {
	userver echo
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/echo.sock shut-rd-rdwr"
	run -0 pre python3 -c '
import socket
s = socket.create_connection(("10.1.2.3", 80)); s.sendall(b"half\n"); s.shutdown(socket.SHUT_WR)
print(s.recv(100), s.recv(100))
s.shutdown(socket.SHUT_RD)
try: s.send(b"x")
except OSError as e: print(e.strerror)'
	assert_output $'b\'half\\n\' b\'\'\nBroken pipe'
}

# ---- the receiving side: sockets accepted by sockgate-server, served in a box

# server NAME: sockgate-server on a free loopback port passing everything to $T/NAME.sock
server() {
	SPORT=$(free_port)
	bg sockgate-server -l 127.0.0.1 -p "$SPORT" -S "$T/$1.sock" --ready-fd 3 -v 3>"$T/$1.srv-ready" 2>"$T/$1.srv.log"
	wait_for_line "$T/$1.srv-ready" ready
}

@test "receiver: python http.server with no network serves curl through sockgate-server and logs curl's address and port" {
	need_netns
	[ -x "$BUILD/sockgate-server" ] || skip "sockgate-server not built"
	server web
	echo "served from a box" > "$T/page.txt"
	bg unshare -n env -C "$T" LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp *:8000 -> fdpass $T/web.sock" python3 -c '
import http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *a):
        with open(sys.argv[1], "a") as f: f.write("client %s:%d %s\n" % (self.client_address[0], self.client_address[1], a[0]))
s = http.server.HTTPServer(("0.0.0.0", 8000), H)
open(sys.argv[2], "w").close()
s.serve_forever()' "$T/http.log" "$T/http.ready"
	wait_for_file "$T/http.ready"
	run -0 curl -sS --max-time 5 -w '%{local_port}\n' "http://127.0.0.1:$SPORT/page.txt"
	assert_line "served from a box"
	cport=${lines[1]}
	wait_for_line "$T/http.log" "GET /page.txt"
	run -0 cat "$T/http.log"
	assert_output "client 127.0.0.1:$cport GET /page.txt HTTP/1.1"
}

@test "receiver: nginx (master and two workers, epoll, accept4) with no network; \$remote_port is curl's" {
	need_netns
	command -v nginx >/dev/null || skip "nginx not installed"
	[ -x "$BUILD/sockgate-server" ] || skip "sockgate-server not built"
	server ngx
	cat > "$T/rx.conf" <<-EOF
	daemon off;
	worker_processes 2;
	pid $T/rx.pid;
	error_log $T/rx-error.log;
	events { worker_connections 64; }
	http {
		client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T;
		uwsgi_temp_path $T; scgi_temp_path $T;
		log_format peer '\$remote_addr:\$remote_port \$request';
		server {
			listen 80;
			access_log $T/rx-access.log peer;
			location / { return 200 "nginx in a box\n"; }
		}
	}
	EOF
	bg unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp *:80 -> fdpass $T/ngx.sock mode=0600" \
		nginx -c "$T/rx.conf" -e "$T/rx-error.log"
	wait_for_file "$T/ngx.sock"
	run -0 stat -c %a "$T/ngx.sock"
	assert_output "600"
	for i in 1 2 3 4; do
		curl -sS --max-time 5 -w '%{local_port}\n' "http://127.0.0.1:$SPORT/n$i"
	done > "$T/curl.out"
	run -0 cat "$T/curl.out"
	assert_line "nginx in a box"
	for p in $(grep -v nginx "$T/curl.out"); do
		wait_for_line "$T/rx-access.log" "127.0.0.1:$p GET /n"
	done
	run -0 grep -c '^127.0.0.1:[0-9]* GET /n[1-4] HTTP/1.1$' "$T/rx-access.log"
	assert_output 4
}

@test "receiver: an AF_INET daemon handed IPv6 sockets sees 127.0.0.1 for an IPv4-mapped client, 192.0.0.8 and the real port for ::1, logged in SOCKGATE_STANDIN_LOG" {
	[ -x "$BUILD/sockgate-server" ] || skip "sockgate-server not built"
	python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null || skip "no IPv6 loopback here"
	SPORT=$(free_port)
	bg sockgate-server -l :: -p "$SPORT" -S "$T/v4.sock" --ready-fd 3 3>"$T/v4.srv-ready" 2>"$T/v4.srv.log"
	wait_for_line "$T/v4.srv-ready" ready
	bg env LD_PRELOAD="$LIB" SOCKGATE_STANDIN_LOG="$T/standin.log" SOCKGATE_RULE="bind tcp *:8080 -> fdpass $T/v4.sock" python3 -c '
import socket, sys
out = open(sys.argv[1], "w", buffering=1)
s = socket.socket(socket.AF_INET); s.bind(("0.0.0.0", 8080)); s.listen(4)
out.write("ready\n")
for i in range(2):
    c, a = s.accept()
    out.write("accept %s:%d peer %s:%d name %s\n" % (a + c.getpeername() + (c.getsockname()[0],)))
    c.sendall(b"x"); c.close()' "$T/v4.log"
	wait_for_line "$T/v4.log" ready
	for h in 127.0.0.1 ::1; do
		python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); c.recv(1); print(c.getsockname()[1])' "$h" "$SPORT"
	done > "$T/ports"
	mapfile -t p < "$T/ports"
	wait_for_line "$T/v4.log" "accept 192"
	run -0 cat "$T/v4.log"
	assert_output "ready
accept 127.0.0.1:${p[0]} peer 127.0.0.1:${p[0]} name 127.0.0.1
accept 192.0.0.8:${p[1]} peer 192.0.0.8:${p[1]} name 0.0.0.0"
	run -0 cat "$T/standin.log"
	assert_output --regexp "^pid [0-9]+ fd [0-9]+: \[::1\]:${p[1]} as 192.0.0.8:${p[1]}\$"
}

@test "receiver: EAGAIN with nothing waiting, readable exactly when a socket waits, accept4 flags, addresses" {
	[ -x "$BUILD/sockgate-server" ] || skip "sockgate-server not built"
	server rx
	bg env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 0.0.0.0:8080 -> fdpass $T/rx.sock" python3 -c '
import ctypes, fcntl, os, select, socket, sys
out = open(sys.argv[1], "w", buffering=1)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(16); s.setblocking(False)
out.write("name %s:%d acceptconn %d\n" % (s.getsockname() + (s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),)))
try: s.accept()
except BlockingIOError: out.write("empty accept: EAGAIN\n")
out.write("readable before: %s\n" % bool(select.select([s], [], [], 0.2)[0]))
out.write("waiting\n")
out.write("readable after: %s\n" % bool(select.select([s], [], [], 10)[0]))
libc = ctypes.CDLL(None, use_errno=True)
class SIN(ctypes.Structure): _fields_ = [("fam", ctypes.c_ushort), ("port", ctypes.c_ubyte * 2), ("addr", ctypes.c_ubyte * 4), ("z", ctypes.c_ubyte * 8)]
sin = SIN(); ln = ctypes.c_uint(ctypes.sizeof(sin))
fd = libc.accept4(s.fileno(), ctypes.byref(sin), ctypes.byref(ln), socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
out.write("accepted: family %d %s:%d nonblock %d cloexec %d\n" % (sin.fam, ".".join(map(str, sin.addr)),
    sin.port[0] * 256 + sin.port[1], bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK), bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)))
c = socket.socket(fileno=fd); c.setblocking(True)
out.write("peer %s:%d\n" % c.getpeername())
c.sendall(b"hello from the receiver\n"); c.close()
out.write("readable at the end: %s\n" % bool(select.select([s], [], [], 0.2)[0]))' "$T/rx.log"
	wait_for_line "$T/rx.log" waiting
	run -0 python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
print(c.getsockname()[1]); print(c.makefile().readline().strip())' "$SPORT"
	cport=${lines[0]}
	assert_line "hello from the receiver"
	wait_for_line "$T/rx.log" "readable at the end"
	run -0 cat "$T/rx.log"
	assert_output "name 0.0.0.0:8080 acceptconn 1
empty accept: EAGAIN
readable before: False
waiting
readable after: True
accepted: family 2 127.0.0.1:$cport nonblock 1 cloexec 1
peer 127.0.0.1:$cport
readable at the end: False"
}

# burst_through NAME FORM: 500 connections at once through sockgate-server to
# tests/tools/srv_httpd (one thread, one connection at a time) in unshare -n,
# whose net.unix.max_dgram_qlen stays at its default; FORM "tcp": preloaded,
# an fdpass bind rule (the library's receiver), "fdpass": a datagram receiver
burst_through() {
	local port=$(free_port)
	server "$1"
	if [ "$2" = tcp ]; then
		bg unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 127.0.0.1:$port -> fdpass $T/$1.sock" \
			sh -c 'cat /proc/sys/net/unix/max_dgram_qlen; exec "$0" tcp "$1"' "$BUILD/tools/srv_httpd" "$port" >"$T/$1.out"
	else
		bg unshare -n sh -c 'cat /proc/sys/net/unix/max_dgram_qlen; exec "$0" fdpass "$1"' \
			"$BUILD/tools/srv_httpd" "$T/$1.sock" >"$T/$1.out"
	fi
	wait_for_line "$T/$1.out" ready
	assert_equal "$(head -1 "$T/$1.out")" 10
	run -0 python3 "$TOP/tests/tools/srv_peer.py" burst 500 127.0.0.1 "$SPORT"
	assert_output "ok=500 eof=0 reset=0 error=0"
	assert_equal "$(grep -c ": passed to unix:$T/$1.sock" "$T/$1.srv.log")" 500
}

@test "receiver: 500 connections at once to a one-thread preloaded receiver with net.unix.max_dgram_qlen 10 (unshare -n): all passed at once, none waits in the server" {
	need_netns
	burst_through lib tcp
	# one connection per hand-off: the queue is the receiver's listen backlog, not max_dgram_qlen
	run -1 grep -c "after waiting" "$T/lib.srv.log"
	assert_output 0
}

@test "receiver: a datagram receiver still works (sockgate-server sends datagrams to it); under the same burst the server holds what max_dgram_qlen does not" {
	need_netns
	burst_through dg fdpass
	run -0 grep -c "passed to unix:$T/dg.sock (after waiting)" "$T/dg.srv.log"
	[ "$output" -gt 0 ]
}

@test "bind -> unix: a TCP server listens on a Unix socket (curl --unix-socket reaches it); unsock's nc -l, with no network" {
	need_netns
	bg unshare -n env -C "$T" LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp *:8000 -> unix $T/py.sock mode=0660" python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("peer %s:%d local %s:%d\n" % (self.client_address + self.connection.getsockname())).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
http.server.HTTPServer(("0.0.0.0", 8000), H).serve_forever()'
	wait_for_file "$T/py.sock"
	run -0 stat -c %a "$T/py.sock"
	assert_output "660"
	run -0 curl -sS --max-time 5 --unix-socket "$T/py.sock" http://x/
	assert_output "peer 127.0.0.1:0 local 0.0.0.0:8000"

	mkdir "$T/u"
	UNSOCK_DIR=$T/u UNSOCK_MODE=700 LD_PRELOAD=$LIB bg unshare -n timeout 10 nc -l 127.175.0.0 7000 > "$T/nc.got"
	wait_for_file "$T/u/7000.sock"
	run -0 stat -c %a "$T/u/7000.sock"
	assert_output "700"
	run -0 bash -c "printf 'unix both ways\n' | UNSOCK_DIR=$T/u LD_PRELOAD=$LIB unshare -n timeout 5 nc -N 127.175.0.0 7000"
	wait_for_line "$T/nc.got" "unix both ways"
}

@test "pending connects: EALREADY, a dup completes too, close while pending leaks no fd or thread, EISCONN after" {
	userver slow --backlog 0 --accept-after "$T/gate"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/slow.sock"
	run -0 timeout 20 env LD_PRELOAD="$LIB" python3 -c '
import errno, os, select, socket, sys, time
def fill():
    held = []
    while True:
        u = socket.socket(socket.AF_UNIX); u.setblocking(False)
        try: u.connect(sys.argv[1])
        except BlockingIOError: return held
        held.append(u)
def count():
    return len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))
held = fill()
before = count()
s = socket.socket(); s.setblocking(False)
print("first", errno.errorcode[s.connect_ex(("10.1.2.3", 80))])
s.close()
for _ in range(100):    # the helper looks every 0.2 s
    if count() == before: break
    time.sleep(0.05)
print("after close: same fds and threads", count() == before)
s = socket.socket(); s.setblocking(False)
s.connect_ex(("10.1.2.3", 80))
print("again", errno.errorcode[s.connect_ex(("10.1.2.3", 80))])
d = socket.socket(fileno=os.dup(s.fileno()))
open(sys.argv[2], "w").close()
print("dup writable", bool(select.select([], [d], [], 10)[1]), d.getpeername())
print("connect after", errno.errorcode[s.connect_ex(("10.1.2.3", 80))])
s.setblocking(True); d.sendall(b"via the dup\n"); print(s.recv(100))' "$T/slow.sock" "$T/gate"
	assert_output "first EINPROGRESS
after close: same fds and threads True
again EALREADY
dup writable True ('10.1.2.3', 80)
connect after EISCONN
b'via the dup\n'"
}

@test "IPv6 destinations; a tcp target with a PROXY header from a non-blocking client; nat64" {
	need_netns
	cat > "$T/tcprecv.py" <<-'EOF'
	import socket, struct, sys
	sys.path.insert(0, sys.argv[3])
	from pre_userver import parse_v2, fmt
	s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
	s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); print("ready", flush=True)
	while True:
	    c, a = s.accept(); buf = b""
	    r = None
	    while True:
	        if buf and not b"\r\n\r\n\x00\r\nQUIT\n".startswith(buf[:12]):
	            break    # no header on this one
	        r = parse_v2(buf) if len(buf) >= 16 else None
	        if r: break
	        d = c.recv(4096)
	        if not d: break
	        buf += d
	    if r:
	        print(fmt(r[1]), flush=True); buf = buf[r[0]:]
	    while not buf.endswith(b"\n"):
	        buf += c.recv(4096)
	    c.sendall(b"tcp got " + buf); c.close()
	EOF
	userver pp6 --proxy
	run -0 timeout 30 unshare -n sh -c "
		ip link set lo up && ip -6 addr add 64:ff9b::a01:204/128 dev lo || exit 1
		python3 $T/tcprecv.py 127.0.0.1 8080 $TOP/tests/tools > $T/tcp.log & p1=\$!
		python3 $T/tcprecv.py 64:ff9b::a01:204 80 $TOP/tests/tools > $T/nat.log & p2=\$!
		until grep -q ready $T/tcp.log 2>/dev/null && grep -q ready $T/nat.log 2>/dev/null; do sleep 0.05; done
		SOCKGATE_RULE='connect tcp [fd00::/16]:443 -> unix $T/pp6.sock proxy-v2 source=[2001:db8::7]:0
connect tcp 10.1.2.3:80 -> tcp 127.0.0.1:8080 proxy-v2 source=192.0.2.1:1234
connect tcp 10.1.2.4:80 -> nat64 64:ff9b::/96' LD_PRELOAD=$LIB python3 -c '
import asyncio, socket
s = socket.create_connection((\"fd00::1\", 443), timeout=5); s.sendall(b\"six\n\"); print(s.recv(100), s.getpeername()[:2])
async def main(host):
    r, w = await asyncio.open_connection(host, 80)
    w.write(b\"hi \" + host.encode() + b\"\n\"); await w.drain()
    print(await r.readline(), w.get_extra_info(\"peername\"))
asyncio.run(main(\"10.1.2.3\"))
asyncio.run(main(\"10.1.2.4\"))'
		kill \$p1 \$p2"
	assert_output "b'six\\n' ('fd00::1', 443)
b'tcp got hi 10.1.2.3\\n' ('10.1.2.3', 80)
b'tcp got hi 10.1.2.4\\n' ('10.1.2.4', 80)"
	run -0 cat "$T/pp6.log"
	assert_line "hdr dst=[fd00::1]:443 proto=stream src=[2001:db8::7]:0"
	run -0 cat "$T/tcp.log"
	assert_line "hdr dst=10.1.2.3:80 proto=stream src=192.0.2.1:1234"
}

@test "the PROXY header comes before the first byte whatever call writes it: write, writev, sendmsg, sendfile, splice" {
	userver pp --proxy
	printf 'from a file\n' > "$T/file"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/pp.sock proxy-v2 source=192.0.2.5:0"
	run -0 pre python3 -c '
import os, socket, sys
def conn():
    return socket.create_connection(("10.1.2.3", 80), timeout=5)
def check(s, want):
    got = b""
    while len(got) < len(want): got += s.recv(100)
    print(got == want, got)
s = conn(); os.write(s.fileno(), b"by write\n"); check(s, b"by write\n")
s = conn(); os.writev(s.fileno(), [b"by ", b"writev\n"]); check(s, b"by writev\n")
s = conn(); s.sendmsg([b"by ", b"sendmsg\n"]); check(s, b"by sendmsg\n")
s = conn(); s.sendfile(open(sys.argv[1], "rb")); check(s, b"from a file\n")
s = conn(); r, w = os.pipe(); os.write(w, b"by splice\n"); os.splice(r, s.fileno(), 10); check(s, b"by splice\n")' "$T/file"
	assert_output "True b'by write\\n'
True b'by writev\\n'
True b'by sendmsg\\n'
True b'from a file\\n'
True b'by splice\\n'"
	run -0 grep -c "^hdr dst=10.1.2.3:80 proto=stream src=192.0.2.5:0$" "$T/pp.log"
	assert_output 5
}

@test "bind -> unix proxy-v2: the server sees the client's addresses from the PROXY header, end to end with no TCP" {
	need_netns
	bg unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp *:8000 -> unix $T/pp.sock proxy-v2" python3 -c '
import socket
s = socket.socket(socket.AF_INET6); s.bind(("::", 8000)); s.listen()
while True:
    try:
        c, a = s.accept()
    except ConnectionAbortedError:
        print("accept: ECONNABORTED", flush=True); continue
    c.sendall(("peer %s:%d local %s:%d\n" % (a[:2] + c.getsockname()[:2])).encode()); c.close()' > "$T/pp.log"
	wait_for_file "$T/pp.sock"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/pp.sock proxy-v2 source=192.0.2.44:5555"
	run -0 pre unshare -n python3 -c '
import socket
print(socket.create_connection(("10.1.2.3", 80), timeout=5).recv(200).decode().strip())'
	assert_output "peer ::ffff:192.0.2.44:5555 local ::ffff:10.1.2.3:80"
	# a client that sends no header is closed, accept() says ECONNABORTED
	# (as TCP does for a connection gone before accept), and the server goes on
	run curl -sS --max-time 5 --unix-socket "$T/pp.sock" http://x/
	[[ $status == 52 || $status == 56 ]]	# empty reply, or reset
	wait_for_line "$T/pp.log" "accept: ECONNABORTED"
	run -0 pre unshare -n python3 -c '
import socket
print(socket.create_connection(("10.1.2.3", 80), timeout=5).recv(200).decode().strip())'
	assert_output "peer ::ffff:192.0.2.44:5555 local ::ffff:10.1.2.3:80"
}

@test "bind -> unix proxy-v2, non-blocking: EAGAIN at once while a header dribbles in, a complete one accepted meanwhile, epoll wakes when the slow one completes" {
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp *:8000 -> unix $T/nb.sock proxy-v2" timeout 20 python3 -c '
import select, socket, struct, sys, threading, time
def hdr(src, sport):
    body = socket.inet_aton(src) + socket.inet_aton("10.1.2.3") + struct.pack("!HH", sport, 80)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
s = socket.socket(); s.bind(("127.0.0.1", 8000)); s.listen(16); s.setblocking(False)
ep = select.epoll(); ep.register(s.fileno(), select.EPOLLIN)
slow = socket.socket(socket.AF_UNIX); slow.connect(sys.argv[1])
h1 = hdr("192.0.2.1", 1111)
slow.send(h1[:1])            # one byte now, the next a second later
t0 = time.monotonic()
try:
    s.accept(); print("accepted a partial header")
except BlockingIOError:
    print("EAGAIN", "at once" if time.monotonic() - t0 < 0.3 else "after %.2fs" % (time.monotonic() - t0))
except ConnectionAbortedError:
    print("ECONNABORTED after %.2fs" % (time.monotonic() - t0))
fast = socket.socket(socket.AF_UNIX); fast.connect(sys.argv[1]); fast.send(hdr("192.0.2.2", 2222) + b"hello")
print("ready", bool(ep.poll(5)))
c, a = s.accept(); print("accepted", a, c.recv(10))
time.sleep(1); slow.send(h1[1:2])
try:
    s.accept(); print("accepted a partial header")
except BlockingIOError:
    print("EAGAIN", "at once" if time.monotonic() - t0 < 1.4 else "late")
def dribble():
    for i in range(2, len(h1)):
        slow.send(h1[i:i + 1]); time.sleep(0.05)
    slow.send(b"slow")
threading.Thread(target=dribble).start()
while True:
    if not ep.poll(5):
        print("no wake-up"); break
    try:
        c, a = s.accept(); print("accepted", a, c.recv(10)); break
    except BlockingIOError:
        pass
' "$T/nb.sock"
	assert_output - <<-EOF
	EAGAIN at once
	ready True
	accepted ('192.0.2.2', 2222) b'hello'
	EAGAIN at once
	accepted ('192.0.2.1', 1111) b'slow'
	EOF
}

@test "bind -> systemd: the program takes the socket-activated listener (by name; a Unix one too)" {
	command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate not installed"
	port=$(free_port)
	other=$(free_port)
	# two sockets: the rule names the second
	bg systemd-socket-activate -l "127.0.0.1:$other" -l "127.0.0.1:$port" --fdname=other:web env LD_PRELOAD="$LIB" \
		SOCKGATE_RULE="bind tcp *:8000 -> systemd web" python3 -c '
import socket
s = socket.socket(); s.bind(("0.0.0.0", 8000)); s.listen()
c, a = s.accept(); c.sendall(("%s got %s:%d local %s\n" % (a[0], a[0], a[1], s.getsockname()[0])).encode()); c.close()' 2>"$T/sd1.log"
	bg systemd-socket-activate -l "$T/act.sock" env LD_PRELOAD="$LIB" \
		SOCKGATE_RULE="bind tcp *:8000 -> systemd" python3 -c '
import socket
s = socket.socket(socket.AF_INET6); s.bind(("::", 8000)); s.listen()
c, a = s.accept(); c.sendall(("got %s:%d local %s:%d\n" % (a[:2] + c.getsockname()[:2])).encode()); c.close()' 2>"$T/sd2.log"
	wait_for_line "$T/sd1.log" "Listening on"
	wait_for_line "$T/sd2.log" "Listening on"
	# the program starts only at the first connection (python with the
	# library: seconds on a loaded machine), hence the long bound
	run -0 timeout 20 nc 127.0.0.1 "$port" </dev/null
	assert_output --regexp '^127.0.0.1 got 127.0.0.1:[0-9]+ local 127.0.0.1$'
	run -0 timeout 20 nc -U "$T/act.sock" </dev/null
	assert_output "got ::1:0 local :::8000"
}

@test "bind -> systemd: sockets picked by the address or path bound (TCP, Unix, UDP); children get no LISTEN_* and no passed fd" {
	command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate not installed"
	local p1 p2 p3 pu
	p1=$(free_port); p2=$(free_port); p3=$(free_port); pu=$(free_port)
	# four sockets in this order; the daemon binds the second, the first,
	# the Unix one (unlinking its path first, as daemons do) and never the fourth
	spawn "$T/act.log" systemd-socket-activate -l "127.0.0.1:$p1" -l "127.0.0.1:$p2" -l "$T/u.sock" \
		-l "127.0.0.1:$p3" env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp * -> systemd" python3 -c '
import os, socket, subprocess, sys
p1, p2, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
b = socket.socket(); b.bind(("127.0.0.1", p2)); b.listen()
a = socket.socket(); a.bind(("0.0.0.0", p1)); a.listen()
u = socket.socket(socket.AF_UNIX)
if os.path.exists(path): os.unlink(path)
u.bind(path); u.listen()
print(subprocess.run([sys.executable, "-c", """
import os
print("child env", " ".join(sorted(k for k in os.environ if k.startswith("LISTEN_"))) or "-")
def sock(f):
    try: return os.readlink("/proc/self/fd/" + f).startswith("socket:")
    except OSError: return False
socks = [f for f in os.listdir("/proc/self/fd") if sock(f)]
print("child sockets", " ".join(sorted(socks)) or "-")"""], capture_output=True, text=True).stdout, end="", flush=True)
for s in (b, a, u):
    c, _ = s.accept(); c.sendall(("%r\n" % (s.getsockname(),)).encode()); c.close()
' "$p1" "$p2" "$T/u.sock"
	wait_for_line "$T/act.log" "Listening on 127.0.0.1:$p3"
	run -0 timeout 5 nc 127.0.0.1 "$p2" </dev/null
	assert_output "('127.0.0.1', $p2)"
	run -0 timeout 5 nc 127.0.0.1 "$p1" </dev/null
	assert_output "('127.0.0.1', $p1)"
	run -0 timeout 5 nc -U "$T/u.sock" </dev/null
	assert_output "'$T/u.sock'"
	run -0 grep -e '^child' "$T/act.log"
	assert_output $'child env -\nchild sockets -'

	# a UDP daemon: the datagram socket passed, answered from it
	spawn "$T/udp.log" systemd-socket-activate --datagram -l "127.0.0.1:$pu" env LD_PRELOAD="$LIB" \
		SOCKGATE_RULE="bind udp *:$pu -> systemd" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
d, a = s.recvfrom(100); s.sendto(b"udp " + d + b" " + str(s.getsockname()).encode(), a)' "$pu"
	wait_for_line "$T/udp.log" "Listening on 127.0.0.1:$pu"
	run -0 timeout 10 python3 -c '
import socket, sys
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(8)
c.sendto(b"ping", ("127.0.0.1", int(sys.argv[1]))); print(c.recv(100).decode())' "$pu"
	assert_output "udp ping ('127.0.0.1', $pu)"
}

@test "bind -> systemd: a daemon that closes the fds it inherited first (close() loop, close_range(), closefrom()) still gets the passed socket" {
	command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate not installed"
	# as sshd and many daemons start: every inherited fd from 3 closed, then
	# socket() (which gets fd 3 again) and bind()
	cat >"$T/d.py" <<'EOF'
import ctypes, os, socket, sys
if sys.argv[1] == "close":
    for fd in range(3, 64):
        try:
            os.close(fd)
        except OSError:
            pass
elif sys.argv[1] == "closerange":
    os.closerange(3, 64)        # close_range(3, 63, 0) in python 3.11 (strace)
else:
    ctypes.CDLL(None).closefrom(3)
s = socket.socket(); s.bind(("0.0.0.0", 8000)); s.listen()
c, a = s.accept(); c.sendall(("%s fd %d port %d\n" % (sys.argv[1], s.fileno(), s.getsockname()[1])).encode()); c.close()
EOF
	local mode port py=/usr/bin/python3
	[ -x "$py" ] || py=python3	# not a version manager's shim: a second per start on a loaded machine
	# four free ports in one start
	local ports=($("$py" -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'))
	for mode in close closerange closefrom; do
		port=${ports[0]}
		ports=("${ports[@]:1}")
		spawn "$T/$mode.log" systemd-socket-activate -l "127.0.0.1:$port" env LD_PRELOAD="$LIB" \
			SOCKGATE_RULE="bind tcp *:8000 -> systemd" "$py" "$T/d.py" "$mode"
		wait_for_line "$T/$mode.log" "Listening on"
		run -0 timeout 20 nc 127.0.0.1 "$port" </dev/null
		assert_output "$mode fd 3 port $port"
	done
	# the library's copies are its own: the program's close() of one is EBADF, as of an fd never
	# opened; its dup2() onto one replaces nothing of the library's
	port=${ports[0]}
	spawn "$T/own.log" systemd-socket-activate -l "127.0.0.1:$port" env LD_PRELOAD="$LIB" \
		SOCKGATE_RULE="bind tcp *:8000 -> systemd" "$py" -c '
import os, socket
for f in sorted(int(f) for f in os.listdir("/proc/self/fd")):
    if f > 63 and os.readlink("/proc/self/fd/%d" % f).startswith("socket:"):
        try:
            os.close(f); print("closed", f, flush=True)
        except OSError as e:
            print("close", e.strerror, flush=True)
        os.dup2(0, f)
os.closerange(3, 64)
s = socket.socket(); s.bind(("0.0.0.0", 8000)); s.listen()
c, a = s.accept(); c.sendall(b"still there\n"); c.close()'
	wait_for_line "$T/own.log" "Listening on"
	run -0 timeout 20 nc 127.0.0.1 "$port" </dev/null
	assert_output "still there"
	run -0 grep -E '^(close|closed) ' "$T/own.log"
	assert_output "close Bad file descriptor"
}

@test "bind udp -> unix: a UDP daemon (socketserver) on port 0 answers each sender; the port it got is in the path and getsockname()" {
	export SOCKGATE_RULE="bind udp * -> unix $T/udp-%p.sock"
	spawn "$T/udp.log" env LD_PRELOAD="$LIB" python3 -c '
import socketserver
class H(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(b"re:" + data + (" from %s:%d" % self.client_address).encode(), self.client_address)
with socketserver.UDPServer(("0.0.0.0", 0), H) as s:
    print("bound", s.socket.getsockname()[1], flush=True)
    s.serve_forever()'
	wait_for_line "$T/udp.log" "^bound"
	port=$(sed -n 's/^bound //p' "$T/udp.log")
	[ "$port" -gt 0 ]
	[ -S "$T/udp-$port.sock" ]
	# a preloaded UDP client redirected there, twice (two sockets, two senders), and socat
	SOCKGATE_RULE="connect udp 10.1.2.3:53 -> unix $T/udp-$port.sock" run -0 pre timeout 10 python3 -c '
import socket
for i in range(2):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(5)
    c.sendto(b"q%d" % i, ("10.1.2.3", 53)); print(*c.recvfrom(100))'
	assert_output $'b\'re:q0 from 127.0.0.1:1\' (\'10.1.2.3\', 53)\nb\'re:q1 from 127.0.0.1:2\' (\'10.1.2.3\', 53)'
	run -0 timeout 5 socat -t 2 - "UNIX-SENDTO:$T/udp-$port.sock,bind=$T/cl.sock" <<<"socat"
	assert_output $'re:socat\n from 127.0.0.1:3'
}

@test "bind tcp -> unix on port 0: a free port, in the path and in getsockname(); curl gets the answer" {
	export SOCKGATE_RULE="bind tcp * -> unix $T/web-%p.sock"
	spawn "$T/web.log" env LD_PRELOAD="$LIB" python3 -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("port %d\n" % self.server.socket.getsockname()[1]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print("bound", s.socket.getsockname()[1], flush=True)
s.serve_forever()'
	wait_for_line "$T/web.log" "^bound"
	port=$(sed -n 's/^bound //p' "$T/web.log")
	[ "$port" -gt 0 ]
	run -0 curl -sS --max-time 5 --unix-socket "$T/web-$port.sock" http://x/
	assert_output "port $port"
}

@test "inherited across exec: a receiver, a %p-template Unix listener and an abstract IPv6 one are recognised by their paths in the new program" {
	[ -x "$BUILD/sockgate-server" ] || skip "sockgate-server not built"
	server r8001
	# the parent binds and listens, then execs a child that gets both fds;
	# the receiver's socket is $T/r8001.sock (the server sends there)
	export SOCKGATE_RULE="bind tcp *:8001 -> fdpass $T/r%p.sock; bind tcp 127.0.0.1:8002 -> unix $T/u%p.sock; bind tcp [::1]:8003 -> abstract sg-adopt-$$-%p"
	bg env LD_PRELOAD="$LIB" python3 -c '
import socket, subprocess, sys
a = socket.socket(); a.bind(("0.0.0.0", 8001)); a.listen()
b = socket.socket(); b.bind(("127.0.0.1", 8002)); b.listen()
d = socket.socket(socket.AF_INET6); d.bind(("::1", 8003)); d.listen()
u = socket.socket(socket.AF_UNIX); u.connect(sys.argv[2]); u.sendall(b"before exec")
c = b.accept()[0]   # a connection, not a listener: the child must not take it for one
subprocess.run([sys.executable, "-c", """
import socket, sys
out = open(sys.argv[1], "w", buffering=1)
a = socket.socket(fileno=int(sys.argv[2])); b = socket.socket(fileno=int(sys.argv[3]))
for s in (a, b, socket.socket(fileno=int(sys.argv[5]))):
    out.write("%s %s:%d\\n" % ((s.family.name,) + s.getsockname()[:2]))
c = socket.socket(fileno=int(sys.argv[4]))
out.write("connection %s, peer %r: %r\\n" % (c.family.name, c.getpeername(), c.recv(100)))
out.write("waiting\\n")
c, peer = a.accept()
out.write("receiver accepted from %s:%d\\n" % peer)
c.sendall(b"hello from the exec child\\n"); c.close()
c, peer = b.accept()
out.write("listener accepted from %s:%d: %r\\n" % (peer + (c.recv(100),)))
""", sys.argv[1], str(a.fileno()), str(b.fileno()), str(c.fileno()), str(d.fileno())], pass_fds=[a.fileno(), b.fileno(), c.fileno(), d.fileno()])' \
		"$T/child.log" "$T/u8002.sock"
	wait_for_line "$T/child.log" waiting
	run -0 python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
print(c.getsockname()[1]); print(c.makefile().readline().strip())' "$SPORT"
	local cport=${lines[0]}
	assert_line "hello from the exec child"
	python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"over unix")' "$T/u8002.sock"
	wait_for_line "$T/child.log" "listener accepted"
	run -0 cat "$T/child.log"
	assert_output "AF_INET 0.0.0.0:8001
AF_INET 127.0.0.1:8002
AF_INET6 ::1:8003
connection AF_UNIX, peer '': b'before exec'
waiting
receiver accepted from 127.0.0.1:$cport
listener accepted from 127.0.0.1:0: b'over unix'"
}

@test "bind -> unix: bind() makes the Unix socket at once; a second program binding the same rule gets EADDRINUSE from bind()" {
	export SOCKGATE_RULE="bind tcp 127.0.0.1:8004 -> unix $T/once.sock"
	run -0 pre python3 -c '
import errno, os, socket, stat, sys
a = socket.socket(); a.bind(("127.0.0.1", 8004))
print("after bind:", stat.S_ISSOCK(os.stat(sys.argv[1]).st_mode), a.getsockname())
b = socket.socket()
try:
    b.bind(("127.0.0.1", 8004))
    print("second bind: ok")
except OSError as e:
    print("second bind:", errno.errorcode[e.errno])
a.listen()
print("listening:", a.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))' "$T/once.sock"
	assert_output "after bind: True ('127.0.0.1', 8004)
second bind: EADDRINUSE
listening: 1"
}

@test "receiver: a passed file and a socket from a uid not allowed never come out of accept(), and are logged; sender= allows that uid" {
	chmod 755 "$T"
	cp "$TOP/tests/tools/pass_sock.py" "$T/"
	echo secret >"$T/data"
	bg env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 127.0.0.1:8091 -> fdpass $T/a.sock mode=0666; bind tcp 127.0.0.1:8092 -> fdpass $T/b.sock mode=0666 sender=65534" python3 -c '
import socket, stat, os, sys
out = open(sys.argv[1], "w", buffering=1)
ls = []
for p in (8091, 8092):
    s = socket.socket(); s.bind(("127.0.0.1", p)); s.listen(); ls.append(s)
out.write("listening\n")
for s in ls:
    c, a = s.accept()
    out.write("accepted on %d: socket %s family %d\n" % (s.getsockname()[1], stat.S_ISSOCK(os.fstat(c.fileno()).st_mode), c.family))
' "$T/rx.log" 2>"$T/rx.err"
	wait_for_line "$T/rx.log" listening
	"$SG" send-fd --open "$T/data" "$T/a.sock"
	wait_for_line "$T/rx.err" "^libsockgate: $T/a.sock: refused a passed fd from pid [0-9]* uid 0 gid 0: not a socket$"
	setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 "$T/pass_sock.py" "$T/a.sock"
	wait_for_line "$T/rx.err" "^libsockgate: $T/a.sock: refused a passed fd from pid [0-9]* uid 65534 gid 65534: a sender not allowed"
	python3 "$T/pass_sock.py" "$T/a.sock"
	setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 "$T/pass_sock.py" "$T/b.sock"
	wait "${PIDS[0]}"
	run -0 cat "$T/rx.log"
	assert_output "listening
accepted on 8091: socket True family 2
accepted on 8092: socket True family 2"
	run -0 grep -c refused "$T/rx.err"
	assert_output 2
}

@test "receiver: a passed UDP socket, a Unix socket and an unconnected TCP socket never come out of accept() and are logged by what they are; a TCP connection does" {
	cp "$TOP/tests/tools/pass_sock.py" "$T/"
	bg env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 127.0.0.1:8094 -> fdpass $T/k.sock" python3 -c '
import socket, sys
out = open(sys.argv[1], "w", buffering=1)
s = socket.socket(); s.bind(("127.0.0.1", 8094)); s.listen()
out.write("listening\n")
c, a = s.accept()
out.write("accepted: type %d family %d peer %s\n" % (c.type, c.family, a[0]))
' "$T/rx.log" 2>"$T/rx.err"
	wait_for_line "$T/rx.log" listening
	run -0 python3 "$T/pass_sock.py" "$T/k.sock" udp
	wait_for_line "$T/rx.err" "^libsockgate: $T/k.sock: refused a passed fd from pid [0-9]* uid 0 gid 0: not a stream socket$"
	run -0 python3 "$T/pass_sock.py" "$T/k.sock" unix
	wait_for_line "$T/rx.err" "^libsockgate: $T/k.sock: refused a passed fd from pid [0-9]* uid 0 gid 0: not an inet socket$"
	run -0 python3 "$T/pass_sock.py" "$T/k.sock" unconnected
	wait_for_line "$T/rx.err" "^libsockgate: $T/k.sock: refused a passed fd from pid [0-9]* uid 0 gid 0: not a connection (an unconnected socket)$"
	run -0 python3 "$T/pass_sock.py" "$T/k.sock" tcp
	wait "${PIDS[0]}"
	run -0 cat "$T/rx.log"
	assert_output "listening
accepted: type 1 family 2 peer 127.0.0.1"
	run -0 grep -c refused "$T/rx.err"
	assert_output 3
}

@test "receiver: a passed TCP listening socket takes the receiver's place: accept() takes its connections with their real addresses, epoll registrations kept, the socket file removed" {
	cp "$TOP/tests/tools/pass_sock.py" "$T/"
	bg env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 127.0.0.1:8095 -> fdpass $T/l.sock" python3 -c '
import select, socket, sys
out = open(sys.argv[1], "w", buffering=1)
s = socket.socket(); s.bind(("127.0.0.1", 8095)); s.listen(); s.setblocking(False)
ep = select.epoll(); ep.register(s.fileno(), select.EPOLLIN)
out.write("listening\n")
n = 0
while n < 3:
    ep.poll(10)
    try:
        c, a = s.accept()
    except BlockingIOError:
        continue
    n += 1
    out.write("accepted from %s:%d\n" % a)
    c.sendall(b"hello %d\n" % n); c.close()
' "$T/rx.log" 2>"$T/rx.err"
	wait_for_line "$T/rx.log" listening
	run -0 python3 "$T/pass_sock.py" "$T/l.sock" listener
	port=$output
	local k ports=""
	for k in 1 2 3; do
		run -0 python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
print(c.getsockname()[1], c.recv(100).decode().strip())' "$port"
		assert_output --regexp "^[0-9]+ hello $k$"
		ports+=" ${output%% *}"
	done
	wait "${PIDS[0]}"
	run -0 sed 1d "$T/rx.log"
	assert_output "$(for p in $ports; do echo "accepted from 127.0.0.1:$p"; done)"
	[ ! -e "$T/l.sock" ]
	run -0 cat "$T/rx.err"
	assert_output ""
}

@test "receiver: mode= is the socket file's mode from the moment bind() makes it (fchmod before bind), under umask 0" {
	command -v strace >/dev/null || skip "strace not installed"
	(umask 0; export T; exec strace -f -o "$T/trace" -e trace=bind,chmod,fchmod,fchmodat env LD_PRELOAD="$LIB" \
		SOCKGATE_RULE="bind tcp 127.0.0.1:8093 -> fdpass $T/m.sock mode=0600" python3 -c '
import os, socket
s = socket.socket(); s.bind(("127.0.0.1", 8093)); print("%o" % (os.stat(os.environ["T"] + "/m.sock").st_mode & 0o7777))') >"$T/out" 2>&1
	run -0 cat "$T/out"
	assert_output 600
	run -0 grep -E -o '(fchmod|bind|chmod|fchmodat)\([^)]*(m\.sock|, 0[0-7]+)[^)]*\)' "$T/trace"
	assert_output --regexp "^fchmod\([0-9]+, 0600\)
bind\([0-9]+, \{sa_family=AF_UNIX, sun_path=\"$T/m.sock\"\}, [0-9]+\)
(chmod\(|fchmodat\(AT_FDCWD, )\"/proc/self/fd/[0-9]+\", 0600\)$"
}

@test "bind -> unix: an epoll registration made before bind() and listen() fires when a client connects (ip2unix#6)" {
	need_netns
	bg unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp *:8081 -> unix $T/ep.sock" python3 -c '
import select, socket
s = socket.socket(); s.setblocking(False)
ep = select.epoll(); ep.register(s.fileno(), select.EPOLLIN)
s.bind(("0.0.0.0", 8081)); s.listen(5)
print("listening", flush=True)
ev = ep.poll(10)
print("events", [(fd == s.fileno(), bool(e & select.EPOLLIN)) for fd, e in ev], flush=True)
c, p = s.accept(); c.setblocking(True)
print("accepted", p, c.recv(100).decode(), flush=True); c.sendall(b"served\n")' >"$T/ep.out"
	wait_for_line "$T/ep.out" listening
	run -0 python3 -c '
import socket, sys
u = socket.socket(socket.AF_UNIX); u.settimeout(5); u.connect(sys.argv[1]); u.sendall(b"hello")
print(u.recv(100).decode().strip())' "$T/ep.sock"
	assert_output "served"
	run -0 cat "$T/ep.out"
	assert_output $'listening\nevents [(True, True)]\naccepted (\'127.0.0.1\', 0) hello'
}

@test "bind -> unix: a daemon binding 0.0.0.0 and [::] (V6ONLY) to one rule gets both binds; Unix clients reach the AF_INET socket" {
	need_netns
	bg unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp *:8080 -> unix $T/d.sock" python3 -c '
import select, socket
a = socket.socket(socket.AF_INET); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
a.bind(("0.0.0.0", 8080)); a.listen(5)
b = socket.socket(socket.AF_INET6); b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
b.bind(("::", 8080)); b.listen(5)
print("bound", a.getsockname(), b.getsockname()[:2], flush=True)
for _ in range(2):
    r, _, _ = select.select([a, b], [], [], 10)
    c, p = r[0].accept(); c.sendall(("on %s\n" % r[0].family.name).encode()); c.close()' >"$T/d.out"
	wait_for_line "$T/d.out" bound
	run -0 cat "$T/d.out"
	assert_output "bound ('0.0.0.0', 8080) ('::', 8080)"
	for _ in 1 2; do
		run -0 python3 -c '
import socket, sys
u = socket.socket(socket.AF_UNIX); u.settimeout(5); u.connect(sys.argv[1]); print(u.recv(100).decode().strip())' "$T/d.sock"
		assert_output "on AF_INET"
	done
}

@test "bind -> unix proxy-v2: a daemon that closed fd 0 gets its connection as fd 0, with the header's addresses" {
	need_netns
	bg unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 127.0.0.1:8093 -> unix $T/z.sock proxy-v2" python3 -c '
import os, socket
a = socket.socket(); a.bind(("127.0.0.1", 8093)); a.listen()
os.close(0)
print("ready", flush=True)
c, p = a.accept(); print("accepted fd", c.fileno(), p, c.getsockname(), flush=True); c.sendall(b"zero\n"); c.close()' >"$T/z.out"
	wait_for_line "$T/z.out" ready
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/z.sock proxy-v2 source=192.0.2.44:5555"
	run -0 pre unshare -n python3 -c '
import socket
print(socket.create_connection(("10.1.2.3", 80), timeout=5).recv(200).decode().strip())'
	assert_output "zero"
	wait_for_line "$T/z.out" "accepted"
	run -0 sed -n 2p "$T/z.out"
	assert_output "accepted fd 0 ('192.0.2.44', 5555) ('10.1.2.3', 80)"
}

@test "UDP reject rules in the library: sendto, sendmsg and connect get the rule's errno; the program's other UDP still goes to the kernel" {
	need_netns
	# in a namespace of its own (lo up for the echo): were the rule not
	# applied, nothing could leave for 10.9.0.1
	export SOCKGATE_RULE="connect udp 10.9.0.0/16 -> reject EACCES"
	run -0 unshare -n sh -c 'ip link set lo up && exec env LD_PRELOAD="$1" python3 -c "$2"' sh "$LIB" '
import socket, threading
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("127.0.0.1", 0))
def echo():
    while True:
        d, a = e.recvfrom(1500); e.sendto(b"udp:" + d, a)
threading.Thread(target=echo, daemon=True).start()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
for name, call in (("sendto", lambda: s.sendto(b"q", ("10.9.0.1", 53))),
                   ("sendmsg", lambda: s.sendmsg([b"q"], [], 0, ("10.9.0.1", 53))),
                   ("connect", lambda: s.connect(("10.9.0.1", 53)))):
    try:
        call(); print(name, "sent")
    except OSError as x:
        print(name, x.strerror)
s.sendto(b"loop", e.getsockname()); print(s.recvfrom(100)[0].decode())'
	assert_output $'sendto Permission denied\nsendmsg Permission denied\nconnect Permission denied\nudp:loop'
}
