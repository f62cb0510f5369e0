/**
 * The flight recorder: what explicit-sync does, published on `node:diagnostics_channel`.
 *
 * Channel names are stable (see the README's "Debugging" section). Every hook in the library is
 * `if (channel.hasSubscribers) publishX(...)`: with nobody listening, that one check is the whole
 * cost; the object ids, labels, timestamps and the kernel queries the events carry are only
 * computed for a subscriber. Timestamps are bigint nanoseconds of CLOCK_MONOTONIC
 * (`process.hrtime.bigint()`, the clock of `monotonicNow()`, of the kernel's fence timestamps and
 * of KMS flip events).
 *
 * This module knows the library's objects only by shape (kind = class name, `label`, `fd`,
 * `handle`, a timeline's `query()`): nothing here imports them, so any file may import it.
 * @module
 */
import diagnosticsChannel from 'node:diagnostics_channel';

/** The names of the channels, as `diagnostics_channel.channel(name)` / `tracingChannel(name)` take them. */
export const CHANNELS = {
  /** Objects opened, labelled, closed, and closed by the GC backstop: {@link ObjectEvent}. */
  object: 'explicit-sync:object',
  /** A TracingChannel: async waits, start to settle: {@link WaitContext}. */
  wait: 'explicit-sync:wait',
  /** CPU signals (timeline.signal, syncobj.signal / reset): {@link SignalEvent}. */
  signal: 'explicit-sync:signal',
  /** sync_files exported from / imported into a timeline point, a syncobj or a dma-buf: {@link SyncFileEvent}. */
  syncFile: 'explicit-sync:sync-file',
  /** timeline.transfer: {@link TransferEvent}. */
  transfer: 'explicit-sync:transfer',
  /** SyncFile merge and dup: {@link MergeEvent}. */
  merge: 'explicit-sync:merge',
  /** A TracingChannel: KMS atomic commits (the ioctl), with their in- and out-fences: {@link KmsCommitContext}. */
  kmsCommit: 'explicit-sync:kms-commit',
  /** A TracingChannel: the wait for a commit's page flip, commit to flip event: {@link KmsFlipContext}. */
  kmsFlip: 'explicit-sync:kms-flip',
  /** The compositor kit's release points: owed, then paid: {@link ReleaseEvent}. */
  release: 'explicit-sync:release',
} as const;

/** How an object appears in events. */
export interface ObjectRef {
  /** Its class: 'Timeline', 'SyncFile', 'DmaBuf', 'Device', 'KmsDevice', … */
  kind: string;
  /** A number unique in this process, given the first time an event names the object. */
  id: number;
  /** Its label (`createTimeline({ label })`, `dmaBuf.setName()`, a merge name), if it has one. */
  label: string | undefined;
}

/** On `explicit-sync:object`. */
export interface ObjectEvent extends ObjectRef {
  op: 'open' | 'label' | 'close' | 'gc';
  ns: bigint;
  /** The object itself (not for 'gc'). Subscribers that keep it should keep a WeakRef. */
  target?: object;
  /** Its fd (fd owners) when opened or closed. */
  fd?: number;
  /** Its syncobj handle (timelines, syncobjs) when opened or closed. */
  handle?: number;
  /** For 'gc': what the GC backstop says it released (the object itself is gone, so no id). */
  message?: string;
}

/** The context object of `explicit-sync:wait` (TracingChannel): filled in as the wait goes. */
export interface WaitContext {
  object: ObjectRef;
  /** The object waited on. Subscribers that keep it should keep a WeakRef. */
  target: object;
  /** Timeline point; undefined for sync files and binary syncobjs. */
  point: bigint | undefined;
  mode: 'signaled' | 'available';
  /** 'eventfd' / 'poll' (syncobjs: device.features.waitMechanism), 'uv_poll' (a sync_file's fd). */
  mechanism: string;
  /** The wait's bound in ms, undefined for none. */
  timeoutMs: number | undefined;
  startNs: bigint;
  /** Timelines: where the timeline stood when the wait started and when it settled. */
  lastSubmitted?: bigint;
  lastSignaled?: bigint;
  /** Set when it settles. */
  endNs?: bigint;
  outcome?: 'resolved' | 'timedout' | 'aborted' | 'closed' | 'failed';
  /** For 'timedout': 'unsubmitted' or 'unsignaled' (as the TimeoutError's `reason`); for 'failed': the error's code. */
  reason?: string;
  /**
   * Sync files that resolved: when the kernel says the fence signalled (SYNC_IOC_FILE_INFO's
   * timestamp, the latest of its fences); `endNs - signalNs` is the signal-to-JS wake latency.
   */
  signalNs?: bigint;
  /** TracingChannel's own fields. */
  error?: unknown;
  result?: unknown;
}

/** On `explicit-sync:signal`. */
export interface SignalEvent {
  object: ObjectRef;
  op: 'signal' | 'reset';
  point: bigint | undefined;
  ns: bigint;
  lastSubmitted?: bigint;
  lastSignaled?: bigint;
}

/** On `explicit-sync:sync-file`. */
export interface SyncFileEvent {
  op: 'export' | 'import';
  /** The timeline, syncobj or dma-buf. */
  object: ObjectRef;
  point: bigint | undefined;
  /** The sync file(s): the one exported, or the ones imported. */
  syncFiles: ObjectRef[];
  /** dma-bufs: the access ('read', 'write', 'readwrite'). */
  access?: string;
  ns: bigint;
}

/** On `explicit-sync:transfer`. */
export interface TransferEvent {
  from: ObjectRef;
  fromPoint: bigint;
  to: ObjectRef;
  toPoint: bigint;
  ns: bigint;
}

/** On `explicit-sync:merge`. */
export interface MergeEvent {
  op: 'merge' | 'dup';
  inputs: ObjectRef[];
  output: ObjectRef;
  /** The merge name given to the kernel. */
  name: string | undefined;
  ns: bigint;
}

/** The context object of `explicit-sync:kms-commit` (TracingChannel). */
export interface KmsCommitContext {
  device: ObjectRef;
  /** The commit's user_data when it asked for a flip event (it links to `explicit-sync:kms-flip`), else 0n. */
  commit: bigint;
  testOnly: boolean;
  nonblock: boolean;
  inFences: ObjectRef[];
  startNs: bigint;
  /** Set after the ioctl: the out-fences, by CRTC or writeback connector id. */
  outFences?: Array<{ objectId: number; syncFile: ObjectRef }>;
  endNs?: bigint;
  error?: unknown;
  result?: unknown;
}

/** The context object of `explicit-sync:kms-flip` (TracingChannel). */
export interface KmsFlipContext {
  device: ObjectRef;
  commit: bigint;
  crtcs: number[];
  startNs: bigint;
  endNs?: bigint;
  /** The kernel's flip timestamps (CLOCK_MONOTONIC ns), one per CRTC. */
  flipNs?: bigint[];
  outcome?: 'flipped' | 'timedout' | 'aborted' | 'closed' | 'failed';
  error?: unknown;
  result?: unknown;
}

/** On `explicit-sync:release`. */
export interface ReleaseEvent {
  op: 'owe' | 'pay';
  timeline: ObjectRef;
  point: bigint;
  /** For 'pay': how ('fences', 'cpu', 'failed'), and the sync files it waited for. */
  via?: string;
  fences?: ObjectRef[];
  /** Where the ReleasePoint was made. */
  site?: string;
  ns: bigint;
}

export const objectChannel = diagnosticsChannel.channel(CHANNELS.object);
export const waitChannel = diagnosticsChannel.tracingChannel<string, WaitContext>(CHANNELS.wait);
export const signalChannel = diagnosticsChannel.channel(CHANNELS.signal);
export const syncFileChannel = diagnosticsChannel.channel(CHANNELS.syncFile);
export const transferChannel = diagnosticsChannel.channel(CHANNELS.transfer);
export const mergeChannel = diagnosticsChannel.channel(CHANNELS.merge);
export const kmsCommitChannel = diagnosticsChannel.tracingChannel<string, KmsCommitContext>(CHANNELS.kmsCommit);
export const kmsFlipChannel = diagnosticsChannel.tracingChannel<string, KmsFlipContext>(CHANNELS.kmsFlip);
export const releaseChannel = diagnosticsChannel.channel(CHANNELS.release);

/** Now, CLOCK_MONOTONIC ns. */
export const nowNs = (): bigint => process.hrtime.bigint();

const ids = new WeakMap<object, number>();
let lastId = 0;

/** The object's id in events (given on first use). */
export function objectId(obj: object): number {
  let id = ids.get(obj);
  if (id === undefined) ids.set(obj, (id = ++lastId));
  return id;
}

/** The shape of the library's objects that events read. */
interface Labelled {
  readonly label?: string | undefined;
}

/** How `obj` appears in events. */
export function ref(obj: object): ObjectRef {
  return { kind: obj.constructor.name, id: objectId(obj), label: (obj as Labelled).label };
}

/** Publishes an object event (callers check `objectChannel.hasSubscribers` first). */
export function publishObject(op: ObjectEvent['op'], obj: object, kind?: string): void {
  // Built field by field: an object spread costs microseconds here (V8's clone of a fresh literal).
  const o = obj as { fd?: unknown; handle?: unknown; label?: string };
  const ev: ObjectEvent = { kind: kind ?? obj.constructor.name, id: objectId(obj), label: o.label, op, ns: nowNs(), target: obj };
  if (typeof o.fd === 'number') ev.fd = o.fd;
  if (typeof o.handle === 'number') ev.handle = o.handle;
  objectChannel.publish(ev);
}

/** Publishes a GC-backstop close (the object is gone: only its kind and what was released). */
export function publishGc(kind: string, message: string): void {
  objectChannel.publish({ kind, id: 0, label: undefined, op: 'gc', ns: nowNs(), message } satisfies ObjectEvent);
}

interface Queryable {
  readonly closed: boolean;
  query(options?: { lastSubmitted?: boolean }): bigint;
}

/** Sets where a timeline stands (both points) on `ev`; nothing for other objects or when it cannot be asked. */
function setLevels(obj: object, ev: { lastSubmitted?: bigint; lastSignaled?: bigint }): void {
  const t = obj as Partial<Queryable>;
  if (typeof t.query !== 'function' || t.closed === true || obj.constructor.name !== 'Timeline') return;
  try {
    ev.lastSubmitted = t.query({ lastSubmitted: true });
    ev.lastSignaled = t.query();
  } catch {
    // closed device: no levels
  }
}

/** Publishes a CPU signal or reset. */
export function publishSignal(obj: object, op: SignalEvent['op'], point: bigint | undefined): void {
  const ev: SignalEvent = { object: ref(obj), op, point, ns: nowNs() };
  setLevels(obj, ev);
  signalChannel.publish(ev);
}

/** Publishes a sync_file export from / import into `obj`. */
export function publishSyncFile(
  op: SyncFileEvent['op'],
  obj: object,
  point: bigint | undefined,
  syncFiles: readonly object[],
  access?: string,
): void {
  const ev: SyncFileEvent = { op, object: ref(obj), point, syncFiles: syncFiles.map(ref), ns: nowNs() };
  if (access !== undefined) ev.access = access;
  syncFileChannel.publish(ev);
}

/** Publishes a transfer between points. */
export function publishTransfer(from: object, fromPoint: bigint, to: object, toPoint: bigint): void {
  transferChannel.publish({ from: ref(from), fromPoint, to: ref(to), toPoint, ns: nowNs() } satisfies TransferEvent);
}

/** Publishes a merge (or dup) of sync files. */
export function publishMerge(op: MergeEvent['op'], inputs: readonly object[], output: object, name?: string): void {
  mergeChannel.publish({ op, inputs: inputs.map(ref), output: ref(output), name: name || undefined, ns: nowNs() } satisfies MergeEvent);
}

/** Publishes a release point owed or paid. */
export function publishRelease(ev: Omit<ReleaseEvent, 'ns' | 'timeline' | 'fences'> & { timeline: object; fences?: readonly object[] }): void {
  const out: ReleaseEvent = { op: ev.op, timeline: ref(ev.timeline), point: ev.point, ns: nowNs() };
  if (ev.via !== undefined) out.via = ev.via;
  if (ev.fences !== undefined) out.fences = ev.fences.map(ref);
  if (ev.site !== undefined) out.site = ev.site;
  releaseChannel.publish(out);
}

/** What an error says about how a wait ended. */
function outcomeOf(err: unknown): Pick<WaitContext, 'outcome' | 'reason'> {
  const e = err as { name?: string; code?: string; reason?: string } | null;
  if (e?.name === 'AbortError') return { outcome: 'aborted' };
  if (e?.code === 'ETIME') return { outcome: 'timedout', reason: e.reason };
  if (e?.name === 'ClosedError' || e?.name === 'FdLostError') return { outcome: 'closed' };
  return { outcome: 'failed', reason: e?.code };
}

/**
 * Runs the wait `start()` under the wait TracingChannel (callers check `waitChannel.hasSubscribers`
 * first). `signalTime` gives a resolved wait's kernel signal time, when there is one.
 */
export function traceWait<T>(
  obj: object,
  point: bigint | undefined,
  mode: WaitContext['mode'],
  mechanism: string,
  timeoutMs: number | undefined,
  start: () => Promise<T>,
  signalTime?: () => bigint | undefined,
): Promise<T> {
  const ctx: WaitContext = { object: ref(obj), target: obj, point, mode, mechanism, timeoutMs, startNs: nowNs() };
  setLevels(obj, ctx);
  const settle = (err?: unknown): void => {
    ctx.endNs = nowNs();
    setLevels(obj, ctx);
    if (err === undefined) ctx.outcome = 'resolved';
    else {
      const o = outcomeOf(err);
      ctx.outcome = o.outcome;
      if (o.reason !== undefined) ctx.reason = o.reason;
    }
    if (err === undefined && signalTime !== undefined) {
      try {
        const ns = signalTime();
        if (ns !== undefined) ctx.signalNs = ns;
      } catch {
        // closed in between: no timestamp
      }
    }
  };
  return waitChannel.tracePromise(
    () =>
      start().then(
        (v) => {
          settle();
          return v;
        },
        (err: unknown) => {
          settle(err);
          throw err;
        },
      ),
    ctx,
  );
}

/** Runs a KMS commit under its TracingChannel (callers check `kmsCommitChannel.hasSubscribers` first). */
export function traceKmsCommit<T>(ctx: Omit<KmsCommitContext, 'startNs'>, run: (ctx: KmsCommitContext) => T): T {
  const full = ctx as KmsCommitContext;
  full.startNs = nowNs();
  return kmsCommitChannel.traceSync(() => {
    try {
      return run(full);
    } finally {
      full.endNs = nowNs();
    }
  }, full);
}

/** Runs the wait for a flip under its TracingChannel (callers check `kmsFlipChannel.hasSubscribers` first). */
export function traceKmsFlip<T extends Array<{ timeNs: bigint }>>(
  ctx: Omit<KmsFlipContext, 'startNs'>,
  start: () => Promise<T>,
): Promise<T> {
  const full = ctx as KmsFlipContext;
  full.startNs = nowNs();
  const p = kmsFlipChannel.tracePromise(
    () =>
      start().then(
        (events) => {
          full.endNs = nowNs();
          full.outcome = 'flipped';
          full.flipNs = events.map((e) => e.timeNs);
          return events;
        },
        (err: unknown) => {
          full.endNs = nowNs();
          const o = outcomeOf(err).outcome;
          full.outcome = o === 'resolved' ? 'failed' : o === 'timedout' ? 'timedout' : o;
          throw err;
        },
      ),
    full,
  );
  p.catch(() => undefined); // as the untraced flip promise: a rejection nobody awaits is fine
  return p;
}
