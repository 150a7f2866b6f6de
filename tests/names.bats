#!/usr/bin/env bats
# Names for programs with no network: lookups through sockgate-relay's
# resolver listener (resolve rules in libsockgate.so), DNS messages on the
# wire (dig, node; UDP with and without EDNS0, DNS over TCP), name-based
# allow rules, diversions, bad input.
# Host-side names come from dnsmasq started here on loopback with its own
# hosts file and no upstream; the machine's resolver configuration is never
# read or changed. Runtime: about 50 s (the --resolve-keep test waits ~7 s
# of it by design).

load helper

# the distribution's python3 (PY3, helper.bash): a version manager's shim
# on PATH can cost seconds per start on a loaded machine
PY=$PY3
NT="$PY $BATS_TEST_DIRNAME/tools/names_peer.py"

# start_relay ARGS...: sockgate-relay -v with the resolver and egress listeners in $T.
start_relay() {
	: >"$T/ready"
	"$SG" relay -v --ready-fd 3 -l "resolve:$T/res.sock" -l "dns:$T/dns.sock" -l "dnstcp:$T/dnstcp.sock" \
		-l "unix:$T/egress.sock" \
		--proxy-in "$@" original 3>"$T/ready" 2>>"$T/relay.log" &
	PIDS+=($!)
	RP=$!
	wait_for_line "$T/ready" ready
}

rules() {
	cat >"$T/rules" <<EOT
resolve * -> unix $T/res.sock
connect udp *:53 -> unix $T/dns.sock
connect tcp *:53 -> unix $T/dnstcp.sock
connect tcp * -> unix $T/egress.sock proxy-v2
EOT
	if [ $# -gt 0 ]; then
		printf '%s\n' "$@" | cat - "$T/rules" >"$T/rules.new"
		mv "$T/rules.new" "$T/rules"
	fi
}

# inns CMD...: CMD in a new network namespace (no network) with the library.
inns() {
	unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" "$@"
}

@test "names: curl in unshare -n resolves through the relay and reaches the server by name" {
	need_netns
	dns_server
	svc_web
	start_relay --dns-server "127.0.0.1:$DNSPORT" -r "connect tcp *.test:$WPORT -> pass"
	rules
	run -0 inns curl -sS "http://svc.test:$WPORT/index.html"
	assert_output "hello from svc"
	wait_for_line "$T/relay.log" "resolver: svc.test for unix:pid=[0-9]*,uid=[0-9]*: 127.0.0.5"
	wait_for_line "$T/relay.log" "-> 127.0.0.5:$WPORT (svc.test): .* done"
	# a CNAME chain: the canonical name is followed
	run -0 inns curl -sS "http://www.svc.test:$WPORT/index.html"
	assert_output "hello from svc"
	# a name that does not exist: EAI_NONAME, not EAI_AGAIN
	run -6 inns curl -sS "http://nope.test:$WPORT/"
	assert_output "curl: (6) Could not resolve host: nope.test"
	run -0 inns $NT gai nope.test
	assert_output "error EAI_NONAME"
}

@test "names: without the library the same curl cannot resolve (the test means something)" {
	need_netns
	run -6 unshare -n curl -sS "http://svc.test:1/"
	assert_output --partial "Could not resolve host: svc.test"
}

@test "names: the relay's resolve rules refuse a name; curl says it cannot resolve it" {
	need_netns
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT" -r 'resolve svc.test -> pass' -r 'resolve * -> reject'
	rules
	run -6 inns curl -sS "http://other.test:1/"
	assert_output "curl: (6) Could not resolve host: other.test"
	wait_for_line "$T/relay.log" "warning: resolver: refused to resolve other.test for unix:pid=.*: a resolve rule rejects it"
	run -0 inns $NT gai svc.test
	assert_output "ok AF_INET 127.0.0.5"
}

@test "names: python getaddrinfo() through the relay equals glibc's for every hint combination" {
	need_netns
	command -v mount >/dev/null || skip "no mount(8)"
	for f in /etc/resolv.conf /etc/hosts /etc/nsswitch.conf; do
		[ -e "$f" ] || skip "no $f to cover in a private mount namespace"
	done
	# glibc answers inside a private mount and network namespace whose resolv.conf
	# names dnsmasq there; the same dnsmasq feeds the relay; both outputs must agree
	printf '127.0.0.5 svc.test\n::5 svc.test\n127.0.0.6 v4only.test\n::6 v6only.test\n' >"$T/hosts"
	: >"$T/empty-hosts"
	printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:2\n' >"$T/resolv.conf"
	printf 'hosts: dns\n' >"$T/nsswitch.conf"
	rules
	cat >"$T/inner.sh" <<EOT
set -e
ip link set lo up
ip -6 addr add ::5/128 dev lo 2>/dev/null || true
mount --bind "$T/resolv.conf" /etc/resolv.conf
mount --bind "$T/empty-hosts" /etc/hosts
mount --bind "$T/nsswitch.conf" /etc/nsswitch.conf
dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$T/hosts" --listen-address=127.0.0.1 \
	--bind-interfaces --port=53 --user=root --pid-file="$T/dnsmasq.pid" --local=/test/
"$SG" relay --ready-fd 3 -l "resolve:$T/res.sock" --dns-server 127.0.0.1:53 original 3>"$T/ready" 2>"$T/relay.log" &
for i in \$(seq 100); do grep -q ready "$T/ready" && break; sleep 0.05; done
$NT gaimatrix svc.test v4only.test v6only.test nope.test >"$T/glibc.out"
LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gaimatrix svc.test v4only.test v6only.test nope.test >"$T/ours.out"
kill \$! \$(cat "$T/dnsmasq.pid")
EOT
	run -0 unshare -n -m --propagation private bash "$T/inner.sh"
	run -0 diff "$T/glibc.out" "$T/ours.out"
	run -0 grep -c . "$T/glibc.out"
	[ "$output" -ge 40 ]
	# AI_V4MAPPED answers were produced, not just errors that agree
	run -0 grep -c "v4only.test INET6 stream V4MAPPED None: AF_INET6 SOCK_STREAM 6 .. ::ffff:127.0.0.6 0" "$T/ours.out"
}

@test "names: dig and node's own resolver inside unshare -n get answers over the UDP redirect" {
	need_netns
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT"
	rules
	run -0 inns dig +short +time=2 +tries=1 @127.0.0.53 svc.test
	assert_output "127.0.0.5"
	run -0 inns dig +short +time=2 +tries=1 @127.0.0.53 www.svc.test
	assert_output $'svc.test.\n127.0.0.5'
	run -0 inns dig +short +time=2 +tries=1 @127.0.0.53 -x 127.0.0.5
	assert_output "svc.test."
	run -0 inns dig +short +time=2 +tries=1 @127.0.0.53 _http._tcp.svc.test SRV
	assert_output "0 0 8080 svc.test."
	run -0 inns dig +time=2 +tries=1 @127.0.0.53 nope.test
	assert_output --partial "status: NXDOMAIN"
	run -0 inns node -e 'const dns = require("dns"); const r = new dns.Resolver(); r.setServers(["127.0.0.53"]);
		r.resolve4("svc.test", (e, a) => console.log(e ? e.code : a.join(",")))'
	assert_output "127.0.0.5"
}

@test "names: DNS over TCP: dig +tcp in unshare -n is answered over the tcp:53 redirect, with and without a PROXY header" {
	need_netns
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT"
	rules
	run -0 inns dig +tcp +time=2 +tries=1 @10.1.2.3 www.svc.test
	assert_line --regexp $'^www\\.svc\\.test\\.\t+[0-9]+\tIN\tCNAME\tsvc\\.test\\.$'
	assert_line --regexp $'^svc\\.test\\.\t+[0-9]+\tIN\tA\t127\\.0\\.0\\.5$'
	assert_line --partial "SERVER: 10.1.2.3#53(10.1.2.3) (TCP)"
	wait_for_line "$T/relay.log" "resolver: www.svc.test for unix:pid=[0-9]*,uid=[0-9]*: svc.test 127.0.0.5"
	sed -i "s|^connect tcp \*:53 .*|& proxy-v2|" "$T/rules"
	grep -q "dnstcp.sock proxy-v2" "$T/rules"
	run -0 inns dig +tcp +short +time=2 +tries=1 @10.1.2.3 svc.test
	assert_output "127.0.0.5"
	run -0 inns dig +tcp +time=2 +tries=1 @10.1.2.3 nope.test
	assert_output --partial "status: NXDOMAIN"
}

# many_hosts: dnsmasq's hosts file with 40 addresses for many.test (16 bytes each in an answer).
many_hosts() {
	{
		printf '127.0.0.5 svc.test\n'
		for i in $(seq 1 40); do printf '10.9.0.%d many.test\n' "$i"; done
	} >"$T/hosts"
}

@test "names: 40 addresses for one name: dig +noedns gets TC over UDP, then all 40 over TCP" {
	need_netns
	many_hosts
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT"
	rules
	# 512 bytes hold 30 of them: cut, TC set
	run -0 inns dig +noedns +ignore +time=2 +tries=1 @10.1.2.3 many.test
	assert_line --regexp "^;; flags: qr tc rd ra; QUERY: 1, ANSWER: (2[0-9]|30), "
	# dig asks again over TCP and gets every one
	run -0 inns dig +noedns +time=2 +tries=1 @10.1.2.3 many.test
	assert_line ";; Truncated, retrying in TCP mode."
	assert_line --partial "SERVER: 10.1.2.3#53(10.1.2.3) (TCP)"
	run -0 grep -Ec $'^many\\.test\\.\t+[0-9]+\tIN\tA\t10\\.9\\.0\\.([1-9]|[1-3][0-9]|40)$' <<<"$output"
	assert_output 40
}

@test "names: EDNS0: dig's OPT for 1232 gets all 40 over UDP, +bufsize=600 is cut there, version 1 is BADVERS, bad OPT FORMERR" {
	need_netns
	many_hosts
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT"
	rules
	run -0 inns dig +ignore +time=2 +tries=1 @10.1.2.3 many.test
	assert_line ";; flags: qr rd ra; QUERY: 1, ANSWER: 40, AUTHORITY: 0, ADDITIONAL: 1"
	assert_line "; EDNS: version: 0, flags:; udp: 1232"
	assert_line --partial "SERVER: 10.1.2.3#53(10.1.2.3) (UDP)"
	run -0 grep -Ec $'^many\\.test\\.\t+[0-9]+\tIN\tA\t10\\.9\\.0\\.([1-9]|[1-3][0-9]|40)$' <<<"$output"
	assert_output 40
	# 600 bytes hold 35 and the OPT record
	run -0 inns dig +bufsize=600 +ignore +time=2 +tries=1 @10.1.2.3 many.test
	assert_line ";; flags: qr tc rd ra; QUERY: 1, ANSWER: 35, AUTHORITY: 0, ADDITIONAL: 1"
	run -0 inns dig +edns=1 +noednsnegotiation +ignore +time=2 +tries=1 @10.1.2.3 many.test
	assert_line --partial "status: BADVERS,"
	assert_line "; EDNS: version: 0, flags:; udp: 1232"
	# over TCP the reply has its OPT record too
	run -0 inns dig +tcp +time=2 +tries=1 @10.1.2.3 many.test
	assert_line ";; flags: qr rd ra; QUERY: 1, ANSWER: 40, AUTHORITY: 0, ADDITIONAL: 1"
	assert_line "; EDNS: version: 0, flags:; udp: 1232"
	run -0 $NT dnsbadopt "$T/dns.sock"
	assert_output "two OPT records: id 0x1111 rcode 1 qr 1
an OPT option past its data: id 0x1111 rcode 1 qr 1
an OPT owned by a name: id 0x1111 rcode 1 qr 1"
	kill -0 "$RP"
}

@test "names: DNS over TCP on the socket: pipelined queries answered as ready; garbage and a cut prefix closed (logged), others served; idle closed" {
	dns_server
	# fixed.test has a fixed answer, ready before the others come back from dnsmasq
	start_relay --dns-server "127.0.0.1:$DNSPORT" --idle-timeout 1s -r 'resolve fixed.test -> 127.0.0.9' \
		-r 'resolve * -> pass'
	run -0 $NT dnstcp "$T/dnstcp.sock" svc.test fixed.test other.test
	assert_line --index 0 "id 2 rcode 0 tc 0 an 1 127.0.0.9"
	assert_line "id 1 rcode 0 tc 0 an 1 127.0.0.5"
	assert_line "id 3 rcode 0 tc 0 an 1 127.0.0.6"
	assert_line --index 3 "then closed"
	run -0 $NT dnsbad "$T/dnstcp.sock"
	assert_output "garbage: closed
cut length prefix: closed
other client: id 7 rcode 0 tc 0 an 1 127.0.0.5"
	wait_for_line "$T/relay.log" "warning: resolver: unix:pid=[0-9]*,uid=[0-9]* sent a DNS message length of 18245 (12 to 4094 taken): closing it"
	wait_for_line "$T/relay.log" "warning: resolver: unix:pid=[0-9]*,uid=[0-9]* ended its connection inside a DNS message: closing it"
	run -0 $NT dnsidle "$T/dnstcp.sock"
	assert_output "id 1 rcode 0 tc 0 an 1 127.0.0.5
closed within 0.5-3s"
	wait_for_line "$T/relay.log" "resolver: unix:pid=[0-9]*,uid=[0-9]* idle for [0-9]* ms: closing it"
	kill -0 "$RP"
}

@test "names: name-based allow: the allowed name passes; an address never resolved and a lying AUTHORITY are denied and logged" {
	need_netns
	dns_server
	svc_web
	start_relay --dns-server "127.0.0.1:$DNSPORT" -r "connect tcp svc.test:$WPORT -> pass"
	rules
	run -0 inns curl -sS "http://svc.test:$WPORT/index.html"
	assert_output "hello from svc"
	wait_for_line "$T/relay.log" "-> 127.0.0.5:$WPORT (svc.test): .*done"
	# other.test's address, never looked up through the relay
	run inns curl -sS "http://127.0.0.6:$WPORT/"
	[ "$status" -ne 0 ]
	refute_output --partial "hello"
	wait_for_line "$T/relay.log" "warning: .* -> 127.0.0.6:$WPORT: .* denied: no rule allows it$"
	# svc.test resolved, but the header names it for another address
	run -0 inns $NT gai other.test
	run -0 $NT lie "$T/egress.sock" svc.test 127.0.0.6 "$WPORT"
	assert_output "closed"
	wait_for_line "$T/relay.log" "denied: the AUTHORITY TLV names svc.test, which this relay did not resolve to that address (it did for other.test)"
}

@test "names: a name whose IPv6 address refuses: the relay connects to its IPv4 one (curl, python); a denied one is not tried" {
	need_netns
	# ::1 first in every answer (the library puts IPv6 first); nothing listens on [::1]:$WPORT
	printf '%s\n' '127.0.0.5 svc.test' '::1 dual.test' '127.0.0.5 dual.test' '::1 dead.test' '127.0.0.8 dead.test' \
		'::1 deny.test' '127.0.0.5 deny.test' >"$T/hosts"
	dns_server
	svc_web
	start_relay --dns-server "127.0.0.1:$DNSPORT" -r "connect tcp dual.test:$WPORT -> pass" \
		-r "connect tcp dead.test:$WPORT -> pass" -r "connect tcp [::1]:$WPORT -> pass"
	rules
	run -0 inns $NT gai dual.test
	assert_output $'ok AF_INET6 ::1\nok AF_INET 127.0.0.5'
	run -0 inns curl -sS "http://dual.test:$WPORT/index.html"
	assert_output "hello from svc"
	wait_for_line "$T/relay.log" "info: .*(unix:pid=[0-9]*,uid=[0-9]*) -> \[::1\]:$WPORT via 127.0.0.5:$WPORT (dual.test): \[::1\]:$WPORT refused, connected to 127.0.0.5:$WPORT instead$"
	run -0 inns $PY -c "import urllib.request as u; print(u.urlopen('http://dual.test:$WPORT/index.html', timeout=10).read().decode(), end='')"
	assert_output "hello from svc"
	run -0 grep -c "refused, connected to 127.0.0.5:$WPORT instead" "$T/relay.log"
	assert_output 2
	# every address refuses: the program sees its connection closed, as before
	# (56, a reset after connect; or 7 where the close came while curl's
	# connects were still in progress, as under load: both mean refused)
	run inns curl -sS "http://dead.test:$WPORT/"
	[[ $status == 56 || $status == 7 ]]
	assert_output --regexp "Recv failure|Failed to connect"
	wait_for_line "$T/relay.log" "warning: .* -> \[::1\]:$WPORT via 127.0.0.8:$WPORT (dead.test): .*unable to connect to target: Connection refused (after \[::1\]:$WPORT refused)$"
	# 127.0.0.5 is allowed as dual.test's, not as deny.test's: not used, though it would answer
	run inns curl -sS "http://deny.test:$WPORT/"
	[ "$status" -ne 0 ]
	refute_output --partial "hello"
	wait_for_line "$T/relay.log" "warning: .* -> \[::1\]:$WPORT: no fallback to 127.0.0.5:$WPORT: denied: no rule allows it$"
	wait_for_line "$T/relay.log" "warning: .* -> \[::1\]:$WPORT: .*unable to connect to target: Connection refused$"
	run -1 grep "connected to 127.0.0.5:$WPORT instead" <(grep -v dual.test "$T/relay.log")
}

# until_ms T: wait until the clock (in ms) reaches T: the time that passes is what is tested
until_ms() {
	while [ "$(date +%s%3N)" -lt "$1" ]; do sleep 0.05; done
}

@test "names: an address allowed by name outlives a 1 s TTL, each allowed connection renews it, --resolve-keep after the last use it is denied" {
	need_netns
	dns_server --local-ttl=1
	svc_web
	# two relays fed by the same names: the default --resolve-keep (in $T) and 3 s (in $T/k);
	# a program that keeps an address (a pool, nginx's upstream, the JVM's cache) connects
	# again later by address, its header naming the host: lie does that
	start_relay --dns-server "127.0.0.1:$DNSPORT" -r "connect tcp svc.test:$WPORT -> pass"
	rules
	local top=$T
	mkdir "$T/k"
	T=$top/k
	start_relay --dns-server "127.0.0.1:$DNSPORT" -r "connect tcp svc.test:$WPORT -> pass" --resolve-keep 3
	rules
	T=$top
	K=$T/k
	run -0 inns $NT gai svc.test
	T=$K run -0 inns $NT gai svc.test
	assert_output "ok AF_INET 127.0.0.5"
	t=$(date +%s%3N)
	run -0 $NT lie "$T/egress.sock" svc.test 127.0.0.5 "$WPORT"
	assert_output --regexp "^got [0-9]+ bytes$"
	until_ms $((t + 1500))	# the 1 s TTL is over
	run -0 $NT lie "$K/egress.sock" svc.test 127.0.0.5 "$WPORT"
	assert_output --regexp "^got [0-9]+ bytes$"
	run -0 $NT lie "$T/egress.sock" svc.test 127.0.0.5 "$WPORT"	# the default keeps it an hour
	assert_output --regexp "^got [0-9]+ bytes$"
	until_ms $((t + 3200))	# past 3 s from the lookup: only the use above keeps it
	run -0 $NT lie "$K/egress.sock" svc.test 127.0.0.5 "$WPORT"
	assert_output --regexp "^got [0-9]+ bytes$"
	until_ms $(($(date +%s%3N) + 3200))	# past 3 s from that use
	run -0 $NT lie "$K/egress.sock" svc.test 127.0.0.5 "$WPORT"
	assert_output "closed"
	wait_for_line "$K/relay.log" "warning: 127.0.0.1:40000 -> 127.0.0.5:$WPORT: .*denied: no rule allows it (AUTHORITY svc.test; this relay resolved no name to that address)$"
	run -0 grep -c "127.0.0.5:$WPORT (svc.test): .* done" "$K/relay.log"
	assert_output 2
	run -0 grep -c "127.0.0.5:$WPORT (svc.test): .* done" "$T/relay.log"
	assert_output 2
}

@test "names: diversions: a rule to another name, fixed addresses, libdivert's variable" {
	need_netns
	dns_server
	svc_web
	start_relay --dns-server "127.0.0.1:$DNSPORT" -r "connect tcp *.test:$WPORT -> pass"
	rules "resolve alias.example -> svc.test" "resolve fixed.example -> 127.0.0.9,::9"
	run -0 inns curl -sS "http://alias.example:$WPORT/index.html"
	assert_output "hello from svc"
	run -0 inns $NT gai fixed.example
	assert_output $'ok AF_INET6 ::9\nok AF_INET 127.0.0.9'
	# libdivert: the variable named by the host holds the name to look up
	run -0 inns env sip.example.net=svc.test $NT gai sip.example.net
	assert_output "ok AF_INET 127.0.0.5"
	# and without any rule at all, from libc's side
	run -0 env LD_PRELOAD="$LIB" loop.example.net=127.0.0.1 $NT gai loop.example.net
	assert_output "ok AF_INET 127.0.0.1"
}

@test "names: gethostbyname, gethostbyname2, their _r forms, getnameinfo and gethostbyaddr (and _r) go through the relay" {
	need_netns
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT"
	rules
	run -0 inns $NT legacy www.svc.test 127.0.0.5
	assert_output "gethostbyname svc.test 127.0.0.5
gethostbyname_ex svc.test 127.0.0.5
getnameinfo svc.test
getnameinfo-numeric-fallback 127.0.0.77
gethostbyaddr_r svc.test [] 127.0.0.5
gethostbyaddr_r 127.0.0.77 herror 1
gethostbyaddr svc.test 127.0.0.5"
	# without a reverse rule: libc's own answer, the hosts file's
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULE="resolve svc.test -> unix $T/res.sock" $PY -c '
import socket; print(socket.gethostbyaddr("127.0.0.1")[2])'
	assert_output "['127.0.0.1']"
}

# in_hosts FILE CMD...: CMD in unshare -n with FILE as /etc/hosts
in_hosts() {
	unshare -nm sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$@"
}

@test "names: AI_ADDRCONFIG in unshare -n: a literal a connect rule carries and a diverted name are answered, other lookups as without the library" {
	need_netns
	cat >"$T/rules" <<EOT
connect tcp 10.1.2.3:80 -> unix $T/absent.sock
connect tcp 10.7.0.0/16 -> reject
resolve web.test -> far.test
EOT
	printf '10.9.9.9 far.test\n' >"$T/hosts"
	# getaddrinfo(HOST, PORT, AF_INET, SOCK_STREAM, AI_ADDRCONFIG), a line each
	cat >"$T/ac.py" <<'EOT'
import socket, sys
names = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
for host, port in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        print(host, port, socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)[0][4][0])
    except socket.gaierror as e:
        print(host, port, names.get(e.errno, e.errno))
EOT
	args=(10.1.2.3 80 10.1.2.3 81 10.1.2.4 80 10.7.0.1 80 web.test 80 far.test 80)
	run -0 in_hosts "$T/hosts" env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $PY "$T/ac.py" "${args[@]}"
	assert_output "10.1.2.3 80 10.1.2.3
10.1.2.3 81 EAI_NONAME
10.1.2.4 80 EAI_NONAME
10.7.0.1 80 EAI_NONAME
web.test 80 10.9.9.9
far.test 80 EAI_NONAME"
	# without the library the flag hides every address (the test means something)
	run -0 in_hosts "$T/hosts" $PY "$T/ac.py" "${args[@]}"
	assert_output "10.1.2.3 80 EAI_NONAME
10.1.2.3 81 EAI_NONAME
10.1.2.4 80 EAI_NONAME
10.7.0.1 80 EAI_NONAME
web.test 80 EAI_NONAME
far.test 80 EAI_NONAME"
	# getent ahostsv4 asks with AI_ADDRCONFIG and no service: a rule for some port of the address will do
	run -0 unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" getent ahostsv4 10.1.2.3
	assert_line --index 0 --regexp '^10\.1\.2\.3 +STREAM 10\.1\.2\.3$'
	run -2 unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" getent ahostsv4 10.1.2.4
	run -2 unshare -n getent ahostsv4 10.1.2.3
}

@test "names: resolver socket absent, silent, answering garbage or 64 KiB; a 300-byte name" {
	rm -f "$T/res.sock"
	rules
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gai svc.test
	assert_output "error EAI_AGAIN"
	for mode in silent garbage big; do
		rm -f "$T/res.sock"
		spawn "$T/bad-$mode.log" $NT badserver "$T/res.sock" $mode
		wait_for_file "$T/res.sock"
		run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" SOCKGATE_RESOLVE_TIMEOUT=700 $NT gait svc.test
		case $mode in
		silent) assert_output "error EAI_AGAIN within 2s" ;;
		*) assert_output "error EAI_FAIL within 2s" ;;
		esac
	done
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gai "$(printf 'a%.0s' {1..300}).test"
	assert_output "error EAI_NONAME"
}

@test "names: a client flooding the resolver does not starve another one" {
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT"
	spawn "$T/flood.log" $NT flood "$T/res.sock" 1000000
	wait_for_line "$T/flood.log" "flooding"
	rules
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" SOCKGATE_RESOLVE_TIMEOUT=3000 $NT gaimany svc.test 20
	assert_output "ok 127.0.0.5 slowest under 2s"
	# the flood is still being served, not cut off
	run grep -c "resolver: .*leaves its answers unread" "$T/relay.log"
	assert_output 0
	kill -0 "$RP"
}

@test "names: a lookup no rule names goes to libc untouched" {
	cat >"$T/rules" <<EOT
resolve *.test -> unix $T/absent.sock
EOT
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gai localhost
	assert_line "ok AF_INET 127.0.0.1"
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gai svc.test
	assert_output "error EAI_AGAIN"
}

@test "names: NAT64 with the default prefix: TCP and UDP from IPv4 sockets arrive over IPv6, the program still sees IPv4" {
	need_netns
	P=$(free_port)
	cat >"$T/inner.sh" <<EOT
set -e
ip link set lo up
ip -6 addr add 64:ff9b::7f00:1/128 dev lo
$NT nat64srv $P >"$T/srv.out" 2>&1 &
for i in \$(seq 200); do grep -q ready "$T/srv.out" && break; sleep 0.05; done
LD_PRELOAD="$LIB" SOCKGATE_RULE="connect 127.0.0.1:$P -> nat64" $NT nat64cli $P
kill \$!
EOT
	run -0 unshare -n bash "$T/inner.sh"
	assert_output "tcp getpeername 127.0.0.1 family AF_INET
tcp peer 64:ff9b::7f00:1
udp sendto peer 64:ff9b::7f00:1 got hi from 127.0.0.1 True
udp connect peer 64:ff9b::7f00:1 got yo getpeername 127.0.0.1"
	# without the rule the IPv4 address has nobody listening: the rule made the difference
	run -0 unshare -n bash -c "ip link set lo up; $PY -c 'import socket; s=socket.socket(); print(s.connect_ex((\"127.0.0.1\", $P)))'"
	assert_output 111
}

@test "names: nat64 dns64 synthesises PREFIX+IPv4 in getaddrinfo(); nat64 discover takes the prefix from ipv4only.arpa" {
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULE='resolve v4only.example -> 127.0.0.1; connect 127.0.0.0/8 -> nat64 dns64' \
		$NT gai v4only.example
	assert_output "ok AF_INET6 64:ff9b::7f00:1"
	# a name with IPv6 addresses of its own is left as it is
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULE='resolve both.example -> 127.0.0.1,2001:db8::1; connect 127.0.0.0/8 -> nat64 dns64' \
		$NT gai both.example
	assert_output $'ok AF_INET6 2001:db8::1\nok AF_INET 127.0.0.1'
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULE='resolve ipv4only.arpa -> 2001:db8:64::c000:aa; resolve v4only.example -> 127.0.0.1; connect 127.0.0.0/8 -> nat64 dns64 discover' \
		$NT gai v4only.example
	assert_output "ok AF_INET6 2001:db8:64::7f00:1"
}

@test "names: a name resolved through the relay (or diverted) goes into the PROXY header's AUTHORITY TLV" {
	need_netns
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT"
	spawn "$T/hdr.out" $NT hdrsrv "$T/hdr.sock"
	wait_for_line "$T/hdr.out" ready
	cat >"$T/rules" <<EOT
resolve alias.example -> www.svc.test
resolve * -> unix $T/res.sock
connect tcp * -> unix $T/hdr.sock proxy-v2
EOT
	run -0 inns curl -sS "http://www.svc.test:8080/"
	assert_output "ok"
	wait_for_line "$T/hdr.out" "authority www.svc.test"
	run -0 inns curl -sS "http://alias.example:8080/"
	assert_output "ok"
	wait_for_line "$T/hdr.out" "authority www.svc.test"
	run -0 grep -c "authority www.svc.test" "$T/hdr.out"
	assert_output 2
}

@test "names: the relay survives a malformed request and junk DNS messages, and answers the next client" {
	dns_server
	start_relay --dns-server "127.0.0.1:$DNSPORT"
	run -0 $NT garbage "$T/res.sock" "$T/dns.sock"
	assert_output "resolver socket closed
dns id 0x1234 rcode 1 qr 1
dns id 0xabcd rcode 4 qr 1"
	wait_for_line "$T/relay.log" "warning: resolver: unix:pid=[0-9]*,uid=[0-9]* sent a malformed request: closing it"
	rules
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gai svc.test
	assert_output "ok AF_INET 127.0.0.5"
}

@test "names: without --dns-server the relay answers with the host's getaddrinfo (its hosts file)" {
	grep -qw localhost /etc/hosts || skip "no localhost line in /etc/hosts"
	start_relay
	rules
	# musl's getaddrinfo in the static relay knows localhost whatever /etc/hosts says
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gai localhost
	assert_line "ok AF_INET 127.0.0.1"
	wait_for_line "$T/relay.log" "resolver: localhost for unix:pid=.*127.0.0.1"
	# (no test of a missing name here: it would ask the machine's own DNS server)
}

@test "names: host lookups leave out the addresses the host has no route to, unless that is all of them" {
	need_netns
	command -v mount >/dev/null || skip "no mount(8)"
	[ -e /etc/hosts ] || skip "no /etc/hosts to cover in a private mount namespace"
	# the relay's musl getaddrinfo reads a private /etc/hosts; only lo is up: routes to
	# 127.0.0.0/8 and ::1, none to the documentation prefixes until the test adds them
	printf '%s\n' '127.0.0.5 mixed.test' '2001:db8::5 mixed.test' '::1 mixed6.test' '192.0.2.9 mixed6.test' \
		'2001:db8::6 v6only.test' >"$T/hosts"
	rules
	cat >"$T/inner.sh" <<EOT
set -e
ip link set lo up
mount --bind "$T/hosts" /etc/hosts
"$SG" relay --ready-fd 3 -l "resolve:$T/res.sock" original 3>"$T/ready" 2>"$T/relay.log" &
for i in \$(seq 100); do grep -q ready "$T/ready" && break; sleep 0.05; done
g() { LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gai "\$1" | tr '\n' ' '; echo; }
g mixed.test; g mixed6.test; g v6only.test
ip -6 route add 2001:db8::/64 dev lo
ip route add 192.0.2.0/24 dev lo
g mixed.test; g mixed6.test
kill \$!
EOT
	run -0 unshare -n -m --propagation private bash "$T/inner.sh"
	assert_output "ok AF_INET 127.0.0.5 
ok AF_INET6 ::1 
ok AF_INET6 2001:db8::6 
ok AF_INET6 2001:db8::5 ok AF_INET 127.0.0.5 
ok AF_INET6 ::1 ok AF_INET 192.0.2.9 "
}

@test "names: a DNS server that never answers: the relay asks again, then answers a temporary failure within --resolve-timeout" {
	SILENT=$(free_port)
	spawn "$T/silent.log" $PY -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', $SILENT)); print('ready', flush=True)
n = 0
while True:
    s.recv(600); n += 1; print('query', n, flush=True)"
	wait_for_line "$T/silent.log" ready
	start_relay --dns-server "127.0.0.1:$SILENT" --resolve-timeout 1500ms
	rules
	run -0 env LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" $NT gait svc.test
	assert_output "error EAI_AGAIN within 2s"
	# A and AAAA, each sent twice (again after a second)
	wait_for_line "$T/silent.log" "query 4"
	wait_for_line "$T/relay.log" "resolver: svc.test for unix:pid=[0-9]*,uid=[0-9]*: timed out"
}

@test "names: dns: answers reach a container that mounts the relay's directory elsewhere, and a relay in --chroot" {
	need_netns
	dns_server
	mkdir -p "$T/host" "$T/cont"
	"$SG" relay -v --ready-fd 3 -l "dns:$T/host/dns.sock" --dns-server "127.0.0.1:$DNSPORT" original \
		3>"$T/ready" 2>>"$T/relay.log" &
	PIDS+=($!)
	wait_for_line "$T/ready" ready
	# the client names its reply file /cont/...: nothing there for the relay
	run -0 unshare -m -n sh -c 'mount --bind "$1/host" "$1/cont" && t=$1 lib=$2 && shift 2 &&
		exec env LD_PRELOAD="$lib" SOCKGATE_RULE="connect udp *:53 -> unix $t/cont/dns.sock" "$@"' sh "$T" "$LIB" \
		dig +short +time=2 +tries=1 @10.1.2.3 svc.test
	assert_output "127.0.0.5"
	run grep "unable to answer" "$T/relay.log"
	assert_failure
	# chrooted to $T: its socket is /host/dns.sock to itself now
	: >"$T/ready2"
	"$SG" relay -v --ready-fd 3 --chroot "$T" -l "dns:$T/host/d2.sock" --dns-server "127.0.0.1:$DNSPORT" original \
		3>"$T/ready2" 2>>"$T/relay2.log" &
	PIDS+=($!)
	wait_for_line "$T/ready2" ready
	run -0 unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="connect udp *:53 -> unix $T/host/d2.sock" \
		dig +short +time=2 +tries=1 @10.1.2.3 svc.test
	assert_output "127.0.0.5"
	run grep "unable to answer" "$T/relay2.log"
	assert_failure
}
