/**
 * The one place the addon is loaded. Each kernel object family declares the native functions it
 * uses in its own interface and reads them through {@link nativeFamily}.
 * @module
 * @internal
 */
import bindings = require('bindings');
import { errorFromNative } from './errors';

/** fstat(2) subset. */
export interface NativeStat {
  mode: number;
  rdevMajor: number;
  rdevMinor: number;
  size: number;
}

/** A uv_poll_t on the env's loop (native/fd_watcher.cc). Never closes the fd. */
export interface NativeFdWatcher {
  start(events: number): void;
  stop(): void;
  setRef(ref: boolean): void;
  close(): void;
}

/** Functions every family may use (native/util.cc, native/device.cc, native/fd_watcher.cc). */
export interface NativeCore {
  setErrorFactory(factory: (errno: number, call: string, detail?: string) => Error): void;
  open(path: string, flags: number): number;
  close(fd: number): void;
  /**
   * Marks fd as owned by a JS object of this env: closed at env teardown (worker exit) unless
   * close()d first, and only while still the file it is now (with `syncFile`, for an fd that is a
   * sync_file: while still a sync_file, see native/util.h OwnedFd). Returns the token for closeOwned.
   */
  trackFd(fd: number, syncFile?: boolean): number;
  /**
   * Closes an fd trackFd() returned `token` for, if it is still that file and that adoption:
   * 0 closed it; 1 the fd is not open any more; 2 it is another file, or another object's now.
   * Never closes in the last two cases. With `epfd` (the thread's fd wait set), a closed fd leaves
   * that epoll set first.
   */
  closeOwned(fd: number, token: number, epfd?: number): number;
  /** Hands over an fd trackFd() returned `token` for, unclosed: the env stops owning it. */
  untrackFd(fd: number, token: number): void;
  dup(fd: number): number;
  fstat(fd: number): NativeStat;
  /** pidfd_open + pidfd_getfd: an O_CLOEXEC copy of process `pid`'s fd `fd`, owned by the caller. */
  pidfdGetfd(pid: number, fd: number): number;
  pollIn(fd: number, timeoutMs: number): boolean;
  drmVersion(fd: number): { major: number; minor: number; patchlevel: number; name: string; date: string; desc: string };
  drmGetCap(fd: number, capability: number): bigint;
  drmSetClientCap(fd: number, capability: number, value: number): void;
  DRM_CAP: { DUMB_BUFFER: number; PRIME: number; SYNCOBJ: number; SYNCOBJ_TIMELINE: number };
  FdWatcher: new (fd: number, callback: (status: number, events: number) => void) => NativeFdWatcher;
  POLL: { READABLE: number; WRITABLE: number; DISCONNECT: number; PRIORITIZED: number };
}

const SOURCE_BUILDS = [
  ['module_root', 'build', 'Release', 'bindings'],
  ['module_root', 'build', 'Debug', 'bindings'],
];
const PREBUILD = ['module_root', 'prebuilds', `${process.platform}-${process.arch}`, 'bindings'];

function load(): unknown {
  // A source build (build/Release: `npm install` in a checkout, --build-from-source, or no
  // matching prebuild) comes first; then the prebuilt addon the npm tarball ships for this
  // platform (scripts/install.js has checked that it loads here).
  let first: unknown;
  try {
    return bindings({ bindings: 'explicit_sync', try: [...SOURCE_BUILDS, PREBUILD] });
  } catch (err) {
    first = err;
  }
  // bindings stops at a build that exists but does not load (one made for another architecture,
  // say, in a tree shared with an arm64 machine): the prebuild for this platform may still.
  try {
    return bindings({ bindings: 'explicit_sync', try: [PREBUILD] });
  } catch {
    // report the first failure: it names every path tried
  }
  const reason = first instanceof Error ? first.message : String(first);
  throw new Error(
    [
      `explicit-sync: could not load its native addon (build/Release/explicit_sync.node, or the prebuilt prebuilds/${process.platform}-${process.arch}/explicit_sync.node).`,
      `Cause: ${reason}`,
      'Possible fixes:',
      '- run `npm install` (or `npx node-gyp rebuild` in the package folder) to build it; `npm install --build-from-source` compiles even where a prebuild exists;',
      '- a source build needs Linux, Node.js >= 20.19, python3, make and a C++17 compiler (g++ or clang++);',
      '- after upgrading Node.js, rebuild: `npm rebuild explicit-sync`.',
    ].join('\n'),
    { cause: first },
  );
}

const binding = load();

/** Core native functions. */
export const native = binding as NativeCore;

native.setErrorFactory(errorFromNative);

/** The binding, typed with a family's own interface of native functions. */
export function nativeFamily<T>(): T {
  return binding as T;
}
