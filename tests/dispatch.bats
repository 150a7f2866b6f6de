#!/usr/bin/env bats
# The multi-call executable: how applets are chosen, listed and refused,
# and that it is really static.

load helper

@test "the executable is static: file says so and ldd finds no libraries" {
	[ "${SANITIZE:-}" = 1 ] && skip "SANITIZE=1 builds a dynamic executable for ASan"
	run file "$SG"
	assert_output --partial "statically linked"
	run ldd "$SG"
	refute_output --regexp 'lib(c|bsd|md)\.so'
}

@test "sockgate alone lists the applets, one line each, and exits 0" {
	run -0 "$SG"
	assert_line --index 0 --partial "usage: sockgate APPLET"
	assert_line --regexp '^  asmgen +compile'
	run -0 "$SG" --list
	assert_line --regexp '^  asmgen '
}

@test "every listed applet has a sockgate-NAME link that runs it" {
	names=$("$SG" --list | sed -n 's/^  \([a-z-]*\) .*/\1/p')
	[ -n "$names" ]
	for n in $names; do
		[ -L "$BUILD/sockgate-$n" ]
		run -0 "$BUILD/sockgate-$n" --help
		assert_output --partial "usage: sockgate-$n"
	done
}

@test "a link named like the bare applet name runs it" {
	ln -s "$SG" "$T/asmgen"
	run -0 "$T/asmgen" --help
	assert_output --partial "usage: sockgate-asmgen"
}

@test "sockgate APPLET args works like the link" {
	printf 'connect * -> pass\n' > "$T/r"
	run -0 "$SG" asmgen --check "$T/r"
	assert_output "$T/r: 1 rule, ok"
	run -0 "$SG" sockgate-asmgen --check "$T/r"
	assert_output "$T/r: 1 rule, ok"
}

@test "an unknown applet: one line on stderr, exit 127" {
	run -127 --separate-stderr "$SG" frobnicate
	assert_output ""
	[ "$stderr" = "sockgate: fatal: unknown applet: frobnicate (sockgate --list names them)" ]
	ln -s "$SG" "$T/sockgate-nothing"
	run -127 --separate-stderr "$T/sockgate-nothing"
	[ "$stderr" = "sockgate: fatal: unknown applet: sockgate-nothing" ]
}

@test "--version prints the version on every applet" {
	run -0 "$SG" --version
	assert_output --regexp '^sockgate [0-9]+\.[0-9]+\.[0-9]+$'
	run -0 "$BUILD/sockgate-asmgen" --version
	assert_output --regexp '^sockgate-asmgen [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "a bad option prints usage on stderr and exits 100" {
	for n in $("$SG" --list | sed -n 's/^  \([a-z-]*\) .*/\1/p'); do
		run -100 --separate-stderr "$BUILD/sockgate-$n" --no-such-option
		[[ "$stderr" == *"usage: sockgate-$n"* ]]
	done
}

@test "--help matches the SYNOPSIS of the applet's man page" {
	for n in $("$SG" --list | sed -n 's/^  \([a-z-]*\) .*/\1/p'); do
		page=$(ls "$TOP"/man/sockgate-$n.[18] 2>/dev/null | head -1)
		[ -n "$page" ] || { echo "no man page for $n"; return 1; }
		synopsis=$(MANWIDTH=500 mandoc -Tutf8 "$page" | col -b | sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' |
			sed '1d;$d' | tr '\t\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//')
		while IFS= read -r line; do
			line=$(echo "$line" | sed 's/^usage: //' | tr '\t' ' ' | tr -s ' ' | sed 's/^ //; s/ $//')
			[ -n "$line" ] || continue
			[[ "$synopsis" == *"$line"* ]] || { echo "$n: '$line' is not in SYNOPSIS: $synopsis"; return 1; }
		done < <("$BUILD/sockgate-$n" --help)
	done
}

@test "mandoc -Tlint finds nothing in any man page" {
	run -0 mandoc -Tlint -Wwarning "$TOP"/man/*.[1-8]
	assert_output ""
}

@test "--help is an option only before the first argument: a program's own -h is left alone" {
	run -0 "$BUILD/sockgate-run" -- echo -h --help
	assert_output "-h --help"
	run -0 "$BUILD/sockgate-run" --help
	assert_output --partial "usage: sockgate-run"
}
