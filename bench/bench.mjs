// The JavaScript side of `npm run bench`: the operations of bench/baseline.c through the library's
// public API only (the package's own name, as a user imports it), timed the same way: warm-up,
// then batches; ns/op of the fastest batch and of the median batch. Prints one JSON object on a
// line of its own, after a marker, for bench/run.mjs to pair with the C baseline's.
//
//   node bench/bench.mjs [--baseline PATH] [--iterations N] [--batches B] [--wake N]
//                        [--scale 1000,10000,100000] [--cycles N] [--only ops,wake,scale]
//
// With --baseline, the C baseline runs alongside as a coprocess (`baseline --serve`) and every
// batch of an operation is timed on both sides back to back, C then JS, so that both see the same
// load on a shared, noisy machine; the C figures are printed too, after their own marker.
//
// Runs where the DRM devices are (inside `npx explicit-sync vm`); bench/run.mjs does all of that.
import { spawn } from 'node:child_process';
import { readdirSync, closeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import es from 'explicit-sync';
import { KoffiOps, waitTimeline } from './koffi.mjs';
import { WakeFixture, benchWake } from './wake.mjs';

const { Device, Timeline, VgemDevice } = es;

const MARKER = '@@explicit-sync-bench:js@@';
const C_MARKER = '@@explicit-sync-bench:c@@';

const opts = { baseline: undefined, iterations: 20000, batches: 10, wake: 200, scale: '1000,10000,100000', cycles: 1000000, pending: 10000, only: undefined };
for (let i = 2; i + 1 < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!(key in opts)) {
    process.stderr.write(`bench.mjs: unknown option ${process.argv[i]}\n`);
    process.exit(2);
  }
  opts[key] = typeof opts[key] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
  if (typeof opts[key] === 'number' && !(opts[key] >= 0)) {
    process.stderr.write(`bench.mjs: ${process.argv[i]} takes a number\n`);
    process.exit(2);
  }
}
const wants = (part) => opts.only === undefined || opts.only.split(',').includes(part);

const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC, as the baseline's clock_gettime
const openFds = () => readdirSync('/proc/self/fd').length - 1; // minus the listing's own fd
const rss = () => process.memoryUsage.rss();
/**
 * Before a baseline reading of RSS: collect what earlier tests left (run with --expose-gc, as
 * bench/run.mjs does), so that a growth figure counts only what the test itself holds. Readings
 * taken while a test runs never force a collection.
 */
const settle = () => globalThis.gc?.();
const progress = (msg) => process.stderr.write(`[bench.mjs] ${msg}\n`);

/** The C baseline as a coprocess (`baseline --serve`): one request line, one answer line. */
class Baseline {
  #child;
  #lines;
  /** `fds`: what the coprocess gets as fds 3.. (the wake fixture's objects, for `fire`). */
  constructor(path, fds = []) {
    this.#child = spawn(path, fds.length > 0 ? ['--serve', '--fire-fds'] : ['--serve'], { stdio: ['pipe', 'pipe', 'inherit', ...fds] });
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }
  async request(line) {
    this.#child.stdin.write(`${line}\n`);
    const { value, done } = await this.#lines.next();
    if (done || value.startsWith('error')) throw new Error(`baseline: ${done ? 'exited' : value} (request: ${line})`);
    return value;
  }
  /** ns for `count` runs of the operation. */
  async op(name, count) {
    return Number(await this.request(`op ${name} ${count}`));
  }
  /** One latency (ns) per round. */
  async wake(kind, rounds) {
    return (await this.request(`wake ${kind} ${rounds}`)).split(' ').map(Number);
  }
  /** Has the coprocess signal the JS side's object (baseline.c `fire`); the clock just before it. */
  async fire(what, arg) {
    return BigInt(await this.request(`fire ${what} ${arg}`));
  }
  close() {
    this.#child.stdin.end();
  }
}

const round = (x) => Math.round(x * 10) / 10;

function batchStats(per, batch) {
  per.sort((a, b) => a - b);
  return { ns: round(per[0]), median_ns: round(per[per.length >> 1]), iterations: batch * per.length };
}

/**
 * ns/op of `loop(n)` (which runs the operation n times): n/10 warm-up, then `batches` batches,
 * each timed on the C side first when there is a baseline. Each operation gets its own loop
 * function so that every call site in it stays monomorphic.
 */
async function measure(name, loop, c, out, koffiLoop) {
  const batch = Math.max(1, Math.floor(opts.iterations / opts.batches));
  const warm = Math.max(1, Math.floor(opts.iterations / 10));
  if (c) await c.op(name, warm);
  loop(warm);
  koffiLoop(warm);
  const perC = [];
  const perJs = [];
  const perKoffi = [];
  for (let r = 0; r < opts.batches; r++) {
    if (c) perC.push((await c.op(name, batch)) / batch);
    let t0 = now();
    loop(batch);
    perJs.push(Number(now() - t0) / batch);
    t0 = now();
    koffiLoop(batch);
    perKoffi.push(Number(now() - t0) / batch);
  }
  out.js[name] = batchStats(perJs, batch);
  out.koffi[name] = batchStats(perKoffi, batch);
  if (c) out.c[name] = batchStats(perC, batch);
}

/** A second Timeline object on the same syncobj, so that signalling it wakes `tl` through the kernel. */
function peer(dev, tl) {
  const fd = tl.exportFd();
  try {
    return dev.importTimeline(fd);
  } finally {
    closeSync(fd);
  }
}

async function benchOps(dev, vgem, c) {
  const out = { js: {}, c: {}, koffi: {} };
  const k = new KoffiOps(dev.fd);
  const kTl = k.createSyncobj();
  let kPoint = 0n;
  const tl = dev.createTimeline();
  const buf = vgem.createBuffer({ width: 64, height: 64 });
  const dmabuf = buf.exportDmaBuf();
  // A sync_file holding one (signalled) vgem fence, like the baseline's.
  const fence = buf.attachFence({ write: true });
  const sf = dmabuf.exportSyncFile('read');
  fence.signal();

  await measure('timeline.query', (n) => {
    for (let i = 0; i < n; i++) tl.query();
  }, c, out, (n) => {
    for (let i = 0; i < n; i++) k.query(kTl);
  });
  let point = 0n;
  await measure('timeline.signal', (n) => {
    for (let i = 0; i < n; i++) tl.signal(++point);
  }, c, out, (n) => {
    for (let i = 0; i < n; i++) k.signal(kTl, ++kPoint);
  });
  await measure('syncobj.create+close', (n) => {
    for (let i = 0; i < n; i++) dev.createSyncobj().close();
  }, c, out, (n) => {
    for (let i = 0; i < n; i++) k.destroySyncobj(k.createSyncobj());
  });
  await measure('dmabuf.exportSyncFile+close', (n) => {
    for (let i = 0; i < n; i++) dmabuf.exportSyncFile('read').close();
  }, c, out, (n) => {
    const fd = dmabuf.fd;
    for (let i = 0; i < n; i++) k.close(k.exportSyncFile(fd));
  });
  await measure('syncfile.info', (n) => {
    for (let i = 0; i < n; i++) sf.info();
  }, c, out, (n) => {
    const fd = sf.fd;
    for (let i = 0; i < n; i++) k.info(fd);
  });
  await measure('syncfile.isSignaled', (n) => {
    for (let i = 0; i < n; i++) sf.isSignaled();
  }, c, out, (n) => {
    const fd = sf.fd;
    for (let i = 0; i < n; i++) k.isSignaled(fd);
  });

  // N points in one call against N single calls (one release point per client of a frame, say).
  const N = 8;
  const many = Array.from({ length: N }, () => dev.createTimeline());
  const kMany = Uint32Array.from(many, () => k.createSyncobj());
  let manyPoint = 0n;
  let kManyPoint = 0n;
  const kPoints = new BigUint64Array(N);
  await measure('timeline.signal×8', (n) => {
    for (let i = 0; i < n; i++) {
      ++manyPoint;
      for (const t of many) t.signal(manyPoint);
    }
  }, c, out, (n) => {
    for (let i = 0; i < n; i++) {
      ++kManyPoint;
      for (const h of kMany) k.signal(h, kManyPoint);
    }
  });
  await measure('Timeline.signalAll(8)', (n) => {
    for (let i = 0; i < n; i++) {
      ++manyPoint;
      Timeline.signalAll(many.map((timeline) => ({ timeline, point: manyPoint })));
    }
  }, c, out, (n) => {
    for (let i = 0; i < n; i++) {
      kPoints.fill(++kManyPoint);
      k.signalAll(kMany, kPoints);
    }
  });
  for (const t of many) t.close();
  for (const h of kMany) k.destroySyncobj(h);

  k.destroySyncobj(kTl);
  sf.close();
  dmabuf.close();
  buf.close();
  tl.close();
  return out;
}

/** `count` pending waits on one timeline (points 1..count), all resolved by one signal. */
async function benchScaleOne(dev, count) {
  const tl = dev.createTimeline();
  const signaller = peer(dev, tl);
  settle();
  const fd0 = openFds();
  const rss0 = rss();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = now();
  const waits = new Array(count);
  for (let i = 0; i < count; i++) waits[i] = tl.wait(i + 1);
  const t1 = now();
  const fds = openFds() - fd0;
  const rssGrowth = rss() - rss0;
  const heapGrowth = process.memoryUsage().heapUsed - heap0;
  const t2 = now();
  signaller.signal(count);
  await Promise.all(waits);
  const t3 = now();
  signaller.close();
  tl.close();
  const setup = Number(t1 - t0);
  const resolve = Number(t3 - t2);
  return { fds, rss_bytes: rssGrowth, heap_bytes: heapGrowth, setup_ns: setup, resolve_ns: resolve, total_ns: setup + resolve };
}

/** How long a stat() of '/' may take before the pool counts as starved; then the waits are signalled. */
const FS_CAP_MS = 2000;

/**
 * Starts an fs call (libuv's thread pool) while waits are pending: its latency, and whether it
 * finished within FS_CAP_MS; `release()` runs at the cap (or at once when it finished) and must
 * let the waits finish.
 */
async function fsMeanwhile(release) {
  const t0 = now();
  let t1;
  const call = stat('/').then(() => (t1 = now()));
  let timer;
  const inTime = await Promise.race([call.then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), FS_CAP_MS)))]);
  clearTimeout(timer);
  release();
  await call;
  return { fs_ns: Number(t1 - t0), fs_starved: !inTime };
}

/**
 * `count` pending waits on one timeline (points 1..count), the library's against koffi's blocking
 * waits (async calls, each on a thread of libuv's pool; koffi refuses beyond its cap of async
 * calls), with an fs call's latency meanwhile, then one signal resolves them all.
 */
async function benchPending(dev, count) {
  const out = {};
  {
    const tl = dev.createTimeline();
    const signaller = peer(dev, tl);
    const fd0 = openFds();
    const t0 = now();
    const waits = new Array(count);
    for (let i = 0; i < count; i++) waits[i] = tl.wait(i + 1);
    const fds = openFds() - fd0;
    const fs = await fsMeanwhile(() => signaller.signal(count));
    await Promise.all(waits);
    out.library = { count, accepted: count, refused: 0, fds, ...fs, total_ns: Number(now() - t0) };
    signaller.close();
    tl.close();
  }
  {
    const tl = dev.createTimeline();
    const signaller = peer(dev, tl);
    const t0 = now();
    const waits = [];
    let ok = 0;
    let refused = 0;
    let failed = 0;
    let refusal;
    let failure;
    // koffi answers a call beyond its cap of async calls with an error, synchronously or in the callback.
    const refuse = (err) => {
      const message = String(err?.message ?? err);
      if (/too many asynchronous calls/i.test(message)) {
        refused++;
        refusal ??= message;
      } else {
        failed++;
        failure ??= message;
      }
    };
    for (let i = 0; i < count; i++) {
      try {
        waits.push(waitTimeline(dev.fd, tl.handle, i + 1).then(() => ok++, refuse));
      } catch (err) {
        refuse(err);
      }
    }
    const fs = await fsMeanwhile(() => signaller.signal(count));
    await Promise.all(waits);
    out.koffi = { count, accepted: ok, refused, failed, refusal: refusal ?? null, failure: failure ?? null, ...fs, total_ns: Number(now() - t0) };
    signaller.close();
    tl.close();
  }
  return out;
}

/**
 * `cycles` createTimeline()/close() pairs: open fds and RSS at the start, every 10% and at the end,
 * and the live JS heap (heapUsed right after a forced collection; null without --expose-gc) at the
 * start and the end. RSS climbs for a while as V8 sizes its young generation, then plateaus; a leak
 * shows as live heap or RSS that keeps growing in the second half.
 */
function benchCycles(dev, cycles) {
  const liveHeap = () => {
    if (globalThis.gc === undefined) return null;
    globalThis.gc();
    return process.memoryUsage().heapUsed;
  };
  const heapStart = liveHeap();
  const fdsStart = openFds();
  const rssSamples = [rss()];
  let fdsMax = fdsStart;
  const step = Math.max(1, Math.floor(cycles / 10));
  const t0 = now();
  for (let done = 0; done < cycles; ) {
    const k = Math.min(step, cycles - done);
    for (let i = 0; i < k; i++) dev.createTimeline().close();
    done += k;
    rssSamples.push(rss());
    fdsMax = Math.max(fdsMax, openFds());
  }
  const t1 = now();
  return {
    count: cycles,
    ns: Number(t1 - t0),
    fds_start: fdsStart,
    fds_end: openFds(),
    fds_max: fdsMax,
    rss_start: rssSamples[0],
    rss_half: rssSamples[Math.floor(rssSamples.length / 2)],
    rss_end: rssSamples[rssSamples.length - 1],
    rss_max: Math.max(...rssSamples),
    rss_samples: rssSamples,
    heap_start: heapStart,
    heap_end: liveHeap(),
  };
}

async function main() {
  const dev = Device.open({ require: ['timeline'] });
  const vgem = VgemDevice.open();
  progress(`timeline device ${dev.path} (${dev.driver.name}), vgem ${vgem.path}, wait mechanism ${dev.features.waitMechanism}`);
  const fx = wants('wake') ? new WakeFixture(dev, vgem) : undefined;
  let c;
  if (opts.baseline !== undefined && (wants('ops') || wants('wake'))) {
    const fds = fx?.passFds() ?? [];
    c = new Baseline(opts.baseline, fds);
    for (const fd of fds.slice(0, 2)) closeSync(fd); // the exported syncobj fds; the others are fx's
  }
  const result = { koffi: {} };
  const cResult = {};
  try {
    if (wants('ops')) {
      const t = Date.now();
      const r = await benchOps(dev, vgem, c);
      result.ops = r.js;
      result.koffi.ops = r.koffi;
      cResult.ops = r.c;
      progress(`ops: ${((Date.now() - t) / 1000).toFixed(1)} s${c ? ' (C, JS and koffi)' : ' (JS and koffi)'}`);
    }
    if (wants('wake')) {
      const t = Date.now();
      const r = await benchWake(fx, c, opts.wake);
      result.wake = r.js;
      result.koffi.wake = r.koffi;
      result.floor = { wake: r.floor };
      cResult.wake = r.c;
      progress(`wake: ${((Date.now() - t) / 1000).toFixed(1)} s${c ? ' (C, JS and koffi)' : ' (JS and koffi)'}`);
    }
  } finally {
    c?.close();
    fx?.close();
  }
  if (wants('scale')) {
    // The cycles first, while the heap is small: RSS does not shrink right after a collection, so
    // a start reading taken after the 100,000 waits would flatter the end reading.
    result.scale = {};
    if (opts.cycles > 0) {
      const tc = Date.now();
      result.scale.cycles = benchCycles(dev, opts.cycles);
      progress(`scale cycles: ${((Date.now() - tc) / 1000).toFixed(1)} s`);
    }
    const t = Date.now();
    const waits = {};
    for (const count of opts.scale.split(',').map(Number)) waits[count] = await benchScaleOne(dev, count);
    result.scale.waits = waits;
    progress(`scale waits: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    if (opts.pending > 0) {
      const tp = Date.now();
      result.scale.pending = await benchPending(dev, opts.pending);
      progress(`scale pending, library and koffi: ${((Date.now() - tp) / 1000).toFixed(1)} s`);
    }
  }
  vgem.close();
  dev.close();
  if (c) process.stdout.write(`${C_MARKER} ${JSON.stringify(cResult)}\n`);
  process.stdout.write(`${MARKER} ${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench.mjs: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
});
