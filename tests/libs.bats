#!/usr/bin/env bats
# The library builds beside the glibc one: for older glibc
# (`make PARACONTAINER=1`, built by `make check` into $BUILD/para) and for
# musl programs ($BUILD/libsockgate-musl.so).

load helper

PARA=$BUILD/para/libsockgate.so

# glibc_needs LIB: every GLIBC_x.y version LIB needs, one a line
glibc_needs() {
	readelf -V "$1" | sed -n '/Version needs/,$ s/.*Name: \(GLIBC_[0-9.]*\).*/\1/p' | sort -u -V
}

@test "PARACONTAINER=1: the library needs nothing newer than GLIBC_2.17 (readelf -V)" {
	[ -f "$PARA" ] || skip "make para-lib builds $PARA (make check does)"
	run -0 glibc_needs "$PARA"
	[ -n "$output" ]
	newest=$(echo "$output" | tail -1)
	[ "$(printf '%s\nGLIBC_2.17\n' "$newest" | sort -V | tail -1)" = GLIBC_2.17 ] ||
		{ echo "needs $newest:"; echo "$output"; return 1; }
	# what glibc 2.34 moved into libc is asked of the libraries it was in before
	run -0 readelf -V "$PARA"
	assert_output --regexp 'File: libdl.so.2  Cnt: 1'
	assert_output --regexp 'File: libpthread.so.0  Cnt: 1'
	# the default build does need the newer glibc: the check above can fail
	run -0 glibc_needs "$LIB"
	[ "$(echo "$output" | tail -1)" != GLIBC_2.17 ]
}

@test "PARACONTAINER=1: the old-glibc library works here too, preloaded and as a program" {
	[ -f "$PARA" ] || skip "make para-lib builds $PARA (make check does)"
	python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
open(sys.argv[2],"w").write("ready\n")
c,_=s.accept(); d=b""
while True:
    b=c.recv(100)
    if not b: break
    d+=b
c.sendall(b"got:"+d)' "$T/u.sock" "$T/ready" &
	PIDS+=($!)
	wait_for_file "$T/ready"
	run -0 env SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/u.sock" LD_PRELOAD="$PARA" \
		python3 -c 'import socket; s=socket.create_connection(("10.1.2.3",80)); s.sendall(b"para"); s.shutdown(socket.SHUT_WR); print(s.recv(100).decode())'
	assert_output "got:para"
	run -0 "$PARA" --vsock any:5 "$T/c"
	run -0 sockgate-mkctl --show "$T/c"
	assert_output "--vsock any:5"
}

# --- sockgate-run picks the library by the program's ELF interpreter ----------

@test "sockgate-run: a glibc program and a script get libsockgate.so" {
	run -0 sockgate-run -- sh -c 'echo "$LD_PRELOAD"'
	assert_output "$LIB"
	printf '#!/bin/sh\necho "$LD_PRELOAD"\n' > "$T/s.sh"
	chmod +x "$T/s.sh"
	run -0 sockgate-run -- "$T/s.sh"
	assert_output "$LIB"
}

@test "sockgate-run: a static program runs, after one line naming --seccomp" {
	readelf -l "$SG" | grep -q 'program interpreter' && skip "this build of sockgate is not static (SANITIZE)"
	run -0 sockgate-run -- "$SG" mkctl --vsock any:1 "$T/x"
	assert_output "sockgate-run: warning: $SG is linked statically, out of the library's reach: run it with --seccomp"
	[ -s "$T/x" ]
}

# --- libsockgate-musl.so in a musl program -------------------------------------

MUSLLIB=$BUILD/libsockgate-musl.so

# a dynamically linked musl program: "client" connects to 10.1.2.3:80, sends a
# line and prints the answer and its peer; "server PORT READY" listens on
# 127.0.0.1:PORT, answers one connection with its line upper-cased, and
# prints the peer and its own address
musl_peer() {
	command -v musl-gcc >/dev/null || skip "musl-gcc not installed"
	cat > "$T/peer.c" <<'C'
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
static void show(const char *what, struct sockaddr_in *a)
{
	char h[64];
	printf("%s %s:%d\n", what, inet_ntop(AF_INET, &a->sin_addr, h, sizeof h), ntohs(a->sin_port));
}
int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET }, p;
	socklen_t l = sizeof p;
	char buf[256];
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (!strcmp(argv[1], "preload")) {
		printf("LD_PRELOAD=%s\n", getenv("LD_PRELOAD"));
		return 0;
	}
	if (!strcmp(argv[1], "client")) {
		a.sin_port = htons(80);
		inet_pton(AF_INET, "10.1.2.3", &a.sin_addr);
		if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
		write(s, "musl client\n", 12);
		ssize_t n = read(s, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = 0;
		printf("got %s", buf);
		getpeername(s, (struct sockaddr *)&p, &l);
		show("peer", &p);
		return 0;
	}
	a.sin_port = htons(atoi(argv[2]));
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 5)) { perror("bind"); return 1; }
	fclose(fopen(argv[3], "w"));
	int c = accept(s, (struct sockaddr *)&p, &l);
	if (c < 0) { perror("accept"); return 1; }
	show("accepted from", &p);
	l = sizeof p;
	getsockname(s, (struct sockaddr *)&p, &l);
	show("listening on", &p);
	ssize_t n = read(c, buf, sizeof buf);
	for (ssize_t i = 0; i < n; i++)
		buf[i] = (char)toupper((unsigned char)buf[i]);
	write(c, buf, n > 0 ? (size_t)n : 0);
	return 0;
}
C
	musl-gcc -O1 -o "$T/peer" "$T/peer.c"
	readelf -l "$T/peer" | grep -q 'interpreter: /lib/ld-musl' || { echo "not a dynamic musl program"; return 1; }
}

@test "musl: a dynamically linked musl program connects through a rule with libsockgate-musl.so" {
	musl_peer
	bg python3 "$TOP/tests/tools/pre_userver.py" "$T/echo.sock" --log "$T/echo.log" --ready "$T/echo.ready"
	wait_for_file "$T/echo.ready"
	SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/echo.sock" LD_PRELOAD=$MUSLLIB run -0 "$T/peer" client
	assert_line "got musl client"
	assert_line "peer 10.1.2.3:80"
	# sockgate-run picks the musl library for it by itself
	run -0 sockgate-run -r "connect tcp 10.1.2.3:80 -> unix $T/echo.sock" -- "$T/peer" client
	assert_line "got musl client"
	run -0 sockgate-run -- "$T/peer" preload
	assert_output "LD_PRELOAD=$MUSLLIB"
	run -0 cat "$T/echo.log"
	assert_line "data b'musl client\\n'"
}

@test "musl: the musl program serves through a bind rule: a Unix client reaches it" {
	musl_peer
	SOCKGATE_RULE="bind tcp 127.0.0.1:7000 -> unix $T/srv.sock" LD_PRELOAD=$MUSLLIB \
		bg "$T/peer" server 7000 "$T/ready" > "$T/server.out"
	wait_for_file "$T/ready"
	[ -S "$T/srv.sock" ]
	run -0 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"hello musl\n"); print(s.recv(100))' "$T/srv.sock"
	assert_output "b'HELLO MUSL\\n'"
	wait "${PIDS[-1]}"
	run -0 cat "$T/server.out"
	assert_line "accepted from 127.0.0.1:0"
	assert_line "listening on 127.0.0.1:7000"
}

@test "musl: libsockgate-musl.so exports exactly the hooks, needs only musl's libc, and runs as a program" {
	want=$(sed -n 's/^HOOK(\([a-z0-9_]*\),.*/\1/p' "$TOP/preload/hooks.def" | sort -u)
	got=$(nm -D --defined-only "$MUSLLIB" | awk '$2 ~ /^[TWiV]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
	diff <(echo "$want") <(echo "$got")
	run -0 readelf -d "$MUSLLIB"
	assert_output --regexp 'NEEDED.*\[libc\.so\]'
	refute_output --partial libc.so.6
	run -0 "$MUSLLIB" --tcp 127.0.0.1:80 "$T/c"
	run -0 sockgate-mkctl --show "$T/c"
	assert_output "--tcp 127.0.0.1:80"
}

@test "musl: AI_ADDRCONFIG with lo down: a literal a connect rule carries is answered, another one as without the library" {
	command -v musl-gcc >/dev/null || skip "musl-gcc not installed"
	need_netns
	cat > "$T/gai.c" <<'C'
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
int main(int argc, char **argv)
{
	struct addrinfo h = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG }, *r;
	char b[64];
	for (int i = 1; i < argc; i++) {
		int e = getaddrinfo(argv[i], "80", &h, &r);
		if (e) {
			printf("%s %s\n", argv[i], e == EAI_NONAME ? "EAI_NONAME" : "other error");
			continue;
		}
		printf("%s %s\n", argv[i], inet_ntop(AF_INET, &((struct sockaddr_in *)r->ai_addr)->sin_addr, b, sizeof b));
		freeaddrinfo(r);
	}
	return 0;
}
C
	musl-gcc -O1 -o "$T/gai" "$T/gai.c"
	run -0 unshare -n env SOCKGATE_RULE="connect tcp 10.1.2.3:80 -> unix $T/absent.sock" LD_PRELOAD="$MUSLLIB" \
		"$T/gai" 10.1.2.3 10.1.2.4
	assert_output "10.1.2.3 10.1.2.3
10.1.2.4 EAI_NONAME"
	run -0 unshare -n "$T/gai" 10.1.2.3
	assert_output "10.1.2.3 EAI_NONAME"
}
