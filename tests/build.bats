#!/usr/bin/env bats
# What `make` produces and installs: the library's exported symbols, the
# install layout under DESTDIR/PREFIX, the missing-package message, and a
# first build on a machine where the deps step is what installs libbsd.

load helper

@test "libsockgate.so exports exactly the symbols listed in preload/hooks.def" {
	want=$(sed -n 's/^HOOK(\([a-z0-9_]*\),.*/\1/p' "$TOP/preload/hooks.def" | sort -u)
	got=$(nm -D --defined-only "$LIB" | awk '$2 ~ /^[TWiV]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
	[ -n "$want" ]
	diff <(echo "$want") <(echo "$got")
}

@test "libbsd is linked in but none of its symbols is exported" {
	run -0 nm -D --defined-only "$LIB"
	refute_output --partial strtonum
	refute_output --partial strlcpy
	run -0 ldd "$LIB"
	refute_output --partial libbsd
}

@test "make install and uninstall honour PREFIX and DESTDIR" {
	make -s -C "$TOP" BUILD="$BUILD" install DESTDIR="$T/root" PREFIX=/opt/sg >/dev/null
	[ -x "$T/root/opt/sg/bin/sockgate" ]
	# installed stripped: well under 256 KiB, no symbol table left
	local size=$(stat -c %s "$T/root/opt/sg/bin/sockgate")
	[ "$size" -lt 262144 ] || { echo "installed sockgate is $size bytes"; return 1; }
	run -0 readelf -S "$T/root/opt/sg/bin/sockgate"
	refute_output --partial ".symtab"
	[ "$(readlink "$T/root/opt/sg/bin/sockgate-asmgen")" = sockgate ]
	[ -f "$T/root/opt/sg/lib/libsockgate.so" ]
	[ -f "$T/root/opt/sg/share/man/man5/sockgate-rules.5" ]
	[ -f "$T/root/opt/sg/share/man/man8/sockgate-asmgen.8" ]
	run -0 "$T/root/opt/sg/bin/sockgate-asmgen" --version
	make -s -C "$TOP" BUILD="$BUILD" uninstall DESTDIR="$T/root" PREFIX=/opt/sg >/dev/null
	run -0 find "$T/root" -type f -o -type l
	assert_output ""
}

@test "without root, missing packages are named in one message and make stops with 2" {
	command -v setpriv >/dev/null || skip "setpriv not available"
	run -2 --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups \
		sh "$TOP/tests/deps.sh" sockgate-no-such-package bats
	[ "$stderr" = "sockgate: missing packages: sockgate-no-such-package
sockgate: install them (as root: apt-get install sockgate-no-such-package) and run make again" ]
}

# stand_in_cc STAMP: a compiler on $T that finds libbsd.a and libmd.a only
# once STAMP exists, as on a fresh machine where the deps step (which writes
# the stamp) is what installs libbsd-dev. Before that it answers
# -print-file-name with the bare name, as gcc and clang do for a missing file.
stand_in_cc() {
	cat > "$T/cc" <<EOF
#!/bin/sh
for a; do
	case \$a in -print-file-name=*) [ -e "$1" ] || { echo "\${a#-print-file-name=}"; exit 0; };; esac
done
exec cc "\$@"
EOF
	chmod +x "$T/cc"
}

@test "the first make links although libbsd.a appears only with the deps step; core objects are kept" {
	b=$T/build
	stand_in_cc "$b/.deps-ok"
	run "$T/cc" -print-file-name=libbsd.a
	assert_output libbsd.a
	run -0 make -C "$TOP" BUILD="$b" CC="$T/cc" CFLAGS=-O0 "$b/unit/test_rules"
	refute_output --partial "cannot find"
	run -0 "$b/unit/test_rules"
	# Only pattern rules name build/host/core/*.o; they are not intermediates
	# to delete, so the next run has nothing to do.
	[ -f "$b/host/core/rules.o" ]
	run -0 make -q -C "$TOP" BUILD="$b" CC="$T/cc" CFLAGS=-O0 "$b/unit/test_rules"
}
