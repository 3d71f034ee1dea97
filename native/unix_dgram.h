#pragma once
#include <napi.h>
namespace offloadd {
void InitUnixDgram(Napi::Env env, Napi::Object exports);
}
