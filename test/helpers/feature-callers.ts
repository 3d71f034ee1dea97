/**
 * Small programs that change features the ways user space does, for the attribution tests: each
 * is a distinct actor with its own comm.
 */

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
