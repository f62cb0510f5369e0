/**
 * What binary syncobjs ({@link Syncobj}) and timelines ({@link Timeline}) share: the native calls,
 * the per-device feature probes, the handle-owning base class and the time model.
 * @module
 * @internal
 */
import { ClosedError, ExplicitSyncError, UnsupportedError, errnoNumber, isFdOpen, wrongFdError } from './errors';
import { SyncFile } from './sync-file';
import { WAIT_EVENTFD, countFd } from './census';
import { BackstopRecord, CreationSite, LeakBackstop, creationSite, reportLeak } from './leaks';
import { Device, kDeviceCloseHooks, kDeviceFd } from './device';
import { NativeCore, nativeFamily } from './native';
import { InvalidArgTypeError, InvalidArgValueError, OptionKeys, OutOfRangeError, toFd, toOptions, toTimeoutMs, toU64 } from './validate';
import { PointWaitOptions, WaitMechanism } from './syncobj-wait';
import { objectChannel, publishObject } from './trace/channels';
import { applyLabel, labelled, toLabel } from './trace/labels';
import { ASYNC_WAIT_KEYS, ParsedWait, SYNC_WAIT_KEYS, abortError, parseWait as parseWaitOptions } from './watcher';

/** native/syncobj.cc */
export interface NativeSyncobj extends NativeCore {
  syncobjCreate(fd: number, flags: number): number;
  syncobjDestroy(fd: number, handle: number): void;
  syncobjHandleToFd(fd: number, handle: number, flags: number, point: bigint): number;
  syncobjFdToHandle(fd: number, objFd: number, flags: number, handle: number, point: bigint): number;
  syncobjWait(fd: number, handles: number | Uint32Array, timeoutNs: bigint, flags: number, deadlineNs: bigint): number;
  syncobjTimelineWait(
    fd: number,
    handles: number | Uint32Array,
    points: bigint | BigUint64Array,
    timeoutNs: bigint,
    flags: number,
    deadlineNs: bigint,
  ): number;
  syncobjReset(fd: number, handles: number | Uint32Array): void;
  syncobjSignal(fd: number, handles: number | Uint32Array): void;
  syncobjQuery(fd: number, handle: number, flags: number): bigint;
  /** One QUERY of every handle; the kernel writes `points` (same length) in place. */
  syncobjQueryInto(fd: number, handles: Uint32Array, points: BigUint64Array, flags: number): void;
  syncobjTimelineSignal(fd: number, handles: number | Uint32Array, points: bigint | BigUint64Array): void;
  syncobjTransfer(fd: number, src: number, srcPoint: bigint, dst: number, dstPoint: bigint, flags: number): void;
  syncobjEventfd(fd: number, handle: number, point: bigint, flags: number, eventFd: number): void;
  clockMonotonic(): bigint;
  SYNCOBJ: {
    CREATE_SIGNALED: number;
    IMPORT_SYNC_FILE: number;
    IMPORT_TIMELINE: number;
    EXPORT_SYNC_FILE: number;
    EXPORT_TIMELINE: number;
    WAIT_ALL: number;
    WAIT_FOR_SUBMIT: number;
    WAIT_AVAILABLE: number;
    WAIT_DEADLINE: number;
    QUERY_LAST_SUBMITTED: number;
    ETIME: number;
  };
}

export const native = nativeFamily<NativeSyncobj>();
export const F = native.SYNCOBJ;
/** What the native waits return on timeout. */
export const TIMED_OUT = -F.ETIME;
/**
 * The flags of a wait for availability: WAIT_AVAILABLE with WAIT_FOR_SUBMIT, as Mesa passes them.
 * Kernels before the 2024 fix ("drm/syncobj: call drm_syncobj_fence_add_wait when WAIT_AVAILABLE
 * flag is set") arm the wake-on-submit callback only for WAIT_FOR_SUBMIT, so a blocking wait with
 * WAIT_AVAILABLE alone never wakes when the point is submitted later. (SYNCOBJ_EVENTFD refuses
 * WAIT_FOR_SUBMIT: registrations pass WAIT_AVAILABLE alone.)
 */
export const AVAILABLE_FLAGS = F.WAIT_AVAILABLE | F.WAIT_FOR_SUBMIT;

// ---------------------------------------------------------------------------------------------
// Feature probes

/** What a device's kernel and driver support for syncobjs. See `device.features`. */
export interface SyncobjFeatures {
  /** DRM_CAP_SYNCOBJ: binary syncobjs. */
  readonly syncobj: boolean;
  /** DRM_CAP_SYNCOBJ_TIMELINE: timeline syncobjs. */
  readonly timeline: boolean;
  /**
   * DRM_IOCTL_SYNCOBJ_EVENTFD (Linux ≥ 6.6, devices with timeline support): async waits wake on an
   * eventfd. Probed with a registration on handle 0, which answers ENOENT where the ioctl exists.
   */
  readonly eventfd: boolean;
  /**
   * DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE (Linux ≥ 6.8): the `fenceDeadline` wait option. Probed
   * with a DRM_IOCTL_SYNCOBJ_WAIT of no handles carrying the flag.
   */
  readonly waitDeadline: boolean;
  /**
   * The *_FLAGS_TIMELINE flags of DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD / FD_TO_HANDLE (Linux ≥ 6.16):
   * a timeline point is exported to / imported from a sync_file in one ioctl. Without them the
   * library goes through a temporary binary syncobj and DRM_IOCTL_SYNCOBJ_TRANSFER (same result).
   * Probed with an export of point 0 of handle 0, which answers ENOENT where the flag is known.
   */
  readonly timelineSyncFile: boolean;
  /**
   * How pending async waits learn about progress: 'eventfd' (an eventfd armed with
   * DRM_IOCTL_SYNCOBJ_EVENTFD and watched on the event loop), or 'poll' (a zero-timeout QUERY /
   * WAIT on a timer backing off from 1 ms to 32 ms). Neither ever blocks the event loop.
   */
  readonly waitMechanism: WaitMechanism;
}

const featureCache = new WeakMap<Device, SyncobjFeatures>();
const mechanismOverride = new WeakMap<Device, WaitMechanism>();

/** Whether `call` answers `expected` (true), or any other errno/success (false). */
function answers(expected: string, call: () => unknown): boolean {
  try {
    call();
    return false;
  } catch (err) {
    if (err instanceof ExplicitSyncError) return err.code === expected;
    throw err;
  }
}

/** The device's syncobj features, probed once per device (never from uname). */
export function syncobjFeatures(device: Device): SyncobjFeatures {
  let f = featureCache.get(device);
  if (f === undefined) {
    const fd = device[kDeviceFd]('features');
    const { syncobj, timeline } = device.caps;
    const eventfd = timeline && answers('ENOENT', () => native.syncobjEventfd(fd, 0, 0n, 0, -1));
    let waitDeadline = false;
    if (syncobj) {
      try {
        waitDeadline = native.syncobjWait(fd, new Uint32Array(0), 0n, F.WAIT_DEADLINE, 0n) >= 0;
      } catch (err) {
        if (!(err instanceof ExplicitSyncError)) throw err;
      }
    }
    const timelineSyncFile =
      timeline && answers('ENOENT', () => native.syncobjHandleToFd(fd, 0, F.EXPORT_SYNC_FILE | F.EXPORT_TIMELINE, 0n));
    f = Object.freeze({ syncobj, timeline, eventfd, waitDeadline, timelineSyncFile, waitMechanism: eventfd ? 'eventfd' : 'poll' });
    featureCache.set(device, f);
  }
  const forced = mechanismOverride.get(device);
  return forced === undefined || forced === f.waitMechanism ? f : Object.freeze({ ...f, waitMechanism: forced });
}

/**
 * @internal For tests: makes syncobjs created afterwards on `device` use `mechanism` ('poll' works
 * everywhere; 'eventfd' only where the kernel has it).
 */
export function setWaitMechanism(device: Device, mechanism: WaitMechanism | undefined): void {
  if (mechanism === undefined) mechanismOverride.delete(device);
  else mechanismOverride.set(device, mechanism);
}

/** UnsupportedError for a device without syncobj / timeline support. */
export function requireCap(device: Device, cap: 'syncobj' | 'timeline', call: string): void {
  if (cap === 'syncobj' ? device.caps.syncobj : device.caps.timeline) return;
  const feature =
    cap === 'syncobj'
      ? `syncobjs (DRM_CAP_SYNCOBJ) on ${device.driver.name} (${device.path})`
      : `timeline syncobjs (DRM_CAP_SYNCOBJ_TIMELINE) on ${device.driver.name} (${device.path})`;
  throw new UnsupportedError(errnoNumber('EOPNOTSUPP'), call, feature);
}

// ---------------------------------------------------------------------------------------------
// Handle-owning base class

/** @internal Method run after this library replaced the object's fence (transfer into it). */
export const kFenceReplaced: unique symbol = Symbol('explicit-sync.fenceReplaced');

/** @internal Method giving the device fd for a batched call (lib/syncobj-batch.ts); ClosedError when closed. */
export const kBatchFd: unique symbol = Symbol('explicit-sync.batchFd');

interface Held extends BackstopRecord {
  device: Device;
  handle: number;
  what: string;
  /** The user's label, for messages. */
  label?: string;
  /** Class name, for leak summaries. */
  kind: string;
  site: CreationSite | undefined;
  /** Eventfds the object's wait lanes keep open: uncounted with the handle (their native lanes close them). */
  fds: Set<number>;
}

/**
 * The default bound of waits on an imported syncobj or timeline: 10 s. An imported one may come
 * from another process, which can simply never submit or signal a point; this bound keeps such a
 * peer from hanging a wait forever (a blocking waitSync() above all). 10 s is the order of the
 * GPU-hang timeouts of common drivers (amdgpu's job timeout, vgem's own safety timer): a point
 * still unsignalled after it is almost certainly never coming.
 */
export const IMPORTED_DEFAULT_TIMEOUT_MS = 10_000;

/** Options of `device.importTimeline(fd, options)` and `device.importSyncobj(fd, options)`. */
export interface ImportOptions {
  /** A label for the imported object: shown in errors, events, `util.inspect` and inspect(). */
  label?: string;
  /**
   * The bound of every wait on the imported object that gives neither `timeoutMs` nor `deadline`,
   * async and blocking alike: such a wait rejects (throws) TimeoutError after this many
   * milliseconds. Default {@link IMPORTED_DEFAULT_TIMEOUT_MS}. `Infinity` opts out (waits without
   * a timeout are unbounded, as on a syncobj you created). A wait's own `timeoutMs` (`Infinity`
   * included) or `deadline` always wins.
   */
  defaultTimeoutMs?: number;
}

const IMPORT_KEYS: OptionKeys<ImportOptions> = { defaultTimeoutMs: true, label: true };

/** Validates import options: the default bound of waits (Infinity: none) and the label. */
export function toImportOptions(options: unknown): { bound: number; label: string | undefined } {
  const o = toOptions(options as ImportOptions | undefined, IMPORT_KEYS);
  const label = o.label === undefined ? undefined : toLabel(o.label, 'options.label');
  if (o.defaultTimeoutMs === undefined) return { bound: IMPORTED_DEFAULT_TIMEOUT_MS, label };
  return { bound: toTimeoutMs(o.defaultTimeoutMs, 'options.defaultTimeoutMs') ?? Infinity, label };
}

const leaks = new LeakBackstop<Held>((held) => {
  // The wait lanes' eventfds: their native lanes, collected with the object, close them.
  for (let n = held.fds.size; n > 0; n--) countFd(WAIT_EVENTFD, -1);
  if (held.device.closed) return; // the kernel freed the handle with the device's fd
  try {
    native.syncobjDestroy(held.device[kDeviceFd]('DRM_IOCTL_SYNCOBJ_DESTROY'), held.handle);
  } catch {
    // Nothing to report to: the owner is gone. The warning still says what leaked.
  }
  reportLeak(held.kind, `${labelled(held.what, held.label)} (handle ${held.handle}) was garbage-collected without close(); it was destroyed`, held.site);
});

/**
 * Base of objects that own a DRM syncobj handle. A handle lives on its Device's fd, so the object
 * keeps its Device alive (never the other way round). Same contract as the fd owners:
 * close() is idempotent (DRM_IOCTL_SYNCOBJ_DESTROY); after it `handle` is 0 and every method throws
 * ClosedError (code 'EBADF'); closing the Device first makes every method throw ClosedError too,
 * and rejects pending waits, rather than touch a stale handle; `using` works. A handle dropped
 * without close() is destroyed when garbage-collected, with a warning (code 'EXPLICIT_SYNC_LEAK').
 */
export abstract class SyncobjResource implements Disposable {
  readonly #device: Device;
  #handle: number;
  readonly #what: string;
  readonly #defaultTimeoutMs: number;
  /** The GC backstop's record (it must not hold `this`). */
  readonly #held: Held;
  /** The wait lanes' eventfds (the native lanes own them), shared with the GC backstop's record for the census. */
  protected readonly waitFds = new Set<number>();

  protected constructor(device: Device, handle: number, what: string, defaultTimeoutMs = Infinity) {
    this.#device = device;
    this.#handle = handle;
    this.#what = what;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#held = { device, handle, what, kind: new.target.name, site: creationSite(), fds: this.waitFds };
    leaks.register(this, this.#held);
    if (objectChannel.hasSubscribers) publishObject('open', this);
  }

  /** The syncobj's label (`{ label }` at creation or import, or {@link setLabel}), if any. */
  get label(): string | undefined {
    return this.#held.label;
  }

  /** Names the syncobj in errors, diagnostics_channel events, `util.inspect` and inspect(); returns it. */
  setLabel(label: string): this {
    applyLabel(this.#held, this, label);
    return this;
  }

  /** The Device whose fd this handle lives on. */
  get device(): Device {
    return this.#device;
  }

  /** The syncobj handle on the device's fd (for other DRM ioctls), or 0 once closed. */
  get handle(): number {
    return this.#handle;
  }

  /**
   * The bound of waits that give neither `timeoutMs` nor `deadline`, in milliseconds: Infinity (none)
   * for objects created here, {@link IMPORTED_DEFAULT_TIMEOUT_MS} (or what the import's
   * `defaultTimeoutMs` said) for imported ones.
   */
  get defaultTimeoutMs(): number {
    return this.#defaultTimeoutMs;
  }

  /** Whether close() was called, or the device closed. */
  get closed(): boolean {
    return this.#handle === 0 || this.#device.closed;
  }

  /** The device fd; ClosedError naming `call` when this object or its device is closed. */
  protected deviceFd(call: string): number {
    if (this.#handle === 0) throw new ClosedError(labelled(this.#what, this.#held.label), call);
    return this.#device[kDeviceFd](call);
  }

  /** The handle, for calls that already have the fd. */
  protected get liveHandle(): number {
    return this.#handle;
  }

  /** @internal The fence was replaced by this library (a transfer into it): re-check pending waits. */
  [kFenceReplaced](): void {}

  /** @internal The device fd for a batched call naming `call`; ClosedError as every method when closed. */
  [kBatchFd](call: string): number {
    return this.deviceFd(call);
  }

  /** Runs before the handle is destroyed: subclasses reject pending waits here. */
  protected beforeClose(): void {}

  /** Destroys the handle (DRM_IOCTL_SYNCOBJ_DESTROY). Idempotent; pending waits reject with ClosedError. */
  close(): void {
    const handle = this.#handle;
    if (handle === 0) return;
    if (objectChannel.hasSubscribers) publishObject('close', this);
    try {
      this.beforeClose();
    } finally {
      this.#handle = 0;
      leaks.unregister(this, this.#held);
      if (!this.#device.closed) native.syncobjDestroy(this.#device[kDeviceFd]('DRM_IOCTL_SYNCOBJ_DESTROY'), handle);
    }
  }

  /** Same as close(); never throws. */
  [Symbol.dispose](): void {
    try {
      this.close();
    } catch {
      // Dispose must not throw.
    }
  }

  /** Registers `hook` to run when the device closes (while waits are pending). */
  protected onDeviceClose(hook: () => void, active: boolean): void {
    if (this.#device.closed) return;
    if (active) this.#device[kDeviceCloseHooks].add(hook);
    else this.#device[kDeviceCloseHooks].delete(hook);
  }
}

// ---------------------------------------------------------------------------------------------
// Validation and the time model

/** A timeline point: bigint or safe-integer number in [0, 2^64); RangeError otherwise, before any ioctl. */
export function toPoint(value: unknown, name = 'point'): bigint {
  return toU64(value, name);
}

/** A point a fence can be put at: like {@link toPoint} but > 0 (point 0 would turn the timeline binary). */
export function toSignalPoint(value: unknown, name = 'point'): bigint {
  const p = toU64(value, name);
  if (p === 0n) throw new OutOfRangeError(name, '>= 1 (point 0 would replace the whole timeline)', value);
  return p;
}

export type { AsyncWaitOptions, ParsedWait, SyncWaitOptions, TimeOptions } from './watcher';

/**
 * Validates the options of a syncobj or timeline wait (async: {@link AsyncWaitOptions}, blocking:
 * {@link SyncWaitOptions}) with the one wait parser. A wait that gives neither `timeoutMs` nor
 * `deadline` is bounded by `defaultTimeoutMs` (the object's; Infinity: unbounded).
 */
export function parseWait(options: unknown, asyncWait: boolean, defaultTimeoutMs = Infinity): ParsedWait {
  return parseWaitOptions(options, { keys: asyncWait ? ASYNC_WAIT_KEYS : SYNC_WAIT_KEYS, defaultTimeoutMs });
}

/** The queue's per-wait options. */
export function queueOptions(w: ParsedWait): PointWaitOptions {
  return { timeoutMs: w.timeoutMs, signal: w.signal, ref: w.ref };
}

/** UnsupportedError when `fenceDeadline` is asked for on a kernel without WAIT_DEADLINE. */
export function checkFenceDeadline(device: Device, w: ParsedWait, call: string): void {
  if (w.fenceDeadline !== undefined && !syncobjFeatures(device).waitDeadline)
    throw new UnsupportedError(
      errnoNumber('EINVAL'),
      call,
      'fence deadline hints (DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE)',
      '6.8',
    );
}

/**
 * How long a wait waited, for messages; says so when it was an imported object's default bound
 * (`defaultTimeoutMs`), which the caller may not know it had.
 */
export function describeTimeout(timeoutMs: number, defaultTimeoutMs = Infinity): string {
  if (timeoutMs === 0) return 'at once (no timeout given)';
  if (timeoutMs === defaultTimeoutMs)
    return `within ${timeoutMs} ms (the default bound of waits on an imported syncobj: pass timeoutMs: Infinity to wait longer)`;
  return `within ${timeoutMs} ms`;
}

// ---------------------------------------------------------------------------------------------
// Several waits as one

/**
 * Runs one wait per entry with a shared AbortSignal: `all` resolves when every one did (-1), `any`
 * with the index of the first; the first rejection rejects. The others are cancelled either way so
 * that no wait is left pending.
 */
export function combineWaits(
  starts: readonly ((signal: AbortSignal) => Promise<void>)[],
  any: boolean,
  userSignal: AbortSignal | undefined,
): Promise<number> {
  if (userSignal?.aborted) return Promise.reject(abortError(userSignal));
  const ac = new AbortController();
  const onAbort = (): void => ac.abort(userSignal?.reason);
  userSignal?.addEventListener('abort', onAbort, { once: true });
  return new Promise<number>((resolve, reject) => {
    let left = starts.length;
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      userSignal?.removeEventListener('abort', onAbort);
      fn();
      ac.abort(); // cancels the waits still pending; their rejections are ignored
    };
    starts.forEach((start, i) => {
      start(ac.signal).then(
        () => {
          if (any) finish(() => resolve(i));
          else if (--left === 0) finish(() => resolve(-1));
        },
        (err: unknown) => finish(() => reject(err)),
      );
    });
  });
}

/**
 * Most entries one multi-wait takes. The kernel copies a wait's arrays with kmalloc (per entry
 * 64 bytes of wait state, at most KMALLOC_MAX_SIZE = 4 MiB on x86-64): beyond 65536 entries it
 * answers ENOMEM after a kernel WARN, which `panic_on_warn` systems turn into a panic.
 */
export const MAX_WAIT_ENTRIES = 65536;

/** Validates a non-empty array argument of at most {@link MAX_WAIT_ENTRIES} entries. */
export function toList<T>(value: unknown, name: string): T[] {
  if (!Array.isArray(value)) throw new InvalidArgTypeError(name, 'an array', value);
  if (value.length === 0) throw new InvalidArgValueError(name, 'must not be empty', value);
  if (value.length > MAX_WAIT_ENTRIES)
    throw new OutOfRangeError(`${name}.length`, `<= ${MAX_WAIT_ENTRIES} (the kernel's limit for one wait)`, value.length);
  return value as T[];
}

// ---------------------------------------------------------------------------------------------
// Ioctl helpers both classes use

/** The fd of a SyncFile argument; ClosedError (EBADF) when it is closed. */
export function syncFileFd(sf: unknown, name: string, call: string): number {
  if (!(sf instanceof SyncFile)) throw new InvalidArgTypeError(name, 'an instance of SyncFile', sf);
  if (sf.fd < 0) throw new ClosedError(`${name} (SyncFile)`, call);
  return sf.fd;
}

/** DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE of an opaque syncobj fd (the fd stays the caller's). */
export function importHandle(device: Device, fd: number, cap: 'syncobj' | 'timeline'): number {
  toFd(fd);
  requireCap(device, cap, 'DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE');
  const devFd = device[kDeviceFd]('DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE');
  try {
    return native.syncobjFdToHandle(devFd, fd, 0, 0, 0n);
  } catch (err) {
    // The kernel says EINVAL both for a closed fd and for an fd of another kind: say which.
    if (!(err instanceof ExplicitSyncError) || (err.code !== 'EINVAL' && isFdOpen(fd))) throw err;
    throw wrongFdError(fd, 'syncobj fd', 'DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE', err, -err.errno);
  }
}

/** Whether a (binary) handle holds a fence. Zero-timeout, never blocks. */
export function hasFence(device: Device, fd: number, handle: number): boolean {
  if (device.caps.timeline)
    return native.syncobjTimelineWait(fd, handle, 0n, 0n, AVAILABLE_FLAGS, 0n) >= 0;
  try {
    native.syncobjWait(fd, handle, 0n, 0, 0n); // no flags: EINVAL when there is no fence
    return true;
  } catch (err) {
    if (err instanceof ExplicitSyncError && err.code === 'EINVAL') return false;
    throw err;
  }
}

/**
 * @internal One multi-handle wait ioctl: DRM_IOCTL_SYNCOBJ_WAIT, or DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT
 * when there are points or the mode is 'available'. Returns first_signaled or TIMED_OUT.
 */
export function multiWait(
  device: Device,
  fd: number,
  handles: Uint32Array,
  w: Pick<ParsedWait, 'mode' | 'absNs' | 'fenceDeadline'>,
  all: boolean,
  points?: BigUint64Array,
): number {
  let flags = (all ? F.WAIT_ALL : 0) | (w.mode === 'available' ? AVAILABLE_FLAGS : F.WAIT_FOR_SUBMIT);
  if (w.fenceDeadline !== undefined) flags |= F.WAIT_DEADLINE;
  const deadline = w.fenceDeadline ?? 0n;
  if (points === undefined && w.mode === 'signaled') return native.syncobjWait(fd, handles, w.absNs, flags, deadline);
  requireCap(device, 'timeline', 'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
  return native.syncobjTimelineWait(fd, handles, points ?? new BigUint64Array(handles.length), w.absNs, flags, deadline);
}

