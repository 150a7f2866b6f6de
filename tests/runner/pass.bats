# A fixture for tests/runner.bats: two tests that pass.
@test "one" { true; }
@test "two" { true; }
