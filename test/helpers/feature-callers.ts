/**
 * Small programs that change features the ways user space does, for the attribution tests: each
 * is a distinct actor with its own comm.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A caller of SIOCETHTOOL ETHTOOL_SGRO: `caller IFNAME on|off [COUNT]` (COUNT: a storm, errors ignored). */
export const IOCTL_CALLER = String.raw`
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct ethtool_value value = {ETHTOOL_SGRO, strcmp(argv[2], "on") == 0};
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
  ifr.ifr_data = (void *)&value;
  long count = argc > 3 ? atol(argv[3]) : 1;
  int failed = 0;
  for (long i = 0; i < count; i++) failed = ioctl(fd, SIOCETHTOOL, &ifr) < 0;
  return count == 1 ? failed : 0;
}
`;

/**
 * ETHTOOL_MSG_FEATURES_SET sent with sendmsg() on a raw generic-netlink socket:
 * `features-set.py IFINDEX on|off [write|send]` (write(), or send(): sendto() with no address).
 */
export const SENDMSG_CALLER = String.raw`
import os, socket, struct, sys
NESTED = 0x8000
def attr(kind, payload):
    data = struct.pack('=HH', 4 + len(payload), kind) + payload
    return data + b'\0' * ((4 - len(data) % 4) % 4)
def message(family, cmd, body, seq):
    return struct.pack('=IHHII', 16 + 4 + len(body), family, 0x5, seq, 0) + struct.pack('=BBH', cmd, 1, 0) + body
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)  # NETLINK_GENERIC
s.bind((0, 0))
s.sendmsg([message(0x10, 3, attr(2, b'ethtool\0'), 1)])  # CTRL_CMD_GETFAMILY
reply = s.recv(8192)
at, family = 20, None
while at + 4 <= len(reply):
    length, kind = struct.unpack_from('=HH', reply, at)
    if kind == 1: family = struct.unpack_from('=H', reply, at + 4)[0]
    at += (length + 3) & ~3
ifindex, on = int(sys.argv[1]), sys.argv[2] == 'on'
bit = attr(2, b'rx-gro\0') + (attr(3, b'') if on else b'')
wanted = attr(3 | NESTED, attr(1 | NESTED, bit))
body = attr(1 | NESTED, attr(1, struct.pack('=I', ifindex))) + attr(3 | NESTED, wanted)
request = message(family, 12, body, 2)
if len(sys.argv) > 3 and sys.argv[3] == 'write':
    os.write(s.fileno(), request)
elif len(sys.argv) > 3 and sys.argv[3] == 'send':
    s.send(request)  # sendto() without an address
else:
    s.sendmsg([request])
reply = s.recv(8192)
kind = struct.unpack_from('=H', reply, 4)[0]
sys.exit(1 if kind == 2 and struct.unpack_from('=i', reply, 16)[0] != 0 else 0)  # NLMSG_ERROR
`;

/**
 * A copy of ethtool in `dir` whose file name (its comm) is unique to the test: `prefix` and four
 * random hex digits, short enough for the 15-character comm.
 */
export function renamedEthtool(dir: string, prefix: string): string {
  const copy = path.join(dir, `${prefix}${randomBytes(2).toString('hex')}`);
  fs.copyFileSync(execFileSync('sh', ['-c', 'command -v ethtool'], { encoding: 'utf8' }).trim(), copy);
  fs.chmodSync(copy, 0o755);
  return copy;
}
