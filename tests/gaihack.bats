#!/usr/bin/env bats
# u-relay-tproxy's gai-hack (URELAY_TPROXY_LOCAL_FLAGS 0x80000 and the
# PJTL_GAIHACK_* variables) with curl and python's getaddrinfo: entries of
# a static directory (files and symlinks) before and after the real
# resolver, wildcards, the SNI proxy, the log file, AI_ADDRCONFIG cleared.
# Names that reach the real resolver are asked inside unshare -n, so no
# query leaves the machine.

load helper

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# gai NAME...: what getaddrinfo answers for each NAME (port 80, TCP), under the library with gai-hack
GAI='import socket, sys
for n in sys.argv[1:]:
    try:
        print(n, sorted({a[4][0] for a in socket.getaddrinfo(n.encode(), 80, proto=socket.IPPROTO_TCP)}))
    except socket.gaierror as e:
        print(n, e.errno == socket.EAI_NODATA and "NODATA" or e.errno == socket.EAI_AGAIN and "AGAIN" or e)'

gai() {
	need_netns
	unshare -n env URELAY_TPROXY_LOCAL_FLAGS=0x80000 PJTL_GAIHACK_STATICDIR="$T/static" LD_PRELOAD="$LIB" \
		python3 -c "$GAI" "$@"
}

setup() {
	T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/sg.XXXXXX")
	PIDS=()
	mkdir "$T/static"
	printf 'X,127.0.0.7\n' >"$T/static/h,www.example.test"
	printf 'X,127.0.0.8\n' >"$T/static/H,wild.test"
	ln -s 'X,127.0.0.9' "$T/static/h,linked.test"
	printf 'X,127.0.0.10\n' >"$T/static/l,fallback.test"
	printf 'X,127.0.0.11\n' >"$T/static/L,lwild.test"
	printf 'X,127.0.0.1' >"$T/static/h,partial.test"
}

@test "gai-hack: h exact (file, symlink), names normalised, H wildcards (longest suffix first), l and L after the real resolver fails, then NODATA" {
	printf 'X,127.0.0.12\n' >"$T/static/H,b.wild.test"
	run -0 gai www.example.test ..WWW.Example.TEST.. linked.test a.b.wild.test x.wild.test fallback.test \
		q.lwild.test nowhere.test partial.test
	assert_output "www.example.test ['127.0.0.7']
..WWW.Example.TEST.. ['127.0.0.7']
linked.test ['127.0.0.9']
a.b.wild.test ['127.0.0.12']
x.wild.test ['127.0.0.8']
fallback.test ['127.0.0.10']
q.lwild.test ['127.0.0.11']
nowhere.test NODATA
partial.test AGAIN"
}

@test "gai-hack: H,R and L,R catch every name; PJTL_GAIHACK_SNI_PROXY is the last resort and PJTL_GAIHACK_LOGFILE names what needed it; localhost is never sent there" {
	export PJTL_GAIHACK_SNI_PROXY=127.0.0.99 PJTL_GAIHACK_LOGFILE="$T/gai.log"
	run -0 gai nothing.test other.test.
	assert_output "nothing.test ['127.0.0.99']
other.test. ['127.0.0.99']"
	run -0 cat "$T/gai.log"
	assert_output 'sni_proxy_needed_for "nothing.test"
sni_proxy_needed_for "other.test"'
	printf 'X,127.0.0.20\n' >"$T/static/L,R"
	run -0 gai nothing.test
	assert_output "nothing.test ['127.0.0.20']"
	printf 'X,127.0.0.21\n' >"$T/static/H,R"
	run -0 gai fallback.test
	assert_output "fallback.test ['127.0.0.21']"
	rm "$T/static/H,R" "$T/static/L,R"
	run -0 gai x.localhost
	assert_output "x.localhost AGAIN"
	[ "$(wc -l <"$T/gai.log")" = 2 ]
}

@test "gai-hack: curl reaches the address an entry names, with AI_ADDRCONFIG cleared; literals and unflagged programs are left alone" {
	PORT=$(free_port)
	mkdir -p "$T/www"
	echo "static page" >"$T/www/index.html"
	bg python3 -m http.server --bind 127.0.0.7 --directory "$T/www" "$PORT"
	for ((i = 0; i < 200; i++)); do curl -s -o /dev/null "http://127.0.0.7:$PORT/" && break; sleep 0.05; done
	run -0 env URELAY_TPROXY_LOCAL_FLAGS=0x80000 PJTL_GAIHACK_STATICDIR="$T/static" LD_PRELOAD="$LIB" \
		curl -sS "http://www.example.test:$PORT/"
	assert_output "static page"
	# AI_ADDRCONFIG asked for, in a namespace with only loopback: still answered
	need_netns
	run -0 unshare -n env URELAY_TPROXY_LOCAL_FLAGS=0x80000 PJTL_GAIHACK_STATICDIR="$T/static" LD_PRELOAD="$LIB" python3 -c '
import socket
print(socket.getaddrinfo("www.example.test", 80, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)[0][4])
print(socket.getaddrinfo("127.0.0.3", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4])'
	assert_output "('127.0.0.7', 80)
('127.0.0.3', 80)"
	run -0 unshare -n env PJTL_GAIHACK_STATICDIR="$T/static" LD_PRELOAD="$LIB" python3 -c "$GAI" www.example.test
	refute_output --partial "127.0.0.7"
}

@test "gai-hack and resolve rules: entries before the lookup win over rules; rules are the real resolver, for entries' values and the SNI proxy too; after a failed lookup l applies, not after a reject rule" {
	printf 'X,127.0.0.53\n' >"$T/static/l,down.test"
	printf 'X,127.0.0.55\n' >"$T/static/l,gone.test"
	ln -s 'X,target.test' "$T/static/h,via.test"
	cat >"$T/rules" <<EOT
resolve www.example.test -> 127.0.0.50
resolve *.ruled.test -> 127.0.0.51
resolve target.test -> 127.0.0.52
resolve down.test -> unix $T/absent.sock
resolve gone.test -> reject
resolve sni.test -> 127.0.0.54
EOT
	export SOCKGATE_RULES="$T/rules" PJTL_GAIHACK_SNI_PROXY=sni.test
	run -0 gai www.example.test a.ruled.test via.test down.test gone.test nothing.test
	assert_output "www.example.test ['127.0.0.7']
a.ruled.test ['127.0.0.51']
via.test ['127.0.0.52']
down.test ['127.0.0.53']
gone.test [Errno -2] Name or service not known
nothing.test ['127.0.0.54']"
	# without gai-hack the same rules answer alone
	need_netns
	run -0 unshare -n env PJTL_GAIHACK_STATICDIR="$T/static" LD_PRELOAD="$LIB" python3 -c "$GAI" www.example.test down.test
	assert_output "www.example.test ['127.0.0.50']
down.test AGAIN"
}
