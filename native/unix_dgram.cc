// AF_UNIX datagrams: sd_notify ($NOTIFY_SOCKET) and journald's native protocol
// (/run/systemd/journal/socket) are both one sendto(), a batch of journal entries one sendmmsg();
// Node has no datagram Unix sockets.
// Sent from the calling (main) process, so systemd accepts it under NotifyAccess=main.
// Also SO_PEERCRED for the API socket's authorisation.
#include "unix_dgram.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "syscall.h"

namespace offloadd {
namespace {

// "@name" is an abstract socket (as $NOTIFY_SOCKET may be), anything else a path.
socklen_t AddressOf(Napi::Env env, const std::string& path, sockaddr_un* address) {
  std::memset(address, 0, sizeof *address);
  address->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address->sun_path)
    throw SyscallError(env, EINVAL, "unix socket address '" + path + "'");
  std::memcpy(address->sun_path, path.data(), path.size());
  if (path[0] == '@') address->sun_path[0] = '\0';
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
}

// journald takes a message too large for one datagram as a sealed memfd passed with
// SCM_RIGHTS (what libsystemd's sd_journal_sendv does).
void SendAsMemfd(Napi::Env env, int fd, sockaddr_un* address, socklen_t addressLength, const uint8_t* data,
                 size_t size) {
  int memfd = memfd_create("offloadd-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memfd < 0) throw SyscallError(env, errno, "memfd_create");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{memfd};
  for (size_t written = 0; written < size;) {
    ssize_t n = write(memfd, data + written, size - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SyscallError(env, errno, "write(memfd)");
    }
    written += static_cast<size_t>(n);
  }
  if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
    throw SyscallError(env, errno, "fcntl(F_ADD_SEALS)");

  union {
    cmsghdr header;
    char space[CMSG_SPACE(sizeof(int))];
  } control;
  std::memset(&control, 0, sizeof control);
  msghdr message;
  std::memset(&message, 0, sizeof message);
  message.msg_name = address;
  message.msg_namelen = addressLength;
  message.msg_control = &control;
  message.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&message);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &memfd, sizeof(int));
  if (sendmsg(fd, &message, MSG_NOSIGNAL) < 0) throw SyscallError(env, errno, "sendmsg(SCM_RIGHTS)");
}

// One datagram with sendto(), or, when the kernel finds it too large (EMSGSIZE) and allowMemfd,
// as a sealed memfd. The blocking socket waits while the receiver's queue is full (journald busy)
// rather than failing with EAGAIN: a slow journal slows the sender, it does not lose entries.
void SendOne(Napi::Env env, int fd, const std::string& path, sockaddr_un* address, socklen_t addressLength,
             const uint8_t* data, size_t size, bool allowMemfd) {
  for (;;) {
    ssize_t n = sendto(fd, data, size, MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(address), addressLength);
    if (n >= 0) return;
    if (errno == EINTR) continue;
    if (errno == EMSGSIZE && allowMemfd) {
      SendAsMemfd(env, fd, address, addressLength, data, size);
      return;
    }
    throw SyscallError(env, errno, "sendto(" + path + ")");
  }
}

// sendDatagram(path: string, data: Buffer, allowMemfd: boolean): void
Napi::Value SendDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBuffer())
    throw Napi::TypeError::New(env, "expected (path: string, data: Buffer, allowMemfd?: boolean)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  bool allowMemfd = info.Length() > 2 && info[2].ToBoolean().Value();

  int fd = SharedDatagramSocket(env);
  sockaddr_un address;
  socklen_t addressLength = AddressOf(env, path, &address);
  SendOne(env, fd, path, &address, addressLength, data.Data(), data.Length(), allowMemfd);
  return env.Undefined();
}

// sendmmsg(2) takes at most UIO_MAXIOV (1024) messages per call; the kernel clamps larger counts.
constexpr size_t kMaxDatagramsPerCall = UIO_MAXIOV;

// sendDatagrams(path: string, datagrams: Buffer[], allowMemfd: boolean): number
// Every datagram, in order, up to kMaxDatagramsPerCall per sendmmsg(). The one a sendmmsg()
// stopped at goes again alone through SendOne(), which retries EINTR, turns EMSGSIZE into a
// memfd (so a large entry keeps its place) and otherwise throws the errno as sendDatagram would,
// with `sent` = how many datagrams went before it. Returns how many went (all of them).
Napi::Value SendDatagrams(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray())
    throw Napi::TypeError::New(env, "expected (path: string, datagrams: Buffer[], allowMemfd?: boolean)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Array datagrams = info[1].As<Napi::Array>();
  bool allowMemfd = info.Length() > 2 && info[2].ToBoolean().Value();

  // Every element checked before anything is sent: a bad argument never leaves half a batch sent.
  uint32_t count = datagrams.Length();
  std::vector<iovec> payloads(count);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value element = datagrams.Get(i);
    if (!element.IsBuffer()) throw Napi::TypeError::New(env, "datagrams[" + std::to_string(i) + "] is not a Buffer");
    Napi::Buffer<uint8_t> data = element.As<Napi::Buffer<uint8_t>>();
    payloads[i] = {data.Data(), data.Length()};
  }
  int fd = SharedDatagramSocket(env);
  sockaddr_un address;
  socklen_t addressLength = AddressOf(env, path, &address);

  std::vector<mmsghdr> messages(std::min<size_t>(count, kMaxDatagramsPerCall));
  size_t sent = 0;
  try {
    while (sent < count) {
      size_t batch = std::min<size_t>(count - sent, kMaxDatagramsPerCall);
      if (batch > 1) {
        for (size_t i = 0; i < batch; i++) {
          msghdr& header = messages[i].msg_hdr;
          std::memset(&header, 0, sizeof header);
          header.msg_name = &address;
          header.msg_namelen = addressLength;
          header.msg_iov = &payloads[sent + i];
          header.msg_iovlen = 1;
        }
        int n = sendmmsg(fd, messages.data(), static_cast<unsigned>(batch), MSG_NOSIGNAL);
        if (n > 0) sent += static_cast<size_t>(n);
        if (n == static_cast<int>(batch)) continue;
      }
      // A batch of one, or the datagram a sendmmsg() stopped at: its errno is not kept (sendmmsg
      // reports only the count once any went), so this send finds it again, or succeeds.
      SendOne(env, fd, path, &address, addressLength, static_cast<const uint8_t*>(payloads[sent].iov_base),
              payloads[sent].iov_len, allowMemfd);
      sent++;
    }
  } catch (Napi::Error& error) {
    error.Value().Set("sent", Napi::Number::New(env, static_cast<double>(sent)));
    throw;
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

}  // namespace

void InitUnixDgram(Napi::Env env, Napi::Object exports) {
  exports.Set("sendDatagram", Napi::Function::New(env, SendDatagram, "sendDatagram"));
  exports.Set("sendDatagrams", Napi::Function::New(env, SendDatagrams, "sendDatagrams"));
}

}  // namespace offloadd
