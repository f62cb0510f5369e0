/**
 * The live census behind {@link inspect}: every open object (kind, label, age, creation site) and
 * every pending wait (point, how long, and a verdict), kept by subscribing to the flight
 * recorder's channels while it is enabled. Nothing is kept, and nothing costs, until
 * {@link enableInspect} (or `EXPLICIT_SYNC_INSPECT=1` in the environment, which also installs the
 * SIGUSR2 hook that `explicit-sync inspect <pid>` uses).
 *
 * Objects are held by WeakRef: the census never keeps an object alive, and one collected without
 * close() simply drops out (the GC backstop's warning says so).
 * @module
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownedFds } from '../census';
import { CHANNELS, KmsFlipContext, ObjectEvent, ObjectRef, ReleaseEvent, WaitContext, nowNs, objectId, ref } from './channels';

/** @internal Key of the pending-wait count of objects with wait queues (Timeline, Syncobj, SyncFile). */
export const kPendingWaits: unique symbol = Symbol('explicit-sync.pendingWaits');

/** One open object in {@link InspectReport}. */
export interface InspectObject extends ObjectRef {
  /** Milliseconds since it was opened (since the census started, for older objects). */
  ageMs: number;
  /** Where it was created: the first frames outside explicit-sync; '' when opened before the census started. */
  site: string;
  fd?: number;
  handle?: number;
}

/** Why a wait is still pending. */
export type WaitVerdict = 'never submitted' | 'submitted, not signalled' | 'release owed' | 'flip pending';

/** One pending wait in {@link InspectReport}. */
export interface InspectWait {
  object: ObjectRef;
  point: string | undefined;
  /** 'signaled' or 'available'; 'flip' for a pending KMS page flip. */
  mode: string;
  mechanism: string;
  waitingMs: number;
  verdict: WaitVerdict;
  /** What the verdict rests on: the timeline's last submitted / signalled points, the owed release, the fence's driver. */
  detail: string;
}

/** A release point this process owes and has not paid. */
export interface InspectRelease {
  timeline: ObjectRef;
  point: string;
  owedMs: number;
  site: string | undefined;
}

/** What {@link inspect} returns. */
export interface InspectReport {
  pid: number;
  /** Whether the census was on (objects and waits from before it started are not listed). */
  enabled: boolean;
  objects: InspectObject[];
  waits: InspectWait[];
  releases: InspectRelease[];
  /** Fds this library owns, by kind (always known, census or not). */
  fds: Array<[kind: string, count: number]>;
}

interface LiveObject {
  ref: WeakRef<object>;
  openedNs: bigint;
  site: string;
}

const objects = new Map<number, LiveObject>();
const waits = new Set<WaitContext>();
const owed = new Map<string, ReleaseEvent>();
let enabled = false;
let sinceNs = 0n;

/** Frames outside this library's dist folder (where the object was made). */
function siteHere(): string {
  const stack = new Error().stack?.split('\n').slice(1) ?? [];
  const dist = join(__dirname, '..');
  return stack
    .map((l) => l.trim())
    .filter((l) => !l.includes(dist) && !l.includes('node:diagnostics_channel') && !l.includes('node:internal'))
    .slice(0, 3)
    .join(' <- ');
}

const onObject = (message: unknown): void => {
  const ev = message as ObjectEvent;
  if (ev.op === 'open' && ev.target !== undefined) objects.set(ev.id, { ref: new WeakRef(ev.target), openedNs: ev.ns, site: siteHere() });
  else if (ev.op === 'close') objects.delete(ev.id);
};
const onRelease = (message: unknown): void => {
  const ev = message as ReleaseEvent;
  const key = `${ev.timeline.id}:${ev.point}`;
  if (ev.op === 'owe') owed.set(key, ev);
  else owed.delete(key);
};
const waitHandlers = {
  start: (ctx: WaitContext): void => void waits.add(ctx),
  end: (): void => undefined,
  asyncStart: (): void => undefined,
  asyncEnd: (ctx: WaitContext): void => void waits.delete(ctx),
  error: (ctx: WaitContext): void => void waits.delete(ctx),
};
const waitChannel = diagnosticsChannel.tracingChannel<string, WaitContext>(CHANNELS.wait);
const flips = new Set<KmsFlipContext>();
const flipHandlers = {
  start: (ctx: KmsFlipContext): void => void flips.add(ctx),
  end: (): void => undefined,
  asyncStart: (): void => undefined,
  asyncEnd: (ctx: KmsFlipContext): void => void flips.delete(ctx),
  error: (ctx: KmsFlipContext): void => void flips.delete(ctx),
};
const flipChannel = diagnosticsChannel.tracingChannel<string, KmsFlipContext>(CHANNELS.kmsFlip);

/** Starts the census (idempotent): objects opened and waits started from now on are listed by {@link inspect}. */
export function enableInspect(): void {
  if (enabled) return;
  enabled = true;
  sinceNs = nowNs();
  diagnosticsChannel.subscribe(CHANNELS.object, onObject);
  diagnosticsChannel.subscribe(CHANNELS.release, onRelease);
  waitChannel.subscribe(waitHandlers);
  flipChannel.subscribe(flipHandlers);
}

/** Stops the census and forgets what it knew. */
export function disableInspect(): void {
  if (!enabled) return;
  enabled = false;
  diagnosticsChannel.unsubscribe(CHANNELS.object, onObject);
  diagnosticsChannel.unsubscribe(CHANNELS.release, onRelease);
  waitChannel.unsubscribe(waitHandlers);
  flipChannel.unsubscribe(flipHandlers);
  objects.clear();
  waits.clear();
  flips.clear();
  owed.clear();
}

const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

interface TimelineLike {
  closed: boolean;
  query(o?: { lastSubmitted?: boolean }): bigint;
  isAvailable(p: bigint): boolean;
}

/** The verdict of one pending wait, from the kernel's state now. */
function verdictOf(w: WaitContext): { verdict: WaitVerdict; detail: string } {
  const t = w.target as Partial<TimelineLike> & { hasFence?: () => boolean; info?: () => { fences: Array<{ driver: string; timeline: string }> } };
  try {
    if (w.point !== undefined && typeof t.query === 'function' && t.closed !== true) {
      const sub = t.query({ lastSubmitted: true });
      const sig = t.query();
      const levels = `last submitted ${sub}, last signalled ${sig}`;
      for (const r of owed.values())
        if (r.timeline.id === w.object.id && r.point >= w.point)
          return {
            verdict: 'release owed',
            detail: `this process owes point ${r.point} (ReleasePoint made at ${r.site ?? '?'}); ${levels}`,
          };
      const submitted = w.mode === 'signaled' && t.isAvailable!(w.point);
      return { verdict: submitted ? 'submitted, not signalled' : 'never submitted', detail: levels };
    }
    if (typeof t.hasFence === 'function' && t.closed !== true)
      return t.hasFence() && w.mode === 'signaled'
        ? { verdict: 'submitted, not signalled', detail: 'the syncobj holds an unsignalled fence' }
        : { verdict: 'never submitted', detail: 'the syncobj holds no fence' };
    if (typeof t.info === 'function' && t.closed !== true) {
      const fences = t.info().fences.map((f) => `${f.driver}:${f.timeline}`);
      return { verdict: 'submitted, not signalled', detail: `fences ${fences.join(', ')}` };
    }
  } catch (err) {
    return { verdict: 'submitted, not signalled', detail: `could not ask the kernel: ${(err as Error).message}` };
  }
  return { verdict: 'submitted, not signalled', detail: '' };
}

/**
 * Every open object and pending wait this process has, as far as the census saw them (see
 * {@link enableInspect}), with a verdict per wait: 'never submitted' (no fence at the point:
 * the producer never submitted it), 'submitted, not signalled' (a fence is there; the GPU, the
 * display or the peer has not signalled it), 'release owed' (this very process owes that point:
 * a ReleasePoint not paid yet, a stall of its own making). Asks the kernel (zero-timeout queries)
 * for the verdicts. Starts the census if it was off (then only what comes later is listed).
 */
export function inspect(): InspectReport {
  const wasEnabled = enabled;
  enableInspect();
  const now = nowNs();
  const out: InspectObject[] = [];
  for (const [id, o] of objects) {
    const obj = o.ref.deref() as { closed?: boolean; fd?: number; handle?: number } | undefined;
    if (obj === undefined || obj.closed === true) {
      objects.delete(id);
      continue;
    }
    const entry: InspectObject = { ...ref(obj), ageMs: ms(o.openedNs < sinceNs ? sinceNs : o.openedNs, now), site: o.site };
    if (typeof obj.fd === 'number') entry.fd = obj.fd;
    if (typeof obj.handle === 'number') entry.handle = obj.handle;
    out.push(entry);
  }
  return {
    pid: process.pid,
    enabled: wasEnabled,
    objects: out,
    waits: [...waits].map((w): InspectWait => ({
      object: { ...w.object, label: ref(w.target).label },
      point: w.point?.toString(),
      mode: w.mode,
      mechanism: w.mechanism,
      waitingMs: ms(w.startNs, now),
      ...verdictOf(w),
    })).concat([...flips].map((f): InspectWait => ({
      object: f.device,
      point: undefined,
      mode: 'flip',
      mechanism: 'DRM event',
      waitingMs: ms(f.startNs, now),
      verdict: 'flip pending' as const,
      detail: `commit ${f.commit}, CRTCs ${f.crtcs.join(', ')}`,
    }))),
    releases: [...owed.values()].map((r) => ({ timeline: r.timeline, point: r.point.toString(), owedMs: ms(r.ns, now), site: r.site })),
    fds: ownedFds(),
  };
}

const name = (r: ObjectRef): string => `${r.kind} #${r.id}${r.label ? ` '${r.label}'` : ''}`;

/** {@link inspect}'s report as text, for people (what `explicit-sync inspect <pid>` prints). */
export function formatInspect(report: InspectReport): string {
  const lines = [`explicit-sync in process ${report.pid}${report.enabled ? '' : ' (census just started: older objects are not listed)'}`];
  lines.push(`fds: ${report.fds.map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}`);
  lines.push(`open objects (${report.objects.length}):`);
  for (const o of report.objects) {
    const what = o.fd !== undefined ? ` fd ${o.fd}` : o.handle !== undefined ? ` handle ${o.handle}` : '';
    lines.push(`  ${name(o)}${what}, ${(o.ageMs / 1000).toFixed(1)} s old${o.site ? `, created at ${o.site}` : ''}`);
  }
  lines.push(`pending waits (${report.waits.length}):`);
  for (const w of report.waits) {
    const at = w.point !== undefined ? ` point ${w.point}` : '';
    lines.push(`  ${name(w.object)}${at} (${w.mode}, ${w.mechanism}): ${w.verdict}, waiting ${(w.waitingMs / 1000).toFixed(1)} s${w.detail ? `; ${w.detail}` : ''}`);
  }
  lines.push(`release points owed (${report.releases.length}):`);
  for (const r of report.releases) lines.push(`  ${name(r.timeline)} point ${r.point}, owed for ${(r.owedMs / 1000).toFixed(1)} s${r.site ? `, made at ${r.site}` : ''}`);
  return `${lines.join('\n')}\n`;
}

/** Where the SIGUSR2 hook writes the report of process `pid` (JSON). */
export function inspectReportPath(pid: number): string {
  return join(tmpdir(), `explicit-sync-inspect-${pid}.json`);
}

let hooked = false;

/**
 * Installs the hook of `explicit-sync inspect <pid>`: on SIGUSR2 the process writes
 * {@link inspect}'s report as JSON to {@link inspectReportPath} (atomically: written aside, then
 * renamed). Starts the census. Done at load time when EXPLICIT_SYNC_INSPECT=1.
 */
export function installInspectSignal(): void {
  enableInspect();
  if (hooked) return;
  hooked = true;
  process.on('SIGUSR2', () => {
    const path = inspectReportPath(process.pid);
    const text = JSON.stringify(inspect(), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  });
}

if (/^(1|true|yes|on)$/i.test(process.env['EXPLICIT_SYNC_INSPECT'] ?? '')) installInspectSignal();

// The object ids of events and of the report are the same numbers.
export { objectId };
