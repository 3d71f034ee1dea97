// flock(2) for the state directory's lock: Node has no advisory locks. The descriptor is opened
// (and kept open for the daemon's life) by TypeScript; the lock goes with it when it closes or
// the process dies, so a crashed daemon never leaves a stale lock behind.
#include "flock.h"

#include <sys/file.h>

#include <cerrno>

#include "syscall.h"

namespace offloadd {
namespace {

// tryLockExclusive(fd): true if this descriptor now holds the exclusive lock, false if another
// open file description holds it; other failures throw.
Napi::Value TryLockExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "tryLockExclusive(fd)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return Napi::Boolean::New(env, true);
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    throw SyscallError(env, errno, "flock(LOCK_EX)");
  }
}

}  // namespace

void InitFlock(Napi::Env env, Napi::Object exports) {
  exports.Set("tryLockExclusive", Napi::Function::New(env, TryLockExclusive, "tryLockExclusive"));
}

}  // namespace offloadd
