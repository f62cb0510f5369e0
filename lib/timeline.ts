/**
 * Timeline DRM syncobjs: a monotonically increasing sequence of u64 points, each of which gets a
 * fence when submitted and is reached when that fence (and every earlier one) signals.
 * Also adds `createTimeline()` and `importTimeline()` to {@link Device} (lib/timeline-device.ts); its
 * options and TimelineTimeoutError are in lib/timeline-options.ts.
 * @module
 */
import { warnIfBlockingMainThread } from './blocking';
import { Device, kDeviceFd } from './device';
import { ClosedError, ExplicitSyncError } from './errors';
import { SyncFile, toSyncFiles } from './sync-file';
import { kAdopt } from './resource';
import { Syncobj } from './syncobj';
import {
  AVAILABLE_FLAGS,
  AsyncWaitOptions,
  F,
  ParsedWait,
  SyncWaitOptions,
  SyncobjResource,
  TIMED_OUT,
  checkFenceDeadline,
  combineWaits,
  describeTimeout,
  kFenceReplaced,
  multiWait,
  native,
  parseWait,
  queueOptions,
  syncFileFd,
  syncobjFeatures,
  toList,
  toPoint as parsePoint,
  toSignalPoint,
} from './syncobj-core';
import { abortError } from './watcher';
import { queryAll, timelineSignalAll, unorderedPointError } from './syncobj-batch';
import { kPendingWaits } from './trace/inspect';
import { labelled } from './trace/labels';
import {
  publishSignal, publishSyncFile, publishTransfer, signalChannel, syncFileChannel, traceWait, transferChannel, waitChannel,
} from './trace/channels';
import { PointWaitQueue, WaitMode } from './syncobj-wait';
import {
  EXPORT_KEYS,
  ExportSyncFileOptions,
  PointOrderOptions,
  QueryOptions,
  TimelinePoint,
  TimelineTimeoutError,
  toAllowUnordered,
  toQueryFlags,
} from './timeline-options';
import './timeline-device';

export type { CreateTimelineOptions, ExportSyncFileOptions, PointOrderOptions, QueryOptions, TimelinePoint } from './timeline-options';
export { TimelineTimeoutError } from './timeline-options';
import { InvalidArgTypeError, InvalidArgValueError, U64_MAX, toAbortSignal, toOptions, toTimeoutMs, warnDeprecated } from './validate';

/**
 * A timeline syncobj (DRM_CAP_SYNCOBJ_TIMELINE). Create with `device.createTimeline()`, import with
 * `device.importTimeline(fd)`. Points are u64: methods take a bigint or a safe-integer number and
 * return bigints; out-of-range, negative or fractional points throw RangeError before any ioctl.
 * Owns its handle: close() it, or `using` it; closing rejects pending waits with ClosedError.
 */
export class Timeline extends SyncobjResource {
  #queue: PointWaitQueue | null = null;
  readonly #onDeviceClose = (): void => {
    this.#queue?.close(`Timeline (its Device ${this.device.path} was closed)`);
    this.#queue = null;
  };

  /** @internal Use device.createTimeline() / device.importTimeline(). Takes ownership of the handle. */
  protected constructor(device: Device, handle: number, defaultTimeoutMs = Infinity) {
    super(device, handle, 'Timeline', defaultTimeoutMs);
  }

  /**
   * @internal Wraps a handle this library just created or imported on `device` (takes ownership);
   * `defaultTimeoutMs` bounds waits that give no timeout (Infinity: none).
   */
  static [kAdopt](device: Device, handle: number, defaultTimeoutMs = Infinity): Timeline {
    return new Timeline(device, handle, defaultTimeoutMs);
  }

  /**
   * Signals `point` from the CPU: puts an already-signalled fence at it
   * (DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL). Points only grow: a point at or below the last submitted
   * one is refused before the ioctl (RangeError, code 'ERR_OUT_OF_RANGE', naming the last
   * submitted point) unless `options.allowUnordered`; point 0 is always refused.
   * @throws ClosedError; RangeError/TypeError for a bad point.
   */
  signal(point: bigint | number, options?: PointOrderOptions): void {
    const p = toSignalPoint(point);
    const unordered = toAllowUnordered(options);
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL');
    if (!unordered) this.#checkOrder(fd, p, 'point');
    native.syncobjTimelineSignal(fd, this.liveHandle, p);
    if (signalChannel.hasSubscribers) publishSignal(this, 'signal', p);
    this.#queue?.poke();
  }

  /**
   * Validates a point that something (a peer's protocol request, say) wants to put a fence at, as
   * signal / importSyncFile / transfer would: returns it as a bigint when it is above the last
   * submitted point, throws the same RangeError (code 'ERR_OUT_OF_RANGE') or TypeError otherwise.
   * One DRM_IOCTL_SYNCOBJ_QUERY. The answer holds until someone else submits a point.
   * @throws ClosedError; RangeError/TypeError.
   */
  checkSignalPoint(point: bigint | number): bigint {
    const p = toSignalPoint(point);
    this.#checkOrder(this.deviceFd('DRM_IOCTL_SYNCOBJ_QUERY'), p, 'point');
    return p;
  }

  /** RangeError when `p` is not above the last submitted point. */
  #checkOrder(fd: number, p: bigint, name: string): void {
    const last = native.syncobjQuery(fd, this.liveHandle, F.QUERY_LAST_SUBMITTED);
    if (p <= last) throw unorderedPointError(name, last, p);
  }

  /**
   * Signals several points at once, on one timeline or several: one
   * DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL per device for the whole list (a compositor's release points
   * of a frame), with the rules of {@link Timeline.signal}: point 0 is refused, and unless
   * `options.allowUnordered` each point must be above its timeline's last submitted point (one
   * batched DRM_IOCTL_SYNCOBJ_QUERY per device) and above any earlier point of the same timeline in
   * the list. Everything is checked before anything is signalled (timelines on two devices: two
   * ioctls; should the second fail, the first's points stay signalled).
   * @throws TypeError/RangeError for a bad list or point (naming `points[i]`); ClosedError when
   *   one of the timelines or its device is closed.
   */
  static signalAll(points: readonly TimelinePoint[], options?: PointOrderOptions): void {
    const items = toList<TimelinePoint>(points, 'points');
    const unordered = toAllowUnordered(options);
    const timelines = items.map((e, i) => Timeline.#entry(e, i));
    // A bigint in range needs no checking (nor the argument name built for its error).
    const list = items.map(({ point: p }, i) => (typeof p === 'bigint' && p > 0n && p <= U64_MAX ? p : toSignalPoint(p, `points[${i}].point`)));
    timelineSignalAll(timelines, list, unordered);
  }

  /**
   * The last signalled point of each timeline (with `lastSubmitted: true`, the last submitted one),
   * in the list's order: one DRM_IOCTL_SYNCOBJ_QUERY per device.
   * @throws TypeError for a bad list; ClosedError when one of them or its device is closed.
   */
  static queryAll(timelines: readonly Timeline[], options?: QueryOptions): bigint[] {
    const list = toList<Timeline>(timelines, 'timelines');
    const flags = toQueryFlags(options);
    list.forEach((t, i) => {
      if (!(t instanceof Timeline)) throw new InvalidArgTypeError(`timelines[${i}]`, 'an instance of Timeline', t);
    });
    return queryAll(list, flags);
  }

  static #entry(e: TimelinePoint, i: number): Timeline {
    if (e === null || typeof e !== 'object' || !(e.timeline instanceof Timeline))
      throw new InvalidArgTypeError(`points[${i}].timeline`, 'an instance of Timeline', e?.timeline);
    return e.timeline;
  }

  /**
   * The last signalled point, or with `lastSubmitted: true` the last submitted one
   * (DRM_IOCTL_SYNCOBJ_QUERY [+ DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED]). 0n for a new timeline.
   * @throws ClosedError.
   */
  query(options?: QueryOptions): bigint {
    const flags = toQueryFlags(options);
    return native.syncobjQuery(this.deviceFd('DRM_IOCTL_SYNCOBJ_QUERY'), this.liveHandle, flags);
  }

  /**
   * Whether `point` has signalled: a zero-timeout DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT (ETIME → false,
   * including for a point not submitted yet). Never blocks, never throws ETIME.
   */
  isSignaled(point: bigint | number): boolean {
    const p = parsePoint(point);
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    if (p === 0n) return true; // see ORIGIN below
    return native.syncobjTimelineWait(fd, this.liveHandle, p, 0n, F.WAIT_FOR_SUBMIT, 0n) >= 0;
  }

  /** Whether `point` has a fence (was submitted): a zero-timeout wait with WAIT_AVAILABLE. Never blocks. */
  isAvailable(point: bigint | number): boolean {
    const p = parsePoint(point);
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    if (p === 0n) return true; // see ORIGIN below
    return native.syncobjTimelineWait(fd, this.liveHandle, p, 0n, AVAILABLE_FLAGS, 0n) >= 0;
  }

  /**
   * Moves the fence of `fromPoint` to `toPoint` of another timeline on the same device, or into a
   * binary Syncobj (`toPoint` omitted or 0) (DRM_IOCTL_SYNCOBJ_TRANSFER, never with WAIT_FOR_SUBMIT:
   * it does not block). The source point must be submitted already.
   * @throws ExplicitSyncError EINVAL when fromPoint has no fence yet (the message says so);
   *   InvalidArgValueError when `to` is on another device; ClosedError; RangeError for bad points.
   */
  transfer(fromPoint: bigint | number, to: Timeline | Syncobj, toPoint?: bigint | number, options?: PointOrderOptions): void {
    const from = toSignalPoint(fromPoint, 'fromPoint');
    const unordered = toAllowUnordered(options);
    let dst: bigint;
    if (to instanceof Timeline) dst = toSignalPoint(toPoint, 'toPoint');
    else if (to instanceof Syncobj) {
      dst = toPoint === undefined ? 0n : parsePoint(toPoint, 'toPoint');
      if (dst !== 0n) throw new InvalidArgValueError('toPoint', 'must be 0 (or omitted) for a binary Syncobj', toPoint);
    } else throw new InvalidArgTypeError('to', 'an instance of Timeline or Syncobj', to);
    if (to.device !== this.device) throw new InvalidArgValueError('to', 'must be on the same Device', to);
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_TRANSFER');
    if (to.closed) throw new ClosedError(`the destination ${to instanceof Timeline ? 'Timeline' : 'Syncobj'}`, 'DRM_IOCTL_SYNCOBJ_TRANSFER');
    if (to instanceof Timeline && !unordered) to.#checkOrder(fd, dst, 'toPoint');
    try {
      native.syncobjTransfer(fd, this.liveHandle, from, to.handle, dst, 0);
    } catch (err) {
      throw this.#unsubmitted(err, from, 'DRM_IOCTL_SYNCOBJ_TRANSFER');
    }
    if (transferChannel.hasSubscribers) publishTransfer(this, from, to, dst);
    to[kFenceReplaced]();
  }

  /**
   * Puts the fence(s) of one sync file, or of an array of them, at `point`. Several files are merged
   * first (SYNC_IOC_MERGE) so the point signals after all of them: "after every GPU read of this
   * buffer". Same shape as `dmaBuf.importSyncFile(syncFiles, access?)`: the fence(s), then what to
   * do with them. The older variadic form `importSyncFile(point, sf1, sf2, …, options?)` still
   * works, with a one-time DeprecationWarning (code 'EXPLICIT_SYNC_DEP_IMPORT_VARIADIC') when it
   * names more than one file.
   * One ioctl on Linux ≥ 6.16 (DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE with IMPORT_SYNC_FILE | TIMELINE);
   * elsewhere a temporary binary syncobj and DRM_IOCTL_SYNCOBJ_TRANSFER. The SyncFiles stay open
   * and yours. A point at or below the last submitted one is refused like in {@link signal};
   * the options object after the sync file(s) may say `{ allowUnordered: true }`.
   * @throws ClosedError when this or a SyncFile is closed; ExplicitSyncError from the ioctls;
   *   RangeError for a point not above the last submitted one.
   */
  importSyncFile(point: bigint | number, syncFiles: SyncFile | readonly SyncFile[], options?: PointOrderOptions): void;
  /** @deprecated Pass several sync files as an array: `importSyncFile(point, [sf1, sf2], options?)`. */
  importSyncFile(point: bigint | number, ...args: [...syncFiles: SyncFile[], options: PointOrderOptions]): void;
  /** @deprecated Pass several sync files as an array: `importSyncFile(point, [sf1, sf2])`. */
  importSyncFile(point: bigint | number, ...syncFiles: SyncFile[]): void;
  importSyncFile(point: bigint | number, ...args: (SyncFile | readonly SyncFile[] | PointOrderOptions | undefined)[]): void {
    const p = toSignalPoint(point);
    let syncFiles: SyncFile[];
    let options: unknown;
    if (Array.isArray(args[0])) {
      if (args.length > 2) throw new InvalidArgValueError('args', 'must be (point, syncFiles, options?) when syncFiles is an array', args);
      syncFiles = toSyncFiles(args[0]);
      options = args[1];
    } else {
      const last = args[args.length - 1];
      // Options only after at least one sync file, and only a plain object ({ allowUnordered }).
      const hasOptions =
        args.length > 1 &&
        last !== null &&
        typeof last === 'object' &&
        [Object.prototype, null].includes(Object.getPrototypeOf(last) as object | null);
      options = hasOptions ? last : undefined;
      syncFiles = (hasOptions ? args.slice(0, -1) : args) as SyncFile[];
      if (syncFiles.length === 0) throw new InvalidArgValueError('syncFiles', 'must name at least one SyncFile', syncFiles);
      if (syncFiles.length > 1)
        warnDeprecated(
          'EXPLICIT_SYNC_DEP_IMPORT_VARIADIC',
          'timeline.importSyncFile(point, sf1, sf2, ...) is deprecated: pass the sync files as an array, importSyncFile(point, [sf1, sf2], options?)',
        );
    }
    const unordered = toAllowUnordered(options);
    syncFiles.forEach((sf, i) => syncFileFd(sf, `syncFiles[${i}]`, 'DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE'));
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE');
    if (!unordered) this.#checkOrder(fd, p, 'point');
    const merged = syncFiles.length > 1 ? SyncFile.merge(...syncFiles) : undefined;
    try {
      const sfd = (merged ?? syncFiles[0]!).fd;
      if (syncobjFeatures(this.device).timelineSyncFile) {
        native.syncobjFdToHandle(fd, sfd, F.IMPORT_SYNC_FILE | F.IMPORT_TIMELINE, this.liveHandle, p);
      } else {
        const tmp = native.syncobjCreate(fd, 0);
        try {
          native.syncobjFdToHandle(fd, sfd, F.IMPORT_SYNC_FILE, tmp, 0n);
          native.syncobjTransfer(fd, tmp, 0n, this.liveHandle, p, 0);
        } finally {
          native.syncobjDestroy(fd, tmp);
        }
      }
    } finally {
      merged?.close();
    }
    if (syncFileChannel.hasSubscribers) publishSyncFile('import', this, p, syncFiles);
    this.#queue?.poke();
  }

  /**
   * A sync_file holding the fence of `point`. Waits first — asynchronously, on the event loop — up
   * to `materializeTimeoutMs` (default 0) for the point to be submitted; then exports it in one
   * ioctl on Linux ≥ 6.16 (DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD with EXPORT_SYNC_FILE | TIMELINE), elsewhere
   * through a temporary binary syncobj (DRM_IOCTL_SYNCOBJ_TRANSFER, then HANDLE_TO_FD).
   *
   * Always a promise, so that the same call works with and without a materialisation bound: without
   * one, a point that is not submitted yet rejects promptly (next microtask).
   *
   * Rejects with {@link TimelineTimeoutError} (code 'ETIME', reason 'unsubmitted', "was never
   * submitted") when no fence materialises in time; AbortError; ClosedError; RangeError/TypeError
   * for bad arguments.
   */
  exportSyncFile(point: bigint | number, options?: ExportSyncFileOptions): Promise<SyncFile> {
    let p: bigint;
    let timeoutMs: number | undefined;
    let opts: Partial<ExportSyncFileOptions>;
    try {
      p = toSignalPoint(point);
      opts = toOptions(options, EXPORT_KEYS);
      timeoutMs = toTimeoutMs(opts.materializeTimeoutMs === undefined ? 0 : opts.materializeTimeoutMs, 'options.materializeTimeoutMs');
      toAbortSignal(opts.signal, 'options.signal');
      this.deviceFd('DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD');
    } catch (err) {
      return Promise.reject(err);
    }
    // The caller's bound, Infinity included, is passed as given: an imported timeline's
    // defaultTimeoutMs bounds only waits that name no timeout.
    const waitOpts: AsyncWaitOptions = {
      until: 'available',
      signal: opts.signal,
      ref: opts.ref,
      timeoutMs: timeoutMs ?? Infinity,
    };
    return this.wait(p, waitOpts).then(() => this.#exportNow(p));
  }

  /**
   * An opaque fd for the timeline itself, to share it with another process (e.g. a Wayland
   * compositor via wp_linux_drm_syncobj_v1) (DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, O_CLOEXEC). The fd is
   * yours: close it (fs.closeSync) when done. Import it with `device.importTimeline(fd)`.
   */
  exportFd(): number {
    return native.syncobjHandleToFd(this.deviceFd('DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD'), this.liveHandle, 0, 0n);
  }

  /**
   * Resolves once `point` has signalled (`until: 'signaled'`, the default) or has a fence
   * (`until: 'available'`). Already there → resolves at once, arming nothing. Otherwise the wait
   * pends on the event loop (never a blocked thread): all waits on this timeline share at most one
   * eventfd per mode, kept armed until close() (DRM_IOCTL_SYNCOBJ_EVENTFD for the lowest pending
   * point; on wake one DRM_IOCTL_SYNCOBJ_QUERY, made natively in the same crossing into JS,
   * resolves every wait that is reached), or a backing-off zero-timeout
   * check where the kernel has no SYNCOBJ_EVENTFD (see `device.features.waitMechanism`).
   *
   * Rejects with {@link TimelineTimeoutError} (code 'ETIME'; `reason` 'unsubmitted' or 'unsignaled',
   * decided by a zero-timeout WAIT_AVAILABLE wait; the message gives the point, last submitted and
   * last signalled) after `timeoutMs` or at `deadline`; AbortError on `signal`; ClosedError when the
   * timeline or its device is closed first; RangeError/TypeError for bad arguments;
   * UnsupportedError for `fenceDeadline` on Linux < 6.8.
   */
  wait(point: bigint | number, options?: AsyncWaitOptions): Promise<void> {
    let p: bigint;
    let w: ParsedWait;
    try {
      p = parsePoint(point);
      w = parseWait(options, true, this.defaultTimeoutMs);
      this.deviceFd('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
      checkFenceDeadline(this.device, w, 'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
      if (w.fenceDeadline !== undefined) this.#hint(p, w.fenceDeadline);
    } catch (err) {
      return Promise.reject(err);
    }
    if (waitChannel.hasSubscribers)
      return traceWait(this, p, w.mode, syncobjFeatures(this.device).waitMechanism, w.timeoutMs, () => this.#waits().wait(p, w.mode, queueOptions(w)));
    return this.#waits().wait(p, w.mode, queueOptions(w));
  }

  /** @internal Pending async waits (for inspect()). */
  get [kPendingWaits](): number {
    return this.#queue?.pending ?? 0;
  }

  /**
   * Blocks the thread until `point` signals (or has a fence, with `until: 'available'`) or the
   * timeout passes (DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT with WAIT_FOR_SUBMIT / WAIT_AVAILABLE and an
   * absolute CLOCK_MONOTONIC timeout; nothing is recomputed on EINTR). For scripts and workers.
   * @throws TimelineTimeoutError; ClosedError; RangeError/TypeError; UnsupportedError.
   */
  waitSync(point: bigint | number, options?: SyncWaitOptions): void {
    const p = parsePoint(point);
    const w = parseWait(options, false, this.defaultTimeoutMs);
    warnIfBlockingMainThread('Timeline#waitSync', w.timeoutMs);
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    checkFenceDeadline(this.device, w, 'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    if (p === 0n) return; // see ORIGIN below
    if (multiWait(this.device, fd, Uint32Array.of(this.liveHandle), w, true, BigUint64Array.of(p)) === TIMED_OUT)
      throw this.#timeoutError(p, w.mode, w.timeoutMs ?? 0);
  }

  /**
   * Resolves once every `{ timeline, point }` is reached. Checks first with one zero-timeout
   * DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT with WAIT_ALL when they share a device, then waits on the event
   * loop. Rejects like {@link Timeline.wait} (first failure wins; the rest are cancelled).
   */
  static waitAll(points: readonly TimelinePoint[], options?: AsyncWaitOptions): Promise<void> {
    return Timeline.#waitMany(points, options, false).then(() => undefined);
  }

  /**
   * Resolves with the index of an entry that is reached (the kernel's first_signaled when one
   * already is, else the first to be reached). Rejects like {@link Timeline.wait}.
   */
  static waitAny(points: readonly TimelinePoint[], options?: AsyncWaitOptions): Promise<number> {
    return Timeline.#waitMany(points, options, true);
  }

  /** Blocking DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT with WAIT_ALL (all on one device). @throws TimeoutError */
  static waitAllSync(points: readonly TimelinePoint[], options?: SyncWaitOptions): void {
    Timeline.#waitManySync(points, options, true);
  }

  /** Blocking DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT; returns first_signaled (all on one device). @throws TimeoutError */
  static waitAnySync(points: readonly TimelinePoint[], options?: SyncWaitOptions): number {
    return Timeline.#waitManySync(points, options, false);
  }

  /** @internal A transfer put a fence in this timeline: re-check pending waits. */
  override [kFenceReplaced](): void {
    this.#queue?.poke();
  }

  static #check(list: unknown): { timelines: Timeline[]; points: bigint[] } {
    const items = toList<TimelinePoint>(list, 'points');
    const timelines: Timeline[] = [];
    const points: bigint[] = [];
    items.forEach((e, i) => {
      timelines.push(Timeline.#entry(e, i));
      points.push(parsePoint(e.point, `points[${i}].point`));
    });
    return { timelines, points };
  }

  static #waitMany(list: readonly TimelinePoint[], options: AsyncWaitOptions | undefined, any: boolean): Promise<number> {
    let c: { timelines: Timeline[]; points: bigint[] };
    let w: ParsedWait;
    try {
      c = Timeline.#check(list);
      w = parseWait(options, true);
      if (w.signal?.aborted) return Promise.reject(abortError(w.signal));
      const device = c.timelines[0]!.device;
      for (const t of c.timelines) t.deviceFd('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
      if (c.timelines.every((t) => t.device === device)) {
        const first = multiWait(
          device,
          device[kDeviceFd]('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT'),
          Uint32Array.from(c.timelines, (t) => t.liveHandle),
          { ...w, absNs: 0n, fenceDeadline: undefined },
          !any,
          BigUint64Array.from(c.points),
        );
        if (first !== TIMED_OUT) return Promise.resolve(any ? first : -1);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const opts = { ...options, signal: undefined };
    return combineWaits(
      c.timelines.map((t, i) => (signal: AbortSignal) => t.wait(c.points[i]!, { ...opts, signal })),
      any,
      w.signal,
    );
  }

  static #waitManySync(list: readonly TimelinePoint[], options: SyncWaitOptions | undefined, all: boolean): number {
    const c = Timeline.#check(list);
    const w = parseWait(options, false, c.timelines.reduce((m, t) => Math.min(m, t.defaultTimeoutMs), Infinity));
    warnIfBlockingMainThread(all ? 'Timeline.waitAllSync' : 'Timeline.waitAnySync', w.timeoutMs);
    const device = c.timelines[0]!.device;
    if (!c.timelines.every((t) => t.device === device))
      throw new InvalidArgValueError('points', 'must all be on the same Device for a blocking wait', list);
    for (const t of c.timelines) t.deviceFd('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    checkFenceDeadline(device, w, 'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    // Entries at point 0 are reached already (see ORIGIN below): only the others go to the kernel.
    const live = c.points.flatMap((p, j) => (p === 0n ? [] : [j]));
    if (!all && live.length < c.points.length) return c.points.indexOf(0n);
    if (live.length === 0) return -1;
    const handles = Uint32Array.from(live, (j) => c.timelines[j]!.liveHandle);
    const fd = device[kDeviceFd]('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    const first = multiWait(device, fd, handles, w, all, BigUint64Array.from(live, (j) => c.points[j]!));
    if (first === TIMED_OUT) {
      // Report the first entry that is not reached, with its timeline's state.
      const i = c.timelines.findIndex((t, j) => !(w.mode === 'available' ? t.isAvailable(c.points[j]!) : t.isSignaled(c.points[j]!)));
      const k = i < 0 ? 0 : i;
      throw c.timelines[k]!.#timeoutError(c.points[k]!, w.mode, w.timeoutMs ?? 0, all ? undefined : c.points.length);
    }
    return all ? -1 : live[first]!;
  }

  // ORIGIN: point 0 is every timeline's origin and always reached, as query() (0n on a new
  // timeline) and wait(0) (resolves at once) say. The kernel reads point 0 in a wait as "the newest
  // fence, whatever its point" (dma_fence_chain_find_seqno), so on a new timeline a blocking wait
  // for 0 would wait for a first submission: the synchronous checks answer point 0 themselves.

  protected override beforeClose(): void {
    this.#queue?.close('Timeline');
    this.#queue = null;
  }

  #waits(): PointWaitQueue {
    if (this.#queue === null) {
      this.#queue = new PointWaitQueue(
        {
          level: (mode) =>
            native.syncobjQuery(
              this.deviceFd('DRM_IOCTL_SYNCOBJ_QUERY'),
              this.liveHandle,
              mode === 'available' ? F.QUERY_LAST_SUBMITTED : 0,
            ),
          arm: (eventFd, point, mode) =>
            native.syncobjEventfd(
              this.deviceFd('DRM_IOCTL_SYNCOBJ_EVENTFD'),
              this.liveHandle,
              point,
              mode === 'available' ? F.WAIT_AVAILABLE : 0,
              eventFd,
            ),
          laneLevel: (mode) => ({
            kind: 'query',
            fd: this.deviceFd('DRM_IOCTL_SYNCOBJ_QUERY'),
            handle: this.liveHandle,
            flags: mode === 'available' ? F.QUERY_LAST_SUBMITTED : 0,
          }),
          timeoutError: (point, mode, timeoutMs) => this.#timeoutError(point, mode, timeoutMs),
        },
        syncobjFeatures(this.device).waitMechanism,
        (active) => this.onDeviceClose(this.#onDeviceClose, active),
        this.waitFds,
      );
    }
    return this.#queue;
  }

  /** The TimelineTimeoutError for `point`, from the timeline's state now. */
  #timeoutError(point: bigint, mode: WaitMode, timeoutMs: number, anyOf?: number): TimelineTimeoutError {
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_QUERY');
    const lastSubmitted = native.syncobjQuery(fd, this.liveHandle, F.QUERY_LAST_SUBMITTED);
    const lastSignaled = native.syncobjQuery(fd, this.liveHandle, 0);
    const available = native.syncobjTimelineWait(fd, this.liveHandle, point, 0n, AVAILABLE_FLAGS, 0n) >= 0;
    const reason = available && mode === 'signaled' ? 'unsignaled' : 'unsubmitted';
    const state = `waiting for ${point}; last submitted ${lastSubmitted}; last signalled ${lastSignaled}`;
    const tl = labelled('timeline', this.label);
    const which = anyOf === undefined ? `${tl} point ${point}` : `none of ${anyOf} timeline points (e.g. ${point} on ${tl})`;
    const what =
      reason === 'unsubmitted'
        ? `${which} was never submitted: no fence materialised ${describeTimeout(timeoutMs, this.defaultTimeoutMs)}`
        : `${which} was submitted but did not signal ${describeTimeout(timeoutMs, this.defaultTimeoutMs)}`;
    return new TimelineTimeoutError(point, lastSubmitted, lastSignaled, reason, `ETIME: ${what} (${state}), DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT`);
  }

  /** Rewrites an EINVAL from an unsubmitted source point into a clear error. */
  #unsubmitted(err: unknown, point: bigint, call: string): unknown {
    if (!(err instanceof ExplicitSyncError) || err.code !== 'EINVAL' || this.isAvailable(point)) return err;
    const last = this.query({ lastSubmitted: true });
    return new ExplicitSyncError(err.errno, call, {
      message: `EINVAL: timeline point ${point} has not been submitted yet (last submitted ${last}), ${call}`,
      cause: err,
    });
  }

  #exportNow(point: bigint): SyncFile {
    const sf = this.#exportFence(point);
    if (syncFileChannel.hasSubscribers) publishSyncFile('export', this, point, [sf]);
    return sf;
  }

  #exportFence(point: bigint): SyncFile {
    const fd = this.deviceFd('DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD');
    try {
      if (syncobjFeatures(this.device).timelineSyncFile)
        return SyncFile[kAdopt](native.syncobjHandleToFd(fd, this.liveHandle, F.EXPORT_SYNC_FILE | F.EXPORT_TIMELINE, point));
      const tmp = native.syncobjCreate(fd, 0);
      try {
        native.syncobjTransfer(fd, this.liveHandle, point, tmp, 0n, 0);
        return SyncFile[kAdopt](native.syncobjHandleToFd(fd, tmp, F.EXPORT_SYNC_FILE, 0n));
      } finally {
        native.syncobjDestroy(fd, tmp);
      }
    } catch (err) {
      throw this.#unsubmitted(err, point, 'DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD');
    }
  }

  /** Passes a fence deadline hint to the point's fence (a zero-timeout wait with WAIT_DEADLINE). */
  #hint(point: bigint, deadline: bigint): void {
    native.syncobjTimelineWait(
      this.deviceFd('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT'),
      this.liveHandle,
      point,
      0n,
      F.WAIT_FOR_SUBMIT | F.WAIT_DEADLINE,
      deadline,
    );
  }
}
