// Helpers shared by the addon's files. One turns a failed system call into a JavaScript Error that carries the facts as
// properties (errno, syscall, ifname) so TypeScript never parses message text.
#pragma once
#include <napi.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace offloadd {

// errnos from 512 up are the kernel's own (include/linux/errno.h: ENOTSUPP, EPROBE_DEFER, ...),
// which some drivers and BPF hand to user space anyway; no C library names them ("Unknown error
// 524"). They are said as "errno N", which TypeScript names (src/addon/binding.ts, describeErrno).
constexpr int kFirstKernelInternalErrno = 512;

inline Napi::Error SyscallError(Napi::Env env, int err, const std::string& syscall,
                                const std::string& ifname = std::string()) {
  std::string message = syscall;
  if (!ifname.empty()) message += " on " + ifname;
  message += " failed: ";
  message += err >= kFirstKernelInternalErrno || err <= 0 ? "errno " + std::to_string(err) : std::strerror(err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("errno", Napi::Number::New(env, err));
  error.Value().Set("syscall", Napi::String::New(env, syscall));
  if (!ifname.empty()) error.Value().Set("ifname", Napi::String::New(env, ifname));
  return error;
}

// One unconnected AF_UNIX datagram socket for the process: SIOCETHTOOL works on any socket
// (AF_UNIX keeps the hardened unit free of AF_INET), and sendto() on it reaches sd_notify and
// journald.
inline int SharedDatagramSocket(Napi::Env env) {
  static int fd = -1;
  if (fd < 0) {
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw SyscallError(env, errno, "socket(AF_UNIX, SOCK_DGRAM)");
  }
  return fd;
}

}  // namespace offloadd
