// `explicit-sync doctor` on the host: the report's shape and exit status, the table for a machine
// with and without DRM (rendered from hand-made reports), and the CLI's options. On a machine
// without /dev/dri (the build machines) it also checks what the doctor says there.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FEATURES, diagnose, renderDoctorReport, vmDoctorCommand, type DoctorReport, type FeatureProbe } from '../../dist/doctor.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = `${root}bin/explicit-sync.js`;

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

function feature(title: string, status: FeatureProbe['status'], extra: Partial<FeatureProbe> = {}): FeatureProbe {
  return { title, since: '6.0', optional: false, status, ...extra };
}

/** A hand-made report; `ok` decides whether everything works or nothing is there. */
function fakeReport(ok: boolean): DoctorReport {
  const features = Object.fromEntries(
    FEATURES.map((n) => [n, feature(`feature ${n}`, ok ? 'ok' : 'unavailable', ok ? { via: '/dev/dri/renderD128' } : { detail: 'no /dev/dri' })]),
  ) as DoctorReport['features'];
  return {
    schema: 1,
    kernel: '6.12.0-test',
    node: 'v20.0.0',
    arch: 'x64',
    version: '0.0.0',
    addon: { status: 'ok' },
    inVm: false,
    dri: ok
      ? {
          present: true,
          nodes: [
            {
              path: '/dev/dri/renderD128',
              kind: 'render',
              driver: { name: 'amdgpu', version: '3.59.0', date: '0', description: 'AMD GPU' },
              caps: { dumbBuffer: true, prime: { import: true, export: true }, syncobj: true, timeline: true },
              syncobj: { status: 'ok' },
              timeline: { status: 'ok' },
            },
            { path: '/dev/dri/card0', error: "EACCES: permission denied, open '/dev/dri/card0'" },
          ],
        }
      : { present: false, nodes: [] },
    dmaHeaps: ok ? ['system'] : [],
    udmabuf: ok,
    swSync: ok,
    buffers: ok
      ? [{ kind: 'udmabuf', name: 'udmabuf /dev/udmabuf', allocate: { status: 'ok' }, exportSyncFile: { status: 'ok' }, importSyncFile: { status: 'ok' } }]
      : [],
    kms: ok
      ? [
          { path: '/dev/dri/card1', driver: 'vkms', atomic: true, crtcs: 1, planes: 3, inFenceFdPlanes: 3, outFencePtrCrtcs: 1 },
          { path: '/dev/dri/card0', atomic: false, crtcs: 0, planes: 0, inFenceFdPlanes: 0, outFencePtrCrtcs: 0, detail: 'no atomic modesetting' },
        ]
      : [],
    features,
    core: ok,
    hints: ok ? [] : ['npx explicit-sync vm -- npx explicit-sync doctor'],
  };
}

describe('explicit-sync doctor', () => {
  describe('renderDoctorReport()', () => {
    it('a working machine: nodes, sources, features, result with exit status 0', () => {
      const text = renderDoctorReport(fakeReport(true));
      expect(text).to.match(/\/dev\/dri\/renderD128\s+amdgpu 3\.59\.0\s+yes\s+yes/);
      expect(text).to.contain("/dev/dri/card0: EACCES: permission denied, open '/dev/dri/card0'");
      expect(text).to.match(/udmabuf \/dev\/udmabuf\s+ok\s+ok\s+ok/);
      expect(text).to.contain('sw_sync: present');
      expect(text).to.contain('/dev/dri/card1 (vkms): atomic; IN_FENCE_FD on 3/3 planes, OUT_FENCE_PTR on 1/1 CRTCs');
      expect(text).to.contain('/dev/dri/card0: no atomic modesetting');
      for (const n of FEATURES) expect(text).to.match(new RegExp(`feature ${n}\\s+ok\\s+/dev/dri/renderD128`));
      expect(text).to.contain('Result: the core works here');
      expect(text).to.contain('Exit status 0.');
    });

    it('a machine without DRM: says so, gives the hint, result with exit status 1', () => {
      const text = renderDoctorReport(fakeReport(false));
      expect(text).to.contain('none: this machine has no /dev/dri');
      expect(text).to.contain('- npx explicit-sync vm -- npx explicit-sync doctor');
      expect(text).to.contain('Result: the core does NOT work here');
      expect(text).to.contain('Exit status 1.');
    });
  });

  describe('diagnose() on this machine', () => {
    let report: DoctorReport;
    before(async () => {
      report = await diagnose();
    });

    it('returns the documented shape, every feature probed', () => {
      expect(report.schema).to.equal(1);
      expect(report.addon.status).to.equal('ok');
      expect(report.kernel).to.be.a('string').and.not.equal('');
      expect(Object.keys(report.features)).to.deep.equal([...FEATURES]);
      for (const n of FEATURES) expect(report.features[n].status).to.be.oneOf(['ok', 'unsupported', 'unavailable', 'error']);
      const bridge = report.buffers.some((b) => b.exportSyncFile.status === 'ok' && b.importSyncFile.status === 'ok');
      expect(report.core).to.equal(bridge || report.features.syncobj.status === 'ok');
    });

    it('without /dev/dri: says so and suggests the VM', function () {
      if (existsSync('/dev/dri')) {
        console.log('      skipped: this machine has /dev/dri');
        this.skip();
      }
      expect(report.dri).to.deep.equal({ present: false, nodes: [] });
      expect(report.features.syncobj.status).to.equal('unavailable');
      // From this checkout the hint names the bin file (npx would try to install the checkout).
      expect(report.hints.join('\n')).to.contain(vmDoctorCommand());
      expect(vmDoctorCommand()).to.equal('node bin/explicit-sync.js vm -- node bin/explicit-sync.js doctor');
    });
  });

  describe('the CLI', () => {
    it('--json prints the report and exits 0 exactly when the core works', async () => {
      const r = await runCli(['doctor', '--json']);
      const report = JSON.parse(r.stdout) as DoctorReport;
      expect(report.schema).to.equal(1);
      expect(r.code).to.equal(report.core ? 0 : 1);
    });

    it('prints the table; without /dev/dri it suggests the VM and exits 1', async function () {
      const r = await runCli(['doctor']);
      expect(r.stdout).to.contain('explicit-sync doctor: what works on this machine');
      expect(r.stdout).to.match(/Result: the core (works|does NOT work) here/);
      if (!existsSync('/dev/dri')) {
        expect(r.code).to.equal(1);
        expect(r.stdout).to.contain(vmDoctorCommand());
      }
    });

    it('--help and `help doctor` print the usage with the exit statuses; a bad option exits 2', async () => {
      for (const args of [['doctor', '--help'], ['help', 'doctor']]) {
        const r = await runCli(args);
        expect(r.code, args.join(' ')).to.equal(0);
        expect(r.stdout).to.contain('Usage: explicit-sync doctor [--json]');
        expect(r.stdout).to.contain('Exit status: 0 when the core works');
      }
      const bad = await runCli(['doctor', '--frobnicate']);
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.contain('unknown option "--frobnicate"');
    });

    it('is listed by `explicit-sync help`', async () => {
      const r = await runCli(['help']);
      expect(r.stdout).to.match(/^\s+doctor\s+probe what works here/m);
    });
  });
});
