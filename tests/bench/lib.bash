# Shared set-up for the benchmark scripts (sourced, not run by `make bench`):
# an absolute BUILD, a temp dir T removed at exit with every pid in pids
# killed, and machine() for the heading line.
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
T=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT

# "2026-11-23, 2 cores, AMD EPYC"
machine() {
	echo "$(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}
