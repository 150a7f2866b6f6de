#!/usr/bin/env bats
# The test runner itself (tests/run.sh): a result it did not see, a
# sanitizer's exit, or a producer that prints nothing must count as a
# failure, never as a pass. Fixtures live in tests/runner/.

load helper

# runner ARGS...: tests/run.sh on fixtures only, with its own build dir.
runner() {
	# a short test timeout: a killed test's timeout watcher holds the
	# TAP pipe open until it fires
	env BATS_TEST_TIMEOUT=3 BUILD="$T/build" FUZZ_GLOB="$T/none" "$@" \
		bash "$TOP/tests/run.sh"
}

@test "runner: passing fixtures pass, and the closing line counts them" {
	cd "$TOP"
	run -0 runner UNIT_GLOB="$T/none" BATS_FILES=tests/runner/pass.bats
	assert_line --index -1 "2 passed, 0 failed, 0 skipped"
}

@test "runner: a bats test that dies without a result is a failure" {
	cd "$TOP"
	run -1 runner UNIT_GLOB="$T/none" BATS_FILES=tests/runner/selfkill.bats
	assert_line --partial "FAIL bats: planned 4 tests but reported 3"
	assert_line --index -1 "3 passed, 2 failed, 0 skipped"
}

@test "runner: bats missing, or printing nothing, is a failure" {
	cd "$TOP"
	mkdir "$T/bin"
	printf '#!/bin/sh\nexit 0\n' > "$T/bin/bats"
	chmod +x "$T/bin/bats"
	run -1 runner UNIT_GLOB="$T/none" PATH="$T/bin:$PATH" BATS_FILES=tests/runner/pass.bats
	assert_line "FAIL bats: printed no TAP plan (exit status 0)"
	assert_line --index -1 "0 passed, 1 failed, 0 skipped"
	run -1 runner UNIT_GLOB="$T/none" BATS_FILES="$T/no-such.bats"
	assert_line --partial "FAIL bats: printed no TAP plan"
}

@test "runner: a sanitizer error after a passing check is a failure" {
	cd "$TOP"
	mkdir "$T/unit"
	cc -O0 -g -fsanitize=address -o "$T/unit/test_overflow" tests/runner/overflow.c
	run -1 runner UNIT_GLOB="$T/unit/test_*" BATS_FILES=tests/runner/pass.bats
	assert_line --partial "FAIL test_overflow: a sanitizer reported an error (exit status 86"
	assert_line "FAIL test_overflow: printed no TAP plan (exit status 86)"
	assert_line --index -1 "3 passed, 2 failed, 0 skipped"
}

@test "runner: a unit binary that stops short of its plan or crashes is a failure" {
	cd "$TOP"
	mkdir "$T/unit"
	printf '#!/bin/sh\necho "1..3"\necho "ok 1 - a"\nkill -SEGV $$\n' > "$T/unit/test_short"
	chmod +x "$T/unit/test_short"
	run -1 runner UNIT_GLOB="$T/unit/test_*" BATS_FILES=tests/runner/pass.bats
	assert_line --partial "FAIL test_short: planned 3 tests but reported 1"
	assert_line --partial "FAIL test_short: exit status 139"
}

@test "runner: BATS_STREAMS=2 runs files at once, judges each stream, and counts them all" {
	cd "$TOP"
	run -1 runner UNIT_GLOB="$T/none" BATS_STREAMS=2 BATS_FILES="tests/runner/pass.bats tests/runner/selfkill.bats"
	# the file with more tests first
	assert_line "-- stream 1: tests/runner/selfkill.bats"
	assert_line "-- stream 2: tests/runner/pass.bats"
	assert_line --partial "FAIL bats[1]: planned 4 tests but reported 3"
	assert_line "FAIL bats[1]: exit status 1 with no failing test reported"
	assert_line --index -1 "5 passed, 2 failed, 0 skipped"
	run -0 runner UNIT_GLOB="$T/none" BATS_STREAMS=2 BATS_FILES="tests/runner/pass.bats tests/runner/pass.bats"
	assert_line --index -1 "4 passed, 0 failed, 0 skipped"
}
