/**
 * vgem: the kernel's virtual GEM driver. Buffers (dumb buffers) exported as dma-bufs, with fences
 * that userspace signals: a real, unsignalled fence on a real buffer without a GPU.
 *
 * Lifetimes: GEM handles and fence ids belong to the device's DRM file, so every buffer and fence
 * holds its VgemDevice (a buffer keeps its device alive), and closing the device ends them all:
 * their methods then throw ClosedError and no stale handle is ever sent to a reused fd. Closing the
 * device also makes vgem signal every fence it still has unsignalled. dma-bufs exported from a
 * buffer are independent: they outlive both the buffer and the device.
 * @module
 */
import { constants as fsConstants } from 'node:fs';
import { ClosedError, ExplicitSyncError, NoDeviceError, errnoNumber, rethrowIfOutOfFds } from './errors';
import { Device, DRI_DIR, driNodeNames } from './device';
import { DmaBuf } from './dma-buf';
import { NativeCore, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import { InvalidArgTypeError, OptionKeys, toInt, toOptions, toPath } from './validate';

/** native/vgem.cc */
interface NativeVgem {
  dumbCreate(fd: number, width: number, height: number, bpp: number): { handle: number; pitch: number; size: number };
  gemClose(fd: number, handle: number): void;
  primeHandleToFd(fd: number, handle: number): number;
  primeFdToHandle(fd: number, dmaBufFd: number): number;
  vgemFenceAttach(fd: number, handle: number, write: boolean): number;
  vgemFenceSignal(fd: number, fence: number): void;
}

const native = nativeFamily<NativeCore & NativeVgem>();

const U32_MAX = 0xffffffff;

/** Module-private key of the device fd accessor that buffers and fences use. */
const kFd: unique symbol = Symbol('explicit-sync.vgemFd');
/** Module-private key of the device's table of open buffers (GEM handle → buffer). */
const kBuffers: unique symbol = Symbol('explicit-sync.vgemBuffers');

/** Options for {@link VgemDevice.createBuffer}. */
export interface VgemBufferOptions {
  /** Pixels, ≥ 1. */
  width: number;
  /** Pixels, ≥ 1. */
  height: number;
  /** Bits per pixel (default 32). */
  bpp?: number;
}

/** Options for {@link VgemBuffer.attachFence}. */
export interface VgemFenceOptions {
  /** A write fence (every later user waits for it) instead of a read fence (only writers wait). */
  write?: boolean;
}

const BUFFER_KEYS: OptionKeys<VgemBufferOptions> = { width: true, height: true, bpp: true };
const FENCE_KEYS: OptionKeys<VgemFenceOptions> = { write: true };

/** DRM char devices have major 226. */
const DRM_MAJOR = 226;
const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;

/** The DRM driver name behind an fd, or undefined when it is not a DRM node. */
function drmDriver(fd: number): string | undefined {
  const st = native.fstat(fd);
  if ((st.mode & S_IFMT) !== S_IFCHR || st.rdevMajor !== DRM_MAJOR) return undefined;
  return native.drmVersion(fd).name;
}

/**
 * An open vgem card node (/dev/dri/cardN: dumb buffers need the card node, the render node refuses
 * them). Owns its fd: close() it, or `using` it.
 */
export class VgemDevice extends FdResource {
  /** The node's path. */
  readonly path: string;
  /** @internal Open buffers by GEM handle: PRIME import hands out the handle a buffer already has. */
  readonly [kBuffers] = new Map<number, VgemBuffer>();

  private constructor(fd: number, path: string) {
    super(fd, `VgemDevice ${path}`);
    this.path = path;
  }

  /**
   * Opens the vgem card node at `path`, or the first vgem card node in /dev/dri (found through
   * {@link Device.list}, so no other card node is opened where sysfs pairs nodes). The node is
   * identified by DRM_IOCTL_VERSION alone (vgem answers EOPNOTSUPP to DRM_CAP_DUMB_BUFFER although
   * DUMB_CREATE works on its card node).
   * @throws NoDeviceError (code 'ENODEV') when there is none (or no /dev/dri at all);
   *   ExplicitSyncError code 'ENODEV' when `path` is not a vgem card node, 'ENOENT'/'EACCES' from open.
   */
  static open(path?: string): VgemDevice {
    if (path !== undefined) {
      toPath(path);
      const fd = native.open(path, fsConstants.O_RDWR);
      try {
        const driver = drmDriver(fd);
        const name = path.slice(path.lastIndexOf('/') + 1);
        if (driver !== 'vgem' || !/^card\d+$/.test(name)) {
          const what = driver === undefined ? 'not a DRM node' : `a ${driver} node`;
          throw new ExplicitSyncError(errnoNumber('ENODEV'), 'open', {
            detail: path,
            message: `ENODEV: not a vgem card node (${what}), open '${path}'`,
          });
        }
      } catch (err) {
        native.close(fd);
        throw err;
      }
      return new VgemDevice(fd, path);
    }
    const names = driNodeNames();
    const cards = names.filter((n) => /^card\d+$/.test(n)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
    const found: string[] = [];
    // Card nodes whose driver the master-free listing already knows are not opened unless vgem;
    // the others (no sysfs, or no render node: never vgem, which has one) are asked in order.
    const known = new Map(Device.list().map((d) => [d.path, d.driver.name]));
    for (const name of cards) {
      const p = `${DRI_DIR}/${name}`;
      const listed = known.get(p);
      if (listed !== undefined && listed !== 'vgem') {
        found.push(`${p} (${listed})`);
        continue;
      }
      let fd: number;
      try {
        fd = native.open(p, fsConstants.O_RDWR);
      } catch (err) {
        rethrowIfOutOfFds(err);
        continue; // permissions: look further
      }
      let driver: string | undefined;
      try {
        driver = drmDriver(fd);
      } catch {
        driver = undefined;
      }
      if (driver === 'vgem') return new VgemDevice(fd, p);
      native.close(fd);
      found.push(`${p} (${driver ?? 'unknown'})`);
    }
    throw new NoDeviceError(
      cards.length === 0
        ? `ENODEV: no DRM device found in ${DRI_DIR}; vgem runs in the VM: npx explicit-sync vm -- <command>`
        : `ENODEV: no vgem card node in ${DRI_DIR} (load the vgem module); found: ${found.join('; ')}`,
      found,
    );
  }

  /**
   * A new dumb buffer (DRM_IOCTL_MODE_CREATE_DUMB).
   * @throws ExplicitSyncError code 'EINVAL' for sizes the driver refuses, 'ENOMEM'; ClosedError
   *   after close().
   */
  createBuffer(options: VgemBufferOptions): VgemBuffer {
    const opts = toOptions(options, BUFFER_KEYS);
    const width = toInt(opts.width, 'options.width', 1, U32_MAX);
    const height = toInt(opts.height, 'options.height', 1, U32_MAX);
    const bpp = toInt(opts.bpp === undefined ? 32 : opts.bpp, 'options.bpp', 1, U32_MAX);
    const r = native.dumbCreate(this.openFd('DRM_IOCTL_MODE_CREATE_DUMB'), width, height, bpp);
    return new VgemBuffer(this, r.handle, { width, height, bpp, pitch: r.pitch, size: r.size });
  }

  /**
   * Imports a dma-buf another driver (or another device) exported (DRM_IOCTL_PRIME_FD_TO_HANDLE),
   * so that fences can be attached to it with {@link VgemBuffer.attachFence}: they land on the
   * dma-buf's own reservation object, where its producer and every other importer see them. The
   * buffer has no layout (`width`, `height`, `bpp` and `pitch` are 0); `size` is the dma-buf's.
   * The DmaBuf stays the caller's; the buffer holds the memory on its own.
   *
   * DRM gives a buffer one handle per DRM file: importing a dma-buf of a buffer this device already
   * has open (one it created and exported, or imported before) returns that same VgemBuffer, and
   * closing it closes it for every holder.
   * @throws ClosedError when the device or the DmaBuf is closed; ExplicitSyncError from the ioctl
   *   (e.g. 'EINVAL' for a dma-buf vgem cannot import).
   */
  importDmaBuf(dmaBuf: DmaBuf): VgemBuffer {
    if (!(dmaBuf instanceof DmaBuf)) throw new InvalidArgTypeError('dmaBuf', 'an instance of DmaBuf', dmaBuf);
    const call = 'DRM_IOCTL_PRIME_FD_TO_HANDLE';
    const fd = this.openFd(call);
    if (dmaBuf.closed) throw new ClosedError('DmaBuf', call);
    const handle = native.primeFdToHandle(fd, dmaBuf.fd);
    const open = this[kBuffers].get(handle);
    if (open !== undefined) return open;
    return new VgemBuffer(this, handle, { width: 0, height: 0, bpp: 0, pitch: 0, size: dmaBuf.size });
  }

  // close() (FdResource) ends every buffer and fence made from this device: closing the fd frees
  // their handles in the kernel and makes vgem signal the fences still unsignalled; they check
  // the device on every call, so none of them ever reaches the kernel again.

  /** @internal For buffers and fences: the fd, or ClosedError naming `call`. */
  [kFd](call: string): number {
    return this.openFd(call);
  }

  /** @internal */
  toString(): string {
    return `VgemDevice(${this.path})`;
  }
}

/**
 * A vgem buffer: a dumb buffer it made, or a dma-buf it imported; a GEM handle on its VgemDevice.
 * close() frees the handle (GEM_CLOSE).
 */
export class VgemBuffer implements Disposable {
  /** The device it lives on; kept alive by the buffer. */
  readonly device: VgemDevice;
  /** Pixels (0 for an imported dma-buf, which carries no layout). */
  readonly width: number;
  /** Pixels (0 for an imported dma-buf). */
  readonly height: number;
  /** Bits per pixel (0 for an imported dma-buf). */
  readonly bpp: number;
  /** Bytes per row (0 for an imported dma-buf). */
  readonly pitch: number;
  /** Bytes. */
  readonly size: number;
  #handle: number;

  /** @internal Use VgemDevice#createBuffer(). */
  constructor(
    device: VgemDevice,
    handle: number,
    dims: { width: number; height: number; bpp: number; pitch: number; size: number },
  ) {
    this.device = device;
    this.#handle = handle;
    device[kBuffers].set(handle, this);
    this.width = dims.width;
    this.height = dims.height;
    this.bpp = dims.bpp;
    this.pitch = dims.pitch;
    this.size = dims.size;
  }

  /** The GEM handle, or -1 once closed (or once its device is). */
  get handle(): number {
    return this.device.closed ? -1 : this.#handle;
  }

  /** Whether the buffer (or its device) was closed. */
  get closed(): boolean {
    return this.handle < 0;
  }

  /** The device fd and the handle, or ClosedError (the device's first). */
  #open(call: string): { fd: number; handle: number } {
    const fd = this.device[kFd](call);
    if (this.#handle < 0) throw new ClosedError('VgemBuffer', call);
    return { fd, handle: this.#handle };
  }

  /**
   * The buffer as a dma-buf (DRM_IOCTL_PRIME_HANDLE_TO_FD, O_CLOEXEC | O_RDWR). The DmaBuf is
   * independent of this object: it stays valid after the buffer and the device are closed.
   * @throws ClosedError when the buffer or its device is closed; ExplicitSyncError from the ioctl.
   */
  exportDmaBuf(): DmaBuf {
    const { fd, handle } = this.#open('DRM_IOCTL_PRIME_HANDLE_TO_FD');
    return DmaBuf[kAdopt](native.primeHandleToFd(fd, handle));
  }

  /**
   * Attaches a new unsignalled fence to the buffer (DRM_IOCTL_VGEM_FENCE_ATTACH): a read fence, or
   * a write fence with `write: true`. Signal it with VgemFence#signal(); vgem signals it itself
   * after about 10 s (a safety timer), and when the device is closed.
   * @throws ExplicitSyncError code 'EBUSY' when an unsignalled fence conflicts (a write fence while
   *   any fence is pending, a read fence while a write fence is); ClosedError when closed.
   */
  attachFence(options?: VgemFenceOptions): VgemFence {
    const opts = toOptions(options, FENCE_KEYS);
    if (opts.write !== undefined && typeof opts.write !== 'boolean')
      throw new InvalidArgTypeError('options.write', 'of type boolean', opts.write);
    const { fd, handle } = this.#open('DRM_IOCTL_VGEM_FENCE_ATTACH');
    const write = opts.write === true;
    return new VgemFence(this.device, native.vgemFenceAttach(fd, handle, write), write);
  }

  /** Frees the GEM handle (DRM_IOCTL_GEM_CLOSE). Idempotent; dma-bufs and fences stay valid. */
  close(): void {
    const handle = this.#handle;
    if (handle < 0) return;
    this.#handle = -1;
    this.device[kBuffers].delete(handle);
    // A closed device already freed every handle; its fd number may belong to someone else now.
    if (!this.device.closed) native.gemClose(this.device[kFd]('DRM_IOCTL_GEM_CLOSE'), handle);
  }

  /** Same as close(); never throws. */
  [Symbol.dispose](): void {
    try {
      this.close();
    } catch {
      // Dispose must not throw.
    }
  }
}

/** A vgem fence: unsignalled until signal() (or vgem's ~10 s safety timer, or device close). */
export class VgemFence {
  /** The device it lives on. */
  readonly device: VgemDevice;
  /** The fence id (per DRM file). */
  readonly id: number;
  /** Whether it is a write fence. */
  readonly write: boolean;
  #signaled = false;

  /** @internal Use VgemBuffer#attachFence(). */
  constructor(device: VgemDevice, id: number, write: boolean) {
    this.device = device;
    this.id = id;
    this.write = write;
  }

  /** Whether signal() was called. */
  get signaled(): boolean {
    return this.#signaled;
  }

  /**
   * Signals the fence (DRM_IOCTL_VGEM_FENCE_SIGNAL). Returns true when this call signalled it,
   * false when it already was: by an earlier signal(), or by vgem's safety timer (the kernel's
   * ETIMEDOUT). Only the first call reaches the kernel.
   * @throws ClosedError when the device is closed; ExplicitSyncError from the ioctl.
   */
  signal(): boolean {
    const fd = this.device[kFd]('DRM_IOCTL_VGEM_FENCE_SIGNAL');
    if (this.#signaled) return false;
    try {
      native.vgemFenceSignal(fd, this.id);
    } catch (err) {
      if (!(err instanceof ExplicitSyncError && err.code === 'ETIMEDOUT')) throw err;
      this.#signaled = true;
      return false;
    }
    this.#signaled = true;
    return true;
  }
}
