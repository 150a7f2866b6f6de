#!/usr/bin/env python3
"""Write u-relay-tproxy files with struct, from the published layout (not
from sockgate's reader), for tests/urelay.bats.

  urt_file.py rules OUT ENTRY...   ENTRY = PREFIX|TYPE|DATA
      DATA: a path (types 0-2), ADDR[,DEV] (type 3),
            V,F,IS,ES,IM,EM,IO,EO;PATH (type 4)
      the header: magic 0xf200a01f, count, length in 4096-byte units, 0, 0;
      entries: 16-byte prefix, length, type, data length, data offset, 8 zero
  urt_file.py idx OUT INDEX=NAME...  an index file: magic 0xf200a01e, count,
      sorted (index, offset/4) pairs, NUL-padded names
"""
import ipaddress, struct, sys


def rules(out, entries):
    ents, data = [], b""
    for e in entries:
        pfx, typ, val = e.split("|", 2)
        net = ipaddress.IPv6Network(pfx)
        typ = int(typ)
        if typ == 3:
            addr, _, dev = val.partition(",")
            d = ipaddress.IPv6Address(addr).packed + dev.encode().ljust(16, b"\0")[:16] + b"\0" * 20
        elif typ == 4:
            nums, _, path = val.partition(";")
            d = struct.pack(">BBBBIIIIIII", *[int(x, 0) for x in nums.split(",")]) + path.encode()
        else:
            d = val.encode()
        d += b"\0" * (-len(d) % 8)
        ents.append(net.network_address.packed + struct.pack(">BBHI8x", net.prefixlen, typ, len(d), len(data)))
        data += d
    body = b"".join(ents) + data
    units = (16 + len(body) + 4095) // 4096
    blob = struct.pack(">IHHII", 0xF200A01F, len(ents), units, 0, 0) + body
    open(out, "wb").write(blob + b"\0" * (units * 4096 - len(blob)))


def idx(out, items):
    pairs, names = [], b""
    for it in items:
        n, _, name = it.partition("=")
        pairs.append((int(n), len(names) // 4))
        nb = name.encode() + b"\0"
        names += nb + b"\0" * (-len(nb) % 4)
    pairs.sort()
    blob = struct.pack(">II", 0xF200A01E, len(pairs)) + b"".join(struct.pack(">II", a, b) for a, b in pairs)
    open(out, "wb").write(blob + names)


if __name__ == "__main__":
    {"rules": rules, "idx": idx}[sys.argv[1]](sys.argv[2], sys.argv[3:])
