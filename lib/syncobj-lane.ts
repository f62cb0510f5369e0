/**
 * One mode's lane of a syncobj's waits (lib/syncobj-wait.ts): its pending waits, its live
 * registrations and its native wakeup source (native/syncobj_wait.cc).
 * @module
 * @internal
 */
import { MinHeap } from './min-heap';
import { NativeCore, nativeFamily } from './native';
import type { WaitMode } from './watcher';

/** A lane's native state: 0 idle (roots nothing), 1 waits pending (unref'd), 2 ref'd waits pending. */
export type LaneState = 0 | 1 | 2;

/**
 * A wake of a lane: `status` 0 or a negative errno (of `syscall`); `level` what the lane read
 * (null for LANE_LEVEL.NONE, or on error); `fired` the registrations that fired since the last report.
 */
export type LaneCallback = (status: number, level: bigint | null, fired: number, syscall?: string) => LaneState;

/** native/syncobj_wait.cc: an eventfd with a uv_poll kept on it; it owns the eventfd. */
export interface NativeSyncobjLane {
  readonly fd: number;
  setState(state: LaneState): number;
  close(): void;
}

/** How a lane reads the syncobj's level on a wake, natively (see WaitSource.laneLevel in syncobj-wait.ts). */
export interface LaneLevel {
  kind: 'query' | 'wait' | 'timelineWait';
  fd: number;
  handle: number;
  flags: number;
}

interface NativeLaneBits extends NativeCore {
  SyncobjLane: new (kind: number, drmFd: number, handle: number, flags: number, callback: LaneCallback) => NativeSyncobjLane;
  LANE_LEVEL: { QUERY: number; WAIT: number; TIMELINE_WAIT: number; NONE: number };
}
const native = nativeFamily<NativeLaneBits>();
const LANE_KINDS = { query: native.LANE_LEVEL.QUERY, wait: native.LANE_LEVEL.WAIT, timelineWait: native.LANE_LEVEL.TIMELINE_WAIT };

/**
 * A new native lane (an eventfd polled for the syncobj's life, idle): it reads the level on a
 * wake as `spec` says, or leaves that to JS without one.
 */
export function openNativeLane(spec: LaneLevel | undefined, onWake: LaneCallback): NativeSyncobjLane {
  return spec === undefined
    ? new native.SyncobjLane(native.LANE_LEVEL.NONE, -1, 0, 0, onWake)
    : new native.SyncobjLane(LANE_KINDS[spec.kind], spec.fd, spec.handle, spec.flags, onWake);
}

/** One pending wait. */
export interface Waiter {
  point: bigint;
  resolve(): void;
  reject(err: Error): void;
  ref: boolean;
  done: boolean;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  site: { stack?: string };
  lane: Lane;
}

/** One mode's pending waits and its wakeup source. */
export class Lane {
  readonly waiters = new MinHeap<Waiter>((w) => w.point);
  /** Points of live registrations that have not been reached (as far as we can tell). */
  readonly armed = new MinHeap<bigint>((p) => p);
  /** Live registrations on `eventFd`: made minus fired (read back from the eventfd counter). */
  registrations = 0;
  live = 0;
  refs = 0;
  eventFd = -1;
  native: NativeSyncobjLane | null = null;
  /** The native lane's state, as last set (or returned from a wake). */
  state: LaneState = 0;
  /** Inside the lane's wake callback: a state change is returned, not set. */
  inWake = false;
  pollTimer: NodeJS.Timeout | undefined;
  pollDelay = 1;
  /** Whether the watcher / poll timer currently keeps the loop alive. */
  refed = true;
  constructor(readonly mode: WaitMode) {}
}
