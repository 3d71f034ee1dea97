#pragma once
#include <napi.h>
namespace offloadd {
void InitRtnl(Napi::Env env, Napi::Object exports);
}
