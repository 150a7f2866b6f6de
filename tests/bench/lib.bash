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

# steal_mark, then steal_pct: the share of CPU time the hypervisor gave to
# others in between (the "st" of top). A run with much of it is noise.
steal_mark() { STEAL0=$(awk '/^cpu / { print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat); }
steal_pct() {
	awk -v a="$STEAL0" '/^cpu / { split(a, s, " "); t = $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 - s[2];
		printf "%.1f", (t > 0 ? 100 * ($9 - s[1]) / t : 0) }' /proc/stat
}
