#pragma once
#include <napi.h>
namespace offloadd {
void InitFlock(Napi::Env env, Napi::Object exports);
}
