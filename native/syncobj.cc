// DRM syncobj ioctls, binary and timeline: thin wrappers that take the device fd, handles and points
// and return handles, fds and bigints. lib/syncobj.ts and lib/timeline.ts own the objects, the
// validation, the async waits (eventfd + FdWatcher) and the error text.
//
// Waits here never block unless the caller passes a future absolute timeout (the explicit
// waitSync() API); every event-loop path passes timeout 0. ETIME is returned (as -ETIME), not thrown,
// so that the hot "is it signalled yet?" checks do not build an Error.
#include <errno.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>


#include "uapi/drm_syncobj.h"
#include "util.h"

namespace es {

namespace {

// An array argument of the kernel's array ioctls, read in place: a TypedArray's own memory (the
// kernel reads it during the synchronous call; nothing is copied or allocated), or one scalar.
template <typename T>
struct Span {
  const T* data;
  uint32_t count;
  T one;  // the scalar form's value; data points here then (so a Span must not be copied)
  Span() = default;
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;
};

template <typename T>
bool ReadArray(Napi::Value v, napi_typedarray_type type, Span<T>* out) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  if (a.TypedArrayType() != type) return false;
  out->data = reinterpret_cast<const T*>(static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
  out->count = static_cast<uint32_t>(a.ElementLength());
  return true;
}

// A handle list: a number (one handle) or a Uint32Array.
void ArgHandles(const Napi::CallbackInfo& info, size_t i, Span<uint32_t>* out) {
  if (ReadArray(info[i], napi_uint32_array, out)) return;
  out->one = ArgU32(info, i);
  out->data = &out->one;
  out->count = 1;
}

// A point list: a bigint/number (one point) or a BigUint64Array.
void ArgPoints(const Napi::CallbackInfo& info, size_t i, Span<uint64_t>* out) {
  if (ReadArray(info[i], napi_biguint64_array, out)) return;
  out->one = ArgU64(info, i);
  out->data = &out->one;
  out->count = 1;
}

// Handles at info[i] and points at info[i + 1] (ArgHandles, ArgPoints), of the same length.
void ArgHandlesPoints(const Napi::CallbackInfo& info, size_t i, Span<uint32_t>* handles, Span<uint64_t>* points) {
  ArgHandles(info, i, handles);
  ArgPoints(info, i + 1, points);
  if (points->count != handles->count) throw Napi::RangeError::New(info.Env(), "handles and points must have the same length");
}

uint64_t Ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

}  // namespace

// syncobjCreate(fd, flags): handle
static Napi::Value SyncobjCreate(const Napi::CallbackInfo& info) {
  es_drm_syncobj_create args = {};
  int fd = ArgFd(info, 0);
  args.flags = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_CREATE, &args);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_CREATE");
  return Napi::Number::New(info.Env(), args.handle);
}

// syncobjDestroy(fd, handle): void
static void SyncobjDestroy(const Napi::CallbackInfo& info) {
  es_drm_syncobj_destroy args = {};
  int fd = ArgFd(info, 0);
  args.handle = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_DESTROY, &args);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_DESTROY");
}

// syncobjHandleToFd(fd, handle, flags, point: bigint): fd — opaque syncobj fd, or a sync_file
// with EXPORT_SYNC_FILE (at `point` with the 6.16 TIMELINE flag). The caller owns the fd (O_CLOEXEC).
static Napi::Value SyncobjHandleToFd(const Napi::CallbackInfo& info) {
  es_drm_syncobj_handle args = {};
  int fd = ArgFd(info, 0);
  args.handle = ArgU32(info, 1);
  args.flags = ArgU32(info, 2);
  args.point = ArgU64(info, 3);
  args.fd = -1;
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &args);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD");
  return Napi::Number::New(info.Env(), args.fd);
}

// syncobjFdToHandle(fd, objFd, flags, handle, point: bigint): handle — without flags imports an
// opaque syncobj fd as a new handle; with IMPORT_SYNC_FILE puts the sync_file's fence into `handle`
// (at `point` with the 6.16 TIMELINE flag). Never takes ownership of objFd.
static Napi::Value SyncobjFdToHandle(const Napi::CallbackInfo& info) {
  es_drm_syncobj_handle args = {};
  int fd = ArgFd(info, 0);
  args.fd = ArgFd(info, 1);
  args.flags = ArgU32(info, 2);
  args.handle = ArgU32(info, 3);
  args.point = ArgU64(info, 4);
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, &args);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE");
  return Napi::Number::New(info.Env(), args.handle);
}

// syncobjWait(fd, handles: number | Uint32Array, timeoutNs: bigint, flags, deadlineNs: bigint):
// number — first_signaled (meaningful without WAIT_ALL), or -ETIME when the absolute timeout passed.
static Napi::Value SyncobjWait(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  Span<uint32_t> handles;
  ArgHandles(info, 1, &handles);
  es_drm_syncobj_wait args = {};
  args.handles = Ptr(handles.data);
  args.count_handles = handles.count;
  args.timeout_nsec = ArgI64(info, 2);
  args.flags = ArgU32(info, 3);
  args.deadline_nsec = ArgU64(info, 4);
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_WAIT, &args);
  if (err == ETIME) return Napi::Number::New(info.Env(), -ETIME);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_WAIT");
  return Napi::Number::New(info.Env(), args.first_signaled);
}

// syncobjTimelineWait(fd, handles: number | Uint32Array, points: bigint | BigUint64Array,
// timeoutNs: bigint, flags, deadlineNs: bigint): number — first_signaled, or -ETIME.
static Napi::Value SyncobjTimelineWait(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  Span<uint32_t> handles;
  Span<uint64_t> points;
  ArgHandlesPoints(info, 1, &handles, &points);
  es_drm_syncobj_timeline_wait args = {};
  args.handles = Ptr(handles.data);
  args.points = Ptr(points.data);
  args.count_handles = handles.count;
  args.timeout_nsec = ArgI64(info, 3);
  args.flags = ArgU32(info, 4);
  args.deadline_nsec = ArgU64(info, 5);
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, &args);
  if (err == ETIME) return Napi::Number::New(info.Env(), -ETIME);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT");
  return Napi::Number::New(info.Env(), args.first_signaled);
}

static void ArrayIoctl(const Napi::CallbackInfo& info, unsigned long request, const char* name) {
  int fd = ArgFd(info, 0);
  Span<uint32_t> handles;
  ArgHandles(info, 1, &handles);
  es_drm_syncobj_array args = {};
  args.handles = Ptr(handles.data);
  args.count_handles = handles.count;
  int err = Ioctl(fd, request, &args);
  if (err) ThrowErrno(info.Env(), err, name);
}

// syncobjReset(fd, handles: number | Uint32Array): void
static void SyncobjReset(const Napi::CallbackInfo& info) {
  ArrayIoctl(info, ES_DRM_IOCTL_SYNCOBJ_RESET, "DRM_IOCTL_SYNCOBJ_RESET");
}

// syncobjSignal(fd, handles: number | Uint32Array): void
static void SyncobjSignal(const Napi::CallbackInfo& info) {
  ArrayIoctl(info, ES_DRM_IOCTL_SYNCOBJ_SIGNAL, "DRM_IOCTL_SYNCOBJ_SIGNAL");
}

// syncobjQuery(fd, handle, flags): bigint — last signalled point, or last submitted with LAST_SUBMITTED.
static Napi::Value SyncobjQuery(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  uint32_t handle = ArgU32(info, 1);
  uint64_t point = 0;
  es_drm_syncobj_timeline_array args = {};
  args.handles = Ptr(&handle);
  args.points = Ptr(&point);
  args.count_handles = 1;
  args.flags = ArgU32(info, 2);
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_QUERY, &args);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_QUERY");
  return U64(info.Env(), point);
}

// One DRM_IOCTL_SYNCOBJ_QUERY or _TIMELINE_SIGNAL of the handles and points at info[1], info[2].
static void TimelineArrayIoctl(const Napi::CallbackInfo& info, unsigned long request, uint32_t flags, const char* name) {
  int fd = ArgFd(info, 0);
  Span<uint32_t> handles;
  Span<uint64_t> points;
  ArgHandlesPoints(info, 1, &handles, &points);
  es_drm_syncobj_timeline_array args = {};
  args.handles = Ptr(handles.data);
  args.points = Ptr(points.data);
  args.count_handles = handles.count;
  args.flags = flags;
  int err = Ioctl(fd, request, &args);
  if (err) ThrowErrno(info.Env(), err, name);
}

// syncobjQueryInto(fd, handles: Uint32Array, points: BigUint64Array, flags): void — one QUERY of
// every handle; the kernel writes the points into `points` (same length) in place.
static void SyncobjQueryInto(const Napi::CallbackInfo& info) {
  if (!info[2].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "points must be a BigUint64Array");
  TimelineArrayIoctl(info, ES_DRM_IOCTL_SYNCOBJ_QUERY, ArgU32(info, 3), "DRM_IOCTL_SYNCOBJ_QUERY");
}

// syncobjTimelineSignal(fd, handles: number | Uint32Array, points: bigint | BigUint64Array): void
static void SyncobjTimelineSignal(const Napi::CallbackInfo& info) {
  TimelineArrayIoctl(info, ES_DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, 0, "DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL");
}

// syncobjTransfer(fd, srcHandle, srcPoint: bigint, dstHandle, dstPoint: bigint, flags): void
// dstPoint 0 replaces a binary syncobj's fence. Callers never pass WAIT_FOR_SUBMIT (it can block 5 s).
static void SyncobjTransfer(const Napi::CallbackInfo& info) {
  es_drm_syncobj_transfer args = {};
  int fd = ArgFd(info, 0);
  args.src_handle = ArgU32(info, 1);
  args.src_point = ArgU64(info, 2);
  args.dst_handle = ArgU32(info, 3);
  args.dst_point = ArgU64(info, 4);
  args.flags = ArgU32(info, 5);
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_TRANSFER, &args);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_TRANSFER");
}

// syncobjEventfd(fd, handle, point: bigint, flags, eventFd): void — the kernel adds 1 to the eventfd
// once the point signals (flags 0) or has a fence (WAIT_AVAILABLE). One-shot; there is no unregister:
// a registration lives until it fires or the syncobj is destroyed (then silently dropped).
// eventFd may be -1 for the feature probe (the handle is looked up before the fd).
static void SyncobjEventfd(const Napi::CallbackInfo& info) {
  es_drm_syncobj_eventfd args = {};
  int fd = ArgFd(info, 0);
  args.handle = ArgU32(info, 1);
  args.point = ArgU64(info, 2);
  args.flags = ArgU32(info, 3);
  args.fd = info[4].IsNumber() && info[4].As<Napi::Number>().Int32Value() == -1 ? -1 : ArgFd(info, 4);
  int err = Ioctl(fd, ES_DRM_IOCTL_SYNCOBJ_EVENTFD, &args);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SYNCOBJ_EVENTFD");
}

// eventfdCreate(): fd — eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); the caller owns it.
static Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd == -1) ThrowErrno(info.Env(), errno, "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

// eventfdDrain(fd): number — reads (resets) the counter so a level-triggered poll stops firing;
// returns the count read, 0 if there was nothing to read.
static Napi::Value EventfdDrain(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  uint64_t value = 0;
  ssize_t n;
  do {
    n = read(fd, &value, sizeof(value));
  } while (n == -1 && errno == EINTR);
  if (n == -1 && errno != EAGAIN) ThrowErrno(info.Env(), errno, "read");
  return Napi::Number::New(info.Env(), n == sizeof(value) ? static_cast<double>(value) : 0);
}

// clockMonotonic(): bigint — clock_gettime(CLOCK_MONOTONIC) in ns, the clock of every syncobj timeout.
static Napi::Value ClockMonotonic(const Napi::CallbackInfo& info) {
  struct timespec ts = {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return U64(info.Env(), static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec));
}

void InitSyncobj(Napi::Env env, Napi::Object exports) {
  exports.Set("syncobjCreate", Napi::Function::New(env, SyncobjCreate, "syncobjCreate"));
  exports.Set("syncobjDestroy", Napi::Function::New(env, SyncobjDestroy, "syncobjDestroy"));
  exports.Set("syncobjHandleToFd", Napi::Function::New(env, SyncobjHandleToFd, "syncobjHandleToFd"));
  exports.Set("syncobjFdToHandle", Napi::Function::New(env, SyncobjFdToHandle, "syncobjFdToHandle"));
  exports.Set("syncobjWait", Napi::Function::New(env, SyncobjWait, "syncobjWait"));
  exports.Set("syncobjTimelineWait", Napi::Function::New(env, SyncobjTimelineWait, "syncobjTimelineWait"));
  exports.Set("syncobjReset", Napi::Function::New(env, SyncobjReset, "syncobjReset"));
  exports.Set("syncobjSignal", Napi::Function::New(env, SyncobjSignal, "syncobjSignal"));
  exports.Set("syncobjQuery", Napi::Function::New(env, SyncobjQuery, "syncobjQuery"));
  exports.Set("syncobjQueryInto", Napi::Function::New(env, SyncobjQueryInto, "syncobjQueryInto"));
  exports.Set("syncobjTimelineSignal", Napi::Function::New(env, SyncobjTimelineSignal, "syncobjTimelineSignal"));
  exports.Set("syncobjTransfer", Napi::Function::New(env, SyncobjTransfer, "syncobjTransfer"));
  exports.Set("syncobjEventfd", Napi::Function::New(env, SyncobjEventfd, "syncobjEventfd"));
  exports.Set("eventfdCreate", Napi::Function::New(env, EventfdCreate, "eventfdCreate"));
  exports.Set("eventfdDrain", Napi::Function::New(env, EventfdDrain, "eventfdDrain"));
  exports.Set("clockMonotonic", Napi::Function::New(env, ClockMonotonic, "clockMonotonic"));

  Napi::Object c = Napi::Object::New(env);
  c.Set("CREATE_SIGNALED", ES_DRM_SYNCOBJ_CREATE_SIGNALED);
  c.Set("IMPORT_SYNC_FILE", ES_DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE);
  c.Set("IMPORT_TIMELINE", ES_DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_TIMELINE);
  c.Set("EXPORT_SYNC_FILE", ES_DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE);
  c.Set("EXPORT_TIMELINE", ES_DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_TIMELINE);
  c.Set("WAIT_ALL", ES_DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL);
  c.Set("WAIT_FOR_SUBMIT", ES_DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT);
  c.Set("WAIT_AVAILABLE", ES_DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE);
  c.Set("WAIT_DEADLINE", ES_DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE);
  c.Set("QUERY_LAST_SUBMITTED", ES_DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED);
  c.Set("ETIME", ETIME);
  exports.Set("SYNCOBJ", c);
}

}  // namespace es
