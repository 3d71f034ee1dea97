// A listening AF_UNIX stream socket for the API, accepted here rather than by net.Server so that
// each connection's SO_PEERCRED is read on the descriptor accept() returned (Node exposes no
// public descriptor of a net.Socket). The accepted descriptor is handed to JavaScript, which
// wraps it in a net.Socket; from then on Node owns it.
#include "unix_listener.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "poll.h"
#include "syscall.h"

namespace offloadd {
namespace {

constexpr int kMaxAcceptsPerWakeup = 64;  // then yield to the loop (the poll is level-triggered)

class UnixListener : public Napi::ObjectWrap<UnixListener> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UnixListener",
                       {InstanceMethod("close", &UnixListener::Close), InstanceMethod("pause", &UnixListener::Pause),
                        InstanceMethod("resume", &UnixListener::Resume)});
  }

  // new UnixListener(path, backlog, onConnection(fd, errno, pid, uid, gid)): binds and listens.
  // The caller sets the umask (the socket's mode comes from it) and checks the path first.
  explicit UnixListener(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<UnixListener>(info), context_(info.Env(), "offloadd.UnixListener") {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsFunction())
      throw Napi::TypeError::New(env, "expected (path: string, backlog: number, onConnection: Function)");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    int backlog = info[1].As<Napi::Number>().Int32Value();
    sockaddr_un address;
    std::memset(&address, 0, sizeof address);
    if (path.empty() || path.size() >= sizeof address.sun_path) throw SyscallError(env, ENAMETOOLONG, "bind", path);
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size());
    callback_ = Napi::Persistent(info[2].As<Napi::Function>());

    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) throw SyscallError(env, errno, "socket(AF_UNIX, SOCK_STREAM)");
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 || listen(fd_, backlog) < 0) {
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      throw SyscallError(env, err, "bind/listen", path);
    }
    poll_ = StartPolling(env, fd_, this, OnReadable);
    Napi::ObjectWrap<UnixListener>::Ref();  // alive while listening
  }

  ~UnixListener() override { Shutdown(); }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  // accept() failing for want of descriptors (EMFILE, ENFILE) or memory leaves the connection
  // queued and the socket readable: the level-triggered poll would call back at once, forever.
  // The caller pauses accepting instead, and resumes later.
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    if (poll_ && polling_) uv_poll_stop(poll_);
    polling_ = false;
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    if (poll_ && !polling_) uv_poll_start(poll_, UV_READABLE, OnReadable);
    polling_ = poll_ != nullptr;
    return info.Env().Undefined();
  }

  void Shutdown() {
    if (poll_) {
      StopPolling(poll_);
      poll_ = nullptr;
      Napi::ObjectWrap<UnixListener>::Unref();
    }
    if (fd_ >= 0) {
      ::close(fd_);  // the path stays: removing it is the caller's decision
      fd_ = -1;
    }
  }

  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<UnixListener*>(handle->data);
    if (status < 0 && self->poll_ && self->polling_) uv_poll_start(self->poll_, UV_READABLE, OnReadable);
    self->AcceptAll();
  }

  void AcceptAll() {
    // The callback may pause the listener (or close it): then the rest waits in the backlog.
    for (int accepted = 0; fd_ >= 0 && polling_ && accepted < kMaxAcceptsPerWakeup; accepted++) {
      int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // ECONNABORTED: that client is lost. EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays
        // queued; the caller decides whether to pause (see Pause).
        Deliver(-1, errno, ucred{0, 0, 0});
        return;
      }
      ucred credentials{};
      socklen_t length = sizeof credentials;
      int err = getsockopt(client, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0 ? errno : 0;
      Deliver(client, err, credentials);
    }
  }

  // As LinkMonitor::Deliver: through MakeCallback, and no exception may unwind through libuv.
  void Deliver(int client, int err, const ucred& credentials) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      callback_.MakeCallback(
          env.Global(),
          {Napi::Number::New(env, client), Napi::Number::New(env, err), Napi::Number::New(env, credentials.pid),
           Napi::Number::New(env, credentials.uid), Napi::Number::New(env, credentials.gid)},
          context_);
    } catch (const Napi::Error& error) {
      std::fprintf(stderr, "offloadd: API connection handler threw: %s\n", error.Message().c_str());
    }
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  bool polling_ = true;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

}  // namespace

void InitUnixListener(Napi::Env env, Napi::Object exports) { exports.Set("UnixListener", UnixListener::Define(env)); }

}  // namespace offloadd
