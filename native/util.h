// Shared helpers for every native file: argument readers, the errno-carrying throw, and a
// retrying ioctl. Each .cc registers its own functions through an Init*(env, exports).
#ifndef EXPLICIT_SYNC_UTIL_H_
#define EXPLICIT_SYNC_UTIL_H_

#include <napi.h>

#include <cstdint>
#include <string>
#include <sys/types.h>

#include <unordered_map>

namespace es {

struct WatcherRegistry;  // fd_watcher.cc

// Per-env state (the addon is context-aware: one of these per main thread / worker).
struct AddonData {
  // JS function (errno: number, syscall: string, detail?: string) => Error, installed by lib/native.ts.
  // Native code never formats user-facing error text itself; TypeScript owns the error classes.
  Napi::FunctionReference error_factory;
  // Open uv_poll handles of this env, closed by an async cleanup hook at teardown (fd_watcher.cc).
  // The hook frees the registry once every handle is closed; AddonData outlives no handle.
  WatcherRegistry* watchers = nullptr;
  // What an fd owned by a JS object is: the file it was when adopted (st_dev, st_ino of one fstat)
  // and the token that object holds (a new one for each trackFd, so that two objects that held the
  // same fd number in turn are told apart even when their files share an inode, as sync_files do).
  // A sync_file is recorded by kind instead (`sync_file`, no fstat): every anon-inode file of the
  // kernel (sync_file, eventfd, epoll, inotify, timerfd, signalfd, syncobj fds) shares one inode, so
  // st_dev/st_ino cannot tell a sync_file from libuv's epoll fd; "still a sync_file" is checked with
  // SYNC_IOC_FILE_INFO, which only sync_files answer (IsSameFile in util.cc).
  struct OwnedFd {
    dev_t dev;
    ino_t ino;
    uint32_t token;
    bool sync_file;
  };
  // fds owned by this env's JS objects (trackFd): the env closes those still open, and still the
  // file adopted, when it is torn down (a worker that exits or is terminate()d runs no JS to close
  // them). close() forgets them. The destructor runs after the async cleanup hook closed every
  // poll handle of the env.
  std::unordered_map<int, OwnedFd> owned_fds;
  uint32_t next_token = 0;

  AddonData() = default;
  AddonData(const AddonData&) = delete;
  AddonData& operator=(const AddonData&) = delete;
  ~AddonData();
};

AddonData* GetAddonData(Napi::Env env);

// Throws the JS error built by the installed factory for a positive errno. Never returns.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const char* detail = nullptr);

// ioctl(2) that retries on EINTR/EAGAIN (as libdrm's drmIoctl does). Returns 0 or a positive errno.
// Callers that pass absolute timeouts make retries exact: nothing is recomputed.
int Ioctl(int fd, unsigned long request, void* arg);

// Argument readers: each throws a TypeError/RangeError naming the argument. TypeScript validates
// user input first; these are the last guard so that no bad value reaches the kernel.
int ArgFd(const Napi::CallbackInfo& info, size_t i);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i);
int64_t ArgI64(const Napi::CallbackInfo& info, size_t i);
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i);
std::string ArgString(const Napi::CallbackInfo& info, size_t i);

// Records `fd` as owned by a JS object of this env (see trackFd in util.cc) and returns what a
// native call that creates an fd returns when asked to track it: token * 2^31 + fd, one number
// (no allocation, one crossing less than create + trackFd). FdResource's constructor splits it.
// `sync_file`: fd is a sync_file this call just made (identity by kind, see AddonData::OwnedFd).
Napi::Value OwnedFd(Napi::Env env, int fd, bool sync_file = false);

// u64 → JS BigInt.
inline Napi::Value U64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

// Family initialisers, called once per env by addon.cc.
void InitUtil(Napi::Env env, Napi::Object exports);
void InitDevice(Napi::Env env, Napi::Object exports);
void InitFdWatcher(Napi::Env env, Napi::Object exports);
void InitFdPoller(Napi::Env env, Napi::Object exports);
void InitSyncFile(Napi::Env env, Napi::Object exports);
void InitDmaBuf(Napi::Env env, Napi::Object exports);
void InitVgem(Napi::Env env, Napi::Object exports);
void InitSwSync(Napi::Env env, Napi::Object exports);
void InitDmaHeap(Napi::Env env, Napi::Object exports);
void InitSyncobj(Napi::Env env, Napi::Object exports);
void InitSyncobjWait(Napi::Env env, Napi::Object exports);
void InitKms(Napi::Env env, Napi::Object exports);
void InitKmsCommit(Napi::Env env, Napi::Object exports);
void InitUnixSocket(Napi::Env env, Napi::Object exports);

}  // namespace es

#endif  // EXPLICIT_SYNC_UTIL_H_
