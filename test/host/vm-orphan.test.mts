// The VM runner must not leave QEMU behind when it is killed (issue 11, defect 7): QEMU runs under
// `setpriv --pdeathsig KILL`, and the guest powers itself off at the run's deadline. The SIGKILL
// test boots a real VM (about 10-20 s under TCG); it is skipped where QEMU is not installed.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { kernelCmdline, qemuCommand, GUEST_DEADLINE_GRACE_SEC } from '../../dist/vm/qemu.js';
import { renderInit } from '../../dist/vm/initramfs.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Pids whose parent is `ppid` and whose command name starts with `prefix`. */
function childrenOf(ppid: number, prefix: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === ppid && comm.startsWith(prefix)) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Whether `pid` runs (a zombie waiting to be reaped is dead). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

describe('vm runner: no orphaned QEMU', () => {
  it('QEMU starts under setpriv --pdeathsig KILL where setpriv exists, QEMU itself otherwise', () => {
    const [cmd, argv] = qemuCommand('/q', ['-a']);
    if (existsSync('/usr/bin/setpriv')) expect([cmd, argv]).to.deep.equal(['/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', '/q', '-a']]);
    expect(qemuCommand('/q', ['-a'], '/nonexistent/setpriv')).to.deep.equal(['/q', ['-a']]);
  });

  it("the guest gets the run's deadline and /init powers off when it passes", () => {
    expect(kernelCmdline('/c/r', 'n', 99.2)).to.contain(`es.deadline=${100 + GUEST_DEADLINE_GRACE_SEC}`);
    expect(kernelCmdline('/c/r', 'n')).to.not.contain('es.deadline');
    const init = renderInit(['vgem']);
    expect(init).to.contain('es.deadline=*) deadline=');
    expect(init).to.match(/sleep "\$deadline".*off \) &/);
  });

  for (const sig of ['SIGKILL', 'SIGHUP'] as const) {
    it(`a runner killed with ${sig} mid-run takes its QEMU with it`, async function () {
      if (!existsSync('/usr/bin/qemu-system-x86_64')) this.skip();
      this.timeout(240000);
      // A guest that dies while booting (rare under TCG) is not what this tests: boot once more.
      const start = async (): Promise<{ runner: ReturnType<typeof spawn>; closed: Promise<void> } | string> => {
        const runner = spawn(process.execPath, [join(root, 'bin', 'explicit-sync.js'), 'vm', '--timeout', '200', '--', 'sh', '-c', 'echo ORPHAN-TEST-UP; sleep 150'], {
          cwd: root,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const closed = new Promise<void>((r) => runner.on('close', () => r()));
        return new Promise((resolve) => {
          let out = '';
          runner.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
          runner.stdout!.setEncoding('utf8').on('data', (c: string) => {
            out += c;
            if (out.includes('ORPHAN-TEST-UP')) resolve({ runner, closed });
          });
          runner.on('close', () => resolve(`the runner ended before the command started:\n${out}`));
        });
      };
      let started = await start();
      if (typeof started === 'string') started = await start();
      if (typeof started === 'string') throw new Error(started);
      const { runner, closed } = started;
      // setpriv execs QEMU: the runner's child is QEMU itself.
      const qemus = childrenOf(runner.pid!, 'qemu-system');
      expect(qemus, 'QEMU is a child of the runner').to.have.length(1);
      runner.kill(sig);
      await closed;
      const until = Date.now() + 10000;
      while (alive(qemus[0]!) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect(alive(qemus[0]!), `QEMU (pid ${qemus[0]}) survived its runner's ${sig}`).to.equal(false);
    });
  }
});
