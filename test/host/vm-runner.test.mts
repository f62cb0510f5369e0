// Pure logic of the VM runner (lib/vm): no QEMU, no kernel, no apt. The boot itself is exercised
// by every VM test run.
import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import { parseVmArgs, UsageError, DEFAULT_TIMEOUT_SEC } from '../../dist/vm/args.js';
import { ConsoleParser, INIT_MARKER, READY_MARKER, exitMarker, type ConsoleEvent } from '../../dist/vm/console.js';
import { deadlineAt, handshakeMs, remainingMs, timerDelay, KVM_HANDSHAKE_MS, MAX_TIMER_MS } from '../../dist/vm/deadline.js';
import { renderRunScript, resolveEnvSpecs, selectGuestEnv, shQuote, GUEST_HOME } from '../../dist/vm/guest-env.js';
import { parseKernelPackages, parsePolicyCandidate } from '../../dist/vm/kernel.js';
import { chooseAccel, verdictFile } from '../../dist/vm/kvm.js';
import { moduleLoadOrder, parseModinfo } from '../../dist/vm/modules.js';
import { kernelCmdline, qemuArgs } from '../../dist/vm/qemu.js';
import { cacheRoot } from '../../dist/vm/cache.js';
import { findExecutable, isStaticElf } from '../../dist/vm/tools.js';
import { rewriteLocalNpx, type PackageJson } from '../../dist/vm/npx.js';

function expectUsageError(fn: () => unknown): void {
  expect(fn).to.throw(UsageError);
}

describe('vm runner', () => {
  describe('parseVmArgs()', () => {
    it('applies the defaults and takes the command after --', () => {
      const o = parseVmArgs(['--', 'npm', 'test', '--', '-x']);
      expect(o).to.include({ timeoutSec: DEFAULT_TIMEOUT_SEC, kvm: 'auto', memoryMiB: 2048, cpus: 2, quiet: false, help: false });
      expect(o.command).to.deep.equal(['npm', 'test', '--', '-x']);
    });
    it('starts the command at the first non-option, whose own options stay its own', () => {
      expect(parseVmArgs(['-q', 'sh', '-c', 'exit 3']).command).to.deep.equal(['sh', '-c', 'exit 3']);
    });
    it('accepts --flag value and --flag=value', () => {
      const o = parseVmArgs(['--timeout', '20', '--kvm=off', '--memory=1024', '--cpus', '4', '--env', 'A', '--env=B=1=2', '--', 'x']);
      expect(o).to.include({ timeoutSec: 20, kvm: 'off', memoryMiB: 1024, cpus: 4 });
      expect(o.env).to.deep.equal(['A', 'B=1=2']);
    });
    it('takes the timeout from EXPLICIT_SYNC_VM_TIMEOUT, and --timeout over it', () => {
      expect(parseVmArgs(['x'], { EXPLICIT_SYNC_VM_TIMEOUT: '30' }).timeoutSec).to.equal(30);
      expect(parseVmArgs(['--timeout', '2.5', 'x'], { EXPLICIT_SYNC_VM_TIMEOUT: '30' }).timeoutSec).to.equal(2.5);
      expectUsageError(() => parseVmArgs(['x'], { EXPLICIT_SYNC_VM_TIMEOUT: 'soon' }));
    });
    it('rejects bad values, unknown options and a missing command', () => {
      for (const argv of [['--timeout', '0', 'x'], ['--timeout', '-1', 'x'], ['--kvm', 'maybe', 'x'], ['--memory', '12', 'x'],
        ['--cpus', '1.5', 'x'], ['--env', '1BAD', 'x'], ['--quiet=yes', 'x'], ['--bogus', 'x'], ['--timeout'], ['--'], []]) {
        expectUsageError(() => parseVmArgs(argv));
      }
    });
    it('allows --help without a command', () => {
      expect(parseVmArgs(['--help'])).to.include({ help: true });
    });
  });

  describe('moduleLoadOrder()', () => {
    // What `modinfo -F depends` says for Debian's 6.12 kernel.
    const depends = new Map<string, string[]>([
      ['9pnet_virtio', ['9pnet']], ['9pnet', []], ['9p', ['9pnet', 'netfs']], ['netfs', []],
      ['vgem', ['drm_shmem_helper', 'drm']], ['drm_shmem_helper', ['drm']], ['drm', []],
      ['virtio-gpu', ['drm_kms_helper', 'drm', 'drm_shmem_helper', 'virtio_dma_buf']],
      ['drm_kms_helper', ['drm']], ['virtio_dma_buf', []],
    ]);
    it('puts every module after its dependencies, each once, in a stable order', () => {
      const order = moduleLoadOrder(['9pnet_virtio', '9p', 'vgem', 'virtio-gpu'], depends);
      expect(order).to.deep.equal(['9pnet', '9pnet_virtio', 'netfs', '9p', 'drm', 'drm_shmem_helper', 'vgem', 'drm_kms_helper', 'virtio_dma_buf', 'virtio_gpu']);
      for (const [name, deps] of depends) {
        for (const dep of deps) expect(order.indexOf(dep.replace(/-/g, '_'))).to.be.lessThan(order.indexOf(name.replace(/-/g, '_')));
      }
    });
    it('treats - and _ in names alike', () => {
      expect(moduleLoadOrder(['virtio_gpu'], depends)).to.include('virtio_gpu');
    });
    it('rejects unknown modules and cycles', () => {
      expect(() => moduleLoadOrder(['nope'], depends)).to.throw(/unknown kernel module nope/);
      expect(() => moduleLoadOrder(['a'], new Map([['a', ['b']], ['b', ['a']]]))).to.throw(/cycle: a -> b -> a/);
    });
    it('parseModinfo() reads filename and depends', () => {
      const info = parseModinfo('filename:       /k/virtio-gpu.ko.xz\nlicense:        GPL\ndepends:        drm_kms_helper,drm\nname:           virtio_gpu\n');
      expect(info).to.deep.equal({ filename: '/k/virtio-gpu.ko.xz', depends: ['drm_kms_helper', 'drm'] });
      expect(parseModinfo('filename: /k/netfs.ko.xz\ndepends:        \n').depends).to.deep.equal([]);
    });
  });

  describe('ConsoleParser', () => {
    const nonce = 'abc123';
    const marker = exitMarker(nonce, 3);
    function feed(chunks: string[]): { parser: ConsoleParser; output: string; events: ConsoleEvent[] } {
      const parser = new ConsoleParser(nonce);
      let output = '';
      const events: ConsoleEvent[] = [];
      for (const chunk of chunks) {
        const u = parser.push(chunk);
        output += u.output;
        events.push(...u.events);
      }
      return { parser, output: output + parser.end(), events };
    }

    it('holds back the boot log, streams the command output and strips the exit marker', () => {
      const r = feed([`[ 0.1] kernel noise\r\n${INIT_MARKER}\ninsmod ok\n${READY_MARKER}\nhello\r\n`, `world\n${marker}\n[ 2.2] reboot: Power down\r\n`]);
      expect(r.output).to.equal('hello\nworld\n');
      expect(r.events).to.deep.equal(['init', 'ready', 'exit']);
      expect(r.parser.exitCode).to.equal(3);
      expect(r.parser.bootLog).to.equal(`[ 0.1] kernel noise\n${INIT_MARKER}\ninsmod ok\n`);
    });
    it('finds markers split across chunks, a character at a time', () => {
      const text = `${INIT_MARKER}\n${READY_MARKER}\nout@@put\n${marker}\ntrailer`;
      const r = feed([...text]);
      expect(r.output).to.equal('out@@put\n');
      expect(r.parser.exitCode).to.equal(3);
    });
    it('keeps output that does not end in a newline', () => {
      expect(feed([`${INIT_MARKER}\n${READY_MARKER}\npartial${marker}\n`]).output).to.equal('partial');
    });
    it('ignores an exit marker with another nonce, and flushes held text when the console closes', () => {
      const r = feed([`${INIT_MARKER}\n${READY_MARKER}\n${exitMarker('other', 0)}\n@@EXPLICIT-SYNC-EXIT-abc`]);
      expect(r.parser.exitCode).to.equal(undefined);
      expect(r.output).to.equal(`${exitMarker('other', 0)}\n@@EXPLICIT-SYNC-EXIT-abc`);
    });
    it('turns CRLF into LF even when CR and LF arrive in different chunks, and keeps a lone CR', () => {
      expect(feed([`${INIT_MARKER}\n${READY_MARKER}\na\r`, '\nb\rc\n']).output).to.equal('a\nb\rc\n');
    });
    it('reports a kernel panic once, also across chunks, and shows no output before READY', () => {
      const r = feed([`${INIT_MARKER}\n[ 1.0] Kernel pa`, 'nic - not syncing: Attempted to kill init!\n', 'Kernel panic - not syncing\n']);
      expect(r.events).to.deep.equal(['init', 'panic']);
      expect(r.parser.panicked).to.equal(true);
      expect(r.output).to.equal('');
      expect(r.parser.bootLog).to.contain('Attempted to kill init');
    });
  });

  describe('guest environment', () => {
    const host = { EXPLICIT_SYNC_DEVICE: '/dev/dri/card1', CI: 'true', TERM: 'xterm', NODE_OPTIONS: '--trace-warnings',
      HOME: '/root', PATH: '/host/bin', SECRET: 'x', NO_COLOR: undefined };
    it('forwards EXPLICIT_SYNC_* and the listed variables only, with guest defaults', () => {
      expect(selectGuestEnv(host)).to.deep.equal({
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: GUEST_HOME, npm_config_cache: `${GUEST_HOME}/.npm`,
        npm_config_offline: 'true', npm_config_update_notifier: 'false',
        EXPLICIT_SYNC_DEVICE: '/dev/dri/card1', CI: 'true', TERM: 'xterm', NODE_OPTIONS: '--trace-warnings', EXPLICIT_SYNC_IN_VM: '1',
      });
    });
    it('lets explicit variables override everything but EXPLICIT_SYNC_IN_VM', () => {
      const env = selectGuestEnv(host, { CI: 'false', HOME: '/tmp/other', EXPLICIT_SYNC_IN_VM: '0' });
      expect(env).to.include({ CI: 'false', HOME: '/tmp/other', EXPLICIT_SYNC_IN_VM: '1' });
    });
    it('resolveEnvSpecs() copies NAME from the host, skips it when unset, and sets NAME=VALUE', () => {
      expect(resolveEnvSpecs(host, ['SECRET', 'MISSING', 'X=a=b', 'Y='])).to.deep.equal({ SECRET: 'x', X: 'a=b', Y: '' });
    });
    it('shQuote() survives a real shell for awkward words', () => {
      const words = ['plain', 'two words', "it's", '$HOME', '`id`', 'a"b', 'new\nline', '', '*', '-n', 'ü'];
      const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${words.map(shQuote).join(' ')}`], { encoding: 'utf8' });
      expect(out.split('\0').slice(0, -1)).to.deep.equal(words);
    });
    it('renderRunScript() exports the environment, enters cwd and runs argv with stdin from /dev/null', () => {
      const script = renderRunScript({ command: ['sh', '-c', "echo 'hi'"], cwd: '/work/my dir', env: { B: '2', A: "it's" }, tty: false });
      expect(script).to.contain(`export A='it'\\''s'\nexport B=2\n`);
      expect(script).to.contain(`cd '/work/my dir' || exit 126`);
      expect(script).to.contain(`{ sh -c 'echo '\\''hi'\\''' </dev/null; echo $? >/tmp/explicit-sync/status; } 2>&1 | cat`);
      const tty = renderRunScript({ command: ['true'], cwd: '/', env: {}, tty: true, size: { columns: 120, rows: 40 } });
      expect(tty).to.contain('stty rows 40 cols 120').and.to.contain('true </dev/null 2>&1\nexit $?');
    });
  });

  describe('timeouts', () => {
    it('computes the deadline and what is left of it, never negative', () => {
      const deadline = deadlineAt(1_000, 20);
      expect(deadline).to.equal(21_000);
      expect(remainingMs(deadline, 5_000)).to.equal(16_000);
      expect(remainingMs(deadline, 30_000)).to.equal(0);
      expect(deadlineAt(0, 0.0015)).to.equal(2);
    });
    it('clamps timer delays to what setTimeout honours', () => {
      expect(timerDelay(1e12)).to.equal(MAX_TIMER_MS);
      expect(timerDelay(-5)).to.equal(0);
      expect(timerDelay(1.2)).to.equal(2);
    });
    it('bounds the KVM handshake by the deadline', () => {
      expect(handshakeMs(100_000, 0)).to.deep.equal({ ms: KVM_HANDSHAKE_MS, cutByDeadline: false });
      expect(handshakeMs(100_000, 95_000)).to.deep.equal({ ms: 5_000, cutByDeadline: true });
    });
  });

  describe('accelerator choice', () => {
    it('chooseAccel() follows --kvm, /dev/kvm and the remembered verdict', () => {
      expect(chooseAccel('off', true, 'ok')).to.deep.equal({ first: 'tcg', fallback: false });
      expect(chooseAccel('on', true, 'broken')).to.deep.equal({ first: 'kvm', fallback: false });
      expect(() => chooseAccel('on', false, undefined)).to.throw(/\/dev\/kvm/);
      expect(chooseAccel('auto', true, undefined)).to.deep.equal({ first: 'kvm', fallback: true });
      expect(chooseAccel('auto', true, 'ok')).to.deep.equal({ first: 'kvm', fallback: true });
      expect(chooseAccel('auto', true, 'broken')).to.deep.equal({ first: 'tcg', fallback: false });
      expect(chooseAccel('auto', false, undefined)).to.deep.equal({ first: 'tcg', fallback: false });
    });
    it('keys the verdict file by the host kernel release', () => {
      expect(verdictFile('/c', '6.18.44-fc/v509')).to.equal('/c/kvm-6.18.44-fc_v509');
    });
    it('qemuArgs() keeps QEMU off the terminal and picks the accelerator', () => {
      const base = { kernel: '/k', initrd: '/i', memoryMiB: 2048, cpus: 2, append: kernelCmdline('/c/runs/1-ab', 'ab') };
      const tcg = qemuArgs({ ...base, accel: 'tcg' });
      expect(tcg.join(' ')).to.contain('-display none -monitor none -serial stdio').and.contain('-accel tcg,thread=multi -cpu max');
      expect(tcg).to.not.include('-nographic');
      expect(tcg[tcg.indexOf('-append') + 1]).to.match(/^console=ttyS0 quiet loglevel=3 panic=-1 .*es\.run=\/c\/runs\/1-ab es\.nonce=ab$/);
      expect(qemuArgs({ ...base, accel: 'kvm' }).join(' ')).to.contain('-accel kvm -cpu host');
      expect(kernelCmdline('/r', 'ab', 12.2)).to.contain(' es.timeout=13 ');
      expect(kernelCmdline('/r', 'ab', 0)).to.contain(' es.timeout=1 ');
    });
  });

  describe('rewriteLocalNpx()', () => {
    const pkgs = new Map<string, PackageJson>([['/co', { name: 'explicit-sync', bin: { 'explicit-sync': 'bin/explicit-sync.js' } }],
      ['/other', { name: '@s/tool', bin: 'cli.js' }]]);
    const read = (dir: string): PackageJson | undefined => pkgs.get(dir);
    const noModules = (): boolean => false;
    it('runs a bin of the local package with node, from the package or a folder inside it', () => {
      expect(rewriteLocalNpx(['npx', 'explicit-sync', 'doctor'], '/co', read, noModules)?.command)
        .to.deep.equal(['node', '/co/bin/explicit-sync.js', 'doctor']);
      expect(rewriteLocalNpx(['npm', 'exec', '--yes', '--', 'explicit-sync', 'vm', '--help'], '/co/test/host', read, noModules)?.command)
        .to.deep.equal(['node', '/co/bin/explicit-sync.js', 'vm', '--help']);
      expect(rewriteLocalNpx(['npx', '-y', 'tool'], '/other', read, noModules)?.command).to.deep.equal(['node', '/other/cli.js']);
    });
    it('leaves other commands alone', () => {
      for (const command of [['node', 'x.js'], ['npx', 'mocha'], ['npx', '--package=x', 'explicit-sync'], ['npx']]) {
        expect(rewriteLocalNpx(command, '/co', read, noModules), command.join(' ')).to.equal(undefined);
      }
      expect(rewriteLocalNpx(['npx', 'explicit-sync'], '/elsewhere', read, noModules)).to.equal(undefined);
      // npm's prefix stops at a folder with node_modules, as npm's own does.
      expect(rewriteLocalNpx(['npx', 'explicit-sync'], '/co/sub', read, (d) => d === '/co/sub')).to.equal(undefined);
    });
  });

  describe('provisioning helpers', () => {
    it('parseKernelPackages() keeps the generic amd64 flavour, newest first', () => {
      const out = ['linux-image-6.12.107+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs',
        'linux-image-6.12.117+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud',
        'linux-image-6.12.9+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs',
        'linux-image-6.12.117+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs'].join('\n');
      expect(parseKernelPackages(out).map((p) => p.kver)).to.deep.equal(['6.12.117+deb12-amd64', '6.12.107+deb12-amd64', '6.12.9+deb12-amd64']);
    });
    it('parsePolicyCandidate() reads the candidate version', () => {
      expect(parsePolicyCandidate('pkg:\n  Installed: (none)\n  Candidate: 6.12.117-1~deb12u1\n')).to.equal('6.12.117-1~deb12u1');
      expect(parsePolicyCandidate('pkg:\n  Installed: (none)\n  Candidate: (none)\n')).to.equal(undefined);
    });
    it('cacheRoot() prefers $EXPLICIT_SYNC_CACHE, then $XDG_CACHE_HOME, then ~/.cache', () => {
      expect(cacheRoot({ EXPLICIT_SYNC_CACHE: '/c', XDG_CACHE_HOME: '/x' }, '/h')).to.equal('/c');
      expect(cacheRoot({ XDG_CACHE_HOME: '/x' }, '/h')).to.equal('/x/explicit-sync');
      expect(cacheRoot({ XDG_CACHE_HOME: 'relative' }, '/h')).to.equal('/h/.cache/explicit-sync');
    });
    it('findExecutable() searches the directories in order', () => {
      const present = new Set(['/usr/sbin/depmod', '/sbin/depmod']);
      expect(findExecutable('depmod', ['/usr/bin', '', '/usr/sbin', '/sbin'], (f) => present.has(f))).to.equal('/usr/sbin/depmod');
      expect(findExecutable('cpio', ['/usr/bin'], (f) => present.has(f))).to.equal(undefined);
    });
    it('isStaticElf() tells a static ELF from one with an interpreter', () => {
      const elf = (types: number[]): Buffer => {
        const b = Buffer.alloc(64 + 56 * types.length);
        b.writeUInt32BE(0x7f454c46, 0);
        b[4] = 2; // 64-bit
        b[5] = 1; // little-endian
        b.writeBigUInt64LE(64n, 0x20);
        b.writeUInt16LE(56, 0x36);
        b.writeUInt16LE(types.length, 0x38);
        types.forEach((t, i) => b.writeUInt32LE(t, 64 + 56 * i));
        return b;
      };
      expect(isStaticElf(elf([1, 1]))).to.equal(true);
      expect(isStaticElf(elf([6, 3, 1]))).to.equal(false);
      expect(isStaticElf(Buffer.from('#!/bin/sh\n'))).to.equal(false);
    });
  });
});
