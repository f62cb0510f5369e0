/**
 * sync_file: a fence you hold as an fd (from a dma-buf, a syncobj, a Wayland client, Vulkan, EGL).
 * @module
 */
import { warnIfBlockingMainThread } from './blocking';
import { ExplicitSyncError, FenceError, TimeoutError, UnsupportedError, errnoCode, errnoNumber, wrongFdError } from './errors';
import { NativeCore, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import { MAX_DEADLINE_AHEAD_MS, monotonicNow, toDeadline } from './clock';
import { InvalidArgTypeError, InvalidArgValueError, OptionKeys, OutOfRangeError, toFd, toOptions } from './validate';
import { kPendingWaits } from './trace/inspect';
import { mergeChannel, publishMerge, traceWait, waitChannel } from './trace/channels';
import { labelled } from './trace/labels';
import { ASYNC_WAIT_KEYS, FdWaitQueue, ParsedWait, SYNC_WAIT_KEYS, TimeOptions, WaitOptions, parseWait } from './watcher';

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

const DUP_KEYS: OptionKeys<{ dup?: boolean }> = { dup: true };

/** @internal Validates `{ dup }` options of the fromFd() factories. */
export function toDupOption(options: { dup?: boolean } | undefined): boolean {
  const opts = toOptions(options, DUP_KEYS);
  if (opts.dup !== undefined && typeof opts.dup !== 'boolean')
    throw new InvalidArgTypeError('options.dup', 'of type boolean', opts.dup);
  return opts.dup === true;
}

/**
 * @internal One SyncFile or a non-empty array of them (the argument of the importSyncFile()
 * calls), as an array; TypeError naming the bad element, ERR_INVALID_ARG_VALUE for an empty array.
 */
export function toSyncFiles(value: unknown, name = 'syncFiles'): SyncFile[] {
  const list: unknown[] = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw new InvalidArgValueError(name, 'must name at least one SyncFile', value);
  list.forEach((sf, i) => {
    if (!(sf instanceof SyncFile))
      throw new InvalidArgTypeError(Array.isArray(value) ? `${name}[${i}]` : name, 'an instance of SyncFile (or an array of them)', sf);
  });
  return list as SyncFile[];
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

/** Options of {@link SyncFile.wait} and {@link DmaBuf.beginCpuAccessAsync}. */
export interface SyncFileWaitOptions extends WaitOptions {
  /**
   * Only 'signaled' (the default). A sync_file always holds its fence (it is "available" from the
   * moment it exists), so `until: 'available'` is refused with ERR_INVALID_ARG_VALUE rather than
   * resolving at once, which would look like a wait for the signal.
   */
  until?: 'signaled';
  /**
   * Hint for the fence's driver: it should signal by this CLOCK_MONOTONIC instant (bigint ns; same
   * bounds as `deadline`). Sent with {@link SyncFile.setDeadline} (SYNC_IOC_SET_DEADLINE) before
   * waiting: UnsupportedError on Linux < 6.7.
   */
  fenceDeadline?: bigint;
}

/** Options of {@link SyncFile.waitSync}. */
export interface SyncFileWaitSyncOptions extends TimeOptions {
  /** Only 'signaled' (the default); see {@link SyncFileWaitOptions.until}. */
  until?: 'signaled';
  /** As for {@link SyncFileWaitOptions.fenceDeadline}. */
  fenceDeadline?: bigint;
}

// The same keys as every other wait's (watcher.ts); only `until` narrows, in parseSyncFileWait.
const WAIT_KEYS: OptionKeys<SyncFileWaitOptions> = ASYNC_WAIT_KEYS;
const WAIT_SYNC_KEYS: OptionKeys<SyncFileWaitSyncOptions> = SYNC_WAIT_KEYS;
const NO_AVAILABLE =
  "must be 'signaled' (the default): a sync_file always holds its fence, so it is 'available' from the " +
  "start and there is nothing to wait for; drop the option to wait for the signal";

/**
 * @internal Validates the options of a sync_file wait ({@link SyncFile.wait}, or with `blocking`
 * {@link SyncFile.waitSync}): the one wait parser, with `until: 'available'` refused.
 */
export function parseSyncFileWait(options: unknown, blocking = false): ParsedWait {
  return parseWait(options, { keys: blocking ? WAIT_SYNC_KEYS : WAIT_KEYS, modes: ['signaled'], refusedMode: NO_AVAILABLE });
}

/** The timeout message of a sync_file wait. */
function timeoutMessage(w: ParsedWait, label: string | undefined): string {
  const bound = w.deadline !== undefined ? 'by its deadline' : `within ${w.timeoutMs} ms`;
  return `ETIME: ${labelled('sync_file', label)} did not signal ${bound}`;
}

/** @internal Module-private key of SyncFile's wait on already parsed options (for DmaBuf). */
export const kWaitParsed: unique symbol = Symbol('explicit-sync.syncFileWaitParsed');

/** Options for {@link SyncFile.merge}. */
export interface MergeOptions {
  /**
   * The merged sync_file's name (at most 31 bytes): its kernel name (SYNC_IOC_FILE_INFO, debugfs)
   * and its label. Default: empty, so the kernel derives one.
   */
  name?: string;
}

const MERGE_KEYS: OptionKeys<MergeOptions> = { name: true };

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

/** When the sync_file at `fd` signalled: the latest of its fences' kernel timestamps (undefined while active). */
function signalTime(fd: number): bigint | undefined {
  let last: bigint | undefined;
  for (const f of readInfo(fd).fences) {
    if (f.timestampNs === undefined) return undefined;
    if (last === undefined || f.timestampNs > last) last = f.timestampNs;
  }
  return last;
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

/** FdResource's adoption option for sync_files: identity by kind (see resource.ts). */
const SYNC_FILE = { syncFile: true } as const;

/**
 * A sync_file fence. Owns its fd: close() it, or `using` it. Every method after close() throws
 * ClosedError (code 'EBADF').
 */
export class SyncFile extends FdResource {
  #queue: FdWaitQueue | null = null;

  /** @internal Use SyncFile.fromFd() or the APIs that return sync files. Takes ownership of fd. */
  protected constructor(fd: number) {
    super(fd, 'SyncFile', SYNC_FILE);
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
    const opts = toOptions(options, MERGE_KEYS);
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
    const merged = new SyncFile(fd);
    if (name !== '') merged.setLabel(name);
    if (mergeChannel.hasSubscribers) publishMerge('merge', [this, ...others], merged, name);
    return merged;
  }

  /** A second SyncFile for the same fence, with its own fd (F_DUPFD_CLOEXEC). */
  dup(): SyncFile {
    const copy = new SyncFile(native.dup(this.openFd('fcntl')));
    if (this.label !== undefined) copy.setLabel(this.label);
    if (mergeChannel.hasSubscribers) publishMerge('dup', [this], copy);
    return copy;
  }

  /** @internal Pending async waits (for inspect()). */
  get [kPendingWaits](): number {
    return this.#queue?.pending ?? 0;
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
   *   {@link monotonicNow}); a number is milliseconds from now. Either must lie at most 10 years
   *   ahead ({@link MAX_DEADLINE_AHEAD_NS}): a later one is a RangeError (ERR_OUT_OF_RANGE), as it
   *   is almost certainly a wall-clock time (`Date.now()`); 2^63 - 1 ns (no deadline) is accepted.
   * @throws UnsupportedError (code 'ENOTTY', since '6.7') on older kernels; the answer is cached.
   *   ClosedError after close().
   */
  setDeadline(deadline: bigint | number): void {
    let ns: bigint;
    if (typeof deadline === 'number') {
      if (!Number.isFinite(deadline) || deadline < 0 || deadline > MAX_DEADLINE_AHEAD_MS)
        throw new OutOfRangeError(
          'deadline',
          `a finite number >= 0 and <= ${MAX_DEADLINE_AHEAD_MS} (ms from now: 10 years). A wall-clock time such as Date.now() is not a deadline: pass ms from now, or a bigint monotonicNow() + ms * 1_000_000n`,
          deadline,
        );
      ns = toDeadline(deadline, 'deadline', monotonicNow() + BigInt(Math.round(deadline * 1e6)));
    } else {
      ns = toDeadline(deadline, 'deadline');
    }
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
    const fd = this.openFd('SYNC_IOC_SET_DEADLINE'); // ClosedError after close(), cached answer or not
    deadlineSupported ??= native.syncFileProbeDeadline(fd) !== errnoNumber('ENOTTY');
    return deadlineSupported;
  }

  /**
   * Resolves when the fence signals; rejects with FenceError when it signalled with an error (its
   * `code` is the fence's: 'EIO', 'ECANCELED', …; the work it guards failed, so drop the buffer),
   * with TimeoutError (code 'ETIME', syscall 'poll') after `timeoutMs` or at `deadline`, with
   * AbortError when `signal` aborts, with ClosedError if the SyncFile is closed first.
   * `fenceDeadline` is sent first with {@link setDeadline} (UnsupportedError on Linux < 6.7).
   * `until` may only be 'signaled' (see {@link SyncFileWaitOptions.until}); any other option, or
   * an unknown key, rejects with a TypeError/RangeError before anything is waited for.
   * An already-signalled fence resolves without arming a watcher (fast path). The fd is watched
   * on Node's event loop in the thread's one epoll set for fd waits (one entry per SyncFile, shared
   * by all its waits; the set is one fd kept for the thread's life): no thread blocks. A pending wait keeps the process alive, like a timer; pass `ref: false` to let the
   * process exit while it is pending. Any number of waits may be pending at once.
   */
  wait(options?: SyncFileWaitOptions): Promise<void> {
    let w: ParsedWait;
    try {
      this.openFd('poll');
      w = parseSyncFileWait(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this[kWaitParsed](w);
  }

  /** @internal {@link wait} with options parsed by {@link parseSyncFileWait}. */
  [kWaitParsed](w: ParsedWait): Promise<void> {
    let fd: number;
    try {
      fd = this.openFd('poll');
      if (w.fenceDeadline !== undefined) this.setDeadline(w.fenceDeadline);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#queue ??= new FdWaitQueue(
      fd,
      (readable, status) => {
        // Readable is signalled for good: a report of the epoll set needs no poll(2) to confirm it,
        // and comes with the fence's status (NaN when it could not be read: ask again, and throw).
        if (readable && !Number.isNaN(status)) {
          if (status < 0) throw new FenceError(status); // rejects every pending wait with it
          return status > 0;
        }
        if (!readable && !native.pollIn(fd, 0)) return false;
        throwIfFenceError(fd);
        return true;
      },
      this,
      true,
    );
    const queue = this.#queue;
    const start = (): Promise<void> =>
      queue.wait({
        timeoutMs: w.timeoutMs,
        signal: w.signal,
        ref: w.ref,
        onTimeout: () => new TimeoutError('poll', { operation: 'wait', message: timeoutMessage(w, this.label) }),
      });
    return waitChannel.hasSubscribers ? traceWait(this, undefined, 'signaled', 'uv_poll', w.timeoutMs, start, () => (this.closed ? undefined : signalTime(fd))) : start();
  }

  /**
   * Blocks the thread until the fence signals, or until `timeoutMs` passes or `deadline` comes
   * (poll(2)); throws TimeoutError (code 'ETIME'), or FenceError when the fence signalled with an
   * error. Takes the options of {@link wait} that mean something without an event loop
   * (`timeoutMs`, `deadline`, `until`, `fenceDeadline`), like Timeline#waitSync; a bare number is
   * still accepted as `{ timeoutMs }`. Timeouts beyond poll's int range are waited out in slices.
   * For scripts: prefer wait() in anything with an event loop.
   */
  waitSync(options?: SyncFileWaitSyncOptions | number): void {
    const w = parseSyncFileWait(typeof options === 'number' ? { timeoutMs: options } : options, true);
    warnIfBlockingMainThread('SyncFile#waitSync', w.timeoutMs ?? Infinity);
    const fd = this.openFd('poll');
    if (w.fenceDeadline !== undefined) this.setDeadline(w.fenceDeadline);
    if (w.timeoutMs === undefined) {
      while (!native.pollIn(fd, -1));
      throwIfFenceError(fd);
      return;
    }
    for (;;) {
      const left = Number(w.absNs - monotonicNow()) / 1e6;
      if (native.pollIn(fd, Math.max(0, Math.min(POLL_MAX_MS, Math.ceil(left))))) {
        throwIfFenceError(fd);
        return;
      }
      if (left <= POLL_MAX_MS) break;
    }
    throw new TimeoutError('poll', { operation: 'waitSync', message: timeoutMessage(w, this.label) });
  }

  protected override beforeClose(): void {
    this.#queue?.close('SyncFile');
    this.#queue = null;
  }
}
