/**
 * Recorded events (recorder.ts) → a Chrome JSON trace, which Perfetto (ui.perfetto.dev) and
 * chrome://tracing load.
 *
 * Layout: one process per recorded process; in it one track per timeline, syncobj, dma-buf and
 * KMS device, and one per sync_file source (the timeline, syncobj or dma-buf it was exported
 * from, or a KMS device's out-fences): waits are slices ('X') on their object's track, or on
 * their sync file's source track; signals, imports, exports and transfers are instants ('i');
 * waits that overlap go to numbered sibling tracks ("Timeline 'acquire' (2)"). Flow arrows ('s' →
 * 'f') link what the sync files carry from one stage to the next: the wait on an acquire point →
 * the KMS commit that took a fence of that point as IN_FENCE_FD → its page flip → the release
 * point paid with a fence derived (dup, merge) from that commit's out-fence.
 *
 * Timestamps are CLOCK_MONOTONIC microseconds (the trace format's unit), so traces of several
 * processes on one machine line up.
 * @module
 */
import type { ObjectRef } from './channels';
import type { TraceRecord } from './recorder';

/** One event of the Chrome trace format (the fields this writer uses). */
export interface ChromeTraceEvent {
  name: string;
  /** 'X' complete slice, 'i' instant, 'M' metadata, 's'/'f' flow start/end. */
  ph: 'X' | 'i' | 'M' | 's' | 'f';
  /** Microseconds. */
  ts: number;
  pid: number;
  tid: number;
  cat?: string;
  /** 'X': microseconds. */
  dur?: number;
  /** 'i': scope ('t': thread). */
  s?: 't';
  /** 's'/'f': the flow's id. */
  id?: number;
  /** 'f': bind to the enclosing slice. */
  bp?: 'e';
  args?: Record<string, unknown>;
}

/** A Chrome JSON trace (the object form). */
export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  displayTimeUnit: 'ms';
  otherData: { generator: 'explicit-sync'; clock: 'CLOCK_MONOTONIC'; droppedEvents: number };
}

/** Options of {@link toChromeTrace}. */
export interface ChromeTraceOptions {
  pid: number;
  processName: string;
  startNs: bigint;
  droppedEvents?: number;
}

const us = (ns: bigint): number => Number(ns) / 1000;
/** JSON has no bigint: points and ns go out as strings. */
const plain = (v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

interface Slice {
  key: string;
  name: string;
  cat: string;
  start: bigint;
  end: bigint;
  args: Record<string, unknown>;
  tid?: number;
}

/** Tracks (tids) by key, with overlap lanes. */
class Tracks {
  readonly #names = new Map<string, string>();
  readonly #lanes = new Map<string, Array<{ tid: number; end: bigint }>>();
  #next = 1;
  readonly meta: ChromeTraceEvent[] = [];
  constructor(readonly pid: number) {}

  name(key: string, name: string): void {
    this.#names.set(key, name);
  }

  #lane(key: string, i: number): { tid: number; end: bigint } {
    let lanes = this.#lanes.get(key);
    if (lanes === undefined) this.#lanes.set(key, (lanes = []));
    while (lanes.length <= i) {
      const tid = this.#next++;
      const base = this.#names.get(key) ?? key;
      lanes.push({ tid, end: -1n });
      const name = lanes.length === 1 ? base : `${base} (${lanes.length})`;
      this.meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid: this.pid, tid, args: { name } });
      this.meta.push({ name: 'thread_sort_index', ph: 'M', ts: 0, pid: this.pid, tid, args: { sort_index: tid } });
    }
    return lanes[i]!;
  }

  /** The track's first lane (instants). */
  base(key: string): number {
    return this.#lane(key, 0).tid;
  }

  /** A lane free at `start` (slices must be placed in start order). */
  place(key: string, start: bigint, end: bigint): number {
    for (let i = 0; ; i++) {
      const lane = this.#lane(key, i);
      if (lane.end <= start) {
        lane.end = end > start + 1000n ? end : start + 1000n; // slices last at least 1 µs in the trace
        return lane.tid;
      }
    }
  }
}

const objKey = (r: ObjectRef): string => `${r.kind}#${r.id}`;

/** Turns recorded events into a Chrome JSON trace (see the module comment). */
export function toChromeTrace(records: readonly TraceRecord[], options: ChromeTraceOptions): ChromeTrace {
  const { pid } = options;
  const tracks = new Tracks(pid);
  const labels = new Map<string, string>();
  const learn = (r: ObjectRef): void => {
    if (r.label) labels.set(objKey(r), r.label);
  };
  const trackName = (r: ObjectRef): string => {
    const label = labels.get(objKey(r)) ?? r.label;
    return `${r.kind} #${r.id}${label ? ` '${label}'` : ''}`;
  };

  // Sync file lineage: where each came from (source track, timeline point), and its parents.
  const sfSource = new Map<number, { key: string; name: string }>();
  const sfOrigin = new Map<number, { obj: number; point: bigint | undefined }>();
  const sfParents = new Map<number, number[]>();
  const sourceOf = (id: number): { key: string; name: string } => sfSource.get(id) ?? { key: 'sf:other', name: 'sync_files (other sources)' };

  for (const rec of records) {
    if (rec.type === 'object') learn(rec.event);
    else if (rec.type === 'sync-file') {
      learn(rec.event.object);
      if (rec.event.op === 'export')
        for (const sf of rec.event.syncFiles) {
          sfSource.set(sf.id, { key: `sf:${objKey(rec.event.object)}`, name: `sync_files from ${trackName(rec.event.object)}` });
          sfOrigin.set(sf.id, { obj: rec.event.object.id, point: rec.event.point });
        }
    } else if (rec.type === 'merge') {
      sfParents.set(rec.event.output.id, rec.event.inputs.map((i) => i.id));
      const first = rec.event.inputs[0];
      if (first !== undefined && sfSource.has(first.id)) sfSource.set(rec.event.output.id, sourceOf(first.id));
    } else if (rec.type === 'kms-commit') {
      for (const o of rec.event.outFences ?? [])
        sfSource.set(o.syncFile.id, { key: `sf:kms-out#${rec.event.device.id}`, name: `out-fences of ${trackName(rec.event.device)}` });
    }
  }
  /** The sync file and every ancestor (through dup and merge). */
  const ancestry = (id: number): Set<number> => {
    const seen = new Set<number>();
    const stack = [id];
    while (stack.length > 0) {
      const x = stack.pop()!;
      if (seen.has(x)) continue;
      seen.add(x);
      stack.push(...(sfParents.get(x) ?? []));
    }
    return seen;
  };

  const slices: Slice[] = [];
  const instants: Array<{ key: string; name: string; cat: string; ns: bigint; args: Record<string, unknown> }> = [];
  const waits: Array<{ slice: Slice; obj: number; point: bigint | undefined; mode: string }> = [];
  const commits: Array<{ slice: Slice; device: number; commit: bigint; inFences: number[]; outFences: number[] }> = [];
  const flips = new Map<string, Slice>();
  const releases: Array<{ slice: Slice; fences: number[] }> = [];
  const owed = new Map<string, { ns: bigint; site: string | undefined }>();
  let lastNs = options.startNs;

  for (const rec of records) {
    switch (rec.type) {
      case 'object': {
        const e = rec.event;
        if (e.ns > lastNs) lastNs = e.ns;
        if (e.op === 'gc') instants.push({ key: 'gc', name: `GC closed a ${e.kind}`, cat: 'object', ns: e.ns, args: { message: e.message } });
        else if (e.kind !== 'SyncFile')
          instants.push({ key: objKey(e), name: e.op, cat: 'object', ns: e.ns, args: { fd: e.fd, handle: e.handle, label: e.label } });
        break;
      }
      case 'wait': {
        const e = rec.event;
        const sf = e.object.kind === 'SyncFile' ? sourceOf(e.object.id) : undefined;
        const key = sf?.key ?? objKey(e.object);
        if (sf !== undefined) tracks.name(key, sf.name);
        const at = e.point !== undefined ? ` @${e.point}` : '';
        const args: Record<string, unknown> = {
          object: trackName(e.object), outcome: e.outcome, reason: e.reason, mode: e.mode, mechanism: e.mechanism,
          timeoutMs: e.timeoutMs, lastSubmitted: plain(e.lastSubmitted), lastSignaled: plain(e.lastSignaled), error: e.error,
        };
        if (e.signalNs !== undefined) {
          args['signalToWakeUs'] = us(e.endNs - e.signalNs);
          instants.push({ key, name: 'fence signalled (kernel timestamp)', cat: 'fence', ns: e.signalNs, args: { object: trackName(e.object) } });
        }
        const slice: Slice = { key, name: `wait${at} ${e.mode} → ${e.outcome}`, cat: 'wait', start: e.startNs, end: e.endNs, args };
        slices.push(slice);
        waits.push({ slice, obj: e.object.id, point: e.point, mode: e.mode });
        break;
      }
      case 'signal': {
        const e = rec.event;
        const at = e.point !== undefined ? ` @${e.point}` : '';
        const args = { lastSubmitted: plain(e.lastSubmitted), lastSignaled: plain(e.lastSignaled) };
        instants.push({ key: objKey(e.object), name: `${e.op}${at}`, cat: 'signal', ns: e.ns, args });
        break;
      }
      case 'sync-file': {
        const e = rec.event;
        const at = e.point !== undefined ? ` @${e.point}` : '';
        const files = e.syncFiles.map((s) => `SyncFile #${s.id}`);
        instants.push({ key: objKey(e.object), name: `${e.op} sync_file${at}`, cat: 'sync-file', ns: e.ns, args: { syncFiles: files, access: e.access } });
        break;
      }
      case 'transfer': {
        const e = rec.event;
        instants.push({ key: objKey(e.from), name: `transfer @${e.fromPoint} → ${trackName(e.to)} @${e.toPoint}`, cat: 'transfer', ns: e.ns, args: {} });
        instants.push({ key: objKey(e.to), name: `transfer in @${e.toPoint} from ${trackName(e.from)} @${e.fromPoint}`, cat: 'transfer', ns: e.ns, args: {} });
        break;
      }
      case 'merge':
        break; // lineage only (above)
      case 'kms-commit': {
        const e = rec.event;
        const key = `kms#${e.device.id}`;
        tracks.name(key, `${trackName(e.device)} commits`);
        const outs = e.outFences ?? [];
        const slice: Slice = {
          key,
          name: `commit${e.testOnly ? ' (test only)' : ''}${e.error ? ` failed: ${e.error}` : ''}`,
          cat: 'kms',
          start: e.startNs,
          end: e.endNs,
          args: {
            commit: plain(e.commit),
            nonblock: e.nonblock,
            inFences: e.inFences.map((s) => `SyncFile #${s.id}`),
            outFences: outs.map((o) => `SyncFile #${o.syncFile.id} (object ${o.objectId})`),
          },
        };
        slices.push(slice);
        const inFences = e.inFences.map((s) => s.id);
        commits.push({ slice, device: e.device.id, commit: e.commit, inFences, outFences: outs.map((o) => o.syncFile.id) });
        break;
      }
      case 'kms-flip': {
        const e = rec.event;
        const key = `kmsflip#${e.device.id}`;
        tracks.name(key, `${trackName(e.device)} page flips`);
        const slice: Slice = { key, name: `flip (commit ${e.commit}) → ${e.outcome}`, cat: 'kms', start: e.startNs, end: e.endNs, args: { crtcs: e.crtcs } };
        slices.push(slice);
        flips.set(`${e.device.id}:${e.commit}`, slice);
        for (const [i, ns] of (e.flipNs ?? []).entries())
          instants.push({ key, name: `vblank: CRTC ${e.crtcs[i] ?? '?'} flipped`, cat: 'kms', ns, args: { commit: plain(e.commit) } });
        break;
      }
      case 'release': {
        const e = rec.event;
        const k = `${e.timeline.id}:${e.point}`;
        learn(e.timeline);
        if (e.op === 'owe') owed.set(k, { ns: e.ns, site: e.site });
        else {
          const start = owed.get(k)?.ns ?? e.ns;
          owed.delete(k);
          const fences = (e.fences ?? []).map((f) => `SyncFile #${f.id}`);
          const name = `release @${e.point} owed → paid (${e.via})`;
          const slice: Slice = { key: objKey(e.timeline), name, cat: 'release', start, end: e.ns, args: { via: e.via, site: e.site, fences } };
          slices.push(slice);
          releases.push({ slice, fences: (e.fences ?? []).map((f) => f.id) });
        }
        break;
      }
    }
  }
  for (const r of records) if ('ns' in r.event && typeof r.event.ns === 'bigint' && r.event.ns > lastNs) lastNs = r.event.ns;
  for (const s of slices) if (s.end > lastNs) lastNs = s.end;
  // Release points still owed when the trace stopped.
  for (const rec of records)
    if (rec.type === 'release' && rec.event.op === 'owe' && owed.has(`${rec.event.timeline.id}:${rec.event.point}`))
      slices.push({ key: objKey(rec.event.timeline), name: `release @${rec.event.point} owed (unpaid)`, cat: 'release', start: rec.event.ns, end: lastNs, args: { site: rec.event.site } });

  // Names of object tracks, now that every label is known.
  const named = new Set<string>();
  const nameObjects = (r: ObjectRef): void => {
    const k = objKey(r);
    if (!named.has(k)) tracks.name(k, trackName(r));
    named.add(k);
  };
  for (const rec of records) {
    const e = rec.event as Partial<{ object: ObjectRef; timeline: ObjectRef; from: ObjectRef; to: ObjectRef }>;
    for (const r of [e.object, e.timeline, e.from, e.to]) if (r !== undefined) nameObjects(r);
    if (rec.type === 'object') nameObjects(rec.event);
  }
  tracks.name('gc', 'GC backstop');

  const events: ChromeTraceEvent[] = [];
  const dur = (s: Slice): number => Math.max(us(s.end - s.start), 1);
  slices.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (const s of slices) {
    s.tid = tracks.place(s.key, s.start, s.end);
    events.push({ name: s.name, ph: 'X', cat: s.cat, ts: us(s.start), dur: dur(s), pid, tid: s.tid, args: clean(s.args) });
  }
  for (const i of instants)
    events.push({ name: i.name, ph: 'i', s: 't', cat: i.cat, ts: us(i.ns), pid, tid: tracks.base(i.key), args: clean(i.args) });

  // Flows: acquire wait → commit → flip → release. An arrow leaves its slice where it ended (the
  // wait resolved, the flip came) and enters the next where it started, or where a release slice
  // ends (the payment): just inside each slice, so that the viewer binds it there.
  let flowId = 0;
  const inside = (s: Slice, atEnd: boolean): number => (atEnd ? us(s.start) + dur(s) - Math.min(0.5, dur(s) / 2) : us(s.start));
  const flow = (from: Slice, to: Slice, name: string): void => {
    const id = ++flowId;
    events.push({ name, ph: 's', cat: 'flow', id, ts: inside(from, true), pid, tid: from.tid! });
    events.push({ name, ph: 'f', bp: 'e', cat: 'flow', id, ts: inside(to, to.cat === 'release'), pid, tid: to.tid! });
  };
  for (const c of commits) {
    const acquired = new Set<Slice>();
    for (const sf of c.inFences) {
      const line = ancestry(sf);
      const candidates = waits.filter(
        (w) => w.slice.start <= c.slice.start &&
          ([...line].some((a) => a === w.obj) || [...line].some((a) => { const o = sfOrigin.get(a); return o !== undefined && o.obj === w.obj && o.point === w.point; })),
      );
      const best = candidates.sort((a, b) => (a.mode === b.mode ? (a.slice.end < b.slice.end ? 1 : -1) : a.mode === 'signaled' ? -1 : 1))[0];
      if (best !== undefined && !acquired.has(best.slice)) {
        acquired.add(best.slice);
        flow(best.slice, c.slice, 'acquire → commit');
      }
    }
    const flipSlice = c.commit !== 0n ? flips.get(`${c.device}:${c.commit}`) : undefined;
    if (flipSlice !== undefined) flow(c.slice, flipSlice, 'commit → flip');
    for (const out of c.outFences)
      for (const r of releases)
        if (r.fences.some((f) => ancestry(f).has(out))) flow(flipSlice ?? c.slice, r.slice, flipSlice ? 'flip → release' : 'commit → release');
  }

  const meta: ChromeTraceEvent[] = [{ name: 'process_name', ph: 'M', ts: 0, pid, tid: 0, args: { name: options.processName } }, ...tracks.meta];
  return {
    traceEvents: [...meta, ...events],
    displayTimeUnit: 'ms',
    otherData: { generator: 'explicit-sync', clock: 'CLOCK_MONOTONIC', droppedEvents: options.droppedEvents ?? 0 },
  };
}

/** Drops undefined values (JSON would keep the keys out anyway; this keeps `args` tidy for tests). */
function clean(args: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined).map(([k, v]) => [k, plain(v)]));
}

/** Merges the traces of several processes (their pids keep them apart) into one. */
export function mergeChromeTraces(traces: readonly ChromeTrace[]): ChromeTrace {
  return {
    traceEvents: traces.flatMap((t) => t.traceEvents),
    displayTimeUnit: 'ms',
    otherData: { generator: 'explicit-sync', clock: 'CLOCK_MONOTONIC', droppedEvents: traces.reduce((n, t) => n + t.otherData.droppedEvents, 0) },
  };
}
