#!/usr/bin/env python3
"""Stands in for systemd's notify socket: binds a datagram socket (a path, or @abstract) with
SO_PASSCRED and prints one JSON line per datagram: {"pid": sender pid, "fields": {...}}.
Node has no datagram Unix sockets, hence Python for this test helper."""
import json, socket, struct, sys

address = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind("\0" + address[1:] if address.startswith("@") else address)
print(json.dumps({"listening": address}), flush=True)
while True:
    data, ancillary, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, _uid, _gid = struct.unpack("iII", payload[:12])
    fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
    print(json.dumps({"pid": pid, "fields": fields}), flush=True)
