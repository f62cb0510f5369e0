/**
 * Binary DRM syncobjs: a kernel container for one fence, named by a handle on a DRM device's fd.
 * Also adds `createSyncobj()`, `importSyncobj()` and `features` to {@link Device}.
 * @module
 */
import { warnIfBlockingMainThread } from './blocking';
import { Device, kDeviceFd } from './device';
import { ExplicitSyncError, TimeoutError } from './errors';
import { SyncFile } from './sync-file';
import { kAdopt } from './resource';
import {
  AVAILABLE_FLAGS,
  AsyncWaitOptions,
  F,
  ImportOptions,
  ParsedWait,
  SyncWaitOptions,
  SyncobjFeatures,
  SyncobjResource,
  TIMED_OUT,
  checkFenceDeadline,
  combineWaits,
  describeTimeout,
  hasFence,
  importHandle,
  kFenceReplaced,
  multiWait,
  native,
  parseWait,
  queueOptions,
  requireCap,
  syncFileFd,
  syncobjFeatures,
  toImportOptions,
  toList,
} from './syncobj-core';
import { abortError } from './watcher';
import { binarySignalAll } from './syncobj-batch';
import { kPendingWaits } from './trace/inspect';
import { toLabel } from './trace/labels';
import { publishSignal, publishSyncFile, signalChannel, syncFileChannel, traceWait, waitChannel } from './trace/channels';
import { PointWaitQueue, WaitMode, WaitSource } from './syncobj-wait';
import { InvalidArgTypeError, InvalidArgValueError, OptionKeys, toOptions } from './validate';

export type { AsyncWaitOptions, ImportOptions, SyncWaitOptions, SyncobjFeatures, TimeOptions } from './syncobj-core';
export { IMPORTED_DEFAULT_TIMEOUT_MS, MAX_WAIT_ENTRIES, SyncobjResource } from './syncobj-core';
export type { WaitMechanism, WaitMode } from './syncobj-wait';
export { MAX_WAIT_REGISTRATIONS } from './syncobj-wait';

/** Options for `device.createSyncobj()`. */
export interface CreateSyncobjOptions {
  /** Start signalled (DRM_SYNCOBJ_CREATE_SIGNALED: holds an already-signalled stub fence). */
  signaled?: boolean;
  /** A label: shown in errors, diagnostics_channel events, `util.inspect` and inspect(). */
  label?: string;
}

const CREATE_KEYS: OptionKeys<CreateSyncobjOptions> = { signaled: true, label: true };

/**
 * A binary DRM syncobj (DRM_CAP_SYNCOBJ): holds at most one fence. "Signalled" means its fence has
 * signalled; a syncobj with no fence yet (created unsignalled, or reset) is "unsubmitted".
 * Create with `device.createSyncobj()`, import with `device.importSyncobj(fd)`. Owns its handle:
 * close() it, or `using` it. Cheap calls are synchronous ioctls; waits are promises that never block
 * the event loop.
 */
export class Syncobj extends SyncobjResource {
  #queue: PointWaitQueue | null = null;
  readonly #onDeviceClose = (): void => {
    this.#queue?.close(`Syncobj (its Device ${this.device.path} was closed)`);
    this.#queue = null;
  };

  /** @internal Use device.createSyncobj() / device.importSyncobj(). Takes ownership of the handle. */
  protected constructor(device: Device, handle: number, defaultTimeoutMs = Infinity) {
    super(device, handle, 'Syncobj', defaultTimeoutMs);
  }

  /**
   * @internal Wraps a handle this library just created or imported on `device` (takes ownership);
   * `defaultTimeoutMs` bounds waits that give no timeout (Infinity: none).
   */
  static [kAdopt](device: Device, handle: number, defaultTimeoutMs = Infinity): Syncobj {
    return new Syncobj(device, handle, defaultTimeoutMs);
  }

  /**
   * Replaces the fence with an already-signalled one (DRM_IOCTL_SYNCOBJ_SIGNAL).
   * @throws ClosedError once closed.
   */
  signal(): void {
    native.syncobjSignal(this.deviceFd('DRM_IOCTL_SYNCOBJ_SIGNAL'), this.liveHandle);
    if (signalChannel.hasSubscribers) publishSignal(this, 'signal', undefined);
    this.#queue?.poke(true);
  }

  /**
   * Removes the fence: the syncobj is unsubmitted again (DRM_IOCTL_SYNCOBJ_RESET).
   * @throws ClosedError once closed.
   */
  reset(): void {
    native.syncobjReset(this.deviceFd('DRM_IOCTL_SYNCOBJ_RESET'), this.liveHandle);
    if (signalChannel.hasSubscribers) publishSignal(this, 'reset', undefined);
    this.#queue?.poke(true);
  }

  /**
   * Whether the fence has signalled: a zero-timeout DRM_IOCTL_SYNCOBJ_WAIT (ETIME → false; no fence
   * → false). Never blocks.
   */
  isSignaled(): boolean {
    return native.syncobjWait(this.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT'), this.liveHandle, 0n, F.WAIT_FOR_SUBMIT, 0n) >= 0;
  }

  /** Whether it holds a fence at all (signalled or not). Never blocks. */
  hasFence(): boolean {
    return hasFence(this.device, this.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT'), this.liveHandle);
  }

  /**
   * Resolves once the fence has signalled (`until: 'signaled'`, the default) or once there is a fence
   * (`until: 'available'`). Already there → resolves without arming anything. Otherwise waits on the
   * event loop (device.features.waitMechanism: an eventfd armed with DRM_IOCTL_SYNCOBJ_EVENTFD, or a
   * backing-off zero-timeout check); waits on one syncobj share one eventfd per mode.
   *
   * A wait follows the syncobj's fence, whoever replaces it: changes made through this object
   * (signal, reset, importSyncFile, a transfer into it) are seen at once. A change made through
   * another handle or by another process (a Vulkan binary semaphore exported as an opaque fd is
   * re-signalled this way) is seen when the kernel next wakes the wait: the kernel binds a pending
   * wait to the fence present when it armed, so the wait wakes when that fence signals, looks
   * again, and if the fence there now has not signalled, re-arms on it. (A fence that replaced one
   * which never signals is thus seen only once the old one does: the kernel's blocking waits bind
   * the same way.) Waits keep their kernel registration across idle periods and re-use it; see
   * MAX_WAIT_REGISTRATIONS for the bound.
   *
   * Rejects with TimeoutError (code 'ETIME', `reason` 'unsubmitted' when there never was a fence,
   * 'unsignaled' when it did not signal) after `timeoutMs` or at `deadline`; AbortError on `signal`;
   * ClosedError when the syncobj or its device is closed first; TypeError/RangeError for bad options;
   * UnsupportedError for `fenceDeadline` on Linux < 6.8.
   */
  wait(options?: AsyncWaitOptions): Promise<void> {
    let w: ParsedWait;
    try {
      w = parseWait(options, true, this.defaultTimeoutMs);
      this.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT');
      checkFenceDeadline(this.device, w, 'DRM_IOCTL_SYNCOBJ_WAIT');
      if (w.fenceDeadline !== undefined) this.#hint(w.fenceDeadline);
    } catch (err) {
      return Promise.reject(err);
    }
    if (waitChannel.hasSubscribers)
      return traceWait(this, undefined, w.mode, syncobjFeatures(this.device).waitMechanism, w.timeoutMs, () => this.#waits().wait(0n, w.mode, queueOptions(w)));
    return this.#waits().wait(0n, w.mode, queueOptions(w));
  }

  /** @internal Pending async waits (for inspect()). */
  get [kPendingWaits](): number {
    return this.#queue?.pending ?? 0;
  }

  /**
   * Blocks the thread until the fence signals (or, with `until: 'available'`, exists), or the
   * timeout passes: DRM_IOCTL_SYNCOBJ_WAIT with WAIT_FOR_SUBMIT (DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT with
   * WAIT_AVAILABLE for 'available'), absolute CLOCK_MONOTONIC timeout. For scripts and worker threads:
   * prefer wait() wherever there is an event loop.
   * @throws TimeoutError (reason 'unsubmitted' | 'unsignaled'); ClosedError; UnsupportedError.
   */
  waitSync(options?: SyncWaitOptions): void {
    const w = parseWait(options, false, this.defaultTimeoutMs);
    warnIfBlockingMainThread('Syncobj#waitSync', w.timeoutMs);
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT');
    checkFenceDeadline(this.device, w, 'DRM_IOCTL_SYNCOBJ_WAIT');
    if (multiWait(this.device, fd, Uint32Array.of(this.liveHandle), w, true) === TIMED_OUT)
      throw this.#timeoutError(w.mode, w.timeoutMs ?? 0);
  }

  /**
   * Puts the sync_file's fence into this syncobj, replacing its fence
   * (DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE with IMPORT_SYNC_FILE). The SyncFile stays open and yours.
   * @throws ClosedError when either is closed; ExplicitSyncError EINVAL when it is not a sync_file.
   */
  importSyncFile(syncFile: SyncFile): void {
    const sfd = syncFileFd(syncFile, 'syncFile', 'DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE');
    native.syncobjFdToHandle(this.deviceFd('DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE'), sfd, F.IMPORT_SYNC_FILE, this.liveHandle, 0n);
    if (syncFileChannel.hasSubscribers) publishSyncFile('import', this, undefined, [syncFile]);
    this.#queue?.poke(true);
  }

  /**
   * A new sync_file holding the current fence (DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD with EXPORT_SYNC_FILE).
   * @throws ExplicitSyncError EINVAL when there is no fence yet (unsubmitted; the message says so);
   *   ClosedError.
   */
  exportSyncFile(): SyncFile {
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD');
    try {
      const sf = SyncFile[kAdopt](native.syncobjHandleToFd(fd, this.liveHandle, F.EXPORT_SYNC_FILE, 0n));
      if (syncFileChannel.hasSubscribers) publishSyncFile('export', this, undefined, [sf]);
      return sf;
    } catch (err) {
      if (err instanceof ExplicitSyncError && err.code === 'EINVAL' && !hasFence(this.device, fd, this.liveHandle))
        throw new ExplicitSyncError(err.errno, 'DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD', {
          message: `EINVAL: Syncobj ${this.liveHandle} has no fence to export (never submitted, or reset), DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD`,
          cause: err,
        });
      throw err;
    }
  }

  /**
   * An opaque fd for the syncobj itself, to share it with another process or device
   * (DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, O_CLOEXEC). The fd is yours: close it (fs.closeSync) when done.
   * Import it with `device.importSyncobj(fd)`.
   */
  exportFd(): number {
    return native.syncobjHandleToFd(this.deviceFd('DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD'), this.liveHandle, 0, 0n);
  }

  /**
   * Resolves once every syncobj has signalled (or, with `until: 'available'`, has a fence). Checks
   * first with one zero-timeout DRM_IOCTL_SYNCOBJ_WAIT with WAIT_ALL when they share a device, then
   * waits on the event loop. Rejects like {@link Syncobj.wait} (the first failure wins; the other
   * waits are cancelled).
   */
  static waitAll(syncobjs: readonly Syncobj[], options?: AsyncWaitOptions): Promise<void> {
    return Syncobj.#waitMany(syncobjs, options, false).then(() => undefined);
  }

  /**
   * Resolves with the index of a syncobj that has signalled (first_signaled of a zero-timeout
   * DRM_IOCTL_SYNCOBJ_WAIT when one already has, else the first to signal). Rejects like
   * {@link Syncobj.wait}.
   */
  static waitAny(syncobjs: readonly Syncobj[], options?: AsyncWaitOptions): Promise<number> {
    return Syncobj.#waitMany(syncobjs, options, true);
  }

  /**
   * Blocking DRM_IOCTL_SYNCOBJ_WAIT with WAIT_ALL (all on one device).
   * @throws TimeoutError; InvalidArgValueError when they are on different devices.
   */
  static waitAllSync(syncobjs: readonly Syncobj[], options?: SyncWaitOptions): void {
    Syncobj.#waitManySync(syncobjs, options, true);
  }

  /**
   * Blocking DRM_IOCTL_SYNCOBJ_WAIT without WAIT_ALL; returns the kernel's first_signaled index.
   * @throws TimeoutError; InvalidArgValueError when they are on different devices.
   */
  static waitAnySync(syncobjs: readonly Syncobj[], options?: SyncWaitOptions): number {
    return Syncobj.#waitManySync(syncobjs, options, false);
  }

  /**
   * Signals every syncobj of the list (puts an already-signalled fence in each) with one
   * DRM_IOCTL_SYNCOBJ_SIGNAL per device, as {@link Syncobj.signal} does for one.
   * @throws TypeError for a bad list; ClosedError when one of them or its device is closed
   *   (checked before anything is signalled).
   */
  static signalAll(syncobjs: readonly Syncobj[]): void {
    binarySignalAll(Syncobj.#check(syncobjs), false);
  }

  /** Resets every syncobj of the list (DRM_IOCTL_SYNCOBJ_RESET, one per device), as {@link Syncobj.reset}. */
  static resetAll(syncobjs: readonly Syncobj[]): void {
    binarySignalAll(Syncobj.#check(syncobjs), true);
  }

  static #check(list: unknown): Syncobj[] {
    const items = toList<Syncobj>(list, 'syncobjs');
    items.forEach((s, i) => {
      if (!(s instanceof Syncobj)) throw new InvalidArgTypeError(`syncobjs[${i}]`, 'an instance of Syncobj', s);
    });
    return items;
  }

  static #waitMany(list: readonly Syncobj[], options: AsyncWaitOptions | undefined, any: boolean): Promise<number> {
    let items: Syncobj[];
    let w: ParsedWait;
    try {
      items = Syncobj.#check(list);
      w = parseWait(options, true);
      if (w.signal?.aborted) return Promise.reject(abortError(w.signal));
      const device = items[0]!.device;
      if (items.every((s) => s.device === device) && (w.mode === 'signaled' || device.caps.timeline)) {
        const fd = items[0]!.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT');
        for (const s of items) s.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT');
        const handles = Uint32Array.from(items, (s) => s.liveHandle);
        const first = multiWait(device, fd, handles, { ...w, absNs: 0n, fenceDeadline: undefined }, !any);
        if (first !== TIMED_OUT) return Promise.resolve(any ? first : -1);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const opts = { ...options, signal: undefined };
    return combineWaits(
      items.map((s) => (signal: AbortSignal) => s.wait({ ...opts, signal })),
      any,
      w.signal,
    );
  }

  static #waitManySync(list: readonly Syncobj[], options: SyncWaitOptions | undefined, all: boolean): number {
    const items = Syncobj.#check(list);
    const bound = items.reduce((m, s) => Math.min(m, s.defaultTimeoutMs), Infinity);
    const w = parseWait(options, false, bound);
    const device = items[0]!.device;
    if (!items.every((s) => s.device === device))
      throw new InvalidArgValueError('syncobjs', 'must all be on the same Device for a blocking wait', list);
    const fd = items[0]!.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT');
    for (const s of items) s.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT');
    checkFenceDeadline(device, w, 'DRM_IOCTL_SYNCOBJ_WAIT');
    const first = multiWait(device, fd, Uint32Array.from(items, (s) => s.liveHandle), w, all);
    if (first === TIMED_OUT) {
      const states = items.map((s) => s.hasFence());
      const unsubmitted = all ? states.includes(false) : !states.includes(true);
      throw new TimeoutError('DRM_IOCTL_SYNCOBJ_WAIT', {
        reason: unsubmitted ? 'unsubmitted' : 'unsignaled',
        message:
          `ETIME: ${all ? 'not all' : 'none'} of ${items.length} syncobjs ${w.mode === 'available' ? 'got a fence' : 'signalled'} ` +
          `${describeTimeout(w.timeoutMs ?? 0, bound)} (${states.filter((x) => !x).length} never submitted), DRM_IOCTL_SYNCOBJ_WAIT`,
      });
    }
    return all ? -1 : first;
  }

  /** @internal A transfer replaced the fence: re-arm pending waits. */
  override [kFenceReplaced](): void {
    this.#queue?.poke(true);
  }

  protected override beforeClose(): void {
    this.#queue?.close('Syncobj');
    this.#queue = null;
  }

  #waits(): PointWaitQueue {
    if (this.#queue === null) {
      const source: WaitSource = {
        level: (mode) => {
          const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT');
          if (mode === 'available') return hasFence(this.device, fd, this.liveHandle) ? 0n : -1n;
          return native.syncobjWait(fd, this.liveHandle, 0n, F.WAIT_FOR_SUBMIT, 0n) >= 0 ? 0n : -1n;
        },
        arm: (eventFd, _point, mode) =>
          native.syncobjEventfd(
            this.deviceFd('DRM_IOCTL_SYNCOBJ_EVENTFD'),
            this.liveHandle,
            0n,
            mode === 'available' ? F.WAIT_AVAILABLE : 0,
            eventFd,
          ),
        laneLevel: (mode) => {
          const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT');
          const handle = this.liveHandle;
          if (mode === 'signaled') return { kind: 'wait', fd, handle, flags: F.WAIT_FOR_SUBMIT };
          // hasFence()'s ioctl; the eventfd mechanism implies timeline support
          return { kind: 'timelineWait', fd, handle, flags: AVAILABLE_FLAGS };
        },
        timeoutError: (_point, mode, timeoutMs) => this.#timeoutError(mode, timeoutMs),
      };
      this.#queue = new PointWaitQueue(
        source,
        syncobjFeatures(this.device).waitMechanism,
        (active) => this.onDeviceClose(this.#onDeviceClose, active),
        this.waitFds,
      );
    }
    return this.#queue;
  }

  #timeoutError(mode: WaitMode, timeoutMs: number): TimeoutError {
    const fenced = hasFence(this.device, this.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT'), this.liveHandle);
    const what = `Syncobj ${this.liveHandle}`;
    const message = fenced
      ? `ETIME: ${what} has a fence that did not signal ${describeTimeout(timeoutMs, this.defaultTimeoutMs)}, DRM_IOCTL_SYNCOBJ_WAIT`
      : `ETIME: ${what} was never submitted: no fence ${mode === 'available' ? 'arrived' : 'to wait for'} ${describeTimeout(timeoutMs, this.defaultTimeoutMs)}, DRM_IOCTL_SYNCOBJ_WAIT`;
    return new TimeoutError('DRM_IOCTL_SYNCOBJ_WAIT', { reason: fenced ? 'unsignaled' : 'unsubmitted', message });
  }

  /** Passes a fence deadline hint to the current fence (a zero-timeout wait with WAIT_DEADLINE). */
  #hint(deadline: bigint): void {
    native.syncobjWait(
      this.deviceFd('DRM_IOCTL_SYNCOBJ_WAIT'),
      this.liveHandle,
      0n,
      F.WAIT_FOR_SUBMIT | F.WAIT_DEADLINE,
      deadline,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Device methods

declare module './device' {
  interface Device {
    /**
     * What this device's kernel supports for syncobjs: eventfd waits, fence deadlines, direct
     * point ↔ sync_file transfers, and which wait mechanism async waits use. Probed once, cached.
     */
    readonly features: SyncobjFeatures;
    /**
     * A new binary syncobj (DRM_IOCTL_SYNCOBJ_CREATE), unsubmitted unless `signaled: true`.
     * @throws UnsupportedError (EOPNOTSUPP) on a device without DRM_CAP_SYNCOBJ; ClosedError.
     */
    createSyncobj(options?: CreateSyncobjOptions): Syncobj;
    /**
     * Imports a syncobj fd from exportFd() (possibly another process's) as a new handle on this
     * device (DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE). The fd stays yours: close it when done.
     *
     * Waits on it that give neither `timeoutMs` nor `deadline` are bounded by
     * `options.defaultTimeoutMs` (default IMPORTED_DEFAULT_TIMEOUT_MS, 10 s; `Infinity` opts out).
     * @throws ExplicitSyncError EINVAL when fd is not a syncobj fd; UnsupportedError; ClosedError;
     *   TypeError/RangeError for bad options.
     */
    importSyncobj(fd: number, options?: ImportOptions): Syncobj;
  }
}

Object.defineProperty(Device.prototype, 'features', {
  configurable: true,
  enumerable: false,
  get(this: Device): SyncobjFeatures {
    return syncobjFeatures(this);
  },
});

Device.prototype.createSyncobj = function createSyncobj(this: Device, options?: CreateSyncobjOptions): Syncobj {
  const opts = toOptions(options, CREATE_KEYS);
  if (opts.signaled !== undefined && typeof opts.signaled !== 'boolean')
    throw new InvalidArgTypeError('options.signaled', 'of type boolean', opts.signaled);
  const label = opts.label === undefined ? undefined : toLabel(opts.label, 'options.label');
  requireCap(this, 'syncobj', 'DRM_IOCTL_SYNCOBJ_CREATE');
  const fd = this[kDeviceFd]('DRM_IOCTL_SYNCOBJ_CREATE');
  const s = Syncobj[kAdopt](this, native.syncobjCreate(fd, opts.signaled ? F.CREATE_SIGNALED : 0));
  return label === undefined ? s : s.setLabel(label);
};

Device.prototype.importSyncobj = function importSyncobj(this: Device, fd: number, options?: ImportOptions): Syncobj {
  const { bound, label } = toImportOptions(options);
  const s = Syncobj[kAdopt](this, importHandle(this, fd, 'syncobj'), bound);
  return label === undefined ? s : s.setLabel(label);
};

