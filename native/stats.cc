// Traffic counters for `offloadctl doctor`, read without privilege:
//
// linkStats(ifindex): { mtu, stats } — RTM_GETLINK for one link, its IFLA_MTU and the kernel's
// 64-bit interface counters (IFLA_STATS64, struct rtnl_link_stats64) as BigInts, so a counter
// past 2^53 stays exact.
//
// driverStats(ifname, ifindex): { names, values } — the driver's own counters, ethtool -S:
// the ETH_SS_STATS string set and ETHTOOL_GSTATS. Drivers without them fail with EOPNOTSUPP.
#include "stats.h"

#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ethtool.h"
#include "rtnl.h"
#include "syscall.h"

namespace offloadd {
namespace {

constexpr size_t kReplyBytes = 64 * 1024;  // one link message with statistics is a few KiB
constexpr int kReplyTimeoutSeconds = 5;    // the kernel answers at once; this guards a bug

void SetCounter(Napi::Env env, Napi::Object object, const char* name, uint64_t value) {
  object.Set(name, Napi::BigInt::New(env, value));
}

Napi::Object StatsObject(Napi::Env env, const rtnl_link_stats64& s) {
  Napi::Object stats = Napi::Object::New(env);
  SetCounter(env, stats, "rxPackets", s.rx_packets);
  SetCounter(env, stats, "txPackets", s.tx_packets);
  SetCounter(env, stats, "rxBytes", s.rx_bytes);
  SetCounter(env, stats, "txBytes", s.tx_bytes);
  SetCounter(env, stats, "rxErrors", s.rx_errors);
  SetCounter(env, stats, "txErrors", s.tx_errors);
  SetCounter(env, stats, "rxDropped", s.rx_dropped);
  SetCounter(env, stats, "txDropped", s.tx_dropped);
  SetCounter(env, stats, "rxOverErrors", s.rx_over_errors);
  SetCounter(env, stats, "rxFifoErrors", s.rx_fifo_errors);
  SetCounter(env, stats, "rxMissedErrors", s.rx_missed_errors);
  SetCounter(env, stats, "txFifoErrors", s.tx_fifo_errors);
  return stats;
}

Napi::Value LinkStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected (ifindex: number)");
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  if (ifindex <= 0) throw Napi::RangeError::New(env, "ifindex must be positive");

  RouteRequest route(env, kReplyTimeoutSeconds);
  const int fd = route.fd();

  struct {
    nlmsghdr header;
    ifinfomsg link;
  } request;
  std::memset(&request, 0, sizeof request);
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = RTM_GETLINK;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.header.nlmsg_seq = 1;
  request.link.ifi_family = AF_UNSPEC;
  request.link.ifi_index = ifindex;
  route.Send(env, &request, sizeof request, "sendto(RTM_GETLINK)");

  std::vector<uint8_t> buffer(kReplyBytes);
  ssize_t n;
  do {
    n = recv(fd, buffer.data(), buffer.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw SyscallError(env, errno, "recv(RTM_GETLINK)");

  int remaining = static_cast<int>(n);
  for (auto* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, remaining);
       header = NLMSG_NEXT(header, remaining)) {
    if (header->nlmsg_type == NLMSG_ERROR) {
      auto* error = static_cast<nlmsgerr*>(NLMSG_DATA(header));
      throw SyscallError(env, error->error ? -error->error : EIO, "RTM_GETLINK");
    }
    if (header->nlmsg_type != RTM_NEWLINK) continue;
    auto* link = static_cast<ifinfomsg*>(NLMSG_DATA(header));
    if (link->ifi_index != ifindex) continue;
    bool haveStats = false;
    rtnl_link_stats64 stats;
    std::memset(&stats, 0, sizeof stats);
    uint32_t mtu = 0;
    int length = IFLA_PAYLOAD(header);
    for (auto* attribute = IFLA_RTA(link); RTA_OK(attribute, length); attribute = RTA_NEXT(attribute, length)) {
      if (attribute->rta_type == IFLA_MTU && RTA_PAYLOAD(attribute) >= sizeof(uint32_t)) {
        std::memcpy(&mtu, RTA_DATA(attribute), sizeof mtu);
      } else if (attribute->rta_type == IFLA_STATS64) {
        // Older kernels send a shorter struct (fields were added at the end): copy what came.
        std::memcpy(&stats, RTA_DATA(attribute), std::min<size_t>(RTA_PAYLOAD(attribute), sizeof stats));
        haveStats = true;
      }
    }
    if (!haveStats) throw SyscallError(env, EOPNOTSUPP, "IFLA_STATS64");
    Napi::Object result = Napi::Object::New(env);
    result.Set("mtu", Napi::Number::New(env, mtu));
    result.Set("stats", StatsObject(env, stats));
    return result;
  }
  throw SyscallError(env, ENODEV, "RTM_GETLINK");
}

Napi::Value DriverStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target target = TargetFromArgs(info);
  std::vector<std::string> names = StringSet(env, target, ETH_SS_STATS);

  // Older kernels write as many values as the driver has *now*, whatever n_stats says; a driver
  // that grew its set since the names were read (rings added) would overrun an exact buffer.
  constexpr size_t kSlackCounters = 1024;
  std::vector<uint8_t> buffer(sizeof(ethtool_stats) + (2 * names.size() + kSlackCounters) * sizeof(uint64_t));
  auto* request = reinterpret_cast<ethtool_stats*>(buffer.data());
  request->cmd = ETHTOOL_GSTATS;
  request->n_stats = static_cast<uint32_t>(names.size());
  if (!names.empty()) Ethtool(env, target, request, "ETHTOOL_GSTATS");

  // The driver may report fewer counters than it named (the set changed in between): keep the pairs.
  size_t count = std::min<size_t>(names.size(), request->n_stats);
  Napi::Array jsNames = Napi::Array::New(env, count);
  Napi::BigUint64Array values = Napi::BigUint64Array::New(env, count);
  for (size_t i = 0; i < count; i++) {
    jsNames.Set(i, Napi::String::New(env, names[i]));
    values[i] = request->data[i];
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("names", jsNames);
  result.Set("values", values);
  return result;
}

}  // namespace

void InitStats(Napi::Env env, Napi::Object exports) {
  exports.Set("linkStats", Napi::Function::New(env, LinkStats, "linkStats"));
  exports.Set("driverStats", Napi::Function::New(env, DriverStats, "driverStats"));
}

}  // namespace offloadd
