/**
 * Async waits on fd readiness, on Node's event loop, with no thread blocked.
 *
 * An {@link FdWaitQueue} owns one native FdWatcher (uv_poll) for one fd and multiplexes any number
 * of waits onto it, each with its own timeout, AbortSignal and ref flag. Readiness is a hint:
 * before resolving, the queue confirms with the owner's zero-timeout `check()`. A timeout is a
 * verdict only after one last `check()`: a wait whose condition held by then resolves (with every
 * other wait on the queue), however late the timer ran.
 * @module
 */
import { AbortError, ClosedError, ExplicitSyncError } from './errors';
import { native, NativeFdWatcher } from './native';

/** setTimeout's largest delay. */
export const TIMER_MAX_MS = 0x7fffffff;

/** Options every async wait accepts. */
export interface WaitOptions {
  /** Reject with TimeoutError after this many milliseconds (default: no timeout). */
  timeoutMs?: number;
  /** Cancel the wait: it rejects with an AbortError whose `cause` is `signal.reason`. */
  signal?: AbortSignal;
  /**
   * Whether the pending wait keeps the process alive, like a timer (default true).
   * With `ref: false` the process may exit while the wait is pending.
   */
  ref?: boolean;
}

/** What a queue needs to know about each wait. */
export interface QueueWaitOptions {
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  ref: boolean;
  /** Builds the rejection when the timeout passes. */
  onTimeout: () => Error;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  ref: boolean;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Call site, for async rejections' stacks. */
  site: { stack?: string };
}

/** Rewrites an async rejection's stack to the wait() call site (as Node's fs promises do). */
function withSite(err: Error, site: { stack?: string }): Error {
  if (site.stack !== undefined) {
    const frames = site.stack.slice(site.stack.indexOf('\n'));
    err.stack = `${err.name}: ${err.message}${frames}`;
  }
  return err;
}

/** The AbortError for an aborted signal, in Node's shape. */
export function abortError(signal: AbortSignal): AbortError {
  return new AbortError(undefined, { cause: signal.reason });
}

/**
 * Waits on one fd. `check()` returns true once the condition holds (it may throw to fail every
 * pending wait). The queue never closes the fd: its owner calls {@link close} first, then closes it.
 *
 * Lifetime invariants: a native watcher (a uv_poll handle) exists only while a wait is pending,
 * and while it exists it roots this queue and, through `owner`, the object that owns the fd. So
 * the owner cannot be garbage-collected mid-wait, and when it is collected (no wait pending) no
 * poll handle is left on its fd for the GC backstop to close the fd under.
 */
export class FdWaitQueue {
  readonly #fd: number;
  readonly #check: () => boolean;
  /** Kept only to hold the fd's owner alive while the native watcher roots this queue. */
  readonly #owner: object | undefined;
  readonly #waiters = new Set<Waiter>();
  #watcher: NativeFdWatcher | null = null;
  #refCount = 0;
  #closed = false;

  constructor(fd: number, check: () => boolean, owner?: object) {
    this.#fd = fd;
    this.#check = check;
    this.#owner = owner;
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
    if (this.#closed) return Promise.reject(new ClosedError('wait queue'));
    if (opts.signal?.aborted) return Promise.reject(abortError(opts.signal));
    try {
      if (this.#check()) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    if (opts.timeoutMs === 0) return Promise.reject(opts.onTimeout());
    const site: { stack?: string } = {};
    Error.captureStackTrace(site, FdWaitQueue.prototype.wait);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, ref: opts.ref, timer: undefined, signal: opts.signal, onAbort: undefined, site };
      if (opts.timeoutMs !== undefined) {
        const onTimeout = opts.onTimeout;
        const deadline = performance.now() + opts.timeoutMs;
        const arm = (ms: number): void => {
          // setTimeout fires after 1 ms for delays past 2^31-1 ms: chain timers for longer waits.
          w.timer = setTimeout(() => {
            const left = deadline - performance.now();
            if (left > 0) arm(left);
            // libuv runs timers before poll: after a busy stretch the fence may have signalled
            // inside the timeout with its readiness not yet delivered. Look once more first.
            else if (!this.#lastLook()) this.#settle(w, withSite(onTimeout(), site));
          }, Math.min(ms, TIMER_MAX_MS));
          // The poll handle keeps the loop alive for ref'd waits; the timer never has to.
          w.timer.unref();
        };
        arm(opts.timeoutMs);
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
    if (this.#waiters.size > 0) this.rejectAll(new ClosedError(what, 'wait'));
    this.#watcher?.close();
    this.#watcher = null;
  }

  #add(w: Waiter): void {
    this.#waiters.add(w);
    if (w.ref) this.#refCount++;
    if (this.#watcher === null) {
      this.#watcher = new native.FdWatcher(this.#fd, (status, events) => this.#onReady(status, events));
      this.#watcher.start(native.POLL.READABLE);
      this.#watcher.setRef(this.#refCount > 0);
    } else if (w.ref && this.#refCount === 1) {
      this.#watcher.setRef(true);
    }
  }

  /** Removes one waiter and settles it: with `err`, or resolved when err is undefined. */
  #settle(w: Waiter, err?: Error): void {
    if (!this.#waiters.delete(w)) return;
    if (w.timer !== undefined) clearTimeout(w.timer);
    if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort);
    if (w.ref) this.#refCount--;
    if (this.#watcher !== null) {
      if (this.#waiters.size === 0) {
        // Idle: free the poll handle (see the class comment); the next wait makes a new one.
        this.#watcher.close();
        this.#watcher = null;
      } else if (this.#refCount === 0) this.#watcher.setRef(false);
    }
    if (err === undefined) w.resolve();
    else w.reject(err);
  }

  #onReady(status: number, _events: number): void {
    if (status < 0) {
      this.rejectAll(new ExplicitSyncError(-status, 'poll'));
      return;
    }
    this.#lastLook(); // false: a spurious wakeup, keep waiting
  }

  /**
   * The zero-timeout check, settling every pending wait when it decides: all resolve when the
   * condition holds, all reject when check() throws. Returns whether it settled them.
   */
  #lastLook(): boolean {
    let ready: boolean;
    try {
      ready = this.#check();
    } catch (err) {
      this.rejectAll(err instanceof Error ? err : new Error(String(err)));
      return true;
    }
    if (!ready) return false;
    for (const w of [...this.#waiters]) this.#settle(w);
    return true;
  }
}
