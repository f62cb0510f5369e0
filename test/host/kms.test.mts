// KMS pieces that need no kernel: fourcc codes and KmsDevice.open() argument and node checks.
// Everything else runs against vkms in the VM (test/vm/kms.test.mts).
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { ExplicitSyncError, FORMAT_ARGB8888, FORMAT_XRGB8888, InvalidArgTypeError, InvalidArgValueError, KmsDevice, NoDeviceError, fourcc } from 'explicit-sync';
import { shouldThrow } from '../helpers.mjs';

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
});
