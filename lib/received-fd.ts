/**
 * What a {@link UnixSocket} receives: an {@link FdMessage} of data and {@link ReceivedFd}s.
 *
 * A received fd is owned by its ReceivedFd, closed once, until you adopt it with the API for what
 * it is: `SyncFile.fromFd(received.fd)`, `DmaBuf.fromFd(received.fd)` take it over (the ReceivedFd
 * hands it over to them and reads closed afterwards); `device.importTimeline(received.fd)` makes a
 * handle of its own, after which the ReceivedFd still owns the fd and closes it with the message.
 * `take()` hands the bare number to you. Whatever is not adopted is closed by `message.close()`
 * (or `using`), or, as a last resort, by the GC backstop, which warns (EXPLICIT_SYNC_LEAK).
 * @module
 */
import { describeFd } from './errors';
import { FdResource, kAdopt } from './resource';

/**
 * One fd that arrived in a message (SCM_RIGHTS, received with MSG_CMSG_CLOEXEC: O_CLOEXEC). Owns
 * it until it is adopted, taken or closed. Reading `fd` does not adopt it.
 */
export class ReceivedFd extends FdResource {
  /** @internal Received by a UnixSocket: see FdMessage. */
  protected constructor(fd: number) {
    super(fd, 'ReceivedFd', { handsOver: true });
  }

  /** @internal Takes ownership of an fd that just arrived. */
  static [kAdopt](fd: number): ReceivedFd {
    return new ReceivedFd(fd);
  }

  /** What the fd is, as /proc/self/fd shows it ('anon_inode:sync_file', '/dmabuf:', 'pipe:[…]'). */
  describe(): string {
    return describeFd(this.openFd('readlink'));
  }

  /**
   * Hands the fd number to you, unclosed: it is yours to close (`fs.closeSync`) or to adopt.
   * Afterwards this object reads closed.
   * @throws ClosedError when it was closed, taken or adopted already.
   */
  take(): number {
    return this.relinquish('take');
  }
}

/**
 * A received message: `data` and the fds that came with it. Closing it closes the fds nobody
 * adopted or took; `using message = await socket.receive()` does that at the end of the scope.
 */
export class FdMessage implements Disposable {
  /** The message's bytes (never empty). */
  readonly data: Buffer;
  /** The fds, in the order they were sent. */
  readonly fds: readonly ReceivedFd[];

  /** @internal Use UnixSocket#receive(). */
  protected constructor(data: Buffer, fds: readonly ReceivedFd[]) {
    this.data = data;
    this.fds = fds;
  }

  /** @internal Takes ownership of the fds that just arrived with `data`. */
  static [kAdopt](data: Buffer, fds: readonly number[]): FdMessage {
    return new FdMessage(data, fds.map((fd) => ReceivedFd[kAdopt](fd)));
  }

  /** Closes every fd of the message not adopted or taken. Idempotent. */
  close(): void {
    let first: unknown;
    for (const f of this.fds) {
      try {
        f.close();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  /** Same as close(); never throws. */
  [Symbol.dispose](): void {
    for (const f of this.fds) f[Symbol.dispose]();
  }
}
