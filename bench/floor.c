/*
 * The physical floor: what bringing interfaces into policy costs with nothing but the ioctls,
 * per interface GDRVINFO (what the daemon needs to match a driver) + GFEATURES + SFEATURES (only
 * when the feature differs, as the daemon does) + GFEATURES (read-back). Compiled on the fly by
 * `npm run bench`; run inside the benchmark's namespace with `ip netns exec`.
 *
 *   floor run   PREFIX FEATURE          timed pass: FEATURE off on every interface named PREFIX*
 *   floor set   PREFIX FEATURE on|off   untimed: put every such interface in a known state
 *   floor count PREFIX FEATURE          how many such interfaces exist, and how many have it on
 *
 * Output: one JSON object on stdout. The interface list is read before the clock starts: the
 * floor is the ioctls, not the enumeration (the daemon's dump is part of its own figure).
 */
#include "ethtool_lite.h"

static int run(const char *prefix, int bit) {
  size_t count = 0;
  char **names = matching_names(prefix, &count);
  size_t changed = 0, failed = 0;
  struct ethtool_drvinfo info;
  int64_t started = now_ns();
  for (size_t i = 0; i < count; i++) {
    if (driver_info(names[i], &info) < 0) failed++;
    int active = get_active(names[i], bit);
    if (active == 1) {
      if (set_feature(names[i], bit, 0) < 0) failed++;
      if (get_active(names[i], bit) != 0) failed++;
      changed++;
    }
  }
  int64_t elapsed = now_ns() - started;
  printf("{\"count\":%zu,\"changed\":%zu,\"failed\":%zu,\"totalNs\":%lld}\n", count, changed, failed, (long long)elapsed);
  free_names(names, count);
  return failed == 0 ? 0 : 1;
}

static int set_all(const char *prefix, int bit, int on) {
  size_t count = 0;
  char **names = matching_names(prefix, &count);
  size_t changed = 0, failed = 0;
  for (size_t i = 0; i < count; i++) {
    int active = get_active(names[i], bit);
    if (active == on) continue;
    if (set_feature(names[i], bit, on) < 0) failed++;
    else changed++;
  }
  printf("{\"count\":%zu,\"changed\":%zu,\"failed\":%zu}\n", count, changed, failed);
  free_names(names, count);
  return failed == 0 ? 0 : 1;
}

static int count_on(const char *prefix, int bit) {
  size_t count = 0, on = 0;
  char **names = matching_names(prefix, &count);
  for (size_t i = 0; i < count; i++) if (get_active(names[i], bit) == 1) on++;
  printf("{\"count\":%zu,\"on\":%zu}\n", count, on);
  free_names(names, count);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "run") == 0) return run(argv[2], feature_or_die(argv[3]));
  if (argc >= 5 && strcmp(argv[1], "set") == 0) return set_all(argv[2], feature_or_die(argv[3]), strcmp(argv[4], "on") == 0);
  if (argc >= 4 && strcmp(argv[1], "count") == 0) return count_on(argv[2], feature_or_die(argv[3]));
  fprintf(stderr, "usage: floor run|set|count PREFIX FEATURE [on|off]\n");
  return 2;
}
