"""Pass one connected TCP socket (the accepted end of a loopback connection)
to a receiver's Unix socket with SCM_RIGHTS, without a metadata record: a
datagram to a datagram receiver, else over a connection of its own (a
stream receiver); print the client end's port. For the receivers' sender
checks.
Usage: pass_sock.py PATH"""
import errno
import socket
import sys

l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
for t in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
    u = socket.socket(socket.AF_UNIX, t)
    try:
        u.connect(sys.argv[1])
        break
    except OSError as e:
        if e.errno != errno.EPROTOTYPE:
            raise
socket.send_fds(u, [b"\0"], [a.fileno()])
print(c.getsockname()[1])
