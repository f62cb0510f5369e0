// What the flight recorder costs: per-op time of a few operations with no subscriber (the one
// `hasSubscribers` check per hook), with a no-op subscriber on every channel (the events are built
// and published), and while startTrace() records them. Fastest batch (the least disturbed by a
// shared machine), ns/op; the median is in the JSON line. Also the cost of the hook itself: one
// `hasSubscribers` check of the wait TracingChannel and of a plain channel, with no subscriber.
//
//   node bin/explicit-sync.js vm -q -- node bench/channels.mjs [--iterations N] [--batches B]
//
// Runs where the DRM devices are (inside `explicit-sync vm`): a timeline device, and vgem for
// sync files.
import diagnosticsChannel from 'node:diagnostics_channel';
import es from 'explicit-sync';

const { CHANNELS, Device, VgemDevice, startTrace, stopTrace } = es;

const args = { iterations: 5000, batches: 7 };
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = Number(process.argv[i + 1]);

const now = () => process.hrtime.bigint();

/**
 * Median ns/op of `batches` batches of `n` calls of `op` (awaited when it returns a promise) in
 * each mode; the modes take turns batch by batch, so that all three see the same load.
 */
async function measure(op, n = args.iterations) {
  const isAsync = op() instanceof Promise;
  if (isAsync) await op();
  // A library without the flight recorder (an older build, for the baseline) has only 'none'.
  const times = CHANNELS === undefined ? { none: [] } : { none: [], subscriber: [], recording: [] };
  for (let b = 0; b < args.batches; b++) {
    for (const mode of Object.keys(times)) {
      if (mode === 'subscriber') subscribeAll(true);
      if (mode === 'recording') startTrace({ maxEvents: 100_000_000 });
      const t0 = now();
      if (isAsync) for (let i = 0; i < n; i++) await op();
      else for (let i = 0; i < n; i++) op();
      times[mode].push(Number(now() - t0) / n);
      if (mode === 'subscriber') subscribeAll(false);
      if (mode === 'recording') stopTrace();
    }
  }
  const stats = (a) => a && (a.sort((x, y) => x - y), { min: a[0], median: a[a.length >> 1] });
  return { none: stats(times.none), subscriber: stats(times.subscriber), recording: stats(times.recording) };
}

const noop = () => undefined;
const tracingNoop = { start: noop, end: noop, asyncStart: noop, asyncEnd: noop, error: noop };
const C = CHANNELS ?? {}; // undefined in a library without the recorder (the baseline)
const plain = [C.object, C.signal, C.syncFile, C.transfer, C.merge, C.release];
const tracing = [C.wait, C.kmsCommit, C.kmsFlip];
function subscribeAll(on) {
  for (const name of plain) (on ? diagnosticsChannel.subscribe : diagnosticsChannel.unsubscribe)(name, noop);
  for (const name of tracing) diagnosticsChannel.tracingChannel(name)[on ? 'subscribe' : 'unsubscribe'](tracingNoop);
}

const dev = Device.open({ require: ['timeline'] });
const vgem = VgemDevice.open();
const tl = dev.createTimeline();
const bo = vgem.createBuffer({ width: 4, height: 4 });
const buf = bo.exportDmaBuf();
const signalled = buf.exportSyncFile('readwrite'); // no fence on the buffer: already signalled
let point = 0n;

const ops = {
  'timeline.signal': () => tl.signal(++point),
  'timeline.query': () => tl.query(),
  'timeline.wait (reached)': () => tl.wait(1),
  'syncFile.wait (signalled)': () => signalled.wait(),
  'createTimeline + close': () => dev.createTimeline().close(),
  'dmaBuf.exportSyncFile + close': () => buf.exportSyncFile('read').close(),
};

/** ns per `hasSubscribers` check with nobody subscribed (a loop of checks minus an empty loop). */
function hookCost(channel) {
  const n = 2_000_000;
  let hits = 0;
  const best = (fn) => Math.min(...Array.from({ length: 5 }, () => { const t0 = now(); fn(); return Number(now() - t0); }));
  const empty = best(() => { for (let i = 0; i < n; i++) hits += i & 1; });
  const checks = best(() => { for (let i = 0; i < n; i++) if (channel.hasSubscribers) hits++; else hits += i & 1; });
  return Math.max(0, (checks - empty) / n);
}
if (CHANNELS !== undefined) {
  const wait = hookCost(diagnosticsChannel.tracingChannel(CHANNELS.wait));
  const signal = hookCost(diagnosticsChannel.channel(CHANNELS.signal));
  process.stdout.write(`hook with no subscriber: ${wait.toFixed(1)} ns (wait TracingChannel), ${signal.toFixed(1)} ns (plain channel)\n`);
}

const rows = [];
for (const [name, op] of Object.entries(ops)) {
  rows.push({ op: name, ...(await measure(op)) });
}

const fmt = (s) => (s === undefined ? '-' : `${(s.min / 1000).toFixed(2)} µs`);
process.stdout.write(`ops: ${args.iterations} per batch, median of ${args.batches} batches\n`);
process.stdout.write(`${'operation'.padEnd(32)} ${'no subscriber'.padStart(14)} ${'subscriber'.padStart(12)} ${'startTrace'.padStart(12)}\n`);
for (const r of rows)
  process.stdout.write(`${r.op.padEnd(32)} ${fmt(r.none).padStart(14)} ${fmt(r.subscriber).padStart(12)} ${fmt(r.recording).padStart(12)}\n`);
process.stdout.write(`@@explicit-sync-bench:channels@@${JSON.stringify(rows)}\n`);

signalled.close();
buf.close();
bo.close();
tl.close();
vgem.close();
dev.close();
