/**
 * The doctor's report: its types, the features it probes, and {@link renderDoctorReport}, which
 * turns a report into the table the CLI prints. Split from doctor.ts; the same names are exported
 * from there.
 * @module
 */
import { renderKms, type DoctorKms } from './doctor-kms';
import type { DeviceCaps, DriverInfo, NodeKind } from './device';
import type { SyncobjFeatures } from './syncobj-core';

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

export const FEATURE_INFO: Readonly<Record<FeatureName, { title: string; since: string; optional: boolean }>> = {
  dmaBufSyncFile: { title: 'dma-buf <-> sync_file bridge (EXPORT/IMPORT_SYNC_FILE)', since: '6.0', optional: false },
  syncobj: { title: 'binary syncobj (create, signal, wait, sync_file)', since: '4.13', optional: false },
  timeline: { title: 'timeline syncobj (signal, query, wait, transfer)', since: '5.2', optional: false },
  eventfd: { title: 'eventfd waits (DRM_IOCTL_SYNCOBJ_EVENTFD)', since: '6.6', optional: true },
  syncFileDeadline: { title: 'sync_file deadline hints (SYNC_IOC_SET_DEADLINE)', since: '6.7', optional: true },
  waitDeadline: { title: 'syncobj wait deadline hints (WAIT_DEADLINE)', since: '6.8', optional: true },
  timelineSyncFile: { title: 'point <-> sync_file in one ioctl (TIMELINE flags)', since: '6.16', optional: true },
};

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
