/**
 * FdResource: the base of every object that owns an fd. Exactly one owner closes it once;
 * close() is idempotent; after it `fd` is -1 and every method throws ClosedError; `using` works.
 *
 * Never a stranger's fd: adoption records what the fd is (st_dev and st_ino of one fstat, and a
 * token of the native side's, in native/util.cc's trackFd; for a sync_file, that it is one: every
 * anon-inode file shares one inode, so a sync_file's st_ino would not tell it from libuv's epoll fd).
 * close() and the GC backstop close the fd only while it is still that file (that kind of file)
 * and still this object's. If someone closed the number behind
 * the object's back (and it may since have been reused by another file), close() leaves it open
 * and throws FdLostError; [Symbol.dispose] and the GC backstop warn instead.
 *
 * A FinalizationRegistry backstop (leaks.ts LeakBackstop) closes fds of objects dropped without
 * close() and warns, with a rate-limited summary (code 'EXPLICIT_SYNC_LEAK', see leaks.ts).
 *
 * Hand-over: an object created with `handsOver` (a ReceivedFd, an fd that came in a message) owns
 * its fd only until another FdResource adopts the same number (`SyncFile.fromFd(received.fd)`):
 * then it gives the fd up, unclosed, to the adopter, so that the fd is closed once, by the adopter.
 * @module
 */
import { countFd } from './census';
import { ClosedError, FdLostError } from './errors';
import { fdWaitSetFd } from './fd-poller';
import { BackstopRecord, CreationSite, LeakBackstop, creationSite, formatSite, reportLeak } from './leaks';
import { native } from './native';
import { objectChannel, publishObject } from './trace/channels';
import { applyLabel, labelled } from './trace/labels';

/**
 * @internal Key of the static factories that wrap what this library itself just created, unchecked
 * (SyncFile, DmaBuf: an fd; Timeline, Syncobj: a handle). A Symbol that the package does not
 * export, so they are not callable from outside (as better-sqlite3 hides its native handle):
 * foreign fds go through the checked fromFd()/import entries.
 */
export const kAdopt: unique symbol = Symbol('explicit-sync.adopt');

/**
 * @internal Key of the method that says a wait on an FdResource's fd is pending (`true`: the fd
 * goes in the thread's epoll set, lib/fd-poller.ts, whose table roots the object) or no longer is
 * (`false`, after settling the last one). Its close then takes the fd out of the set first (see
 * release()), and meanwhile the GC backstop's registration waits (see leaks.ts LeakBackstop).
 */
export const kWaiting: unique symbol = Symbol('explicit-sync.waiting');

/** What an FdResource owns; also the GC backstop's record (it must not reference the object). */
interface Held extends BackstopRecord {
  readonly fd: number;
  /** From trackFd: identifies this adoption of the fd number. */
  readonly token: number;
  readonly what: string;
  /** The user's label (setLabel), for messages. */
  label?: string;
  /** Class name, for fd counts and leak summaries. */
  readonly kind: string;
  readonly site: CreationSite | undefined;
  /** The fd was put in the thread's epoll set (a wait): closing it takes it out first. */
  inWaitSet?: true;
}

/** What native OwnedFd() multiplies its token by: fds are below it, tracked values at or above. */
const TRACKED = 2 ** 31;

/** closeOwned()'s answers. */
const CLOSED = 0;
const NOT_OPEN = 1;

/**
 * Gives up `held.fd`: closes it if it is still the file adopted, else returns the FdLostError.
 * An fd that was in the epoll set leaves it first, natively, under the same check: closing an fd
 * removes its entry only when no other fd (a dup, another process's copy) holds the file, and an
 * entry per file and fd number would linger for as long as a peer keeps its copy open.
 */
function release(held: Held): FdLostError | undefined {
  countFd(held.kind, -1);
  const outcome = native.closeOwned(held.fd, held.token, held.inWaitSet === true ? fdWaitSetFd() : -1);
  if (outcome === CLOSED) return undefined;
  const createdAt = held.site !== undefined ? ` It was created at:${formatSite(held.site)}` : '';
  return new FdLostError(labelled(held.what, held.label), held.fd, outcome !== NOT_OPEN, createdAt);
}

/**
 * fd number → the object that hands it over to the next object adopting that number (see the
 * module comment). Weak: such an object can still be collected, and its fd closed by the backstop.
 */
const handingOver = new Map<number, WeakRef<FdResource>>();

const leaks = new LeakBackstop<Held>((held) => {
  let lost: FdLostError | undefined;
  try {
    lost = release(held);
  } catch {
    // Nothing to report to: the owner is gone. The warning below still says what leaked.
  }
  const fate = lost === undefined ? 'its fd was closed' : `its fd was not closed: ${lost.message}`;
  reportLeak(held.kind, `${labelled(held.what, held.label)} (fd ${held.fd}) was garbage-collected without close(); ${fate}`, held.site);
});

/** Base class of fd-owning objects. */
export abstract class FdResource implements Disposable {
  #fd: number;
  readonly #held: Held;

  /**
   * Takes ownership of `fd`: an fd, or what a native call that tracked the fd it created returned
   * (token * 2^31 + fd, native/util.h OwnedFd: one crossing less than calling trackFd here).
   * With `handsOver`, gives it up (unclosed) to the next FdResource that adopts the same number.
   * An object that held the number that way hands it over now. With `syncFile` (the caller knows
   * fd is a sync_file), its identity is its kind (see the module comment).
   */
  protected constructor(fd: number, what: string, how?: { handsOver?: boolean; syncFile?: boolean }) {
    let token: number;
    if (fd >= TRACKED) {
      token = Math.floor(fd / TRACKED);
      fd %= TRACKED;
    } else {
      // trackFd also makes a worker that exits or is terminated (and runs no JS) close the fd.
      token = how?.syncFile === true ? native.trackFd(fd, true) : native.trackFd(fd);
    }
    const previous = handingOver.get(fd)?.deref();
    if (previous !== undefined) previous.#handOver();
    this.#fd = fd;
    const kind = new.target.name;
    this.#held = { fd, token, what, kind, site: creationSite() };
    countFd(kind, 1);
    leaks.register(this, this.#held);
    if (how?.handsOver === true) handingOver.set(fd, new WeakRef(this));
    if (objectChannel.hasSubscribers) publishObject('open', this);
  }

  /** The label given with {@link setLabel} (or at creation), if any: shown in errors, events and inspect(). */
  get label(): string | undefined {
    return this.#held.label;
  }

  /** Names this object for errors, diagnostics_channel events, `util.inspect` and inspect(). Returns this. */
  setLabel(label: string): this {
    applyLabel(this.#held, this, label);
    return this;
  }

  /** @internal See {@link kWaiting}. */
  [kWaiting](waiting: boolean): void {
    if (waiting) {
      this.#held.inWaitSet = true;
      leaks.root(this.#held);
    } else {
      leaks.unroot(this, this.#held);
    }
  }

  /** The fd this object owns, or -1 once closed. Do not close it yourself: call close(). */
  get fd(): number {
    return this.#fd;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** The fd, or a ClosedError naming `call` when closed. */
  protected openFd(call: string): number {
    const fd = this.#fd;
    if (fd < 0) throw new ClosedError(labelled(this.#held.what, this.#held.label), call);
    return fd;
  }

  /**
   * Runs before the fd is closed: subclasses stop watchers and reject pending waits here
   * (the watcher must stop before close(fd)).
   */
  protected beforeClose(): void {}

  /**
   * Gives the fd up without closing it: afterwards this object is closed (`fd` -1) and the number
   * is the caller's (or the adopter's), to close once. Throws ClosedError when already closed.
   */
  protected relinquish(call: string): number {
    const fd = this.openFd(call);
    this.#handOver();
    return fd;
  }

  #handOver(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    if (handingOver.get(fd)?.deref() === this) handingOver.delete(fd);
    leaks.unregister(this, this.#held);
    countFd(this.#held.kind, -1);
    native.untrackFd(fd, this.#held.token);
  }

  /**
   * Closes the fd. Idempotent; pending waits reject with ClosedError.
   * @throws FdLostError (a ClosedError, code 'EBADF') when the fd had been closed behind this
   *   object's back: the number is left alone (it may be another file's now); the object is closed.
   */
  close(): void {
    if (this.#fd < 0) return;
    if (objectChannel.hasSubscribers) publishObject('close', this);
    try {
      this.beforeClose();
    } finally {
      const fd = this.#fd;
      this.#fd = -1;
      if (handingOver.get(fd)?.deref() === this) handingOver.delete(fd);
      leaks.unregister(this, this.#held);
      const lost = release(this.#held);
      if (lost !== undefined) throw lost;
    }
  }

  /** Same as close(); never throws. A lost fd (see close()) is reported as a process warning instead. */
  [Symbol.dispose](): void {
    try {
      this.close();
    } catch (err) {
      // Dispose must not throw (it may run while another error unwinds).
      if (err instanceof FdLostError) process.emitWarning(err.message, { code: 'EXPLICIT_SYNC_FD_LOST' });
    }
  }
}
