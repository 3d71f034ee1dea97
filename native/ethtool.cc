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

#include <cstring>
#include <vector>

#include "syscall.h"

namespace offloadd {

Target TargetFromArgs(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), "expected (ifname: string, ifindex: number, ...)");
  Target target{info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value()};
  if (target.name.empty() || target.name.size() >= IFNAMSIZ)
    throw SyscallError(info.Env(), EINVAL, "ifname", target.name);
  return target;
}

int Ethtool(Napi::Env env, const Target& target, void* data, const char* what) {
  int fd = SharedDatagramSocket(env);
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, target.name.c_str(), target.name.size() + 1);
  if (target.ifindex > 0) {
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) throw SyscallError(env, errno, "SIOCGIFINDEX", target.name);
    if (ifr.ifr_ifindex != target.ifindex) throw SyscallError(env, ENODEV, "SIOCGIFINDEX", target.name);
  }
  ifr.ifr_data = static_cast<char*>(data);
  int result = ioctl(fd, SIOCETHTOOL, &ifr);
  if (result < 0) throw SyscallError(env, errno, what, target.name);
  return result;
}

std::vector<std::string> StringSet(Napi::Env env, const Target& target, uint32_t set) {
  std::vector<uint8_t> sset(sizeof(ethtool_sset_info) + sizeof(uint32_t));
  auto* sset_info = reinterpret_cast<ethtool_sset_info*>(sset.data());
  sset_info->cmd = ETHTOOL_GSSET_INFO;
  sset_info->sset_mask = 1ULL << set;
  Ethtool(env, target, sset_info, "ETHTOOL_GSSET_INFO");
  uint32_t count = sset_info->sset_mask ? sset_info->data[0] : 0;
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

// getFeatures(ifname, ifindex, words): Uint32Array of `words` blocks of four u32:
// available, requested, active, never_changed (struct ethtool_get_features_block).
Napi::Value GetFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target target = TargetFromArgs(info);
  if (info.Length() < 3 || !info[2].IsNumber()) throw Napi::TypeError::New(env, "expected words: number");
  uint32_t words = info[2].As<Napi::Number>().Uint32Value();
  if (words == 0 || words > 64) throw Napi::RangeError::New(env, "words out of range");

  std::vector<uint8_t> buffer(sizeof(ethtool_gfeatures) + words * sizeof(ethtool_get_features_block));
  auto* request = reinterpret_cast<ethtool_gfeatures*>(buffer.data());
  request->cmd = ETHTOOL_GFEATURES;
  request->size = words;
  Ethtool(env, target, request, "ETHTOOL_GFEATURES");

  Napi::Uint32Array blocks = Napi::Uint32Array::New(env, words * 4);
  for (uint32_t i = 0; i < words; i++) {
    blocks[i * 4 + 0] = request->features[i].available;
    blocks[i * 4 + 1] = request->features[i].requested;
    blocks[i * 4 + 2] = request->features[i].active;
    blocks[i * 4 + 3] = request->features[i].never_changed;
  }
  return blocks;
}

// setFeatures(ifname, ifindex, blocks: Uint32Array of pairs valid, requested): number — the
// kernel's non-negative answer: 0 or ETHTOOL_F_UNSUPPORTED | ETHTOOL_F_WISH | ETHTOOL_F_COMPAT.
Napi::Value SetFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target target = TargetFromArgs(info);
  if (info.Length() < 3 || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(env, "expected blocks: Uint32Array");
  Napi::Uint32Array pairs = info[2].As<Napi::Uint32Array>();
  size_t words = pairs.ElementLength() / 2;
  if (words == 0 || words > 64 || pairs.ElementLength() % 2 != 0)
    throw Napi::RangeError::New(env, "blocks must hold 1..64 (valid, requested) pairs");

  std::vector<uint8_t> buffer(sizeof(ethtool_sfeatures) + words * sizeof(ethtool_set_features_block));
  auto* request = reinterpret_cast<ethtool_sfeatures*>(buffer.data());
  request->cmd = ETHTOOL_SFEATURES;
  request->size = static_cast<uint32_t>(words);
  for (size_t i = 0; i < words; i++) {
    request->features[i].valid = pairs[i * 2];
    request->features[i].requested = pairs[i * 2 + 1];
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
