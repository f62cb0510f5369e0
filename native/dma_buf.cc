// dma-buf fds: identify one, its size, EXPORT/IMPORT_SYNC_FILE, DMA_BUF_IOCTL_SYNC, and CPU mappings.
// lib/dma-buf.ts owns every dma-buf fd; these functions borrow the fds they are given and never
// close them.
//
// Mappings are the one place native memory is handed to JS, so they follow a rule that keeps a late
// JS access harmless: the Buffer returned by dmaBufMap() owns its address range until the Buffer
// itself is garbage-collected (the finalizer munmaps it). dmaBufUnmap(), called when the DmaBuf is
// closed, does not give the range back: it replaces the dma-buf pages in place with private
// anonymous zero pages (mmap MAP_FIXED over the same range). A reader that still holds the Buffer
// (JS code, or a libuv thread in the middle of an fs.write of it) then reads zeros and writes into
// scratch memory instead of faulting, and the range is never reused by another mapping while the
// Buffer exists. The dma-buf's own pages (and the file reference the mapping held) are released
// at close.
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <mutex>
#include <unordered_map>

#include "uapi/dma_buf.h"
#include "util.h"

namespace es {

constexpr long kAnonInodeFsMagic = 0x09041934;  // include/uapi/linux/magic.h ANON_INODE_FS_MAGIC

// Live mappings made by dmaBufMap(), process-wide (workers share the address space): address →
// length. Only ranges listed here are ever replaced or unmapped.
struct MappingTable {
  std::mutex mu;
  std::unordered_map<void*, size_t> live;
};

static MappingTable& Mappings() {
  static MappingTable* table = new MappingTable();  // never destroyed: finalizers may run at exit
  return *table;
}

// isDmaBuf(fd): boolean — whether fd is a dma-buf. Decided by the filesystem the file lives on
// (statfs f_type DMA_BUF_MAGIC, Linux >= 5.3), and on older kernels by the anon inode's name
// "anon_inode:dmabuf". No ioctl is issued, so nothing on a foreign fd can be triggered.
static Napi::Value IsDmaBuf(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  struct statfs sfs = {};
  if (fstatfs(fd, &sfs) == -1) ThrowErrno(info.Env(), errno, "fstatfs");
  bool yes = static_cast<long>(sfs.f_type) == ES_DMA_BUF_MAGIC;
  if (!yes && static_cast<long>(sfs.f_type) == kAnonInodeFsMagic) {
    char path[64], target[64] = {};
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    yes = n > 0 && std::string(target, static_cast<size_t>(n)) == "anon_inode:dmabuf";
  }
  return Napi::Boolean::New(info.Env(), yes);
}

// dmaBufSize(fd): number — the buffer's size in bytes (lseek SEEK_END, which dma-bufs answer
// with their size).
static Napi::Value DmaBufSize(const Napi::CallbackInfo& info) {
  off_t size = lseek(ArgFd(info, 0), 0, SEEK_END);
  if (size == -1) ThrowErrno(info.Env(), errno, "lseek");
  return Napi::Number::New(info.Env(), static_cast<double>(size));
}

// dmaBufExportSyncFile(fd, flags: number, track?: boolean): fd — a sync_file (O_CLOEXEC) of the
// buffer's current fences (READ: the writers; WRITE: all users); the caller owns it. With `track`,
// already tracked for its FdResource (as a sync_file): returns OwnedFd()'s token * 2^31 + fd.
static Napi::Value DmaBufExportSyncFile(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_dma_buf_export_sync_file arg;
  memset(&arg, 0, sizeof(arg));
  arg.flags = ArgU32(info, 1);
  arg.fd = -1;
  int err = Ioctl(fd, ES_DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &arg);
  if (err) ThrowErrno(info.Env(), err, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE");
  if (info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value()) return OwnedFd(info.Env(), arg.fd, true);
  return Napi::Number::New(info.Env(), arg.fd);
}

// dmaBufImportSyncFile(fd, flags: number, syncFileFd): void — adds the sync_file's fence to the
// buffer as a read (READ) or write (WRITE) fence. syncFileFd stays the caller's.
static void DmaBufImportSyncFile(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_dma_buf_import_sync_file arg;
  memset(&arg, 0, sizeof(arg));
  arg.flags = ArgU32(info, 1);
  arg.fd = ArgFd(info, 2);
  int err = Ioctl(fd, ES_DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &arg);
  if (err) ThrowErrno(info.Env(), err, "DMA_BUF_IOCTL_IMPORT_SYNC_FILE");
}

// dmaBufSync(fd, flags: number): void — DMA_BUF_IOCTL_SYNC (START/END | READ/WRITE).
static void DmaBufSync(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_dma_buf_sync arg;
  memset(&arg, 0, sizeof(arg));
  arg.flags = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DMA_BUF_IOCTL_SYNC, &arg);
  if (err) ThrowErrno(info.Env(), err, "DMA_BUF_IOCTL_SYNC");
}

// dmaBufSetName(fd, name: string): void — DMA_BUF_SET_NAME: names the buffer for the kernel's
// views (/proc/PID/fdinfo, debugfs dma_buf/bufinfo). lib/dma-buf.ts checks the length (at most 31
// bytes); the kernel copies at most DMA_BUF_NAME_LEN bytes and answers EBUSY on old kernels while
// the buffer is attached.
static void DmaBufSetName(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  std::string name = ArgString(info, 1);
  if (name.size() >= ES_DMA_BUF_NAME_LEN) throw Napi::RangeError::New(info.Env(), "argument 1 must be at most 31 bytes");
  int err = Ioctl(fd, ES_DMA_BUF_SET_NAME, const_cast<char*>(name.c_str()));  // the kernel only reads it
  if (err) ThrowErrno(info.Env(), err, "DMA_BUF_SET_NAME");
}

static void FinalizeMapping(Napi::Env, uint8_t* data) {
  MappingTable& t = Mappings();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.live.find(data);
  if (it == t.live.end()) return;
  munmap(data, it->second);
  t.live.erase(it);
}

// dmaBufMap(fd, size: number): Buffer — mmap(PROT_READ|PROT_WRITE, MAP_SHARED) of the whole
// buffer. The mapping holds its own reference to the dma-buf; the fd stays the caller's. The
// Buffer owns the address range (see the top of this file).
static Napi::Value DmaBufMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  uint64_t size = ArgU64(info, 1);
  if (size == 0 || size > SIZE_MAX) throw Napi::RangeError::New(env, "argument 1 must be a non-zero size");
  size_t len = static_cast<size_t>(size);
  void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap");
  {
    MappingTable& t = Mappings();
    std::lock_guard<std::mutex> lock(t.mu);
    t.live[addr] = len;
  }
  try {
    return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(addr), len, FinalizeMapping);
  } catch (...) {
    // No Buffer was made (e.g. external buffers are disallowed), so no finalizer will run.
    FinalizeMapping(env, static_cast<uint8_t*>(addr));
    throw;
  }
}

// dmaBufUnmap(buffer: Buffer): void — drops the dma-buf pages of a mapping made by dmaBufMap()
// and puts private zero pages in their place (see the top of this file). Idempotent. A Buffer
// that dmaBufMap() did not return is refused with EINVAL.
static void DmaBufUnmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer()) throw Napi::TypeError::New(env, "argument 0 must be a Buffer");
  Napi::Buffer<uint8_t> buf = info[0].As<Napi::Buffer<uint8_t>>();
  MappingTable& t = Mappings();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.live.find(buf.Data());
  if (it == t.live.end() || it->second != buf.Length()) ThrowErrno(env, EINVAL, "munmap");
  void* addr = mmap(buf.Data(), it->second, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap");
}

void InitDmaBuf(Napi::Env env, Napi::Object exports) {
  exports.Set("isDmaBuf", Napi::Function::New(env, IsDmaBuf, "isDmaBuf"));
  exports.Set("dmaBufSize", Napi::Function::New(env, DmaBufSize, "dmaBufSize"));
  exports.Set("dmaBufExportSyncFile", Napi::Function::New(env, DmaBufExportSyncFile, "dmaBufExportSyncFile"));
  exports.Set("dmaBufImportSyncFile", Napi::Function::New(env, DmaBufImportSyncFile, "dmaBufImportSyncFile"));
  exports.Set("dmaBufSync", Napi::Function::New(env, DmaBufSync, "dmaBufSync"));
  exports.Set("dmaBufSetName", Napi::Function::New(env, DmaBufSetName, "dmaBufSetName"));
  exports.Set("dmaBufMap", Napi::Function::New(env, DmaBufMap, "dmaBufMap"));
  exports.Set("dmaBufUnmap", Napi::Function::New(env, DmaBufUnmap, "dmaBufUnmap"));
  Napi::Object sync = Napi::Object::New(env);
  sync.Set("READ", ES_DMA_BUF_SYNC_READ);
  sync.Set("WRITE", ES_DMA_BUF_SYNC_WRITE);
  sync.Set("START", ES_DMA_BUF_SYNC_START);
  sync.Set("END", ES_DMA_BUF_SYNC_END);
  exports.Set("DMA_BUF_SYNC", sync);
}

}  // namespace es
