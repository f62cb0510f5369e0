// Pure logic of the runner's Debian build root (lib/vm/buildroot.ts), its choice of where modules
// are built (oot-build.ts), its records of failed builds (oot-failures.ts) and --list-kernels'
// note on the package lists: no apt, no mmdebstrap, no chroot. The root itself is made and used by
// every VM run of the newest kernel (test/vm/kms.test.mts needs its vkms, sw-sync.test.mts its sw_sync).
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { formatAge } from '../../dist/vm/apt.js';
import { buildRootPath, buildRootUnavailable, chrootMakeArgs, debianSuiteOf, mmdebstrapArgs } from '../../dist/vm/buildroot.js';
import { listsNote, renderKernelList } from '../../dist/vm/list-kernels.js';
import { chooseBuilder } from '../../dist/vm/oot-build.js';
import {
  buildInputsHash,
  clearFailures,
  failureLogPath,
  failureReason,
  readFailure,
  recordFailure,
  RETRY_BUILD_ENV,
} from '../../dist/vm/oot-failures.js';

const all = (): boolean => true;
const none = (...missing: string[]) => (t: string): boolean => !missing.includes(t);

describe('vm runner: the build root of a kernel built with a newer gcc', () => {
  describe('debianSuiteOf() and buildRootPath()', () => {
    it('names the Debian release a kernel was built for, by its +debNN', () => {
      expect(debianSuiteOf('7.3.4+deb13-amd64')).to.equal('trixie');
      expect(debianSuiteOf('6.12.118+deb12-amd64')).to.equal('bookworm');
      expect(debianSuiteOf('6.1.0-57-amd64')).to.equal(undefined);
      expect(debianSuiteOf('8.0.1+deb99-amd64')).to.equal(undefined);
    });
    it('keeps one root per kernel release in the cache', () => {
      expect(buildRootPath('/c', '7.3.4+deb13-amd64')).to.equal('/c/buildroot/7.3.4+deb13-amd64');
    });
  });

  describe('mmdebstrapArgs()', () => {
    const args = mmdebstrapArgs('trixie', '7.3.4+deb13-amd64', '7.3.4-1~bpo13+1', '/t/root', { main: 'http://m/debian', security: 'http://m/debian-security' }, '/k.gpg');
    it('makes an Essential root as root, with make, binutils and the headers of the very version booted', () => {
      expect(args.slice(0, 3)).to.deep.equal(['--mode=root', '--variant=essential', '--include=make,binutils,linux-headers-7.3.4+deb13-amd64=7.3.4-1~bpo13+1']);
      expect(args).to.include('--dpkgopt=path-exclude=/usr/share/doc/*');
    });
    it('takes the suite and its backports from the archive host, signed by the keyring, into the target', () => {
      const at = args.indexOf('trixie');
      expect(args.slice(at)).to.deep.equal([
        'trixie',
        '/t/root',
        'deb [signed-by=/k.gpg] http://m/debian trixie main',
        'deb [signed-by=/k.gpg] http://m/debian trixie-backports main',
      ]);
    });
  });

  describe('chrootMakeArgs()', () => {
    it('runs make in the root in its own mount and PID namespaces, /proc mounted, the sources bind-mounted at /build', () => {
      const args = chrootMakeArgs('/c/buildroot/k', '/c/.tmp-x/build', ['-C', '/usr/src/h', 'M=/build/vkms', 'modules']);
      expect(args.slice(0, 5)).to.deep.equal(['--fork', '--pid', '--mount', '--mount-proc=/c/buildroot/k/proc', '--']);
      expect(args.slice(5, 7)).to.deep.equal(['sh', '-c']);
      expect(args[7]).to.contain('mount --bind "$1" "$2$3"').and.to.contain('exec chroot "$r" make "$@"');
      expect(args.slice(8)).to.deep.equal(['sh', '/c/.tmp-x/build', '/c/buildroot/k', '/build', '-C', '/usr/src/h', 'M=/build/vkms', 'modules']);
    });
  });

  describe('chooseBuilder()', () => {
    it("builds on the host when its gcc is at least the kernel's", () => {
      expect(chooseBuilder('6.12.118+deb12-amd64', 12, 12, all, 1000)).to.deep.equal({ kind: 'host', label: 'host gcc 12' });
      expect(chooseBuilder('6.12.118+deb12-amd64', 12, 12, none('make', 'mmdebstrap'), 0)).to.deep.equal({ why: 'missing make (apt-get install gcc make xz-utils)' });
      // Without gcc or make, a root of the kernel's release does where it can be made.
      expect(chooseBuilder('6.12.118+deb12-amd64', 12, undefined, none('gcc'), 0)).to.deep.equal({ kind: 'root', suite: 'bookworm', label: 'bookworm build root (gcc 12)' });
    });
    it("builds in a root of the kernel's release when the host's gcc is older", () => {
      expect(chooseBuilder('7.3.4+deb13-amd64', 14, 12, all, 0)).to.deep.equal({ kind: 'root', suite: 'trixie', label: 'trixie build root (gcc 14)' });
      // The host's gcc and make do not matter then.
      expect(chooseBuilder('7.3.4+deb13-amd64', 14, undefined, none('gcc', 'make'), 0)).to.have.property('kind', 'root');
      expect(chooseBuilder('7.3.4+deb13-amd64', 14, 14, all, 0)).to.have.property('kind', 'host');
    });
    it('says why it cannot: no mmdebstrap, not root, a release that names no Debian release', () => {
      const noTool = chooseBuilder('7.3.4+deb13-amd64', 14, 12, none('mmdebstrap'), 0) as { why: string };
      expect(noTool.why).to.match(/gcc 14.*gcc 12.*no mmdebstrap here \(apt-get install --no-install-recommends mmdebstrap\)/);
      expect((chooseBuilder('7.3.4+deb13-amd64', 14, 12, all, 1000) as { why: string }).why).to.contain('needs root');
      expect((chooseBuilder('7.3.4-1-amd64', 14, 12, all, 0) as { why: string }).why).to.contain('names no Debian release');
      expect(buildRootUnavailable(all, 0)).to.equal(undefined);
    });
  });

  describe('failed builds are recorded, not retried until their inputs change', () => {
    let cache: string;
    beforeEach(() => {
      cache = mkdtempSync(join(tmpdir(), 'es-oot-fail-'));
    });
    afterEach(() => rmSync(cache, { recursive: true, force: true }));
    const inputs = { kver: '7.3.4+deb13-amd64', version: '7.3.4-1~bpo13+1', module: 'vkms', builder: 'trixie build root (gcc 14)', code: 'v1' };
    const makeError = 'unshare --fork … make -C /usr/src/h M=/build/vkms modules failed (exit 2):\nvkms_drv.c:9:3: error: #error no fentry\nmake[3]: *** Error 1';

    it('keeps the log under the kernel release with the hash of the inputs, and reads back its reason', () => {
      expect(readFailure(cache, inputs)).to.equal(undefined);
      const log = recordFailure(cache, inputs, makeError);
      expect(log).to.equal(failureLogPath(cache, inputs.kver, 'vkms', buildInputsHash(inputs)));
      expect(log).to.match(/\/build-failures\/7\.3\.4\+deb13-amd64\/vkms-[0-9a-f]{16}\.log$/);
      expect(readFailure(cache, inputs)).to.deep.equal({ log, reason: 'vkms_drv.c:9:3: error: #error no fentry' });
    });
    it('another version, recipe code or builder is another hash: tried again', () => {
      recordFailure(cache, inputs, makeError);
      for (const change of [{ version: '7.3.5-1~bpo13+1' }, { code: 'v2' }, { builder: 'host gcc 14' }, { module: 'sw_sync' }]) {
        expect(readFailure(cache, { ...inputs, ...change }), JSON.stringify(change)).to.equal(undefined);
      }
    });
    it("clearFailures() forgets the module's logs for that kernel, and no other's", () => {
      recordFailure(cache, inputs, makeError);
      recordFailure(cache, { ...inputs, code: 'v2' }, makeError);
      recordFailure(cache, { ...inputs, module: 'sw_sync' }, makeError);
      const dir = join(cache, 'build-failures', inputs.kver);
      writeFileSync(join(dir, 'vkms-notes.txt'), 'x');
      clearFailures(cache, inputs.kver, 'vkms');
      expect(readdirSync(dir).sort()).to.have.length(2);
      expect(readdirSync(dir).some((n) => n.startsWith('sw_sync-'))).to.equal(true);
      clearFailures(cache, 'no-such-release', 'vkms');
      mkdirSync(join(cache, 'empty'));
    });
    it("failureReason() prefers the first error line over a tool's command line", () => {
      expect(failureReason(makeError)).to.equal('vkms_drv.c:9:3: error: #error no fentry');
      expect(failureReason('cannot patch sw_sync.c (trace points): the source no longer matches /x/')).to.match(/^cannot patch/);
      expect(RETRY_BUILD_ENV).to.equal('EXPLICIT_SYNC_VM_RETRY_BUILD');
    });
  });

  describe('--list-kernels and the age of the package lists', () => {
    it('says how old the lists are, and why they were not updated', () => {
      expect(formatAge(40_000)).to.equal('40 s');
      expect(formatAge(12 * 60_000)).to.equal('12 min');
      expect(formatAge(5 * 3600_000)).to.equal('5 h');
      expect(formatAge(3 * 86400_000)).to.equal('3 days');
      expect(listsNote(3 * 3600_000)).to.equal('package lists updated 3 h ago');
      const offline = new Error('apt-get … update failed (exit 100):\nErr:1 http://m bookworm InRelease\nE: Failed to fetch http://m/InRelease');
      expect(listsNote(2 * 86400_000, offline)).to.equal('apt could not be reached (Err:1 http://m bookworm InRelease): package lists updated 2 days ago');
      expect(listsNote(undefined, offline)).to.contain('package lists none yet');
    });
    it('prints the note above what can be fetched', () => {
      const text = renderKernelList([], new Map(), 'package lists updated 3 h ago');
      expect(text).to.contain('default 6.12):\n  (package lists updated 3 h ago)');
    });
  });
});
