/**
 * `explicit-sync doctor`: what works on this machine. {@link diagnose} probes the kernel for real
 * (it creates buffers, fences, syncobjs and timelines, and waits on them) and returns a typed
 * {@link DoctorReport}; {@link renderDoctorReport} turns it into the table the CLI prints.
 *
 * The library is loaded lazily, inside diagnose(): the CLI's other commands (`vm`) must work where
 * the native addon is not built, and the doctor itself must be able to say that it is not.
 * @module
 */
import { readdirSync, existsSync } from 'node:fs';
import { arch, release } from 'node:os';
import { isAbsolute, join, relative, sep } from 'node:path';
import { probeKms, renderKms, type DoctorKms } from './doctor-kms';
import { CliCommand, registerCommand } from './cli/registry';
import type { DeviceCaps, DriverInfo, NodeKind } from './device';
import type { SyncobjFeatures } from './syncobj-core';
import type * as Library from './index';
import type { NativeCore } from './native';

/** How a probe went. */
export type ProbeStatus =
  /** Probed, and it works. */
  | 'ok'
  /** The kernel or driver lacks it (an UnsupportedError, ENOTTY, or a capability that is 0). */
  | 'unsupported'
  /** Nothing here to probe it on (no DRM node with the capability, no buffer source). */
  | 'unavailable'
  /** The probe failed for another reason (permissions, an unexpected errno): see `detail`. */
  | 'error';

/** The outcome of one probe. */
export interface Probe {
  status: ProbeStatus;
  /** Where it was probed: a device path, or a buffer source such as 'vgem /dev/dri/card0'. */
  via?: string;
  /** Why it is not ok (error code and message, or what is missing), or a note when it is. */
  detail?: string;
}

/** One DRM node, as the doctor found it. */
export interface DoctorNode {
  path: string;
  kind?: NodeKind;
  driver?: DriverInfo;
  caps?: DeviceCaps;
  /** `device.features`, for nodes with syncobjs. */
  features?: SyncobjFeatures;
  /** Binary syncobj create / signal / wait / export, on nodes with DRM_CAP_SYNCOBJ. */
  syncobj?: Probe;
  /** Timeline signal / query / export / import / async wait, on nodes with DRM_CAP_SYNCOBJ_TIMELINE. */
  timeline?: Probe;
  /** Set when the node exists but could not be opened or queried (e.g. 'EACCES: permission denied…'). */
  error?: string;
}

/** Where the doctor can get a dma-buf from. */
export type BufferSourceKind = 'vgem' | 'udmabuf' | 'dma-heap' | 'dumb';

/** One way of getting a dma-buf, and whether the sync-file bridge works on its buffers. */
export interface DoctorBufferSource {
  kind: BufferSourceKind;
  /** 'vgem /dev/dri/card0', 'udmabuf /dev/udmabuf', 'dma-heap /dev/dma_heap/system', 'dumb /dev/dri/card1'. */
  name: string;
  /** Getting a buffer (and, for vgem, an unsignalled fence on it). */
  allocate: Probe;
  /** DMA_BUF_IOCTL_EXPORT_SYNC_FILE (with vgem: the sync_file waits for the fence, then signals). */
  exportSyncFile: Probe;
  /** DMA_BUF_IOCTL_IMPORT_SYNC_FILE (the imported fence shows up in the next export). */
  importSyncFile: Probe;
}

/** The library features the doctor reports, in table order. */
export const FEATURES = [
  'dmaBufSyncFile',
  'syncobj',
  'timeline',
  'eventfd',
  'syncFileDeadline',
  'waitDeadline',
  'timelineSyncFile',
] as const;
/** A feature the doctor reports. */
export type FeatureName = (typeof FEATURES)[number];

/** A feature: how its probe went, and since which Linux version the kernel has it. */
export interface FeatureProbe extends Probe {
  /** What it is, for people. */
  title: string;
  /** The first Linux version with it. */
  since: string;
  /** Whether the library works without it (it falls back, or it is a hint only). */
  optional: boolean;
}

/** Everything `explicit-sync doctor` found. Stable shape: `--json` prints exactly this. */
export interface DoctorReport {
  /** Bumped when the shape changes incompatibly. */
  schema: 1;
  /** os.release(). */
  kernel: string;
  node: string;
  arch: string;
  /** This package's version. */
  version: string;
  /** Whether the native addon loaded; when it did not, nothing else could be probed. */
  addon: Probe;
  /** Whether this runs inside `explicit-sync vm` (EXPLICIT_SYNC_IN_VM=1). */
  inVm: boolean;
  /** /dev/dri and every card / render node in it. */
  dri: { present: boolean; nodes: DoctorNode[] };
  /** Names of the heaps in /dev/dma_heap. */
  dmaHeaps: string[];
  /** Whether /dev/udmabuf exists. */
  udmabuf: boolean;
  /** Whether sw_sync timelines can be opened (SwSyncTimeline): <debugfs>/sync/sw_sync exists. */
  swSync: boolean;
  /** Buffer sources tried for the dma-buf sync-file bridge. */
  buffers: DoctorBufferSource[];
  /** Each card node's atomic KMS and fence properties (IN_FENCE_FD, OUT_FENCE_PTR). */
  kms: DoctorKms[];
  features: Record<FeatureName, FeatureProbe>;
  /**
   * Whether the core works: the dma-buf ⇄ sync_file bridge on at least one buffer source, or binary
   * syncobjs on at least one DRM node. The CLI exits 0 exactly when this is true.
   */
  core: boolean;
  /** Suggestions for what does not work. */
  hints: string[];
}

const FEATURE_INFO: Readonly<Record<FeatureName, { title: string; since: string; optional: boolean }>> = {
  dmaBufSyncFile: { title: 'dma-buf <-> sync_file bridge (EXPORT/IMPORT_SYNC_FILE)', since: '6.0', optional: false },
  syncobj: { title: 'binary syncobj (create, signal, wait, sync_file)', since: '4.13', optional: false },
  timeline: { title: 'timeline syncobj (signal, query, wait, transfer)', since: '5.2', optional: false },
  eventfd: { title: 'eventfd waits (DRM_IOCTL_SYNCOBJ_EVENTFD)', since: '6.6', optional: true },
  syncFileDeadline: { title: 'sync_file deadline hints (SYNC_IOC_SET_DEADLINE)', since: '6.7', optional: true },
  waitDeadline: { title: 'syncobj wait deadline hints (WAIT_DEADLINE)', since: '6.8', optional: true },
  timelineSyncFile: { title: 'point <-> sync_file in one ioctl (TIMELINE flags)', since: '6.16', optional: true },
};

/** How long a probe waits for something that should happen at once (generous: TCG is slow). */
const PROBE_WAIT_MS = 10_000;
/** sw_sync's debugfs file (lib/sw-sync.ts SW_SYNC_PATH; repeated for when the addon did not load). */
const SW_SYNC_FILE = '/sys/kernel/debug/sync/sw_sync';

type Lib = typeof Library;

/** native/vgem.cc's generic DRM buffer calls, used on card nodes of any driver. */
interface NativeDumb extends NativeCore {
  dumbCreate(fd: number, width: number, height: number, bpp: number): { handle: number; pitch: number; size: number };
  gemClose(fd: number, handle: number): void;
  primeHandleToFd(fd: number, handle: number): number;
}

function packageVersion(): string {
  try {
    return (require('../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A probe result for a thrown error: UnsupportedError → 'unsupported', anything else → 'error'. */
function failed(lib: Lib, err: unknown, via?: string): Probe {
  const status: ProbeStatus = err instanceof lib.UnsupportedError ? 'unsupported' : 'error';
  return via === undefined ? { status, detail: message(err) } : { status, via, detail: message(err) };
}

function ok(via?: string, detail?: string): Probe {
  const p: Probe = { status: 'ok' };
  if (via !== undefined) p.via = via;
  if (detail !== undefined) p.detail = detail;
  return p;
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`unexpected kernel behaviour: ${what}`);
}

/** Lists /dev/dri's card and render nodes, opening each; records the ones that cannot be opened. */
function probeNodes(lib: Lib): { present: boolean; nodes: DoctorNode[] } {
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
function probeSyncobj(dev: Library.Device): void {
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
async function probeTimeline(lib: Lib, dev: Library.Device): Promise<{ deadline: Probe }> {
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
async function probeSyncobjNodes(lib: Lib, nodes: DoctorNode[]): Promise<{ waitDeadline: Probe[] }> {
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
async function probeBridge(
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
async function probeBuffers(lib: Lib, nodes: DoctorNode[], heaps: string[], udmabuf: boolean, deadlines: Probe[]): Promise<DoctorBufferSource[]> {
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

/** The first ok probe, else the first that is not 'unavailable', else `fallback`. */
function best(probes: readonly (Probe | undefined)[], fallback: Probe): Probe {
  const real = probes.filter((p): p is Probe => p !== undefined);
  return real.find((p) => p.status === 'ok') ?? real.find((p) => p.status !== 'unavailable') ?? fallback;
}

function feature(name: FeatureName, probe: Probe): FeatureProbe {
  return { ...FEATURE_INFO[name], ...probe };
}

/**
 * The command that runs the doctor in the VM. Installed in a project, npx finds the package's bin
 * in node_modules/.bin; in a checkout of this package npx would install the checkout into its own
 * cache and run its `prepare` script, which fails in the VM's read-only tree: name the bin file.
 */
export function vmDoctorCommand(): string {
  if (__dirname.split(sep).includes('node_modules')) return 'npx explicit-sync vm -- npx explicit-sync doctor';
  const bin = join(__dirname, '..', 'bin', 'explicit-sync.js');
  const rel = relative(process.cwd(), bin);
  const b = rel.startsWith('..') || isAbsolute(rel) ? bin : rel;
  return `node ${b} vm -- node ${b} doctor`;
}

function hintsFor(report: Omit<DoctorReport, 'hints'>): string[] {
  const hints: string[] = [];
  if (report.addon.status !== 'ok') {
    hints.push('Build the native addon: `npm rebuild explicit-sync` (needs python3, make and a C++17 compiler).');
    return hints;
  }
  if (!report.dri.present) {
    hints.push(
      report.inVm
        ? 'The VM has no /dev/dri: its kernel modules did not load (see the VM runner output).'
        : 'This machine has no DRM device nodes (/dev/dri). Run the doctor inside the VM, which has vgem and virtio_gpu: ' +
            vmDoctorCommand(),
    );
  }
  if (report.dri.nodes.some((n) => n.error !== undefined && /EACCES|EPERM/.test(n.error))) {
    hints.push("Some DRM nodes are not accessible: add your user to the 'video' and 'render' groups (then log in again).");
  }
  if (report.dri.present && !report.dri.nodes.some((n) => n.driver?.name === 'vgem')) {
    hints.push('No vgem node: `sudo modprobe vgem` gives unsignalled test fences without a GPU (used by the conformance suite).');
  }
  if (report.dri.present && report.features.syncobj.status === 'unavailable') {
    hints.push('No DRM node here reports DRM_CAP_SYNCOBJ: syncobjs need a GPU driver with them (amdgpu, i915, xe, nouveau, virtio_gpu, …).');
  }
  const major = /^(\d+)\.(\d+)/.exec(report.kernel);
  for (const name of FEATURES) {
    const f = report.features[name];
    // The one-ioctl timeline export has an exact fallback: no reason to upgrade for it.
    if (f.status === 'unsupported' && major !== null && name !== 'timelineSyncFile') {
      const [maj, min] = f.since.split('.').map(Number) as [number, number];
      const [kMaj, kMin] = [Number(major[1]), Number(major[2])];
      if (kMaj < maj || (kMaj === maj && kMin < min))
        hints.push(`${f.title}: needs Linux ${f.since}; this kernel is ${report.kernel}.`);
    }
  }
  return hints;
}

/**
 * Probes this machine: the kernel, every DRM node, dma-heaps, udmabuf, and each library feature,
 * for real. Never throws for what it finds: a failure is a probe result. Every object it creates
 * is closed before it resolves.
 */
export async function diagnose(): Promise<DoctorReport> {
  const base = {
    schema: 1 as const,
    kernel: release(),
    node: process.version,
    arch: arch(),
    version: packageVersion(),
    inVm: process.env['EXPLICIT_SYNC_IN_VM'] === '1',
  };
  const unavailable = (detail: string): Probe => ({ status: 'unavailable', detail });
  let lib: Lib;
  try {
    lib = require('./index') as Lib;
  } catch (err) {
    const none = unavailable('the native addon did not load');
    const features = Object.fromEntries(FEATURES.map((n) => [n, feature(n, none)])) as Record<FeatureName, FeatureProbe>;
    const report = {
      ...base,
      addon: { status: 'error' as const, detail: message(err) },
      dri: { present: existsSync('/dev/dri'), nodes: [] },
      dmaHeaps: [],
      udmabuf: existsSync('/dev/udmabuf'),
      swSync: existsSync(SW_SYNC_FILE),
      buffers: [],
      kms: [],
      features,
      core: false,
    };
    return { ...report, hints: hintsFor(report) };
  }

  const dri = probeNodes(lib);
  const dmaHeaps = lib.DmaHeap.list();
  const udmabuf = existsSync(lib.UDMABUF_PATH);
  const { waitDeadline } = await probeSyncobjNodes(lib, dri.nodes);
  const syncFileDeadlines: Probe[] = [];
  const buffers = await probeBuffers(lib, dri.nodes, dmaHeaps, udmabuf, syncFileDeadlines);

  // Report render nodes first where both work: they are what applications open.
  const renderFirst = [...dri.nodes].sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'render' ? -1 : 1));
  const syncobjNodes = renderFirst.filter((n) => n.caps?.syncobj);
  const timelineNodes = renderFirst.filter((n) => n.caps?.timeline);
  const noSyncobj = unavailable(dri.present ? 'no DRM node reports DRM_CAP_SYNCOBJ' : 'no /dev/dri');
  const noTimeline = unavailable(dri.present ? 'no DRM node reports DRM_CAP_SYNCOBJ_TIMELINE' : 'no /dev/dri');
  // eventfd and the one-ioctl timeline export are exercised by the timeline probe (its async wait,
  // its exportSyncFile / importSyncFile) on nodes whose features say the kernel has them.
  const featureOf = (pick: (f: SyncobjFeatures) => boolean, what: string): Probe => {
    const node = timelineNodes.find((n) => n.features !== undefined && pick(n.features));
    if (node !== undefined) return node.timeline?.status === 'ok' ? ok(node.path) : { ...(node.timeline ?? noTimeline), via: node.path };
    const first = timelineNodes.find((n) => n.features !== undefined);
    return first === undefined ? noTimeline : { status: 'unsupported', via: first.path, detail: `the kernel rejects the ${what} probe` };
  };

  const features: Record<FeatureName, FeatureProbe> = {
    dmaBufSyncFile: feature(
      'dmaBufSyncFile',
      best(
        buffers.map((b) => (b.exportSyncFile.status === 'ok' && b.importSyncFile.status !== 'ok' ? b.importSyncFile : b.exportSyncFile)),
        unavailable('no dma-buf source: no vgem node, no /dev/udmabuf, no dma-heap, no card node with dumb buffers'),
      ),
    ),
    syncobj: feature('syncobj', best(syncobjNodes.map((n) => n.syncobj), noSyncobj)),
    timeline: feature('timeline', best(timelineNodes.map((n) => n.timeline), noTimeline)),
    eventfd: feature('eventfd', featureOf((f) => f.eventfd, 'eventfd')),
    syncFileDeadline: feature('syncFileDeadline', best(syncFileDeadlines, unavailable('no sync_file to probe with'))),
    waitDeadline: feature('waitDeadline', best(waitDeadline, timelineNodes.length ? unavailable('no timeline probe ran') : noTimeline)),
    timelineSyncFile: feature('timelineSyncFile', featureOf((f) => f.timelineSyncFile, 'timeline sync_file flag')),
  };
  if (features.timelineSyncFile.status === 'unsupported')
    features.timelineSyncFile.detail = 'not in this kernel: the library goes through a temporary syncobj (same result)';
  // The bridge counts only when both directions work.
  const bridge = buffers.some((b) => b.exportSyncFile.status === 'ok' && b.importSyncFile.status === 'ok');
  if (features.dmaBufSyncFile.status === 'ok' && !bridge) features.dmaBufSyncFile.status = 'error';
  const report = {
    ...base,
    addon: ok(),
    dri,
    dmaHeaps,
    udmabuf,
    swSync: existsSync(lib.SW_SYNC_PATH),
    buffers,
    kms: probeKms(lib, dri.nodes.map((n) => n.path.slice(n.path.lastIndexOf('/') + 1))),
    features,
    core: bridge || features.syncobj.status === 'ok',
  };
  return { ...report, hints: hintsFor(report) };
}

// ---------------------------------------------------------------------------------------------
// Rendering

function table(rows: readonly (readonly string[])[], indent = '  '): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) => (indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).trimEnd());
}

const yn = (b: boolean | undefined): string => (b === undefined ? '-' : b ? 'yes' : 'no');

/** The human-readable form of a report, as `explicit-sync doctor` prints it. */
export function renderDoctorReport(r: DoctorReport): string {
  const out: string[] = ['explicit-sync doctor: what works on this machine', ''];
  out.push('System');
  out.push(
    ...table([
      ['kernel', `Linux ${r.kernel}`],
      ['node', `${r.node} (${r.arch})`],
      ['explicit-sync', `${r.version}, native addon ${r.addon.status === 'ok' ? 'loaded' : 'NOT loaded'}`],
      ['where', r.inVm ? 'inside `explicit-sync vm`' : 'this machine'],
    ]),
  );
  if (r.addon.status !== 'ok') out.push(`    ${r.addon.detail ?? ''}`.replace(/\n/g, '\n    '));
  out.push('');

  out.push('DRM nodes (/dev/dri)');
  if (!r.dri.present) out.push('  none: this machine has no /dev/dri');
  else if (r.dri.nodes.length === 0) out.push('  none: /dev/dri has no card or render nodes');
  else {
    const rows: string[][] = [['node', 'driver', 'syncobj', 'timeline', 'eventfd', 'prime', 'dumb']];
    const notes: string[] = [];
    for (const n of r.dri.nodes) {
      if (n.caps === undefined || n.driver === undefined) {
        rows.push([n.path, '?', '-', '-', '-', '-', '-']);
        notes.push(`  ${n.path}: ${n.error ?? 'not queried'}`);
        continue;
      }
      const bad = [n.syncobj, n.timeline].filter((p) => p !== undefined && p.status !== 'ok' && p.status !== 'unsupported');
      for (const p of bad) notes.push(`  ${n.path}: ${p!.status}: ${p!.detail ?? ''}`);
      rows.push([
        n.path,
        `${n.driver.name} ${n.driver.version}`,
        n.syncobj ? (n.syncobj.status === 'ok' ? 'yes' : n.syncobj.status) : yn(n.caps.syncobj),
        n.timeline ? (n.timeline.status === 'ok' ? 'yes' : n.timeline.status === 'unsupported' ? 'no' : n.timeline.status) : yn(n.caps.timeline),
        n.features ? yn(n.features.eventfd) : '-',
        n.caps.prime.export && n.caps.prime.import ? 'yes' : n.caps.prime.export ? 'export' : n.caps.prime.import ? 'import' : 'no',
        yn(n.caps.dumbBuffer),
      ]);
    }
    out.push(...table(rows), ...notes);
  }
  out.push('');

  out.push('dma-buf sources');
  const extra = [
    `dma-heaps: ${r.dmaHeaps.length ? r.dmaHeaps.join(', ') : 'none'}`,
    `/dev/udmabuf: ${r.udmabuf ? 'present' : 'absent'}`,
    `sw_sync: ${r.swSync ? 'present' : 'absent'}`,
  ].join('; ');
  out.push(`  ${extra}`);
  if (r.buffers.length) {
    const rows: string[][] = [['source', 'buffer', 'export sync_file', 'import sync_file']];
    const notes: string[] = [];
    for (const b of r.buffers) {
      rows.push([b.name, b.allocate.status, b.exportSyncFile.status, b.importSyncFile.status]);
      for (const p of [b.allocate, b.exportSyncFile, b.importSyncFile])
        if (p.status !== 'ok' && p.detail !== undefined && p.detail !== 'no buffer') notes.push(`  ${b.name}: ${p.detail}`);
    }
    out.push(...table(rows), ...[...new Set(notes)]);
  }
  out.push('');

  out.push(...renderKms(r.kms), '');

  out.push('Library features');
  const rows: string[][] = [['feature', 'status', 'where', 'since']];
  const notes: string[] = [];
  for (const name of FEATURES) {
    const f = r.features[name];
    rows.push([f.title + (f.optional ? ' *' : ''), f.status, f.via ?? '', `Linux ${f.since}`]);
    // 'unavailable' says "nothing to probe it on", which the sections above already show.
    if ((f.status === 'error' || f.status === 'unsupported') && f.detail !== undefined) notes.push(`  ${f.title}: ${f.detail}`);
  }
  out.push(...table(rows), ...notes, '  * optional: the library works without it (it falls back, or it is only a hint)', '');

  if (r.hints.length) {
    out.push('Hints');
    for (const h of r.hints) out.push(`  - ${h}`);
    out.push('');
  }
  const bridge = r.features.dmaBufSyncFile.status;
  const syncobj = r.features.syncobj.status;
  out.push(
    r.core
      ? `Result: the core works here (dma-buf sync_file bridge: ${bridge}; syncobj: ${syncobj}). Exit status 0.`
      : `Result: the core does NOT work here (dma-buf sync_file bridge: ${bridge}; syncobj: ${syncobj}). Exit status 1.`,
  );
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// CLI

/** `explicit-sync doctor --help`. */
export const DOCTOR_USAGE = `Usage: explicit-sync doctor [--json]

Probes this machine for what explicit-sync can do here, for real: the kernel
version, every DRM node (/dev/dri) with its driver and capabilities, dma-heaps,
/dev/udmabuf, and each library feature (the dma-buf <-> sync_file bridge,
binary and timeline syncobjs, eventfd waits, deadline hints).

Options:
  --json      print the report as JSON (stable shape, "schema": 1)
  -h, --help  show this help

Exit status: 0 when the core works (the dma-buf <-> sync_file bridge on at least
one buffer source, or binary syncobjs on at least one DRM node); 1 when neither
does (no DRM, no dma-buf source, or the native addon did not load); 2 for a
usage error.

No /dev/dri here? Run it in the VM:  npx explicit-sync vm -- npx explicit-sync doctor
(in a checkout of explicit-sync: node bin/explicit-sync.js vm -- node bin/explicit-sync.js doctor)`;

async function runDoctor(argv: readonly string[]): Promise<number> {
  let json = false;
  for (const arg of argv) {
    if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${DOCTOR_USAGE}\n`);
      return 0;
    } else {
      process.stderr.write(`explicit-sync doctor: unknown option ${JSON.stringify(arg)}\n\n${DOCTOR_USAGE}\n`);
      return 2;
    }
  }
  const report = await diagnose();
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : renderDoctorReport(report));
  return report.core ? 0 : 1;
}

/** The `doctor` subcommand. */
export const doctorCommand: CliCommand = registerCommand({
  name: 'doctor',
  summary: 'probe what works here: kernel, DRM nodes, dma-buf sources, library features (--json)',
  run: runDoctor,
});
