/**
 * How many fds this library owns right now, by kind: every FdResource (counted by class) and the
 * per-wait eventfds of syncobj waits. An EMFILE/ENFILE error quotes it (see errors.ts), so that
 * "too many open files" says whose fds they are. A Map update on adopt and on close: cheap.
 * @module
 * @internal
 */

const live = new Map<string, number>();

/** The kind of the eventfds timeline and syncobj waits keep (syncobj-wait.ts). */
export const WAIT_EVENTFD = 'wait eventfd';

/** Counts one more (delta 1) or one less (delta -1) fd of `kind` ('SyncFile', 'wait eventfd', …). */
export function countFd(kind: string, delta: 1 | -1): void {
  live.set(kind, (live.get(kind) ?? 0) + delta);
}

/** The live counts, largest first, kinds at 0 left out. */
export function ownedFds(): Array<[kind: string, count: number]> {
  return [...live].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
}

/** 'explicit-sync owns 3,321 fds: 3,300 SyncFile, 20 wait eventfd, 1 Device' (or '… owns no fds'). */
export function describeOwnedFds(): string {
  const counts = ownedFds();
  const total = counts.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return 'explicit-sync owns no fds';
  const fmt = (n: number): string => n.toLocaleString('en-US');
  return `explicit-sync owns ${fmt(total)} fd${total === 1 ? '' : 's'}: ${counts.map(([k, n]) => `${fmt(n)} ${k}`).join(', ')}`;
}
