// The env's registry of uv_poll_t handles (fd_watcher.cc), shared by every native object that polls
// an fd: FdWatcher (fd_watcher.cc), SyncobjLane (syncobj_wait.cc) and FdPoller (fd_poller.cc). An
// async env cleanup hook closes every handle still open when a worker/env is torn down, and tells
// its owner.
#ifndef EXPLICIT_SYNC_FD_WATCHER_H_
#define EXPLICIT_SYNC_FD_WATCHER_H_

#include <uv.h>

#include "util.h"

namespace es {

struct WatcherRegistry;

struct PollHandle {
  uv_poll_t poll;
  void* owner;                  // null once the owner let go (closed, finalized or torn down)
  void (*detach)(void* owner);  // teardown: the handle is gone, the owner must forget it
  WatcherRegistry* registry;
  int owned_fd;                 // closed with the handle when >= 0 (a lane's eventfd), else -1
};

// A uv_poll_t on `fd` on the env's own loop, registered for teardown; not started. Throws. On
// failure nothing is taken over: `owned_fd` stays the caller's.
PollHandle* OpenPollHandle(Napi::Env env, int fd, void* owner, void (*detach)(void*), int owned_fd);

// The shape of FdPoller's epoll set and SyncobjLane's eventfd: takes over `fd` (one the caller has
// just made), opens a handle owning it, starts polling it for readability and unrefs it (the owner
// refs it while it has ref'd waits). Throws; on failure fd is closed.
PollHandle* StartOwnedPollHandle(Napi::Env env, int fd, void* owner, void (*detach)(void*), uv_poll_cb cb);

// Stops polling, closes the owned fd (if any) at once, and uv_close()s the handle, which is freed
// in its close callback. The caller must have let go of it (no owner left).
void ClosePollHandle(PollHandle* ph);

}  // namespace es

#endif  // EXPLICIT_SYNC_FD_WATCHER_H_
