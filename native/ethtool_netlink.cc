// Offload features over ethtool netlink (generic netlink family "ethtool", kernel >= 5.6):
// ETHTOOL_MSG_FEATURES_GET and _SET addressed by ifindex, with compact bitsets. Unlike the
// SIOCETHTOOL ioctls, which take a name, a request by ifindex can never reach another interface
// that took the name meanwhile: a vanished ifindex is ENODEV.
//
// One blocking NETLINK_GENERIC socket for the process; each call is one request and its replies
// up to the kernel's ACK (the kernel answers synchronously inside sendmsg's call chain, so the
// receive never waits on anything but the kernel itself; SO_RCVTIMEO guards against a bug).
#include "ethtool_netlink.h"

#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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
        if (header->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
          throw NetlinkError(env, EBADMSG, what, ifindex, std::string());
        const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
        if (error->error == 0) return;  // the ACK: done
        std::string extack;
        if (header->nlmsg_flags & NLM_F_ACK_TLVS) {
          size_t at = NLMSG_HDRLEN + sizeof(nlmsgerr);
          if (!(header->nlmsg_flags & NLM_F_CAPPED)) at += error->msg.nlmsg_len - sizeof(nlmsghdr);
          if (at < header->nlmsg_len) {
            Attributes tlvs(reinterpret_cast<const uint8_t*>(header) + at, header->nlmsg_len - at);
            const nlattr* text = tlvs.by_type[NLMSGERR_ATTR_MSG];
            if (text && Attributes::PayloadLength(text) > 0)
              extack.assign(
                  reinterpret_cast<const char*>(Attributes::Payload(text)),
                  strnlen(reinterpret_cast<const char*>(Attributes::Payload(text)), Attributes::PayloadLength(text)));
          }
        }
        throw NetlinkError(env, -error->error, what, ifindex, extack);
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

void PutHeader(Message& message, uint32_t ifindex) {
  size_t nest = message.BeginNest(ETHTOOL_A_FEATURES_HEADER);
  message.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, ifindex);
  message.PutU32(ETHTOOL_A_HEADER_FLAGS, ETHTOOL_FLAG_COMPACT_BITSETS);
  message.EndNest(nest);
}

// Copies a compact bitset's VALUE words into out[word * stride + slot].
void CopyBitset(const Attributes& bitset, uint32_t* out, size_t words, size_t stride, size_t slot,
                int part = ETHTOOL_A_BITSET_VALUE) {
  const nlattr* value = bitset.by_type[part];
  if (!value) return;
  size_t available = Attributes::PayloadLength(value) / sizeof(uint32_t);
  for (size_t word = 0; word < words && word < available; word++)
    std::memcpy(&out[word * stride + slot], Attributes::Payload(value) + word * sizeof(uint32_t), sizeof(uint32_t));
}

uint32_t IfindexArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), "expected (ifindex: number, words: number, ...)");
  double ifindex = info[0].As<Napi::Number>().DoubleValue();
  if (!(ifindex >= 1 && ifindex <= 0x7fffffff)) throw Napi::RangeError::New(info.Env(), "ifindex out of range");
  return static_cast<uint32_t>(ifindex);
}

size_t WordsArg(const Napi::CallbackInfo& info) {
  double words = info[1].As<Napi::Number>().DoubleValue();
  if (!(words >= 1 && words <= 64)) throw Napi::RangeError::New(info.Env(), "words out of range");
  return static_cast<size_t>(words);
}

// ethtoolNetlinkAvailable(): boolean — resolves the family on first use.
Napi::Value Available(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Resolve(info.Env(), TheSession()));
}

// netlinkGetFeatures(ifindex, words): Uint32Array(words * 4) in ETHTOOL_GFEATURES' layout:
// per 32-bit word [available (hw), requested (wanted), active, never_changed (nochange)].
Napi::Value GetFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = IfindexArg(info);
  size_t words = WordsArg(info);
  Session& session = TheSession();
  if (!Resolve(env, session)) throw SyscallError(env, EOPNOTSUPP, "ETHTOOL_MSG_FEATURES_GET");
  Message message(session.family, NLM_F_REQUEST | NLM_F_ACK, ETHTOOL_MSG_FEATURES_GET, kEthtoolGenlVersion);
  PutHeader(message, ifindex);
  Napi::Uint32Array blocks = Napi::Uint32Array::New(env, words * 4);
  std::memset(blocks.Data(), 0, words * 4 * sizeof(uint32_t));
  Exchange(env, session, message, "ETHTOOL_MSG_FEATURES_GET", ifindex, [&](const Attributes& reply) {
    CopyBitset(reply.Nested(ETHTOOL_A_FEATURES_HW), blocks.Data(), words, 4, 0);
    CopyBitset(reply.Nested(ETHTOOL_A_FEATURES_WANTED), blocks.Data(), words, 4, 1);
    CopyBitset(reply.Nested(ETHTOOL_A_FEATURES_ACTIVE), blocks.Data(), words, 4, 2);
    CopyBitset(reply.Nested(ETHTOOL_A_FEATURES_NOCHANGE), blocks.Data(), words, 4, 3);
  });
  return blocks;
}

// netlinkSetFeatures(ifindex, words, blocks: Uint32Array(words * 2) as ETHTOOL_SFEATURES' [valid,
// requested] per word): { activeChanged, activeNow, unmet } each Uint32Array(words) — the SET
// reply: which active bits changed and their new values, and which requested bits the kernel did
// not grant. All zero when nothing changed.
Napi::Value SetFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = IfindexArg(info);
  size_t words = WordsArg(info);
  if (info.Length() < 3 || !info[2].IsTypedArray())
    throw Napi::TypeError::New(env, "expected (ifindex, words, blocks: Uint32Array)");
  Napi::Uint32Array blocks = info[2].As<Napi::Uint32Array>();
  if (blocks.ElementLength() != words * 2) throw Napi::RangeError::New(env, "blocks must hold words * 2 values");
  std::vector<uint32_t> mask(words), value(words);
  for (size_t word = 0; word < words; word++) {
    mask[word] = blocks[word * 2];
    value[word] = blocks[word * 2 + 1];
  }
  Session& session = TheSession();
  if (!Resolve(env, session)) throw SyscallError(env, EOPNOTSUPP, "ETHTOOL_MSG_FEATURES_SET");
  Message message(session.family, NLM_F_REQUEST | NLM_F_ACK, ETHTOOL_MSG_FEATURES_SET, kEthtoolGenlVersion);
  PutHeader(message, ifindex);
  size_t nest = message.BeginNest(ETHTOOL_A_FEATURES_WANTED);
  message.PutU32(ETHTOOL_A_BITSET_SIZE, static_cast<uint32_t>(words * 32));
  message.Put(ETHTOOL_A_BITSET_VALUE, value.data(), words * sizeof(uint32_t));
  message.Put(ETHTOOL_A_BITSET_MASK, mask.data(), words * sizeof(uint32_t));
  message.EndNest(nest);

  Napi::Uint32Array activeChanged = Napi::Uint32Array::New(env, words);
  Napi::Uint32Array activeNow = Napi::Uint32Array::New(env, words);
  Napi::Uint32Array unmet = Napi::Uint32Array::New(env, words);
  for (size_t word = 0; word < words; word++) activeChanged[word] = activeNow[word] = unmet[word] = 0;
  Exchange(env, session, message, "ETHTOOL_MSG_FEATURES_SET", ifindex, [&](const Attributes& reply) {
    Attributes active = reply.Nested(ETHTOOL_A_FEATURES_ACTIVE);
    CopyBitset(active, activeChanged.Data(), words, 1, 0, ETHTOOL_A_BITSET_MASK);
    CopyBitset(active, activeNow.Data(), words, 1, 0, ETHTOOL_A_BITSET_VALUE);
    CopyBitset(reply.Nested(ETHTOOL_A_FEATURES_WANTED), unmet.Data(), words, 1, 0, ETHTOOL_A_BITSET_MASK);
  });
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
}

}  // namespace offloadd
