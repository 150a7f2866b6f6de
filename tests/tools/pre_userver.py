#!/usr/bin/env python3
"""Test peer for tests/preload.bats: a Unix-socket server (stream or datagram).

Stream: per connection, optionally reads a PROXY v2 header first (--proxy) and
logs what it carried; then answers an HTTP request with a small page, or
echoes every byte back (prefixing nothing) until EOF. Datagram: answers each
datagram with b"echo:" + data, to the sender, after stripping a header.
Writes "ready" to --ready FILE once listening. With --accept-after FILE it
does not accept until FILE exists (to keep the backlog full).
"""
import argparse, os, socket, struct, sys, threading, time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def log(args, line):
    if args.log:
        with open(args.log, "a") as f:
            f.write(line + "\n")


def parse_v2(buf):
    """(header length, description) or None if more bytes are needed."""
    if len(buf) < 16:
        return None
    assert buf[:12] == SIG, "not a PROXY v2 header: %r" % buf[:16]
    ln = struct.unpack("!H", buf[14:16])[0]
    if len(buf) < 16 + ln:
        return None
    fam = buf[13]
    body = buf[16:16 + ln]
    desc = {}
    off = 0
    if fam >> 4 == 1:
        src = socket.inet_ntop(socket.AF_INET, body[0:4])
        dst = socket.inet_ntop(socket.AF_INET, body[4:8])
        sp, dp = struct.unpack("!HH", body[8:12])
        desc["src"], desc["dst"] = "%s:%d" % (src, sp), "%s:%d" % (dst, dp)
        off = 12
    elif fam >> 4 == 2:
        src = socket.inet_ntop(socket.AF_INET6, body[0:16])
        dst = socket.inet_ntop(socket.AF_INET6, body[16:32])
        sp, dp = struct.unpack("!HH", body[32:36])
        desc["src"], desc["dst"] = "[%s]:%d" % (src, sp), "[%s]:%d" % (dst, dp)
        off = 36
    desc["proto"] = {1: "stream", 2: "dgram"}.get(fam & 0xf, "unspec")
    while off + 3 <= len(body):
        t = body[off]
        l = struct.unpack("!H", body[off + 1:off + 3])[0]
        v = body[off + 3:off + 3 + l]
        if t == 0x02:
            desc["authority"] = v.decode()
        elif t == 0x30:
            desc["netns"] = v.decode()
        elif t == 0x03:
            desc["crc32c"] = "present"
        off += 3 + l
    return 16 + ln, desc


def fmt(desc):
    return "hdr " + " ".join("%s=%s" % (k, desc[k]) for k in sorted(desc))


def serve_stream(args, c):
    buf = b""
    try:
        if args.proxy:
            while True:
                r = parse_v2(buf)
                if r:
                    break
                d = c.recv(4096)
                if not d:
                    log(args, "eof before header")
                    return
                buf += d
            n, desc = r
            log(args, fmt(desc))
            if args.raw:
                log(args, "raw " + buf[:n].hex())
            buf = buf[n:]
        if args.greet:
            c.sendall(args.greet.encode() + b"\n")
        while True:
            if buf.startswith(b"GET ") or buf.startswith(b"HEAD "):
                while b"\r\n\r\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        break
                    buf += d
                line = buf.split(b"\r\n", 1)[0].decode()
                log(args, "http " + line)
                body = b"hello from unix\n"
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                          % (len(body), body))
                return
            if buf:
                c.sendall(buf)
                buf = b""
            d = c.recv(65536)
            if not d:
                return
            if not args.quiet:
                log(args, "data %r" % d[:64])
            buf = d
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--dgram", action="store_true")
    p.add_argument("--proxy", action="store_true")
    p.add_argument("--log")
    p.add_argument("--ready")
    p.add_argument("--backlog", type=int, default=128)
    p.add_argument("--accept-after")
    p.add_argument("--greet")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--raw", action="store_true", help="with --proxy: log the header's bytes in hex")
    args = p.parse_args()
    path = args.path
    if path.startswith("@"):
        path = "\0" + path[1:]
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if args.dgram else socket.SOCK_STREAM)
    s.bind(path)
    if not args.dgram:
        s.listen(args.backlog)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("ready\n")
    if args.dgram:
        while True:
            d, peer = s.recvfrom(65536)
            if args.proxy:
                n, desc = parse_v2(d)
                log(args, fmt(desc))
                d = d[n:]
            log(args, "dgram %r" % d)
            s.sendto(b"echo:" + d, peer)
    if args.accept_after:
        while not os.path.exists(args.accept_after):
            time.sleep(0.02)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_stream, args=(args, c), daemon=True).start()


if __name__ == "__main__":
    main()
