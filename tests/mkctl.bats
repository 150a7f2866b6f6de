#!/usr/bin/env bats
# sockgate-mkctl: control files for every target, --show round trips, the
# writer's refusals, and malformed files named clearly.

load helper

# target options, and the line --show prints for them
TARGETS=(
	"--vsock any:5678|--vsock any:5678"
	"--vsock 3:1024 --sockopt SO_VM_SOCKETS_BUFFER_SIZE=262144|--vsock 3:1024 --sockopt SO_VM_SOCKETS_BUFFER_SIZE=262144"
	"--firecracker /run/fc/v.sock:52 --sockopt SO_SNDBUF=65536|--firecracker /run/fc/v.sock:52 --sockopt SO_SNDBUF=65536"
	"--tipc 2,2,128,99,0|--tipc 2,2,128,99,0"
	"--unix /run/app/real.sock|--unix /run/app/real.sock"
	"--abstract @my-name --sockopt SO_KEEPALIVE=1|--abstract my-name --sockopt SO_KEEPALIVE=1"
	"--tcp 127.0.0.1:8080 --sockopt TCP_NODELAY=1|--tcp 127.0.0.1:8080 --sockopt TCP_NODELAY=1"
	"--tcp [::1]:443|--tcp '[::1]:443'"
)

@test "every target: written, shown, and written again from what --show printed: the same bytes" {
	local n=0 t opts want
	for t in "${TARGETS[@]}"; do
		n=$((n + 1))
		opts=${t%%|*} want=${t#*|}
		# shellcheck disable=SC2086
		run -0 sockgate-mkctl $opts "$T/$n.ctl"
		assert_output ""
		[ "$(head -c 4 "$T/$n.ctl")" = SGCF ]
		run -0 sockgate-mkctl --show "$T/$n.ctl"
		assert_output "$want"
		eval "sockgate-mkctl $output \"\$T/$n.again\""
		cmp "$T/$n.ctl" "$T/$n.again"
	done
	[ "$n" = 8 ]
}

@test "a name with quotes and spaces survives --show through a shell" {
	run -0 sockgate-mkctl --abstract "it's a \"name\" with \$x" "$T/a.ctl"
	run -0 sockgate-mkctl --show "$T/a.ctl"
	assert_output "--abstract 'it'\\''s a \"name\" with \$x'"
	eval "sockgate-mkctl $output \"\$T/b.ctl\""
	cmp "$T/a.ctl" "$T/b.ctl"
}

@test "an existing file is never overwritten: exit 1, file unchanged" {
	sockgate-mkctl --vsock any:1 "$T/x.ctl"
	cp "$T/x.ctl" "$T/orig"
	run -1 sockgate-mkctl --vsock any:2 "$T/x.ctl"
	assert_output "sockgate-mkctl: fatal: $T/x.ctl exists; a control file is never overwritten"
	cmp "$T/x.ctl" "$T/orig"
	echo keep > "$T/plain"
	run -1 sockgate-mkctl --unix /x "$T/plain"
	[ "$(cat "$T/plain")" = keep ]
	ln -s "$T/nowhere" "$T/link"
	run -1 sockgate-mkctl --unix /x "$T/link"
	[ ! -e "$T/nowhere" ]
}

@test "-m sets the mode exactly, whatever the umask; the default is 0644" {
	(umask 077 && sockgate-mkctl -m 0640 --vsock any:1 "$T/a.ctl")
	[ "$(stat -c %a "$T/a.ctl")" = 640 ]
	(umask 022 && sockgate-mkctl --vsock any:1 "$T/b.ctl")
	[ "$(stat -c %a "$T/b.ctl")" = 644 ]
	run -1 sockgate-mkctl -m 0999 --vsock any:1 "$T/c.ctl"
	assert_output "sockgate-mkctl: fatal: -m 0999: not an octal mode"
	[ ! -e "$T/c.ctl" ]
}

@test "a relative Firecracker or Unix path must exist and is written absolute" {
	python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/fc.sock"
	cd "$T"
	run -0 sockgate-mkctl --firecracker fc.sock:52 a.ctl
	run -0 sockgate-mkctl --show a.ctl
	assert_output "--firecracker $(realpath "$T")/fc.sock:52"
	run -1 sockgate-mkctl --firecracker missing.sock:52 b.ctl
	assert_output --partial "a relative path must exist to be made absolute: missing.sock: No such file or directory"
	run -1 sockgate-mkctl --unix missing.sock b.ctl
	assert_output --partial "missing.sock: No such file or directory"
	[ ! -e b.ctl ]
}

@test "usage: exit 100 with nothing, with no target, with no file, or an unknown option" {
	run -100 sockgate-mkctl
	assert_line --index 0 "usage: sockgate-mkctl [-m MODE] TARGET [--sockopt NAME=VALUE ...] FILE"
	run -100 sockgate-mkctl "$T/x.ctl"
	run -100 sockgate-mkctl --vsock 1:2
	run -100 sockgate-mkctl --bogus 1 "$T/x.ctl"
	run -100 sockgate-mkctl --show "$T/x.ctl" --vsock 1:2
	[ ! -e "$T/x.ctl" ]
	run -0 sockgate-mkctl --help
	assert_line --index 0 "usage: sockgate-mkctl [-m MODE] TARGET [--sockopt NAME=VALUE ...] FILE"
}

@test "bad values: exit 1 with what is wrong, nothing written" {
	local long
	long=/$(printf 'a%.0s' {1..107})
	while IFS='|' read -r opt val msg; do
		run -1 sockgate-mkctl "$opt" "$val" "$T/x.ctl"
		assert_output "sockgate-mkctl: fatal: $msg"
	done <<EOT
--vsock|5678|--vsock wants CID:PORT (CID a number or any), not 5678
--vsock|1:99999999999|--vsock wants CID:PORT (CID a number or any), not 1:99999999999
--tipc|9,2,1,1,1|--tipc wants ADDRTYPE,SCOPE,TYPE,LOWER,UPPER (type and scope 1-3), not 9,2,1,1,1
--tcp|localhost:80|--tcp wants ADDR:PORT (a numeric address, port 1-65535), not localhost:80
--unix|$long|path or name too long: $long
--sockopt|SO_NOPE=1|--sockopt wants NAME=VALUE with a known NAME (see sockgate-mkctl(8)), not SO_NOPE=1
EOT
	run -1 sockgate-mkctl --unix /x --tcp 127.0.0.1:1 "$T/x.ctl"
	assert_output "sockgate-mkctl: fatal: only one target: --tcp after --unix"
	run -1 sockgate-mkctl --unix /x --sockopt TCP_NODELAY=1 "$T/x.ctl"
	assert_output "sockgate-mkctl: fatal: TCP_NODELAY does not apply to a unix target"
	[ ! -e "$T/x.ctl" ]
}

@test "--show names what is wrong with a malformed file, exit 1" {
	sockgate-mkctl --firecracker /run/fc.sock:52 "$T/good"
	head -c 10 "$T/good" > "$T/truncated"
	head -c 30 "$T/good" > "$T/short"
	{ printf 'XXXX'; tail -c +5 "$T/good"; } > "$T/magic"
	{ head -c 4 "$T/good"; printf '\x02'; tail -c +6 "$T/good"; } > "$T/version"
	{ head -c 18 "$T/good"; printf '\xff'; tail -c +20 "$T/good"; } > "$T/length"
	{ head -c 25 "$T/good"; printf 'X'; tail -c +27 "$T/good"; } > "$T/crc"
	echo 'just text' > "$T/text"
	while IFS='|' read -r f msg; do
		run -1 sockgate-mkctl --show "$T/$f"
		assert_output "sockgate-mkctl: fatal: $T/$f: $msg"
	done <<EOT
truncated|not a control file (bad magic or too short)
short|control file: length 36 in header, file has 30 bytes
magic|not a control file
version|control file version 2, this build reads version 1
length|control file: lengths do not add up to the file length
crc|control file: checksum mismatch (file damaged)
text|not a control file
EOT
	run -111 sockgate-mkctl --show "$T/missing"
	assert_output "sockgate-mkctl: fatal: unable to read $T/missing: No such file or directory"
}

# --- libsockgate.so run as a program ------------------------------------------

@test "the library as a program: usage and exit 100 with nothing given, even with an empty argv" {
	run -100 --separate-stderr "$LIB"
	[[ "${stderr_lines[0]}" == "usage: libsockgate.so [-m MODE] TARGET [--sockopt NAME=VALUE ...] FILE" ]]
	[[ "$stderr" == *"UNSOCK_FILE=FILE UNSOCK_VSOCK_PORT=PORT [UNSOCK_VSOCK_CID=CID] libsockgate.so"* ]]
	printf '#include <unistd.h>\nint main(int c, char **v) { char *a[] = { 0 }; execve(v[1], a, a); return 9; }\n' > "$T/e0.c"
	cc -o "$T/e0" "$T/e0.c"
	run -100 --separate-stderr "$T/e0" "$LIB"
	[[ "${stderr_lines[0]}" == "usage: libsockgate.so"* ]]
	run -0 readelf -lh "$LIB"
	assert_output --partial "[Requesting program interpreter: "
}

@test "the library as a program writes the same bytes as sockgate-mkctl for every target" {
	local n=0 t opts
	for t in "${TARGETS[@]}"; do
		n=$((n + 1))
		opts=${t%%|*}
		# shellcheck disable=SC2086
		sockgate-mkctl $opts "$T/$n.mk"
		# shellcheck disable=SC2086
		run -0 "$LIB" $opts "$T/$n.so"
		cmp "$T/$n.mk" "$T/$n.so"
	done
	run -0 "$LIB" --show "$T/1.so"
	assert_output "--vsock any:5678"
	run -1 "$LIB" --vsock any:1 "$T/1.so"
	assert_output "libsockgate.so: fatal: $T/1.so exists; a control file is never overwritten"
}

@test "the library as a program reads unsock's variables: the same bytes as mkctl" {
	python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/fc.sock"
	UNSOCK_FILE=$T/a UNSOCK_VSOCK_PORT=5678 "$LIB"
	sockgate-mkctl --vsock any:5678 "$T/a.mk"
	cmp "$T/a" "$T/a.mk"
	UNSOCK_FILE=$T/b UNSOCK_VSOCK_CID=-1 UNSOCK_VSOCK_PORT=5678 "$LIB"
	cmp "$T/b" "$T/a.mk"
	UNSOCK_FILE=$T/c UNSOCK_VSOCK_CID=3 UNSOCK_VSOCK_PORT=1024 "$LIB"
	run -0 sockgate-mkctl --show "$T/c"
	assert_output "--vsock 3:1024"
	(cd "$T" && UNSOCK_FILE=d UNSOCK_FC_SOCK=fc.sock UNSOCK_VSOCK_PORT=52 "$LIB")
	run -0 sockgate-mkctl --show "$T/d"
	assert_output "--firecracker $(realpath "$T")/fc.sock:52"
	UNSOCK_FILE=$T/e UNSOCK_TIPC_ADDRTYPE=2 UNSOCK_TIPC_SCOPE=2 UNSOCK_TIPC_TYPE=128 \
		UNSOCK_TIPC_LOWER=99 UNSOCK_TIPC_UPPER=0 "$LIB"
	sockgate-mkctl --tipc 2,2,128,99,0 "$T/e.mk"
	cmp "$T/e" "$T/e.mk"
}

@test "the library as a program: bad variables get a clear message and exit 1 or 100, never a crash" {
	local long
	long=/$(printf 'a%.0s' {1..120})
	while IFS='|' read -r code vars msg; do
		# shellcheck disable=SC2086
		run -"$code" env $vars "$LIB"
		assert_output "libsockgate.so: fatal: $msg"
	done <<EOT
1|UNSOCK_FILE=$T/x UNSOCK_VSOCK_PORT=abc|--vsock wants CID:PORT (CID a number or any), not any:abc
1|UNSOCK_FILE=$T/x UNSOCK_VSOCK_PORT=1 UNSOCK_VSOCK_CID=99999999999|--vsock: bad CID 99999999999
1|UNSOCK_FILE=$T/x UNSOCK_VSOCK_PORT=-5|--vsock wants CID:PORT (CID a number or any), not any:-5
1|UNSOCK_FILE=$T/x UNSOCK_FC_SOCK=$long UNSOCK_VSOCK_PORT=5|path too long: $long
1|UNSOCK_FILE=$T/x UNSOCK_FC_SOCK=missing.sock UNSOCK_VSOCK_PORT=5|a relative path must exist to be made absolute: missing.sock: No such file or directory
1|UNSOCK_FILE=$T/x UNSOCK_TIPC_ADDRTYPE=7 UNSOCK_TIPC_SCOPE=2 UNSOCK_TIPC_TYPE=1 UNSOCK_TIPC_LOWER=1 UNSOCK_TIPC_UPPER=1|--tipc wants ADDRTYPE,SCOPE,TYPE,LOWER,UPPER (type and scope 1-3), not 7,2,1,1,1
100|UNSOCK_VSOCK_PORT=5|UNSOCK_FILE is not set: it names the control file to write
100|UNSOCK_FILE=$T/x UNSOCK_FC_SOCK=/x|UNSOCK_FC_SOCK needs UNSOCK_VSOCK_PORT
100|UNSOCK_FILE=$T/x UNSOCK_TIPC_TYPE=1|UNSOCK_TIPC_ADDRTYPE is not set: a TIPC target needs all five UNSOCK_TIPC_* values
100|UNSOCK_FILE=$T/x UNSOCK_VSOCK_PORT=1 UNSOCK_TIPC_TYPE=1|UNSOCK_TIPC_* and UNSOCK_VSOCK_*/UNSOCK_FC_SOCK are two targets; give one
EOT
	[ ! -e "$T/x" ]
	run -1 "$LIB" --unix "$long" "$T/x"
	assert_output "libsockgate.so: fatal: path or name too long: $long"
}

@test "preloaded, the library runs none of this: the variables write nothing" {
	run -0 env UNSOCK_FILE="$T/x" UNSOCK_VSOCK_PORT=5678 LD_PRELOAD="$LIB" sh -c 'echo still here'
	assert_output "still here"
	[ ! -e "$T/x" ]
}
