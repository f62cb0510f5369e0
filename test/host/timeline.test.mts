// Timeline and the coalescing wait queue, without a kernel: argument validation happens before any
// ioctl (a stand-in Device fails the test if one is reached), error shapes, and the queue's logic
// on a real eventfd with a scripted syncobj.
import { expect } from 'chai';
import { kAdopt } from '../../dist/resource.js';
import { spawnSync } from 'node:child_process';
import { writeSync } from 'node:fs';
import {
  ClosedError,
  Device,
  ExplicitSyncError,
  InvalidArgTypeError,
  InvalidArgValueError,
  OutOfRangeError,
  Syncobj,
  Timeline,
  TimelineTimeoutError,
  TimeoutError,
  UnsupportedError,
  monotonicNow,
} from 'explicit-sync';
import { PointWaitQueue, type WaitMode } from '../../dist/syncobj-wait.js';
import { openFds, shouldReject, shouldThrow, sleep } from '../helpers.mjs';
import { fakeDevice, retire } from './syncobj-fakes.mjs';

const BAD_POINTS: [unknown, new (...a: never[]) => Error][] = [
  [-1, OutOfRangeError],
  [-1n, OutOfRangeError],
  [1.5, OutOfRangeError],
  [NaN, OutOfRangeError],
  [Infinity, OutOfRangeError],
  [2 ** 53, OutOfRangeError],
  [1n << 64n, OutOfRangeError],
  ['3', InvalidArgTypeError],
  [null, InvalidArgTypeError],
  [undefined, InvalidArgTypeError],
];

describe('Timeline (host: validation before any ioctl)', () => {
  let device: Device;
  let t: Timeline;
  let t2: Timeline;
  let s: Syncobj;
  beforeEach(() => {
    device = fakeDevice();
    t = Timeline[kAdopt](device, 7);
    t2 = Timeline[kAdopt](device, 8);
    s = Syncobj[kAdopt](device, 3);
  });
  afterEach(() => {
    retire(device);
    for (const o of [t, t2, s]) o.close();
  });

  for (const [bad, cls] of BAD_POINTS) {
    const label = typeof bad === 'bigint' ? `${bad}n` : String(bad);
    it(`rejects point ${label} with ${cls.name} in every method`, async () => {
      for (const call of [
        () => t.signal(bad as number),
        () => t.isSignaled(bad as number),
        () => t.isAvailable(bad as number),
        () => t.waitSync(bad as number),
        () => t.importSyncFile(bad as number),
        () => t.transfer(bad as number, t2, 1),
      ])
        shouldThrow(call, cls);
      await shouldReject(t.wait(bad as number), cls);
      await shouldReject(t.exportSyncFile(bad as number), cls);
    });
  }

  it('accepts 2^64 - 1 as a bigint point (validation passes, then the ioctl is reached)', () => {
    const e = shouldThrow(() => t.isSignaled((1n << 64n) - 1n), Error);
    expect(e.message).to.contain('an ioctl was reached (DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT)');
  });

  it('refuses point 0 where a fence would be put (signal, import, export, transfer target)', async () => {
    const e = shouldThrow(() => t.signal(0), OutOfRangeError);
    expect(e.code).to.equal('ERR_OUT_OF_RANGE');
    shouldThrow(() => t.importSyncFile(0n), OutOfRangeError);
    await shouldReject(t.exportSyncFile(0), OutOfRangeError);
    shouldThrow(() => t.transfer(1, t2, 0), OutOfRangeError);
  });

  it('validates wait options before any ioctl', async () => {
    await shouldReject(t.wait(1, { timeoutMs: -1 }), OutOfRangeError);
    await shouldReject(t.wait(1, { timeoutMs: NaN }), OutOfRangeError);
    await shouldReject(t.wait(1, { timeoutMs: '5' as unknown as number }), InvalidArgTypeError);
    await shouldReject(t.wait(1, { deadline: 5 as unknown as bigint }), InvalidArgTypeError);
    await shouldReject(t.wait(1, { deadline: -1n }), OutOfRangeError);
    await shouldReject(t.wait(1, { deadline: 1n, timeoutMs: 1 }), InvalidArgValueError);
    await shouldReject(t.wait(1, { until: 'done' as WaitMode }), InvalidArgValueError);
    await shouldReject(t.wait(1, { signal: {} as AbortSignal }), InvalidArgTypeError);
    await shouldReject(t.wait(1, { ref: 1 as unknown as boolean }), InvalidArgTypeError);
    await shouldReject(t.wait(1, { fenceDeadline: 3 as unknown as bigint }), InvalidArgTypeError);
    await shouldReject(t.wait(1, null as unknown as undefined), InvalidArgTypeError);
    shouldThrow(() => t.waitSync(1, { timeoutMs: -5 }), OutOfRangeError);
    shouldThrow(() => t.query({ lastSubmitted: 'yes' as unknown as boolean }), InvalidArgTypeError);
  });

  it('validates exportSyncFile / importSyncFile / transfer arguments before any ioctl', async () => {
    await shouldReject(t.exportSyncFile(1, { materializeTimeoutMs: -1 }), OutOfRangeError);
    await shouldReject(t.exportSyncFile(1, { signal: 'x' as unknown as AbortSignal }), InvalidArgTypeError);
    shouldThrow(() => t.importSyncFile(1), InvalidArgValueError);
    shouldThrow(() => t.importSyncFile(1, 5 as never), InvalidArgTypeError);
    shouldThrow(() => t.transfer(1, {} as Timeline, 2), InvalidArgTypeError);
    shouldThrow(() => t.transfer(1, s, 2), InvalidArgValueError);
    const other = Timeline[kAdopt](fakeDevice(), 4);
    shouldThrow(() => t.transfer(1, other, 2), InvalidArgValueError);
    retire(other.device);
    other.close();
  });

  it('validates waitAll / waitAny entries', async () => {
    await shouldReject(Timeline.waitAll([]), InvalidArgValueError);
    await shouldReject(Timeline.waitAny('x' as never), InvalidArgTypeError);
    await shouldReject(Timeline.waitAll([{ timeline: {} as Timeline, point: 1 }]), InvalidArgTypeError);
    await shouldReject(Timeline.waitAny([{ timeline: t, point: -1 }]), OutOfRangeError);
    shouldThrow(() => Timeline.waitAllSync([{ timeline: t, point: 1.5 }]), OutOfRangeError);
  });

  it('close() is idempotent; afterwards every method throws ClosedError (EBADF) and handle is 0', async () => {
    retire(device);
    t.close();
    t.close();
    expect(t.handle).to.equal(0);
    expect(t.closed).to.equal(true);
    const e = shouldThrow(() => t.query(), ClosedError);
    expect(e.code).to.equal('EBADF');
    expect(e).to.be.instanceOf(ExplicitSyncError);
    shouldThrow(() => t.signal(1), ClosedError);
    shouldThrow(() => t.exportFd(), ClosedError);
    await shouldReject(t.wait(1), ClosedError);
    await shouldReject(t.exportSyncFile(1), ClosedError);
  });

  it('`using` closes it', () => {
    let h: Timeline;
    {
      using inner = Timeline[kAdopt](device, 11);
      h = inner;
      retire(device);
    }
    expect(h.handle).to.equal(0);
  });
});

describe('Device syncobj methods (host)', () => {
  it('createTimeline() on a device without DRM_CAP_SYNCOBJ_TIMELINE throws UnsupportedError naming it', () => {
    const d = fakeDevice({ syncobj: true, timeline: false });
    const e = shouldThrow(() => d.createTimeline(), UnsupportedError);
    expect(e.code).to.equal('EOPNOTSUPP');
    expect(e.syscall).to.equal('ioctl');
    expect(e.ioctl).to.equal('DRM_IOCTL_SYNCOBJ_CREATE');
    expect(e.feature).to.contain('DRM_CAP_SYNCOBJ_TIMELINE');
    shouldThrow(() => d.importTimeline(5), UnsupportedError);
  });
  it('createSyncobj() on a device without DRM_CAP_SYNCOBJ throws UnsupportedError naming it', () => {
    const d = fakeDevice({ syncobj: false, timeline: false });
    const e = shouldThrow(() => d.createSyncobj(), UnsupportedError);
    expect(e.feature).to.contain('DRM_CAP_SYNCOBJ');
  });
  it('validates createSyncobj() options and import fds before any ioctl', () => {
    const d = fakeDevice();
    shouldThrow(() => d.createSyncobj({ signaled: 1 as unknown as boolean }), InvalidArgTypeError);
    shouldThrow(() => d.createSyncobj('x' as never), InvalidArgTypeError);
    shouldThrow(() => d.importTimeline(-1), OutOfRangeError);
    shouldThrow(() => d.importSyncobj(1.5), OutOfRangeError);
  });
});

describe('TimelineTimeoutError', () => {
  it('is a TimeoutError with code ETIME, the ioctl, the reason and where the timeline stood', () => {
    const e = new TimelineTimeoutError(42n, 41n, 40n, 'unsubmitted', 'ETIME: x');
    expect(e).to.be.instanceOf(TimeoutError);
    expect(e).to.be.instanceOf(ExplicitSyncError);
    expect(e.name).to.equal('TimelineTimeoutError');
    expect(e.code).to.equal('ETIME');
    expect(e.errno).to.equal(-62);
    expect(e.syscall).to.equal('ioctl');
    expect(e.ioctl).to.equal('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    expect(e.reason).to.equal('unsubmitted');
    expect([e.point, e.lastSubmitted, e.lastSignaled]).to.deep.equal([42n, 41n, 40n]);
  });
});

describe('monotonicNow()', () => {
  it('is CLOCK_MONOTONIC in ns: the same clock as process.hrtime.bigint()', () => {
    const a = process.hrtime.bigint();
    const m = monotonicNow();
    const b = process.hrtime.bigint();
    expect(typeof m).to.equal('bigint');
    expect(m >= a - 1_000_000n && m <= b + 1_000_000n, `${a} <= ${m} <= ${b}`).to.equal(true);
  });
});

/** A scripted syncobj: `level` is set by the test, registrations are recorded, wakeups are writes. */
class Script {
  levels: Record<WaitMode, bigint> = { signaled: 0n, available: 0n };
  armed: { fd: number; point: bigint; mode: WaitMode }[] = [];
  source = {
    level: (mode: WaitMode) => this.levels[mode],
    arm: (fd: number, point: bigint, mode: WaitMode) => {
      this.armed.push({ fd, point, mode });
      if (point <= this.levels[mode]) this.#poke(fd); // the kernel fires at once when reached
    },
    timeoutError: (point: bigint, mode: WaitMode, ms: number) =>
      new TimeoutError('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT', { reason: 'unsubmitted', message: `ETIME: ${point} ${mode} ${ms}` }),
  };
  /** Advances `mode` to `level` and fires every registration that it reaches, as the kernel does. */
  advance(mode: WaitMode, level: bigint): void {
    this.levels[mode] = level;
    const fire = this.armed.filter((a) => a.mode === mode && a.point <= level);
    this.armed = this.armed.filter((a) => !fire.includes(a));
    for (const a of fire) this.#poke(a.fd);
  }
  #poke(fd: number): void {
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    try {
      writeSync(fd, one);
    } catch {
      // the lane went idle and closed its eventfd: a dropped registration
    }
  }
}

function eventfds(): number {
  return openFds().filter((f) => f.includes('anon_inode:[eventfd]')).length;
}

describe('PointWaitQueue (host, scripted syncobj)', () => {
  it('N waits on one syncobj share one eventfd, resolve in point order, one registration per new lowest point', async () => {
    const s = new Script();
    const q = new PointWaitQueue(s.source, 'eventfd');
    const before = eventfds();
    const order: number[] = [];
    const points = Array.from({ length: 2000 }, (_, i) => (i * 7919) % 2000 + 1); // 1..2000, shuffled
    const waits = points.map((p) => q.wait(BigInt(p), 'signaled', { timeoutMs: undefined, signal: undefined, ref: true }).then(() => order.push(p)));
    expect(q.pending).to.equal(2000);
    expect(eventfds() - before).to.equal(1);
    expect(q.openFds).to.equal(1);
    // Registrations only for a new lowest pending point, never one per wait.
    expect(s.armed.length).to.be.lessThan(20);
    for (let level = 250n; level <= 2000n; level += 250n) {
      s.advance('signaled', level);
      // The eventfd wakes the loop when it wakes it: on a slow machine (the emulated arm64 guest)
      // 5 ms were not enough. Wait for the level's waits, generously bounded; none beyond it.
      for (const until = Date.now() + 60_000; order.length < Number(level) && Date.now() < until; ) await sleep(5);
      expect(order.length).to.equal(Number(level));
      expect(eventfds() - before).to.be.at.most(1);
    }
    await Promise.all(waits);
    expect(order).to.deep.equal([...order].sort((a, b) => a - b));
    expect(q.pending).to.equal(0);
    expect(eventfds()).to.equal(before + 1); // idle: the lane stays, armed, for the next wait
    q.close();
    expect(eventfds()).to.equal(before);
  });

  it("uses a second eventfd only for the other mode ('available')", async () => {
    const s = new Script();
    const q = new PointWaitQueue(s.source, 'eventfd');
    const before = eventfds();
    const a = q.wait(5n, 'available', { timeoutMs: undefined, signal: undefined, ref: true });
    const b = q.wait(5n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: true });
    const c = q.wait(6n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: true });
    expect(eventfds() - before).to.equal(2);
    s.advance('available', 6n);
    await a;
    expect(q.pending).to.equal(2);
    s.advance('signaled', 6n);
    await Promise.all([b, c]);
    expect(eventfds()).to.equal(before + 2);
    q.close();
    expect(eventfds()).to.equal(before);
  });

  it('resolves at once, with no fd, when the point is already reached', async () => {
    const s = new Script();
    s.levels.signaled = 10n;
    const q = new PointWaitQueue(s.source, 'eventfd');
    await q.wait(10n, 'signaled', { timeoutMs: 0, signal: undefined, ref: true });
    expect(s.armed).to.deep.equal([]);
    expect(q.openFds).to.equal(0);
  });

  it('a timeout rejects no earlier than the timeout, with the source error; close() frees the kept fd', async () => {
    const s = new Script();
    const q = new PointWaitQueue(s.source, 'eventfd');
    const before = eventfds();
    const t0 = monotonicNow();
    const e = await shouldReject(q.wait(3n, 'signaled', { timeoutMs: 120, signal: undefined, ref: true }), TimeoutError);
    const ms = Number(monotonicNow() - t0) / 1e6;
    expect(ms).to.be.at.least(120);
    expect(ms).to.be.below(2000);
    expect(e.message).to.equal('ETIME: 3 signaled 120');
    expect(e.stack).to.contain('timeline.test');
    // Persistent waiter: the eventfd stays while its registration (never fired) lives; close() frees it.
    expect(eventfds()).to.equal(before + 1);
    expect(q.registrations).to.equal(1);
    q.close();
    expect(eventfds()).to.equal(before);
  });

  it('a wait reached between registration and timeout resolves on the last look instead of timing out', async () => {
    const s = new Script();
    const q = new PointWaitQueue(s.source, 'poll');
    const p = q.wait(3n, 'signaled', { timeoutMs: 50, signal: undefined, ref: true });
    s.levels.signaled = 3n; // no wakeup delivered; the poll or the last look finds it
    await p;
  });

  it('timeoutMs 0 rejects at once when not reached', async () => {
    const s = new Script();
    const q = new PointWaitQueue(s.source, 'eventfd');
    await shouldReject(q.wait(3n, 'available', { timeoutMs: 0, signal: undefined, ref: true }), TimeoutError);
    expect(q.openFds).to.equal(0);
  });

  it('abort rejects with AbortError (cause = reason) and keeps the other waits', async () => {
    const s = new Script();
    const q = new PointWaitQueue(s.source, 'eventfd');
    const ac = new AbortController();
    const p = q.wait(4n, 'signaled', { timeoutMs: undefined, signal: ac.signal, ref: true });
    const other = q.wait(4n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: true });
    ac.abort('stop');
    const e = await shouldReject(p, Error);
    expect(e.name).to.equal('AbortError');
    expect((e as Error & { code: string }).code).to.equal('ABORT_ERR');
    expect(e.cause).to.equal('stop');
    expect(q.pending).to.equal(1);
    s.advance('signaled', 4n);
    await other;
    const pre = new AbortController();
    pre.abort();
    await shouldReject(q.wait(9n, 'signaled', { timeoutMs: undefined, signal: pre.signal, ref: true }), Error);
    q.close();
  });

  it('close() rejects pending waits with ClosedError and frees the eventfds', async () => {
    const s = new Script();
    const q = new PointWaitQueue(s.source, 'eventfd');
    const before = eventfds();
    const waits = [1n, 2n, 3n].map((p) => q.wait(p, p === 2n ? 'available' : 'signaled', { timeoutMs: undefined, signal: undefined, ref: true }));
    expect(eventfds() - before).to.equal(2);
    q.close('Timeline');
    for (const w of waits) await shouldReject(w, ClosedError);
    expect(eventfds()).to.equal(before);
    await shouldReject(q.wait(1n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: true }), ClosedError);
  });

  it("mechanism 'poll' resolves without any eventfd, backing off", async () => {
    const s = new Script();
    const q = new PointWaitQueue(s.source, 'poll');
    const before = eventfds();
    const p = Promise.all([q.wait(2n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: true }), q.wait(1n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: true })]);
    expect(eventfds()).to.equal(before);
    await sleep(60);
    s.levels.signaled = 2n;
    await p;
    expect(s.armed).to.deep.equal([]);
  });

  it('onActive tracks whether any wait is pending (the device close hook)', async () => {
    const s = new Script();
    const seen: boolean[] = [];
    const q = new PointWaitQueue(s.source, 'eventfd', (a) => seen.push(a));
    const p = q.wait(1n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: true });
    const p2 = q.wait(2n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: true });
    s.advance('signaled', 2n);
    await Promise.all([p, p2]);
    expect(seen).to.deep.equal([true, false]);
    q.close();
  });

  it('an idle lane roots nothing: a dropped queue is collected and its lane closes its eventfd; a pending one is kept', function () {
    this.timeout(30000);
    // A child with --expose-gc. The lane stays armed while idle, yet its callback (which reaches
    // the queue and so the syncobj's owner) must not keep the queue alive.
    const script = `
      const { readdirSync, readlinkSync, writeSync } = require('node:fs');
      const { PointWaitQueue } = require(${JSON.stringify(new URL('../../dist/syncobj-wait.js', import.meta.url).pathname)});
      const eventfds = () => readdirSync('/proc/self/fd').filter((f) => { try { return readlinkSync('/proc/self/fd/' + f).includes('[eventfd]'); } catch { return false; } }).length;
      const one = Buffer.alloc(8); one.writeBigUInt64LE(1n);
      const opts = { timeoutMs: undefined, signal: undefined, ref: true };
      const collected = [];
      const registry = new FinalizationRegistry((name) => collected.push(name));
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      (async () => {
        const base = eventfds();
        let pending;
        await (async () => {
          let level = 0n;
          let fd = -1;
          const idle = new PointWaitQueue({ level: () => level, arm: (f) => { fd = f; }, timeoutError: () => new Error('t') }, 'eventfd');
          const p = idle.wait(1n, 'signaled', opts);
          level = 1n;
          writeSync(fd, one);
          await p;
          registry.register(idle, 'idle');
          let fd2 = -1;
          const busy = new PointWaitQueue({ level: () => 0n, arm: (f) => { fd2 = f; }, timeoutError: () => new Error('t') }, 'eventfd');
          pending = busy.wait(1n, 'signaled', { ...opts, ref: false });
          registry.register(busy, 'busy');
        })();
        const during = eventfds() - base;
        for (let i = 0; i < 20 && collected.length < 1; i++) { globalThis.gc(); await sleep(20); }
        await sleep(50);
        console.log(JSON.stringify({ during, collected, after: eventfds() - base, pendingKept: !collected.includes('busy') }));
        process.exit(0);
      })();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 20000 });
    expect(r.status, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { during: number; collected: string[]; after: number; pendingKept: boolean };
    expect(out.during).to.equal(2);
    expect(out.collected).to.deep.equal(['idle']);
    expect(out.after).to.equal(1); // the pending queue's lane only
    expect(out.pendingKept).to.equal(true);
  });

  it('a pending ref:false wait lets the process exit; a ref:true one keeps it alive', function () {
    this.timeout(30000);
    const script = (ref: boolean) => `
      const { PointWaitQueue } = require(${JSON.stringify(new URL('../../dist/syncobj-wait.js', import.meta.url).pathname)});
      const q = new PointWaitQueue({ level: () => 0n, arm: () => {}, timeoutError: () => new Error('t') }, 'eventfd');
      q.wait(5n, 'signaled', { timeoutMs: undefined, signal: undefined, ref: ${ref} });
      setTimeout(() => process.exit(3), 1500).unref();`;
    const off = spawnSync(process.execPath, ['-e', script(false)], { timeout: 20000 });
    expect(off.status).to.equal(0);
    const on = spawnSync(process.execPath, ['-e', script(true)], { timeout: 20000 });
    expect(on.status).to.equal(3);
  });
});
