/**
 * The thread's one epoll set for fd waits (native/fd_poller.cc), watched by one uv_poll on Node's
 * event loop. An {@link PolledFd} is one fd's place in it: arming it is one epoll_ctl, so a wait
 * on a sync_file costs no uv_poll handle of its own (making, starting, stopping and closing one is
 * five syscalls, a JS wrapper, a reference and an async context).
 *
 * An fd is armed while its owner has waits pending and reported once (EPOLLONESHOT): it then stays
 * in the set, disabled, until armed again or until its owner closes the fd, which takes it out
 * (see forget()). While armed it is in `pending`, which roots its owner (the owner cannot be
 * collected mid-wait); idle, nothing here references it, so an owner dropped without close() is
 * collected and its GC backstop closes the fd, which takes it out of the set.
 *
 * The set keeps the event loop alive while a ref'd wait is armed, like a timer. The native side
 * keeps the armed tokens too, with their ref and kind: it counts the refs, drops reports nobody
 * waits for, and reads a sync_file's status with its report, so that arming is one crossing and a
 * wake is one crossing with nothing to call back for. The set's own fd is made at the thread's
 * first fd wait and kept for the thread's life (the env's teardown closes it; a worker's goes with
 * the worker), counted in the census as {@link FD_WAIT_SET}.
 * @module
 * @internal
 */
import { countFd } from './census';
import { ExplicitSyncError } from './errors';
import { NativeCore, nativeFamily } from './native';

interface NativeFdPoller {
  readonly fd: number;
  /** `flags`: {@link REF} | {@link SYNC_FILE}. */
  add(fd: number, token: number, flags: number): void;
  rearm(fd: number, token: number, flags: number): void;
  disarm(token: number): void;
  setRef(token: number, ref: boolean): void;
  close(): void;
}

interface NativePollerBits extends NativeCore {
  FdPoller: new (ready: Float64Array, callback: (count: number) => void) => NativeFdPoller;
}
const native = nativeFamily<NativePollerBits>();

/** add()/rearm() flags: the armed fd keeps the event loop alive; a report reads its sync_file status. */
const REF = 1;
const SYNC_FILE = 2;

/** (token, status) pairs of the fds reported by a wake (written natively, at most 64 per wake). */
const ready = new Float64Array(128);
/** The armed fds, by token: what a wake dispatches to, and what roots their owners. */
const pending = new Map<number, PolledFd>();
let set: NativeFdPoller | null = null;
let nextToken = 1;

/** The census's name for the set's fd (one per thread that ever waited on an fd). */
export const FD_WAIT_SET = 'fd wait set (epoll)';

function onWake(count: number): void {
  if (count < 0) {
    // The set's own poll failed (never seen): every armed fd hears of it; the next wait makes a new set.
    const broken = set;
    set = null;
    if (broken !== null) {
      broken.close();
      countFd(FD_WAIT_SET, -1);
    }
    const err = new ExplicitSyncError(-count, 'poll');
    for (const p of [...pending.values()]) {
      p.lost();
      p.onReady(err, NaN);
    }
    return;
  }
  for (let i = 0; i < count; i++) {
    const p = pending.get(ready[2 * i]!);
    if (p === undefined) continue; // never: the native side drops the reports of disarmed tokens
    p.fired();
    p.onReady(undefined, ready[2 * i + 1]!);
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

/** One fd's place in the thread's epoll set. The owner forgets it (forget()) when it closes the fd. */
export class PolledFd {
  readonly #fd: number;
  readonly #token = nextToken++;
  readonly #syncFile: boolean;
  /** In the kernel's set (armed or disabled after a report). */
  #inSet: NativeFdPoller | null = null;
  #armed = false;
  #ref = false;

  /**
   * `onReady(undefined, status)` when the fd is readable (reported once per arm()), or with the
   * set's error. With `syncFile`, `status` is the sync_file's SYNC_IOC_FILE_INFO status read in the
   * same pass (1 signalled, < 0 its fence's error; NaN when that ioctl failed); else NaN.
   */
  constructor(
    fd: number,
    readonly onReady: (err: Error | undefined, status: number) => void,
    syncFile = false,
  ) {
    this.#fd = fd;
    this.#syncFile = syncFile;
  }

  /** Waits for the fd to turn readable (again); `ref` whether that keeps the loop alive. Throws errno errors. */
  arm(ref: boolean): void {
    if (this.#armed) {
      this.setRef(ref);
      return;
    }
    const s = theSet();
    const flags = (ref ? REF : 0) | (this.#syncFile ? SYNC_FILE : 0);
    if (this.#inSet === s) s.rearm(this.#fd, this.#token, flags);
    else s.add(this.#fd, this.#token, flags);
    this.#inSet = s;
    this.#armed = true;
    this.#ref = ref;
    pending.set(this.#token, this);
  }

  /** Whether an armed fd keeps the event loop alive. */
  setRef(ref: boolean): void {
    if (!this.#armed || ref === this.#ref) return;
    this.#ref = ref;
    this.#inSet?.setRef(this.#token, ref);
  }

  /** Stops waiting: no report reaches onReady until arm(); the fd stays in the set, disabled or not. */
  disarm(): void {
    if (!this.#armed) return;
    this.#inSet?.disarm(this.#token);
    this.fired();
  }

  /** @internal A report was taken (the native side disarmed the token and dropped its ref). */
  fired(): void {
    this.#armed = false;
    this.#ref = false;
    pending.delete(this.#token);
  }

  /** @internal The set is gone (and its native record with it). */
  lost(): void {
    this.fired();
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
