// sw_sync uapi definitions (ES_ prefix), from drivers/dma-buf/sw_sync.c (the kernel keeps them in
// the driver, not in include/uapi). sw_sync is a debugfs file, <debugfs>/sync/sw_sync, present when
// the kernel has CONFIG_SW_SYNC (or the module is loaded): each open() is a new timeline.
#ifndef EXPLICIT_SYNC_UAPI_SW_SYNC_H_
#define EXPLICIT_SYNC_UAPI_SW_SYNC_H_

#include <linux/ioctl.h>
#include <linux/types.h>

#include <cstddef>

struct es_sw_sync_create_fence_data {
  __u32 value;    // the timeline point the fence signals at
  char name[32];  // the fence's name (sync_fence_info.obj_name reads the timeline's)
  __s32 fence;    // out: the sync_file fd (O_CLOEXEC)
};

// SW_SYNC_GET_DEADLINE (6.12 and 7.3 have it, 6.1 not): the earliest deadline set on one sw_sync
// fence, given as a sync_file fd. ENOENT when none was set.
struct es_sw_sync_get_deadline {
  __u64 deadline_ns;  // out: absolute CLOCK_MONOTONIC time; in: must be 0
  __u32 pad;          // must be 0
  __s32 fence_fd;     // in: a sync_file holding one sw_sync fence
};

#define ES_SW_SYNC_IOC_MAGIC 'W'
#define ES_SW_SYNC_IOC_CREATE_FENCE _IOWR(ES_SW_SYNC_IOC_MAGIC, 0, struct es_sw_sync_create_fence_data)
#define ES_SW_SYNC_IOC_INC _IOW(ES_SW_SYNC_IOC_MAGIC, 1, __u32)
#define ES_SW_SYNC_GET_DEADLINE _IOWR(ES_SW_SYNC_IOC_MAGIC, 2, struct es_sw_sync_get_deadline)

static_assert(sizeof(struct es_sw_sync_create_fence_data) == 40, "sw_sync_create_fence_data layout");
static_assert(offsetof(struct es_sw_sync_create_fence_data, name) == 4, "sw_sync_create_fence_data.name");
static_assert(offsetof(struct es_sw_sync_create_fence_data, fence) == 36, "sw_sync_create_fence_data.fence");
static_assert(ES_SW_SYNC_IOC_CREATE_FENCE == 0xc0285700, "SW_SYNC_IOC_CREATE_FENCE");
static_assert(ES_SW_SYNC_IOC_INC == 0x40045701, "SW_SYNC_IOC_INC");
static_assert(sizeof(struct es_sw_sync_get_deadline) == 16, "sw_sync_get_deadline layout");
static_assert(offsetof(struct es_sw_sync_get_deadline, fence_fd) == 12, "sw_sync_get_deadline.fence_fd");
static_assert(ES_SW_SYNC_GET_DEADLINE == 0xc0105702, "SW_SYNC_GET_DEADLINE");

#endif  // EXPLICIT_SYNC_UAPI_SW_SYNC_H_
