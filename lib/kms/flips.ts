/**
 * Page flips: the pending flips of a device by commit (user_data), matched with the kernel's
 * DRM_EVENT_FLIP_COMPLETE events under their timeouts and abort signals (FlipTable), and the event
 * pump that reads those events off the DRM fd on the shared fd watcher (FlipPump).
 * @module
 */
import { ClosedError, ExplicitSyncError, TimeoutError } from '../errors';
import { FdWaitQueue, abortError, setLongTimeout } from '../watcher';
import type { KmsDevice } from './device';
import { kFd } from './internal';
import { K, NativeEvent, native } from './native';

/** A page-flip completion (DRM_EVENT_FLIP_COMPLETE) for one CRTC of a commit. */
export interface KmsFlipEvent {
  crtcId: number;
  /** The vblank counter at the flip. */
  sequence: number;
  /** CLOCK_MONOTONIC time of the flip, in nanoseconds. */
  timeNs: bigint;
}

/**
 * @internal Test hook, exported from lib/kms.ts only (not from the package index): makes the
 * event pump's next read(2) fail with `errno` as a kernel error would, or fails its poll wait
 * the way the shared fd watcher does on a negative libuv status. The kernel gives no way to make
 * a DRM fd's read or poll fail for real without closing it behind the library's back.
 */
export const kPumpFault: unique symbol = Symbol('explicit-sync.kmsPumpFault');

/** A commit's flip: the CRTCs whose events it still waits for (none: the first event settles it). */
interface PendingFlip {
  waiting: Set<number>;
  events: KmsFlipEvent[];
  resolve(e: KmsFlipEvent[]): void;
  reject(err: Error): void;
  /** Stops its timer and abort listener. */
  cleanup(): void;
}

/** What bounds the wait for a flip (from the commit's options). */
export interface FlipBound {
  /** Relative ms; undefined: no limit. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * @internal The pending flips of one device, by commit (user_data), matched with the kernel's
 * events: pure bookkeeping, no fd (the device's FlipPump, below, feeds it). Exported from
 * lib/kms.ts only, for the host tests; not from the package index.
 */
export class FlipTable {
  readonly #flips = new Map<bigint, PendingFlip>();
  readonly #onIdle: (() => void) | undefined;

  /** `onIdle` runs when a timeout or abort leaves no flip pending (the pump can stop). */
  constructor(onIdle?: () => void) {
    this.#onIdle = onIdle;
  }

  /** Number of commits still waiting. */
  get size(): number {
    return this.#flips.size;
  }

  /**
   * A promise for the flip events of the commit tagged `userData`: one from each of `crtcs` (or
   * the first one, if empty). It rejects with TimeoutError (code 'ETIME') after `bound.timeoutMs`,
   * with AbortError when `bound.signal` aborts (at once if it already has); the commit is then
   * forgotten and its late event dropped.
   */
  expect(userData: bigint, crtcs: Iterable<number>, bound: FlipBound = {}): Promise<KmsFlipEvent[]> {
    const p = new Promise<KmsFlipEvent[]>((resolve, reject) => {
      const { signal, timeoutMs } = bound;
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const entry: PendingFlip = { waiting: new Set(crtcs), events: [], resolve, reject, cleanup: () => undefined };
      this.#flips.set(userData, entry);
      const cancel = (err: Error): void => {
        if (this.#flips.get(userData) !== entry) return;
        this.#flips.delete(userData);
        entry.cleanup();
        reject(err);
        if (this.#flips.size === 0) this.#onIdle?.();
      };
      const clearTimer =
        timeoutMs === undefined
          ? undefined
          : setLongTimeout(timeoutMs, () =>
              cancel(new TimeoutError('poll', { operation: 'page flip', message: `ETIME: the page flip did not complete within ${timeoutMs} ms` })),
            );
      const onAbort = signal === undefined ? undefined : (): void => cancel(abortError(signal));
      if (onAbort !== undefined) signal?.addEventListener('abort', onAbort, { once: true });
      entry.cleanup = () => {
        clearTimer?.();
        if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      };
    });
    // Not awaiting a flip is fine: a close that rejects it must not become an unhandled rejection.
    p.catch(() => undefined);
    return p;
  }

  /**
   * One event (as kmsReadEvents gives it). A flip settles once every CRTC it waits for sent its
   * event, with all of its events that came by then; an event of a settled (or unknown) commit
   * is dropped, never counted for another commit (each commit has its own user_data).
   */
  dispatch(e: { type: number; userData?: bigint; tvSec?: number; tvUsec?: number; sequence?: number; crtcId?: number }): void {
    if (e.type !== K.EVENT_FLIP_COMPLETE || e.userData === undefined) return;
    const pending = this.#flips.get(e.userData);
    if (pending === undefined) return;
    const crtcId = e.crtcId ?? 0;
    pending.events.push({
      crtcId, sequence: e.sequence ?? 0,
      timeNs: BigInt(e.tvSec ?? 0) * 1_000_000_000n + BigInt(e.tvUsec ?? 0) * 1000n,
    });
    pending.waiting.delete(crtcId);
    if (pending.waiting.size === 0) {
      this.#flips.delete(e.userData);
      pending.cleanup();
      pending.resolve(pending.events);
    }
  }

  /** Rejects every pending flip with `err` and forgets them. */
  rejectAll(err: Error): void {
    const flips = [...this.#flips.values()];
    this.#flips.clear();
    for (const f of flips) {
      f.cleanup();
      f.reject(err);
    }
  }
}

/** @internal DRM_EVENT_FLIP_COMPLETE, for FlipTable's tests. */
export const EVENT_FLIP_COMPLETE: number = K.EVENT_FLIP_COMPLETE;

/**
 * @internal The event pump of one KmsDevice: tags the commits that ask for a flip event, and
 * reads the device's DRM events into its FlipTable while flips are pending.
 */
export class FlipPump {
  readonly #device: KmsDevice;
  readonly #flips = new FlipTable(() => this.#stopPump());
  #nextFlip = 0n;
  /** The flip promises still pending, for drain(). */
  readonly #inFlight = new Set<Promise<KmsFlipEvent[]>>();
  #events: FdWaitQueue | null = null;
  #pumping = false;
  /** Aborts the pump's pending wait when no flip is left to wait for (timed out or aborted). */
  #pumpStop: AbortController | null = null;
  /** See {@link kPumpFault}: errno for the pump's next read, 0 for none. */
  #readFault = 0;
  /** See {@link kPumpFault}: errno for the pump's current or next poll wait, 0 for none. */
  #pollFault = 0;

  constructor(device: KmsDevice) {
    this.#device = device;
  }

  /** The user_data of the next commit that asks for a flip event. */
  nextFlip(): bigint {
    this.#nextFlip = this.#nextFlip >= 0xffffffffn ? 1n : this.#nextFlip + 1n;
    return this.#nextFlip;
  }

  /** A promise for the flip events of the commit tagged `userData`: one from each of `crtcs`. */
  awaitFlip(userData: bigint, crtcs: ReadonlySet<number>, bound: FlipBound): Promise<KmsFlipEvent[]> {
    const p = this.#flips.expect(userData, crtcs, bound);
    if (this.#flips.size === 0) return p; // an already aborted signal: nothing to pump for
    this.#inFlight.add(p);
    const forget = (): void => void this.#inFlight.delete(p);
    p.then(forget, forget);
    this.#pump();
    return p;
  }

  /** Commits whose flip is still pending. */
  get pending(): number {
    return this.#flips.size;
  }

  /** Resolves once no flip is pending, or after `timeoutMs` (whichever comes first). */
  drain(timeoutMs: number): Promise<void> {
    if (this.#inFlight.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const cancel = setLongTimeout(timeoutMs, resolve);
      void Promise.allSettled([...this.#inFlight]).then(() => {
        cancel();
        resolve();
      });
    });
  }

  /** See {@link kPumpFault}. */
  fault(where: 'read' | 'poll', errno: number): void {
    if (where === 'read') {
      this.#readFault = errno;
      return;
    }
    // A pending poll wait fails now; one that already saw the fd readable (the event came in
    // before the fault) fails before it reads, so the fault never loses that race.
    this.#pollFault = errno;
    this.#events?.rejectAll(new ExplicitSyncError(errno, 'poll'));
  }

  /** The device is closing: the watcher stops, pending flips reject with ClosedError. */
  close(): void {
    this.#events?.close('KmsDevice');
    this.#events = null;
    this.#flips.rejectAll(new ClosedError(`KmsDevice ${this.#device.path}`, 'read', 'page flip'));
  }

  /**
   * Reads DRM events while flips are pending, waiting for readability on the shared fd watcher.
   * An error of the wait (poll) or of read(2) rejects every pending flip with it and stops the
   * pump; the next flip starts it again. Nothing here can reject unobserved.
   */
  #pump(): void {
    if (this.#pumping) return;
    const fd = this.#device[kFd]('read');
    this.#events ??= new FdWaitQueue(fd, (readable) => readable || native.pollIn(fd, 0), this.#device);
    this.#pumping = true;
    const stop = new AbortController();
    this.#pumpStop = stop;
    const loop = (): void => {
      if (stop.signal.aborted) return; // #stopPump() ended this pump; a new one may be running
      if (this.#flips.size === 0 || this.#device.closed) {
        this.#pumping = false;
        return;
      }
      this.#events!.wait({ timeoutMs: undefined, signal: stop.signal, ref: true, onTimeout: () => new Error('unreachable') }).then(
        () => {
          if (stop.signal.aborted) return;
          if (this.#device.closed) {
            this.#pumping = false;
            return;
          }
          if (this.#pollFault !== 0) {
            const errno = this.#pollFault;
            this.#pollFault = 0;
            this.#failFlips(new ExplicitSyncError(errno, 'poll'));
            return;
          }
          let events: NativeEvent[];
          try {
            events = this.#readEvents(fd);
          } catch (err) {
            this.#failFlips(err);
            return;
          }
          for (const e of events) this.#flips.dispatch(e);
          loop();
        },
        (err: unknown) => {
          this.#pollFault = 0; // a fault, if any, is this rejection
          if (stop.signal.aborted) return;
          if (this.#device.closed) this.#pumping = false; // close() rejected the flips itself
          else this.#failFlips(err); // a poll error (ExplicitSyncError, syscall 'poll')
        },
      ).catch((err: unknown) => this.#failFlips(err));
    };
    loop();
  }

  /**
   * Ends the pump when the last pending flip timed out or was aborted: its poll wait is dropped
   * (the watcher is freed, nothing keeps the process alive); the next flip starts a new pump.
   */
  #stopPump(): void {
    const stop = this.#pumpStop;
    this.#pumpStop = null;
    this.#pumping = false;
    stop?.abort();
  }

  #readEvents(fd: number): NativeEvent[] {
    if (this.#readFault !== 0) {
      const errno = this.#readFault;
      this.#readFault = 0;
      throw new ExplicitSyncError(errno, 'read');
    }
    return native.kmsReadEvents(fd);
  }

  /** Stops the pump and rejects every pending flip with `err` (an ExplicitSyncError from poll or read). */
  #failFlips(err: unknown): void {
    this.#pumping = false;
    this.#flips.rejectAll(err instanceof Error ? err : new Error(String(err)));
  }
}
