// FdWatcher: the one native fd-readiness primitive (a libuv uv_poll_t on the env's own loop) that
// every async wait in the library reuses. lib/watcher.ts multiplexes any number of waits onto one
// watcher per fd and owns all timeouts, cancellation and promises; native never holds a Promise.
//
// Invariants (the bug history of uv_poll addons is full of them):
// - One uv_poll_t per fd; the fd is NOT owned here: the caller must close() the watcher, which stops
//   polling, before it closes the fd.
// - The uv_poll_t is freed only in its uv_close callback.
// - While started, the JS wrapper is Ref()'d so it cannot be collected mid-wait; close() drops
//   the callback reference, so a closed watcher roots nothing.
// - Callbacks re-enter JS through MakeCallback, so nextTicks and microtasks run afterwards.
// - An async env cleanup hook closes every handle still open when a worker/env is torn down.
#include "fd_watcher.h"

#include <unistd.h>

#include <unordered_set>

namespace es {

// Per-env set of open poll handles, for teardown.
struct WatcherRegistry {
  std::unordered_set<PollHandle*> open;
  napi_async_cleanup_hook_handle hook = nullptr;
  bool tearing_down = false;
};

static void MaybeFinishTeardown(WatcherRegistry* reg) {
  if (reg->tearing_down && reg->open.empty()) {
    napi_remove_async_cleanup_hook(reg->hook);
    delete reg;
  }
}

static void OnHandleClosed(uv_handle_t* h) {
  PollHandle* ph = static_cast<PollHandle*>(h->data);
  WatcherRegistry* reg = ph->registry;
  reg->open.erase(ph);
  delete ph;
  MaybeFinishTeardown(reg);
}

PollHandle* OpenPollHandle(Napi::Env env, int fd, void* owner, void (*detach)(void*), int owned_fd) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
    throw Napi::Error::New(env, "no event loop for this environment");
  WatcherRegistry* reg = GetAddonData(env)->watchers;
  if (reg == nullptr) throw Napi::Error::New(env, "environment is shutting down");
  PollHandle* ph = new PollHandle{{}, owner, detach, reg, owned_fd};
  int err = uv_poll_init(loop, &ph->poll, fd);
  if (err != 0) {
    delete ph;
    ThrowErrno(env, -err, "uv_poll_init");
  }
  ph->poll.data = ph;
  reg->open.insert(ph);
  return ph;
}

PollHandle* StartOwnedPollHandle(Napi::Env env, int fd, void* owner, void (*detach)(void*), uv_poll_cb cb) {
  PollHandle* ph;
  try {
    ph = OpenPollHandle(env, fd, owner, detach, fd);
  } catch (...) {
    close(fd);
    throw;
  }
  int err = uv_poll_start(&ph->poll, UV_READABLE, cb);
  uv_unref(reinterpret_cast<uv_handle_t*>(&ph->poll));
  if (err != 0) {
    ClosePollHandle(ph);  // closes fd
    ThrowErrno(env, -err, "uv_poll_start");
  }
  return ph;
}

void ClosePollHandle(PollHandle* ph) {
  ph->owner = nullptr;
  uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&ph->poll);
  if (uv_is_closing(h)) return;
  uv_poll_stop(&ph->poll);  // out of epoll before the fd closes
  if (ph->owned_fd >= 0) {
    close(ph->owned_fd);
    ph->owned_fd = -1;
  }
  uv_close(h, OnHandleClosed);
}

class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatcher",
                       {InstanceMethod<&FdWatcher::Start>("start"), InstanceMethod<&FdWatcher::Stop>("stop"),
                        InstanceMethod<&FdWatcher::SetRef>("setRef"), InstanceMethod<&FdWatcher::Close>("close")});
  }

  // new FdWatcher(fd: number, callback: (status: number, events: number) => void)
  // status is 0 or a negative libuv errno; events a mask of READABLE/WRITABLE/DISCONNECT/PRIORITIZED.
  explicit FdWatcher(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdWatcher>(info), context_(info.Env(), "ExplicitSyncFdWatcher") {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0);
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "argument 1 must be a function");
    handle_ = OpenPollHandle(env, fd, this, DetachOwner, -1);
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  }

  ~FdWatcher() override { Release(); }

  // Called by the teardown hook: forget the handle, the hook closes it.
  static void DetachOwner(void* owner) {
    FdWatcher* self = static_cast<FdWatcher*>(owner);
    self->handle_ = nullptr;
    self->active_ = false;
  }

 private:
  // start(events: number): void — (re)arms polling for `events`.
  void Start(const Napi::CallbackInfo& info) {
    uint32_t events = ArgU32(info, 0);
    if (handle_ == nullptr) ThrowErrno(info.Env(), EBADF, "uv_poll_start");
    int err = uv_poll_start(&handle_->poll, static_cast<int>(events), OnPoll);
    if (err != 0) ThrowErrno(info.Env(), -err, "uv_poll_start");
    if (!active_) {
      active_ = true;
      Ref();
    }
  }

  // stop(): void
  void Stop(const Napi::CallbackInfo&) { StopPolling(); }

  // setRef(ref: boolean): void — whether a started watcher keeps the event loop alive.
  void SetRef(const Napi::CallbackInfo& info) {
    if (handle_ == nullptr) return;
    if (info[0].ToBoolean())
      uv_ref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
    else
      uv_unref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
  }

  // close(): void — idempotent; after it the caller may close the fd.
  void Close(const Napi::CallbackInfo&) { Release(); }

  void StopPolling() {
    if (handle_ != nullptr) uv_poll_stop(&handle_->poll);
    if (active_) {
      active_ = false;
      Unref();
    }
  }

  void Release() {
    if (handle_ == nullptr) return;
    StopPolling();
    PollHandle* ph = handle_;
    handle_ = nullptr;
    // The callback reference is a GC root: drop it so a closed watcher keeps nothing alive (the
    // callback's closure usually reaches the object that owns this watcher).
    callback_.Reset();
    ClosePollHandle(ph);
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    PollHandle* ph = static_cast<PollHandle*>(h->data);
    FdWatcher* self = static_cast<FdWatcher*>(ph->owner);
    if (self == nullptr) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    try {
      self->callback_.MakeCallback(self->Value(),
                                   {Napi::Number::New(env, status), Napi::Number::New(env, events)},
                                   self->context_);
    } catch (const Napi::Error& e) {
      // The JS dispatcher threw: surface it as an uncaught exception, as a timer callback would.
      napi_fatal_exception(env, e.Value());
    }
  }

  PollHandle* handle_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
  bool active_ = false;
};

static void TeardownHook(napi_async_cleanup_hook_handle, void* arg) {
  WatcherRegistry* reg = static_cast<WatcherRegistry*>(arg);
  reg->tearing_down = true;
  // Copy: closing erases from the set in the close callback (which runs later, on the loop).
  for (PollHandle* ph : std::unordered_set<PollHandle*>(reg->open)) {
    if (ph->owner != nullptr) ph->detach(ph->owner);
    ClosePollHandle(ph);
  }
  MaybeFinishTeardown(reg);
}

void InitFdWatcher(Napi::Env env, Napi::Object exports) {
  WatcherRegistry* reg = new WatcherRegistry();
  GetAddonData(env)->watchers = reg;
  napi_add_async_cleanup_hook(env, TeardownHook, reg, &reg->hook);
  exports.Set("FdWatcher", FdWatcher::Define(env));
  Napi::Object ev = Napi::Object::New(env);
  ev.Set("READABLE", static_cast<int>(UV_READABLE));
  ev.Set("WRITABLE", static_cast<int>(UV_WRITABLE));
  ev.Set("DISCONNECT", static_cast<int>(UV_DISCONNECT));
  ev.Set("PRIORITIZED", static_cast<int>(UV_PRIORITIZED));
  exports.Set("POLL", ev);
}

}  // namespace es
