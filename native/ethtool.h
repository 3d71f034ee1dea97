#pragma once
#include <napi.h>
namespace offloadd {
void InitEthtool(Napi::Env env, Napi::Object exports);
}
