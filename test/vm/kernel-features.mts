// What the kernel under test offers, in one place: the kernel suite declares per describe block the
// feature it needs, and on a kernel without it runs a test of the documented behaviour instead
// (the typed error, the fallback) rather than skipping (in the VM a skip is a failure).
//
// Inside `explicit-sync vm` the guest's /init says which drivers loaded (EXPLICIT_SYNC_VM_DRIVERS,
// e.g. "vgem,virtio_gpu,vkms,sw_sync,udmabuf,dma_heap"); elsewhere the drivers are probed. The DRM
// capabilities (syncobj, timelines) are always probed: they belong to the kernel, not the runner.
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { Device, DmaHeap, ExplicitSyncError, KmsDevice, NoDeviceError, SW_SYNC_PATH, UDMABUF_PATH, Udmabuf } from 'explicit-sync';

/** The drivers the runner can give a guest. */
export type VmDriver = 'vgem' | 'virtio_gpu' | 'vkms' | 'sw_sync' | 'udmabuf' | 'dma_heap';

/** Kernel features the suite gates on. */
export type KernelFeature = VmDriver | 'syncobj' | 'timeline' | 'syncFileDeadline';

/** What `fn` throws (undefined when it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Whether release `rel` ("6.1.0-57-amd64", "7.3.4+deb13-amd64") is at least major.minor. */
export function releaseAtLeast(rel: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m !== null && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}

function probeDriver(driver: VmDriver): boolean {
  switch (driver) {
    case 'sw_sync':
      return existsSync(SW_SYNC_PATH);
    case 'udmabuf':
      return existsSync(UDMABUF_PATH);
    case 'dma_heap':
      return existsSync('/dev/dma_heap/system');
    default:
      return Device.list({ openPrimary: true }).some((d) => d.driver.name === driver);
  }
}

const fromRunner = process.env['EXPLICIT_SYNC_VM_DRIVERS'];
const runnerDrivers = fromRunner !== undefined ? new Set(fromRunner.split(',').filter((d) => d !== '')) : undefined;

/** The kernel release under test (the runner's EXPLICIT_SYNC_VM_KERNEL, else this machine's). */
export const kernelRelease: string = process.env['EXPLICIT_SYNC_VM_KERNEL'] ?? (await import('node:os')).release();

const cache = new Map<KernelFeature, boolean>();

/** Whether the kernel under test has `feature`. */
export function has(feature: KernelFeature): boolean {
  let v = cache.get(feature);
  if (v === undefined) {
    if (feature === 'syncFileDeadline') {
      v = releaseAtLeast(kernelRelease, 6, 7); // SYNC_IOC_SET_DEADLINE
    } else if (feature === 'syncobj' || feature === 'timeline') {
      v = Device.list().some((d) => (feature === 'syncobj' ? d.caps.syncobj : d.caps.timeline));
    } else {
      v = runnerDrivers !== undefined ? runnerDrivers.has(feature) : probeDriver(feature);
    }
    cache.set(feature, v);
  }
  return v;
}

/**
 * `describe(title, body)` when the kernel has every one of `features`; otherwise a describe block
 * with one test, `absent`, that asserts what the library documents for a kernel without them.
 */
export function describeWith(
  features: readonly KernelFeature[],
  title: string,
  body: (this: Mocha.Suite) => void,
  absent: () => void | Promise<void>,
): void {
  const missing = features.filter((f) => !has(f));
  if (missing.length === 0) {
    describe(title, body);
    return;
  }
  describe(`${title} [kernel ${kernelRelease} lacks ${missing.join(', ')}]`, () => {
    it(`without ${missing.join(', ')}: the documented behaviour`, absent);
  });
}

/**
 * What the library documents for a kernel where no DRM node has `need`: Device.open() with that
 * requirement is a NoDeviceError (code 'ENODEV') that lists the nodes it found.
 */
export function expectNoDeviceWith(need: 'syncobj' | 'timeline'): void {
  const err = thrown(() => Device.open({ require: [need] }).close());
  expect(err, `Device.open({ require: ['${need}'] })`).to.be.instanceOf(NoDeviceError);
  const e = err as NoDeviceError;
  expect(e.code).to.equal('ENODEV');
  // The nodes that were there (vgem, virtio_gpu, …), each named with its driver.
  expect(e.found.length).to.be.greaterThan(0);
  expect(e.found.length).to.equal(Device.list().length);
}

/** What the library documents without vkms: KmsDevice.open({ driver: 'vkms' }) is a NoDeviceError. */
export function expectNoVkms(): void {
  const err = thrown(() => KmsDevice.open({ driver: 'vkms' }).close());
  expect(err, "KmsDevice.open({ driver: 'vkms' })").to.be.instanceOf(NoDeviceError);
  expect((err as NoDeviceError).code).to.equal('ENODEV');
}

/** `it(title, fn)` when the kernel has every one of `features`; otherwise `it` of `absent`, titled so. */
export function itWith(
  features: readonly KernelFeature[],
  title: string,
  fn: (this: Mocha.Context) => void | Promise<void>,
  absent: () => void | Promise<void>,
): void {
  const missing = features.filter((f) => !has(f));
  if (missing.length === 0) it(title, fn);
  else it(`${title} [kernel ${kernelRelease} lacks ${missing.join(', ')}: the documented behaviour instead]`, absent);
}

/** What the library documents without udmabuf: Udmabuf.open() fails with ENOENT. */
export function expectNoUdmabuf(): void {
  const err = thrown(() => Udmabuf.open().close());
  expect(err, 'Udmabuf.open()').to.be.instanceOf(ExplicitSyncError);
  expect((err as ExplicitSyncError).code).to.equal('ENOENT');
}

/** What the library documents without dma-heaps: DmaHeap.list() is empty, DmaHeap.open() fails with ENOENT. */
export function expectNoDmaHeap(): void {
  expect(DmaHeap.list()).to.deep.equal([]);
  const err = thrown(() => DmaHeap.open().close());
  expect(err, 'DmaHeap.open()').to.be.instanceOf(ExplicitSyncError);
  expect((err as ExplicitSyncError).code).to.equal('ENOENT');
}

/**
 * The documented behaviour of each of `features` that the kernel lacks, for an `absent` callback of a
 * block that needs several: a guest may lack one and have another (6.1 has no udmabuf, but the runner
 * builds it a dma-heap), so only the missing ones are asserted absent.
 */
export function expectMissing(features: readonly KernelFeature[]): void {
  const missing = features.filter((f) => !has(f));
  expect(missing, `the kernel lacks one of ${features.join(', ')}`).to.not.deep.equal([]);
  for (const f of missing) {
    if (f === 'syncobj' || f === 'timeline') expectNoDeviceWith(f);
    else if (f === 'udmabuf') expectNoUdmabuf();
    else if (f === 'dma_heap') expectNoDmaHeap();
    else if (f === 'vkms') expectNoVkms();
    else throw new Error(`expectMissing: no documented behaviour for a kernel without ${f}`);
  }
}
