// The uapi layouts and ioctl numbers, checked at compile time for whichever target the addon is
// built for: x86-64 natively, arm64 by `npm run prebuild`'s cross build. Both are LP64 with
// 8-byte-aligned __u64 and the generic _IOC encoding (dir in bits 30-31, a 14-bit size), so every
// layout and number below is the same on both; what would differ elsewhere (i386 aligns __u64
// to 4; powerpc/mips encode the direction in 3 bits and the size in 13) fails here first.
// The sizes each header asserts beside its structs; this file adds the structs they did not,
// the offsets of the __u64 fields that follow __u32 ones, and the kernel's own ioctl numbers.
#ifndef EXPLICIT_SYNC_UAPI_ABI_H_
#define EXPLICIT_SYNC_UAPI_ABI_H_

#include <cstddef>

#include "dma_buf.h"
#include "drm.h"
#include "drm_mode.h"
#include "drm_syncobj.h"
#include "sync_file.h"
#include "vgem.h"

static_assert(sizeof(void*) == 8, "explicit-sync's uapi layouts are those of LP64 targets (x86-64, arm64)");

static_assert(sizeof(struct es_drm_version) == 64, "drm_version layout (LP64)");
static_assert(sizeof(struct es_drm_get_cap) == 16, "drm_get_cap layout");
static_assert(sizeof(struct es_drm_set_client_cap) == 16, "drm_set_client_cap layout");
static_assert(sizeof(struct es_drm_gem_close) == 8, "drm_gem_close layout");
static_assert(sizeof(struct es_drm_prime_handle) == 12, "drm_prime_handle layout");
static_assert(sizeof(struct es_drm_mode_destroy_blob) == 4, "drm_mode_destroy_blob layout");
static_assert(sizeof(struct es_drm_event) == 8, "drm_event layout");
static_assert(sizeof(struct es_sync_set_deadline) == 16, "sync_set_deadline layout");
static_assert(sizeof(struct es_dma_buf_import_sync_file) == 8, "dma_buf_import_sync_file layout");
static_assert(sizeof(struct es_drm_vgem_fence_signal) == 8, "drm_vgem_fence_signal layout");

// __u64 after __u32s: 8-aligned on both targets.
static_assert(offsetof(struct es_drm_version, name_len) == 16, "drm_version.name_len");
static_assert(offsetof(struct es_drm_syncobj_handle, point) == 16, "drm_syncobj_handle.point");
static_assert(offsetof(struct es_drm_syncobj_transfer, src_point) == 8, "drm_syncobj_transfer.src_point");
static_assert(offsetof(struct es_drm_syncobj_wait, deadline_nsec) == 32, "drm_syncobj_wait.deadline_nsec");
static_assert(offsetof(struct es_drm_syncobj_timeline_wait, deadline_nsec) == 40, "drm_syncobj_timeline_wait.deadline_nsec");
static_assert(offsetof(struct es_drm_syncobj_eventfd, point) == 8, "drm_syncobj_eventfd.point");
static_assert(offsetof(struct es_drm_syncobj_eventfd, fd) == 16, "drm_syncobj_eventfd.fd");
static_assert(offsetof(struct es_drm_syncobj_timeline_array, count_handles) == 16, "drm_syncobj_timeline_array.count_handles");
static_assert(offsetof(struct es_sync_fence_info, timestamp_ns) == 72, "sync_fence_info.timestamp_ns");

// The numbers the kernel's headers give on x86-64 and arm64.
static_assert(ES_DRM_IOCTL_VERSION == 0xc0406400, "DRM_IOCTL_VERSION");
static_assert(ES_DRM_IOCTL_SYNCOBJ_CREATE == 0xc00864bf, "DRM_IOCTL_SYNCOBJ_CREATE");
static_assert(ES_DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD == 0xc01864c1, "DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD (6.16 layout)");
static_assert(ES_DRM_IOCTL_SYNCOBJ_WAIT == 0xc02864c3, "DRM_IOCTL_SYNCOBJ_WAIT");
static_assert(ES_DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT == 0xc03064ca, "DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT");
static_assert(ES_DRM_IOCTL_SYNCOBJ_EVENTFD == 0xc01864cf, "DRM_IOCTL_SYNCOBJ_EVENTFD");
static_assert(ES_SYNC_IOC_MERGE == 0xc0303e03, "SYNC_IOC_MERGE");
static_assert(ES_SYNC_IOC_FILE_INFO == 0xc0383e04, "SYNC_IOC_FILE_INFO");
static_assert(ES_SYNC_IOC_SET_DEADLINE == 0x40103e05, "SYNC_IOC_SET_DEADLINE");
static_assert(ES_DMA_BUF_IOCTL_EXPORT_SYNC_FILE == 0xc0086202, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE");
static_assert(ES_DMA_BUF_IOCTL_IMPORT_SYNC_FILE == 0x40086203, "DMA_BUF_IOCTL_IMPORT_SYNC_FILE");

#endif  // EXPLICIT_SYNC_UAPI_ABI_H_
