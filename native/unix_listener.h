// The API's listening socket, accepted natively so SO_PEERCRED is read on a known descriptor.
#pragma once
#include <napi.h>

namespace offloadd {
void InitUnixListener(Napi::Env env, Napi::Object exports);
}  // namespace offloadd
