// The bad-input matrix, host half: every public function that validates before it reaches a
// device, given wrong types, NaN/Infinity/negative/fractional/huge numbers and bigints, empty and
// oversized lists, and fds that are not what they claim. Each gets a typed error with a useful
// message; nothing crashes; no fd is left behind or taken. Plus a fuzz of the native layer itself.
import { expect } from 'chai';
import { kAdopt } from '../../dist/resource.js';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Device,
  DmaBuf,
  DmaHeap,
  MAX_WAIT_ENTRIES,
  NoDeviceError,
  SyncFile,
  Syncobj,
  Timeline,
  Udmabuf,
  VgemDevice,
  monotonicNow,
} from 'explicit-sync';
import { nativeFamily } from '../../dist/native.js';
import { openFds } from '../helpers.mjs';
import {
  NOT_NUMERIC,
  RANGE,
  TYPE,
  VALUE,
  expectAll,
  fdNumberCases,
  optionsCases,
  sizeCases,
  sys,
  timeoutCases,
  tried,
  u64Cases,
  type Case,
} from '../bad-input-matrix.mjs';
import { fakeDevice, retire } from './syncobj-fakes.mjs';

interface NativeBits {
  eventfdCreate(): number;
  memfdCreate(name: string): number;
  close(fd: number): void;
}
const native = nativeFamily<NativeBits>();

/** Fds of every kind that is not a sync_file, dma-buf or syncobj, opened fresh for each use. */
function foreignFds(dir: string): { label: string; open: () => number }[] {
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  return [
    { label: 'a regular file', open: () => openSync(join(dir, 'file'), 'w+') },
    { label: 'a directory', open: () => openSync(dir, 'r') },
    { label: 'a pipe (FIFO)', open: () => openSync(fifo, 'r+') },
    { label: 'an eventfd', open: () => native.eventfdCreate() },
    { label: 'a memfd', open: () => native.memfdCreate('bad-input') },
    { label: '/dev/null', open: () => openSync('/dev/null', 'r+') },
    { label: 'a procfs file', open: () => openSync('/proc/self/stat', 'r') },
  ];
}

describe('bad input (host)', () => {
  let dir: string;
  let fdsBefore: string[];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'explicit-sync-bad-input-'));
    fdsBefore = openFds();
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    console.log(`      ${tried.length} bad inputs tried`);
  });
  afterEach(() => {
    expect(openFds(), 'fds after the case').to.deep.equal(fdsBefore);
  });

  describe('fd factories: SyncFile.fromFd(), DmaBuf.fromFd()', () => {
    for (const [cls, fromFd] of [
      ['SyncFile', (fd: unknown, o?: unknown) => SyncFile.fromFd(fd as number, o as { dup?: boolean })],
      ['DmaBuf', (fd: unknown, o?: unknown) => DmaBuf.fromFd(fd as number, o as { dup?: boolean })],
    ] as const) {
      it(`${cls}.fromFd(fd): fd numbers that are not fds`, async () => {
        await expectAll(fdNumberCases(`${cls}.fromFd($)`, (v) => fromFd(v)));
      });

      it(`${cls}.fromFd(fd): fds of another kind are ENOTTY (saying what they are), closed ones EBADF; none is taken`, async () => {
        const cases: Case[] = [];
        const opened: number[] = [];
        for (const k of foreignFds(mkdtempSync(join(dir, cls)))) {
          const fd = k.open();
          opened.push(fd);
          for (const dup of [false, true]) cases.push({ name: `${cls}.fromFd(${k.label}, { dup: ${dup} })`, run: () => fromFd(fd, { dup }), expect: sys('ENOTTY') });
        }
        const closed = openSync('/dev/null', 'r');
        closeSync(closed);
        cases.push({ name: `${cls}.fromFd(a closed fd)`, run: () => fromFd(closed), expect: sys('EBADF') });
        cases.push({ name: `${cls}.fromFd(2^30, never open)`, run: () => fromFd(2 ** 30), expect: sys('EBADF') });
        await expectAll(cases);
        for (const fd of opened) closeSync(fd); // still ours: EBADF here would mean one was taken
      });

      it(`${cls}.fromFd(fd, options): bad options`, async () => {
        const fd = openSync('/dev/null', 'r');
        try {
          await expectAll([
            ...optionsCases(`${cls}.fromFd(fd, $)`, (o) => fromFd(fd, o)),
            ...[['yes', 'yes'], ['1', 1], ['null', null]].map(([l, v]) => ({ name: `${cls}.fromFd(fd, { dup: ${l} })`, run: () => fromFd(fd, { dup: v }), expect: TYPE })),
          ]);
        } finally {
          closeSync(fd);
        }
      });
    }
  });

  describe('SyncFile.merge()', () => {
    it('no files, or things that are not SyncFiles', async () => {
      const forged = Object.create(SyncFile.prototype) as SyncFile;
      await expectAll([
        { name: 'SyncFile.merge()', run: () => SyncFile.merge(), expect: VALUE },
        ...NOT_NUMERIC.map(([l, v]) => ({ name: `SyncFile.merge(${l})`, run: () => SyncFile.merge(v as SyncFile), expect: TYPE })),
        // A forged instance (no private fields) is a TypeError from the engine, never an fd.
        { name: 'SyncFile.merge(Object.create(SyncFile.prototype))', run: () => SyncFile.merge(forged), expect: { error: TypeError } },
        { name: 'SyncFile.merge(forged, forged)', run: () => SyncFile.merge(forged, forged), expect: { error: TypeError } },
      ]);
    });
  });

  describe('opening devices: Device.open(), VgemDevice.open(), DmaHeap.open(), Udmabuf.open()', () => {
    it('paths: wrong types, empty, NUL bytes, missing, not a device', async () => {
      const nul = '/dev/dri/card0\0junk';
      await expectAll([
        { name: "Device.open('')", run: () => Device.open(''), expect: VALUE },
        { name: 'Device.open(path with a NUL byte)', run: () => Device.open(nul), expect: VALUE },
        { name: "Device.open('/nonexistent')", run: () => Device.open('/nonexistent'), expect: sys('ENOENT') },
        { name: "Device.open('/dev/null')", run: () => Device.open('/dev/null'), expect: sys('ENODEV') },
        { name: 'Device.open(a directory)', run: () => Device.open(dir), expect: sys('EISDIR') },
        { name: 'Device.open(a regular file)', run: () => Device.open('/proc/self/stat'), expect: { error: Error } },
        ...NOT_NUMERIC.filter(([, v]) => v !== undefined && typeof v !== 'object' && typeof v !== 'string').map(([l, v]) => ({
          name: `Device.open(${l})`,
          run: () => Device.open(v as string),
          expect: TYPE,
        })),
        { name: 'Device.open(null)', run: () => Device.open(null as unknown as string), expect: TYPE },
        { name: 'VgemDevice.open(5)', run: () => VgemDevice.open(5 as unknown as string), expect: TYPE },
        { name: "VgemDevice.open('')", run: () => VgemDevice.open(''), expect: VALUE },
        { name: 'VgemDevice.open(path with a NUL byte)', run: () => VgemDevice.open(nul), expect: VALUE },
        { name: "VgemDevice.open('/dev/null')", run: () => VgemDevice.open('/dev/null'), expect: sys('ENODEV') },
        { name: "VgemDevice.open('/nonexistent')", run: () => VgemDevice.open('/nonexistent'), expect: sys('ENOENT') },
        { name: 'DmaHeap.open(5)', run: () => DmaHeap.open(5 as unknown as string), expect: TYPE },
        { name: "DmaHeap.open('')", run: () => DmaHeap.open(''), expect: VALUE },
        { name: "DmaHeap.open('../../etc/passwd')", run: () => DmaHeap.open('../../etc/passwd'), expect: VALUE },
        { name: "DmaHeap.open('..')", run: () => DmaHeap.open('..'), expect: VALUE },
        { name: 'DmaHeap.open(name with a NUL byte)', run: () => DmaHeap.open('system\0x'), expect: VALUE },
        { name: 'Udmabuf.open(5)', run: () => Udmabuf.open(5 as unknown as string), expect: TYPE },
        { name: 'Udmabuf.open(path with a NUL byte)', run: () => Udmabuf.open('/dev/udmabuf\0x'), expect: VALUE },
        { name: "Udmabuf.open('/nonexistent')", run: () => Udmabuf.open('/nonexistent'), expect: sys('ENOENT') },
      ]);
    });

    it('Device.open(options): bad options', async () => {
      const open = (o: unknown) => () => Device.open(o as object);
      await expectAll([
        ...NOT_OBJECT_NON_STRING.map(([l, v]) => ({ name: `Device.open(${l})`, run: open(v), expect: TYPE })),
        { name: 'Device.open({ driver: 5 })', run: open({ driver: 5 }), expect: TYPE },
        { name: 'Device.open({ driver: [1] })', run: open({ driver: [1] }), expect: TYPE },
        { name: 'Device.open({ driver: {} })', run: open({ driver: {} }), expect: TYPE },
        { name: "Device.open({ require: 'timeline' })", run: open({ require: 'timeline' }), expect: TYPE },
        { name: "Device.open({ require: ['teleport'] })", run: open({ require: ['teleport'] }), expect: VALUE },
        { name: 'Device.open({ require: [null] })', run: open({ require: [null] }), expect: VALUE },
        { name: 'Device.open({ require: null })', run: open({ require: null }), expect: TYPE },
        { name: "Device.open({ render: 'yes' })", run: open({ render: 'yes' }), expect: TYPE },
      ]);
    });

    it('with no DRM device here, Device.open() is NoDeviceError and VgemDevice.open() too', async function () {
      if (Device.list().length > 0) this.skip(); // a machine with /dev/dri: the kernel tests cover it
      await expectAll([
        { name: 'Device.open()', run: () => Device.open(), expect: { error: NoDeviceError, code: 'ENODEV' } },
        { name: 'VgemDevice.open()', run: () => VgemDevice.open(), expect: { error: NoDeviceError, code: 'ENODEV' } },
      ]);
    });
  });

  describe('sizes: Udmabuf.create()', () => {
    it('wrong types, zero, negative, fractional, unsafe', async () => {
      await expectAll(sizeCases('Udmabuf.create($)', (v) => Udmabuf.create(v as number)));
    });
  });

  describe('Syncobj / Timeline argument validation (before any ioctl: a stand-in device)', () => {
    let dev: Device;
    let t: Timeline;
    let t2: Timeline;
    let s: Syncobj;
    before(() => {
      dev = fakeDevice();
      t = Timeline[kAdopt](dev, 1);
      t2 = Timeline[kAdopt](fakeDevice(), 2); // another Device
      s = Syncobj[kAdopt](dev, 3);
    });
    after(() => {
      retire(dev);
      retire(t2.device);
      t.close();
      t2.close();
      s.close();
    });

    it('Timeline points: signal, isSignaled, isAvailable, query, transfer', async () => {
      await expectAll([
        ...u64Cases('Timeline#signal($)', (v) => t.signal(v as bigint), { nonZero: true }),
        ...u64Cases('Timeline#isSignaled($)', (v) => t.isSignaled(v as bigint)),
        ...u64Cases('Timeline#isAvailable($)', (v) => t.isAvailable(v as bigint)),
        ...optionsCases('Timeline#query($)', (o) => t.query(o as object)),
        { name: "Timeline#query({ lastSubmitted: 'yes' })", run: () => t.query({ lastSubmitted: 'yes' as unknown as boolean }), expect: TYPE },
        ...u64Cases('Timeline#transfer($, t2, 1)', (v) => t.transfer(v as bigint, t2, 1), { nonZero: true }),
        ...u64Cases('Timeline#transfer(1, t, $)', (v) => t.transfer(1, t, v as bigint), { nonZero: true }).filter((c) => !c.name.includes('(1, t, undefined)')),
        ...NOT_NUMERIC.map(([l, v]) => ({ name: `Timeline#transfer(1, ${l})`, run: () => t.transfer(1, v as Timeline), expect: TYPE })),
        { name: 'Timeline#transfer(1, a Timeline of another Device, 1)', run: () => t.transfer(1, t2, 1), expect: VALUE },
        { name: 'Timeline#transfer(1, a Syncobj, 5)', run: () => t.transfer(1, s, 5), expect: VALUE },
      ]);
    });

    it('Timeline#importSyncFile / exportSyncFile', async () => {
      await expectAll([
        { name: 'Timeline#importSyncFile(1)', run: () => t.importSyncFile(1), expect: VALUE },
        // An empty array names no sync file, like importSyncFile(1): ERR_INVALID_ARG_VALUE.
        { name: 'Timeline#importSyncFile(1, [])', run: () => t.importSyncFile(1, []), expect: VALUE },
        ...NOT_NUMERIC.filter(([l]) => l !== '[]').map(([l, v]) => ({ name: `Timeline#importSyncFile(1, ${l})`, run: () => t.importSyncFile(1, v as SyncFile), expect: TYPE })),
        { name: 'Timeline#importSyncFile(1, [{}])', run: () => t.importSyncFile(1, [{} as SyncFile]), expect: TYPE },
        ...u64Cases('Timeline#exportSyncFile($)', (v) => t.exportSyncFile(v as bigint), { nonZero: true, async: true }),
        ...optionsCases('Timeline#exportSyncFile(1, $)', (o) => t.exportSyncFile(1, o as object), true),
        ...timeoutCases('Timeline#exportSyncFile(1, { materializeTimeoutMs: $ })', (v) => t.exportSyncFile(1, { materializeTimeoutMs: v as number }), true),
        { name: 'Timeline#exportSyncFile(1, { signal: {} })', run: () => t.exportSyncFile(1, { signal: {} as AbortSignal }), expect: TYPE, async: true },
      ]);
    });

    for (const [what, wait, waitSync] of [
      ['Timeline#wait(1, $)', (o: unknown) => t.wait(1, o as object), (o: unknown) => t.waitSync(1, o as object)],
      ['Syncobj#wait($)', (o: unknown) => s.wait(o as object), (o: unknown) => s.waitSync(o as object)],
    ] as const) {
      it(`${what.replace('$', 'options')} and waitSync: every option`, async () => {
        const both = (name: string, opts: unknown, expect: Case['expect']): Case[] => [
          { name: what.replace('$', name), run: () => wait(opts), expect, async: true },
          { name: what.replace('wait', 'waitSync').replace('$', name), run: () => waitSync(opts), expect },
        ];
        await expectAll([
          ...optionsCases(what, wait, true),
          ...optionsCases(what.replace('wait', 'waitSync'), waitSync),
          ...timeoutCases(what.replace('$', '{ timeoutMs: $ }'), (v) => wait({ timeoutMs: v }), true),
          ...timeoutCases(what.replace('wait', 'waitSync').replace('$', '{ timeoutMs: $ }'), (v) => waitSync({ timeoutMs: v })),
          ...both("{ until: 'done' }", { until: 'done' }, VALUE),
          ...both('{ until: 1 }', { until: 1 }, VALUE),
          ...both('{ deadline: 5 } (not a bigint)', { deadline: 5 }, TYPE),
          ...both('{ deadline: -1n }', { deadline: -1n }, RANGE),
          ...both('{ deadline: 2n**64n }', { deadline: 2n ** 64n }, RANGE),
          ...both('{ deadline, timeoutMs }', { deadline: monotonicNow(), timeoutMs: 5 }, VALUE),
          ...both('{ fenceDeadline: 5 }', { fenceDeadline: 5 }, TYPE),
          ...both('{ fenceDeadline: -1n }', { fenceDeadline: -1n }, RANGE),
          ...both('{ fenceDeadline: 2n**63n } (a negative ktime_t)', { fenceDeadline: 2n ** 63n }, RANGE),
          { name: what.replace('$', '{ signal: {} }'), run: () => wait({ signal: {} }), expect: TYPE, async: true },
          { name: what.replace('$', "{ signal: 'x' }"), run: () => wait({ signal: 'x' }), expect: TYPE, async: true },
          { name: what.replace('$', '{ signal: { aborted: true } }'), run: () => wait({ signal: { aborted: true } }), expect: TYPE, async: true },
          { name: what.replace('$', "{ ref: 'no' }"), run: () => wait({ ref: 'no' }), expect: TYPE, async: true },
          { name: what.replace('$', '{ ref: null }'), run: () => wait({ ref: null }), expect: TYPE, async: true },
        ]);
      });
    }

    it('Timeline#wait(point): bad points reject', async () => {
      await expectAll([
        ...u64Cases('Timeline#wait($)', (v) => t.wait(v as bigint), { async: true }),
        ...u64Cases('Timeline#waitSync($)', (v) => t.waitSync(v as bigint)),
      ]);
    });

    it('multi-waits: not lists, empty lists, wrong entries, oversized lists, mixed devices', async () => {
      const huge = (n: number) => Array.from({ length: n }, () => ({ timeline: t, point: 1 }));
      const hugeS = (n: number) => Array.from({ length: n }, () => s);
      const cases: Case[] = [];
      for (const [name, fn, isAsync] of [
        ['Timeline.waitAll', Timeline.waitAll, true],
        ['Timeline.waitAny', Timeline.waitAny, true],
        ['Timeline.waitAllSync', Timeline.waitAllSync, false],
        ['Timeline.waitAnySync', Timeline.waitAnySync, false],
      ] as const) {
        const call = (v: unknown) => () => (fn as (l: unknown) => unknown)(v);
        cases.push(
          { name: `${name}([])`, run: call([]), expect: VALUE, async: isAsync },
          ...NOT_NUMERIC.filter(([l]) => l !== '[]').map(([l, v]) => ({ name: `${name}(${l})`, run: call(v), expect: TYPE, async: isAsync })),
          { name: `${name}([null])`, run: call([null]), expect: TYPE, async: isAsync },
          { name: `${name}([{ timeline: {}, point: 1 }])`, run: call([{ timeline: {}, point: 1 }]), expect: TYPE, async: isAsync },
          { name: `${name}([{ timeline: s (a Syncobj), point: 1 }])`, run: call([{ timeline: s, point: 1 }]), expect: TYPE, async: isAsync },
          { name: `${name}([{ timeline: t, point: -1 }])`, run: call([{ timeline: t, point: -1 }]), expect: RANGE, async: isAsync },
          { name: `${name}([{ timeline: t }])`, run: call([{ timeline: t }]), expect: TYPE, async: isAsync },
          { name: `${name}(${MAX_WAIT_ENTRIES + 1} entries)`, run: call(huge(MAX_WAIT_ENTRIES + 1)), expect: RANGE, async: isAsync },
          { name: `${name}(10^6 entries)`, run: call(huge(1e6)), expect: RANGE, async: isAsync },
        );
      }
      for (const [name, fn, isAsync] of [
        ['Syncobj.waitAll', Syncobj.waitAll, true],
        ['Syncobj.waitAny', Syncobj.waitAny, true],
        ['Syncobj.waitAllSync', Syncobj.waitAllSync, false],
        ['Syncobj.waitAnySync', Syncobj.waitAnySync, false],
      ] as const) {
        const call = (v: unknown) => () => (fn as (l: unknown) => unknown)(v);
        cases.push(
          { name: `${name}([])`, run: call([]), expect: VALUE, async: isAsync },
          ...NOT_NUMERIC.filter(([l]) => l !== '[]').map(([l, v]) => ({ name: `${name}(${l})`, run: call(v), expect: TYPE, async: isAsync })),
          { name: `${name}([t] (a Timeline))`, run: call([t]), expect: TYPE, async: isAsync },
          { name: `${name}([s, 1])`, run: call([s, 1]), expect: TYPE, async: isAsync },
          { name: `${name}(${MAX_WAIT_ENTRIES + 1} entries)`, run: call(hugeS(MAX_WAIT_ENTRIES + 1)), expect: RANGE, async: isAsync },
        );
      }
      cases.push(
        { name: 'Timeline.waitAllSync(timelines of two Devices)', run: () => Timeline.waitAllSync([{ timeline: t, point: 1 }, { timeline: t2, point: 1 }]), expect: VALUE },
        { name: 'Timeline.waitAnySync(timelines of two Devices)', run: () => Timeline.waitAnySync([{ timeline: t, point: 1 }, { timeline: t2, point: 1 }]), expect: VALUE },
      );
      await expectAll(cases);
    });

    it('Device: createSyncobj, importTimeline, importSyncobj options and fds', async () => {
      await expectAll([
        ...optionsCases('device.createSyncobj($)', (o) => dev.createSyncobj(o as object)),
        { name: "device.createSyncobj({ signaled: 'yes' })", run: () => dev.createSyncobj({ signaled: 'yes' as unknown as boolean }), expect: TYPE },
        ...fdNumberCases('device.importTimeline($)', (v) => dev.importTimeline(v as number)),
        ...fdNumberCases('device.importSyncobj($)', (v) => dev.importSyncobj(v as number)),
        ...optionsCases('device.importTimeline(3, $)', (o) => dev.importTimeline(3, o as object)),
        ...timeoutCases('device.importTimeline(3, { defaultTimeoutMs: $ })', (v) => dev.importTimeline(3, { defaultTimeoutMs: v as number })),
        ...timeoutCases('device.importSyncobj(3, { defaultTimeoutMs: $ })', (v) => dev.importSyncobj(3, { defaultTimeoutMs: v as number })),
      ]);
    });
  });

  describe('the native layer itself (not public: a last guard that nothing reaches the kernel unchecked)', () => {
    it('every native function, given junk in every position, throws or returns; never crashes, never closes our fds', () => {
      const all = nativeFamily<Record<string, unknown>>();
      const BIG_FD = 2 ** 30; // a valid fd number that is never open
      const junk: unknown[] = [
        undefined, null, 'x', '', {}, [], true, Symbol('j'), () => 1, -1, Number.NaN, Infinity, 1.5, 2 ** 31, 2 ** 53,
        -(2 ** 63), 1n, -1n, 2n ** 64n, new Uint32Array(3), new Uint32Array(0), new BigUint64Array(2), new Uint8Array(4),
        Buffer.alloc(8), new ArrayBuffer(8), BIG_FD,
      ];
      const skip = new Set(['setErrorFactory', 'FdWatcher']);
      let calls = 0;
      let threw = 0;
      const ours = new Set(openFds());
      const tidy = (): void => {
        // Calls that succeed (memfdCreate('x'), eventfdCreate()) made fds: close those only.
        for (const f of openFds()) if (!ours.has(f)) closeSync(Number(f.split(' ')[0]));
      };
      for (const [name, fn] of Object.entries(all)) {
        if (typeof fn !== 'function' || skip.has(name)) continue;
        for (let pos = 0; pos < 7; pos++) {
          for (const j of junk) {
            const args = [...Array<unknown>(pos).fill(BIG_FD), j];
            calls++;
            try {
              (fn as (...a: unknown[]) => unknown)(...args);
            } catch (err) {
              threw++;
              expect(err, `${name}(${args.map(String).join(', ')})`).to.be.instanceOf(Error);
            }
            tidy();
          }
        }
      }
      // The watcher class: bad constructor arguments, methods on foreign receivers.
      const W = all['FdWatcher'] as new (...a: unknown[]) => { start(e: number): void; stop(): void; setRef(r: boolean): void; close(): void };
      for (const args of [[], [BIG_FD, () => {}], [-1, () => {}], ['x', () => {}], [0, 'not a function'], [2 ** 31, () => {}]]) {
        calls++;
        expect(() => new W(...args)).to.throw(Error);
      }
      expect(() => (W as unknown as () => void)()).to.throw(TypeError); // without new
      for (const m of ['start', 'stop', 'setRef', 'close'] as const) {
        for (const self of [{}, 5, null, undefined, Object.create(W.prototype)]) {
          calls++;
          try {
            (W.prototype[m] as (this: unknown, ...a: unknown[]) => void).call(self, 1);
          } catch (err) {
            expect(err).to.be.instanceOf(Error);
          }
        }
      }
      const efd = native.eventfdCreate();
      const w = new W(efd, () => {});
      w.close();
      w.close();
      expect(() => w.start(1)).to.throw(Error);
      w.stop();
      w.setRef(true);
      native.close(efd);
      // The error factory: junk is refused, and the installed one keeps working.
      const setErrorFactory = all['setErrorFactory'] as (f: unknown) => void;
      for (const j of junk) if (typeof j !== 'function') expect(() => setErrorFactory(j)).to.throw(TypeError);
      expect(() => DmaBuf.fromFd(2 ** 30)).to.throw(Error).with.property('code', 'EBADF');
      tidy();
      console.log(`      ${calls} native calls with junk arguments, ${threw} threw`);
    });
  });
});

const NOT_OBJECT_NON_STRING = [
  ['1', 1],
  ['true', true],
  ['1n', 1n],
  ['Symbol()', Symbol('o')],
  ['null', null],
] as const;
