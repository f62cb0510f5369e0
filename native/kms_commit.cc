// KMS (modesetting), presenting: framebuffers (ADDFB2/RMFB over dumb or PRIME-imported GEM
// handles), property blobs, DRM_IOCTL_MODE_ATOMIC with out-fence slots, and reading DRM events.
// lib/kms/ owns the object model, the device fd and every id; these functions borrow the fd and
// never close it. The only fds created here are a commit's out-fences (OUT_FENCE_PTR), returned
// to the caller, which owns them.
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "uapi/drm.h"
#include "uapi/drm_mode.h"
#include "util.h"

namespace es {

static uint64_t Ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

// kmsAddFb2(fd, width, height, fourcc, handles: number[], pitches: number[], offsets: number[]): fbId
// Linear layout only (no modifiers): enough for dumb buffers and linear dma-bufs.
static Napi::Value KmsAddFb2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  es_drm_mode_fb_cmd2 f;
  memset(&f, 0, sizeof(f));
  f.width = ArgU32(info, 1);
  f.height = ArgU32(info, 2);
  f.pixel_format = ArgU32(info, 3);
  for (size_t a = 4; a <= 6; a++) {
    if (!info[a].IsArray()) throw Napi::TypeError::New(env, "argument " + std::to_string(a) + " must be an array");
    Napi::Array arr = info[a].As<Napi::Array>();
    if (arr.Length() > 4) throw Napi::RangeError::New(env, "at most 4 planes");
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsNumber()) throw Napi::TypeError::New(env, "plane values must be u32");
      uint32_t u = v.As<Napi::Number>().Uint32Value();
      (a == 4 ? f.handles : a == 5 ? f.pitches : f.offsets)[i] = u;
    }
  }
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_ADDFB2, &f);
  if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_ADDFB2");
  return Napi::Number::New(env, f.fb_id);
}

// kmsRmFb(fd, fbId): void
static void KmsRmFb(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  unsigned int id = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_RMFB, &id);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_MODE_RMFB");
}

// kmsCreatePropBlob(fd, data: Buffer): blobId
static Napi::Value KmsCreatePropBlob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "argument 1 must be a Buffer");
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  es_drm_mode_create_blob b;
  memset(&b, 0, sizeof(b));
  b.data = Ptr(data.Data());
  b.length = static_cast<uint32_t>(data.Length());
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_CREATEPROPBLOB, &b);
  if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_CREATEPROPBLOB");
  return Napi::Number::New(env, b.blob_id);
}

// kmsDestroyPropBlob(fd, blobId): void
static void KmsDestroyPropBlob(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_drm_mode_destroy_blob b;
  memset(&b, 0, sizeof(b));
  b.blob_id = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_DESTROYPROPBLOB, &b);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_MODE_DESTROYPROPBLOB");
}

// kmsGetPropBlob(fd, blobId): Buffer — DRM_IOCTL_MODE_GETPROPBLOB: the blob's bytes (any file's
// blob: the kernel looks ids up device-wide). ENOENT when no blob has that id. Sized by a first
// call; a blob's contents never change, so two calls suffice.
static Napi::Value KmsGetPropBlob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  es_drm_mode_get_blob b;
  memset(&b, 0, sizeof(b));
  b.blob_id = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETPROPBLOB, &b);
  if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETPROPBLOB");
  std::vector<uint8_t> data(b.length);
  b.data = Ptr(data.data());
  err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETPROPBLOB, &b);
  if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETPROPBLOB");
  return Napi::Buffer<uint8_t>::Copy(env, data.data(), std::min<size_t>(data.size(), b.length));
}

// kmsPrimeFdToHandle(fd, dmabufFd): handle — DRM_IOCTL_PRIME_FD_TO_HANDLE; the caller owns the GEM
// handle (gemClose). Importing the same dma-buf twice gives the same handle.
static Napi::Value KmsPrimeFdToHandle(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_drm_prime_handle p;
  memset(&p, 0, sizeof(p));
  p.fd = ArgFd(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_PRIME_FD_TO_HANDLE, &p);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_PRIME_FD_TO_HANDLE");
  return Napi::Number::New(info.Env(), p.handle);
}

// kmsAtomic(fd, flags, objs: Uint32Array, counts: Uint32Array, props: Uint32Array,
//           values: BigUint64Array, outFenceSlots: Uint32Array, userData: bigint): Int32Array
// DRM_IOCTL_MODE_ATOMIC. Each entry of outFenceSlots is an index into `values` whose value is
// replaced by a pointer to an s32 the kernel writes an out-fence fd to (CRTC OUT_FENCE_PTR).
// Returns those fds in slot order (-1 where none was written); the caller owns them. On failure
// no fd stays open.
static Napi::Value KmsAtomic(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  uint32_t flags = ArgU32(info, 1);
  for (size_t a = 2; a <= 6; a++) {
    bool ok = a == 5 ? info[a].IsTypedArray() && info[a].As<Napi::TypedArray>().TypedArrayType() == napi_biguint64_array
                     : info[a].IsTypedArray() && info[a].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array;
    if (!ok) throw Napi::TypeError::New(env, "argument " + std::to_string(a) + (a == 5 ? " must be a BigUint64Array" : " must be a Uint32Array"));
  }
  Napi::Uint32Array objs = info[2].As<Napi::Uint32Array>();
  Napi::Uint32Array counts = info[3].As<Napi::Uint32Array>();
  Napi::Uint32Array props = info[4].As<Napi::Uint32Array>();
  Napi::TypedArrayOf<uint64_t> in_values = info[5].As<Napi::TypedArrayOf<uint64_t>>();
  Napi::Uint32Array slots = info[6].As<Napi::Uint32Array>();
  bool lossless = true;
  uint64_t user_data = info[7].IsBigInt() ? info[7].As<Napi::BigInt>().Uint64Value(&lossless) : 0;
  if (objs.ElementLength() != counts.ElementLength() || props.ElementLength() != in_values.ElementLength())
    throw Napi::RangeError::New(env, "atomic arrays disagree in length");
  size_t total = 0;
  for (size_t i = 0; i < counts.ElementLength(); i++) total += counts[i];
  if (total != props.ElementLength()) throw Napi::RangeError::New(env, "property counts do not add up");

  std::vector<uint64_t> values(in_values.Data(), in_values.Data() + in_values.ElementLength());
  std::vector<int32_t> fences(slots.ElementLength(), -1);
  for (size_t i = 0; i < slots.ElementLength(); i++) {
    if (slots[i] >= values.size()) throw Napi::RangeError::New(env, "out-fence slot out of range");
    values[slots[i]] = Ptr(&fences[i]);
  }
  es_drm_mode_atomic a;
  memset(&a, 0, sizeof(a));
  a.flags = flags;
  a.count_objs = static_cast<uint32_t>(objs.ElementLength());
  a.objs_ptr = Ptr(objs.Data());
  a.count_props_ptr = Ptr(counts.Data());
  a.props_ptr = Ptr(props.Data());
  a.prop_values_ptr = Ptr(values.data());
  a.user_data = user_data;
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_ATOMIC, &a);
  if (err) {
    // The kernel writes -1 back on failure; close anything it may have left, to be safe.
    for (int32_t f : fences)
      if (f >= 0) close(f);
    ThrowErrno(env, err, "DRM_IOCTL_MODE_ATOMIC");
  }
  Napi::Int32Array out = Napi::Int32Array::New(env, fences.size());
  for (size_t i = 0; i < fences.size(); i++) out[i] = fences[i];
  return out;
}

// kmsReadEvents(fd): { type, userData: bigint, tvSec, tvUsec, sequence, crtcId }[]
// One read(2) of whatever events are queued; [] when none is (poll first: the fd is blocking).
static Napi::Value KmsReadEvents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  Napi::Array out = Napi::Array::New(env);
  alignas(8) char buf[1024];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf));
  } while (n == -1 && errno == EINTR);
  if (n == -1) {
    if (errno == EAGAIN) return out;
    ThrowErrno(env, errno, "read");
  }
  uint32_t k = 0;
  for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(es_drm_event)) <= n;) {
    es_drm_event head;
    memcpy(&head, buf + off, sizeof(head));
    if (head.length < sizeof(head) || off + static_cast<ssize_t>(head.length) > n) break;
    Napi::Object e = Napi::Object::New(env);
    e.Set("type", head.type);
    if ((head.type == ES_DRM_EVENT_VBLANK || head.type == ES_DRM_EVENT_FLIP_COMPLETE) &&
        head.length >= sizeof(es_drm_event_vblank)) {
      es_drm_event_vblank v;
      memcpy(&v, buf + off, sizeof(v));
      e.Set("userData", U64(env, v.user_data));
      e.Set("tvSec", v.tv_sec);
      e.Set("tvUsec", v.tv_usec);
      e.Set("sequence", v.sequence);
      e.Set("crtcId", v.crtc_id);
    }
    out.Set(k++, e);
    off += head.length;
  }
  return out;
}

void InitKmsCommit(Napi::Env env, Napi::Object exports) {
  exports.Set("kmsAddFb2", Napi::Function::New(env, KmsAddFb2, "kmsAddFb2"));
  exports.Set("kmsRmFb", Napi::Function::New(env, KmsRmFb, "kmsRmFb"));
  exports.Set("kmsCreatePropBlob", Napi::Function::New(env, KmsCreatePropBlob, "kmsCreatePropBlob"));
  exports.Set("kmsDestroyPropBlob", Napi::Function::New(env, KmsDestroyPropBlob, "kmsDestroyPropBlob"));
  exports.Set("kmsGetPropBlob", Napi::Function::New(env, KmsGetPropBlob, "kmsGetPropBlob"));
  exports.Set("kmsPrimeFdToHandle", Napi::Function::New(env, KmsPrimeFdToHandle, "kmsPrimeFdToHandle"));
  exports.Set("kmsAtomic", Napi::Function::New(env, KmsAtomic, "kmsAtomic"));
  exports.Set("kmsReadEvents", Napi::Function::New(env, KmsReadEvents, "kmsReadEvents"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("CLIENT_CAP_UNIVERSAL_PLANES", ES_DRM_CLIENT_CAP_UNIVERSAL_PLANES);
  c.Set("CLIENT_CAP_ATOMIC", ES_DRM_CLIENT_CAP_ATOMIC);
  c.Set("CLIENT_CAP_WRITEBACK_CONNECTORS", ES_DRM_CLIENT_CAP_WRITEBACK_CONNECTORS);
  c.Set("OBJECT_CRTC", static_cast<double>(ES_DRM_MODE_OBJECT_CRTC));
  c.Set("OBJECT_CONNECTOR", static_cast<double>(ES_DRM_MODE_OBJECT_CONNECTOR));
  c.Set("OBJECT_PLANE", static_cast<double>(ES_DRM_MODE_OBJECT_PLANE));
  c.Set("PROP_RANGE", ES_DRM_MODE_PROP_RANGE);
  c.Set("PROP_IMMUTABLE", ES_DRM_MODE_PROP_IMMUTABLE);
  c.Set("PROP_ENUM", ES_DRM_MODE_PROP_ENUM);
  c.Set("PROP_BLOB", ES_DRM_MODE_PROP_BLOB);
  c.Set("PROP_BITMASK", ES_DRM_MODE_PROP_BITMASK);
  c.Set("PROP_EXTENDED_TYPE", ES_DRM_MODE_PROP_EXTENDED_TYPE);
  c.Set("PROP_OBJECT", ES_DRM_MODE_PROP_OBJECT);
  c.Set("PROP_SIGNED_RANGE", ES_DRM_MODE_PROP_SIGNED_RANGE);
  c.Set("PAGE_FLIP_EVENT", ES_DRM_MODE_PAGE_FLIP_EVENT);
  c.Set("ATOMIC_TEST_ONLY", ES_DRM_MODE_ATOMIC_TEST_ONLY);
  c.Set("ATOMIC_NONBLOCK", ES_DRM_MODE_ATOMIC_NONBLOCK);
  c.Set("ATOMIC_ALLOW_MODESET", ES_DRM_MODE_ATOMIC_ALLOW_MODESET);
  c.Set("EVENT_VBLANK", ES_DRM_EVENT_VBLANK);
  c.Set("EVENT_FLIP_COMPLETE", ES_DRM_EVENT_FLIP_COMPLETE);
  exports.Set("KMS", c);
}

}  // namespace es
