/**
 * The recorder: subscribes to every channel of the flight recorder (channels.ts) between
 * {@link startTrace} and {@link stopTrace} and keeps the events, as plain data (no object is kept
 * alive), for perfetto.ts to turn into a trace. A wait still pending at stopTrace() is recorded
 * as pending, ending at the stop.
 * @module
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import {
  CHANNELS,
  KmsCommitContext,
  KmsFlipContext,
  MergeEvent,
  ObjectEvent,
  ReleaseEvent,
  SignalEvent,
  SyncFileEvent,
  TransferEvent,
  WaitContext,
  nowNs,
} from './channels';
import { ChromeTrace, toChromeTrace } from './perfetto';
import { InvalidArgTypeError, InvalidArgValueError, OptionKeys, toInt, toOptions } from '../validate';

/** A wait as recorded: its context without the object, `outcome` 'pending' when the trace stopped first. */
export type RecordedWait = Omit<WaitContext, 'target' | 'error' | 'result' | 'outcome'> & {
  outcome: NonNullable<WaitContext['outcome']> | 'pending';
  endNs: bigint;
  /** For a failed wait: the error's name and code. */
  error?: string;
};

/** One recorded event. */
export type TraceRecord =
  | { type: 'object'; event: Omit<ObjectEvent, 'target'> }
  | { type: 'wait'; event: RecordedWait }
  | { type: 'signal'; event: SignalEvent }
  | { type: 'sync-file'; event: SyncFileEvent }
  | { type: 'transfer'; event: TransferEvent }
  | { type: 'merge'; event: MergeEvent }
  | { type: 'kms-commit'; event: Omit<KmsCommitContext, 'error' | 'result'> & { endNs: bigint; error?: string } }
  | { type: 'kms-flip'; event: Omit<KmsFlipContext, 'error' | 'result'> & { endNs: bigint } }
  | { type: 'release'; event: ReleaseEvent };

/** Options of {@link startTrace}. */
export interface StartTraceOptions {
  /** Most events kept (default 1,000,000); later ones are counted in `droppedEvents`, not kept. */
  maxEvents?: number;
}

/** Options of {@link stopTrace}. */
export interface StopTraceOptions {
  /** Also write the trace (Chrome JSON, which Perfetto and chrome://tracing load) to this file. */
  path?: string;
  /** The process's name on its track group (default: the script's name). */
  processName?: string;
}

const START_KEYS: OptionKeys<StartTraceOptions> = { maxEvents: true };
const STOP_KEYS: OptionKeys<StopTraceOptions> = { path: true, processName: true };

function errorName(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  const e = err as { name?: string; code?: string };
  return [e?.name, e?.code].filter((x) => x !== undefined).join(' ') || String(err);
}

/** Records the channels' events while started. */
class Recorder {
  readonly records: TraceRecord[] = [];
  readonly pending = new Set<WaitContext>();
  readonly startNs = nowNs();
  dropped = 0;
  readonly #plain: Array<[string, (m: unknown) => void]>;
  readonly #wait = {
    start: (ctx: WaitContext): void => void this.pending.add(ctx),
    end: (): void => undefined,
    asyncStart: (): void => undefined,
    asyncEnd: (ctx: WaitContext): void => this.#endWait(ctx),
    error: (ctx: WaitContext): void => this.#endWait(ctx),
  };
  readonly #commit = {
    start: (): void => undefined,
    end: (c: KmsCommitContext): void => {
      const event = {
        device: c.device, commit: c.commit, testOnly: c.testOnly, nonblock: c.nonblock, inFences: c.inFences,
        startNs: c.startNs, endNs: c.endNs ?? nowNs(), outFences: c.outFences, error: errorName(c.error),
      };
      this.#add({ type: 'kms-commit', event });
    },
    asyncStart: (): void => undefined,
    asyncEnd: (): void => undefined,
    error: (): void => undefined,
  };
  readonly #flip = {
    start: (): void => undefined,
    end: (): void => undefined,
    asyncStart: (): void => undefined,
    asyncEnd: (c: KmsFlipContext): void => {
      const event = { device: c.device, commit: c.commit, crtcs: c.crtcs, startNs: c.startNs, endNs: c.endNs ?? nowNs(), flipNs: c.flipNs, outcome: c.outcome };
      this.#add({ type: 'kms-flip', event });
    },
    error: (): void => undefined,
  };

  constructor(readonly maxEvents: number) {
    const plain = (type: 'signal' | 'sync-file' | 'transfer' | 'merge' | 'release') => (m: unknown): void =>
      this.#add({ type, event: m } as TraceRecord);
    this.#plain = [
      [CHANNELS.object, (m) => {
        const e = m as ObjectEvent; // copied without its target, field by field (a rest copy is slow)
        const event: Omit<ObjectEvent, 'target'> = { kind: e.kind, id: e.id, label: e.label, op: e.op, ns: e.ns };
        if (e.fd !== undefined) event.fd = e.fd;
        if (e.handle !== undefined) event.handle = e.handle;
        if (e.message !== undefined) event.message = e.message;
        this.#add({ type: 'object', event });
      }],
      [CHANNELS.signal, plain('signal')],
      [CHANNELS.syncFile, plain('sync-file')],
      [CHANNELS.transfer, plain('transfer')],
      [CHANNELS.merge, plain('merge')],
      [CHANNELS.release, plain('release')],
    ];
  }

  #add(r: TraceRecord): void {
    if (this.records.length < this.maxEvents) this.records.push(r);
    else this.dropped++;
  }

  #endWait(ctx: WaitContext): void {
    if (!this.pending.delete(ctx)) return; // started before the trace, or already recorded
    this.#add({ type: 'wait', event: this.#wait2(ctx, ctx.endNs ?? nowNs()) });
  }

  #wait2(c: WaitContext, endNs: bigint): RecordedWait {
    const out: RecordedWait = {
      object: c.object, point: c.point, mode: c.mode, mechanism: c.mechanism, timeoutMs: c.timeoutMs, startNs: c.startNs,
      endNs, outcome: c.outcome ?? 'pending',
    };
    if (c.lastSubmitted !== undefined) out.lastSubmitted = c.lastSubmitted;
    if (c.lastSignaled !== undefined) out.lastSignaled = c.lastSignaled;
    if (c.reason !== undefined) out.reason = c.reason;
    if (c.signalNs !== undefined) out.signalNs = c.signalNs;
    if (c.outcome === 'failed') out.error = errorName(c.error);
    return out;
  }

  start(): void {
    for (const [name, fn] of this.#plain) diagnosticsChannel.subscribe(name, fn);
    diagnosticsChannel.tracingChannel(CHANNELS.wait).subscribe(this.#wait as never);
    diagnosticsChannel.tracingChannel(CHANNELS.kmsCommit).subscribe(this.#commit as never);
    diagnosticsChannel.tracingChannel(CHANNELS.kmsFlip).subscribe(this.#flip as never);
  }

  stop(): void {
    for (const [name, fn] of this.#plain) diagnosticsChannel.unsubscribe(name, fn);
    diagnosticsChannel.tracingChannel(CHANNELS.wait).unsubscribe(this.#wait as never);
    diagnosticsChannel.tracingChannel(CHANNELS.kmsCommit).unsubscribe(this.#commit as never);
    diagnosticsChannel.tracingChannel(CHANNELS.kmsFlip).unsubscribe(this.#flip as never);
    const now = nowNs();
    for (const ctx of this.pending) this.#add({ type: 'wait', event: this.#wait2(ctx, now) });
    this.pending.clear();
  }
}

let current: Recorder | null = null;

/** Whether a trace is being recorded. */
export function isTracing(): boolean {
  return current !== null;
}

/**
 * Starts recording the flight recorder's events (every channel) in this thread, for
 * {@link stopTrace}. Costs only while recording.
 * @throws ERR_INVALID_ARG_VALUE when a trace is already being recorded.
 */
export function startTrace(options?: StartTraceOptions): void {
  const o = toOptions(options, START_KEYS);
  const maxEvents = o.maxEvents === undefined ? 1_000_000 : toInt(o.maxEvents, 'options.maxEvents', 1, 2 ** 31 - 1);
  if (current !== null) throw new InvalidArgValueError('startTrace', 'a trace is already being recorded: call stopTrace() first', undefined);
  current = new Recorder(maxEvents);
  current.start();
}

/**
 * Stops recording and returns the trace: Chrome JSON trace format (load it in
 * https://ui.perfetto.dev or chrome://tracing), one track per timeline, syncobj and sync_file
 * source, slices for waits, instants for signals, flow arrows acquire → commit → flip → release
 * (see the README's "Debugging" section). With `path`, also writes it there.
 * @throws ERR_INVALID_ARG_VALUE when no trace is being recorded.
 */
export function stopTrace(options?: StopTraceOptions): ChromeTrace {
  const o = toOptions(options, STOP_KEYS);
  if (o.path !== undefined && typeof o.path !== 'string') throw new InvalidArgTypeError('options.path', 'of type string', o.path);
  if (o.processName !== undefined && typeof o.processName !== 'string')
    throw new InvalidArgTypeError('options.processName', 'of type string', o.processName);
  const rec = current;
  if (rec === null) throw new InvalidArgValueError('stopTrace', 'no trace is being recorded: call startTrace() first', undefined);
  current = null;
  rec.stop();
  const trace = toChromeTrace(rec.records, {
    pid: process.pid,
    processName: o.processName ?? `${process.argv[1] ?? 'node'} (${process.pid})`,
    startNs: rec.startNs,
    droppedEvents: rec.dropped,
  });
  if (o.path !== undefined) writeFileSync(o.path, JSON.stringify(trace));
  return trace;
}
