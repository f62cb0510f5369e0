/**
 * The doctor's probes: each one creates real kernel objects (nodes, syncobjs, timelines, buffers
 * and their sync_files), uses them, closes them, and says how it went as a {@link Probe}. Called
 * by diagnose() in doctor.ts.
 * @module
 */
import { readdirSync } from 'node:fs';
import type { DoctorBufferSource, DoctorNode, BufferSourceKind, Probe, ProbeStatus } from './doctor-report';
import type * as Library from './index';
import type { NativeCore } from './native';

/** How long a probe waits for something that should happen at once (generous: TCG is slow). */
const PROBE_WAIT_MS = 10_000;
/** sw_sync's debugfs file (lib/sw-sync.ts SW_SYNC_PATH; repeated for when the addon did not load). */
export const SW_SYNC_FILE = '/sys/kernel/debug/sync/sw_sync';

export type Lib = typeof Library;

/** native/vgem.cc's generic DRM buffer calls, used on card nodes of any driver. */
interface NativeDumb extends NativeCore {
  dumbCreate(fd: number, width: number, height: number, bpp: number): { handle: number; pitch: number; size: number };
  gemClose(fd: number, handle: number): void;
  primeHandleToFd(fd: number, handle: number): number;
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A probe result for a thrown error: UnsupportedError → 'unsupported', anything else → 'error'. */
export function failed(lib: Lib, err: unknown, via?: string): Probe {
  const status: ProbeStatus = err instanceof lib.UnsupportedError ? 'unsupported' : 'error';
  return via === undefined ? { status, detail: message(err) } : { status, via, detail: message(err) };
}

export function ok(via?: string, detail?: string): Probe {
  const p: Probe = { status: 'ok' };
  if (via !== undefined) p.via = via;
  if (detail !== undefined) p.detail = detail;
  return p;
}

export function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`unexpected kernel behaviour: ${what}`);
}

/** Lists /dev/dri's card and render nodes, opening each; records the ones that cannot be opened. */
export function probeNodes(lib: Lib): { present: boolean; nodes: DoctorNode[] } {
  let names: string[];
  try {
    names = readdirSync(lib.DRI_DIR);
  } catch {
    return { present: false, nodes: [] };
  }
  // The doctor asks about every node, card nodes of KMS-only devices included (they are opened).
  const listed = new Map(lib.Device.list({ openPrimary: true }).map((d) => [d.path, d]));
  const nodes: DoctorNode[] = [];
  const order = (n: string): number => (n.startsWith('card') ? 0 : 1e6) + Number(/\d+$/.exec(n)?.[0] ?? 0);
  for (const name of names.filter((n) => /^(card|renderD)\d+$/.test(n)).sort((a, b) => order(a) - order(b))) {
    const path = `${lib.DRI_DIR}/${name}`;
    const info = listed.get(path);
    if (info !== undefined) {
      nodes.push({ path, kind: info.kind, driver: info.driver, caps: info.caps });
      continue;
    }
    // Device.list() skips nodes it cannot open: open it again for the reason.
    try {
      lib.Device.open(path).close();
      nodes.push({ path, error: 'could not be queried' });
    } catch (err) {
      nodes.push({ path, error: message(err) });
    }
  }
  return { present: true, nodes };
}

/** Binary syncobj: create, signal, wait, export and re-import a sync_file. */
export function probeSyncobj(dev: Library.Device): void {
  using s = dev.createSyncobj();
  check(!s.isSignaled() && !s.hasFence(), 'a new syncobj has no fence');
  s.signal();
  check(s.isSignaled(), 'a signalled syncobj reads signalled');
  s.waitSync({ timeoutMs: PROBE_WAIT_MS });
  using sf = s.exportSyncFile();
  check(sf.isSignaled(), 'the exported sync_file is signalled');
  using t = dev.createSyncobj();
  t.importSyncFile(sf);
  check(t.isSignaled(), 'the imported fence is signalled');
}

/**
 * Timeline: CPU signal, query, export a point as a sync_file, import it at a later point, an async
 * wait that only resolves when another point is signalled later (on the event loop), and a wait
 * with a fence deadline where the kernel has WAIT_DEADLINE. Returns whether the deadline wait ran.
 */
export async function probeTimeline(lib: Lib, dev: Library.Device): Promise<{ deadline: Probe }> {
  using tl = dev.createTimeline();
  tl.signal(1);
  check(tl.query() === 1n, 'query() after signal(1) is 1');
  using sf = await tl.exportSyncFile(1);
  check(sf.isSignaled(), 'point 1 exports as a signalled sync_file');
  tl.importSyncFile(2, sf);
  check(tl.query() === 2n, 'importing a signalled sync_file at point 2 reaches point 2');
  const pending = tl.wait(3, { timeoutMs: PROBE_WAIT_MS });
  setImmediate(() => tl.signal(3));
  await pending;
  let deadline: Probe;
  if (!dev.features.waitDeadline) {
    deadline = { status: 'unsupported', via: dev.path, detail: 'the kernel rejects DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE' };
  } else {
    try {
      await tl.wait(3, { timeoutMs: PROBE_WAIT_MS, fenceDeadline: lib.monotonicNow() + 1_000_000n });
      deadline = ok(dev.path);
    } catch (err) {
      deadline = failed(lib, err, dev.path);
    }
  }
  return { deadline };
}

/** Probes syncobjs and timelines on every node that has them; fills in node.features/syncobj/timeline. */
export async function probeSyncobjNodes(lib: Lib, nodes: DoctorNode[]): Promise<{ waitDeadline: Probe[] }> {
  const waitDeadline: Probe[] = [];
  // Render nodes first: the node a feature is reported on ('where') is then the one apps open.
  for (const node of [...nodes].sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'render' ? -1 : 1))) {
    if (node.caps === undefined || !node.caps.syncobj) continue;
    let dev: Library.Device;
    try {
      dev = lib.Device.open(node.path);
    } catch (err) {
      node.error = message(err);
      continue;
    }
    try {
      node.features = { ...dev.features };
      try {
        probeSyncobj(dev);
        node.syncobj = ok(node.path);
      } catch (err) {
        node.syncobj = failed(lib, err, node.path);
      }
      if (node.caps.timeline) {
        try {
          const { deadline } = await probeTimeline(lib, dev);
          node.timeline = ok(node.path, `async waits use ${dev.features.waitMechanism}`);
          waitDeadline.push(deadline);
        } catch (err) {
          node.timeline = failed(lib, err, node.path);
        }
      } else {
        node.timeline = { status: 'unsupported', via: node.path, detail: 'DRM_CAP_SYNCOBJ_TIMELINE is 0' };
      }
    } finally {
      dev.close();
    }
  }
  return { waitDeadline };
}

/**
 * The sync-file bridge on one dma-buf: export (a 'read' export must wait for `pending` when given),
 * import the exported fence back as a write fence, export again.
 */
export async function probeBridge(
  lib: Lib,
  source: DoctorBufferSource,
  dmabuf: Library.DmaBuf,
  pending: { signal(): void } | undefined,
  deadlines: Probe[],
): Promise<void> {
  if (!dmabuf.supportsSyncFile()) {
    const no: Probe = { status: 'unsupported', detail: 'the kernel has no DMA_BUF_IOCTL_EXPORT_SYNC_FILE (Linux < 6.0)' };
    source.exportSyncFile = no;
    source.importSyncFile = no;
    return;
  }
  let exported: Library.SyncFile | undefined;
  try {
    exported = dmabuf.exportSyncFile('read');
    if (pending !== undefined) {
      check(!exported.isSignaled(), "the export waits for the buffer's unsignalled fence");
      pending.signal();
      await exported.wait({ timeoutMs: PROBE_WAIT_MS });
      source.exportSyncFile = ok(source.name, 'waited for an unsignalled vgem fence');
    } else {
      check(exported.isSignaled(), 'an idle buffer exports a signalled sync_file');
      source.exportSyncFile = ok(source.name);
    }
    if (exported.supportsDeadline()) {
      try {
        exported.setDeadline(1);
        deadlines.push(ok(source.name));
      } catch (err) {
        deadlines.push(failed(lib, err, source.name));
      }
    } else {
      deadlines.push({ status: 'unsupported', via: source.name, detail: 'the kernel has no SYNC_IOC_SET_DEADLINE' });
    }
  } catch (err) {
    source.exportSyncFile = failed(lib, err, source.name);
    source.importSyncFile = { status: 'unavailable', detail: 'needs a sync_file from the export' };
    exported?.close();
    return;
  }
  try {
    dmabuf.importSyncFile(exported, 'write');
    using again = dmabuf.exportSyncFile('readwrite');
    await again.wait({ timeoutMs: PROBE_WAIT_MS });
    source.importSyncFile = ok(source.name);
  } catch (err) {
    source.importSyncFile = failed(lib, err, source.name);
  } finally {
    exported.close();
  }
}

const notTried = (): Probe => ({ status: 'unavailable', detail: 'no buffer' });

function newSource(kind: BufferSourceKind, name: string): DoctorBufferSource {
  return { kind, name, allocate: { status: 'ok' }, exportSyncFile: notTried(), importSyncFile: notTried() };
}

/** Every buffer source this machine has, each with the sync-file bridge probed on one buffer. */
export async function probeBuffers(lib: Lib, nodes: DoctorNode[], heaps: string[], udmabuf: boolean, deadlines: Probe[]): Promise<DoctorBufferSource[]> {
  const sources: DoctorBufferSource[] = [];

  // vgem: a buffer with an unsignalled write fence, the strongest check of the bridge.
  const vgemNode = nodes.find((n) => n.kind === 'primary' && n.driver?.name === 'vgem');
  if (vgemNode !== undefined) {
    const src = newSource('vgem', `vgem ${vgemNode.path}`);
    sources.push(src);
    try {
      using vgem = lib.VgemDevice.open(vgemNode.path);
      using buf = vgem.createBuffer({ width: 16, height: 16 });
      const fence = buf.attachFence({ write: true });
      using dmabuf = buf.exportDmaBuf();
      try {
        await probeBridge(lib, src, dmabuf, fence, deadlines);
      } finally {
        fence.signal(); // never leave it to vgem's 10 s timer
      }
    } catch (err) {
      src.allocate = failed(lib, err, src.name);
    }
  }

  if (udmabuf) {
    const src = newSource('udmabuf', `udmabuf ${lib.UDMABUF_PATH}`);
    sources.push(src);
    try {
      using dmabuf = lib.Udmabuf.create(4096);
      await probeBridge(lib, src, dmabuf, undefined, deadlines);
    } catch (err) {
      src.allocate = failed(lib, err, src.name);
    }
  }

  for (const heap of heaps) {
    const src = newSource('dma-heap', `dma-heap ${lib.DMA_HEAP_DIR}/${heap}`);
    sources.push(src);
    try {
      using h = lib.DmaHeap.open(heap);
      using dmabuf = h.allocate(4096);
      await probeBridge(lib, src, dmabuf, undefined, deadlines);
    } catch (err) {
      src.allocate = failed(lib, err, src.name);
    }
  }

  // Dumb buffers on the card nodes of real (KMS) drivers: what a GPU machine without vgem,
  // udmabuf or heap access still has.
  const native = (require('./native') as typeof import('./native')).nativeFamily<NativeDumb>();
  const device = require('./device') as typeof import('./device');
  for (const node of nodes) {
    if (node.kind !== 'primary' || node.driver?.name === 'vgem' || !node.caps?.dumbBuffer || !node.caps.prime.export) continue;
    const src = newSource('dumb', `dumb ${node.path}`);
    sources.push(src);
    try {
      using dev = lib.Device.open(node.path);
      const fd = dev[device.kDeviceFd]('DRM_IOCTL_MODE_CREATE_DUMB');
      const { handle } = native.dumbCreate(fd, 16, 16, 32);
      let dmabufFd: number;
      try {
        dmabufFd = native.primeHandleToFd(fd, handle);
      } finally {
        native.gemClose(fd, handle); // the dma-buf keeps the buffer alive
      }
      let wrapped: Library.DmaBuf;
      try {
        wrapped = lib.DmaBuf.fromFd(dmabufFd);
      } catch (err) {
        native.close(dmabufFd);
        throw err;
      }
      using dmabuf = wrapped;
      await probeBridge(lib, src, dmabuf, undefined, deadlines);
    } catch (err) {
      src.allocate = failed(lib, err, src.name);
    }
  }
  return sources;
}
