#!/usr/bin/env bash
# sockgate-run --seccomp costs, measured by conn_bench (median time of one
# connect()), in rounds that alternate the two sides so both see the same
# machine state; each ratio is the median of the rounds' ratios, with the
# lowest and highest round in brackets:
#  1. an unmatched connect() to a loopback TCP listener, a static program
#     under the filter vs the same program alone (goal <= 1.1x);
#  2. an unmatched connect() of a Unix socket (the filter lets it pass in
#     the kernel) under the filter vs alone;
#  3. a matched connect() redirected to a Unix socket: by the supervisor
#     (static program) vs by the library (the same source built with glibc).
# Everything runs in a network namespace of its own (unshare -n, loopback up).
set -eu
. "$(dirname "$0")/lib.bash"
make -s BUILD="$BUILD" tools >/dev/null
ROUNDS=${SECCOMP_BENCH_ROUNDS:-7}
N=${SECCOMP_BENCH_CONNECTS:-2000}
SRC=$(cd "$(dirname "$0")/../tools" && pwd)/conn_bench.c
musl-gcc -static -O2 -o "$T/conn_static" "$SRC" -lpthread
DYN=$BUILD/tools/conn_bench
RULES="connect tcp 10.0.0.0/8 -> unix $T/r.sock; connect tcp [fd00::/8] -> unix $T/r6.sock"

echo "== seccomp ($(machine))"
if ! why=$(unshare -n "$BUILD/sockgate-run" --seccomp -- true 2>&1); then
	echo "seccomp user notification refused here: $why; benchmark skipped"
	exit 0
fi

# one_round: every measure once, alternating sides; one line of medians
cat > "$T/round.sh" <<EOS
set -eu
ip link set lo up
run() { "$BUILD/sockgate-run" --seccomp -r "$RULES" -- "\$@"; }
a=\$("$T/conn_static" tcp $N); b=\$(run "$T/conn_static" tcp $N)
c=\$(run "$T/conn_static" unix $N "$T/u.sock"); d=\$("$T/conn_static" unix $N "$T/u.sock")
e=\$(run "$T/conn_static" redirect $N "$T/r.sock")
f=\$(SOCKGATE_RULE="$RULES" LD_PRELOAD="$BUILD/libsockgate.so" "$DYN" redirect $N "$T/r.sock")
echo \$a \$b \$d \$c \$f \$e
EOS
steal_mark
for r in $(seq "$ROUNDS"); do
	${SECCOMP_BENCH_NICE:-nice -n 10} unshare -n bash "$T/round.sh"
done > "$T/rounds"
st=$(steal_pct)
awk -v st="$st" -v n="$N" -v R="$ROUNDS" '
function med(a, k,   i, j, t) {
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
function line(what, col, lbl1, lbl2, goal,   i, r, lo, hi, x, y, m) {
	lo = 1e9; hi = 0
	for (i = 1; i <= NR; i++) { r[i] = v[i, col + 1] / v[i, col]; x[i] = v[i, col + 1]; y[i] = v[i, col]
		if (r[i] < lo) lo = r[i]; if (r[i] > hi) hi = r[i] }
	m = med(r, NR)
	printf "%s: %d ns %s vs %d ns %s: ratio %.3fx [%.3f-%.3f]%s\n", what, med(x, NR), lbl1, med(y, NR), lbl2, m, lo, hi,
		goal ? sprintf(" (goal <= %.1f): %s", goal, m <= goal ? "met" : "NOT met") : ""
}
{ for (i = 1; i <= NF; i++) v[NR, i] = $i }
END {
	printf "%d rounds of %d connects each, median per round; steal %s%%\n", R, n, st
	line("unmatched connect() to loopback TCP, static program", 1, "under the filter", "without", 1.1)
	line("unmatched connect() of a Unix socket (passes in BPF)", 3, "under the filter", "without", 0)
	line("matched connect() redirected to a Unix socket", 5, "by the supervisor", "by the library", 0)
}' "$T/rounds"
