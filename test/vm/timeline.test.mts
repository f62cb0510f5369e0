// Timelines against the real kernel: virtio_gpu's syncobjs, with vgem for real unsignalled fences.
import { expect } from 'chai';
import { closeSync, openSync } from 'node:fs';
import {
  AbortError,
  ClosedError,
  Device,
  ExplicitSyncError,
  InvalidArgValueError,
  OutOfRangeError,
  SyncFile,
  Syncobj,
  Timeline,
  TimelineTimeoutError,
  UnsupportedError,
  VgemDevice,
  monotonicNow,
} from 'explicit-sync';
import { setWaitMechanism } from '../../dist/syncobj-core.js';
import { kDeviceFd } from '../../dist/device.js';
import { nativeFamily } from '../../dist/native.js';
import { openFds, settlesWithin, shouldReject, shouldThrow, sleep } from '../helpers.mjs';
import { eventfdCount, openTimelineDevice, since, vgemFence } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

describeWith(['timeline'], 'Timeline (kernel)', () => {
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

  describe('device.features', () => {
    it('probes eventfd, WAIT_DEADLINE and point ↔ sync_file support (cached per device)', () => {
      const f = dev.features;
      expect(f.syncobj).to.equal(true);
      expect(f.timeline).to.equal(true);
      // Linux 6.12 in the VM: SYNCOBJ_EVENTFD (6.6) and WAIT_DEADLINE (6.8) exist.
      expect(f.eventfd).to.equal(true);
      expect(f.waitDeadline).to.equal(true);
      expect(f.timelineSyncFile).to.be.a('boolean');
      expect(f.waitMechanism).to.equal('eventfd');
      expect(dev.features).to.equal(f);
      console.log(`      features: ${JSON.stringify(f)}`);
    });
  });

  describe('signal() / query() / isSignaled()', () => {
    it('a new timeline is at 0; signal moves both the signalled and the submitted point', () => {
      using t = dev.createTimeline();
      expect(t.handle).to.be.greaterThan(0);
      expect(t.query()).to.equal(0n);
      expect(t.query({ lastSubmitted: true })).to.equal(0n);
      t.signal(1);
      t.signal(5n);
      expect(t.query()).to.equal(5n);
      expect(t.query({ lastSubmitted: true })).to.equal(5n);
      expect(t.isSignaled(3)).to.equal(true);
      expect(t.isSignaled(5n)).to.equal(true);
      expect(t.isSignaled(6)).to.equal(false);
      expect(t.isAvailable(6)).to.equal(false);
    });

    it('u64 points round-trip as bigints up to 2^64 - 1', () => {
      using t = dev.createTimeline();
      const max = (1n << 64n) - 1n;
      t.signal(max);
      expect(t.query()).to.equal(max);
      expect(t.isSignaled(max)).to.equal(true);
    });

    it('bad points throw RangeError before any ioctl', () => {
      using t = dev.createTimeline();
      for (const bad of [-1, 1.5, Number.NaN, 1n << 64n]) shouldThrow(() => t.signal(bad as number), OutOfRangeError);
      expect(t.query()).to.equal(0n);
    });
  });

  describe('wait()', () => {
    it('resolves at once for a signalled point, with no eventfd', async () => {
      using t = dev.createTimeline();
      t.signal(2);
      const before = eventfdCount();
      await t.wait(2);
      await t.wait(1, { until: 'available' });
      expect(eventfdCount()).to.equal(before);
    });

    it('resolves when the point is signalled later (from a timer), not before', async () => {
      using t = dev.createTimeline();
      const p = t.wait(3);
      expect(await settlesWithin(p, 100)).to.equal(false);
      setTimeout(() => t.signal(3), 50);
      await p;
      expect(t.query()).to.equal(3n);
    });

    it("'available' resolves once a fence is there, 'signaled' once it signalled (vgem)", async () => {
      using t = dev.createTimeline();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        const available = t.wait(1, { until: 'available' });
        const signaled = t.wait(1);
        setTimeout(() => t.importSyncFile(1, syncFile), 30);
        await available;
        expect(t.query({ lastSubmitted: true })).to.equal(1n);
        expect(t.query()).to.equal(0n);
        expect(t.isAvailable(1)).to.equal(true);
        expect(await settlesWithin(signaled, 150)).to.equal(false);
        fence.signal();
        await signaled;
        expect(t.query()).to.equal(1n);
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it("rejects an unsubmitted point with reason 'unsubmitted', no earlier than the timeout, saying where the timeline stands", async () => {
      using t = dev.createTimeline();
      t.signal(40);
      const t0 = monotonicNow();
      const e = await shouldReject(t.wait(42, { timeoutMs: 300 }), TimelineTimeoutError);
      const ms = since(t0);
      expect(ms).to.be.at.least(300);
      expect(ms).to.be.below(300 + 5000);
      expect(e.code).to.equal('ETIME');
      expect(e.reason).to.equal('unsubmitted');
      expect([e.point, e.lastSubmitted, e.lastSignaled]).to.deep.equal([42n, 40n, 40n]);
      expect(e.message).to.contain('waiting for 42; last submitted 40; last signalled 40');
      expect(e.message).to.contain('never submitted');
      expect(e.stack).to.contain('timeline.test');
    });

    it("rejects a submitted but unsignalled point with reason 'unsignaled'", async () => {
      using t = dev.createTimeline();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        t.importSyncFile(1, syncFile);
        const e = await shouldReject(t.wait(1, { timeoutMs: 200 }), TimelineTimeoutError);
        expect(e.reason).to.equal('unsignaled');
        expect(e.lastSubmitted).to.equal(1n);
        expect(e.lastSignaled).to.equal(0n);
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it('takes an absolute CLOCK_MONOTONIC deadline instead of timeoutMs', async () => {
      using t = dev.createTimeline();
      const deadline = monotonicNow() + 250_000_000n;
      const e = await shouldReject(t.wait(1, { deadline }), TimelineTimeoutError);
      expect(monotonicNow() >= deadline).to.equal(true);
      expect(e.reason).to.equal('unsubmitted');
      // A deadline in the past: at once.
      await shouldReject(t.wait(1, { deadline: monotonicNow() - 1n }), TimelineTimeoutError);
    });

    it('accepts a fence deadline hint (WAIT_DEADLINE) on a pending vgem fence', async () => {
      using t = dev.createTimeline();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        t.importSyncFile(1, syncFile);
        const p = t.wait(1, { fenceDeadline: monotonicNow() + 1_000_000n });
        fence.signal();
        await p;
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it('aborts with AbortError (cause = reason); the lane and its registration stay until close()', async () => {
      const t = dev.createTimeline();
      const before = eventfdCount();
      const ac = new AbortController();
      const p = t.wait(9, { signal: ac.signal });
      expect(eventfdCount()).to.equal(before + 1);
      ac.abort(new Error('changed my mind'));
      const e = await shouldReject(p, AbortError);
      expect((e.cause as Error).message).to.equal('changed my mind');
      expect(eventfdCount()).to.equal(before + 1); // the kernel still holds the registration for 9
      await shouldReject(t.wait(9, { timeoutMs: 10 }), TimelineTimeoutError); // re-uses it
      expect(eventfdCount()).to.equal(before + 1);
      t.signal(9); // the registration fires; the idle lane drains it and stays, armed, for the next wait
      expect(eventfdCount()).to.equal(before + 1);
      await t.wait(9);
      const p10 = t.wait(10); // the same lane
      expect(eventfdCount()).to.equal(before + 1);
      t.signal(10);
      await p10;
      t.close();
      expect(eventfdCount()).to.equal(before);
    });

    it('closing the timeline rejects pending waits with ClosedError and frees their fds', async () => {
      const t = dev.createTimeline();
      const before = eventfdCount();
      const a = t.wait(1);
      const b = t.wait(2, { until: 'available' });
      expect(eventfdCount()).to.equal(before + 2);
      t.close();
      await shouldReject(a, ClosedError);
      await shouldReject(b, ClosedError);
      expect(eventfdCount()).to.equal(before);
      shouldThrow(() => t.query(), ClosedError);
      t.close();
    });

    it('closing the Device rejects pending waits with ClosedError; its timelines then throw ClosedError', async () => {
      const d = openTimelineDevice();
      const t = d.createTimeline();
      const p = t.wait(1);
      d.close();
      const e = await shouldReject(p, ClosedError);
      expect(e.message).to.contain('was closed');
      expect(t.closed).to.equal(true);
      shouldThrow(() => t.signal(1), ClosedError);
      shouldThrow(() => t.query(), ClosedError);
      await shouldReject(t.wait(1), ClosedError);
      t.close(); // nothing to destroy: the kernel freed the handle with the fd
    });

    it('many concurrent waits share one eventfd and resolve in point order', async () => {
      using t = dev.createTimeline();
      const before = eventfdCount();
      const fdsBefore = openFds().length;
      const n = 1000;
      const order: number[] = [];
      const waits: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        const p = ((i * 389) % n) + 1; // 1..n, shuffled
        waits.push(t.wait(p).then(() => order.push(p)));
      }
      expect(eventfdCount() - before).to.equal(1);
      expect(openFds().length - fdsBefore).to.be.at.most(2);
      for (let p = 100; p <= n; p += 100) {
        t.signal(p);
        await sleep(1);
      }
      await Promise.all(waits);
      expect(order.length).to.equal(n);
      expect(order).to.deep.equal([...order].sort((a, b) => a - b));
      expect(eventfdCount()).to.equal(before + 1); // the lane stays until close()
      t.close();
      expect(eventfdCount()).to.equal(before);
    });

    it("with the 'poll' mechanism (kernels without SYNCOBJ_EVENTFD) waits still resolve, with no eventfd", async () => {
      const d = openTimelineDevice();
      setWaitMechanism(d, 'poll');
      try {
        expect(d.features.waitMechanism).to.equal('poll');
        using t = d.createTimeline();
        const before = eventfdCount();
        const p = Promise.all([t.wait(2), t.wait(1, { until: 'available' })]);
        expect(eventfdCount()).to.equal(before);
        setTimeout(() => t.signal(2), 40);
        await p;
        await shouldReject(t.wait(3, { timeoutMs: 50 }), TimelineTimeoutError);
      } finally {
        setWaitMechanism(d, undefined);
        d.close();
      }
    });
  });

  describe('waitSync()', () => {
    it('returns for a signalled point; throws TimelineTimeoutError (unsubmitted) after the timeout', () => {
      using t = dev.createTimeline();
      t.signal(1);
      t.waitSync(1);
      t.waitSync(1, { until: 'available', timeoutMs: 0 });
      const t0 = monotonicNow();
      const e = shouldThrow(() => t.waitSync(2, { timeoutMs: 150 }), TimelineTimeoutError);
      expect(since(t0)).to.be.at.least(149);
      expect(e.reason).to.equal('unsubmitted');
      expect(e.message).to.contain('waiting for 2; last submitted 1; last signalled 1');
    });
  });

  describe('transfer()', () => {
    it('moves a signalled point to another timeline and into a binary syncobj', () => {
      using a = dev.createTimeline();
      using b = dev.createTimeline();
      using s = dev.createSyncobj();
      a.signal(3);
      a.transfer(3, b, 7);
      expect(b.query()).to.equal(7n);
      expect(s.isSignaled()).to.equal(false);
      a.transfer(3, s);
      expect(s.isSignaled()).to.equal(true);
    });

    it('moves an unsignalled vgem fence: the target point signals when vgem does', async () => {
      using a = dev.createTimeline();
      using b = dev.createTimeline();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        a.importSyncFile(1, syncFile);
        a.transfer(1, b, 10);
        expect(b.query({ lastSubmitted: true })).to.equal(10n);
        expect(b.isSignaled(10)).to.equal(false);
        const p = b.wait(10);
        fence.signal();
        await p;
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it('an unsubmitted source point fails at once with EINVAL that says so (never blocks)', () => {
      using a = dev.createTimeline();
      using b = dev.createTimeline();
      const e = shouldThrow(() => a.transfer(5, b, 1), ExplicitSyncError);
      expect(e.code).to.equal('EINVAL');
      expect(e.ioctl).to.equal('DRM_IOCTL_SYNCOBJ_TRANSFER');
      expect(e.message).to.contain('has not been submitted');
    });

    it('refuses a target on another device', () => {
      const d2 = openTimelineDevice();
      try {
        using a = dev.createTimeline();
        using b = d2.createTimeline();
        a.signal(1);
        shouldThrow(() => a.transfer(1, b, 1), InvalidArgValueError);
      } finally {
        d2.close();
      }
    });
  });

  describe('importSyncFile() / exportSyncFile()', () => {
    it('imports several sync files at one point: it signals after all of them', async () => {
      using t = dev.createTimeline();
      const f1 = vgemFence(vgem);
      const f2 = vgemFence(vgem);
      try {
        t.importSyncFile(4, [f1.syncFile, f2.syncFile]);
        expect(t.query({ lastSubmitted: true })).to.equal(4n);
        const p = t.wait(4);
        f1.fence.signal();
        expect(await settlesWithin(p, 150)).to.equal(false);
        f2.fence.signal();
        await p;
        expect(t.query()).to.equal(4n);
      } finally {
        f1.fence.signal();
        f2.fence.signal();
        f1.syncFile.close();
        f2.syncFile.close();
      }
    });

    it('exports a point as a sync_file that follows the fence', async () => {
      using t = dev.createTimeline();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        t.importSyncFile(2, syncFile);
        using out = await t.exportSyncFile(2);
        expect(out).to.be.instanceOf(SyncFile);
        expect(out.isSignaled()).to.equal(false);
        fence.signal();
        await out.wait({ timeoutMs: 5000 });
        t.signal(3);
        using done = await t.exportSyncFile(3);
        expect(done.isSignaled()).to.equal(true);
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it("rejects an unsubmitted point promptly ('unsubmitted') without materializeTimeoutMs", async () => {
      using t = dev.createTimeline();
      const t0 = monotonicNow();
      const e = await shouldReject(t.exportSyncFile(1), TimelineTimeoutError);
      expect(since(t0)).to.be.below(1000);
      expect(e.reason).to.equal('unsubmitted');
      expect(e.message).to.contain('never submitted');
    });

    it('waits up to materializeTimeoutMs for the point to be submitted, then exports', async () => {
      using t = dev.createTimeline();
      setTimeout(() => t.signal(1), 50);
      using sf = await t.exportSyncFile(1, { materializeTimeoutMs: 5000 });
      expect(sf.isSignaled()).to.equal(true);
    });

    it("never materialised within materializeTimeoutMs → TimelineTimeoutError 'unsubmitted', not before the bound", async () => {
      using t = dev.createTimeline();
      const t0 = monotonicNow();
      const e = await shouldReject(t.exportSyncFile(1, { materializeTimeoutMs: 250 }), TimelineTimeoutError);
      expect(since(t0)).to.be.at.least(250);
      expect(e.reason).to.equal('unsubmitted');
      expect(e.message).to.contain('timeline point 1 was never submitted');
    });

    it('a closed SyncFile is a ClosedError', () => {
      using t = dev.createTimeline();
      const { fence, syncFile } = vgemFence(vgem);
      fence.signal();
      syncFile.close();
      shouldThrow(() => t.importSyncFile(1, syncFile), ClosedError);
    });
  });

  describe('exportFd() / device.importTimeline()', () => {
    it('round-trips through an fd, also into another DRM file of the same device', () => {
      using a = dev.createTimeline();
      const fd = a.exportFd();
      let b: Timeline;
      const d2 = openTimelineDevice();
      try {
        b = dev.importTimeline(fd);
        using c = d2.importTimeline(fd);
        closeSync(fd);
        a.signal(4);
        expect(b.query()).to.equal(4n);
        expect(c.query()).to.equal(4n);
        b.close();
      } finally {
        d2.close();
      }
    });

    it('importing something that is not a syncobj fd is EINVAL', () => {
      const fd = openSync('/dev/null', 'r');
      try {
        const e = shouldThrow(() => dev.importTimeline(fd), ExplicitSyncError);
        expect(e.code).to.equal('EINVAL');
        expect(e.ioctl).to.equal('DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE');
      } finally {
        closeSync(fd);
      }
    });
  });

  describe('Timeline.waitAll() / waitAny()', () => {
    it('waitAny resolves with the index of the one reached; waitAll once all are', async () => {
      using a = dev.createTimeline();
      using b = dev.createTimeline();
      const any = Timeline.waitAny([
        { timeline: a, point: 1 },
        { timeline: b, point: 1 },
      ]);
      const all = Timeline.waitAll([
        { timeline: a, point: 1 },
        { timeline: b, point: 2n },
      ]);
      setTimeout(() => b.signal(1), 30);
      expect(await any).to.equal(1);
      expect(await settlesWithin(all, 80)).to.equal(false);
      a.signal(1);
      b.signal(2);
      await all;
      // Already reached: answered by one zero-timeout TIMELINE_WAIT (first_signaled).
      expect(await Timeline.waitAny([{ timeline: a, point: 5 }, { timeline: b, point: 2 }])).to.equal(1);
    });

    it('a timeout rejects with the first unreached entry; the other waits are cancelled', async () => {
      using a = dev.createTimeline();
      using b = dev.createTimeline();
      a.signal(1);
      const before = eventfdCount();
      const e = await shouldReject(
        Timeline.waitAll(
          [
            { timeline: a, point: 1 },
            { timeline: b, point: 1 },
          ],
          { timeoutMs: 100 },
        ),
        TimelineTimeoutError,
      );
      expect(e.point).to.equal(1n);
      expect(eventfdCount()).to.equal(before + 1); // b's lane keeps its registration for 1
      b.signal(1); // fires it: the idle lane drains it and stays until close()
      expect(eventfdCount()).to.equal(before + 1);
      b.close();
      expect(eventfdCount()).to.equal(before);
    });

    it('waitAllSync / waitAnySync are one blocking TIMELINE_WAIT', () => {
      using a = dev.createTimeline();
      using b = dev.createTimeline();
      b.signal(3);
      expect(Timeline.waitAnySync([{ timeline: a, point: 1 }, { timeline: b, point: 3 }])).to.equal(1);
      shouldThrow(() => Timeline.waitAllSync([{ timeline: a, point: 1 }, { timeline: b, point: 3 }], { timeoutMs: 50 }), TimelineTimeoutError);
      a.signal(1);
      Timeline.waitAllSync([{ timeline: a, point: 1 }, { timeline: b, point: 3 }], { timeoutMs: 50 });
    });
  });

  describe('errors', () => {
    it('a bad handle is ENOENT from the kernel, as an ExplicitSyncError naming the ioctl', () => {
      const n = nativeFamily<{ syncobjQuery(fd: number, h: number, f: number): bigint }>();
      const e = shouldThrow(() => n.syncobjQuery(dev[kDeviceFd]('test'), 0x7ffffff0, 0), ExplicitSyncError);
      expect(e.code).to.equal('ENOENT');
      expect(e.errno).to.equal(-2);
      expect(e.syscall).to.equal('ioctl');
      expect(e.ioctl).to.equal('DRM_IOCTL_SYNCOBJ_QUERY');
    });

    it('createTimeline() / createSyncobj() on vgem (no syncobj) throw UnsupportedError (EOPNOTSUPP)', () => {
      using d = Device.open(vgem.path);
      expect(d.caps.syncobj).to.equal(false);
      const e = shouldThrow(() => d.createTimeline(), UnsupportedError);
      expect(e.code).to.equal('EOPNOTSUPP');
      expect(e.feature).to.contain('DRM_CAP_SYNCOBJ_TIMELINE');
      shouldThrow(() => d.createSyncobj(), UnsupportedError);
      expect(d.features).to.deep.include({ syncobj: false, timeline: false, eventfd: false, waitMechanism: 'poll' });
    });
  });
}, () => expectNoDeviceWith('timeline'));

describeWith(['timeline'], 'Syncobj ↔ Timeline on one device', () => {
  it('a binary syncobj can be a transfer target and exported as a sync file afterwards', () => {
    using dev = openTimelineDevice();
    using t = dev.createTimeline();
    using s: Syncobj = dev.createSyncobj();
    t.signal(1);
    t.transfer(1, s);
    using sf = s.exportSyncFile();
    expect(sf.isSignaled()).to.equal(true);
  });
}, () => expectNoDeviceWith('timeline'));
