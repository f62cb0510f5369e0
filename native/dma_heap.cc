// Buffer sources that need no GPU: /dev/udmabuf (UDMABUF_CREATE over a sealed memfd) and
// /dev/dma_heap/<name> (DMA_HEAP_IOCTL_ALLOC). lib/dma-heap.ts owns the device fds, the memfd and
// the dma-bufs; these functions borrow the fds they are given and never close them.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uapi/dma_heap.h"
#include "uapi/udmabuf.h"
#include "util.h"

namespace es {

// memfdCreate(name: string): fd — memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING); the caller owns it.
static Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd == -1) ThrowErrno(info.Env(), errno, "memfd_create");
  return Napi::Number::New(info.Env(), fd);
}

// ftruncate(fd, size: number): void
static void Ftruncate(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  uint64_t size = ArgU64(info, 1);
  int ret;
  do {
    ret = ftruncate(fd, static_cast<off_t>(size));
  } while (ret == -1 && errno == EINTR);
  if (ret == -1) ThrowErrno(info.Env(), errno, "ftruncate");
}

// sealShrink(fd): void — fcntl(F_ADD_SEALS, F_SEAL_SHRINK), which UDMABUF_CREATE requires: the
// memfd can then never shrink under the buffer's pages.
static void SealShrink(const Napi::CallbackInfo& info) {
  if (fcntl(ArgFd(info, 0), F_ADD_SEALS, F_SEAL_SHRINK) == -1) ThrowErrno(info.Env(), errno, "fcntl");
}

// udmabufCreate(udmabufFd, memfd, offset: number, size: number): fd — UDMABUF_CREATE with
// UDMABUF_FLAGS_CLOEXEC; a dma-buf over the memfd's pages that the caller owns. The memfd stays
// the caller's (the dma-buf keeps the pages alive on its own).
static Napi::Value UdmabufCreate(const Napi::CallbackInfo& info) {
  int dev = ArgFd(info, 0);
  es_udmabuf_create arg;
  memset(&arg, 0, sizeof(arg));
  arg.memfd = static_cast<__u32>(ArgFd(info, 1));
  arg.flags = ES_UDMABUF_FLAGS_CLOEXEC;
  arg.offset = ArgU64(info, 2);
  arg.size = ArgU64(info, 3);
  int fd;
  do {
    fd = ioctl(dev, ES_UDMABUF_CREATE, &arg);  // returns the new fd, so not Ioctl()
  } while (fd == -1 && (errno == EINTR || errno == EAGAIN));
  if (fd == -1) ThrowErrno(info.Env(), errno, "UDMABUF_CREATE");
  return Napi::Number::New(info.Env(), fd);
}

// dmaHeapAlloc(heapFd, size: number): fd — DMA_HEAP_IOCTL_ALLOC with fd_flags O_RDWR | O_CLOEXEC;
// a dma-buf the caller owns.
static Napi::Value DmaHeapAlloc(const Napi::CallbackInfo& info) {
  int heap = ArgFd(info, 0);
  es_dma_heap_allocation_data arg;
  memset(&arg, 0, sizeof(arg));
  arg.len = ArgU64(info, 1);
  arg.fd_flags = O_RDWR | O_CLOEXEC;
  int err = Ioctl(heap, ES_DMA_HEAP_IOCTL_ALLOC, &arg);
  if (err) ThrowErrno(info.Env(), err, "DMA_HEAP_IOCTL_ALLOC");
  return Napi::Number::New(info.Env(), arg.fd);
}

// pageSize(): number — sysconf(_SC_PAGESIZE).
static Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

void InitDmaHeap(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  exports.Set("sealShrink", Napi::Function::New(env, SealShrink, "sealShrink"));
  exports.Set("udmabufCreate", Napi::Function::New(env, UdmabufCreate, "udmabufCreate"));
  exports.Set("dmaHeapAlloc", Napi::Function::New(env, DmaHeapAlloc, "dmaHeapAlloc"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
}

}  // namespace es
