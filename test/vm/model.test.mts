// Model-based property test of timeline semantics on the real kernel (virtio_gpu syncobjs, vgem
// fences): random sequences of signal / import (sync_file of a vgem fence, or of an exported
// point) / export / transfer / fence signal / timeline export+import (aliases of one syncobj) /
// query / wait / close, run against the library and against a small in-JS model, compared after
// every step. Fixed seed and a short run in CI; EXPLICIT_SYNC_MODEL_RUNS (and _SEED) for more.
//
// The model: a syncobj is a chain of links, each at a point strictly above the last (the tests
// only ever add points above the last submitted one), each with a fence. A fence is CPU-signalled
// (TIMELINE_SIGNAL), a vgem fence, or a point of a chain (a transfer, or an exported sync_file),
// signalled once that chain is signalled up to that link. Then:
//   last submitted = the newest link's point;   signalled level = the point of the last link
//   such that it and every link before it are signalled;  wait(p) / isSignaled(p) ⟺ p ≤ level;
//   wait(p, until 'available') / isAvailable(p) ⟺ p ≤ last submitted;  an export or transfer of
//   point p takes the first link at or above p.
import { expect } from 'chai';
import { closeSync } from 'node:fs';
import * as fc from 'fast-check';
import { ClosedError, Device, SyncFile, Timeline, TimelineTimeoutError, VgemDevice, type VgemFence } from 'explicit-sync';
import { openFds } from '../helpers.mjs';
import { kmallocSmall, openTimelineDevice } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

type Dep = { kind: 'cpu' } | { kind: 'fence'; id: number } | { kind: 'link'; obj: number; point: bigint };
interface Link {
  point: bigint;
  dep: Dep;
}
interface ModelWait {
  handle: number;
  /** The syncobj (its handle may be closed later). */
  obj: number;
  point: bigint;
  mode: 'signaled' | 'available';
  /** 'abort': aborted right after a few ms; 'timed': a short timeoutMs. Either may also resolve. */
  kind?: 'abort' | 'timed';
}

class Model {
  objs: Link[][] = [[], []];
  /** handle index → syncobj index; -1 once closed */
  handles: number[] = [0, 1];
  fences: boolean[] = [];
  syncFiles: Dep[] = [];
  waits: ModelWait[] = [];

  signalled(dep: Dep): boolean {
    if (dep.kind === 'cpu') return true;
    if (dep.kind === 'fence') return this.fences[dep.id]!;
    return this.level(dep.obj, dep.point) >= dep.point;
  }
  /** Signalled level of `obj`, looking at links up to `upTo` only (no cycles: a link only depends on lower ones). */
  level(obj: number, upTo = 1n << 64n): bigint {
    let level = 0n;
    for (const l of this.objs[obj]!) {
      if (l.point > upTo || !this.signalled(l.dep)) break;
      level = l.point;
    }
    return level;
  }
  last(obj: number): bigint {
    return this.objs[obj]!.at(-1)?.point ?? 0n;
  }
  /** The first link at or above p (p ≤ last). */
  linkAt(obj: number, p: bigint): bigint {
    return this.objs[obj]!.find((l) => l.point >= p)!.point;
  }
  holds(w: ModelWait): boolean {
    const obj = w.obj;
    return w.mode === 'available' ? w.point <= this.last(obj) : w.point <= this.level(obj);
  }
  openHandles(): number[] {
    return this.handles.flatMap((o, i) => (o >= 0 ? [i] : []));
  }
}

interface RealWait {
  promise: Promise<void>;
  state: 'pending' | 'resolved' | Error;
}

class Real {
  handles: Timeline[] = [];
  fences: VgemFence[] = [];
  syncFiles: SyncFile[] = [];
  waits: RealWait[] = [];
  constructor(
    readonly dev: Device,
    readonly vgem: VgemDevice,
  ) {
    this.handles = [dev.createTimeline(), dev.createTimeline()];
  }
  close(): void {
    for (const f of this.fences) f.signal();
    for (const s of this.syncFiles) s.close();
    for (const h of this.handles) h.close();
  }
}

const pick = <T,>(list: readonly T[], n: number): T => list[n % list.length]!;

/** After every command: no wait settled in a way the model forbids. */
function checkWaits(m: Model, r: Real): void {
  m.waits.forEach((w, i) => {
    const rw = r.waits[i]!;
    if (rw.state === 'pending') return;
    if (rw.state === 'resolved') {
      expect(m.holds(w), `wait #${i} (handle ${w.handle}, ${w.mode} ${w.point}) resolved before the model allows`).to.equal(true);
      return;
    }
    if (w.kind === 'abort' && (rw.state as Error).name === 'AbortError') return;
    if (w.kind === 'timed' && rw.state instanceof TimelineTimeoutError) return;
    expect(rw.state, `wait #${i} rejected`).to.be.instanceOf(ClosedError);
    expect(m.handles[w.handle], `wait #${i} rejected with ClosedError on an open handle`).to.equal(-1);
  });
}

type Cmd = fc.AsyncCommand<Model, Real>;

class Signal implements Cmd {
  constructor(readonly h: number, readonly delta: number) {}
  check = (m: Model) => m.openHandles().length > 0;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    const obj = m.handles[h]!;
    const p = m.last(obj) + BigInt(this.delta);
    r.handles[h]!.signal(p);
    m.objs[obj]!.push({ point: p, dep: { kind: 'cpu' } });
    checkWaits(m, r);
  }
  toString = () => `signal(h${this.h}, +${this.delta})`;
}

class ImportFence implements Cmd {
  constructor(readonly h: number, readonly delta: number) {}
  check = (m: Model) => m.openHandles().length > 0 && m.fences.length < 12;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    const obj = m.handles[h]!;
    const p = m.last(obj) + BigInt(this.delta);
    using buf = r.vgem.createBuffer({ width: 4, height: 4 });
    const fence = buf.attachFence({ write: true });
    using dmabuf = buf.exportDmaBuf();
    using sf = dmabuf.exportSyncFile();
    r.handles[h]!.importSyncFile(p, sf);
    r.fences.push(fence);
    m.fences.push(false);
    m.objs[obj]!.push({ point: p, dep: { kind: 'fence', id: m.fences.length - 1 } });
    checkWaits(m, r);
  }
  toString = () => `importVgemFence(h${this.h}, +${this.delta})`;
}

class SignalFence implements Cmd {
  constructor(readonly i: number) {}
  check = (m: Model) => m.fences.includes(false);
  async run(m: Model, r: Real): Promise<void> {
    const pending = m.fences.flatMap((s, i) => (s ? [] : [i]));
    const i = pick(pending, this.i);
    expect(r.fences[i]!.signal()).to.equal(true);
    m.fences[i] = true;
    checkWaits(m, r);
  }
  toString = () => `signalFence(${this.i})`;
}

class Transfer implements Cmd {
  constructor(readonly src: number, readonly at: number, readonly dst: number, readonly delta: number) {}
  check = (m: Model) => m.openHandles().some((h) => m.last(m.handles[h]!) > 0n);
  async run(m: Model, r: Real): Promise<void> {
    const srcs = m.openHandles().filter((h) => m.last(m.handles[h]!) > 0n);
    const s = pick(srcs, this.src);
    const d = pick(m.openHandles(), this.dst);
    const so = m.handles[s]!;
    const dobj = m.handles[d]!;
    const from = 1n + (BigInt(this.at) % m.last(so));
    const q = m.linkAt(so, from);
    const to = m.last(dobj) + BigInt(this.delta);
    r.handles[s]!.transfer(from, r.handles[d]!, to);
    m.objs[dobj]!.push({ point: to, dep: { kind: 'link', obj: so, point: q } });
    checkWaits(m, r);
  }
  toString = () => `transfer(h${this.src} @${this.at} → h${this.dst}, +${this.delta})`;
}

class ExportSyncFile implements Cmd {
  constructor(readonly h: number, readonly at: number) {}
  check = (m: Model) => m.syncFiles.length < 8 && m.openHandles().some((h) => m.last(m.handles[h]!) > 0n);
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles().filter((x) => m.last(m.handles[x]!) > 0n), this.h);
    const obj = m.handles[h]!;
    const p = 1n + (BigInt(this.at) % m.last(obj));
    const sf = await r.handles[h]!.exportSyncFile(p);
    r.syncFiles.push(sf);
    const dep: Dep = { kind: 'link', obj, point: m.linkAt(obj, p) };
    m.syncFiles.push(dep);
    expect(sf.isSignaled(), `exported sync_file of point ${p}`).to.equal(m.signalled(dep));
    checkWaits(m, r);
  }
  toString = () => `exportSyncFile(h${this.h} @${this.at})`;
}

class ImportSyncFile implements Cmd {
  constructor(readonly h: number, readonly i: number, readonly delta: number) {}
  check = (m: Model) => m.syncFiles.length > 0 && m.openHandles().length > 0;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    const i = this.i % m.syncFiles.length;
    const obj = m.handles[h]!;
    const p = m.last(obj) + BigInt(this.delta);
    r.handles[h]!.importSyncFile(p, r.syncFiles[i]!);
    m.objs[obj]!.push({ point: p, dep: m.syncFiles[i]! });
    checkWaits(m, r);
  }
  toString = () => `importSyncFile(h${this.h}, sf${this.i}, +${this.delta})`;
}

class Alias implements Cmd {
  constructor(readonly h: number) {}
  check = (m: Model) => m.handles.length < 6 && m.openHandles().length > 0;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    const fd = r.handles[h]!.exportFd();
    try {
      r.handles.push(r.dev.importTimeline(fd, { defaultTimeoutMs: Infinity }));
    } finally {
      closeSync(fd);
    }
    m.handles.push(m.handles[h]!);
    checkWaits(m, r);
  }
  toString = () => `exportFd+importTimeline(h${this.h})`;
}

class NewTimeline implements Cmd {
  check = (m: Model) => m.handles.length < 6;
  async run(m: Model, r: Real): Promise<void> {
    r.handles.push(r.dev.createTimeline());
    m.objs.push([]);
    m.handles.push(m.objs.length - 1);
  }
  toString = () => 'createTimeline()';
}

class Close implements Cmd {
  constructor(readonly h: number) {}
  check = (m: Model) => m.openHandles().length > 1;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    r.handles[h]!.close();
    m.handles[h] = -1;
    await new Promise((res) => setImmediate(res));
    checkWaits(m, r);
  }
  toString = () => `close(h${this.h})`;
}

class Query implements Cmd {
  constructor(readonly h: number, readonly at: number) {}
  check = (m: Model) => m.openHandles().length > 0;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    const obj = m.handles[h]!;
    const t = r.handles[h]!;
    const p = BigInt(this.at) % (m.last(obj) + 3n);
    expect(t.query(), 'query()').to.equal(m.level(obj));
    expect(t.query({ lastSubmitted: true }), 'query({ lastSubmitted })').to.equal(m.last(obj));
    expect(t.isSignaled(p), `isSignaled(${p})`).to.equal(p <= m.level(obj));
    expect(t.isAvailable(p), `isAvailable(${p})`).to.equal(p <= m.last(obj));
    checkWaits(m, r);
  }
  toString = () => `query(h${this.h} @${this.at})`;
}

class Wait implements Cmd {
  constructor(readonly h: number, readonly at: number, readonly available: boolean) {}
  check = (m: Model) => m.openHandles().length > 0 && m.waits.length < 16;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    const obj = m.handles[h]!;
    const p = 1n + (BigInt(this.at) % (m.last(obj) + 3n));
    const mode = this.available ? 'available' : 'signaled';
    const rw: RealWait = { promise: r.handles[h]!.wait(p, { until: mode }), state: 'pending' };
    rw.promise.then(
      () => (rw.state = 'resolved'),
      (e: Error) => (rw.state = e),
    );
    r.waits.push(rw);
    m.waits.push({ handle: h, obj, point: p, mode });
    checkWaits(m, r);
  }
  toString = () => `wait(h${this.h} @${this.at}${this.available ? ", until 'available'" : ''})`;
}

/** A wait that is given up: aborted after `ms`, or with timeoutMs `ms`. Leaves a registration behind. */
class GiveUpWait implements Cmd {
  constructor(readonly h: number, readonly at: number, readonly ms: number, readonly abort: boolean) {}
  check = (m: Model) => m.openHandles().length > 0 && m.waits.length < 16;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    const obj = m.handles[h]!;
    const p = 1n + (BigInt(this.at) % (m.last(obj) + 3n));
    const ac = new AbortController();
    const opts = this.abort ? { signal: ac.signal } : { timeoutMs: this.ms };
    const rw: RealWait = { promise: r.handles[h]!.wait(p, opts), state: 'pending' };
    rw.promise.then(
      () => (rw.state = 'resolved'),
      (e: Error) => (rw.state = e),
    );
    if (this.abort) setTimeout(() => ac.abort(), this.ms);
    r.waits.push(rw);
    m.waits.push({ handle: h, obj, point: p, mode: 'signaled', kind: this.abort ? 'abort' : 'timed' });
    checkWaits(m, r);
  }
  toString = () => `wait(h${this.h} @${this.at}, ${this.abort ? 'aborted after' : 'timeoutMs'} ${this.ms})`;
}

/** The event loop blocked (a synchronous spin): timers and eventfd wakes fall due together. */
class Busy implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const end = performance.now() + this.ms;
    while (performance.now() < end);
    await new Promise((res) => setImmediate(res));
    checkWaits(m, r);
  }
  toString = () => `busy(${this.ms} ms)`;
}

class WaitNow implements Cmd {
  constructor(readonly h: number, readonly at: number) {}
  check = (m: Model) => m.openHandles().length > 0;
  async run(m: Model, r: Real): Promise<void> {
    const h = pick(m.openHandles(), this.h);
    const obj = m.handles[h]!;
    const p = 1n + (BigInt(this.at) % (m.last(obj) + 3n));
    const expected = p <= m.level(obj);
    let got: boolean;
    try {
      await r.handles[h]!.wait(p, { timeoutMs: 0 });
      got = true;
    } catch (e) {
      expect(e).to.be.instanceOf(TimelineTimeoutError);
      got = false;
    }
    expect(got, `wait(${p}, { timeoutMs: 0 })`).to.equal(expected);
    checkWaits(m, r);
  }
  toString = () => `wait(h${this.h} @${this.at}, { timeoutMs: 0 })`;
}

const commands = [
  fc.tuple(fc.nat(7), fc.integer({ min: 1, max: 3 })).map(([h, d]) => new Signal(h, d)),
  fc.tuple(fc.nat(7), fc.integer({ min: 1, max: 3 })).map(([h, d]) => new ImportFence(h, d)),
  fc.nat(15).map((i) => new SignalFence(i)),
  fc.tuple(fc.nat(7), fc.nat(20), fc.nat(7), fc.integer({ min: 1, max: 3 })).map(([s, a, d, x]) => new Transfer(s, a, d, x)),
  fc.tuple(fc.nat(7), fc.nat(20)).map(([h, a]) => new ExportSyncFile(h, a)),
  fc.tuple(fc.nat(7), fc.nat(7), fc.integer({ min: 1, max: 3 })).map(([h, i, d]) => new ImportSyncFile(h, i, d)),
  fc.nat(7).map((h) => new Alias(h)),
  fc.constant(null).map(() => new NewTimeline()),
  fc.nat(7).map((h) => new Close(h)),
  fc.tuple(fc.nat(7), fc.nat(20)).map(([h, a]) => new Query(h, a)),
  fc.tuple(fc.nat(7), fc.nat(20), fc.boolean()).map(([h, a, av]) => new Wait(h, a, av)),
  fc.tuple(fc.nat(7), fc.nat(20)).map(([h, a]) => new WaitNow(h, a)),
  fc.tuple(fc.nat(7), fc.nat(20), fc.integer({ min: 0, max: 20 }), fc.boolean()).map(([h, a, ms, ab]) => new GiveUpWait(h, a, ms, ab)),
  fc.integer({ min: 100, max: 300 }).map((ms) => new Busy(ms)),
];

/** Resolves with the wait's state once it leaves 'pending', or 'pending' after `ms`. */
async function settle(rw: RealWait, ms: number): Promise<RealWait['state']> {
  const deadline = performance.now() + ms;
  while (rw.state === 'pending' && performance.now() < deadline) await new Promise((res) => setTimeout(res, 2));
  return rw.state;
}

describeWith(['timeline'], 'timeline model (kernel, fast-check)', function () {
  const runs = Number(process.env['EXPLICIT_SYNC_MODEL_RUNS'] ?? 100);
  const seed = Number(process.env['EXPLICIT_SYNC_MODEL_SEED'] ?? 0x5eed);
  this.timeout(Math.max(120000, runs * 10000));
  let dev: Device;
  let vgem: VgemDevice;
  before(() => {
    dev = openTimelineDevice();
    vgem = VgemDevice.open();
  });
  after(() => {
    vgem.close();
    dev.close();
  });

  it(`random command sequences agree with the model (${runs} runs, seed ${seed})`, async () => {
    const fdsBefore = openFds().length;
    const slabBefore = kmallocSmall();
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large' }), async (cmds) => {
        const m = new Model();
        const r = new Real(dev, vgem);
        try {
          await fc.asyncModelRun(() => ({ model: m, real: r }), cmds);
          steps += [...cmds].length;
          // Liveness: every wait the model says is satisfied resolves (eventfd wakeups included).
          for (let i = 0; i < m.waits.length; i++) {
            if (m.handles[m.waits[i]!.handle] === -1 || m.waits[i]!.kind !== undefined || !m.holds(m.waits[i]!)) continue;
            expect(await settle(r.waits[i]!, 5000), `wait #${i} (${m.waits[i]!.mode} ${m.waits[i]!.point}) should have resolved`).to.equal('resolved');
          }
          // Then every vgem fence signals: the model's levels rise, and so must the waits'.
          for (let i = 0; i < m.fences.length; i++) if (!m.fences[i]) (r.fences[i]!.signal(), (m.fences[i] = true));
          for (let i = 0; i < m.waits.length; i++) {
            if (m.handles[m.waits[i]!.handle] === -1 || m.waits[i]!.kind !== undefined || !m.holds(m.waits[i]!)) continue;
            expect(await settle(r.waits[i]!, 5000), `wait #${i} (${m.waits[i]!.mode} ${m.waits[i]!.point}) after every fence signalled`).to.equal('resolved');
          }
          checkWaits(m, r);
          for (const h of m.openHandles()) expect(r.handles[h]!.query()).to.equal(m.level(m.handles[h]!));
        } finally {
          r.close();
          await Promise.allSettled(r.waits.map((w) => w.promise));
        }
        m.waits.forEach((mw, i) => {
          const st = r.waits[i]!.state;
          if (mw.kind !== undefined && st instanceof Error && st.name !== 'ClosedError') return; // given up
          expect(st === 'resolved' || st instanceof ClosedError).to.equal(true);
        });
      }),
      { numRuns: runs, seed, verbose: 1 },
    );
    expect(openFds().length).to.equal(fdsBefore);
    // Every handle was destroyed: its registrations with it. Allow the kernel's own churn.
    const slabGrowth = kmallocSmall() - slabBefore;
    expect(slabGrowth, 'kmalloc-64/96 growth over the whole property').to.be.lessThan(2000);
    console.log(`      ${runs} runs, ${steps} commands; kmalloc-64/96 ${slabGrowth >= 0 ? '+' : ''}${slabGrowth}`);
  });

  it('point 0 is always reached, by every check and wait (the kernel alone reads 0 as "the newest fence")', async () => {
    using fresh = dev.createTimeline();
    using pending = dev.createTimeline();
    const { fence, syncFile } = (() => {
      const buf = vgem.createBuffer({ width: 4, height: 4 });
      const f = buf.attachFence({ write: true });
      const d = buf.exportDmaBuf();
      const sf = d.exportSyncFile();
      d.close();
      buf.close();
      return { fence: f, syncFile: sf };
    })();
    pending.signal(1);
    pending.importSyncFile(2, syncFile); // a newest fence that is not signalled
    syncFile.close();
    for (const t of [fresh, pending]) {
      expect(t.isSignaled(0)).to.equal(true);
      expect(t.isAvailable(0)).to.equal(true);
      t.waitSync(0, { timeoutMs: 100 });
      t.waitSync(0);
      await t.wait(0);
      await t.wait(0, { until: 'available', timeoutMs: 0 });
    }
    Timeline.waitAllSync([{ timeline: fresh, point: 0 }, { timeline: pending, point: 1 }]);
    expect(Timeline.waitAnySync([{ timeline: pending, point: 2 }, { timeline: fresh, point: 0 }])).to.equal(1);
    await Timeline.waitAll([{ timeline: fresh, point: 0 }, { timeline: pending, point: 0 }]);
    expect(pending.isSignaled(2)).to.equal(false);
    fence.signal();
  });
}, () => expectNoDeviceWith('timeline'));
