// vgem (and generic GEM) buffer objects: DUMB_CREATE, PRIME_HANDLE_TO_FD / FD_TO_HANDLE, GEM_CLOSE,
// and vgem's userspace-controlled fences (VGEM_FENCE_ATTACH / VGEM_FENCE_SIGNAL). lib/vgem.ts owns the device
// fd and the GEM handles and fence ids (both are per DRM file); these functions borrow the device
// fd and never close it.
#include <errno.h>
#include <string.h>

#include "uapi/drm.h"
#include "uapi/drm_mode.h"
#include "uapi/vgem.h"
#include "util.h"

namespace es {

// dumbCreate(fd, width, height, bpp): { handle, pitch, size } — DRM_IOCTL_MODE_CREATE_DUMB, on a
// card (primary) node. The caller owns the GEM handle and frees it with gemClose().
static Napi::Value DumbCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  es_drm_mode_create_dumb arg;
  memset(&arg, 0, sizeof(arg));
  arg.width = ArgU32(info, 1);
  arg.height = ArgU32(info, 2);
  arg.bpp = ArgU32(info, 3);
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_CREATE_DUMB, &arg);
  if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_CREATE_DUMB");
  Napi::Object o = Napi::Object::New(env);
  o.Set("handle", Napi::Number::New(env, arg.handle));
  o.Set("pitch", Napi::Number::New(env, arg.pitch));
  o.Set("size", Napi::Number::New(env, static_cast<double>(arg.size)));
  return o;
}

// gemClose(fd, handle): void — DRM_IOCTL_GEM_CLOSE; dma-bufs exported from the handle stay valid.
static void GemClose(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_drm_gem_close arg;
  memset(&arg, 0, sizeof(arg));
  arg.handle = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_GEM_CLOSE, &arg);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_GEM_CLOSE");
}

// primeHandleToFd(fd, handle): fd — DRM_IOCTL_PRIME_HANDLE_TO_FD with DRM_CLOEXEC | DRM_RDWR; a
// dma-buf fd the caller owns.
static Napi::Value PrimeHandleToFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_drm_prime_handle arg;
  memset(&arg, 0, sizeof(arg));
  arg.handle = ArgU32(info, 1);
  arg.flags = ES_DRM_CLOEXEC | ES_DRM_RDWR;
  arg.fd = -1;
  int err = Ioctl(fd, ES_DRM_IOCTL_PRIME_HANDLE_TO_FD, &arg);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_PRIME_HANDLE_TO_FD");
  return Napi::Number::New(info.Env(), arg.fd);
}

// primeFdToHandle(fd, dmaBufFd): handle — DRM_IOCTL_PRIME_FD_TO_HANDLE: the GEM handle of a
// dma-buf imported into this DRM file (the same handle again for a buffer it already has). The
// caller owns the handle and frees it with gemClose(); the dma-buf fd stays the caller's.
static Napi::Value PrimeFdToHandle(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_drm_prime_handle arg;
  memset(&arg, 0, sizeof(arg));
  arg.fd = ArgFd(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_PRIME_FD_TO_HANDLE, &arg);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_PRIME_FD_TO_HANDLE");
  return Napi::Number::New(info.Env(), arg.handle);
}

// vgemFenceAttach(fd, handle, write: boolean): number — DRM_IOCTL_VGEM_FENCE_ATTACH: adds an
// unsignalled fence to the buffer's reservation object (a write fence when `write`) and returns
// its id. vgem signals it itself after about 10 s, and when the device fd is closed.
static Napi::Value VgemFenceAttach(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_drm_vgem_fence_attach arg;
  memset(&arg, 0, sizeof(arg));
  arg.handle = ArgU32(info, 1);
  arg.flags = info[2].ToBoolean() ? ES_VGEM_FENCE_WRITE : 0;
  int err = Ioctl(fd, ES_DRM_IOCTL_VGEM_FENCE_ATTACH, &arg);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_VGEM_FENCE_ATTACH");
  return Napi::Number::New(info.Env(), arg.out_fence);
}

// vgemFenceSignal(fd, fence): void — DRM_IOCTL_VGEM_FENCE_SIGNAL. ETIMEDOUT: vgem's own timer had
// signalled it already (it is signalled either way); ENOENT: no such (or an already signalled) id.
static void VgemFenceSignal(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_drm_vgem_fence_signal arg;
  memset(&arg, 0, sizeof(arg));
  arg.fence = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_VGEM_FENCE_SIGNAL, &arg);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_VGEM_FENCE_SIGNAL");
}

void InitVgem(Napi::Env env, Napi::Object exports) {
  exports.Set("dumbCreate", Napi::Function::New(env, DumbCreate, "dumbCreate"));
  exports.Set("gemClose", Napi::Function::New(env, GemClose, "gemClose"));
  exports.Set("primeHandleToFd", Napi::Function::New(env, PrimeHandleToFd, "primeHandleToFd"));
  exports.Set("primeFdToHandle", Napi::Function::New(env, PrimeFdToHandle, "primeFdToHandle"));
  exports.Set("vgemFenceAttach", Napi::Function::New(env, VgemFenceAttach, "vgemFenceAttach"));
  exports.Set("vgemFenceSignal", Napi::Function::New(env, VgemFenceSignal, "vgemFenceSignal"));
}

}  // namespace es
