// The addon's one netlink message builder and one attribute reader, for every netlink socket it
// opens (generic netlink for ethtool and the family look-ups, rtnetlink for link dumps). rtattr
// and nlattr share one layout, so the reader serves both.
#pragma once
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace offloadd {

// Appends netlink messages to `buffer` (one or many: a pipelined batch is several in a row). The
// buffer is the caller's, so a reused one keeps its capacity and costs no allocation per batch.
class NetlinkBuilder {
 public:
  explicit NetlinkBuilder(std::vector<uint8_t>& buffer) : buffer_(buffer) {}

  // Starts a message: its header, then the family's fixed header (genlmsghdr, ifinfomsg, ...).
  void Begin(uint16_t type, uint16_t flags, uint32_t seq, const void* familyHeader, size_t familyHeaderLength) {
    start_ = buffer_.size();
    buffer_.resize(start_ + NLMSG_HDRLEN + NLMSG_ALIGN(familyHeaderLength));
    auto* header = reinterpret_cast<nlmsghdr*>(buffer_.data() + start_);
    header->nlmsg_type = type;
    header->nlmsg_flags = flags;
    header->nlmsg_seq = seq;
    if (familyHeaderLength > 0) std::memcpy(buffer_.data() + start_ + NLMSG_HDRLEN, familyHeader, familyHeaderLength);
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
  void PutString(uint16_t type, const char* value) { Put(type, value, std::strlen(value) + 1); }

  size_t BeginNest(uint16_t type) {
    size_t at = buffer_.size();
    Put(type | NLA_F_NESTED, nullptr, 0);
    return at;
  }
  void EndNest(size_t at) {
    reinterpret_cast<nlattr*>(buffer_.data() + at)->nla_len = static_cast<uint16_t>(buffer_.size() - at);
  }

  // Closes the message begun last: its length.
  void End() {
    reinterpret_cast<nlmsghdr*>(buffer_.data() + start_)->nlmsg_len = static_cast<uint32_t>(buffer_.size() - start_);
  }

 private:
  std::vector<uint8_t>& buffer_;
  size_t start_ = 0;
};

// The attributes of one level, by type (the last of a type wins, as in the kernel's parser);
// types at or above kMax are skipped.
template <int kMax>
class NetlinkAttributes {
 public:
  NetlinkAttributes(const uint8_t* data, size_t length) {
    size_t offset = 0;
    while (data && offset + NLA_HDRLEN <= length) {
      const auto* attribute = reinterpret_cast<const nlattr*>(data + offset);
      if (attribute->nla_len < NLA_HDRLEN || offset + attribute->nla_len > length) break;
      int type = attribute->nla_type & NLA_TYPE_MASK;
      if (type < kMax) byType_[type] = attribute;
      offset += NLA_ALIGN(attribute->nla_len);
    }
  }
  // The attributes after a message's headers (`headersLength`: NLMSG_HDRLEN + the family's).
  static NetlinkAttributes OfMessage(const nlmsghdr* header, size_t headersLength) {
    if (header->nlmsg_len < headersLength) return NetlinkAttributes(nullptr, 0);
    return NetlinkAttributes(reinterpret_cast<const uint8_t*>(header) + headersLength,
                             header->nlmsg_len - headersLength);
  }

  const nlattr* Get(int type) const { return type >= 0 && type < kMax ? byType_[type] : nullptr; }
  template <int kInner = kMax>
  NetlinkAttributes<kInner> Nested(int type) const {
    const nlattr* attribute = Get(type);
    return attribute ? NetlinkAttributes<kInner>(Payload(attribute), PayloadLength(attribute))
                     : NetlinkAttributes<kInner>(nullptr, 0);
  }
  // Copies a fixed-size payload (a u16, a u32, a struct): false when it is absent or shorter.
  template <typename T>
  bool Read(int type, T* out) const {
    const nlattr* attribute = Get(type);
    if (!attribute || PayloadLength(attribute) < sizeof(T)) return false;
    std::memcpy(out, Payload(attribute), sizeof(T));
    return true;
  }

  static const uint8_t* Payload(const nlattr* attribute) {
    return reinterpret_cast<const uint8_t*>(attribute) + NLA_HDRLEN;
  }
  static size_t PayloadLength(const nlattr* attribute) { return attribute->nla_len - NLA_HDRLEN; }

 private:
  const nlattr* byType_[kMax] = {};
};

// The errno of an NLMSG_ERROR (0: an ACK) and, when the kernel gave one, its extended ACK text.
inline int NetlinkErrno(const nlmsghdr* header, std::string* extack) {
  if (header->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return EBADMSG;
  const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
  if (error->error == 0) return 0;
  if (extack && (header->nlmsg_flags & NLM_F_ACK_TLVS)) {
    size_t at = NLMSG_HDRLEN + sizeof(nlmsgerr);
    if (!(header->nlmsg_flags & NLM_F_CAPPED)) at += error->msg.nlmsg_len - sizeof(nlmsghdr);
    if (at < header->nlmsg_len) {
      NetlinkAttributes<NLMSGERR_ATTR_MAX + 1> tlvs(reinterpret_cast<const uint8_t*>(header) + at,
                                                    header->nlmsg_len - at);
      const nlattr* text = tlvs.Get(NLMSGERR_ATTR_MSG);
      if (text && tlvs.PayloadLength(text) > 0) {
        const char* chars = reinterpret_cast<const char*>(tlvs.Payload(text));
        extack->assign(chars, strnlen(chars, tlvs.PayloadLength(text)));
      }
    }
  }
  return error->error < 0 ? -error->error : EPROTO;
}

// Calls onMessage(header) for each whole message in a received datagram.
template <typename OnMessage>
void ForEachMessage(const uint8_t* datagram, size_t length, OnMessage onMessage) {
  size_t remaining = length;
  for (auto* header = reinterpret_cast<const nlmsghdr*>(datagram); NLMSG_OK(header, remaining);
       header = NLMSG_NEXT(header, remaining))
    onMessage(header);
}

// CTRL_CMD_GETFAMILY: the id of the generic netlink family `name` on `fd` (a NETLINK_GENERIC
// socket with a receive timeout), or 0 with *err set: ENOENT when this kernel has no such family,
// else the errno of the exchange.
inline uint16_t GenericFamilyId(int fd, const char* name, uint32_t seq, int* err) {
  std::vector<uint8_t> request;
  NetlinkBuilder builder(request);
  genlmsghdr genl{};
  genl.cmd = CTRL_CMD_GETFAMILY;
  genl.version = 1;
  builder.Begin(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, seq, &genl, sizeof genl);
  builder.PutString(CTRL_ATTR_FAMILY_NAME, name);
  builder.End();
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    *err = errno;
    return 0;
  }
  constexpr size_t kReplyBytes = 8192;  // the family's description: ids, ops, groups
  std::vector<uint8_t> reply(kReplyBytes);
  uint16_t family = 0;
  for (;;) {
    ssize_t received = recv(fd, reply.data(), reply.size(), 0);
    if (received < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return 0;
    }
    bool done = false;
    ForEachMessage(reply.data(), static_cast<size_t>(received), [&](const nlmsghdr* header) {
      if (header->nlmsg_seq != seq || done) return;  // a late answer to an earlier exchange
      if (header->nlmsg_type == NLMSG_ERROR) {
        *err = NetlinkErrno(header, nullptr);
        done = true;
      } else if (header->nlmsg_type == GENL_ID_CTRL) {
        NetlinkAttributes<CTRL_ATTR_FAMILY_ID + 1>::OfMessage(header, NLMSG_HDRLEN + GENL_HDRLEN)
            .Read(CTRL_ATTR_FAMILY_ID, &family);
      }
    });
    if (done) return *err == 0 ? family : 0;
  }
}

}  // namespace offloadd
