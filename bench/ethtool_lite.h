/*
 * The few ETHTOOL ioctls the benchmark's C programs need (floor.c, observer.c), as plain C with
 * no dependency beyond libc and the kernel headers, so `cc` alone builds them on any machine that
 * can build the addon. Errors are returned as -errno, never printed here: the callers decide.
 */
#ifndef OFFLOADD_BENCH_ETHTOOL_LITE_H
#define OFFLOADD_BENCH_ETHTOOL_LITE_H

#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

/* Room for any kernel's feature set; the real word count is what the kernel reports. */
#define BENCH_FEATURE_WORDS 8

/* ETHTOOL_SFEATURES insists on exactly the kernel's word count: set by feature_bit(). */
static uint32_t feature_words = 0;

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock Node's process.hrtime uses, so times compare */
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* SIOCETHTOOL works on any socket; AF_UNIX as the daemon's addon does. */
static inline int ctl_socket(void) {
  static int fd = -1;
  if (fd < 0) fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  return fd;
}

static inline int ethtool_ioctl(const char *ifname, void *data) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1)); /* ifr is zeroed: terminated */
  ifr.ifr_data = data;
  return ioctl(ctl_socket(), SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
}

/* Bit position of a feature string (e.g. "tx-generic-segmentation") in this kernel, or -1. */
static inline int feature_bit(const char *feature) {
  struct {
    struct ethtool_sset_info info;
    uint32_t count;
  } sset;
  memset(&sset, 0, sizeof sset);
  sset.info.cmd = ETHTOOL_GSSET_INFO;
  sset.info.sset_mask = 1ULL << ETH_SS_FEATURES;
  if (ethtool_ioctl("lo", &sset) < 0 || sset.info.sset_mask == 0) return -1;
  uint32_t count = sset.count;
  feature_words = (count + 31) / 32;
  if (feature_words == 0 || feature_words > BENCH_FEATURE_WORDS) return -1;
  struct ethtool_gstrings *strings = calloc(1, sizeof *strings + (size_t)count * ETH_GSTRING_LEN);
  if (!strings) return -1;
  strings->cmd = ETHTOOL_GSTRINGS;
  strings->string_set = ETH_SS_FEATURES;
  strings->len = count;
  int bit = -1;
  if (ethtool_ioctl("lo", strings) == 0) {
    for (uint32_t i = 0; i < strings->len && bit < 0; i++) {
      if (strncmp((const char *)strings->data + (size_t)i * ETH_GSTRING_LEN, feature, ETH_GSTRING_LEN) == 0) bit = (int)i;
    }
  }
  free(strings);
  return bit;
}

/* ETHTOOL_GFEATURES: 1 if the feature is active, 0 if not, -errno on failure. */
static inline int get_active(const char *ifname, int bit) {
  struct {
    struct ethtool_gfeatures head;
    struct ethtool_get_features_block blocks[BENCH_FEATURE_WORDS];
  } request;
  memset(&request, 0, sizeof request);
  request.head.cmd = ETHTOOL_GFEATURES;
  request.head.size = feature_words;
  int rc = ethtool_ioctl(ifname, &request);
  if (rc < 0) return rc;
  return (request.blocks[bit / 32].active >> (bit % 32)) & 1u;
}

/* One ETHTOOL_SFEATURES changing one feature. Returns 0 or -errno. */
static inline int set_feature(const char *ifname, int bit, int on) {
  struct {
    struct ethtool_sfeatures head;
    struct ethtool_set_features_block blocks[BENCH_FEATURE_WORDS];
  } request;
  memset(&request, 0, sizeof request);
  request.head.cmd = ETHTOOL_SFEATURES;
  request.head.size = feature_words;
  request.blocks[bit / 32].valid = 1u << (bit % 32);
  request.blocks[bit / 32].requested = on ? 1u << (bit % 32) : 0;
  int rc = ethtool_ioctl(ifname, &request);
  return rc < 0 ? rc : 0; /* a positive ETHTOOL_F_* answer is not an error */
}

static inline int driver_info(const char *ifname, struct ethtool_drvinfo *info) {
  memset(info, 0, sizeof *info);
  info->cmd = ETHTOOL_GDRVINFO;
  return ethtool_ioctl(ifname, info);
}

/* Names of the namespace's interfaces starting with `prefix` (caller frees with free_names). */
static inline char **matching_names(const char *prefix, size_t *count) {
  struct if_nameindex *all = if_nameindex();
  size_t n = 0, cap = 0;
  char **names = NULL;
  for (struct if_nameindex *entry = all; entry && entry->if_index != 0; entry++) {
    if (strncmp(entry->if_name, prefix, strlen(prefix)) != 0) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 1024;
      names = realloc(names, cap * sizeof *names);
      if (!names) abort();
    }
    names[n++] = strdup(entry->if_name);
  }
  if (all) if_freenameindex(all);
  *count = n;
  return names;
}

static inline void free_names(char **names, size_t count) {
  for (size_t i = 0; i < count; i++) free(names[i]);
  free(names);
}

static inline void die(const char *what, int err) {
  fprintf(stderr, "%s: %s\n", what, strerror(err < 0 ? -err : err));
  exit(1);
}

static inline int feature_or_die(const char *feature) {
  int bit = feature_bit(feature);
  if (bit < 0) {
    fprintf(stderr, "unknown feature %s\n", feature);
    exit(2);
  }
  return bit;
}

#endif
