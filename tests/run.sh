#!/usr/bin/env bash
# The test runner behind `make check`: the C unit tests, a short run of
# every fuzz target, and the bats suites. All speak TAP; this counts the
# results and ends with one line: "N passed, N failed, N skipped".
#
# A run is judged as a whole, not only by its "ok" lines: a producer that
# prints no plan, prints fewer results than its plan, or exits with a
# status its results do not explain (a sanitizer, a signal, a bats that
# lost a test) adds a failure of its own. tests/runner.bats checks this.
#
# What it runs can be narrowed for that test: UNIT_GLOB, FUZZ_GLOB and
# BATS_FILES (a space-separated list).
# BATS_TIMING=1 adds each test's time to its line ("ok 7 NAME in 812ms").
set -u
shopt -s lastpipe nullglob
BUILD=${BUILD:-build}
FUZZ_SMOKE=${FUZZ_SMOKE:-3}
UNIT_GLOB=${UNIT_GLOB:-$BUILD/unit/test_*}
FUZZ_GLOB=${FUZZ_GLOB:-$BUILD/fuzz/fuzz_*}
BATS_FILES=${BATS_FILES:-tests/*.bats}
log=$BUILD/test.log
mkdir -p "$BUILD"
: > "$log"
pass=0 fail=0 skip=0
failed_names=()

# The sanitizers exit with a status of their own, so that their report is
# never mistaken for "this binary's failures were printed already" (1).
SAN_EXIT=86
export ASAN_OPTIONS="exitcode=$SAN_EXIT:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="exitcode=$SAN_EXIT:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

failed() {	# failed PREFIX WHAT: one failure that no "not ok" line reported
	fail=$((fail+1))
	failed_names+=("$1: $2")
	echo "FAIL $1: $2"
}

# run_tap PREFIX CMD...: run CMD, echo and count its TAP, then judge the run:
# a plan must be printed and met, and the exit status must be 0 with no
# failures, or 1 with at least one "not ok".
run_tap() {
	local prefix=$1 line plan= results=0 nfail=0 rc
	shift
	"$@" 2>&1 | while IFS= read -r line; do
		printf '%s\n' "$line" >> "$log"
		case "$line" in
		"not ok "*) nfail=$((nfail+1)); results=$((results+1)); failed "$prefix" "${line#not ok }";;
		"ok "*"# skip"*|"ok "*"# SKIP"*) results=$((results+1)); skip=$((skip+1)); echo "skip $prefix: ${line#ok }";;
		"ok "*) results=$((results+1)); pass=$((pass+1));;
		1..*) plan=${line#1..}; plan=${plan%%[!0-9]*};;
		"#"*) [ "$fail" -gt 0 ] && echo "$line";;
		esac
	done
	rc=${PIPESTATUS[0]}
	if [ -z "$plan" ]; then
		failed "$prefix" "printed no TAP plan (exit status $rc)"
	elif [ "$plan" -ne "$results" ]; then
		failed "$prefix" "planned $plan tests but reported $results (exit status $rc)"
	fi
	case $rc in
	0) [ "$nfail" -eq 0 ] || failed "$prefix" "exit status 0 despite $nfail failures";;
	1) [ "$nfail" -gt 0 ] || failed "$prefix" "exit status 1 with no failing test reported";;
	"$SAN_EXIT") failed "$prefix" "a sanitizer reported an error (exit status $rc, see $log)";;
	*) failed "$prefix" "exit status $rc";;
	esac
}

echo "== unit tests"
for t in $UNIT_GLOB; do
	[ -x "$t" ] || continue
	run_tap "${t##*/}" "$t"
done

# FUZZ_SMOKE=0 leaves the smoke run out (CI's plain run: the targets are
# the same ASan/UBSan builds in both runs, and its sanitizer run has them).
[ "$FUZZ_SMOKE" = 0 ] && FUZZ_GLOB=
[ -n "$FUZZ_GLOB" ] && echo "== fuzz targets (${FUZZ_SMOKE}s each)"
for f in $FUZZ_GLOB; do
	[ -x "$f" ] || continue
	n=${f##*/fuzz_}
	d=$(mktemp -d)
	# artifacts (crash-*, leak-*) go to the temp dir, never the work tree
	if "$f" -max_total_time="$FUZZ_SMOKE" -print_final_stats=0 -artifact_prefix="$d/" \
		"$d" "tests/fuzz/corpus/$n" > "$d.log" 2>&1; then
		pass=$((pass+1))
	else
		tail -30 "$d.log"
		failed fuzz "fuzz_$n (see above)"
	fi
	rm -rf "$d" "$d.log"
done

echo "== bats"
export BUILD
# a test that hangs fails after this many seconds instead of stalling the run
export BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}
# BATS_STREAMS=N runs the files in N bats processes at once (the suites
# spend much of their time waiting), each reported and judged on its own
# when all have ended. Files go to the stream with the fewest tests so far,
# the largest first.
# shellcheck disable=SC2086 # BATS_FILES is a list of globs
files=($BATS_FILES)
streams=${BATS_STREAMS:-1}
[ "${#files[@]}" -lt "$streams" ] && streams=${#files[@]}
if [ "$streams" -le 1 ]; then
	run_tap bats bats --tap ${BATS_TIMING:+--timing} "${files[@]}"
else
	declare -a group weight
	for ((i = 0; i < streams; i++)); do group[i]=; weight[i]=0; done
	# the files with the most tests first, each to the lightest stream
	for f in "${files[@]}"; do
		n=$(grep -c '^@test' "$f" 2>/dev/null)
		printf '%s %s\n' "${n:-0}" "$f"
	done | sort -k1,1nr -k2 | while read -r n f; do
		k=0
		for ((i = 1; i < streams; i++)); do
			[ "${weight[i]}" -lt "${weight[k]}" ] && k=$i
		done
		group[k]+=" $f"
		weight[k]=$((weight[k] + n))
	done
	for ((i = 0; i < streams; i++)); do
		# shellcheck disable=SC2086 # a list of file names without spaces
		{ bats --tap ${BATS_TIMING:+--timing} ${group[i]} > "$BUILD/bats.$i.tap" 2>&1; echo $? > "$BUILD/bats.$i.rc"; } &
	done
	wait
	for ((i = 0; i < streams; i++)); do
		echo "-- stream $((i + 1)):${group[i]}"
		run_tap "bats[$((i + 1))]" sh -c 'cat "$1"; exit "$(cat "$2")"' sh "$BUILD/bats.$i.tap" "$BUILD/bats.$i.rc"
	done
	rm -f "$BUILD"/bats.[0-9]*.tap "$BUILD"/bats.[0-9]*.rc
fi

echo
if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${failed_names[@]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ $((pass+fail)) -gt 0 ]
