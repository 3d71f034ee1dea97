#pragma once
#include <napi.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>

namespace offloadd {
void InitRtnl(Napi::Env env, Napi::Object exports);

// A short-lived NETLINK_ROUTE socket for one request and its answer (a dump, one link's
// statistics), apart from the multicast subscription so the two never interleave. Closed when
// it goes out of scope; the receive timeout guards against an answer that never comes.
class RouteRequest {
 public:
  RouteRequest(Napi::Env env, int timeoutSeconds);
  ~RouteRequest() { ::close(fd_); }
  RouteRequest(const RouteRequest&) = delete;
  RouteRequest& operator=(const RouteRequest&) = delete;

  int fd() const { return fd_; }
  // Sends `request` (a whole netlink message) to the kernel; throws a SyscallError naming `what`.
  void Send(Napi::Env env, const void* request, size_t length, const char* what) const;

 private:
  int fd_;
};
}  // namespace offloadd
