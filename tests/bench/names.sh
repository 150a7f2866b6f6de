#!/usr/bin/env bash
# Names (libsockgate(7) "Names", sockgate-relay(8) "RESOLVER"):
#  1. getaddrinfo() of a name no rule matches (localhost, from the hosts
#     file), with the library loaded and resolve rules present vs libc's own
#     getaddrinfo(), alternating call by call: target <= 1.05x;
#  2. one lookup through the relay (library -> resolver listener -> dnsmasq)
#     vs glibc's own getaddrinfo() of the same name from the same dnsmasq;
#  3. lookups per second the relay's resolver sustains with 16 concurrent
#     clients: through getaddrinfo() (a connection per lookup), over kept
#     connections in the resolver protocol, and with the relay answering
#     from a rule (no DNS server in the way).
# 2 and 3 run in a private network and mount namespace where dnsmasq
# listens on 127.0.0.1:53 and resolv.conf names it; nothing outside changes.
set -eu
. "$(dirname "$0")/lib.bash"
LIB=$BUILD/libsockgate.so
GB=$BUILD/tools/gai_bench
make -s BUILD="$BUILD" tools >/dev/null

echo "== names ($(machine))"

N=${NAMES_BENCH_LOOKUPS:-20000}
rules="resolve *.test -> unix $T/absent.sock; connect tcp 10.0.0.0/8 -> unix $T/absent2.sock"
read -r ctl_plt ctl_libc < <("$GB" alt localhost "$N")
read -r on_plt on_libc < <(SOCKGATE_RULE=$rules LD_PRELOAD=$LIB "$GB" alt localhost "$N")
awk -v a="$on_libc" -v b="$on_plt" -v c="$ctl_libc" -v d="$ctl_plt" 'BEGIN {
	r = b / a
	printf "unmatched getaddrinfo(\"localhost\"): %d ns through the library vs %d ns libc alone: ratio %.3fx (target <= 1.05): %s  [control without the library: %.3fx]\n",
		b, a, r, (r <= 1.05 ? "met" : "NOT met"), d / c }'

if ! command -v dnsmasq >/dev/null || ! unshare -n -m true 2>/dev/null; then
	echo "dnsmasq or unshare -n -m missing: relay lookup benchmarks skipped"
	exit 0
fi
printf '127.0.0.5 svc.test\n::5 svc.test\n' >"$T/hosts"
: >"$T/empty"
printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:2\n' >"$T/resolv.conf"
printf 'hosts: dns\n' >"$T/nsswitch.conf"
printf 'resolve * -> unix %s/res.sock\n' "$T" >"$T/rules"
SECS=${NAMES_BENCH_SECONDS:-3}
cat >"$T/inner.sh" <<EOT
set -eu
ip link set lo up
mount --bind "$T/resolv.conf" /etc/resolv.conf
mount --bind "$T/empty" /etc/hosts
mount --bind "$T/nsswitch.conf" /etc/nsswitch.conf
dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$T/hosts" --listen-address=127.0.0.1 \
	--bind-interfaces --port=53 --user=root --pid-file="$T/dnsmasq.pid" --local=/test/ --cache-size=1000
start_relay() {
	rm -f "$T/ready"
	"$BUILD/sockgate-relay" --ready-fd 3 -l "resolve:$T/res.sock" "\$@" original 3>"$T/ready" 2>>"$T/relay.log" &
	RELAY=\$!
	for i in \$(seq 100); do grep -q ready "$T/ready" 2>/dev/null && break; sleep 0.05; done
}
start_relay --dns-server 127.0.0.1:53
echo "glibc1 \$("$GB" rate svc.test 1 $SECS)"
echo "relay1 \$(LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" "$GB" rate svc.test 1 $SECS)"
echo "glibc16 \$("$GB" rate svc.test 16 $SECS)"
echo "relay16 \$(LD_PRELOAD="$LIB" SOCKGATE_RULES="$T/rules" "$GB" rate svc.test 16 $SECS)"
echo "proto16 \$("$GB" proto "$T/res.sock" svc.test 16 $SECS)"
kill \$RELAY; wait \$RELAY 2>/dev/null || true
start_relay -r "resolve svc.test -> 127.0.0.5,::5"
echo "fixed16 \$("$GB" proto "$T/res.sock" svc.test 16 $SECS)"
kill \$RELAY \$(cat "$T/dnsmasq.pid"); wait \$RELAY 2>/dev/null || true
EOT
steal_mark
unshare -n -m --propagation private bash "$T/inner.sh" >"$T/out"
st=$(steal_pct)
v() { awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$T/out"; }
awk -v g1="$(v glibc1 2)" -v g1l="$(v glibc1 3)" -v r1="$(v relay1 2)" -v r1l="$(v relay1 3)" \
	-v g16="$(v glibc16 2)" -v r16="$(v relay16 2)" -v p16="$(v proto16 2)" -v p16l="$(v proto16 3)" \
	-v f16="$(v fixed16 2)" -v st="$st" 'BEGIN {
	printf "one lookup of svc.test from dnsmasq: through the relay %.0f us (median) vs glibc alone %.0f us: ratio %.2fx; %.0f vs %.0f lookups/s one at a time\n",
		r1l, g1l, r1l / g1l, r1, g1
	printf "16 concurrent clients: getaddrinfo() through the relay %.0f lookups/s (glibc alone %.0f); resolver protocol on kept connections %.0f lookups/s (median %.0f us); relay answering from a rule %.0f lookups/s  [steal %s%%]\n",
		r16, g16, p16, p16l, f16, st }'
