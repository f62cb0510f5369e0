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
  /** Positions in the caller's list, in the order of `handles`; undefined: 0, 1, 2, … (one group). */
  readonly at: number[] | undefined;
}

/**
 * Scratch for the common case (one device, at most SCRATCH entries): the kernel reads the arrays in
 * place, and a small TypedArray created per call would have to be moved off V8's heap first.
 */
const SCRATCH = 64;
const scratchHandles = new Uint32Array(SCRATCH);
const scratchPoints = new BigUint64Array(SCRATCH);
const scratchLast = new BigUint64Array(SCRATCH);

/**
 * Splits `objects` by device (DRM handles are per open file), each checked open (ClosedError
 * naming `call`) before any ioctl is made. Nearly always one group.
 */
function byDevice(objects: readonly SyncobjResource[], call: string): Group[] {
  const n = objects.length;
  const device = objects[0]!.device;
  const fd = objects[0]![kBatchFd](call);
  let one = true;
  for (let i = 1; i < n; i++) {
    objects[i]![kBatchFd](call);
    if (objects[i]!.device !== device) one = false;
  }
  if (one) {
    const handles = n <= SCRATCH ? scratchHandles.subarray(0, n) : new Uint32Array(n);
    for (let i = 0; i < n; i++) handles[i] = objects[i]!.handle;
    return [{ fd, handles, at: undefined }];
  }
  const groups = new Map<Device, { fd: number; handles: number[]; at: number[] }>();
  objects.forEach((o, i) => {
    let g = groups.get(o.device);
    if (g === undefined) groups.set(o.device, (g = { fd: o[kBatchFd](call), handles: [], at: [] }));
    g.handles.push(o.handle);
    g.at.push(i);
  });
  return [...groups.values()].map((g) => ({ fd: g.fd, handles: Uint32Array.from(g.handles), at: g.at }));
}

/** Position in the caller's list of a group's entry `j`. */
const position = (g: Group, j: number): number => (g.at === undefined ? j : g.at[j]!);

/** A BigUint64Array for `n` entries: `scratch` when it is large enough and free (one group). */
function points(n: number, scratch: BigUint64Array, single: boolean): BigUint64Array {
  return single && n <= SCRATCH ? scratch.subarray(0, n) : new BigUint64Array(n);
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
  const groups = byDevice(objects, 'DRM_IOCTL_SYNCOBJ_QUERY');
  for (const g of groups) {
    const values = points(g.handles.length, scratchPoints, groups.length === 1);
    native.syncobjQueryInto(g.fd, g.handles, values, flags);
    for (let j = 0; j < values.length; j++) out[position(g, j)] = values[j]!;
  }
  return out;
}

/**
 * DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL of `list[i]`'s point on its timeline, one ioctl per device,
 * after every check passed: unless `unordered`, each point must be above its timeline's last
 * submitted point (one batched QUERY per device) and above any earlier point of the same timeline
 * in this list.
 */
export function timelineSignalAll(timelines: readonly SyncobjResource[], list: readonly bigint[], unordered: boolean): void {
  const groups = byDevice(timelines, 'DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL');
  const single = groups.length === 1;
  const values = groups.map((g) => {
    const v = points(g.handles.length, scratchPoints, single);
    for (let j = 0; j < v.length; j++) v[j] = list[position(g, j)]!;
    return v;
  });
  if (!unordered) groups.forEach((g, k) => checkOrder(g, values[k]!, points(g.handles.length, scratchLast, single)));
  groups.forEach((g, k) => native.syncobjTimelineSignal(g.fd, g.handles, values[k]!));
  for (const t of timelines) t[kFenceReplaced]();
}

/** Each point above its timeline's last submitted point (one QUERY into `last`) and above earlier ones of the same timeline. */
function checkOrder(g: Group, values: BigUint64Array, last: BigUint64Array): void {
  native.syncobjQueryInto(g.fd, g.handles, last, F.QUERY_LAST_SUBMITTED);
  const { handles } = g;
  // The latest earlier entry of each timeline: a scan for short lists, a map for long ones.
  const latest = handles.length > SCRATCH ? new Map<number, number>() : undefined;
  for (let j = 0; j < handles.length; j++) {
    const p = values[j]!;
    let earlier = -1;
    if (latest !== undefined) {
      earlier = latest.get(handles[j]!) ?? -1;
      latest.set(handles[j]!, j);
    } else {
      for (let i = j - 1; i >= 0 && earlier < 0; i--) if (handles[i] === handles[j]) earlier = i;
    }
    const floor = earlier >= 0 ? values[earlier]! : last[j]!;
    if (p > floor) continue;
    const name = `points[${position(g, j)}].point`;
    if (earlier >= 0) throw new OutOfRangeError(name, `> ${floor}, the point an earlier entry of this list signals on the same timeline`, p);
    throw unorderedPointError(name, floor, p);
  }
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
