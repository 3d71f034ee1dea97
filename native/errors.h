// One helper to turn a failed system call into a JavaScript Error that carries the facts as
// properties (errno, syscall, ifname) so TypeScript never parses message text.
#pragma once
#include <napi.h>
#include <cerrno>
#include <cstring>
#include <string>

namespace offloadd {

inline Napi::Error SyscallError(Napi::Env env, int err, const std::string& syscall,
                                const std::string& ifname = std::string()) {
  std::string message = syscall;
  if (!ifname.empty()) message += " on " + ifname;
  message += " failed: ";
  message += std::strerror(err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("errno", Napi::Number::New(env, err));
  error.Value().Set("syscall", Napi::String::New(env, syscall));
  if (!ifname.empty()) error.Value().Set("ifname", Napi::String::New(env, ifname));
  return error;
}

}  // namespace offloadd
