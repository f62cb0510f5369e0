// Binary Syncobj without a kernel: argument validation happens before any ioctl (a stand-in Device
// fails the test if one is reached), and the handle-owner contract (close, ClosedError, using).
import { expect } from 'chai';
import { kAdopt } from '../../dist/resource.js';
import {
  AbortError,
  ClosedError,
  Device,
  ExplicitSyncError,
  InvalidArgTypeError,
  InvalidArgValueError,
  OutOfRangeError,
  Syncobj,
  SyncobjResource,
  Timeline,
} from 'explicit-sync';
import { kDeviceFd } from '../../dist/device.js';
import { shouldReject, shouldThrow } from '../helpers.mjs';
import { fakeDevice, retire } from './syncobj-fakes.mjs';

describe('Syncobj (host: validation before any ioctl)', () => {
  let device: Device;
  let s: Syncobj;
  beforeEach(() => {
    device = fakeDevice();
    s = Syncobj[kAdopt](device, 5);
  });
  afterEach(() => {
    retire(device);
    s.close();
  });

  it('is a SyncobjResource with its handle and device', () => {
    expect(s).to.be.instanceOf(SyncobjResource);
    expect(s.handle).to.equal(5);
    expect(s.device).to.equal(device);
    expect(s.closed).to.equal(false);
  });

  it('validates wait options before any ioctl', async () => {
    await shouldReject(s.wait({ timeoutMs: -1 }), OutOfRangeError);
    await shouldReject(s.wait({ timeoutMs: Number.NaN }), OutOfRangeError);
    await shouldReject(s.wait({ deadline: 1 as unknown as bigint }), InvalidArgTypeError);
    await shouldReject(s.wait({ deadline: 1n << 64n }), OutOfRangeError);
    await shouldReject(s.wait({ deadline: 5n, timeoutMs: 5 }), InvalidArgValueError);
    await shouldReject(s.wait({ until: 'never' as 'signaled' }), InvalidArgValueError);
    await shouldReject(s.wait({ signal: 5 as unknown as AbortSignal }), InvalidArgTypeError);
    await shouldReject(s.wait('x' as never), InvalidArgTypeError);
    shouldThrow(() => s.waitSync({ timeoutMs: -1 }), OutOfRangeError);
    shouldThrow(() => s.waitSync({ until: 'x' as 'signaled' }), InvalidArgValueError);
  });

  it('validates waitAll / waitAny lists before any ioctl', async () => {
    await shouldReject(Syncobj.waitAll([]), InvalidArgValueError);
    await shouldReject(Syncobj.waitAny(s as never), InvalidArgTypeError);
    await shouldReject(Syncobj.waitAll([s, {} as Syncobj]), InvalidArgTypeError);
    await shouldReject(Syncobj.waitAny([s], { timeoutMs: -2 }), OutOfRangeError);
    shouldThrow(() => Syncobj.waitAllSync([]), InvalidArgValueError);
    shouldThrow(() => Syncobj.waitAnySync([s, 3 as never]), InvalidArgTypeError);
  });

  it('an already aborted signal rejects wait / waitAll / waitAny with AbortError before any ioctl', async () => {
    const ac = new AbortController();
    ac.abort('no');
    for (const p of [Syncobj.waitAll([s], { signal: ac.signal }), Syncobj.waitAny([s], { signal: ac.signal })]) {
      const e = await shouldReject(p, AbortError);
      expect(e.cause).to.equal('no');
    }
    const t = Timeline[kAdopt](device, 12);
    await shouldReject(Timeline.waitAny([{ timeline: t, point: 1 }], { signal: ac.signal }), AbortError);
    retire(device);
    t.close();
  });

  it('waitAllSync across devices is refused (one ioctl cannot span two DRM files)', () => {
    const other = fakeDevice();
    const s2 = Syncobj[kAdopt](other, 6);
    shouldThrow(() => Syncobj.waitAllSync([s, s2]), InvalidArgValueError);
    retire(other);
    s2.close();
  });

  it('importSyncFile() takes a SyncFile only', () => {
    shouldThrow(() => s.importSyncFile(3 as never), InvalidArgTypeError);
    shouldThrow(() => s.importSyncFile({ fd: 3 } as never), InvalidArgTypeError);
  });

  it('close() is idempotent; afterwards every method throws ClosedError and handle is 0', async () => {
    retire(device);
    s.close();
    s.close();
    expect(s.handle).to.equal(0);
    expect(s.closed).to.equal(true);
    for (const call of [() => s.signal(), () => s.reset(), () => s.isSignaled(), () => s.hasFence(), () => s.exportFd(), () => s.exportSyncFile(), () => s.waitSync()]) {
      const e = shouldThrow(call, ClosedError);
      expect(e.code).to.equal('EBADF');
      expect(e.errno).to.equal(-9);
      expect(e).to.be.instanceOf(ExplicitSyncError);
    }
    await shouldReject(s.wait(), ClosedError);
    await shouldReject(Syncobj.waitAny([s]), ClosedError);
  });

  it('[Symbol.dispose] never throws and closes', () => {
    retire(device);
    s[Symbol.dispose]();
    s[Symbol.dispose]();
    expect(s.handle).to.equal(0);
  });

  it('a closed destination of Timeline#transfer() is a ClosedError, not a stale handle', () => {
    const t = Timeline[kAdopt](device, 9);
    const dst = Syncobj[kAdopt](device, 10);
    Object.defineProperty(device, kDeviceFd, { value: () => 3 }); // "open" device fd for the source
    retire(device);
    dst.close();
    Object.defineProperty(device, 'closed', { value: false });
    // The destination is closed: rejected before the ioctl.
    const e = shouldThrow(() => t.transfer(1, dst), ClosedError);
    expect(e.message).to.contain('destination Syncobj');
    retire(device);
    t.close();
  });
});
