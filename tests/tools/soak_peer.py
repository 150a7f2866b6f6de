#!/usr/bin/env python3
"""Clients for tests/soak.sh, run for SECONDS against TARGETS (host:port):

  soak_peer.py SECONDS TARGET...

Threads, each in a loop over the targets in turn:
  check  (4)  random payload (0..256 KiB), half-close, the echo read back
              and compared by SHA-256
  reset  (1)  connect, send a little, close with SO_LINGER 0 (a reset)
  slow   (1)  1 MiB sent, read back 4 KiB at a time at about 256 KiB/s,
              then compared
Every 10 s and at the end it prints one line:
  "check ok=N bad=N err=N slow ok=N bad=N err=N resets=N"
bad: a completed transfer whose bytes differ (lost or altered); err: a
connection that failed (refused, reset), which the relays may do under load
and is counted, not judged. Exits 1 when any transfer was bad.
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

secs = float(sys.argv[1])
targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in sys.argv[2:]]
end = time.monotonic() + secs
lock = threading.Lock()
st = {k: 0 for k in ("ok", "bad", "err", "sok", "sbad", "serr", "resets")}


def count(k):
    with lock:
        st[k] += 1


def echo_once(addr, payload, pace=None):
    s = socket.create_connection(addr, timeout=30)
    try:
        def send():
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=send)
        t.start()
        h = hashlib.sha256()
        n = 0
        while True:
            b = s.recv(4096 if pace else 65536)
            if not b:
                break
            h.update(b)
            n += len(b)
            if pace:
                time.sleep(len(b) / pace)
        t.join()
        return h.digest() == hashlib.sha256(payload).digest() and n == len(payload)
    finally:
        s.close()


def check_loop(i):
    k = i
    while time.monotonic() < end:
        addr = targets[k % len(targets)]
        k += 1
        try:
            count("ok" if echo_once(addr, os.urandom(int.from_bytes(os.urandom(3), "big") % (256 << 10))) else "bad")
        except OSError:
            count("err")


def slow_loop():
    k = 0
    while time.monotonic() < end:
        addr = targets[k % len(targets)]
        k += 1
        try:
            count("sok" if echo_once(addr, os.urandom(1 << 20), pace=256 << 10) else "sbad")
        except OSError:
            count("serr")


def reset_loop():
    k = 0
    while time.monotonic() < end:
        addr = targets[k % len(targets)]
        k += 1
        try:
            s = socket.create_connection(addr, timeout=10)
            s.sendall(os.urandom(1000 + k % 50000))
            time.sleep((k % 10) / 1000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            count("resets")
        except OSError:
            count("err")
        time.sleep(0.01)


def line():
    with lock:
        return "check ok=%(ok)d bad=%(bad)d err=%(err)d slow ok=%(sok)d bad=%(sbad)d err=%(serr)d resets=%(resets)d" % st


threads = [threading.Thread(target=check_loop, args=(i,)) for i in range(4)]
threads += [threading.Thread(target=slow_loop), threading.Thread(target=reset_loop)]
for t in threads:
    t.daemon = True
    t.start()
while time.monotonic() < end:
    time.sleep(min(10, max(0, end - time.monotonic())))
    print(line(), flush=True)
for t in threads:
    t.join(60)
print(line(), flush=True)
sys.exit(1 if st["bad"] or st["sbad"] else 0)
