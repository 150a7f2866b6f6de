# A fixture for tests/runner.bats, not a suite of its own (run.sh runs
# tests/*.bats only): its third test SIGKILLs itself and prints no result.
@test "one" { true; }
@test "two" { true; }
@test "dies without a result" { kill -KILL $$; }
@test "four" { true; }
