// The C baseline of `npm run bench`: the same ioctls the library issues, in tight loops, timed with
// clock_gettime(CLOCK_MONOTONIC), warm-up excluded. No libdrm: it uses the project's carried uapi
// headers (native/uapi). bench/run.mjs compiles it statically on the host and runs it in the VM.
//
//   baseline [--iterations N] [--wake N] [--scale 1000,10000,100000] [--cycles N] [--only ops,wake,scale]
//       runs the suite on its own and prints one JSON object on a line, after a marker;
//   baseline --serve [--fire-fds]
//       answers requests on stdin, one per line, so that bench/bench.mjs can alternate C and JS
//       batches of the same operation (both sides then see the same load on a shared machine):
//         op <name> <count>      → "<ns>": the time of <count> back-to-back runs of the operation
//         wake <kind> <rounds>   → "<ns> <ns> ...": one wake latency per round; kind timeline|binary|
//                                  sync_file (signalled by this thread, then polled), or the same
//                                  with _asleep (poll() already asleep when a helper thread signals)
//         fire <what> <arg>      → "<ns>": sleeps FIRE_BEFORE_US, signals the JS side's object and
//                                  answers the clock just before the signal, FIRE_AFTER_US later (so
//                                  that the answer cannot wake the JS loop first). what: timeline
//                                  <point> | binary 0 | vgem <fence id> | eventfd 0, on the fds
//                                  the JS side passed (with --fire-fds) as 3 (timeline), 4 (binary syncobj), 5 (its
//                                  vgem card fd: fence ids are per DRM file) and 6 (eventfd).
//
// Devices, picked the way the library picks them: the first render node with
// DRM_CAP_SYNCOBJ_TIMELINE (Device.open({ require: ['timeline'] })) and the first vgem card node
// (VgemDevice.open()).
#define _GNU_SOURCE
#include <assert.h>  // static_assert, used by the carried headers
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

// native/uapi/drm_syncobj.h is written for C++ and names its structs without `struct` in its
// static_asserts; these typedefs make the same names valid C.
typedef struct es_drm_syncobj_create es_drm_syncobj_create;
typedef struct es_drm_syncobj_destroy es_drm_syncobj_destroy;
typedef struct es_drm_syncobj_handle es_drm_syncobj_handle;
typedef struct es_drm_syncobj_transfer es_drm_syncobj_transfer;
typedef struct es_drm_syncobj_wait es_drm_syncobj_wait;
typedef struct es_drm_syncobj_timeline_wait es_drm_syncobj_timeline_wait;
typedef struct es_drm_syncobj_eventfd es_drm_syncobj_eventfd;
typedef struct es_drm_syncobj_array es_drm_syncobj_array;
typedef struct es_drm_syncobj_timeline_array es_drm_syncobj_timeline_array;

#include "../native/uapi/dma_buf.h"
#include "../native/uapi/drm.h"
#include "../native/uapi/drm_mode.h"
#include "../native/uapi/drm_syncobj.h"
#include "../native/uapi/sync_file.h"
#include "../native/uapi/vgem.h"

#define MARKER "@@explicit-sync-bench:c@@"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char* what) {
  fprintf(stderr, "baseline: %s: %s\n", what, strerror(errno));
  exit(1);
}

// ioctl(2) retried on EINTR/EAGAIN, as the addon's Ioctl() and libdrm's drmIoctl() do.
static int xioctl(int fd, unsigned long req, void* arg) {
  int r;
  do r = ioctl(fd, req, arg);
  while (r == -1 && (errno == EINTR || errno == EAGAIN));
  return r;
}

static void must(int fd, unsigned long req, void* arg, const char* what) {
  if (xioctl(fd, req, arg) == -1) die(what);
}

static long open_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  long n = 0;
  struct dirent* e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;  // the directory's own fd
}

static long rss_bytes(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
  fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

// ---------------------------------------------------------------------------------------------
// Devices

static int drm_driver_is(int fd, const char* name) {
  char buf[64] = {0};
  struct es_drm_version v;
  memset(&v, 0, sizeof(v));
  v.name = buf;
  v.name_len = sizeof(buf) - 1;
  if (xioctl(fd, ES_DRM_IOCTL_VERSION, &v) == -1) return 0;
  return strcmp(buf, name) == 0;
}

static int has_timeline(int fd) {
  struct es_drm_get_cap c = {.capability = ES_DRM_CAP_SYNCOBJ_TIMELINE};
  return xioctl(fd, ES_DRM_IOCTL_GET_CAP, &c) == 0 && c.value != 0;
}

// The lowest-numbered /dev/dri/<prefix>N that `fits`.
static int open_node(const char* prefix, int (*fits)(int)) {
  for (int n = 0; n < 256; n++) {
    char path[64];
    snprintf(path, sizeof(path), "/dev/dri/%s%d", prefix, n);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    if (fits(fd)) return fd;
    close(fd);
  }
  return -1;
}

static int is_vgem(int fd) { return drm_driver_is(fd, "vgem"); }

static int drm_fd = -1;   // render node with timelines (virtio_gpu in the VM)
static int vgem_fd = -1;  // vgem card node

static uint32_t syncobj_create(void) {
  struct es_drm_syncobj_create c = {0};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_CREATE, &c, "SYNCOBJ_CREATE");
  return c.handle;
}

static void syncobj_destroy(uint32_t handle) {
  struct es_drm_syncobj_destroy d = {.handle = handle};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_DESTROY, &d, "SYNCOBJ_DESTROY");
}

static void timeline_signal(uint32_t handle, uint64_t point) {
  struct es_drm_syncobj_timeline_array a = {.handles = (uintptr_t)&handle, .points = (uintptr_t)&point, .count_handles = 1};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, &a, "SYNCOBJ_TIMELINE_SIGNAL");
}

static uint64_t timeline_query(uint32_t handle) {
  uint64_t point = 0;
  struct es_drm_syncobj_timeline_array a = {.handles = (uintptr_t)&handle, .points = (uintptr_t)&point, .count_handles = 1};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_QUERY, &a, "SYNCOBJ_QUERY");
  return point;
}

static void timeline_eventfd(uint32_t handle, uint64_t point, int efd) {
  struct es_drm_syncobj_eventfd e = {.handle = handle, .point = point, .fd = efd};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_EVENTFD, &e, "SYNCOBJ_EVENTFD");
}

static void binary_signal(uint32_t handle) {
  struct es_drm_syncobj_array a = {.handles = (uintptr_t)&handle, .count_handles = 1};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_SIGNAL, &a, "SYNCOBJ_SIGNAL");
}

static void binary_reset(uint32_t handle) {
  struct es_drm_syncobj_array a = {.handles = (uintptr_t)&handle, .count_handles = 1};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_RESET, &a, "SYNCOBJ_RESET");
}

// A handle on this process's drm_fd for a syncobj fd (another process's, passed down).
static uint32_t syncobj_import(int fd) {
  struct es_drm_syncobj_handle h = {.fd = fd};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, &h, "SYNCOBJ_FD_TO_HANDLE");
  return h.handle;
}

struct vgem_buffer {
  uint32_t handle;
  int dmabuf;
};

static struct vgem_buffer vgem_buffer(void) {
  struct es_drm_mode_create_dumb c;
  memset(&c, 0, sizeof(c));
  c.width = 64;
  c.height = 64;
  c.bpp = 32;
  must(vgem_fd, ES_DRM_IOCTL_MODE_CREATE_DUMB, &c, "MODE_CREATE_DUMB");
  struct es_drm_prime_handle p = {.handle = c.handle, .flags = ES_DRM_CLOEXEC | ES_DRM_RDWR, .fd = -1};
  must(vgem_fd, ES_DRM_IOCTL_PRIME_HANDLE_TO_FD, &p, "PRIME_HANDLE_TO_FD");
  return (struct vgem_buffer){c.handle, p.fd};
}

static uint32_t vgem_fence_attach(uint32_t handle) {
  struct es_drm_vgem_fence_attach a = {.handle = handle, .flags = ES_VGEM_FENCE_WRITE};
  must(vgem_fd, ES_DRM_IOCTL_VGEM_FENCE_ATTACH, &a, "VGEM_FENCE_ATTACH");
  return a.out_fence;
}

static void vgem_fence_signal(uint32_t fence) {
  struct es_drm_vgem_fence_signal s = {.fence = fence};
  must(vgem_fd, ES_DRM_IOCTL_VGEM_FENCE_SIGNAL, &s, "VGEM_FENCE_SIGNAL");
}

static int export_sync_file(int dmabuf) {
  struct es_dma_buf_export_sync_file e = {.flags = ES_DMA_BUF_SYNC_READ, .fd = -1};
  must(dmabuf, ES_DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE");
  return e.fd;
}

// ---------------------------------------------------------------------------------------------
// Per-op cost: warm-up, then BATCHES batches; ns/op of the fastest batch and the median batch.

#define BATCHES 10

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

#define BATCH 8  // timelines of the batch ops (N single signals against one array ioctl)

struct op_ctx {
  uint32_t timeline;
  uint64_t next_point;
  uint32_t batch[BATCH];
  uint64_t batch_point;
  struct vgem_buffer buffer;
  int sync_file;
};

static void op_query(struct op_ctx* c) { (void)timeline_query(c->timeline); }

static void op_signal(struct op_ctx* c) { timeline_signal(c->timeline, ++c->next_point); }

static void op_signal_each(struct op_ctx* c) {
  ++c->batch_point;
  for (int i = 0; i < BATCH; i++) timeline_signal(c->batch[i], c->batch_point);
}

// One DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL of BATCH handles.
static void op_signal_all(struct op_ctx* c) {
  uint64_t points[BATCH];
  ++c->batch_point;
  for (int i = 0; i < BATCH; i++) points[i] = c->batch_point;
  struct es_drm_syncobj_timeline_array a = {.handles = (uintptr_t)c->batch, .points = (uintptr_t)points, .count_handles = BATCH};
  must(drm_fd, ES_DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, &a, "SYNCOBJ_TIMELINE_SIGNAL");
}

static void op_create_close(struct op_ctx* c) {
  (void)c;
  syncobj_destroy(syncobj_create());
}

static void op_export_close(struct op_ctx* c) { close(export_sync_file(c->buffer.dmabuf)); }

// SYNC_IOC_FILE_INFO as the uapi asks for the fence list: once for the count, once to fill.
static void op_info(struct op_ctx* c) {
  struct es_sync_file_info fi;
  memset(&fi, 0, sizeof(fi));
  must(c->sync_file, ES_SYNC_IOC_FILE_INFO, &fi, "SYNC_IOC_FILE_INFO");
  struct es_sync_fence_info fences[4];
  uint32_t count = fi.num_fences < 4 ? fi.num_fences : 4;
  memset(fences, 0, sizeof(fences));
  memset(&fi, 0, sizeof(fi));
  fi.num_fences = count;
  fi.sync_fence_info = (uintptr_t)fences;
  must(c->sync_file, ES_SYNC_IOC_FILE_INFO, &fi, "SYNC_IOC_FILE_INFO");
}

static void op_is_signaled(struct op_ctx* c) {
  struct pollfd p = {.fd = c->sync_file, .events = POLLIN};
  if (poll(&p, 1, 0) < 0) die("poll");
}

struct op {
  const char* name;
  void (*fn)(struct op_ctx*);
};

static const struct op OPS[] = {
    {"timeline.query", op_query},
    {"timeline.signal", op_signal},
    {"syncobj.create+close", op_create_close},
    {"dmabuf.exportSyncFile+close", op_export_close},
    {"syncfile.info", op_info},
    {"syncfile.isSignaled", op_is_signaled},
    {"timeline.signal×8", op_signal_each},
    {"Timeline.signalAll(8)", op_signal_all},
};
#define N_OPS (sizeof(OPS) / sizeof(OPS[0]))

static struct op_ctx ops_open(void) {
  struct op_ctx c = {0};
  c.timeline = syncobj_create();
  for (int i = 0; i < BATCH; i++) c.batch[i] = syncobj_create();
  c.buffer = vgem_buffer();
  // A sync_file holding one (signalled) vgem fence, like the JS side's.
  uint32_t fence = vgem_fence_attach(c.buffer.handle);
  c.sync_file = export_sync_file(c.buffer.dmabuf);
  vgem_fence_signal(fence);
  return c;
}

static void vgem_buffer_close(struct vgem_buffer b) {
  close(b.dmabuf);
  struct es_drm_gem_close g = {.handle = b.handle};
  must(vgem_fd, ES_DRM_IOCTL_GEM_CLOSE, &g, "GEM_CLOSE");
}

static void ops_close(struct op_ctx* c) {
  close(c->sync_file);
  vgem_buffer_close(c->buffer);
  for (int i = 0; i < BATCH; i++) syncobj_destroy(c->batch[i]);
  syncobj_destroy(c->timeline);
}

static uint64_t run_op(const struct op* op, struct op_ctx* c, long count) {
  uint64_t t0 = now_ns();
  for (long k = 0; k < count; k++) op->fn(c);
  return now_ns() - t0;
}

static void bench_ops(long iterations) {
  struct op_ctx c = ops_open();
  long batch = iterations / BATCHES > 0 ? iterations / BATCHES : 1;
  long warm = iterations / 10 > 0 ? iterations / 10 : 1;
  printf("\"ops\":{");
  for (size_t i = 0; i < N_OPS; i++) {
    (void)run_op(&OPS[i], &c, warm);
    double per[BATCHES];
    for (int r = 0; r < BATCHES; r++) per[r] = (double)run_op(&OPS[i], &c, batch) / (double)batch;
    qsort(per, BATCHES, sizeof(double), cmp_double);
    printf("%s\"%s\":{\"ns\":%.1f,\"median_ns\":%.1f,\"iterations\":%ld}", i ? "," : "", OPS[i].name, per[0],
           per[BATCHES / 2], batch * BATCHES);
  }
  printf("}");
  ops_close(&c);
}

// ---------------------------------------------------------------------------------------------
// Wake latency: from just before the signalling ioctl until poll() reports the fd readable (and,
// for the eventfd, its counter is read). Setup (eventfd, registration, fence, export) and teardown
// (close) are outside the timed span. Median and 90th percentile over `n` rounds after n/10 warm-up.

static void print_stats(const char* name, double* v, long n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  printf("\"%s\":{\"ns\":%.1f,\"p10_ns\":%.1f,\"p90_ns\":%.1f,\"rounds\":%ld}", name, v[n / 2], v[n / 10], v[n * 9 / 10], n);
}

static void wait_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (poll(&p, 1, -1) < 0)
    if (errno != EINTR) die("poll");
}

// One timeline wake: a fresh eventfd armed for the next point (as wlroots' waiter does), signal,
// poll, read.
static uint64_t wake_timeline(uint32_t tl, uint64_t* point) {
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) die("eventfd");
  timeline_eventfd(tl, ++*point, efd);
  uint64_t t0 = now_ns();
  timeline_signal(tl, *point);
  wait_readable(efd);
  uint64_t count;
  if (read(efd, &count, sizeof(count)) != sizeof(count)) die("read eventfd");
  uint64_t t1 = now_ns();
  close(efd);
  return t1 - t0;
}

// One sync_file wake: a new vgem write fence on the buffer, its sync_file ('read' export), signal,
// poll.
static uint64_t wake_sync_file(struct vgem_buffer b) {
  uint32_t fence = vgem_fence_attach(b.handle);
  int sf = export_sync_file(b.dmabuf);
  uint64_t t0 = now_ns();
  vgem_fence_signal(fence);
  wait_readable(sf);
  uint64_t t1 = now_ns();
  close(sf);
  return t1 - t0;
}

// The signalling side of one wake, run on this thread or on a helper thread (the _asleep kinds):
// sleeps `delay_us` first, then records the clock just before the signalling call.
enum fire_kind { FIRE_TIMELINE, FIRE_BINARY, FIRE_VGEM, FIRE_EVENTFD };
struct fire {
  enum fire_kind kind;
  int fd;  // vgem card fd, or the eventfd (FIRE_EVENTFD)
  uint32_t handle;
  uint64_t point;  // timeline point or vgem fence id
  long delay_us;
  uint64_t t0;
};

static void fire_now(struct fire* f) {
  if (f->delay_us > 0) usleep((useconds_t)f->delay_us);
  f->t0 = now_ns();
  switch (f->kind) {
    case FIRE_TIMELINE: timeline_signal(f->handle, f->point); break;
    case FIRE_BINARY: binary_signal(f->handle); break;
    case FIRE_VGEM: {
      struct es_drm_vgem_fence_signal s = {.fence = (uint32_t)f->point};
      must(f->fd, ES_DRM_IOCTL_VGEM_FENCE_SIGNAL, &s, "VGEM_FENCE_SIGNAL");
      break;
    }
    case FIRE_EVENTFD: {
      uint64_t one = 1;
      if (write(f->fd, &one, sizeof(one)) != sizeof(one)) die("write eventfd");
      break;
    }
  }
}

static void* fire_thread(void* arg) {
  fire_now(arg);
  return NULL;
}

// How long the helper thread lets poll() fall asleep before it signals (the _asleep kinds).
#define ASLEEP_US 1000

// Starts `f` on a helper thread (asleep) or runs it here (busy); then waits for `fd` readable.
static uint64_t fire_and_poll(struct fire* f, int asleep, int fd) {
  pthread_t t;
  if (asleep) {
    f->delay_us = ASLEEP_US;
    if (pthread_create(&t, NULL, fire_thread, f) != 0) die("pthread_create");
  } else {
    f->delay_us = 0;
    fire_now(f);
  }
  wait_readable(fd);
  uint64_t t1 = now_ns();
  if (asleep && pthread_join(t, NULL) != 0) die("pthread_join");
  return t1;
}

// One binary syncobj wake: reset (no fence), an eventfd armed for its next fence (point 0), signal
// (SYNCOBJ_SIGNAL puts a signalled fence), poll, read.
static uint64_t wake_binary(uint32_t obj, int asleep) {
  binary_reset(obj);
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) die("eventfd");
  timeline_eventfd(obj, 0, efd);
  struct fire f = {.kind = FIRE_BINARY, .handle = obj};
  uint64_t t1 = fire_and_poll(&f, asleep, efd);
  uint64_t count;
  if (read(efd, &count, sizeof(count)) != sizeof(count)) die("read eventfd");
  t1 = now_ns();
  close(efd);
  return t1 - f.t0;
}

static uint64_t wake_timeline_asleep(uint32_t tl, uint64_t* point) {
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) die("eventfd");
  timeline_eventfd(tl, ++*point, efd);
  struct fire f = {.kind = FIRE_TIMELINE, .handle = tl, .point = *point};
  (void)fire_and_poll(&f, 1, efd);
  uint64_t count;
  if (read(efd, &count, sizeof(count)) != sizeof(count)) die("read eventfd");
  uint64_t t1 = now_ns();
  close(efd);
  return t1 - f.t0;
}

static uint64_t wake_sync_file_asleep(struct vgem_buffer b) {
  uint32_t fence = vgem_fence_attach(b.handle);
  int sf = export_sync_file(b.dmabuf);
  struct fire f = {.kind = FIRE_VGEM, .fd = vgem_fd, .point = fence};
  uint64_t t1 = fire_and_poll(&f, 1, sf);
  close(sf);
  return t1 - f.t0;
}

static void bench_wake(long n) {
  long warm = n / 10 > 0 ? n / 10 : 1;
  double* v = calloc((size_t)n, sizeof(double));
  if (!v) die("calloc");
  uint32_t tl = syncobj_create();
  uint64_t point = 0;
  for (long i = -warm; i < n; i++) {
    uint64_t ns = wake_timeline(tl, &point);
    if (i >= 0) v[i] = (double)ns;
  }
  syncobj_destroy(tl);
  printf("\"wake\":{");
  print_stats("timeline", v, n);
  struct vgem_buffer b = vgem_buffer();
  for (long i = -warm; i < n; i++) {
    uint64_t ns = wake_sync_file(b);
    if (i >= 0) v[i] = (double)ns;
  }
  vgem_buffer_close(b);
  printf(",");
  print_stats("sync_file", v, n);
  uint32_t bin = syncobj_create();
  for (long i = -warm; i < n; i++) {
    uint64_t ns = wake_binary(bin, 0);
    if (i >= 0) v[i] = (double)ns;
  }
  syncobj_destroy(bin);
  printf(",");
  print_stats("binary", v, n);
  printf("}");
  free(v);
}

// --serve: see the top of this file. Objects live for the whole session.
static const char* const WAKE_KINDS[] = {"timeline", "sync_file", "binary", "timeline_asleep", "sync_file_asleep", "binary_asleep"};

static int is_wake_kind(const char* kind) {
  for (size_t i = 0; i < sizeof(WAKE_KINDS) / sizeof(WAKE_KINDS[0]); i++)
    if (!strcmp(kind, WAKE_KINDS[i])) return 1;
  return 0;
}

// One wake of `kind` (one of WAKE_KINDS) on this process's own objects.
static long long wake_one(const char* kind, uint32_t tl, uint64_t* point, uint32_t bin, struct vgem_buffer b) {
  if (!strcmp(kind, "timeline")) return (long long)wake_timeline(tl, point);
  if (!strcmp(kind, "sync_file")) return (long long)wake_sync_file(b);
  if (!strcmp(kind, "binary")) return (long long)wake_binary(bin, 0);
  if (!strcmp(kind, "timeline_asleep")) return (long long)wake_timeline_asleep(tl, point);
  if (!strcmp(kind, "sync_file_asleep")) return (long long)wake_sync_file_asleep(b);
  if (!strcmp(kind, "binary_asleep")) return (long long)wake_binary(bin, 1);
  return -1;
}

#define FIRE_BEFORE_US 1000
#define FIRE_AFTER_US 8000

static int serve(int fire_fds) {
  struct op_ctx c = ops_open();
  uint32_t tl = syncobj_create();
  uint32_t bin = syncobj_create();
  uint64_t point = 0;
  struct vgem_buffer b = vgem_buffer();
  // The JS side's objects, for `fire` (see the top of this file).
  uint32_t js_timeline = fire_fds ? syncobj_import(3) : 0;
  uint32_t js_binary = fire_fds ? syncobj_import(4) : 0;
  char line[256], kind[64];
  long count;
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof(line), stdin) != NULL) {
    if (sscanf(line, "op %63s %ld", kind, &count) == 2) {
      const struct op* op = NULL;
      for (size_t i = 0; i < N_OPS; i++)
        if (!strcmp(OPS[i].name, kind)) op = &OPS[i];
      if (op == NULL) {
        printf("error unknown op %s\n", kind);
        continue;
      }
      printf("%llu\n", (unsigned long long)run_op(op, &c, count));
    } else if (sscanf(line, "wake %63s %ld", kind, &count) == 2 && is_wake_kind(kind)) {
      for (long i = 0; i < count; i++) printf("%s%lld", i ? " " : "", wake_one(kind, tl, &point, bin, b));
      printf("\n");
    } else if (sscanf(line, "fire %63s %ld", kind, &count) == 2) {
      struct fire f = {.delay_us = FIRE_BEFORE_US, .point = (uint64_t)count};
      if (!strcmp(kind, "timeline") && js_timeline) f.kind = FIRE_TIMELINE, f.handle = js_timeline;
      else if (!strcmp(kind, "binary") && js_binary) f.kind = FIRE_BINARY, f.handle = js_binary;
      else if (!strcmp(kind, "vgem") && fire_fds) f.kind = FIRE_VGEM, f.fd = 5;
      else if (!strcmp(kind, "eventfd") && fire_fds) f.kind = FIRE_EVENTFD, f.fd = 6;
      else {
        printf("error cannot fire %s\n", kind);
        continue;
      }
      fire_now(&f);
      usleep(FIRE_AFTER_US);
      printf("%llu\n", (unsigned long long)f.t0);
    } else {
      printf("error bad request\n");
    }
  }
  vgem_buffer_close(b);
  syncobj_destroy(bin);
  syncobj_destroy(tl);
  ops_close(&c);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Scale: `count` pending waits on one timeline (points 1..count), all resolved by one signal, with
// one eventfd armed for the lowest point, as the library coalesces them. fds and RSS are measured
// while every wait is pending, relative to just before the batch.

struct waiter {
  uint64_t point;
  int done;
};

static void bench_scale_one(long count) {
  uint32_t tl = syncobj_create();
  long fd0 = open_fds(), rss0 = rss_bytes();
  uint64_t t0 = now_ns();
  struct waiter* w = malloc((size_t)count * sizeof(*w));
  if (!w) die("malloc");
  for (long i = 0; i < count; i++) w[i] = (struct waiter){(uint64_t)i + 1, 0};
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) die("eventfd");
  timeline_eventfd(tl, 1, efd);
  uint64_t t1 = now_ns();
  long fds = open_fds() - fd0, rss = rss_bytes() - rss0;
  uint64_t t2 = now_ns();
  timeline_signal(tl, (uint64_t)count);
  struct pollfd p = {.fd = efd, .events = POLLIN};
  while (poll(&p, 1, -1) < 0)
    if (errno != EINTR) die("poll");
  uint64_t n;
  if (read(efd, &n, sizeof(n)) != sizeof(n)) die("read eventfd");
  uint64_t level = timeline_query(tl);
  long resolved = 0;
  for (long i = 0; i < count; i++)
    if (!w[i].done && w[i].point <= level) w[i].done = 1, resolved++;
  uint64_t t3 = now_ns();
  close(efd);
  free(w);
  syncobj_destroy(tl);
  if (resolved != count) {
    fprintf(stderr, "baseline: scale %ld: only %ld resolved\n", count, resolved);
    exit(1);
  }
  printf("\"%ld\":{\"fds\":%ld,\"rss_bytes\":%ld,\"setup_ns\":%llu,\"resolve_ns\":%llu,\"total_ns\":%llu}", count, fds, rss,
         (unsigned long long)(t1 - t0), (unsigned long long)(t3 - t2), (unsigned long long)((t1 - t0) + (t3 - t2)));
}

// `cycles` timeline create/destroy pairs: open fds and RSS before and after.
static void bench_cycles(long cycles) {
  long fd0 = open_fds(), rss0 = rss_bytes();
  uint64_t t0 = now_ns();
  for (long i = 0; i < cycles; i++) syncobj_destroy(syncobj_create());
  uint64_t t1 = now_ns();
  printf("\"cycles\":{\"count\":%ld,\"ns\":%llu,\"fds_start\":%ld,\"fds_end\":%ld,\"rss_start\":%ld,\"rss_end\":%ld}", cycles,
         (unsigned long long)(t1 - t0), fd0, open_fds(), rss0, rss_bytes());
}

// ---------------------------------------------------------------------------------------------

static int wants(const char* only, const char* part) {
  if (!only) return 1;
  size_t len = strlen(part);
  for (const char* s = only; (s = strstr(s, part)) != NULL; s += len)
    if ((s == only || s[-1] == ',') && (s[len] == ',' || s[len] == '\0')) return 1;
  return 0;
}

int main(int argc, char** argv) {
  long iterations = 20000, wake = 200, cycles = 1000000;
  const char* scale = "1000,10000,100000";
  const char* only = NULL;
  int serving = argc >= 2 && !strcmp(argv[1], "--serve");
  int fire_fds = serving && argc == 3 && !strcmp(argv[2], "--fire-fds");
  for (int i = 1; !serving && i < argc; i += 2) {
    if (i + 1 >= argc) {
      fprintf(stderr, "baseline: %s needs a value\n", argv[i]);
      return 2;
    }
    if (!strcmp(argv[i], "--iterations")) iterations = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--wake")) wake = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--scale")) scale = argv[i + 1];
    else if (!strcmp(argv[i], "--cycles")) cycles = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
    else {
      fprintf(stderr, "baseline: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  drm_fd = open_node("renderD", has_timeline);
  if (drm_fd < 0) drm_fd = open_node("card", has_timeline);
  vgem_fd = open_node("card", is_vgem);
  if (drm_fd < 0 || vgem_fd < 0) {
    fprintf(stderr, "baseline: needs a DRM node with timeline syncobjs and a vgem card node (run it in the VM)\n");
    return 1;
  }
  if (serving) return serve(fire_fds);

  printf(MARKER " {");
  int first = 1;
  if (wants(only, "ops")) {
    bench_ops(iterations);
    first = 0;
  }
  if (wants(only, "wake")) {
    if (!first) printf(",");
    bench_wake(wake);
    first = 0;
  }
  if (wants(only, "scale")) {
    if (!first) printf(",");
    printf("\"scale\":{\"waits\":{");
    char* list = strdup(scale);
    int k = 0;
    for (char* tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
      if (k++) printf(",");
      bench_scale_one(atol(tok));
    }
    free(list);
    printf("}");
    if (cycles > 0) {
      printf(",");
      bench_cycles(cycles);
    }
    printf("}");
    first = 0;
  }
  printf("}\n");
  return 0;
}
