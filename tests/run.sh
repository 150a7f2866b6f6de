#!/usr/bin/env bash
# The test runner behind `make check`: the C unit tests, a short run of
# every fuzz target, and the bats suites. All speak TAP; this counts the
# results and ends with one line: "N passed, N failed, N skipped".
set -u
BUILD=${BUILD:-build}
FUZZ_SMOKE=${FUZZ_SMOKE:-3}
log=$BUILD/test.log
mkdir -p "$BUILD"
: > "$log"
pass=0 fail=0 skip=0
failed_names=()

count() {	# reads TAP on stdin, echoes it, updates the counters
	local prefix=$1 line
	while IFS= read -r line; do
		printf '%s\n' "$line" >> "$log"
		case "$line" in
		"not ok "*) fail=$((fail+1)); failed_names+=("$prefix: ${line#not ok }"); echo "FAIL $prefix: ${line#not ok }";;
		"ok "*"# skip"*|"ok "*"# SKIP"*) skip=$((skip+1)); echo "skip $prefix: ${line#ok }";;
		"ok "*) pass=$((pass+1));;
		"#"*) [ "$fail" -gt 0 ] && echo "$line";;
		esac
	done
}

echo "== unit tests"
for t in "$BUILD"/unit/test_*; do
	[ -x "$t" ] || continue
	count "${t##*/}" < <("$t" 2>&1; rc=$?; [ $rc -ne 0 ] && [ $rc -ne 1 ] && echo "not ok - ${t##*/} exited $rc")
done

echo "== fuzz targets (${FUZZ_SMOKE}s each)"
for f in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	n=${f##*/fuzz_}
	d=$(mktemp -d)
	if "$f" -max_total_time="$FUZZ_SMOKE" -print_final_stats=0 "$d" "tests/fuzz/corpus/$n" > "$d.log" 2>&1; then
		count fuzz < <(echo "ok - fuzz_$n")
	else
		tail -30 "$d.log"
		count fuzz < <(echo "not ok - fuzz_$n (see above)")
	fi
	rm -rf "$d" "$d.log"
done

echo "== bats"
export BUILD
# a test that hangs fails after this many seconds instead of stalling the run
export BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}
count bats < <(bats --tap tests/*.bats 2>&1)

echo
if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${failed_names[@]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ $((pass+fail)) -gt 0 ]
