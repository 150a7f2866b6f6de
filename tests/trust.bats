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

@test "bind rules: a forked child's close or exit keeps the socket file, the last close removes it; noremove keeps it" {
	local p1=$(free_port) p2
	p2=$((p1 == 65535 ? p1 - 1 : p1 + 1))
	cat >"$T/life.py" <<'PY'
import os, socket, sys
def life(port, path):
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
    seen = [os.path.exists(path)]
    pid = os.fork()
    if pid == 0:
        s.close(); os._exit(0)          # a child closes its copy
    os.waitpid(pid, 0); seen.append(os.path.exists(path))
    pid = os.fork()
    if pid == 0:
        os._exit(0)                     # a child exits holding it
    os.waitpid(pid, 0); seen.append(os.path.exists(path))
    d = s.dup(); s.close(); seen.append(os.path.exists(path))
    d.close(); seen.append(os.path.exists(path))
    print(os.path.basename(path), " ".join("yes" if x else "no" for x in seen))
life(int(sys.argv[1]), sys.argv[2])
life(int(sys.argv[3]), sys.argv[4])
PY
	SOCKGATE_RULE="bind tcp 127.0.0.1:$p1 -> unix $T/u.sock; bind tcp 127.0.0.1:$p2 -> fdpass $T/f.sock noremove" \
		run -0 env LD_PRELOAD="$LIB" python3 "$T/life.py" "$p1" "$T/u.sock" "$p2" "$T/f.sock"
	assert_output "u.sock yes yes yes yes no
f.sock yes yes yes yes yes"
}

@test "bind rules owner= group=: no group bits until the file has its group, then the owner, then the mode (strace), both on the file bind() made (opened without following a symlink); never looser" {
	command -v strace >/dev/null || skip "strace not installed"
	[ "$(id -u)" = 0 ] || skip "needs root (chown)"
	local p1=$(free_port) p2 nobody=$(id -u nobody)
	p2=$((p1 == 65535 ? p1 - 1 : p1 + 1))
	(umask 002; export T; exec strace -f -o "$T/trace" -e trace=bind,openat,chmod,fchmod,fchmodat,chown,fchown,fchownat,lchown \
		env LD_PRELOAD="$LIB" SOCKGATE_RULE="bind tcp 127.0.0.1:$p1 -> fdpass $T/a.sock mode=0660 owner=nobody group=4242
bind tcp 127.0.0.1:$p2 -> unix $T/b.sock group=4243" python3 -c '
import os, socket, sys
for port, name in ((int(sys.argv[1]), "a.sock"), (int(sys.argv[2]), "b.sock")):
    s = socket.socket(); s.bind(("127.0.0.1", port))
    st = os.stat(os.environ["T"] + "/" + name)
    print(name, "%o" % (st.st_mode & 0o7777), st.st_uid, st.st_gid)' "$p1" "$p2") >"$T/out" 2>&1
	run -0 cat "$T/out"
	assert_output "a.sock 660 $nobody 4242
b.sock 775 0 4243"
	# each file: made with no group bits (mode less the umask), opened as it is (O_PATH, no symlink
	# followed), then owner and group, then the mode asked, both through that descriptor
	run -0 grep -E -o '(fchmod|bind|chmod|fchmodat|chown|fchown|fchownat|lchown)\([^)]*(\.sock|, 0[0-7]+|AT_EMPTY_PATH)[^)]*\)|openat\([^)]*\.sock[^)]*\) = [0-9]+' "$T/trace"
	assert_output --regexp "^fchmod\([0-9]+, 0600\)
bind\([0-9]+, \{sa_family=AF_UNIX, sun_path=\"$T/a.sock\"\}, [0-9]+\)
openat\(AT_FDCWD, \"$T/a.sock\", [A-Z_|]*O_NOFOLLOW[A-Z_|]*O_PATH\) = [0-9]+
fchownat\([0-9]+, \"\", $nobody, 4242, AT_EMPTY_PATH\)
(chmod\(\"/proc/self/fd/[0-9]+\", 0660\)|fchmodat\(AT_FDCWD, \"/proc/self/fd/[0-9]+\", 0660\))
fchmod\([0-9]+, 0707\)
bind\([0-9]+, \{sa_family=AF_UNIX, sun_path=\"$T/b.sock\"\}, [0-9]+\)
openat\(AT_FDCWD, \"$T/b.sock\", [A-Z_|]*O_NOFOLLOW[A-Z_|]*O_PATH\) = [0-9]+
fchownat\([0-9]+, \"\", -1, 4243, AT_EMPTY_PATH\)
(chmod\(\"/proc/self/fd/[0-9]+\", 0775\)|fchmodat\(AT_FDCWD, \"/proc/self/fd/[0-9]+\", 0775\))$"
}

@test "bind rules owner= group=: an unknown name or a chown not permitted fails bind() with one line, and leaves no file" {
	[ "$(id -u)" = 0 ] || skip "needs root (setpriv)"
	command -v setpriv >/dev/null || skip "setpriv not available"
	chmod 0777 "$T"
	local p1=$(free_port) p2
	p2=$((p1 == 65535 ? p1 - 1 : p1 + 1))
	cat >"$T/try.py" <<'PY'
import os, socket, sys
for port, name in ((int(sys.argv[1]), "a.sock"), (int(sys.argv[2]), "b.sock")):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); print(name, "bound")
    except OSError as e:
        print(name, os.strerror(e.errno), os.path.exists(os.path.join(sys.argv[3], name)))
PY
	run -0 setpriv --reuid=4242 --regid=4242 --clear-groups env LD_PRELOAD="$LIB" \
		SOCKGATE_RULE="bind tcp 127.0.0.1:$p1 -> unix $T/a.sock owner=no-such-user-here
bind tcp 127.0.0.1:$p2 -> fdpass $T/b.sock group=0" python3 "$T/try.py" "$p1" "$p2" "$T"
	assert_output "libsockgate: rule 1: owner=no-such-user-here: no such user (bind fails)
a.sock Invalid argument False
libsockgate: rule 2: unable to give $T/b.sock owner=- group=0: Operation not permitted (bind fails)
b.sock Operation not permitted False"
}
