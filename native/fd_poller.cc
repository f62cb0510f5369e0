// FdPoller: one epoll set per env, watched by one uv_poll kept on its fd, for the waits of
// lib/watcher.ts's FdWaitQueue (sync_files, a KMS device's events). Watching an fd is then one
// epoll_ctl, not a uv_poll of its own: no handle to make, start, stop and close per wait (libuv
// makes five syscalls for that, and a JS wrapper, a reference and an async context on top).
//
// Each fd is in the set with EPOLLIN | EPOLLONESHOT and a token (lib/fd-poller.ts's, a safe
// integer): a readiness is reported once, then the entry stays disabled until rearm() (so nothing
// spins while JS decides). Closing the fd removes the entry (see PolledFd#forget in lib/fd-poller.ts:
// nothing is deleted by number).
//
// The armed tokens are kept here too (`armed_`), with whether each keeps the event loop alive and
// whether it is a sync_file: the set's handle is ref'd while any ref'd token is armed, and a wake
// takes a report's token out, unrefs for it and, for a sync_file, reads its status
// (SYNC_IOC_FILE_INFO: 1 signalled, < 0 the fence's error) in the same pass, so that a wake is one
// crossing into JS with nothing to call back for. A report of a token no longer armed (disarmed by a
// timeout, an abort or close(), its entry still enabled) is dropped here.
//
// A wake drains up to ready.length / 2 entries with epoll_wait(…, 0) and calls JS once with how
// many (token, status) pairs it wrote into `ready` (a Float64Array JS gave at construction: no
// allocation per wake; status NaN when not read), or with a negative errno when the uv_poll failed.
//
// The set's fd is owned by its poll handle (fd_watcher.h): close() or the env's teardown closes
// both. The JS wrapper is rooted by lib/fd-poller.ts for the env's life.
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <unordered_map>

#include "fd_watcher.h"
#include "uapi/sync_file.h"

namespace es {

namespace {

class FdPoller : public Napi::ObjectWrap<FdPoller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdPoller",
                       {InstanceMethod<&FdPoller::Add>("add"), InstanceMethod<&FdPoller::Rearm>("rearm"),
                        InstanceMethod<&FdPoller::Disarm>("disarm"), InstanceMethod<&FdPoller::SetRef>("setRef"),
                        InstanceMethod<&FdPoller::Close>("close"), InstanceAccessor<&FdPoller::GetFd>("fd")});
  }

  // new FdPoller(ready: Float64Array, callback: (count: number) => void)
  explicit FdPoller(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdPoller>(info), context_(info.Env(), "ExplicitSyncFdPoller") {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[0].As<Napi::TypedArray>().ElementLength() < 2)
      throw Napi::TypeError::New(env, "argument 0 must be a Float64Array of 2 elements or more");
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
  // add()/rearm()'s flags.
  static constexpr uint32_t kRef = 1;       // keeps the event loop alive while armed
  static constexpr uint32_t kSyncFile = 2;  // a sync_file: a report reads its status

  struct Armed {
    int fd;
    bool ref;
    bool sync_file;
  };

  static void DetachOwner(void* owner) {
    FdPoller* self = static_cast<FdPoller*>(owner);
    self->ph_ = nullptr;  // the teardown hook closes the handle and the epoll fd
    self->epfd_ = -1;
  }

  static int Ctl(int epfd, int op, int fd, uint64_t token) {
    epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev) == 0 ? 0 : errno;
  }

  // Arms fd with `op`, or with `fallback` when `op` fails with `fallback_err`; then records it.
  void Arm(const Napi::CallbackInfo& info, int op, int fallback, int fallback_err) {
    if (epfd_ < 0) ThrowErrno(info.Env(), EBADF, "epoll_ctl");
    int fd = ArgFd(info, 0);
    int64_t token = ArgI64(info, 1);
    if (token < 0) throw Napi::RangeError::New(info.Env(), "argument 1 must be a token >= 0");
    uint32_t flags = ArgU32(info, 2);
    uint64_t t = static_cast<uint64_t>(token);
    int err = Ctl(epfd_, op, fd, t);
    if (err == fallback_err) err = Ctl(epfd_, fallback, fd, t);
    if (err != 0) ThrowErrno(info.Env(), err, "epoll_ctl");
    Forget(t);  // armed again before its report: its old record goes
    armed_[t] = Armed{fd, (flags & kRef) != 0, (flags & kSyncFile) != 0};
    if (flags & kRef) CountRef(1);
  }

  // add(fd, token, flags): void — puts fd in the set, armed (an fd already there, as the same
  // file, is re-armed with the token).
  void Add(const Napi::CallbackInfo& info) { Arm(info, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EEXIST); }

  // rearm(fd, token, flags): void — arms an fd of the set again after a report.
  void Rearm(const Napi::CallbackInfo& info) {
    Arm(info, EPOLL_CTL_MOD, EPOLL_CTL_ADD, ENOENT);  // ENOENT: the file went away and the number is back
  }

  // disarm(token): void — JS stops waiting on token: a report of it is dropped, its ref ends.
  void Disarm(const Napi::CallbackInfo& info) { Forget(static_cast<uint64_t>(ArgI64(info, 0))); }

  // setRef(token, ref: boolean): void — whether an armed token keeps the event loop alive.
  void SetRef(const Napi::CallbackInfo& info) {
    auto it = armed_.find(static_cast<uint64_t>(ArgI64(info, 0)));
    bool ref = info[1].ToBoolean();
    if (it == armed_.end() || it->second.ref == ref) return;
    it->second.ref = ref;
    CountRef(ref ? 1 : -1);
  }

  void Forget(uint64_t token) {
    auto it = armed_.find(token);
    if (it == armed_.end()) return;
    if (it->second.ref) CountRef(-1);
    armed_.erase(it);
  }

  // The set's handle is ref'd while a ref'd token is armed.
  void CountRef(int delta) {
    bool before = refs_ > 0;
    refs_ += delta;
    if (ph_ == nullptr || (refs_ > 0) == before) return;
    uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&ph_->poll);
    if (refs_ > 0)
      uv_ref(h);
    else
      uv_unref(h);
  }

  // A sync_file's status for JS: 1 signalled, 0 active, < 0 its fence's error; NaN when the ioctl
  // failed (JS then asks itself, and throws that error).
  static double SyncFileStatus(int fd) {
    es_sync_file_info fi;
    memset(&fi, 0, sizeof(fi));
    return Ioctl(fd, ES_SYNC_IOC_FILE_INFO, &fi) == 0 ? fi.status : NAN;
  }

  // close(): void — idempotent: stops polling and closes the set.
  void Close(const Napi::CallbackInfo&) { Release(); }

  // fd: number — the epoll set's fd, -1 once closed.
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), epfd_); }

  void Release() {
    epfd_ = -1;
    callback_.Reset();
    armed_.clear();
    refs_ = 0;
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
      self->armed_.clear();
      self->refs_ = 0;
      uv_unref(reinterpret_cast<uv_handle_t*>(h));
    } else {
      Napi::Float64Array ready = self->ready_.Value();
      constexpr size_t kMax = 64;
      epoll_event evs[kMax];
      int cap = static_cast<int>(std::min(ready.ElementLength() / 2, kMax));
      int n;
      do {
        n = epoll_wait(self->epfd_, evs, cap, 0);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        count = -errno;
      } else {
        count = 0;
        for (int i = 0; i < n; i++) {
          uint64_t token = evs[i].data.u64;
          auto it = self->armed_.find(token);
          if (it == self->armed_.end()) continue;  // disarmed meanwhile: nobody waits for it
          Armed a = it->second;
          self->armed_.erase(it);
          if (a.ref) self->CountRef(-1);
          ready[2 * count] = static_cast<double>(token);
          ready[2 * count + 1] = a.sync_file ? SyncFileStatus(a.fd) : NAN;
          count++;
        }
        if (count == 0) return;  // drained by an earlier wake, removed or disarmed meanwhile
      }
    }
    try {
      self->callback_.MakeCallback(self->Value(), {Napi::Number::New(env, count)}, self->context_);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  PollHandle* ph_ = nullptr;
  int epfd_ = -1;
  std::unordered_map<uint64_t, Armed> armed_;
  int refs_ = 0;
  Napi::Reference<Napi::Float64Array> ready_;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

}  // namespace

void InitFdPoller(Napi::Env env, Napi::Object exports) { exports.Set("FdPoller", FdPoller::Define(env)); }

}  // namespace es
