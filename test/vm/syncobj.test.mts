// Binary syncobjs against the real kernel: virtio_gpu's syncobjs, with vgem for unsignalled fences.
import { expect } from 'chai';
import { closeSync } from 'node:fs';
import {
  AbortError,
  ClosedError,
  Device,
  ExplicitSyncError,
  SyncFile,
  Syncobj,
  TimeoutError,
  VgemDevice,
  monotonicNow,
} from 'explicit-sync';
import { setWaitMechanism } from '../../dist/syncobj-core.js';
import { settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';
import { eventfdCount, openTimelineDevice, since, vgemFence } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

describeWith(['syncobj'], 'Syncobj (kernel)', () => {
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

  describe('createSyncobj() / signal() / reset()', () => {
    it('starts unsubmitted, or signalled with { signaled: true }', () => {
      using a = dev.createSyncobj();
      using b = dev.createSyncobj({ signaled: true });
      expect(a.handle).to.be.greaterThan(0);
      expect(a.handle).to.not.equal(b.handle);
      expect([a.isSignaled(), a.hasFence()]).to.deep.equal([false, false]);
      expect([b.isSignaled(), b.hasFence()]).to.deep.equal([true, true]);
    });

    it('signal() puts a signalled fence, reset() removes it', () => {
      using s = dev.createSyncobj();
      s.signal();
      expect(s.isSignaled()).to.equal(true);
      s.reset();
      expect([s.isSignaled(), s.hasFence()]).to.deep.equal([false, false]);
    });
  });

  describe('wait()', () => {
    it('resolves at once when signalled, with no eventfd', async () => {
      using s = dev.createSyncobj({ signaled: true });
      const before = eventfdCount();
      await s.wait();
      await s.wait({ until: 'available', timeoutMs: 0 });
      expect(eventfdCount()).to.equal(before);
    });

    it('resolves when signalled later from a timer', async () => {
      using s = dev.createSyncobj();
      const p = s.wait();
      expect(await settlesWithin(p, 80)).to.equal(false);
      setTimeout(() => s.signal(), 20);
      await p;
    });

    it("'available' resolves once a vgem fence is imported; 'signaled' once vgem signals it", async () => {
      using s = dev.createSyncobj();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        const available = s.wait({ until: 'available' });
        const signaled = s.wait();
        s.importSyncFile(syncFile);
        await available;
        expect(s.hasFence()).to.equal(true);
        expect(await settlesWithin(signaled, 100)).to.equal(false);
        fence.signal();
        await signaled;
        expect(s.isSignaled()).to.equal(true);
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it("times out with reason 'unsubmitted' (no fence) or 'unsignaled' (pending fence), never early", async () => {
      using s = dev.createSyncobj();
      const t0 = monotonicNow();
      const e1 = await shouldReject(s.wait({ timeoutMs: 200 }), TimeoutError);
      expect(since(t0)).to.be.at.least(200);
      expect(since(t0)).to.be.below(200 + 5000);
      expect(e1.code).to.equal('ETIME');
      expect(e1.reason).to.equal('unsubmitted');
      expect(e1.message).to.contain('never submitted');
      const { fence, syncFile } = vgemFence(vgem);
      try {
        s.importSyncFile(syncFile);
        const e2 = await shouldReject(s.wait({ timeoutMs: 100 }), TimeoutError);
        expect(e2.reason).to.equal('unsignaled');
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it('a reset and re-signal from this process is seen by a pending wait', async () => {
      using s = dev.createSyncobj();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        s.importSyncFile(syncFile);
        const p = s.wait();
        s.reset();
        s.signal(); // the vgem fence it first followed is still unsignalled
        await p;
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it('aborts with AbortError; closing rejects with ClosedError; both free the eventfd', async () => {
      const s = dev.createSyncobj();
      const before = eventfdCount();
      const ac = new AbortController();
      const a = s.wait({ signal: ac.signal });
      const b = s.wait();
      ac.abort();
      await shouldReject(a, AbortError);
      s.close();
      await shouldReject(b, ClosedError);
      expect(eventfdCount()).to.equal(before);
    });

    it("works with the 'poll' mechanism too", async () => {
      const d = openTimelineDevice();
      setWaitMechanism(d, 'poll');
      try {
        using s = d.createSyncobj();
        const before = eventfdCount();
        const p = s.wait();
        expect(eventfdCount()).to.equal(before);
        setTimeout(() => s.signal(), 30);
        await p;
      } finally {
        setWaitMechanism(d, undefined);
        d.close();
      }
    });
  });

  describe('waitSync()', () => {
    it('returns when signalled; throws TimeoutError after the timeout otherwise', () => {
      using s = dev.createSyncobj();
      const t0 = monotonicNow();
      const e = shouldThrow(() => s.waitSync({ timeoutMs: 100 }), TimeoutError);
      expect(since(t0)).to.be.at.least(99);
      expect(e.reason).to.equal('unsubmitted');
      s.signal();
      s.waitSync({ timeoutMs: 0 });
      s.waitSync({ until: 'available' });
    });
  });

  describe('Syncobj.waitAll() / waitAny()', () => {
    it('waitAny gives the index of the first to signal; waitAll waits for every one', async () => {
      using a = dev.createSyncobj();
      using b = dev.createSyncobj();
      const any = Syncobj.waitAny([a, b]);
      const all = Syncobj.waitAll([a, b]);
      setTimeout(() => b.signal(), 20);
      expect(await any).to.equal(1);
      expect(await settlesWithin(all, 60)).to.equal(false);
      a.signal();
      await all;
    });

    it('already signalled: answered by one zero-timeout DRM_IOCTL_SYNCOBJ_WAIT (first_signaled)', async () => {
      using a = dev.createSyncobj();
      using b = dev.createSyncobj({ signaled: true });
      expect(await Syncobj.waitAny([a, b])).to.equal(1);
      expect(Syncobj.waitAnySync([a, b])).to.equal(1);
      shouldThrow(() => Syncobj.waitAllSync([a, b], { timeoutMs: 30 }), TimeoutError);
      a.signal();
      Syncobj.waitAllSync([a, b]);
      await Syncobj.waitAll([a, b]);
    });

    it('a timeout rejects waitAll and cancels the other waits; their eventfds go with the syncobjs', async () => {
      const a = dev.createSyncobj();
      const b = dev.createSyncobj();
      const before = eventfdCount();
      await shouldReject(Syncobj.waitAll([a, b], { timeoutMs: 80 }), TimeoutError);
      // Persistent waiters: each keeps its eventfd while its kernel registration lives.
      expect(eventfdCount()).to.equal(before + 2);
      a.close();
      b.close();
      expect(eventfdCount()).to.equal(before);
    });
  });

  describe('importSyncFile() / exportSyncFile()', () => {
    it('round-trips a fence through a sync_file', async () => {
      using s = dev.createSyncobj();
      const { fence, syncFile } = vgemFence(vgem);
      try {
        s.importSyncFile(syncFile);
        using out = s.exportSyncFile();
        expect(out).to.be.instanceOf(SyncFile);
        expect(out.isSignaled()).to.equal(false);
        fence.signal();
        await out.wait({ timeoutMs: 5000 });
      } finally {
        fence.signal();
        syncFile.close();
      }
    });

    it('exporting with no fence is EINVAL with a message that says why', () => {
      using s = dev.createSyncobj();
      const e = shouldThrow(() => s.exportSyncFile(), ExplicitSyncError);
      expect(e.code).to.equal('EINVAL');
      expect(e.ioctl).to.equal('DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD');
      expect(e.message).to.contain('no fence');
    });
  });

  describe('exportFd() / device.importSyncobj()', () => {
    it('round-trips through an opaque fd into another DRM file', () => {
      using a = dev.createSyncobj();
      const fd = a.exportFd();
      const d2 = openTimelineDevice();
      try {
        using b = d2.importSyncobj(fd);
        closeSync(fd);
        expect(b.isSignaled()).to.equal(false);
        a.signal();
        expect(b.isSignaled()).to.equal(true);
      } finally {
        d2.close();
      }
    });
  });

  describe('lifetime', () => {
    it('close() is idempotent; methods then throw ClosedError; using closes', () => {
      const s = dev.createSyncobj();
      s.close();
      s.close();
      expect(s.handle).to.equal(0);
      shouldThrow(() => s.signal(), ClosedError);
      let inner: Syncobj;
      {
        using t = dev.createSyncobj();
        inner = t;
      }
      expect(inner.closed).to.equal(true);
    });

    it('closing the Device makes its syncobjs throw ClosedError rather than touch a stale handle', () => {
      const d = openTimelineDevice();
      const s = d.createSyncobj();
      d.close();
      expect(s.closed).to.equal(true);
      shouldThrow(() => s.isSignaled(), ClosedError);
      s.close();
    });
  });
}, () => expectNoDeviceWith('syncobj'));
