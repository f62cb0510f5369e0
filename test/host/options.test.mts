// Options bags (issue 18): every public options bag rejects an unknown key (a typo) with
// ERR_INVALID_ARG_VALUE naming the nearest valid one, before any ioctl; SyncFile waits honour
// `deadline`, `fenceDeadline` and `until`; wall-clock deadlines are RangeErrors; errors name a real
// system call; the old call shapes still work (with a one-time DeprecationWarning where deprecated).
// Objects that need a device are stand-ins (a prototype without state, or the fake Device): the
// options must be refused before anything touches them.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortError,
  ClosedError,
  Device,
  DmaBuf,
  InvalidArgValueError,
  KmsAtomicRequest,
  KmsDevice,
  OutOfRangeError,
  SyncFile,
  Syncobj,
  Timeline,
  TimeoutError,
  UnsupportedError,
  VgemBuffer,
  VgemDevice,
  monotonicNow,
} from 'explicit-sync';
import { FlipTable, EVENT_FLIP_COMPLETE } from '../../dist/kms.js';
import { nearestKey } from '../../dist/validate.js';
import { kAdopt } from '../../dist/resource.js';
import { openFifo as openFifoIn, settlesWithin, shouldReject, shouldThrow, sleep } from '../helpers.mjs';
import { fakeDevice, retire } from './syncobj-fakes.mjs';

let dir: string;
const openFifo = (): number => openFifoIn(dir);

/** A stand-in object of class C: its prototype and no state, so any use of its fields throws. */
function standIn<T>(cls: { prototype: T }): T {
  return Object.create(cls.prototype as object) as T;
}

const WALL_CLOCK_NS = BigInt(Date.now()) * 1_000_000n;

/** Runs `run`, which must fail (throw, or return a rejecting promise) with ERR_INVALID_ARG_VALUE naming `key` and suggesting `near`. */
async function expectUnknownKey(run: () => unknown, key: string, near: string | undefined): Promise<void> {
  let err: unknown;
  try {
    await run();
  } catch (e) {
    err = e;
  }
  expect(err, 'an error').to.be.instanceOf(InvalidArgValueError);
  const e = err as InvalidArgValueError;
  expect(e.code).to.equal('ERR_INVALID_ARG_VALUE');
  expect(e.message).to.contain(`.${key}'`);
  if (near !== undefined) expect(e.message).to.contain(`Did you mean '${near}'?`);
}

describe('options bags (issue 18)', () => {
  let dev: Device;
  let t: Timeline;
  let t2: Timeline;
  let s: Syncobj;
  let sf: SyncFile;
  let sf2: SyncFile;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'explicit-sync-options-'));
    dev = fakeDevice();
    t = Timeline[kAdopt](dev, 1);
    t2 = Timeline[kAdopt](dev, 2);
    s = Syncobj[kAdopt](dev, 3);
    sf = SyncFile[kAdopt](openFifo());
    sf2 = SyncFile[kAdopt](openFifo());
  });
  after(() => {
    retire(dev);
    for (const x of [t, t2, s, sf, sf2]) x.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('nearestKey()', () => {
    it('prefers a case-insensitive match, then the nearest by edit distance, else nothing', () => {
      const keys = ['timeoutMs', 'deadline', 'signal', 'ref', 'until', 'fenceDeadline'];
      expect(nearestKey('timeoutMS', keys)).to.equal('timeoutMs');
      expect(nearestKey('timout', keys)).to.equal('timeoutMs');
      expect(nearestKey('dedline', keys)).to.equal('deadline');
      expect(nearestKey('fenceDeadlin', keys)).to.equal('fenceDeadline');
      expect(nearestKey('colour', keys)).to.equal(undefined);
    });
  });

  describe('every public options bag rejects an unknown key before any ioctl', () => {
    // [call, the typo'd key, the suggestion]
    const table: [string, () => unknown, string, string | undefined][] = [
      ['Device.list', () => Device.list({ openPrimry: true } as never), 'openPrimry', 'openPrimary'],
      ['Device.open', () => Device.open({ drivr: 'vgem' } as never), 'drivr', 'driver'],
      ['device.importTimeline', () => dev.importTimeline(3, { defaultTimeoutMS: 5 } as never), 'defaultTimeoutMS', 'defaultTimeoutMs'],
      ['device.importSyncobj', () => dev.importSyncobj(3, { defaultTimeout: 5 } as never), 'defaultTimeout', 'defaultTimeoutMs'],
      ['device.createSyncobj', () => dev.createSyncobj({ signalled: true } as never), 'signalled', 'signaled'],
      ['Timeline#query', () => t.query({ lastSubmited: true } as never), 'lastSubmited', 'lastSubmitted'],
      ['Timeline#signal', () => t.signal(5, { allowUnorderd: true } as never), 'allowUnorderd', 'allowUnordered'],
      ['Timeline#transfer', () => t.transfer(1, t2, 5, { alowUnordered: true } as never), 'alowUnordered', 'allowUnordered'],
      ['Timeline#importSyncFile (array)', () => t.importSyncFile(5, [sf], { AllowUnordered: true } as never), 'AllowUnordered', 'allowUnordered'],
      ['Timeline#importSyncFile (after the file)', () => t.importSyncFile(5, sf, { allowUnorderd: true } as never), 'allowUnorderd', 'allowUnordered'],
      ['Timeline#exportSyncFile', () => t.exportSyncFile(5, { materialiseTimeoutMs: 5 } as never), 'materialiseTimeoutMs', 'materializeTimeoutMs'],
      ['Timeline#wait', () => t.wait(5, { timeoutMS: 5 } as never), 'timeoutMS', 'timeoutMs'],
      ['Timeline#waitSync', () => t.waitSync(5, { timeoutMS: 5 } as never), 'timeoutMS', 'timeoutMs'],
      ['Timeline#waitSync (an async-only option)', () => t.waitSync(5, { signal: new AbortController().signal } as never), 'signal', undefined],
      ['Timeline.waitAll', () => Timeline.waitAll([{ timeline: t, point: 5 }], { dedline: 5n } as never), 'dedline', 'deadline'],
      ['Timeline.waitAnySync', () => Timeline.waitAnySync([{ timeline: t, point: 5 }], { untill: 'signaled' } as never), 'untill', 'until'],
      ['Syncobj#wait', () => s.wait({ timout: 5 } as never), 'timout', 'timeoutMs'],
      ['Syncobj#waitSync', () => s.waitSync({ fencedeadline: 5n } as never), 'fencedeadline', 'fenceDeadline'],
      ['Syncobj.waitAny', () => Syncobj.waitAny([s], { Ref: false } as never), 'Ref', 'ref'],
      ['Syncobj.waitAllSync', () => Syncobj.waitAllSync([s], { timeoutMS: 5 } as never), 'timeoutMS', 'timeoutMs'],
      ['SyncFile.fromFd', () => SyncFile.fromFd(0, { dupe: true } as never), 'dupe', 'dup'],
      ['SyncFile#merge', () => sf.merge(sf2, { nmae: 'x' } as never), 'nmae', 'name'],
      ['SyncFile#wait', () => sf.wait({ timeoutMS: 5 } as never), 'timeoutMS', 'timeoutMs'],
      ['SyncFile#waitSync', () => sf.waitSync({ timeoutMS: 5 } as never), 'timeoutMS', 'timeoutMs'],
      ['DmaBuf.fromFd', () => DmaBuf.fromFd(0, { Dup: true } as never), 'Dup', 'dup'],
      ['DmaBuf#beginCpuAccessAsync', () => standIn(DmaBuf).beginCpuAccessAsync('read', { timeoutMS: 5 } as never), 'timeoutMS', 'timeoutMs'],
      ['VgemDevice#createBuffer', () => standIn(VgemDevice).createBuffer({ width: 1, height: 1, bbp: 32 } as never), 'bbp', 'bpp'],
      ['VgemBuffer#attachFence', () => standIn(VgemBuffer).attachFence({ writes: true } as never), 'writes', 'write'],
      ['KmsDevice.open', () => KmsDevice.open({ drivers: 'vkms' } as never), 'drivers', 'driver'],
      ['KmsDevice#pickOutput', () => standIn(KmsDevice).pickOutput({ Mode: '1024x768' } as never), 'Mode', 'mode'],
      ['KmsDevice#createFramebuffer', () => standIn(KmsDevice).createFramebuffer({ width: 1, height: 1, fromat: 0 } as never), 'fromat', 'format'],
      ['KmsDevice#importFramebuffer', () => standIn(KmsDevice).importFramebuffer(standIn(DmaBuf), { width: 1, height: 1, pitch: 4, ofset: 0 } as never), 'ofset', 'offset'],
      ['KmsAtomicRequest#commit', () => standIn(KmsAtomicRequest).commit({ pageflipevent: true } as never), 'pageflipevent', 'pageFlipEvent'],
      ['KmsAtomicRequest#commit (flip bound)', () => standIn(KmsAtomicRequest).commit({ pageFlipEvent: true, timeoutMS: 5 } as never), 'timeoutMS', 'timeoutMs'],
      ['KmsAtomicRequest#setPlane', () => standIn(KmsAtomicRequest).setPlane(null as never, null as never, null as never, { X: 1 } as never), 'X', 'x'],
    ];
    for (const [name, run, key, near] of table)
      it(`${name}: { ${key} } → ERR_INVALID_ARG_VALUE${near !== undefined ? ` (did you mean '${near}'?)` : ''}`, async () => {
        await expectUnknownKey(run, key, near);
      });

    it('async calls reject (never throw) for an unknown key', async () => {
      for (const run of [() => t.wait(1, { timeoutMS: 1 } as never), () => sf.wait({ timeoutMS: 1 } as never), () => t.exportSyncFile(1, { x: 1 } as never)]) {
        let p: unknown;
        expect(() => (p = run())).not.to.throw();
        await shouldReject(p as Promise<unknown>, InvalidArgValueError);
      }
    });

    it('keys present with the value undefined are fine; inherited keys are not looked at', async () => {
      await sf.wait({ timeoutMs: 0, deadline: undefined, signal: undefined }).catch((e: unknown) => expect(e).to.be.instanceOf(TimeoutError));
      const inherited = Object.create({ timeoutMS: 5 }) as object;
      await shouldReject(sf.wait({ ...inherited, timeoutMs: 0 }), TimeoutError);
      await shouldReject(sf.wait(Object.assign(inherited, { timeoutMs: 0 })), TimeoutError);
    });
  });

  describe('SyncFile#wait() and waitSync(): deadline, fenceDeadline, until', () => {
    it('a deadline 50 ms ahead rejects with TimeoutError (syscall poll, operation wait), not earlier', async () => {
      const t0 = performance.now();
      const e = await shouldReject(sf.wait({ deadline: monotonicNow() + 50_000_000n }), TimeoutError);
      const took = performance.now() - t0;
      expect(took).to.be.at.least(45);
      expect(took).to.be.below(2000);
      expect([e.code, e.syscall, e.operation]).to.deep.equal(['ETIME', 'poll', 'wait']);
    });

    it('a deadline in the past rejects at once; deadline with timeoutMs is ERR_INVALID_ARG_VALUE', async () => {
      await shouldReject(sf.wait({ deadline: monotonicNow() - 1n }), TimeoutError);
      await shouldReject(sf.wait({ deadline: monotonicNow(), timeoutMs: 5 }), InvalidArgValueError);
      await shouldReject(sf.wait({ deadline: 5 as unknown as bigint }), TypeError);
      await shouldReject(sf.wait({ deadline: 1n << 63n }), OutOfRangeError);
    });

    it("until: 'available' is refused with ERR_INVALID_ARG_VALUE (a sync_file always holds its fence); 'signaled' is the default", async () => {
      const e = await shouldReject(sf.wait({ until: 'available' as 'signaled' }), InvalidArgValueError);
      expect(e.message).to.contain('always holds its fence');
      shouldThrow(() => sf.waitSync({ until: 'available' as 'signaled', timeoutMs: 0 }), InvalidArgValueError);
      await shouldReject(sf.wait({ until: 'signaled', timeoutMs: 0 }), TimeoutError);
    });

    it('fenceDeadline is sent with SYNC_IOC_SET_DEADLINE first: UnsupportedError where the kernel (here: a FIFO) lacks it', async () => {
      const e = await shouldReject(sf.wait({ fenceDeadline: monotonicNow() + 16_000_000n }), UnsupportedError);
      expect([e.syscall, e.ioctl, e.since]).to.deep.equal(['ioctl', 'SYNC_IOC_SET_DEADLINE', '6.7']);
      shouldThrow(() => sf.waitSync({ fenceDeadline: monotonicNow() + 16_000_000n, timeoutMs: 0 }), UnsupportedError);
    });

    it('waitSync takes { timeoutMs } and { deadline }, and a bare number still', () => {
      for (const arg of [() => ({ timeoutMs: 20 }), () => ({ deadline: monotonicNow() + 20_000_000n }), () => 20]) {
        const t0 = performance.now();
        const e = shouldThrow(() => sf.waitSync(arg()), TimeoutError);
        expect(performance.now() - t0).to.be.at.least(15);
        expect([e.syscall, e.operation]).to.deep.equal(['poll', 'waitSync']);
      }
      shouldThrow(() => sf.waitSync({ deadline: monotonicNow() - 1n }), TimeoutError);
    });
  });

  describe('wall-clock deadlines are RangeErrors (more than 10 years past monotonicNow())', () => {
    it('deadline / fenceDeadline on every wait', async () => {
      const cases: [string, () => unknown][] = [
        ['Timeline#wait deadline', () => t.wait(1, { deadline: WALL_CLOCK_NS })],
        ['Timeline#wait fenceDeadline', () => t.wait(1, { fenceDeadline: WALL_CLOCK_NS })],
        ['Timeline#waitSync deadline', () => t.waitSync(1, { deadline: WALL_CLOCK_NS })],
        ['Syncobj#wait deadline', () => s.wait({ deadline: WALL_CLOCK_NS })],
        ['SyncFile#wait deadline', () => sf.wait({ deadline: WALL_CLOCK_NS })],
        ['SyncFile#waitSync deadline', () => sf.waitSync({ deadline: WALL_CLOCK_NS })],
        ['SyncFile#wait fenceDeadline', () => sf.wait({ fenceDeadline: WALL_CLOCK_NS })],
        ['SyncFile#setDeadline(bigint)', () => sf.setDeadline(WALL_CLOCK_NS)],
        ['SyncFile#setDeadline(Date.now())', () => sf.setDeadline(Date.now())],
        ['DmaBuf#beginCpuAccessAsync deadline', () => standIn(DmaBuf).beginCpuAccessAsync('read', { deadline: WALL_CLOCK_NS })],
        ['KmsAtomicRequest#commit deadline', () => standIn(KmsAtomicRequest).commit({ pageFlipEvent: true, deadline: WALL_CLOCK_NS })],
        ['11 years ahead', () => sf.wait({ deadline: monotonicNow() + 11n * 31_557_600_000_000_000n })],
      ];
      for (const [name, run] of cases) {
        let err: unknown;
        try {
          await run();
        } catch (e) {
          err = e;
        }
        expect(err, name).to.be.instanceOf(OutOfRangeError);
        expect((err as OutOfRangeError).code, name).to.equal('ERR_OUT_OF_RANGE');
        expect((err as Error).message, name).to.contain('monotonicNow() + ms * 1_000_000n');
      }
    });

    it('9 years ahead and 2^63 - 1 (no limit) are still accepted', async () => {
      const ac = new AbortController();
      const pending = [
        sf.wait({ deadline: monotonicNow() + 9n * 31_557_600_000_000_000n, signal: ac.signal }),
        sf.wait({ deadline: (1n << 63n) - 1n, signal: ac.signal }),
      ];
      for (const p of pending) expect(await settlesWithin(p, 50)).to.equal(false);
      ac.abort();
      for (const p of pending) await shouldReject(p, AbortError);
    });
  });

  describe('errors name a real system call; the operation goes in `operation`', () => {
    it('SyncFile: a closed one, and a wait pending at close()', async () => {
      const x = SyncFile[kAdopt](openFifo());
      const p = x.wait();
      x.close();
      const e = await shouldReject(p, ClosedError);
      expect([e.syscall, e.operation]).to.deep.equal(['poll', 'wait']);
      const e2 = await shouldReject(x.wait(), ClosedError);
      expect(e2.syscall).to.equal('poll');
    });

    it('Timeline / Syncobj closed: the wait ioctl', async () => {
      const d = fakeDevice();
      const x = Timeline[kAdopt](d, 9);
      const y = Syncobj[kAdopt](d, 10);
      retire(d);
      x.close();
      y.close();
      expect([(await shouldReject(x.wait(1), ClosedError)).syscall, (await shouldReject(x.wait(1), ClosedError)).ioctl]).to.deep.equal([
        'ioctl',
        'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT',
      ]);
      expect((await shouldReject(y.wait(), ClosedError)).ioctl).to.equal('DRM_IOCTL_SYNCOBJ_WAIT');
    });
  });

  describe('KMS flips: signal, timeoutMs, deadline (FlipTable)', () => {
    const flipEvent = (userData: bigint, crtcId: number) => ({ type: EVENT_FLIP_COMPLETE, userData, crtcId, sequence: 1, tvSec: 1, tvUsec: 0 });

    it('an abort rejects the flip with AbortError, drops its late event, and reports the table idle', async () => {
      let idle = 0;
      const table = new FlipTable(() => idle++);
      const ac = new AbortController();
      const p = table.expect(1n, [7], { signal: ac.signal });
      ac.abort('no longer needed');
      const e = await shouldReject(p, AbortError);
      expect(e.cause).to.equal('no longer needed');
      expect([table.size, idle]).to.deep.equal([0, 1]);
      table.dispatch(flipEvent(1n, 7)); // late: dropped
      expect(table.size).to.equal(0);
    });

    it('an already aborted signal rejects at once and registers nothing', async () => {
      const table = new FlipTable();
      await shouldReject(table.expect(2n, [7], { signal: AbortSignal.abort() }), AbortError);
      expect(table.size).to.equal(0);
    });

    it('a timeout rejects with TimeoutError (syscall poll, operation page flip); a flip in time resolves and clears its timer', async () => {
      let idle = 0;
      const table = new FlipTable(() => idle++);
      const late = table.expect(3n, [7], { timeoutMs: 20 });
      const onTime = table.expect(4n, [8], { timeoutMs: 60_000, signal: new AbortController().signal });
      table.dispatch(flipEvent(4n, 8));
      expect(await onTime).to.have.length(1);
      const e = await shouldReject(late, TimeoutError);
      expect([e.code, e.syscall, e.operation]).to.deep.equal(['ETIME', 'poll', 'page flip']);
      expect(idle).to.equal(1);
      await sleep(5);
    });

    it('commit() refuses a flip bound without pageFlipEvent, before the ioctl', () => {
      for (const o of [{ signal: new AbortController().signal }, { timeoutMs: 5 }, { deadline: monotonicNow() }])
        shouldThrow(() => standIn(KmsAtomicRequest).commit(o), InvalidArgValueError);
    });
  });

  describe('old call shapes still work', () => {
    it('Timeline#importSyncFile(point, sf1, sf2): one DeprecationWarning (EXPLICIT_SYNC_DEP_IMPORT_VARIADIC), then the same import', async () => {
      const warnings: (Error & { code?: string })[] = [];
      const onWarning = (w: Error & { code?: string }): void => {
        if (w.code?.startsWith('EXPLICIT_SYNC_DEP') === true) warnings.push(w);
      };
      process.on('warning', onWarning);
      try {
        // The stand-in device fails the call once it reaches an ioctl: the arguments were accepted.
        for (let i = 0; i < 2; i++) expect(() => t.importSyncFile(5, sf, sf2)).to.throw(/an ioctl was reached/);
        expect(() => t.importSyncFile(5, [sf, sf2])).to.throw(/an ioctl was reached/);
        expect(() => t.importSyncFile(5, sf)).to.throw(/an ioctl was reached/);
        await new Promise((r) => setImmediate(r));
      } finally {
        process.off('warning', onWarning);
      }
      expect(warnings.map((w) => [w.name, w.code])).to.deep.equal([['DeprecationWarning', 'EXPLICIT_SYNC_DEP_IMPORT_VARIADIC']]);
    });

    it('DmaBuf#importSyncFile takes one SyncFile or an array of them, then the access', () => {
      const db = standIn(DmaBuf);
      shouldThrow(() => db.importSyncFile([]), InvalidArgValueError);
      shouldThrow(() => db.importSyncFile([sf, {} as SyncFile]), TypeError);
      shouldThrow(() => db.importSyncFile([sf], 'rw' as 'read'), InvalidArgValueError);
    });
  });
});
