#!/usr/bin/env bash
# make demo: the container-egress path on this machine, step by step.
# A program with no network (unshare -n) reaches one allowed web server on
# the host through libsockgate.so and sockgate-relay, and nothing else.
# Exits 0 only when every step did what it says.
set -u
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
SG=$BUILD/sockgate
LIB=$BUILD/libsockgate.so
T=$(mktemp -d /tmp/sockgate-demo.XXXXXX)
PIDS=()
FAILED=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
bad() { printf '   FAILED: %s\n' "$*"; FAILED=1; }
wait_for() {	# FILE PATTERN: up to 10 s
	local i
	for i in $(seq 200); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}

for f in "$SG" "$LIB"; do [ -e "$f" ] || { echo "demo: $f is missing; run make first" >&2; exit 1; }; done
for t in curl python3; do command -v $t >/dev/null || { echo "demo: $t is needed (make deps)" >&2; exit 1; }; done

cat <<EOF
sockgate demo: a program in a container with no network reaches one web server on
the host, through a Unix socket and sockgate-relay, and is refused everything else.
(temporary files in $T, removed at the end)
EOF

step "1. Two small web servers on the host's loopback"
cat >"$T/web.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from the web server on %s:%d; you came from %s:%d\n" %
                (self.server.server_address + self.client_address)).encode()
        print("request from %s:%d for %s" % (self.client_address + (self.path,)), flush=True)
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print("listening", s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 "$T/web.py" >"$T/web1.log" 2>&1 & PIDS+=($!)
python3 "$T/web.py" >"$T/web2.log" 2>&1 & PIDS+=($!)
wait_for "$T/web1.log" listening && wait_for "$T/web2.log" listening || { bad "the web servers did not start"; exit 1; }
P1=$(awk '/^listening/ {print $2}' "$T/web1.log")
P2=$(awk '/^listening/ {print $2}' "$T/web2.log")
say "allowed server:   http://127.0.0.1:$P1/"
say "forbidden server: http://127.0.0.1:$P2/  (runs too, but no rule allows it)"

step "2. sockgate-relay on the host: a Unix socket in, the original destination out, one allow rule"
say "$SG relay -v -l unix:$T/egress.sock --proxy-in -r 'connect tcp 127.0.0.1:$P1 -> pass' original"
"$SG" relay -v -l "unix:$T/egress.sock" --proxy-in -r "connect tcp 127.0.0.1:$P1 -> pass" \
	--ready-fd 3 original 3>"$T/ready" 2>"$T/relay.log" & PIDS+=($!)
if wait_for "$T/ready" ready; then ok "the relay is ready"; else bad "the relay did not start:"; cat "$T/relay.log"; exit 1; fi

step "3. A container with no network"
NS=(unshare -n)
if why=$(unshare -n true 2>&1); then
	say "unshare -n works here: the programs below run in a new network namespace"
	say "with nothing but a loopback interface that is down."
	if out=$(unshare -n curl -sS --max-time 5 "http://127.0.0.1:$P1/" 2>&1); then
		bad "curl reached the server from inside the namespace without help: $out"
	else
		ok "plain curl inside it cannot reach the server: ${out:-failed}"
	fi
else
	NS=()
	say "unshare -n is not permitted here ($why);"
	say "running the same steps without the namespace (the path through the relay is the same)."
fi

RULE="connect tcp * -> unix $T/egress.sock proxy-v2"
step "4. curl with libsockgate.so, inside the container"
say "SOCKGATE_RULE='$RULE'"
say "LD_PRELOAD=$LIB curl http://127.0.0.1:$P1/"
if out=$("${NS[@]}" env SOCKGATE_RULE="$RULE" LD_PRELOAD="$LIB" curl -sS --max-time 10 "http://127.0.0.1:$P1/" 2>&1); then
	say "curl printed: $out"
	case $out in "hello from the web server on 127.0.0.1:$P1"*) ok "curl reached the allowed server through the relay";;
	*) bad "unexpected answer";; esac
else
	bad "curl failed: $out"
fi

step "5. The same curl to the forbidden server"
if out=$("${NS[@]}" env SOCKGATE_RULE="$RULE" LD_PRELOAD="$LIB" curl -sS --max-time 10 "http://127.0.0.1:$P2/" 2>&1); then
	bad "curl reached the forbidden server: $out"
else
	ok "refused: curl says: $out"
fi
if wait_for "$T/relay.log" "denied"; then
	say "the relay logged why:"
	grep denied "$T/relay.log" | sed 's/^/     /'
else
	bad "the relay did not log the refusal"
fi
if grep -q request "$T/web2.log"; then bad "the forbidden server got a request"; else ok "the forbidden server never saw a request"; fi

step "6. What the allowed server saw"
if wait_for "$T/web1.log" "request from"; then
	sed -n 's/^request from/   the server got a request from/p' "$T/web1.log"
	say "(that is the relay's own connection on the host; the relay's log line"
	say " names the container side and counts the bytes:)"
	grep -- "-> 127.0.0.1:$P1" "$T/relay.log" | sed 's/^/     /'
	grep -q -- "-> 127.0.0.1:$P1: [0-9]* bytes to target, [0-9]* bytes to client, .*, done" "$T/relay.log" &&
		ok "one connection relayed and ended cleanly" || bad "no relay log line for the allowed connection"
else
	bad "the allowed server saw no request"
fi

step "Done"
if [ $FAILED = 0 ]; then
	if [ ${#NS[@]} -gt 0 ]; then
		echo "   every step worked (inside unshare -n)."
	else
		echo "   every step worked (without a namespace: unshare -n was not permitted here)."
	fi
	exit 0
fi
echo "   some steps FAILED (see above)."
exit 1
