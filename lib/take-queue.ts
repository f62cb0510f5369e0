/**
 * @internal The callers waiting to take something that arrives one at a time: a message
 * (UnixSocket#receive) or a connection (UnixServer#accept). First come, first served; each caller
 * with its own timeout, AbortSignal and ref flag (validated by parseWait). The owner watches its
 * fd while the queue is not empty and hands each item that arrives to the oldest caller, so that
 * nothing is taken from the kernel (a message and its fds stay in the socket) before a caller
 * asked for it.
 * @module
 */
import { ClosedError } from './errors';
import { ParsedWait, Waiter, abortError, setLongTimeout, withSite } from './watcher';

type Taker<T> = Waiter<T>;

/** @internal See the module comment. */
export class TakeQueue<T> {
  readonly #takers: Taker<T>[] = [];
  readonly #onChange: () => void;

  /** `onChange` runs whenever a caller joins or leaves: the owner re-arms its watcher there. */
  constructor(onChange: () => void) {
    this.#onChange = onChange;
  }

  /** Number of waiting callers. */
  get length(): number {
    return this.#takers.length;
  }

  /** Whether a waiting caller keeps the process alive (`ref`, the default). */
  get ref(): boolean {
    return this.#takers.some((t) => t.ref);
  }

  /**
   * Adds a caller, at the end. `onTimeout` builds its rejection when its timeout passes. `site` is
   * the function whose caller the rejections' stacks should show.
   */
  add(wait: ParsedWait, onTimeout: () => Error, site: Function): Promise<T> {
    if (wait.signal?.aborted) return Promise.reject(abortError(wait.signal));
    if (wait.timeoutMs === 0) return Promise.reject(onTimeout());
    const at: { stack?: string } = {};
    Error.captureStackTrace(at, site);
    return new Promise<T>((resolve, reject) => {
      const t: Taker<T> = { resolve, reject, ref: wait.ref, cancelTimer: undefined, signal: wait.signal, onAbort: undefined, site: at };
      if (wait.timeoutMs !== undefined) t.cancelTimer = setLongTimeout(wait.timeoutMs, () => this.#leave(t, withSite(onTimeout(), at)));
      if (wait.signal !== undefined) {
        const signal = wait.signal;
        t.onAbort = () => this.#leave(t, withSite(abortError(signal), at));
        signal.addEventListener('abort', t.onAbort, { once: true });
      }
      this.#takers.push(t);
      this.#onChange();
    });
  }

  /** Hands `value` to the oldest caller. Returns false (and keeps `value`) when nobody waits. */
  resolveFirst(value: T): boolean {
    const t = this.#takers.shift();
    if (t === undefined) return false;
    this.#settle(t);
    t.resolve(value);
    this.#onChange();
    return true;
  }

  /** Rejects the oldest caller with `err`. */
  rejectFirst(err: Error): void {
    const t = this.#takers.shift();
    if (t === undefined) return;
    this.#settle(t);
    t.reject(withSite(err, t.site));
    this.#onChange();
  }

  /** Rejects every caller, each with its own `make()`. */
  rejectAll(make: () => Error): void {
    const all = this.#takers.splice(0);
    for (const t of all) {
      this.#settle(t);
      t.reject(withSite(make(), t.site));
    }
    if (all.length > 0) this.#onChange();
  }

  /** Resolves every caller with `value` (the end of a stream: null). */
  resolveAll(value: T): void {
    const all = this.#takers.splice(0);
    for (const t of all) {
      this.#settle(t);
      t.resolve(value);
    }
    if (all.length > 0) this.#onChange();
  }

  /** A caller gives up (timeout, abort): it leaves the queue, rejected with `err`. */
  #leave(t: Taker<T>, err: Error): void {
    const i = this.#takers.indexOf(t);
    if (i === -1) return;
    this.#takers.splice(i, 1);
    this.#settle(t);
    t.reject(err);
    this.#onChange();
  }

  #settle(t: Taker<T>): void {
    t.cancelTimer?.();
    if (t.onAbort !== undefined) t.signal?.removeEventListener('abort', t.onAbort);
  }
}

/**
 * @internal `for await` over `take()` (receive, accept) until it gives null, or until it rejects
 * with ClosedError once `closed()` (the owner was closed: the loop just ends). Other errors are
 * thrown to the loop. Breaking out of the loop leaves the owner open.
 */
export function takeUntilEnd<T>(take: () => Promise<T | null>, closed: () => boolean): AsyncIterableIterator<T> {
  return {
    async next(): Promise<IteratorResult<T, undefined>> {
      try {
        const value = await take();
        return value === null ? { done: true, value: undefined } : { done: false, value };
      } catch (err) {
        if (err instanceof ClosedError && closed()) return { done: true, value: undefined };
        throw err;
      }
    },
    return: async () => ({ done: true, value: undefined }),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
