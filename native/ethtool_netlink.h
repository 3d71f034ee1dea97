// Offload features over ethtool netlink, by ifindex (see ethtool_netlink.cc).
#pragma once
#include <napi.h>

namespace offloadd {
void InitEthtoolNetlink(Napi::Env env, Napi::Object exports);
}  // namespace offloadd
