// Dumb-buffer uapi definitions (ES_ prefix), from include/uapi/drm/drm_mode.h and drm.h.
#ifndef EXPLICIT_SYNC_UAPI_DRM_MODE_H_
#define EXPLICIT_SYNC_UAPI_DRM_MODE_H_

#include "drm.h"

struct es_drm_mode_create_dumb {
  __u32 height;  // in
  __u32 width;   // in
  __u32 bpp;     // in
  __u32 flags;   // in, must be 0
  __u32 handle;  // out: GEM handle
  __u32 pitch;   // out
  __u64 size;    // out
};

#define ES_DRM_IOCTL_MODE_CREATE_DUMB ES_DRM_IOWR(0xB2, struct es_drm_mode_create_dumb)

static_assert(sizeof(struct es_drm_mode_create_dumb) == 32, "drm_mode_create_dumb layout");
static_assert(ES_DRM_IOCTL_MODE_CREATE_DUMB == 0xc02064b2, "DRM_IOCTL_MODE_CREATE_DUMB");

#endif  // EXPLICIT_SYNC_UAPI_DRM_MODE_H_
