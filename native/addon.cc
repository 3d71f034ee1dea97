// offloadd's native addon: system calls only; all decisions are made in TypeScript
// (src/addon/binding.ts declares this surface).
#include <napi.h>

#include "attribution.h"
#include "ethtool.h"
#include "ethtool_netlink.h"
#include "flock.h"
#include "memory.h"
#include "rtnl.h"
#include "stats.h"
#include "unix_dgram.h"
#include "unix_listener.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  offloadd::InitAttribution(env, exports);
  offloadd::InitEthtool(env, exports);
  offloadd::InitEthtoolNetlink(env, exports);
  offloadd::InitFlock(env, exports);
  offloadd::InitMemory(env, exports);
  offloadd::InitRtnl(env, exports);
  offloadd::InitStats(env, exports);
  offloadd::InitUnixDgram(env, exports);
  offloadd::InitUnixListener(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(offloadd, Init)
