// The flight recorder's parts that need no DRM: the stable channel names, the Chrome trace writer
// on hand-made events (schema, tracks, lanes, flows bound to slices), startTrace/stopTrace, the
// CLI's registry and its `trace` and `inspect` commands, labels' validation.
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHANNELS, formatInspect, inspect, isTracing, startTrace, stopTrace, type ChromeTraceEvent } from '../../dist/index.js';
import { toChromeTrace } from '../../dist/trace/perfetto.js';
import type { TraceRecord } from '../../dist/trace/recorder.js';
import { toLabel } from '../../dist/trace/labels.js';
import { registeredCommands } from '../../dist/cli/registry.js';
import { catchesSigusr2 } from '../../dist/cli/inspect.js';
import '../../dist/cli.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = `${root}bin/explicit-sync.js`;

function runCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000, env }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

/** Checks the fields every event of its phase must have (the Trace Event Format). */
function validate(events: ChromeTraceEvent[]): void {
  for (const e of events) {
    expect(e.name, JSON.stringify(e)).to.be.a('string');
    expect(['X', 'i', 'M', 's', 'f']).to.include(e.ph);
    expect(Number.isInteger(e.pid) && Number.isInteger(e.tid), JSON.stringify(e)).to.equal(true);
    expect(e.ts).to.be.a('number').and.not.NaN;
    if (e.ph === 'X') expect(e.dur).to.be.a('number').and.at.least(1);
    if (e.ph === 'i') expect(e.s).to.equal('t');
    if (e.ph === 's' || e.ph === 'f') expect(e.id).to.be.a('number');
    if (e.ph === 'f') expect(e.bp).to.equal('e');
    if (e.ph === 'M') expect(e.args).to.have.property(e.name === 'thread_sort_index' ? 'sort_index' : 'name');
  }
  // Slices on one track never overlap unless nested (they are placed in lanes).
  const byTid = new Map<number, ChromeTraceEvent[]>();
  for (const e of events.filter((x) => x.ph === 'X')) byTid.set(e.tid, [...(byTid.get(e.tid) ?? []), e]);
  for (const list of byTid.values()) {
    list.sort((a, b) => a.ts - b.ts);
    for (let i = 1; i < list.length; i++) expect(list[i]!.ts >= list[i - 1]!.ts + list[i - 1]!.dur!).to.equal(true);
  }
}

const ref = (kind: string, id: number, label?: string) => ({ kind, id, label });

/** One frame as the channels would report it: acquire wait, export, commit with out-fence, flip, dup, release. */
function frame(): TraceRecord[] {
  const tl = ref('Timeline', 1, 'acquire');
  const rel = ref('Timeline', 2, 'release');
  const dev = ref('KmsDevice', 3);
  const t = (us: number): bigint => 1_000_000_000n + BigInt(us) * 1000n;
  return [
    { type: 'object', event: { ...tl, op: 'open', ns: t(0), handle: 1 } },
    { type: 'release', event: { op: 'owe', timeline: rel, point: 1n, site: 'test', ns: t(1) } },
    { type: 'wait', event: { object: tl, point: 1n, mode: 'available', mechanism: 'eventfd', timeoutMs: 1000, startNs: t(2), endNs: t(3), outcome: 'resolved' } },
    { type: 'wait', event: { object: tl, point: 1n, mode: 'signaled', mechanism: 'eventfd', timeoutMs: 1000, startNs: t(2), endNs: t(50), outcome: 'resolved' } },
    { type: 'wait', event: { object: tl, point: 2n, mode: 'signaled', mechanism: 'eventfd', timeoutMs: 1000, startNs: t(10), endNs: t(20), outcome: 'timedout', reason: 'unsubmitted' } },
    { type: 'signal', event: { object: tl, op: 'signal', point: 1n, ns: t(49) } },
    { type: 'sync-file', event: { op: 'export', object: tl, point: 1n, syncFiles: [ref('SyncFile', 10)], ns: t(60) } },
    { type: 'kms-commit', event: { device: dev, commit: 1n, testOnly: false, nonblock: true, inFences: [ref('SyncFile', 10)], startNs: t(70), endNs: t(80), outFences: [{ objectId: 40, syncFile: ref('SyncFile', 11) }] } },
    { type: 'merge', event: { op: 'dup', inputs: [ref('SyncFile', 11)], output: ref('SyncFile', 12), name: undefined, ns: t(81) } },
    { type: 'kms-flip', event: { device: dev, commit: 1n, crtcs: [40], startNs: t(80), endNs: t(16000), outcome: 'flipped', flipNs: [t(15990)] } },
    { type: 'release', event: { op: 'pay', timeline: rel, point: 1n, via: 'fences', fences: [ref('SyncFile', 12)], site: 'test', ns: t(17000) } },
  ];
}

describe('flight recorder (host)', () => {
  it('CHANNELS: the documented, stable names', () => {
    const names = 'object wait signal sync-file transfer merge kms-commit kms-flip release'.split(' ');
    expect(Object.values(CHANNELS)).to.deep.equal(names.map((n) => `explicit-sync:${n}`));
  });

  it('toChromeTrace: valid events, named tracks, overlapping waits in lanes, the three flows bound to slices', () => {
    const trace = toChromeTrace(frame(), { pid: 42, processName: 'compositor', startNs: 1_000_000_000n });
    const events = trace.traceEvents;
    validate(events);
    JSON.parse(JSON.stringify(trace)); // plain JSON: no bigint left
    const threads = events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args!['name']);
    expect(threads).to.include.members(["Timeline #1 'acquire'", "Timeline #1 'acquire' (2)", "Timeline #2 'release'", 'KmsDevice #3 commits', 'KmsDevice #3 page flips']);
    const flows = events.filter((e) => e.ph === 's').map((e) => e.name);
    expect(flows).to.deep.equal(['acquire → commit', 'commit → flip', 'flip → release']);
    const slices = events.filter((e) => e.ph === 'X');
    for (const f of events.filter((e) => e.ph === 's' || e.ph === 'f'))
      expect(slices.some((s) => s.tid === f.tid && s.ts <= f.ts && f.ts <= s.ts + s.dur!), `${f.name} ${f.ph}`).to.equal(true);
    // The acquire flow starts at the 'signaled' wait on the point the in-fence came from.
    const start = events.find((e) => e.ph === 's' && e.name === 'acquire → commit')!;
    const from = slices.find((s) => s.tid === start.tid && s.ts <= start.ts && start.ts <= s.ts + s.dur!)!;
    expect(from.name).to.equal('wait @1 signaled → resolved');
    const release = slices.find((s) => s.name.startsWith('release @1'))!;
    expect(release.dur).to.equal(16999);
    expect(events.find((e) => e.name === 'signal @1')).to.include({ ph: 'i' });
    // The release arrow enters where the release was paid (the end of its slice), after the flip.
    const end = events.find((e) => e.ph === 'f' && e.name === 'flip → release')!;
    expect(end.ts).to.be.above(release.ts + release.dur! - 1);
  });

  it('startTrace / stopTrace: one at a time; the file is the trace', () => {
    expect(() => stopTrace()).to.throw(Error, 'no trace');
    startTrace();
    expect(isTracing()).to.equal(true);
    expect(() => startTrace()).to.throw(Error, 'already');
    const dir = mkdtempSync(join(tmpdir(), 'es-trace-'));
    try {
      const t = stopTrace({ path: join(dir, 't.json'), processName: 'me' });
      expect(isTracing()).to.equal(false);
      expect(JSON.parse(readFileSync(join(dir, 't.json'), 'utf8'))).to.deep.equal(JSON.parse(JSON.stringify(t)));
      expect(t.traceEvents[0]).to.deep.include({ ph: 'M', name: 'process_name', args: { name: 'me' } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => startTrace({ maxEvents: 0 })).to.throw(RangeError);
  });

  it('inspect() without DRM: no objects, no waits, and the text form says so', () => {
    const r = inspect();
    expect(r.pid).to.equal(process.pid);
    expect(r.waits).to.deep.equal([]);
    expect(formatInspect(r)).to.include('pending waits (0)');
  });

  it('labels: strings of at most 256 characters', () => {
    expect(toLabel('ok')).to.equal('ok');
    expect(() => toLabel(3)).to.throw(TypeError);
    expect(() => toLabel('x'.repeat(257))).to.throw(RangeError);
  });

  it('CLI registry: every command once, trace and inspect among them', () => {
    const names = registeredCommands().map((c) => c.name);
    expect(names).to.have.members(['vm', 'doctor', 'trace', 'inspect']).and.have.length(4);
  });

  it('explicit-sync trace -- <command>: writes a loadable trace and passes the exit status on', async function () {
    this.timeout(60000);
    const dir = mkdtempSync(join(tmpdir(), 'es-trace-'));
    try {
      const out = join(dir, 'out.json');
      const r = await runCli(['trace', '-o', out, '--', process.execPath, '-e', `require(${JSON.stringify(`${root}dist/index.js`)}); process.exitCode = 3`]);
      expect(r.code).to.equal(3);
      const trace = JSON.parse(readFileSync(out, 'utf8')) as { traceEvents: ChromeTraceEvent[] };
      validate(trace.traceEvents);
      expect(trace.traceEvents.some((e) => e.name === 'process_name')).to.equal(true);
      expect((await runCli(['trace'])).code).to.equal(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('explicit-sync inspect <pid>: refuses a process without the hook, answers for one with it', async function () {
    this.timeout(60000);
    const script = `require(${JSON.stringify(`${root}dist/index.js`)}); console.log('up'); setTimeout(() => {}, 30000)`;
    for (const hooked of [false, true]) {
      const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, EXPLICIT_SYNC_INSPECT: hooked ? '1' : '' }, stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await new Promise((resolve) => child.stdout!.once('data', resolve));
        expect(catchesSigusr2(child.pid!)).to.equal(hooked);
        const r = await runCli(['inspect', String(child.pid)]);
        if (hooked) {
          expect(r.code).to.equal(0);
          expect(r.stdout).to.include(`explicit-sync in process ${child.pid}`);
        } else {
          expect(r.code).to.equal(1);
          expect(r.stderr).to.include('EXPLICIT_SYNC_INSPECT=1');
          expect(child.exitCode).to.equal(null); // not signalled
        }
      } finally {
        child.kill();
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
  });
});
