// AF_UNIX datagrams: sd_notify ($NOTIFY_SOCKET) and journald's native protocol
// (/run/systemd/journal/socket) are both one sendto(); Node has no datagram Unix sockets.
// Sent from the calling (main) process, so systemd accepts it under NotifyAccess=main.
// Also SO_PEERCRED for the API socket's authorisation.
#include "unix_dgram.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

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
  for (;;) {
    ssize_t n =
        sendto(fd, data.Data(), data.Length(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address), addressLength);
    if (n >= 0) return env.Undefined();
    if (errno == EINTR) continue;
    if (errno == EMSGSIZE && allowMemfd) {
      SendAsMemfd(env, fd, &address, addressLength, data.Data(), data.Length());
      return env.Undefined();
    }
    throw SyscallError(env, errno, "sendto(" + path + ")");
  }
}

}  // namespace

void InitUnixDgram(Napi::Env env, Napi::Object exports) {
  exports.Set("sendDatagram", Napi::Function::New(env, SendDatagram, "sendDatagram"));
}

}  // namespace offloadd
