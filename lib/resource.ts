/**
 * FdResource: the base of every object that owns an fd. Exactly one owner closes it once;
 * close() is idempotent; after it `fd` is -1 and every method throws ClosedError; `using` works.
 * A FinalizationRegistry backstop closes fds of objects dropped without close() and warns
 * (code 'EXPLICIT_SYNC_LEAK'). It can never close a reused fd number: it only fires for an object
 * that never gave up its fd, so the number is still ours.
 * @module
 */
import { ClosedError } from './errors';
import { native } from './native';

interface Held {
  fd: number;
  what: string;
}

const leaks = new FinalizationRegistry<Held>((held) => {
  try {
    native.close(held.fd);
  } catch {
    // Nothing to report to: the owner is gone. The warning below still says what leaked.
  }
  process.emitWarning(`${held.what} (fd ${held.fd}) was garbage-collected without close(); its fd was closed`, {
    code: 'EXPLICIT_SYNC_LEAK',
  });
});

/** Base class of fd-owning objects. */
export abstract class FdResource implements Disposable {
  #fd: number;
  readonly #what: string;

  /** Takes ownership of `fd`. */
  protected constructor(fd: number, what: string) {
    this.#fd = fd;
    this.#what = what;
    leaks.register(this, { fd, what }, this);
    // A worker that exits or is terminated runs no JS: the env's teardown closes the fd instead.
    native.trackFd(fd);
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
    if (fd < 0) throw new ClosedError(this.#what, call);
    return fd;
  }

  /**
   * Runs before the fd is closed: subclasses stop watchers and reject pending waits here
   * (the watcher must stop before close(fd)).
   */
  protected beforeClose(): void {}

  /** Closes the fd. Idempotent; pending waits reject with ClosedError. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    try {
      this.beforeClose();
    } finally {
      this.#fd = -1;
      leaks.unregister(this);
      native.close(fd);
    }
  }

  /** Same as close(); never throws. */
  [Symbol.dispose](): void {
    try {
      this.close();
    } catch {
      // Dispose must not throw (it may run while another error unwinds).
    }
  }
}
