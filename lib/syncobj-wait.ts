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
 * Kernel facts this relies on:
 * - A registration is one-shot and checked at once: registering for a point that is already reached
 *   fires immediately, so nothing is lost between the query and the registration.
 * - There is no way to unregister. A registration lives until its point is reached or the syncobj
 *   is destroyed (then it is dropped without firing). A lane therefore remembers which points it has
 *   registered and registers again only for a point lower than all of them; a registration left by
 *   a wait that timed out or was aborted costs a spurious wakeup later, never a missed one.
 * - Destroying the syncobj drops registrations silently: close() rejects pending waits itself.
 *
 * Where the kernel lacks DRM_IOCTL_SYNCOBJ_EVENTFD (Linux < 6.6, or a device without timeline
 * support), the lane instead re-checks with the same non-blocking ioctl on a timer that backs off
 * from 1 ms to {@link POLL_MAX_INTERVAL_MS}: mechanism 'poll'. Neither mechanism ever blocks.
 * @module
 * @internal
 */
import { ClosedError, ExplicitSyncError } from './errors';
import { NativeCore, NativeFdWatcher, nativeFamily } from './native';
import { MAX_TIMEOUT_MS } from './validate';
import { abortError } from './watcher';

/** What a wait waits for: the point's fence signalled, or merely present (submitted). */
export type WaitMode = 'signaled' | 'available';

/** How pending waits learn about progress: an eventfd armed with SYNCOBJ_EVENTFD, or a timer. */
export type WaitMechanism = 'eventfd' | 'poll';

/** Longest interval between two checks with mechanism 'poll'. */
export const POLL_MAX_INTERVAL_MS = 32;

/** setTimeout's largest delay. */
const TIMER_MAX_MS = 0x7fffffff;

interface NativeWaitBits extends NativeCore {
  eventfdCreate(): number;
  eventfdDrain(fd: number): number;
  clockMonotonic(): bigint;
}
const native = nativeFamily<NativeWaitBits>();

/** The syncobj a queue waits on. Every method is a non-blocking ioctl. */
export interface WaitSource {
  /** Every point <= the result is reached in `mode`; -1n when nothing is (an unsignalled binary syncobj). */
  level(mode: WaitMode): bigint;
  /** Registers `eventFd` to fire once `point` is reached in `mode` (DRM_IOCTL_SYNCOBJ_EVENTFD). */
  arm(eventFd: number, point: bigint, mode: WaitMode): void;
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

interface Waiter {
  point: bigint;
  resolve(): void;
  reject(err: Error): void;
  ref: boolean;
  done: boolean;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  site: { stack?: string };
  lane: Lane;
}

/** A binary min-heap. */
class MinHeap<T> {
  readonly #items: T[] = [];
  constructor(readonly key: (item: T) => bigint) {}

  get size(): number {
    return this.#items.length;
  }
  peek(): T | undefined {
    return this.#items[0];
  }
  clear(): void {
    this.#items.length = 0;
  }
  push(item: T): void {
    const a = this.#items;
    a.push(item);
    let i = a.length - 1;
    const k = this.key(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.key(a[parent]!) <= k) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = item;
  }
  pop(): T | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    const k = this.key(last);
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && this.key(a[r]!) < this.key(a[l]!) ? r : l;
      if (this.key(a[c]!) >= k) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** One mode's pending waits and its wakeup source. */
class Lane {
  readonly waiters = new MinHeap<Waiter>((w) => w.point);
  /** Points with a kernel registration that has not fired yet (as far as we know). */
  readonly armed = new MinHeap<bigint>((p) => p);
  live = 0;
  refs = 0;
  eventFd = -1;
  watcher: NativeFdWatcher | null = null;
  pollTimer: NodeJS.Timeout | undefined;
  pollDelay = 1;
  /** Whether the watcher / poll timer currently keeps the loop alive. */
  refed = true;
  constructor(readonly mode: WaitMode) {}
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
  readonly #lanes: Record<WaitMode, Lane> = { signaled: new Lane('signaled'), available: new Lane('available') };
  #closed = false;

  constructor(source: WaitSource, mechanism: WaitMechanism, onActive: (active: boolean) => void = () => {}) {
    this.#source = source;
    this.#mechanism = mechanism;
    this.#onActive = onActive;
  }

  /** Pending waits, both modes. */
  get pending(): number {
    return this.#lanes.signaled.live + this.#lanes.available.live;
  }

  /** Eventfds open right now (at most 2). */
  get openFds(): number {
    return (this.#lanes.signaled.eventFd >= 0 ? 1 : 0) + (this.#lanes.available.eventFd >= 0 ? 1 : 0);
  }

  /** Resolves once `point` is reached in `mode`; at once (no fd, no timer) when it already is. */
  wait(point: bigint, mode: WaitMode, opts: PointWaitOptions): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('syncobj', 'wait'));
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
    this.rejectAll(new ClosedError(what, 'wait'));
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
      if (fresh && lane.pollDelay > 1 && lane.pollTimer !== undefined) {
        clearTimeout(lane.pollTimer);
        lane.pollTimer = undefined;
        lane.pollDelay = 1;
      }
      if (lane.pollTimer === undefined) this.#schedulePoll(lane);
      this.#updateRef(lane);
      return;
    }
    if (lane.eventFd < 0) {
      lane.eventFd = native.eventfdCreate();
      native.trackFd(lane.eventFd); // closed by the env's teardown if a worker dies with waits pending
      lane.watcher = new native.FdWatcher(lane.eventFd, (status) => this.#onReadable(lane, status));
      lane.watcher.start(native.POLL.READABLE);
      lane.refed = true; // a started uv_poll is ref'd
    }
    const lowestArmed = lane.armed.peek();
    if (lowestArmed === undefined || point < lowestArmed) {
      this.#source.arm(lane.eventFd, point, lane.mode);
      lane.armed.push(point);
    }
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
    const ref = lane.refs > 0;
    if (ref === lane.refed) return;
    lane.refed = ref;
    lane.watcher?.setRef(ref);
    if (ref) lane.pollTimer?.ref();
    else lane.pollTimer?.unref();
  }

  #onReadable(lane: Lane, status: number): void {
    if (status < 0) {
      this.#failLane(lane, new ExplicitSyncError(-status, 'poll'));
      return;
    }
    if (lane.eventFd >= 0) native.eventfdDrain(lane.eventFd);
    this.#service(lane);
  }

  /** Resolves what is reached, then makes sure the rest will wake us (or goes idle). */
  #service(lane: Lane): void {
    let level: bigint;
    try {
      level = this.#source.level(lane.mode);
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

  /** No wait left in the lane: free its eventfd and timer. Registrations die with the eventfd. */
  #idle(lane: Lane): void {
    if (lane.live > 0) return;
    lane.waiters.clear();
    lane.armed.clear();
    if (lane.pollTimer !== undefined) clearTimeout(lane.pollTimer);
    lane.pollTimer = undefined;
    lane.pollDelay = 1;
    if (lane.watcher !== null) {
      // The watcher must stop before its fd closes.
      lane.watcher.close();
      lane.watcher = null;
    }
    if (lane.eventFd >= 0) {
      const fd = lane.eventFd;
      lane.eventFd = -1;
      native.close(fd);
    }
  }
}
