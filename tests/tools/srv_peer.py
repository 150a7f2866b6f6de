#!/usr/bin/env python3
"""Test peers for the server/inetd/send-fd suites.

  probe HOST PORT            connect, shut down writing, print what happened:
                             'data:<text>', 'eof' or 'reset' (and the local port)
  burst N HOST PORT [MSG]    N connections at once; each sends MSG (default an HTTP/1.0 GET) and reads to
                             EOF; prints 'ok=K eof=E reset=R error=X'
  hold N HOST PORT GO        open N connections, print 'held N', keep them open
                             until the file GO exists, then print what each saw
  stuck PATH                 bind a datagram receiver at PATH and never read
                             (until killed)
  recv PATH                  bind a datagram receiver, take one socket and its
                             record; print the record's fields; answer on it
  seqrecv PATH N             listen with SOCK_SEQPACKET at PATH, take one
                             connection and N sockets over it; answer on each
  pair -- CMD...             run CMD with one end of a datagram socket pair
                             (its number replaces {fd} in CMD), receive one socket on the other, as 'recv'
"""
import array
import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time


def say(*words):
    """One line in one write: the program under test may share this file
    (and with PYTHONUNBUFFERED print() writes each word on its own)."""
    os.write(1, (" ".join(str(w) for w in words) + "\n").encode())


def fam(b):
    return {0: None, 2: socket.AF_INET, 10: socket.AF_INET6}[b]


def decode(rec):
    if len(rec) < 43 or rec[0] != 1:
        return None
    ln = struct.unpack(">H", rec[2:4])[0]
    lf, rf = fam(rec[4]), fam(rec[5])
    lp, rp = struct.unpack(">HH", rec[6:10])
    la = socket.inet_ntop(lf, rec[10:14] if lf == socket.AF_INET else rec[10:26]) if lf else "-"
    ra = socket.inet_ntop(rf, rec[26:30] if rf == socket.AF_INET else rec[26:42]) if rf else "-"
    n = rec[42]
    name = rec[43:43 + n].decode()
    return "len=%d local=%s:%d remote=%s:%d rule=%s" % (ln, la, lp, ra, rp, name or "-")


def recv_one(s):
    fds = array.array("i")
    msg, anc, flags, _ = s.recvmsg(1024, socket.CMSG_SPACE(16 * 4))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % 4])
    say("record", decode(msg), "fds", len(fds))
    c = socket.socket(fileno=fds[0])
    say("peer", "%s:%d" % c.getpeername()[:2])
    c.sendall(b"from-python\n")
    c.close()


def seqrecv(path, n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.listen()
    say("listening")
    c, _ = s.accept()
    for _ in range(n):
        msg, fds, _, _ = socket.recv_fds(c, 1024, 4)
        t = socket.socket(fileno=fds[0])
        t.sendall(("from-seqpacket %s\n" % decode(msg)).encode())
        t.close()


def probe(host, port):
    s = socket.create_connection((host, int(port)))
    lp = s.getsockname()[1]
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    try:
        d = s.recv(4096)
        say(("data:" + d.decode().strip()) if d else "eof", lp)
    except ConnectionResetError:
        say("reset", lp)


async def one(host, port, msg, res):
    try:
        r, w = await asyncio.open_connection(host, port)
        if msg:
            w.write(msg.encode())
            await w.drain()
        d = await r.read()
        res["ok" if d else "eof"] += 1
        w.close()
    except ConnectionResetError:
        res["reset"] += 1
    except OSError:
        res["error"] += 1


async def burst(n, host, port, msg):
    res = {"ok": 0, "eof": 0, "reset": 0, "error": 0}
    await asyncio.gather(*(one(host, port, msg, res) for _ in range(n)))
    say(" ".join("%s=%d" % kv for kv in res.items()))


def hold(n, host, port, go):
    socks = [socket.create_connection((host, port)) for _ in range(n)]
    say("held", n)
    while not os.path.exists(go):
        time.sleep(0.05)
    res = {"data": 0, "eof": 0, "reset": 0}
    for s in socks:
        s.settimeout(5)
        try:
            res["data" if s.recv(100) else "eof"] += 1
        except (ConnectionResetError, socket.timeout):
            res["reset"] += 1
    say(" ".join("%s=%d" % kv for kv in res.items()))


def main():
    a = sys.argv[1:]
    if a[0] == "probe":
        probe(a[1], a[2])
    elif a[0] == "burst":
        asyncio.run(burst(int(a[1]), a[2], int(a[3]), a[4] if len(a) > 4 else "GET / HTTP/1.0\r\n\r\n"))
    elif a[0] == "hold":
        hold(int(a[1]), a[2], int(a[3]), a[4])
    elif a[0] == "stuck":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(a[1])
        say("stuck")
        signal.pause()
    elif a[0] == "recv":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(a[1])
        recv_one(s)
    elif a[0] == "seqrecv":
        seqrecv(a[1], int(a[2]))
    elif a[0] == "pair":
        x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        cmd = [str(y.fileno()) if w == "{fd}" else w for w in a[2:]]
        p = subprocess.Popen(cmd, pass_fds=(y.fileno(),))
        y.close()
        say("pid", p.pid)
        recv_one(x)
        p.terminate()
        p.wait()


main()
