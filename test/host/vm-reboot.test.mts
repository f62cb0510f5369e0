// The runner boots once more when the guest dies before the command starts (seen under TCG in
// about 1 boot of 9), and never when the command had started (it must not run twice).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { provisionVm } from '../helpers.mjs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { REBOOT_MIN_LEFT_MS, shouldBootAgain } from '../../dist/vm/index.js';
import { pruneStaleImages, STALE_IMAGE_MS } from '../../dist/vm/initramfs.js';
import { toolEnv } from '../../dist/vm/tools.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin', 'explicit-sync.js');

function runVm(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, 'vm', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('vm runner: host tools', () => {
  it("start without the caller's LD_PRELOAD (the sanitizer run's libasan hung apt's gpgv)", () => {
    const env = toolEnv({ LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libasan.so.8', ASAN_OPTIONS: 'x=1', PATH: '/usr/bin' });
    expect(env).to.deep.equal({ ASAN_OPTIONS: 'x=1', PATH: '/usr/bin', LC_ALL: 'C' });
  });
});

describe('vm runner: initramfs images of one kernel', () => {
  it('building one prunes only siblings unused for STALE_IMAGE_MS (a concurrent run may still boot the others)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'es-prune-'));
    try {
      const now = Date.now();
      const make = (name: string, ageMs: number): void => {
        fs.writeFileSync(path.join(dir, name), '');
        const t = new Date(now - ageMs);
        fs.utimesSync(path.join(dir, name), t, t);
      };
      make('6.12.1-aaaa.cpio.gz', 0); // just built
      make('6.12.1-bbbb.cpio.gz', 60_000); // another run's (vkms or not), in use
      make('6.12.1-cccc.cpio.gz', STALE_IMAGE_MS + 60_000); // stale
      make('6.1.0-dddd.cpio.gz', STALE_IMAGE_MS + 60_000); // another kernel: not this build's business
      pruneStaleImages(dir, '6.12.1', '6.12.1-aaaa.cpio.gz', now);
      expect(fs.readdirSync(dir).sort()).to.deep.equal(['6.1.0-dddd.cpio.gz', '6.12.1-aaaa.cpio.gz', '6.12.1-bbbb.cpio.gz']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('vm runner: one more boot when the guest dies before the command starts', function () {
  this.timeout(240_000);
  before(async function () {
    this.timeout(1_600_000); // a fresh cache: apt lists, the kernel package, out-of-tree modules
    await provisionVm(root);
  });

  it('shouldBootAgain(): only a death before the command started, with time left for a boot', () => {
    const left = REBOOT_MIN_LEFT_MS;
    expect(shouldBootAgain({ outcome: { kind: 'panic' } }, left)).to.equal(true);
    expect(shouldBootAgain({ outcome: { kind: 'no-marker', qemuStatus: 'exit 0' } }, left)).to.equal(true);
    // The command started: a death now is the run's result, never a reason to run it twice.
    expect(shouldBootAgain({ outcome: { kind: 'panic' }, bootMs: 4000 }, left)).to.equal(false);
    expect(shouldBootAgain({ outcome: { kind: 'no-marker', qemuStatus: 'exit 0' }, bootMs: 4000 }, left)).to.equal(false);
    expect(shouldBootAgain({ outcome: { kind: 'exited', code: 1 } }, left)).to.equal(false);
    expect(shouldBootAgain({ outcome: { kind: 'timeout' } }, left)).to.equal(false);
    expect(shouldBootAgain({ outcome: { kind: 'panic' } }, left - 1)).to.equal(false);
  });

  it('a real kernel panic at boot (EXPLICIT_SYNC_VM_FAULT=boot-panic): the runner says so, boots again, and the command runs once', async () => {
    const r = await runVm(['--no-vkms', '--timeout', '200', '--', 'sh', '-c', 'echo ran-once'], { EXPLICIT_SYNC_VM_FAULT: 'boot-panic' });
    expect(r.err).to.match(/kernel panicked while booting, before the command started: booting once more/);
    expect(r.err).to.include('Kernel panic'); // the first boot's console is shown
    expect(r.out.match(/ran-once/g) ?? []).to.have.length(1);
    expect(r.code).to.equal(0);
  });
});
