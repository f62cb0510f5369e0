// KMS (modesetting): the mode-object ioctls, framebuffers, property blobs, atomic commits and DRM
// events. lib/kms.ts owns the object model, the device fd and every id; these functions borrow the
// fd and never close it. The only fds created here are a commit's out-fences (CRTC OUT_FENCE_PTR),
// returned to the caller, which owns them.
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <vector>

#include "uapi/drm.h"
#include "uapi/drm_mode.h"
#include "util.h"

namespace es {

static uint64_t Ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

static Napi::Array U32Array(Napi::Env env, const std::vector<uint32_t>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, v[i]));
  return a;
}

// A NUL-terminated copy of a fixed-size kernel name field.
static Napi::String FixedName(Napi::Env env, const char* s, size_t len) { return Napi::String::New(env, s, strnlen(s, len)); }

static Napi::Object ModeObject(Napi::Env env, const es_drm_mode_modeinfo& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("clock", m.clock);
  o.Set("hdisplay", m.hdisplay);
  o.Set("hsyncStart", m.hsync_start);
  o.Set("hsyncEnd", m.hsync_end);
  o.Set("htotal", m.htotal);
  o.Set("hskew", m.hskew);
  o.Set("vdisplay", m.vdisplay);
  o.Set("vsyncStart", m.vsync_start);
  o.Set("vsyncEnd", m.vsync_end);
  o.Set("vtotal", m.vtotal);
  o.Set("vscan", m.vscan);
  o.Set("vrefresh", m.vrefresh);
  o.Set("flags", m.flags);
  o.Set("type", m.type);
  o.Set("name", FixedName(env, m.name, sizeof(m.name)));
  // The raw struct, for MODE_ID blobs: the kernel takes exactly these bytes back.
  o.Set("raw", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(&m), sizeof(m)));
  return o;
}

// kmsGetResources(fd): { fbs, crtcs, connectors, encoders, minWidth, maxWidth, minHeight, maxHeight }
// The counts can change between the two calls (hotplug): retry until they are stable, as libdrm does.
static Napi::Value KmsGetResources(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  es_drm_mode_card_res res;
  std::vector<uint32_t> fbs, crtcs, connectors, encoders;
  for (;;) {
    memset(&res, 0, sizeof(res));
    int err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETRESOURCES, &res);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETRESOURCES");
    fbs.assign(res.count_fbs, 0);
    crtcs.assign(res.count_crtcs, 0);
    connectors.assign(res.count_connectors, 0);
    encoders.assign(res.count_encoders, 0);
    es_drm_mode_card_res again = res;
    again.fb_id_ptr = Ptr(fbs.data());
    again.crtc_id_ptr = Ptr(crtcs.data());
    again.connector_id_ptr = Ptr(connectors.data());
    again.encoder_id_ptr = Ptr(encoders.data());
    err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETRESOURCES, &again);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETRESOURCES");
    if (again.count_fbs <= res.count_fbs && again.count_crtcs <= res.count_crtcs &&
        again.count_connectors <= res.count_connectors && again.count_encoders <= res.count_encoders) {
      fbs.resize(again.count_fbs);
      crtcs.resize(again.count_crtcs);
      connectors.resize(again.count_connectors);
      encoders.resize(again.count_encoders);
      res = again;
      break;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("fbs", U32Array(env, fbs));
  o.Set("crtcs", U32Array(env, crtcs));
  o.Set("connectors", U32Array(env, connectors));
  o.Set("encoders", U32Array(env, encoders));
  o.Set("minWidth", res.min_width);
  o.Set("maxWidth", res.max_width);
  o.Set("minHeight", res.min_height);
  o.Set("maxHeight", res.max_height);
  return o;
}

// kmsGetConnector(fd, id): { id, type, typeId, connection, mmWidth, mmHeight, encoderId, encoders, modes }
// Asks the kernel to probe (count_modes = 0 on the first call), as drmModeGetConnector does.
static Napi::Value KmsGetConnector(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  uint32_t id = ArgU32(info, 1);
  es_drm_mode_get_connector c;
  std::vector<uint32_t> encoders;
  std::vector<es_drm_mode_modeinfo> modes;
  for (;;) {
    memset(&c, 0, sizeof(c));
    c.connector_id = id;
    int err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETCONNECTOR, &c);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETCONNECTOR");
    encoders.assign(c.count_encoders, 0);
    modes.assign(c.count_modes, es_drm_mode_modeinfo{});
    es_drm_mode_get_connector again;
    memset(&again, 0, sizeof(again));
    again.connector_id = id;
    again.count_encoders = c.count_encoders;
    again.count_modes = c.count_modes;
    again.encoders_ptr = Ptr(encoders.data());
    again.modes_ptr = Ptr(modes.data());
    err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETCONNECTOR, &again);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETCONNECTOR");
    if (again.count_encoders <= c.count_encoders && again.count_modes <= c.count_modes) {
      encoders.resize(again.count_encoders);
      modes.resize(again.count_modes);
      c = again;
      break;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", c.connector_id);
  o.Set("type", c.connector_type);
  o.Set("typeId", c.connector_type_id);
  o.Set("connection", c.connection);
  o.Set("mmWidth", c.mm_width);
  o.Set("mmHeight", c.mm_height);
  o.Set("encoderId", c.encoder_id);
  o.Set("encoders", U32Array(env, encoders));
  Napi::Array m = Napi::Array::New(env, modes.size());
  for (size_t i = 0; i < modes.size(); i++) m.Set(static_cast<uint32_t>(i), ModeObject(env, modes[i]));
  o.Set("modes", m);
  return o;
}

// kmsGetEncoder(fd, id): { id, type, crtcId, possibleCrtcs }
static Napi::Value KmsGetEncoder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  es_drm_mode_get_encoder e;
  memset(&e, 0, sizeof(e));
  int fd = ArgFd(info, 0);
  e.encoder_id = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETENCODER, &e);
  if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETENCODER");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", e.encoder_id);
  o.Set("type", e.encoder_type);
  o.Set("crtcId", e.crtc_id);
  o.Set("possibleCrtcs", e.possible_crtcs);
  return o;
}

// kmsGetCrtc(fd, id): { id, fbId, x, y, gammaSize, mode: Mode | null }
static Napi::Value KmsGetCrtc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  es_drm_mode_crtc c;
  memset(&c, 0, sizeof(c));
  int fd = ArgFd(info, 0);
  c.crtc_id = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETCRTC, &c);
  if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETCRTC");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", c.crtc_id);
  o.Set("fbId", c.fb_id);
  o.Set("x", c.x);
  o.Set("y", c.y);
  o.Set("gammaSize", c.gamma_size);
  o.Set("mode", c.mode_valid ? static_cast<Napi::Value>(ModeObject(env, c.mode)) : env.Null());
  return o;
}

// kmsGetPlaneResources(fd): number[] — plane ids (all of them once UNIVERSAL_PLANES is set).
static Napi::Value KmsGetPlaneResources(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  std::vector<uint32_t> ids;
  for (;;) {
    es_drm_mode_get_plane_res r;
    memset(&r, 0, sizeof(r));
    int err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETPLANERESOURCES, &r);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETPLANERESOURCES");
    uint32_t n = r.count_planes;
    ids.assign(n, 0);
    r.plane_id_ptr = Ptr(ids.data());
    err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETPLANERESOURCES, &r);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETPLANERESOURCES");
    if (r.count_planes <= n) {
      ids.resize(r.count_planes);
      break;
    }
  }
  return U32Array(env, ids);
}

// kmsGetPlane(fd, id): { id, crtcId, fbId, possibleCrtcs, formats: number[] (fourcc) }
static Napi::Value KmsGetPlane(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  uint32_t id = ArgU32(info, 1);
  es_drm_mode_get_plane p;
  std::vector<uint32_t> formats;
  for (;;) {
    memset(&p, 0, sizeof(p));
    p.plane_id = id;
    int err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETPLANE, &p);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETPLANE");
    uint32_t n = p.count_format_types;
    formats.assign(n, 0);
    p.format_type_ptr = Ptr(formats.data());
    err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETPLANE, &p);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETPLANE");
    if (p.count_format_types <= n) {
      formats.resize(p.count_format_types);
      break;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", p.plane_id);
  o.Set("crtcId", p.crtc_id);
  o.Set("fbId", p.fb_id);
  o.Set("possibleCrtcs", p.possible_crtcs);
  o.Set("formats", U32Array(env, formats));
  return o;
}

// kmsObjGetProperties(fd, objId, objType): { ids: number[], values: bigint[] }
static Napi::Value KmsObjGetProperties(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  uint32_t obj = ArgU32(info, 1);
  uint32_t type = ArgU32(info, 2);
  std::vector<uint32_t> ids;
  std::vector<uint64_t> values;
  for (;;) {
    es_drm_mode_obj_get_properties p;
    memset(&p, 0, sizeof(p));
    p.obj_id = obj;
    p.obj_type = type;
    int err = Ioctl(fd, ES_DRM_IOCTL_MODE_OBJ_GETPROPERTIES, &p);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_OBJ_GETPROPERTIES");
    uint32_t n = p.count_props;
    ids.assign(n, 0);
    values.assign(n, 0);
    p.props_ptr = Ptr(ids.data());
    p.prop_values_ptr = Ptr(values.data());
    err = Ioctl(fd, ES_DRM_IOCTL_MODE_OBJ_GETPROPERTIES, &p);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_OBJ_GETPROPERTIES");
    if (p.count_props <= n) {
      ids.resize(p.count_props);
      values.resize(p.count_props);
      break;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ids", U32Array(env, ids));
  Napi::Array v = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); i++) v.Set(static_cast<uint32_t>(i), U64(env, values[i]));
  o.Set("values", v);
  return o;
}

// kmsGetProperty(fd, propId): { id, name, flags, values: bigint[], enums: { value: bigint, name }[] }
static Napi::Value KmsGetProperty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  uint32_t id = ArgU32(info, 1);
  es_drm_mode_get_property p;
  std::vector<uint64_t> values;
  std::vector<es_drm_mode_property_enum> enums;
  for (;;) {
    memset(&p, 0, sizeof(p));
    p.prop_id = id;
    int err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETPROPERTY, &p);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETPROPERTY");
    uint32_t nv = p.count_values, ne = p.count_enum_blobs;
    values.assign(nv, 0);
    enums.assign(ne, es_drm_mode_property_enum{});
    p.values_ptr = Ptr(values.data());
    // Blob properties report blob ids in count_enum_blobs; only enums/bitmasks fill enum_blob_ptr.
    p.enum_blob_ptr = (p.flags & (ES_DRM_MODE_PROP_ENUM | ES_DRM_MODE_PROP_BITMASK)) ? Ptr(enums.data()) : 0;
    if (p.enum_blob_ptr == 0) p.count_enum_blobs = 0;
    err = Ioctl(fd, ES_DRM_IOCTL_MODE_GETPROPERTY, &p);
    if (err) ThrowErrno(env, err, "DRM_IOCTL_MODE_GETPROPERTY");
    if (p.count_values <= nv && p.count_enum_blobs <= ne) {
      values.resize(p.count_values);
      enums.resize(p.enum_blob_ptr ? p.count_enum_blobs : 0);
      break;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", p.prop_id);
  o.Set("name", FixedName(env, p.name, sizeof(p.name)));
  o.Set("flags", p.flags);
  Napi::Array v = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); i++) v.Set(static_cast<uint32_t>(i), U64(env, values[i]));
  o.Set("values", v);
  Napi::Array e = Napi::Array::New(env, enums.size());
  for (size_t i = 0; i < enums.size(); i++) {
    Napi::Object en = Napi::Object::New(env);
    en.Set("value", U64(env, enums[i].value));
    en.Set("name", FixedName(env, enums[i].name, sizeof(enums[i].name)));
    e.Set(static_cast<uint32_t>(i), en);
  }
  o.Set("enums", e);
  return o;
}

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

void InitKms(Napi::Env env, Napi::Object exports) {
  exports.Set("kmsGetResources", Napi::Function::New(env, KmsGetResources, "kmsGetResources"));
  exports.Set("kmsGetConnector", Napi::Function::New(env, KmsGetConnector, "kmsGetConnector"));
  exports.Set("kmsGetEncoder", Napi::Function::New(env, KmsGetEncoder, "kmsGetEncoder"));
  exports.Set("kmsGetCrtc", Napi::Function::New(env, KmsGetCrtc, "kmsGetCrtc"));
  exports.Set("kmsGetPlaneResources", Napi::Function::New(env, KmsGetPlaneResources, "kmsGetPlaneResources"));
  exports.Set("kmsGetPlane", Napi::Function::New(env, KmsGetPlane, "kmsGetPlane"));
  exports.Set("kmsObjGetProperties", Napi::Function::New(env, KmsObjGetProperties, "kmsObjGetProperties"));
  exports.Set("kmsGetProperty", Napi::Function::New(env, KmsGetProperty, "kmsGetProperty"));
  exports.Set("kmsAddFb2", Napi::Function::New(env, KmsAddFb2, "kmsAddFb2"));
  exports.Set("kmsRmFb", Napi::Function::New(env, KmsRmFb, "kmsRmFb"));
  exports.Set("kmsCreatePropBlob", Napi::Function::New(env, KmsCreatePropBlob, "kmsCreatePropBlob"));
  exports.Set("kmsDestroyPropBlob", Napi::Function::New(env, KmsDestroyPropBlob, "kmsDestroyPropBlob"));
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
