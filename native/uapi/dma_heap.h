// dma-heap uapi definitions (ES_ prefix), from include/uapi/linux/dma-heap.h.
#ifndef EXPLICIT_SYNC_UAPI_DMA_HEAP_H_
#define EXPLICIT_SYNC_UAPI_DMA_HEAP_H_

#include <linux/ioctl.h>
#include <linux/types.h>

struct es_dma_heap_allocation_data {
  __u64 len;         // rounded up to the page size by the heap
  __u32 fd;          // out: dma-buf fd
  __u32 fd_flags;    // O_RDWR | O_CLOEXEC (only O_CLOEXEC | O_ACCMODE are valid)
  __u64 heap_flags;  // must be 0
};

#define ES_DMA_HEAP_IOCTL_ALLOC _IOWR('H', 0x0, struct es_dma_heap_allocation_data)

static_assert(sizeof(struct es_dma_heap_allocation_data) == 24, "dma_heap_allocation_data layout");
static_assert(ES_DMA_HEAP_IOCTL_ALLOC == 0xc0184800, "DMA_HEAP_IOCTL_ALLOC");

#endif  // EXPLICIT_SYNC_UAPI_DMA_HEAP_H_
