// The README's "Kernel versions" table has a column per kernel of the VM matrix (6.1, 6.12, newest)
// saying what the suite measured there. This test measures the kernel it runs on and checks its
// column, so the table cannot drift: `npm run test:kernels` checks all three.
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { Device, VgemDevice } from 'explicit-sync';
import { has, kernelRelease } from './kernel-features.mjs';

/** The README table whose header row's first cell is `first`: its headers and rows of cells. */
function readmeTable(first: string): { headers: string[]; rows: string[][] } {
  const lines = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| ${first} |`));
  expect(start, `a README table headed "${first}"`).to.be.at.least(0);
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'));
  const cells = (l: string): string[] => l.slice(1, -1).split('|').map((c) => c.trim());
  const table = lines.slice(start, end === -1 ? undefined : end);
  return { headers: cells(table[0] as string), rows: table.slice(2).map(cells) };
}

/** The matrix's series of a release: 6.1, 6.12, else the newest kernel's. */
function seriesOf(release: string): string {
  return /^6\.1\./.test(release) ? '6.1' : /^6\.12\./.test(release) ? '6.12' : 'newest';
}

/** The column of the kernel under test: its series (6.1, 6.12), else the newest kernel's. */
function columnOf(headers: readonly string[]): number {
  const series = seriesOf(kernelRelease);
  const i = headers.findIndex((h) => h === series || h.startsWith(`${series} `) || h.startsWith(`${series}:`));
  expect(i, `a "${series}" column in the README's Kernel versions table`).to.be.greaterThan(0);
  return i;
}

/** What this kernel does, measured through the library, for each row (matched by its first cell). */
function measure(): Map<RegExp, boolean> {
  let features = { eventfd: false, waitDeadline: false, timelineSyncFile: false };
  if (has('timeline')) {
    using dev = Device.open({ require: ['timeline'] });
    features = dev.features;
  }
  using vgem = VgemDevice.open();
  using buf = vgem.createBuffer({ width: 4, height: 4 });
  using dmabuf = buf.exportDmaBuf();
  const bridge = dmabuf.supportsSyncFile();
  let deadline = false;
  if (bridge) {
    using sf = dmabuf.exportSyncFile('readwrite');
    deadline = sf.supportsDeadline();
  }
  return new Map([
    [/EXPORT_SYNC_FILE/, bridge],
    [/^binary syncobjs/, has('syncobj')],
    [/^timeline syncobjs/, has('timeline')],
    [/SYNCOBJ_EVENTFD/, features.eventfd],
    [/SYNC_IOC_SET_DEADLINE/, deadline],
    [/WAIT_DEADLINE/, features.waitDeadline],
    [/timeline flags/, features.timelineSyncFile],
  ]);
}

describe("README: the Kernel versions table's column for this kernel", () => {
  it(`says what the suite measures on ${kernelRelease}`, () => {
    const { headers, rows } = readmeTable('feature');
    const col = columnOf(headers);
    const measured = measure();
    for (const [pattern, value] of measured) {
      const row = rows.find((r) => pattern.test(r[0] ?? ''));
      expect(row, `a README row matching ${pattern}`).to.not.equal(undefined);
      const cell = (row as string[])[col] ?? '';
      expect(cell.split(/\s/)[0], `${row?.[0]} on ${kernelRelease} (README says "${cell}")`).to.equal(value ? 'yes' : 'no');
    }
  });
});

// The VM runner's drivers table (README, "Kernels"): which drivers each kernel of the matrix gets,
// in tree or built out of tree. In the runner's guest, EXPLICIT_SYNC_VM_DRIVERS says what loaded:
// the row of this kernel's series must say exactly that, so a driver the runner stops giving a
// kernel (a failed vkms or sw_sync build) fails here instead of quietly turning tests into their
// "absent" variants.
const loaded = process.env['EXPLICIT_SYNC_VM_DRIVERS'];
if (loaded !== undefined) {
  describe("README: the VM runner's drivers table for this kernel", () => {
    it(`names the drivers the runner loaded for ${kernelRelease}`, () => {
      const { headers, rows } = readmeTable('kernel (Debian package)');
      // One row per series and architecture (the arm64 guest's kernel has its own row).
      const archOf = (release: string): string => (release.endsWith('-arm64') ? 'arm64' : 'amd64');
      const row = rows.find((r) => {
        const release = (r[0] ?? '').split(' ')[0] as string;
        return seriesOf(release) === seriesOf(kernelRelease) && archOf(release) === archOf(kernelRelease);
      });
      expect(row, `a row for the ${seriesOf(kernelRelease)} series (${archOf(kernelRelease)})`).to.not.equal(undefined);
      const drivers = new Set(loaded.split(','));
      for (const name of ['vgem', 'virtio_gpu', 'vkms', 'sw_sync', 'udmabuf', 'dma-heap']) {
        const cell = (row as string[])[headers.indexOf(name)] ?? '';
        const says = !cell.startsWith('—');
        expect(says, `${name} on ${kernelRelease}: README says "${cell}", the runner loaded ${loaded}`).to.equal(drivers.has(name.replace('-', '_')));
      }
    });
  });
}
