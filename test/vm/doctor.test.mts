// `explicit-sync doctor` inside the VM: every node, buffer source and feature it probes works on
// Linux 6.12 with vgem, virtio_gpu, udmabuf and the system heap; the CLI prints the table or the
// JSON and exits 0. Also diagnose() in this process leaves no fd open (the root hooks check).
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { diagnose, type DoctorReport } from '../../dist/doctor.js';
import { describeWith, expectMissing } from './kernel-features.mjs';
import { kernelRelease, releaseAtLeast } from './kernel-features.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = `${root}bin/explicit-sync.js`;

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

describeWith(['timeline', 'udmabuf', 'dma_heap'], 'explicit-sync doctor (kernel)', function () {
  this.timeout(150_000);
  let report: DoctorReport;
  before(async () => {
    report = await diagnose();
  });

  it('finds vgem and virtio_gpu nodes, with syncobj and timeline probes ok on virtio_gpu', () => {
    expect(report.dri.present).to.equal(true);
    const byDriver = (name: string) => report.dri.nodes.filter((n) => n.driver?.name === name);
    expect(byDriver('vgem').length).to.be.at.least(1);
    const virtio = byDriver('virtio_gpu');
    expect(virtio.map((n) => n.kind).sort()).to.deep.equal(['primary', 'render']);
    for (const n of virtio) {
      expect(n.syncobj?.status, n.path).to.equal('ok');
      expect(n.timeline?.status, n.path).to.equal('ok');
      expect(n.features?.eventfd).to.equal(true);
    }
    for (const n of byDriver('vgem')) expect(n.syncobj).to.equal(undefined);
  });

  it('bridges sync files on vgem, udmabuf, the system heap and virtio_gpu dumb buffers', () => {
    expect(report.udmabuf).to.equal(true);
    expect(report.dmaHeaps).to.include('system');
    // One dumb buffer per KMS-capable driver: virtio_gpu, and vkms when the runner loaded it.
    expect([...new Set(report.buffers.map((b) => b.kind))].sort()).to.deep.equal(['dma-heap', 'dumb', 'udmabuf', 'vgem']);
    for (const b of report.buffers) {
      expect([b.allocate.status, b.exportSyncFile.status, b.importSyncFile.status], b.name).to.deep.equal(['ok', 'ok', 'ok']);
    }
    expect(report.buffers.find((b) => b.kind === 'vgem')!.exportSyncFile.detail).to.contain('unsignalled vgem fence');
  });

  it('reports every feature of this kernel (6.12 or newer) as ok, and the 6.16 one as unsupported before 6.16 (with its fallback)', () => {
    expect(report.kernel).to.equal(kernelRelease);
    for (const name of ['dmaBufSyncFile', 'syncobj', 'timeline', 'eventfd', 'syncFileDeadline', 'waitDeadline'] as const) {
      expect(report.features[name].status, name).to.equal('ok');
    }
    expect(report.features.timelineSyncFile.status).to.equal(releaseAtLeast(kernelRelease, 6, 16) ? 'ok' : 'unsupported');
    expect(report.core).to.equal(true);
    expect(report.inVm).to.equal(true);
    expect(report.hints.join('\n')).to.not.contain('npx explicit-sync vm');
  });

  it('the CLI prints the table and exits 0', async () => {
    const r = await runCli(['doctor']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/\/dev\/dri\/renderD\d+\s+virtio_gpu/);
    expect(r.stdout).to.match(/dma-buf <-> sync_file bridge .*\s+ok\s+/);
    expect(r.stdout).to.contain('Result: the core works here');
  });

  it('--json prints the same report shape', async () => {
    const r = await runCli(['doctor', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const json = JSON.parse(r.stdout) as DoctorReport;
    expect(json.schema).to.equal(1);
    expect(json.core).to.equal(true);
    expect(Object.keys(json.features)).to.deep.equal(Object.keys(report.features));
    expect(json.dri.nodes.map((n) => n.path)).to.deep.equal(report.dri.nodes.map((n) => n.path));
  });
}, () => expectMissing(['timeline', 'udmabuf', 'dma_heap']));
