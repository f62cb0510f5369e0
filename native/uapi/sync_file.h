// sync_file uapi definitions (ES_ prefix), from include/uapi/linux/sync_file.h.
// SYNC_IOC_SET_DEADLINE since Linux 6.7.
#ifndef EXPLICIT_SYNC_UAPI_SYNC_FILE_H_
#define EXPLICIT_SYNC_UAPI_SYNC_FILE_H_

#include <linux/ioctl.h>
#include <linux/types.h>

struct es_sync_merge_data {
  char name[32];
  __s32 fd2;    // in: the other sync_file (not consumed)
  __s32 fence;  // out: the merged sync_file fd (O_CLOEXEC)
  __u32 flags;  // must be 0
  __u32 pad;    // must be 0
};

struct es_sync_fence_info {
  char obj_name[32];     // timeline
  char driver_name[32];  // driver
  __s32 status;          // 0 active, 1 signaled, < 0 error
  __u32 flags;
  __u64 timestamp_ns;  // signal time (CLOCK_MONOTONIC), 0 while active
};

struct es_sync_file_info {
  char name[32];
  __s32 status;  // 0 active, 1 signaled, < 0 error
  __u32 flags;   // must be 0
  __u32 num_fences;
  __u32 pad;             // must be 0
  __u64 sync_fence_info;  // user pointer to es_sync_fence_info[num_fences]
};

struct es_sync_set_deadline {
  __u64 deadline_ns;  // absolute CLOCK_MONOTONIC
  __u64 pad;          // must be 0
};

#define ES_SYNC_IOC_MAGIC '>'
#define ES_SYNC_IOC_MERGE _IOWR(ES_SYNC_IOC_MAGIC, 3, struct es_sync_merge_data)
#define ES_SYNC_IOC_FILE_INFO _IOWR(ES_SYNC_IOC_MAGIC, 4, struct es_sync_file_info)
#define ES_SYNC_IOC_SET_DEADLINE _IOW(ES_SYNC_IOC_MAGIC, 5, struct es_sync_set_deadline)

static_assert(sizeof(struct es_sync_merge_data) == 48, "sync_merge_data layout");
static_assert(sizeof(struct es_sync_fence_info) == 80, "sync_fence_info layout");
static_assert(sizeof(struct es_sync_file_info) == 56, "sync_file_info layout");
static_assert(ES_SYNC_IOC_MERGE == 0xc0303e03, "SYNC_IOC_MERGE");
static_assert(ES_SYNC_IOC_FILE_INFO == 0xc0383e04, "SYNC_IOC_FILE_INFO");
static_assert(ES_SYNC_IOC_SET_DEADLINE == 0x40103e05, "SYNC_IOC_SET_DEADLINE");

#endif  // EXPLICIT_SYNC_UAPI_SYNC_FILE_H_
