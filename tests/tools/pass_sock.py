"""Pass one connected TCP socket (the accepted end of a loopback connection)
to a receiver's Unix datagram socket with SCM_RIGHTS, without a metadata
record; print the client end's port. For the receivers' sender checks.
Usage: pass_sock.py PATH"""
import socket
import sys

l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
u.connect(sys.argv[1])
socket.send_fds(u, [b"\0"], [a.fileno()])
print(c.getsockname()[1])
