#!/usr/bin/env bats
# core/proxyv2 against real peers: headers we build are read by nginx
# (listen ... proxy_protocol) and haproxy (accept-proxy, which checks
# CRC32C); headers haproxy writes (send-proxy, send-proxy-v2 with crc32c and
# unique-id, health checks) are read by us. All on Unix sockets under $T or
# loopback ports; the test tool is tests/tools/proxy-peer.c.

load helper
bats_require_minimum_version 1.5.0

PP=$BUILD/tools/proxy-peer
GET=$'GET / HTTP/1.0\r\n\r\n'

# port_on ADDR: a TCP port nobody listens on right now at ADDR
port_on() {
	python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}

start_nginx() {
	cat > "$T/nginx.conf" <<-EOF
	daemon off;
	master_process off;
	pid $T/nginx.pid;
	error_log $T/nginx-error.log info;
	events { worker_connections 64; }
	http {
		log_format pp '\$proxy_protocol_addr \$proxy_protocol_port \$proxy_protocol_server_addr \$proxy_protocol_server_port';
		access_log $T/access.log pp;
		client_body_temp_path $T;
		server {
			listen unix:$T/nginx.sock proxy_protocol;
			location / { return 200 "hello from nginx\n"; }
		}
	}
	EOF
	bg nginx -c "$T/nginx.conf" -p "$T"
	wait_for_file "$T/nginx.sock"
}

# start_recv [ARGS]: proxy-peer recv on $T/r.sock, its lines in $T/recv.out
start_recv() {
	bg "$PP" recv "$@" "unix:$T/r.sock" > "$T/recv.out"
	wait_for_line "$T/recv.out" '^listening unix:'
}

# start_haproxy SERVER-OPTIONS [FRONTEND-BIND]: frontend on 127.0.0.3:$HPORT
# (or the given bind line), backend to proxy-peer's $T/r.sock
start_haproxy() {
	HPORT=$(port_on 127.0.0.3)
	cat > "$T/haproxy.cfg" <<-EOF
	global
		stats socket $T/haproxy-stats.sock
	defaults
		mode tcp
		timeout connect 5s
		timeout client 5s
		timeout server 5s
	frontend f
		bind ${2:-127.0.0.3:$HPORT}
		unique-id-format uid-%cp
		default_backend b
	backend b
		server s1 unix@$T/r.sock $1
	EOF
	bg haproxy -f "$T/haproxy.cfg" -db
	wait_for_file "$T/haproxy-stats.sock"
}

# client_from SRCIP PORT: connect to 127.0.0.3:PORT from SRCIP, send
# "hello", half-close; prints "client IP:PORT" then the reply
client_from() {
	python3 - "$1" "$2" <<-'EOF'
	import socket, sys
	s = socket.socket()
	s.bind((sys.argv[1], 0))
	s.connect(("127.0.0.3", int(sys.argv[2])))
	print("client %s:%d" % s.getsockname())
	s.sendall(b"hello")
	s.shutdown(socket.SHUT_WR)
	d = b""
	while True:
	    x = s.recv(4096)
	    if not x:
	        break
	    d += x
	print(d.decode().strip())
	EOF
}

@test "nginx logs the addresses of our v2 header (IPv4, with CRC32C, AUTHORITY, UNIQUE_ID)" {
	start_nginx
	run -0 "$PP" send -c -a www.example.org -u id-1 203.0.113.7:40001 198.51.100.9:8443 "unix:$T/nginx.sock" <<< "$GET"
	assert_line --index 0 --partial "HTTP/1.1 200 OK"
	assert_line "hello from nginx"
	wait_for_line "$T/access.log" .
	run cat "$T/access.log"
	assert_output "203.0.113.7 40001 198.51.100.9 8443"
}

@test "nginx logs the addresses of our v2 header over IPv6" {
	start_nginx
	run -0 "$PP" send '[2001:db8::7]:65535' '[2001:db8:1::9]:443' "unix:$T/nginx.sock" <<< "$GET"
	assert_line "hello from nginx"
	wait_for_line "$T/access.log" .
	run cat "$T/access.log"
	assert_output "2001:db8::7 65535 2001:db8:1::9 443"
}

@test "nginx logs the addresses of our v1 line (TCP4 and TCP6)" {
	start_nginx
	run -0 "$PP" send -1 192.0.2.44:1234 10.9.8.7:80 "unix:$T/nginx.sock" <<< "$GET"
	assert_line "hello from nginx"
	run -0 "$PP" send -1 '[::ffff:192.0.2.45]:1' '[fd00::1]:9' "unix:$T/nginx.sock" <<< "$GET"
	assert_line "hello from nginx"
	wait_for_line "$T/access.log" fd00
	run cat "$T/access.log"
	assert_line --index 0 "192.0.2.44 1234 10.9.8.7 80"
	assert_line --index 1 "::ffff:192.0.2.45 1 fd00::1 9"
}

@test "nginx serves a LOCAL header and logs no proxied address" {
	start_nginx
	run -0 "$PP" send -L -c 192.0.2.1:1 192.0.2.2:2 "unix:$T/nginx.sock" <<< "$GET"
	assert_line "hello from nginx"
	wait_for_line "$T/access.log" .
	run cat "$T/access.log"
	refute_output --partial 192.0.2
}

@test "haproxy send-proxy-v2 with crc32c and unique-id: real client address, unique id, valid CRC32C" {
	start_recv -r
	start_haproxy "send-proxy-v2 proxy-v2-options crc32c,unique-id"
	run -0 client_from 127.0.0.5 "$HPORT"
	client=${lines[0]#client }
	cport=${client##*:}
	assert_equal "$client" "127.0.0.5:$cport"
	# the reply is what proxy-peer parsed, sent back through haproxy
	assert_line --index 1 "v2 PROXY stream src=127.0.0.5:$cport dst=127.0.0.3:$HPORT unique_id=uid-$cport crc32c=yes header=47 reads=3 data=hello"
}

@test "haproxy send-proxy (v1): real client address parsed" {
	start_recv -r
	start_haproxy "send-proxy"
	run -0 client_from 127.0.0.6 "$HPORT"
	cport=${lines[0]##*:}
	assert_line --index 1 --regexp "^v1 PROXY stream src=127\.0\.0\.6:$cport dst=127\.0\.0\.3:$HPORT crc32c=no header=[0-9]+ reads=[0-9]+ data=hello$"
}

@test "haproxy health checks arrive as v2 LOCAL headers with a valid CRC32C" {
	start_recv -n 2
	start_haproxy "send-proxy-v2 proxy-v2-options crc32c check check-send-proxy inter 100ms"
	wait_for_line "$T/recv.out" '^v2 LOCAL' 10
	run grep '^v2 LOCAL' "$T/recv.out"
	assert_line --index 0 --regexp '^v2 LOCAL unspec src=- dst=- crc32c=yes header=[0-9]+ reads=[0-9]+ data=$'
}

@test "haproxy accept-proxy checks our CRC32C and passes the same addresses on" {
	start_recv -r -n 3
	start_haproxy "send-proxy-v2 proxy-v2-options crc32c" "unix@$T/front.sock accept-proxy"
	# a good header: haproxy takes its addresses as the client's
	run -0 "$PP" send -c 198.51.100.20:5555 203.0.113.30:443 "unix:$T/front.sock" <<< "payload"
	assert_output --regexp '^v2 PROXY stream src=198\.51\.100\.20:5555 dst=203\.0\.113\.30:443 crc32c=yes header=35 reads=[0-9]+ data=payload\\x0a$'
	# the same header written by hand, CRC32C computed independently
	# (680486e1): accepted; then with one CRC bit flipped: dropped
	cat > "$T/raw.py" <<-'EOF'
	import socket, sys
	h = bytes.fromhex("0d0a0d0a000d0a515549540a" "21110013" "c6336414cb00711e15b301bb" "030004")
	s = socket.socket(socket.AF_UNIX)
	s.connect(sys.argv[1])
	s.sendall(h + bytes.fromhex(sys.argv[2]) + b"raw")
	s.shutdown(socket.SHUT_WR)
	try:
	    d = s.recv(1000)
	except ConnectionResetError:
	    d = b""
	print("reply: %r" % d)
	EOF
	run -0 python3 "$T/raw.py" "$T/front.sock" 680486e1
	assert_output --regexp "^reply: b'v2 PROXY stream src=198\.51\.100\.20:5555 dst=203\.0\.113\.30:443 crc32c=yes .* data=raw"
	run -0 python3 "$T/raw.py" "$T/front.sock" 680486e0
	assert_output "reply: b''"
	# and a second good one arrives next, so the bad one never got through
	run -0 "$PP" send -c 198.51.100.21:6666 203.0.113.30:443 "unix:$T/front.sock" <<< "again"
	assert_output --partial "src=198.51.100.21:6666"
	run grep -c '^v2 ' "$T/recv.out"
	assert_output 3
}

@test "headers sent in 1-byte pieces are parsed without reading past them" {
	start_recv -r -n 3
	run -0 "$PP" send -k 1 -c -a host.example -N blue 10.0.0.1:1 10.0.0.2:2 "unix:$T/r.sock" <<< "after"
	# how many reads it takes depends on how the pieces coalesce; what counts
	# is that the header ends where it should and the data after it is whole
	assert_output --regexp '^v2 PROXY stream src=10\.0\.0\.1:1 dst=10\.0\.0\.2:2 authority=host\.example netns=blue crc32c=yes header=57 reads=[0-9]+ data=after\\x0a$'
	run -0 "$PP" send -k 1 -1 '[2001:db8::1]:80' '[2001:db8::2]:8080' "unix:$T/r.sock" <<< "v1"
	assert_output --regexp '^v1 PROXY stream src=\[2001:db8::1\]:80 dst=\[2001:db8::2\]:8080 crc32c=no header=44 reads=[0-9]+ data=v1\\x0a$'
	run -0 "$PP" send -k 7 -d unix:/run/client.sock unix:@server "unix:$T/r.sock" </dev/null
	assert_output --regexp '^v2 PROXY dgram src=unix:/run/client\.sock dst=unix:@server crc32c=no header=232 reads=[0-9]+ data=$'
}

@test "garbage, truncated and invalid headers on a real socket are refused" {
	start_recv -r -n 3
	run -0 python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); print(s.recv(999).decode().strip())' "$T/r.sock"
	assert_output --partial "invalid after 15 bytes: GET"
	# a v2 header cut off after 24 of its 28 bytes, then EOF
	run -0 python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(bytes.fromhex("0d0a0d0a000d0a515549540a2111000c0102030405060708")); s.shutdown(socket.SHUT_WR); print(s.recv(999).decode().strip())' "$T/r.sock"
	assert_output "eof after 24 bytes, needing 4 more"
	# version 3 is refused on the first read that holds its byte (the 13th;
	# the first read asks for 15, the shortest possible header)
	run -0 python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(bytes.fromhex("0d0a0d0a000d0a515549540a3111000c")); print(s.recv(999).decode().strip())' "$T/r.sock"
	assert_output 'invalid after 15 bytes: \x0d\x0a\x0d\x0a\x00\x0d\x0aQUIT\x0a1\x11\x00'
}
