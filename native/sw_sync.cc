// sw_sync timelines (a debugfs test driver, CONFIG_SW_SYNC): SW_SYNC_IOC_CREATE_FENCE,
// SW_SYNC_IOC_INC and SW_SYNC_GET_DEADLINE. lib/sw-sync.ts owns the timeline fd (opened with the generic open()); these
// functions borrow it and never close it.
#include <errno.h>
#include <string.h>

#include "uapi/sw_sync.h"
#include "util.h"

namespace es {

// swSyncCreateFence(fd, point, name): fd — SW_SYNC_IOC_CREATE_FENCE: a sync_file fd (O_CLOEXEC) the
// caller owns, whose fence signals when the timeline reaches `point` (at once if it has). `name`
// is at most 31 bytes (lib/sw-sync.ts checks).
static Napi::Value SwSyncCreateFence(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_sw_sync_create_fence_data arg;
  memset(&arg, 0, sizeof(arg));
  arg.value = ArgU32(info, 1);
  std::string name = ArgString(info, 2);
  strncpy(arg.name, name.c_str(), sizeof(arg.name) - 1);
  arg.fence = -1;
  int err = Ioctl(fd, ES_SW_SYNC_IOC_CREATE_FENCE, &arg);
  if (err) ThrowErrno(info.Env(), err, "SW_SYNC_IOC_CREATE_FENCE");
  return Napi::Number::New(info.Env(), arg.fence);
}

// swSyncInc(fd, n): void — SW_SYNC_IOC_INC: advances the timeline by n, signalling every fence
// at or below the new value.
static void SwSyncInc(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  __u32 n = ArgU32(info, 1);
  int err = Ioctl(fd, ES_SW_SYNC_IOC_INC, &n);
  if (err) ThrowErrno(info.Env(), err, "SW_SYNC_IOC_INC");
}

// swSyncGetDeadline(fd, fenceFd): bigint — SW_SYNC_GET_DEADLINE: the earliest deadline (CLOCK_MONOTONIC
// ns) set on the sw_sync fence that sync_file `fenceFd` holds. Borrows both fds. Throws ENOENT when
// none was set, EINVAL when fenceFd holds no single sw_sync fence, ENOTTY before the ioctl existed.
static Napi::Value SwSyncGetDeadline(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_sw_sync_get_deadline arg;
  memset(&arg, 0, sizeof(arg));
  arg.fence_fd = ArgFd(info, 1);
  int err = Ioctl(fd, ES_SW_SYNC_GET_DEADLINE, &arg);
  if (err) ThrowErrno(info.Env(), err, "SW_SYNC_GET_DEADLINE");
  return U64(info.Env(), arg.deadline_ns);
}

void InitSwSync(Napi::Env env, Napi::Object exports) {
  exports.Set("swSyncCreateFence", Napi::Function::New(env, SwSyncCreateFence, "swSyncCreateFence"));
  exports.Set("swSyncInc", Napi::Function::New(env, SwSyncInc, "swSyncInc"));
  exports.Set("swSyncGetDeadline", Napi::Function::New(env, SwSyncGetDeadline, "swSyncGetDeadline"));
}

}  // namespace es
