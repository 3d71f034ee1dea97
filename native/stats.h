#pragma once
#include <napi.h>
namespace offloadd {
void InitStats(Napi::Env env, Napi::Object exports);
}
