// The device under test of the conformance suite (test/conformance/).
//
// EXPLICIT_SYNC_DEVICE=/dev/dri/renderD128 names one node: every conformance test runs against it,
// whatever its driver, and a test that needs what the node lacks skips with the reason printed
// ("skipped: …" lines, which scripts/test.mjs collects). Without the variable each test picks the
// first node that has what it needs (in the VM: virtio_gpu for syncobjs, its card node for dumb
// buffers) and skips, saying why, when none has; the VM run counts any skip as a failure.
import { readdirSync } from 'node:fs';
import { Device, DmaBuf, ExplicitSyncError, VgemDevice, type DeviceInfo } from 'explicit-sync';
import { kDeviceFd } from '../dist/device.js';
import { describeWith, expectNoDeviceWith } from './vm/kernel-features.mjs';
import { nativeFamily } from '../dist/native.js';

/** The variable that names the device under test. */
export const DEVICE_ENV = 'EXPLICIT_SYNC_DEVICE';

/** The node EXPLICIT_SYNC_DEVICE names, or undefined (then tests pick the nodes they find). */
export function conformanceDevice(): string | undefined {
  const v = process.env[DEVICE_ENV];
  return v === undefined || v === '' ? undefined : v;
}

/** Skips the current test (in a hook: the rest of its suite), printing why. */
export function skipWith(ctx: Mocha.Context, reason: string): never {
  console.log(`      skipped: ${reason}`);
  ctx.skip();
  throw new Error('unreachable: this.skip() throws'); // for the type checker
}

function describeNode(d: DeviceInfo): string {
  return `${d.path} (${d.driver.name})`;
}

/** A capability a conformance test needs from its device. */
export type Need = 'syncobj' | 'timeline';

/**
 * Opens the device under test for `need`: the EXPLICIT_SYNC_DEVICE node (skipping when it lacks
 * the capability), or else the first node that has it (render nodes first; skipping when none
 * has). Throws, rather than skips, when the named node cannot be opened: a misconfigured CI job
 * must fail.
 */
export function openDeviceFor(ctx: Mocha.Context, need: Need): Device {
  const path = conformanceDevice();
  if (path !== undefined) {
    const dev = Device.open(path);
    if (!dev.caps[need]) {
      const what = need === 'syncobj' ? 'DRM_CAP_SYNCOBJ' : 'DRM_CAP_SYNCOBJ_TIMELINE';
      dev.close();
      skipWith(ctx, `${path} (${dev.driver.name}) does not report ${what}`);
    }
    return dev;
  }
  try {
    return Device.open({ require: [need] });
  } catch (err) {
    if (!(err instanceof ExplicitSyncError)) throw err;
    skipWith(ctx, `no DRM node here has ${need}: ${err.message}`);
  }
}

/** native/vgem.cc's generic DRM calls (DUMB_CREATE, PRIME export), on any driver's card node. */
interface NativeDumb {
  dumbCreate(fd: number, width: number, height: number, bpp: number): { handle: number; pitch: number; size: number };
  gemClose(fd: number, handle: number): void;
  primeHandleToFd(fd: number, handle: number): number;
  close(fd: number): void;
}
const native = nativeFamily<NativeDumb>();

/** The primary (card) node of the same GPU as `path` (sysfs), or undefined. */
export function cardNodeOf(path: string): string | undefined {
  const name = path.slice(path.lastIndexOf('/') + 1);
  if (/^card\d+$/.test(name)) return path;
  try {
    const card = readdirSync(`/sys/class/drm/${name}/device/drm`).find((n) => /^card\d+$/.test(n));
    return card === undefined ? undefined : `/dev/dri/${card}`;
  } catch {
    return undefined;
  }
}

/**
 * Makes dma-bufs on the device under test: dumb buffers (DRM_IOCTL_MODE_CREATE_DUMB on its card
 * node) exported with PRIME. Each DmaBuf is independent of the allocator (close both).
 */
export class DumbBuffers {
  readonly device: Device;

  private constructor(device: Device) {
    this.device = device;
  }

  /**
   * The allocator for the device under test: the card node of EXPLICIT_SYNC_DEVICE (skipping
   * when there is none, or it cannot make and export a dumb buffer), or the first card node that
   * can, preferring drivers that report DRM_CAP_DUMB_BUFFER (real KMS drivers over vgem).
   */
  static open(ctx: Mocha.Context): DumbBuffers {
    const named = conformanceDevice();
    let candidates: string[];
    if (named !== undefined) {
      const card = cardNodeOf(named);
      if (card === undefined) skipWith(ctx, `no card node found for ${named} in /sys/class/drm: dumb buffers need one`);
      candidates = [card];
    } else {
      candidates = Device.list({ openPrimary: true })
        .filter((d) => d.kind === 'primary' && d.caps.prime.export)
        .sort((a, b) => Number(b.caps.dumbBuffer) - Number(a.caps.dumbBuffer))
        .map((d) => d.path);
    }
    const failures: string[] = [];
    for (const path of candidates) {
      let dev: Device;
      try {
        dev = Device.open(path);
      } catch (err) {
        failures.push(`${path}: ${(err as Error).message}`);
        continue;
      }
      const alloc = new DumbBuffers(dev);
      try {
        alloc.allocate().close();
        return alloc;
      } catch (err) {
        failures.push(`${describeNode(dev)}: ${(err as Error).message}`);
        dev.close();
      }
    }
    skipWith(ctx, `no card node can make an exportable dumb buffer: ${failures.join('; ') || 'none found'}`);
  }

  /** A new 64×64×32 dumb buffer as a DmaBuf (the GEM handle is closed; the dma-buf holds the buffer). */
  allocate(): DmaBuf {
    const fd = this.device[kDeviceFd]('DRM_IOCTL_MODE_CREATE_DUMB');
    const { handle } = native.dumbCreate(fd, 64, 64, 32);
    let dmabufFd: number;
    try {
      dmabufFd = native.primeHandleToFd(fd, handle);
    } finally {
      native.gemClose(fd, handle);
    }
    try {
      return DmaBuf.fromFd(dmabufFd);
    } catch (err) {
      native.close(dmabufFd);
      throw err;
    }
  }

  close(): void {
    this.device.close();
  }
}

/**
 * vgem, for unsignalled fences from another driver (the only CPU-controlled unsignalled fences a
 * stock kernel has): skips when there is none (on a GPU runner: `sudo modprobe vgem`).
 */
export function openVgemFor(ctx: Mocha.Context): VgemDevice {
  try {
    return VgemDevice.open();
  } catch (err) {
    if (!(err instanceof ExplicitSyncError)) throw err;
    skipWith(ctx, `needs a vgem node for unsignalled fences (sudo modprobe vgem): ${err.message}`);
  }
}

/**
 * A conformance describe block that needs `need`. With EXPLICIT_SYNC_DEVICE its tests skip, saying
 * why, on a node without it (as above); without it (the VM, a machine's own nodes) a kernel where no
 * node has `need` runs one test of the documented behaviour instead (test/vm/kernel-features.mts).
 */
export function describeNeeding(need: Need, title: string, body: (this: Mocha.Suite) => void): void {
  if (conformanceDevice() !== undefined) describe(title, body);
  else describeWith([need], title, body, () => expectNoDeviceWith(need));
}
