#!/usr/bin/env python3
"""Test peer for tests/ctlfile.bats: a Firecracker-style vsock multiplexer.

Listens on a Unix stream socket. Per connection it reads one line
"CONNECT <port>\\n", logs "CONNECT <port>" to --log, and then, by --mode:
  ok       answers "OK <host port>\\n", then serves like a guest: an HTTP
           request gets a small page naming the port, anything else is
           echoed back until EOF
  refuse   closes the connection (what Firecracker does when no guest
           listens on the port)
  garbage  answers "HELLO THERE\\n" and closes
  close    closes at once, before reading anything
--delay MS waits that long before answering. Writes "ready" to --ready.
"""
import argparse, os, socket, sys, threading, time


def serve(conn, args, seq):
    try:
        if args.mode == "close":
            return
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            b = conn.recv(1)
            if not b:
                return
            line += b
        with open(args.log, "a") as f:
            f.write(line.decode(errors="replace").strip() + "\n")
        if args.delay:
            time.sleep(args.delay / 1000.0)
        if args.mode == "refuse":
            return
        if args.mode == "garbage":
            conn.sendall(b"HELLO THERE\n")
            return
        port = line.split()[1].decode() if len(line.split()) > 1 else "?"
        conn.sendall(b"OK %d\n" % (1073741824 + seq))
        first = conn.recv(65536)
        if first.startswith(b"GET "):
            while b"\r\n\r\n" not in first:
                more = conn.recv(65536)
                if not more:
                    break
                first += more
            body = ("guest port %s\n" % port).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            return
        data = first
        while data:
            conn.sendall(data)
            data = conn.recv(65536)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--mode", default="ok", choices=["ok", "refuse", "garbage", "close"])
    ap.add_argument("--delay", type=int, default=0)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(args.path)
    s.listen(64)
    with open(args.ready, "w") as f:
        f.write("ready\n")
    seq = 0
    while True:
        conn, _ = s.accept()
        seq += 1
        threading.Thread(target=serve, args=(conn, args, seq), daemon=True).start()


if __name__ == "__main__":
    main()
