/**
 * ReleasePoint: a timeline point a compositor owes a client (wp_linux_drm_syncobj_v1's release
 * point), paid exactly once, when the last use of the buffer is over.
 *
 * Users: sync files (a GPU pass, a KMS out-fence), a point of one of the compositor's own
 * timelines (bounded materialisation), a dma-buf's implicit fences, and plain holds. Payment puts
 * the still-pending fences at the point (`importSyncFile(point, merged)`), or signals it from the
 * CPU when none is pending; it never happens while a hold or an unmaterialised point remains.
 *
 * Ordering: obligations on one Timeline object are paid in point order. A later point whose users
 * finish first waits (it is "due") until every lower point owed on that timeline has been paid,
 * then is paid in the same turn: paying it first would signal the lower points too (a timeline's
 * points are reached in order), before their users are done.
 * @module
 */
import { ClosedError } from '../errors';
import type { DmaBuf } from '../dma-buf';
import { SyncFile } from '../sync-file';
import { IMPORTED_DEFAULT_TIMEOUT_MS } from '../syncobj-core';
import { Timeline } from '../timeline';
import { publishRelease, releaseChannel } from '../trace/channels';
import { InvalidArgTypeError, OptionKeys, OutOfRangeError, toOptions, toTimeoutMs } from '../validate';

/** Thrown when a user is added to a {@link ReleasePoint} that has been paid already (code 'ERR_INVALID_STATE'). */
export class InvalidStateError extends Error {
  readonly code = 'ERR_INVALID_STATE';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidStateError';
  }
}

/** How a {@link ReleasePoint} was paid: what {@link ReleasePoint.paid} resolves with. */
export interface ReleaseOutcome {
  /**
   * 'fences': the pending fences were put at the point (it signals when the last of them does);
   * 'cpu': it was signalled from the CPU (no fence was pending); 'failed': the timeline refused
   * (see `error`; a process warning with code 'EXPLICIT_SYNC_RELEASE_FAILED' says so too).
   */
  via: 'fences' | 'cpu' | 'failed';
  /** Whether {@link ReleasePoint.abandon} paid it early. */
  abandoned: boolean;
  /** Compositor timeline points that never materialised within their bound (they were dropped as users). */
  dropped: Error[];
  /** Why the timeline refused, for `via: 'failed'` (the client signalled the point itself, the timeline was closed, …). */
  error?: unknown;
}

/** Options for {@link ReleasePoint.addTimelinePoint}. */
export interface AddTimelinePointOptions {
  /**
   * How long the point may take to be submitted (get a fence) before it is dropped as a user and
   * reported in {@link ReleaseOutcome.dropped}. Default {@link IMPORTED_DEFAULT_TIMEOUT_MS} (10 s).
   */
  materializeTimeoutMs?: number;
}

const ADD_POINT_KEYS: OptionKeys<AddTimelinePointOptions> = { materializeTimeoutMs: true };

/** The obligations owed on one Timeline object, in point order. */
interface Ledger {
  /** Unpaid obligations, lowest point first (points only grow, so creation order is point order). */
  owed: Core[];
  /** The highest point ever given to a ReleasePoint on this timeline. */
  last: bigint;
}

const ledgers = new WeakMap<Timeline, Ledger>();

/** Pays every obligation at the head of the ledger that is due, in point order. */
function settle(ledger: Ledger): void {
  while (ledger.owed.length > 0 && ledger.owed[0]!.due) ledger.owed.shift()!.pay();
}

/** Where a ReleasePoint or a hold was made: the caller's frames of a stack captured there. */
function callSite(skip: number): string {
  const stack = new Error().stack?.split('\n').slice(skip + 1, skip + 3) ?? [];
  return stack.map((l) => l.trim().replace(/^at /, '')).join(' <- ') || '(unknown)';
}

/** State shared by a ReleasePoint and its holds; no reference back to the ReleasePoint object. */
class Core {
  readonly fences: SyncFile[] = [];
  readonly dropped: Error[] = [];
  readonly aborts = new Set<AbortController>();
  holds = 0;
  waits = 0;
  used = false;
  closed = false;
  abandoned = false;
  due = false;
  paidOutcome: ReleaseOutcome | null = null;
  scheduled = false;
  resolvePaid!: (o: ReleaseOutcome) => void;
  readonly paid = new Promise<ReleaseOutcome>((r) => (this.resolvePaid = r));

  constructor(
    readonly timeline: Timeline,
    readonly point: bigint,
    readonly site: string,
    readonly ledger: Ledger,
  ) {}

  get active(): number {
    return this.holds + this.waits;
  }

  describe(): string {
    return `ReleasePoint ${this.point} (made at ${this.site})`;
  }

  /** Re-evaluates at the end of this job, so users added in the same synchronous block count together. */
  schedule(): void {
    if (this.scheduled || this.paidOutcome !== null) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.evaluate();
    });
  }

  /** Marks the point due when nothing active remains, and pays what the ledger allows. */
  evaluate(): void {
    if (this.paidOutcome !== null || this.due) return;
    if (this.active > 0 || !(this.used || this.closed)) return;
    this.due = true;
    settle(this.ledger);
  }

  /** Puts the pending fences at the point, or signals it; exactly once. */
  pay(): void {
    if (this.paidOutcome !== null) return;
    const pending = this.fences.filter((f) => !f.closed && !f.isSignaled());
    let outcome: ReleaseOutcome;
    try {
      if (pending.length === 0) this.timeline.signal(this.point);
      else this.timeline.importSyncFile(this.point, pending);
      outcome = { via: pending.length === 0 ? 'cpu' : 'fences', abandoned: this.abandoned, dropped: this.dropped };
    } catch (error) {
      outcome = { via: 'failed', abandoned: this.abandoned, dropped: this.dropped, error };
      process.emitWarning(`${this.describe()} could not be paid: ${(error as Error)?.message ?? String(error)}`, {
        code: 'EXPLICIT_SYNC_RELEASE_FAILED',
      });
    }
    if (releaseChannel.hasSubscribers)
      publishRelease({ op: 'pay', timeline: this.timeline, point: this.point, via: outcome.via, fences: this.fences, site: this.site });
    for (const f of this.fences) f.close();
    this.fences.length = 0;
    this.paidOutcome = outcome;
    this.resolvePaid(outcome);
  }

  releaseHold(): void {
    if (this.abandoned) return; // abandon() ended every hold already
    this.holds--;
    this.schedule();
  }
}

/** GC backstop for ReleasePoints dropped without a user or close(): pay them, and say where they were made. */
const droppedPoints = new FinalizationRegistry<Core>((core) => {
  if (core.paidOutcome !== null || core.used || core.closed) return; // its users pay it
  process.emitWarning(`${core.describe()} was garbage-collected without a user or close(); it was signalled`, {
    code: 'EXPLICIT_SYNC_LEAK',
  });
  core.closed = true;
  core.evaluate();
});

/** GC backstop for holds dropped without release(): end that use, and say where it was taken. */
const droppedHolds = new FinalizationRegistry<{ core: Core; site: string }>(({ core, site }) => {
  process.emitWarning(`a hold on ${core.describe()}, taken at ${site}, was garbage-collected without release(); it was released`, {
    code: 'EXPLICIT_SYNC_LEAK',
  });
  core.releaseHold();
});

/**
 * One use of a {@link ReleasePoint} that ends when you say so: `release()` (idempotent) or `using`.
 * While a hold is alive its ReleasePoint is too.
 */
export class ReleaseHold implements Disposable {
  #core: Core | null;
  /** Keeps the ReleasePoint reachable while the hold is: its GC backstop must not fire under a live hold. */
  readonly releasePoint: ReleasePoint;

  /** @internal Use {@link ReleasePoint.hold}. */
  constructor(rp: ReleasePoint, core: Core) {
    this.releasePoint = rp;
    this.#core = core;
    droppedHolds.register(this, { core, site: callSite(3) }, this);
  }

  /** Whether release() was called (or the ReleasePoint was abandoned). */
  get released(): boolean {
    return this.#core === null || this.#core.abandoned;
  }

  /** Ends this use; the point is paid once no other user remains. Idempotent. */
  release(): void {
    const core = this.#core;
    if (core === null) return;
    this.#core = null;
    droppedHolds.unregister(this);
    if (!core.abandoned) core.releaseHold();
  }

  /** Same as release(). */
  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * A timeline point owed to a client. Add the buffer's users; the point is paid once, when the last
 * of them is done, without blocking the event loop. Users added in one synchronous block count
 * together (payment is decided at the end of the job); to add users across awaits, take a
 * {@link hold} first. A ReleasePoint that never had a user is paid by `close()`.
 *
 * Points on one Timeline object are owed in increasing order: the constructor refuses a point at
 * or below the timeline's last submitted point or one already owed (RangeError,
 * 'ERR_OUT_OF_RANGE'), and payments happen in point order (see the module comment).
 */
export class ReleasePoint implements Disposable {
  readonly #core: Core;

  /**
   * @param timeline the client's release timeline (imported with `device.importTimeline(fd)`).
   * @param point above the timeline's last submitted point and above every point already owed on
   *   this Timeline object. One DRM_IOCTL_SYNCOBJ_QUERY.
   * @throws RangeError/TypeError for a bad point; ClosedError when the timeline is closed.
   */
  constructor(timeline: Timeline, point: bigint | number) {
    if (!(timeline instanceof Timeline)) throw new InvalidArgTypeError('timeline', 'an instance of Timeline', timeline);
    const p = timeline.checkSignalPoint(point);
    let ledger = ledgers.get(timeline);
    if (ledger === undefined) ledgers.set(timeline, (ledger = { owed: [], last: 0n }));
    if (p <= ledger.last)
      throw new OutOfRangeError('point', `> ${ledger.last}, the highest point already owed on this timeline`, p);
    ledger.last = p;
    this.#core = new Core(timeline, p, callSite(2), ledger);
    ledger.owed.push(this.#core);
    droppedPoints.register(this, this.#core, this);
    if (releaseChannel.hasSubscribers) publishRelease({ op: 'owe', timeline, point: p, site: this.#core.site });
  }

  /** The client's timeline. */
  get timeline(): Timeline {
    return this.#core.timeline;
  }

  /** The point owed. */
  get point(): bigint {
    return this.#core.point;
  }

  /**
   * 'pending' (users remain, or it never had one), 'due' (its users are done; it waits for a lower
   * point owed on the same timeline) or 'paid'.
   */
  get state(): 'pending' | 'due' | 'paid' {
    return this.#core.paidOutcome !== null ? 'paid' : this.#core.due ? 'due' : 'pending';
  }

  /** Whether close() or abandon() was called: no user can be added any more. */
  get closed(): boolean {
    return this.#core.closed;
  }

  /** The users still pending: holds, compositor points not materialised yet, fences collected. */
  get pending(): { holds: number; points: number; fences: number } {
    const c = this.#core;
    return { holds: c.abandoned ? 0 : c.holds, points: c.waits, fences: c.fences.length };
  }

  /** Resolves once the point is paid (never rejects). */
  get paid(): Promise<ReleaseOutcome> {
    return this.#core.paid;
  }

  #open(call: string): Core {
    const c = this.#core;
    if (c.paidOutcome !== null || c.due)
      throw new InvalidStateError(`${c.describe()} was already paid (${call}): a user added now would not be waited for`);
    if (c.closed) throw new ClosedError('ReleasePoint', call);
    return c;
  }

  /**
   * Adds fences (a GPU pass's, a KMS out-fence): the point waits for them. The sync files stay
   * yours (a duplicate is kept).
   * @throws InvalidStateError once paid; ClosedError after close(); TypeError.
   */
  addFence(fences: SyncFile | readonly SyncFile[]): this {
    const list = Array.isArray(fences) ? (fences as readonly SyncFile[]) : [fences as SyncFile];
    list.forEach((f, i) => {
      if (!(f instanceof SyncFile)) throw new InvalidArgTypeError(`fences[${i}]`, 'an instance of SyncFile', f);
    });
    const c = this.#open('addFence');
    const dups = list.map((f) => f.dup());
    c.fences.push(...dups);
    c.used = true;
    c.schedule();
    return this;
  }

  /**
   * Adds a dma-buf's current implicit fences (readers and writers: `exportSyncFile('readwrite')`
   * now). Fences added to the buffer later are not waited for.
   */
  addDmaBuf(buffer: DmaBuf): this {
    const c = this.#open('addDmaBuf');
    if (typeof (buffer as DmaBuf | null)?.exportSyncFile !== 'function') throw new InvalidArgTypeError('buffer', 'an instance of DmaBuf', buffer);
    c.fences.push(buffer.exportSyncFile('readwrite'));
    c.used = true;
    c.schedule();
    return this;
  }

  /**
   * Adds a point of one of the compositor's own timelines (say, the point its render queue will
   * signal after the pass that samples the buffer), which may not be submitted yet. Once it
   * materialises its fence becomes a user; if it does not within `materializeTimeoutMs` it is
   * dropped as a user and reported in {@link ReleaseOutcome.dropped} (the client is never starved).
   */
  addTimelinePoint(timeline: Timeline, point: bigint | number, options?: AddTimelinePointOptions): this {
    if (!(timeline instanceof Timeline)) throw new InvalidArgTypeError('timeline', 'an instance of Timeline', timeline);
    const opts = toOptions(options, ADD_POINT_KEYS);
    const timeoutMs = toTimeoutMs(opts.materializeTimeoutMs, 'options.materializeTimeoutMs') ?? IMPORTED_DEFAULT_TIMEOUT_MS;
    const c = this.#open('addTimelinePoint');
    const abort = new AbortController();
    const exported = timeline.exportSyncFile(point, { materializeTimeoutMs: timeoutMs, signal: abort.signal });
    c.aborts.add(abort);
    c.waits++;
    c.used = true;
    exported.then(
      (sf) => {
        if (c.paidOutcome !== null) sf.close();
        else c.fences.push(sf);
      },
      (err: Error) => {
        if (!abort.signal.aborted) c.dropped.push(err);
      },
    ).finally(() => {
      c.aborts.delete(abort);
      if (!c.abandoned) c.waits--; // abandon() stopped counting it
      c.schedule();
    });
    return this;
  }

  /** A use that ends with `hold.release()` (or `using`). */
  hold(): ReleaseHold {
    const c = this.#open('hold');
    c.holds++;
    c.used = true;
    return new ReleaseHold(this, c);
  }

  /**
   * No more users. With none active (holds, unmaterialised points) the point is paid now (from
   * the fences collected, or the CPU). With some still active it is paid once they end, and a
   * process warning (code 'EXPLICIT_SYNC_RELEASE_PENDING') names where this ReleasePoint was made.
   * Idempotent.
   */
  close(): void {
    const c = this.#core;
    if (c.closed) return;
    c.closed = true;
    droppedPoints.unregister(this);
    if (c.paidOutcome !== null) return;
    if (c.active > 0)
      process.emitWarning(
        `${c.describe()} was closed with ${c.holds} hold(s) and ${c.waits} timeline point(s) pending; it will be signalled once they end`,
        { code: 'EXPLICIT_SYNC_RELEASE_PENDING' },
      );
    c.evaluate();
  }

  /**
   * Pays the point as soon as possible: holds end (their release() becomes a no-op), compositor
   * points not materialised yet are no longer waited for; fences already collected still gate it
   * (the GPU or the display may still be reading the buffer). Lower points owed on the same
   * timeline are still paid first. For a client that is going away.
   */
  abandon(): void {
    const c = this.#core;
    c.closed = true;
    droppedPoints.unregister(this);
    if (c.paidOutcome !== null || c.due) return;
    c.abandoned = true;
    c.holds = 0;
    for (const a of [...c.aborts]) a.abort();
    c.waits = 0;
    c.evaluate();
  }

  /** Same as close(); never throws. */
  [Symbol.dispose](): void {
    try {
      this.close();
    } catch {
      // dispose never throws
    }
  }

  toString(): string {
    return `ReleasePoint(${this.#core.point}, ${this.state})`;
  }
}
