#!/usr/bin/env bats
# sockgate-run: checks the rules, preloads libsockgate.so found beside
# itself (or in ../lib), and execs the program.

load helper

# under SANITIZE=1 the test programs carry ASan, which wants to come first
# in the library list; the preload library must come first instead
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

SRV=$TOP/tests/tools/pre_userver.py

userver() {
	local name=$1
	shift
	bg python3 "$SRV" "$T/$name.sock" --log "$T/$name.log" --ready "$T/$name.ready" "$@"
	wait_for_file "$T/$name.ready"
}

@test "sockgate-run --help prints the usage of the man page and exits 0" {
	run -0 sockgate-run --help
	assert_output "usage: sockgate-run [--seccomp] [-r RULE] ... [-f FILE] [--check] -- PROGRAM [ARGS ...]"
	run -0 grep -c 'Op Fl r Ar RULE' "$TOP/man/sockgate-run.1"
}

@test "sockgate-run: a bad option or no program is a usage error (100)" {
	run -100 sockgate-run -x -- true
	assert_line "usage: sockgate-run [--seccomp] [-r RULE] ... [-f FILE] [--check] -- PROGRAM [ARGS ...]"
	run -100 sockgate-run -r 'connect * -> pass'
	assert_output --partial "usage: sockgate-run"
}

@test "sockgate-run --check: good rules say how many, bad ones exit 1 with file:line:col" {
	printf '# web\nconnect tcp 10.0.0.0/8:80 -> unix /run/web.sock proxy-v2\nconnect udp [::1]:53 -> unix /run/dns.sock\n' > "$T/rules"
	run -0 sockgate-run -f "$T/rules" -r 'connect tcp 10.1.2.3:443 -> reject' --check
	assert_output "3 rules ok"
	printf 'connect tcp 10.0.0.0/8:80 -> unix /run/web.sock\nconnect tcp 10.0.0.0/33 -> pass\n' > "$T/bad"
	run -1 sockgate-run -f "$T/bad" --check
	assert_output --regexp "^sockgate-run: fatal: $T/bad:2:13: "
	run -1 sockgate-run -r 'connect tcp 1.2.3.4:80 -> pass' -r 'connect tcp 1.2.3.4:80 -> unx /x' -- true
	assert_output "sockgate-run: fatal: -r #2:1:27: unknown action 'unx' (expected unix, abstract, tcp, fdpass, systemd, reject, blackhole, pass, nat64, translate, broker)"
	SOCKGATE_RULE='connect -> nowhere' run -1 sockgate-run -- true
	assert_output --regexp '^sockgate-run: fatal: SOCKGATE_RULE:1:'
	# an unreadable rules file is a failed system call (111), as the man page says
	run -111 sockgate-run -f "$T/none" --check
	assert_output "sockgate-run: fatal: unable to read $T/none: No such file or directory"
}

@test "sockgate-run -r redirects curl to a Unix socket; the rules and LD_PRELOAD reach the program" {
	userver web
	run -0 sockgate-run -r "connect tcp 10.1.2.3:80 -> unix $T/web.sock" -- curl -sS --max-time 5 http://10.1.2.3/run
	assert_output "hello from unix"
	run -0 cat "$T/web.log"
	assert_line "http GET /run HTTP/1.1"
	ln -s "$LIB" "$T/other.so"	# stands for another preload the user had
	LD_PRELOAD=$T/other.so run -0 sockgate-run -r 'connect 10.0.0.1 -> reject' -r 'connect 10.0.0.2 -> reject' \
		-- sh -c 'echo "$LD_PRELOAD"; printf "%s\n" "$SOCKGATE_RULE"'
	assert_output "$LIB $T/other.so
connect 10.0.0.1 -> reject
connect 10.0.0.2 -> reject"
}

@test "sockgate-run -f: a text or a compiled file, made absolute for the program" {
	userver web
	printf 'connect tcp 10.1.2.3:80 -> unix %s\n' "$T/web.sock" > "$T/rules"
	cd "$T"
	run -0 sockgate-run -f rules -- sh -c 'echo "$SOCKGATE_RULES"; curl -sS --max-time 5 http://10.1.2.3/'
	assert_output "$T/rules
hello from unix"
	[ -x "$BUILD/sockgate-asmgen" ] || skip "sockgate-asmgen not built"
	run -0 sockgate-asmgen "$T/rules" -o "$T/rules.bin"
	run -0 sockgate-run -f "$T/rules.bin" -- curl -sS --max-time 5 http://10.1.2.3/bin
	assert_output "hello from unix"
	run -0 sockgate-run -f "$T/rules.bin" --check
	assert_output "1 rule ok"
}

@test "sockgate-run finds the library in ../lib of an installed tree, and says so when it cannot" {
	mkdir -p "$T/prefix/bin" "$T/prefix/lib" "$T/alone"
	cp "$SG" "$T/prefix/bin/sockgate"
	ln -s sockgate "$T/prefix/bin/sockgate-run"
	cp "$LIB" "$T/prefix/lib/libsockgate.so"
	run -0 "$T/prefix/bin/sockgate-run" -- sh -c 'echo "$LD_PRELOAD"'
	assert_output "$T/prefix/lib/libsockgate.so"
	cp "$SG" "$T/alone/sockgate"
	ln -s sockgate "$T/alone/sockgate-run"
	if [ -e /usr/local/lib/libsockgate.so ]; then
		skip "a libsockgate.so is installed in /usr/local/lib"
	fi
	run -111 "$T/alone/sockgate-run" -- true
	assert_output "sockgate-run: fatal: unable to find libsockgate.so beside this program or in /usr/local/lib"
}

@test "sockgate-run: a program that does not exist is 127, one that cannot run is 126 (as env(1))" {
	run -127 sockgate-run -- /nonexistent/prog
	assert_output "sockgate-run: fatal: unable to run /nonexistent/prog: No such file or directory"
	printf 'not a program\n' > "$T/noexec"
	run -126 sockgate-run -- "$T/noexec"
	assert_output "sockgate-run: fatal: unable to run $T/noexec: Permission denied"
	run -127 sockgate-run -- no-such-program-anywhere
	assert_output "sockgate-run: fatal: unable to run no-such-program-anywhere: No such file or directory"
}
