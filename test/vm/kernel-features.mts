// What the kernel under test offers, in one place: the kernel suite declares per describe block the
// feature it needs, and on a kernel without it runs a test of the documented behaviour instead
// (the typed error, the fallback) rather than skipping (in the VM a skip is a failure).
//
// Inside `explicit-sync vm` the guest's /init says which drivers loaded (EXPLICIT_SYNC_VM_DRIVERS,
// e.g. "vgem,virtio_gpu,vkms,sw_sync,udmabuf,dma_heap"); elsewhere the drivers are probed. The DRM
// capabilities (syncobj, timelines) are always probed: they belong to the kernel, not the runner.
import { existsSync } from 'node:fs';
import { Device, SW_SYNC_PATH, UDMABUF_PATH } from 'explicit-sync';

/** The drivers the runner can give a guest. */
export type VmDriver = 'vgem' | 'virtio_gpu' | 'vkms' | 'sw_sync' | 'udmabuf' | 'dma_heap';

/** Kernel features the suite gates on. */
export type KernelFeature = VmDriver | 'syncobj' | 'timeline';

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
    if (feature === 'syncobj' || feature === 'timeline') {
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
export function describeWith(features: readonly KernelFeature[], title: string, body: () => void, absent: () => void | Promise<void>): void {
  const missing = features.filter((f) => !has(f));
  if (missing.length === 0) {
    describe(title, body);
    return;
  }
  describe(`${title} [kernel ${kernelRelease} lacks ${missing.join(', ')}]`, () => {
    it(`without ${missing.join(', ')}: the documented behaviour`, absent);
  });
}
