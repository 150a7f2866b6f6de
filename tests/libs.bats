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

@test "sockgate-run: a static program is refused with the reason, exit 1, not run" {
	readelf -l "$SG" | grep -q 'program interpreter' && skip "this build of sockgate is not static (SANITIZE)"
	run -1 sockgate-run -- "$SG" mkctl --vsock any:1 "$T/x"
	assert_output "sockgate-run: fatal: $SG is statically linked (no ELF interpreter): a preload library cannot enter it"
	[ ! -e "$T/x" ]
}
