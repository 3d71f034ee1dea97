// Attribution of feature changes: small BPF programs on the syscall tracepoints that see the
// requests which change offload features (ethtool netlink FEATURES_SET sent with sendto/sendmsg/
// write, SIOCETHTOOL set commands) and report who sent them through a BPF ring buffer.
#pragma once
#include <napi.h>

namespace offloadd {
void InitAttribution(Napi::Env env, Napi::Object exports);
}  // namespace offloadd
