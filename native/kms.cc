// KMS (modesetting), enumeration: the mode-object ioctls (resources, connectors, encoders, CRTCs,
// planes, properties). Framebuffers, blobs, atomic commits and events are in kms_commit.cc.
// lib/kms/ owns the object model, the device fd and every id; these functions borrow the fd and
// never close it.
#include <errno.h>
#include <string.h>

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

void InitKms(Napi::Env env, Napi::Object exports) {
  exports.Set("kmsGetResources", Napi::Function::New(env, KmsGetResources, "kmsGetResources"));
  exports.Set("kmsGetConnector", Napi::Function::New(env, KmsGetConnector, "kmsGetConnector"));
  exports.Set("kmsGetEncoder", Napi::Function::New(env, KmsGetEncoder, "kmsGetEncoder"));
  exports.Set("kmsGetCrtc", Napi::Function::New(env, KmsGetCrtc, "kmsGetCrtc"));
  exports.Set("kmsGetPlaneResources", Napi::Function::New(env, KmsGetPlaneResources, "kmsGetPlaneResources"));
  exports.Set("kmsGetPlane", Napi::Function::New(env, KmsGetPlane, "kmsGetPlane"));
  exports.Set("kmsObjGetProperties", Napi::Function::New(env, KmsObjGetProperties, "kmsObjGetProperties"));
  exports.Set("kmsGetProperty", Napi::Function::New(env, KmsGetProperty, "kmsGetProperty"));
}

}  // namespace es
