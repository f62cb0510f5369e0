// DRM device nodes: DRM_IOCTL_VERSION and DRM_IOCTL_GET_CAP. Opening and closing the node is the
// generic open()/close() in util.cc; lib/device.ts owns the Device object and its fd.
#include <errno.h>

#include <string>
#include <vector>

#include "uapi/drm.h"
#include "util.h"

namespace es {

// drmVersion(fd): { major, minor, patchlevel, name, date, desc }
static Napi::Value DrmVersion(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  es_drm_version v = {};
  // First call learns the string lengths, second fills them (as libdrm's drmGetVersion does).
  int err = Ioctl(fd, ES_DRM_IOCTL_VERSION, &v);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_VERSION");
  std::vector<char> name(v.name_len + 1), date(v.date_len + 1), desc(v.desc_len + 1);
  v.name = name.data();
  v.date = date.data();
  v.desc = desc.data();
  err = Ioctl(fd, ES_DRM_IOCTL_VERSION, &v);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_VERSION");
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("major", Napi::Number::New(env, v.version_major));
  o.Set("minor", Napi::Number::New(env, v.version_minor));
  o.Set("patchlevel", Napi::Number::New(env, v.version_patchlevel));
  o.Set("name", Napi::String::New(env, name.data(), std::min(v.name_len, name.size() - 1)));
  o.Set("date", Napi::String::New(env, date.data(), std::min(v.date_len, date.size() - 1)));
  o.Set("desc", Napi::String::New(env, desc.data(), std::min(v.desc_len, desc.size() - 1)));
  return o;
}

// drmGetCap(fd, capability: number): bigint
static Napi::Value DrmGetCap(const Napi::CallbackInfo& info) {
  es_drm_get_cap cap = {};
  int fd = ArgFd(info, 0);
  cap.capability = ArgU32(info, 1);
  int err = Ioctl(fd, ES_DRM_IOCTL_GET_CAP, &cap);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_GET_CAP");
  return U64(info.Env(), cap.value);
}

// drmSetClientCap(fd, capability: number, value: number): void
static void DrmSetClientCap(const Napi::CallbackInfo& info) {
  es_drm_set_client_cap cap = {};
  int fd = ArgFd(info, 0);
  cap.capability = ArgU32(info, 1);
  cap.value = ArgU32(info, 2);
  int err = Ioctl(fd, ES_DRM_IOCTL_SET_CLIENT_CAP, &cap);
  if (err) ThrowErrno(info.Env(), err, "DRM_IOCTL_SET_CLIENT_CAP");
}

void InitDevice(Napi::Env env, Napi::Object exports) {
  exports.Set("drmVersion", Napi::Function::New(env, DrmVersion, "drmVersion"));
  exports.Set("drmGetCap", Napi::Function::New(env, DrmGetCap, "drmGetCap"));
  exports.Set("drmSetClientCap", Napi::Function::New(env, DrmSetClientCap, "drmSetClientCap"));
  Napi::Object caps = Napi::Object::New(env);
  caps.Set("DUMB_BUFFER", ES_DRM_CAP_DUMB_BUFFER);
  caps.Set("PRIME", ES_DRM_CAP_PRIME);
  caps.Set("SYNCOBJ", ES_DRM_CAP_SYNCOBJ);
  caps.Set("SYNCOBJ_TIMELINE", ES_DRM_CAP_SYNCOBJ_TIMELINE);
  exports.Set("DRM_CAP", caps);
}

}  // namespace es
