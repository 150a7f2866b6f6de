#!/usr/bin/env bash
# Rule lookup speed: rules_match() over 10, 1,000 and 100,000 random CIDR/port
# rules (IPv4 /16../32 and IPv6 /32../64 anywhere, port ranges up to 1,000 wide;
# 3/4 IPv4), then the harder spread (IPv4 /8../32) at 100,000.
# Target: under 200 ns per lookup at 100,000 rules, not growing with the count.
set -eu
BUILD=${BUILD:-build}
make -s BUILD="$BUILD" tools >/dev/null
echo "== rule lookup ($(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
out=$("$BUILD/tools/rules_bench" 10 1000 100000)
echo "$out"
"$BUILD/tools/rules_bench" wide 100000 | sed 's/^/wide: /'
ns1k=$(echo "$out" | sed -n 's/^rules=1000 .*ns_per_lookup=\([0-9.]*\).*/\1/p')
ns100k=$(echo "$out" | sed -n 's/^rules=100000 .*ns_per_lookup=\([0-9.]*\).*/\1/p')
awk -v a="$ns1k" -v b="$ns100k" 'BEGIN {
	printf "100,000 rules: %.1f ns per lookup (target < 200): %s; 100x the rules costs %.2fx the time (linear would be 100x)\n",
		b, (b < 200 ? "met" : "NOT met"), b / a }'
