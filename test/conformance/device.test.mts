// Conformance: the device under test (EXPLICIT_SYNC_DEVICE, or the nodes found) as discovery and
// the feature probes see it. Device-generic: runs against any DRM driver.
import { expect } from 'chai';
import { ClosedError, Device } from 'explicit-sync';
import { shouldThrow } from '../helpers.mjs';
import { conformanceDevice } from '../device-under-test.mjs';

describe('Conformance: the device under test', () => {
  const named = conformanceDevice();
  const paths = (): string[] => (named !== undefined ? [named] : Device.list().map((d) => d.path));

  it('is found by Device.list(), with the same driver and caps as Device.open(path) reads', function () {
    const list = Device.list({ openPrimary: true }); // the node under test may be a KMS-only card node
    const nodes = paths();
    if (named === undefined && nodes.length === 0) {
      console.log('      skipped: no DRM node on this machine');
      this.skip();
    }
    for (const path of nodes) {
      const info = list.find((d) => d.path === path);
      expect(info, `${path} in Device.list()`).to.not.equal(undefined);
      using dev = Device.open(path);
      expect(dev.driver).to.deep.equal(info!.driver);
      expect(dev.caps).to.deep.equal(info!.caps);
      expect(dev.kind).to.equal(/renderD\d+$/.test(path) ? 'render' : 'primary');
      console.log(`      ${path}: ${dev.driver.name} ${dev.driver.version} ${JSON.stringify(dev.caps)}`);
    }
  });

  it('reports features consistent with its caps, probed once', function () {
    const nodes = paths();
    if (nodes.length === 0) {
      console.log('      skipped: no DRM node on this machine');
      this.skip();
    }
    for (const path of nodes) {
      using dev = Device.open(path);
      const f = dev.features;
      expect(dev.features).to.equal(f);
      expect(f.syncobj).to.equal(dev.caps.syncobj);
      expect(f.timeline).to.equal(dev.caps.timeline);
      // eventfd and the timeline sync_file flags only exist for timeline drivers.
      if (!f.timeline) expect([f.eventfd, f.timelineSyncFile]).to.deep.equal([false, false]);
      if (!f.syncobj) expect(f.waitDeadline).to.equal(false);
      expect(f.waitMechanism).to.equal(f.eventfd ? 'eventfd' : 'poll');
      console.log(`      ${path}: ${JSON.stringify(f)}`);
    }
  });

  it('close() is idempotent and later calls throw ClosedError', function () {
    const nodes = paths();
    if (nodes.length === 0) {
      console.log('      skipped: no DRM node on this machine');
      this.skip();
    }
    const dev = Device.open(nodes[0]!);
    dev.close();
    dev.close();
    expect(dev.fd).to.equal(-1);
    shouldThrow(() => dev.features, ClosedError);
  });
});
