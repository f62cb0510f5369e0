// Device discovery against the VM's real drivers: vgem (card0) and virtio_gpu (card1, renderD129).
import { expect } from 'chai';
import { ClosedError, Device, NoDeviceError } from 'explicit-sync';
import { kDeviceFd } from '../../dist/device.js';
import { shouldThrow } from '../helpers.mjs';

describe('Device (kernel)', () => {
  describe('Device.list()', () => {
    let list: ReturnType<typeof Device.list> = [];
    before(() => {
      list = Device.list();
    });

    it('finds the vgem card node, without syncobj', () => {
      const vgem = list.filter((d) => d.driver.name === 'vgem');
      expect(vgem.length).to.be.greaterThan(0);
      const card = vgem.find((d) => d.kind === 'primary');
      expect(card, 'vgem card node').to.not.equal(undefined);
      expect(card!.path).to.match(/^\/dev\/dri\/card\d+$/);
      expect(card!.caps.syncobj).to.equal(false);
      expect(card!.caps.timeline).to.equal(false);
      // vgem has no KMS: the kernel answers EOPNOTSUPP to DRM_CAP_DUMB_BUFFER (reported as false),
      // although DUMB_CREATE itself works on its card node.
      expect(card!.caps.dumbBuffer).to.equal(false);
      expect(card!.driver.version).to.match(/^\d+\.\d+\.\d+$/);
    });

    it('finds virtio_gpu card and render nodes, with syncobj and timeline', () => {
      const virtio = list.filter((d) => d.driver.name === 'virtio_gpu');
      expect(virtio.map((d) => d.kind).sort()).to.deep.equal(['primary', 'render']);
      for (const d of virtio) {
        expect(d.caps.syncobj).to.equal(true);
        expect(d.caps.timeline).to.equal(true);
        expect(d.caps.prime.export).to.equal(true);
      }
      expect(virtio.find((d) => d.kind === 'render')!.path).to.match(/^\/dev\/dri\/renderD\d+$/);
    });
  });

  describe('Device.open()', () => {
    it('opens by path and reports driver and caps', () => {
      using dev = Device.open('/dev/dri/card0');
      expect(dev.driver.name).to.equal('vgem');
      expect(dev.kind).to.equal('primary');
      expect(dev.fd).to.be.greaterThan(2);
    });

    it('picks the render node of the driver that has timelines', () => {
      using dev = Device.open({ require: ['syncobj', 'timeline'] });
      expect(dev.driver.name).to.equal('virtio_gpu');
      expect(dev.kind).to.equal('render');
      expect(dev.caps.timeline).to.equal(true);
    });

    it('honours render: false and driver', () => {
      using dev = Device.open({ driver: 'virtio_gpu', render: false });
      expect(dev.kind).to.equal('primary');
      using vgem = Device.open({ driver: ['nouveau', 'vgem'] });
      expect(vgem.driver.name).to.equal('vgem');
    });

    it('lists what it found when nothing fits', () => {
      const e = shouldThrow(() => Device.open({ driver: 'vgem', require: ['timeline'] }), NoDeviceError);
      expect(e.code).to.equal('ENODEV');
      expect(e.found.some((f) => f.includes('virtio_gpu'))).to.equal(true);
      expect(e.message).to.contain('vgem');
    });
  });

  describe('Device#close()', () => {
    it('is idempotent, sets fd to -1, and using closes', () => {
      const dev = Device.open('/dev/dri/card0');
      dev.close();
      expect(dev.fd).to.equal(-1);
      expect(dev.closed).to.equal(true);
      dev.close();
      let kept: Device;
      {
        using d = Device.open('/dev/dri/card0');
        kept = d;
        expect(kept.closed).to.equal(false);
      }
      expect(kept.closed).to.equal(true);
    });

    it('use after close throws ClosedError (EBADF)', () => {
      const dev = Device.open({ require: ['timeline'] });
      dev.close();
      const e = shouldThrow(() => dev[kDeviceFd]('createTimeline'), ClosedError);
      expect(e.code).to.equal('EBADF');
    });
  });
});
