#!/usr/bin/env python3
"""Peers for tests/relay.bats: servers and clients that check every byte.

Addresses: unix:/path, unix:@name, tcp:HOST:PORT (port 0: the server prints
"listening PORT"). Servers print "ready" once they listen.

  echo LISTEN [--hold]          echo every connection back (--hold: accept, never read)
  bulk-server LISTEN SIZE       one connection: send SIZE bytes and read to EOF at once
  bulk-client TARGET SIZE       the same from the client side
        both print "sent SHA256" and "recv SHA256 BYTES"
  halfclose-server LISTEN       read to EOF, then answer "got BYTES SHA256\\n" x 1000 and close
  halfclose-client TARGET BYTES send, shut down the write side, print the whole reply
  many TARGET N [MAXLEN]        N concurrent connections, random payloads echoed back and compared;
                                prints "ok N" or "FAIL k: why"
  idle TARGET N                 open N connections, print "open N", wait for stdin EOF, then close
  ppsend TARGET SRC DST PAYLOAD [v1|raw:HEX]
                                send a PROXY v2 header (v1: a v1 line; raw: these bytes instead) naming
                                SRC and DST (IP:PORT or [V6]:PORT), then PAYLOAD, shut down the write
                                side, print what comes back
  ppserve LISTEN                accept connections; for each print "src=... dst=... payload=..." from
                                its PROXY v1/v2 header, answer "ok\n"
  sendfd PATH HOST PORT         connect to HOST:PORT, pass the socket with SCM_RIGHTS in a datagram
                                to PATH, then send "hello\\n" on it and print what comes back
"""
import asyncio
import hashlib
import os
import random
import socket
import sys
import threading


def parse(addr):
    if addr.startswith("unix:"):
        p = addr[5:]
        if p.startswith("@"):
            p = "\0" + p[1:]
        return socket.AF_UNIX, p
    if addr.startswith("tcp:"):
        host, port = addr[4:].rsplit(":", 1)
        host = host.strip("[]")
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        return fam, (host, int(port))
    raise SystemExit("bad address " + addr)


def listen(addr):
    fam, a = parse(addr)
    s = socket.socket(fam, socket.SOCK_STREAM)
    if fam != socket.AF_UNIX:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(a)
    s.listen(4096)
    if fam != socket.AF_UNIX:
        print("listening", s.getsockname()[1], flush=True)
    print("ready", flush=True)
    return s


def connect(addr):
    fam, a = parse(addr)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.connect(a)
    return s


CHUNK = 1 << 20


def stream_bytes(size, seed):
    """SIZE pseudo-random bytes in 1 MiB chunks; each chunk numbered so reordering shows."""
    rnd = random.Random(seed)
    block = bytearray(rnd.randbytes(CHUNK))
    i = 0
    while size > 0:
        block[0:8] = i.to_bytes(8, "little")
        n = min(size, CHUNK)
        yield memoryview(block)[:n]
        size -= n
        i += 1


def bulk(sock, size, seed):
    res = {}

    def sender():
        h = hashlib.sha256()
        for b in stream_bytes(size, seed):
            h.update(b)
            sock.sendall(b)
        sock.shutdown(socket.SHUT_WR)
        res["sent"] = h.hexdigest()

    t = threading.Thread(target=sender)
    t.start()
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    n = 0
    while True:
        k = sock.recv_into(buf)
        if k == 0:
            break
        h.update(memoryview(buf)[:k])
        n += k
    t.join()
    print("sent", res["sent"], flush=True)
    print("recv", h.hexdigest(), n, flush=True)


def recv_all(sock):
    out = []
    while True:
        b = sock.recv(65536)
        if not b:
            return b"".join(out)
        out.append(b)


async def echo_conn(reader, writer, hold):
    try:
        if hold:
            await asyncio.sleep(3600)
        while True:
            b = await reader.read(65536)
            if not b:
                break
            writer.write(b)
            await writer.drain()
        writer.close()
    except (ConnectionError, OSError):
        writer.close()


async def echo_main(addr, hold):
    s = listen(addr)
    srv = await asyncio.start_server(lambda r, w: echo_conn(r, w, hold), sock=s, backlog=4096, limit=1 << 20)
    async with srv:
        await srv.serve_forever()


async def one(target, maxlen, rnd, sem):
    fam, a = parse(target)
    payload = os.urandom(rnd.randrange(0, maxlen + 1))
    if fam == socket.AF_UNIX:
        r, w = await asyncio.open_unix_connection(a, limit=1 << 20)
    else:
        r, w = await asyncio.open_connection(*a, limit=1 << 20)
    async def send():
        w.write(payload)
        await w.drain()
        w.write_eof()
    t = asyncio.ensure_future(send())
    got = await r.read(-1)
    await t
    w.close()
    if hashlib.sha256(got).digest() != hashlib.sha256(payload).digest():
        raise RuntimeError("payload of %d bytes came back as %d bytes" % (len(payload), len(got)))


async def many_main(target, n, maxlen):
    rnd = random.Random(4)
    res = await asyncio.gather(*(one(target, maxlen, rnd, None) for _ in range(n)), return_exceptions=True)
    bad = [r for r in res if isinstance(r, BaseException)]
    if bad:
        print("FAIL %d: %r" % (len(bad), bad[0]), flush=True)
        return 1
    print("ok", n, flush=True)
    return 0


SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def inet(s):
    host, port = s.rsplit(":", 1)
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return fam, socket.inet_pton(fam, host), int(port)


def pp_build(src, dst, v1=False):
    fs, sa, sp = inet(src)
    fd, da, dp = inet(dst)
    if v1:
        return ("PROXY %s %s %s %d %d\r\n" % ("TCP4" if fs == socket.AF_INET else "TCP6",
                src.rsplit(":", 1)[0].strip("[]"), dst.rsplit(":", 1)[0].strip("[]"), sp, dp)).encode()
    body = sa + da + sp.to_bytes(2, "big") + dp.to_bytes(2, "big")
    return SIG + bytes([0x21, 0x11 if fs == socket.AF_INET else 0x21]) + len(body).to_bytes(2, "big") + body


def read_exact(c, n):
    b = b""
    while len(b) < n:
        k = c.recv(n - len(b))
        if not k:
            raise EOFError("short header")
        b += k
    return b


def fmt(fam, a, p):
    h = socket.inet_ntop(fam, a)
    return ("[%s]:%d" if fam == socket.AF_INET6 else "%s:%d") % (h, p)


def pp_parse(c):
    head = read_exact(c, 16)
    if head[:12] != SIG:
        line = head
        while not line.endswith(b"\r\n"):
            line += read_exact(c, 1)
        f = line.decode().split()
        return "version=1 src=%s:%s dst=%s:%s" % (f[2], f[4], f[3], f[5]) if f[1] != "UNKNOWN" else "version=1 UNKNOWN"
    n = int.from_bytes(head[14:16], "big")
    body = read_exact(c, n)
    cmd = "LOCAL" if head[12] & 0xf == 0 else "PROXY"
    fam = head[13] >> 4
    if fam == 1:
        r = "src=%s dst=%s" % (fmt(socket.AF_INET, body[0:4], int.from_bytes(body[8:10], "big")),
                               fmt(socket.AF_INET, body[4:8], int.from_bytes(body[10:12], "big")))
    elif fam == 2:
        r = "src=%s dst=%s" % (fmt(socket.AF_INET6, body[0:16], int.from_bytes(body[32:34], "big")),
                               fmt(socket.AF_INET6, body[16:32], int.from_bytes(body[34:36], "big")))
    elif fam == 3:
        r = "src=unix:%s dst=unix:%s" % (body[0:108].rstrip(b"\0").decode(), body[108:216].rstrip(b"\0").decode())
    else:
        r = "family=unspec"
    return "version=2 command=%s %s" % (cmd, r)


def main():
    a = sys.argv[1:]
    cmd = a[0]
    if cmd == "echo":
        asyncio.run(echo_main(a[1], "--hold" in a))
    elif cmd == "bulk-server":
        s = listen(a[1])
        c, _ = s.accept()
        bulk(c, int(a[2]), 2)
    elif cmd == "bulk-client":
        bulk(connect(a[1]), int(a[2]), 1)
    elif cmd == "halfclose-server":
        s = listen(a[1])
        c, _ = s.accept()
        data = recv_all(c)
        line = ("got %d %s\n" % (len(data), hashlib.sha256(data).hexdigest())).encode()
        c.sendall(line * 1000)
        c.close()
    elif cmd == "halfclose-client":
        c = connect(a[1])
        data = bytes(range(256)) * (int(a[2]) // 256)
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        reply = recv_all(c)
        lines = reply.decode(errors="replace").splitlines()
        print("sent %d %s" % (len(data), hashlib.sha256(data).hexdigest()))
        print("reply lines", len(lines), "distinct", len(set(lines)))
        print(lines[0] if lines else "nothing")
    elif cmd == "many":
        sys.exit(asyncio.run(many_main(a[1], int(a[2]), int(a[3]) if len(a) > 3 else 65536)))
    elif cmd == "idle":
        socks = [connect(a[1]) for _ in range(int(a[2]))]
        print("open", len(socks), flush=True)
        sys.stdin.read()
        for s in socks:
            s.close()
    elif cmd == "ppsend":
        c = connect(a[1])
        mode = a[5] if len(a) > 5 else ""
        hdr = bytes.fromhex(mode[4:]) if mode.startswith("raw:") else pp_build(a[2], a[3], mode == "v1")
        try:
            c.sendall(hdr + a[4].encode())
            c.shutdown(socket.SHUT_WR)
            sys.stdout.write(recv_all(c).decode())
        except ConnectionError as e:
            print("connection error:", e.strerror)
    elif cmd == "ppserve":
        s = listen(a[1])
        while True:
            c, _ = s.accept()
            try:
                h = pp_parse(c)
                data = recv_all(c)
                print(h, "payload=" + data.decode(errors="replace"), flush=True)
                c.sendall(b"ok\n")
            except (EOFError, ConnectionError, ValueError, IndexError) as e:
                print("invalid header:", e, flush=True)
            c.close()
    elif cmd == "sendfd":
        t = socket.create_connection((a[2], int(a[3])))
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        d.connect(a[1])
        socket.send_fds(d, [b"\0"], [t.fileno()])
        t.sendall(b"hello\n")
        t.shutdown(socket.SHUT_WR)
        sys.stdout.write(recv_all(t).decode())
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
