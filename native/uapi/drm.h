// The few DRM core uapi definitions the addon needs, carried here so the build needs neither
// libdrm nor new kernel headers (as Mesa does). Layouts and numbers from include/uapi/drm/drm.h.
#ifndef EXPLICIT_SYNC_UAPI_DRM_H_
#define EXPLICIT_SYNC_UAPI_DRM_H_

#include <linux/ioctl.h>
#include <linux/types.h>
#include <stddef.h>

#define ES_DRM_IOCTL_BASE 'd'
#define ES_DRM_IO(nr) _IO(ES_DRM_IOCTL_BASE, nr)
#define ES_DRM_IOR(nr, type) _IOR(ES_DRM_IOCTL_BASE, nr, type)
#define ES_DRM_IOW(nr, type) _IOW(ES_DRM_IOCTL_BASE, nr, type)
#define ES_DRM_IOWR(nr, type) _IOWR(ES_DRM_IOCTL_BASE, nr, type)
#define ES_DRM_COMMAND_BASE 0x40

struct es_drm_version {
  int version_major;
  int version_minor;
  int version_patchlevel;
  size_t name_len;
  char* name;
  size_t date_len;
  char* date;
  size_t desc_len;
  char* desc;
};

struct es_drm_get_cap {
  __u64 capability;
  __u64 value;
};

struct es_drm_set_client_cap {
  __u64 capability;
  __u64 value;
};

struct es_drm_gem_close {
  __u32 handle;
  __u32 pad;
};

struct es_drm_prime_handle {
  __u32 handle;
  __u32 flags;  // DRM_CLOEXEC | DRM_RDWR on export
  __s32 fd;
};

#define ES_DRM_IOCTL_VERSION ES_DRM_IOWR(0x00, struct es_drm_version)
#define ES_DRM_IOCTL_GEM_CLOSE ES_DRM_IOW(0x09, struct es_drm_gem_close)
#define ES_DRM_IOCTL_GET_CAP ES_DRM_IOWR(0x0c, struct es_drm_get_cap)
#define ES_DRM_IOCTL_SET_CLIENT_CAP ES_DRM_IOW(0x0d, struct es_drm_set_client_cap)
#define ES_DRM_IOCTL_PRIME_HANDLE_TO_FD ES_DRM_IOWR(0x2d, struct es_drm_prime_handle)
#define ES_DRM_IOCTL_PRIME_FD_TO_HANDLE ES_DRM_IOWR(0x2e, struct es_drm_prime_handle)

#define ES_DRM_CLOEXEC 02000000  // O_CLOEXEC
#define ES_DRM_RDWR 02           // O_RDWR

// DRM_IOCTL_GET_CAP capabilities.
#define ES_DRM_CAP_DUMB_BUFFER 0x1
#define ES_DRM_CAP_PRIME 0x5
#define ES_DRM_CAP_SYNCOBJ 0x13
#define ES_DRM_CAP_SYNCOBJ_TIMELINE 0x14

// DRM char devices have major 226.
#define ES_DRM_MAJOR 226

#endif  // EXPLICIT_SYNC_UAPI_DRM_H_
