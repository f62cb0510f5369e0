// DmaBuf against the VM's real kernel: the implicit↔explicit bridge on vgem buffers (fences that
// userspace signals), udmabuf and dma-heap buffers, CPU mappings. vgem signals a fence itself after
// about 10 s: every test signals its fences well before that.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import {
  AbortError,
  ClosedError,
  DmaBuf,
  DmaHeap,
  ExplicitSyncError,
  SyncFile,
  TimeoutError,
  Udmabuf,
  UnsupportedError,
  VgemDevice,
  VgemFence,
  monotonicNow,
} from 'explicit-sync';
import { native } from '../../dist/native.js';
import { settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';
import { describeWith, expectMissing, expectNoDmaHeap, expectNoUdmabuf, itWith } from './kernel-features.mjs';

describe('DmaBuf (kernel)', () => {
  let dev: VgemDevice;
  const fences: VgemFence[] = [];
  const owned: { close(): void }[] = [];

  /** Registers objects for closing after the test. */
  function track<T extends { close(): void }>(x: T): T {
    owned.push(x);
    return x;
  }

  /** A vgem buffer exported as a dma-buf, with a way to attach fences to it. */
  function vgemBuf(): { dma: DmaBuf; attach(write: boolean): VgemFence } {
    const buf = track(dev.createBuffer({ width: 32, height: 32 }));
    const dma = track(buf.exportDmaBuf());
    return {
      dma,
      attach(write: boolean) {
        const f = buf.attachFence({ write });
        fences.push(f);
        return f;
      },
    };
  }

  before(() => {
    dev = VgemDevice.open();
  });
  afterEach(() => {
    for (const f of fences.splice(0)) if (!dev.closed) f.signal();
    for (const x of owned.splice(0).reverse()) x.close();
  });
  after(() => {
    dev.close();
  });

  describe('DmaBuf#exportSyncFile()', () => {
    it('a buffer without fences gives a signalled sync file', () => {
      const { dma } = vgemBuf();
      for (const access of ['read', 'write', 'readwrite'] as const) {
        using sf = dma.exportSyncFile(access);
        expect(sf.isSignaled()).to.equal(true);
      }
      expect(dma.supportsSyncFile()).to.equal(true);
    });

    it('with a pending write fence: every access waits; wait resolves on signal', async () => {
      const { dma, attach } = vgemBuf();
      const fence = attach(true);
      const read = track(dma.exportSyncFile('read'));
      const write = track(dma.exportSyncFile('write'));
      expect(read.isSignaled()).to.equal(false);
      expect(write.isSignaled()).to.equal(false);
      const p = read.wait({ timeoutMs: 8000 });
      expect(await settlesWithin(p, 100)).to.equal(false);
      fence.signal();
      await p;
      expect(write.isSignaled()).to.equal(true);
    });

    it('with a pending read fence: a read export does not wait for it, a write export does', () => {
      const { dma, attach } = vgemBuf();
      const fence = attach(false);
      using read = dma.exportSyncFile('read');
      using write = dma.exportSyncFile('write');
      using rw = dma.exportSyncFile('readwrite');
      expect(read.isSignaled()).to.equal(true);
      expect(write.isSignaled()).to.equal(false);
      expect(rw.isSignaled()).to.equal(false);
      fence.signal();
      expect(write.isSignaled()).to.equal(true);
    });

    it('is a snapshot: fences attached later are not in it', () => {
      const { dma, attach } = vgemBuf();
      using before = dma.exportSyncFile('write');
      attach(true);
      expect(before.isSignaled()).to.equal(true);
      using after = dma.exportSyncFile('write');
      expect(after.isSignaled()).to.equal(false);
    });
  });

  describe('DmaBuf#importSyncFile()', () => {
    it('as a write fence: a later export (any access) waits for it', async () => {
      const src = vgemBuf();
      const fence = src.attach(true);
      using sf = src.dma.exportSyncFile('read');
      const { dma } = vgemBuf();
      dma.importSyncFile(sf, 'write');
      using read = dma.exportSyncFile('read');
      expect(read.isSignaled()).to.equal(false);
      expect(read.info().fences.some((f) => f.driver === 'vgem')).to.equal(true);
      const p = read.wait({ timeoutMs: 8000 });
      fence.signal();
      await p;
      using again = dma.exportSyncFile('write');
      expect(again.isSignaled()).to.equal(true);
    });

    it('as a read fence: later readers do not wait, writers do', () => {
      const src = vgemBuf();
      const fence = src.attach(true);
      using sf = src.dma.exportSyncFile('read');
      const { dma } = vgemBuf();
      dma.importSyncFile(sf, 'read');
      using read = dma.exportSyncFile('read');
      using write = dma.exportSyncFile('write');
      expect(read.isSignaled()).to.equal(true);
      expect(write.isSignaled()).to.equal(false);
      fence.signal();
      expect(write.isSignaled()).to.equal(true);
    });

    itWith(['udmabuf'], 'round-trips into a udmabuf (explicit fence in, implicit out)', async () => {
      const src = vgemBuf();
      const fence = src.attach(true);
      using sf = src.dma.exportSyncFile('read');
      using u = Udmabuf.create(4096);
      u.importSyncFile(sf);
      using out = u.exportSyncFile('read');
      expect(out.isSignaled()).to.equal(false);
      const p = out.wait({ timeoutMs: 8000 });
      fence.signal();
      await p;
    }, expectNoUdmabuf);

    it('takes an array of sync files: one fence that signals after all of them', async () => {
      const a = vgemBuf();
      const b = vgemBuf();
      const fa = a.attach(true);
      const fb = b.attach(true);
      using sa = a.dma.exportSyncFile('read');
      using sb = b.dma.exportSyncFile('read');
      const { dma } = vgemBuf();
      dma.importSyncFile([sa, sb], 'write');
      using read = dma.exportSyncFile('read');
      expect(read.isSignaled()).to.equal(false);
      fa.signal();
      expect(await settlesWithin(read.wait({ timeoutMs: 8000 }), 100)).to.equal(false);
      fb.signal();
      await read.wait({ timeoutMs: 8000 });
      expect([sa.closed, sb.closed]).to.deep.equal([false, false]);
    });

    it('a closed SyncFile throws ClosedError', () => {
      const { dma } = vgemBuf();
      const sf = dma.exportSyncFile('read');
      sf.close();
      shouldThrow(() => dma.importSyncFile(sf), ClosedError);
    });
  });

  describe('DmaBuf#beginCpuAccessAsync()', () => {
    it('waits on the event loop for a pending write fence, then begins CPU access', async () => {
      const { dma, attach } = vgemBuf();
      const fence = attach(true);
      const p = dma.beginCpuAccessAsync('read', { timeoutMs: 8000 });
      // The event loop stays free (a blocking DMA_BUF_IOCTL_SYNC would stall this timer).
      expect(await settlesWithin(p, 150)).to.equal(false);
      fence.signal();
      await p;
      dma.endCpuAccess('read');
    });

    it('begins, not TimeoutError, when the loop was busy past the timeout but the fence signalled inside it', async () => {
      const { dma, attach } = vgemBuf();
      const fence = attach(true);
      const p = dma.beginCpuAccessAsync('read', { timeoutMs: 200 });
      fence.signal();
      const end = performance.now() + 600; // timers run before poll: the timer sees the deadline first
      while (performance.now() < end);
      await p;
      dma.endCpuAccess('read');
    });

    itWith(['syncFileDeadline'], 'takes deadline, signal and fenceDeadline like SyncFile#wait', async () => {
      const { dma, attach } = vgemBuf();
      const fence = attach(true);
      const t0 = performance.now();
      await shouldReject(dma.beginCpuAccessAsync('write', { deadline: monotonicNow() + 100_000_000n }), TimeoutError);
      expect(performance.now() - t0).to.be.at.least(95);
      const ac = new AbortController();
      const p = dma.beginCpuAccessAsync('write', { signal: ac.signal, fenceDeadline: monotonicNow() + 16_000_000n });
      ac.abort();
      await shouldReject(p, AbortError);
      const q = dma.beginCpuAccessAsync('read', { fenceDeadline: monotonicNow() + 16_000_000n, timeoutMs: 8000 });
      fence.signal();
      await q;
      dma.endCpuAccess('read');
    }, async () => {
      // Before Linux 6.7: deadline and signal work, fenceDeadline is an UnsupportedError.
      const { dma, attach } = vgemBuf();
      const fence = attach(true);
      await shouldReject(dma.beginCpuAccessAsync('write', { deadline: monotonicNow() + 100_000_000n }), TimeoutError);
      const ac = new AbortController();
      const p = dma.beginCpuAccessAsync('write', { signal: ac.signal });
      ac.abort();
      await shouldReject(p, AbortError);
      await shouldReject(dma.beginCpuAccessAsync('read', { fenceDeadline: monotonicNow() + 16_000_000n, timeoutMs: 8000 }), UnsupportedError);
      fence.signal();
    });

    it('rejects with TimeoutError when the fence does not signal in time', async () => {
      const { dma, attach } = vgemBuf();
      attach(true);
      const e = await shouldReject(dma.beginCpuAccessAsync('write', { timeoutMs: 100 }), TimeoutError);
      expect(e.code).to.equal('ETIME');
    });
  });

  describe('DmaBuf#map()', () => {
    it('two dma-bufs of one vgem buffer see the same bytes', () => {
      const buf = track(dev.createBuffer({ width: 16, height: 16 }));
      const a = track(buf.exportDmaBuf());
      const b = track(DmaBuf.fromFd(a.fd, { dup: true }));
      expect(b.size).to.equal(a.size);
      a.beginCpuAccess('write');
      a.map().write('explicit', 100);
      a.endCpuAccess('write');
      b.beginCpuAccess('read');
      expect(b.map().subarray(100, 108).toString()).to.equal('explicit');
      b.endCpuAccess('read');
    });

    itWith(['udmabuf'], 'udmabuf: zero-filled, page-sized, CPU writes read back through a second mapping', () => {
      using u = Udmabuf.create(5000);
      expect(u.size).to.equal(8192);
      const m = u.map();
      expect(m.every((x) => x === 0)).to.equal(true);
      u.beginCpuAccess();
      for (let i = 0; i < m.length; i += 512) m[i] = i & 0xff || 1;
      u.endCpuAccess();
      using d = u.dup();
      const m2 = d.map();
      expect(m2).to.not.equal(m);
      for (let i = 0; i < m.length; i += 512) expect(m2[i]).to.equal(i & 0xff || 1);
    }, expectNoUdmabuf);

    itWith(['dma_heap'], 'dma-heap: list() has system; allocate() maps and reads back', () => {
      expect(DmaHeap.list()).to.include('system');
      using heap = DmaHeap.open('system');
      expect(heap.name).to.equal('system');
      using buf = heap.allocate(10_000);
      expect(buf.size).to.equal(12288);
      buf.beginCpuAccess('write');
      buf.map().fill(0x5a);
      buf.endCpuAccess('write');
      using copy = DmaBuf.fromFd(buf.fd, { dup: true });
      copy.beginCpuAccess('read');
      expect(copy.map().every((x) => x === 0x5a)).to.equal(true);
      copy.endCpuAccess('read');
      using sf = buf.exportSyncFile();
      expect(sf.isSignaled()).to.equal(true);
    }, expectNoDmaHeap);

    itWith(['udmabuf'], 'after close() the Buffer reads zeros and absorbs writes; the memory is untouched', () => {
      using u = Udmabuf.create(4096);
      const other = u.dup();
      const m = other.map();
      m.fill(9);
      other.close();
      expect(m.every((x) => x === 0)).to.equal(true);
      m.fill(1);
      expect(u.map().every((x) => x === 9)).to.equal(true);
    }, expectNoUdmabuf);
  });

  describe('DmaBuf.fromFd()', () => {
    it('takes ownership by default: close() closes the fd it was given', () => {
      const { dma } = vgemBuf();
      const fd = native.dup(dma.fd);
      const wrapped = DmaBuf.fromFd(fd);
      expect(wrapped.fd).to.equal(fd);
      expect(wrapped.size).to.equal(dma.size);
      wrapped.close();
      expect(() => fstatSync(fd)).to.throw();
    });

    it('says a sync_file, a DRM device, a pipe and a regular file are not dma-bufs (ENOTTY)', () => {
      const dir = mkdtempSync('/tmp/es-');
      execFileSync('mkfifo', [join(dir, 'p')]);
      const pipe = openSync(join(dir, 'p'), fsc.O_RDWR | fsc.O_NONBLOCK);
      const file = openSync('/proc/self/status', 'r');
      const { dma } = vgemBuf();
      const sf = track(dma.exportSyncFile('read'));
      try {
        for (const fd of [sf.fd, dev.fd, pipe, file]) {
          const e = shouldThrow(() => DmaBuf.fromFd(fd, { dup: true }), ExplicitSyncError);
          expect(e.code).to.equal('ENOTTY');
        }
        // And the sync_file side: a dma-buf is not a sync_file.
        expect(shouldThrow(() => SyncFile.fromFd(dma.fd, { dup: true }), ExplicitSyncError).code).to.equal('ENOTTY');
      } finally {
        closeSync(pipe);
        closeSync(file);
        rmSync(dir, { recursive: true });
      }
    });
  });

  describe('DmaBuf#close()', () => {
    itWith(['udmabuf'], 'every method throws ClosedError afterwards', () => {
      using u = Udmabuf.create(4096);
      using sf = u.exportSyncFile();
      const d = u.dup();
      d.close();
      d.close();
      expect(d.fd).to.equal(-1);
      for (const fn of [
        () => d.exportSyncFile('read'),
        () => d.importSyncFile(sf),
        () => d.map(),
        () => d.beginCpuAccess(),
        () => d.endCpuAccess(),
        () => d.dup(),
      ])
        expect(shouldThrow(fn, ClosedError).code).to.equal('EBADF');
    }, expectNoUdmabuf);
  });

  describeWith(['udmabuf', 'dma_heap'], 'DmaHeap / Udmabuf lifetimes', () => {
    it('buffers outlive the heap and the udmabuf device that made them', () => {
      const heap = DmaHeap.open();
      const a = heap.allocate(4096);
      heap.close();
      shouldThrow(() => heap.allocate(4096), ClosedError);
      const udev = Udmabuf.open();
      const b = udev.create(4096);
      udev.close();
      shouldThrow(() => udev.create(4096), ClosedError);
      try {
        a.map()[0] = 1;
        b.map()[0] = 2;
        expect(a.map()[0]! + b.map()[0]!).to.equal(3);
      } finally {
        a.close();
        b.close();
      }
    });
  }, () => expectMissing(['udmabuf', 'dma_heap']));
});
