// DRM syncobj uapi, carried here (ES_-prefixed) so the build needs neither libdrm nor new kernel
// headers. Checked field by field against torvalds/linux include/uapi/drm/drm.h (the version with
// DRM_IOCTL_SYNCOBJ_EVENTFD 0xCF and DRM_IOCTL_SET_CLIENT_NAME 0xD1) and, for the 6.16 additions
// (drm_syncobj_handle.point, the *_FLAGS_TIMELINE flags), against the patch that added them.
//
// The DRM core matches an ioctl by number only and copies min(user, kernel) bytes of the struct,
// zero-filling the rest, so the newest (largest) layouts below also work on older kernels: fields
// an older kernel does not know are simply not read there. That is why every struct is zeroed.
#ifndef EXPLICIT_SYNC_UAPI_DRM_SYNCOBJ_H_
#define EXPLICIT_SYNC_UAPI_DRM_SYNCOBJ_H_

#include <linux/ioctl.h>
#include <linux/types.h>

#include "drm.h"

struct es_drm_syncobj_create {
  __u32 handle;
  __u32 flags;
};
#define ES_DRM_SYNCOBJ_CREATE_SIGNALED (1u << 0)

struct es_drm_syncobj_destroy {
  __u32 handle;
  __u32 pad;
};

#define ES_DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE (1u << 0)
#define ES_DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_TIMELINE (1u << 1)  // Linux 6.16
#define ES_DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE (1u << 0)
#define ES_DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_TIMELINE (1u << 1)  // Linux 6.16
struct es_drm_syncobj_handle {
  __u32 handle;
  __u32 flags;
  __s32 fd;
  __u32 pad;
  __u64 point;  // Linux 6.16; read only with a *_FLAGS_TIMELINE flag
};

struct es_drm_syncobj_transfer {
  __u32 src_handle;
  __u32 dst_handle;
  __u64 src_point;
  __u64 dst_point;
  __u32 flags;
  __u32 pad;
};

#define ES_DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL (1u << 0)
#define ES_DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT (1u << 1)
#define ES_DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE (1u << 2)
#define ES_DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE (1u << 3)  // Linux 6.8
struct es_drm_syncobj_wait {
  __u64 handles;
  __s64 timeout_nsec;  // absolute CLOCK_MONOTONIC; 0 = poll
  __u32 count_handles;
  __u32 flags;
  __u32 first_signaled;
  __u32 pad;
  __u64 deadline_nsec;  // Linux 6.8
};

struct es_drm_syncobj_timeline_wait {
  __u64 handles;
  __u64 points;
  __s64 timeout_nsec;  // absolute CLOCK_MONOTONIC; 0 = poll
  __u32 count_handles;
  __u32 flags;
  __u32 first_signaled;
  __u32 pad;
  __u64 deadline_nsec;  // Linux 6.8
};

struct es_drm_syncobj_eventfd {  // Linux 6.6
  __u32 handle;
  __u32 flags;  // 0 or WAIT_AVAILABLE
  __u64 point;
  __s32 fd;
  __u32 pad;
};

struct es_drm_syncobj_array {
  __u64 handles;
  __u32 count_handles;
  __u32 pad;
};

#define ES_DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED (1u << 0)
struct es_drm_syncobj_timeline_array {
  __u64 handles;
  __u64 points;
  __u32 count_handles;
  __u32 flags;
};

static_assert(sizeof(es_drm_syncobj_create) == 8, "drm_syncobj_create layout");
static_assert(sizeof(es_drm_syncobj_destroy) == 8, "drm_syncobj_destroy layout");
static_assert(sizeof(es_drm_syncobj_handle) == 24, "drm_syncobj_handle layout (6.16)");
static_assert(sizeof(es_drm_syncobj_transfer) == 32, "drm_syncobj_transfer layout");
static_assert(sizeof(es_drm_syncobj_wait) == 40, "drm_syncobj_wait layout (6.8)");
static_assert(sizeof(es_drm_syncobj_timeline_wait) == 48, "drm_syncobj_timeline_wait layout (6.8)");
static_assert(sizeof(es_drm_syncobj_eventfd) == 24, "drm_syncobj_eventfd layout");
static_assert(sizeof(es_drm_syncobj_array) == 16, "drm_syncobj_array layout");
static_assert(sizeof(es_drm_syncobj_timeline_array) == 24, "drm_syncobj_timeline_array layout");

#define ES_DRM_IOCTL_SYNCOBJ_CREATE ES_DRM_IOWR(0xBF, struct es_drm_syncobj_create)
#define ES_DRM_IOCTL_SYNCOBJ_DESTROY ES_DRM_IOWR(0xC0, struct es_drm_syncobj_destroy)
#define ES_DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD ES_DRM_IOWR(0xC1, struct es_drm_syncobj_handle)
#define ES_DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE ES_DRM_IOWR(0xC2, struct es_drm_syncobj_handle)
#define ES_DRM_IOCTL_SYNCOBJ_WAIT ES_DRM_IOWR(0xC3, struct es_drm_syncobj_wait)
#define ES_DRM_IOCTL_SYNCOBJ_RESET ES_DRM_IOWR(0xC4, struct es_drm_syncobj_array)
#define ES_DRM_IOCTL_SYNCOBJ_SIGNAL ES_DRM_IOWR(0xC5, struct es_drm_syncobj_array)
// 0xC6–0xC9 are the MODE_*_LEASE ioctls.
#define ES_DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT ES_DRM_IOWR(0xCA, struct es_drm_syncobj_timeline_wait)
#define ES_DRM_IOCTL_SYNCOBJ_QUERY ES_DRM_IOWR(0xCB, struct es_drm_syncobj_timeline_array)
#define ES_DRM_IOCTL_SYNCOBJ_TRANSFER ES_DRM_IOWR(0xCC, struct es_drm_syncobj_transfer)
#define ES_DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL ES_DRM_IOWR(0xCD, struct es_drm_syncobj_timeline_array)
// 0xCE is MODE_GETFB2.
#define ES_DRM_IOCTL_SYNCOBJ_EVENTFD ES_DRM_IOWR(0xCF, struct es_drm_syncobj_eventfd)

#endif  // EXPLICIT_SYNC_UAPI_DRM_SYNCOBJ_H_
