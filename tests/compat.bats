#!/usr/bin/env bats
# libsockgate.so with the programs users run. Clients: the JDK
# (java.net.Socket, HttpClient, NIO SocketChannel + Selector, DatagramSocket,
# DatagramChannel), psql and pgbench, python's urllib and http.client, node
# (http, net, dgram), perl (HTTP::Tiny, IO::Socket::INET), dig over UDP and
# TCP, redis-cli and redis-benchmark. Servers under bind rules: python's
# http.server, the JDK's HttpServer, node's http server, redis-server and
# the PostgreSQL postmaster, on Unix sockets (also with proxy-v2) or as
# fdpass receivers behind sockgate-server. Clients believe they talk to
# 10.1.2.3; the rules send them to Unix sockets under $T, and where the
# kernel allows they run in unshare -n, with no network at all, which
# proves no TCP is used.

load helper

# under SANITIZE=1 the test programs carry ASan, which wants to come first
# in the library list; the preload library must come first instead
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
# urllib, curl and the JDK must not send anything to a proxy
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

SRV=$TOP/tests/tools/pre_userver.py
DNS=$TOP/tests/tools/compat_dns.py
JAVA=$TOP/tests/tools/compat_java.java

# the helper's teardown, run after the servers only this file starts
eval "$(declare -f teardown | sed '1s/^teardown/helper_teardown/')"
teardown() {
	if [ -n "${PGDATA:-}" ] && [ -e "$PGDATA/postmaster.pid" ]; then
		# a postmaster stuck (as one was in accept() before the library
		# failed header-less connections) takes only SIGKILL: this one
		if ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 5 stop >/dev/null 2>&1; then
			kill -9 "$(sed -n 1p "$PGDATA/postmaster.pid")" 2>/dev/null
			# and its System V segment (line 7: key, id)
			ipcrm -m "$(sed -n '7s/.* //p' "$PGDATA/postmaster.pid")" 2>/dev/null
		fi
	fi
	unset PGDATA
	# a daemonised nginx (the binary upgrade test): both masters, if still there
	local f
	for f in "$T/nginx.pid" "$T/nginx.pid.oldbin"; do
		[ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	helper_teardown
}

# tests/tools/compat_java.java is compiled once for the file: `java FILE.java`
# would compile it again at every start, seconds each on a busy machine
setup_file() {
	if command -v javac >/dev/null; then
		javac -d "$BATS_FILE_TMPDIR/java" "$JAVA"
	fi
}

# nginx_conf DIRECTIVE: $T/nginx.conf, one worker serving 127.0.0.1:8080 with
# DIRECTIVE at /, files under $T, the library's variables kept for the workers
nginx_conf() {
	cat > "$T/nginx.conf" <<-EOF
	env LD_PRELOAD;
	env SOCKGATE_RULE;
	worker_processes 1;
	error_log $T/error.log info;
	pid $T/nginx.pid;
	events { worker_connections 64; }
	http {
		access_log off;
		client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T; scgi_temp_path $T;
		server { listen 127.0.0.1:8080; location / { $1 } }
	}
	EOF
}

need_java() {
	[ -e "$BATS_FILE_TMPDIR/java/CompatJava.class" ] || skip "the JDK (javac) is not installed"
}

# the JDK programs, at most 20 s each
JAVA_CP=(-XX:TieredStopAtLevel=1 -cp "$BATS_FILE_TMPDIR/java" CompatJava)
JAVA_RUN=(timeout 20 java "${JAVA_CP[@]}")
JAVA4_RUN=(timeout 20 java -Djava.net.preferIPv4Stack=true "${JAVA_CP[@]}")

@test "java.net.Socket: blocking connect and connect with a timeout reach a Unix server; exact bytes both ways; peer is 10.1.2.3:80" {
	need_java
	userver echo
	export SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/echo.sock"
	# the host's network: the JDK makes dual-stack AF_INET6 sockets where
	# the host has IPv6, and connects to ::ffff:10.1.2.3
	run -0 pre "${JAVA_RUN[@]}" socket 10.1.2.3 80
	assert_output $'blocking: peer /10.1.2.3:80 sent 16384 got 16384 same true\ntimeout: peer 10.1.2.3:80 connected true echo same true'
	run -0 grep -c "^data b'line\\\\xc3\\\\xa9\\\\n'$" "$T/echo.log"
	assert_output 1
	need_netns
	# no network at all: AF_INET sockets, and still the same bytes
	run -0 unshare -n env LD_PRELOAD="$LIB" "${JAVA_RUN[@]}" socket 10.1.2.3 80
	assert_output $'blocking: peer /10.1.2.3:80 sent 16384 got 16384 same true\ntimeout: peer 10.1.2.3:80 connected true echo same true'
}

@test "java.net.http.HttpClient (NIO, epoll) GETs from python's http.server, which listens on a Unix socket by a bind rule; no network on either side" {
	need_java
	need_netns
	mkdir "$T/www"
	printf 'hello from a file\n' > "$T/www/hello.txt"
	SOCKGATE_RULE="bind tcp *:8080 -> unix $T/web.sock" bg unshare -n env LD_PRELOAD="$LIB" \
		python3 -m http.server 8080 --bind :: --directory "$T/www" 2> "$T/web.err" > /dev/null
	wait_for_file "$T/web.sock"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:8080 -> unix $T/web.sock"
	run -0 unshare -n env LD_PRELOAD="$LIB" "${JAVA_RUN[@]}" http http://10.1.2.3:8080/
	assert_output $'GET /hello.txt 200 hello from a file\nGET /missing 404 \nasync 8: 8 ok'
	# what the server saw: 9 files served, 1 miss, all from the Unix peer
	# (shown as the loopback address of its IPv6 socket)
	run -0 grep -c '^::1 - - \[.*\] "GET /hello.txt HTTP/1.1" 200 -$' "$T/web.err"
	assert_output 9
	run -0 grep -c '^::1 - - \[.*\] "GET /missing HTTP/1.1" 404 -$' "$T/web.err"
	assert_output 1
}

@test "java NIO SocketChannel: non-blocking connect, OP_CONNECT, finishConnect, 256 KiB through a Selector to socat" {
	need_java
	command -v socat >/dev/null || skip "socat not installed"
	bg socat UNIX-LISTEN:"$T/socat.sock",fork PIPE
	wait_for_file "$T/socat.sock"
	export SOCKGATE_RULE="connect tcp 10.1.2.0/24:7000-7999 -> unix $T/socat.sock"
	run -0 pre "${JAVA_RUN[@]}" nio 10.1.2.3 7777
	assert_output $'connected: peer /10.1.2.3:7777\nselector: sent 262144 got 262144 same true'
	need_netns
	run -0 unshare -n env LD_PRELOAD="$LIB" "${JAVA_RUN[@]}" nio 10.1.2.9 7000
	assert_output $'connected: peer /10.1.2.9:7000\nselector: sent 262144 got 262144 same true'
}

@test "the JDK's HttpServer listens on a Unix socket by a bind rule: curl --unix-socket and a redirected curl reach it" {
	need_java
	need_netns
	# -Djava.net.preferIPv4Stack: the addresses below do not depend on
	# whether the JDK finds IPv6
	SOCKGATE_RULE="bind tcp *:8000 -> unix $T/java.sock mode=0600" bg unshare -n env LD_PRELOAD="$LIB" \
		timeout 60 java -Djava.net.preferIPv4Stack=true "${JAVA_CP[@]}" httpserver 8000 "$T/java.ready"
	wait_for_file "$T/java.ready"
	run -0 stat -c %a "$T/java.sock"
	assert_output 600
	run -0 curl -sS --max-time 5 --unix-socket "$T/java.sock" "http://x/a?b=c"
	assert_output "java saw GET /a?b=c peer 127.0.0.1:0 local 0.0.0.0:8000"
	SOCKGATE_RULE="connect tcp 10.1.2.3:8000 -> unix $T/java.sock" \
		run -0 unshare -n env LD_PRELOAD="$LIB" curl -sS --max-time 5 http://10.1.2.3:8000/one http://10.1.2.3:8000/two
	assert_output $'java saw GET /one peer 127.0.0.1:0 local 0.0.0.0:8000\njava saw GET /two peer 127.0.0.1:0 local 0.0.0.0:8000'
}

@test "the JDK's HttpServer under a proxy-v2 bind rule: the peer and local addresses come from the header (v2 and v1); a client without one is closed, the next served" {
	need_java
	need_netns
	SOCKGATE_RULE="bind tcp *:8000 -> unix $T/javapp.sock proxy-v2" bg unshare -n env LD_PRELOAD="$LIB" \
		timeout 60 java -Djava.net.preferIPv4Stack=true "${JAVA_CP[@]}" httpserver 8000 "$T/java.ready"
	wait_for_file "$T/java.ready"
	SOCKGATE_RULE="connect tcp 10.1.2.3:8000 -> unix $T/javapp.sock proxy-v2 source=192.0.2.7:4321" \
		run -0 unshare -n env LD_PRELOAD="$LIB" curl -sS --max-time 5 http://10.1.2.3:8000/v2 http://10.1.2.3:8000/again
	assert_output $'java saw GET /v2 peer 192.0.2.7:4321 local 10.1.2.3:8000\njava saw GET /again peer 192.0.2.7:4321 local 10.1.2.3:8000'
	run curl -sS --max-time 5 --unix-socket "$T/javapp.sock" http://x/no-header
	[[ $status == 52 || $status == 56 ]]	# empty reply, or reset
	SOCKGATE_RULE="connect tcp 10.9.8.7:8000 -> unix $T/javapp.sock proxy-v1 source=192.0.2.8:1" \
		run -0 unshare -n env LD_PRELOAD="$LIB" curl -sS --max-time 5 http://10.9.8.7:8000/v1
	assert_output "java saw GET /v1 peer 192.0.2.8:1 local 10.9.8.7:8000"
}

# sgserver NAME [ADDR]: sockgate-server on a free loopback port (on ADDR,
# default 127.0.0.1), passing every connection to the receiver at
# $T/NAME.sock; SPORT is the port
sgserver() {
	[ -x "$BUILD/sockgate-server" ] || skip "sockgate-server not built"
	SPORT=$(free_port)
	bg sockgate-server -l "${2:-127.0.0.1}" -p "$SPORT" -S "$T/$1.sock" --ready-fd 3 3>"$T/$1.srv-ready" 2>"$T/$1.srv.log"
	wait_for_line "$T/$1.srv-ready" ready
}

@test "receivers with no network: the JDK's HttpServer and node's http server serve curl through sockgate-server (fdpass) and see curl's address and port" {
	need_java
	command -v node >/dev/null || skip "node not installed"
	need_netns
	sgserver java
	SOCKGATE_RULE="bind tcp *:8000 -> fdpass $T/java.sock" bg unshare -n env LD_PRELOAD="$LIB" \
		timeout 60 java -Djava.net.preferIPv4Stack=true "${JAVA_CP[@]}" httpserver 8000 "$T/java.ready"
	wait_for_file "$T/java.ready"
	for i in 1 2 3; do
		curl -sS --max-time 5 -w '%{local_port}\n' "http://127.0.0.1:$SPORT/j$i"
	done > "$T/java.out"
	run -0 cat "$T/java.out"
	assert_output "$(for i in 1 2 3; do
		p=$(sed -n "$((2 * i))p" "$T/java.out")
		printf 'java saw GET /j%d peer 127.0.0.1:%d local 127.0.0.1:%d\n%d\n' "$i" "$p" "$SPORT" "$p"
	done)"
	sgserver node
	SOCKGATE_RULE="bind tcp *:8000 -> fdpass $T/node.sock" bg unshare -n env LD_PRELOAD="$LIB" node -e '
const http = require("http");
const srv = http.createServer((req, res) => {
	const s = req.socket;
	res.end(`node saw ${req.url} peer ${s.remoteAddress}:${s.remotePort} local ${s.localAddress}:${s.localPort}\n`);
});
srv.listen(8000, () => console.log("listening"));' > "$T/node.out"
	wait_for_line "$T/node.out" listening
	for i in 1 2 3; do
		curl -sS --max-time 5 -w '%{local_port}\n' "http://127.0.0.1:$SPORT/n$i"
	done > "$T/curl.out"
	run -0 cat "$T/curl.out"
	assert_output "$(for i in 1 2 3; do
		p=$(sed -n "$((2 * i))p" "$T/curl.out")
		printf 'node saw /n%d peer 127.0.0.1:%d local 127.0.0.1:%d\n%d\n' "$i" "$p" "$SPORT" "$p"
	done)"
}

@test "haproxy with no network: backends at 10.1.2.3 and 10.1.2.4 are Unix sockets, health checks see one up and one refused, requests arrive" {
	command -v haproxy >/dev/null || skip "haproxy not installed"
	need_netns
	userver web
	cat > "$T/haproxy.cfg" <<-EOF
	global
		stats socket $T/stats.sock level admin
	defaults
		mode http
		timeout connect 2s
		timeout client 5s
		timeout server 5s
	frontend fe
		bind unix@$T/fe.sock
		default_backend be
	backend be
		option httpchk GET /health
		server s1 10.1.2.3:8080 check inter 100ms
		server s2 10.1.2.4:8080 check inter 100ms
	EOF
	SOCKGATE_RULE="connect tcp 10.1.2.3:8080 -> unix $T/web.sock
connect tcp 10.1.2.4:8080 -> unix $T/nobody.sock" bg unshare -n env LD_PRELOAD="$LIB" \
		haproxy -f "$T/haproxy.cfg" -db > "$T/haproxy.out" 2>&1
	wait_for_line "$T/haproxy.out" 'Server be/s2 is DOWN'
	run -0 grep -c 'Server be/s2 is DOWN, reason: Layer4 connection problem, info: "General socket error (Connection refused)"' "$T/haproxy.out"
	assert_output 1
	for i in 1 2 3; do
		curl -sS --max-time 5 --unix-socket "$T/fe.sock" "http://x/via-haproxy$i"
	done > "$T/curl.out"
	run -0 cat "$T/curl.out"
	assert_output $'hello from unix\nhello from unix\nhello from unix'
	run -0 grep -c -e '^http GET /via-haproxy[123] HTTP/1.1$' "$T/web.log"
	assert_output 3
	run -0 grep -c '^http GET /health HTTP/1.0$' "$T/web.log"
	[ "$output" -ge 1 ]
	run -0 sh -c "echo 'show servers state be' | socat - UNIX-CONNECT:$T/stats.sock"
	assert_line --regexp '^[0-9]+ be [0-9]+ s1 10\.1\.2\.3 2 '
	assert_line --regexp '^[0-9]+ be [0-9]+ s2 10\.1\.2\.4 0 '
}

# cluster.js: node's cluster module, two workers serving http on *:8000;
# prints "listening" once both listen
cluster_js() {
	cat > "$T/cluster.js" <<-'EOF'
	const cluster = require("cluster"), http = require("http");
	if (cluster.isPrimary) {
		let n = 0;
		for (let i = 0; i < 2; i++)
			cluster.fork().on("listening", () => { if (++n === 2) console.log("listening"); });
	} else {
		http.createServer((req, res) => {
			const s = req.socket;
			res.end(`worker ${cluster.worker.id} saw ${req.url} peer ${s.remoteAddress}:${s.remotePort} local ${s.localAddress}:${s.localPort}\n`);
		}).listen(8000);
	}
	EOF
}

@test "node cluster (round robin) as a receiver with no network: both workers serve curl through sockgate-server and see its address and port" {
	command -v node >/dev/null || skip "node not installed"
	need_netns
	cluster_js
	sgserver cl
	SOCKGATE_RULE="bind tcp *:8000 -> fdpass $T/cl.sock" NODE_CLUSTER_SCHED_POLICY=rr bg unshare -n env LD_PRELOAD="$LIB" \
		timeout 60 node "$T/cluster.js" > "$T/cluster.out"
	wait_for_line "$T/cluster.out" listening
	for i in 1 2 3 4; do
		curl -sS --max-time 5 -w '%{local_port}\n' "http://127.0.0.1:$SPORT/c$i"
	done > "$T/curl.out"
	run -0 cat "$T/curl.out"
	# the primary accepts and hands connections to the workers in turn
	sed 's/^worker [12] /worker N /' "$T/curl.out" > "$T/curl.any"
	run -0 cat "$T/curl.any"
	assert_output "$(for i in 1 2 3 4; do
		p=$(sed -n "$((2 * i))p" "$T/curl.out")
		printf 'worker N saw /c%d peer 127.0.0.1:%d local 127.0.0.1:%d\n%d\n' "$i" "$p" "$SPORT" "$p"
	done)"
	run -0 grep -c '^worker 1 ' "$T/curl.out"
	assert_output 2
	run -0 grep -c '^worker 2 ' "$T/curl.out"
	assert_output 2
}

@test "a redirected listener keeps its inet identity in a program exec()ed with it, and in node cluster workers that get it over SCM_RIGHTS" {
	command -v node >/dev/null || skip "node not installed"
	need_netns
	SOCKGATE_RULE="bind tcp *:8000 -> unix $T/ex.sock" run -0 unshare -n env LD_PRELOAD="$LIB" timeout 10 python3 -c '
import socket, subprocess, sys
s = socket.socket(); s.bind(("0.0.0.0", 8000)); s.listen()
print("parent:", s.family.name, s.getsockname(), flush=True)
subprocess.run([sys.executable, "-c", "import socket, sys; s = socket.socket(fileno=int(sys.argv[1])); print(\"exec child:\", s.family.name, s.getsockname())", str(s.fileno())], pass_fds=[s.fileno()])'
	assert_output $'parent: AF_INET (\'0.0.0.0\', 8000)\nexec child: AF_INET (\'0.0.0.0\', 8000)'
	cluster_js
	SOCKGATE_RULE="bind tcp *:8000 -> unix $T/cl.sock" NODE_CLUSTER_SCHED_POLICY=none bg unshare -n env LD_PRELOAD="$LIB" \
		timeout 60 node "$T/cluster.js" > "$T/cluster.out" 2>&1
	wait_for_line "$T/cluster.out" 'listening\|Error'
	run -0 cat "$T/cluster.out"
	assert_output "listening"
	run -0 curl -sS --max-time 5 --unix-socket "$T/cl.sock" http://x/c1
	assert_output --regexp '^worker [12] saw /c1 peer 127\.0\.0\.1:0 local 0\.0\.0\.0:8000$'
}

# pg_init: a throwaway cluster owned by postgres in $T/pg (trust for local
# and loopback clients, as initdb -A trust writes it)
pg_init() {
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -x "$PGBIN/initdb" ] || PGBIN=$(dirname "$(command -v initdb 2>/dev/null || echo /none/initdb)")
	[ -x "$PGBIN/initdb" ] || skip "postgresql server not installed"
	[ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 || skip "needs root and a postgres user (runuser -u postgres)"
	chmod 711 "$T"
	mkdir "$T/pg" "$T/sock"
	chown postgres "$T/pg" "$T/sock"
	PGDATA=$T/pg/data
	runuser -u postgres -- "$PGBIN/initdb" -A trust -U postgres -D "$PGDATA" --no-sync > "$T/initdb.log" 2>&1
}

# pg_up [unshare -n] [VAR=VALUE...] OPTIONS: start the postmaster (in env
# VAR=VALUE..., in a network namespace of its own after "unshare -n")
pg_up() {
	local envs=() ns=()
	[[ $1 == unshare ]] && ns=(unshare "$2") && shift 2
	while [[ $1 == *=* && $1 != -* ]]; do envs+=("$1"); shift; done
	"${ns[@]}" runuser -u postgres -- env "${envs[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$T/pg/log" -w -t 30 \
		-o "-c fsync=off $*" start > /dev/null
}

# pg_start: listening only on the Unix socket $T/sock/.s.PGSQL.5432 (no TCP)
pg_start() {
	pg_init
	pg_up "-k $T/sock -c listen_addresses=''"
	"$PGBIN/pg_isready" -q -h "$T/sock" -t 10
}

@test "PostgreSQL: psql -h 10.1.2.3 reaches a server that listens only on a Unix socket; exact rows; COPY both ways; no network" {
	need_netns
	pg_start
	export SOCKGATE_RULE="connect tcp 10.1.2.3:5432 -> unix $T/sock/.s.PGSQL.5432"
	seq 1 50000 | sed 's/.*/&\tname &/' > "$T/rows.tsv"
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 20 "$PGBIN/psql" -h 10.1.2.3 -p 5432 -U postgres -X -q -A -t -v ON_ERROR_STOP=1 <<-EOF
	\conninfo
	select 6 * 7, inet_client_addr() is null, current_user;
	create table t (id int primary key, name text);
	\copy t from '$T/rows.tsv'
	select count(*), sum(id), md5(string_agg(name, ',' order by id)) from t;
	\copy (select * from t where id % 10000 = 0 order by id) to '$T/out.tsv'
	EOF
	assert_output - <<-EOF
	You are connected to database "postgres" as user "postgres" on host "10.1.2.3" at port "5432".
	42|t|postgres
	50000|1250025000|$(seq 1 50000 | sed 's/^/name /' | paste -sd, | tr -d '\n' | md5sum | cut -d' ' -f1)
	EOF
	run -0 cat "$T/out.tsv"
	assert_output $'10000\tname 10000\n20000\tname 20000\n30000\tname 30000\n40000\tname 40000\n50000\tname 50000'
}

@test "PostgreSQL: pgbench, 8 clients on 2 threads through the library, and a new connection per transaction: every transaction done" {
	need_netns
	pg_start
	export SOCKGATE_RULE="connect tcp 10.1.2.3:5432 -> unix $T/sock/.s.PGSQL.5432"
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 30 "$PGBIN/pgbench" -h 10.1.2.3 -p 5432 -U postgres -i -s 1 -q postgres
	assert_line --partial "done in"
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 30 "$PGBIN/pgbench" -h 10.1.2.3 -p 5432 -U postgres -n -S -c 8 -j 2 -t 200 postgres
	assert_line "number of transactions actually processed: 1600/1600"
	assert_line "number of failed transactions: 0 (0.000%)"
	# -C: a new connection for every transaction
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 30 "$PGBIN/pgbench" -h 10.1.2.3 -p 5432 -U postgres -n -S -C -c 4 -j 2 -t 50 postgres
	assert_line "number of transactions actually processed: 200/200"
	assert_line "number of failed transactions: 0 (0.000%)"
	run -0 "$PGBIN/psql" -h "$T/sock" -U postgres -X -A -t -c "select count(*) from pgbench_accounts"
	assert_output 100000
}

# pg_proxied: the postmaster itself under the library, its TCP listener on
# 0.0.0.0:5432 a Unix one that reads PROXY headers; 192.0.2.0/24 trusted
pg_proxied() {
	pg_init
	printf 'host all all 192.0.2.0/24 trust\n' >> "$PGDATA/pg_hba.conf"
	pg_up LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 0.0.0.0:5432 -> unix $T/sock/.s.PGSQL.5432 proxy-v2 mode=0666" \
		"-c unix_socket_directories='' -c listen_addresses='0.0.0.0' -c log_connections=on"
}

@test "PostgreSQL under the library, listening on a Unix socket by a bind rule with proxy-v2: the server sees the client's address from the header, pg_hba.conf applies to it" {
	need_netns
	pg_proxied
	run -0 grep -c 'listening on IPv4 address "0.0.0.0", port 5432' "$T/pg/log"
	assert_output 1
	SOCKGATE_RULE="connect tcp 10.1.2.3:5432 -> unix $T/sock/.s.PGSQL.5432 proxy-v2 source=192.0.2.7:4321" \
		run -0 unshare -n env LD_PRELOAD="$LIB" timeout 10 "$PGBIN/psql" -h 10.1.2.3 -U postgres -X -A -t \
		-c "select inet_client_addr(), inet_client_port(), inet_server_addr(), inet_server_port()" \
		-c "select client_addr, client_port from pg_stat_activity where pid = pg_backend_pid()"
	assert_output $'192.0.2.7|4321|10.1.2.3|5432\n192.0.2.7|4321'
	SOCKGATE_RULE="connect tcp 10.1.2.3:5432 -> unix $T/sock/.s.PGSQL.5432 proxy-v2 source=198.51.100.9:1" \
		run -2 unshare -n env LD_PRELOAD="$LIB" timeout 10 "$PGBIN/psql" -h 10.1.2.3 -U postgres -X -A -t -c "select 1"
	assert_output --partial 'FATAL:  no pg_hba.conf entry for host "198.51.100.9", user "postgres", database "postgres"'
	run -0 grep -c -e 'connection received: host=192.0.2.7 port=4321$' -e 'connection received: host=198.51.100.9 port=1$' "$T/pg/log"
	assert_output 2
}

@test "PostgreSQL as a receiver with no network: psql connects to sockgate-server on loopback, the postmaster accepts the passed socket and logs psql's address" {
	need_netns
	pg_init
	# the receiver's socket file goes where the postgres user may write
	sgserver sock/pgrx
	pg_up unshare -n LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 0.0.0.0:5432 -> fdpass $T/sock/pgrx.sock" \
		"-c unix_socket_directories='' -c listen_addresses='0.0.0.0' -c log_connections=on"
	for i in 1 2 3; do
		timeout 10 "$PGBIN/psql" "host=127.0.0.1 port=$SPORT user=postgres" -X -A -t \
			-c "select inet_client_addr(), inet_client_port(), inet_server_addr(), inet_server_port(), current_setting('port')"
	done > "$T/psql.out"
	run -0 cat "$T/psql.out"
	assert_output --regexp "^(127\.0\.0\.1\|[0-9]+\|127\.0\.0\.1\|$SPORT\|5432"$'\n'"?){3}\$"
	# the client ports the backends saw are the ones the postmaster logged
	for p in $(cut -d'|' -f2 "$T/psql.out"); do
		grep -q "connection received: host=127.0.0.1 port=$p\$" "$T/pg/log" || fail "port $p not in the log"
	done
}

@test "PostgreSQL under a proxy-v2 bind rule: a client without a PROXY header does not leave the postmaster deaf to signals" {
	need_netns
	pg_proxied
	# no header: closed by the library (psql says the server closed it)
	run -2 timeout 10 "$PGBIN/psql" -h "$T/sock" -U postgres -X -A -t -c "select 1"
	assert_output --partial "server closed the connection unexpectedly"
	run -0 runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 10 stop
	assert_line "server stopped"
}

@test "python urllib.request and http.client to an IP literal: status, body, and the request the server got" {
	userver web
	export SOCKGATE_RULE="connect tcp 10.1.2.3:8080 -> unix $T/web.sock"
	cat > "$T/client.py" <<-'EOF'
	import http.client, urllib.request
	r = urllib.request.urlopen("http://10.1.2.3:8080/by-urllib?x=1", timeout=5)
	print(r.status, r.read())
	c = http.client.HTTPConnection("10.1.2.3", 8080, timeout=5)
	c.request("GET", "/by-http-client", headers={"X-Test": "1"})
	peer = c.sock.getpeername()
	r = c.getresponse()
	print(r.status, r.reason, r.getheader("Content-Length"), r.read(), peer)
	EOF
	run -0 pre python3 "$T/client.py"
	assert_output $'200 b\'hello from unix\\n\'\n200 OK 16 b\'hello from unix\\n\' (\'10.1.2.3\', 8080)'
	need_netns
	run -0 unshare -n env LD_PRELOAD="$LIB" python3 "$T/client.py"
	assert_output $'200 b\'hello from unix\\n\'\n200 OK 16 b\'hello from unix\\n\' (\'10.1.2.3\', 8080)'
	run -0 grep -c '^http GET /by-urllib?x=1 HTTP/1.1$' "$T/web.log"
	assert_output 2
	run -0 grep -c '^http GET /by-http-client HTTP/1.1$' "$T/web.log"
	assert_output 2
}

dns_start() {
	bg python3 "$DNS" "$T/dns" --log "$T/dns.log" --ready "$T/dns.ready"
	wait_for_file "$T/dns.ready"
	export SOCKGATE_RULE="connect udp 10.1.2.3:53 -> unix $T/dns.dgram
connect tcp 10.1.2.3:53 -> unix $T/dns.stream"
}

@test "datagrams: dig and a python UDP client ask 10.1.2.3:53 and get the exact answer from a Unix datagram server" {
	command -v dig >/dev/null || skip "dig not installed (dnsutils)"
	dns_start
	run -0 pre timeout 10 dig @10.1.2.3 -p 53 web.example A +tries=1 +time=3 +noall +answer +comments
	assert_line --regexp '^;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: [0-9]+$'
	assert_line --regexp $'^web\\.example\\.\t+300\tIN\tA\t192\\.0\\.2\\.53$'
	run -0 pre timeout 10 python3 -c '
import socket, struct
q = struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x02py\x07example\x00" + struct.pack("!HH", 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(q, ("10.1.2.3", 53)); r, a = u.recvfrom(512)
print(a, r[:4].hex(), socket.inet_ntoa(r[-4:]))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(5)
c.connect(("10.1.2.3", 53)); c.send(q); r = c.recv(512)
print(c.getpeername(), r[:4].hex(), socket.inet_ntoa(r[-4:]), len(r))'
	assert_output $'(\'10.1.2.3\', 53) 12348180 192.0.2.53\n(\'10.1.2.3\', 53) 12348180 192.0.2.53 44'
	run -0 cat "$T/dns.log"
	assert_output $'udp web.example 1 from bound\nudp py.example 1 from bound\nudp py.example 1 from bound'
}

@test "dig +tcp with no network: the DNS query goes over a Unix stream socket" {
	command -v dig >/dev/null || skip "dig not installed (dnsutils)"
	need_netns
	dns_start
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 10 dig @10.1.2.3 web.example A +tcp +short +tries=1 +time=3
	assert_output "192.0.2.53"
	run -0 cat "$T/dns.log"
	assert_output "tcp web.example 1"
}

@test "datagrams with no network (unshare -n): the reply comes back to the redirected UDP client" {
	command -v dig >/dev/null || skip "dig not installed (dnsutils)"
	need_netns
	dns_start
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 10 dig @10.1.2.3 web.example A +short +tries=1 +time=3
	assert_output "192.0.2.53"
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 10 python3 -c '
import socket, struct
q = struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x02py\x07example\x00" + struct.pack("!HH", 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(q, ("10.1.2.3", 53)); r, a = u.recvfrom(512)
print(a, socket.inet_ntoa(r[-4:]))'
	assert_output "('10.1.2.3', 53) 192.0.2.53"
	run -0 cat "$T/dns.log"
	assert_output $'udp web.example 1 from bound\nudp py.example 1 from bound'
}

@test "datagrams in a PID namespace: dig and a python client that _exit()s each run twice with the same pid, every run answered" {
	command -v dig >/dev/null || skip "dig not installed (dnsutils)"
	need_netns
	unshare -n -p -f true 2>/dev/null || skip "unshare -p refused here"
	dns_start
	local i
	for i in 1 2; do
		# dig exits without closing its socket: the file goes at exit()
		run -0 unshare -n -p -f env LD_PRELOAD="$LIB" timeout 10 dig @10.1.2.3 web.example A +short +tries=1 +time=3
		assert_output "192.0.2.53"
		run -0 find "$T" -name '.sockgate-dgram-*'
		assert_output ""
	done
	for i in 1 2; do
		# _exit() leaves it (pid 2 under timeout, both times): the next run replaces the stale file
		run -0 unshare -n -p -f env LD_PRELOAD="$LIB" timeout 10 python3 -c '
import os, socket, struct
q = struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x02py\x07example\x00" + struct.pack("!HH", 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(q, ("10.1.2.3", 53)); r, a = u.recvfrom(512)
print(os.getpid(), a, socket.inet_ntoa(r[-4:]), flush=True); os._exit(0)'
		assert_output "2 ('10.1.2.3', 53) 192.0.2.53"
		run -0 find "$T" -name '.sockgate-dgram-*' -printf '%f\n'
		assert_output ".sockgate-dgram-2-1"
	done
	run -0 cat "$T/dns.log"
	assert_output $'udp web.example 1 from bound\nudp web.example 1 from bound\nudp py.example 1 from bound\nudp py.example 1 from bound'
	# no reply file can be made: the call fails, said once, never a silent abstract address
	SOCKGATE_DGRAM_DIR=$T/missing run -1 pre timeout 10 python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"q", ("10.1.2.3", 53))
except OSError as e:
    print(e.strerror); raise SystemExit(1)'
	assert_line --index 0 --regexp "^libsockgate: no reply address for a datagram socket at $T/missing/\.sockgate-dgram-[0-9]+-1: No such file or directory\$"
	assert_line --index 1 "No such file or directory"
}

@test "java DatagramSocket and a connected DatagramChannel with a Selector ask 10.1.2.3:53 and get the exact answer (IPv4 stack)" {
	need_java
	dns_start
	run -0 pre "${JAVA4_RUN[@]}" udp 10.1.2.3 53
	assert_output $'DatagramSocket: from /10.1.2.3:53 46 bytes, id 1234 A 192.0.2.53\nDatagramChannel: peer /10.1.2.3:53 45 bytes, A 192.0.2.53'
	run -0 cat "$T/dns.log"
	assert_output $'udp java.example 1 from bound\nudp nio.example 1 from bound'
}

@test "an IPv6 (dual-stack) UDP socket sees 10.1.2.3:53 as the sender of the reply, whatever the length of the Unix path" {
	# a short (abstract) server address
	local name=sgc$$-$RANDOM
	bg python3 "$DNS" "@$name" --log "$T/dns.log" --ready "$T/dns.ready"
	wait_for_file "$T/dns.ready"
	export SOCKGATE_RULE="connect udp 10.1.2.3:53 -> abstract $name.dgram"
	run -0 pre python3 -c '
import socket, struct
q = struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x02py\x07example\x00" + struct.pack("!HH", 1, 1)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(q, ("::ffff:10.1.2.3", 53)); print(u.recvfrom(512)[1])
u.sendto(q, ("::ffff:10.1.2.3", 53)); print(u.recvmsg(512)[3])'
	assert_output $'(\'::ffff:10.1.2.3\', 53, 0, 0)\n(\'::ffff:10.1.2.3\', 53, 0, 0)'
	# the JDK's DatagramSocket makes an AF_INET6 socket where the host has IPv6
	need_java
	run -0 pre "${JAVA_RUN[@]}" udp 10.1.2.3 53
	assert_output $'DatagramSocket: from /10.1.2.3:53 46 bytes, id 1234 A 192.0.2.53\nDatagramChannel: peer /10.1.2.3:53 45 bytes, A 192.0.2.53'
}

@test "node: http.get and net.connect with no network; dgram unconnected and connected; exact bytes and peers" {
	command -v node >/dev/null || skip "node not installed"
	need_netns
	userver web
	dns_start
	export SOCKGATE_RULE="$SOCKGATE_RULE
connect tcp 10.1.2.3:8080 -> unix $T/web.sock"
	cat > "$T/tcp.js" <<-'EOF'
	const http = require("http"), net = require("net");
	http.get("http://10.1.2.3:8080/by-node", res => {
		let b = "";
		res.on("data", d => b += d);
		res.on("end", () => {
			console.log(res.statusCode, JSON.stringify(b));
			const s = net.connect(8080, "10.1.2.3", () => {
				console.log("net peer", s.remoteAddress, s.remotePort, s.remoteFamily);
				s.end(Buffer.from([0, 1, 2, 255, 10]));
			});
			const got = [];
			s.on("data", d => got.push(d));
			s.on("end", () => console.log("echo", Buffer.concat(got).toString("hex")));
		});
	});
	EOF
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 10 node "$T/tcp.js"
	assert_output $'200 "hello from unix\\n"\nnet peer 10.1.2.3 8080 IPv4\necho 000102ff0a'
	run -0 grep -c -F -x -e 'http GET /by-node HTTP/1.1' -e "data b'\\x00\\x01\\x02\\xff\\n'" "$T/web.log"
	assert_output 2
	cat > "$T/udp.js" <<-'EOF'
	const dgram = require("dgram");
	const q = n => Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
		Buffer.from([n.length]), Buffer.from(n), Buffer.from([7]), Buffer.from("example"), Buffer.from([0, 0, 1, 0, 1])]);
	const u = dgram.createSocket("udp4");
	u.on("message", (m, r) => {
		console.log("from", r.address, r.port, m.length, m.slice(-4).join("."));
		u.close();
		const c = dgram.createSocket("udp4");
		c.connect(53, "10.1.2.3", () => c.send(q("conn")));
		c.on("message", (m2, r2) => {
			console.log("connected from", r2.address, r2.port, m2.length, m2.slice(-4).join("."));
			c.close();
		});
	});
	u.send(q("node"), 53, "10.1.2.3");
	EOF
	# in the host's namespace: see the datagram test with no network above
	run -0 pre timeout 10 node "$T/udp.js"
	assert_output $'from 10.1.2.3 53 46 192.0.2.53\nconnected from 10.1.2.3 53 46 192.0.2.53'
	run -0 cat "$T/dns.log"
	assert_output $'udp node.example 1 from bound\nudp conn.example 1 from bound'
}

@test "full backlog: 200 non-blocking connects each from node (libuv) and Java NIO into a listener with backlog 1 all complete when it accepts" {
	command -v node >/dev/null || skip "node not installed"
	need_java
	userver slow --backlog 1 --accept-after "$T/gate" --quiet
	userver slow2 --backlog 1 --accept-after "$T/gate2" --quiet
	cat > "$T/burst.js" <<-'EOF'
	const net = require("net"), fs = require("fs");
	const n = +process.argv[2], gate = process.argv[3];
	let done = 0, ok = 0, connected = 0;
	for (let i = 0; i < n; i++) {
		const s = net.connect(80, "10.1.2.3", () => { connected++; s.end(`conn ${i}\n`); });
		let b = "";
		s.on("data", d => b += d);
		s.on("error", e => console.log("error", i, e.code));
		s.on("close", () => {
			if (b === `conn ${i}\n`) ok++;
			if (++done === n) console.log("connections", n, "connected", connected, "echoed", ok);
		});
	}
	setTimeout(() => {
		console.log("connected before accept: fewer than", n, connected < n);
		fs.writeFileSync(gate, "");
	}, 500);
	EOF
	SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/slow.sock" run -0 pre timeout 30 node "$T/burst.js" 200 "$T/gate"
	assert_output $'connected before accept: fewer than 200 true\nconnections 200 connected 200 echoed 200'
	SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/slow2.sock" run -0 pre "${JAVA_RUN[@]}" burst 10.1.2.3 80 200 "$T/gate2"
	assert_output $'connected before accept: fewer than 200 true\nconnections 200 connected 200 echoed 200'
}

@test "node's http server listens on a Unix socket by a bind rule, with no network; curl --unix-socket and a redirected curl reach it" {
	command -v node >/dev/null || skip "node not installed"
	need_netns
	SOCKGATE_RULE="bind tcp *:8000 -> unix $T/node.sock" bg unshare -n env LD_PRELOAD="$LIB" node -e '
const http = require("http");
const srv = http.createServer((req, res) => {
	const s = req.socket;
	res.end(`node saw ${req.method} ${req.url} peer ${s.remoteAddress}:${s.remotePort} local ${s.localAddress}:${s.localPort}\n`);
});
srv.listen(8000, () => { const a = srv.address(); console.log("listening", a.address, a.port, a.family); });' > "$T/node.out"
	wait_for_line "$T/node.out" listening
	run -0 cat "$T/node.out"
	assert_output "listening :: 8000 IPv6"
	run -0 curl -sS --max-time 5 --unix-socket "$T/node.sock" http://x/a
	assert_output "node saw GET /a peer ::1:0 local :::8000"
	SOCKGATE_RULE="connect tcp 10.1.2.3:8000 -> unix $T/node.sock" \
		run -0 unshare -n env LD_PRELOAD="$LIB" curl -sS --max-time 5 http://10.1.2.3:8000/one http://10.1.2.3:8000/two
	assert_output $'node saw GET /one peer ::1:0 local :::8000\nnode saw GET /two peer ::1:0 local :::8000'
}

@test "perl HTTP::Tiny and IO::Socket::INET with no network: status, body, echo, peer" {
	need_netns
	userver web
	export SOCKGATE_RULE="connect tcp 10.1.2.3:8080 -> unix $T/web.sock"
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 10 perl -MHTTP::Tiny -MIO::Socket::INET -e '
my $r = HTTP::Tiny->new(timeout => 5)->get("http://10.1.2.3:8080/by-perl");
print "$r->{status} $r->{content}";
my $s = IO::Socket::INET->new(PeerAddr => "10.1.2.3", PeerPort => 8080, Timeout => 5) or die "connect: $@";
print "peer ", $s->peerhost, ":", $s->peerport, "\n";
print $s "perl \x00\xff line\n"; my $l = <$s>; print "echo ", unpack("H*", $l), "\n";'
	assert_output $'200 hello from unix\npeer 10.1.2.3:8080\necho 7065726c2000ff206c696e650a'
	run -0 grep -c -F -x -e 'http GET /by-perl HTTP/1.1' -e "data b'perl \\x00\\xff line\\n'" "$T/web.log"
	assert_output 2
}

@test "redis: redis-cli -h 10.1.2.3 SET/GET against a Unix-socket redis; redis-server itself on a Unix socket by a bind rule, redis-benchmark through both" {
	command -v redis-server >/dev/null || skip "redis-server not installed"
	need_netns
	bg redis-server --port 0 --unixsocket "$T/r.sock" --save '' --appendonly no --dir "$T" --logfile "$T/r.log"
	SOCKGATE_RULE="bind tcp *:6379 -> unix $T/rb.sock" bg unshare -n env LD_PRELOAD="$LIB" \
		redis-server --port 6379 --bind 0.0.0.0 --save '' --appendonly no --dir "$T" --logfile "$T/rb.log"
	wait_for_line "$T/r.log" "eady to accept connections"
	wait_for_line "$T/rb.log" "eady to accept connections"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:6379 -> unix $T/r.sock
connect tcp 10.1.2.4:6379 -> unix $T/rb.sock"
	cli() { unshare -n env LD_PRELOAD="$LIB" timeout 10 redis-cli "$@"; }
	run -0 cli -h 10.1.2.3 -p 6379 SET greeting $'bytes \x01\xff and spaces'
	assert_output "OK"
	run -0 cli -h 10.1.2.3 -p 6379 --no-raw GET greeting
	assert_output '"bytes \x01\xff and spaces"'
	# the server saw a Unix client
	run -0 cli -h 10.1.2.3 -p 6379 CLIENT INFO
	assert_output --regexp '^id=[0-9]+ addr=/.*/r\.sock:0 laddr=/.*/r\.sock:0 fd=[0-9]+ '
	run -0 cli -h 10.1.2.4 -p 6379 CLIENT INFO
	assert_output --regexp '^id=[0-9]+ addr=127\.0\.0\.1:0 laddr=0\.0\.0\.0:6379 fd=[0-9]+ '
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 30 redis-benchmark -h 10.1.2.4 -p 6379 -n 2000 -c 4 -t set,get --csv
	assert_line --regexp '^"SET","[0-9.]+",'
	assert_line --regexp '^"GET","[0-9.]+",'
	run -0 cli -h 10.1.2.4 -p 6379 INFO commandstats
	assert_line --regexp '^cmdstat_set:calls=2000,'
	assert_line --regexp '^cmdstat_get:calls=2000,'
}

@test "redis-server under a proxy-v2 bind rule: protected mode judges the address in the header; CLIENT INFO shows it" {
	command -v redis-server >/dev/null || skip "redis-server not installed"
	need_netns
	SOCKGATE_RULE="bind tcp *:6379 -> unix $T/rp.sock proxy-v2" bg unshare -n env LD_PRELOAD="$LIB" \
		redis-server --port 6379 --bind 0.0.0.0 --save '' --appendonly no --dir "$T" --logfile "$T/rp.log"
	SOCKGATE_RULE="bind tcp *:6380 -> unix $T/ro.sock proxy-v2" bg unshare -n env LD_PRELOAD="$LIB" \
		redis-server --port 6380 --bind 0.0.0.0 --protected-mode no --save '' --appendonly no --dir "$T" --logfile "$T/ro.log"
	wait_for_line "$T/rp.log" "eady to accept connections"
	wait_for_line "$T/ro.log" "eady to accept connections"
	export SOCKGATE_RULE="connect tcp 10.1.2.3:6379 -> unix $T/rp.sock proxy-v2 source=192.0.2.7:4321
connect tcp 10.1.2.4:6379 -> unix $T/rp.sock proxy-v2 source=127.0.0.1:4322
connect tcp 10.1.2.3:6380 -> unix $T/ro.sock proxy-v2 source=192.0.2.7:4323"
	cli() { unshare -n env LD_PRELOAD="$LIB" timeout 10 redis-cli "$@"; }
	# a client from 192.0.2.7 is not loopback: refused in protected mode.
	# (read before writing: redis writes DENIED and closes at once, and a
	# write to a Unix socket whose peer has closed fails with EPIPE at
	# once, where TCP would take one more round trip; redis-cli may die
	# of that SIGPIPE before it reads the answer)
	run -0 unshare -n env LD_PRELOAD="$LIB" timeout 30 python3 -c '
import socket
s = socket.create_connection(("10.1.2.3", 6379), timeout=20)
print(s.makefile("rb").readline()[:48].decode())'
	assert_output "-DENIED Redis is running in protected mode becau"
	run -0 cli -h 10.1.2.4 -p 6379 CLIENT INFO
	assert_output --regexp '^id=[0-9]+ addr=127\.0\.0\.1:4322 laddr=10\.1\.2\.4:6379 fd=[0-9]+ '
	run -0 cli -h 10.1.2.3 -p 6380 CLIENT INFO
	assert_output --regexp '^id=[0-9]+ addr=192\.0\.2\.7:4323 laddr=10\.1\.2\.3:6380 fd=[0-9]+ '
}

# need_v6lo: skip unless ::1 can be bound here (the dual-stack tests' clients use it)
need_v6lo() {
	python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
		skip "no IPv6 loopback here"
}

@test "dual-stack redis-server (its default bind * -::*) behind one fdpass rule: redis-cli over 127.0.0.1 and ::1, each address as it is" {
	command -v redis-server >/dev/null || skip "redis-server not installed"
	need_netns
	need_v6lo
	# on [::] with IPV6_V6ONLY off: IPv4 clients come as ::ffff:127.0.0.1 sockets
	sgserver rd ::
	SOCKGATE_RULE="bind tcp *:6379 -> fdpass $T/rd.sock" bg unshare -n env LD_PRELOAD="$LIB" \
		redis-server --port 6379 --bind '* -::*' --save '' --appendonly no --dir "$T" --logfile "$T/rd.log"
	wait_for_line "$T/rd.log" "Ready to accept connections"
	run -0 redis-cli -h 127.0.0.1 -p "$SPORT" CLIENT INFO
	[[ "$output" =~ " addr=127.0.0.1:"[1-9][0-9]*" " ]] || fail "IPv4 client seen as: $output"
	run -0 redis-cli -h ::1 -p "$SPORT" CLIENT INFO
	[[ "$output" =~ " addr=[::1]:"[1-9][0-9]*" " ]] || fail "IPv6 client seen as: $output"
	run -0 redis-cli -h ::1 -p "$SPORT" SET k 'both families'
	run -0 redis-cli -h 127.0.0.1 -p "$SPORT" GET k
	assert_output "both families"
}

@test "dual-stack nginx (listen 80; listen [::]:80;) behind one fdpass rule: IPv4 clients reach the AF_INET socket, IPv6 ones the AF_INET6 one" {
	command -v nginx >/dev/null || skip "nginx not installed"
	need_netns
	need_v6lo
	sgserver ngd ::
	cat > "$T/nd.conf" <<-EOF
	daemon off;
	worker_processes 2;
	pid $T/nd.pid;
	error_log $T/nd-error.log;
	events { worker_connections 64; }
	http {
		client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T;
		uwsgi_temp_path $T; scgi_temp_path $T;
		log_format peer '\$remote_addr \$remote_port \$request';
		server {
			listen 80;
			listen [::]:80;
			access_log $T/nd-access.log peer;
			location / { return 200 "dual-stack nginx\n"; }
		}
	}
	EOF
	bg unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp *:80 -> fdpass $T/ngd.sock" \
		nginx -c "$T/nd.conf" -e "$T/nd-error.log"
	wait_for_file "$T/nd.pid"
	for i in 1 2 3; do
		curl -sS --max-time 5 -w '%{local_port}\n' "http://127.0.0.1:$SPORT/v4-$i"
		curl -sS --max-time 5 -w '%{local_port}\n' "http://[::1]:$SPORT/v6-$i"
	done > "$T/curl.out"
	run -0 grep -c "^dual-stack nginx$" "$T/curl.out"
	assert_output 6
	# $remote_addr of an IPv4 client on the [::] socket would be ::ffff:127.0.0.1
	mapfile -t ports < <(grep -v nginx "$T/curl.out")
	for i in 1 2 3; do
		wait_for_line "$T/nd-access.log" "127.0.0.1 ${ports[2 * i - 2]} GET /v4-$i HTTP/1.1"
		wait_for_line "$T/nd-access.log" "::1 ${ports[2 * i - 1]} GET /v6-$i HTTP/1.1"
	done
	run -0 grep -c . "$T/nd-access.log"
	assert_output 6
	run -0 cat "$T/nd-error.log"
	refute_output --partial "emerg"
}

@test "redis replication with no network: a replica follows its master at 10.1.2.3:6379 (a Unix socket), writes arrive" {
	command -v redis-server >/dev/null || skip "redis-server not installed"
	need_netns
	bg redis-server --port 0 --unixsocket "$T/m.sock" --repl-diskless-sync-delay 0 --save '' --appendonly no \
		--dir "$T" --logfile "$T/m.log"
	wait_for_line "$T/m.log" "eady to accept connections"
	SOCKGATE_RULE="connect tcp 10.1.2.3:6379 -> unix $T/m.sock" bg unshare -n env LD_PRELOAD="$LIB" \
		redis-server --port 0 --unixsocket "$T/rep.sock" --replicaof 10.1.2.3 6379 --save '' --appendonly no \
		--dir "$T" --logfile "$T/rep.log"
	wait_for_line "$T/rep.log" "MASTER <-> REPLICA sync: Finished with success"
	# WAIT in the same connection: it waits for that client's writes
	run -0 sh -c "printf 'SET written \"on the master\"\nWAIT 1 5000\n' | redis-cli -s $T/m.sock"
	assert_output $'OK\n1'
	run -0 redis-cli -s "$T/rep.sock" GET written
	assert_output "on the master"
	run -0 redis-cli -s "$T/rep.sock" INFO replication
	assert_line --regexp $'^master_host:10\\.1\\.2\\.3\r$'
	assert_line --regexp $'^master_link_status:up\r$'
}

@test "nginx and a python asyncio server under a proxy-v2 bind rule: a client dribbling its header holds up nobody; each sees the header's address" {
	local ngx
	ngx=$(command -v nginx) || skip "nginx not installed"
	nginx_conf 'return 200 "nginx $remote_addr:$remote_port\n";'
	SOCKGATE_RULE="bind tcp 127.0.0.1:8080 -> unix $T/ngx.sock proxy-v2" env LD_PRELOAD="$LIB" \
		"$ngx" -p "$T" -c "$T/nginx.conf" -g 'user root;'
	SOCKGATE_RULE="bind tcp 127.0.0.1:8081 -> unix $T/aio.sock proxy-v2" bg env LD_PRELOAD="$LIB" python3 -c '
import asyncio
async def serve(r, w):
    await r.readline()
    a = w.get_extra_info("peername")
    w.write(b"HTTP/1.0 200 OK\r\n\r\nasyncio %s:%d\n" % (a[0].encode(), a[1])); await w.drain(); w.close()
async def main():
    srv = await asyncio.start_server(serve, "127.0.0.1", 8081)
    async with srv: await srv.serve_forever()
asyncio.run(main())'
	wait_for_file "$T/ngx.sock"
	wait_for_file "$T/aio.sock"
	run timeout 20 python3 -c '
import socket, struct, sys, time
def hdr(src, sport):
    body = socket.inet_aton(src) + socket.inet_aton("10.1.2.3") + struct.pack("!HH", sport, 80)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
def get(path, src, port):
    c = socket.socket(socket.AF_UNIX); c.settimeout(5); c.connect(path)
    c.sendall(hdr(src, port) + b"GET / HTTP/1.0\r\n\r\n")
    return b"".join(iter(lambda: c.recv(4096), b"")).split(b"\r\n\r\n", 1)[1].decode().strip()
for path in sys.argv[1:]:
    slow = socket.socket(socket.AF_UNIX); slow.connect(path); slow.send(hdr("192.0.2.7", 7777)[:3])
    t0 = time.monotonic()
    for i in range(3):
        print(get(path, "192.0.2.%d" % (i + 1), 1000 + i))
    print("fast" if time.monotonic() - t0 < 0.9 else "held up %.2fs" % (time.monotonic() - t0))
    slow.send(hdr("192.0.2.7", 7777)[3:] + b"GET / HTTP/1.0\r\n\r\n")
    print(b"".join(iter(lambda: slow.recv(4096), b"")).split(b"\r\n\r\n", 1)[1].decode().strip())
' "$T/ngx.sock" "$T/aio.sock"
	kill -QUIT "$(cat "$T/nginx.pid")"
	# the master ends its worker and removes its pid file (the teardown's kill -9 would orphan the worker)
	for _ in $(seq 200); do [ -e "$T/nginx.pid" ] || break; sleep 0.05; done
	[ "$status" -eq 0 ]
	assert_output - <<-EOF
	nginx 192.0.2.1:1000
	nginx 192.0.2.2:1001
	nginx 192.0.2.3:1002
	fast
	nginx 192.0.2.7:7777
	asyncio 192.0.2.1:1000
	asyncio 192.0.2.2:1001
	asyncio 192.0.2.3:1002
	fast
	asyncio 192.0.2.7:7777
	EOF
}

@test "nginx binary upgrade (USR2, WINCH, QUIT) with no network: the new master takes the inherited Unix listener as 127.0.0.1:8080 and serves" {
	local ngx
	ngx=$(command -v nginx) || skip "nginx not installed"
	need_netns
	nginx_conf 'return 200 "served by $pid\n";'
	# nginx passes the listening fds to the new binary (NGINX=fd;...) and
	# keeps only the environment that "env" names
	SOCKGATE_RULE="bind tcp 127.0.0.1:8080 -> unix $T/web.sock" unshare -n env LD_PRELOAD="$LIB" \
		"$ngx" -p "$T" -c "$T/nginx.conf" -g 'user root;'
	wait_for_file "$T/web.sock"
	run -0 curl -sS --max-time 5 --unix-socket "$T/web.sock" http://x/
	local old_worker=$output old
	old=$(cat "$T/nginx.pid")
	kill -USR2 "$old"
	wait_for_file "$T/nginx.pid.oldbin"
	for _ in $(seq 100); do [ "$(grep -c "start worker process" "$T/error.log")" -ge 2 ] && break; sleep 0.05; done
	kill -WINCH "$old"
	kill -QUIT "$old"
	for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.05; done
	! kill -0 "$old" 2>/dev/null
	for i in 1 2 3; do
		run -0 curl -sS --max-time 5 --unix-socket "$T/web.sock" http://x/
		[[ $output == "served by "* ]]
		[ "$output" != "$old_worker" ]
	done
	kill -QUIT "$(cat "$T/nginx.pid")"
	run grep -c "deleting socket" "$T/error.log"
	assert_output 0
}

@test "nginx as a reverse proxy (keepalive upstream 10.1.2.3:80) to a Unix HTTP server: three 3 MiB answers arrive whole over one upstream connection" {
	command -v nginx >/dev/null || skip "nginx not installed"
	need_netns
	head -c 3145728 /dev/urandom >"$T/big"
	bg python3 -c '
import functools, http.server, socketserver, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def address_string(self): return "unix"
    def setup(self):
        super().setup(); print("connection", flush=True)
    def log_message(self, fmt, *a): print("request", self.path, flush=True)
class S(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
S(sys.argv[1], functools.partial(H, directory=sys.argv[2])).serve_forever()' "$T/up.sock" "$T" >"$T/up.log"
	wait_for_file "$T/up.sock"
	cat >"$T/rp.conf" <<-EOF
	env LD_PRELOAD;
	env SOCKGATE_RULE;
	user root;
	worker_processes 1;
	daemon off;
	error_log $T/rp-error.log info;
	pid $T/rp.pid;
	events { worker_connections 64; }
	http {
		access_log off;
		client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T; scgi_temp_path $T;
		upstream up { server 10.1.2.3:80; keepalive 4; }
		server {
			listen 127.0.0.1:8080;
			location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
		}
	}
	EOF
	# nginx and curl in a namespace of their own: port 8080 is theirs alone
	run -0 unshare -n env LD_PRELOAD="$LIB" SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/up.sock" sh -c '
		ip link set lo up
		nginx -c "$1/rp.conf" -e "$1/rp-error.log" & ngx=$!
		for i in $(seq 100); do env -u LD_PRELOAD curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.05; done
		for i in 1 2 3; do env -u LD_PRELOAD curl -sS --max-time 20 http://127.0.0.1:8080/big | sha256sum; done
		kill $ngx; wait $ngx' sh "$T"
	sum=$(sha256sum <"$T/big")
	assert_output "$(printf '%s\n' "$sum" "$sum" "$sum")"
	run -0 grep -c "^request /big" "$T/up.log"
	assert_output 3
	# keepalive: the three (and the probe before them) went over one connection
	run -0 grep -c "^connection" "$T/up.log"
	assert_output 1
}
