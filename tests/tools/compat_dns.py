#!/usr/bin/env python3
"""A tiny DNS responder on Unix sockets, for tests/compat.bats.

Listens on PATH.dgram (AF_UNIX SOCK_DGRAM: one query per datagram, the answer
goes back to the sender's address) and PATH.stream (AF_UNIX SOCK_STREAM: a
two-byte length before each message, RFC 1035 section 4.2.2). Every A query
is answered with one A record, 192.0.2.53 with TTL 300, and every other
query type with an empty NOERROR answer. Logs "udp NAME TYPE" or
"tcp NAME TYPE" per query to --log, and writes --ready FILE when both
sockets listen. A PATH starting with "@" names abstract sockets instead.
"""
import argparse, os, socket, struct, threading


def answer(q):
    """The response message for the query message q (RFC 1035 4.1)."""
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    off, labels = 12, []
    while q[off]:
        n = q[off]
        labels.append(q[off + 1:off + 1 + n].decode())
        off += 1 + n
    qtype, qclass = struct.unpack("!HH", q[off + 1:off + 5])
    question = q[12:off + 5]
    rd = flags & 0x0100
    an = b""
    if qtype == 1:
        # name as a pointer to the question (offset 12), TYPE A, CLASS IN
        an = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton("192.0.2.53")
    hdr = struct.pack("!HHHHHH", qid, 0x8180 | rd, 1, 1 if an else 0, 0, 0)
    return hdr + question + an, ".".join(labels), qtype


def log(args, line):
    if args.log:
        with open(args.log, "a") as f:
            f.write(line + "\n")


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            return None
        b += d
    return b


def serve_stream(args, c):
    with c:
        while True:
            ln = recv_exact(c, 2)
            if ln is None:
                return
            q = recv_exact(c, struct.unpack("!H", ln)[0])
            if q is None:
                return
            r, name, qtype = answer(q)
            log(args, "tcp %s %d" % (name, qtype))
            c.sendall(struct.pack("!H", len(r)) + r)


def stream_loop(args, s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_stream, args=(args, c), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--log")
    p.add_argument("--ready")
    args = p.parse_args()
    path = "\0" + args.path[1:] if args.path.startswith("@") else args.path
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(path + ".dgram")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path + ".stream")
    s.listen(16)
    threading.Thread(target=stream_loop, args=(args, s), daemon=True).start()
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("ready\n")
    while True:
        q, peer = d.recvfrom(65535)
        r, name, qtype = answer(q)
        log(args, "udp %s %d from %s" % (name, qtype, "unnamed" if not peer else "bound"))
        if peer:
            try:
                d.sendto(r, peer)
            except OSError as e:
                log(args, "udp reply to %r: %s" % (peer, e.strerror))


if __name__ == "__main__":
    main()
