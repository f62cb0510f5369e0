// sync_file ioctls: SYNC_IOC_FILE_INFO, SYNC_IOC_MERGE, SYNC_IOC_SET_DEADLINE. Waits are not here:
// a sync_file polls readable once signalled, so lib/sync-file.ts waits through the FdWatcher
// (async) or util.cc's pollIn (blocking). lib/sync-file.ts owns every sync_file fd; these functions
// borrow the fds they are given and never close them.
#include <errno.h>
#include <string.h>

#include <vector>

#include "uapi/sync_file.h"
#include "util.h"

namespace es {

// A fixed-size, maybe unterminated kernel name field as a JS string.
template <size_t N>
static Napi::String Name(Napi::Env env, const char (&field)[N]) {
  return Napi::String::New(env, field, strnlen(field, N));
}

// syncFileInfo(fd): { name, status, flags, fences: [{ timeline, driver, status, flags, timestampNs: bigint }] }
// status: 0 active, 1 signaled, < 0 a negative errno. Two calls, as the uapi asks: the first (with
// num_fences = 0) learns the count, the second fills a zeroed array of that many entries.
static Napi::Value SyncFileInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  es_sync_file_info fi;
  memset(&fi, 0, sizeof(fi));
  int err = Ioctl(fd, ES_SYNC_IOC_FILE_INFO, &fi);
  if (err) ThrowErrno(env, err, "SYNC_IOC_FILE_INFO");
  // A sync_file's fences never change, so the count learnt above still holds.
  std::vector<es_sync_fence_info> fences(fi.num_fences);
  if (!fences.empty()) {
    memset(fences.data(), 0, fences.size() * sizeof(es_sync_fence_info));
    uint32_t count = fi.num_fences;
    memset(&fi, 0, sizeof(fi));
    fi.num_fences = count;
    fi.sync_fence_info = reinterpret_cast<uintptr_t>(fences.data());
    err = Ioctl(fd, ES_SYNC_IOC_FILE_INFO, &fi);
    if (err) ThrowErrno(env, err, "SYNC_IOC_FILE_INFO");
    fences.resize(std::min<size_t>(fences.size(), fi.num_fences));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Name(env, fi.name));
  o.Set("status", Napi::Number::New(env, fi.status));
  o.Set("flags", Napi::Number::New(env, fi.flags));
  Napi::Array list = Napi::Array::New(env, fences.size());
  for (size_t i = 0; i < fences.size(); i++) {
    const es_sync_fence_info& f = fences[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("timeline", Name(env, f.obj_name));
    e.Set("driver", Name(env, f.driver_name));
    e.Set("status", Napi::Number::New(env, f.status));
    e.Set("flags", Napi::Number::New(env, f.flags));
    e.Set("timestampNs", U64(env, f.timestamp_ns));
    list.Set(static_cast<uint32_t>(i), e);
  }
  o.Set("fences", list);
  return o;
}

// syncFileInfoInto(fd, out: Uint8Array): number — the same two SYNC_IOC_FILE_INFO calls as
// syncFileInfo(), but the kernel's structs are copied as they are into `out` for TypeScript to
// decode (lib/sync-file.ts), instead of being turned into JS objects here: building an object
// property by property through N-API costs several times the two ioctls. Layout of `out`: the
// es_sync_file_info at offset 0, then es_sync_fence_info[count] right after it (offset 56). Returns
// the fence count; when `out` has no room for them all, only the header is written and the result
// is -count (call again with a larger buffer).
static Napi::Value SyncFileInfoInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  // napi_get_typedarray_info fails (napi_invalid_arg) for anything but a typed array.
  if (napi_get_typedarray_info(env, info[1], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array)
    throw Napi::TypeError::New(env, "argument 1 must be a Uint8Array");
  if (length < sizeof(es_sync_file_info)) throw Napi::RangeError::New(env, "argument 1 is too small");
  uint8_t* out = static_cast<uint8_t*>(data);
  es_sync_file_info fi;
  memset(&fi, 0, sizeof(fi));
  int err = Ioctl(fd, ES_SYNC_IOC_FILE_INFO, &fi);
  if (err) ThrowErrno(env, err, "SYNC_IOC_FILE_INFO");
  uint32_t count = fi.num_fences;
  if (count > (length - sizeof(fi)) / sizeof(es_sync_fence_info)) {
    memcpy(out, &fi, sizeof(fi));
    return Napi::Number::New(env, -static_cast<double>(count));
  }
  if (count > 0) {
    // The kernel writes the fences straight into the JS buffer (its backing store does not move).
    memset(out + sizeof(fi), 0, count * sizeof(es_sync_fence_info));
    memset(&fi, 0, sizeof(fi));
    fi.num_fences = count;
    fi.sync_fence_info = reinterpret_cast<uintptr_t>(out + sizeof(fi));
    err = Ioctl(fd, ES_SYNC_IOC_FILE_INFO, &fi);
    if (err) ThrowErrno(env, err, "SYNC_IOC_FILE_INFO");
    count = std::min(count, fi.num_fences);
  }
  memcpy(out, &fi, sizeof(fi));
  return Napi::Number::New(env, count);
}

// syncFileMerge(fd, fd2, name: string): fd — a new sync_file (O_CLOEXEC) that signals when both
// have; the caller owns it. fd and fd2 stay the caller's.
static Napi::Value SyncFileMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  es_sync_merge_data m;
  memset(&m, 0, sizeof(m));
  m.fd2 = ArgFd(info, 1);
  m.fence = -1;
  std::string name = ArgString(info, 2);
  if (name.size() >= sizeof(m.name)) throw Napi::RangeError::New(env, "argument 2 must be shorter than 32 bytes");
  memcpy(m.name, name.data(), name.size());
  int err = Ioctl(fd, ES_SYNC_IOC_MERGE, &m);
  if (err) ThrowErrno(env, err, "SYNC_IOC_MERGE");
  return Napi::Number::New(env, m.fence);
}

// syncFileSetDeadline(fd, deadlineNs: bigint): void — absolute CLOCK_MONOTONIC (Linux >= 6.7).
static void SyncFileSetDeadline(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_sync_set_deadline d;
  memset(&d, 0, sizeof(d));
  d.deadline_ns = ArgU64(info, 1);
  int err = Ioctl(fd, ES_SYNC_IOC_SET_DEADLINE, &d);
  if (err) ThrowErrno(info.Env(), err, "SYNC_IOC_SET_DEADLINE");
}

// syncFileProbeDeadline(fd): number — the errno of a SET_DEADLINE with a non-zero pad, which has no
// effect: EINVAL where the kernel knows the ioctl, ENOTTY where it does not (before Linux 6.7).
static Napi::Value SyncFileProbeDeadline(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_sync_set_deadline d;
  memset(&d, 0, sizeof(d));
  d.pad = 1;
  return Napi::Number::New(info.Env(), Ioctl(fd, ES_SYNC_IOC_SET_DEADLINE, &d));
}

void InitSyncFile(Napi::Env env, Napi::Object exports) {
  exports.Set("syncFileInfo", Napi::Function::New(env, SyncFileInfo, "syncFileInfo"));
  exports.Set("syncFileInfoInto", Napi::Function::New(env, SyncFileInfoInto, "syncFileInfoInto"));
  exports.Set("syncFileMerge", Napi::Function::New(env, SyncFileMerge, "syncFileMerge"));
  exports.Set("syncFileSetDeadline", Napi::Function::New(env, SyncFileSetDeadline, "syncFileSetDeadline"));
  exports.Set("syncFileProbeDeadline", Napi::Function::New(env, SyncFileProbeDeadline, "syncFileProbeDeadline"));
}

}  // namespace es
