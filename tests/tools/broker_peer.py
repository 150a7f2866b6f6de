#!/usr/bin/env python3
"""Peers for tests/broker.bats. The broker's wire format is written here a
second time, from core/broker.h's description, so that the tests check the
C code against an independent reading of it.

Talking to the broker at PATH (a Unix stream socket):
  ask PATH HOST PORT [OP [TRANSPORT [TLVVERSION]]]
        one request (OP 1 tcp, 2 ping, 3 raw; TRANSPORT 1 stream, 2 dgram,
        0 unspec; family from HOST); prints "ok" with the socket's peer
        after waiting for its connect, "refused ERRNO-NAME", or "closed"
  raw PATH HEX  send these bytes; print the reply as above
  flood PATH HOST PORT N
        N requests one after another on N connections; every second one
        closes before reading the reply; prints "ok K refused R closed C"
  pile PATH HOST PORT N
        N requests back to back on one connection, written until the broker
        closes it; prints "sent-all" or "cut-off", then the reply as above

Programs run under the preload (their connect() goes through the broker):
  hold HOST PORT       connect, print "pid PID peer HOST:PORT", send "hi\\n",
                       wait for stdin EOF, close
  reconnect HOST PORT1 PORT2
                       connect to PORT1, disconnect with connect(AF_UNSPEC),
                       then connect to PORT2 through libc (the preload sees
                       it) and, if that is refused, through the raw system
                       call (it does not); prints what each step got
  asyncio URL N        N concurrent GETs with asyncio.open_connection;
                       prints "asyncio N/N status 200 bytes B"
  errno HOST PORT [nonblock]
                       one connect; prints "connected" or the errno name
"""
import asyncio
import ctypes
import errno
import os
import socket
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def ename(e):
    # python names 95 ENOTSUP; the C side (and the man pages) say EOPNOTSUPP
    return "EOPNOTSUPP" if e == errno.EOPNOTSUPP else errno.errorcode.get(e, str(e))


TLV_BROKER = 0xE0


def request(host, port, op=1, transport=1, tlv_version=1):
    if ":" in host:
        fam, a = 0x20, socket.inet_pton(socket.AF_INET6, host)
        block = bytes(16) + a + struct.pack("!HH", 0, port)
    else:
        fam, a = 0x10, socket.inet_aton(host)
        block = bytes(4) + a + struct.pack("!HH", 0, port)
    tlv = struct.pack("!BH", TLV_BROKER, 4) + bytes([tlv_version, op, 0, 0])
    body = block + tlv
    return SIG + bytes([0x21, fam | transport]) + struct.pack("!H", len(body)) + body


def reply(s):
    """(status, errno, fd) from the broker's reply, or None when it closed."""
    data, fds = b"", []
    while len(data) < 8:
        try:
            msg, anc, _flags, _addr = s.recvmsg(8 - len(data), socket.CMSG_SPACE(4 * 4))
        except ConnectionResetError:
            # closed with our bytes unread: the same refusal without a reply
            msg, anc = b"", []
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += list(struct.unpack("%di" % (len(cdata) // 4), cdata[: len(cdata) // 4 * 4]))
        if not msg:
            for fd in fds:
                os.close(fd)
            return None
        data += msg
    ver, status, length, err = struct.unpack("!BBHI", data)
    assert ver == 1 and length >= 8, data
    return status, err, (fds[0] if fds else -1)


def show(r):
    if r is None:
        return "closed"
    status, err, fd = r
    if status == 1:
        return "refused " + ename(err)
    s = socket.socket(fileno=fd)
    s.setblocking(True)
    try:
        if s.type == socket.SOCK_STREAM:
            # wait for the connect the broker started
            s.settimeout(5)
            import select
            select.select([], [s], [], 5)
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                return "ok, connect failed " + ename(e)
            return "ok peer %s:%d" % s.getpeername()[:2]
        return "ok type %d" % s.type
    finally:
        s.close()


def dial(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def main():
    a = sys.argv[1:]
    mode = a[0]
    if mode == "ask":
        s = dial(a[1])
        s.sendall(request(a[2], int(a[3]), *[int(x) for x in a[4:7]]))
        print(show(reply(s)), flush=True)
    elif mode == "raw":
        s = dial(a[1])
        s.sendall(bytes.fromhex(a[2]))
        s.shutdown(socket.SHUT_WR)
        print(show(reply(s)), flush=True)
    elif mode == "flood":
        n, counts = int(a[4]), {"ok": 0, "refused": 0, "closed": 0}
        req = request(a[2], int(a[3]))
        for i in range(n):
            s = dial(a[1])
            s.sendall(req)
            if i % 2:
                s.close()
                continue
            r = reply(s)
            s.close()
            if r is None:
                counts["closed"] += 1
            elif r[0] == 0:
                os.close(r[2])
                counts["ok"] += 1
            else:
                counts["refused"] += 1
        print("ok %(ok)d refused %(refused)d closed %(closed)d" % counts, flush=True)
    elif mode == "pile":
        s = dial(a[1])
        data = request(a[2], int(a[3])) * int(a[4])
        try:
            s.sendall(data)
            print("sent-all", flush=True)
        except (BrokenPipeError, ConnectionResetError):
            print("cut-off", flush=True)
        print(show(reply(s)), flush=True)
    elif mode == "hold":
        s = socket.create_connection((a[1], int(a[2])))
        print("pid %d peer %s:%d" % ((os.getpid(),) + s.getpeername()[:2]), flush=True)
        s.sendall(b"hi\n")
        sys.stdin.read()
        s.close()
    elif mode == "reconnect":
        host, p1, p2 = a[1], int(a[2]), int(a[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((host, p1))
        print("first: connected to %s:%d" % s.getpeername()[:2], flush=True)
        libc = ctypes.CDLL(None, use_errno=True)
        unspec = struct.pack("=H14x", socket.AF_UNSPEC)
        r = libc.connect(s.fileno(), unspec, len(unspec))
        print("AF_UNSPEC: %d" % r, flush=True)
        try:
            s.connect((host, p2))
            print("libc connect: connected to %s:%d" % s.getpeername()[:2], flush=True)
        except OSError as e:
            print("libc connect: " + ename(e.errno), flush=True)
            sin = struct.pack("!HH4s8x", socket.AF_INET, p2, socket.inet_aton(host))
            sin = struct.pack("=H", socket.AF_INET) + sin[2:]
            SYS_connect = 42  # x86_64
            r = libc.syscall(SYS_connect, s.fileno(), sin, len(sin))
            if r == 0:
                print("raw syscall: connected to %s:%d" % s.getpeername()[:2], flush=True)
                s.sendall(b"escaped\n")
            else:
                print("raw syscall: " + ename(ctypes.get_errno()), flush=True)
        s.close()
    elif mode == "asyncio":
        url, n = a[1], int(a[2])
        hostport, path = url.split("//", 1)[1].split("/", 1)
        host, port = hostport.rsplit(":", 1)

        async def one():
            r, w = await asyncio.open_connection(host, int(port))
            w.write(("GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, hostport)).encode())
            data = await r.read()
            w.close()
            head, body = data.split(b"\r\n\r\n", 1)
            return head.split()[1].decode(), len(body)

        async def run():
            return await asyncio.gather(*[one() for _ in range(n)])

        res = asyncio.run(run())
        st = {r[0] for r in res}
        print("asyncio %d/%d status %s bytes %s" % (len(res), n, ",".join(sorted(st)),
                                                    ",".join(sorted({str(r[1]) for r in res}))), flush=True)
    elif mode == "errno":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if len(a) > 3:
            s.setblocking(False)
        try:
            s.connect((a[1], int(a[2])))
            print("connected", flush=True)
        except BlockingIOError as e:
            import select
            select.select([], [s], [], 5)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            print("%s then %s" % (ename(e.errno), errno.errorcode.get(err, "connected") if err else "connected"),
                  flush=True)
        except OSError as e:
            print(ename(e.errno), flush=True)
    else:
        raise SystemExit("unknown mode " + mode)


main()
