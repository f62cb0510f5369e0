/**
 * dma-bufs without a GPU: DMA-BUF heaps (/dev/dma_heap/<name>) and udmabuf (/dev/udmabuf, a
 * dma-buf over the pages of a sealed memfd).
 * @module
 */
import { constants as fsConstants, readdirSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { DmaBuf } from './dma-buf';
import { NativeCore, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import { InvalidArgTypeError, InvalidArgValueError, OutOfRangeError, toInt, toPath } from './validate';

/** native/dma_heap.cc */
interface NativeDmaHeap {
  memfdCreate(name: string): number;
  ftruncate(fd: number, size: number): void;
  sealShrink(fd: number): void;
  udmabufCreate(udmabufFd: number, memfd: number, offset: number, size: number): number;
  dmaHeapAlloc(heapFd: number, size: number): number;
  pageSize(): number;
}

const native = nativeFamily<NativeCore & NativeDmaHeap>();

/** Where DMA-BUF heaps live. */
export const DMA_HEAP_DIR = '/dev/dma_heap';
/** The udmabuf device. */
export const UDMABUF_PATH = '/dev/udmabuf';

/** `size` rounded up to whole pages, after checking it is a positive safe integer. */
function pageAligned(size: unknown, name = 'size'): number {
  const n = toInt(size, name, 1, Number.MAX_SAFE_INTEGER);
  const page = native.pageSize();
  return Math.ceil(n / page) * page;
}

/**
 * A DMA-BUF heap (/dev/dma_heap/<name>, e.g. 'system'). Owns its fd: close() it, or `using` it.
 * Buffers it allocated stay valid after it is closed.
 */
export class DmaHeap extends FdResource {
  /** The heap's name ('system', 'linux,cma', …). */
  readonly name: string;
  /** Its device path. */
  readonly path: string;

  private constructor(fd: number, name: string, path: string) {
    super(fd, `DmaHeap ${name}`);
    this.name = name;
    this.path = path;
  }

  /** The names of the heaps this machine has (entries of /dev/dma_heap), sorted; [] when none. */
  static list(): string[] {
    try {
      return readdirSync(DMA_HEAP_DIR).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /**
   * Opens the heap called `name` (default 'system').
   * @throws ExplicitSyncError code 'ENOENT' (with the path) when there is no such heap, 'EACCES'.
   */
  static open(name = 'system'): DmaHeap {
    if (typeof name !== 'string') throw new InvalidArgTypeError('name', 'of type string', name);
    if (name.length === 0 || name.includes('/') || name.includes('\0') || name === '.' || name === '..')
      throw new InvalidArgValueError('name', 'must be a heap name (see DmaHeap.list())', name);
    const path = `${DMA_HEAP_DIR}/${name}`;
    return new DmaHeap(native.open(path, fsConstants.O_RDONLY), name, path);
  }

  /**
   * Allocates a dma-buf of at least `size` bytes (DMA_HEAP_IOCTL_ALLOC, fd flags O_RDWR |
   * O_CLOEXEC); the heap rounds the size up to whole pages (see DmaBuf#size).
   * @throws ExplicitSyncError code 'ENOMEM', 'EINVAL'; ClosedError after close().
   */
  allocate(size: number): DmaBuf {
    const len = pageAligned(size);
    // The system heap allocates page by page until it has `len` bytes: a size beyond the machine's
    // memory never succeeds and gets the process OOM-killed on the way.
    if (len > totalmem()) throw new OutOfRangeError('size', `<= the machine's memory (${totalmem()} bytes)`, size);
    return DmaBuf[kAdopt](native.dmaHeapAlloc(this.openFd('DMA_HEAP_IOCTL_ALLOC'), len));
  }

  /** @internal */
  toString(): string {
    return `DmaHeap(${this.name})`;
  }
}

/** The udmabuf driver's size limit (a module parameter, writable at run time). */
export const UDMABUF_SIZE_LIMIT_PATH = '/sys/module/udmabuf/parameters/size_limit_mb';

/** udmabuf.size_limit_mb in bytes, read now; undefined where sysfs does not say. */
function udmabufSizeLimit(): number | undefined {
  try {
    const mb = Number(readFileSync(UDMABUF_SIZE_LIMIT_PATH, 'utf8').trim());
    return Number.isSafeInteger(mb) && mb > 0 ? mb * 1024 * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The udmabuf device (/dev/udmabuf): dma-bufs over ordinary memory (the pages of a memfd).
 * Owns its fd: close() it, or `using` it. Buffers it created stay valid after it is closed.
 * For a one-off buffer, the static {@link Udmabuf.create} opens and closes the device itself.
 */
export class Udmabuf extends FdResource {
  /** Its device path. */
  readonly path: string;

  private constructor(fd: number, path: string) {
    super(fd, `Udmabuf ${path}`);
    this.path = path;
  }

  /**
   * Opens the udmabuf device.
   * @throws ExplicitSyncError code 'ENOENT' (with the path) when the kernel has no udmabuf, 'EACCES'.
   */
  static open(path: string = UDMABUF_PATH): Udmabuf {
    return new Udmabuf(native.open(toPath(path), fsConstants.O_RDWR), path);
  }

  /**
   * A dma-buf of `size` bytes rounded up to whole pages, over a fresh zero-filled memfd
   * (memfd_create with MFD_ALLOW_SEALING, ftruncate, F_SEAL_SHRINK, then UDMABUF_CREATE with
   * UDMABUF_FLAGS_CLOEXEC). Opens and closes /dev/udmabuf for the call.
   * @throws RangeError code 'ERR_OUT_OF_RANGE' beyond the machine's memory or the driver's size
   *   limit (udmabuf.size_limit_mb: 64 MiB by default up to 6.x, unlimited on 7.3), checked before
   *   the ioctl: Linux 7.x allocates for the size first and logs a kernel WARNING (a panic where
   *   panic_on_warn is set) before it refuses. ExplicitSyncError code 'ENOENT' without /dev/udmabuf; 'EINVAL' where sysfs does not
   *   show the limit and the kernel refuses; 'ENOMEM'.
   */
  static create(size: number): DmaBuf {
    const len = pageAligned(size);
    using dev = Udmabuf.open();
    return dev.create(len);
  }

  /** Same as the static {@link Udmabuf.create}, on this open device. ClosedError after close(). */
  create(size: number): DmaBuf {
    const len = pageAligned(size);
    // The buffer pins its pages: it cannot be bigger than the machine's memory, and the driver has
    // its own limit (Linux 7.3's default is INT_MAX MiB: no limit at all).
    const limit = Math.min(udmabufSizeLimit() ?? Infinity, totalmem());
    if (len > limit)
      throw new OutOfRangeError('size', `<= ${limit} bytes (the machine's memory, and udmabuf.size_limit_mb in ${UDMABUF_SIZE_LIMIT_PATH})`, size);
    const dev = this.openFd('UDMABUF_CREATE');
    const memfd = native.memfdCreate('explicit-sync-udmabuf');
    try {
      native.ftruncate(memfd, len);
      native.sealShrink(memfd);
      return DmaBuf[kAdopt](native.udmabufCreate(dev, memfd, 0, len));
    } finally {
      // The dma-buf holds the pages; the memfd is no longer needed.
      native.close(memfd);
    }
  }

  /** @internal */
  toString(): string {
    return `Udmabuf(${this.path})`;
  }
}
