/**
 * The options, option checks and error class of {@link Timeline} (lib/timeline.ts re-exports them).
 * @module
 */
import { TimeoutError } from './errors';
import { F } from './syncobj-core';
import type { Timeline } from './timeline';
import { InvalidArgTypeError, OptionKeys, toOptions } from './validate';

/** Options for {@link Timeline.query}. */
export interface QueryOptions {
  /** Return the last submitted point (one that has a fence) instead of the last signalled one. */
  lastSubmitted?: boolean;
}

/** Options for {@link Timeline.exportSyncFile}. */
export interface ExportSyncFileOptions {
  /**
   * How long to wait, asynchronously, for the point to be submitted (to get a fence) before
   * exporting it. Default 0: a point that is not submitted yet rejects at once.
   */
  materializeTimeoutMs?: number;
  /** Cancels the wait for materialisation (AbortError). */
  signal?: AbortSignal;
  /** Whether the pending wait keeps the process alive (default true). */
  ref?: boolean;
}

/**
 * Options of the calls that put a fence at a point: {@link Timeline.signal},
 * {@link Timeline.importSyncFile} (after the sync files) and {@link Timeline.transfer}.
 */
export interface PointOrderOptions {
  /**
   * Skip the ordering check and hand the point to the kernel as it is (default false). The kernel
   * accepts a point at or below the last submitted one, logs "unordered point" and starts a new
   * fence context: the timeline's query() drops and points that had signalled read as unsignalled.
   * Vulkan forbids such values; only conformance tests (IGT submits points out of order on
   * purpose) want this.
   */
  allowUnordered?: boolean;
}

/** A point on a timeline, for {@link Timeline.waitAll} / {@link Timeline.waitAny}. */
export interface TimelinePoint {
  timeline: Timeline;
  point: bigint | number;
}

/**
 * A timeline wait that ran out of time (code 'ETIME'), saying where the timeline stood:
 * "waiting for 42; last submitted 41; last signalled 40". `reason` is 'unsubmitted' when the point
 * never got a fence (the peer never submitted it), 'unsignaled' when it did but the fence did not
 * signal in time.
 */
export class TimelineTimeoutError extends TimeoutError {
  /** The point waited for. */
  readonly point: bigint;
  /** DRM_IOCTL_SYNCOBJ_QUERY with LAST_SUBMITTED when the wait gave up. */
  readonly lastSubmitted: bigint;
  /** DRM_IOCTL_SYNCOBJ_QUERY when the wait gave up. */
  readonly lastSignaled: bigint;

  constructor(point: bigint, lastSubmitted: bigint, lastSignaled: bigint, reason: 'unsubmitted' | 'unsignaled', message: string) {
    super('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT', { reason, message });
    this.point = point;
    this.lastSubmitted = lastSubmitted;
    this.lastSignaled = lastSignaled;
  }
}

/** Options of `device.createTimeline()`. */
export interface CreateTimelineOptions {
  /** A label: shown in errors, diagnostics_channel events, `util.inspect` and inspect(). */
  label?: string;
}

const QUERY_KEYS: OptionKeys<QueryOptions> = { lastSubmitted: true };
export const EXPORT_KEYS: OptionKeys<ExportSyncFileOptions> = { materializeTimeoutMs: true, signal: true, ref: true };
const ORDER_KEYS: OptionKeys<PointOrderOptions> = { allowUnordered: true };

/** QueryOptions as DRM_IOCTL_SYNCOBJ_QUERY flags. */
export function toQueryFlags(options: unknown): number {
  const opts = toOptions(options as QueryOptions | undefined, QUERY_KEYS);
  if (opts.lastSubmitted !== undefined && typeof opts.lastSubmitted !== 'boolean')
    throw new InvalidArgTypeError('options.lastSubmitted', 'of type boolean', opts.lastSubmitted);
  return opts.lastSubmitted ? F.QUERY_LAST_SUBMITTED : 0;
}

/** Validates `{ allowUnordered }` options (TypeError for anything else than a boolean). */
export function toAllowUnordered(options: unknown): boolean {
  const opts = toOptions(options as PointOrderOptions | undefined, ORDER_KEYS);
  if (opts.allowUnordered !== undefined && typeof opts.allowUnordered !== 'boolean')
    throw new InvalidArgTypeError('options.allowUnordered', 'of type boolean', opts.allowUnordered);
  return opts.allowUnordered === true;
}
