// Conformance: the dma-buf ⇄ sync_file bridge on buffers the device under test exports (dumb
// buffers from its card node, PRIME-exported). Without another driver's fences every fence is
// already signalled; with vgem present, a foreign unsignalled fence goes onto the device's buffer.
import { expect } from 'chai';
import { DmaBuf, ExplicitSyncError, SyncFile, VgemDevice } from 'explicit-sync';
import { settlesWithin } from '../helpers.mjs';
import { DumbBuffers, conformanceDevice, openDeviceFor, openVgemFor } from '../device-under-test.mjs';
import { expectNoDeviceWith, has } from '../vm/kernel-features.mjs';

describe('Conformance: DmaBuf on buffers of the device under test', () => {
  let alloc: DumbBuffers;
  before(function () {
    alloc = DumbBuffers.open(this);
    console.log(`      buffers: dumb buffers on ${alloc.device.path} (${alloc.device.driver.name})`);
  });
  after(() => alloc?.close());

  it('is a dma-buf with the buffer size; the kernel has the sync-file ioctls', () => {
    using buf = alloc.allocate();
    expect(buf).to.be.instanceOf(DmaBuf);
    expect(buf.size).to.be.at.least(64 * 64 * 4);
    expect(buf.supportsSyncFile()).to.equal(true);
  });

  it('an idle buffer exports signalled sync_files, for reading and for writing', () => {
    using buf = alloc.allocate();
    for (const access of ['read', 'write', 'readwrite'] as const) {
      using sf = buf.exportSyncFile(access);
      expect(sf).to.be.instanceOf(SyncFile);
      expect(sf.isSignaled(), access).to.equal(true);
    }
  });

  it('imports a sync_file as a fence that later exports include', async () => {
    using buf = alloc.allocate();
    using fence = buf.exportSyncFile('readwrite');
    buf.importSyncFile(fence, 'write');
    buf.importSyncFile(fence, 'read');
    using after = buf.exportSyncFile('readwrite');
    await after.wait({ timeoutMs: 20_000 });
    expect(after.info().status).to.equal('signaled');
  });

  it("a timeline point's sync_file goes onto the buffer", async function () {
    if (!alloc.device.caps.timeline) {
      // The VM (no EXPLICIT_SYNC_DEVICE) on a kernel where no node has timelines: the documented error.
      if (conformanceDevice() === undefined && !has('timeline')) return expectNoDeviceWith('timeline');
      console.log(`      skipped: ${alloc.device.path} (${alloc.device.driver.name}) has no timelines`);
      this.skip();
    }
    const dev = openDeviceFor(this, 'timeline');
    try {
      using t = dev.createTimeline();
      t.signal(1);
      using sf = await t.exportSyncFile(1);
      using buf = alloc.allocate();
      buf.importSyncFile(sf, 'write');
      using out = buf.exportSyncFile('read');
      expect(out.isSignaled()).to.equal(true);
    } finally {
      dev.close();
    }
  });

  it('maps for CPU access inside begin/endCpuAccess, where the driver can map dma-bufs', function () {
    using buf = alloc.allocate();
    let map: Buffer;
    try {
      map = buf.map();
    } catch (err) {
      if (!(err instanceof ExplicitSyncError)) throw err;
      console.log(`      skipped: ${alloc.device.driver.name} dma-bufs cannot be mmapped: ${err.code}`);
      this.skip();
    }
    buf.beginCpuAccess('write');
    map.fill(0xab, 0, 16);
    buf.endCpuAccess('write');
    using again = buf.dup();
    const map2 = again.map();
    again.beginCpuAccess('read');
    expect(map2[15]).to.equal(0xab);
    again.endCpuAccess('read');
  });

  describe("with another driver's unsignalled fence (vgem)", () => {
    let vgem: VgemDevice;
    before(function () {
      vgem = openVgemFor(this);
    });
    after(() => vgem?.close());

    it('a write fence blocks read and write exports until it signals; a read fence only write exports', async () => {
      using src = vgem.createBuffer({ width: 4, height: 4 });
      const write = src.attachFence({ write: true });
      try {
        using srcBuf = src.exportDmaBuf();
        using foreign = srcBuf.exportSyncFile('readwrite');
        expect(foreign.isSignaled()).to.equal(false);

        using asWrite = alloc.allocate();
        asWrite.importSyncFile(foreign, 'write');
        using r = asWrite.exportSyncFile('read');
        expect(r.isSignaled()).to.equal(false);

        using asRead = alloc.allocate();
        asRead.importSyncFile(foreign, 'read');
        using r2 = asRead.exportSyncFile('read');
        using w2 = asRead.exportSyncFile('write');
        expect([r2.isSignaled(), w2.isSignaled()]).to.deep.equal([true, false]);

        const waits = Promise.all([r.wait({ timeoutMs: 20_000 }), w2.wait({ timeoutMs: 20_000 })]);
        expect(await settlesWithin(waits, 100)).to.equal(false);
        write.signal();
        await waits;
      } finally {
        write.signal();
      }
    });
  });
});
