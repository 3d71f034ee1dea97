#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace offloadd {
void InitEthtool(Napi::Env env, Napi::Object exports);

// The interface a call is for: its name and the ifindex the caller believes it has (0: any).
struct Target {
  std::string name;
  int32_t ifindex;
};

// (ifname: string, ifindex: number, ...) from JavaScript; throws on a bad name.
Target TargetFromArgs(const Napi::CallbackInfo& info);

// One SIOCETHTOOL on `target`, failing with ENODEV when the name no longer has that ifindex.
int Ethtool(Napi::Env env, const Target& target, void* data, const char* what);

// The names of one ethtool string set (ETH_SS_FEATURES, ETH_SS_STATS, ...) on `target`:
// ETHTOOL_GSSET_INFO for the count, then ETHTOOL_GSTRINGS.
std::vector<std::string> StringSet(Napi::Env env, const Target& target, uint32_t set);
}  // namespace offloadd
