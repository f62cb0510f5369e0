/**
 * sync_file: a fence you hold as an fd (from a dma-buf, a syncobj, a Wayland client, Vulkan, EGL).
 * @module
 */
import { TimeoutError } from './errors';
import { native } from './native';
import { FdResource } from './resource';
import { toAbortSignal, toOptions, toTimeoutMs } from './validate';
import { FdWaitQueue, WaitOptions } from './watcher';

/** A sync_file fence. Owns its fd: close() it, or `using` it. */
export class SyncFile extends FdResource {
  #queue: FdWaitQueue | null = null;

  /** @internal Use SyncFile.fromFd() or the APIs that return sync files. Takes ownership of fd. */
  protected constructor(fd: number) {
    super(fd, 'SyncFile');
  }

  /** @internal Wraps an fd this library just created (no validation, takes ownership). */
  static adopt(fd: number): SyncFile {
    return new SyncFile(fd);
  }

  /** True once the fence has signalled (poll with a zero timeout). Never blocks. */
  isSignaled(): boolean {
    return native.pollIn(this.openFd('poll'), 0);
  }

  /**
   * Resolves when the fence signals; rejects with TimeoutError (code 'ETIME') after `timeoutMs`,
   * with AbortError when `signal` aborts, with ClosedError if the SyncFile is closed first.
   * An already-signalled fence resolves without arming a watcher. The fd is watched with libuv on
   * Node's event loop: no thread blocks. A pending wait keeps the process alive unless `ref: false`.
   */
  wait(options?: WaitOptions): Promise<void> {
    let fd: number;
    let timeoutMs: number | undefined;
    let signal: AbortSignal | undefined;
    let opts: Partial<WaitOptions>;
    try {
      fd = this.openFd('wait');
      opts = toOptions(options);
      timeoutMs = toTimeoutMs(opts.timeoutMs, 'options.timeoutMs');
      signal = toAbortSignal(opts.signal, 'options.signal');
    } catch (err) {
      return Promise.reject(err);
    }
    this.#queue ??= new FdWaitQueue(fd, () => native.pollIn(fd, 0));
    return this.#queue.wait({
      timeoutMs,
      signal,
      ref: opts.ref !== false,
      onTimeout: () => new TimeoutError('poll', { message: `ETIME: sync_file did not signal within ${timeoutMs} ms` }),
    });
  }

  /**
   * Blocks the thread until the fence signals or `timeoutMs` passes (poll(2)); throws TimeoutError.
   * For scripts: prefer wait() in anything with an event loop.
   */
  waitSync(timeoutMs = Infinity): void {
    const ms = toTimeoutMs(timeoutMs);
    if (!native.pollIn(this.openFd('poll'), ms === undefined ? -1 : Math.ceil(ms)))
      throw new TimeoutError('poll', { message: `ETIME: sync_file did not signal within ${ms} ms` });
  }

  protected override beforeClose(): void {
    this.#queue?.close('SyncFile');
    this.#queue = null;
  }
}
