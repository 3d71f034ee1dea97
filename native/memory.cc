// Giving back what a burst of work left resident, through two documented interfaces:
//  - v8::Isolate::LowMemoryNotification() (v8-isolate.h: "Optional notification that the system
//    is running low on memory. V8 uses these notifications to attempt to free memory."): full
//    collections that shrink the young generation to its minimum and release empty pages. It is
//    V8's embedder API rather than Node-API, so this file is compiled on its own with the C++
//    standard Node's V8 headers require (binding.gyp), and it ties the addon to the Node major it
//    was built for — as the packages' bundled runtime and `npx node-gyp rebuild` already do.
//  - malloc_trim(0): glibc's malloc keeps what a burst freed (one arena per thread that
//    allocated: V8's GC and compiler workers, libuv's thread pool); this returns every arena's
//    free pages to the kernel.
#include "memory.h"

#include <malloc.h>
#include <v8.h>

namespace offloadd {
namespace {

// releaseHeap(): V8's low-memory collection on the calling isolate. Synchronous.
Napi::Value ReleaseHeap(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  return info.Env().Undefined();
}

// trimNativeHeap(): true if any memory was returned to the kernel.
Napi::Value TrimNativeHeap(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("releaseHeap", Napi::Function::New(env, ReleaseHeap, "releaseHeap"));
  exports.Set("trimNativeHeap", Napi::Function::New(env, TrimNativeHeap, "trimNativeHeap"));
}

}  // namespace offloadd
