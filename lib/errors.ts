/**
 * Error classes. Errors look like Node's fs errors: `code` ('ETIME', 'EINVAL', …), a negative
 * `errno`, `syscall` ('ioctl', 'open', 'poll', …) and, for ioctls, the ioctl's name in `ioctl`.
 * @module
 */
import { fstatSync, readlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { describeOwnedFds } from './census';

const PREFERRED = new Set(['EOPNOTSUPP', 'EAGAIN', 'EDEADLK']);

/** errno number → code, from os.constants.errno (util.getSystemErrorName misses ETIME on Node 20). */
const CODES: ReadonlyMap<number, string> = (() => {
  const map = new Map<number, string>();
  for (const [code, num] of Object.entries(constants.errno)) {
    if (!map.has(num) || PREFERRED.has(code)) map.set(num, code);
  }
  return map;
})();

const DESCRIPTIONS: Readonly<Record<string, string>> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  EINTR: 'interrupted system call',
  EIO: 'i/o error',
  EBADF: 'bad file descriptor',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'not enough memory',
  EACCES: 'permission denied',
  EFAULT: 'bad address',
  EBUSY: 'resource busy or locked',
  EEXIST: 'file already exists',
  ENODEV: 'no such device',
  EINVAL: 'invalid argument',
  ENFILE: 'file table overflow',
  EMFILE: 'too many open files',
  ENOTTY: 'inappropriate ioctl for device',
  ENOSPC: 'no space left on device',
  ERANGE: 'result out of range',
  ETIME: 'timer expired',
  ETIMEDOUT: 'connection timed out',
  ECANCELED: 'operation canceled',
  EOPNOTSUPP: 'operation not supported',
  ENOSYS: 'function not implemented',
  EOVERFLOW: 'value too large for defined data type',
};

/** The code ('EINVAL') for a positive or negative errno number. */
export function errnoCode(errno: number): string {
  return CODES.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** The errno number for a code ('ETIME' → 62). */
export function errnoNumber(code: string): number {
  const n = (constants.errno as Record<string, number | undefined>)[code];
  if (n === undefined) throw new Error(`unknown errno code ${code}`);
  return n;
}

/** True for a kernel ioctl name such as DRM_IOCTL_SYNCOBJ_WAIT (as opposed to 'open', 'poll'). */
function isIoctlName(name: string): boolean {
  return /^[A-Z][A-Z0-9_]+$/.test(name);
}

/** Options for {@link ExplicitSyncError}. */
export interface ExplicitSyncErrorOptions {
  /** What the call was about: a path, a point, the object. Appended to the message. */
  detail?: string;
  /** Replaces the generated message. */
  message?: string;
  /**
   * The library operation that failed, when it is not the system call itself: 'wait', 'waitSync',
   * 'page flip'. `syscall` stays a real system call.
   */
  operation?: string;
  cause?: unknown;
}

/**
 * Base class of every error the library raises for a failed system call or kernel object state.
 * `instanceof ExplicitSyncError` catches them all; branch on `code`.
 */
export class ExplicitSyncError extends Error {
  /** 'ETIME', 'EINVAL', … */
  readonly code: string;
  /** Negative errno, as in Node's fs errors (-62 for ETIME). */
  readonly errno: number;
  /** 'ioctl' for ioctls, otherwise the system call ('open', 'poll', 'close', …). */
  readonly syscall: string;
  /** The ioctl's name ('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT') when syscall is 'ioctl'. */
  readonly ioctl: string | undefined;
  /** Path or other detail the call was about, when known. */
  readonly path: string | undefined;
  /**
   * The library operation that failed ('wait', 'waitSync', 'page flip'), when it is more than the
   * one system call named by `syscall` (which is always a real system call: 'ioctl', 'poll',
   * 'read', 'open', 'close', …).
   */
  readonly operation: string | undefined;

  constructor(errno: number, call: string, options: ExplicitSyncErrorOptions = {}) {
    const code = errnoCode(errno);
    const ioctl = isIoctlName(call) ? call : undefined;
    const detail = options.detail;
    let message =
      options.message ??
      `${code}: ${DESCRIPTIONS[code] ?? 'system error'}, ${call}${detail !== undefined ? ` '${detail}'` : ''}`;
    // Out of fds: say how many of them are this library's, and of which kind.
    if (code === 'EMFILE' || code === 'ENFILE') message += ` (${describeOwnedFds()})`;
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.errno = -Math.abs(errno);
    this.syscall = ioctl !== undefined ? 'ioctl' : call;
    this.ioctl = ioctl;
    this.path = detail;
    this.operation = options.operation;
  }
}

/** A wait ran past its timeout or deadline (code 'ETIME'). */
export class TimeoutError extends ExplicitSyncError {
  /**
   * For timeline waits: 'unsubmitted' when no fence for the point ever materialised (the peer never
   * submitted it), 'unsignaled' when it was submitted but did not signal in time.
   */
  readonly reason: 'unsubmitted' | 'unsignaled' | undefined;

  constructor(call: string, options: ExplicitSyncErrorOptions & { reason?: 'unsubmitted' | 'unsignaled' } = {}) {
    super(errnoNumber('ETIME'), call, options);
    this.reason = options.reason;
  }
}

/**
 * A fence signalled with an error: the work it stood for failed or was cancelled (a GPU reset, a
 * cancelled or timed-out job, a producer that went away). `code` and `errno` are the fence's own
 * error as the kernel reports it ('EIO', 'ECANCELED', 'ETIMEDOUT', 'ENOENT', …, negative errno);
 * `ioctl` is 'SYNC_IOC_FILE_INFO', which reported it. Not a TimeoutError, even for 'ETIME': the
 * fence did signal, and what it guards (a buffer's contents) must not be trusted.
 */
export class FenceError extends ExplicitSyncError {
  constructor(errno: number, options: ExplicitSyncErrorOptions = {}) {
    super(errno, 'SYNC_IOC_FILE_INFO', {
      ...options,
      message:
        options.message ??
        `${errnoCode(errno)}: the fence signalled with an error (${DESCRIPTIONS[errnoCode(errno)] ?? 'system error'}), SYNC_IOC_FILE_INFO`,
    });
  }
}

/** The object was closed (code 'EBADF'): used after close(), or closed while a wait was pending. */
export class ClosedError extends ExplicitSyncError {
  /**
   * @param call The system call (or ioctl name) that could not be made.
   * @param operation The library operation, when more than that call ('wait', 'page flip').
   */
  constructor(what: string, call = 'close', operation?: string, options: { message?: string } = {}) {
    super(errnoNumber('EBADF'), call, {
      message: options.message ?? `EBADF: ${what} is closed`,
      ...(operation !== undefined ? { operation } : {}),
    });
  }
}

/**
 * close() found that the object's fd had been closed behind its back (code 'EBADF'): the number is
 * not open any more (`reused` false), or it is now another file, someone else's (`reused` true).
 * close() left it alone, so the stranger's file stays open; the object is closed all the same.
 */
export class FdLostError extends ClosedError {
  /** The fd number the object owned. */
  readonly fd: number;
  /** True when the number is open again, on another file. */
  readonly reused: boolean;

  constructor(what: string, fd: number, reused: boolean, createdAt?: string) {
    const now = reused ? `now refers to another file (${describeFd(fd)}), which was left open` : 'is not open any more';
    super(what, 'close', undefined, {
      message:
        `EBADF: ${what} lost its fd ${fd} to a close() that was not its own: the number ${now}, close. ` +
        `Never close an object's fd yourself; call its close().${createdAt ?? ''}`,
    });
    this.fd = fd;
    this.reused = reused;
  }
}

/**
 * The running kernel or driver lacks a feature (code 'ENOTTY', 'EOPNOTSUPP', 'ENODEV' or 'EINVAL').
 * `feature` names it and `since` says which Linux version added it.
 */
export class UnsupportedError extends ExplicitSyncError {
  readonly feature: string;
  readonly since: string | undefined;

  constructor(errno: number, call: string, feature: string, since?: string, options: ExplicitSyncErrorOptions = {}) {
    super(errno, call, {
      ...options,
      message:
        options.message ??
        `${errnoCode(errno)}: ${feature} is not supported here${since !== undefined ? ` (needs Linux ≥ ${since})` : ''}, ${call}`,
    });
    this.feature = feature;
    this.since = since;
  }
}

/** No DRM device fits the request (code 'ENODEV'); `found` lists what was there. */
export class NoDeviceError extends ExplicitSyncError {
  readonly found: readonly string[];

  constructor(message: string, found: readonly string[]) {
    super(errnoNumber('ENODEV'), 'open', { message });
    this.found = found;
  }
}

/** A wait was cancelled through its AbortSignal. Same shape as Node's own AbortError. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';

  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/**
 * @internal What an fd is, for error messages: the /proc/self/fd link target ('pipe:[1234]',
 * '/tmp/x', 'anon_inode:sync_file'), or 'unknown' where /proc is not mounted.
 */
export function describeFd(fd: number): string {
  let link: string;
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return 'unknown';
  }
  return fdKind(link);
}

/**
 * @internal What a /proc/self/fd link names, in words, for the fds a GPU peer may send: the link
 * alone ("/dmabuf:", "/memfd:lp_dma_buf (deleted)") does not tell a reader what the fd is.
 */
export function fdKind(link: string): string {
  if (link === 'anon_inode:sync_file') return `a sync_file (${link})`;
  if (link === 'anon_inode:syncobj') return `a DRM syncobj (${link})`;
  if (link.startsWith('anon_inode:')) return `an anonymous inode of kind ${link.slice('anon_inode:'.length)} (${link})`;
  if (link.startsWith('/dmabuf:')) return `a dma-buf (${link})`;
  const memfd = /^\/memfd:(.*?)(?: \(deleted\))?$/.exec(link);
  if (memfd !== null) return `a memfd named ${JSON.stringify(memfd[1])} (${link})`;
  return link;
}

/** @internal Whether fd is an open file descriptor (fstat does not fail with EBADF). */
export function isFdOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EBADF';
  }
}

/** @internal The error for an fd number that is not open: "EBADF: fd 20 is not open, <call>". */
export function fdNotOpenError(fd: number, call: string, cause?: unknown): ExplicitSyncError {
  return new ExplicitSyncError(errnoNumber('EBADF'), call, { message: `EBADF: fd ${fd} is not open, ${call}`, detail: `fd ${fd}`, cause });
}

/**
 * @internal The error for an fd that one of the fromFd()/import entries refused: EBADF (see
 * {@link fdNotOpenError}) when it is not open; otherwise `errno` (default ENOTTY, the kernel's own
 * answer to an ioctl on the wrong kind of file), whatever the probe itself answered (kept as `cause`).
 */
export function wrongFdError(fd: number, kind: string, call: string, cause?: unknown, errno = errnoNumber('ENOTTY')): ExplicitSyncError {
  if (!isFdOpen(fd)) return fdNotOpenError(fd, call, cause);
  const what = describeFd(fd);
  const code = errnoCode(errno);
  return new ExplicitSyncError(errno, call, {
    message: `${code}: fd ${fd} is not a ${kind} (it is ${what}), ${call}`,
    detail: `fd ${fd} (${what})`,
    cause,
  });
}

/**
 * @internal A Node fs error (readdirSync's ENOENT, EMFILE, …) as an ExplicitSyncError with the same
 * code, errno and syscall, and the path as detail; anything else is returned unchanged.
 */
export function errorFromFs(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof e.errno !== 'number' || typeof e.syscall !== 'string') return err;
  return new ExplicitSyncError(e.errno, e.syscall, e.path !== undefined ? { detail: e.path, cause: err } : { cause: err });
}

/**
 * @internal For loops that skip what they cannot open (device discovery): rethrows `err` (as an
 * ExplicitSyncError, see {@link errorFromFs}) when it is EMFILE or ENFILE, so that running out
 * of fds is reported as such and not as "no device found". Returns otherwise.
 */
export function rethrowIfOutOfFds(err: unknown): void {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'EMFILE' || code === 'ENFILE') throw errorFromFs(err);
}

/** Builds the error for a failed native call; installed into the addon by lib/native.ts. */
export function errorFromNative(errno: number, call: string, detail?: string): ExplicitSyncError {
  if (errno === errnoNumber('ETIME')) return new TimeoutError(call, detail !== undefined ? { detail } : {});
  return new ExplicitSyncError(errno, call, detail !== undefined ? { detail } : {});
}
