// Offload features over ethtool netlink (generic netlink family "ethtool", kernel >= 5.6):
// ETHTOOL_MSG_FEATURES_GET and _SET addressed by ifindex, with compact bitsets. Unlike the
// SIOCETHTOOL ioctls, which take a name, a request by ifindex can never reach another interface
// that took the name meanwhile: a vanished ifindex is ENODEV.
//
// One NETLINK_GENERIC socket for the process. The kernel answers synchronously inside sendmsg's
// call chain, so once a request is sent its answer is already queued: the family look-up waits
// for its ACK (SO_RCVTIMEO guards against a bug), and the features requests (pipelined, below)
// never wait at all.
#include "ethtool_netlink.h"

#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "syscall.h"

namespace offloadd {
namespace {

constexpr size_t kReceiveBufferBytes = 64 * 1024;  // a features reply for any device is < 1 KiB
constexpr int kReceiveTimeoutSeconds = 2;
constexpr uint8_t kEthtoolGenlVersion = ETHTOOL_GENL_VERSION;

struct Session {
  int fd = -1;
  uint16_t family = 0;  // 0: not resolved, or the kernel has no ethtool family
  uint32_t seq = 0;
  bool resolved = false;
};

Session& TheSession() {
  static Session session;
  return session;
}

// A netlink message under construction: header, genetlink header, attributes.
class Message {
 public:
  Message(uint16_t type, uint16_t flags, uint8_t command, uint8_t version) {
    buffer_.resize(NLMSG_HDRLEN + GENL_HDRLEN);
    auto* header = reinterpret_cast<nlmsghdr*>(buffer_.data());
    header->nlmsg_type = type;
    header->nlmsg_flags = flags;
    auto* genl = reinterpret_cast<genlmsghdr*>(buffer_.data() + NLMSG_HDRLEN);
    genl->cmd = command;
    genl->version = version;
  }

  void Put(uint16_t type, const void* data, size_t length) {
    size_t at = buffer_.size();
    buffer_.resize(at + NLA_ALIGN(NLA_HDRLEN + length));
    auto* attribute = reinterpret_cast<nlattr*>(buffer_.data() + at);
    attribute->nla_type = type;
    attribute->nla_len = static_cast<uint16_t>(NLA_HDRLEN + length);
    if (length > 0) std::memcpy(buffer_.data() + at + NLA_HDRLEN, data, length);
  }
  void PutU32(uint16_t type, uint32_t value) { Put(type, &value, sizeof value); }
  void PutString(uint16_t type, const std::string& value) { Put(type, value.c_str(), value.size() + 1); }

  size_t BeginNest(uint16_t type) {
    size_t at = buffer_.size();
    Put(type | NLA_F_NESTED, nullptr, 0);
    return at;
  }
  void EndNest(size_t at) {
    reinterpret_cast<nlattr*>(buffer_.data() + at)->nla_len = static_cast<uint16_t>(buffer_.size() - at);
  }

  std::vector<uint8_t>& Finish(uint32_t seq) {
    auto* header = reinterpret_cast<nlmsghdr*>(buffer_.data());
    header->nlmsg_len = static_cast<uint32_t>(buffer_.size());
    header->nlmsg_seq = seq;
    return buffer_;
  }

 private:
  std::vector<uint8_t> buffer_;
};

// Attributes of one level, by type (the last of a type wins, as in the kernel's parser).
struct Attributes {
  static constexpr int kMax = 16;
  const nlattr* by_type[kMax] = {};

  Attributes(const uint8_t* data, size_t length) {
    size_t offset = 0;
    while (offset + NLA_HDRLEN <= length) {
      const auto* attribute = reinterpret_cast<const nlattr*>(data + offset);
      if (attribute->nla_len < NLA_HDRLEN || offset + attribute->nla_len > length) break;
      int type = attribute->nla_type & NLA_TYPE_MASK;
      if (type < kMax) by_type[type] = attribute;
      offset += NLA_ALIGN(attribute->nla_len);
    }
  }
  static const uint8_t* Payload(const nlattr* attribute) {
    return reinterpret_cast<const uint8_t*>(attribute) + NLA_HDRLEN;
  }
  static size_t PayloadLength(const nlattr* attribute) { return attribute->nla_len - NLA_HDRLEN; }
  Attributes Nested(int type) const {
    const nlattr* attribute = type < kMax ? by_type[type] : nullptr;
    return attribute ? Attributes(Payload(attribute), PayloadLength(attribute)) : Attributes(nullptr, 0);
  }
};

Napi::Error NetlinkError(Napi::Env env, int err, const char* what, uint32_t ifindex, const std::string& extack) {
  Napi::Error error = SyscallError(env, err, what);
  if (ifindex > 0) error.Value().Set("ifindex", Napi::Number::New(env, ifindex));
  if (!extack.empty()) {
    error.Value().Set("message", Napi::String::New(env, error.Message() + " (" + extack + ")"));
    error.Value().Set("extack", Napi::String::New(env, extack));
  }
  return error;
}

void OpenSocket(Napi::Env env, Session& session) {
  if (session.fd >= 0) return;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) throw SyscallError(env, errno, "socket(NETLINK_GENERIC)");
  int on = 1;
  // The kernel's own explanation of a refusal (extended ACK), without an echo of our request.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  timeval timeout{kReceiveTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  session.fd = fd;
}

// The errno and extended ACK text of an NLMSG_ERROR (errno 0: an ACK).
int ErrorOf(const nlmsghdr* header, std::string* extack) {
  if (header->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return EBADMSG;
  const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
  if (error->error == 0) return 0;
  if (extack && (header->nlmsg_flags & NLM_F_ACK_TLVS)) {
    size_t at = NLMSG_HDRLEN + sizeof(nlmsgerr);
    if (!(header->nlmsg_flags & NLM_F_CAPPED)) at += error->msg.nlmsg_len - sizeof(nlmsghdr);
    if (at < header->nlmsg_len) {
      Attributes tlvs(reinterpret_cast<const uint8_t*>(header) + at, header->nlmsg_len - at);
      const nlattr* text = tlvs.by_type[NLMSGERR_ATTR_MSG];
      if (text && Attributes::PayloadLength(text) > 0)
        extack->assign(
            reinterpret_cast<const char*>(Attributes::Payload(text)),
            strnlen(reinterpret_cast<const char*>(Attributes::Payload(text)), Attributes::PayloadLength(text)));
    }
  }
  return error->error < 0 ? -error->error : EPROTO;
}

// Sends one request and hands every reply message to `onReply` until the ACK. Throws on a
// netlink error, with the kernel's extended ACK text when it gave one.
template <typename OnReply>
void Exchange(Napi::Env env, Session& session, Message& message, const char* what, uint32_t ifindex, OnReply onReply) {
  uint32_t seq = ++session.seq;
  std::vector<uint8_t>& request = message.Finish(seq);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(session.fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    throw NetlinkError(env, errno, what, ifindex, std::string());
  std::vector<uint8_t> buffer(kReceiveBufferBytes);
  for (;;) {
    ssize_t received = recv(session.fd, buffer.data(), buffer.size(), 0);
    if (received < 0) {
      if (errno == EINTR) continue;
      throw NetlinkError(env, errno, what, ifindex, std::string());
    }
    size_t remaining = static_cast<size_t>(received);
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, remaining);
         header = NLMSG_NEXT(header, remaining)) {
      if (header->nlmsg_seq != seq) continue;  // a late answer to an earlier, failed exchange
      if (header->nlmsg_type == NLMSG_ERROR) {
        std::string extack;
        int err = ErrorOf(header, &extack);
        if (err == 0) return;  // the ACK: done
        throw NetlinkError(env, err, what, ifindex, extack);
      }
      if (header->nlmsg_type == NLMSG_DONE) return;
      size_t offset = NLMSG_HDRLEN + GENL_HDRLEN;
      if (header->nlmsg_len < offset) continue;
      onReply(Attributes(reinterpret_cast<const uint8_t*>(header) + offset, header->nlmsg_len - offset));
    }
  }
}

// Resolves the family once; false when this kernel has no ethtool netlink (the caller then uses
// the ioctls).
bool Resolve(Napi::Env env, Session& session) {
  if (session.resolved) return session.family != 0;
  OpenSocket(env, session);
  Message message(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, CTRL_CMD_GETFAMILY, 1);
  message.PutString(CTRL_ATTR_FAMILY_NAME, ETHTOOL_GENL_NAME);
  try {
    Exchange(env, session, message, "CTRL_CMD_GETFAMILY(ethtool)", 0, [&](const Attributes& attributes) {
      const nlattr* id = attributes.by_type[CTRL_ATTR_FAMILY_ID];
      if (id && Attributes::PayloadLength(id) >= sizeof(uint16_t))
        std::memcpy(&session.family, Attributes::Payload(id), sizeof(uint16_t));
    });
  } catch (const Napi::Error& error) {
    Napi::Value code = error.Value().Get("errno");
    if (!code.IsNumber() || code.As<Napi::Number>().Int32Value() != ENOENT) throw;
    session.family = 0;  // no such family: an old kernel
  }
  session.resolved = true;
  return session.family != 0;
}

// ---- Pipelined requests ----------------------------------------------------------------------
//
// A batch of FEATURES_GET or FEATURES_SET requests, one per ifindex, is written into one buffer
// and sent with one sendto() per window: the kernel's generic netlink receive path handles every
// message of the datagram inside that call (each under its own rtnl_lock) and queues one reply
// per request on our socket (no NLM_F_ACK: a success is its reply, a failure its NLMSG_ERROR,
// matched by sequence number). By the time sendto() returns every answer is queued or, if the
// receive buffer overflowed, dropped; the replies are then read without blocking, many per
// recvmmsg(), and a request left without an answer is ENOBUFS (the caller re-reads it).
// JavaScript crosses into the addon once per batch, with its buffers preallocated.

constexpr size_t kWindowRequests = 256;
constexpr size_t kWindowBytes = 64 * 1024;  // well under the socket's send buffer
constexpr unsigned kReceiveSlots = 32;
constexpr size_t kSlotBytes = 4 * 1024;  // a compact features reply or error is a few hundred bytes
constexpr int kSocketReceiveBufferBytes = 4 * 1024 * 1024;
constexpr size_t kMaxWords = 64;

enum class Op { kGet, kSet };

// Appends netlink attributes to a raw buffer (the window buffer is sized before use).
struct Writer {
  uint8_t* base;
  size_t at;
  void Put(uint16_t type, const void* data, size_t length) {
    auto* attribute = reinterpret_cast<nlattr*>(base + at);
    attribute->nla_type = type;
    attribute->nla_len = static_cast<uint16_t>(NLA_HDRLEN + length);
    if (length > 0) std::memcpy(base + at + NLA_HDRLEN, data, length);
    size_t padded = NLA_ALIGN(NLA_HDRLEN + length);
    std::memset(base + at + NLA_HDRLEN + length, 0, padded - NLA_HDRLEN - length);
    at += padded;
  }
  void PutU32(uint16_t type, uint32_t value) { Put(type, &value, sizeof value); }
  size_t BeginNest(uint16_t type) {
    size_t nest = at;
    Put(type | NLA_F_NESTED, nullptr, 0);
    return nest;
  }
  void EndNest(size_t nest) { reinterpret_cast<nlattr*>(base + nest)->nla_len = static_cast<uint16_t>(at - nest); }
};

size_t RequestBytes(Op op, size_t words) {
  size_t header = NLMSG_HDRLEN + GENL_HDRLEN + 3 * NLA_HDRLEN + 2 * NLA_ALIGN(sizeof(uint32_t));
  if (op == Op::kGet) return header;
  return header + NLA_HDRLEN + NLA_HDRLEN + NLA_ALIGN(sizeof(uint32_t)) + 2 * (NLA_HDRLEN + words * sizeof(uint32_t));
}

// One request at `writer.at`; `pairs` is ETHTOOL_SFEATURES' [valid, requested] per word (SET only).
void WriteRequest(Writer& writer, uint16_t family, Op op, uint32_t seq, uint32_t ifindex, size_t words,
                  const uint32_t* pairs) {
  size_t start = writer.at;
  auto* header = reinterpret_cast<nlmsghdr*>(writer.base + start);
  header->nlmsg_type = family;
  header->nlmsg_flags = NLM_F_REQUEST;  // no ACK: the reply (or the error) is the answer
  header->nlmsg_seq = seq;
  header->nlmsg_pid = 0;
  auto* genl = reinterpret_cast<genlmsghdr*>(writer.base + start + NLMSG_HDRLEN);
  genl->cmd = op == Op::kGet ? ETHTOOL_MSG_FEATURES_GET : ETHTOOL_MSG_FEATURES_SET;
  genl->version = kEthtoolGenlVersion;
  genl->reserved = 0;
  writer.at = start + NLMSG_HDRLEN + GENL_HDRLEN;
  size_t nest = writer.BeginNest(ETHTOOL_A_FEATURES_HEADER);
  writer.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, ifindex);
  writer.PutU32(ETHTOOL_A_HEADER_FLAGS, ETHTOOL_FLAG_COMPACT_BITSETS);
  writer.EndNest(nest);
  if (op == Op::kSet) {
    uint32_t value[kMaxWords], mask[kMaxWords];
    for (size_t word = 0; word < words; word++) {
      mask[word] = pairs[word * 2];
      value[word] = pairs[word * 2 + 1];
    }
    size_t wanted = writer.BeginNest(ETHTOOL_A_FEATURES_WANTED);
    writer.PutU32(ETHTOOL_A_BITSET_SIZE, static_cast<uint32_t>(words * 32));
    writer.Put(ETHTOOL_A_BITSET_VALUE, value, words * sizeof(uint32_t));
    writer.Put(ETHTOOL_A_BITSET_MASK, mask, words * sizeof(uint32_t));
    writer.EndNest(wanted);
  }
  header->nlmsg_len = static_cast<uint32_t>(writer.at - start);
}

// Copies a compact bitset's `part` words into out[word * stride]; false when the bitset or the
// part is missing (a reply that does not parse).
bool TakeBitset(const Attributes& reply, int nest, int part, uint32_t* out, size_t words, size_t stride) {
  const nlattr* bitset = nest < Attributes::kMax ? reply.by_type[nest] : nullptr;
  if (!bitset) return false;
  Attributes inner(Attributes::Payload(bitset), Attributes::PayloadLength(bitset));
  const nlattr* value = inner.by_type[part];
  if (!value) return false;
  size_t available = Attributes::PayloadLength(value) / sizeof(uint32_t);
  for (size_t word = 0; word < words; word++) {
    uint32_t bits = 0;
    if (word < available) std::memcpy(&bits, Attributes::Payload(value) + word * sizeof(uint32_t), sizeof bits);
    out[word * stride] = bits;
  }
  return true;
}

// Output per request: GET — words × [available, requested, active, never_changed] (GFEATURES'
// layout); SET — [activeChanged × words, activeNow × words, unmet × words].
size_t OutputWords(Op op, size_t words) { return op == Op::kGet ? words * 4 : words * 3; }

bool ParseReply(Op op, const Attributes& reply, uint32_t* out, size_t words) {
  if (op == Op::kGet) {
    return TakeBitset(reply, ETHTOOL_A_FEATURES_HW, ETHTOOL_A_BITSET_VALUE, out + 0, words, 4) &&
           TakeBitset(reply, ETHTOOL_A_FEATURES_WANTED, ETHTOOL_A_BITSET_VALUE, out + 1, words, 4) &&
           TakeBitset(reply, ETHTOOL_A_FEATURES_ACTIVE, ETHTOOL_A_BITSET_VALUE, out + 2, words, 4) &&
           TakeBitset(reply, ETHTOOL_A_FEATURES_NOCHANGE, ETHTOOL_A_BITSET_VALUE, out + 3, words, 4);
  }
  // ethnl_set_features' reply: ACTIVE = old ^ new active (mask) and the new values (value);
  // WANTED = the requested bits whose new active state is not as requested (mask).
  return TakeBitset(reply, ETHTOOL_A_FEATURES_ACTIVE, ETHTOOL_A_BITSET_MASK, out, words, 1) &&
         TakeBitset(reply, ETHTOOL_A_FEATURES_ACTIVE, ETHTOOL_A_BITSET_VALUE, out + words, words, 1) &&
         TakeBitset(reply, ETHTOOL_A_FEATURES_WANTED, ETHTOOL_A_BITSET_MASK, out + 2 * words, words, 1);
}

constexpr int32_t kPending = -1;

struct Batch {
  Op op;
  const int32_t* ifindexes;
  size_t count;
  size_t words;
  const uint32_t* pairs;  // SET: words * 2 per request
  uint32_t* out;
  int32_t* errnos;
  std::vector<std::pair<size_t, std::string>> extacks;  // only for requests that failed with a text
};

// Not value-initialised: only the pages a batch actually uses become resident.
struct Buffers {
  std::unique_ptr<uint8_t[]> sendBytes{new uint8_t[kWindowBytes + 4096]};
  std::unique_ptr<uint8_t[]> receiveBytes{new uint8_t[kReceiveSlots * kSlotBytes]};
  mmsghdr messages[kReceiveSlots];
  iovec vectors[kReceiveSlots];
  uint8_t* send() { return sendBytes.get(); }
  uint8_t* receive() { return receiveBytes.get(); }
  Buffers() {
    for (unsigned slot = 0; slot < kReceiveSlots; slot++) {
      vectors[slot] = {receiveBytes.get() + slot * kSlotBytes, kSlotBytes};
      std::memset(&messages[slot], 0, sizeof messages[slot]);
      messages[slot].msg_hdr.msg_iov = &vectors[slot];
      messages[slot].msg_hdr.msg_iovlen = 1;
    }
  }
};

Buffers& TheBuffers() {
  static Buffers buffers;
  return buffers;
}

void EnlargeReceiveBuffer(Session& session) {
  static bool done = false;
  if (done) return;
  done = true;
  int bytes = kSocketReceiveBufferBytes;
  // SO_RCVBUFFORCE needs CAP_NET_ADMIN (the daemon has it); SO_RCVBUF is the unprivileged cap.
  if (setsockopt(session.fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0)
    setsockopt(session.fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

// Sends requests [first, first + n) in one datagram and collects their answers.
void RunWindow(Napi::Env env, Session& session, Buffers& buffers, Batch& batch, size_t first, size_t n) {
  Writer writer{buffers.send(), 0};
  uint32_t firstSeq = session.seq + 1;
  for (size_t i = 0; i < n; i++) {
    size_t item = first + i;
    batch.errnos[item] = kPending;
    std::memset(batch.out + item * OutputWords(batch.op, batch.words), 0,
                OutputWords(batch.op, batch.words) * sizeof(uint32_t));
    WriteRequest(writer, session.family, batch.op, ++session.seq, static_cast<uint32_t>(batch.ifindexes[item]),
                 batch.words, batch.pairs ? batch.pairs + item * batch.words * 2 : nullptr);
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    if (sendto(session.fd, buffers.send(), writer.at, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) >= 0)
      break;
    if (errno == EINTR) continue;
    int err = errno;
    for (size_t i = 0; i < n; i++) batch.errnos[first + i] = err;
    return;
  }
  size_t answered = 0;
  while (answered < n) {
    for (unsigned slot = 0; slot < kReceiveSlots; slot++) buffers.messages[slot].msg_len = 0;
    int got = recvmmsg(session.fd, buffers.messages, kReceiveSlots, MSG_DONTWAIT, nullptr);
    if (got < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;  // ENOBUFS: some replies were dropped; read the rest
      break;                                             // EAGAIN: nothing more is coming
    }
    for (int slot = 0; slot < got; slot++) {
      size_t remaining = buffers.messages[slot].msg_len;
      for (auto* header = reinterpret_cast<nlmsghdr*>(buffers.receive() + slot * kSlotBytes);
           NLMSG_OK(header, remaining); header = NLMSG_NEXT(header, remaining)) {
        uint32_t index = header->nlmsg_seq - firstSeq;
        if (index >= n) continue;  // a late answer to an earlier exchange
        size_t item = first + index;
        if (batch.errnos[item] != kPending) continue;
        if (header->nlmsg_type == NLMSG_ERROR) {
          std::string extack;
          int err = ErrorOf(header, &extack);
          if (err == 0) continue;  // an ACK we did not ask for
          batch.errnos[item] = err;
          if (!extack.empty()) batch.extacks.emplace_back(item, std::move(extack));
        } else if (header->nlmsg_type == session.family && header->nlmsg_len >= NLMSG_HDRLEN + GENL_HDRLEN) {
          size_t offset = NLMSG_HDRLEN + GENL_HDRLEN;
          Attributes reply(reinterpret_cast<const uint8_t*>(header) + offset, header->nlmsg_len - offset);
          bool parsed = ParseReply(batch.op, reply, batch.out + item * OutputWords(batch.op, batch.words), batch.words);
          batch.errnos[item] = parsed ? 0 : EBADMSG;
        } else {
          batch.errnos[item] = EBADMSG;
        }
        answered++;
      }
    }
  }
  (void)env;
  // Dropped (receive buffer overflow) or never answered: the caller reads these again.
  for (size_t i = 0; i < n; i++)
    if (batch.errnos[first + i] == kPending) batch.errnos[first + i] = ENOBUFS;
}

void RunBatch(Napi::Env env, Batch& batch) {
  Session& session = TheSession();
  if (!Resolve(env, session))
    throw SyscallError(env, EOPNOTSUPP, batch.op == Op::kGet ? "ETHTOOL_MSG_FEATURES_GET" : "ETHTOOL_MSG_FEATURES_SET");
  EnlargeReceiveBuffer(session);
  Buffers& buffers = TheBuffers();
  size_t perWindow = std::min(kWindowRequests, kWindowBytes / RequestBytes(batch.op, batch.words));
  for (size_t first = 0; first < batch.count; first += perWindow)
    RunWindow(env, session, buffers, batch, first, std::min(perWindow, batch.count - first));
}

size_t WordsValue(Napi::Env env, const Napi::Value& value) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "words must be a number");
  double words = value.As<Napi::Number>().DoubleValue();
  if (!(words >= 1 && words <= kMaxWords)) throw Napi::RangeError::New(env, "words out of range");
  return static_cast<size_t>(words);
}

uint32_t IfindexValue(Napi::Env env, const Napi::Value& value) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "ifindex must be a number");
  double ifindex = value.As<Napi::Number>().DoubleValue();
  if (!(ifindex >= 1 && ifindex <= 0x7fffffff)) throw Napi::RangeError::New(env, "ifindex out of range");
  return static_cast<uint32_t>(ifindex);
}

template <typename Array>
Array TypedArg(const Napi::CallbackInfo& info, size_t at, napi_typedarray_type type, const char* what) {
  if (info.Length() <= at || !info[at].IsTypedArray() || info[at].As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(info.Env(), std::string("expected ") + what);
  return info[at].As<Array>();
}

// ethtoolNetlinkAvailable(): boolean — resolves the family on first use.
Napi::Value Available(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Resolve(info.Env(), TheSession()));
}

// netlinkFeaturesBatch(set: boolean, ifindexes: Int32Array, count: number, words: number,
//                      pairs: Uint32Array | null, out: Uint32Array, errnos: Int32Array)
//   → undefined, or [index, extack, index, extack, ...] for the requests the kernel refused with a text.
// GET: out holds count × words × 4 (see OutputWords); SET: pairs holds count × words × 2
// ([valid, requested] per word) and out count × words × 3. errnos[i]: 0, or the request's errno
// (ENOBUFS: no answer, EBADMSG: an answer that did not parse).
Napi::Value FeaturesBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsBoolean() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "expected (set, ifindexes, count, words, pairs, out, errnos)");
  Op op = info[0].As<Napi::Boolean>().Value() ? Op::kSet : Op::kGet;
  auto ifindexes = TypedArg<Napi::Int32Array>(info, 1, napi_int32_array, "ifindexes: Int32Array");
  double count = info[2].As<Napi::Number>().DoubleValue();
  size_t words = WordsValue(env, info[3]);
  if (!(count >= 0 && count <= ifindexes.ElementLength())) throw Napi::RangeError::New(env, "count out of range");
  size_t n = static_cast<size_t>(count);
  const uint32_t* pairs = nullptr;
  if (op == Op::kSet) {
    auto array = TypedArg<Napi::Uint32Array>(info, 4, napi_uint32_array, "pairs: Uint32Array");
    if (array.ElementLength() < n * words * 2) throw Napi::RangeError::New(env, "pairs must hold count * words * 2");
    pairs = array.Data();
  }
  auto out = TypedArg<Napi::Uint32Array>(info, 5, napi_uint32_array, "out: Uint32Array");
  auto errnos = TypedArg<Napi::Int32Array>(info, 6, napi_int32_array, "errnos: Int32Array");
  if (out.ElementLength() < n * OutputWords(op, words)) throw Napi::RangeError::New(env, "out is too small");
  if (errnos.ElementLength() < n) throw Napi::RangeError::New(env, "errnos is too small");
  for (size_t i = 0; i < n; i++) IfindexValue(env, Napi::Number::New(env, ifindexes[i]));
  Batch batch{op, ifindexes.Data(), n, words, pairs, out.Data(), errnos.Data(), {}};
  RunBatch(env, batch);
  if (batch.extacks.empty()) return env.Undefined();
  Napi::Array texts = Napi::Array::New(env, batch.extacks.size() * 2);
  uint32_t at = 0;
  for (auto& [item, text] : batch.extacks) {
    texts.Set(at++, Napi::Number::New(env, static_cast<double>(item)));
    texts.Set(at++, Napi::String::New(env, text));
  }
  return texts;
}

// One request through the batch path; throws as the old synchronous call did.
void RunOne(Napi::Env env, Op op, uint32_t ifindex, size_t words, const uint32_t* pairs, uint32_t* out) {
  int32_t index = static_cast<int32_t>(ifindex);
  int32_t err = 0;
  Batch batch{op, &index, 1, words, pairs, out, &err, {}};
  RunBatch(env, batch);
  if (err != 0)
    throw NetlinkError(env, err, op == Op::kGet ? "ETHTOOL_MSG_FEATURES_GET" : "ETHTOOL_MSG_FEATURES_SET", ifindex,
                       batch.extacks.empty() ? std::string() : batch.extacks.front().second);
}

// netlinkGetFeatures(ifindex, words): Uint32Array(words * 4) in ETHTOOL_GFEATURES' layout:
// per 32-bit word [available (hw), requested (wanted), active, never_changed (nochange)].
Napi::Value GetFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw Napi::TypeError::New(env, "expected (ifindex: number, words: number)");
  uint32_t ifindex = IfindexValue(env, info[0]);
  size_t words = WordsValue(env, info[1]);
  Napi::Uint32Array blocks = Napi::Uint32Array::New(env, words * 4);
  RunOne(env, Op::kGet, ifindex, words, nullptr, blocks.Data());
  return blocks;
}

// netlinkSetFeatures(ifindex, words, blocks: Uint32Array(words * 2) as ETHTOOL_SFEATURES' [valid,
// requested] per word): { activeChanged, activeNow, unmet } each Uint32Array(words) — the SET
// reply: which active bits changed and their new values, and which requested bits the kernel did
// not grant. All zero when nothing changed.
Napi::Value SetFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) throw Napi::TypeError::New(env, "expected (ifindex, words, blocks: Uint32Array)");
  uint32_t ifindex = IfindexValue(env, info[0]);
  size_t words = WordsValue(env, info[1]);
  auto blocks = TypedArg<Napi::Uint32Array>(info, 2, napi_uint32_array, "blocks: Uint32Array");
  if (blocks.ElementLength() != words * 2) throw Napi::RangeError::New(env, "blocks must hold words * 2 values");
  std::vector<uint32_t> out(words * 3);
  RunOne(env, Op::kSet, ifindex, words, blocks.Data(), out.data());
  Napi::Uint32Array activeChanged = Napi::Uint32Array::New(env, words);
  Napi::Uint32Array activeNow = Napi::Uint32Array::New(env, words);
  Napi::Uint32Array unmet = Napi::Uint32Array::New(env, words);
  std::memcpy(activeChanged.Data(), out.data(), words * sizeof(uint32_t));
  std::memcpy(activeNow.Data(), out.data() + words, words * sizeof(uint32_t));
  std::memcpy(unmet.Data(), out.data() + 2 * words, words * sizeof(uint32_t));
  Napi::Object result = Napi::Object::New(env);
  result.Set("activeChanged", activeChanged);
  result.Set("activeNow", activeNow);
  result.Set("unmet", unmet);
  return result;
}

}  // namespace

void InitEthtoolNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("ethtoolNetlinkAvailable", Napi::Function::New(env, Available));
  exports.Set("netlinkGetFeatures", Napi::Function::New(env, GetFeatures));
  exports.Set("netlinkSetFeatures", Napi::Function::New(env, SetFeatures));
  exports.Set("netlinkFeaturesBatch", Napi::Function::New(env, FeaturesBatch));
}

}  // namespace offloadd
