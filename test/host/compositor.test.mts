// The compositor kit's state machines without a kernel: ReleasePoint's users, payment and point
// order, and SurfaceSync's protocol checks and acquire gate, on a scripted stand-in Timeline that
// records what would reach the kernel.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import {
  AbortError,
  ClosedError,
  InvalidStateError,
  ReleasePoint,
  SurfaceCommit,
  SurfaceSync,
  SyncobjProtocolError,
  Timeline,
  TimelineTimeoutError,
} from 'explicit-sync';
import { shouldThrow, sleep } from '../helpers.mjs';

/** A Timeline stand-in: points are submitted/signalled by the test; signal()/importSyncFile() are logged. */
interface FakeTimeline extends Timeline {
  log: string[];
  submit(p: bigint): void;
  reach(p: bigint): void;
}

function fakeTimeline(): FakeTimeline {
  const t = Object.create(Timeline.prototype) as FakeTimeline;
  let submitted = 0n;
  let signaled = 0n;
  const waiters = new Set<() => void>();
  const poke = (): void => [...waiters].forEach((w) => w());
  const check = (p: bigint | number): bigint => {
    const b = BigInt(p);
    if (b <= submitted) throw new RangeError(`point ${b} <= last submitted ${submitted}`);
    return b;
  };
  const props: Record<string, unknown> = {
    log: [],
    submit(p: bigint) {
      submitted = p > submitted ? p : submitted;
      poke();
    },
    reach(p: bigint) {
      t.submit(p);
      signaled = p > signaled ? p : signaled;
      poke();
    },
    checkSignalPoint: check,
    signal(p: bigint) {
      check(p);
      t.log.push(`signal ${p}`);
      t.reach(p);
    },
    importSyncFile(p: bigint) {
      check(p);
      t.log.push(`import ${p}`);
      t.submit(p);
    },
    wait(p: bigint | number, o: { until?: string; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
      const point = BigInt(p);
      return new Promise((resolve, reject) => {
        const done = (): boolean => (o.until === 'available' ? submitted : signaled) >= point;
        if (done()) return resolve();
        const finish = (err?: Error): void => {
          waiters.delete(w);
          clearTimeout(timer);
          o.signal?.removeEventListener('abort', onAbort);
          if (err) reject(err);
          else resolve();
        };
        const w = (): void => void (done() && finish());
        const onAbort = (): void => finish(new AbortError());
        const reason = submitted >= point ? 'unsignaled' : 'unsubmitted';
        const timer = setTimeout(() => finish(new TimelineTimeoutError(point, submitted, signaled, reason, `ETIME ${point}`)), o.timeoutMs ?? 1e9);
        o.signal?.addEventListener('abort', onAbort);
        waiters.add(w);
      });
    },
  };
  for (const [k, v] of Object.entries(props)) Object.defineProperty(t, k, { value: v, writable: true });
  return t;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('ReleasePoint (host)', () => {
  it('is paid once, after the last hold, within the same turn', async () => {
    const t = fakeTimeline();
    const rp = new ReleasePoint(t, 1);
    const a = rp.hold();
    const b = rp.hold();
    a.release();
    a.release();
    await turn();
    expect(t.log).to.deep.equal([]);
    expect(rp.state).to.equal('pending');
    b.release();
    await Promise.resolve();
    expect(t.log).to.deep.equal(['signal 1']);
    expect(await rp.paid).to.deep.include({ via: 'cpu', abandoned: false });
    expect(rp.state).to.equal('paid');
    shouldThrow(() => rp.hold(), InvalidStateError);
  });

  it('close(): pays one without users now; after close users are refused (ClosedError)', async () => {
    const t = fakeTimeline();
    const rp = new ReleasePoint(t, 1n);
    expect(t.log).to.deep.equal([]);
    rp.close();
    expect(t.log).to.deep.equal(['signal 1']);
    shouldThrow(() => rp.hold(), InvalidStateError);
    const rp2 = new ReleasePoint(t, 2n);
    const h = rp2.hold();
    const warned = new Promise<Error & { code?: string }>((r) => process.once('warning', r));
    rp2.close();
    expect((await warned).code).to.equal('EXPLICIT_SYNC_RELEASE_PENDING');
    shouldThrow(() => rp2.hold(), ClosedError);
    expect(t.log).to.deep.equal(['signal 1']);
    h.release();
    await rp2.paid;
    expect(t.log).to.deep.equal(['signal 1', 'signal 2']);
  });

  it('points only grow: at or below one submitted or owed is a RangeError', () => {
    const t = fakeTimeline();
    t.reach(4n);
    shouldThrow(() => new ReleasePoint(t, 4), RangeError);
    using rp = new ReleasePoint(t, 6);
    shouldThrow(() => new ReleasePoint(t, 6), RangeError);
    shouldThrow(() => new ReleasePoint(t, 5), RangeError);
    expect(rp.point).to.equal(6n);
  });

  it('a later point whose users end first waits for the lower one, then both are paid in order', async () => {
    const t = fakeTimeline();
    const low = new ReleasePoint(t, 3);
    const high = new ReleasePoint(t, 5);
    const hl = low.hold();
    high.hold().release();
    await turn();
    expect(high.state).to.equal('due');
    expect(t.log).to.deep.equal([]);
    shouldThrow(() => high.hold(), InvalidStateError);
    hl.release();
    await Promise.resolve();
    expect(t.log).to.deep.equal(['signal 3', 'signal 5']);
  });

  it('abandon(): pays now, whatever holds remain; their release() is then a no-op', async () => {
    const t = fakeTimeline();
    const rp = new ReleasePoint(t, 1);
    const h = rp.hold();
    rp.abandon();
    expect(t.log).to.deep.equal(['signal 1']);
    expect((await rp.paid).abandoned).to.equal(true);
    expect(h.released).to.equal(true);
    h.release();
  });

  it('a compositor timeline point that never materialises is dropped as a user and reported', async () => {
    const t = fakeTimeline();
    const own = fakeTimeline();
    Object.defineProperty(own, 'exportSyncFile', {
      value: (p: bigint, o: { materializeTimeoutMs: number; signal: AbortSignal }) =>
        own.wait(p, { until: 'available', timeoutMs: o.materializeTimeoutMs, signal: o.signal }).then(() => {
          throw new Error('not reached');
        }),
    });
    const rp = new ReleasePoint(t, 1);
    rp.addTimelinePoint(own, 7, { materializeTimeoutMs: 20 });
    expect(rp.pending.points).to.equal(1);
    const out = await rp.paid;
    expect(out.via).to.equal('cpu');
    expect(out.dropped).to.have.length(1);
    expect(out.dropped[0]).to.be.instanceOf(TimelineTimeoutError);
  });
});

describe('ReleasePoint (host): the garbage-collector backstop', () => {
  it('a dropped hold is released and a dropped user-less ReleasePoint paid, each with a warning naming its site', () => {
    // In a child with --expose-gc: the root hooks here fail on EXPLICIT_SYNC_LEAK warnings.
    const script = `
      import { ReleasePoint, Timeline } from 'explicit-sync';
      const log = [];
      const t = Object.create(Timeline.prototype);
      for (const [k, v] of Object.entries({ checkSignalPoint: (p) => BigInt(p), signal: (p) => log.push('signal ' + p), importSyncFile: (p) => log.push('import ' + p) }))
        Object.defineProperty(t, k, { value: v });
      const warnings = [];
      process.on('warning', (w) => warnings.push(w.code + ' ' + w.message));
      (function makeAndDrop() { new ReleasePoint(t, 1); new ReleasePoint(t, 2).hold(); })();
      for (let i = 0; i < 10 && log.length < 2; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
      console.log(JSON.stringify({ log, warnings }));`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30000 });
    expect(r.status, r.stderr).to.equal(0);
    const { log, warnings } = JSON.parse(r.stdout) as { log: string[]; warnings: string[] };
    expect(log).to.deep.equal(['signal 1', 'signal 2']);
    expect(warnings).to.have.length(2);
    for (const w of warnings) expect(w).to.match(/^EXPLICIT_SYNC_LEAK .*makeAndDrop/);
  });
});

describe('SurfaceSync (host): protocol errors', () => {
  const buf = { name: 'dmabuf-backed wl_buffer' };
  function expectError(r: unknown, error: string, code: number): void {
    expect(r).to.be.instanceOf(SyncobjProtocolError);
    expect((r as SyncobjProtocolError).error).to.equal(error);
    expect((r as SyncobjProtocolError).code).to.equal(code);
    expect((r as SyncobjProtocolError).interface).to.equal('wp_linux_drm_syncobj_surface_v1');
  }
  const cases: [string, (s: SurfaceSync, a: Timeline, r: Timeline) => void, string, number][] = [
    ['acquire point without a buffer', (s, a) => s.setAcquirePoint(a, 1), 'no_buffer', 3],
    ['release point with a null buffer', (s, _a, r) => (s.attach(null), s.setReleasePoint(r, 1)), 'no_buffer', 3],
    ['buffer without an acquire point', (s, _a, r) => (s.attach(buf), s.setReleasePoint(r, 1)), 'no_acquire_point', 4],
    ['buffer without a release point', (s, a) => (s.attach(buf), s.setAcquirePoint(a, 1)), 'no_release_point', 5],
    ['buffer without any point (strictness protocol)', (s) => s.attach(buf), 'no_acquire_point', 4],
    ['acquire = release on one timeline', (s, a) => (s.attach(buf), s.setAcquirePoint(a, 2), s.setReleasePoint(a, 2)), 'conflicting_points', 6],
    ['acquire > release on one timeline', (s, a) => (s.attach(buf), s.setAcquirePoint(a, 3), s.setReleasePoint(a, 2)), 'conflicting_points', 6],
    ['a wl_shm buffer with points', (s, a, r) => (s.attach(buf, { explicitSync: false }), s.setAcquirePoint(a, 1), s.setReleasePoint(r, 1)), 'unsupported_buffer', 2],
  ];
  for (const [title, setup, error, code] of cases)
    it(`${title}: ${error} (${code})`, () => {
      const s = new SurfaceSync();
      setup(s, fakeTimeline(), fakeTimeline());
      const r = s.commit();
      expectError(r, error, code);
      expect(s.failed).to.equal(r);
      expect(s.commit()).to.equal(r); // failed: every later request gets the same error
      expect(s.setAcquirePoint(fakeTimeline(), 9)).to.equal(r);
    });

  it('lenient: a buffer without points is an implicit-sync commit; one point alone is still an error', async () => {
    const s = new SurfaceSync({ strictness: 'lenient' });
    s.attach(buf);
    const c = s.commit() as SurfaceCommit;
    expect(c).to.be.instanceOf(SurfaceCommit);
    expect(await c.ready).to.deep.equal({ status: 'ready' });
    expect(s.current).to.equal(c);
    s.attach(buf);
    s.setReleasePoint(fakeTimeline(), 1);
    expectError(s.commit(), 'no_acquire_point', 4);
  });

  it('a release point that goes back is unordered_point (posted as conflicting_points, 6)', () => {
    const s = new SurfaceSync();
    const a = fakeTimeline();
    const r = fakeTimeline();
    r.reach(5n);
    s.attach(buf);
    s.setAcquirePoint(a, 1);
    s.setReleasePoint(r, 5);
    expectError(s.commit(), 'unordered_point', 6);
    expect(r.log).to.deep.equal([]); // the timeline was not touched
  });

  it('set_*_point after the wl_surface is gone: no_surface (1); after destroy(): ClosedError', () => {
    const s = new SurfaceSync();
    s.destroySurface();
    const err = s.setAcquirePoint(fakeTimeline(), 1);
    expectError(err, 'no_surface', 1);
    const s2 = new SurfaceSync();
    s2.destroy();
    shouldThrow(() => s2.setReleasePoint(fakeTimeline(), 1), ClosedError);
  });

  it('destroy(): points set since the last commit are discarded; later commits are implicit', async () => {
    const s = new SurfaceSync();
    const a = fakeTimeline();
    s.attach(buf);
    s.setAcquirePoint(a, 1);
    s.destroy();
    const c = s.commit() as SurfaceCommit;
    expect(c.acquire).to.equal(null);
    expect(c.release).to.equal(null);
    expect(await c.ready).to.deep.equal({ status: 'ready' });
  });
});

describe('SurfaceSync (host): the acquire gate and release hand-over', () => {
  const bufA = { name: 'A' };
  const bufB = { name: 'B' };
  function frame(s: SurfaceSync, b: object, a: Timeline, r: Timeline, n: number): SurfaceCommit {
    s.attach(b);
    s.setAcquirePoint(a, n);
    s.setReleasePoint(r, n);
    const c = s.commit();
    if (!(c instanceof SurfaceCommit)) throw c;
    return c;
  }

  it('commits become ready in order; an unsubmitted one is reported and the queue goes on', async () => {
    const s = new SurfaceSync({ materializeTimeoutMs: 40 });
    const a = fakeTimeline();
    const r = fakeTimeline();
    const c1 = frame(s, bufA, a, r, 1);
    const c2 = frame(s, bufB, fakeTimeline(), r, 2); // its own acquire timeline: point 2 never submitted
    const c3 = frame(s, bufA, a, r, 3);
    a.reach(3n);
    const order: number[] = [];
    for (const c of [c3, c2, c1]) void c.ready.then(() => order.push(c.seq));
    expect(await c1.ready).to.deep.equal({ status: 'ready' });
    const o2 = await c2.ready;
    expect(o2.status).to.equal('unsubmitted');
    expect(await c3.ready).to.deep.equal({ status: 'ready' });
    expect(order).to.deep.equal([1, 2, 3]);
    // c1 was displaced by c3: release 1 paid; c2 was dropped: release 2 paid after 1; c3 is shown.
    await sleep(0);
    expect(r.log).to.deep.equal(['signal 1', 'signal 2']);
    expect(s.current).to.equal(c3);
    s.close();
    await c3.release!.paid;
    expect(r.log).to.deep.equal(['signal 1', 'signal 2', 'signal 3']);
  });

  it('the displaced buffer stays owed while the compositor holds it', async () => {
    const s = new SurfaceSync();
    const a = fakeTimeline();
    const r = fakeTimeline();
    a.reach(2n);
    const c1 = frame(s, bufA, a, r, 1);
    await c1.ready;
    const scanout = c1.release!.hold(); // the display still reads buffer A
    const c2 = frame(s, bufB, a, r, 2);
    await c2.ready;
    expect(c1.status).to.equal('displaced');
    await turn();
    expect(r.log).to.deep.equal([]);
    scanout.release();
    await c1.release!.paid;
    expect(r.log).to.deep.equal(['signal 1']);
    s.close();
    await c2.release!.paid;
  });

  it('surface destroyed with commits queued: they are discarded and every release point is paid', async () => {
    const s = new SurfaceSync({ materializeTimeoutMs: 60_000 });
    const a = fakeTimeline();
    const r = fakeTimeline();
    const cs = [1, 2, 3].map((n) => frame(s, n % 2 ? bufA : bufB, a, r, n));
    s.destroySurface();
    for (const c of cs) expect(await c.ready).to.deep.equal({ status: 'discarded' });
    await Promise.all(cs.map((c) => c.release!.paid));
    expect(r.log).to.deep.equal(['signal 1', 'signal 2', 'signal 3']);
  });
});
