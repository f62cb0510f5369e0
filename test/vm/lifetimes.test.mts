// Lifetimes against the real kernel: the garbage-collector backstop (in a child process, since the
// root hooks fail on EXPLICIT_SYNC_LEAK warnings), double close, close with pending waits.
import { expect } from 'chai';
import { closeSync, openSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import {
  ClosedError,
  Device,
  FdLostError,
  DmaBuf,
  DmaHeap,
  SyncFile,
  Syncobj,
  Timeline,
  Udmabuf,
  VgemDevice,
} from 'explicit-sync';
import { native } from '../../dist/native.js';
import { fdWaitSetFd } from '../../dist/fd-poller.js';
import { openFds, shouldReject, shouldThrow } from '../helpers.mjs';
import { childScript, describeRun, runChild, type ChildRun } from './child-helpers.mjs';
import { eventfdCount, openTimelineDevice, vgemFence } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

interface GcResult {
  n: number;
  objects: number;
  collected: boolean;
  /** Objects the leak warnings reported (the sum of their `count`s). */
  warnings: number;
  /** Warnings emitted: the first leak, then at most one summary per second. */
  warningLines: number;
  collectMs: number;
  expectedWarnings: number;
  fdsBefore: number;
  fdsPeak: number;
  fdsAfter: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssAfterMiB: number;
  firstWarning: string | undefined;
  summaryWarning: string | undefined;
  reuse: { sameNumber: boolean; otherStillOpen: boolean; warnings: number; originalStillWorks: boolean };
  pending: {
    beforeSignal: { warnings: number; sf: string; tl: string };
    afterSignal: { sf: string; tl: string };
    warningsAfter: number;
    fdsBefore: number;
    fdsAfter: number;
  };
  fdReuse: { sameNumber: boolean; wait: string; warnings: number };
}

describeWith(['timeline'], 'lifetimes (kernel)', () => {
  describe('garbage collection of objects dropped without close() (child process, --expose-gc)', function () {
    this.timeout(180000);
    let run: ChildRun<GcResult>;
    let r: GcResult;
    before(async () => {
      const n = process.env['EXPLICIT_SYNC_GC_OBJECTS'] ?? '200';
      run = await runChild<GcResult>(childScript('gc'), [n], { nodeArgs: ['--expose-gc', '--no-warnings'], timeoutMs: 170000 });
      expect(run.code, describeRun(run)).to.equal(0);
      expect(run.result, describeRun(run)).to.be.an('object');
      r = run.result!;
      console.log(
        `      ${r.objects} objects dropped: fds ${r.fdsBefore} → ${r.fdsPeak} → ${r.fdsAfter} after GC; ` +
          `RSS ${r.rssBeforeMiB} → ${r.rssPeakMiB} → ${r.rssAfterMiB} MiB; ${r.warnings} objects in ${r.warningLines} EXPLICIT_SYNC_LEAK warnings`,
      );
    });

    it('closes every fd and destroys every handle; EXPLICIT_SYNC_LEAK warnings: the first, then summaries with counts', () => {
      expect(r.collected).to.equal(true);
      expect(r.warnings).to.equal(r.expectedWarnings);
      // One at once, then at most one per second (plus one for a window cut by the end of the wait).
      expect(r.warningLines).to.be.at.least(2).and.at.most(2 + Math.ceil(r.collectMs / 1000));
      expect(r.fdsPeak - r.fdsBefore).to.be.greaterThanOrEqual(r.n * 2);
      expect(r.fdsAfter).to.equal(r.fdsBefore);
      expect(r.firstWarning).to.match(/^(SyncFile|DmaBuf|Device \S+|Timeline|Syncobj) \((fd|handle) \d+\) was garbage-collected without close\(\)/);
      expect(r.firstWarning).to.include('EXPLICIT_SYNC_TRACE_LEAKS=1');
      expect(r.summaryWarning).to.match(/^\d[\d,]* more objects were garbage-collected without close\(\) since .*\d[\d,]* (SyncFile|DmaBuf|Timeline|Syncobj)/);
    });

    it('never closes an fd number that a closed object gave up and someone else reuses', () => {
      expect(r.reuse.sameNumber).to.equal(true);
      expect(r.reuse.otherStillOpen).to.equal(true);
      expect(r.reuse.warnings).to.equal(1); // the dup:true wrapper only
      expect(r.reuse.originalStillWorks).to.equal(true);
    });

    it('keeps an object with a pending wait alive: the wait resolves, then the object is collected', () => {
      expect(r.pending.beforeSignal).to.deep.equal({ warnings: 0, sf: 'pending', tl: 'pending' });
      expect(r.pending.afterSignal).to.deep.equal({ sf: 'resolved', tl: 'resolved' });
      expect(r.pending.warningsAfter).to.equal(2);
      expect(r.pending.fdsAfter).to.equal(r.pending.fdsBefore);
    });

    it('a new object on a collected one\'s fd number waits normally', () => {
      expect(r.fdReuse.wait).to.equal('resolved');
      expect(r.fdReuse.warnings).to.equal(1);
    });
  });

  describe('close()', () => {
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

    it('twice (and dispose after close) is harmless for every kind of object', () => {
      const before = openFds();
      const heap = DmaHeap.open();
      const udmabuf = Udmabuf.open();
      const buf = vgem.createBuffer({ width: 4, height: 4 });
      const dmabuf = buf.exportDmaBuf();
      const objects: { close(): void; [Symbol.dispose](): void }[] = [
        Device.open(dev.path),
        VgemDevice.open(),
        heap.allocate(4096),
        udmabuf.create(4096),
        dmabuf.exportSyncFile(),
        dmabuf,
        buf,
        heap,
        udmabuf,
        dev.createTimeline(),
        dev.createSyncobj(),
      ];
      for (const o of objects) {
        o.close();
        o.close();
        o[Symbol.dispose]();
        o.close();
      }
      expect(openFds()).to.deep.equal(before);
    });

    it('a sync_file whose fd was closed by hand and reused: close() leaves the new file open and throws FdLostError', () => {
      const { fence, syncFile } = vgemFence(vgem);
      const n = syncFile.fd;
      closeSync(n); // the mistake
      const lower: number[] = []; // free numbers below n, taken until /dev/null lands on n
      let stranger = openSync('/dev/null', 'r');
      while (stranger < n) {
        lower.push(stranger);
        stranger = openSync('/dev/null', 'r');
      }
      for (const fd of lower) closeSync(fd);
      try {
        expect(stranger).to.equal(n);
        const err = shouldThrow(() => syncFile.close(), FdLostError);
        expect(err).to.be.instanceOf(ClosedError);
        expect(err).to.include({ code: 'EBADF', fd: n, reused: true });
        expect(readlinkSync(`/proc/self/fd/${n}`)).to.equal('/dev/null');
      } finally {
        try {
          closeSync(stranger);
        } catch {
          // Already closed, by the defect this test is for: the assertion above says so.
        }
        fence.signal();
      }
    });

    it('a sync_file number since taken by another SyncFile (same anon inode): only the owner closes it', async () => {
      const buf = vgem.createBuffer({ width: 4, height: 4 });
      const dmabuf = buf.exportDmaBuf();
      const a = dmabuf.exportSyncFile();
      const n = a.fd;
      closeSync(n);
      const lower: number[] = []; // free numbers below n: taken, so that the next sync_file is n
      for (let fd = openSync('/dev/null', 'r'); fd < n; fd = openSync('/dev/null', 'r')) lower.push(fd);
      closeSync(n); // the last /dev/null landed on n: free it again for b
      const b = dmabuf.exportSyncFile(); // a sync_file again, on the same number
      for (const fd of lower) closeSync(fd);
      try {
        expect(b.fd).to.equal(n);
        expect(shouldThrow(() => a.close(), FdLostError).reused).to.equal(true);
        await b.wait({ timeoutMs: 10_000 }); // still open and b's
      } finally {
        b.close();
        dmabuf.close();
        buf.close();
      }
    });

    it('a sync_file number since taken by another anon-inode file (same inode): close() leaves it open', () => {
      // Every anon-inode file (sync_file, eventfd, epoll, inotify, …) shares one inode, so a
      // sync_file's identity is its kind: st_dev/st_ino would let close() take libuv's epoll or
      // inotify fd (Node aborts) or another library's eventfd. The stranger here is an eventfd
      // nobody tracks, made by the addon's internal call.
      const { fence, syncFile } = vgemFence(vgem);
      const n = syncFile.fd;
      const sameInode = statSync(`/proc/self/fd/${n}`).ino;
      closeSync(n); // the mistake
      const lower: number[] = []; // free numbers below n: taken, so that the eventfd is n
      for (let fd = openSync('/dev/null', 'r'); fd < n; fd = openSync('/dev/null', 'r')) lower.push(fd);
      closeSync(n); // the last /dev/null landed on n: free it again for the eventfd
      const stranger = (native as unknown as { eventfdCreate(): number }).eventfdCreate();
      for (const fd of lower) closeSync(fd);
      try {
        expect(stranger).to.equal(n);
        expect(readlinkSync(`/proc/self/fd/${n}`)).to.equal('anon_inode:[eventfd]');
        expect(statSync(`/proc/self/fd/${n}`).ino, "the eventfd has the sync_file's inode").to.equal(sameInode);
        expect(shouldThrow(() => syncFile.close(), FdLostError)).to.include({ code: 'EBADF', fd: n, reused: true });
        expect(readlinkSync(`/proc/self/fd/${n}`)).to.equal('anon_inode:[eventfd]');
      } finally {
        try {
          closeSync(stranger);
        } catch {
          // Already closed, by the defect this test is for: the assertion above says so.
        }
        fence.signal();
      }
    });

    it('EMFILE while probing nodes is EMFILE with the fd counts, not "no device" (child process)', async function () {
      this.timeout(120_000);
      const run = await runChild<Record<string, { class: string; isExplicit: boolean; code: string; syscall: string; message: string }>>(
        childScript('emfile'), [], { timeoutMs: 110_000 },
      );
      expect(run.code, describeRun(run)).to.equal(0);
      const r = run.result!;
      expect(Object.keys(r)).to.have.length(4);
      for (const [name, e] of Object.entries(r)) {
        expect(e, name).to.include({ class: 'ExplicitSyncError', isExplicit: true, code: 'EMFILE', syscall: 'open' });
        expect(e.message, name).to.match(/^EMFILE: too many open files, open '\/dev\/dri\/(card|renderD)\d+' \(explicit-sync owns 1 fd: 1 Device\)$/);
      }
    });

    it('SyncFile: rejects pending waits with ClosedError, frees the watcher', async () => {
      const { fence, syncFile } = vgemFence(vgem);
      const waits = [syncFile.wait(), syncFile.wait({ timeoutMs: 60000 }), syncFile.wait({ ref: false })];
      syncFile.close();
      for (const w of waits) expect((await shouldReject(w, ClosedError)).code).to.equal('EBADF');
      fence.signal();
    });

    it('Timeline and Syncobj: reject pending waits with ClosedError and close their eventfds', async () => {
      const fdsBefore = eventfdCount();
      const t = dev.createTimeline();
      const s = dev.createSyncobj();
      const waits = [t.wait(3), t.wait(5, { until: 'available' }), s.wait(), s.wait({ timeoutMs: 60000 })];
      expect(eventfdCount()).to.be.greaterThan(fdsBefore);
      t.close();
      s.close();
      for (const w of waits) await shouldReject(w, ClosedError);
      expect(eventfdCount()).to.equal(fdsBefore);
    });

    it('Device: closing it rejects the pending waits of its timelines and syncobjs', async () => {
      const d = Device.open(dev.path);
      const t = d.createTimeline();
      const s = d.createSyncobj();
      const waits = [t.wait(1), s.wait(), Timeline.waitAll([{ timeline: t, point: 2 }]), Syncobj.waitAny([s])];
      d.close();
      for (const w of waits) await shouldReject(w, ClosedError);
      shouldThrow(() => t.signal(1), ClosedError);
      t.close();
      s.close();
    });

    it('every fd the library opens is O_CLOEXEC (/proc/self/fdinfo)', async () => {
      const before = new Set(openFds().map((f) => f.split(' ')[0]));
      const heap = DmaHeap.open();
      const udmabuf = Udmabuf.open();
      const d = Device.open(dev.path);
      const v = VgemDevice.open();
      const buf = v.createBuffer({ width: 4, height: 4 });
      const fence = buf.attachFence({ write: true });
      const fromVgem = buf.exportDmaBuf();
      const fromHeap = heap.allocate(4096);
      const fromUdmabuf = udmabuf.create(4096);
      const pendingSf = fromVgem.exportSyncFile();
      const t = d.createTimeline();
      t.signal(1);
      const signalledSf = fromHeap.exportSyncFile();
      const objects = [
        heap, udmabuf, d, v, fromVgem, fromHeap, fromUdmabuf, pendingSf, fromHeap.dup(), signalledSf,
        pendingSf.merge(signalledSf), pendingSf.dup(), await t.exportSyncFile(1), DmaBuf.fromFd(fromHeap.fd, { dup: true }),
      ];
      const exported = [t.exportFd(), d.createSyncobj({ signaled: true }).exportFd()];
      const waits = [t.wait(5), pendingSf.wait()]; // an eventfd, and the sync_file in the thread's epoll set
      // openFds() leaves out the epoll set (kept for the thread's life): check its flags too.
      expect(fdWaitSetFd(), "the thread's epoll set for fd waits").to.be.at.least(0);
      const created = [...openFds().map((f) => f.split(' ')[0]!).filter((fd) => !before.has(fd)), String(fdWaitSetFd())];
      const notCloexec = created.filter((fd) => {
        try {
          const flags = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
          return flags === undefined || (parseInt(flags, 8) & 0o2000000) === 0;
        } catch {
          return false; // closed meanwhile (readdir's own fd)
        }
      });
      expect(created.length).to.be.greaterThanOrEqual(objects.length + exported.length + 1);
      expect(notCloexec, 'fds without O_CLOEXEC').to.deep.equal([]);
      t.signal(5);
      fence.signal();
      await Promise.all(waits);
      for (const fd of exported) closeSync(fd);
      for (const o of objects) o.close();
      buf.close();
      v.close();
      t.close();
      d.close();
    });

    it('a DmaBuf mapping stays safe to touch after close()', () => {
      const d = DmaHeap.open();
      const b: DmaBuf = d.allocate(8192);
      d.close();
      const m = b.map();
      m.fill(7);
      b.close();
      expect(m[0]).to.equal(0); // private zero pages now
      m[1] = 9;
      expect(m.length).to.equal(8192);
    });

    it('SyncFile.fromFd takes nothing when it throws (the fd stays the caller\'s)', () => {
      const heap = DmaHeap.open();
      const b = heap.allocate(4096);
      heap.close();
      const fd = b.fd;
      expect(() => SyncFile.fromFd(fd)).to.throw();
      expect(b.size).to.equal(4096);
      b.close(); // still ours: closes without EBADF
    });
  });
}, () => expectNoDeviceWith('timeline'));
