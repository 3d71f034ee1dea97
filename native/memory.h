#pragma once
#include <napi.h>
namespace offloadd {
void InitMemory(Napi::Env env, Napi::Object exports);
}
