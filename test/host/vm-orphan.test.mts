// The runner must not leave QEMU behind when it is killed (issue 11, defect 7). Boots the VM (TCG
// here: ~10 s per boot), so it is slow; each case is one boot.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { provisionVm } from '../helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin', 'explicit-sync.js');

/** Pids of the QEMU processes whose command line names the run directory of runner `pid`. */
function qemuOfRunner(pid: number): number[] {
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmdline: string;
    try {
      cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline.includes('qemu-system') && cmdline.includes(`/runs/${pid}-`)) found.push(Number(name));
  }
  return found;
}

/** Whether `pid` still runs (a zombie has already died). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

/** Starts the runner on a command that prints `marker` and sleeps; resolves once the marker shows. */
function startRunner(marker: string, timeoutSec = 150): Promise<{ runner: ChildProcess; exited: Promise<{ code: number | null; signal: string | null }> }> {
  return new Promise((resolve, reject) => {
    const runner = spawn(process.execPath, [bin, 'vm', '-q', '--no-vkms', '--timeout', String(timeoutSec), '--', 'sh', '-c', `echo ${marker}; sleep 120`], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) => runner.on('exit', (code, signal) => r({ code, signal })));
    let out = '';
    let err = '';
    runner.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
    runner.stdout?.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (out.includes(marker)) resolve({ runner, exited });
    });
    void exited.then(({ code }) => reject(new Error(`runner ended (${code}) before the command started: ${err}`)));
  });
}

describe('vm runner: no QEMU outlives it', function () {
  this.timeout(150_000);
  before(async function () {
    this.timeout(1_600_000); // a fresh cache: apt lists, the kernel package, out-of-tree modules
    await provisionVm(root);
  });
  const leftovers: number[] = [];
  afterEach(() => {
    for (const pid of leftovers.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });

  for (const signal of ['SIGKILL', 'SIGHUP'] as const) {
    it(`QEMU is gone within 5 s after the runner gets ${signal}`, async () => {
      const { runner, exited } = await startRunner(`orphan-check-${signal}-${process.pid}`);
      const pid = runner.pid as number;
      const qemu = qemuOfRunner(pid);
      leftovers.push(pid, ...qemu);
      expect(qemu, 'the QEMU of this run').to.have.lengthOf(1);
      runner.kill(signal);
      const end = await exited;
      const gone = await until(() => !running(qemu[0] as number), 5_000);
      expect(gone, `QEMU ${qemu[0]} still runs 5 s after the runner got ${signal}`).to.equal(true);
      if (signal === 'SIGHUP') expect(end.code, 'the runner exits 128 + SIGHUP').to.equal(129);
    });
  }

  it('the guest powers off at --timeout by itself while the runner is stopped (SIGSTOP)', async () => {
    const timeoutSec = 25;
    const started = Date.now();
    const { runner, exited } = await startRunner(`orphan-check-SIGSTOP-${process.pid}`, timeoutSec);
    const pid = runner.pid as number;
    const qemu = qemuOfRunner(pid);
    leftovers.push(pid, ...qemu);
    expect(qemu, 'the QEMU of this run').to.have.lengthOf(1);
    runner.kill('SIGSTOP');
    // The guest counts from its /init, a few seconds after the host's start: allow a generous margin.
    const gone = await until(() => !running(qemu[0] as number), timeoutSec * 1000 + 30_000 - (Date.now() - started));
    const after = Date.now() - started;
    runner.kill('SIGKILL');
    await exited;
    expect(gone, `QEMU ${qemu[0]} still runs ${Math.round(after / 1000)} s into a ${timeoutSec} s run with its runner stopped`).to.equal(true);
    expect(after, 'the guest ends no earlier than the bound').to.be.at.least(timeoutSec * 1000);
  });
});
