/*
 * The ethtool-netlink floor: the same job as floor.c (FEATURE off on every interface named
 * PREFIX*) the fastest way the kernel allows, from C. Generic netlink family "ethtool" resolved
 * before the clock; then, addressed by ifindex with compact bitsets and no ACKs, every
 * ETHTOOL_MSG_FEATURES_GET pipelined (WINDOW requests per sendto, replies read with recvmmsg),
 * then a pipelined ETHTOOL_MSG_FEATURES_SET for each interface that has the feature on, whose
 * reply is the verification (its WANTED mask lists the requested bits not granted). No
 * GDRVINFO: the netlink family has no driver query, and the feature job does not need one.
 *
 *   floor_nl run PREFIX FEATURE     timed pass; output as floor.c's: {count, changed, failed, totalNs}
 *
 * Compiled on the fly by `npm run bench` as floor.c is; run inside the benchmark's namespace.
 */
#define _GNU_SOURCE
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ethtool_lite.h"

#define WINDOW 256
#define SLOTS 64
#define SLOT_BYTES 8192
#define REQUEST_BYTES 128

static int nl_fd = -1;
static uint16_t family = 0;
static uint32_t seq = 0;
static uint8_t send_buffer[WINDOW * REQUEST_BYTES];
static uint8_t receive_buffer[SLOTS * SLOT_BYTES];

static size_t put_attr(uint8_t *at, uint16_t type, const void *data, size_t length) {
  struct nlattr *attr = (struct nlattr *)at;
  attr->nla_type = type;
  attr->nla_len = (uint16_t)(NLA_HDRLEN + length);
  if (length) memcpy(at + NLA_HDRLEN, data, length);
  size_t padded = NLA_ALIGN(NLA_HDRLEN + length);
  memset(at + NLA_HDRLEN + length, 0, padded - NLA_HDRLEN - length);
  return padded;
}

static size_t put_u32(uint8_t *at, uint16_t type, uint32_t value) { return put_attr(at, type, &value, sizeof value); }

/* One request at `at`: GET (set < 0) or SET of `bit` to `set`. Returns its length. */
static size_t request(uint8_t *at, uint8_t cmd, uint32_t ifindex, int bit, int set) {
  struct nlmsghdr *header = (struct nlmsghdr *)at;
  memset(header, 0, NLMSG_HDRLEN + GENL_HDRLEN);
  header->nlmsg_type = family;
  header->nlmsg_flags = NLM_F_REQUEST;
  header->nlmsg_seq = ++seq;
  struct genlmsghdr *genl = (struct genlmsghdr *)(at + NLMSG_HDRLEN);
  genl->cmd = cmd;
  genl->version = ETHTOOL_GENL_VERSION;
  size_t len = NLMSG_HDRLEN + GENL_HDRLEN;
  struct nlattr *nest = (struct nlattr *)(at + len);
  len += put_attr(at + len, ETHTOOL_A_FEATURES_HEADER | NLA_F_NESTED, NULL, 0);
  len += put_u32(at + len, ETHTOOL_A_HEADER_DEV_INDEX, ifindex);
  len += put_u32(at + len, ETHTOOL_A_HEADER_FLAGS, ETHTOOL_FLAG_COMPACT_BITSETS);
  nest->nla_len = (uint16_t)((at + len) - (uint8_t *)nest);
  if (set >= 0) {
    uint32_t value[BENCH_FEATURE_WORDS] = {0}, mask[BENCH_FEATURE_WORDS] = {0};
    mask[bit / 32] = 1u << (bit % 32);
    if (set) value[bit / 32] = mask[bit / 32];
    struct nlattr *wanted = (struct nlattr *)(at + len);
    len += put_attr(at + len, ETHTOOL_A_FEATURES_WANTED | NLA_F_NESTED, NULL, 0);
    len += put_u32(at + len, ETHTOOL_A_BITSET_SIZE, feature_words * 32);
    len += put_attr(at + len, ETHTOOL_A_BITSET_VALUE, value, feature_words * 4);
    len += put_attr(at + len, ETHTOOL_A_BITSET_MASK, mask, feature_words * 4);
    wanted->nla_len = (uint16_t)((at + len) - (uint8_t *)wanted);
  }
  header->nlmsg_len = (uint32_t)len;
  return len;
}

/* The `part` (VALUE or MASK) bit of nested bitset `nest` in a reply's attributes, or -1. */
static int reply_bit(const uint8_t *attrs, size_t length, int nest, int part, int bit) {
  for (size_t off = 0; off + NLA_HDRLEN <= length;) {
    const struct nlattr *a = (const struct nlattr *)(attrs + off);
    if (a->nla_len < NLA_HDRLEN || off + a->nla_len > length) return -1;
    if ((a->nla_type & NLA_TYPE_MASK) == nest) {
      const uint8_t *inner = attrs + off + NLA_HDRLEN;
      size_t inner_len = a->nla_len - NLA_HDRLEN;
      for (size_t o = 0; o + NLA_HDRLEN <= inner_len;) {
        const struct nlattr *b = (const struct nlattr *)(inner + o);
        if (b->nla_len < NLA_HDRLEN || o + b->nla_len > inner_len) return -1;
        if ((b->nla_type & NLA_TYPE_MASK) == part) {
          if ((size_t)(b->nla_len - NLA_HDRLEN) < (size_t)(bit / 32 + 1) * 4) return 0;
          uint32_t word;
          memcpy(&word, inner + o + NLA_HDRLEN + (bit / 32) * 4, 4);
          return (word >> (bit % 32)) & 1u;
        }
        o += NLA_ALIGN(b->nla_len);
      }
      return -1;
    }
    off += NLA_ALIGN(a->nla_len);
  }
  return -1;
}

/*
 * Sends requests for items [0, n) (GET when set < 0) in windows; `result[i]` receives, for GET,
 * the feature's active bit, for SET 1 when the request was not granted; -errno on failure.
 */
static void pipelined(const uint32_t *ifindexes, size_t n, int bit, int set, int *result) {
  struct mmsghdr msgs[SLOTS];
  struct iovec iov[SLOTS];
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  for (size_t first = 0; first < n; first += WINDOW) {
    size_t count = n - first < WINDOW ? n - first : WINDOW;
    size_t len = 0;
    uint32_t first_seq = seq + 1;
    for (size_t i = 0; i < count; i++) {
      result[first + i] = -ENOBUFS;
      len += request(send_buffer + len, set < 0 ? ETHTOOL_MSG_FEATURES_GET : ETHTOOL_MSG_FEATURES_SET,
                     ifindexes[first + i], bit, set);
    }
    if (sendto(nl_fd, send_buffer, len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) die("sendto", errno);
    size_t answered = 0;
    while (answered < count) {
      for (int s = 0; s < SLOTS; s++) {
        iov[s].iov_base = receive_buffer + (size_t)s * SLOT_BYTES;
        iov[s].iov_len = SLOT_BYTES;
        memset(&msgs[s], 0, sizeof msgs[s]);
        msgs[s].msg_hdr.msg_iov = &iov[s];
        msgs[s].msg_hdr.msg_iovlen = 1;
      }
      int got = recvmmsg(nl_fd, msgs, SLOTS, MSG_DONTWAIT, NULL);
      if (got < 0) {
        if (errno == EINTR || errno == ENOBUFS) continue;
        break; /* everything the kernel answered has been read */
      }
      for (int s = 0; s < got; s++) {
        size_t remaining = msgs[s].msg_len;
        for (struct nlmsghdr *h = (struct nlmsghdr *)(receive_buffer + (size_t)s * SLOT_BYTES); NLMSG_OK(h, remaining);
             h = NLMSG_NEXT(h, remaining)) {
          uint32_t index = h->nlmsg_seq - first_seq;
          if (index >= count) continue;
          int *slot = &result[first + index];
          if (h->nlmsg_type == NLMSG_ERROR) {
            struct nlmsgerr *e = NLMSG_DATA(h);
            *slot = e->error < 0 ? e->error : -EPROTO;
          } else {
            const uint8_t *attrs = (const uint8_t *)h + NLMSG_HDRLEN + GENL_HDRLEN;
            size_t attrs_len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
            *slot = set < 0 ? reply_bit(attrs, attrs_len, ETHTOOL_A_FEATURES_ACTIVE, ETHTOOL_A_BITSET_VALUE, bit)
                            : reply_bit(attrs, attrs_len, ETHTOOL_A_FEATURES_WANTED, ETHTOOL_A_BITSET_MASK, bit);
          }
          answered++;
        }
      }
    }
  }
}

static void open_family(void) {
  nl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (nl_fd < 0) die("socket(NETLINK_GENERIC)", errno);
  int bytes = 4 * 1024 * 1024;
  if (setsockopt(nl_fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0)
    setsockopt(nl_fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  uint8_t *at = send_buffer;
  struct nlmsghdr *header = (struct nlmsghdr *)at;
  memset(header, 0, NLMSG_HDRLEN + GENL_HDRLEN);
  header->nlmsg_type = GENL_ID_CTRL;
  header->nlmsg_flags = NLM_F_REQUEST;
  header->nlmsg_seq = ++seq;
  ((struct genlmsghdr *)(at + NLMSG_HDRLEN))->cmd = CTRL_CMD_GETFAMILY;
  ((struct genlmsghdr *)(at + NLMSG_HDRLEN))->version = 1;
  size_t len = NLMSG_HDRLEN + GENL_HDRLEN;
  len += put_attr(at + len, CTRL_ATTR_FAMILY_NAME, ETHTOOL_GENL_NAME, sizeof ETHTOOL_GENL_NAME);
  header->nlmsg_len = (uint32_t)len;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(nl_fd, at, len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) die("sendto", errno);
  ssize_t got = recv(nl_fd, receive_buffer, SLOT_BYTES, 0);
  struct nlmsghdr *h = (struct nlmsghdr *)receive_buffer;
  if (got < 0 || !NLMSG_OK(h, (size_t)got) || h->nlmsg_type == NLMSG_ERROR) die("CTRL_CMD_GETFAMILY(ethtool)", ENOENT);
  const uint8_t *attrs = receive_buffer + NLMSG_HDRLEN + GENL_HDRLEN;
  size_t attrs_len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
  for (size_t off = 0; off + NLA_HDRLEN <= attrs_len;) {
    const struct nlattr *a = (const struct nlattr *)(attrs + off);
    if (a->nla_len < NLA_HDRLEN) break;
    if ((a->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID) memcpy(&family, attrs + off + NLA_HDRLEN, 2);
    off += NLA_ALIGN(a->nla_len);
  }
  if (!family) die("CTRL_CMD_GETFAMILY(ethtool)", ENOENT);
}

static int run(const char *prefix, int bit) {
  size_t count = 0;
  char **names = matching_names(prefix, &count);
  uint32_t *ifindexes = calloc(count + 1, sizeof *ifindexes);
  uint32_t *targets = calloc(count + 1, sizeof *targets);
  int *state = calloc(count + 1, sizeof *state);
  if (!ifindexes || !targets || !state) abort();
  for (size_t i = 0; i < count; i++) ifindexes[i] = if_nametoindex(names[i]);
  open_family();
  size_t changed = 0, failed = 0;
  int64_t started = now_ns();
  pipelined(ifindexes, count, bit, -1, state);
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    if (state[i] < 0) failed++;
    else if (state[i] == 1) targets[n++] = ifindexes[i];
  }
  pipelined(targets, n, bit, 0, state);
  for (size_t i = 0; i < n; i++) {
    if (state[i] != 0) failed++; /* an error, or the kernel did not grant the request */
    else changed++;
  }
  int64_t elapsed = now_ns() - started;
  printf("{\"count\":%zu,\"changed\":%zu,\"failed\":%zu,\"totalNs\":%lld}\n", count, changed, failed, (long long)elapsed);
  free(ifindexes);
  free(targets);
  free(state);
  free_names(names, count);
  return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "run") == 0) return run(argv[2], feature_or_die(argv[3]));
  fprintf(stderr, "usage: floor_nl run PREFIX FEATURE\n");
  return 2;
}
