/**
 * The thread's one epoll set for fd waits (native/fd_poller.cc), watched by one uv_poll on Node's
 * event loop. An {@link PolledFd} is one fd's place in it: arming it is one epoll_ctl, so a wait
 * on a sync_file costs no uv_poll handle of its own (making, starting, stopping and closing one is
 * five syscalls, a JS wrapper, a reference and an async context).
 *
 * An fd is armed while its owner has waits pending and reported once (EPOLLONESHOT): it then stays
 * in the set, disabled, until armed again or until its owner closes the fd, which takes it out
 * (see forget()).
 * While armed it is in `pending`, which roots its owner (the owner cannot be collected mid-wait);
 * idle, nothing here references it, so an owner dropped without close() is collected and its GC
 * backstop closes the fd, which takes it out of the set.
 *
 * The set keeps the event loop alive while a ref'd wait is armed, like a timer. Its own fd is made
 * at the thread's first fd wait and kept for the thread's life (the env's teardown closes it; a
 * worker's goes with the worker), counted in the census as {@link FD_WAIT_SET}.
 * @module
 * @internal
 */
import { countFd } from './census';
import { ExplicitSyncError } from './errors';
import { NativeCore, nativeFamily } from './native';

interface NativeFdPoller {
  readonly fd: number;
  add(fd: number, token: number): void;
  rearm(fd: number, token: number): void;
  setRef(ref: boolean): void;
  close(): void;
}

interface NativePollerBits extends NativeCore {
  FdPoller: new (ready: Float64Array, callback: (count: number) => void) => NativeFdPoller;
}
const native = nativeFamily<NativePollerBits>();

/** Tokens of the fds reported by a wake (written natively, at most this many per wake). */
const ready = new Float64Array(64);
/** The armed fds, by token: what a wake dispatches to, and what roots their owners. */
const pending = new Map<number, PolledFd>();
let set: NativeFdPoller | null = null;
let refs = 0;
let nextToken = 1;

/** The census's name for the set's fd (one per thread that ever waited on an fd). */
export const FD_WAIT_SET = 'fd wait set (epoll)';

function onWake(count: number): void {
  if (count < 0) {
    // The set's own poll failed (never seen): every armed fd hears of it; the next wait makes a new set.
    const broken = set;
    set = null;
    refs = 0;
    if (broken !== null) {
      broken.close();
      countFd(FD_WAIT_SET, -1);
    }
    const err = new ExplicitSyncError(-count, 'poll');
    for (const p of [...pending.values()]) {
      p.lost();
      p.onReady(err);
    }
    return;
  }
  for (let i = 0; i < count; i++) {
    const p = pending.get(ready[i]!);
    if (p === undefined) continue; // disarmed meanwhile (settled by a timeout, an abort, close())
    p.fired();
    p.onReady(undefined);
  }
}

function theSet(): NativeFdPoller {
  if (set === null) {
    set = new native.FdPoller(ready, onWake);
    countFd(FD_WAIT_SET, 1);
  }
  return set;
}

/**
 * @internal The thread's epoll set's fd, or -1 before the first fd wait: the one fd the library
 * keeps for the thread's life (the env's teardown closes it), for tests that count fds.
 */
export function fdWaitSetFd(): number {
  return set?.fd ?? -1;
}

function countRef(delta: number): void {
  const before = refs > 0;
  refs += delta;
  if (refs > 0 !== before) set?.setRef(refs > 0);
}

/** One fd's place in the thread's epoll set. The owner forgets it (forget()) when it closes the fd. */
export class PolledFd {
  readonly #fd: number;
  readonly #token = nextToken++;
  /** In the kernel's set (armed or disabled after a report). */
  #inSet: NativeFdPoller | null = null;
  #armed = false;
  #ref = false;

  /** `onReady(undefined)` when the fd is readable (reported once per arm()), or with the set's error. */
  constructor(
    fd: number,
    readonly onReady: (err: Error | undefined) => void,
  ) {
    this.#fd = fd;
  }

  /** Waits for the fd to turn readable (again); `ref` whether that keeps the loop alive. Throws errno errors. */
  arm(ref: boolean): void {
    if (!this.#armed) {
      const s = theSet();
      if (this.#inSet === s) s.rearm(this.#fd, this.#token);
      else s.add(this.#fd, this.#token);
      this.#inSet = s;
      this.#armed = true;
      pending.set(this.#token, this);
    }
    this.setRef(ref);
  }

  /** Whether an armed fd keeps the event loop alive. */
  setRef(ref: boolean): void {
    if (!this.#armed || ref === this.#ref) return;
    this.#ref = ref;
    countRef(ref ? 1 : -1);
  }

  /** Stops waiting: no report reaches onReady until arm(); the fd stays in the set, disabled or not. */
  disarm(): void {
    if (!this.#armed) return;
    this.fired();
  }

  /** @internal A report was taken (the kernel disabled the entry). */
  fired(): void {
    this.#armed = false;
    pending.delete(this.#token);
    if (this.#ref) {
      this.#ref = false;
      countRef(-1);
    }
  }

  /** @internal The set is gone (its ref count was reset with it). */
  lost(): void {
    this.#armed = false;
    this.#ref = false;
    pending.delete(this.#token);
    this.#inSet = null;
  }

  /**
   * Forgets the fd (its owner is about to close it). No epoll_ctl here: an FdResource owner's
   * close takes the fd out of the set natively, after checking that the number is still its file
   * (resource.ts release()); closing alone removes the entry only when no other fd holds the file
   * (a dup, another process's copy), and a lingering entry stays, disabled or reporting a token
   * nobody has, until that file is closed. Deleting it here by number would be wrong when the
   * number was closed behind the owner's back and reused by another waited-on file: that file's
   * entry would go, and its wait with it. Idempotent.
   */
  forget(): void {
    this.disarm();
    this.#inSet = null;
  }
}
