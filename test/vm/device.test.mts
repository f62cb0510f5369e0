// Device discovery against the VM's real drivers: vgem (card0) and virtio_gpu (card1, renderD129).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ClosedError, Device, NoDeviceError, VgemDevice } from 'explicit-sync';
import { kDeviceFd } from '../../dist/device.js';
import { shouldThrow } from '../helpers.mjs';
import { expectNoDeviceWith, expectNoVkms, itWith } from './kernel-features.mjs';

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

    itWith(['timeline'], 'finds virtio_gpu card and render nodes, with syncobj and timeline', () => {
      const virtio = list.filter((d) => d.driver.name === 'virtio_gpu');
      expect(virtio.map((d) => d.kind).sort()).to.deep.equal(['primary', 'render']);
      for (const d of virtio) {
        expect(d.caps.syncobj).to.equal(true);
        expect(d.caps.timeline).to.equal(true);
        expect(d.caps.prime.export).to.equal(true);
      }
      expect(virtio.find((d) => d.kind === 'render')!.path).to.match(/^\/dev\/dri\/renderD\d+$/);
    }, () => expectNoDeviceWith('timeline'));
  });

  describe('Device.open()', () => {
    it('opens by path and reports driver and caps', () => {
      using dev = Device.open('/dev/dri/card0');
      expect(dev.driver.name).to.equal('vgem');
      expect(dev.kind).to.equal('primary');
      expect(dev.fd).to.be.greaterThan(2);
    });

    itWith(['timeline'], 'picks the render node of the driver that has timelines', () => {
      using dev = Device.open({ require: ['syncobj', 'timeline'] });
      expect(dev.driver.name).to.equal('virtio_gpu');
      expect(dev.kind).to.equal('render');
      expect(dev.caps.timeline).to.equal(true);
    }, () => expectNoDeviceWith('timeline'));

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

  describe('discovery and DRM master', () => {
    // The kernel's own record: a kprobe on drm_master_open(), which runs for every open of a primary
    // (card) node and makes the opener master when nobody is. Render-node opens do not reach it.
    const PROBE = 'esync_master_open';
    let tracing = '';

    /** How many primary-node opens this process made while `fn` ran. */
    function primaryOpens(fn: () => void): number {
      writeFileSync(`${tracing}/trace`, '');
      fn();
      const mine = new RegExp(`-${process.pid}\\s+\\[\\d+\\].*${PROBE}:`);
      return readFileSync(`${tracing}/trace`, 'utf8').split('\n').filter((l) => mine.test(l)).length;
    }

    before(() => {
      tracing = existsSync('/sys/kernel/debug/tracing/kprobe_events') ? '/sys/kernel/debug/tracing' : '/sys/kernel/tracing';
      if (!existsSync(`${tracing}/kprobe_events`)) execFileSync('mount', ['-t', 'tracefs', 'nodev', tracing]);
      writeFileSync(`${tracing}/kprobe_events`, `p:${PROBE} drm_master_open\n`, { flag: 'a' });
      writeFileSync(`${tracing}/events/kprobes/${PROBE}/enable`, '1');
    });
    after(() => {
      writeFileSync(`${tracing}/events/kprobes/${PROBE}/enable`, '0');
      writeFileSync(`${tracing}/kprobe_events`, `-:${PROBE}\n`, { flag: 'a' });
    });

    it('the probe sees an open of a card node (control)', () => {
      expect(primaryOpens(() => Device.open('/dev/dri/card0').close())).to.equal(1);
    });

    it('Device.list() opens no card node, yet describes card nodes through their render nodes', () => {
      let list: ReturnType<typeof Device.list> = [];
      expect(primaryOpens(() => (list = Device.list()))).to.equal(0);
      for (const path of ['/dev/dri/card0', '/dev/dri/card1']) {
        const info = list.find((d) => d.path === path);
        expect(info, path).to.not.equal(undefined);
        using dev = Device.open(path);
        expect(info!.driver).to.deep.equal(dev.driver);
        expect(info!.caps).to.deep.equal(dev.caps);
      }
      // vkms has no render node: listed only when the caller lets card nodes be opened.
      expect(list.some((d) => d.driver.name === 'vkms')).to.equal(false);
    });

    itWith(['vkms'], 'Device.list({ openPrimary: true }) opens only card nodes without a render node (vkms)', () => {
      let list: ReturnType<typeof Device.list> = [];
      expect(primaryOpens(() => (list = Device.list({ openPrimary: true })))).to.equal(1);
      const vkms = list.find((d) => d.driver.name === 'vkms');
      expect(vkms?.kind).to.equal('primary');
      expect(vkms!.caps.dumbBuffer).to.equal(true);
    }, expectNoVkms);

    itWith(['timeline'], 'Device.open(options) opens no card node unless it returns one', () => {
      expect(primaryOpens(() => Device.open({ require: ['timeline'] }).close())).to.equal(0);
      expect(primaryOpens(() => Device.open({ driver: 'vgem' }).close())).to.equal(0);
      let kind = '';
      expect(primaryOpens(() => { using d = Device.open({ driver: 'virtio_gpu', render: false }); kind = d.kind; })).to.equal(1);
      expect(kind).to.equal('primary');
    }, () => expectNoDeviceWith('timeline'));

    it("require: ['dumb'] picks a card node (render nodes refuse DUMB_CREATE)", () => {
      using dev = Device.open({ require: ['dumb'] });
      expect(dev.kind).to.equal('primary');
    });

    itWith(['vkms'], "a driver only a KMS-only card node has is still found (driver: 'vkms')", () => {
      using dev = Device.open({ driver: 'vkms' });
      expect(dev.kind).to.equal('primary');
      expect(dev.driver.name).to.equal('vkms');
    }, expectNoVkms);

    it('VgemDevice.open() opens the vgem card node and no other', () => {
      expect(primaryOpens(() => VgemDevice.open().close())).to.equal(1);
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

    itWith(['timeline'], 'use after close throws ClosedError (EBADF)', () => {
      const dev = Device.open({ require: ['timeline'] });
      dev.close();
      const e = shouldThrow(() => dev[kDeviceFd]('createTimeline'), ClosedError);
      expect(e.code).to.equal('EBADF');
    }, () => expectNoDeviceWith('timeline'));
  });
});
