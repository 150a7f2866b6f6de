#!/usr/bin/env bats
# The benchmarks' verdicts (tests/bench/lib.bash): a measurement that
# failed reads "failed", never "met". The tools are replaced by stand-ins
# that fail in the ways a real run can (exit 1, print nothing, print half).

load helper

# bench CODE: run CODE in a shell that sourced lib.bash, with BUILD=$T/b
# holding the stand-in tools
bench() {
	BUILD="$T/b" bash -c ". '$TOP/tests/bench/lib.bash'; $1"
}

# standin NAME BODY: a fake $T/b/tools/NAME
standin() {
	mkdir -p "$T/b/tools"
	printf '#!/bin/sh\n%s\n' "$2" > "$T/b/tools/$1"
	chmod +x "$T/b/tools/$1"
}

@test "bench: judge reads met, NOT met, and failed for anything that is no number" {
	run -0 bench 'judge 99 "<" 100; judge 100 "<" 100; judge 0.8 ">=" 0.8; judge "" "<" 100; judge failed "<" 100; judge "12 us" "<" 100'
	assert_output "$(printf 'met\nNOT met\nmet\nfailed\nfailed\nfailed')"
	run -0 bench 'ratio3 5 0; echo; ratio3 "" 2; echo; ratio3 1 4; echo; fmt %.0f ""; echo; fmt %.0f 41.6'
	assert_output "$(printf 'failed\nfailed\n0.250\nfailed\n42')"
}

@test "bench: a lat_pair that fails makes the latency verdict 'failed', not 'met'" {
	standin lat_pair 'echo "lat_pair: request 3 to 8080 failed" >&2; exit 1'
	run -0 --separate-stderr bench 'read -r p99 p50 ctl < <(latency 1 2); echo "p99 +$(fmt %.0f "$p99") us (target < 100): $(judge "$p99" "<" 100); p50 +$(fmt %.0f "$p50") us; +-$(fmt %.0f "$ctl")"'
	assert_output "p99 +failed us (target < 100): failed; p50 +failed us; +-failed"
	[[ $stderr == *"lat_pair: request 3 to 8080 failed"* ]]
}

@test "bench: a lat_pair that prints nothing, or only one side, is a failed measurement" {
	standin lat_pair 'exit 0'
	run -0 bench 'latency 1 2'
	assert_output "failed failed failed"
	standin lat_pair 'echo "A 10 20 30 40"'
	run -0 bench 'latency 1 2'
	assert_output "failed failed failed"
	# one round of three failing is enough to fail the median (the
	# control runs, which all worked, still read 7)
	standin lat_pair '[ -e "$0.n" ] || { : > "$0.n"; exit 1; }; echo "A 10 20 30 40"; echo "B 15 20 37 40"'
	run -0 bench 'latency 1 2'
	assert_output "failed failed 7"
}

@test "bench: a lat_pair that works gives the medians of the rounds" {
	# B is 5 us slower at p50 and 7 us at p99; the control (A vs A) reads 7
	standin lat_pair 'echo "A 10 20 30 40"; echo "B 15 20 37 40"'
	run -0 bench 'read -r p99 p50 ctl < <(latency 1 2); echo "$p99 $p50 $ctl $(judge "$p99" "<" 100)"'
	assert_output "7 5 7 met"
}
