// Conformance: binary syncobjs on the device under test (any driver with DRM_CAP_SYNCOBJ), signalled
// from the CPU; with vgem present, also waits on another driver's unsignalled fence.
import { expect } from 'chai';
import { closeSync } from 'node:fs';
import { AbortError, ClosedError, Device, SyncFile, Syncobj, TimeoutError, VgemDevice, monotonicNow } from 'explicit-sync';
import { setWaitMechanism } from '../../dist/syncobj-core.js';
import { settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';
import { describeNeeding, openDeviceFor, openVgemFor } from '../device-under-test.mjs';

const since = (t0: bigint): number => Number(monotonicNow() - t0) / 1e6;

describeNeeding('syncobj', 'Conformance: Syncobj on the device under test', () => {
  let dev: Device;
  before(function () {
    dev = openDeviceFor(this, 'syncobj');
    console.log(`      device: ${dev.path} (${dev.driver.name}), waits use ${dev.features.waitMechanism}`);
  });
  after(() => dev?.close());

  it('starts without a fence; signal() and reset() put and remove one', () => {
    using a = dev.createSyncobj();
    using b = dev.createSyncobj({ signaled: true });
    expect([a.isSignaled(), a.hasFence()]).to.deep.equal([false, false]);
    expect([b.isSignaled(), b.hasFence()]).to.deep.equal([true, true]);
    a.signal();
    expect(a.isSignaled()).to.equal(true);
    a.reset();
    expect([a.isSignaled(), a.hasFence()]).to.deep.equal([false, false]);
  });

  it('wait() resolves when signalled later, on the event loop', async () => {
    using s = dev.createSyncobj();
    const p = s.wait({ timeoutMs: 20_000 });
    expect(await settlesWithin(p, 50)).to.equal(false);
    setTimeout(() => s.signal(), 10);
    await p;
  });

  it("with the 'poll' mechanism too", async () => {
    using d = Device.open(dev.path);
    setWaitMechanism(d, 'poll');
    try {
      using s = d.createSyncobj();
      const p = s.wait({ timeoutMs: 20_000 });
      setTimeout(() => s.signal(), 10);
      await p;
    } finally {
      setWaitMechanism(d, undefined);
    }
  });

  it("times out with TimeoutError (code 'ETIME', reason 'unsubmitted'), never early", async () => {
    using s = dev.createSyncobj();
    const t0 = monotonicNow();
    const e = await shouldReject(s.wait({ timeoutMs: 100 }), TimeoutError);
    expect(since(t0)).to.be.at.least(99);
    expect([e.code, e.reason]).to.deep.equal(['ETIME', 'unsubmitted']);
    const e2 = shouldThrow(() => s.waitSync({ timeoutMs: 50 }), TimeoutError);
    expect(e2.code).to.equal('ETIME');
    s.signal();
    s.waitSync({ timeoutMs: 0 });
  });

  it('aborts with AbortError; close() rejects a pending wait with ClosedError', async () => {
    const s = dev.createSyncobj();
    const ac = new AbortController();
    const a = s.wait({ signal: ac.signal });
    const b = s.wait();
    ac.abort();
    await shouldReject(a, AbortError);
    s.close();
    await shouldReject(b, ClosedError);
  });

  it('waitAny() / waitAll()', async () => {
    using a = dev.createSyncobj();
    using b = dev.createSyncobj();
    const any = Syncobj.waitAny([a, b], { timeoutMs: 20_000 });
    const all = Syncobj.waitAll([a, b], { timeoutMs: 20_000 });
    setTimeout(() => b.signal(), 10);
    expect(await any).to.equal(1);
    expect(await settlesWithin(all, 50)).to.equal(false);
    a.signal();
    await all;
    expect(Syncobj.waitAnySync([a, b])).to.be.oneOf([0, 1]);
  });

  it('exports its fence as a sync_file and imports one', () => {
    using s = dev.createSyncobj({ signaled: true });
    using sf = s.exportSyncFile();
    expect(sf).to.be.instanceOf(SyncFile);
    expect(sf.isSignaled()).to.equal(true);
    expect(sf.info().status).to.equal('signaled');
    using t = dev.createSyncobj();
    t.importSyncFile(sf);
    expect(t.isSignaled()).to.equal(true);
  });

  it('shares its fence through an opaque fd with another open file of the device', () => {
    using a = dev.createSyncobj();
    const fd = a.exportFd();
    using d2 = Device.open(dev.path);
    try {
      using b = d2.importSyncobj(fd);
      expect(b.isSignaled()).to.equal(false);
      a.signal();
      expect(b.isSignaled()).to.equal(true);
    } finally {
      closeSync(fd);
    }
  });

  it('closing the device ends its syncobjs (ClosedError, no stale handle)', () => {
    const d = Device.open(dev.path);
    const s = d.createSyncobj();
    d.close();
    expect(s.closed).to.equal(true);
    shouldThrow(() => s.signal(), ClosedError);
  });

  describe("with another driver's unsignalled fence (vgem)", () => {
    let vgem: VgemDevice;
    before(function () {
      vgem = openVgemFor(this);
    });
    after(() => vgem?.close());

    it("a wait follows a vgem fence imported through a sync_file until vgem signals it", async () => {
      using buf = vgem.createBuffer({ width: 4, height: 4 });
      const fence = buf.attachFence({ write: true });
      try {
        using dmabuf = buf.exportDmaBuf();
        using sf = dmabuf.exportSyncFile('readwrite');
        using s = dev.createSyncobj();
        const available = s.wait({ until: 'available', timeoutMs: 20_000 });
        const signaled = s.wait({ timeoutMs: 20_000 });
        s.importSyncFile(sf);
        await available;
        expect(await settlesWithin(signaled, 100)).to.equal(false);
        const e = await shouldReject(s.wait({ timeoutMs: 50 }), TimeoutError);
        expect(e.reason).to.equal('unsignaled');
        fence.signal();
        await signaled;
      } finally {
        fence.signal();
      }
    });
  });
});
