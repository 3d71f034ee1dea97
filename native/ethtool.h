#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace offloadd {
void InitEthtool(Napi::Env env, Napi::Object exports);

// The interface a call is for: its name as shown (for messages), the ifindex the caller believes
// it has (0: any), and the name's bytes for the kernel (empty: `name` itself).
struct Target {
  std::string name;
  int32_t ifindex;
  std::string kernel_name;
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

// The bitsets of `count` interfaces, one per name for each, in one ArrayBuffer made by the addon;
// JavaScript gets an object per interface whose properties are Uint32Array views of it (getFeatures;
// the netlink batches answer flat, see FlatAnswers in ethtool_netlink.cc).
class InterfaceBitsets {
 public:
  template <size_t kBitsets>
  InterfaceBitsets(Napi::Env env, size_t count, size_t words, const char* const (&names)[kBitsets])
      : buffer_(Napi::ArrayBuffer::New(env, count * kBitsets * words * sizeof(uint32_t))),
        data_(static_cast<uint32_t*>(buffer_.Data())),
        words_(words) {
    for (const char* name : names) keys_.push_back(Napi::String::New(env, name));
  }
  // Interface `item`'s words: the bitsets in the names' order, `words` each.
  uint32_t* Words(size_t item) const { return data_ + item * keys_.size() * words_; }
  Napi::Object Interface(Napi::Env env, size_t item) const;

 private:
  Napi::ArrayBuffer buffer_;
  uint32_t* data_;
  size_t words_;
  std::vector<Napi::String> keys_;  // made once per call, not once per interface
};

// An interface's features (readFeatures, getFeatures): these bitsets, in this order
// (FEATURE_BITSET in src/addon/binding.ts).
enum FeatureBitset : size_t { kAvailable = 0, kRequested = 1, kActive = 2, kNeverChanged = 3, kFeatureBitsets = 4 };
constexpr const char* kFeatureBitsetNames[] = {"available", "requested", "active", "neverChanged"};

// { enable: number[], disable: number[] } (feature bits) as a bitset mask (the bits named) and
// values (the bits to turn on), each `words` long; throws a TypeError or RangeError on bad input.
void WantedFromArgs(Napi::Env env, const Napi::Value& value, uint32_t* mask, uint32_t* values, size_t words);
}  // namespace offloadd
