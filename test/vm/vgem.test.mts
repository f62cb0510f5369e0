// VgemDevice, VgemBuffer and VgemFence against the VM's real vgem driver (/dev/dri/card0).
import { expect } from 'chai';
import {
  ClosedError,
  ExplicitSyncError,
  InvalidArgTypeError,
  OutOfRangeError,
  VgemBuffer,
  VgemDevice,
} from 'explicit-sync';
import { shouldThrow } from '../helpers.mjs';

describe('VgemDevice (kernel)', () => {
  describe('VgemDevice.open()', () => {
    it('finds the vgem card node, or opens it by path', () => {
      using dev = VgemDevice.open();
      expect(dev.path).to.match(/^\/dev\/dri\/card\d+$/);
      expect(dev.fd).to.be.greaterThan(2);
      using again = VgemDevice.open(dev.path);
      expect(again.path).to.equal(dev.path);
    });

    it('refuses the vgem render node and other drivers with ENODEV', () => {
      for (const path of ['/dev/dri/renderD128', '/dev/dri/card1', '/dev/dri/renderD129']) {
        const e = shouldThrow(() => VgemDevice.open(path), ExplicitSyncError);
        expect(e.code, path).to.equal('ENODEV');
      }
    });
  });

  describe('VgemDevice#createBuffer()', () => {
    it('makes a dumb buffer with a pitch and a size that fit', () => {
      using dev = VgemDevice.open();
      using buf = dev.createBuffer({ width: 100, height: 30, bpp: 32 });
      expect(buf.handle).to.be.greaterThan(0);
      expect(buf.width).to.equal(100);
      expect(buf.height).to.equal(30);
      expect(buf.pitch).to.be.at.least(400);
      expect(buf.size).to.be.at.least(buf.pitch * 30);
      using def = dev.createBuffer({ width: 8, height: 8 });
      expect(def.bpp).to.equal(32);
    });

    it('validates its options', () => {
      using dev = VgemDevice.open();
      shouldThrow(() => dev.createBuffer({ width: 0, height: 1 }), OutOfRangeError);
      shouldThrow(() => dev.createBuffer({ width: 1, height: 1.5 }), OutOfRangeError);
      shouldThrow(() => dev.createBuffer({ width: '1' as unknown as number, height: 1 }), InvalidArgTypeError);
      shouldThrow(() => dev.createBuffer(undefined as unknown as { width: number; height: number }), InvalidArgTypeError);
    });
  });

  describe('VgemBuffer#attachFence()', () => {
    it('gives a fence that signal() signals once; later calls say it already was', () => {
      using dev = VgemDevice.open();
      using buf = dev.createBuffer({ width: 4, height: 4 });
      const fence = buf.attachFence({ write: true });
      expect(fence.write).to.equal(true);
      expect(fence.signaled).to.equal(false);
      expect(fence.signal()).to.equal(true);
      expect(fence.signaled).to.equal(true);
      expect(fence.signal()).to.equal(false);
    });

    it('EBUSY for a write fence while a read fence is pending; read fences share', () => {
      using dev = VgemDevice.open();
      using buf = dev.createBuffer({ width: 4, height: 4 });
      const r1 = buf.attachFence();
      const r2 = buf.attachFence({ write: false });
      expect(r1.id).to.not.equal(r2.id);
      const e = shouldThrow(() => buf.attachFence({ write: true }), ExplicitSyncError);
      expect(e.code).to.equal('EBUSY');
      expect(e.ioctl).to.equal('DRM_IOCTL_VGEM_FENCE_ATTACH');
      r1.signal();
      r2.signal();
      buf.attachFence({ write: true }).signal();
    });

    it('validates its options', () => {
      using dev = VgemDevice.open();
      using buf = dev.createBuffer({ width: 4, height: 4 });
      shouldThrow(() => buf.attachFence({ write: 1 as unknown as boolean }), InvalidArgTypeError);
    });
  });

  describe('VgemDevice#importDmaBuf() (PRIME import)', () => {
    it("imports another file's buffer: a fence attached through the import is on the dma-buf", async () => {
      using a = VgemDevice.open();
      using b = VgemDevice.open(a.path);
      using buf = a.createBuffer({ width: 16, height: 16 });
      using dmabuf = buf.exportDmaBuf();
      using imported = b.importDmaBuf(dmabuf);
      expect(imported).to.be.instanceOf(VgemBuffer);
      expect(imported.device).to.equal(b);
      expect(imported.size).to.equal(dmabuf.size);
      expect([imported.width, imported.height, imported.bpp, imported.pitch]).to.deep.equal([0, 0, 0, 0]);
      const fence = imported.attachFence({ write: true });
      using busy = dmabuf.exportSyncFile('read');
      expect(busy.isSignaled()).to.equal(false);
      // The exporter's own handle sees the importer's fence too (one reservation object).
      shouldThrow(() => buf.attachFence({ write: true }), ExplicitSyncError);
      expect(fence.signal()).to.equal(true);
      await busy.wait({ timeoutMs: 10_000 });
    });

    it('the same buffer again in the same file is the same VgemBuffer (DRM has one handle per file)', () => {
      using dev = VgemDevice.open();
      using buf = dev.createBuffer({ width: 8, height: 8 });
      using dmabuf = buf.exportDmaBuf();
      expect(dev.importDmaBuf(dmabuf)).to.equal(buf);
      buf.close();
      // Once closed, an import makes a new buffer (a new handle).
      using again = dev.importDmaBuf(dmabuf);
      expect(again).to.not.equal(buf);
      expect(again.handle).to.be.greaterThan(0);
    });

    it('refuses what is not a DmaBuf (TypeError) and a closed one (ClosedError)', () => {
      using dev = VgemDevice.open();
      const e = shouldThrow(() => dev.importDmaBuf(3 as never), InvalidArgTypeError);
      expect(e.code).to.equal('ERR_INVALID_ARG_TYPE');
      const buf = dev.createBuffer({ width: 8, height: 8 });
      const dmabuf = buf.exportDmaBuf();
      buf.close();
      dmabuf.close();
      shouldThrow(() => dev.importDmaBuf(dmabuf), ClosedError);
      dev.close();
      using other = VgemDevice.open();
      using buf2 = other.createBuffer({ width: 8, height: 8 });
      using live = buf2.exportDmaBuf();
      shouldThrow(() => dev.importDmaBuf(live), ClosedError);
    });
  });

  describe('VgemBuffer#close()', () => {
    it('frees the handle; the buffer then throws ClosedError; its dma-buf and fences live on', () => {
      using dev = VgemDevice.open();
      const buf = dev.createBuffer({ width: 4, height: 4 });
      using dma = buf.exportDmaBuf();
      const fence = buf.attachFence({ write: true });
      buf.close();
      buf.close();
      expect(buf.handle).to.equal(-1);
      expect(buf.closed).to.equal(true);
      shouldThrow(() => buf.exportDmaBuf(), ClosedError);
      shouldThrow(() => buf.attachFence(), ClosedError);
      using sf = dma.exportSyncFile('read');
      expect(sf.isSignaled()).to.equal(false);
      expect(fence.signal()).to.equal(true);
      expect(sf.isSignaled()).to.equal(true);
    });
  });

  describe('what vgem does on its own (README: "vgem: fences you signal yourself")', () => {
    it('a fence nobody signals completes after ~10 s without an error; signal() then says it already was', async function () {
      this.timeout(60_000);
      using dev = VgemDevice.open();
      using buf = dev.createBuffer({ width: 4, height: 4 });
      using dma = buf.exportDmaBuf();
      const fence = buf.attachFence({ write: true });
      using sf = dma.exportSyncFile('read');
      const t0 = performance.now();
      await sf.wait({ timeoutMs: 30_000 });
      const ms = performance.now() - t0;
      expect(ms).to.be.greaterThan(8_000); // VGEM_FENCE_TIMEOUT is 10 s; the wait started just after
      expect(sf.info()).to.include({ status: 'signaled', error: undefined });
      expect(fence.signal()).to.equal(false); // the kernel answers ETIMEDOUT
      expect(fence.signaled).to.equal(true);
    });
    it('closing the device completes its pending fences, also without an error', () => {
      const dev = VgemDevice.open();
      const buf = dev.createBuffer({ width: 4, height: 4 });
      using dma = buf.exportDmaBuf();
      buf.attachFence({ write: true });
      using sf = dma.exportSyncFile('read');
      expect(sf.isSignaled()).to.equal(false);
      dev.close();
      expect(sf.info()).to.include({ status: 'signaled', error: undefined });
    });
  });

  describe('VgemDevice#close()', () => {
    it('ends its buffers and fences (ClosedError), and vgem signals the pending fences', () => {
      const dev = VgemDevice.open();
      const buf: VgemBuffer = dev.createBuffer({ width: 4, height: 4 });
      const dma = buf.exportDmaBuf();
      const fence = buf.attachFence({ write: true });
      const sf = dma.exportSyncFile('read');
      try {
        expect(sf.isSignaled()).to.equal(false);
        dev.close();
        dev.close();
        expect(dev.fd).to.equal(-1);
        expect(buf.closed).to.equal(true);
        expect(shouldThrow(() => buf.exportDmaBuf(), ClosedError).code).to.equal('EBADF');
        shouldThrow(() => fence.signal(), ClosedError);
        shouldThrow(() => dev.createBuffer({ width: 1, height: 1 }), ClosedError);
        buf.close(); // no GEM_CLOSE on a closed device: nothing to do
        expect(sf.isSignaled()).to.equal(true);
        expect(dma.map().length).to.equal(dma.size); // the dma-buf outlives the device
      } finally {
        sf.close();
        dma.close();
        dev.close();
      }
    });
  });
});
