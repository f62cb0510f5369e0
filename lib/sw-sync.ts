/**
 * sw_sync: the kernel's CPU-controlled fence timelines (CONFIG_SW_SYNC, a debugfs test driver).
 * A timeline is a 32-bit counter; a fence made at point p is a sync_file that signals once the
 * counter reaches p. IGT and the kernel's sync selftests build their fences this way; here it is a
 * test source beside vgem, udmabuf and dma-heap: fences that signal exactly when you say, in any
 * order you say, with no GPU and no safety timer.
 *
 * Lifetimes: the timeline owns its fd (close() it, or `using` it). Its fences are independent
 * SyncFiles: they outlive the timeline. Closing the timeline with fences still unsignalled makes the
 * kernel signal them with an error (ENOENT), as it does when a process dies holding one.
 * @module
 */
import { constants as fsConstants } from 'node:fs';
import { ClosedError, ExplicitSyncError, UnsupportedError, errnoNumber } from './errors';
import { NativeCore, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import { SyncFile } from './sync-file';
import { InvalidArgValueError, OptionKeys, OutOfRangeError, InvalidArgTypeError, toInt, toOptions, toPath } from './validate';

/** native/sw_sync.cc */
interface NativeSwSync {
  swSyncCreateFence(fd: number, point: number, name: string): number;
  swSyncInc(fd: number, n: number): void;
  swSyncGetDeadline(fd: number, fenceFd: number): bigint;
}

const native = nativeFamily<NativeCore & NativeSwSync>();

/** Where debugfs shows the sw_sync driver (debugfs mounted at /sys/kernel/debug). */
export const SW_SYNC_PATH = '/sys/kernel/debug/sync/sw_sync';

const U32_MAX = 0xffffffff;
/** sw_sync_create_fence_data.name is 32 bytes with its NUL. */
const NAME_MAX_BYTES = 31;

/** Options for {@link SwSyncTimeline.createFence}. */
export interface SwSyncFenceOptions {
  /** The fence's name, at most 31 bytes of UTF-8 without NUL (default ''). */
  name?: string;
}

const FENCE_KEYS: OptionKeys<SwSyncFenceOptions> = { name: true };

/** A timeline point: an integer in [0, 2^32 - 1], as a number or bigint. */
function toPoint(value: unknown, name: string): number {
  if (typeof value === 'bigint') {
    if (value < 0n || value > BigInt(U32_MAX)) throw new OutOfRangeError(name, '>= 0 and <= 2^32 - 1', value);
    return Number(value);
  }
  if (typeof value !== 'number') throw new InvalidArgTypeError(name, 'of type number or bigint', value);
  return toInt(value, name, 0, U32_MAX);
}

/**
 * A sw_sync timeline: <debugfs>/sync/sw_sync opened once. Starts at 0; {@link advance} moves it on
 * and signals every fence at or below the new value.
 */
export class SwSyncTimeline extends FdResource {
  /** The debugfs file it was opened from. */
  readonly path: string;

  private constructor(fd: number, path: string) {
    super(fd, 'SwSyncTimeline');
    this.path = path;
  }

  /**
   * A new timeline (each open of the sw_sync file is one), O_RDWR | O_CLOEXEC.
   * @throws UnsupportedError (code 'ENOENT', feature 'sw_sync') when the file is missing: no sw_sync
   *   module loaded (Debian's kernels do not build CONFIG_SW_SYNC; the VM runner builds it out of
   *   tree) or debugfs not mounted at /sys/kernel/debug; ExplicitSyncError 'EACCES' (debugfs is root's).
   */
  static open(path: string = SW_SYNC_PATH): SwSyncTimeline {
    toPath(path);
    let fd: number;
    try {
      fd = native.open(path, fsConstants.O_RDWR);
    } catch (err) {
      if (err instanceof ExplicitSyncError && err.code === 'ENOENT') {
        throw new UnsupportedError(errnoNumber('ENOENT'), 'open', 'sw_sync', undefined, {
          detail: path,
          message: `ENOENT: sw_sync is not available: no ${path} (load the sw_sync module, CONFIG_SW_SYNC, and mount debugfs at /sys/kernel/debug), open '${path}'`,
        });
      }
      throw err;
    }
    return new SwSyncTimeline(fd, path);
  }

  /**
   * A fence on this timeline that signals when the timeline reaches `point`, as a new SyncFile
   * (SW_SYNC_IOC_CREATE_FENCE). A point the timeline has already reached gives a signalled fence.
   * Points compare as the kernel's 32-bit seqnos do (wrapping), so keep them within 2^31 of the
   * timeline's value.
   * @throws RangeError code 'ERR_OUT_OF_RANGE' for a point outside [0, 2^32 - 1];
   *   TypeError code 'ERR_INVALID_ARG_VALUE' for a name over 31 bytes or with NUL;
   *   ClosedError after close(); ExplicitSyncError 'ENOMEM', 'EMFILE'.
   */
  createFence(point: number | bigint, options?: SwSyncFenceOptions): SyncFile {
    const p = toPoint(point, 'point');
    const opts = toOptions(options, FENCE_KEYS);
    const name = opts.name === undefined ? '' : opts.name;
    if (typeof name !== 'string') throw new InvalidArgTypeError('options.name', 'of type string', name);
    if (name.includes('\0') || Buffer.byteLength(name) > NAME_MAX_BYTES) {
      throw new InvalidArgValueError('options.name', `must be at most ${NAME_MAX_BYTES} bytes without NUL`, name);
    }
    return SyncFile[kAdopt](native.swSyncCreateFence(this.openFd('SW_SYNC_IOC_CREATE_FENCE'), p, name));
  }

  /**
   * Advances the timeline by `n` (default 1) and signals every fence at or below its new value
   * (SW_SYNC_IOC_INC).
   * @throws RangeError code 'ERR_OUT_OF_RANGE' for `n` outside [0, 2^32 - 1]; ClosedError after close().
   */
  advance(n: number = 1): void {
    native.swSyncInc(this.openFd('SW_SYNC_IOC_INC'), toInt(n, 'n', 0, U32_MAX));
  }

  /**
   * The earliest deadline set on `fence` (with {@link SyncFile.setDeadline}, or a wait's
   * `fenceDeadline`), read back from the driver (SW_SYNC_GET_DEADLINE): an absolute CLOCK_MONOTONIC
   * time in nanoseconds, or undefined when none was set. It shows that a deadline reached the fence.
   * `fence` must hold one fence of a sw_sync timeline (any timeline: the kernel reads the fence).
   * @throws UnsupportedError (code 'ENOTTY', feature 'sw_sync deadlines') where the kernel's sw_sync
   *   predates the ioctl (6.1; 6.12 and 7.3 have it); ExplicitSyncError 'EINVAL' when `fence` is not
   *   one sw_sync fence (a merge of several, another driver's); TypeError
   *   (ERR_INVALID_ARG_TYPE) when it is not a SyncFile; ClosedError after close() of either.
   */
  deadlineOf(fence: SyncFile): bigint | undefined {
    if (!(fence instanceof SyncFile)) throw new InvalidArgTypeError('fence', 'an instance of SyncFile', fence);
    const fd = this.openFd('SW_SYNC_GET_DEADLINE');
    if (fence.closed) throw new ClosedError('SyncFile', 'SW_SYNC_GET_DEADLINE');
    try {
      return native.swSyncGetDeadline(fd, fence.fd);
    } catch (err) {
      if (!(err instanceof ExplicitSyncError)) throw err;
      if (err.code === 'ENOENT') return undefined;
      if (err.code === 'ENOTTY') throw new UnsupportedError(-err.errno, 'SW_SYNC_GET_DEADLINE', 'sw_sync deadlines');
      throw err;
    }
  }

  /** @internal */
  toString(): string {
    return `SwSyncTimeline(${this.path})`;
  }
}
