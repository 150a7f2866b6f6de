#!/usr/bin/env bats
# What the library and the daemons trust: the library reads its environment
# only with secure_getenv and does nothing in setuid or setgid programs; the
# programs the daemons run get their connection and stdio, no other fd.
# Peers: python3, setpriv, cc. Runtime: about 3 s.

load helper

# clean CMD...: CMD with fds 0-2 only, as a supervisor would start it
clean() {
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	exec "$@"
}

@test "libsockgate.so (glibc and musl) reads no variable with getenv, only with secure_getenv" {
	local lib
	for lib in "$LIB" "$BUILD/libsockgate-musl.so"; do
		run -0 nm -D --undefined-only "$lib"
		refute_line --regexp ' getenv(@|$)'
		assert_line --regexp ' secure_getenv(@|$)'
	done
}

@test "a setuid or setgid copy of a program ignores the rules; the same program run plainly follows them" {
	[ "$(id -u)" = 0 ] || skip "needs root (chown, setpriv)"
	command -v setpriv >/dev/null || skip "setpriv not available"
	command -v cc >/dev/null || skip "no C compiler"
	chmod 0755 "$T"
	# the library as a needed library, loaded by path: ld.so ignores
	# LD_PRELOAD for setuid programs but not this (nor /etc/ld.so.preload)
	cat >"$T/who.c" <<'C'
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	Dl_info di = { 0 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	char buf[64];
	dladdr(dlsym(RTLD_DEFAULT, "connect"), &di);
	printf("euid %d egid %d, connect() of %s\n", (int)geteuid(), (int)getegid(),
	       di.dli_fname ? strrchr(di.dli_fname, '/') + 1 : "?");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		printf("connect: %s\n", strerror(errno));
		return 0;
	}
	ssize_t n = read(s, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("got %s", buf);
	return 0;
}
C
	cc -o "$T/who" "$T/who.c" -Wl,--no-as-needed "$LIB" -ldl
	cp "$T/who" "$T/who-setuid"
	chown 65534 "$T/who-setuid"
	chmod 4755 "$T/who-setuid"
	cp "$T/who" "$T/who-setgid"
	chgrp 65534 "$T/who-setgid"
	chmod 2755 "$T/who-setgid"
	# the Unix server, and a port nobody listens on (only the rule reaches the server)
	bg python3 -c '
import os, socket, sys
p = socket.socket(); p.bind(("127.0.0.1", 0)); port = p.getsockname()[1]; p.close()
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen()
with open(sys.argv[2] + ".tmp", "w") as f: f.write("%d\n" % port)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
while True:
    c, _ = s.accept(); c.sendall(b"via unix\n"); c.close()' "$T/u.sock" "$T/port"
	wait_for_file "$T/port"
	local port=$(cat "$T/port")
	export SOCKGATE_RULE="connect tcp 127.0.0.1:$port -> unix $T/u.sock"
	as_user() { setpriv --reuid=4242 --regid=4242 --clear-groups "$@"; }
	run -0 as_user "$T/who" "$port"
	assert_output "euid 4242 egid 4242, connect() of libsockgate.so
got via unix"
	run -0 as_user "$T/who-setuid" "$port"
	assert_output "euid 65534 egid 4242, connect() of libsockgate.so
connect: Connection refused"
	run -0 as_user "$T/who-setgid" "$port"
	assert_output "euid 4242 egid 65534, connect() of libsockgate.so
connect: Connection refused"
	# a rules file it could not read is neither read nor named in a message
	unset SOCKGATE_RULE
	echo 'connect tcp secret-line' >"$T/secret"
	chmod 0600 "$T/secret"
	chown 65534 "$T/secret"
	run -0 as_user env SOCKGATE_RULES="$T/secret" "$T/who-setuid" "$port"
	assert_output "euid 65534 egid 4242, connect() of libsockgate.so
connect: Connection refused"
}

@test "inetd: the program it runs holds fd 0-2 (the connection on 0 and 1), no fd of inetd's nor one it inherited" {
	# fd 5 stands for what a careless parent leaves open
	spawn "$T/inetd.log" "$SG" inetd --ready-fd 4 "$T/in.sock" sh -c 'ls /proc/$$/fd; readlink /proc/$$/fd/0 /proc/$$/fd/1' \
		4>"$T/ready" 5>"$T/stray"
	wait_for_line "$T/ready" ready
	start_server -l 127.0.0.1 -p 0 -S "$T/in.sock"
	run -0 nc -N 127.0.0.1 "$PORT" </dev/null
	local lines=(${output})
	assert_equal "${lines[*]:0:3}" "0 1 2"
	assert_equal "${#lines[@]}" 5
	assert_equal "${lines[3]}" "${lines[4]}"
	[[ ${lines[3]} == socket:* ]]
}

@test "server -e and send-fd --recv: the program holds fd 0-2 and its socket, no fd of the applet's" {
	# (no redirection in the shell: dash keeps a copy of fd 1 while it redirects)
	spawn "$T/e.out" clean "$SG" server -l 127.0.0.1 -p 0 -e sh -c 'echo "listen $SOCKGATE_LISTEN_FD"; ls /proc/$$/fd'
	wait "${PIDS[-1]}"
	run -0 cat "$T/e.out"
	assert_equal "${lines[0]}" "listen 3"
	assert_equal "${lines[*]:1}" "0 1 2 3"
	spawn "$T/r.out" clean "$SG" send-fd --recv "$T/r.sock" --as 3 --any-fd -- sh -c 'ls /proc/$$/fd'
	wait_for_file "$T/r.sock"
	run -0 "$SG" send-fd --open /dev/null "$T/r.sock"
	wait "${PIDS[-1]}"
	run -0 cat "$T/r.out"
	assert_equal "${lines[*]}" "0 1 2 3"
}
