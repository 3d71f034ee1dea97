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
// ETHTOOL_GSSET_INFO alone: how many strings the set has.
uint32_t StringSetCount(Napi::Env env, const Target& target, uint32_t set);

// ---- Feature bitsets: one layout, here ----------------------------------------------------------
// One u32 word per 32 features of the ETH_SS_FEATURES string set; this layer sizes them from the
// set's length, as ethtool and systemd do ((count + 31) / 32), asked of the kernel once.
constexpr size_t kMaxFeatureWords = 64;
size_t FeatureWords(Napi::Env env);

// An interface's four bitsets, in this order, one after the other.
enum FeatureBitset : size_t { kAvailable = 0, kRequested = 1, kActive = 2, kNeverChanged = 3 };
constexpr size_t kFeatureBitsetsPerInterface = 4;

// The property names of an interface's result, made once per call.
struct FeatureBitsetsKeys {
  explicit FeatureBitsetsKeys(Napi::Env env);
  Napi::String ifindex, available, requested, active, neverChanged;
};

// The bitsets of `count` interfaces in one ArrayBuffer; JavaScript gets views of it.
struct FeatureBitsets {
  Napi::ArrayBuffer buffer;
  uint32_t* data;
  size_t words;
  uint32_t* Words(size_t item) const { return data + item * kFeatureBitsetsPerInterface * words; }
  // { available, requested, active, neverChanged } for interface `item`: Uint32Array views.
  Napi::Object Interface(Napi::Env env, const FeatureBitsetsKeys& keys, size_t item) const;
};
FeatureBitsets NewFeatureBitsets(Napi::Env env, size_t count, size_t words);

// { enable: number[], disable: number[] } (feature bits) as a bitset mask (the bits named) and
// values (the bits to turn on), each `words` long; throws a TypeError or RangeError on bad input.
void WantedFromArgs(Napi::Env env, const Napi::Value& value, uint32_t* mask, uint32_t* values, size_t words);
}  // namespace offloadd
