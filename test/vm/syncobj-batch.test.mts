// Batches against the real kernel: Timeline.signalAll / queryAll and Syncobj.signalAll / resetAll
// issue the kernel's array ioctls (one per device) with the single forms' rules.
import { expect } from 'chai';
import { ClosedError, Device, InvalidArgTypeError, InvalidArgValueError, OutOfRangeError, Syncobj, Timeline, type TimelinePoint, VgemDevice } from 'explicit-sync';
import { settlesWithin, shouldThrow } from '../helpers.mjs';
import { openTimelineDevice, vgemFence } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

describeWith(['timeline'], 'Batches (kernel)', () => {
  let dev: Device;
  before(() => {
    dev = openTimelineDevice();
  });
  after(() => {
    dev.close();
  });

  describe('Timeline.signalAll()', () => {
    it('signals a point on each timeline in one call; pending waits on them resolve', async () => {
      using a = dev.createTimeline();
      using b = dev.createTimeline();
      using c = dev.createTimeline();
      const waits = Promise.all([a.wait(2), b.wait(7), c.wait(1)]);
      Timeline.signalAll([
        { timeline: a, point: 2 },
        { timeline: b, point: 7n },
        { timeline: c, point: 1 },
      ]);
      expect([a.query(), b.query(), c.query()]).to.deep.equal([2n, 7n, 1n]);
      expect(await settlesWithin(waits, 10_000)).to.equal(true);
    });

    it('takes ascending points of one timeline in one list', () => {
      using a = dev.createTimeline();
      Timeline.signalAll([
        { timeline: a, point: 1 },
        { timeline: a, point: 3 },
      ]);
      expect(a.query()).to.equal(3n);
      expect(a.isSignaled(1)).to.equal(true);
    });

    it('refuses a point at or below the last submitted one, or below an earlier entry for the same timeline, and signals nothing', () => {
      using a = dev.createTimeline();
      using b = dev.createTimeline();
      a.signal(5);
      const refused = (...entries: TimelinePoint[]): OutOfRangeError => shouldThrow(() => Timeline.signalAll(entries), OutOfRangeError);
      const below = refused({ timeline: b, point: 1 }, { timeline: a, point: 5 });
      expect(below.message).to.contain('points[1].point').and.contain('last submitted point 5');
      const reversed = refused({ timeline: b, point: 4 }, { timeline: b, point: 2 });
      expect(reversed.message).to.contain('points[1].point').and.contain('earlier entry');
      expect(b.query({ lastSubmitted: true })).to.equal(0n);
      expect(a.query()).to.equal(5n);
    });

    it('validates like signal(): point 0, bad entries, an empty list, unknown options', () => {
      using a = dev.createTimeline();
      shouldThrow(() => Timeline.signalAll([{ timeline: a, point: 0 }]), OutOfRangeError);
      shouldThrow(() => Timeline.signalAll([{ timeline: a, point: -1 }]), OutOfRangeError);
      shouldThrow(() => Timeline.signalAll([{ timeline: {} as Timeline, point: 1 }]), InvalidArgTypeError);
      shouldThrow(() => Timeline.signalAll('x' as never), InvalidArgTypeError);
      shouldThrow(() => Timeline.signalAll([]), InvalidArgValueError);
      shouldThrow(() => Timeline.signalAll([{ timeline: a, point: 1 }], { allowUnorderd: true } as never), InvalidArgValueError);
      expect(a.query({ lastSubmitted: true })).to.equal(0n);
    });

    it('allowUnordered hands a lower point to the kernel as signal() does', () => {
      const vgem = VgemDevice.open();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        using t = dev.createTimeline();
        t.signal(5);
        t.importSyncFile(10, syncFile);
        shouldThrow(() => Timeline.signalAll([{ timeline: t, point: 7 }]), OutOfRangeError);
        Timeline.signalAll([{ timeline: t, point: 7 }], { allowUnordered: true });
        // What the guard prevents: the kernel accepted the unordered point and the timeline broke.
        expect(t.query() < 5n || !t.isSignaled(3), 'the raw kernel corrupts the timeline').to.equal(true);
      } finally {
        fence.signal();
        syncFile.close();
        vgem.close();
      }
    });

    it('throws ClosedError for a closed timeline in the list, before signalling any', () => {
      using a = dev.createTimeline();
      const b = dev.createTimeline();
      b.close();
      shouldThrow(
        () =>
          Timeline.signalAll([
            { timeline: a, point: 1 },
            { timeline: b, point: 1 },
          ]),
        ClosedError,
      );
      expect(a.query()).to.equal(0n);
    });

    it('splits a list over two devices (handles are per open file) into one ioctl each', () => {
      const other = Device.open(dev.path);
      try {
        using a = dev.createTimeline();
        using b = other.createTimeline();
        using c = dev.createTimeline();
        Timeline.signalAll([
          { timeline: a, point: 4 },
          { timeline: b, point: 6 },
          { timeline: c, point: 8 },
        ]);
        expect(Timeline.queryAll([a, b, c])).to.deep.equal([4n, 6n, 8n]);
      } finally {
        other.close();
      }
    });
  });

  describe('Timeline.queryAll()', () => {
    it('answers every timeline in order; lastSubmitted reads a point whose fence is still unsignalled', () => {
      const vgem = VgemDevice.open();
      try {
        using a = dev.createTimeline();
        using b = dev.createTimeline();
        a.signal(3);
        b.signal(1);
        const { fence, syncFile } = vgemFence(vgem);
        b.importSyncFile(2, syncFile);
        syncFile.close();
        expect(Timeline.queryAll([a, b])).to.deep.equal([3n, 1n]);
        expect(Timeline.queryAll([a, b], { lastSubmitted: true })).to.deep.equal([3n, 2n]);
        fence.signal();
      } finally {
        vgem.close();
      }
    });

    it('validates its list and options; ClosedError for a closed timeline', () => {
      using a = dev.createTimeline();
      shouldThrow(() => Timeline.queryAll([a, 1 as never]), InvalidArgTypeError);
      shouldThrow(() => Timeline.queryAll([]), InvalidArgValueError);
      shouldThrow(() => Timeline.queryAll([a], { lastSubmitted: 1 } as never), InvalidArgTypeError);
      const b = dev.createTimeline();
      b.close();
      shouldThrow(() => Timeline.queryAll([a, b]), ClosedError);
    });
  });
}, () => expectNoDeviceWith('timeline'));

describeWith(['syncobj'], 'Binary syncobj batches (kernel)', () => {
  let dev: Device;
  before(() => (dev = Device.open({ require: ['syncobj'] })));
  after(() => dev.close());

  describe('Syncobj.signalAll() / resetAll()', () => {
    it('signals every syncobj in one call (pending waits resolve), then resets them all', async () => {
      using a = dev.createSyncobj();
      using b = dev.createSyncobj();
      const waits = Promise.all([a.wait(), b.wait()]);
      Syncobj.signalAll([a, b]);
      expect(await settlesWithin(waits, 10_000)).to.equal(true);
      expect(a.isSignaled() && b.isSignaled()).to.equal(true);
      Syncobj.resetAll([a, b]);
      expect(a.hasFence() || b.hasFence()).to.equal(false);
    });

    it('validates its list; ClosedError for a closed syncobj before touching any', () => {
      using a = dev.createSyncobj();
      const b = dev.createSyncobj();
      b.close();
      shouldThrow(() => Syncobj.signalAll([a, b]), ClosedError);
      expect(a.hasFence()).to.equal(false);
      shouldThrow(() => Syncobj.resetAll([a, 'b' as never]), InvalidArgTypeError);
      shouldThrow(() => Syncobj.signalAll([]), InvalidArgValueError);
    });
  });
}, () => expectNoDeviceWith('syncobj'));
