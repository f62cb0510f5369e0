/**
 * `explicit-sync doctor`: what works on this machine. {@link diagnose} probes the kernel for real
 * (it creates buffers, fences, syncobjs and timelines, and waits on them) and returns a typed
 * {@link DoctorReport}; {@link renderDoctorReport} turns it into the table the CLI prints.
 *
 * The library is loaded lazily, inside diagnose(): the CLI's other commands (`vm`) must work where
 * the native addon is not built, and the doctor itself must be able to say that it is not.
 * @module
 */
import { existsSync } from 'node:fs';
import { arch, release } from 'node:os';
import { isAbsolute, join, relative, sep } from 'node:path';
import { probeKms } from './doctor-kms';
import { CliCommand, registerCommand } from './cli/registry';
import type { SyncobjFeatures } from './syncobj-core';
import { FEATURES, FEATURE_INFO, renderDoctorReport, type DoctorReport, type FeatureName, type FeatureProbe, type Probe } from './doctor-report';
import { SW_SYNC_FILE, message, ok, probeBuffers, probeNodes, probeSyncobjNodes, type Lib } from './doctor-probes';

export * from './doctor-report';

function packageVersion(): string {
  try {
    return (require('../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
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
