// rtnetlink sockets for link events and link dumps.
//
// LinkMonitor: a multicast subscription to RTNLGRP_LINK with a large, forced receive buffer,
// polled on the libuv loop. Datagrams are handed to JavaScript in batches, each batch one raw
// Buffer holding its datagrams one after the other (each padded to 4 bytes, so the whole is a
// valid stream of netlink messages; parsing happens in TypeScript): one allocation per wake-up,
// not two per event. A receive-buffer overflow (ENOBUFS: the kernel dropped
// events) is reported as data, errno ENOBUFS, so the daemon can resynchronise; nothing here
// throws across the libuv callback.
//
// dumpLinks: an RTM_GETLINK dump of every link on its own short-lived socket, so a
// dump never interleaves with the multicast stream.
#include "rtnl.h"

#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "netlink.h"
#include "poll.h"
#include "syscall.h"

namespace offloadd {
namespace {

constexpr size_t kReceiveBufferBytes = 128 * 1024;  // larger than any kernel netlink skb
constexpr size_t kBatchDatagrams = 256;             // per JavaScript call
constexpr size_t kBatchBytes = 256 * 1024;          // per JavaScript call (plus one datagram)
constexpr size_t kMaxDatagramsPerWakeup = 4096;     // then yield to the loop (level-triggered poll)
constexpr size_t kMaxDiscardedAfterOverflow = 1 << 20;
constexpr int kDumpAttempts = 5;        // a dump interrupted (NLM_F_DUMP_INTR) this often: give up
constexpr int kDumpTimeoutSeconds = 5;  // a dump of 10,000 links takes well under a second

class LinkMonitor : public Napi::ObjectWrap<LinkMonitor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "LinkMonitor",
                       {InstanceMethod("close", &LinkMonitor::Close),
                        InstanceMethod("receiveBufferBytes", &LinkMonitor::ReceiveBufferBytes),
                        InstanceMethod("ref", &LinkMonitor::RefLoop), InstanceMethod("unref", &LinkMonitor::UnrefLoop),
                        InstanceMethod("dropDevicelessLinks", &LinkMonitor::DropDevicelessLinks),
                        InstanceMethod("expectOwnFeatureEvent", &LinkMonitor::ExpectOwnFeatureEvent),
                        InstanceMethod("forgetOwnFeatureEvents", &LinkMonitor::ForgetOwnFeatureEvents),
                        InstanceMethod("deliverPending", &LinkMonitor::DeliverPending),
                        InstanceMethod("setReceiveBuffer", &LinkMonitor::SetReceiveBufferBytes)});
  }

  // A receive buffer size from JavaScript. Int32Value() would wrap 2^31 and above into a tiny or
  // negative buffer without a word.
  static int ReceiveBufferArg(Napi::Env env, const Napi::Value& value) {
    double requested = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : 0;
    if (!(requested >= 1 && requested <= INT_MAX / 2))
      throw Napi::RangeError::New(env, "receiveBufferBytes must be from 1 to INT_MAX/2");
    return static_cast<int>(requested);
  }

  // SO_RCVBUFFORCE needs CAP_NET_ADMIN (which we have); fall back to what rmem_max allows.
  static void SetReceiveBuffer(int fd, int bytes) {
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }

  // new LinkMonitor(receiveBufferBytes, onDatagrams(errno: number, datagrams: Buffer[]))
  explicit LinkMonitor(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<LinkMonitor>(info), context_(info.Env(), "offloadd.LinkMonitor") {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "expected (receiveBufferBytes: number, onDatagrams: Function)");
    int rcvbuf = ReceiveBufferArg(env, info[0]);
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());

    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd_ < 0) throw SyscallError(env, errno, "socket(AF_NETLINK)");
    SetReceiveBuffer(fd_, rcvbuf);
    sockaddr_nl address;
    std::memset(&address, 0, sizeof address);
    address.nl_family = AF_NETLINK;
    address.nl_groups = RTMGRP_LINK;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      throw SyscallError(env, err, "bind(RTMGRP_LINK)");
    }

    poll_ = StartPolling(env, fd_, this, OnReadable);
    Napi::ObjectWrap<LinkMonitor>::Ref();  // keep the JS object alive while the socket is open
  }

  ~LinkMonitor() override { Shutdown(); }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::Value ReceiveBufferBytes(const Napi::CallbackInfo& info) {
    int size = 0;
    socklen_t length = sizeof size;
    if (fd_ >= 0) getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, &length);
    return Napi::Number::New(info.Env(), size);
  }

  // setReceiveBuffer(bytes): asks for this receive buffer, as the constructor does (the caller,
  // LinkEvents.makeRoomFor, only ever grows it); returns what the kernel granted.
  Napi::Value SetReceiveBufferBytes(const Napi::CallbackInfo& info) {
    int rcvbuf = ReceiveBufferArg(info.Env(), info[0]);
    if (fd_ >= 0) SetReceiveBuffer(fd_, rcvbuf);
    return ReceiveBufferBytes(info);
  }

  // Like a net.Server: unref() lets the process exit while the monitor is open.
  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }
  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  // dropDevicelessLinks(on: boolean): with on, a socket filter in the kernel drops every
  // RTM_NEWLINK / RTM_DELLINK without IFLA_PARENT_DEV_NAME (a link without a device: taps, veths,
  // bridges) before it is queued, so such links cost the daemon no wake-up at all. Only for a
  // policy whose every rule needs a PCI id (the caller decides), on kernels that name parent
  // devices (5.13+). Classic BPF's SKF_AD_NLATTR finds a top-level attribute from an offset.
  Napi::Value DropDevicelessLinks(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(env, "expected (on: boolean)");
    if (fd_ < 0) return env.Undefined();
    if (!info[0].As<Napi::Boolean>().Value()) {
      int unused = 0;
      if (setsockopt(fd_, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused) < 0 && errno != ENOENT)
        throw SyscallError(env, errno, "setsockopt(SO_DETACH_FILTER)");
      return env.Undefined();
    }
    constexpr uint32_t kAttributesAt = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifinfomsg));
    sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, offsetof(nlmsghdr, nlmsg_type) + 1),  // high byte (little-endian)
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 7),
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, offsetof(nlmsghdr, nlmsg_type)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RTM_NEWLINK, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RTM_DELLINK, 0, 4),
        BPF_STMT(BPF_LDX | BPF_W | BPF_IMM, IFLA_PARENT_DEV_NAME),
        BPF_STMT(BPF_LD | BPF_W | BPF_IMM, kAttributesAt),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_NLATTR)),  // A = its offset, or 0
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),  // keep
        BPF_STMT(BPF_RET | BPF_K, 0),           // drop
    };
    sock_fprog filter{static_cast<unsigned short>(sizeof program / sizeof program[0]), program};
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &filter, sizeof filter) < 0)
      throw SyscallError(env, errno, "setsockopt(SO_ATTACH_FILTER)");
    return env.Undefined();
  }

  // expectOwnFeatureEvent(ifindex): the daemon's own write just changed this link's features,
  // so the kernel has queued (or is about to queue) exactly one RTM_NEWLINK with IFLA_EVENT
  // = IFLA_EVENT_FEATURES for it, which the write's read-back already verified. The next such
  // message for the ifindex is dropped here, before it is copied or parsed, instead of becoming a
  // JavaScript object that the reconciler would skip. A later one (someone else's change) passes.
  Napi::Value ExpectOwnFeatureEvent(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected (ifindex: number)");
    int32_t ifindex = info[0].As<Napi::Number>().Int32Value();
    if (ifindex > 0) expected_[ifindex]++;
    return env.Undefined();
  }

  // forgetOwnFeatureEvents(ifindex?): the link went away, or events may have been lost (then every
  // expectation goes, so a lost event can never make someone else's change be dropped).
  Napi::Value ForgetOwnFeatureEvents(const Napi::CallbackInfo& info) {
    if (info.Length() >= 1 && info[0].IsNumber())
      expected_.erase(info[0].As<Napi::Number>().Int32Value());
    else
      expected_.clear();
    return info.Env().Undefined();
  }

  // deliverPending(): reads what is queued now, as a wake-up would, and delivers it before
  // returning; true when it stopped at the per-wake-up bound with more possibly queued.
  Napi::Value DeliverPending(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), Drain() >= kMaxDatagramsPerWakeup);
  }

  // A datagram of exactly one RTM_NEWLINK carrying IFLA_EVENT_FEATURES for an ifindex the daemon
  // expects its own event for: that expectation is used up, and the datagram is not delivered.
  bool ConsumeOwnFeatureEvent(const uint8_t* datagram, size_t length) {
    const auto* header = reinterpret_cast<const nlmsghdr*>(datagram);
    if (length < NLMSG_HDRLEN || header->nlmsg_type != RTM_NEWLINK) return false;
    if (header->nlmsg_len > length || NLMSG_ALIGN(header->nlmsg_len) < length) return false;  // more than one
    if (header->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return false;
    const auto* link = static_cast<const ifinfomsg*>(NLMSG_DATA(header));
    auto expected = expected_.find(link->ifi_index);
    if (expected == expected_.end()) return false;
    uint32_t event = 0;
    auto attributes = NetlinkAttributes<IFLA_EVENT + 1>::OfMessage(header, NLMSG_LENGTH(sizeof(ifinfomsg)));
    if (!attributes.Read(IFLA_EVENT, &event) || event != IFLA_EVENT_FEATURES) return false;
    if (--expected->second == 0) expected_.erase(expected);
    return true;
  }

  void Shutdown() {
    if (poll_) {
      StopPolling(poll_);
      poll_ = nullptr;
      Napi::ObjectWrap<LinkMonitor>::Unref();
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  // libuv reports a socket error (EPOLLERR; for netlink that is a receive-buffer overflow,
  // sk_err = ENOBUFS) as a failed poll and stops polling. Start it again and let recv() fetch
  // and clear the real error, which Drain() then reports.
  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<LinkMonitor*>(handle->data);
    if (status < 0 && self->poll_) uv_poll_start(self->poll_, UV_READABLE, OnReadable);
    self->Drain();
  }

  // Returns how many datagrams were read (the wake-up's bound at most).
  size_t Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    size_t received = 0;
    for (; fd_ >= 0 && received < kMaxDatagramsPerWakeup; received++) {
      sockaddr_nl sender;
      socklen_t senderLength = sizeof sender;
      ssize_t n = recvfrom(fd_, batch_.get() + used_, kReceiveBufferBytes, 0, reinterpret_cast<sockaddr*>(&sender),
                           &senderLength);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        int err = errno;
        // Deliver what came before the loss first, so the order of events is kept.
        if (used_ > 0) Deliver(0);
        if (err == ENOBUFS) DiscardQueued();
        expected_.clear();  // the daemon re-reads everything; an expectation could outlive its event
        Deliver(err);
        if (err != ENOBUFS) break;  // ENOBUFS: the socket goes on working after the drop
        continue;
      }
      if (sender.nl_pid != 0) continue;  // only the kernel speaks on this group
      if (!expected_.empty() && ConsumeOwnFeatureEvent(batch_.get() + used_, static_cast<size_t>(n))) continue;
      size_t padded = (static_cast<size_t>(n) + 3) & ~static_cast<size_t>(3);
      std::memset(batch_.get() + used_ + n, 0, padded - static_cast<size_t>(n));
      used_ += padded;
      if (++datagrams_ >= kBatchDatagrams || used_ > kBatchBytes) Deliver(0);
    }
    if (used_ > 0) Deliver(0);
    return received;
  }

  // After ENOBUFS the queue still holds messages from before the loss (the kernel reports the
  // error before them), and while it is non-empty the socket stays "congested": further drops are
  // silent. Those messages predate the gap, so after the resync's dump they would roll links back
  // to stale states (a name from before a lost rename) with no later event to correct them. So
  // they are dropped here: once the queue is empty the stream is complete again, and everything
  // from then on is no older than the dump the daemon takes next.
  void DiscardQueued() {
    static uint8_t scratch[kReceiveBufferBytes];
    for (size_t discarded = 0; discarded < kMaxDiscardedAfterOverflow; discarded++) {
      ssize_t n = recv(fd_, scratch, sizeof scratch, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;  // EAGAIN: empty (or ENOBUFS again: the caller resyncs anyway)
    }
  }

  // Calls JavaScript through MakeCallback, so promise jobs and nextTicks run afterwards, as
  // they do after any I/O callback. An exception from the handler must not unwind through
  // libuv: it is reported on stderr and dropped (the TypeScript handler catches its own).
  void Deliver(int err) {
    if (callback_.IsEmpty()) {
      used_ = datagrams_ = 0;
      return;
    }
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Array datagrams = Napi::Array::New(env, used_ > 0 ? 1 : 0);
    if (used_ > 0) datagrams.Set(0u, Napi::Buffer<uint8_t>::Copy(env, batch_.get(), used_));
    used_ = datagrams_ = 0;
    try {
      callback_.MakeCallback(env.Global(), {Napi::Number::New(env, err), datagrams}, context_);
    } catch (const Napi::Error& error) {
      std::fprintf(stderr, "offloadd: link event handler threw: %s\n", error.Message().c_str());
    }
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  // Datagrams received and not yet delivered; room for one more whole datagram past kBatchBytes.
  // Not value-initialised: pages become resident only as far as a burst fills them.
  std::unique_ptr<uint8_t[]> batch_{new uint8_t[kBatchBytes + kReceiveBufferBytes + 4]};
  size_t used_ = 0;
  size_t datagrams_ = 0;
  // ifindex -> how many of the daemon's own feature events are still to come for it.
  std::unordered_map<int32_t, uint32_t> expected_;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

// dumpLinks(): Buffer[] — an RTM_GETLINK dump of every link, as the raw reply datagrams.
// Retries a dump the kernel marks interrupted (NLM_F_DUMP_INTR: links changed while it ran).
Napi::Value DumpLinks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (int attempt = 0; attempt < kDumpAttempts; attempt++) {
    RouteRequest route(env, kDumpTimeoutSeconds);
    const int fd = route.fd();

    std::vector<uint8_t> request;
    NetlinkBuilder builder(request);
    ifinfomsg link{};
    link.ifi_family = AF_UNSPEC;
    builder.Begin(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, &link, sizeof link);
    builder.PutU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);  // statistics are most of a link message; not needed
    builder.End();
    route.Send(env, request.data(), request.size(), "sendto(RTM_GETLINK)");

    std::vector<std::vector<uint8_t>> replies;
    static uint8_t buffer[kReceiveBufferBytes];
    bool done = false, interrupted = false;
    while (!done) {
      ssize_t n = recv(fd, buffer, sizeof buffer, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw SyscallError(env, errno, "recv(RTM_GETLINK)");
      }
      ForEachMessage(buffer, static_cast<size_t>(n), [&](const nlmsghdr* header) {
        if (header->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
        if (header->nlmsg_type == NLMSG_DONE) done = true;
        if (header->nlmsg_type == NLMSG_ERROR) {
          int err = NetlinkErrno(header, nullptr);
          if (err != 0) throw SyscallError(env, err, "RTM_GETLINK");
          done = true;
        }
      });
      replies.emplace_back(buffer, buffer + n);
    }
    if (interrupted) continue;

    Napi::Array result = Napi::Array::New(env, replies.size());
    for (size_t i = 0; i < replies.size(); i++)
      result.Set(i, Napi::Buffer<uint8_t>::Copy(env, replies[i].data(), replies[i].size()));
    return result;
  }
  throw SyscallError(env, EAGAIN, "RTM_GETLINK dump (links kept changing)");
}

// getLink(ifindex): Buffer | null — the kernel's RTM_NEWLINK for one link (RTM_GETLINK by
// ifindex), or null when no link has that ifindex. To tell a link that vanished from one that
// is still there although a call about it said ENODEV.
Napi::Value GetLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected (ifindex: number)");
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  if (ifindex <= 0) throw Napi::RangeError::New(env, "ifindex must be positive");
  RouteRequest route(env, kDumpTimeoutSeconds);

  std::vector<uint8_t> request;
  NetlinkBuilder builder(request);
  ifinfomsg link{};
  link.ifi_family = AF_UNSPEC;
  link.ifi_index = ifindex;
  builder.Begin(RTM_GETLINK, NLM_F_REQUEST, 1, &link, sizeof link);
  builder.PutU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  builder.End();
  route.Send(env, request.data(), request.size(), "sendto(RTM_GETLINK)");

  static uint8_t buffer[kReceiveBufferBytes];
  ssize_t n;
  do {
    n = recv(route.fd(), buffer, sizeof buffer, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw SyscallError(env, errno, "recv(RTM_GETLINK)");
  int err = 0;
  bool found = false;
  ForEachMessage(buffer, static_cast<size_t>(n), [&](const nlmsghdr* header) {
    if (header->nlmsg_type == NLMSG_ERROR) err = NetlinkErrno(header, nullptr);
    if (header->nlmsg_type == RTM_NEWLINK) found = true;
  });
  if (err == ENODEV) return env.Null();
  if (err != 0) throw SyscallError(env, err, "RTM_GETLINK");
  if (!found) return env.Null();
  return Napi::Buffer<uint8_t>::Copy(env, buffer, static_cast<size_t>(n));
}

}  // namespace

RouteRequest::RouteRequest(Napi::Env env, int timeoutSeconds)
    : fd_(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) {
  if (fd_ < 0) throw SyscallError(env, errno, "socket(AF_NETLINK)");
  timeval timeout{timeoutSeconds, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

void RouteRequest::Send(Napi::Env env, const void* request, size_t length, const char* what) const {
  sockaddr_nl kernel;
  std::memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, request, length, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    throw SyscallError(env, errno, what);
}

void InitRtnl(Napi::Env env, Napi::Object exports) {
  exports.Set("LinkMonitor", LinkMonitor::Define(env));
  exports.Set("dumpLinks", Napi::Function::New(env, DumpLinks, "dumpLinks"));
  exports.Set("getLink", Napi::Function::New(env, GetLink, "getLink"));
}

}  // namespace offloadd
