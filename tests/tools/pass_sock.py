"""Pass one socket to a receiver's Unix socket with SCM_RIGHTS, without a
metadata record: a datagram to a datagram receiver, else over a connection
of its own (a stream receiver). The socket is, by KIND:
  tcp      the accepted end of a loopback TCP connection (the default);
           prints the client end's port
  listener a TCP socket listening on a loopback port; prints that port
  unconnected  a TCP socket neither listening nor connected; prints "unconnected"
  udp      a UDP socket bound to a loopback port; prints that port
  unix     one end of a Unix stream socket pair; prints "unix"
  netlink  a NETLINK_ROUTE socket; prints "netlink"
For the receivers' sender and socket checks.
Usage: pass_sock.py PATH [KIND]"""
import errno
import socket
import sys

kind = sys.argv[2] if len(sys.argv) > 2 else "tcp"
if kind == "tcp":
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen()
    c = socket.create_connection(l.getsockname())
    a, _ = l.accept()
    shown = c.getsockname()[1]
elif kind == "listener":
    a = socket.socket()
    a.bind(("127.0.0.1", 0))
    a.listen()
    shown = a.getsockname()[1]
elif kind == "unconnected":
    a = socket.socket()
    shown = "unconnected"
elif kind == "udp":
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    shown = a.getsockname()[1]
elif kind == "unix":
    a, c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    shown = "unix"
elif kind == "netlink":
    a = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    shown = "netlink"
else:
    sys.exit("pass_sock.py: unknown kind " + kind)
for t in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
    u = socket.socket(socket.AF_UNIX, t)
    try:
        u.connect(sys.argv[1])
        break
    except OSError as e:
        if e.errno != errno.EPROTOTYPE:
            raise
socket.send_fds(u, [b"\0"], [a.fileno()])
print(shown)
