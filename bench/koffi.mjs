// The FFI peer of `npm run bench`: what a user would write without this library — koffi calling
// libc's ioctl() on koffi.alloc'd memory, the uapi structs laid out by hand (offsets below, from
// native/uapi/*.h), the same ioctls and the same semantics as the library's calls (the signal checks
// the last submitted point first; info() decodes every fence; errors throw with errno). Waits are
// what koffi offers for a blocking call: an async call, which blocks a thread of libuv's pool
// (TIMELINE_WAIT / SYNCOBJ_WAIT with WAIT_FOR_SUBMIT and no timeout, poll(2) for a sync_file).
//
// Also the floor's plumbing: eventfd(2), write(2) for the eventfd the floor's uv_poll watches.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const koffi = require('koffi');

const libc = koffi.load('libc.so.6');
const ioctl = libc.func('int ioctl(int fd, unsigned long request, void *arg)');
const closeFn = libc.func('int close(int fd)');
const pollFn = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
const eventfdFn = libc.func('int eventfd(unsigned int initval, int flags)');

// _IOWR(type, nr, size) on x86-64/arm64 (asm-generic/ioctl.h): dir 3 << 30 | size << 16 | type << 8 | nr.
const iowr = (type, nr, size) => (3 * 2 ** 30 + size * 65536 + type.charCodeAt(0) * 256 + nr);
const DRM_IOCTL_SYNCOBJ_CREATE = iowr('d', 0xbf, 8);
const DRM_IOCTL_SYNCOBJ_DESTROY = iowr('d', 0xc0, 8);
const DRM_IOCTL_SYNCOBJ_WAIT = iowr('d', 0xc3, 40);
const DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT = iowr('d', 0xca, 48);
const DRM_IOCTL_SYNCOBJ_QUERY = iowr('d', 0xcb, 24);
const DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL = iowr('d', 0xcd, 24);
const DMA_BUF_IOCTL_EXPORT_SYNC_FILE = iowr('b', 2, 8);
const SYNC_IOC_FILE_INFO = iowr('>', 4, 56);
const WAIT_FOR_SUBMIT = 1 << 1;
const QUERY_LAST_SUBMITTED = 1 << 0;
const DMA_BUF_SYNC_READ = 1;
const POLLIN = 1;
const INT64_MAX = (1n << 63n) - 1n;
const EINTR = 4;
const EAGAIN = 11;

/** Memory for one struct (and its arrays), with typed views on it. */
function block(bytes) {
  const ptr = koffi.alloc('uint8_t', bytes);
  const buf = koffi.view(ptr, bytes);
  return { ptr, addr: koffi.address(ptr), u32: new Uint32Array(buf), i32: new Int32Array(buf), u64: new BigUint64Array(buf), i64: new BigInt64Array(buf), u8: new Uint8Array(buf) };
}

class KoffiError extends Error {
  constructor(call, errno) {
    super(`${call} failed: errno ${errno}`);
    this.errno = -errno;
    this.syscall = call;
  }
}

/** ioctl(2) retried on EINTR/EAGAIN, as the library's and libdrm's are; throws with errno. */
function xioctl(fd, req, ptr, call) {
  for (;;) {
    if (ioctl(fd, req, ptr) !== -1) return;
    const e = koffi.errno();
    if (e !== EINTR && e !== EAGAIN) throw new KoffiError(call, e);
  }
}

const latin1 = new TextDecoder('latin1');
function cString(u8, off, max) {
  let end = off;
  while (end < off + max && u8[end] !== 0) end++;
  return latin1.decode(u8.subarray(off, end));
}

const decodeStatus = (raw) => (raw > 0 ? 'signaled' : raw === 0 ? 'active' : 'error');

/** Per-op calls on one DRM fd: the peers of the library's calls in bench.mjs's benchOps. */
export class KoffiOps {
  #drm;
  // struct drm_syncobj_timeline_array {u64 handles, u64 points, u32 count, u32 flags} + handle + point.
  #tl = block(24 + 8 + 8);
  // struct drm_syncobj_create / destroy {u32 handle, u32 flags|pad}.
  #create = block(8);
  // struct dma_buf_export_sync_file {u32 flags, s32 fd}.
  #export = block(8);
  // struct sync_file_info (56) + room for 8 sync_fence_info (80 each).
  #info = block(56 + 8 * 80);
  // struct pollfd {s32 fd, s16 events, s16 revents}.
  #poll = block(8);
  // signalAll's array: timeline_array, then handles, points, last submitted points.
  #many;

  constructor(drmFd) {
    this.#drm = drmFd;
    const t = this.#tl;
    t.u64[0] = t.addr + 24n; // handles
    t.u64[1] = t.addr + 32n; // points
    t.u32[4] = 1; // count_handles
  }

  createSyncobj() {
    const c = this.#create;
    c.u32[0] = 0;
    c.u32[1] = 0;
    xioctl(this.#drm, DRM_IOCTL_SYNCOBJ_CREATE, c.ptr, 'DRM_IOCTL_SYNCOBJ_CREATE');
    return c.u32[0];
  }

  destroySyncobj(handle) {
    const c = this.#create;
    c.u32[0] = handle;
    c.u32[1] = 0;
    xioctl(this.#drm, DRM_IOCTL_SYNCOBJ_DESTROY, c.ptr, 'DRM_IOCTL_SYNCOBJ_DESTROY');
  }

  /** timeline.query(): DRM_IOCTL_SYNCOBJ_QUERY of one handle. */
  query(handle, flags = 0) {
    const t = this.#tl;
    t.u32[5] = flags;
    t.u32[6] = handle;
    t.u64[4] = 0n;
    xioctl(this.#drm, DRM_IOCTL_SYNCOBJ_QUERY, t.ptr, 'DRM_IOCTL_SYNCOBJ_QUERY');
    return t.u64[4];
  }

  /** timeline.signal(p): the last submitted point first (points only grow), then TIMELINE_SIGNAL. */
  signal(handle, point) {
    if (point <= this.query(handle, QUERY_LAST_SUBMITTED)) throw new RangeError(`point ${point} is not above the last submitted one`);
    const t = this.#tl;
    t.u32[5] = 0;
    t.u32[6] = handle;
    t.u64[4] = point;
    xioctl(this.#drm, DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, t.ptr, 'DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL');
  }

  /**
   * Timeline.signalAll(): one QUERY (last submitted) of every handle, the order check, one
   * TIMELINE_SIGNAL of every handle; `handles` a Uint32Array, `points` a BigUint64Array.
   */
  signalAll(handles, points) {
    const n = handles.length;
    const hBytes = Math.ceil(n / 2) * 8; // the handles, padded to 8 bytes
    const m = (this.#many ??= { cap: 0 });
    if (m.cap < n) Object.assign(m, { cap: n, b: block(24 + hBytes + n * 16) });
    const b = m.b;
    const h = new Uint32Array(b.u8.buffer, 24, n);
    const p = new BigUint64Array(b.u8.buffer, 24 + hBytes, n);
    const last = new BigUint64Array(b.u8.buffer, 24 + hBytes + n * 8, n);
    h.set(handles);
    b.u64[0] = b.addr + 24n;
    b.u64[1] = b.addr + BigInt(24 + hBytes + n * 8);
    b.u32[4] = n;
    b.u32[5] = QUERY_LAST_SUBMITTED;
    xioctl(this.#drm, DRM_IOCTL_SYNCOBJ_QUERY, b.ptr, 'DRM_IOCTL_SYNCOBJ_QUERY');
    for (let i = 0; i < n; i++) if (points[i] <= last[i]) throw new RangeError(`point ${points[i]} is not above the last submitted one`);
    p.set(points);
    b.u64[1] = b.addr + BigInt(24 + hBytes);
    b.u32[5] = 0;
    xioctl(this.#drm, DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, b.ptr, 'DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL');
  }

  /** dmaBuf.exportSyncFile('read'): the new sync_file's fd. */
  exportSyncFile(dmabufFd) {
    const e = this.#export;
    e.u32[0] = DMA_BUF_SYNC_READ;
    e.i32[1] = -1;
    xioctl(dmabufFd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, e.ptr, 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
    return e.i32[1];
  }

  close(fd) {
    if (closeFn(fd) !== 0) throw new KoffiError('close', koffi.errno());
  }

  /** syncFile.info(): SYNC_IOC_FILE_INFO for the count, then to fill; decoded like the library's. */
  info(fd) {
    const f = this.#info;
    f.u8.fill(0, 0, 56);
    xioctl(fd, SYNC_IOC_FILE_INFO, f.ptr, 'SYNC_IOC_FILE_INFO');
    const count = Math.min(f.u32[10], 8);
    f.u8.fill(0, 0, 56 + count * 80);
    f.u32[10] = count;
    f.u64[6] = f.addr + 56n;
    xioctl(fd, SYNC_IOC_FILE_INFO, f.ptr, 'SYNC_IOC_FILE_INFO');
    const fences = [];
    for (let i = 0, off = 56; i < count; i++, off += 80) {
      const raw = f.i32[(off + 64) >> 2];
      fences.push({
        driver: cString(f.u8, off + 32, 32),
        timeline: cString(f.u8, off, 32),
        status: decodeStatus(raw),
        error: raw < 0 ? raw : undefined,
        timestampNs: raw !== 0 ? f.u64[(off + 72) >> 3] : undefined,
      });
    }
    const raw = f.i32[8];
    return { name: cString(f.u8, 0, 32), status: decodeStatus(raw), error: raw < 0 ? raw : undefined, fences };
  }

  /** syncFile.isSignaled(): poll(2) with a zero timeout. */
  isSignaled(fd) {
    const p = this.#poll;
    p.i32[0] = fd;
    p.u32[1] = POLLIN;
    const r = pollFn(p.ptr, 1, 0);
    if (r < 0) throw new KoffiError('poll', koffi.errno());
    return r > 0;
  }
}

/** `mem`: the struct the call points into, kept reachable until the call returns. */
function asyncCall(fn, args, call, mem) {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err, r) => {
      void mem;
      if (err) reject(err);
      else if (r < 0) reject(new KoffiError(call, koffi.errno()));
      else resolve(r);
    });
  });
}

/**
 * A blocking wait on a thread of libuv's pool (koffi's async call), with memory of its own so that
 * any number can be pending. Returns the promise; throws at once when koffi refuses the call.
 */
export function waitTimeline(drmFd, handle, point) {
  // struct drm_syncobj_timeline_wait {u64 handles, u64 points, s64 timeout, u32 count, u32 flags,
  // u32 first_signaled, u32 pad, u64 deadline} + handle + point.
  const w = block(48 + 8 + 8);
  w.u64[0] = w.addr + 48n;
  w.u64[1] = w.addr + 56n;
  w.i64[2] = INT64_MAX;
  w.u32[6] = 1;
  w.u32[7] = WAIT_FOR_SUBMIT;
  w.u32[12] = handle;
  w.u64[7] = BigInt(point);
  return asyncCall(ioctl, [drmFd, DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, w.ptr], 'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT', w);
}

/** SYNCOBJ_WAIT (binary syncobj, WAIT_FOR_SUBMIT, no timeout) on the pool. */
export function waitBinary(drmFd, handle) {
  // struct drm_syncobj_wait {u64 handles, s64 timeout, u32 count, u32 flags, u32 first_signaled,
  // u32 pad, u64 deadline} + handle.
  const w = block(40 + 8);
  w.u64[0] = w.addr + 40n;
  w.i64[1] = INT64_MAX;
  w.u32[4] = 1;
  w.u32[5] = WAIT_FOR_SUBMIT;
  w.u32[10] = handle;
  return asyncCall(ioctl, [drmFd, DRM_IOCTL_SYNCOBJ_WAIT, w.ptr], 'DRM_IOCTL_SYNCOBJ_WAIT', w);
}

/** poll(2) of a sync_file for readability, no timeout, on the pool. */
export function waitSyncFile(fd) {
  const p = block(8);
  p.i32[0] = fd;
  p.u32[1] = POLLIN;
  return asyncCall(pollFn, [p.ptr, 1, -1], 'poll', p);
}

/** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): for the floor. */
export function eventfd() {
  const fd = eventfdFn(0, 0o2000000 | 0o4000);
  if (fd < 0) throw new KoffiError('eventfd', koffi.errno());
  return fd;
}

export { koffi };
