/**
 * Coalesced async waits on one DRM syncobj, on Node's event loop, with no thread blocked.
 *
 * Each syncobj has one {@link PointWaitQueue} with two lanes, 'signaled' and 'available'. A lane
 * keeps its pending waits in a min-heap by point and costs at most one eventfd however many waits
 * it holds: it registers the eventfd (DRM_IOCTL_SYNCOBJ_EVENTFD) for the lowest pending point; when
 * the eventfd fires it drains it, asks the kernel where the syncobj stands with one non-blocking
 * ioctl (QUERY, or a zero-timeout WAIT for binary syncobjs), resolves every wait whose point is
 * reached, and registers again for the lowest point still pending. N waits on one timeline thus use
 * at most two fds (one per lane), and a wakeup costs one ioctl, not one per wait.
 *
 * Kernel facts this relies on (drivers/gpu/drm/drm_syncobj.c, checked on 6.1, 6.12 and newer):
 * - A registration is one-shot and checked at once: registering for a point that is already reached
 *   fires immediately, so nothing is lost between the query and the registration.
 * - A registration waits on the syncobj until a fence for its point is there, then binds to that
 *   fence and fires when it signals. For a binary syncobj that is the fence present at arm time:
 *   when another handle (or process) replaces the fence, the registration still follows the old
 *   one. So a wake is a hint, never a verdict: the lane re-checks, and when its lowest wait is not
 *   satisfied it registers again (for the fence now there).
 * - There is no way to unregister. A registration lives until it fires or the syncobj is
 *   destroyed, and holds kernel memory (an entry and the eventfd's context) all that time; every
 *   TIMELINE_SIGNAL walks the registrations still waiting for a fence.
 *
 * Hence persistent lanes (the shape of wlroots' timeline waiter): a lane's eventfd and its poll
 * handle (native/syncobj_wait.cc, a SyncobjLane) are made by the first wait that needs them and
 * kept, armed, for the syncobj's life; the lane counts its live registrations exactly
 * (registrations made minus fires read back from the eventfd's counter), re-uses a live
 * registration for any wait at or above its point, and registers anew only for a point below all
 * of them. Aborted or timed-out waits thus cost no kernel memory that grows: 20,000 aborted waits
 * on one never-submitted point make one registration, not 20,000. Live registrations per lane are
 * bounded by {@link MAX_WAIT_REGISTRATIONS}; a wait that would need one more re-checks on a
 * backing-off timer instead until a registration fires.
 *
 * A wake is one crossing into JS: native drains the eventfd, reads the level with the same
 * non-blocking ioctl (QUERY, or a zero-timeout WAIT), and calls the lane back with both; the
 * callback returns the lane's next state. While the lane is idle the native lane roots nothing
 * (its JS wrapper is weak and its poll handle unref'd; a wake only drains), so the syncobj's owner
 * can be garbage-collected: the lane's finalizer then closes the eventfd. close() closes it at once.
 * Destroying the syncobj frees registrations still waiting for a fence; close() rejects pending
 * waits itself.
 *
 * Where the kernel lacks DRM_IOCTL_SYNCOBJ_EVENTFD (Linux < 6.6, or a device without timeline
 * support), the lane instead re-checks with the same non-blocking ioctl on a timer that backs off
 * from 1 ms to {@link POLL_MAX_INTERVAL_MS}: mechanism 'poll'. Neither mechanism ever blocks.
 * @module
 * @internal
 */
import { WAIT_EVENTFD, countFd } from './census';
import { ClosedError, ExplicitSyncError } from './errors';
import { Lane, LaneCallback, LaneLevel, LaneState, Waiter, openNativeLane } from './syncobj-lane';
import { NativeCore, nativeFamily } from './native';
import { MAX_TIMEOUT_MS } from './validate';

export type { LaneLevel } from './syncobj-lane';

interface NativeWaitBits extends NativeCore {
  clockMonotonic(): bigint;
}
const native = nativeFamily<NativeWaitBits>();
import { abortError } from './watcher';
import type { WaitMode } from './watcher';

/** What a wait waits for: the point's fence signalled, or merely present (submitted). */
export type { WaitMode } from './watcher';

/** How pending waits learn about progress: an eventfd armed with SYNCOBJ_EVENTFD, or a timer. */
export type WaitMechanism = 'eventfd' | 'poll';

/** Longest interval between two checks with mechanism 'poll'. */
export const POLL_MAX_INTERVAL_MS = 32;

/**
 * Most live DRM_IOCTL_SYNCOBJ_EVENTFD registrations one lane (one object, one mode) keeps. Only
 * waits for points below every live registration need a new one (points that go down, or fence
 * replacements on a binary syncobj), so ordinary waits use one; past the bound a lane re-checks
 * on a timer (1 ms backing off to {@link POLL_MAX_INTERVAL_MS}) until a registration fires.
 * Each costs the kernel ~160 bytes until it fires or the syncobj is destroyed.
 */
export const MAX_WAIT_REGISTRATIONS = 16;

/** setTimeout's largest delay. */
const TIMER_MAX_MS = 0x7fffffff;

/** The syncobj a queue waits on. Every method is a non-blocking ioctl. */
export interface WaitSource {
  /** Every point <= the result is reached in `mode`; -1n when nothing is (an unsignalled binary syncobj). */
  level(mode: WaitMode): bigint;
  /** Registers `eventFd` to fire once `point` is reached in `mode` (DRM_IOCTL_SYNCOBJ_EVENTFD). */
  arm(eventFd: number, point: bigint, mode: WaitMode): void;
  /**
   * The ioctl `level(mode)` makes, for a lane to make it natively on a wake (one crossing per
   * wake). Without it a wake calls level() (a scripted source).
   */
  laneLevel?(mode: WaitMode): LaneLevel;
  /** The rejection of a wait that ran out of time. */
  timeoutError(point: bigint, mode: WaitMode, timeoutMs: number): Error;
}

/** Per-wait options, already validated. */
export interface PointWaitOptions {
  /** Milliseconds, or undefined for no timeout. */
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  ref: boolean;
}

/**
 * Rewrites an async rejection's stack to the wait() call site (as Node's fs promises do). An error
 * `shared` by several waits is copied first, so that each keeps its own stack.
 */
function withSite(err: Error, site: { stack?: string }, shared = false): Error {
  if (site.stack === undefined) return err;
  const out = shared ? (Object.create(Object.getPrototypeOf(err), Object.getOwnPropertyDescriptors(err)) as Error) : err;
  const frames = site.stack.slice(site.stack.indexOf('\n'));
  out.stack = `${err.name}: ${err.message}${frames}`;
  return out;
}

/**
 * The pending waits of one syncobj. `onActive(true)` runs when the first wait starts pending and
 * `onActive(false)` when none is left (the owner hooks its device's close there).
 */
export class PointWaitQueue {
  readonly #source: WaitSource;
  readonly #mechanism: WaitMechanism;
  readonly #onActive: (active: boolean) => void;
  readonly #ownedFds: Set<number>;
  readonly #lanes: Record<WaitMode, Lane> = { signaled: new Lane('signaled'), available: new Lane('available') };
  #closed = false;

  /**
   * `ownedFds` receives the eventfds the lanes keep open (until close()), for the census: the
   * native lanes own them and close them (on close(), or when collected with their owner), so
   * the owner's GC backstop only uncounts them.
   */
  constructor(
    source: WaitSource,
    mechanism: WaitMechanism,
    onActive: (active: boolean) => void = () => {},
    ownedFds: Set<number> = new Set(),
  ) {
    this.#source = source;
    this.#mechanism = mechanism;
    this.#onActive = onActive;
    this.#ownedFds = ownedFds;
  }

  /** Pending waits, both modes. */
  get pending(): number {
    return this.#lanes.signaled.live + this.#lanes.available.live;
  }

  /** Live kernel registrations (DRM_IOCTL_SYNCOBJ_EVENTFD) of both lanes, as far as the eventfds tell. */
  get registrations(): number {
    return this.#lanes.signaled.registrations + this.#lanes.available.registrations;
  }

  /** Eventfds open right now (at most 2: one per mode that ever waited, until close()). */
  get openFds(): number {
    return (this.#lanes.signaled.eventFd >= 0 ? 1 : 0) + (this.#lanes.available.eventFd >= 0 ? 1 : 0);
  }

  /** Resolves once `point` is reached in `mode`; at once (no fd, no timer) when it already is. */
  wait(point: bigint, mode: WaitMode, opts: PointWaitOptions): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('syncobj', 'poll', 'wait'));
    if (opts.signal?.aborted) return Promise.reject(abortError(opts.signal));
    try {
      if (point <= this.#source.level(mode)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    if (opts.timeoutMs === 0) {
      try {
        return Promise.reject(this.#source.timeoutError(point, mode, 0));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    // The call site, for the stacks of timeout and abort rejections. Capturing costs ~10 µs, which
    // dominates a wait's cost, so waits that cannot time out or abort skip it: they can only be
    // rejected by close(), whose ClosedError carries the stack of the close() call.
    const site: { stack?: string } = {};
    if (opts.timeoutMs !== undefined || opts.signal !== undefined) Error.captureStackTrace(site, PointWaitQueue.prototype.wait);
    const lane = this.#lanes[mode];
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        point,
        resolve,
        reject,
        ref: opts.ref,
        done: false,
        timer: undefined,
        signal: opts.signal,
        onAbort: undefined,
        site,
        lane,
      };
      if (opts.timeoutMs !== undefined) this.#startTimer(w, opts.timeoutMs);
      if (opts.signal !== undefined) {
        const signal = opts.signal;
        w.onAbort = () => this.#settle(w, withSite(abortError(signal), site));
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      const wasIdle = this.pending === 0;
      lane.waiters.push(w);
      lane.live++;
      if (w.ref) lane.refs++;
      if (wasIdle) this.#onActive(true);
      try {
        this.#ensureWakeup(lane, point, true);
      } catch (err) {
        this.#settle(w, withSite(err instanceof Error ? err : new Error(String(err)), site));
      }
    });
  }

  /**
   * Re-checks both lanes now. Call after changing the syncobj from this process (signal, import):
   * waits resolve without a round trip through the event loop. With `forgetArmed`, also forget the
   * registrations (after a binary reset or fence replacement a registration may follow a stale fence).
   */
  poke(forgetArmed = false): void {
    for (const lane of Object.values(this.#lanes)) {
      if (forgetArmed) lane.armed.clear();
      if (lane.live > 0) this.#service(lane);
    }
  }

  /** Rejects every pending wait with `err`. */
  rejectAll(err: Error): void {
    for (const lane of Object.values(this.#lanes)) {
      while (lane.waiters.size > 0) {
        const w = lane.waiters.pop()!;
        if (!w.done) this.#settle(w, withSite(err, w.site, true), false);
      }
      this.#idle(lane);
    }
  }

  /** Rejects pending waits with ClosedError and frees every fd and timer. Idempotent. */
  close(what = 'syncobj'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.rejectAll(new ClosedError(what, 'poll', 'wait'));
    for (const lane of Object.values(this.#lanes)) this.#closeLane(lane);
  }

  #startTimer(w: Waiter, timeoutMs: number): void {
    const due = native.clockMonotonic() + BigInt(Math.ceil(Math.min(timeoutMs, MAX_TIMEOUT_MS) * 1e6));
    const arm = (ms: number): void => {
      w.timer = setTimeout(onTimer, Math.min(Math.max(ms, 1), TIMER_MAX_MS));
      // The eventfd watcher (or poll timer) keeps the loop alive for ref'd waits; this never has to.
      w.timer.unref();
    };
    const onTimer = (): void => {
      // Timers may fire a little early (ms rounding) or be capped: never reject before the timeout.
      const left = due - native.clockMonotonic();
      if (left > 0n) return arm(Math.ceil(Number(left) / 1e6));
      let err: Error;
      try {
        // One last look: the point may have been reached just now.
        if (w.point <= this.#source.level(w.lane.mode)) return this.#settle(w);
        err = this.#source.timeoutError(w.point, w.lane.mode, timeoutMs);
      } catch (e) {
        err = e instanceof Error ? e : new Error(String(e));
      }
      this.#settle(w, withSite(err, w.site));
    };
    arm(timeoutMs);
  }

  /**
   * Makes sure the lane will wake up for `point` (the lowest pending point, or lower). A `fresh`
   * wait restarts the poll backoff at 1 ms.
   */
  #ensureWakeup(lane: Lane, point: bigint, fresh: boolean): void {
    if (this.#mechanism === 'poll') {
      this.#pollFor(lane, fresh);
      return;
    }
    if (lane.native === null) this.#openLane(lane);
    this.#syncState(lane); // reports the fires the idle lane drained
    const lowestArmed = lane.armed.peek();
    if (lowestArmed === undefined || point < lowestArmed) {
      if (lane.registrations >= MAX_WAIT_REGISTRATIONS) {
        // Bounded: re-check on a timer until a registration fires (then #service comes back here).
        this.#pollFor(lane, fresh);
        return;
      }
      this.#source.arm(lane.eventFd, point, lane.mode);
      lane.registrations++;
      lane.armed.push(point);
    }
    // Covered by a registration: no timer needed.
    if (lane.pollTimer !== undefined) {
      clearTimeout(lane.pollTimer);
      lane.pollTimer = undefined;
      lane.pollDelay = 1;
    }
    this.#updateRef(lane);
  }

  #pollFor(lane: Lane, fresh: boolean): void {
    if (fresh && lane.pollDelay > 1 && lane.pollTimer !== undefined) {
      clearTimeout(lane.pollTimer);
      lane.pollTimer = undefined;
      lane.pollDelay = 1;
    }
    if (lane.pollTimer === undefined) this.#schedulePoll(lane);
    this.#updateRef(lane);
  }

  #schedulePoll(lane: Lane): void {
    lane.pollTimer = setTimeout(() => {
      lane.pollTimer = undefined;
      lane.pollDelay = Math.min(lane.pollDelay * 2, POLL_MAX_INTERVAL_MS);
      this.#service(lane); // schedules the next check while waits remain
    }, lane.pollDelay);
    lane.refed = lane.refs > 0;
    if (!lane.refed) lane.pollTimer.unref();
  }

  #updateRef(lane: Lane): void {
    this.#syncState(lane);
    const ref = lane.refs > 0;
    if (ref === lane.refed) return;
    lane.refed = ref;
    if (ref) lane.pollTimer?.ref();
    else lane.pollTimer?.unref();
  }

  /** Makes the lane's native eventfd and poll handle (kept until close()). */
  #openLane(lane: Lane): void {
    const spec = this.#source.laneLevel?.(lane.mode);
    const onWake: LaneCallback = (status, level, fired, syscall) => this.#onWake(lane, status, level, fired, syscall);
    lane.native = openNativeLane(spec, onWake);
    lane.state = 0;
    lane.eventFd = lane.native.fd;
    countFd(WAIT_EVENTFD, 1);
    this.#ownedFds.add(lane.eventFd);
  }

  /** Puts the native lane in the state its waits call for (inside a wake, the callback returns it). */
  #syncState(lane: Lane): void {
    if (lane.native === null) return;
    const state: LaneState = lane.live === 0 ? 0 : lane.refs > 0 ? 2 : 1;
    if (state === lane.state) return;
    lane.state = state;
    if (!lane.inWake) this.#fired(lane, lane.native.setState(state));
  }

  /**
   * Forgets `fired` registrations (read back from the eventfd's counter). Those that fired for a
   * point not reached (a binary syncobj's replaced fence, or a timeline given unordered points)
   * are the lowest, the first to fire: forget those, so that the lowest wait registers again (on
   * the fence there now) instead of hanging.
   */
  #fired(lane: Lane, fired: number): void {
    if (fired === 0) return;
    lane.registrations = Math.max(0, lane.registrations - fired);
    while (lane.armed.size > lane.registrations) lane.armed.pop();
  }

  /** A wake of the lane's native poll: one crossing, with the level already read (see the module comment). */
  #onWake(lane: Lane, status: number, level: bigint | null, fired: number, syscall: string | undefined): LaneState {
    if (fired !== 0) this.#fired(lane, fired);
    const only = lane.waiters.size === 1 ? lane.waiters.peek()! : undefined;
    if (only !== undefined && level !== null && status === 0 && !only.done && only.point <= level) {
      // The common case (one wait per point, as a compositor's release points): no sweep.
      lane.waiters.clear();
      for (let p = lane.armed.peek(); p !== undefined && p <= level; p = lane.armed.peek()) lane.armed.pop();
      lane.inWake = true;
      this.#settle(only); // the lane goes idle: its state is returned below, not set
      lane.inWake = false;
      return lane.state;
    }
    lane.inWake = true;
    try {
      if (status < 0) this.#failLane(lane, new ExplicitSyncError(-status, syscall ?? 'poll'));
      else if (lane.live > 0) this.#service(lane, level ?? undefined);
    } finally {
      lane.inWake = false;
    }
    return lane.state;
  }

  /** Resolves what is reached (at `known`, or as level() says), then makes sure the rest will wake us (or goes idle). */
  #service(lane: Lane, known?: bigint): void {
    let level: bigint;
    try {
      level = known ?? this.#source.level(lane.mode);
    } catch (err) {
      this.#failLane(lane, err);
      return;
    }
    for (let w = lane.waiters.peek(); w !== undefined && (w.done || w.point <= level); w = lane.waiters.peek()) {
      lane.waiters.pop();
      if (!w.done) this.#settle(w, undefined, false);
    }
    for (let p = lane.armed.peek(); p !== undefined && p <= level; p = lane.armed.peek()) lane.armed.pop();
    if (lane.live === 0) {
      this.#idle(lane);
      return;
    }
    const lowest = lane.waiters.peek()!;
    try {
      this.#ensureWakeup(lane, lowest.point, false);
    } catch (err) {
      this.#failLane(lane, err);
    }
  }

  /** Rejects every wait of the lane with `err` (each with its own call site) and tears it down. */
  #failLane(lane: Lane, err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
      while (lane.waiters.size > 0) {
        const w = lane.waiters.pop()!;
        if (!w.done) this.#settle(w, withSite(e, w.site, true), false);
      }
      this.#idle(lane);
  }

  /**
   * Settles one wait: resolved when `err` is undefined. `checkIdle` tears the lane down when that
   * was its last wait (callers that sweep the lane themselves pass false and do it once).
   */
  #settle(w: Waiter, err?: Error, checkIdle = true): void {
    if (w.done) return;
    w.done = true;
    const lane = w.lane;
    lane.live--;
    if (w.ref) lane.refs--;
    if (w.timer !== undefined) clearTimeout(w.timer);
    if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort);
    if (checkIdle) {
      if (lane.live === 0) this.#idle(lane);
      else if (w.ref && lane.refs === 0) this.#updateRef(lane);
    }
    if (this.pending === 0) this.#onActive(false);
    if (err === undefined) w.resolve();
    else w.reject(err);
  }

  /**
   * No wait left in the lane: free its timer and let the native lane go idle (it roots nothing
   * then). The eventfd and its poll handle stay, armed, for the next wait.
   */
  #idle(lane: Lane): void {
    if (lane.live > 0) return;
    lane.waiters.clear();
    if (lane.pollTimer !== undefined) clearTimeout(lane.pollTimer);
    lane.pollTimer = undefined;
    lane.pollDelay = 1;
    this.#syncState(lane);
  }

  #closeLane(lane: Lane): void {
    lane.armed.clear();
    lane.registrations = 0;
    if (lane.native !== null) {
      lane.native.close(); // stops polling, then closes the eventfd
      lane.native = null;
      this.#ownedFds.delete(lane.eventFd);
      countFd(WAIT_EVENTFD, -1);
      lane.eventFd = -1;
    }
  }
}
