/**
 * fds between processes: a Unix socket that carries messages of data and fds (SCM_RIGHTS), on the
 * event loop with no thread blocked.
 *
 * SOCK_SEQPACKET, not SOCK_STREAM (what Wayland uses): each send() is one message, delivered whole
 * with exactly its fds, or not yet (the socket buffer is full). A stream has no boundaries: fds
 * ride on some byte of the stream, a write may be cut short, and every protocol must frame its own
 * messages and count its fds (libwayland's closure marshalling does both). A seqpacket socket
 * needs none of that, so send(data, fds) / receive() → { data, fds } is the whole API.
 *
 * Safety: every socket fd is O_CLOEXEC|O_NONBLOCK; received fds are O_CLOEXEC (MSG_CMSG_CLOEXEC)
 * and owned by {@link ReceivedFd}s; a message with more fds than `maxFds` or cut short
 * (MSG_CTRUNC, MSG_TRUNC) is an {@link TruncatedMessageError} and the fds that did arrive are
 * closed; sends use MSG_NOSIGNAL (a peer that went away is EPIPE, never SIGPIPE); a full socket
 * buffer queues the message (send()'s promise resolves when it is sent), up to `maxQueuedSends`.
 * @module
 */
import { countFd } from './census';
import { ClosedError, ExplicitSyncError, TimeoutError, errnoNumber, wrongFdError } from './errors';
import { FdMessage } from './received-fd';
import { NativeCore, NativeFdWatcher, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import { toDupOption } from './sync-file';
import { TakeQueue, takeUntilEnd } from './take-queue';
import { InvalidArgTypeError, InvalidArgValueError, OptionKeys, OutOfRangeError, toFd, toInt, toOptions, toPath } from './validate';
import { WaitOptions, parseWait } from './watcher';

/** native/unix_socket.cc */
export interface NativeUnixSocket {
  unixSocketPair(): [number, number];
  unixListen(path: string, backlog: number): number;
  unixConnect(path: string): number;
  unixAccept(fd: number): number;
  unixSend(fd: number, data: Uint8Array, fds: number[]): number;
  unixReceive(fd: number, maxBytes: number, maxFds: number): undefined | null | { data?: Buffer; fds: number[]; flags: number; bytes: number; dropped: number };
  unixPeerCredentials(fd: number): PeerCredentials;
  unixSocketType(fd: number): number;
  UNIX: { SCM_MAX_FD: number; MAX_MESSAGE_BYTES: number; MSG_TRUNC: number; MSG_CTRUNC: number; SOCK_SEQPACKET: number };
}

const native = nativeFamily<NativeCore & NativeUnixSocket>();

/** The census kind of the fd duplicates queued sends hold (an EMFILE error counts them). */
const QUEUED_FD = 'queued send fd';

/** Default of `maxFds`: libwayland's limit of fds per message (MAX_FDS_OUT). */
export const DEFAULT_MAX_FDS = 28;
/** Default of `maxMessageBytes`. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;
/** Default of `maxQueuedSends`. */
export const DEFAULT_MAX_QUEUED_SENDS = 64;

/** Options of every {@link UnixSocket} (and of those a {@link UnixServer} accepts). */
export interface UnixSocketOptions {
  /**
   * The most fds one message may carry, both ways (default {@link DEFAULT_MAX_FDS}, libwayland's;
   * at most 253, the kernel's SCM_MAX_FD). send() refuses more; a message that brings more is a
   * TruncatedMessageError, its fds closed.
   */
  maxFds?: number;
  /**
   * The largest message, in bytes, both ways (default 64 KiB, at most 4 MiB). The kernel refuses
   * (EMSGSIZE) a message larger than the sender's socket buffer (208 KiB by default).
   */
  maxMessageBytes?: number;
  /** How many messages send() holds while the socket buffer is full (default 64); beyond, ENOBUFS. */
  maxQueuedSends?: number;
}

/** @internal */
export const SOCKET_KEYS: OptionKeys<UnixSocketOptions> = { maxFds: true, maxMessageBytes: true, maxQueuedSends: true };
const FROM_FD_KEYS: OptionKeys<UnixSocketOptions & { dup?: boolean }> = { ...SOCKET_KEYS, dup: true };
const RECEIVE_KEYS: OptionKeys<WaitOptions> = { timeoutMs: true, deadline: true, signal: true, ref: true };

/** @internal Validated socket options. */
export type SocketLimits = Required<UnixSocketOptions>;

/** @internal Validates socket options. */
export function toSocketLimits(o: UnixSocketOptions): SocketLimits {
  const { SCM_MAX_FD, MAX_MESSAGE_BYTES } = native.UNIX;
  return {
    maxFds: o.maxFds === undefined ? DEFAULT_MAX_FDS : toInt(o.maxFds, 'options.maxFds', 0, SCM_MAX_FD),
    maxMessageBytes: o.maxMessageBytes === undefined ? DEFAULT_MAX_MESSAGE_BYTES : toInt(o.maxMessageBytes, 'options.maxMessageBytes', 1, MAX_MESSAGE_BYTES),
    maxQueuedSends: o.maxQueuedSends === undefined ? DEFAULT_MAX_QUEUED_SENDS : toInt(o.maxQueuedSends, 'options.maxQueuedSends', 0, 0x7fffffff),
  };
}

/** @internal A socket path: sun_path holds 107 bytes and a NUL. */
export function toSocketPath(value: unknown, name = 'path'): string {
  const path = toPath(value, name);
  if (Buffer.byteLength(path) > 107) throw new OutOfRangeError(name, 'a path of at most 107 bytes (sun_path)', value);
  return path;
}

/** The peer's process and user, as the kernel recorded them when it connected (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * A message that could not be received whole (code 'EMSGSIZE', syscall 'recvmsg'): more fds than
 * `maxFds` (the kernel cut the control message: MSG_CTRUNC), or more data than `maxMessageBytes`
 * (MSG_TRUNC). The message is gone; the fds of it that arrived were closed. The socket stays usable.
 */
export class TruncatedMessageError extends ExplicitSyncError {
  /** 'fds': too many fds; 'data': too many bytes. */
  readonly truncated: 'fds' | 'data';
  /** The message's size in bytes. */
  readonly bytes: number;
  /** How many of its fds arrived (and were closed). */
  readonly closedFds: number;

  /** @internal */
  constructor(truncated: 'fds' | 'data', bytes: number, closedFds: number, limit: number) {
    const what =
      truncated === 'fds'
        ? `a message carried more fds than this socket takes (maxFds ${limit}); the ${closedFds} that arrived were closed`
        : `a message of ${bytes} bytes exceeds maxMessageBytes (${limit}); its ${closedFds} fds were closed`;
    super(errnoNumber('EMSGSIZE'), 'recvmsg', { operation: 'receive', message: `EMSGSIZE: ${what}, recvmsg` });
    this.truncated = truncated;
    this.bytes = bytes;
    this.closedFds = closedFds;
  }
}

/** What send() accepts as an fd: a number, or an object of this library that owns one. */
export type SendableFd = number | FdResource;

interface QueuedSend {
  data: Buffer;
  /** Duplicates owned by the queue (closed once sent or failed), with their trackFd tokens. */
  fds: number[];
  tokens: number[];
  resolve(): void;
  reject(err: Error): void;
}

/** A native error with `operation` set, and a message saying what EPIPE/ECONNRESET mean here. */
function socketError(err: unknown, operation: 'send' | 'receive'): unknown {
  if (!(err instanceof ExplicitSyncError) || err.constructor !== ExplicitSyncError) return err;
  const gone = err.code === 'EPIPE' || err.code === 'ECONNRESET';
  return new ExplicitSyncError(-err.errno, err.syscall, {
    operation,
    ...(gone ? { message: `${err.code}: the peer closed the connection, ${err.syscall}` } : { message: err.message }),
    cause: err,
  });
}

/**
 * One end of a connected Unix socket (SOCK_SEQPACKET) carrying messages of data and fds.
 * Get one from {@link UnixSocket.connect}, {@link UnixSocket.socketpair}, {@link UnixServer}'s
 * accept(), or {@link UnixSocket.fromFd}. Owns its fd: close() it, or `using` it.
 */
export class UnixSocket extends FdResource {
  readonly #limits: SocketLimits;
  readonly #receivers: TakeQueue<FdMessage | null>;
  readonly #sends: QueuedSend[] = [];
  #watcher: NativeFdWatcher | null = null;
  #armed = 0;
  #ended = false;

  /** @internal Use the static factories. */
  protected constructor(fd: number, limits: SocketLimits) {
    super(fd, 'UnixSocket');
    this.#limits = limits;
    this.#receivers = new TakeQueue(() => this.#arm());
  }

  /** @internal Takes ownership of a connected socket fd this library just made. */
  static [kAdopt](fd: number, limits: SocketLimits): UnixSocket {
    return new UnixSocket(fd, limits);
  }

  /**
   * Connects to the socket a {@link UnixServer} (or any SOCK_SEQPACKET listener) listens on.
   * @throws ExplicitSyncError syscall 'connect': ENOENT (no such path), ECONNREFUSED (nobody
   *   listens there), EAGAIN (its backlog is full), EPROTOTYPE (a stream socket listens there).
   */
  static connect(path: string, options?: UnixSocketOptions): UnixSocket {
    const p = toSocketPath(path);
    const limits = toSocketLimits(toOptions(options, SOCKET_KEYS));
    return new UnixSocket(native.unixConnect(p), limits);
  }

  /** Two connected sockets (socketpair(2)): hand one end to a Worker or a child, or test with both. */
  static socketpair(options?: UnixSocketOptions): [UnixSocket, UnixSocket] {
    const limits = toSocketLimits(toOptions(options, SOCKET_KEYS));
    const [a, b] = native.unixSocketPair();
    return [new UnixSocket(a, limits), new UnixSocket(b, limits)];
  }

  /**
   * Wraps a connected SOCK_SEQPACKET socket fd you have (inherited, received). Takes ownership of
   * `fd` (with `dup: true`, of a duplicate); when it throws, it took nothing.
   * @throws ExplicitSyncError 'ENOTSOCK' for an fd that is not a socket, 'EPROTOTYPE' for a socket
   *   of another type (a stream socket), 'EBADF' when it is not open.
   */
  static fromFd(fd: number, options?: UnixSocketOptions & { dup?: boolean }): UnixSocket {
    toFd(fd);
    const { dup, ...rest } = toOptions(options, FROM_FD_KEYS);
    const limits = toSocketLimits(rest);
    const copy = toDupOption(dup === undefined ? undefined : { dup });
    let type: number;
    try {
      type = native.unixSocketType(fd);
    } catch (err) {
      throw wrongFdError(fd, 'socket', 'getsockopt', err, errnoNumber('ENOTSOCK'));
    }
    if (type !== native.UNIX.SOCK_SEQPACKET) throw wrongFdError(fd, 'SOCK_SEQPACKET socket', 'getsockopt', undefined, errnoNumber('EPROTOTYPE'));
    return new UnixSocket(copy ? native.dup(fd) : fd, limits);
  }

  /** This socket's limits (validated options). */
  get limits(): Readonly<SocketLimits> {
    return this.#limits;
  }

  /** Messages waiting in send()'s queue for room in the socket buffer. */
  get queuedSends(): number {
    return this.#sends.length;
  }

  /** The peer's pid, uid and gid when it connected (SO_PEERCRED). */
  peerCredentials(): PeerCredentials {
    return native.unixPeerCredentials(this.openFd('getsockopt'));
  }

  /**
   * Sends one message: `data` (1 byte to `maxMessageBytes`; a string is sent as UTF-8) and up to
   * `maxFds` fds. The fds stay yours: the peer gets duplicates. Resolves once the kernel took the
   * message: at once, or, when the socket buffer is full, after the peer has read enough; the
   * message waits in a queue meanwhile, with duplicates of its fds, so you may close yours as soon
   * as send() returns. Messages are sent in order.
   * @returns a promise; it rejects (never throws) with: ExplicitSyncError syscall 'sendmsg' code
   *   'EPIPE' or 'ECONNRESET' when the peer went away, 'ENOBUFS' when `maxQueuedSends` messages
   *   already wait, 'EMSGSIZE' when the kernel finds the message too large; ClosedError when this
   *   socket (or an object in `fds`) is closed or is closed while the message waits; TypeError /
   *   RangeError for bad arguments.
   */
  send(data: Uint8Array | string, fds: readonly SendableFd[] = []): Promise<void> {
    try {
      const fd = this.openFd('sendmsg');
      const bytes = this.#toData(data);
      const numbers = this.#toFds(fds);
      if (this.#sends.length === 0) {
        if (native.unixSend(fd, bytes, numbers) >= 0) return Promise.resolve();
      }
      if (this.#sends.length >= this.#limits.maxQueuedSends)
        throw new ExplicitSyncError(errnoNumber('ENOBUFS'), 'sendmsg', {
          operation: 'send',
          message: `ENOBUFS: ${this.#sends.length} messages already wait for room in the socket buffer (maxQueuedSends); await send() before sending more, sendmsg`,
        });
      // Snapshot: copies of the data and of the fds, so that the caller may reuse or close them.
      const dups: number[] = [];
      try {
        for (const n of numbers) dups.push(native.dup(n));
      } catch (err) {
        for (const d of dups) native.close(d); // EMFILE halfway: keep none
        throw err;
      }
      const tokens = dups.map((d) => native.trackFd(d));
      for (let i = 0; i < dups.length; i++) countFd(QUEUED_FD, 1);
      return new Promise<void>((resolve, reject) => {
        this.#sends.push({ data: Buffer.from(bytes), fds: dups, tokens, resolve, reject });
        this.#arm();
      });
    } catch (err) {
      return Promise.reject(socketError(err, 'send'));
    }
  }

  /**
   * Receives the next message. Resolves with an {@link FdMessage} (close it, or adopt its fds),
   * or null at the end of the stream (the peer closed). Nothing is read from the socket until a
   * caller asks: unread messages (and their fds) stay in the kernel, which holds the peer's sends.
   * @param options `timeoutMs` / `deadline`, `signal`, `ref` (as every wait; {@link WaitOptions}).
   * @returns a promise; it rejects with {@link TruncatedMessageError} (a message too large, or with
   *   too many fds: it is gone, its fds closed; the socket stays usable), ExplicitSyncError code
   *   'ECONNRESET' (the peer went away with messages of ours unread), TimeoutError (code 'ETIME'),
   *   AbortError, ClosedError when this socket is closed.
   */
  receive(options?: WaitOptions): Promise<FdMessage | null> {
    try {
      this.openFd('recvmsg');
      const wait = parseWait(options, { keys: RECEIVE_KEYS });
      if (this.#ended) return Promise.resolve(null);
      if (this.#receivers.length === 0) {
        const ready = this.#readOne();
        if (ready !== undefined) return ready instanceof Error ? Promise.reject(ready) : Promise.resolve(ready);
      }
      const onTimeout = (): Error =>
        new TimeoutError('recvmsg', { operation: 'receive', message: `ETIME: no message within ${wait.timeoutMs} ms, recvmsg` });
      return this.#receivers.add(wait, onTimeout, UnixSocket.prototype.receive);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The messages, in order, until the peer closes (or this socket is closed). Throws what
   * receive() rejects with. Breaking out of the loop leaves the socket open.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<FdMessage> {
    return takeUntilEnd(() => this.receive(), () => this.closed);
  }

  #toData(data: unknown): Uint8Array {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgTypeError('data', 'of type string or an instance of Buffer or Uint8Array', data);
    // An empty SEQPACKET message reads as the end of the stream.
    if (bytes.byteLength === 0) throw new InvalidArgValueError('data', 'must not be empty (an empty message reads as end of stream)', data);
    if (bytes.byteLength > this.#limits.maxMessageBytes)
      throw new OutOfRangeError('data.byteLength', `<= maxMessageBytes (${this.#limits.maxMessageBytes})`, bytes.byteLength);
    return bytes;
  }

  #toFds(fds: unknown): number[] {
    if (!Array.isArray(fds)) throw new InvalidArgTypeError('fds', 'an array of fds (numbers) or objects that own one', fds);
    if (fds.length > this.#limits.maxFds) throw new OutOfRangeError('fds.length', `<= maxFds (${this.#limits.maxFds})`, fds.length);
    return fds.map((f: unknown, i) => {
      if (f instanceof FdResource) {
        if (f.fd < 0) throw new ClosedError(f.constructor.name, 'sendmsg', 'send');
        return f.fd;
      }
      if (typeof f === 'number') return toFd(f, `fds[${i}]`);
      throw new InvalidArgTypeError(`fds[${i}]`, 'an fd (number) or an object of this library that owns one (SyncFile, DmaBuf, …)', f);
    });
  }

  /** One non-blocking read: a message, null (end), an error for the caller, or undefined (nothing yet). */
  #readOne(): FdMessage | null | Error | undefined {
    let r: ReturnType<NativeUnixSocket['unixReceive']>;
    try {
      r = native.unixReceive(this.openFd('recvmsg'), this.#limits.maxMessageBytes, this.#limits.maxFds);
    } catch (err) {
      const e = socketError(err, 'receive');
      return e instanceof Error ? e : new Error(String(e));
    }
    if (r === undefined) return undefined;
    if (r === null) {
      this.#ended = true;
      return null;
    }
    if (r.data === undefined) {
      const fds = (r.flags & native.UNIX.MSG_CTRUNC) !== 0 || (r.flags & native.UNIX.MSG_TRUNC) === 0;
      return new TruncatedMessageError(fds ? 'fds' : 'data', r.bytes, r.dropped, fds ? this.#limits.maxFds : this.#limits.maxMessageBytes);
    }
    return FdMessage[kAdopt](r.data, r.fds);
  }

  /** Hands messages to waiting receivers while there are both. */
  #pump(): void {
    while (this.#receivers.length > 0 && !this.closed) {
      if (this.#ended) return this.#receivers.resolveAll(null);
      const r = this.#readOne();
      if (r === undefined) return;
      if (r instanceof Error) this.#receivers.rejectFirst(r);
      else if (r === null) this.#receivers.resolveAll(null);
      else if (!this.#receivers.resolveFirst(r)) r.close();
    }
  }

  /** Sends queued messages while the kernel takes them. */
  #flush(): void {
    while (this.#sends.length > 0 && !this.closed) {
      const s = this.#sends[0]!;
      let sent: boolean;
      try {
        sent = native.unixSend(this.openFd('sendmsg'), s.data, s.fds) >= 0;
      } catch (err) {
        this.#sends.shift();
        this.#release(s);
        s.reject(socketError(err, 'send') as Error);
        continue;
      }
      if (!sent) return;
      this.#sends.shift();
      this.#release(s);
      s.resolve();
    }
  }

  #release(s: QueuedSend): void {
    s.fds.forEach((fd, i) => {
      countFd(QUEUED_FD, -1);
      native.closeOwned(fd, s.tokens[i]!);
    });
    s.fds = [];
  }

  /** Watches the fd for what is pending (readable: receivers; writable: queued sends), or frees the watcher. */
  #arm(): void {
    if (this.closed) return;
    const { READABLE, WRITABLE } = native.POLL;
    const want = (this.#receivers.length > 0 ? READABLE : 0) | (this.#sends.length > 0 ? WRITABLE : 0);
    if (want === 0) {
      // Idle: no poll handle (it would root this object and keep the GC backstop from it).
      this.#watcher?.close();
      this.#watcher = null;
      this.#armed = 0;
      return;
    }
    this.#watcher ??= new native.FdWatcher(this.fd, (status) => this.#onPoll(status));
    if (want !== this.#armed) {
      this.#watcher.start(want);
      this.#armed = want;
    }
    this.#watcher.setRef(this.#sends.length > 0 || this.#receivers.ref);
  }

  #onPoll(status: number): void {
    const pending = this.#sends.length + this.#receivers.length;
    // The calls themselves say what happened, with the real errno: libuv reports POLLERR (a peer
    // that closed with our messages unread sets ECONNRESET on this socket) as EBADF.
    this.#flush();
    this.#pump();
    if (status < 0) {
      this.#armed = 0; // libuv stopped the handle
      if (pending > 0 && this.#sends.length + this.#receivers.length === pending) {
        // No call made progress: give up rather than spin on a poll that keeps failing.
        const make = (): Error => new ExplicitSyncError(-status, 'poll');
        this.#failSends(make);
        this.#receivers.rejectAll(make);
      }
    }
    this.#arm();
  }

  #failSends(make: () => Error): void {
    for (const s of this.#sends.splice(0)) {
      this.#release(s);
      s.reject(make());
    }
  }

  /** Rejects pending receives and queued sends with ClosedError, then frees the watcher (before close(fd)). */
  protected override beforeClose(): void {
    this.#failSends(() => new ClosedError('UnixSocket', 'sendmsg', 'send'));
    this.#receivers.rejectAll(() => new ClosedError('UnixSocket', 'recvmsg', 'receive'));
    this.#watcher?.close();
    this.#watcher = null;
    this.#armed = 0;
  }
}
