// dma-buf uapi definitions the addon needs, carried here (ES_ prefix) so the build needs no new
// kernel headers. Layouts and numbers from include/uapi/linux/dma-buf.h (EXPORT/IMPORT_SYNC_FILE
// since Linux 6.0) and include/uapi/linux/magic.h.
#ifndef EXPLICIT_SYNC_UAPI_DMA_BUF_H_
#define EXPLICIT_SYNC_UAPI_DMA_BUF_H_

#include <linux/ioctl.h>
#include <linux/types.h>

struct es_dma_buf_sync {
  __u64 flags;
};

#define ES_DMA_BUF_SYNC_READ (1 << 0)
#define ES_DMA_BUF_SYNC_WRITE (2 << 0)
#define ES_DMA_BUF_SYNC_RW (ES_DMA_BUF_SYNC_READ | ES_DMA_BUF_SYNC_WRITE)
#define ES_DMA_BUF_SYNC_START (0 << 2)
#define ES_DMA_BUF_SYNC_END (1 << 2)

struct es_dma_buf_export_sync_file {
  __u32 flags;  // ES_DMA_BUF_SYNC_READ / _WRITE
  __s32 fd;     // out: sync_file fd (O_CLOEXEC)
};

struct es_dma_buf_import_sync_file {
  __u32 flags;  // ES_DMA_BUF_SYNC_READ / _WRITE
  __s32 fd;     // in: sync_file fd (not consumed)
};

#define ES_DMA_BUF_BASE 'b'
#define ES_DMA_BUF_IOCTL_SYNC _IOW(ES_DMA_BUF_BASE, 0, struct es_dma_buf_sync)
#define ES_DMA_BUF_IOCTL_EXPORT_SYNC_FILE _IOWR(ES_DMA_BUF_BASE, 2, struct es_dma_buf_export_sync_file)
#define ES_DMA_BUF_IOCTL_IMPORT_SYNC_FILE _IOW(ES_DMA_BUF_BASE, 3, struct es_dma_buf_import_sync_file)
// DMA_BUF_SET_NAME (Linux >= 5.8): the buffer's name, shown in /proc/PID/fdinfo ("name:") and in
// debugfs dma_buf/bufinfo. The uapi header defines it twice (_IOW with 'const char *' and with
// __u64), both of which encode 8 bytes: the argument is a pointer to a NUL-terminated string of at
// most DMA_BUF_NAME_LEN bytes, NUL included.
#define ES_DMA_BUF_SET_NAME _IOW(ES_DMA_BUF_BASE, 1, __u64)
#define ES_DMA_BUF_NAME_LEN 32

// statfs f_type of the dma-buf pseudo filesystem (Linux >= 5.3; before, dma-bufs were anon inodes).
#define ES_DMA_BUF_MAGIC 0x444d4142  // "DMAB"

static_assert(sizeof(struct es_dma_buf_sync) == 8, "dma_buf_sync layout");
static_assert(sizeof(struct es_dma_buf_export_sync_file) == 8, "dma_buf_export_sync_file layout");
static_assert(ES_DMA_BUF_IOCTL_SYNC == 0x40086200, "DMA_BUF_IOCTL_SYNC");
static_assert(ES_DMA_BUF_IOCTL_EXPORT_SYNC_FILE == 0xc0086202, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE");
static_assert(ES_DMA_BUF_IOCTL_IMPORT_SYNC_FILE == 0x40086203, "DMA_BUF_IOCTL_IMPORT_SYNC_FILE");
static_assert(ES_DMA_BUF_SET_NAME == 0x40086201, "DMA_BUF_SET_NAME_B");

#endif  // EXPLICIT_SYNC_UAPI_DMA_BUF_H_
