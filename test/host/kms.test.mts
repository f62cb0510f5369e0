// KMS pieces that need no kernel: fourcc codes, KmsDevice.open() argument and node checks, and the
// flip bookkeeping (internal FlipTable, fed synthetic events: vkms has one CRTC, so the kernel
// cannot send two events for one commit in the VM). Everything else runs against vkms in the VM
// (test/vm/kms.test.mts, test/vm/kms-lifetimes.test.mts).
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { ExplicitSyncError, FORMAT_ARGB8888, FORMAT_XRGB8888, InvalidArgTypeError, InvalidArgValueError, KmsDevice, NoDeviceError, fourcc } from 'explicit-sync';
import { EVENT_FLIP_COMPLETE, FlipTable } from '../../dist/kms.js';
import { settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';

const flipEvent = (userData: bigint, crtcId: number, sequence = 1): { type: number; userData: bigint; crtcId: number; sequence: number; tvSec: number; tvUsec: number } =>
  ({ type: EVENT_FLIP_COMPLETE, userData, crtcId, sequence, tvSec: 1, tvUsec: 2 });

describe('KMS (host)', () => {
  it('fourcc() builds DRM format codes', () => {
    expect(FORMAT_XRGB8888).to.equal(0x34325258);
    expect(FORMAT_ARGB8888).to.equal(0x34325241);
    expect(fourcc('NV12')).to.equal(0x3231564e);
    shouldThrow(() => fourcc('XR2'), InvalidArgValueError);
  });

  it('KmsDevice.open() refuses what is not a DRM node, and bad arguments, before any ioctl', () => {
    const e = shouldThrow(() => KmsDevice.open('/dev/null'), ExplicitSyncError);
    expect(e.code).to.equal('ENODEV');
    shouldThrow(() => KmsDevice.open(42 as unknown as string), InvalidArgTypeError);
  });

  it('KmsDevice.open() says ENODEV when there is no card node', function () {
    if (existsSync('/dev/dri')) {
      console.log('      (this machine has /dev/dri: the VM tests cover opening)');
      return;
    }
    const e = shouldThrow(() => KmsDevice.open(), NoDeviceError);
    expect(e.code).to.equal('ENODEV');
  });

  describe('FlipTable (internal: how flip promises match the kernel\'s events)', () => {
    it('settles once each CRTC of the commit sent its event (a plane moving from CRTC 40 to 41: both)', async () => {
      const t = new FlipTable();
      const p = t.expect(7n, [41, 40]);
      t.dispatch(flipEvent(7n, 40));
      expect(await settlesWithin(p, 20)).to.equal(false);
      t.dispatch(flipEvent(7n, 41, 2));
      expect((await p).map((e) => [e.crtcId, e.sequence, e.timeNs])).to.deep.equal([[40, 1, 1_000_002_000n], [41, 2, 1_000_002_000n]]);
      expect(t.size).to.equal(0);
    });

    it('takes along an event of a CRTC a driver added, and never counts a late one for another commit', async () => {
      const t = new FlipTable();
      const first = t.expect(1n, [40]);
      t.dispatch(flipEvent(1n, 42)); // a CRTC the driver added, before ours
      t.dispatch(flipEvent(1n, 40));
      expect((await first).map((e) => e.crtcId)).to.deep.equal([42, 40]);
      const second = t.expect(2n, [40]);
      t.dispatch(flipEvent(1n, 43)); // late, of the settled first commit
      t.dispatch({ type: EVENT_FLIP_COMPLETE + 100, userData: 2n, crtcId: 40 }); // not a flip event
      expect(await settlesWithin(second, 20)).to.equal(false);
      t.dispatch(flipEvent(2n, 40));
      expect((await second).map((e) => e.crtcId)).to.deep.equal([40]);
    });

    it('with no CRTC to wait for, the first event settles it; rejectAll() rejects every pending flip', async () => {
      const t = new FlipTable();
      const any = t.expect(3n, []);
      t.dispatch(flipEvent(3n, 44));
      expect((await any).map((e) => e.crtcId)).to.deep.equal([44]);
      const a = t.expect(4n, [40]);
      const b = t.expect(5n, [41]);
      const err = new ExplicitSyncError(5, 'read');
      t.rejectAll(err);
      expect(await shouldReject(a, ExplicitSyncError)).to.equal(err);
      expect(await shouldReject(b, ExplicitSyncError)).to.equal(err);
      expect(t.size).to.equal(0);
    });
  });
});
