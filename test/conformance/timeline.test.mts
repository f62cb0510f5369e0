// Conformance: timeline syncobjs on the device under test (any driver with
// DRM_CAP_SYNCOBJ_TIMELINE), signalled from the CPU; with vgem present, also a point that follows
// another driver's unsignalled fence.
import { expect } from 'chai';
import { closeSync } from 'node:fs';
import {
  AbortError,
  ClosedError,
  Device,
  ExplicitSyncError,
  Timeline,
  TimelineTimeoutError,
  UnsupportedError,
  VgemDevice,
  monotonicNow,
} from 'explicit-sync';
import { setWaitMechanism } from '../../dist/syncobj-core.js';
import { settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';
import { describeNeeding, openDeviceFor, openVgemFor } from '../device-under-test.mjs';

const since = (t0: bigint): number => Number(monotonicNow() - t0) / 1e6;

describeNeeding('timeline', 'Conformance: Timeline on the device under test', () => {
  let dev: Device;
  before(function () {
    dev = openDeviceFor(this, 'timeline');
    console.log(`      device: ${dev.path} (${dev.driver.name}), features ${JSON.stringify(dev.features)}`);
  });
  after(() => dev?.close());

  it('signal() moves the signalled and the submitted point; query() reads them', () => {
    using t = dev.createTimeline();
    expect([t.query(), t.query({ lastSubmitted: true })]).to.deep.equal([0n, 0n]);
    t.signal(5);
    expect([t.query(), t.query({ lastSubmitted: true })]).to.deep.equal([5n, 5n]);
    expect([t.isSignaled(5), t.isSignaled(6), t.isAvailable(6)]).to.deep.equal([true, false, false]);
    t.signal(2n ** 64n - 1n);
    expect(t.query()).to.equal(2n ** 64n - 1n);
  });

  for (const mechanism of ['eventfd', 'poll'] as const) {
    describe(`async waits (${mechanism})`, () => {
      let d: Device;
      before(function () {
        d = Device.open(dev.path);
        if (mechanism === 'eventfd' && !d.features.eventfd) {
          d.close();
          console.log(`      skipped: ${dev.path} has no DRM_IOCTL_SYNCOBJ_EVENTFD (Linux < 6.6); waits use 'poll'`);
          this.skip();
        }
        setWaitMechanism(d, mechanism);
      });
      after(() => {
        if (d !== undefined && !d.closed) {
          setWaitMechanism(d, undefined);
          d.close();
        }
      });

      it('resolve when the point is signalled later, in point order', async () => {
        using t = d.createTimeline();
        const order: number[] = [];
        const waits = [3, 1, 2].map((p) => t.wait(p, { timeoutMs: 20_000 }).then(() => order.push(p)));
        expect(await settlesWithin(waits[1]!, 50)).to.equal(false);
        setTimeout(() => t.signal(1), 5);
        setTimeout(() => t.signal(3), 30);
        await Promise.all(waits);
        expect(order).to.deep.equal([1, 2, 3]);
      });

      it("'available' resolves once the point is submitted", async () => {
        using t = d.createTimeline();
        const p = t.wait(1, { until: 'available', timeoutMs: 20_000 });
        setTimeout(() => t.signal(1), 10);
        await p;
      });

      it("an unsubmitted point times out with reason 'unsubmitted', never early", async () => {
        using t = d.createTimeline();
        t.signal(1);
        const t0 = monotonicNow();
        const e = await shouldReject(t.wait(7, { timeoutMs: 150 }), TimelineTimeoutError);
        expect(since(t0)).to.be.at.least(149);
        expect([e.code, e.reason, e.point, e.lastSignaled]).to.deep.equal(['ETIME', 'unsubmitted', 7n, 1n]);
      });

      it('aborts with AbortError; closing rejects with ClosedError', async () => {
        const t = d.createTimeline();
        const ac = new AbortController();
        const a = t.wait(1, { signal: ac.signal });
        const b = t.wait(2);
        ac.abort('stop');
        const e = await shouldReject(a, AbortError);
        expect(e.cause).to.equal('stop');
        t.close();
        await shouldReject(b, ClosedError);
      });
    });
  }

  it('waitSync() returns for a reached point and throws TimelineTimeoutError otherwise', () => {
    using t = dev.createTimeline();
    t.signal(2);
    t.waitSync(2);
    const e = shouldThrow(() => t.waitSync(3, { timeoutMs: 50 }), TimelineTimeoutError);
    expect(e.reason).to.equal('unsubmitted');
  });

  it('takes an absolute CLOCK_MONOTONIC deadline', async () => {
    using t = dev.createTimeline();
    const t0 = monotonicNow();
    await shouldReject(t.wait(1, { deadline: t0 + 100_000_000n }), TimelineTimeoutError);
    expect(since(t0)).to.be.at.least(99);
  });

  it('fenceDeadline works where features.waitDeadline, else is an UnsupportedError', async () => {
    using t = dev.createTimeline();
    t.signal(1);
    const fenceDeadline = monotonicNow() + 1_000_000n;
    if (dev.features.waitDeadline) {
      await t.wait(1, { fenceDeadline, timeoutMs: 20_000 });
      t.waitSync(1, { fenceDeadline });
    } else {
      await shouldReject(t.wait(1, { fenceDeadline }), UnsupportedError);
    }
  });

  it('transfer() moves a point to another timeline and into a binary syncobj', () => {
    using a = dev.createTimeline();
    using b = dev.createTimeline();
    using s = dev.createSyncobj();
    a.signal(3);
    a.transfer(3, b, 10);
    expect(b.query()).to.equal(10n);
    a.transfer(3, s);
    expect(s.isSignaled()).to.equal(true);
    const e = shouldThrow(() => a.transfer(4, b, 11), ExplicitSyncError);
    expect(e.code).to.equal('EINVAL');
  });

  it('exports a point as a sync_file and imports one at a later point', async () => {
    using t = dev.createTimeline();
    t.signal(1);
    using sf = await t.exportSyncFile(1);
    expect(sf.isSignaled()).to.equal(true);
    t.importSyncFile(4, sf);
    expect(t.query()).to.equal(4n);
    const e = await shouldReject(t.exportSyncFile(9), TimelineTimeoutError);
    expect(e.reason).to.equal('unsubmitted');
    const later = t.exportSyncFile(5, { materializeTimeoutMs: 20_000 });
    setTimeout(() => t.signal(5), 10);
    (await later).close();
  });

  it('shares the timeline through an opaque fd (exportFd / importTimeline)', async () => {
    using a = dev.createTimeline();
    const fd = a.exportFd();
    using d2 = Device.open(dev.path);
    try {
      using b = d2.importTimeline(fd);
      const p = b.wait(2, { timeoutMs: 20_000 });
      a.signal(2);
      await p;
      expect(b.query()).to.equal(2n);
    } finally {
      closeSync(fd);
    }
  });

  it('waitAny() / waitAll()', async () => {
    using a = dev.createTimeline();
    using b = dev.createTimeline();
    const any = Timeline.waitAny([{ timeline: a, point: 1 }, { timeline: b, point: 1 }], { timeoutMs: 20_000 });
    const all = Timeline.waitAll([{ timeline: a, point: 1 }, { timeline: b, point: 2 }], { timeoutMs: 20_000 });
    setTimeout(() => b.signal(2), 10);
    expect(await any).to.equal(1);
    expect(await settlesWithin(all, 50)).to.equal(false);
    a.signal(1);
    await all;
  });

  describe("with another driver's unsignalled fence (vgem)", () => {
    let vgem: VgemDevice;
    before(function () {
      vgem = openVgemFor(this);
    });
    after(() => vgem?.close());

    it('a point imported from a vgem sync_file is available at once and signals when vgem does', async () => {
      using buf = vgem.createBuffer({ width: 4, height: 4 });
      const fence = buf.attachFence({ write: true });
      try {
        using dmabuf = buf.exportDmaBuf();
        using sf = dmabuf.exportSyncFile('readwrite');
        using t = dev.createTimeline();
        t.importSyncFile(1, sf);
        expect(t.isAvailable(1)).to.equal(true);
        const p = t.wait(1, { timeoutMs: 20_000 });
        expect(await settlesWithin(p, 100)).to.equal(false);
        const e = await shouldReject(t.wait(1, { timeoutMs: 50 }), TimelineTimeoutError);
        expect(e.reason).to.equal('unsignaled');
        using out = await t.exportSyncFile(1);
        expect(out.isSignaled()).to.equal(false);
        fence.signal();
        await p;
        await out.wait({ timeoutMs: 20_000 });
      } finally {
        fence.signal();
      }
    });
  });
});
