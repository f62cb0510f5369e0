// udmabuf uapi definitions (ES_ prefix), from include/uapi/linux/udmabuf.h.
#ifndef EXPLICIT_SYNC_UAPI_UDMABUF_H_
#define EXPLICIT_SYNC_UAPI_UDMABUF_H_

#include <linux/ioctl.h>
#include <linux/types.h>

#define ES_UDMABUF_FLAGS_CLOEXEC 0x01

struct es_udmabuf_create {
  __u32 memfd;   // a memfd sealed with F_SEAL_SHRINK (and not F_SEAL_WRITE)
  __u32 flags;   // ES_UDMABUF_FLAGS_CLOEXEC
  __u64 offset;  // page aligned
  __u64 size;    // page aligned
};

#define ES_UDMABUF_CREATE _IOW('u', 0x42, struct es_udmabuf_create)

static_assert(sizeof(struct es_udmabuf_create) == 24, "udmabuf_create layout");
static_assert(ES_UDMABUF_CREATE == 0x40187542, "UDMABUF_CREATE");

#endif  // EXPLICIT_SYNC_UAPI_UDMABUF_H_
