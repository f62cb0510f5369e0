/**
 * dma-buf: a buffer shared between devices, as an fd. The implicit↔explicit sync bridge:
 * export the buffer's current fences as a sync_file, import a sync_file as a fence on it.
 * @module
 */
import { warnIfBlockingMainThread } from './blocking';
import { ClosedError, ExplicitSyncError, UnsupportedError, errnoNumber, wrongFdError } from './errors';
import { NativeCore, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import { SyncFile, SyncFileWaitOptions, kWaitParsed, parseSyncFileWait, toDupOption, toSyncFiles } from './sync-file';
import { publishSyncFile, syncFileChannel } from './trace/channels';
import { toLabel } from './trace/labels';
import { OutOfRangeError, toEnum, toFd } from './validate';

/** native/dma_buf.cc */
interface NativeDmaBuf {
  isDmaBuf(fd: number): boolean;
  dmaBufSize(fd: number): number;
  /** With `track`: already tracked for its SyncFile (token * 2^31 + fd, see FdResource). */
  dmaBufExportSyncFile(fd: number, flags: number, track?: boolean): number;
  dmaBufImportSyncFile(fd: number, flags: number, syncFileFd: number): void;
  dmaBufSync(fd: number, flags: number): void;
  dmaBufSetName(fd: number, name: string): void;
  dmaBufMap(fd: number, size: number): Buffer;
  dmaBufUnmap(mapping: Buffer): void;
  DMA_BUF_SYNC: { READ: number; WRITE: number; START: number; END: number };
}

const native = nativeFamily<NativeCore & NativeDmaBuf>();

/**
 * How a fence relates to the buffer. For exportSyncFile: 'read' waits for the writers only (what a
 * reader must wait for); 'write' and 'readwrite' wait for every user. For importSyncFile: 'read'
 * adds a read fence (later writers wait for it, readers do not); 'write'/'readwrite' a write fence
 * (everyone waits). For CPU access: the direction of the access.
 */
export type DmaBufAccess = 'read' | 'write' | 'readwrite';
const ACCESS: readonly DmaBufAccess[] = ['read', 'write', 'readwrite'];

function accessFlags(access: unknown, name: string): number {
  const a = toEnum(access, name, ACCESS);
  const { READ, WRITE } = native.DMA_BUF_SYNC;
  return a === 'read' ? READ : a === 'write' ? WRITE : READ | WRITE;
}

/** Whether this kernel has DMA_BUF_IOCTL_EXPORT/IMPORT_SYNC_FILE (Linux ≥ 6.0); cached per process. */
let syncFileIoctls: boolean | undefined;

function syncFileUnsupported(errno: number, call: string): UnsupportedError {
  const what = call === 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE' ? 'export' : 'import';
  return new UnsupportedError(errno, call, `dma-buf sync_file ${what} (${call})`, '6.0');
}

/** Runs a sync-file ioctl, turning ENOTTY (a kernel before 6.0) into a cached UnsupportedError. */
function syncFileIoctl<T>(call: string, fn: () => T): T {
  if (syncFileIoctls === false) throw syncFileUnsupported(errnoNumber('ENOTTY'), call);
  try {
    const r = fn();
    syncFileIoctls = true;
    return r;
  } catch (err) {
    if (err instanceof ExplicitSyncError && err.code === 'ENOTTY') {
      syncFileIoctls = false;
      throw syncFileUnsupported(-err.errno, call);
    }
    throw err;
  }
}

/**
 * A dma-buf. Owns its fd: close() it, or `using` it; after close() every method throws ClosedError
 * (code 'EBADF').
 *
 * Get one from {@link DmaBuf.fromFd} (any dma-buf fd: Vulkan, EGL, a Wayland client), a
 * VgemBuffer's exportDmaBuf(), Udmabuf.create() or DmaHeap#allocate().
 */
export class DmaBuf extends FdResource {
  /** Size in bytes (lseek SEEK_END). */
  readonly size: number;
  #mapping: Buffer | null = null;

  /** @internal Takes ownership of fd. */
  protected constructor(fd: number, size: number) {
    super(fd, 'DmaBuf');
    this.size = size;
  }

  /**
   * @internal Wraps a dma-buf fd this library just created (no type check); takes ownership, and
   * closes it if even its size cannot be read.
   */
  static [kAdopt](fd: number): DmaBuf {
    let size: number;
    try {
      size = native.dmaBufSize(fd);
    } catch (err) {
      native.close(fd);
      throw err;
    }
    return new DmaBuf(fd, size);
  }

  /**
   * Wraps a dma-buf fd you already have. The fd is recognised by the filesystem it lives on (the
   * kernel's dma-buf filesystem; "anon_inode:dmabuf" before Linux 5.3): no ioctl is sent to a
   * foreign fd.
   *
   * With `dup: false` (the default) the DmaBuf takes ownership of `fd` and closes it; with
   * `dup: true` it wraps a duplicate (F_DUPFD_CLOEXEC) and `fd` stays yours. When it throws, it
   * took nothing.
   *
   * @throws ExplicitSyncError code 'ENOTTY' when fd is not a dma-buf (a regular file, a pipe, a
   *   DRM node…), 'EBADF' when it is not open. TypeError/RangeError for a bad argument.
   */
  static fromFd(fd: number, options?: { dup?: boolean }): DmaBuf {
    toFd(fd);
    const dup = toDupOption(options);
    let isDmaBuf: boolean;
    try {
      isDmaBuf = native.isDmaBuf(fd);
    } catch (err) {
      throw wrongFdError(fd, 'dma-buf', 'fstatfs', err);
    }
    if (!isDmaBuf) throw wrongFdError(fd, 'dma-buf', 'fstatfs');
    const size = native.dmaBufSize(fd);
    return new DmaBuf(dup ? native.dup(fd) : fd, size);
  }

  /**
   * A sync_file of the fences on the buffer right now (DMA_BUF_IOCTL_EXPORT_SYNC_FILE, Linux ≥ 6.0):
   * with 'read' the writers' fences (wait on it before reading), with 'write'/'readwrite' every
   * fence (wait on it before writing). A buffer without fences gives an already signalled one.
   * @throws UnsupportedError (code 'ENOTTY', since '6.0') on older kernels; ClosedError after
   *   close(); ExplicitSyncError from the ioctl.
   */
  exportSyncFile(access: DmaBufAccess = 'readwrite'): SyncFile {
    const flags = accessFlags(access, 'access');
    const fd = this.openFd('DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
    const sf = SyncFile[kAdopt](
      syncFileIoctl('DMA_BUF_IOCTL_EXPORT_SYNC_FILE', () => native.dmaBufExportSyncFile(fd, flags, true)),
    );
    if (syncFileChannel.hasSubscribers) publishSyncFile('export', this, undefined, [sf], access);
    return sf;
  }

  /**
   * Adds the fence of a sync_file, or of several (an array: merged first with SYNC_IOC_MERGE, so
   * one ioctl adds one fence that signals after all of them), to the buffer
   * (DMA_BUF_IOCTL_IMPORT_SYNC_FILE, Linux ≥ 6.0), so that implicitly synchronised users wait for
   * it: as a read fence with 'read' (later writers wait), as a write fence with 'write'/'readwrite'
   * (every later user waits). The SyncFiles stay yours. Same shape as
   * `timeline.importSyncFile(point, syncFiles, options?)`: the fence(s), then what to do with them.
   * @throws UnsupportedError (code 'ENOTTY', since '6.0') on older kernels; ClosedError when
   *   this or a SyncFile is closed; ExplicitSyncError from the ioctls.
   */
  importSyncFile(syncFiles: SyncFile | readonly SyncFile[], access: DmaBufAccess = 'readwrite'): void {
    const files = toSyncFiles(syncFiles);
    const flags = accessFlags(access, 'access');
    const fd = this.openFd('DMA_BUF_IOCTL_IMPORT_SYNC_FILE');
    if (files.some((f) => f.closed)) throw new ClosedError('SyncFile', 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE');
    const merged = files.length > 1 ? SyncFile.merge(...files) : undefined;
    try {
      const sfd = (merged ?? files[0]!).fd;
      syncFileIoctl('DMA_BUF_IOCTL_IMPORT_SYNC_FILE', () => native.dmaBufImportSyncFile(fd, flags, sfd));
    } finally {
      merged?.close();
    }
    if (syncFileChannel.hasSubscribers) publishSyncFile('import', this, undefined, files, access);
  }

  /**
   * Names the buffer: its label (errors, events, `util.inspect`, inspect()) and its kernel name
   * (DMA_BUF_SET_NAME, Linux ≥ 5.8), which /proc/PID/fdinfo shows on a `name:` line and debugfs
   * `dma_buf/bufinfo` lists, in this and every process that has the buffer. The kernel keeps at
   * most 31 bytes: a longer name is a RangeError.
   * @throws RangeError (ERR_OUT_OF_RANGE) for a name over 31 bytes; ExplicitSyncError from the
   *   ioctl ('ENOTTY' before Linux 5.8); ClosedError after close().
   */
  override setLabel(label: string): this {
    const name = toLabel(label);
    if (Buffer.byteLength(name) > 31) throw new OutOfRangeError('label', 'at most 31 bytes long (the kernel\'s DMA_BUF_NAME_LEN)', name);
    native.dmaBufSetName(this.openFd('DMA_BUF_SET_NAME'), name);
    return super.setLabel(name);
  }

  /**
   * Whether this kernel has the sync-file ioctls (Linux ≥ 6.0). Probes once per process with an
   * export the kernel rejects without effect (no access flags: EINVAL where known, ENOTTY where not).
   */
  supportsSyncFile(): boolean {
    const fd = this.openFd('DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
    if (syncFileIoctls === undefined) {
      try {
        native.close(native.dmaBufExportSyncFile(fd, 0)); // not expected to succeed
        syncFileIoctls = true;
      } catch (err) {
        if (!(err instanceof ExplicitSyncError)) throw err;
        syncFileIoctls = err.code !== 'ENOTTY';
      }
    }
    return syncFileIoctls;
  }

  /**
   * Maps the whole buffer for CPU access (mmap PROT_READ|PROT_WRITE, MAP_SHARED) and returns a
   * Buffer over it; later calls return the same Buffer. Bracket CPU access with
   * beginCpuAccess()/endCpuAccess(), after waiting for the buffer's fences.
   *
   * On close() the buffer's pages are swapped out of the mapping for private zero pages: the
   * Buffer stays safe to touch (it reads zeros, writes go nowhere) and its address range is
   * released only when the Buffer itself is garbage-collected. Never a crash on a late access.
   * @throws ExplicitSyncError code 'EACCES' when the fd is not open for writing, 'ENODEV' when the
   *   exporter cannot be mapped; ClosedError after close().
   */
  map(): Buffer {
    const fd = this.openFd('mmap');
    this.#mapping ??= native.dmaBufMap(fd, this.size);
    return this.#mapping;
  }

  /**
   * Starts a CPU access session (DMA_BUF_IOCTL_SYNC with SYNC_START). The kernel first waits for
   * the buffer's fences that conflict with `access` (for 'read' the writers, otherwise all of them)
   * — synchronously, blocking this thread — then makes the mapping coherent for the CPU. On the
   * event loop prefer {@link beginCpuAccessAsync}, which waits for those fences without blocking.
   * @throws ClosedError after close(); ExplicitSyncError from the ioctl.
   */
  beginCpuAccess(access: DmaBufAccess = 'readwrite'): void {
    warnIfBlockingMainThread('DmaBuf#beginCpuAccess', Infinity); // the kernel's wait has no bound
    this.#startCpuAccess(access);
  }

  #startCpuAccess(access: DmaBufAccess): void {
    const flags = accessFlags(access, 'access');
    native.dmaBufSync(this.openFd('DMA_BUF_IOCTL_SYNC'), flags | native.DMA_BUF_SYNC.START);
  }

  /**
   * Waits on the event loop for the fences that conflict with `access` (exportSyncFile(access),
   * then SyncFile#wait(options)), then starts the CPU access session, which then has nothing left
   * to wait for (unless a fence was attached in between). Takes SyncFile#wait's options
   * (`timeoutMs` or `deadline`, `signal`, `ref`, `fenceDeadline`: a deadline hint to the buffer's
   * fences), checked before any ioctl. Rejects like SyncFile#wait: FenceError, TimeoutError,
   * AbortError, ClosedError, TypeError/RangeError for bad options; UnsupportedError before Linux
   * 6.0 (and for `fenceDeadline` before 6.7).
   */
  async beginCpuAccessAsync(access: DmaBufAccess = 'readwrite', options?: SyncFileWaitOptions): Promise<void> {
    accessFlags(access, 'access');
    const w = parseSyncFileWait(options);
    {
      using fences = this.exportSyncFile(access);
      await fences[kWaitParsed](w);
    }
    this.#startCpuAccess(access); // nothing left to wait for: no blocking-wait warning
  }

  /**
   * Ends a CPU access session (DMA_BUF_IOCTL_SYNC with SYNC_END), with the same access as begin.
   * @throws ClosedError after close(); ExplicitSyncError from the ioctl.
   */
  endCpuAccess(access: DmaBufAccess = 'readwrite'): void {
    const flags = accessFlags(access, 'access');
    native.dmaBufSync(this.openFd('DMA_BUF_IOCTL_SYNC'), flags | native.DMA_BUF_SYNC.END);
  }

  /** A second DmaBuf for the same buffer, with its own fd (F_DUPFD_CLOEXEC) and mapping. */
  dup(): DmaBuf {
    return new DmaBuf(native.dup(this.openFd('fcntl')), this.size);
  }

  protected override beforeClose(): void {
    const mapping = this.#mapping;
    this.#mapping = null;
    if (mapping !== null) native.dmaBufUnmap(mapping);
  }

  /** @internal */
  toString(): string {
    return `DmaBuf(fd ${this.fd}, ${this.size} bytes)`;
  }
}
