/**
 * A listening Unix socket (SOCK_SEQPACKET) at a filesystem path: a compositor's end of the
 * rendezvous. Each accepted connection is a {@link UnixSocket}.
 * @module
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { ClosedError, TimeoutError } from './errors';
import { NativeCore, NativeFdWatcher, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import { TakeQueue, takeUntilEnd } from './take-queue';
import { NativeUnixSocket, SOCKET_KEYS, SocketLimits, UnixSocket, UnixSocketOptions, toSocketLimits, toSocketPath } from './unix-socket';
import { OptionKeys, toInt, toOptions } from './validate';
import { WaitOptions, parseWait } from './watcher';

const native = nativeFamily<NativeCore & NativeUnixSocket>();

/** Options of {@link UnixServer.listen}: listen(2)'s backlog, and the options of every socket it accepts. */
export interface ListenOptions extends UnixSocketOptions {
  /** How many connections may wait to be accepted (listen(2)'s backlog; default 128). */
  backlog?: number;
}

const LISTEN_KEYS: OptionKeys<ListenOptions> = { ...SOCKET_KEYS, backlog: true };
const ACCEPT_KEYS: OptionKeys<WaitOptions> = { timeoutMs: true, deadline: true, signal: true, ref: true };

/**
 * A listening socket. `accept()` (or `for await (const socket of server)`) gives the connections
 * in order; close() stops listening, ends the iteration and removes the socket file (if it is
 * still the one this server made). Owns its fd: close() it, or `using` it.
 */
export class UnixServer extends FdResource {
  /** The path it listens on. */
  readonly path: string;
  readonly #limits: SocketLimits;
  /** The socket file's identity, to remove it at close only while it is still ours. */
  readonly #file: { dev: number; ino: number } | undefined;
  readonly #accepters: TakeQueue<UnixSocket>;
  #watcher: NativeFdWatcher | null = null;

  /** @internal Use UnixServer.listen(). */
  protected constructor(fd: number, path: string, limits: SocketLimits) {
    super(fd, 'UnixServer');
    this.path = path;
    this.#limits = limits;
    let file: { dev: number; ino: number } | undefined;
    try {
      const st = lstatSync(path);
      file = { dev: st.dev, ino: st.ino };
    } catch {
      file = undefined; // already removed by someone else: nothing to remove at close
    }
    this.#file = file;
    this.#accepters = new TakeQueue(() => this.#arm());
  }

  /**
   * Creates a socket file at `path` and listens on it (socket, bind, listen). A file left there by
   * a server that did not close is not removed for you: EADDRINUSE; remove it first.
   * @throws ExplicitSyncError syscall 'bind': EADDRINUSE (the path exists), ENOENT (no such
   *   directory), EACCES; TypeError/RangeError for bad arguments (a path over 107 bytes).
   */
  static listen(path: string, options?: ListenOptions): UnixServer {
    const p = toSocketPath(path);
    const { backlog, ...rest } = toOptions(options, LISTEN_KEYS);
    const limits = toSocketLimits(rest);
    const b = backlog === undefined ? 128 : toInt(backlog, 'options.backlog', 0, 65535);
    return new UnixServer(native.unixListen(p, b), p, limits);
  }

  /**
   * The next connection (accept4 with SOCK_CLOEXEC|SOCK_NONBLOCK), with this server's socket
   * options. Callers are served in order.
   * @returns a promise; it rejects with TimeoutError, AbortError, ClosedError (this server is
   *   closed, or closed while waiting), ExplicitSyncError syscall 'accept4' (EMFILE, …).
   */
  accept(options?: WaitOptions): Promise<UnixSocket> {
    try {
      this.openFd('accept4');
      const wait = parseWait(options, { keys: ACCEPT_KEYS });
      if (this.#accepters.length === 0) {
        const fd = native.unixAccept(this.openFd('accept4'));
        if (fd >= 0) return Promise.resolve(UnixSocket[kAdopt](fd, this.#limits));
      }
      const onTimeout = (): Error =>
        new TimeoutError('accept4', { operation: 'accept', message: `ETIME: no connection within ${wait.timeoutMs} ms, accept4` });
      return this.#accepters.add(wait, onTimeout, UnixServer.prototype.accept);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The connections, in order, until close(). Breaking out of the loop leaves the server listening. */
  [Symbol.asyncIterator](): AsyncIterableIterator<UnixSocket> {
    return takeUntilEnd(() => this.accept(), () => this.closed);
  }

  /** Hands pending connections to waiting callers. */
  #pump(): void {
    while (this.#accepters.length > 0 && !this.closed) {
      let fd: number;
      try {
        fd = native.unixAccept(this.fd);
      } catch (err) {
        this.#accepters.rejectFirst(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      if (fd < 0) return;
      this.#accepters.resolveFirst(UnixSocket[kAdopt](fd, this.#limits));
    }
  }

  /** Watches for connections while someone waits for one; frees the watcher otherwise. */
  #arm(): void {
    if (this.closed || this.#accepters.length === 0) {
      this.#watcher?.close();
      this.#watcher = null;
      return;
    }
    if (this.#watcher === null) {
      // A poll error stops the handle (libuv): accept4 says what it was, then polling restarts.
      this.#watcher = new native.FdWatcher(this.fd, () => {
        this.#pump();
        this.#watcher?.start(native.POLL.READABLE);
      });
      this.#watcher.start(native.POLL.READABLE);
    }
    this.#watcher.setRef(this.#accepters.ref);
  }

  /** Rejects pending accepts, frees the watcher (before close(fd)) and removes the socket file if it is still ours. */
  protected override beforeClose(): void {
    this.#accepters.rejectAll(() => new ClosedError('UnixServer', 'accept4', 'accept'));
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#file === undefined) return;
    try {
      const st = lstatSync(this.path);
      if (st.dev === this.#file.dev && st.ino === this.#file.ino) unlinkSync(this.path);
    } catch {
      // Gone already, or not ours to remove.
    }
  }
}
