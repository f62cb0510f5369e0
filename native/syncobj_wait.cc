// SyncobjLane: the persistent wakeup source of one syncobj's async waits in one mode
// (lib/syncobj-wait.ts keeps the waits, timeouts and promises). It owns an eventfd and a uv_poll_t
// on it, both kept for the syncobj's life, so that a wait costs one DRM_IOCTL_SYNCOBJ_EVENTFD at
// most (made by JS on `fd`) and a wake one crossing into JS:
// - On readable, native drains the eventfd (each fired registration added 1) and, if waits are
//   pending, asks the kernel where the syncobj stands (QUERY, or a zero-timeout WAIT for a binary
//   syncobj; kind NONE leaves that to JS) and calls JS once with (status, level, fired). The JS
//   callback returns the lane's next state, applied unless JS set one itself meanwhile
//   (continuations run inside the callback's scope). Fires drained while idle are reported by the
//   next setState().
// - States: 0 idle (the JS wrapper is not rooted: the syncobj's owner may be garbage-collected,
//   and the wrapper's finalizer then closes the eventfd; the poll handle is unref'd and a wake
//   only drains), 1 pending unref'd (rooted; the loop may exit), 2 pending ref'd.
// The callback is kept on the wrapper itself (a property) and reached through a weak reference:
// a native strong reference to it would root the syncobj's owner through its closure.
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fd_watcher.h"
#include "uapi/drm_syncobj.h"

namespace es {

namespace {

// How a wake reads the syncobj's level (what lib/syncobj.ts and lib/timeline.ts do in JS).
enum LevelKind : uint32_t {
  kQuery = 0,         // timeline: DRM_IOCTL_SYNCOBJ_QUERY with `level_flags`; the point read
  kWait = 1,          // binary: zero-timeout DRM_IOCTL_SYNCOBJ_WAIT with `level_flags`; 0 or -1
  kTimelineWait = 2,  // binary, 'available': zero-timeout TIMELINE_WAIT of point 0; 0 or -1
  kNone = 3,          // JS reads the level itself (a scripted source in the host tests)
};

uint64_t Ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

class SyncobjLane : public Napi::ObjectWrap<SyncobjLane> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SyncobjLane",
                       {InstanceMethod<&SyncobjLane::SetState>("setState"), InstanceMethod<&SyncobjLane::Close>("close"),
                        InstanceAccessor<&SyncobjLane::GetFd>("fd")});
  }

  // new SyncobjLane(levelKind, drmFd, handle, levelFlags,
  //                 callback: (status, level: bigint | null, fired, syscall?) => state)
  // drmFd and handle are read only by a wake with waits pending (and kind != NONE).
  explicit SyncobjLane(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<SyncobjLane>(info), context_(info.Env(), "ExplicitSyncLane") {
    Napi::Env env = info.Env();
    kind_ = ArgU32(info, 0);
    if (kind_ > kNone) throw Napi::RangeError::New(env, "argument 0 must be a LANE_LEVEL kind");
    drm_fd_ = kind_ == kNone ? -1 : ArgFd(info, 1);
    handle_ = ArgU32(info, 2);
    level_flags_ = ArgU32(info, 3);
    if (!info[4].IsFunction()) throw Napi::TypeError::New(env, "argument 4 must be a function");
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd == -1) ThrowErrno(env, errno, "eventfd");
    ph_ = StartOwnedPollHandle(env, efd, this, DetachOwner, OnPoll);
    fd_ = efd;
    info.This().As<Napi::Object>().Set("callback", info[4]);
    callback_ = Napi::Weak(info[4].As<Napi::Function>());
    polling_ = true;
  }

  // Finalized (refcount 0), or torn down with the env: never Unref() here.
  ~SyncobjLane() override {
    rooted_ = false;
    Release();
  }

 private:
  static void DetachOwner(void* owner) {
    SyncobjLane* self = static_cast<SyncobjLane*>(owner);
    self->ph_ = nullptr;  // the teardown hook closes the handle and the eventfd
    self->fd_ = -1;
    self->rooted_ = false;  // the env drops every reference itself
    self->state_ = 0;
  }

  // setState(state: 0 | 1 | 2): number — see the file comment; returns the fires drained since
  // the last report.
  Napi::Value SetState(const Napi::CallbackInfo& info) {
    generation_++;
    ApplyState(ArgU32(info, 0));
    return Napi::Number::New(info.Env(), TakeFired());
  }

  double TakeFired() {
    double fired = static_cast<double>(fired_);
    fired_ = 0;
    return fired;
  }

  // close(): void — idempotent: stops polling and closes the eventfd.
  void Close(const Napi::CallbackInfo&) { Release(); }

  // fd: number — the eventfd, -1 once closed.
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  void ApplyState(uint32_t state) {
    if (ph_ == nullptr) return;
    bool rooted = state != 0;
    if (rooted != rooted_) {
      rooted_ = rooted;
      if (rooted)
        Ref();
      else
        Unref();
    }
    uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&ph_->poll);
    if (rooted && !polling_ && uv_poll_start(&ph_->poll, UV_READABLE, OnPoll) == 0) polling_ = true;
    if (state == 2)
      uv_ref(h);
    else
      uv_unref(h);
    state_ = state;
  }

  void Release() {
    if (rooted_) {
      rooted_ = false;
      Unref();
    }
    state_ = 0;
    fd_ = -1;
    if (ph_ == nullptr) return;
    PollHandle* ph = ph_;
    ph_ = nullptr;
    ClosePollHandle(ph);  // closes the eventfd
  }

  // Where the syncobj stands, into *level; 0 or a positive errno (the syscall named in *call).
  int ReadLevel(int64_t* level, uint64_t* point, const char** call) {
    uint32_t handle = handle_;
    int err;
    if (kind_ == kQuery) {
      *call = "DRM_IOCTL_SYNCOBJ_QUERY";
      es_drm_syncobj_timeline_array args = {};
      args.handles = Ptr(&handle);
      args.points = Ptr(point);
      args.count_handles = 1;
      args.flags = level_flags_;
      return Ioctl(drm_fd_, ES_DRM_IOCTL_SYNCOBJ_QUERY, &args);
    }
    if (kind_ == kWait) {
      *call = "DRM_IOCTL_SYNCOBJ_WAIT";
      es_drm_syncobj_wait args = {};
      args.handles = Ptr(&handle);
      args.count_handles = 1;
      args.flags = level_flags_;
      err = Ioctl(drm_fd_, ES_DRM_IOCTL_SYNCOBJ_WAIT, &args);
    } else {
      *call = "DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT";
      uint64_t zero = 0;
      es_drm_syncobj_timeline_wait args = {};
      args.handles = Ptr(&handle);
      args.points = Ptr(&zero);
      args.count_handles = 1;
      args.flags = level_flags_;
      err = Ioctl(drm_fd_, ES_DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, &args);
    }
    if (err == ETIME) {
      *level = -1;
      return 0;
    }
    *level = 0;
    return err;
  }

  static void OnPoll(uv_poll_t* h, int status, int) {
    PollHandle* ph = static_cast<PollHandle*>(h->data);
    SyncobjLane* self = static_cast<SyncobjLane*>(ph->owner);
    if (self == nullptr) return;
    if (status == 0) {
      uint64_t fired = 0;
      ssize_t n;
      do {
        n = read(self->fd_, &fired, sizeof(fired));
      } while (n == -1 && errno == EINTR);
      if (n == sizeof(fired)) self->fired_ += fired;
    }
    if (self->state_ == 0) {
      // Idle: nobody to tell. A broken poll stops here (the next wait re-arms nothing: it fails
      // on its own ioctls or times out), rather than spin.
      if (status < 0) {
        uv_poll_stop(h);
        self->polling_ = false;  // restarted by the next wait
      }
      return;
    }
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    int64_t level = 0;
    uint64_t point = 0;
    const char* call = "poll";
    int err = status < 0 ? -status : self->kind_ == kNone ? 0 : self->ReadLevel(&level, &point, &call);
    Napi::Value levelValue = env.Null();
    if (err == 0 && self->kind_ != kNone)
      levelValue = self->kind_ == kQuery ? Napi::BigInt::New(env, point) : Napi::BigInt::New(env, level);
    uint64_t generation = self->generation_;
    // Continuations run inside MakeCallback and may close the lane and drop its owner: keep the
    // wrapper alive until we are done with `self`.
    self->Ref();
    try {
      Napi::Value next = self->callback_.MakeCallback(
          self->Value(),
          {Napi::Number::New(env, -err), levelValue, Napi::Number::New(env, self->TakeFired()),
           err == 0 ? env.Undefined() : Napi::String::New(env, call)},
          self->context_);
      if (self->generation_ == generation && next.IsNumber()) self->ApplyState(next.As<Napi::Number>().Uint32Value());
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
    self->Unref();
  }

  PollHandle* ph_ = nullptr;
  int fd_ = -1;
  int drm_fd_ = -1;
  uint32_t handle_ = 0;
  uint32_t kind_ = kQuery;
  uint32_t level_flags_ = 0;
  uint64_t fired_ = 0;
  uint64_t generation_ = 0;
  uint32_t state_ = 0;
  bool rooted_ = false;
  bool polling_ = false;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

}  // namespace

void InitSyncobjWait(Napi::Env env, Napi::Object exports) {
  exports.Set("SyncobjLane", SyncobjLane::Define(env));
  Napi::Object kinds = Napi::Object::New(env);
  const char* names[] = {"QUERY", "WAIT", "TIMELINE_WAIT", "NONE"};  // in LevelKind order
  for (uint32_t kind = kQuery; kind <= kNone; kind++) kinds.Set(names[kind], kind);
  exports.Set("LANE_LEVEL", kinds);
}

}  // namespace es
