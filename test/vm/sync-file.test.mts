// SyncFile against the VM's real kernel: fences from vgem buffers (exported through dma-buf),
// signalled by VgemFence#signal(). vgem signals a fence itself after about 10 s, so every test
// signals its fences well before that and never relies on one staying unsignalled for long.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readlinkSync } from 'node:fs';
import {
  AbortError,
  ClosedError,
  DmaBuf,
  ExplicitSyncError,
  SyncFile,
  TimeoutError,
  UnsupportedError,
  VgemBuffer,
  VgemDevice,
  VgemFence,
  monotonicNow,
} from 'explicit-sync';
import { native } from '../../dist/native.js';
import { settlesWithin, shouldReject, shouldThrow, sleep, waitSetEntries } from '../helpers.mjs';
import { itWith } from './kernel-features.mjs';

interface Fenced {
  buf: VgemBuffer;
  dma: DmaBuf;
  fence: VgemFence;
  /** A sync file of the buffer's fences (unsignalled until fence.signal()). */
  sf: SyncFile;
  close(): void;
}

describe('SyncFile (kernel)', () => {
  let dev: VgemDevice;
  const open: Fenced[] = [];

  /** A buffer with an unsignalled write fence, and the sync file exported from it. */
  function fenced(): Fenced {
    const buf = dev.createBuffer({ width: 16, height: 16 });
    const dma = buf.exportDmaBuf();
    const fence = buf.attachFence({ write: true });
    const sf = dma.exportSyncFile('read');
    const f: Fenced = {
      buf,
      dma,
      fence,
      sf,
      close() {
        fence.signal();
        sf.close();
        dma.close();
        buf.close();
      },
    };
    open.push(f);
    return f;
  }

  before(() => {
    dev = VgemDevice.open();
  });
  afterEach(() => {
    for (const f of open.splice(0)) f.close();
  });
  after(() => {
    dev.close();
  });

  describe('SyncFile#isSignaled()', () => {
    it('is false while the vgem fence is pending and true once it is signalled', () => {
      const { sf, fence } = fenced();
      expect(sf.isSignaled()).to.equal(false);
      expect(fence.signal()).to.equal(true);
      expect(sf.isSignaled()).to.equal(true);
    });
  });

  describe('SyncFile#wait()', () => {
    it('stays pending until the fence is signalled, then resolves', async () => {
      const { sf, fence } = fenced();
      const p = sf.wait({ timeoutMs: 8000 });
      expect(await settlesWithin(p, 200)).to.equal(false);
      fence.signal();
      await p;
    });

    it('resolves at once for a signalled fence (fast path), even with timeoutMs 0', async () => {
      const { sf, fence } = fenced();
      fence.signal();
      await sf.wait({ timeoutMs: 0 });
    });

    it('rejects with TimeoutError (ETIME) no earlier than the timeout, within seconds; the fence stays usable', async () => {
      const { sf, fence } = fenced();
      const t0 = performance.now();
      const e = await shouldReject(sf.wait({ timeoutMs: 300 }), TimeoutError);
      const elapsed = performance.now() - t0;
      expect(e.code).to.equal('ETIME');
      expect(e.errno).to.equal(-62);
      expect(elapsed).to.be.at.least(299);
      expect(elapsed).to.be.below(5000);
      const again = sf.wait({ timeoutMs: 8000 });
      fence.signal();
      await again;
    });

    it('resolves, not TimeoutError, when the loop was busy past the timeout but the fence signalled inside it', async () => {
      const { sf, fence } = fenced();
      const waits = [sf.wait({ timeoutMs: 200 }), sf.wait({ timeoutMs: 8000 })];
      fence.signal();
      // Block the loop past the 200 ms timeout: the poll readiness and the timer are then due in the
      // same loop iteration, and libuv runs timers before poll. The timer must take a last look.
      const end = performance.now() + 600;
      while (performance.now() < end);
      await Promise.all(waits);
    });

    it('rejects with AbortError when aborted; other waits on the fence go on', async () => {
      const { sf, fence } = fenced();
      const ac = new AbortController();
      const aborted = sf.wait({ signal: ac.signal });
      const other = sf.wait({ timeoutMs: 8000 });
      ac.abort('enough');
      const e = await shouldReject(aborted, AbortError);
      expect(e.code).to.equal('ABORT_ERR');
      expect(e.cause).to.equal('enough');
      fence.signal();
      await other;
    });

    it('close() rejects pending waits with ClosedError', async () => {
      const { sf } = fenced();
      const waits = [sf.wait(), sf.wait({ timeoutMs: 8000 })];
      sf.close();
      for (const p of waits) expect((await shouldReject(p, ClosedError)).code).to.equal('EBADF');
    });

    it('serves many concurrent waits on the same and on different fences', async () => {
      const fs = [fenced(), fenced(), fenced()];
      const waits = fs.flatMap(({ sf }) => Array.from({ length: 20 }, () => sf.wait({ timeoutMs: 8000 })));
      const copies = fs.map(({ sf }) => sf.dup());
      try {
        waits.push(...copies.map((c) => c.wait({ timeoutMs: 8000 })));
        await sleep(50);
        for (const f of fs) f.fence.signal();
        await Promise.all(waits);
      } finally {
        for (const c of copies) c.close();
      }
    });
  });

  describe('SyncFile#wait(): deadline, fenceDeadline, until (issue 18)', () => {
    it('a deadline 50 ms ahead rejects an unsignalled vgem fence with TimeoutError, no earlier, within seconds', async () => {
      const { sf, fence } = fenced();
      const t0 = performance.now();
      const e = await shouldReject(sf.wait({ deadline: monotonicNow() + 50_000_000n }), TimeoutError);
      const elapsed = performance.now() - t0;
      expect([e.code, e.syscall, e.operation]).to.deep.equal(['ETIME', 'poll', 'wait']);
      expect(elapsed).to.be.at.least(45);
      expect(elapsed).to.be.below(5000);
      const again = sf.wait({ deadline: monotonicNow() + 8_000_000_000n });
      fence.signal();
      await again;
    });

    itWith(['syncFileDeadline'], 'fenceDeadline is set on the fence (SYNC_IOC_SET_DEADLINE) and the wait goes on until the signal', async () => {
      const { sf, fence } = fenced();
      const p = sf.wait({ fenceDeadline: monotonicNow() + 16_000_000n, timeoutMs: 8000 });
      expect(await settlesWithin(p, 100)).to.equal(false);
      fence.signal();
      await p;
    }, async () => {
      // Before Linux 6.7: the hint cannot be sent, and the wait says so rather than ignoring it.
      const { sf } = fenced();
      await shouldReject(sf.wait({ fenceDeadline: monotonicNow() + 16_000_000n, timeoutMs: 8000 }), UnsupportedError);
    });

    it("until: 'available' is refused; a wall-clock deadline is a RangeError", async () => {
      const { sf } = fenced();
      await shouldReject(sf.wait({ until: 'available' as 'signaled' }), TypeError);
      await shouldReject(sf.wait({ deadline: BigInt(Date.now()) * 1_000_000n }), RangeError);
    });

    it('waitSync({ deadline }) throws TimeoutError; waitSync({ timeoutMs }) returns once signalled', () => {
      const { sf, fence } = fenced();
      shouldThrow(() => sf.waitSync({ deadline: monotonicNow() + 50_000_000n }), TimeoutError);
      fence.signal();
      sf.waitSync({ timeoutMs: 1000 });
    });
  });

  describe('SyncFile#waitSync()', () => {
    it('throws TimeoutError after the timeout, returns once signalled', () => {
      const { sf, fence } = fenced();
      const t0 = performance.now();
      expect(shouldThrow(() => sf.waitSync(100), TimeoutError).code).to.equal('ETIME');
      expect(performance.now() - t0).to.be.at.least(99);
      fence.signal();
      sf.waitSync(1000);
    });
  });

  describe('SyncFile#info()', () => {
    it('names the vgem fence, active then signalled with a timestamp', () => {
      const { sf, fence } = fenced();
      const before = sf.info();
      expect(before.status).to.equal('active');
      expect(before.error).to.equal(undefined);
      expect(before.name).to.be.a('string');
      expect(before.fences).to.have.length(1);
      expect(before.fences[0]!.driver).to.equal('vgem');
      expect(before.fences[0]!.timeline).to.be.a('string');
      expect(before.fences[0]!.status).to.equal('active');
      expect(before.fences[0]!.timestampNs).to.equal(undefined);
      const t0 = monotonicNow();
      fence.signal();
      const after = sf.info();
      expect(after.status).to.equal('signaled');
      expect(after.fences[0]!.status).to.equal('signaled');
      const ts = after.fences[0]!.timestampNs!;
      expect(typeof ts).to.equal('bigint');
      expect(ts >= t0 && ts <= monotonicNow()).to.equal(true);
    });
  });

  describe('SyncFile.merge()', () => {
    it('signalled + unsignalled is unsignalled until the other signals', async () => {
      const a = fenced();
      const b = fenced();
      a.fence.signal();
      using merged = a.sf.merge(b.sf);
      expect(merged.isSignaled()).to.equal(false);
      const p = merged.wait({ timeoutMs: 8000 });
      b.fence.signal();
      await p;
      expect(merged.info().status).to.equal('signaled');
    });

    it('of several pending fences holds them all, and signals only once all have', () => {
      const fs = [fenced(), fenced(), fenced()];
      using merged = SyncFile.merge(...fs.map((f) => f.sf));
      const info = merged.info();
      expect(info.fences).to.have.length(3);
      expect(info.fences.every((f) => f.driver === 'vgem' && f.status === 'active')).to.equal(true);
      fs[0]!.fence.signal();
      fs[1]!.fence.signal();
      expect(merged.isSignaled()).to.equal(false);
      fs[2]!.fence.signal();
      expect(merged.isSignaled()).to.equal(true);
    });

    it('takes a name; one file gives a duplicate; the inputs stay open', () => {
      const a = fenced();
      const b = fenced();
      using named = a.sf.merge(b.sf, { name: 'bridge' });
      expect(named.info().name).to.equal('bridge');
      using one = SyncFile.merge(a.sf);
      expect(one.fd).to.not.equal(a.sf.fd);
      expect(a.sf.closed || b.sf.closed).to.equal(false);
    });

    it('a closed input throws ClosedError', () => {
      const a = fenced();
      const b = fenced();
      b.sf.close();
      shouldThrow(() => a.sf.merge(b.sf), ClosedError);
    });
  });

  describe('SyncFile#setDeadline()', () => {
    itWith(['syncFileDeadline'], 'accepts an absolute CLOCK_MONOTONIC bigint and a relative number of ms (Linux ≥ 6.7)', () => {
      const { sf } = fenced();
      expect(sf.supportsDeadline()).to.equal(true);
      sf.setDeadline(monotonicNow() + 16_000_000n);
      sf.setDeadline(16);
      sf.setDeadline(0);
    }, () => { const { sf } = fenced(); expect(sf.supportsDeadline()).to.equal(false); expect(() => sf.setDeadline(16)).to.throw(UnsupportedError); });
  });

  describe('SyncFile.fromFd()', () => {
    it('wraps a real sync_file (dup: true leaves the fd yours)', () => {
      const { sf, fence } = fenced();
      const copy = SyncFile.fromFd(sf.fd, { dup: true });
      try {
        expect(copy.fd).to.not.equal(sf.fd);
        expect(copy.info().fences[0]!.driver).to.equal('vgem');
        fence.signal();
        expect(copy.isSignaled()).to.equal(true);
      } finally {
        copy.close();
      }
    });

    it('takes ownership by default: close() closes the fd it was given', () => {
      const { sf } = fenced();
      const fd = native.dup(sf.fd);
      const owned = SyncFile.fromFd(fd);
      expect(owned.fd).to.equal(fd);
      owned.close();
      expect(() => fstatSync(fd)).to.throw();
    });

    it('says a dma-buf, a DRM device and a regular file are not sync_files (ENOTTY)', () => {
      const { dma } = fenced();
      const file = openSync('/proc/self/status', 'r');
      try {
        for (const fd of [dma.fd, dev.fd, file]) {
          const e = shouldThrow(() => SyncFile.fromFd(fd, { dup: true }), ExplicitSyncError);
          expect(e.code).to.equal('ENOTTY');
          expect(e.message).to.contain('not a sync_file');
        }
      } finally {
        closeSync(file);
      }
    });
  });

  describe('SyncFile#dup()', () => {
    it('is the same fence on its own fd: closing one leaves the other working', async () => {
      const { sf, fence } = fenced();
      const copy = sf.dup();
      try {
        sf.close();
        const p = copy.wait({ timeoutMs: 8000 });
        fence.signal();
        await p;
      } finally {
        copy.close();
      }
    });
  });

  describe('SyncFile#close()', () => {
    it('takes the fd out of the fd wait set though another process still holds the sync_file', async () => {
      // The kernel drops an epoll entry only when the file's last fd closes: a peer keeping its
      // copy (a client that sent its fence) would otherwise leave one entry per file and fd number.
      const { sf, fence } = fenced();
      const peer = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', sf.fd] });
      const exited = new Promise((resolve) => peer.once('exit', resolve));
      try {
        await new Promise((resolve, reject) => {
          peer.once('spawn', resolve);
          peer.once('error', reject);
        });
        expect(readlinkSync(`/proc/${peer.pid}/fd/3`), 'the peer holds the file').to.equal('anon_inode:sync_file');
        const ac = new AbortController();
        const p = sf.wait({ signal: ac.signal });
        const fd = sf.fd;
        expect(waitSetEntries()).to.include(fd);
        ac.abort();
        await shouldReject(p, AbortError);
        sf.close();
        expect(waitSetEntries()).to.not.include(fd);
        expect(fence.signal()).to.equal(true); // the peer's copy signals; nothing here is armed for it
        await sleep(20);
      } finally {
        peer.kill();
        await exited;
      }
    });

    it('every method throws ClosedError afterwards', async () => {
      const { sf } = fenced();
      sf.close();
      sf.close();
      for (const fn of [() => sf.isSignaled(), () => sf.info(), () => sf.setDeadline(1), () => sf.dup()])
        shouldThrow(fn, ClosedError);
      await shouldReject(sf.wait(), ClosedError);
    });
  });
});
