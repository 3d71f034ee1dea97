// A descriptor polled for readability on Node's libuv loop, shared by the addon's long-lived
// sockets (the rtnetlink monitor, the API listener).
#pragma once
#include <napi.h>
#include <uv.h>

namespace offloadd {

// Starts polling `fd`; `data` is handed to `onReadable` as handle->data.
inline uv_poll_t* StartPolling(Napi::Env env, int fd, void* data, uv_poll_cb onReadable) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  auto* poll = new uv_poll_t;
  poll->data = data;
  uv_poll_init(loop, poll, fd);
  uv_poll_start(poll, UV_READABLE, onReadable);
  return poll;
}

// Stops polling; libuv frees the handle once it is closed. Safe to call with nullptr.
inline void StopPolling(uv_poll_t* poll) {
  if (poll == nullptr) return;
  uv_poll_stop(poll);
  uv_close(reinterpret_cast<uv_handle_t*>(poll),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
}

}  // namespace offloadd
