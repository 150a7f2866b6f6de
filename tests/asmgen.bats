#!/usr/bin/env bats
# sockgate-asmgen: compile, check, dump, and the errors for bad rules files.

load helper

good_rules() {
	cat > "$T/rules" <<'R'
# web traffic to a unix socket
connect tcp 10.0.0.0/8:80 -> unix /run/web/%a-%p.sock proxy-v2 name=web
connect udp [::1]:53 -> abstract dns
bind tcp *:8080 -> fdpass /run/sg/web.sock mode=0660
accept tcp 127.0.0.2:80 from 192.168.0.0/16 -> reject ETIMEDOUT rst
connect * -> reject EACCES
R
}

@test "--check counts the rules of a good file and exits 0" {
	good_rules
	run -0 sockgate-asmgen --check "$T/rules"
	assert_output "$T/rules: 5 rules, ok"
}

@test "compile, dump, compile again: the same bytes" {
	good_rules
	run -0 sockgate-asmgen "$T/rules" -o "$T/a.bin"
	assert_output ""
	[ "$(head -c 4 "$T/a.bin")" = SGRB ]
	[ "$(stat -c %a "$T/a.bin")" = 644 ]
	run -0 sockgate-asmgen --dump "$T/a.bin"
	assert_line --index 0 "connect tcp 10.0.0.0/8:80 -> unix /run/web/%a-%p.sock proxy-v2 name=web"
	assert_line --index 2 "bind tcp *:8080 -> fdpass /run/sg/web.sock mode=0660"
	assert_line --index 3 "accept tcp 127.0.0.2:80 from 192.168.0.0/16 -> reject ETIMEDOUT rst"
	echo "$output" > "$T/dumped"
	run -0 sockgate-asmgen "$T/dumped" -o "$T/b.bin"
	cmp "$T/a.bin" "$T/b.bin"
}

@test "--check and --dump accept the compiled form too, and stdin" {
	good_rules
	sockgate-asmgen "$T/rules" -o "$T/a.bin"
	run -0 sockgate-asmgen --check "$T/a.bin"
	assert_output "$T/a.bin: 5 rules, ok"
	run -0 sockgate-asmgen --check - < "$T/rules"
	assert_output "-: 5 rules, ok"
	run -0 sockgate-asmgen "$T/rules" -o -
	[ "${output:0:4}" = SGRB ]
}

@test "a damaged compiled file is refused whole with exit 1" {
	good_rules
	sockgate-asmgen "$T/rules" -o "$T/a.bin"
	printf '\x01' | dd of="$T/a.bin" bs=1 seek=60 conv=notrunc 2>/dev/null
	run -1 sockgate-asmgen --dump "$T/a.bin"
	assert_output "sockgate-asmgen: fatal: $T/a.bin: compiled rules: checksum mismatch (file damaged)"
	head -c 20 "$T/a.bin" > "$T/short.bin"
	run -1 sockgate-asmgen --check "$T/short.bin"
	assert_output --partial "not a compiled rules file"
}

# Each bad file: its text, then the exact first line of the error.
bad_case() {
	printf '%b' "$1" > "$T/bad"
	run -1 --separate-stderr sockgate-asmgen --check "$T/bad"
	[ "$stderr" = "sockgate-asmgen: fatal: $T/bad:$2" ] ||
		{ echo "got:  $stderr"; echo "want: sockgate-asmgen: fatal: $T/bad:$2"; return 1; }
	run -1 sockgate-asmgen "$T/bad" -o "$T/out.bin"
	[ ! -e "$T/out.bin" ]
}

@test "malformed rules: each error names file:line:col and what was expected" {
	bad_case 'conect tcp * -> pass\n' "1:1: expected a direction (connect, bind, accept, resolve), got 'conect'"
	bad_case '# ok\nconnect tcp 10.0.0.0/33 -> pass\n' "2:13: bad address or prefix '10.0.0.0/33' (expected e.g. 10.0.0.0/8, [2001:db8::/32], *, or a host name such as *.example.com)"
	bad_case 'connect tcp 10.0.0.1:99999 -> pass\n' "1:22: bad port or port range '99999' (expected N or N-M, 0-65535)"
	bad_case 'connect tcp 10.0.0.1 pass\n' "1:22: expected '->' before the action, got 'pass'"
	bad_case 'connect -> teleport /x\n' "1:12: unknown action 'teleport' (expected unix, abstract, tcp, fdpass, systemd, reject, blackhole, pass, nat64, translate, broker)"
	bad_case 'connect -> unix\n' "1:17: 'unix' needs a path"
	bad_case 'connect -> unix /run/%q.sock\n' "1:22: bad template '%q' (known: %a %p %f %0-%7 %P %%)"
	bad_case 'connect -> tcp localhost:80\n' "1:16: bad target address 'localhost:80' (expected 1.2.3.4:80 or [::1]:80)"
	bad_case 'connect -> reject ENOTHING\n' "1:19: unknown errno 'ENOTHING' (expected a name such as ECONNREFUSED)"
	bad_case 'connect -> pass loudly\n' "1:17: unknown option 'loudly'"
	bad_case 'bind * -> fdpass /x mode=0999\n' "1:27: bad mode (expected octal 0-7777)"
	bad_case 'connect from 10.0.0.1 -> pass\n' "1:9: 'from' is only for accept rules"
	bad_case 'connect [::1 -> pass\n' "1:9: missing ']' in address '[::1'"
	bad_case "connect -> unix /$(printf 'x%.0s' $(seq 110))\n" "1:17: path too long for a unix socket address (111 bytes, at most 107)"
	bad_case 'connect -> nat64 10.0.0.0/8\n' "1:18: bad nat64 prefix '10.0.0.0/8' (expected an IPv6 /96 such as 64:ff9b::/96)"
	bad_case 'connect -> pass\x01\n' "1:16: control character 0x01"
	# bytes >= 0x80 (a C1 CSI among them) are never echoed raw to a terminal
	bad_case 'connect -> unix /run/%\x9b.sock\n' "1:22: bad template '%?' (known: %a %p %f %0-%7 %P %%)"
	bad_case 'connect \xc2\x9b[31m -> pass\n' "1:9: bad address or prefix '??[31m' (expected e.g. 10.0.0.0/8, [2001:db8::/32], *, or a host name such as *.example.com)"
	bad_case 'connect 10.0.0.1:8\x9b0 -> pass\n' "1:18: bad port or port range '8?0' (expected N or N-M, 0-65535)"
}

@test "usage errors exit 100; a missing file exits 111 with the reason" {
	run -100 sockgate-asmgen
	run -100 sockgate-asmgen "$T/x"
	run -100 sockgate-asmgen --check
	run -111 --separate-stderr sockgate-asmgen --check "$T/missing"
	[ "$stderr" = "sockgate-asmgen: fatal: unable to read $T/missing: No such file or directory" ]
}

@test "the compiled-rules fuzz seeds are in the current format (a format change without new seeds fails here)" {
	# fuzz_rulebin gets past the header checks only from seeds that load;
	# old-*.bin are kept on purpose as refused ones.
	n=0
	for f in "$BATS_TEST_DIRNAME"/fuzz/corpus/rulebin/*.bin; do
		case ${f##*/} in old-*) run -1 sockgate-asmgen --dump "$f"; continue;; esac
		run -0 sockgate-asmgen --dump "$f"
		[ -n "$output" ]
		n=$((n+1))
	done
	[ "$n" -ge 8 ]
}
