// ETHTOOL ioctls (SIOCETHTOOL) for offload features: the kernel's feature names, get, set,
// driver info. Plain synchronous calls: each takes one to a few microseconds.
//
// Every call that takes an interface also takes the ifindex the caller believes the name has.
// Names are reused (rename, delete + re-create): when the name no longer belongs to that
// ifindex the call fails with ENODEV instead of touching some other interface.
#include "ethtool.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "syscall.h"

namespace offloadd {

// The kernel's bytes for a name as offloadd shows it (src/events/link-name.ts): a name that is
// not UTF-8, or holds a control character or a backslash, is shown C-escaped (\xNN, \\); every
// other name is its own UTF-8. False when a backslash starts no escape.
static bool KernelName(const std::string& shown, std::string* bytes) {
  bytes->clear();
  for (size_t i = 0; i < shown.size(); i++) {
    if (shown[i] != '\\') {
      bytes->push_back(shown[i]);
      continue;
    }
    if (i + 1 < shown.size() && shown[i + 1] == '\\') {
      bytes->push_back('\\');
      i += 1;
      continue;
    }
    auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
    if (i + 3 >= shown.size() || shown[i + 1] != 'x' || hex(shown[i + 2]) < 0 || hex(shown[i + 3]) < 0) return false;
    bytes->push_back(static_cast<char>(hex(shown[i + 2]) * 16 + hex(shown[i + 3])));
    i += 3;
  }
  return true;
}

Target TargetFromArgs(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), "expected (ifname: string, ifindex: number, ...)");
  Target target{info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value(), std::string()};
  if (!KernelName(target.name, &target.kernel_name) || target.kernel_name.empty() ||
      target.kernel_name.size() >= IFNAMSIZ)
    throw SyscallError(info.Env(), EINVAL, "ifname", target.name);
  return target;
}

int Ethtool(Napi::Env env, const Target& target, void* data, const char* what) {
  int fd = SharedDatagramSocket(env);
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  const std::string& name = target.kernel_name.empty() ? target.name : target.kernel_name;
  std::memcpy(ifr.ifr_name, name.c_str(), name.size() + 1);
  if (target.ifindex > 0) {
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) throw SyscallError(env, errno, "SIOCGIFINDEX", target.name);
    if (ifr.ifr_ifindex != target.ifindex) throw SyscallError(env, ENODEV, "SIOCGIFINDEX", target.name);
  }
  ifr.ifr_data = static_cast<char*>(data);
  int result = ioctl(fd, SIOCETHTOOL, &ifr);
  if (result < 0) throw SyscallError(env, errno, what, target.name);
  return result;
}

uint32_t StringSetCount(Napi::Env env, const Target& target, uint32_t set) {
  std::vector<uint8_t> sset(sizeof(ethtool_sset_info) + sizeof(uint32_t));
  auto* sset_info = reinterpret_cast<ethtool_sset_info*>(sset.data());
  sset_info->cmd = ETHTOOL_GSSET_INFO;
  sset_info->sset_mask = 1ULL << set;
  Ethtool(env, target, sset_info, "ETHTOOL_GSSET_INFO");
  return sset_info->sset_mask ? sset_info->data[0] : 0;
}

std::vector<std::string> StringSet(Napi::Env env, const Target& target, uint32_t set) {
  uint32_t count = StringSetCount(env, target, set);
  if (count == 0) return {};

  std::vector<uint8_t> buffer(sizeof(ethtool_gstrings) + static_cast<size_t>(count) * ETH_GSTRING_LEN);
  auto* strings = reinterpret_cast<ethtool_gstrings*>(buffer.data());
  strings->cmd = ETHTOOL_GSTRINGS;
  strings->string_set = set;
  strings->len = count;
  Ethtool(env, target, strings, "ETHTOOL_GSTRINGS");

  std::vector<std::string> names;
  names.reserve(strings->len);
  for (uint32_t i = 0; i < strings->len && i < count; i++) {
    const char* name = reinterpret_cast<const char*>(strings->data) + i * ETH_GSTRING_LEN;
    names.emplace_back(name, strnlen(name, ETH_GSTRING_LEN));
  }
  return names;
}

size_t FeatureWords(Napi::Env env) {
  // The set is global to the kernel and fixed while it runs: asked once, of `lo` (always there).
  static size_t words = 0;
  if (words == 0) {
    uint32_t count = StringSetCount(env, Target{"lo", 0}, ETH_SS_FEATURES);
    size_t needed = std::max<size_t>(1, (static_cast<size_t>(count) + 31) / 32);
    if (needed > kMaxFeatureWords) throw SyscallError(env, E2BIG, "ETH_SS_FEATURES");
    words = needed;
  }
  return words;
}

Napi::Object InterfaceBitsets::Interface(Napi::Env env, size_t item) const {
  // One napi_define_properties for all of them: each property set on its own costs as much again
  // (every setter call is a JavaScript exception scope), which a batch of thousands would feel.
  constexpr size_t kMaxProperties = 8;
  napi_property_descriptor properties[kMaxProperties] = {};
  size_t count = 0;
  size_t bytes = words_ * sizeof(uint32_t);
  size_t at = item * keys_.size() * bytes;
  for (size_t bitset = 0; bitset < keys_.size() && count + 1 < kMaxProperties; bitset++, count++) {
    properties[count].name = keys_[bitset];
    properties[count].value = Napi::Uint32Array::New(env, words_, buffer_, at + bitset * bytes);
    properties[count].attributes = napi_default_jsproperty;
  }
  Napi::Object result = Napi::Object::New(env);
  NAPI_THROW_IF_FAILED(env, napi_define_properties(env, result, count, properties), Napi::Object());
  return result;
}

static bool FeatureBitsFromArgs(Napi::Env env, const Napi::Value& value, const char* what, uint32_t* mask,
                                uint32_t* values, size_t words, bool on) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, std::string(what) + " must be an array of feature bits");
  Napi::Array bits = value.As<Napi::Array>();
  for (uint32_t i = 0; i < bits.Length(); i++) {
    Napi::Value bit = bits.Get(i);
    double number = bit.IsNumber() ? bit.As<Napi::Number>().DoubleValue() : -1;
    if (!(number >= 0 && number < words * 32 && number == static_cast<uint32_t>(number)))
      throw Napi::RangeError::New(env, std::string(what) + ": a feature bit out of range");
    uint32_t index = static_cast<uint32_t>(number);
    mask[index / 32] |= 1u << (index % 32);
    if (on) values[index / 32] |= 1u << (index % 32);
  }
  return bits.Length() > 0;
}

void WantedFromArgs(Napi::Env env, const Napi::Value& value, uint32_t* mask, uint32_t* values, size_t words) {
  if (!value.IsObject()) throw Napi::TypeError::New(env, "expected { enable: number[], disable: number[] }");
  Napi::Object wanted = value.As<Napi::Object>();
  std::memset(mask, 0, words * sizeof(uint32_t));
  std::memset(values, 0, words * sizeof(uint32_t));
  FeatureBitsFromArgs(env, wanted.Get("disable"), "disable", mask, values, words, false);
  FeatureBitsFromArgs(env, wanted.Get("enable"), "enable", mask, values, words, true);
}

namespace {

// featureNames(ifname): string[] — the ETH_SS_FEATURES string set. The set is global to the
// kernel; any interface (lo) can be asked.
Napi::Value FeatureNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "expected (ifname: string)");
  Target target{info[0].As<Napi::String>().Utf8Value(), 0};
  std::vector<std::string> strings = StringSet(env, target, ETH_SS_FEATURES);
  Napi::Array names = Napi::Array::New(env, strings.size());
  for (size_t i = 0; i < strings.size(); i++) names.Set(i, Napi::String::New(env, strings[i]));
  return names;
}

// getFeatures(ifname, ifindex): { available, requested, active, neverChanged }, each a
// Uint32Array bitset of the ETH_SS_FEATURES set's size (ETHTOOL_GFEATURES' blocks).
Napi::Value GetFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target target = TargetFromArgs(info);
  size_t words = FeatureWords(env);

  std::vector<uint8_t> buffer(sizeof(ethtool_gfeatures) + words * sizeof(ethtool_get_features_block));
  auto* request = reinterpret_cast<ethtool_gfeatures*>(buffer.data());
  request->cmd = ETHTOOL_GFEATURES;
  request->size = static_cast<uint32_t>(words);
  Ethtool(env, target, request, "ETHTOOL_GFEATURES");

  InterfaceBitsets bitsets(env, 1, words, kFeatureBitsetNames);
  uint32_t* out = bitsets.Words(0);
  for (size_t i = 0; i < words; i++) {
    out[kAvailable * words + i] = request->features[i].available;
    out[kRequested * words + i] = request->features[i].requested;
    out[kActive * words + i] = request->features[i].active;
    out[kNeverChanged * words + i] = request->features[i].never_changed;
  }
  return bitsets.Interface(env, 0);
}

// setFeatures(ifname, ifindex, { enable: number[], disable: number[] }) with feature bits (the
// ETH_SS_FEATURES set's indexes): number — the kernel's non-negative answer: 0 or
// ETHTOOL_F_UNSUPPORTED | ETHTOOL_F_WISH | ETHTOOL_F_COMPAT.
Napi::Value SetFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target target = TargetFromArgs(info);
  if (info.Length() < 3) throw Napi::TypeError::New(env, "expected (ifname, ifindex, { enable, disable })");
  size_t words = FeatureWords(env);
  std::vector<uint32_t> mask(words), values(words);
  WantedFromArgs(env, info[2], mask.data(), values.data(), words);

  std::vector<uint8_t> buffer(sizeof(ethtool_sfeatures) + words * sizeof(ethtool_set_features_block));
  auto* request = reinterpret_cast<ethtool_sfeatures*>(buffer.data());
  request->cmd = ETHTOOL_SFEATURES;
  request->size = static_cast<uint32_t>(words);
  for (size_t i = 0; i < words; i++) {
    request->features[i].valid = mask[i];
    request->features[i].requested = values[i];
  }
  return Napi::Number::New(env, Ethtool(env, target, request, "ETHTOOL_SFEATURES"));
}

// driverInfo(ifname, ifindex): { driver, version, firmware, busInfo } — ETHTOOL_GDRVINFO.
Napi::Value DriverInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target target = TargetFromArgs(info);
  ethtool_drvinfo drvinfo;
  std::memset(&drvinfo, 0, sizeof drvinfo);
  drvinfo.cmd = ETHTOOL_GDRVINFO;
  Ethtool(env, target, &drvinfo, "ETHTOOL_GDRVINFO");
  auto text = [&](const char* field, size_t size) { return Napi::String::New(env, field, strnlen(field, size)); };
  Napi::Object result = Napi::Object::New(env);
  result.Set("driver", text(drvinfo.driver, sizeof drvinfo.driver));
  result.Set("version", text(drvinfo.version, sizeof drvinfo.version));
  result.Set("firmware", text(drvinfo.fw_version, sizeof drvinfo.fw_version));
  result.Set("busInfo", text(drvinfo.bus_info, sizeof drvinfo.bus_info));
  return result;
}

}  // namespace

void InitEthtool(Napi::Env env, Napi::Object exports) {
  exports.Set("featureNames", Napi::Function::New(env, FeatureNames, "featureNames"));
  exports.Set("getFeatures", Napi::Function::New(env, GetFeatures, "getFeatures"));
  exports.Set("setFeatures", Napi::Function::New(env, SetFeatures, "setFeatures"));
  exports.Set("driverInfo", Napi::Function::New(env, DriverInfo, "driverInfo"));
}

}  // namespace offloadd
