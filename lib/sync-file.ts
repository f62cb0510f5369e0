/**
 * sync_file: a fence you hold as an fd (from a dma-buf, a syncobj, a Wayland client, Vulkan, EGL).
 * @module
 */
import { warnIfBlockingMainThread } from './blocking';
import { monotonicNow } from './clock';
import { ExplicitSyncError, FenceError, TimeoutError, UnsupportedError, errnoCode, errnoNumber, wrongFdError } from './errors';
import { NativeCore, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import {
  I64_MAX,
  InvalidArgTypeError,
  InvalidArgValueError,
  MAX_TIMEOUT_MS,
  OutOfRangeError,
  toAbortSignal,
  toFd,
  toOptions,
  toTimeoutMs,
  toU64,
} from './validate';
import { FdWaitQueue, WaitOptions } from './watcher';

/** What SYNC_IOC_FILE_INFO reports, as native/sync_file.cc returns it. */
interface RawSyncFileInfo {
  name: string;
  status: number;
  flags: number;
  fences: { timeline: string; driver: string; status: number; flags: number; timestampNs: bigint }[];
}

/** native/sync_file.cc */
interface NativeSyncFile {
  syncFileInfo(fd: number): RawSyncFileInfo;
  /** The kernel's structs copied into `out` (layout below); the fence count, or -count when `out` is too small. */
  syncFileInfoInto(fd: number, out: Uint8Array): number;
  syncFileMerge(fd: number, fd2: number, name: string): number;
  syncFileSetDeadline(fd: number, deadlineNs: bigint): void;
  syncFileProbeDeadline(fd: number): number;
}

const native = nativeFamily<NativeCore & NativeSyncFile>();

/** poll(2) takes an int of milliseconds. */
const POLL_MAX_MS = 0x7fffffff;

/** @internal Validates `{ dup }` options of the fromFd() factories. */
export function toDupOption(options: { dup?: boolean } | undefined): boolean {
  const opts = toOptions(options);
  if (opts.dup !== undefined && typeof opts.dup !== 'boolean')
    throw new InvalidArgTypeError('options.dup', 'of type boolean', opts.dup);
  return opts.dup === true;
}

/** A fence's state: not yet signalled, signalled, or signalled with an error. */
export type FenceStatus = 'active' | 'signaled' | 'error';

/** One fence inside a sync_file (see {@link SyncFile.info}). */
export interface FenceInfo {
  /** The driver that made the fence: 'vgem', 'virtio_gpu', 'drm_sched', 'stub', … */
  driver: string;
  /** The driver's name for the fence's timeline. */
  timeline: string;
  status: FenceStatus;
  /** For status 'error': the error's code ('ECANCELED', 'EIO', …). */
  error: string | undefined;
  /** When it signalled, in CLOCK_MONOTONIC nanoseconds; undefined while active. */
  timestampNs: bigint | undefined;
}

/** What {@link SyncFile.info} returns. */
export interface SyncFileInfo {
  /** The sync_file's name (the merge name, or one the kernel derives from its fence). */
  name: string;
  /** 'signaled' once every fence has; 'error' when one failed. */
  status: FenceStatus;
  /** For status 'error': the error's code. */
  error: string | undefined;
  fences: FenceInfo[];
}

/** Options for {@link SyncFile.merge}. */
export interface MergeOptions {
  /** The merged sync_file's name (at most 31 bytes). Default: empty, so the kernel derives one. */
  name?: string;
}

function status(raw: number): { status: FenceStatus; error: string | undefined } {
  if (raw < 0) return { status: 'error', error: errnoCode(raw) };
  return { status: raw > 0 ? 'signaled' : 'active', error: undefined };
}

// SYNC_IOC_FILE_INFO as syncFileInfoInto() copies it: struct sync_file_info (56 bytes: name[32],
// status i32 @32, flags, num_fences, pad, pointer), then struct sync_fence_info[] (80 bytes each:
// obj_name[32], driver_name[32], status i32 @64, flags, timestamp_ns u64 @72). Decoding it here is
// several times cheaper than building the objects through N-API. One scratch buffer, reused: the
// call is synchronous.
const INFO_BYTES = 56;
const FENCE_BYTES = 80;

function infoScratch(fences: number): { bytes: Buffer; i32: Int32Array; u64: BigUint64Array } {
  const ab = new ArrayBuffer(INFO_BYTES + fences * FENCE_BYTES); // 8-aligned for the u64 view
  return { bytes: Buffer.from(ab), i32: new Int32Array(ab), u64: new BigUint64Array(ab) };
}
let scratch = infoScratch(4);

/**
 * A kernel name field: NUL-terminated unless it fills all `size` bytes; UTF-8. ASCII (what kernel
 * names are in practice) is decoded right here, which is cheaper than a call into the Buffer binding.
 */
function cString(bytes: Buffer, start: number, size: number): string {
  let s = '';
  for (let i = start, end = start + size; i < end; i++) {
    const b = bytes[i]!;
    if (b === 0) break;
    if (b >= 0x80) {
      const nul = bytes.indexOf(0, i);
      return bytes.toString('utf8', start, nul < 0 || nul > end ? end : nul);
    }
    s += String.fromCharCode(b);
  }
  return s;
}

function readInfo(fd: number): SyncFileInfo {
  let count = native.syncFileInfoInto(fd, scratch.bytes);
  while (count < 0) {
    scratch = infoScratch(-count);
    count = native.syncFileInfoInto(fd, scratch.bytes);
  }
  const { bytes, i32, u64 } = scratch;
  const fences: FenceInfo[] = [];
  for (let i = 0, off = INFO_BYTES; i < count; i++, off += FENCE_BYTES) {
    const raw = i32[(off + 64) >> 2]!;
    const st = status(raw);
    fences.push({
      driver: cString(bytes, off + 32, 32),
      timeline: cString(bytes, off, 32),
      status: st.status,
      error: st.error,
      timestampNs: raw !== 0 ? u64[(off + 72) >> 3] : undefined,
    });
  }
  const st = status(i32[32 >> 2]!);
  return { name: cString(bytes, 0, 32), status: st.status, error: st.error, fences };
}

/** Room for struct sync_file_info alone: SYNC_IOC_FILE_INFO then reports the status, no fences. */
const statusWords = new Int32Array(INFO_BYTES / 4);
const statusBytes = new Uint8Array(statusWords.buffer);

/**
 * Throws FenceError when the signalled sync_file at `fd` signalled with an error (its status,
 * dma_fence_get_status(): the first error among its fences). One SYNC_IOC_FILE_INFO.
 */
function throwIfFenceError(fd: number): void {
  native.syncFileInfoInto(fd, statusBytes);
  const st = statusWords[32 >> 2]!;
  if (st < 0) throw new FenceError(st);
}

/** Whether this kernel has SYNC_IOC_SET_DEADLINE; undefined until probed. Cached per process. */
let deadlineSupported: boolean | undefined;

function deadlineUnsupported(errno: number): UnsupportedError {
  return new UnsupportedError(errno, 'SYNC_IOC_SET_DEADLINE', 'sync_file deadlines (SYNC_IOC_SET_DEADLINE)', '6.7');
}

/**
 * A sync_file fence. Owns its fd: close() it, or `using` it. Every method after close() throws
 * ClosedError (code 'EBADF').
 */
export class SyncFile extends FdResource {
  #queue: FdWaitQueue | null = null;

  /** @internal Use SyncFile.fromFd() or the APIs that return sync files. Takes ownership of fd. */
  protected constructor(fd: number) {
    super(fd, 'SyncFile');
  }

  /** @internal Wraps an fd this library just created (no validation, takes ownership). */
  static [kAdopt](fd: number): SyncFile {
    return new SyncFile(fd);
  }

  /**
   * Wraps a sync_file fd you received (from a Wayland client, Vulkan, EGL, another process).
   * The fd is checked with SYNC_IOC_FILE_INFO, which only sync_files answer.
   *
   * With `dup: false` (the default) the SyncFile takes ownership of `fd` and closes it; with
   * `dup: true` it wraps a duplicate (F_DUPFD_CLOEXEC) and `fd` stays yours. When it throws, it
   * took nothing: `fd` is still yours either way.
   *
   * @throws ExplicitSyncError code 'ENOTTY' when fd is not a sync_file (the probe's own error is
   *   the `cause`); 'EBADF' when fd is not open. TypeError/RangeError for a bad argument.
   */
  static fromFd(fd: number, options?: { dup?: boolean }): SyncFile {
    toFd(fd);
    const dup = toDupOption(options);
    try {
      native.syncFileInfo(fd);
    } catch (err) {
      throw wrongFdError(fd, 'sync_file', 'SYNC_IOC_FILE_INFO', err);
    }
    return new SyncFile(dup ? native.dup(fd) : fd);
  }

  /**
   * Merges sync files into a new one that signals once all of them have (SYNC_IOC_MERGE, folded
   * pairwise). One file gives a duplicate. The inputs stay open and yours.
   * @throws ClosedError when one of them is closed; ExplicitSyncError from SYNC_IOC_MERGE.
   */
  static merge(...files: SyncFile[]): SyncFile {
    if (files.length === 0) throw new InvalidArgValueError('files', 'must name at least one SyncFile', files);
    const [first, ...rest] = files;
    if (!(first instanceof SyncFile)) throw new InvalidArgTypeError('files[0]', 'an instance of SyncFile', first);
    return rest.length === 0 ? first.dup() : first.merge(rest);
  }

  /**
   * A new sync_file that signals once this one and `other` (or all of `others`) have
   * (SYNC_IOC_MERGE). This SyncFile and the others stay open and yours.
   * @throws ClosedError when any of them is closed; ExplicitSyncError from SYNC_IOC_MERGE.
   */
  merge(other: SyncFile | readonly SyncFile[], options?: MergeOptions): SyncFile {
    const others = Array.isArray(other) ? (other as readonly SyncFile[]) : [other as SyncFile];
    others.forEach((o, i) => {
      if (!(o instanceof SyncFile)) throw new InvalidArgTypeError(`other[${i}]`, 'an instance of SyncFile', o);
    });
    const opts = toOptions(options);
    const name = opts.name === undefined ? '' : opts.name;
    if (typeof name !== 'string') throw new InvalidArgTypeError('options.name', 'of type string', name);
    if (Buffer.byteLength(name) > 31) throw new OutOfRangeError('options.name', 'at most 31 bytes long', name);
    if (others.length === 0) throw new InvalidArgValueError('other', 'must name at least one SyncFile', other);
    let fd = native.syncFileMerge(this.openFd('SYNC_IOC_MERGE'), others[0]!.openFd('SYNC_IOC_MERGE'), name);
    for (const o of others.slice(1)) {
      try {
        const next = native.syncFileMerge(fd, o.openFd('SYNC_IOC_MERGE'), name);
        native.close(fd);
        fd = next;
      } catch (err) {
        native.close(fd);
        throw err;
      }
    }
    return new SyncFile(fd);
  }

  /** A second SyncFile for the same fence, with its own fd (F_DUPFD_CLOEXEC). */
  dup(): SyncFile {
    return new SyncFile(native.dup(this.openFd('fcntl')));
  }

  /**
   * True once the fence has signalled (poll with a zero timeout), with an error or without (see
   * {@link info} for which). Never blocks.
   */
  isSignaled(): boolean {
    return native.pollIn(this.openFd('poll'), 0);
  }

  /**
   * The sync_file's name, status and fences (SYNC_IOC_FILE_INFO, twice: count, then fill).
   * @throws ClosedError after close(); ExplicitSyncError from SYNC_IOC_FILE_INFO.
   */
  info(): SyncFileInfo {
    return readInfo(this.openFd('SYNC_IOC_FILE_INFO'));
  }

  /**
   * Tells the fence's driver when it is needed, so it can boost clocks to make it
   * (SYNC_IOC_SET_DEADLINE, Linux ≥ 6.7). A hint: nothing fails if it is missed.
   * @param deadline A bigint is an absolute CLOCK_MONOTONIC time in nanoseconds (see
   *   {@link monotonicNow}); a number is milliseconds from now.
   * @throws UnsupportedError (code 'ENOTTY', since '6.7') on older kernels; the answer is cached.
   *   ClosedError after close().
   */
  setDeadline(deadline: bigint | number): void {
    let ns: bigint;
    if (typeof deadline === 'number') {
      // 9e12 ms (285 years) from now stays well within the kernel's signed 64-bit nanoseconds.
      if (!Number.isFinite(deadline) || deadline < 0 || deadline > 9e12)
        throw new OutOfRangeError('deadline', 'a finite number >= 0 and <= 9e12 (ms from now)', deadline);
      ns = monotonicNow() + BigInt(Math.round(deadline * 1e6));
    } else {
      ns = toU64(deadline, 'deadline');
    }
    // The kernel reads it as a signed ktime_t: beyond 2^63 - 1 it would be a deadline in the past.
    if (ns > I64_MAX) throw new OutOfRangeError('deadline', 'at most 2^63 - 1 ns of CLOCK_MONOTONIC (a ktime_t)', deadline);
    const fd = this.openFd('SYNC_IOC_SET_DEADLINE');
    if (deadlineSupported === false) throw deadlineUnsupported(errnoNumber('ENOTTY'));
    try {
      native.syncFileSetDeadline(fd, ns);
      deadlineSupported = true;
    } catch (err) {
      if (err instanceof ExplicitSyncError && err.code === 'ENOTTY') {
        deadlineSupported = false;
        throw deadlineUnsupported(-err.errno);
      }
      throw err;
    }
  }

  /**
   * Whether this kernel accepts SYNC_IOC_SET_DEADLINE (Linux ≥ 6.7). Probes once per process with
   * a call the kernel rejects without effect (a non-zero pad: EINVAL where known, ENOTTY where not).
   */
  supportsDeadline(): boolean {
    deadlineSupported ??= native.syncFileProbeDeadline(this.openFd('SYNC_IOC_SET_DEADLINE')) !== errnoNumber('ENOTTY');
    return deadlineSupported;
  }

  /**
   * Resolves when the fence signals; rejects with FenceError when it signalled with an error (its
   * `code` is the fence's: 'EIO', 'ECANCELED', …; the work it guards failed, so drop the buffer),
   * with TimeoutError (code 'ETIME') after `timeoutMs`, with AbortError when `signal` aborts, with
   * ClosedError if the SyncFile is closed first.
   * An already-signalled fence resolves without arming a watcher (fast path). The fd is watched
   * with libuv on Node's event loop (one uv_poll per SyncFile, shared by all its waits): no thread
   * blocks. A pending wait keeps the process alive, like a timer; pass `ref: false` to let the
   * process exit while it is pending. Any number of waits may be pending at once.
   */
  wait(options?: WaitOptions): Promise<void> {
    let fd: number;
    let timeoutMs: number | undefined;
    let signal: AbortSignal | undefined;
    let opts: Partial<WaitOptions>;
    try {
      fd = this.openFd('wait');
      opts = toOptions(options);
      timeoutMs = toTimeoutMs(opts.timeoutMs, 'options.timeoutMs');
      signal = toAbortSignal(opts.signal, 'options.signal');
      if (opts.ref !== undefined && typeof opts.ref !== 'boolean')
        throw new InvalidArgTypeError('options.ref', 'of type boolean', opts.ref);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#queue ??= new FdWaitQueue(
      fd,
      () => {
        if (!native.pollIn(fd, 0)) return false;
        throwIfFenceError(fd); // a throw rejects every pending wait with it
        return true;
      },
      this,
    );
    return this.#queue.wait({
      timeoutMs,
      signal,
      ref: opts.ref !== false,
      onTimeout: () => new TimeoutError('poll', { message: `ETIME: sync_file did not signal within ${timeoutMs} ms` }),
    });
  }

  /**
   * Blocks the thread until the fence signals or `timeoutMs` passes (poll(2)); throws
   * TimeoutError (code 'ETIME'), or FenceError when the fence signalled with an error.
   * Timeouts beyond poll's int range are waited out in slices.
   * For scripts: prefer wait() in anything with an event loop.
   */
  waitSync(timeoutMs = Infinity): void {
    warnIfBlockingMainThread('SyncFile#waitSync', timeoutMs);
    const ms = toTimeoutMs(timeoutMs);
    const fd = this.openFd('poll');
    if (ms === undefined) {
      while (!native.pollIn(fd, -1));
      throwIfFenceError(fd);
      return;
    }
    const end = process.hrtime.bigint() + BigInt(Math.ceil(Math.min(ms, MAX_TIMEOUT_MS) * 1e6));
    for (;;) {
      const left = Number(end - process.hrtime.bigint()) / 1e6;
      if (native.pollIn(fd, Math.max(0, Math.min(POLL_MAX_MS, Math.ceil(left))))) {
        throwIfFenceError(fd);
        return;
      }
      if (left <= POLL_MAX_MS) break;
    }
    throw new TimeoutError('poll', { message: `ETIME: sync_file did not signal within ${ms} ms` });
  }

  protected override beforeClose(): void {
    this.#queue?.close('SyncFile');
    this.#queue = null;
  }
}
