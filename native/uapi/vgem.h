// vgem uapi definitions (ES_ prefix), from include/uapi/drm/vgem_drm.h.
#ifndef EXPLICIT_SYNC_UAPI_VGEM_H_
#define EXPLICIT_SYNC_UAPI_VGEM_H_

#include "drm.h"

struct es_drm_vgem_fence_attach {
  __u32 handle;     // GEM handle of the buffer
  __u32 flags;      // ES_VGEM_FENCE_WRITE for a write (exclusive) fence
  __u32 out_fence;  // out: fence id, per DRM file
  __u32 pad;
};

struct es_drm_vgem_fence_signal {
  __u32 fence;
  __u32 flags;
};

#define ES_VGEM_FENCE_WRITE 0x1

#define ES_DRM_IOCTL_VGEM_FENCE_ATTACH ES_DRM_IOWR(ES_DRM_COMMAND_BASE + 0x1, struct es_drm_vgem_fence_attach)
#define ES_DRM_IOCTL_VGEM_FENCE_SIGNAL ES_DRM_IOW(ES_DRM_COMMAND_BASE + 0x2, struct es_drm_vgem_fence_signal)

static_assert(sizeof(struct es_drm_vgem_fence_attach) == 16, "drm_vgem_fence_attach layout");
static_assert(ES_DRM_IOCTL_VGEM_FENCE_ATTACH == 0xc0106441, "DRM_IOCTL_VGEM_FENCE_ATTACH");
static_assert(ES_DRM_IOCTL_VGEM_FENCE_SIGNAL == 0x40086442, "DRM_IOCTL_VGEM_FENCE_SIGNAL");

#endif  // EXPLICIT_SYNC_UAPI_VGEM_H_
