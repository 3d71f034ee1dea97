// Giving back the native heap's free memory once a burst of work is over. glibc's malloc keeps
// what a burst freed (one arena per thread that allocated: V8's GC and compiler workers, libuv's
// thread pool), so a daemon that touched megabytes while starting keeps them resident for its
// whole life; malloc_trim(0) returns every arena's free pages to the kernel.
#include "memory.h"

#include <malloc.h>

namespace offloadd {
namespace {

// trimNativeHeap(): true if any memory was returned to the kernel.
Napi::Value TrimNativeHeap(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("trimNativeHeap", Napi::Function::New(env, TrimNativeHeap, "trimNativeHeap"));
}

}  // namespace offloadd
