// Shared by the syncobj and timeline kernel tests.
import { readFileSync, readdirSync } from 'node:fs';
import { Device, ExplicitSyncError, VgemDevice, type SyncFile, type VgemFence, monotonicNow } from 'explicit-sync';
import { openFds } from '../helpers.mjs';

/** The first DRM node with timeline syncobjs (virtio_gpu in the VM). */
export function openTimelineDevice(): Device {
  try {
    return Device.open({ require: ['timeline'] });
  } catch (err) {
    if (!(err instanceof ExplicitSyncError)) throw err;
  }
  // Fallback: try each node by path (a node whose discovery fails must not hide the others).
  for (const name of readdirSync('/dev/dri').filter((n) => n.startsWith('renderD') || n.startsWith('card'))) {
    let d: Device;
    try {
      d = Device.open(`/dev/dri/${name}`);
    } catch {
      continue;
    }
    if (d.caps.timeline) return d;
    d.close();
  }
  throw new Error('no DRM device with timeline syncobjs');
}

/** An unsignalled vgem fence and a sync_file holding it. */
export function vgemFence(vgem: VgemDevice): { fence: VgemFence; syncFile: SyncFile } {
  const buf = vgem.createBuffer({ width: 4, height: 4 });
  try {
    const fence = buf.attachFence({ write: true });
    const dmabuf = buf.exportDmaBuf();
    try {
      return { fence, syncFile: dmabuf.exportSyncFile('readwrite') };
    } finally {
      dmabuf.close();
    }
  } finally {
    buf.close();
  }
}

export function eventfdCount(): number {
  return openFds().filter((f) => f.includes('[eventfd]')).length;
}

/** Milliseconds since `t0` (a monotonicNow() value). */
export function since(t0: bigint): number {
  return Number(monotonicNow() - t0) / 1e6;
}

/** Active objects of the kernel's kmalloc-64 and kmalloc-96 caches (what a registration costs). */
export function kmallocSmall(): number {
  let n = 0;
  for (const line of readFileSync('/proc/slabinfo', 'utf8').split('\n')) {
    const [name, active] = line.split(/\s+/);
    if (name === 'kmalloc-64' || name === 'kmalloc-96') n += Number(active);
  }
  return n;
}

/**
 * A timeline device and a vgem device for a suite: opened in `before`, closed in `after`; read
 * them through the returned object's fields once the suite runs.
 */
export function suiteDevices(): { dev: Device; vgem: VgemDevice } {
  const held = {} as { dev: Device; vgem: VgemDevice };
  before(() => {
    held.dev = openTimelineDevice();
    held.vgem = VgemDevice.open();
  });
  after(() => {
    held.vgem.close();
    held.dev.close();
  });
  return held;
}
