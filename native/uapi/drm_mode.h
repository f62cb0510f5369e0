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


// ---- Mode-object (KMS) ioctls, for native/kms.cc. Layouts from include/uapi/drm/drm_mode.h and the
// ioctl numbers from include/uapi/drm/drm.h (Linux 6.12), checked below by size and number.
#define ES_DRM_DISPLAY_MODE_LEN 32
#define ES_DRM_PROP_NAME_LEN 32

struct es_drm_mode_card_res {
  __u64 fb_id_ptr;
  __u64 crtc_id_ptr;
  __u64 connector_id_ptr;
  __u64 encoder_id_ptr;
  __u32 count_fbs;
  __u32 count_crtcs;
  __u32 count_connectors;
  __u32 count_encoders;
  __u32 min_width;
  __u32 max_width;
  __u32 min_height;
  __u32 max_height;
};

struct es_drm_mode_modeinfo {
  __u32 clock;
  __u16 hdisplay, hsync_start, hsync_end, htotal, hskew;
  __u16 vdisplay, vsync_start, vsync_end, vtotal, vscan;
  __u32 vrefresh;
  __u32 flags;
  __u32 type;
  char name[ES_DRM_DISPLAY_MODE_LEN];
};

struct es_drm_mode_crtc {
  __u64 set_connectors_ptr;
  __u32 count_connectors;
  __u32 crtc_id;
  __u32 fb_id;
  __u32 x;
  __u32 y;
  __u32 gamma_size;
  __u32 mode_valid;
  struct es_drm_mode_modeinfo mode;
};

struct es_drm_mode_get_encoder {
  __u32 encoder_id;
  __u32 encoder_type;
  __u32 crtc_id;
  __u32 possible_crtcs;
  __u32 possible_clones;
};

struct es_drm_mode_get_connector {
  __u64 encoders_ptr;
  __u64 modes_ptr;
  __u64 props_ptr;
  __u64 prop_values_ptr;
  __u32 count_modes;
  __u32 count_props;
  __u32 count_encoders;
  __u32 encoder_id;
  __u32 connector_id;
  __u32 connector_type;
  __u32 connector_type_id;
  __u32 connection;  // 1 connected, 2 disconnected, 3 unknown
  __u32 mm_width;
  __u32 mm_height;
  __u32 subpixel;
  __u32 pad;
};

struct es_drm_mode_get_property {
  __u64 values_ptr;
  __u64 enum_blob_ptr;
  __u32 prop_id;
  __u32 flags;
  char name[ES_DRM_PROP_NAME_LEN];
  __u32 count_values;
  __u32 count_enum_blobs;
};

struct es_drm_mode_property_enum {
  __u64 value;
  char name[ES_DRM_PROP_NAME_LEN];
};

struct es_drm_mode_get_plane_res {
  __u64 plane_id_ptr;
  __u32 count_planes;
};

struct es_drm_mode_get_plane {
  __u32 plane_id;
  __u32 crtc_id;
  __u32 fb_id;
  __u32 possible_crtcs;
  __u32 gamma_size;
  __u32 count_format_types;
  __u64 format_type_ptr;
};

struct es_drm_mode_obj_get_properties {
  __u64 props_ptr;
  __u64 prop_values_ptr;
  __u32 count_props;
  __u32 obj_id;
  __u32 obj_type;
};

struct es_drm_mode_fb_cmd2 {
  __u32 fb_id;
  __u32 width;
  __u32 height;
  __u32 pixel_format;  // fourcc
  __u32 flags;         // DRM_MODE_FB_MODIFIERS when modifier[] is meaningful
  __u32 handles[4];
  __u32 pitches[4];
  __u32 offsets[4];
  __u64 modifier[4];
};

struct es_drm_mode_atomic {
  __u32 flags;
  __u32 count_objs;
  __u64 objs_ptr;
  __u64 count_props_ptr;
  __u64 props_ptr;
  __u64 prop_values_ptr;
  __u64 reserved;
  __u64 user_data;
};

struct es_drm_mode_create_blob {
  __u64 data;
  __u32 length;
  __u32 blob_id;
};

struct es_drm_mode_destroy_blob {
  __u32 blob_id;
};

struct es_drm_mode_get_blob {
  __u32 blob_id;
  __u32 length;
  __u64 data;
};

// What read(2) on a DRM fd returns: a sequence of events, each starting with this header.
struct es_drm_event {
  __u32 type;
  __u32 length;
};

struct es_drm_event_vblank {
  struct es_drm_event base;
  __u64 user_data;
  __u32 tv_sec;
  __u32 tv_usec;
  __u32 sequence;
  __u32 crtc_id;
};

#define ES_DRM_IOCTL_MODE_GETRESOURCES ES_DRM_IOWR(0xA0, struct es_drm_mode_card_res)
#define ES_DRM_IOCTL_MODE_GETCRTC ES_DRM_IOWR(0xA1, struct es_drm_mode_crtc)
#define ES_DRM_IOCTL_MODE_GETENCODER ES_DRM_IOWR(0xA6, struct es_drm_mode_get_encoder)
#define ES_DRM_IOCTL_MODE_GETCONNECTOR ES_DRM_IOWR(0xA7, struct es_drm_mode_get_connector)
#define ES_DRM_IOCTL_MODE_GETPROPERTY ES_DRM_IOWR(0xAA, struct es_drm_mode_get_property)
#define ES_DRM_IOCTL_MODE_GETPROPBLOB ES_DRM_IOWR(0xAC, struct es_drm_mode_get_blob)
#define ES_DRM_IOCTL_MODE_RMFB ES_DRM_IOWR(0xAF, unsigned int)
#define ES_DRM_IOCTL_MODE_GETPLANERESOURCES ES_DRM_IOWR(0xB5, struct es_drm_mode_get_plane_res)
#define ES_DRM_IOCTL_MODE_GETPLANE ES_DRM_IOWR(0xB6, struct es_drm_mode_get_plane)
#define ES_DRM_IOCTL_MODE_ADDFB2 ES_DRM_IOWR(0xB8, struct es_drm_mode_fb_cmd2)
#define ES_DRM_IOCTL_MODE_OBJ_GETPROPERTIES ES_DRM_IOWR(0xB9, struct es_drm_mode_obj_get_properties)
#define ES_DRM_IOCTL_MODE_ATOMIC ES_DRM_IOWR(0xBC, struct es_drm_mode_atomic)
#define ES_DRM_IOCTL_MODE_CREATEPROPBLOB ES_DRM_IOWR(0xBD, struct es_drm_mode_create_blob)
#define ES_DRM_IOCTL_MODE_DESTROYPROPBLOB ES_DRM_IOWR(0xBE, struct es_drm_mode_destroy_blob)

// DRM_IOCTL_SET_CLIENT_CAP capabilities.
#define ES_DRM_CLIENT_CAP_UNIVERSAL_PLANES 2
#define ES_DRM_CLIENT_CAP_ATOMIC 3
#define ES_DRM_CLIENT_CAP_WRITEBACK_CONNECTORS 5

// Mode object types (DRM_MODE_OBJECT_*).
#define ES_DRM_MODE_OBJECT_CRTC 0xcccccccc
#define ES_DRM_MODE_OBJECT_CONNECTOR 0xc0c0c0c0
#define ES_DRM_MODE_OBJECT_ENCODER 0xe0e0e0e0
#define ES_DRM_MODE_OBJECT_PROPERTY 0xb0b0b0b0
#define ES_DRM_MODE_OBJECT_FB 0xfbfbfbfb
#define ES_DRM_MODE_OBJECT_BLOB 0xbbbbbbbb
#define ES_DRM_MODE_OBJECT_PLANE 0xeeeeeeee

// Property flags (DRM_MODE_PROP_*).
#define ES_DRM_MODE_PROP_PENDING (1 << 0)
#define ES_DRM_MODE_PROP_RANGE (1 << 1)
#define ES_DRM_MODE_PROP_IMMUTABLE (1 << 2)
#define ES_DRM_MODE_PROP_ENUM (1 << 3)
#define ES_DRM_MODE_PROP_BLOB (1 << 4)
#define ES_DRM_MODE_PROP_BITMASK (1 << 5)
#define ES_DRM_MODE_PROP_EXTENDED_TYPE 0x0000ffc0
#define ES_DRM_MODE_PROP_OBJECT (1 << 6)
#define ES_DRM_MODE_PROP_SIGNED_RANGE (2 << 6)
#define ES_DRM_MODE_PROP_ATOMIC 0x80000000

// DRM_IOCTL_MODE_ATOMIC flags.
#define ES_DRM_MODE_PAGE_FLIP_EVENT 0x01
#define ES_DRM_MODE_ATOMIC_TEST_ONLY 0x0100
#define ES_DRM_MODE_ATOMIC_NONBLOCK 0x0200
#define ES_DRM_MODE_ATOMIC_ALLOW_MODESET 0x0400

// drm_event types.
#define ES_DRM_EVENT_VBLANK 0x01
#define ES_DRM_EVENT_FLIP_COMPLETE 0x02

static_assert(sizeof(struct es_drm_mode_card_res) == 64, "drm_mode_card_res layout");
static_assert(sizeof(struct es_drm_mode_modeinfo) == 68, "drm_mode_modeinfo layout");
static_assert(sizeof(struct es_drm_mode_crtc) == 104, "drm_mode_crtc layout");
static_assert(sizeof(struct es_drm_mode_get_encoder) == 20, "drm_mode_get_encoder layout");
static_assert(sizeof(struct es_drm_mode_get_connector) == 80, "drm_mode_get_connector layout");
static_assert(sizeof(struct es_drm_mode_get_property) == 64, "drm_mode_get_property layout");
static_assert(sizeof(struct es_drm_mode_property_enum) == 40, "drm_mode_property_enum layout");
static_assert(sizeof(struct es_drm_mode_get_plane_res) == 16, "drm_mode_get_plane_res layout");
static_assert(sizeof(struct es_drm_mode_get_plane) == 32, "drm_mode_get_plane layout");
static_assert(sizeof(struct es_drm_mode_obj_get_properties) == 32, "drm_mode_obj_get_properties layout");
static_assert(sizeof(struct es_drm_mode_fb_cmd2) == 104, "drm_mode_fb_cmd2 layout");
static_assert(sizeof(struct es_drm_mode_atomic) == 56, "drm_mode_atomic layout");
static_assert(sizeof(struct es_drm_mode_create_blob) == 16, "drm_mode_create_blob layout");
static_assert(sizeof(struct es_drm_mode_get_blob) == 16, "drm_mode_get_blob layout");
static_assert(sizeof(struct es_drm_event_vblank) == 32, "drm_event_vblank layout");

#endif  // EXPLICIT_SYNC_UAPI_DRM_MODE_H_
