// The bad-input matrix, kernel half: every public method of every object on the real drivers,
// given bad arguments, closed objects (and objects whose Device or VgemDevice is closed), objects
// of another Device, fds that are not what they claim, wrong kinds of objects, oversized lists and
// huge-but-valid numbers. Each bad call gets a typed error with a useful message; nothing crashes,
// no fd is left behind or taken, and the kernel log gets no new warning.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Device,
  DmaBuf,
  ExplicitSyncError,
  DmaHeap,
  MAX_WAIT_ENTRIES,
  SyncFile,
  Syncobj,
  Timeline,
  TimelineTimeoutError,
  Udmabuf,
  UnsupportedError,
  VgemDevice,
  type VgemBuffer,
  type VgemFence,
} from 'explicit-sync';
import { nativeFamily } from '../../dist/native.js';
import { openFds, settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';
import {
  CLOSED,
  NOT_NUMERIC,
  RANGE,
  TYPE,
  VALUE,
  expectAll,
  optionsCases,
  sizeCases,
  sys,
  timeoutCases,
  tried,
  u64Cases,
  type Case,
} from '../bad-input-matrix.mjs';
import { openTimelineDevice } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

const native = nativeFamily<{ eventfdCreate(): number; memfdCreate(name: string): number; dup(fd: number): number }>();

/** Kernel log lines that mean the kernel complained (a WARN, a BUG, an oops). */
function kernelWarnings(): string[] {
  try {
    return execFileSync('dmesg', { encoding: 'utf8' })
      .split('\n')
      .filter((l) => /WARNING:|BUG:|Oops|cut here|general protection/.test(l));
  } catch {
    return [];
  }
}

describeWith(['timeline'], 'bad input (kernel)', function () {
  this.timeout(120000);
  let dir: string;
  let fdsBefore: string[];
  let warningsBefore: string[];
  // Live objects
  let dev: Device;
  let dev2: Device; // another Device on the same node: its handles mean nothing on dev
  let vgemNode: Device; // a Device without syncobjs
  let vgem: VgemDevice;
  let heap: DmaHeap;
  let udm: Udmabuf;
  let t: Timeline;
  let t2: Timeline;
  let s: Syncobj;
  let s2: Syncobj;
  let sf: SyncFile;
  let db: DmaBuf;
  let vbuf: VgemBuffer;
  // Closed objects, and objects whose device is closed
  let cDev: Device;
  let cT: Timeline;
  let cS: Syncobj;
  let tOnCDev: Timeline;
  let sOnCDev: Syncobj;
  let cSf: SyncFile;
  let cDb: DmaBuf;
  let cVgem: VgemDevice;
  let bufOnCVgem: VgemBuffer;
  let fenceOnCVgem: VgemFence;
  let cVbuf: VgemBuffer;
  let cHeap: DmaHeap;
  let cUdm: Udmabuf;
  let syncobjFd: number; // an opaque syncobj fd (t exported)

  before(() => {
    fdsBefore = openFds();
    warningsBefore = kernelWarnings();
    dir = mkdtempSync(join(tmpdir(), 'explicit-sync-bad-input-'));
    dev = openTimelineDevice();
    dev2 = Device.open(dev.path);
    vgemNode = Device.open({ driver: 'vgem' });
    vgem = VgemDevice.open();
    heap = DmaHeap.open();
    udm = Udmabuf.open();
    t = dev.createTimeline();
    t.signal(1);
    t2 = dev2.createTimeline();
    s = dev.createSyncobj({ signaled: true });
    s2 = dev2.createSyncobj({ signaled: true });
    db = heap.allocate(4096);
    sf = db.exportSyncFile();
    vbuf = vgem.createBuffer({ width: 4, height: 4 });
    syncobjFd = t.exportFd();

    cDev = Device.open(dev.path);
    tOnCDev = cDev.createTimeline();
    sOnCDev = cDev.createSyncobj();
    cDev.close();
    cT = dev.createTimeline();
    cT.close();
    cS = dev.createSyncobj();
    cS.close();
    cSf = db.exportSyncFile();
    cSf.close();
    cDb = heap.allocate(4096);
    cDb.close();
    cVgem = VgemDevice.open();
    bufOnCVgem = cVgem.createBuffer({ width: 4, height: 4 });
    fenceOnCVgem = bufOnCVgem.attachFence();
    cVgem.close();
    cVbuf = vgem.createBuffer({ width: 4, height: 4 });
    cVbuf.close();
    cHeap = DmaHeap.open();
    cHeap.close();
    cUdm = Udmabuf.open();
    cUdm.close();
  });

  after(() => {
    closeSync(syncobjFd);
    for (const o of [tOnCDev, sOnCDev, bufOnCVgem, t, t2, s, s2, sf, db, vbuf, udm, heap, vgem, vgemNode, dev2, dev]) o.close();
    rmSync(dir, { recursive: true, force: true });
    expect(openFds(), 'fds after the matrix').to.deep.equal(fdsBefore);
    expect(kernelWarnings(), 'new kernel warnings').to.deep.equal(warningsBefore);
    console.log(`      ${tried.length} bad inputs tried (kernel matrix)`);
  });

  describe('closed objects: every method throws (or rejects with) ClosedError', () => {
    it('SyncFile', async () => {
      await expectAll([
        { name: 'closed SyncFile#merge(sf)', run: () => cSf.merge(sf), expect: CLOSED },
        { name: 'SyncFile#merge(closed)', run: () => sf.merge(cSf), expect: CLOSED },
        { name: 'SyncFile#merge([sf, closed])', run: () => sf.merge([sf, cSf]), expect: CLOSED },
        { name: 'SyncFile.merge(closed, sf)', run: () => SyncFile.merge(cSf, sf), expect: CLOSED },
        { name: 'SyncFile.merge(closed)', run: () => SyncFile.merge(cSf), expect: CLOSED },
        { name: 'closed SyncFile#dup()', run: () => cSf.dup(), expect: CLOSED },
        { name: 'closed SyncFile#isSignaled()', run: () => cSf.isSignaled(), expect: CLOSED },
        { name: 'closed SyncFile#info()', run: () => cSf.info(), expect: CLOSED },
        { name: 'closed SyncFile#setDeadline(1)', run: () => cSf.setDeadline(1), expect: CLOSED },
        { name: 'closed SyncFile#supportsDeadline()', run: () => cSf.supportsDeadline(), expect: CLOSED },
        { name: 'closed SyncFile#wait()', run: () => cSf.wait(), expect: CLOSED, async: true },
        { name: 'closed SyncFile#waitSync()', run: () => cSf.waitSync(), expect: CLOSED },
      ]);
      expect(cSf.fd).to.equal(-1);
    });

    it('DmaBuf', async () => {
      await expectAll([
        { name: 'closed DmaBuf#exportSyncFile()', run: () => cDb.exportSyncFile(), expect: CLOSED },
        { name: 'closed DmaBuf#importSyncFile(sf)', run: () => cDb.importSyncFile(sf), expect: CLOSED },
        { name: 'DmaBuf#importSyncFile(closed)', run: () => db.importSyncFile(cSf), expect: CLOSED },
        { name: 'closed DmaBuf#supportsSyncFile()', run: () => cDb.supportsSyncFile(), expect: CLOSED },
        { name: 'closed DmaBuf#map()', run: () => cDb.map(), expect: CLOSED },
        { name: 'closed DmaBuf#beginCpuAccess()', run: () => cDb.beginCpuAccess(), expect: CLOSED },
        { name: 'closed DmaBuf#endCpuAccess()', run: () => cDb.endCpuAccess(), expect: CLOSED },
        { name: 'closed DmaBuf#dup()', run: () => cDb.dup(), expect: CLOSED },
      ]);
    });

    for (const [label, get] of [
      ['closed Timeline', () => cT],
      ['Timeline of a closed Device', () => tOnCDev],
    ] as const) {
      it(label, async () => {
        const x = get();
        await expectAll([
          { name: `${label}#signal(2)`, run: () => x.signal(2), expect: CLOSED },
          { name: `${label}#query()`, run: () => x.query(), expect: CLOSED },
          { name: `${label}#isSignaled(1)`, run: () => x.isSignaled(1), expect: CLOSED },
          { name: `${label}#isAvailable(1)`, run: () => x.isAvailable(1), expect: CLOSED },
          { name: `${label}#transfer(1, itself, 5)`, run: () => x.transfer(1, x, 5), expect: CLOSED },
          { name: `${label}#importSyncFile(2, sf)`, run: () => x.importSyncFile(2, sf), expect: CLOSED },
          { name: `${label}#exportSyncFile(1)`, run: () => x.exportSyncFile(1), expect: CLOSED, async: true },
          { name: `${label}#exportFd()`, run: () => x.exportFd(), expect: CLOSED },
          { name: `${label}#wait(1)`, run: () => x.wait(1), expect: CLOSED, async: true },
          { name: `${label}#waitSync(1)`, run: () => x.waitSync(1), expect: CLOSED },
          { name: `Timeline.waitAll([${label}])`, run: () => Timeline.waitAll([{ timeline: x, point: 1 }]), expect: CLOSED, async: true },
          { name: `Timeline.waitAny([t, ${label}])`, run: () => Timeline.waitAny([{ timeline: t, point: 9 }, { timeline: x, point: 1 }]), expect: CLOSED, async: true },
          { name: `Timeline.waitAllSync([${label}])`, run: () => Timeline.waitAllSync([{ timeline: x, point: 1 }]), expect: CLOSED },
        ]);
      });
    }

    it('a closed Timeline, Syncobj or SyncFile as an argument', async () => {
      await expectAll([
        { name: 'Timeline#transfer(1, closed Timeline, 5)', run: () => t.transfer(1, cT, 5), expect: CLOSED },
        { name: 'Timeline#transfer(1, closed Syncobj)', run: () => t.transfer(1, cS), expect: CLOSED },
        { name: 'Timeline#importSyncFile(2, closed SyncFile)', run: () => t.importSyncFile(2, cSf), expect: CLOSED },
        { name: 'Timeline#importSyncFile(2, sf, closed SyncFile)', run: () => t.importSyncFile(2, sf, cSf), expect: CLOSED },
        { name: 'Syncobj#importSyncFile(closed SyncFile)', run: () => s.importSyncFile(cSf), expect: CLOSED },
      ]);
      expect(t.query()).to.equal(1n); // nothing was imported
    });

    for (const [label, get] of [
      ['closed Syncobj', () => cS],
      ['Syncobj of a closed Device', () => sOnCDev],
    ] as const) {
      it(label, async () => {
        const x = get();
        await expectAll([
          { name: `${label}#signal()`, run: () => x.signal(), expect: CLOSED },
          { name: `${label}#reset()`, run: () => x.reset(), expect: CLOSED },
          { name: `${label}#isSignaled()`, run: () => x.isSignaled(), expect: CLOSED },
          { name: `${label}#hasFence()`, run: () => x.hasFence(), expect: CLOSED },
          { name: `${label}#wait()`, run: () => x.wait(), expect: CLOSED, async: true },
          { name: `${label}#waitSync()`, run: () => x.waitSync(), expect: CLOSED },
          { name: `${label}#importSyncFile(sf)`, run: () => x.importSyncFile(sf), expect: CLOSED },
          { name: `${label}#exportSyncFile()`, run: () => x.exportSyncFile(), expect: CLOSED },
          { name: `${label}#exportFd()`, run: () => x.exportFd(), expect: CLOSED },
          { name: `Syncobj.waitAll([${label}])`, run: () => Syncobj.waitAll([x]), expect: CLOSED, async: true },
          { name: `Syncobj.waitAnySync([${label}])`, run: () => Syncobj.waitAnySync([x]), expect: CLOSED },
        ]);
      });
    }

    it('Device, VgemDevice (and its buffers and fences), VgemBuffer, DmaHeap, Udmabuf', async () => {
      await expectAll([
        { name: 'closed Device#createTimeline()', run: () => cDev.createTimeline(), expect: CLOSED },
        { name: 'closed Device#createSyncobj()', run: () => cDev.createSyncobj(), expect: CLOSED },
        { name: 'closed Device#importTimeline(fd)', run: () => cDev.importTimeline(syncobjFd), expect: CLOSED },
        { name: 'closed Device#importSyncobj(fd)', run: () => cDev.importSyncobj(syncobjFd), expect: CLOSED },
        { name: 'closed VgemDevice#createBuffer()', run: () => cVgem.createBuffer({ width: 4, height: 4 }), expect: CLOSED },
        { name: 'closed VgemDevice#importDmaBuf(dmaBuf)', run: () => cVgem.importDmaBuf(db), expect: CLOSED },
        { name: 'VgemBuffer of a closed VgemDevice #exportDmaBuf()', run: () => bufOnCVgem.exportDmaBuf(), expect: CLOSED },
        { name: 'VgemBuffer of a closed VgemDevice #attachFence()', run: () => bufOnCVgem.attachFence(), expect: CLOSED },
        { name: 'VgemFence of a closed VgemDevice #signal()', run: () => fenceOnCVgem.signal(), expect: CLOSED },
        { name: 'closed VgemBuffer#exportDmaBuf()', run: () => cVbuf.exportDmaBuf(), expect: CLOSED },
        { name: 'closed VgemBuffer#attachFence()', run: () => cVbuf.attachFence(), expect: CLOSED },
        { name: 'closed DmaHeap#allocate(4096)', run: () => cHeap.allocate(4096), expect: CLOSED },
        { name: 'closed Udmabuf#create(4096)', run: () => cUdm.create(4096), expect: CLOSED },
      ]);
    });
  });

  describe('objects of another Device', () => {
    it('transfers, blocking multi-waits refuse them; async multi-waits across devices work', async () => {
      await expectAll([
        { name: 'Timeline#transfer(1, Timeline of another Device, 2)', run: () => t.transfer(1, t2, 2), expect: VALUE },
        { name: 'Timeline#transfer(1, Syncobj of another Device)', run: () => t.transfer(1, s2), expect: VALUE },
        { name: 'Timeline.waitAllSync(two Devices)', run: () => Timeline.waitAllSync([{ timeline: t, point: 1 }, { timeline: t2, point: 1 }]), expect: VALUE },
        { name: 'Timeline.waitAnySync(two Devices)', run: () => Timeline.waitAnySync([{ timeline: t, point: 1 }, { timeline: t2, point: 1 }]), expect: VALUE },
        { name: 'Syncobj.waitAllSync(two Devices)', run: () => Syncobj.waitAllSync([s, s2]), expect: VALUE },
        { name: 'Syncobj.waitAnySync(two Devices)', run: () => Syncobj.waitAnySync([s, s2]), expect: VALUE },
      ]);
      t2.signal(1);
      await Timeline.waitAll([{ timeline: t, point: 1 }, { timeline: t2, point: 1 }]);
      await Syncobj.waitAll([s, s2]);
      expect(t.query()).to.equal(1n);
    });
  });

  describe('fds that are not what they claim', () => {
    /** Every kind of fd, opened fresh, and what each factory must say about it. */
    function kinds(): { label: string; open: () => number; is: 'sync_file' | 'dmabuf' | 'syncobj' | 'other' }[] {
      const fifo = join(dir, `fifo${Math.random()}`);
      execFileSync('mkfifo', [fifo]);
      return [
        { label: 'a regular file', open: () => openSync(join(dir, 'file'), 'w+'), is: 'other' },
        { label: 'a directory', open: () => openSync(dir, 'r'), is: 'other' },
        { label: 'a pipe (FIFO)', open: () => openSync(fifo, 'r+'), is: 'other' },
        { label: 'an eventfd', open: () => native.eventfdCreate(), is: 'other' },
        { label: 'a memfd', open: () => native.memfdCreate('bad-input'), is: 'other' },
        { label: '/dev/null', open: () => openSync('/dev/null', 'r+'), is: 'other' },
        { label: 'a DRM render node', open: () => openSync(dev.path, 'r+'), is: 'other' },
        { label: 'the vgem card node', open: () => openSync('/dev/dri/card0', 'r+'), is: 'other' },
        { label: 'a dma-buf', open: () => native.dup(db.fd), is: 'dmabuf' },
        { label: 'a sync_file', open: () => native.dup(sf.fd), is: 'sync_file' },
        { label: 'a syncobj fd', open: () => t.exportFd(), is: 'syncobj' },
      ];
    }

    it('SyncFile.fromFd, DmaBuf.fromFd, device.importTimeline, device.importSyncobj: typed errors, nothing taken', async () => {
      const cases: Case[] = [];
      const opened: number[] = [];
      for (const k of kinds()) {
        const fd = k.open();
        opened.push(fd);
        if (k.is !== 'sync_file') {
          cases.push({ name: `SyncFile.fromFd(${k.label})`, run: () => SyncFile.fromFd(fd), expect: sys('ENOTTY') });
          cases.push({ name: `SyncFile.fromFd(${k.label}, { dup: true })`, run: () => SyncFile.fromFd(fd, { dup: true }), expect: sys('ENOTTY') });
        }
        if (k.is !== 'dmabuf') cases.push({ name: `DmaBuf.fromFd(${k.label})`, run: () => DmaBuf.fromFd(fd), expect: sys('ENOTTY') });
        if (k.is !== 'syncobj') {
          cases.push({ name: `device.importTimeline(${k.label})`, run: () => dev.importTimeline(fd), expect: sys('EINVAL') });
          cases.push({ name: `device.importSyncobj(${k.label})`, run: () => dev.importSyncobj(fd), expect: sys('EINVAL') });
        }
        cases.push({ name: `vgem Device#importTimeline(${k.label}) (no syncobjs)`, run: () => vgemNode.importTimeline(fd), expect: { error: UnsupportedError } });
      }
      const closed = openSync('/dev/null', 'r');
      closeSync(closed);
      for (const [label, fd] of [['a closed fd', closed], ['2^30 (never open)', 2 ** 30]] as const) {
        cases.push({ name: `SyncFile.fromFd(${label})`, run: () => SyncFile.fromFd(fd), expect: sys('EBADF') });
        cases.push({ name: `DmaBuf.fromFd(${label})`, run: () => DmaBuf.fromFd(fd), expect: sys('EBADF') });
        // The kernel says EINVAL for a closed fd too; the library says what it is: EBADF, not open.
        cases.push({ name: `device.importTimeline(${label})`, run: () => dev.importTimeline(fd), expect: sys('EBADF') });
        cases.push({ name: `device.importSyncobj(${label})`, run: () => dev.importSyncobj(fd), expect: sys('EBADF') });
      }
      await expectAll(cases);
      // Every fd is still open and ours: closing them must not fail with EBADF.
      for (const fd of opened) closeSync(fd);
    });

    it('the errors say what the fd is', () => {
      const fd = openSync('/dev/null', 'r');
      try {
        for (const call of [() => SyncFile.fromFd(fd), () => DmaBuf.fromFd(fd), () => dev.importTimeline(fd)]) {
          expect(call).to.throw(/fd \d+ is not a .*\/dev\/null/);
        }
      } finally {
        closeSync(fd);
      }
      expect(() => dev.importTimeline(2 ** 30)).to.throw(/is not open/);
    });

    it('one wording for an fd that is not open: "EBADF: fd N is not open, <call>"', () => {
      const closed = openSync('/dev/null', 'r');
      closeSync(closed);
      const entries: Array<[string, () => unknown]> = [
        ['SYNC_IOC_FILE_INFO', () => SyncFile.fromFd(closed)],
        ['fstatfs', () => DmaBuf.fromFd(closed)],
        ['DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE', () => dev.importTimeline(closed)],
        ['DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE', () => dev.importSyncobj(closed)],
      ];
      for (const [call, run] of entries) {
        const err = shouldThrow(run, ExplicitSyncError);
        expect(err.code).to.equal('EBADF');
        expect(err.message).to.equal(`EBADF: fd ${closed} is not open, ${call}`);
      }
    });
  });

  describe('wrong kinds of objects, bad values, on live objects', () => {
    it('SyncFile', async () => {
      await expectAll([
        { name: 'SyncFile#merge(a DmaBuf)', run: () => sf.merge(db as unknown as SyncFile), expect: TYPE },
        { name: 'SyncFile#merge([sf, a DmaBuf])', run: () => sf.merge([sf, db as unknown as SyncFile]), expect: TYPE },
        { name: 'SyncFile#merge([])', run: () => sf.merge([]), expect: VALUE },
        ...NOT_NUMERIC.filter(([l]) => l !== '[]').map(([l, v]) => ({ name: `SyncFile#merge(${l})`, run: () => sf.merge(v as SyncFile), expect: TYPE })),
        ...optionsCases('SyncFile#merge(sf, $)', (o) => sf.merge(sf, o as object)),
        { name: 'SyncFile#merge(sf, { name: 5 })', run: () => sf.merge(sf, { name: 5 as unknown as string }), expect: TYPE },
        { name: 'SyncFile#merge(sf, { name: null })', run: () => sf.merge(sf, { name: null as unknown as string }), expect: TYPE },
        { name: "SyncFile#merge(sf, { name: 'x' * 32 })", run: () => sf.merge(sf, { name: 'x'.repeat(32) }), expect: RANGE },
        { name: "SyncFile#merge(sf, { name: 'é' * 16 }) (32 bytes)", run: () => sf.merge(sf, { name: 'é'.repeat(16) }), expect: RANGE },
        ...NOT_NUMERIC.filter(([l]) => l !== 'new Number(1)').map(([l, v]) => ({ name: `SyncFile#setDeadline(${l})`, run: () => sf.setDeadline(v as number), expect: TYPE })),
        ...[['NaN', Number.NaN], ['Infinity', Infinity], ['-1', -1], ['2^53 ms', 2 ** 53], ['Number.MAX_VALUE', Number.MAX_VALUE], ['-1n', -1n], ['2n**63n', 2n ** 63n], ['2n**64n', 2n ** 64n]].map(
          ([l, v]) => ({ name: `SyncFile#setDeadline(${String(l)})`, run: () => sf.setDeadline(v as number), expect: RANGE }),
        ),
        ...optionsCases('SyncFile#wait($)', (o) => sf.wait(o as object), true),
        ...timeoutCases('SyncFile#wait({ timeoutMs: $ })', (v) => sf.wait({ timeoutMs: v as number }), true),
        { name: 'SyncFile#wait({ signal: {} })', run: () => sf.wait({ signal: {} as AbortSignal }), expect: TYPE, async: true },
        { name: "SyncFile#wait({ ref: 'no' })", run: () => sf.wait({ ref: 'no' as unknown as boolean }), expect: TYPE, async: true },
        // A bare number is still { timeoutMs }; an object is the options ({} waits: not a bad input).
        ...timeoutCases('SyncFile#waitSync($)', (v) => sf.waitSync(v as number)).filter((c) => c.name !== 'SyncFile#waitSync({})'),
        ...timeoutCases('SyncFile#waitSync({ timeoutMs: $ })', (v) => sf.waitSync({ timeoutMs: v as number })),
        { name: 'SyncFile#waitSync({ timeoutMS: 5 })', run: () => sf.waitSync({ timeoutMS: 5 } as never), expect: VALUE },
        { name: 'SyncFile#wait({ timeoutMS: 5 })', run: () => sf.wait({ timeoutMS: 5 } as never), expect: VALUE, async: true },
      ]);
    });

    it('DmaBuf', async () => {
      await expectAll([
        { name: 'DmaBuf#importSyncFile(a DmaBuf)', run: () => db.importSyncFile(db as unknown as SyncFile), expect: TYPE },
        // An empty array names no sync file: ERR_INVALID_ARG_VALUE, as for Timeline#importSyncFile.
        { name: 'DmaBuf#importSyncFile([])', run: () => db.importSyncFile([]), expect: VALUE },
        { name: 'DmaBuf#importSyncFile([sf, {}])', run: () => db.importSyncFile([sf, {} as SyncFile]), expect: TYPE },
        ...NOT_NUMERIC.filter(([l]) => l !== '[]').map(([l, v]) => ({ name: `DmaBuf#importSyncFile(${l})`, run: () => db.importSyncFile(v as SyncFile), expect: TYPE })),
        ...[["'rw'", 'rw'], ['1', 1], ['null', null], ["'READ'", 'READ']].flatMap(([l, v]) => [
          { name: `DmaBuf#importSyncFile(sf, ${l})`, run: () => db.importSyncFile(sf, v as 'read'), expect: VALUE },
          { name: `DmaBuf#exportSyncFile(${l})`, run: () => db.exportSyncFile(v as 'read'), expect: VALUE },
          { name: `DmaBuf#beginCpuAccess(${l})`, run: () => db.beginCpuAccess(v as 'read'), expect: VALUE },
          { name: `DmaBuf#endCpuAccess(${l})`, run: () => db.endCpuAccess(v as 'read'), expect: VALUE },
        ]),
      ]);
    });

    it('Timeline and Syncobj: kernel-level refusals are typed', async () => {
      const unsubmitted = dev.createSyncobj();
      try {
        await expectAll([
          { name: 'Timeline#transfer(99 (unsubmitted), t, 100)', run: () => t.transfer(99, t, 100), expect: sys('EINVAL') },
          { name: 'Timeline#exportSyncFile(99 (unsubmitted))', run: () => t.exportSyncFile(99), expect: { error: TimelineTimeoutError, code: 'ETIME' }, async: true },
          { name: 'Syncobj#exportSyncFile() with no fence', run: () => unsubmitted.exportSyncFile(), expect: sys('EINVAL') },
          { name: 'Syncobj#importSyncFile(a Timeline)', run: () => s.importSyncFile(t as unknown as SyncFile), expect: TYPE },
          { name: 'Syncobj#importSyncFile({ fd })', run: () => s.importSyncFile({ fd: sf.fd } as unknown as SyncFile), expect: TYPE },
          { name: 'Timeline#importSyncFile(2, { fd })', run: () => t.importSyncFile(2, { fd: sf.fd } as unknown as SyncFile), expect: TYPE },
          { name: 'vgem Device#createTimeline()', run: () => vgemNode.createTimeline(), expect: { error: UnsupportedError, code: 'EOPNOTSUPP' } },
          { name: 'vgem Device#createSyncobj()', run: () => vgemNode.createSyncobj(), expect: { error: UnsupportedError, code: 'EOPNOTSUPP' } },
          ...u64Cases('Timeline#signal($)', (v) => t.signal(v as bigint), { nonZero: true }),
          ...u64Cases('Timeline#wait($)', (v) => t.wait(v as bigint), { async: true }),
        ]);
      } finally {
        unsubmitted.close();
      }
      expect(t.query()).to.equal(1n);
    });

    it('sizes and dimensions: VgemDevice#createBuffer, VgemBuffer#attachFence, DmaHeap#allocate, Udmabuf#create', async () => {
      await expectAll([
        ...optionsCases('VgemDevice#createBuffer($)', (o) => vgem.createBuffer(o as { width: number; height: number })),
        ...sizeCases('VgemDevice#createBuffer({ width: $ })', (v) => vgem.createBuffer({ width: v as number, height: 4 })),
        ...sizeCases('VgemDevice#createBuffer({ height: $ })', (v) => vgem.createBuffer({ width: 4, height: v as number })).filter((c) => !c.name.includes('undefined')),
        ...sizeCases('VgemDevice#createBuffer({ bpp: $ })', (v) => vgem.createBuffer({ width: 4, height: 4, bpp: v as number })).filter((c) => !c.name.includes('undefined')),
        { name: 'VgemDevice#createBuffer({ width: 2^32 })', run: () => vgem.createBuffer({ width: 2 ** 32, height: 1 }), expect: RANGE },
        { name: 'VgemDevice#createBuffer({ width: 2^32-1, height: 2^32-1 }) (size overflows)', run: () => vgem.createBuffer({ width: 2 ** 32 - 1, height: 2 ** 32 - 1 }), expect: sys('EINVAL') },
        ...optionsCases('VgemBuffer#attachFence($)', (o) => vbuf.attachFence(o as object)),
        { name: "VgemBuffer#attachFence({ write: 'yes' })", run: () => vbuf.attachFence({ write: 'yes' as unknown as boolean }), expect: TYPE },
        ...sizeCases('DmaHeap#allocate($)', (v) => heap.allocate(v as number)),
        { name: 'DmaHeap#allocate(2^40) (more than the machine has)', run: () => heap.allocate(2 ** 40), expect: RANGE },
        { name: 'DmaHeap#allocate(2^53-1)', run: () => heap.allocate(Number.MAX_SAFE_INTEGER), expect: RANGE },
        ...sizeCases('Udmabuf#create($)', (v) => udm.create(v as number)),
        // Linux 7.x (seen on 7.3.4) allocates for the size before checking the limit: ENOMEM plus a
        // kernel WARNING (mm/slub.c, __kvmalloc_node) instead of EINVAL. So the library reads
        // udmabuf.size_limit_mb and refuses beyond it before the ioctl, on every kernel.
        { name: 'Udmabuf#create(2^40) (beyond udmabuf.size_limit_mb)', run: () => udm.create(2 ** 40), expect: RANGE },
      ]);
    });
  });

  describe('oversized lists', () => {
    it(`multi-waits take up to ${MAX_WAIT_ENTRIES} entries (the kernel's limit) and refuse more before any ioctl`, async function () {
      this.timeout(120000);
      const entries = (n: number) => Array.from({ length: n }, () => ({ timeline: t, point: 1 }));
      Timeline.waitAllSync(entries(MAX_WAIT_ENTRIES));
      expect(Timeline.waitAnySync(entries(MAX_WAIT_ENTRIES))).to.equal(0);
      expect(Syncobj.waitAnySync(Array.from({ length: MAX_WAIT_ENTRIES }, () => s))).to.equal(0);
      await Timeline.waitAll(entries(MAX_WAIT_ENTRIES));
      await expectAll([
        { name: `Timeline.waitAllSync(${MAX_WAIT_ENTRIES + 1} entries)`, run: () => Timeline.waitAllSync(entries(MAX_WAIT_ENTRIES + 1)), expect: RANGE },
        { name: `Timeline.waitAll(${MAX_WAIT_ENTRIES + 1} entries)`, run: () => Timeline.waitAll(entries(MAX_WAIT_ENTRIES + 1)), expect: RANGE, async: true },
        { name: 'Syncobj.waitAnySync(10^6 entries)', run: () => Syncobj.waitAnySync(Array.from({ length: 1e6 }, () => s)), expect: RANGE },
      ]);
    });
  });

  describe('huge but valid numbers', () => {
    it('timeouts far beyond setTimeout\'s range neither fire early nor throw', async () => {
      const huge = [Number.MAX_VALUE, 1e300, 2 ** 53, 2 ** 31];
      for (const ms of huge) {
        sf.waitSync(ms);
        await sf.wait({ timeoutMs: ms });
        t.waitSync(1, { timeoutMs: ms });
        await t.wait(1, { timeoutMs: ms });
      }
      const x = dev.createTimeline();
      const pending = huge.flatMap((ms) => [x.wait((1n << 64n) - 1n, { timeoutMs: ms }), x.wait(5, { timeoutMs: ms, until: 'available' })]);
      pending.push(x.wait(7, { deadline: (1n << 63n) - 1n })); // the largest ktime_t: no limit
      for (const p of pending) expect(await settlesWithin(p, 300)).to.equal(false);
      // Past a signed ktime_t, as the README says: RangeError, not "no limit".
      await shouldReject(x.wait(7, { deadline: 1n << 63n }), RangeError);
      await shouldReject(x.wait(7, { deadline: (1n << 64n) - 1n }), RangeError);
      x.close();
      for (const p of pending) await shouldReject(p, Error).then((e) => expect((e as { code?: string }).code).to.equal('EBADF'));
    });

    it('u64 points up to 2^64 - 1', () => {
      const x = dev.createTimeline();
      try {
        x.signal((1n << 64n) - 1n);
        expect(x.query()).to.equal((1n << 64n) - 1n);
        expect(x.isSignaled(Number.MAX_SAFE_INTEGER)).to.equal(true);
      } finally {
        x.close();
      }
    });
  });
}, () => expectNoDeviceWith('timeline'));
