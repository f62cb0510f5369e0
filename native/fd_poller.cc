// FdPoller: one epoll set per env, watched by one uv_poll kept on its fd, for the waits of
// lib/watcher.ts's FdWaitQueue (sync_files, a KMS device's events). Watching an fd is then one
// epoll_ctl, not a uv_poll of its own: no handle to make, start, stop and close per wait (libuv
// makes five syscalls for that, and a JS wrapper, a reference and an async context on top).
//
// Each fd is in the set with EPOLLIN | EPOLLONESHOT and a token (lib/fd-poller.ts's, a safe
// integer): a readiness is reported once, then the entry stays disabled until rearm() (so nothing
// spins while JS decides). Closing the fd removes the entry (see PolledFd#forget in lib/fd-poller.ts:
// nothing is deleted by number). A wake drains
// up to ready.length entries with epoll_wait(…, 0) and calls JS once with how many tokens it
// wrote into `ready` (a Float64Array JS gave at construction: no allocation per wake), or with a
// negative errno when the uv_poll failed.
//
// The set's fd is owned by its poll handle (fd_watcher.h): close() or the env's teardown closes
// both. The JS wrapper is rooted by lib/fd-poller.ts for the env's life.
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "fd_watcher.h"

namespace es {

namespace {

class FdPoller : public Napi::ObjectWrap<FdPoller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdPoller",
                       {InstanceMethod<&FdPoller::Add>("add"), InstanceMethod<&FdPoller::Rearm>("rearm"),
                        InstanceMethod<&FdPoller::SetRef>("setRef"),
                        InstanceMethod<&FdPoller::Close>("close"), InstanceAccessor<&FdPoller::GetFd>("fd")});
  }

  // new FdPoller(ready: Float64Array, callback: (count: number) => void)
  explicit FdPoller(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdPoller>(info), context_(info.Env(), "ExplicitSyncFdPoller") {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[0].As<Napi::TypedArray>().ElementLength() == 0)
      throw Napi::TypeError::New(env, "argument 0 must be a non-empty Float64Array");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "argument 1 must be a function");
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) ThrowErrno(env, errno, "epoll_create1");
    ph_ = StartOwnedPollHandle(env, epfd, this, DetachOwner, OnPoll);
    epfd_ = epfd;
    ready_ = Napi::Persistent(info[0].As<Napi::Float64Array>());
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  }

  ~FdPoller() override { Release(); }

 private:
  static void DetachOwner(void* owner) {
    FdPoller* self = static_cast<FdPoller*>(owner);
    self->ph_ = nullptr;  // the teardown hook closes the handle and the epoll fd
    self->epfd_ = -1;
  }

  int Ctl(const Napi::CallbackInfo& info, int op) {
    if (epfd_ < 0) ThrowErrno(info.Env(), EBADF, "epoll_ctl");
    int fd = ArgFd(info, 0);
    int64_t token = ArgI64(info, 1);
    if (token < 0) throw Napi::RangeError::New(info.Env(), "argument 1 must be a token >= 0");
    epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = static_cast<uint64_t>(token);
    return epoll_ctl(epfd_, op, fd, &ev) == 0 ? 0 : errno;
  }

  // add(fd: number, token: number): void — puts fd in the set, armed (an fd already there, as the
  // same file, is re-armed with the token).
  void Add(const Napi::CallbackInfo& info) {
    int err = Ctl(info, EPOLL_CTL_ADD);
    if (err == EEXIST) err = Ctl(info, EPOLL_CTL_MOD);
    if (err != 0) ThrowErrno(info.Env(), err, "epoll_ctl");
  }

  // rearm(fd: number, token: number): void — arms an fd of the set again after a report.
  void Rearm(const Napi::CallbackInfo& info) {
    int err = Ctl(info, EPOLL_CTL_MOD);
    if (err == ENOENT) err = Ctl(info, EPOLL_CTL_ADD);  // the file went away and the number is back
    if (err != 0) ThrowErrno(info.Env(), err, "epoll_ctl");
  }

  // setRef(ref: boolean): void — whether the set keeps the event loop alive.
  void SetRef(const Napi::CallbackInfo& info) {
    if (ph_ == nullptr) return;
    uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&ph_->poll);
    if (info[0].ToBoolean())
      uv_ref(h);
    else
      uv_unref(h);
  }

  // close(): void — idempotent: stops polling and closes the set.
  void Close(const Napi::CallbackInfo&) { Release(); }

  // fd: number — the epoll set's fd, -1 once closed.
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), epfd_); }

  void Release() {
    epfd_ = -1;
    callback_.Reset();
    if (ph_ == nullptr) return;
    PollHandle* ph = ph_;
    ph_ = nullptr;
    ClosePollHandle(ph);  // closes the epoll fd
  }

  static void OnPoll(uv_poll_t* h, int status, int) {
    PollHandle* ph = static_cast<PollHandle*>(h->data);
    FdPoller* self = static_cast<FdPoller*>(ph->owner);
    if (self == nullptr || self->callback_.IsEmpty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    int count = status;
    if (status < 0) {
      uv_poll_stop(h);  // broken: JS rejects what waits and makes a new set for the next wait
    } else {
      Napi::Float64Array ready = self->ready_.Value();
      constexpr int kMax = 64;
      epoll_event evs[kMax];
      int cap = static_cast<int>(ready.ElementLength() < kMax ? ready.ElementLength() : kMax);
      do {
        count = epoll_wait(self->epfd_, evs, cap, 0);
      } while (count < 0 && errno == EINTR);
      if (count < 0) count = -errno;
      if (count == 0) return;  // drained by an earlier wake, or removed meanwhile
      for (int i = 0; i < count; i++) ready[i] = static_cast<double>(evs[i].data.u64);
    }
    try {
      self->callback_.MakeCallback(self->Value(), {Napi::Number::New(env, count)}, self->context_);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  PollHandle* ph_ = nullptr;
  int epfd_ = -1;
  Napi::Reference<Napi::Float64Array> ready_;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

}  // namespace

void InitFdPoller(Napi::Env env, Napi::Object exports) { exports.Set("FdPoller", FdPoller::Define(env)); }

}  // namespace es
