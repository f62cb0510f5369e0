/**
 * Batches: the kernel's array ioctls (DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL / QUERY / SIGNAL / RESET
 * take arrays of handles), one ioctl per device for a list of objects. A compositor signals several
 * release points per frame; one call then costs about what one signal does. Used by the static
 * Timeline.signalAll / queryAll and Syncobj.signalAll / resetAll, which validate their arguments
 * exactly as the single forms do; the order check (points only grow) is one batched QUERY.
 * @module
 * @internal
 */
import { Device } from './device';
import { F, SyncobjResource, kBatchFd, kFenceReplaced, native } from './syncobj-core';
import { OutOfRangeError } from './validate';

/** The entries of a batch that live on one device: one array ioctl. */
interface Group {
  readonly fd: number;
  readonly handles: Uint32Array;
  /** Positions in the caller's list, in the order of `handles`. */
  readonly at: number[];
}

/**
 * Splits `objects` by device (DRM handles are per open file), each checked open (ClosedError
 * naming `call`) before any ioctl is made. Nearly always one group.
 */
function byDevice(objects: readonly SyncobjResource[], call: string): Group[] {
  const fds = objects.map((o) => o[kBatchFd](call));
  const first = objects[0]!.device;
  if (objects.every((o) => o.device === first))
    return [{ fd: fds[0]!, handles: Uint32Array.from(objects, (o) => o.handle), at: objects.map((_, i) => i) }];
  const groups = new Map<Device, { fd: number; handles: number[]; at: number[] }>();
  objects.forEach((o, i) => {
    let g = groups.get(o.device);
    if (g === undefined) groups.set(o.device, (g = { fd: fds[i]!, handles: [], at: [] }));
    g.handles.push(o.handle);
    g.at.push(i);
  });
  return [...groups.values()].map((g) => ({ fd: g.fd, handles: Uint32Array.from(g.handles), at: g.at }));
}

/** The RangeError of a point at or below the timeline's last submitted one (signal, transfer, import). */
export function unorderedPointError(name: string, last: bigint, point: bigint): OutOfRangeError {
  return new OutOfRangeError(
    name,
    `> ${last}, the timeline's last submitted point ${last} (a lower or equal point would start a new fence context and corrupt the timeline; pass { allowUnordered: true } to do it anyway)`,
    point,
  );
}

/** DRM_IOCTL_SYNCOBJ_QUERY of every object, one ioctl per device; in the list's order. */
export function queryAll(objects: readonly SyncobjResource[], flags: number): bigint[] {
  const out = new Array<bigint>(objects.length);
  for (const g of byDevice(objects, 'DRM_IOCTL_SYNCOBJ_QUERY')) {
    const points = new BigUint64Array(g.handles.length);
    native.syncobjQueryInto(g.fd, g.handles, points, flags);
    g.at.forEach((pos, j) => (out[pos] = points[j]!));
  }
  return out;
}

/**
 * DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL of `points[i]` on `timelines[i]`, one ioctl per device, after
 * every check passed: unless `unordered`, each point must be above its timeline's last submitted
 * point (one batched QUERY per device) and above any earlier point of the same timeline in this list.
 */
export function timelineSignalAll(timelines: readonly SyncobjResource[], points: readonly bigint[], unordered: boolean): void {
  const groups = byDevice(timelines, 'DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL');
  const values = groups.map((g) => BigUint64Array.from(g.at, (pos) => points[pos]!));
  if (!unordered) {
    groups.forEach((g, k) => {
      const last = new BigUint64Array(g.handles.length);
      native.syncobjQueryInto(g.fd, g.handles, last, F.QUERY_LAST_SUBMITTED);
      const highest = new Map<number, bigint>();
      g.handles.forEach((h, j) => {
        const p = values[k]![j]!;
        const floor = highest.get(h) ?? last[j]!;
        if (p <= floor) {
          const name = `points[${g.at[j]}].point`;
          if (highest.has(h)) throw new OutOfRangeError(name, `> ${floor}, the point an earlier entry of this list signals on the same timeline`, p);
          throw unorderedPointError(name, floor, p);
        }
        highest.set(h, p);
      });
    });
  }
  groups.forEach((g, k) => native.syncobjTimelineSignal(g.fd, g.handles, values[k]!));
  for (const t of timelines) t[kFenceReplaced]();
}

/** DRM_IOCTL_SYNCOBJ_SIGNAL (`reset` false) or _RESET of every object, one ioctl per device. */
export function binarySignalAll(objects: readonly SyncobjResource[], reset: boolean): void {
  const call = reset ? 'DRM_IOCTL_SYNCOBJ_RESET' : 'DRM_IOCTL_SYNCOBJ_SIGNAL';
  for (const g of byDevice(objects, call)) {
    if (reset) native.syncobjReset(g.fd, g.handles);
    else native.syncobjSignal(g.fd, g.handles);
  }
  for (const o of objects) o[kFenceReplaced]();
}
