// The README's "Kernel versions" table has a column per kernel of the VM matrix (6.1, 6.12, newest)
// saying what the suite measured there. This test measures the kernel it runs on and checks its
// column, so the table cannot drift: `npm run test:kernels` checks all three.
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { Device, VgemDevice } from 'explicit-sync';
import { has, kernelRelease } from './kernel-features.mjs';

/** The table's rows: first cell → the cells of each column, by header. */
function readmeTable(): { headers: string[]; rows: string[][] } {
  const text = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf('### 7. Kernel versions'));
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  const cells = (l: string): string[] => l.slice(1, -1).split('|').map((c) => c.trim());
  const end = lines.findIndex((l, i) => i > 1 && !l.startsWith('|'));
  const table = lines.slice(0, end === -1 ? undefined : end);
  return { headers: cells(table[0] as string), rows: table.slice(2).map(cells) };
}

/** The column of the kernel under test: its series (6.1, 6.12), else the newest kernel's. */
function columnOf(headers: readonly string[]): number {
  const series = /^6\.1\./.test(kernelRelease) ? '6.1' : /^6\.12\./.test(kernelRelease) ? '6.12' : 'newest';
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
    const { headers, rows } = readmeTable();
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
