// Argument readers, the errno throw, and the generic fd calls (open/close/dup/fstat, pidfd_getfd) every family uses.
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <string.h>
#include <unistd.h>

#include <cmath>

#include "uapi/sync_file.h"

// Compile-time checks of every carried uapi layout for the target being built.
#include "uapi/abi.h"

namespace es {

AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

// Whether fd answers SYNC_IOC_FILE_INFO (asking for no fence array: status and name only), which
// only sync_files do.
static bool AnswersSyncFileInfo(int fd) {
  es_sync_file_info fi;
  memset(&fi, 0, sizeof(fi));
  return Ioctl(fd, ES_SYNC_IOC_FILE_INFO, &fi) == 0;
}

// Whether fd is (still) a sync_file: an anon-inode file (no file type bits in st_mode, checked
// first, so that the ioctl never reaches a device's handler, which may not check an ioctl's type
// byte) that answers SYNC_IOC_FILE_INFO.
static bool IsSyncFile(int fd) {
  struct stat st = {};
  if (fstat(fd, &st) == -1 || (st.st_mode & S_IFMT) != 0) return false;
  return AnswersSyncFileInfo(fd);
}

// Whether fd is still the file `owned` recorded: open, same st_dev and st_ino; for a sync_file,
// still a sync_file (another sync_file on the number is not told apart: see AddonData::OwnedFd).
static bool IsSameFile(int fd, const AddonData::OwnedFd& owned) {
  if (owned.sync_file) return IsSyncFile(fd);
  struct stat st = {};
  if (fstat(fd, &st) == -1) return false;
  return st.st_dev == owned.dev && st.st_ino == owned.ino;
}

AddonData::~AddonData() {
  // An fd its owner lost (closed behind its back, the number reused by another file) is left alone.
  for (const auto& [fd, owned] : owned_fds)
    if (IsSameFile(fd, owned)) close(fd);
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const char* detail) {
  AddonData* data = GetAddonData(env);
  if (data == nullptr || data->error_factory.IsEmpty()) {
    Napi::Error e = Napi::Error::New(env, std::string(syscall) + " failed");
    e.Set("errno", Napi::Number::New(env, -err));
    e.Set("syscall", Napi::String::New(env, syscall));
    throw e;
  }
  Napi::Value args[3] = {Napi::Number::New(env, err), Napi::String::New(env, syscall),
                         detail ? Napi::String::New(env, detail) : env.Undefined()};
  Napi::Value error = data->error_factory.Call({args[0], args[1], args[2]});
  throw Napi::Error(env, error);
}

int Ioctl(int fd, unsigned long request, void* arg) {
  int ret;
  do {
    ret = ioctl(fd, request, arg);
  } while (ret == -1 && (errno == EINTR || errno == EAGAIN));
  return ret == -1 ? errno : 0;
}

static std::string ArgName(size_t i) { return "argument " + std::to_string(i); }

int ArgFd(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be an fd (integer)");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 2147483647.0) || std::floor(d) != d)
    throw Napi::RangeError::New(info.Env(), ArgName(i) + " must be an fd (0..2^31-1)");
  return static_cast<int>(d);
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be a u32");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || std::floor(d) != d)
    throw Napi::RangeError::New(info.Env(), ArgName(i) + " must be a u32");
  return static_cast<uint32_t>(d);
}

int64_t ArgI64(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t r = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), ArgName(i) + " must fit in an i64");
    return r;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(std::fabs(d) <= 9007199254740991.0) || std::floor(d) != d)
      throw Napi::RangeError::New(info.Env(), ArgName(i) + " must be a safe integer");
    return static_cast<int64_t>(d);
  }
  throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be a bigint or number");
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), ArgName(i) + " must be a u64");
    return r;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740991.0) || std::floor(d) != d)
      throw Napi::RangeError::New(info.Env(), ArgName(i) + " must be a safe non-negative integer");
    return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be a bigint or number");
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// setErrorFactory(fn: (errno, syscall, detail?) => Error): void
static void SetErrorFactory(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "argument 0 must be a function");
  GetAddonData(info.Env())->error_factory = Napi::Persistent(info[0].As<Napi::Function>());
}

// open(path: string, flags: number): fd — always O_CLOEXEC; the caller owns the fd.
static Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  // open(2) would stop at the first NUL and open another path.
  if (path.find('\0') != std::string::npos) throw Napi::TypeError::New(info.Env(), "argument 0 must not contain NUL bytes");
  int flags = static_cast<int>(ArgU32(info, 1));
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC);
  } while (fd == -1 && errno == EINTR);
  if (fd == -1) ThrowErrno(info.Env(), errno, "open", path.c_str());
  return Napi::Number::New(info.Env(), fd);
}

// close(fd): void — the caller gives up ownership whatever the result (close(2) semantics).
static void Close(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  GetAddonData(info.Env())->owned_fds.erase(fd);
  if (close(fd) == -1 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
}

// trackFd(fd): token — fd is owned by a JS object of this env until close(fd) or closeOwned(fd,
// token); if the env is torn down first (worker exit), its cleanup closes it. Records the file's
// identity (one fstat) for closeOwned. The token is never 0. Never throws for an fd (the caller
// has just taken ownership): one fstat cannot fail on an open fd, and a closed one is never closed.
// Tokens stay below 2^22, so that OwnedFd's token * 2^31 + fd is an exact double (< 2^53).
// A sync_file (`sync_file`) is recorded by kind, without an fstat: see AddonData::OwnedFd.
static uint32_t Track(AddonData* data, int fd, bool sync_file) {
  struct stat st = {};
  if (!sync_file && fstat(fd, &st) == -1) st.st_dev = 0, st.st_ino = 0;
  if (++data->next_token >= (1u << 22)) data->next_token = 1;
  data->owned_fds[fd] = AddonData::OwnedFd{st.st_dev, st.st_ino, data->next_token, sync_file};
  return data->next_token;
}

// trackFd(fd, syncFile?: boolean): token — see Track. `syncFile`: fd should be a sync_file (a
// SyncFile adopts it); it is tracked as one when it answers SYNC_IOC_FILE_INFO (one ioctl instead
// of the fstat), else by its inode (the host tests' stand-ins for sync_files).
static Napi::Value TrackFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  bool sync_file = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value() && AnswersSyncFileInfo(fd);
  return Napi::Number::New(info.Env(), Track(GetAddonData(info.Env()), fd, sync_file));
}

Napi::Value OwnedFd(Napi::Env env, int fd, bool sync_file) {
  uint32_t token = Track(GetAddonData(env), fd, sync_file);
  return Napi::Number::New(env, static_cast<double>(token) * 2147483648.0 + fd);
}

// closeOwned(fd, token, epfd = -1): 0 when it closed fd; 1 when fd is not open any more (closed
// behind its owner's back); 2 when fd is now another file (or another object's: a later trackFd of
// the same number) — in both cases nothing is closed. The owner gives up fd whatever the result.
// With an epoll set `epfd` (lib/fd-poller.ts's), fd leaves it first (EPOLL_CTL_DEL, ENOENT ignored),
// under the same check as the close: closing removes an entry only when this was the file's last
// fd, and one of a file still open elsewhere (another process's copy, a dup) would stay otherwise.
static Napi::Value CloseOwned(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  uint32_t token = ArgU32(info, 1);
  int epfd = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  AddonData* data = GetAddonData(info.Env());
  auto it = data->owned_fds.find(fd);
  if (it != data->owned_fds.end() && it->second.token == token) {
    bool same = IsSameFile(fd, it->second);
    data->owned_fds.erase(it);
    if (same) {
      if (epfd >= 0) epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
      if (close(fd) == -1 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
      return Napi::Number::New(info.Env(), 0);
    }
  }
  return Napi::Number::New(info.Env(), fcntl(fd, F_GETFD) == -1 ? 1 : 2);
}

// untrackFd(fd, token): void — the object that trackFd() returned `token` to hands fd over
// without closing it (to the user, or to the next object that adopted the number): the env no
// longer closes it at teardown. A later adoption (another token) is left alone.
static void UntrackFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  uint32_t token = ArgU32(info, 1);
  AddonData* data = GetAddonData(info.Env());
  auto it = data->owned_fds.find(fd);
  if (it != data->owned_fds.end() && it->second.token == token) data->owned_fds.erase(it);
}

// dup(fd): fd — F_DUPFD_CLOEXEC; the caller owns the new fd.
static Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = fcntl(ArgFd(info, 0), F_DUPFD_CLOEXEC, 3);
  if (fd == -1) ThrowErrno(info.Env(), errno, "fcntl");
  return Napi::Number::New(info.Env(), fd);
}

// pidfdGetfd(pid, fd): fd — a copy of process pid's fd, with pidfd_open(2) + pidfd_getfd(2) (Linux
// 5.6; needs ptrace access to pid, as a parent has to its child). The copy is O_CLOEXEC and the
// caller owns it. This is how a file another program made (a Vulkan driver's sync_file or dma-buf,
// which /proc/<pid>/fd cannot reopen) reaches this process without a unix socket.
static Napi::Value PidfdGetfd(const Napi::CallbackInfo& info) {
  uint32_t pid = ArgU32(info, 0);
  int target = ArgFd(info, 1);
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
  if (pidfd == -1) ThrowErrno(info.Env(), errno, "pidfd_open");
  int fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, target, 0));
  int err = errno;
  close(pidfd);
  if (fd == -1) ThrowErrno(info.Env(), err, "pidfd_getfd");
  return Napi::Number::New(info.Env(), fd);
}

// fstat(fd): { mode, rdevMajor, rdevMinor, size } — enough to tell what kind of file an fd is.
static Napi::Value Fstat(const Napi::CallbackInfo& info) {
  struct stat st = {};
  if (fstat(ArgFd(info, 0), &st) == -1) ThrowErrno(info.Env(), errno, "fstat");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("mode", Napi::Number::New(info.Env(), st.st_mode));
  o.Set("rdevMajor", Napi::Number::New(info.Env(), major(st.st_rdev)));
  o.Set("rdevMinor", Napi::Number::New(info.Env(), minor(st.st_rdev)));
  o.Set("size", Napi::Number::New(info.Env(), static_cast<double>(st.st_size)));
  return o;
}

// pollIn(fd, timeoutMs): boolean — poll(2) for POLLIN; blocks up to timeoutMs (0 = just look, -1 = forever).
// POLLERR/POLLNVAL → EINVAL, as libsync's sync_wait does.
static Napi::Value PollIn(const Napi::CallbackInfo& info) {
  struct pollfd p = {};
  p.fd = ArgFd(info, 0);
  p.events = POLLIN;
  int timeout = static_cast<int>(ArgI64(info, 1));
  int ret;
  do {
    ret = poll(&p, 1, timeout);
  } while (ret == -1 && (errno == EINTR || errno == EAGAIN));
  if (ret == -1) ThrowErrno(info.Env(), errno, "poll");
  if (ret > 0 && (p.revents & (POLLERR | POLLNVAL))) ThrowErrno(info.Env(), EINVAL, "poll");
  return Napi::Boolean::New(info.Env(), ret > 0 && (p.revents & POLLIN));
}

void InitUtil(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactory, "setErrorFactory"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("trackFd", Napi::Function::New(env, TrackFd, "trackFd"));
  exports.Set("closeOwned", Napi::Function::New(env, CloseOwned, "closeOwned"));
  exports.Set("untrackFd", Napi::Function::New(env, UntrackFd, "untrackFd"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("fstat", Napi::Function::New(env, Fstat, "fstat"));
  exports.Set("pidfdGetfd", Napi::Function::New(env, PidfdGetfd, "pidfdGetfd"));
  exports.Set("pollIn", Napi::Function::New(env, PollIn, "pollIn"));
}

}  // namespace es
