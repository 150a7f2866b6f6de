#!/usr/bin/env bats
# u-relay-tproxy's users switch by changing LD_PRELOAD: their compiled rules
# file (URELAY_TPROXY_FILE, written here with python struct from the
# published layout by tests/tools/urt_file.py), their index files
# (URELAY_TPROXY_IDX_FILES) and gen-config.py text given to sockgate-asmgen.
# Real clients (curl) and servers (python's http.server on loopback, the
# Unix test server that logs PROXY headers).

load helper

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
URT=$TOP/tests/tools/urt_file.py

# httpd ADDR: python's http.server on ADDR and a free port (PORT), answering
httpd() {
	PORT=$(free_port)
	mkdir -p "$T/www"
	echo "tcp page" >"$T/www/index.html"
	bg python3 -m http.server --bind "$1" --directory "$T/www" "$PORT"
	local url="http://$1:$PORT/"
	case $1 in *:*) url="http://[$1]:$PORT/" ;; esac
	wait_for_http "$url"
}

# urt CMD...: CMD under the library with the rules file $T/r.bin
urt() {
	URELAY_TPROXY_FILE=$T/r.bin LD_PRELOAD=$LIB "$@"
}

@test "type 2: curl reaches a Unix server named by #//6_ #//7_ #//P_, which reads a PROXY v2 header with the destination and a zero source" {
	userver w02561.00515.08080 --proxy
	python3 "$URT" rules "$T/r.bin" \
		"fe8f:0:1::/48|2|/run/u-relay/64-#//3_.sock" \
		"::ffff:10.1.2.0/120|2|$T/w#//6_.#//7_.#//P_.sock"
	run -0 urt curl -sS http://10.1.2.3:8080/
	assert_output "hello from unix"
	run -0 cat "$T/w02561.00515.08080.log"
	assert_line "hdr dst=10.1.2.3:8080 proto=stream src=0.0.0.0:0"
	assert_line "http GET / HTTP/1.1"
}

@test "types 1 and 0, first match wins: 10.1.2.3 to a Unix server without a header, 127.0.0.0/8 left alone to real TCP" {
	httpd 127.0.0.1
	userver plain
	python3 "$URT" rules "$T/r.bin" \
		"::ffff:127.0.0.0/104|0|" \
		"::/0|1|$T/plain.sock"
	run -0 urt curl -sS http://10.1.2.3/
	assert_output "hello from unix"
	run -0 urt curl -sS "http://127.0.0.1:$PORT/"
	assert_output "tcp page"
	run -0 grep -c . "$T/plain.log"
	assert_output 2
	run -0 cat "$T/plain.log"
	assert_line "http GET / HTTP/1.1"
	refute_line --partial "hdr"
}

@test "type 3: 10.9.0.0/16 translated to 127.0.0.0/16 and fd00:9::/64 to ::/64 (host bits kept, SO_BINDTODEVICE lo); a missing device fails the connect" {
	httpd 127.0.0.1
	python3 "$URT" rules "$T/r.bin" \
		"::ffff:10.9.0.0/112|3|::ffff:127.0.0.0" \
		"fd00:9::/64|3|::,lo" \
		"fd00:8::/64|3|::,nosuchdev0"
	run -0 urt curl -sS "http://10.9.0.1:$PORT/"
	assert_output "tcp page"
	kill "${PIDS[-1]}"
	httpd ::1
	run -0 urt curl -sS "http://[fd00:9::1]:$PORT/"
	assert_output "tcp page"
	run -7 urt curl -sS "http://[fd00:8::1]:$PORT/"
	run -0 "$SG" asmgen --dump "$T/r.bin"
	assert_output "connect tcp 10.9.0.0/16 -> translate 127.0.0.0/16
connect tcp [fd00:9::/64] -> translate ::/64 dev=lo
connect tcp [fd00:8::/64] -> translate ::/64 dev=nosuchdev0"
}

@test "type 4: the AUTHORITY TLV names the destination from URELAY_TPROXY_IDX_FILES (a domain with '#', an index file); the address is left zero; no name, no connection" {
	userver t4 --proxy
	python3 "$URT" idx "$T/names.idx" 5=five.example.org 9=nine.example.org
	# index number from bits 8-15 of the destination, entry number from bits 0-7
	python3 "$URT" rules "$T/r.bin" "::ffff:10.7.0.0/112|4|1,0,8,0,0xff,0xff,0,0,0,0,0;$T/t4.sock"
	export URELAY_TPROXY_IDX_FILES="1,host-##.example;2=$T/names.idx"
	run -0 urt curl -sS http://10.7.1.42:8080/
	assert_output "hello from unix"
	run -0 urt curl -sS http://10.7.2.5:443/
	run -0 urt curl -sS http://10.7.2.9/
	run -7 urt curl -sS http://10.7.2.6/
	run -7 urt curl -sS http://10.7.3.5/
	run -0 cat "$T/t4.log"
	assert_line "hdr authority=host-2a.example dst=0.0.0.0:8080 proto=stream src=0.0.0.0:0"
	assert_line "hdr authority=five.example.org dst=0.0.0.0:443 proto=stream src=0.0.0.0:0"
	assert_line "hdr authority=nine.example.org dst=0.0.0.0:80 proto=stream src=0.0.0.0:0"
	[ "$(grep -c '^hdr' "$T/t4.log")" = 3 ]
}

@test "damaged files (bad magic, truncated, data offset past the end, index file cut): the program runs on, untouched, after one clear line" {
	httpd 127.0.0.1
	python3 "$URT" rules "$T/good.bin" "::/0|1|$T/nowhere.sock"
	python3 - "$T" <<-'EOF'
	import sys, struct
	t = sys.argv[1]
	good = open(t + "/good.bin", "rb").read()
	open(t + "/magic.bin", "wb").write(b"\xf2\x00\xa0\x1e" + good[4:])
	open(t + "/short.bin", "wb").write(good[:40])
	# entry 1's data offset (bytes 16+20) far past the end
	open(t + "/offset.bin", "wb").write(good[:36] + struct.pack(">I", 5000) + good[40:])
	EOF
	local f
	for f in magic short offset; do
		run -0 env URELAY_TPROXY_FILE="$T/$f.bin" LD_PRELOAD="$LIB" curl -sS "http://127.0.0.1:$PORT/"
		assert_line -n 0 --regexp "^libsockgate: URELAY_TPROXY_FILE: $T/$f.bin: .* \(no socket is redirected\)$"
		assert_line -n 1 "tcp page"
		[ "${#lines[@]}" = 2 ]
	done
	run -0 env URELAY_TPROXY_FILE="$T/magic.bin" LD_PRELOAD="$LIB" curl -s "http://127.0.0.1:$PORT/"
	assert_output --partial "bad magic 0xf200a01e (expected 0xf200a01f) (no socket is redirected)"
	run -0 env URELAY_TPROXY_FILE="$T/offset.bin" LD_PRELOAD="$LIB" curl -s "http://127.0.0.1:$PORT/"
	assert_output --partial "entry 1: data at 5048+32 runs past the end (4096 bytes)"
	python3 "$URT" idx "$T/names.idx" 5=five.example.org
	head -c 12 "$T/names.idx" >"$T/cut.idx"
	run -0 env URELAY_TPROXY_FILE="$T/good.bin" URELAY_TPROXY_IDX_FILES="2=$T/cut.idx" LD_PRELOAD="$LIB" \
		curl -sS "http://127.0.0.1:$PORT/"
	assert_line -n 0 "libsockgate: URELAY_TPROXY_IDX_FILES: $T/cut.idx: index file: 1 entries do not fit in 12 bytes (no socket is redirected)"
	assert_line -n 1 "tcp page"
}

@test "sockgate-asmgen --dump prints the sockgate rules of a compiled file; gen-config.py text (config-example.txt as published) compiles to the same rules" {
	cat >"$T/config.txt" <<-'EOF'
	# entries are evaluated sequentially
	# assign otherwise unusable IPv6 range to Universal Relay
	fe8f:0:1::/48 '/run/u-relay/64-#//3_.sock' 2
	# larger range for Universal Relay
	fe8f:0:100::/40 '/run/u-relay/48-#//4_.sock' 2
	# for testing IPv6 Things
	2602:806:a003:40e::/64 '/run/u-relay/ipv6_things.sock' 2
	# matches socketbox-preload SKBOX_ENABLE_CONNECT behavior
	fe8f::3:0:0/96 '/run/socketbox2/#//6_/#//7__#//P_' 1
	# ignore localhost for NAT64
	::ffff:127.0.0.0/104 '' 0
	# Kasper Dupont's public NAT64 service https://nat64.net
	# ::ffff:0:0/96 2a00:1098:2b::1:0:0 3
	EOF
	python3 "$URT" rules "$T/r.bin" \
		"fe8f:0:1::/48|2|/run/u-relay/64-#//3_.sock" \
		"fe8f:0:100::/40|2|/run/u-relay/48-#//4_.sock" \
		"2602:806:a003:40e::/64|2|/run/u-relay/ipv6_things.sock" \
		"fe8f::3:0:0/96|1|/run/socketbox2/#//6_/#//7__#//P_" \
		"::ffff:127.0.0.0/104|0|"
	local want="connect tcp [fe8f:0:1::/48] -> unix /run/u-relay/64-%3.sock proxy-v2 source=[::]:0
connect tcp [fe8f:0:100::/40] -> unix /run/u-relay/48-%4.sock proxy-v2 source=[::]:0
connect tcp [2602:806:a003:40e::/64] -> unix /run/u-relay/ipv6_things.sock proxy-v2 source=[::]:0
connect tcp [fe8f::3:0:0/96] -> unix /run/socketbox2/%6/%7_%P
connect tcp 127.0.0.0/8 -> pass"
	run -0 "$SG" asmgen --dump "$T/r.bin"
	assert_output "$want"
	run -0 "$SG" asmgen --dump "$T/config.txt"
	assert_output "$want"
	run -0 "$SG" asmgen --check "$T/config.txt"
	assert_output "$T/config.txt: 5 rules, ok"
	run -0 "$SG" asmgen "$T/config.txt" -o "$T/config.bin"
	run -0 "$SG" asmgen --dump "$T/config.bin"
	assert_output "$want"
	echo "fe8f::1/48 /x 2" >"$T/bad.txt"
	run -1 "$SG" asmgen --check "$T/bad.txt"
	assert_output "sockgate-asmgen: fatal: $T/bad.txt:1: 'fe8f::1/48' is not an IPv6 network (host bits must be clear)"
	head -c 100 "$T/r.bin" >"$T/cut.bin"
	run -1 "$SG" asmgen --dump "$T/cut.bin"
	assert_output "sockgate-asmgen: fatal: $T/cut.bin: u-relay-tproxy file: 5 entries need 176 bytes, the file has 100"
}

@test "the dumped rules behave as the file: the same connection through SOCKGATE_RULES, header and path alike" {
	userver w02561.00515.08080 --proxy
	python3 "$URT" rules "$T/r.bin" "::ffff:10.1.2.0/120|2|$T/w#//6_.#//7_.#//P_.sock"
	"$SG" asmgen --dump "$T/r.bin" >"$T/r.rules"
	run -0 env SOCKGATE_RULES="$T/r.rules" LD_PRELOAD="$LIB" curl -sS http://10.1.2.3:8080/
	assert_output "hello from unix"
	run -0 cat "$T/w02561.00515.08080.log"
	assert_line "hdr dst=10.1.2.3:8080 proto=stream src=0.0.0.0:0"
}

@test "flag 0x40000 (getsockname hack): a socket that is AF_UNIX underneath answers AF_INET6 [::]:0, an AF_INET one too; TCP sockets are untouched" {
	userver echo
	httpd 127.0.0.1
	python3 "$URT" rules "$T/r.bin" "::ffff:127.0.0.0/104|0|" "::/0|1|$T/echo.sock"
	URELAY_TPROXY_LOCAL_FLAGS=0x40000 run -0 urt python3 -c '
import socket, sys
import ctypes
s = socket.socket(socket.AF_INET); s.connect(("10.1.2.3", 80))
s.sendall(b"x\n"); s.recv(10)
# the whole answer, in a buffer big enough for it (the AF_INET socket gets an AF_INET6 address)
buf, n = ctypes.create_string_buffer(128), ctypes.c_uint(128)
ctypes.CDLL(None).getsockname(s.fileno(), buf, ctypes.byref(n))
print(n.value, buf.raw[:n.value].hex(), s.getpeername())
u = socket.socket(socket.AF_UNIX); u.bind(sys.argv[1]); print(u.getsockname())
t = socket.socket(socket.AF_INET); t.connect(("127.0.0.1", int(sys.argv[2]))); print(t.getsockname()[0])' "$T/own.sock" "$PORT"
	assert_output "28 0a00$(printf '0%.0s' {1..52}) ('10.1.2.3', 80)
('::', 0, 0, 0)
127.0.0.1"
	run -0 urt python3 -c '
import socket
s = socket.socket(socket.AF_INET); s.connect(("10.1.2.3", 80)); print(s.getsockname())'
	assert_output "('0.0.0.0', 0)"
}
