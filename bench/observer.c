/*
 * Observers and stand-ins for the benchmark, outside the daemon (compiled on the fly by
 * `npm run bench`, run inside the benchmark's namespace with `ip netns exec`). Times are
 * CLOCK_MONOTONIC nanoseconds, the clock Node's process.hrtime.bigint() reads, so they compare
 * with the benchmark's own timestamps.
 *
 *   observer exposure  FEATURE PREFIX PEERPREFIX TRIALS GAP_US TIMEOUT_MS
 *       per trial: create veth PREFIX<i> (peer PEERPREFIX<i>) over rtnetlink, wait until FEATURE
 *       reads off, delete it. Exposure = from the kernel's first event announcing the link until
 *       the event after which the feature reads off (see watch_events); also from the request.
 *   observer drift     FEATURE PREFIX TRIALS GAP_US TIMEOUT_MS
 *       per trial, round robin over the interfaces named PREFIX*: turn FEATURE on with
 *       SFEATURES, wait until it reads off again.
 *   observer adversary FEATURE IFNAME SECONDS INTERVAL_US
 *       re-enables FEATURE whenever it finds it off, checking every INTERVAL_US.
 *   observer reactor   FEATURE PREFIX [REPORT_N [ioctl|ethtool]]
 *       the event-driven floor: a minimal C daemon that turns FEATURE off on every PREFIX*
 *       interface a link event names (until killed); prints a line once it has corrected
 *       REPORT_N interfaces (hot-plug bursts). With `ethtool`, today's practice instead: it runs
 *       an `ethtool -K IF gro off gso off` process per such event, as a udev RUN+= rule does.
 *   observer notify    SOCKET TIMEOUT_S
 *       stands in for systemd's notify socket; prints when READY=1 arrives, then reads (and
 *       drops) every later message until killed.
 */
#define _GNU_SOURCE
#include "ethtool_lite.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* ---- rtnetlink requests ------------------------------------------------------------------ */

/* One flat buffer (header, ifinfomsg, attributes) that attributes are appended to. */
struct request {
  union {
    struct nlmsghdr header;
    char bytes[1200];
  };
};

static struct rtattr *add_attribute(struct nlmsghdr *header, int type, const void *data, size_t length) {
  struct rtattr *attribute = (struct rtattr *)((char *)header + NLMSG_ALIGN(header->nlmsg_len));
  attribute->rta_type = (unsigned short)type;
  attribute->rta_len = (unsigned short)RTA_LENGTH(length);
  if (length) memcpy(RTA_DATA(attribute), data, length);
  header->nlmsg_len = NLMSG_ALIGN(header->nlmsg_len) + RTA_ALIGN(attribute->rta_len);
  return attribute;
}

static void end_nest(struct nlmsghdr *header, struct rtattr *nest) {
  nest->rta_len = (unsigned short)((char *)header + NLMSG_ALIGN(header->nlmsg_len) - (char *)nest);
}

static int rtnl_socket(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) die("socket(NETLINK_ROUTE)", errno);
  return fd;
}

/* Sends a request and waits for its acknowledgement: 0 or -errno. */
static int transact(int fd, struct nlmsghdr *header) {
  static uint32_t seq = 1;
  header->nlmsg_seq = ++seq;
  header->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (send(fd, header, header->nlmsg_len, 0) < 0) return -errno;
  char answer[8192];
  for (;;) {
    ssize_t received = recv(fd, answer, sizeof answer, 0);
    if (received < 0) return -errno;
    for (struct nlmsghdr *reply = (struct nlmsghdr *)answer; NLMSG_OK(reply, (size_t)received); reply = NLMSG_NEXT(reply, received)) {
      if (reply->nlmsg_seq != header->nlmsg_seq || reply->nlmsg_type != NLMSG_ERROR) continue;
      return ((struct nlmsgerr *)NLMSG_DATA(reply))->error;
    }
  }
}

static void start_request(struct request *request, int type, int flags) {
  memset(request, 0, sizeof *request);
  request->header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  request->header.nlmsg_type = (unsigned short)type;
  request->header.nlmsg_flags = (unsigned short)flags;
  ((struct ifinfomsg *)NLMSG_DATA(&request->header))->ifi_family = AF_UNSPEC;
}

/* The request `ip link add NAME type veth peer name PEER` sends. */
static void veth_request(struct request *request, const char *name, const char *peer) {
  start_request(request, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  add_attribute(&request->header, IFLA_IFNAME, name, strlen(name) + 1);
  struct rtattr *linkinfo = add_attribute(&request->header, IFLA_LINKINFO, NULL, 0);
  add_attribute(&request->header, IFLA_INFO_KIND, "veth", 4);
  struct rtattr *data = add_attribute(&request->header, IFLA_INFO_DATA, NULL, 0);
  struct rtattr *peer_info = add_attribute(&request->header, VETH_INFO_PEER, NULL, 0);
  struct ifinfomsg peer_header;
  memset(&peer_header, 0, sizeof peer_header);
  peer_header.ifi_family = AF_UNSPEC;
  /* The peer's ifinfomsg sits inside the attribute: account for it by hand, then its name. */
  memcpy(request->bytes + ((char *)peer_info - request->bytes) + RTA_LENGTH(0), &peer_header, sizeof peer_header);
  request->header.nlmsg_len += NLMSG_ALIGN(sizeof peer_header);
  add_attribute(&request->header, IFLA_IFNAME, peer, strlen(peer) + 1);
  end_nest(&request->header, peer_info);
  end_nest(&request->header, data);
  end_nest(&request->header, linkinfo);
}

static int delete_link(int fd, const char *name) {
  struct request request;
  start_request(&request, RTM_DELLINK, 0);
  add_attribute(&request.header, IFLA_IFNAME, name, strlen(name) + 1);
  return transact(fd, &request.header);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static void sleep_us(long us) {
  if (us <= 0) return;
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* Between trials: a jittered pause, so the daemon is idle and trials do not phase-lock with it. */
static void pause_between(long gap_us) {
  sleep_us(gap_us / 2 + (gap_us > 0 ? random() % gap_us : 0));
}

/*
 * A link-event subscription for the observer itself. It must not spin on GFEATURES: every
 * ethtool ioctl takes rtnl_lock, and a tight loop of them starves whoever is trying to fix the
 * interface (a spinning observer pushed even the C reactor's p99 to 5 ms). Instead it re-reads
 * the feature once per link event naming the interface: the kernel sends one for every feature
 * change (NETDEV_FEAT_CHANGE), and the read is timed at the event's arrival.
 */
static int monitor_socket(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) die("socket(NETLINK_ROUTE)", errno);
  int size = 8 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) die("bind(RTMGRP_LINK)", errno);
  return fd;
}

/* Reads every queued event; 1 if one named `ifname` (or events were lost), else 0. */
static int drain_events(int monitor, const char *ifname) {
  static char buffer[1 << 16];
  int relevant = 0;
  for (;;) {
    ssize_t received = recv(monitor, buffer, sizeof buffer, MSG_DONTWAIT);
    if (received < 0) {
      if (errno == ENOBUFS) relevant = 1;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return relevant;
      if (errno != EINTR && errno != ENOBUFS) return relevant;
      continue;
    }
    for (struct nlmsghdr *message = (struct nlmsghdr *)buffer; NLMSG_OK(message, (size_t)received); message = NLMSG_NEXT(message, received)) {
      if (message->nlmsg_type != RTM_NEWLINK) continue;
      struct ifinfomsg *info = NLMSG_DATA(message);
      int length = (int)IFLA_PAYLOAD(message);
      for (struct rtattr *attribute = IFLA_RTA(info); RTA_OK(attribute, length); attribute = RTA_NEXT(attribute, length)) {
        if (attribute->rta_type == IFLA_IFNAME && strcmp(RTA_DATA(attribute), ifname) == 0) relevant = 1;
      }
    }
  }
}

/*
 * Waits until the feature reads off; returns when (ns: the arrival of the event after which it
 * read off), or -1 after the timeout. A re-read every millisecond covers a lost event.
 */
static int64_t wait_until_off(int monitor, const char *ifname, int bit, int64_t started, int64_t timeout_ns) {
  int64_t now = now_ns();
  if (get_active(ifname, bit) == 0) return now;
  for (;;) {
    struct pollfd ready = {.fd = monitor, .events = POLLIN};
    int woke = poll(&ready, 1, 1);
    now = now_ns();
    int relevant = woke > 0 ? drain_events(monitor, ifname) : 1;
    if (relevant && get_active(ifname, bit) == 0) return now;
    if (now - started > timeout_ns) return -1;
  }
}

static void print_array(const char *key, const int64_t *values, int count, int last) {
  printf("\"%s\":[", key);
  for (int i = 0; i < count; i++) printf("%s%lld", i ? "," : "", (long long)values[i]);
  printf("]%s", last ? "" : ",");
}

/* ---- modes --------------------------------------------------------------------------------- */

/*
 * Exposure trials need to know when the link appeared, but the thread that creates it is blocked
 * until the request is acknowledged (0.5-1 ms later). So a second thread owns the event
 * subscription: it timestamps the first event naming the trial's interface (the kernel's
 * announcement, sent as the device is registered: from then on it carries traffic) and re-reads
 * the feature after each event, recording when it first reads off.
 */
struct trial_watch {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int monitor;
  int bit;
  int active;
  char name[IFNAMSIZ];
  int64_t first_event;
  int64_t off_at;
};

static void *watch_events(void *argument) {
  struct trial_watch *watch = argument;
  for (;;) {
    struct pollfd ready = {.fd = watch->monitor, .events = POLLIN};
    int woke = poll(&ready, 1, 1);
    int64_t now = now_ns();
    pthread_mutex_lock(&watch->lock);
    int relevant = woke > 0 ? drain_events(watch->monitor, watch->name) : 1; /* re-read each ms too */
    if (watch->active && watch->off_at == 0) {
      if (woke > 0 && relevant && watch->first_event == 0) watch->first_event = now;
      if (relevant && get_active(watch->name, watch->bit) == 0) {
        watch->off_at = now;
        pthread_cond_signal(&watch->changed);
      }
    }
    pthread_mutex_unlock(&watch->lock);
  }
  return NULL;
}

static void start_watch(struct trial_watch *watch, int bit) {
  memset(watch, 0, sizeof *watch);
  pthread_mutex_init(&watch->lock, NULL);
  pthread_condattr_t attributes;
  pthread_condattr_init(&attributes);
  pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
  pthread_cond_init(&watch->changed, &attributes);
  watch->monitor = monitor_socket();
  watch->bit = bit;
  pthread_t thread;
  if (pthread_create(&thread, NULL, watch_events, watch) != 0) die("pthread_create", EAGAIN);
}

/* Waits (lock held) until the watcher saw the feature off, or the deadline passes. */
static void await_off(struct trial_watch *watch, int64_t deadline) {
  while (watch->off_at == 0 && now_ns() < deadline) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += 2000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&watch->changed, &watch->lock, &until);
  }
}

static int exposure(int bit, const char *prefix, const char *peer_prefix, int trials, long gap_us, long timeout_ms) {
  int fd = rtnl_socket();
  static struct trial_watch watch;
  start_watch(&watch, bit);
  int64_t *exposure_ns = calloc((size_t)trials, sizeof *exposure_ns);
  int64_t *from_request_ns = calloc((size_t)trials, sizeof *from_request_ns);
  int64_t *create_ns = calloc((size_t)trials, sizeof *create_ns);
  int timeouts = 0;
  for (int i = 0; i < trials; i++) {
    char name[IFNAMSIZ], peer[IFNAMSIZ];
    snprintf(name, sizeof name, "%s%d", prefix, i);
    snprintf(peer, sizeof peer, "%s%d", peer_prefix, i);
    struct request request;
    veth_request(&request, name, peer);
    pthread_mutex_lock(&watch.lock);
    memcpy(watch.name, name, sizeof name);
    watch.first_event = watch.off_at = 0;
    watch.active = 1;
    pthread_mutex_unlock(&watch.lock);

    int64_t started = now_ns();
    int rc = transact(fd, &request.header);
    int64_t acknowledged = now_ns();
    if (rc < 0) die("create veth", rc);

    pthread_mutex_lock(&watch.lock);
    await_off(&watch, started + timeout_ms * 1000000LL);
    watch.active = 0;
    int64_t appeared = watch.first_event ? watch.first_event : started; /* no event seen: be conservative */
    if (watch.off_at == 0) timeouts++;
    exposure_ns[i] = watch.off_at ? (watch.off_at > appeared ? watch.off_at - appeared : 0) : -1;
    from_request_ns[i] = watch.off_at ? watch.off_at - started : -1;
    pthread_mutex_unlock(&watch.lock);
    create_ns[i] = acknowledged - started;
    if ((rc = delete_link(fd, name)) < 0) die("delete veth", rc);
    pause_between(gap_us);
  }
  printf("{");
  print_array("exposureNs", exposure_ns, trials, 0);
  print_array("fromRequestNs", from_request_ns, trials, 0);
  print_array("createNs", create_ns, trials, 0);
  printf("\"timeouts\":%d}\n", timeouts);
  return 0;
}

static int drift(int bit, const char *prefix, int trials, long gap_us, long timeout_ms) {
  size_t count = 0;
  char **names = matching_names(prefix, &count);
  if (count == 0) die("no interfaces to drift", ENODEV);
  int64_t *drift_ns = calloc((size_t)trials, sizeof *drift_ns);
  int timeouts = 0;
  int monitor = monitor_socket();
  for (int i = 0; i < trials; i++) {
    const char *name = names[(size_t)i % count];
    /* Start from a compliant interface: a previous trial that timed out may still be on. */
    wait_until_off(monitor, name, bit, now_ns(), timeout_ms * 1000000LL);
    drain_events(monitor, name);
    int64_t started = now_ns();
    int rc = set_feature(name, bit, 1);
    if (rc < 0) die("SFEATURES", rc);
    int64_t off = wait_until_off(monitor, name, bit, started, timeout_ms * 1000000LL);
    if (off < 0) timeouts++;
    drift_ns[i] = off < 0 ? -1 : off - started;
    pause_between(gap_us);
  }
  printf("{");
  print_array("driftNs", drift_ns, trials, 0);
  printf("\"interfaces\":%zu,\"timeouts\":%d}\n", count, timeouts);
  free_names(names, count);
  return 0;
}

static volatile sig_atomic_t stop_requested = 0;

static void request_stop(int signal_number) {
  (void)signal_number;
  stop_requested = 1;
}

/* Runs until SECONDS have passed or SIGTERM: either way it reports what it did. */
static int adversary(int bit, const char *ifname, double seconds, long interval_us) {
  signal(SIGTERM, request_stop);
  int64_t deadline = now_ns() + (int64_t)(seconds * 1e9);
  long flips = 0, checks = 0;
  while (!stop_requested && now_ns() < deadline) {
    checks++;
    if (get_active(ifname, bit) == 0 && set_feature(ifname, bit, 1) == 0) flips++;
    sleep_us(interval_us);
  }
  printf("{\"flips\":%ld,\"checks\":%ld}\n", flips, checks);
  return 0;
}

/*
 * What the floor does per event naming a matching interface: GFEATURES and, when the feature is
 * on, GDRVINFO (what a daemon matching on drivers needs once per interface) + SFEATURES +
 * GFEATURES. Returns 1 when it turned the feature off.
 */
static int react_ioctl(const char *ifname, int bit) {
  if (get_active(ifname, bit) != 1) return 0;
  struct ethtool_drvinfo info;
  driver_info(ifname, &info);
  set_feature(ifname, bit, 0);
  return get_active(ifname, bit) == 0;
}

/*
 * Today's practice instead: what a udev RUN+= rule does, one `ethtool -K IF gro off gso off`
 * process per event of a matching interface whose feature is on, waited for.
 */
static int react_ethtool(const char *ifname, int bit) {
  if (get_active(ifname, bit) != 1) return 0;
  pid_t child = fork();
  if (child == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execlp("ethtool", "ethtool", "-K", ifname, "gro", "off", "gso", "off", (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (child > 0) waitpid(child, &status, 0);
  return get_active(ifname, bit) == 0;
}

static int use_ethtool = 0;

static int react(const char *ifname, int bit) {
  return use_ethtool ? react_ethtool(ifname, bit) : react_ioctl(ifname, bit);
}

static long react_all(const char *prefix, int bit) {
  size_t count = 0;
  long corrected = 0;
  char **names = matching_names(prefix, &count);
  for (size_t i = 0; i < count; i++) corrected += react(names[i], bit);
  free_names(names, count);
  return corrected;
}

/* Runs until killed. With REPORT_N > 0, prints when it has corrected REPORT_N interfaces. */
static _Noreturn void reactor(int bit, const char *prefix, long report_n) {
  int fd = rtnl_socket();
  int size = 8 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) die("bind(RTMGRP_LINK)", errno);
  react_all(prefix, bit);
  printf("ready\n");
  fflush(stdout);
  static char buffer[1 << 16];
  long corrected = 0, lost = 0;
  for (;;) {
    ssize_t received = recv(fd, buffer, sizeof buffer, 0);
    long before = corrected;
    if (received < 0) {
      if (errno == ENOBUFS) { /* events lost: look at everything */
        lost++;
        corrected += react_all(prefix, bit);
      }
      received = 0;
    }
    for (struct nlmsghdr *message = (struct nlmsghdr *)buffer; NLMSG_OK(message, (size_t)received); message = NLMSG_NEXT(message, received)) {
      if (message->nlmsg_type != RTM_NEWLINK) continue;
      struct ifinfomsg *info = NLMSG_DATA(message);
      int length = (int)IFLA_PAYLOAD(message);
      for (struct rtattr *attribute = IFLA_RTA(info); RTA_OK(attribute, length); attribute = RTA_NEXT(attribute, length)) {
        if (attribute->rta_type != IFLA_IFNAME) continue;
        const char *name = RTA_DATA(attribute);
        if (strncmp(name, prefix, strlen(prefix)) == 0) corrected += react(name, bit);
      }
    }
    if (report_n > 0 && before < report_n && corrected >= report_n) {
      printf("{\"compliantNs\":%lld,\"corrected\":%ld,\"resyncs\":%ld}\n", (long long)now_ns(), corrected, lost);
      fflush(stdout);
    }
  }
}

static int notify(const char *path, int timeout_s) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strncpy(address.sun_path, path, sizeof address.sun_path - 1);
  unlink(path);
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) die("bind(notify socket)", errno);
  struct timeval timeout = {timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  printf("listening\n");
  fflush(stdout);
  char buffer[4096];
  for (;;) {
    ssize_t received = recv(fd, buffer, sizeof buffer - 1, 0);
    int64_t at = now_ns();
    if (received < 0) die("waiting for READY=1", errno);
    buffer[received] = '\0';
    if (strstr(buffer, "READY=1")) {
      printf("{\"readyNs\":%lld}\n", (long long)at);
      fflush(stdout);
      break;
    }
  }
  // Then as systemd: every later message (STATUS=, WATCHDOG=1) is taken, until killed. A socket
  // nobody reads would fail each send, which the daemon pays for and systemd never makes it pay.
  struct timeval forever = {0, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof forever);
  for (;;)
    if (recv(fd, buffer, sizeof buffer, 0) < 0 && errno != EINTR) die("reading the notify socket", errno);
}

int main(int argc, char **argv) {
  srandom((unsigned)now_ns());
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "exposure") == 0 && argc >= 8)
    return exposure(feature_or_die(argv[2]), argv[3], argv[4], atoi(argv[5]), atol(argv[6]), atol(argv[7]));
  if (strcmp(mode, "drift") == 0 && argc >= 7)
    return drift(feature_or_die(argv[2]), argv[3], atoi(argv[4]), atol(argv[5]), atol(argv[6]));
  if (strcmp(mode, "adversary") == 0 && argc >= 6)
    return adversary(feature_or_die(argv[2]), argv[3], atof(argv[4]), atol(argv[5]));
  if (strcmp(mode, "reactor") == 0 && argc >= 4) {
    use_ethtool = argc >= 6 && strcmp(argv[5], "ethtool") == 0;
    reactor(feature_or_die(argv[2]), argv[3], argc >= 5 ? atol(argv[4]) : 0);
  }
  if (strcmp(mode, "notify") == 0 && argc >= 4) return notify(argv[2], atoi(argv[3]));
  fprintf(stderr, "usage: observer exposure|drift|adversary|reactor|notify ... (see the source)\n");
  return 2;
}
