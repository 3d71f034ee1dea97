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
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "ethtool.h"
#include "netlink.h"
#include "syscall.h"

namespace offloadd {
namespace {

constexpr int kReceiveTimeoutSeconds = 2;
constexpr uint8_t kEthtoolGenlVersion = ETHTOOL_GENL_VERSION;
// ETHTOOL_A_FEATURES_* and ETHTOOL_A_BITSET_* are all below this.
constexpr int kMaxAttribute = 16;
using Attributes = NetlinkAttributes<kMaxAttribute>;

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

// Resolves the family once; false when this kernel has no ethtool netlink (the caller then uses
// the ioctls).
bool Resolve(Napi::Env env, Session& session) {
  if (session.resolved) return session.family != 0;
  OpenSocket(env, session);
  int err = 0;
  session.family = GenericFamilyId(session.fd, ETHTOOL_GENL_NAME, ++session.seq, &err);
  if (err != 0 && err != ENOENT) throw NetlinkError(env, err, "CTRL_CMD_GETFAMILY(ethtool)", 0, std::string());
  session.resolved = true;  // ENOENT: no such family, an old kernel
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
// JavaScript crosses into the addon once per batch.

constexpr size_t kWindowRequests = 256;
constexpr size_t kWindowBytes = 64 * 1024;  // well under the socket's send buffer
constexpr unsigned kReceiveSlots = 32;
constexpr size_t kSlotBytes = 4 * 1024;  // a compact features reply or error is a few hundred bytes
constexpr int kSocketReceiveBufferBytes = 4 * 1024 * 1024;

enum class Op { kGet, kSet };

// The SET reply's bitsets per interface (writeFeatures), in this order (SET_REPLY_BITSET in
// src/addon/binding.ts).
enum SetReplyBitset : size_t { kActiveChanged = 0, kActiveNow = 1, kUnmetBitset = 2, kSetReplyBitsets = 3 };

size_t RequestBytes(Op op, size_t words) {
  size_t header = NLMSG_HDRLEN + GENL_HDRLEN + 3 * NLA_HDRLEN + 2 * NLA_ALIGN(sizeof(uint32_t));
  if (op == Op::kGet) return header;
  return header + NLA_HDRLEN + NLA_HDRLEN + NLA_ALIGN(sizeof(uint32_t)) + 2 * (NLA_HDRLEN + words * sizeof(uint32_t));
}

// Copies a compact bitset's `part` into out[0, words); false when the bitset or the part is
// missing (a reply that does not parse).
bool TakeBitset(const Attributes& reply, int nest, int part, uint32_t* out, size_t words) {
  const nlattr* value = reply.Nested(nest).Get(part);
  if (!value) return false;
  size_t available = Attributes::PayloadLength(value) / sizeof(uint32_t);
  std::memset(out, 0, words * sizeof(uint32_t));
  std::memcpy(out, Attributes::Payload(value), std::min(available, words) * sizeof(uint32_t));
  return true;
}

// GET: the interface's four bitsets (FeatureBitset's order). SET (ethnl_set_features' reply):
// ACTIVE = old ^ new active (mask) and the new values (value); WANTED = the requested bits whose
// new active state is not as requested (mask).
bool ParseReply(Op op, const Attributes& reply, uint32_t* out, size_t words) {
  if (op == Op::kGet) {
    return TakeBitset(reply, ETHTOOL_A_FEATURES_HW, ETHTOOL_A_BITSET_VALUE, out + kAvailable * words, words) &&
           TakeBitset(reply, ETHTOOL_A_FEATURES_WANTED, ETHTOOL_A_BITSET_VALUE, out + kRequested * words, words) &&
           TakeBitset(reply, ETHTOOL_A_FEATURES_ACTIVE, ETHTOOL_A_BITSET_VALUE, out + kActive * words, words) &&
           TakeBitset(reply, ETHTOOL_A_FEATURES_NOCHANGE, ETHTOOL_A_BITSET_VALUE, out + kNeverChanged * words, words);
  }
  return TakeBitset(reply, ETHTOOL_A_FEATURES_ACTIVE, ETHTOOL_A_BITSET_MASK, out + kActiveChanged * words, words) &&
         TakeBitset(reply, ETHTOOL_A_FEATURES_ACTIVE, ETHTOOL_A_BITSET_VALUE, out + kActiveNow * words, words) &&
         TakeBitset(reply, ETHTOOL_A_FEATURES_WANTED, ETHTOOL_A_BITSET_MASK, out + kUnmetBitset * words, words);
}

size_t OutputWords(Op op, size_t words) {
  return (op == Op::kGet ? size_t{kFeatureBitsets} : size_t{kSetReplyBitsets}) * words;
}

constexpr int32_t kPending = -1;

// One batch: the requests (ifindexes; for SET each one's mask and values, `words` each), and per
// request its answer's bitsets (`out`, OutputWords each), its errno and its extended ACK text.
struct Batch {
  Op op;
  size_t words;
  std::vector<uint32_t> ifindexes;
  std::vector<uint32_t> masks;   // SET only
  std::vector<uint32_t> values;  // SET only
  uint32_t* out = nullptr;
  std::vector<int32_t> errnos;
  std::vector<std::string> extacks;
};

// Not value-initialised: only the pages a batch actually uses become resident.
struct Buffers {
  std::vector<uint8_t> send;
  std::unique_ptr<uint8_t[]> receiveBytes{new uint8_t[kReceiveSlots * kSlotBytes]};
  mmsghdr messages[kReceiveSlots];
  iovec vectors[kReceiveSlots];
  uint8_t* receive() { return receiveBytes.get(); }
  Buffers() {
    send.reserve(kWindowBytes + 4096);
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

// Request `item` of the batch, appended to the window.
void WriteRequest(NetlinkBuilder& builder, uint16_t family, const Batch& batch, size_t item, uint32_t seq) {
  genlmsghdr genl{};
  genl.cmd = batch.op == Op::kGet ? ETHTOOL_MSG_FEATURES_GET : ETHTOOL_MSG_FEATURES_SET;
  genl.version = kEthtoolGenlVersion;
  builder.Begin(family, NLM_F_REQUEST, seq, &genl, sizeof genl);  // no ACK: the reply (or the error) is the answer
  size_t nest = builder.BeginNest(ETHTOOL_A_FEATURES_HEADER);
  builder.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, batch.ifindexes[item]);
  builder.PutU32(ETHTOOL_A_HEADER_FLAGS, ETHTOOL_FLAG_COMPACT_BITSETS);
  builder.EndNest(nest);
  if (batch.op == Op::kSet) {
    size_t words = batch.words;
    size_t wanted = builder.BeginNest(ETHTOOL_A_FEATURES_WANTED);
    builder.PutU32(ETHTOOL_A_BITSET_SIZE, static_cast<uint32_t>(words * 32));
    builder.Put(ETHTOOL_A_BITSET_VALUE, batch.values.data() + item * words, words * sizeof(uint32_t));
    builder.Put(ETHTOOL_A_BITSET_MASK, batch.masks.data() + item * words, words * sizeof(uint32_t));
    builder.EndNest(wanted);
  }
  builder.End();
}

// Sends requests [first, first + n) in one datagram and collects their answers.
void RunWindow(Session& session, Buffers& buffers, Batch& batch, size_t first, size_t n) {
  buffers.send.clear();
  NetlinkBuilder builder(buffers.send);
  uint32_t firstSeq = session.seq + 1;
  for (size_t i = 0; i < n; i++) {
    batch.errnos[first + i] = kPending;
    WriteRequest(builder, session.family, batch, first + i, ++session.seq);
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    if (sendto(session.fd, buffers.send.data(), buffers.send.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) >= 0)
      break;
    if (errno == EINTR) continue;
    int err = errno;
    for (size_t i = 0; i < n; i++) batch.errnos[first + i] = err;
    return;
  }
  size_t outWords = OutputWords(batch.op, batch.words);
  size_t answered = 0;
  while (answered < n) {
    for (unsigned slot = 0; slot < kReceiveSlots; slot++) buffers.messages[slot].msg_len = 0;
    int got = recvmmsg(session.fd, buffers.messages, kReceiveSlots, MSG_DONTWAIT, nullptr);
    if (got < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;  // ENOBUFS: some replies were dropped; read the rest
      break;                                             // EAGAIN: nothing more is coming
    }
    for (int slot = 0; slot < got; slot++) {
      ForEachMessage(buffers.receive() + slot * kSlotBytes, buffers.messages[slot].msg_len,
                     [&](const nlmsghdr* header) {
                       uint32_t index = header->nlmsg_seq - firstSeq;
                       if (index >= n) return;  // a late answer to an earlier exchange
                       size_t item = first + index;
                       if (batch.errnos[item] != kPending) return;
                       if (header->nlmsg_type == NLMSG_ERROR) {
                         int err = NetlinkErrno(header, &batch.extacks[item]);
                         if (err == 0) return;  // an ACK we did not ask for
                         batch.errnos[item] = err;
                       } else if (header->nlmsg_type == session.family) {
                         Attributes reply = Attributes::OfMessage(header, NLMSG_HDRLEN + GENL_HDRLEN);
                         bool parsed = ParseReply(batch.op, reply, batch.out + item * outWords, batch.words);
                         batch.errnos[item] = parsed ? 0 : EBADMSG;
                       } else {
                         batch.errnos[item] = EBADMSG;
                       }
                       answered++;
                     });
    }
  }
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
  size_t count = batch.ifindexes.size();
  size_t perWindow = std::min(kWindowRequests, kWindowBytes / RequestBytes(batch.op, batch.words));
  for (size_t first = 0; first < count; first += perWindow)
    RunWindow(session, buffers, batch, first, std::min(perWindow, count - first));
}

uint32_t IfindexValue(Napi::Env env, const Napi::Value& value) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "ifindex must be a number");
  double ifindex = value.As<Napi::Number>().DoubleValue();
  if (!(ifindex >= 1 && ifindex <= 0x7fffffff)) throw Napi::RangeError::New(env, "ifindex out of range");
  return static_cast<uint32_t>(ifindex);
}

Napi::Array ArrayArg(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(info.Env(), std::string("expected ") + what);
  return info[0].As<Napi::Array>();
}

// Room for a batch's answers, zeroed (a refused request's bitsets stay zero); `batch.out` points into it.
Napi::ArrayBuffer AnswerBits(Napi::Env env, Batch& batch) {
  Napi::ArrayBuffer bits =
      Napi::ArrayBuffer::New(env, batch.ifindexes.size() * OutputWords(batch.op, batch.words) * sizeof(uint32_t));
  batch.out = static_cast<uint32_t*>(bits.Data());
  return bits;
}

// A batch's answers, flat (FeaturesBatch in src/addon/binding.ts): { words, bits, errnos, extacks }.
// `bits` holds every request's bitsets in request order (OutputWords each), `errnos` 0 or the
// errno of each refused request, `extacks` the kernel's texts ('' where none), or null when it
// gave none at all. One object and two typed arrays per batch, whatever its size: an object with
// a typed-array view per bitset and interface was the largest allocation of a drift check.
Napi::Object FlatAnswers(Napi::Env env, const Batch& batch, Napi::ArrayBuffer bits) {
  size_t count = batch.ifindexes.size();
  Napi::Int32Array errnos = Napi::Int32Array::New(env, count);
  bool anyExtack = false;
  for (size_t i = 0; i < count; i++) {
    errnos[i] = batch.errnos[i];
    anyExtack = anyExtack || !batch.extacks[i].empty();
  }
  Napi::Value extacks = env.Null();
  if (anyExtack) {
    Napi::Array texts = Napi::Array::New(env, count);
    for (size_t i = 0; i < count; i++) texts.Set(i, Napi::String::New(env, batch.extacks[i]));
    extacks = texts;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("words", Napi::Number::New(env, static_cast<double>(batch.words)));
  result.Set("bits", Napi::Uint32Array::New(env, bits.ByteLength() / sizeof(uint32_t), bits, 0));
  result.Set("errnos", errnos);
  result.Set("extacks", extacks);
  return result;
}

// ethtoolNetlinkAvailable(): boolean — resolves the family on first use.
Napi::Value Available(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Resolve(info.Env(), TheSession()));
}

// readFeatures(ifindexes: number[]) → FlatAnswers: per ifindex, in order, its four bitsets
// (FeatureBitset's order: available, requested, active, neverChanged) or its errno and extack
// (ENOBUFS: no answer; EBADMSG: an answer that did not parse). Every FEATURES_GET is pipelined.
Napi::Value ReadFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array ifindexes = ArrayArg(info, "(ifindexes: number[])");
  size_t count = ifindexes.Length();
  Batch batch{Op::kGet, FeatureWords(env), {}, {}, {}, nullptr, {}, {}};
  batch.ifindexes.resize(count);
  for (size_t i = 0; i < count; i++) batch.ifindexes[i] = IfindexValue(env, ifindexes.Get(i));
  batch.errnos.resize(count);
  batch.extacks.resize(count);
  Napi::ArrayBuffer bits = AnswerBits(env, batch);
  if (count > 0) RunBatch(env, batch);
  return FlatAnswers(env, batch, bits);
}

// writeFeatures(writes: { ifindex, enable: number[], disable: number[] }[]) with feature bits
// (the ETH_SS_FEATURES set's indexes) → FlatAnswers: per write, in order, the FEATURES_SET
// reply's three bitsets (SetReplyBitset's order: which active bits changed, their values now,
// and which requested bits the kernel did not grant; all zero when nothing changed), or its
// errno and extack as readFeatures. Every FEATURES_SET is pipelined.
Napi::Value WriteFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array writes = ArrayArg(info, "(writes: { ifindex, enable, disable }[])");
  size_t count = writes.Length();
  size_t words = FeatureWords(env);
  Batch batch{Op::kSet, words, {}, {}, {}, nullptr, {}, {}};
  batch.ifindexes.resize(count);
  batch.masks.resize(count * words);
  batch.values.resize(count * words);
  for (size_t i = 0; i < count; i++) {
    Napi::Value write = writes.Get(i);
    if (!write.IsObject()) throw Napi::TypeError::New(env, "expected { ifindex, enable, disable }");
    batch.ifindexes[i] = IfindexValue(env, write.As<Napi::Object>().Get("ifindex"));
    WantedFromArgs(env, write, batch.masks.data() + i * words, batch.values.data() + i * words, words);
  }
  batch.errnos.resize(count);
  batch.extacks.resize(count);
  Napi::ArrayBuffer bits = AnswerBits(env, batch);
  if (count > 0) RunBatch(env, batch);
  return FlatAnswers(env, batch, bits);
}

}  // namespace

void InitEthtoolNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("ethtoolNetlinkAvailable", Napi::Function::New(env, Available, "ethtoolNetlinkAvailable"));
  exports.Set("readFeatures", Napi::Function::New(env, ReadFeatures, "readFeatures"));
  exports.Set("writeFeatures", Napi::Function::New(env, WriteFeatures, "writeFeatures"));
}

}  // namespace offloadd
