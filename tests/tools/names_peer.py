#!/usr/bin/env python3
"""Peers for tests/names.bats.

gai NAME                 getaddrinfo(NAME) for TCP: "ok FAMILY ADDR" lines or "error EAI_x"
gaimatrix NAME...        getaddrinfo with every hint combination, one line each
legacy NAME ADDR         gethostbyname, gethostbyname_ex (gethostbyname_r), getnameinfo,
                         gethostbyaddr (and _r)
lie SOCK NAME ADDR PORT  a PROXY v2 header whose AUTHORITY names NAME for ADDR:PORT
badserver PATH MODE      a resolver socket that is silent, answers garbage, or 64 KiB
flood PATH N             N lookups on one connection, never reading the answers
dnstcp PATH NAME...      DNS over TCP: every query at once on one connection, then SHUT_WR; answers as they come
dnsbad PATH              garbage and a cut length prefix on DNS over TCP; another client still answered
dnsidle PATH             DNS over TCP: one answer, then how long until the relay closes the idle connection
dnsbadopt PATH           malformed OPT records on the DNS datagram socket: the rcodes that come back
"""
import ctypes
import ctypes.util
import socket
import struct
import sys
import threading
import time


def eai_name(code):
    for k in dir(socket):
        if k.startswith("EAI_") and getattr(socket, k) == code:
            return k
    return str(code)


def gai(name, timed=False):
    t = time.monotonic()
    try:
        res = socket.getaddrinfo(name.encode(), None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as e:
        took = time.monotonic() - t
        print("error", eai_name(e.errno) + ((" within 2s" if took < 2 else f" after {took:.3f}s") if timed else ""))
        return
    for fam, _, _, _, sa in res:
        print("ok", fam.name, sa[0])


FAMS = [("UNSPEC", socket.AF_UNSPEC), ("INET", socket.AF_INET), ("INET6", socket.AF_INET6)]
TYPES = [("any", 0), ("stream", socket.SOCK_STREAM), ("dgram", socket.SOCK_DGRAM)]
FLAGS = [("0", 0), ("CANONNAME", socket.AI_CANONNAME), ("V4MAPPED", socket.AI_V4MAPPED),
         ("V4MAPPED|ALL", socket.AI_V4MAPPED | socket.AI_ALL),
         ("NUMERICSERV", socket.AI_NUMERICSERV), ("PASSIVE", socket.AI_PASSIVE)]


def gaimatrix(names):
    for name in names:
        for fn, fam in FAMS:
            for tn, typ in TYPES:
                for gn, fl in FLAGS:
                    for serv in (None, "80", "http"):
                        key = f"{name} {fn} {tn} {gn} {serv}:"
                        try:
                            res = socket.getaddrinfo(name, serv, fam, typ, 0, fl)
                        except socket.gaierror as e:
                            print(key, "error", eai_name(e.errno))
                            continue
                        out = []
                        for f, t, p, canon, sa in res:
                            out.append(f"{f.name} {t.name} {p} '{canon}' {sa[0]} {sa[1]}")
                        print(key, " | ".join(out))


class HostEnt(ctypes.Structure):
    _fields_ = [("h_name", ctypes.c_char_p), ("h_aliases", ctypes.POINTER(ctypes.c_char_p)),
                ("h_addrtype", ctypes.c_int), ("h_length", ctypes.c_int),
                ("h_addr_list", ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)))]


def legacy(name, addr):
    libc = ctypes.CDLL(None)
    libc.gethostbyname.restype = ctypes.POINTER(HostEnt)
    libc.gethostbyname.argtypes = [ctypes.c_char_p]
    he = libc.gethostbyname(name.encode())
    if not he:
        print("gethostbyname failed")
    else:
        a = bytes(he.contents.h_addr_list[0][:4])
        print("gethostbyname", he.contents.h_name.decode(), socket.inet_ntoa(a))
    try:
        hn, _, addrs = socket.gethostbyname_ex(name)
        print("gethostbyname_ex", hn, ",".join(addrs))
    except OSError as e:
        print("gethostbyname_ex failed", e)
    print("getnameinfo", socket.getnameinfo((addr, 80), socket.NI_NAMEREQD)[0])
    print("getnameinfo-numeric-fallback", socket.getnameinfo(("127.0.0.77", 80), 0)[0])
    # python's gethostbyaddr is libc's gethostbyaddr_r
    for a in (addr, "127.0.0.77"):
        try:
            hn, aliases, addrs = socket.gethostbyaddr(a)
            print("gethostbyaddr_r", hn, aliases, ",".join(addrs))
        except socket.herror as e:
            print("gethostbyaddr_r", a, "herror", e.errno)
    libc.gethostbyaddr.restype = ctypes.POINTER(HostEnt)
    libc.gethostbyaddr.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_int]
    he = libc.gethostbyaddr(socket.inet_aton(addr), 4, socket.AF_INET)
    if not he:
        print("gethostbyaddr failed")
    else:
        a = bytes(he.contents.h_addr_list[0][:4])
        print("gethostbyaddr", he.contents.h_name.decode(), socket.inet_ntoa(a))


def lie(path, name, addr, port):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    tlv = bytes([0x02]) + struct.pack(">H", len(name)) + name.encode()
    body = socket.inet_aton("127.0.0.1") + socket.inet_aton(addr) + struct.pack(">HH", 40000, int(port)) + tlv
    hdr = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body
    s.sendall(hdr + b"GET / HTTP/1.0\r\n\r\n")
    got = b""
    while True:
        try:
            d = s.recv(4096)
        except ConnectionResetError:
            break
        if not d:
            break
        got += d
    print("closed" if not got else f"got {len(got)} bytes")


def badserver(path, mode):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(16)
    keep = []
    while True:
        c, _ = ls.accept()
        c.recv(4096)
        if mode == "garbage":
            c.sendall(b"HTTP/1.0 200 OK\r\n\r\nnot a resolver")
        elif mode == "big":
            c.sendall(b"SGA\x01\xff\xff" + bytes(65530))
        keep.append(c)


def gaimany(name, n):
    worst = 0
    for _ in range(int(n)):
        t = time.monotonic()
        res = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
        worst = max(worst, time.monotonic() - t)
    print("ok", res[0][4][0], "slowest under 2s" if worst < 2 else f"slowest {worst:.3f}s")


def flood(path, n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)

    def drain():
        while s.recv(65536):
            pass
    threading.Thread(target=drain, daemon=True).start()
    name = b"svc.test"
    print("flooding", flush=True)
    batch = b"".join(b"SGQ\x01" + struct.pack(">HBBIHH", 16 + len(name), 1, 0, i, 1, len(name)) + name
                     for i in range(1000))
    for _ in range(int(n) // 1000):
        s.sendall(batch)
    print("sent all", flush=True)


def nat64srv(port):
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("::", int(port)))
    t.listen(8)
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    u.bind(("::", int(port)))
    print("ready", flush=True)

    def udp():
        while True:
            d, frm = u.recvfrom(2048)
            u.sendto(b"peer " + frm[0].encode() + b" got " + d, frm)
    threading.Thread(target=udp, daemon=True).start()
    while True:
        c, frm = t.accept()
        c.sendall(b"peer " + frm[0].encode() + b"\n")
        c.close()


def nat64cli(port):
    port = int(port)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", port))
    print("tcp getpeername", s.getpeername()[0], "family", s.family.name)
    print("tcp", s.recv(100).decode().strip())
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(3)
    u.sendto(b"hi", ("127.0.0.1", port))
    d, frm = u.recvfrom(100)
    print("udp sendto", d.decode(), "from", frm[0], frm[1] == port)
    v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v.settimeout(3)
    v.connect(("127.0.0.1", port))
    v.send(b"yo")
    print("udp connect", v.recv(100).decode(), "getpeername", v.getpeername()[0])


def hdrsrv(path):
    """Print the AUTHORITY TLV of each PROXY v2 header that arrives on PATH."""
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(8)
    print("ready", flush=True)
    while True:
        c, _ = ls.accept()
        h = b""
        while len(h) < 16:
            h += c.recv(16 - len(h))
        n = struct.unpack(">H", h[14:16])[0]
        body = b""
        while len(body) < n:
            body += c.recv(n - len(body))
        off = 12 if h[13] >> 4 == 1 else 36 if h[13] >> 4 == 2 else 0
        auth = "none"
        while off + 3 <= len(body):
            t, ln = body[off], struct.unpack(">H", body[off + 1:off + 3])[0]
            if t == 0x02:
                auth = body[off + 3:off + 3 + ln].decode()
            off += 3 + ln
        print("authority", auth, flush=True)
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                break
            req += d
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        c.close()


def garbage(res, dns):
    """A malformed request on the resolver socket, junk on the DNS socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(res)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    s.settimeout(5)
    print("resolver socket", "closed" if s.recv(100) == b"" else "answered")
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(dns + ".client")
    d.settimeout(5)
    # a query with a compression loop: FORMERR, the header echoed
    d.sendto(bytes([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]), dns)
    r = d.recv(600)
    print("dns id", hex(r[0] << 8 | r[1]), "rcode", r[3] & 15, "qr", r[2] >> 7)
    # an MX question: not implemented
    q = bytes([0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3]) + b"svc" + bytes([4]) + b"test" + bytes([0, 0, 15, 0, 1])
    d.sendto(q, dns)
    r = d.recv(600)
    print("dns id", hex(r[0] << 8 | r[1]), "rcode", r[3] & 15, "qr", r[2] >> 7)


def dnsq(qid, name, qtype=1, edns=0):
    """A DNS query (RD set), with an OPT record advertising edns bytes when edns is not 0."""
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    if edns:
        q += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return q


def skipname(r, o):
    while True:
        n = r[o]
        if n & 0xC0 == 0xC0:
            return o + 2
        if n == 0:
            return o + 1
        o += n + 1


def dnsa(r):
    """A reply in one line: id, rcode, TC, answer count, the A addresses."""
    qid, fl, qd, an = struct.unpack(">HHHH", r[:8])
    o = 12
    for _ in range(qd):
        o = skipname(r, o) + 4
    addrs = []
    for _ in range(an):
        o = skipname(r, o)
        t, _, _, rl = struct.unpack(">HHIH", r[o:o + 10])
        o += 10
        if t == 1:
            addrs.append(socket.inet_ntoa(r[o:o + 4]))
        o += rl
    return f"id {qid} rcode {fl & 15} tc {fl >> 9 & 1} an {an} " + ",".join(addrs)


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError(f"end of stream after {len(b)} of {n} bytes")
        b += d
    return b


def tcp_framed(q):
    return struct.pack(">H", len(q)) + q


def tcp_answer(s):
    return recv_exact(s, struct.unpack(">H", recv_exact(s, 2))[0])


def unix_stream(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(5)
    return s


def dnstcp(path, names):
    s = unix_stream(path)
    s.sendall(b"".join(tcp_framed(dnsq(i, n)) for i, n in enumerate(names, 1)))
    s.shutdown(socket.SHUT_WR)
    for _ in names:
        print(dnsa(tcp_answer(s)))
    print("then", "closed" if s.recv(1) == b"" else "more")


def dnsbad(path):
    c = unix_stream(path)
    g = unix_stream(path)
    g.sendall(b"GET / HTTP/1.0\r\n\r\n")
    print("garbage:", "closed" if g.recv(100) == b"" else "answered")
    t = unix_stream(path)
    t.sendall(b"\0")
    t.shutdown(socket.SHUT_WR)
    print("cut length prefix:", "closed" if t.recv(100) == b"" else "answered")
    c.sendall(tcp_framed(dnsq(7, "svc.test")))
    print("other client:", dnsa(tcp_answer(c)))


def dnsidle(path):
    s = unix_stream(path)
    s.sendall(tcp_framed(dnsq(1, "svc.test")))
    print(dnsa(tcp_answer(s)))
    t = time.monotonic()
    s.settimeout(10)
    r = s.recv(1)
    took = time.monotonic() - t
    print("closed" if r == b"" else "data", "within 0.5-3s" if 0.5 <= took < 3 else f"after {took:.3f}s")


def dnsbadopt(path):
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(path + ".client")
    d.settimeout(5)
    q = dnsq(0x1111, "svc.test", edns=1232)
    bad = {
        "two OPT records": q[:11] + b"\2" + q[12:] + q[-11:],
        "an OPT option past its data": q[:-2] + b"\0\4" + struct.pack(">HH", 10, 1),
        "an OPT owned by a name": q[:-11] + b"\1x\0" + q[-10:],
    }
    for what, m in bad.items():
        d.sendto(m, path)
        r = d.recv(4096)
        print(what + ":", "id", hex(r[0] << 8 | r[1]), "rcode", r[3] & 15, "qr", r[2] >> 7)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"gai": lambda: gai(*args), "gait": lambda: gai(args[0], True), "gaimatrix": lambda: gaimatrix(args), "legacy": lambda: legacy(*args),
     "lie": lambda: lie(*args), "badserver": lambda: badserver(*args),
     "flood": lambda: flood(*args), "gaimany": lambda: gaimany(*args),
     "nat64srv": lambda: nat64srv(*args), "hdrsrv": lambda: hdrsrv(*args), "garbage": lambda: garbage(*args), "nat64cli": lambda: nat64cli(*args),
     "dnstcp": lambda: dnstcp(args[0], args[1:]), "dnsbad": lambda: dnsbad(*args), "dnsidle": lambda: dnsidle(*args),
     "dnsbadopt": lambda: dnsbadopt(*args)}[cmd]()


if __name__ == "__main__":
    main()
