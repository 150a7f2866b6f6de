#!/usr/bin/env bash
# Rule lookup speed: rules_match() over 10, 1,000 and 100,000 random CIDR/port
# rules (IPv4 /16../32 and IPv6 /32../64 anywhere, port ranges up to 1,000 wide;
# 3/4 IPv4), then the harder spread (IPv4 /8../32) at 100,000.
# Target: under 200 ns per lookup at 100,000 rules, not growing with the count.
# Both sets get a verdict; a run that printed no figure reads "failed".
set -eu
. "$(dirname "$0")/lib.bash"
make -s BUILD="$BUILD" tools >/dev/null
echo "== rule lookup ($(machine))"
out=$("$BUILD/tools/rules_bench" 10 1000 100000) || out=""
echo "$out"
wide=$("$BUILD/tools/rules_bench" wide 100000) || wide=""
echo "$wide" | sed 's/^/wide: /'
ns() { sed -n "s/^rules=$1 .*ns_per_lookup=\([0-9.]*\).*/\1/p"; }
ns1k=$(echo "$out" | ns 1000)
ns100k=$(echo "$out" | ns 100000)
nswide=$(echo "$wide" | ns 100000)
echo "100,000 rules: $(fmt %.1f "$ns100k") ns per lookup (target < 200): $(judge "$ns100k" "<" 200); 100x the rules costs $(ratio3 "$ns100k" "$ns1k")x the time (linear would be 100x)"
echo "100,000 rules, the wide set (a quarter IPv4 /8../15): $(fmt %.1f "$nswide") ns per lookup (target < 200): $(judge "$nswide" "<" 200)"
