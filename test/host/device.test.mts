import { expect } from 'chai';
import { existsSync, openSync, closeSync } from 'node:fs';
import { Device, ExplicitSyncError, NoDeviceError } from 'explicit-sync';
import { shouldThrow } from '../helpers.mjs';

const hasDri = existsSync('/dev/dri');

describe('Device (host)', () => {
  describe('Device.list()', () => {
    it('is empty on a machine without /dev/dri', function () {
      if (hasDri) this.skip();
      expect(Device.list()).to.deep.equal([]);
    });
  });

  describe('Device.open()', () => {
    it('throws NoDeviceError that says how to run in the VM when there is no /dev/dri', function () {
      if (hasDri) this.skip();
      const e = shouldThrow(() => Device.open(), NoDeviceError);
      expect(e).to.be.instanceOf(ExplicitSyncError);
      expect(e.code).to.equal('ENODEV');
      expect(e.message).to.contain('explicit-sync vm');
      expect(e.found).to.deep.equal([]);
    });
    it('ENOENT for a missing path, with the path', () => {
      const e = shouldThrow(() => Device.open('/dev/dri/card99-nonexistent'), ExplicitSyncError);
      expect(e.code).to.equal('ENOENT');
      expect(e.syscall).to.equal('open');
      expect(e.path).to.equal('/dev/dri/card99-nonexistent');
    });
    it('ENODEV for a character device that is not DRM, and a regular file', () => {
      expect(shouldThrow(() => Device.open('/dev/null'), ExplicitSyncError).code).to.equal('ENODEV');
      expect(shouldThrow(() => Device.open('/proc/self/status'), ExplicitSyncError).code).to.equal('ENODEV');
    });
    it('closes the fd it opened when the node is rejected', () => {
      // The next fd number must be free again after a rejected open.
      const probe = openSync('/dev/null', 'r');
      closeSync(probe);
      shouldThrow(() => Device.open('/dev/null'), ExplicitSyncError);
      const again = openSync('/dev/null', 'r');
      closeSync(again);
      expect(again).to.equal(probe);
    });
    it('validates options before looking at devices', () => {
      expect(() => Device.open({ require: ['nope' as never] })).to.throw(TypeError).with.property('code', 'ERR_INVALID_ARG_VALUE');
      expect(() => Device.open({ render: 'yes' as never })).to.throw(TypeError).with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => Device.open({ driver: 5 as never })).to.throw(TypeError).with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => Device.open(42 as never)).to.throw(TypeError).with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => Device.open('')).to.throw(TypeError).with.property('code', 'ERR_INVALID_ARG_VALUE');
    });
  });
});
