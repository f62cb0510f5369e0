/**
 * Async waits on fd readiness, on Node's event loop, with no thread blocked.
 *
 * An {@link FdWaitQueue} watches one fd in the thread's epoll set (lib/fd-poller.ts) and multiplexes
 * any number of waits onto it, each with its own timeout, AbortSignal and ref flag. Before resolving,
 * the queue asks the owner's zero-timeout `check()`, telling it whether the set has just reported
 * the fd readable (the owner then decides what else that needs: a sync_file reads its fence's
 * status, for errors). A timeout is a
 * verdict only after one last `check()`: a wait whose condition held by then resolves (with every
 * other wait on the queue), however late the timer ran.
 * @module
 */
import { AbortError, ClosedError } from './errors';
import { monotonicNow, toDeadline } from './clock';
import { PolledFd } from './fd-poller';
import { FdResource, kWaiting } from './resource';
import {
  I64_MAX,
  InvalidArgTypeError,
  InvalidArgValueError,
  MAX_TIMEOUT_MS,
  OptionKeys,
  checkOptionKeys,
  toAbortSignal,
  toEnum,
  toTimeoutMs,
} from './validate';

/** setTimeout's largest delay. */
export const TIMER_MAX_MS = 0x7fffffff;

/** 'signaled': the fence has signalled. 'available': a fence exists (the point was submitted). */
export type WaitMode = 'signaled' | 'available';

/** Time options every wait takes, async and blocking. */
export interface TimeOptions {
  /** Give up after this many milliseconds (relative; default: no limit). Exclusive with `deadline`. */
  timeoutMs?: number;
  /**
   * Give up at this absolute instant: bigint nanoseconds of CLOCK_MONOTONIC (see
   * {@link monotonicNow}: `monotonicNow() + 16_000_000n` is 16 ms from now). Exclusive with
   * `timeoutMs`. At most 2^63 - 1 (which means no limit) and at most 10 years after now
   * ({@link MAX_DEADLINE_AHEAD_NS}): a later one is a RangeError, as it is almost certainly a
   * wall-clock time.
   */
  deadline?: bigint;
}

/** Options every async wait accepts. */
export interface WaitOptions extends TimeOptions {
  /** Cancel the wait: it rejects with an AbortError whose `cause` is `signal.reason`. */
  signal?: AbortSignal;
  /**
   * Whether the pending wait keeps the process alive, like a timer (default true).
   * With `ref: false` the process may exit while the wait is pending.
   */
  ref?: boolean;
}

/** Options of the async fence waits (timelines, syncobjs, sync files). */
export interface AsyncWaitOptions extends WaitOptions {
  /** 'signaled' (default): the fence has signalled. 'available': a fence exists (was submitted). */
  until?: WaitMode;
  /**
   * Hint for the fence's driver: it should signal by this CLOCK_MONOTONIC instant (bigint ns;
   * same bounds as `deadline`). Timelines and syncobjs: DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE,
   * Linux ≥ 6.8 (`device.features.waitDeadline`); sync files: SYNC_IOC_SET_DEADLINE, Linux ≥ 6.7.
   * UnsupportedError where missing. Applies to fences present when the wait starts.
   */
  fenceDeadline?: bigint;
}

/** Options of the blocking waits. */
export interface SyncWaitOptions extends TimeOptions {
  until?: WaitMode;
  fenceDeadline?: bigint;
}

/** The keys of {@link AsyncWaitOptions}. */
export const ASYNC_WAIT_KEYS: OptionKeys<AsyncWaitOptions> = {
  timeoutMs: true, deadline: true, signal: true, ref: true, until: true, fenceDeadline: true,
};
/** The keys of {@link SyncWaitOptions}. */
export const SYNC_WAIT_KEYS: OptionKeys<SyncWaitOptions> = { timeoutMs: true, deadline: true, until: true, fenceDeadline: true };

/** Validated wait options. */
export interface ParsedWait {
  mode: WaitMode;
  /** Relative ms for the event-loop timer; undefined = no limit. */
  timeoutMs: number | undefined;
  /** Absolute CLOCK_MONOTONIC ns for the kernel, clamped to INT64_MAX (= no limit). */
  absNs: bigint;
  signal: AbortSignal | undefined;
  ref: boolean;
  fenceDeadline: bigint | undefined;
  /** The absolute `deadline` given, if the bound came from one (for messages). */
  deadline: bigint | undefined;
}

/** What a wait takes, for {@link parseWait}. */
export interface WaitSpec {
  /** The option keys it takes: any other key is an ERR_INVALID_ARG_VALUE. */
  keys: OptionKeys<object>;
  /** The bound of a wait that gives neither `timeoutMs` nor `deadline` (default Infinity: none). */
  defaultTimeoutMs?: number;
  /** The `until` modes it takes (default both), and why others are refused. */
  modes?: readonly WaitMode[];
  refusedMode?: string;
}

const MODES: readonly WaitMode[] = ['signaled', 'available'];

/**
 * Validates the options of any wait, before any ioctl: TypeError for a wrong type, RangeError for
 * a value out of range (a `deadline` past 2^63 - 1 ns or implausibly far, see {@link toDeadline}),
 * ERR_INVALID_ARG_VALUE for an unknown key, a refused `until` or `deadline` with `timeoutMs`.
 * The one parser of every wait (timelines, syncobjs, sync files, dma-bufs, KMS flips).
 */
export function parseWait(options: unknown, spec: WaitSpec): ParsedWait {
  if (options !== undefined && (options === null || typeof options !== 'object'))
    throw new InvalidArgTypeError('options', 'of type object', options);
  const o = (options ?? {}) as AsyncWaitOptions;
  checkOptionKeys(o, spec.keys);
  const modes = spec.modes ?? MODES;
  const mode = o.until === undefined ? 'signaled' : toEnum(o.until, 'options.until', MODES);
  if (!modes.includes(mode)) throw new InvalidArgValueError('options.until', spec.refusedMode ?? `must be ${modes.join(' or ')}`, o.until);
  const defaultTimeoutMs = spec.defaultTimeoutMs ?? Infinity;
  const givenTimeoutMs = toTimeoutMs(o.timeoutMs, 'options.timeoutMs');
  const timeoutMs =
    o.timeoutMs === undefined && o.deadline === undefined && defaultTimeoutMs !== Infinity ? defaultTimeoutMs : givenTimeoutMs;
  if (o.deadline !== undefined && o.timeoutMs !== undefined)
    throw new InvalidArgValueError('options.deadline', 'cannot be combined with options.timeoutMs', o.deadline);
  const deadline = o.deadline === undefined ? undefined : toDeadline(o.deadline, 'options.deadline');
  const fenceDeadline = o.fenceDeadline === undefined ? undefined : toDeadline(o.fenceDeadline, 'options.fenceDeadline');
  const signal = toAbortSignal(o.signal, 'options.signal');
  if (o.ref !== undefined && typeof o.ref !== 'boolean') throw new InvalidArgTypeError('options.ref', 'of type boolean', o.ref);
  // The clock is read only for a bound (a native call per wait otherwise).
  let absNs: bigint;
  let relMs: number | undefined;
  if (deadline !== undefined) {
    const now = monotonicNow();
    absNs = deadline;
    relMs = deadline === I64_MAX ? undefined : deadline > now ? Number(deadline - now) / 1e6 : 0;
  } else if (timeoutMs !== undefined) {
    absNs = monotonicNow() + BigInt(Math.ceil(Math.min(timeoutMs, MAX_TIMEOUT_MS) * 1e6));
    relMs = timeoutMs;
  } else {
    absNs = I64_MAX;
    relMs = undefined;
  }
  if (absNs > I64_MAX) absNs = I64_MAX;
  // An absolute 0 means "poll" to the kernel, which is what a deadline in the past means too.
  return { mode, timeoutMs: relMs, absNs, signal, ref: o.ref !== false, fenceDeadline, deadline };
}

/** What a queue needs to know about each wait. */
export interface QueueWaitOptions {
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  ref: boolean;
  /** Builds the rejection when the timeout passes. */
  onTimeout: () => Error;
}

/** @internal One pending wait (of an FdWaitQueue, or of a TakeQueue, which resolves it with a value). */
export interface Waiter<T = void> {
  resolve(value: T): void;
  reject(err: Error): void;
  ref: boolean;
  cancelTimer: (() => void) | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Call site, for async rejections' stacks. */
  site: { stack?: string };
}

/** Rewrites an async rejection's stack to the wait() call site (as Node's fs promises do). */
export function withSite(err: Error, site: { stack?: string }): Error {
  if (site.stack !== undefined) {
    const frames = site.stack.slice(site.stack.indexOf('\n'));
    err.stack = `${err.name}: ${err.message}${frames}`;
  }
  return err;
}

/**
 * Runs `fn` once, `ms` milliseconds from now, however long that is (setTimeout fires after 1 ms
 * for delays past 2^31 - 1 ms, so longer ones are chained). The timer never keeps the process
 * alive (whatever it bounds does that). Returns the function that cancels it.
 */
export function setLongTimeout(ms: number, fn: () => void): () => void {
  const end = performance.now() + ms;
  let timer: NodeJS.Timeout;
  const arm = (left: number): void => {
    timer = setTimeout(() => {
      const rest = end - performance.now();
      if (rest > 0) arm(rest);
      else fn();
    }, Math.min(left, TIMER_MAX_MS));
    timer.unref();
  };
  arm(ms);
  return () => clearTimeout(timer);
}

/** The AbortError for an aborted signal, in Node's shape. */
export function abortError(signal: AbortSignal): AbortError {
  return new AbortError(undefined, { cause: signal.reason });
}

/**
 * Waits on one fd. `check(readable, status)` returns true once the condition holds (it may throw
 * to fail every pending wait); `readable` says the epoll set has just reported the fd readable,
 * which the kernel re-checked at epoll_wait(), so an owner whose condition is readability need not
 * poll(2) again. With `syncFile`, such a report comes with the sync_file's status, read natively
 * in the same pass (1 signalled, < 0 the fence's error; NaN when not read). The queue never closes
 * the fd: its owner calls {@link close} first, then closes it.
 *
 * The fd is watched in the thread's epoll set (lib/fd-poller.ts: one epoll_ctl per wait, no
 * uv_poll handle of its own). Lifetime invariants: while a wait is pending the set's table roots
 * this queue and, through `owner`, the object that owns the fd, so the owner cannot be
 * garbage-collected mid-wait; idle, nothing of the set references it (the fd stays in the kernel's
 * set, disabled, until the owner or the GC backstop closes the fd). An owner that is an FdResource
 * is told when waits start and end, so that its close (or its backstop's) takes the fd out of the set
 * before closing it (see resource.ts release()); any other owner's closing removes the entry only
 * when no other fd holds the file.
 */
export class FdWaitQueue {
  readonly #fd: number;
  readonly #check: (readable: boolean, status: number) => boolean;
  /** The fd is a sync_file: a report of the epoll set comes with its status (see PolledFd). */
  readonly #syncFile: boolean;
  /** Held to keep the fd's owner alive while the epoll set's table roots this queue. */
  readonly #owner: object | undefined;
  /** The owner, when it is an FdResource: told when waits start and end (see resource.ts kWaiting). */
  readonly #resource: FdResource | undefined;
  readonly #waiters = new Set<Waiter>();
  /** The fd's place in the thread's epoll set (lib/fd-poller.ts), from the first wait on. */
  #polled: PolledFd | null = null;
  #refCount = 0;
  #closed = false;

  constructor(fd: number, check: (readable: boolean, status: number) => boolean, owner?: object, syncFile = false) {
    this.#fd = fd;
    this.#check = check;
    this.#syncFile = syncFile;
    this.#owner = owner;
    this.#resource = owner instanceof FdResource ? owner : undefined;
  }

  /** The object that owns the fd, if one was given. */
  get owner(): object | undefined {
    return this.#owner;
  }

  /** Number of pending waits. */
  get pending(): number {
    return this.#waiters.size;
  }

  /** Resolves once check() holds. Resolves without arming a watcher when it already does. */
  wait(opts: QueueWaitOptions): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('wait queue', 'poll', 'wait'));
    if (opts.signal?.aborted) return Promise.reject(abortError(opts.signal));
    try {
      if (this.#check(false, NaN)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    if (opts.timeoutMs === 0) return Promise.reject(opts.onTimeout());
    // The call site, for the stacks of timeout and abort rejections. Capturing costs more than the
    // rest of the wait's set-up (~4 µs natively, far more under emulation), so waits that cannot
    // time out or abort skip it: what can still reject them (close(), a fence that signals with
    // an error) rejects with its own stack, the close() call's for a ClosedError (as PointWaitQueue).
    const site: { stack?: string } = {};
    if (opts.timeoutMs !== undefined || opts.signal !== undefined) Error.captureStackTrace(site, FdWaitQueue.prototype.wait);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, ref: opts.ref, cancelTimer: undefined, signal: opts.signal, onAbort: undefined, site };
      if (opts.timeoutMs !== undefined) {
        const onTimeout = opts.onTimeout;
        // The poll handle keeps the loop alive for ref'd waits; the timer never has to.
        w.cancelTimer = setLongTimeout(opts.timeoutMs, () => {
          // libuv runs timers before poll: after a busy stretch the fence may have signalled
          // inside the timeout with its readiness not yet delivered. Look once more first.
          if (!this.#lastLook(false)) this.#settle(w, withSite(onTimeout(), site));
        });
      }
      if (opts.signal !== undefined) {
        const signal = opts.signal;
        w.onAbort = () => this.#settle(w, withSite(abortError(signal), site));
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.#add(w);
    });
  }

  /** Rejects every pending wait with `err` and disarms. */
  rejectAll(err: Error): void {
    for (const w of [...this.#waiters]) this.#settle(w, withSite(err, w.site));
  }

  /** Rejects pending waits with ClosedError and frees the watcher. Call before closing the fd. */
  close(what = 'object'): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#waiters.size > 0) this.rejectAll(new ClosedError(what, 'poll', 'wait'));
    this.#polled?.forget();
    this.#polled = null;
  }

  #add(w: Waiter): void {
    // Rooted by the epoll set's table from now until the last wait settles: an FdResource owner is
    // told (its close takes the fd out of the set; its GC backstop registration waits meanwhile).
    if (this.#waiters.size === 0) this.#resource?.[kWaiting](true);
    this.#waiters.add(w);
    if (w.ref) this.#refCount++;
    this.#polled ??= new PolledFd(this.#fd, (err, status) => this.#onReady(err, status), this.#syncFile);
    try {
      this.#polled.arm(this.#refCount > 0);
    } catch (err) {
      // epoll_ctl refused the fd (EPERM: not pollable; ENOSPC: max_user_watches): this wait
      // rejects with that error and leaves nothing behind (its timer, its root of the owner).
      this.#settle(w, err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Removes one waiter and settles it: with `err`, or resolved when err is undefined. */
  #settle(w: Waiter, err?: Error): void {
    if (!this.#waiters.delete(w)) return;
    w.cancelTimer?.();
    if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort);
    if (w.ref) this.#refCount--;
    const idle = this.#waiters.size === 0;
    if (idle) this.#polled?.disarm(); // idle: nothing roots this queue (see the class comment)
    else if (this.#refCount === 0) this.#polled?.setRef(false);
    if (err === undefined) w.resolve();
    else w.reject(err);
    if (idle) this.#resource?.[kWaiting](false); // after: see LeakBackstop.unroot
  }

  #onReady(err: Error | undefined, status: number): void {
    if (err !== undefined) {
      this.rejectAll(err);
      return;
    }
    // A report is taken once: a spurious one (check() still false) arms the fd again.
    if (!this.#lastLook(true, status) && this.#waiters.size > 0) {
      try {
        this.#polled?.arm(this.#refCount > 0);
      } catch (e) {
        this.rejectAll(e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  /**
   * The zero-timeout check, settling every pending wait when it decides: all resolve when the
   * condition holds, all reject when check() throws. Returns whether it settled them.
   */
  #lastLook(readable: boolean, status = NaN): boolean {
    let ready: boolean;
    try {
      ready = this.#check(readable, status);
    } catch (err) {
      this.rejectAll(err instanceof Error ? err : new Error(String(err)));
      return true;
    }
    if (!ready) return false;
    for (const w of [...this.#waiters]) this.#settle(w);
    return true;
  }
}
