/**
 * SurfaceSync: one wp_linux_drm_syncobj_surface_v1 and its wl_surface's commits, as a state
 * machine independent of any Wayland binding: the protocol's checks at commit time (errors as
 * values with the protocol's names and codes), the acquire gate (bounded materialisation, then the
 * signal, in commit order), and the release obligations ({@link ReleasePoint}s) created at commit
 * and handed over when the commit is displaced.
 * @module
 */
import { ClosedError } from '../errors';
import { SyncFile } from '../sync-file';
import { Timeline, TimelineTimeoutError } from '../timeline';
import { InvalidArgTypeError, OptionKeys, OutOfRangeError, toEnum, toOptions, toTimeoutMs } from '../validate';
import { SyncobjProtocolError } from './protocol';
import { ReleaseHold, ReleasePoint } from './release-point';

/** Options for {@link SurfaceSync}. */
export interface SurfaceSyncOptions {
  /**
   * 'protocol' (default; the protocol text and wlroots): a buffer attached without points is
   * no_acquire_point / no_release_point. 'lenient' (Smithay): a buffer attached with neither
   * point is an implicit-sync commit (no gate, no release point); one point without the other is
   * still an error.
   */
  strictness?: 'protocol' | 'lenient';
  /**
   * When a commit becomes ready: 'signaled' (default: its acquire point has signalled) or
   * 'materialized' (it has a fence: hand that to KMS or the GPU, {@link SurfaceCommit.acquireFence}).
   */
  readyWhen?: 'signaled' | 'materialized';
  /** How long an acquire point may take to be submitted before the commit is dropped ('unsubmitted'). Default 1000. */
  materializeTimeoutMs?: number;
  /** With readyWhen 'signaled': how long it may then take to signal before the commit is dropped ('unsignaled'). Default 10000. */
  signalTimeoutMs?: number;
}

const OPTION_KEYS: OptionKeys<SurfaceSyncOptions> = { strictness: true, readyWhen: true, materializeTimeoutMs: true, signalTimeoutMs: true };
const ATTACH_KEYS: OptionKeys<AttachOptions> = { explicitSync: true };

/** Options for {@link SurfaceSync.attach}. */
export interface AttachOptions {
  /** Whether the buffer supports explicit synchronization (default true; false for wl_shm buffers). */
  explicitSync?: boolean;
}

/** A timeline point named by the client. */
export interface SyncPoint {
  timeline: Timeline;
  point: bigint;
}

/** What a commit became: {@link SurfaceCommit.ready} resolves with it, in commit order. */
export type CommitOutcome =
  | { status: 'ready' }
  | { status: 'unsubmitted' | 'unsignaled'; error: TimelineTimeoutError }
  | { status: 'discarded' };

/** A commit that passed the protocol's checks. */
export class SurfaceCommit<B = unknown> {
  /** 1, 2, … per surface. */
  readonly seq: number;
  /** The buffer attached in this commit, null for an unmap, undefined when none was attached. */
  readonly buffer: B | null | undefined;
  /** The acquire point, or null (an implicit-sync commit, a commit without a new buffer). */
  readonly acquire: SyncPoint | null;
  /**
   * The release obligation, or null. The surface holds it from the commit until the commit is
   * displaced (or dropped, or the surface goes away); take your own hold (or add your fences) for
   * every use of the buffer before then.
   */
  readonly release: ReleasePoint | null;
  /** Resolves (never rejects) once every earlier commit has, with what this one became. */
  readonly ready: Promise<CommitOutcome>;
  /** 'queued', then 'current' (ready, and its buffer is the surface's), 'ready' (ready without a new buffer), 'displaced', 'dropped' or 'discarded'. */
  status: 'queued' | 'current' | 'ready' | 'displaced' | 'dropped' | 'discarded' = 'queued';

  /** @internal */
  surfaceHold: ReleaseHold | null;
  /** @internal */
  readonly abort = new AbortController();

  /** @internal Made by {@link SurfaceSync.commit}. */
  constructor(seq: number, buffer: B | null | undefined, acquire: SyncPoint | null, release: ReleasePoint | null, ready: (c: SurfaceCommit<B>) => Promise<CommitOutcome>) {
    this.seq = seq;
    this.buffer = buffer;
    this.acquire = acquire;
    this.release = release;
    this.surfaceHold = release?.hold() ?? null;
    this.ready = ready(this);
  }

  /** The acquire point's fence as a sync file (yours to close); rejects if it has not materialised. */
  acquireFence(): Promise<SyncFile> {
    if (this.acquire === null) return Promise.reject(new ClosedError('SurfaceCommit without an acquire point', 'acquireFence'));
    return this.acquire.timeline.exportSyncFile(this.acquire.point);
  }

  /** @internal Ends the surface's use of this commit's buffer. */
  endUse(status: 'displaced' | 'dropped' | 'discarded'): void {
    this.status = status;
    this.abort.abort();
    this.surfaceHold?.release();
    this.surfaceHold = null;
  }
}

interface Pending<B> {
  acquire?: SyncPoint;
  release?: SyncPoint;
  /** Present when attach() was called in this cycle. */
  attached?: { buffer: B | null; explicitSync: boolean };
}

/**
 * One wp_linux_drm_syncobj_surface_v1 with its wl_surface. Feed it the client's requests in order;
 * each returns a {@link SyncobjProtocolError} to post (then disconnect the client) or nothing.
 * After a protocol error the surface is failed: every later request returns the same error, and
 * every release point it owed is paid as its users end.
 */
export class SurfaceSync<B = unknown> implements Disposable {
  readonly #strict: boolean;
  readonly #readyWhen: 'signaled' | 'materialized';
  readonly #materializeMs: number;
  readonly #signalMs: number;
  #pending: Pending<B> = {};
  #seq = 0;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #queued = new Set<SurfaceCommit<B>>();
  #current: SurfaceCommit<B> | null = null;
  #failed: SyncobjProtocolError | null = null;
  #surfaceGone = false;
  #extensionGone = false;

  constructor(options?: SurfaceSyncOptions) {
    const o = toOptions(options, OPTION_KEYS);
    this.#strict = (o.strictness === undefined ? 'protocol' : toEnum(o.strictness, 'options.strictness', ['protocol', 'lenient'])) === 'protocol';
    this.#readyWhen = o.readyWhen === undefined ? 'signaled' : toEnum(o.readyWhen, 'options.readyWhen', ['signaled', 'materialized']);
    this.#materializeMs = toTimeoutMs(o.materializeTimeoutMs, 'options.materializeTimeoutMs') ?? 1000;
    this.#signalMs = toTimeoutMs(o.signalTimeoutMs, 'options.signalTimeoutMs') ?? 10_000;
  }

  /** The commit whose buffer the surface shows (ready, not displaced), or null. */
  get current(): SurfaceCommit<B> | null {
    return this.#current;
  }

  /** Commits waiting for their acquire point, oldest first. */
  get queued(): readonly SurfaceCommit<B>[] {
    return [...this.#queued];
  }

  /** The protocol error that failed this surface, or null. */
  get failed(): SyncobjProtocolError | null {
    return this.#failed;
  }

  /** set_acquire_point: double-buffered, replaces an earlier one in this cycle. */
  setAcquirePoint(timeline: Timeline, point: bigint | number): SyncobjProtocolError | undefined {
    return this.#setPoint('acquire', timeline, point);
  }

  /** set_release_point: double-buffered, replaces an earlier one in this cycle. */
  setReleasePoint(timeline: Timeline, point: bigint | number): SyncobjProtocolError | undefined {
    return this.#setPoint('release', timeline, point);
  }

  #setPoint(which: 'acquire' | 'release', timeline: Timeline, point: bigint | number): SyncobjProtocolError | undefined {
    if (!(timeline instanceof Timeline)) throw new InvalidArgTypeError('timeline', 'an instance of Timeline', timeline);
    if (typeof point !== 'bigint' && typeof point !== 'number') throw new InvalidArgTypeError('point', 'of type bigint or number', point);
    if (this.#failed !== null) return this.#failed;
    if (this.#extensionGone) throw new ClosedError('wp_linux_drm_syncobj_surface_v1', `set_${which}_point`);
    if (this.#surfaceGone) return this.#fail('no_surface', `set_${which}_point after the wl_surface was destroyed`);
    let p: bigint;
    try {
      p = BigInt(point);
      if (p < 0n || p >= 1n << 64n) throw new RangeError();
    } catch {
      throw new OutOfRangeError('point', '>= 0 and < 2 ** 64', point);
    }
    this.#pending[which] = { timeline, point: p };
    return undefined;
  }

  /** wl_surface.attach: `null` unmaps. Double-buffered. */
  attach(buffer: B | null, options?: AttachOptions): SyncobjProtocolError | undefined {
    const o = toOptions(options, ATTACH_KEYS);
    if (o.explicitSync !== undefined && typeof o.explicitSync !== 'boolean') throw new InvalidArgTypeError('options.explicitSync', 'of type boolean', o.explicitSync);
    if (this.#failed !== null) return this.#failed;
    if (this.#surfaceGone) throw new ClosedError('wl_surface', 'attach');
    this.#pending.attached = { buffer, explicitSync: o.explicitSync !== false };
    return undefined;
  }

  /**
   * wl_surface.commit: checks the pending state (the order of checks follows wlroots), and returns
   * the commit entering the queue, or the protocol error.
   */
  commit(): SurfaceCommit<B> | SyncobjProtocolError {
    if (this.#failed !== null) return this.#failed;
    if (this.#surfaceGone) throw new ClosedError('wl_surface', 'commit');
    const { acquire, release, attached } = this.#pending;
    this.#pending = {};
    const buffer = attached?.buffer ?? null;
    if (!this.#extensionGone) {
      if ((acquire || release) && buffer === null)
        return this.#fail('no_buffer', `${acquire ? 'acquire' : 'release'} point set, but ${attached ? 'a null buffer' : 'no buffer'} attached`);
      const implicit = !this.#strict && buffer !== null && !acquire && !release;
      if (buffer !== null && !implicit) {
        if (!acquire) return this.#fail('no_acquire_point', 'buffer attached, but no acquire point set');
        if (!release) return this.#fail('no_release_point', 'buffer attached, but no release point set');
        if (acquire.timeline === release.timeline && acquire.point >= release.point)
          return this.#fail('conflicting_points', `acquire point ${acquire.point} is not below release point ${release.point} on the same timeline`);
        if (!attached!.explicitSync) return this.#fail('unsupported_buffer', 'the buffer does not support explicit synchronization');
      }
    }
    let rp: ReleasePoint | null = null;
    if (release && !this.#extensionGone) {
      try {
        rp = new ReleasePoint(release.timeline, release.point);
      } catch (err) {
        if (err instanceof RangeError)
          return this.#fail('unordered_point', `release point ${release.point} does not increase: ${err.message}`);
        throw err;
      }
    }
    const gate = acquire && !this.#extensionGone ? acquire : null;
    const c = new SurfaceCommit<B>(++this.#seq, attached ? attached.buffer : undefined, gate, rp, (c) => this.#enqueue(c));
    return c;
  }

  #enqueue(c: SurfaceCommit<B>): Promise<CommitOutcome> {
    this.#queued.add(c);
    const gate = this.#gate(c);
    const ready = this.#tail.then(() => gate).then((o) => this.#settle(c, o));
    this.#tail = ready;
    return ready;
  }

  /** Bounded materialisation, then (by option) the signal. Never rejects. */
  async #gate(c: SurfaceCommit<B>): Promise<CommitOutcome> {
    if (c.acquire === null) return { status: 'ready' };
    const { timeline, point } = c.acquire;
    const signal = c.abort.signal;
    try {
      await timeline.wait(point, { until: 'available', timeoutMs: this.#materializeMs, signal });
      if (this.#readyWhen === 'signaled') await timeline.wait(point, { timeoutMs: this.#signalMs, signal });
      return { status: 'ready' };
    } catch (err) {
      if (err instanceof TimelineTimeoutError) return { status: err.reason === 'unsignaled' ? 'unsignaled' : 'unsubmitted', error: err };
      return { status: 'discarded' }; // aborted (surface gone) or the timeline closed
    }
  }

  #settle(c: SurfaceCommit<B>, o: CommitOutcome): CommitOutcome {
    this.#queued.delete(c);
    if (c.status === 'discarded' || this.#surfaceGone || this.#failed !== null) {
      c.endUse('discarded');
      return { status: 'discarded' };
    }
    if (o.status !== 'ready') {
      c.endUse('dropped');
      return o;
    }
    if (c.buffer === undefined) {
      c.status = 'ready';
      return o;
    }
    // The new buffer displaces the shown one: the surface's use of it ends here; what the
    // compositor still does with it (a scanout, a pass) holds its release point on its own.
    this.#current?.endUse('displaced');
    this.#current = c;
    c.status = 'current';
    return o;
  }

  #fail(error: ConstructorParameters<typeof SyncobjProtocolError>[0], message: string): SyncobjProtocolError {
    this.#failed = new SyncobjProtocolError(error, message);
    this.#teardown();
    return this.#failed;
  }

  /** Ends every use the surface has: queued commits are discarded, the current one displaced. */
  #teardown(): void {
    this.#pending = {};
    for (const c of this.#queued) c.endUse('discarded');
    this.#current?.endUse('displaced');
    this.#current = null;
  }

  /**
   * wp_linux_drm_syncobj_surface_v1.destroy: points set since the last commit are discarded
   * (nothing is owed for them, as in wlroots); committed ones are unaffected. Later commits are
   * implicit-sync commits; set_*_point then throws ClosedError (a request on a destroyed object).
   */
  destroy(): void {
    this.#extensionGone = true;
    delete this.#pending.acquire;
    delete this.#pending.release;
  }

  /**
   * The wl_surface was destroyed (or the client is gone): queued commits are discarded, the shown
   * one displaced, and their release points paid as their remaining users end. Later
   * set_*_point requests return no_surface. Idempotent.
   */
  destroySurface(): void {
    if (this.#surfaceGone) return;
    this.#surfaceGone = true;
    this.#teardown();
  }

  /** destroy() and destroySurface(): the client is gone. */
  close(): void {
    this.destroySurface();
    this.destroy();
  }

  [Symbol.dispose](): void {
    try {
      this.close();
    } catch {
      // dispose never throws
    }
  }
}
